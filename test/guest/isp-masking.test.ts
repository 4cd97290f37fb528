/**
 * Issue 4, real guest: LUN masking is per vport. One guest with two emulated ISP2532 HBAs (two
 * `npiv-hba serve` processes, two WWPNs) cabled to one `npiv-hba san`; the array masks a different
 * set of LUNs to each vport. Each fc_host must see exactly its own LUNs as sd devices, with the
 * right sizes and with VPD page 0x83 NAA identifiers equal to the array's volume identifiers (a
 * volume masked to both vports shows the same identifier through both).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runGuest, type GuestRunResult } from '../../src/harness/guest.js';
import { controlRequest } from '../../src/san/control.js';
import type { SanStatus } from '../../src/san/san.js';
import { startCli, waitForPath, type ProjectProcess } from './support/processes.js';

const MIB = 2 ** 20;
const VPORT_A = { wwpn: 'c0:50:76:ff:e5:00:10:01', wwnn: 'c0:50:76:ff:e5:01:10:01' };
const VPORT_B = { wwpn: 'c0:50:76:ff:e5:00:10:02', wwnn: 'c0:50:76:ff:e5:01:10:02' };
const TARGET = { wwpn: '50:0a:09:81:00:00:10:01', wwnn: '50:0a:09:80:00:00:10:01' };

const SAN_CONFIG = {
  fabric: {
    name: 'fabric-mask',
    domain: 2,
    zoning: { default: 'deny', zones: [{ name: 'z', members: [VPORT_A.wwpn, VPORT_B.wwpn, TARGET.wwpn] }] },
  },
  arrays: [
    {
      name: 'mask-array',
      ports: [TARGET],
      volumes: [
        { name: 'only-a', size: '24MiB' },
        { name: 'only-b', size: '40MiB' },
        { name: 'shared', size: '56MiB' },
      ],
      hostGroups: [
        { name: 'host-a', initiators: [VPORT_A.wwpn], luns: { '0': 'only-a', '1': 'shared' } },
        { name: 'host-b', initiators: [VPORT_B.wwpn], luns: { '0': 'only-b', '5': 'shared' } },
      ],
    },
  ],
};

/** Per sd disk: fc_host port name, LUN, size in bytes and VPD 0x83 identifier (sysfs wwid). */
const GUEST_SCRIPT = `
for h in host0 host1; do wait_for /sys/class/fc_host/$h/port_name 60 || exit 3; done
# Both hosts online and all 4 disks (2 per vport) present, or give up after 120 s.
i=0; while [ $(ls -d /sys/block/sd* 2>/dev/null | wc -l) -lt 4 ] && [ $i -lt 600 ]; do sleep 0.2; i=$((i+1)); done
sleep 2
for d in /sys/block/sd*; do
  dev=$(readlink -f $d/device); hctl=$(basename $dev)
  host=host\${hctl%%:*}
  echo "GUEST:DISK $(cat /sys/class/fc_host/$host/port_name) \${hctl##*:} $(( $(cat $d/size) * 512 )) $(cat $d/device/wwid)"
done
for h in host0 host1; do echo "GUEST:HOST $(cat /sys/class/fc_host/$h/port_name) $(cat /sys/class/fc_host/$h/port_state)"; done
exit 0
`;

function sysfsName(wwn: string): string {
  return '0x' + wwn.replaceAll(':', '');
}

describe('per-vport LUN masking with two HBAs in one guest', () => {
  const dir = mkdtempSync(join(tmpdir(), 'npiv-mask-'));
  const link = join(dir, 'san.sock');
  const control = join(dir, 'san-ctl.sock');
  const procs: ProjectProcess[] = [];
  let run: GuestRunResult;
  let status: SanStatus;

  beforeAll(async () => {
    writeFileSync(join(dir, 'san.json'), JSON.stringify(SAN_CONFIG));
    const san = startCli(['san', '--config', join(dir, 'san.json'), '--link', link, '--control', control]);
    procs.push(san);
    await waitForPath(link, san);
    await waitForPath(control, san);
    const sockets: string[] = [];
    for (const [i, v] of [VPORT_A, VPORT_B].entries()) {
      const socket = join(dir, `vport${i}.sock`);
      const serve = startCli(['serve', '--socket', socket, '--san', link, '--wwpn', v.wwpn, '--wwnn', v.wwnn]);
      procs.push(serve);
      await waitForPath(socket, serve);
      sockets.push(socket);
    }
    const reply = await controlRequest(control, { cmd: 'status' });
    status = reply.result as SanStatus;
    run = await runGuest({ devices: sockets, script: GUEST_SCRIPT, timeoutMs: 600_000 });
  });

  afterAll(async () => {
    for (const p of procs.reverse()) await p.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('boots, both vports come Online', () => {
    expect(run.timedOut, run.output.slice(-4000)).toBe(false);
    expect(run.exitStatus, run.output.slice(-4000)).toBe(0);
    const hosts = run.guestLines.filter((l) => l.startsWith('HOST ')).map((l) => l.split(' ').slice(1).join(' '));
    expect(hosts.sort()).toEqual([`${sysfsName(VPORT_A.wwpn)} Online`, `${sysfsName(VPORT_B.wwpn)} Online`].sort());
  });

  it('each vport sees exactly its masked LUNs, with the right sizes and the array volume identifiers', () => {
    const naa = new Map(status.arrays[0]!.volumes.map((v) => [v.name, `naa.${v.naa}`]));
    expect(new Set(naa.values()).size).toBe(3);
    const disks = run.guestLines
      .filter((l) => l.startsWith('DISK '))
      .map((l) => {
        const [, port, lun, bytes, wwid] = l.split(' ');
        return { port, lun: Number(lun), bytes: Number(bytes), wwid };
      })
      .sort((a, b) => `${a.port}/${a.lun}`.localeCompare(`${b.port}/${b.lun}`));
    const expected = [
      { port: sysfsName(VPORT_A.wwpn), lun: 0, bytes: 24 * MIB, wwid: naa.get('only-a') },
      { port: sysfsName(VPORT_A.wwpn), lun: 1, bytes: 56 * MIB, wwid: naa.get('shared') },
      { port: sysfsName(VPORT_B.wwpn), lun: 0, bytes: 40 * MIB, wwid: naa.get('only-b') },
      { port: sysfsName(VPORT_B.wwpn), lun: 5, bytes: 56 * MIB, wwid: naa.get('shared') },
    ].sort((a, b) => `${a.port}/${a.lun}`.localeCompare(`${b.port}/${b.lun}`));
    expect(disks).toEqual(expected);
  });
});
