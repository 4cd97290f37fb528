/**
 * Issue 4, real guest, data path: fio in the guest writes random data at random offsets through the
 * emulated ISP2532 (4k and 64k blocks, libaio, iodepth 16, several hundred MiB in all) and verifies
 * it; then the guest's view of the whole LUN and the SAN's file-backed volume must be byte-identical
 * (same SHA-256 over every byte). san and serve run as the real CLI processes.
 */
import { createHash } from 'node:crypto';
import { createReadStream, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runGuest, type GuestRunResult } from '../../src/harness/guest.js';
import { startCli, waitForPath, type ProjectProcess } from './support/processes.js';

const MIB = 2 ** 20;
const VOLUME_MIB = 320;
const VPORT = { wwpn: 'c0:50:76:ff:e5:00:20:01', wwnn: 'c0:50:76:ff:e5:01:20:01' };
const TARGET = { wwpn: '50:0a:09:81:00:00:20:01', wwnn: '50:0a:09:80:00:00:20:01' };

/** One fio job per block size, each on its own region of the LUN: 64 MiB at 4k, 256 MiB at 64k. */
const JOBS = [
  { name: 'rand4k', bs: '4k', offset: 0, sizeMiB: 64 },
  { name: 'rand64k', bs: '64k', offset: 64 * MIB, sizeMiB: 256 },
];

const GUEST_SCRIPT = `
wait_for /sys/class/fc_host/host0/port_name 60 || exit 3
i=0; while [ ! -e /sys/block/sda ] && [ $i -lt 600 ]; do sleep 0.2; i=$((i+1)); done
[ -e /sys/block/sda ] || exit 4
sleep 1
${JOBS.map(
  (
    j,
  ) => `fio --name=${j.name} --filename=/dev/sda --rw=randwrite --bs=${j.bs} --offset=${j.offset} --size=${j.sizeMiB}M \\
  --ioengine=libaio --iodepth=16 --direct=1 --verify=crc32c --do_verify=1 --verify_fatal=1 --randrepeat=0 \\
  --output-format=terse --terse-version=3 > /tmp/${j.name}.out 2>&1
echo "GUEST:FIO ${j.name} rc=$? $(cut -d';' -f5 /tmp/${j.name}.out | head -1)"`,
).join('\n')}
sync
sum=$(sha256sum /dev/sda 2>/tmp/sha.err); rc=$?
echo "GUEST:SHA256 \${sum%% *} rc=$rc $(head -c 300 /tmp/sha.err | tr '\\n' ' ')"
# A failed read is evidence to keep: the kernel's view of it.
[ "$rc" = 0 ] || dmesg | tail -80 | sed 's/^/GUEST:DMESG /'
exit 0
`;

function sha256File(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256');
    createReadStream(path)
      .on('data', (d) => h.update(d))
      .on('end', () => resolve(h.digest('hex')))
      .on('error', reject);
  });
}

describe('fio with verify through the emulated HBA; the backing file holds exactly what the guest wrote', () => {
  const dir = mkdtempSync(join(tmpdir(), 'npiv-data-'));
  const backing = join(dir, 'data.img');
  const procs: ProjectProcess[] = [];
  let run: GuestRunResult;
  let procLogs = '';

  beforeAll(async () => {
    const config = {
      fabric: {
        name: 'fabric-data',
        domain: 3,
        zoning: { default: 'deny', zones: [{ name: 'z', members: [VPORT.wwpn, TARGET.wwpn] }] },
      },
      arrays: [
        {
          name: 'data-array',
          ports: [TARGET],
          volumes: [{ name: 'data', size: `${VOLUME_MIB}MiB`, file: backing }],
          hostGroups: [{ name: 'h', initiators: [VPORT.wwpn], luns: { '0': 'data' } }],
        },
      ],
    };
    writeFileSync(join(dir, 'san.json'), JSON.stringify(config));
    const link = join(dir, 'san.sock');
    const san = startCli(['san', '--config', join(dir, 'san.json'), '--link', link]);
    procs.push(san);
    await waitForPath(link, san);
    const socket = join(dir, 'vport0.sock');
    const serve = startCli(['serve', '--socket', socket, '--san', link, '--wwpn', VPORT.wwpn, '--wwnn', VPORT.wwnn]);
    procs.push(serve);
    await waitForPath(socket, serve);
    run = await runGuest({ devices: [socket], script: GUEST_SCRIPT, timeoutMs: 900_000, memMiB: 768 });
    // Stop serve, then the SAN (which flushes and closes the volume), before reading the file.
    for (const p of procs.reverse()) expect(await p.stop()).toBe(0);
    procLogs = procs.map((p) => p.log()).join('\n');
  });

  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('fio writes and verifies every block with zero errors at 4k and 64k', () => {
    expect(run.timedOut, run.output.slice(-4000)).toBe(false);
    expect(run.exitStatus, run.output.slice(-4000)).toBe(0);
    for (const j of JOBS) {
      // terse v3 field 5 is the job's error count.
      expect(run.guestLines, run.output.slice(-4000)).toContain(`FIO ${j.name} rc=0 0`);
    }
  });

  it("the guest's READ/WRITE ran on a data-path grant the SAN gave (unless switched off)", () => {
    // The SAN logs each grant (debug); with NPIV_HBA_DATA_PATH=0 every command goes as frames.
    const granted = /"msg":"data-path grant"/.test(procLogs);
    expect(granted, procLogs.slice(-2000)).toBe(process.env.NPIV_HBA_DATA_PATH !== '0');
  });

  it('the guest view of the LUN and the backing file are byte-identical', async () => {
    const line = run.guestLines.find((l) => l.startsWith('SHA256 '));
    expect(line, run.output.slice(-2000)).toBeDefined();
    const [, guestSha, status] = line!.split(' ');
    // The kernel's view of a failed read, and why serve or the SAN dropped a link if they did.
    const linkEvents = procLogs
      .split('\n')
      .filter((l) => /link (detached|down)|not reading|no fabric login|fabric_link_down/.test(l));
    const evidence = [line, ...run.guestLines.filter((l) => l.startsWith('DMESG ')), ...linkEvents.slice(0, 40)].join(
      '\n',
    );
    expect(status, evidence).toBe('rc=0');
    expect(guestSha).toMatch(/^[0-9a-f]{64}$/);
    expect(await sha256File(backing)).toBe(guestSha);
  });
});
