/**
 * Issue 5, item 4 with two real guests (two QEMUs, each with its own vport HBA and WWPN) sharing
 * one LUN: persistent reservations carry each VM's own initiator identity.
 *   guest 1 registers key 0x1111 and reserves Write Exclusive, Registrants Only; its link is
 *           taken down and up by the SAN administrator and the reservation is still there;
 *   guest 2 (waits for guest 1's marker block on the LUN) gets RESERVATION CONFLICT on writes
 *           while reads work, sees guest 1's vport WWPN in READ FULL STATUS / key in READ KEYS,
 *           registers 0x2222 (then writes: it is a registrant), and preempts guest 1 taking an
 *           Exclusive Access reservation;
 *   guest 1 then finds its registration gone and its writes refused.
 * The guests only talk through the SAN: the marker is a block guest 1 writes on the shared LUN.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runGuest, type GuestRunResult } from '../../src/harness/guest.js';
import { controlRequest } from '../../src/san/control.js';
import { startCli, waitForPath, type ProjectProcess } from './support/processes.js';

const VM1 = { wwpn: 'c0:50:76:ff:e5:00:40:01', wwnn: 'c0:50:76:ff:e5:00:40:00' };
const VM2 = { wwpn: 'c0:50:76:ff:e5:00:50:01', wwnn: 'c0:50:76:ff:e5:00:50:00' };
const TP_1 = '50:0a:09:81:00:00:00:01';
const plainWwn = (w: string) => w.replaceAll(':', '');
const LINK_DOWN_MS = 8_000;

const SAN_CONFIG = {
  fabric: {
    name: 'fabric-a',
    domain: 1,
    zoning: { default: 'deny', zones: [{ name: 'cluster', members: [VM1.wwpn, VM2.wwpn, TP_1] }] },
  },
  arrays: [
    {
      name: 'array1',
      ports: [{ wwpn: TP_1, wwnn: '50:0a:09:80:00:00:00:01' }],
      volumes: [{ name: 'shared', size: '32MiB' }],
      hostGroups: [{ name: 'cluster', initiators: [VM1.wwpn, VM2.wwpn], luns: { '0': 'shared' } }],
    },
  ],
};

const COMMON = `
say() { echo "GUEST:$*"; }
h=/sys/class/fc_host/host0
wait_for $h/port_state 120
wait_until 120 sh -c '[ "$(cat /sys/class/fc_host/host0/port_state)" = Online ]'
wait_until 60 sh -c 'ls -d /sys/block/sd* >/dev/null 2>&1'
sleep 2
D=$(for x in /sys/block/sd*; do basename $x; break; done)
# Clear the power-on unit attention.
sg_turs /dev/$D >/dev/null 2>&1; sg_turs /dev/$D >/dev/null 2>&1
write_block() { dd if=/tmp/blk of=/dev/$D bs=512 seek=$1 count=1 oflag=direct 2>/tmp/dd.err; }
head -c 512 /dev/urandom > /tmp/blk
MARK=2048
say "READY $D"
`;

const GUEST1 = `${COMMON}
sg_persist --out --register --param-sark=0x1111 /dev/$D >/dev/null 2>&1; say "G1 register $?"
sg_persist --out --reserve --param-rk=0x1111 --prout-type=5 /dev/$D >/dev/null 2>&1; say "G1 reserve $?"
write_block 100; say "G1 write-as-holder $?"
say "G1 FLAP"
wait_until 60 sh -c '[ "$(cat /sys/class/fc_host/host0/port_state)" != Online ]'; say "G1 linkdown-seen $?"
wait_until 120 sh -c '[ "$(cat /sys/class/fc_host/host0/port_state)" = Online ]'; say "G1 online-again $?"
sleep 3
sg_persist --in --read-reservation /dev/$D > /tmp/r 2>&1; sg_persist --in --read-reservation /dev/$D > /tmp/r 2>&1
sed 's/^/GUEST:G1RES /' /tmp/r
write_block 101; say "G1 write-after-flap $?"
# Tell guest 2 through the shared LUN.
(printf FLAPDONE; head -c 504 /dev/zero) > /tmp/blk; write_block $MARK; say "G1 marker $?"
# Wait to be preempted by guest 2: a REGISTRATIONS PREEMPTED unit attention, and our key leaves READ KEYS.
i=0; ua=0
while [ $i -lt 300 ]; do
  i=$((i+1))
  sg_persist --in --read-keys /dev/$D > /tmp/k 2>&1
  grep -qi "registrations preempted" /tmp/k && { ua=1; continue; }
  grep -q "PR generation" /tmp/k || { sleep 1; continue; }
  grep -q 0x1111 /tmp/k || break
  sleep 1
done
say "G1 preempted-ua $ua"
sed 's/^/GUEST:G1KEYS /' /tmp/k
head -c 512 /dev/urandom > /tmp/blk; write_block 102; say "G1 write-after-preempt $?"
say "G1 conflict-logged $(dmesg | grep -ci 'reservation conflict')"
exit 0
`;

const GUEST2 = `${COMMON}
i=0; while [ $i -lt 400 ]; do [ "$(dd if=/dev/$D bs=512 skip=$MARK count=1 iflag=direct 2>/dev/null | head -c 8)" = FLAPDONE ] && break; sleep 1; i=$((i+1)); done
say "G2 marker-seen $i"
write_block 200; say "G2 write-unregistered $?"
dd if=/dev/$D of=/dev/null bs=4k count=8 iflag=direct 2>/dev/null; say "G2 read-unregistered $?"
sg_persist --in --read-keys /dev/$D 2>&1 | sed 's/^/GUEST:G2KEYS /'
sg_persist --in --read-full-status /dev/$D 2>&1 | sed 's/^/GUEST:G2FULL /'
sg_persist --out --register --param-sark=0x2222 /dev/$D >/dev/null 2>&1; say "G2 register $?"
write_block 201; say "G2 write-registered $?"
sg_persist --out --preempt --param-rk=0x2222 --param-sark=0x1111 --prout-type=3 /dev/$D >/dev/null 2>&1; say "G2 preempt $?"
sg_persist --in --read-reservation /dev/$D 2>&1 | sed 's/^/GUEST:G2RES /'
sg_persist --in --read-full-status /dev/$D 2>&1 | sed 's/^/GUEST:G2FULL2 /'
write_block 202; say "G2 write-as-holder $?"
sleep 20
exit 0
`;

describe('living SAN: persistent reservations between two guests with their own vport WWPNs', () => {
  const dir = mkdtempSync(join(tmpdir(), 'npiv-living-pr-'));
  const linkPath = join(dir, 'san.sock');
  const ctlPath = join(dir, 'san-ctl.sock');
  const sock1 = join(dir, 'vm1.sock');
  const sock2 = join(dir, 'vm2.sock');
  const procs: ProjectProcess[] = [];
  const ctlResults: string[] = [];
  let g1: GuestRunResult;
  let g2: GuestRunResult;

  beforeAll(async () => {
    const cfg = join(dir, 'san.json');
    writeFileSync(cfg, JSON.stringify(SAN_CONFIG));
    const san = startCli(['san', '--config', cfg, '--link', linkPath, '--control', ctlPath], {
      NPIV_HBA_LOG_LEVEL: 'info',
    });
    procs.push(san);
    await waitForPath(ctlPath, san);
    for (const [vm, sock] of [
      [VM1, sock1],
      [VM2, sock2],
    ] as const) {
      const p = startCli(['serve', '--socket', sock, '--wwpn', vm.wwpn, '--wwnn', vm.wwnn, '--san', linkPath], {
        NPIV_HBA_LOG_LEVEL: 'info',
      });
      procs.push(p);
      await waitForPath(sock, p);
    }
    let flap: Promise<void> = Promise.resolve();
    const ctl = async (cmd: string, wwpn: string) => {
      const r = await controlRequest(ctlPath, { cmd, wwpn });
      ctlResults.push(`${cmd} ${r.ok ? 'ok' : r.error}`);
    };
    [g1, g2] = await Promise.all([
      runGuest({
        // Under a loaded TCG host the boot-time IO-APIC timer check can misfire and panic.
        kernelArgs: ['no_timer_check'],
        devices: [sock1],
        script: GUEST1,
        dmesg: true,
        timeoutMs: 840_000,
        onLine: (line) => {
          if (!line.includes('GUEST:G1 FLAP')) return;
          flap = (async () => {
            await ctl('link-down', VM1.wwpn);
            await new Promise((r) => setTimeout(r, LINK_DOWN_MS));
            await ctl('link-up', VM1.wwpn);
          })();
        },
      }),
      runGuest({ kernelArgs: ['no_timer_check'], devices: [sock2], script: GUEST2, timeoutMs: 840_000 }),
    ]);
    await flap;
    writeFileSync(
      join(tmpdir(), 'npiv-living-pr.log'),
      g1.output + '\n=== guest 2\n' + g2.output + '\n--- san\n' + san.log().slice(-100_000),
    );
    const g = (r: GuestRunResult, p: string) => r.guestLines.find((l) => l.startsWith(p)) ?? `${p} <missing>`;
    console.log(
      [
        'living SAN — persistent reservations',
        `  ${g(g1, 'G1 reserve')}   ${g(g1, 'G1 write-after-flap')}`,
        `  ${g(g2, 'G2 write-unregistered')} (RESERVATION CONFLICT expected)   ${g(g2, 'G2 preempt')}`,
      ].join('\n'),
    );
  });

  afterAll(async () => {
    for (const p of procs.reverse()) await p.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const has = (r: GuestRunResult, l: string) => expect(r.guestLines, r.output.slice(-6000)).toContain(l);
  const text = (r: GuestRunResult, prefix: string) => r.guestLines.filter((l) => l.startsWith(prefix)).join('\n');
  /** sg_persist prints a TransportID's port name as spaced hex bytes. */
  const compact = (t: string) => t.toLowerCase().replace(/\s+/g, '');

  it('both guests boot and finish; the link flap went through the control socket', () => {
    expect(g1.timedOut, g1.output.slice(-6000)).toBe(false);
    expect(g2.timedOut, g2.output.slice(-6000)).toBe(false);
    expect(g1.exitStatus).toBe(0);
    expect(g2.exitStatus).toBe(0);
    expect(ctlResults).toEqual(['link-down ok', 'link-up ok']);
    expect(g1.kernelProblems).toEqual([]);
    expect(g2.kernelProblems).toEqual([]);
  });

  it('guest 1 registers and reserves Write Exclusive, Registrants Only; the reservation survives its link flap', () => {
    has(g1, 'G1 register 0');
    has(g1, 'G1 reserve 0');
    has(g1, 'G1 write-as-holder 0');
    has(g1, 'G1 linkdown-seen 0');
    has(g1, 'G1 online-again 0');
    const res = text(g1, 'G1RES ');
    expect(res).toMatch(/Key=0x1111/i);
    expect(res).toMatch(/Write Exclusive, registrants only/i);
    has(g1, 'G1 write-after-flap 0');
  });

  it('guest 2: RESERVATION CONFLICT on writes, reads work; READ KEYS / READ FULL STATUS show key and vport WWPN', () => {
    expect(g2.guestLines.find((l) => l.startsWith('G2 write-unregistered'))).toMatch(/^G2 write-unregistered [1-9]/);
    has(g2, 'G2 read-unregistered 0');
    expect(text(g2, 'G2KEYS ')).toMatch(/0x1111/);
    const full = text(g2, 'G2FULL ');
    expect(compact(full)).toContain(plainWwn(VM1.wwpn));
    expect(full).toMatch(/FCP-2 World Wide Name/);
  });

  it('guest 2 registers (then may write) and preempts guest 1 into Exclusive Access; guest 1 loses its registration', () => {
    has(g2, 'G2 register 0');
    has(g2, 'G2 write-registered 0');
    has(g2, 'G2 preempt 0');
    expect(text(g2, 'G2RES ')).toMatch(/Key=0x2222/i);
    expect(text(g2, 'G2RES ')).toMatch(/Exclusive Access/i);
    expect(compact(text(g2, 'G2FULL2 '))).toContain(plainWwn(VM2.wwpn));
    expect(compact(text(g2, 'G2FULL2 '))).not.toContain(plainWwn(VM1.wwpn));
    has(g2, 'G2 write-as-holder 0');
    has(g1, 'G1 preempted-ua 1');
    expect(text(g1, 'G1KEYS ')).toMatch(/0x2222/);
    expect(text(g1, 'G1KEYS ')).not.toMatch(/0x1111/);
    expect(g1.guestLines.find((l) => l.startsWith('G1 write-after-preempt'))).toMatch(/^G1 write-after-preempt [1-9]/);
    expect(g1.guestLines.find((l) => l.startsWith('G1 conflict-logged'))).toMatch(/^G1 conflict-logged [1-9]/);
  });
});
