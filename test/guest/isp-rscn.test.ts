/**
 * Issue 4, real guest: a target port that joins the fabric while the guest runs is announced by
 * RSCN; the emulated ISP2532 turns it into AEN 0x8015 and qla2xxx rescans, logs in to the new port
 * and attaches its LUN — the same path as a target appearing behind a real switch.
 */
import { writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runGuest, type GuestRunResult } from '../../src/harness/guest.js';
import { VPORT_WWPN as WWPN, startIspRig, type IspRig } from './support/rig.js';
import { formatWwnSysfs as hex } from '../../src/util/wwn.js';

const PORTS = [
  { wwpn: 0x500a098100000001n, wwnn: 0x500a098000000001n },
  { wwpn: 0x500a098100000002n, wwnn: 0x500a098000000001n },
];

describe('a target port joining the fabric is discovered through RSCN', () => {
  let run: GuestRunResult;
  let rig: IspRig;

  beforeAll(async () => {
    rig = await startIspRig({
      name: 'rscn',
      array: {
        name: 'array1',
        ports: PORTS,
        volumes: [{ name: 'v0', size: '16M' }],
        hostGroups: [{ name: 'vm1', initiators: [WWPN], luns: { '0': 'v0' } }],
      },
      // Port 1 joins only when the guest asks (GUEST:ADD_PORT), to trigger the RSCN.
      attachArrayPorts: [0],
    });
    run = await runGuest({
      devices: [rig.socket],
      qlaParams: { ql2xextended_error_logging: '0x12000000' },
      dmesg: true,
      onLine: (line) => {
        if (line.includes('GUEST:ADD_PORT')) void rig.attachArrayPort(1);
      },
      script: [
        'h=/sys/class/fc_host/host0',
        'wait_for $h/port_name 60 || exit 3',
        'i=0; while [ ! -e /sys/block/sda ] && [ $i -lt 60 ]; do sleep 1; i=$((i+1)); done',
        'echo "GUEST:BEFORE $(ls /sys/class/fc_remote_ports | wc -l) $(ls -d /sys/block/sd* | wc -l)"',
        'echo "GUEST:ADD_PORT"',
        'i=0; while [ ! -e /sys/block/sdb ] && [ $i -lt 60 ]; do sleep 1; i=$((i+1)); done',
        'sleep 2',
        'for r in /sys/class/fc_remote_ports/rport-*; do [ -e $r/port_name ] && echo "GUEST:RPORT $(cat $r/port_name) $(cat $r/roles)"; done',
        'echo "GUEST:AFTER $(ls -d /sys/block/sd* | wc -l)"',
        'dd if=/dev/sdb of=/dev/null bs=4k count=4 iflag=direct 2>/dev/null; echo "GUEST:DD_NEW_PATH $?"',
        'exit 0',
      ].join('\n'),
      timeoutMs: 300_000,
    });
    if (process.env.NPIV_GUEST_LOG) writeFileSync(process.env.NPIV_GUEST_LOG, run.output);
  });

  afterAll(async () => {
    await rig?.close();
  });

  it('starts with one target port and its LUN', () => {
    expect(run.exitStatus, run.output.slice(-6000)).toBe(0);
    expect(run.guestLines).toContain('BEFORE 1 1');
  });

  it('after the RSCN the new port is an FCP target and its path to the LUN works', () => {
    const rports = run.guestLines.filter((l) => l.startsWith('RPORT '));
    for (const p of PORTS)
      expect(rports.some((r) => r.startsWith(`RPORT ${hex(p.wwpn)}`) && /FCP Target/.test(r))).toBe(true);
    expect(run.guestLines).toContain('AFTER 2');
    expect(run.guestLines).toContain('DD_NEW_PATH 0');
    expect(run.guestLines.filter((l) => l.startsWith('DMESG ')).join('\n')).toMatch(/RSCN/);
  });
});
