/**
 * Issue 4, real guest: the unmodified qla2xxx of the Debian guest kernel probes the emulated
 * ISP2532 (in-process VportHba), loads firmware, brings the loop up, logs the vport in to the
 * simulated fabric and discovers the array's zoned target ports and exactly the masked LUNs.
 */
import { writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runGuest, type GuestRunResult } from '../../src/harness/guest.js';
import { VPORT_WWNN as WWNN, VPORT_WWPN as WWPN, startIspRig, type IspRig } from './support/rig.js';
import { formatWwnSysfs as hex } from '../../src/util/wwn.js';

const ARRAY_PORTS = [
  { wwpn: 0x500a098100000001n, wwnn: 0x500a098000000001n },
  { wwpn: 0x500a098100000002n, wwnn: 0x500a098000000001n },
];

describe('qla2xxx probes the emulated ISP2532, discovers the SAN, does I/O, survives LIP and reload', () => {
  let run: GuestRunResult;
  let rig: IspRig;

  beforeAll(async () => {
    rig = await startIspRig({
      name: 'probe',
      array: {
        name: 'array1',
        ports: ARRAY_PORTS,
        volumes: [
          { name: 'v0', size: '64M' },
          { name: 'v1', size: '32M' },
          { name: 'other', size: '16M' },
        ],
        hostGroups: [
          { name: 'vm1', initiators: [WWPN], luns: { '0': 'v0', '3': 'v1' } },
          { name: 'vm2', initiators: [0x5001438009999999n], luns: { '0': 'other' } },
        ],
      },
    });
    run = await runGuest({
      devices: [rig.socket],
      qlaParams: { ql2xextended_error_logging: '0x7fffffff' },
      dmesg: true,
      script: [
        'h=/sys/class/fc_host/host0',
        'wait_for $h/port_name 60 || exit 3',
        'i=0; while [ "$(cat $h/port_state)" != Online ] && [ $i -lt 60 ]; do sleep 1; i=$((i+1)); done',
        'sleep 5',
        'for a in port_name node_name port_id port_state port_type fabric_name speed; do echo "GUEST:FC $a $(cat $h/$a)"; done',
        'for r in /sys/class/fc_remote_ports/rport-*; do [ -e $r/port_name ] && echo "GUEST:RPORT $(cat $r/port_name) $(cat $r/port_id) $(cat $r/roles)"; done',
        'for d in /sys/block/sd*; do [ -e $d ] && echo "GUEST:DISK $(basename $d) $(cat $d/size) $(basename $(readlink -f $d/device))"; done',
        // fio with verify on the first disk.
        'd=$(for x in /sys/block/sd*; do basename $x; break; done)',
        'fio --name=v --filename=/dev/$d --rw=randwrite --bs=4k --size=4M --offset_increment=4M --numjobs=4 --direct=1 --ioengine=psync --verify=crc32c --do_verify=1 --group_reporting > /tmp/fio.out 2>&1',
        'echo "GUEST:FIO $?"',
        'grep -E "err=|verify|IOPS" /tmp/fio.out | sed "s/^/GUEST:FIOLOG /"',
        // issue_lip: the loop goes down and comes back; I/O works again.
        'echo 1 > $h/issue_lip; echo "GUEST:LIP $?"',
        'sleep 2; i=0; while [ "$(cat $h/port_state)" != Online ] && [ $i -lt 60 ]; do sleep 1; i=$((i+1)); done',
        'sleep 3',
        'echo "GUEST:AFTER_LIP $(cat $h/port_state) $(ls -d /sys/block/sd* | wc -l)"',
        'dd if=/dev/$d of=/dev/null bs=64k count=64 iflag=direct 2>/dev/null; echo "GUEST:DD_AFTER_LIP $?"',
        // rmmod and reload: a fresh probe of the same device.
        'rmmod qla2xxx; echo "GUEST:RMMOD $?"',
        'load_qla',
        'i=0; while ! ls /sys/class/fc_host/host*/port_state >/dev/null 2>&1 && [ $i -lt 60 ]; do sleep 1; i=$((i+1)); done',
        'h=$(ls -d /sys/class/fc_host/host* | head -n1)',
        'i=0; while [ "$(cat $h/port_state)" != Online ] && [ $i -lt 60 ]; do sleep 1; i=$((i+1)); done',
        'sleep 5',
        'echo "GUEST:AFTER_RELOAD $(cat $h/port_state) $(cat $h/port_name) $(ls -d /sys/block/sd* | wc -l)"',
        'd=$(for x in /sys/block/sd*; do basename $x; break; done)',
        'fio --name=r --filename=/dev/$d --rw=randread --bs=4k --size=4M --offset_increment=4M --numjobs=4 --direct=1 --ioengine=psync --verify=crc32c --verify_only --group_reporting > /tmp/fio2.out 2>&1',
        'echo "GUEST:FIO_AFTER_RELOAD $?"',
        'exit 0',
      ].join('\n'),
      timeoutMs: 600_000,
    });
    if (process.env.NPIV_GUEST_LOG) writeFileSync(process.env.NPIV_GUEST_LOG, run.output);
  });

  afterAll(async () => {
    await rig?.close();
  });

  it('boots and runs the script', () => {
    expect(run.timedOut, run.output.slice(-6000)).toBe(false);
    expect(run.exitStatus, run.output.slice(-6000)).toBe(0);
  });

  it('dmesg: firmware ready, loop ready, no mailbox timeout', () => {
    const dmesg = run.guestLines.filter((l) => l.startsWith('DMESG ')).join('\n');
    expect(dmesg).not.toMatch(/[Mm]ailbox.*timeout|MBX.*tov|ISP abort/);
    expect(dmesg).toMatch(/LOOP READY/);
  });

  it('fc_host shows the vport, fabric login and speed', () => {
    const fc = new Map(
      run.guestLines.filter((l) => l.startsWith('FC ')).map((l) => [l.split(' ')[1]!, l.split(' ').slice(2).join(' ')]),
    );
    expect(fc.get('port_name')).toBe(hex(WWPN));
    expect(fc.get('node_name')).toBe(hex(WWNN));
    expect(fc.get('port_state')).toBe('Online');
    expect(fc.get('port_type')).toMatch(/NPort \(fabric via point-to-point\)/);
    expect(fc.get('port_id')).toMatch(/^0x01/);
    expect(fc.get('fabric_name')).toMatch(/^0x[0-9a-f]{16}$/);
    expect(fc.get('fabric_name')).not.toBe('0x0000000000000000');
    expect(fc.get('speed')).toBe('8 Gbit');
  });

  it('fc_remote_ports lists both array ports as FCP targets', () => {
    const rports = run.guestLines.filter((l) => l.startsWith('RPORT '));
    for (const p of ARRAY_PORTS)
      expect(rports.some((r) => r.startsWith(`RPORT ${hex(p.wwpn)}`) && /FCP Target/.test(r))).toBe(true);
  });

  it('the guest sees exactly the masked LUNs (2 LUNs × 2 paths)', () => {
    const disks = run.guestLines.filter((l) => l.startsWith('DISK '));
    const luns = disks.map((d) => d.split(' ')[3]!.split(':')[3]).sort();
    expect(luns).toEqual(['0', '0', '3', '3']);
    const sizes = disks.map((d) => Number(d.split(' ')[2])).sort((a, b) => a - b);
    expect(sizes).toEqual([65536, 65536, 131072, 131072]);
  });

  it('fio with verify passes on a masked LUN', () => {
    expect(run.guestLines, run.guestLines.filter((l) => l.startsWith('FIOLOG')).join('\n')).toContain('FIO 0');
  });

  it('issue_lip: the port comes back Online with all disks and I/O works', () => {
    expect(run.guestLines).toContain('LIP 0');
    expect(run.guestLines).toContain('AFTER_LIP Online 4');
    expect(run.guestLines).toContain('DD_AFTER_LIP 0');
  });

  it('rmmod and reload: a fresh probe finds the port, the disks and the data written before', () => {
    expect(run.guestLines).toContain('RMMOD 0');
    expect(run.guestLines).toContain(`AFTER_RELOAD Online ${hex(WWPN)} 4`);
    expect(run.guestLines).toContain('FIO_AFTER_RELOAD 0');
  });
});
