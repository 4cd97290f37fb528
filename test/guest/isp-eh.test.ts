/**
 * Issue 4, real guest: SCSI error handling through the emulated ISP2532 — LUN reset and target
 * reset (Task Management IOCBs, via sg_reset), and a command the target never answers, which the
 * SCSI midlayer times out and qla2xxx aborts (Abort IO IOCB → ABTS on the link → CS_ABORTED).
 */
import { writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runGuest, type GuestRunResult } from '../../src/harness/guest.js';
import { FakeScsiTarget } from '../unit/san/fake-scsi.js';
import { startIspRig, type IspRig } from './support/rig.js';

/** How long the target stays silent once the guest announces the hang phase. */
const HANG_MS = 7000;

describe('qla2xxx error handling on the emulated ISP2532: TMFs and aborts', () => {
  let run: GuestRunResult;
  let rig: IspRig;
  const disk = new FakeScsiTarget(0x500a098100000001n, 0x500a098000000001n);

  beforeAll(async () => {
    rig = await startIspRig({ name: 'eh', targets: [{ port: disk, options: { exchangeTimeoutMs: 2000 } }] });
    run = await runGuest({
      devices: [rig.socket],
      qlaParams: { ql2xextended_error_logging: '0x7fffffff' },
      dmesg: true,
      onLine: (line) => {
        if (line.includes('GUEST:HANG_NOW')) {
          disk.hang = true;
          setTimeout(() => (disk.hang = false), HANG_MS);
        }
      },
      script: [
        'h=/sys/class/fc_host/host0',
        'wait_for $h/port_name 60 || exit 3',
        'i=0; while [ ! -e /sys/block/sda ] && [ $i -lt 60 ]; do sleep 1; i=$((i+1)); done',
        'echo 4 > /sys/block/sda/device/timeout',
        'sg_reset -d /dev/sda; echo "GUEST:LUN_RESET $?"',
        'sg_reset -t /dev/sda; echo "GUEST:TARGET_RESET $?"',
        'sleep 2',
        'dd if=/dev/sda of=/dev/null bs=4k count=8 iflag=direct 2>/dev/null; echo "GUEST:DD_AFTER_RESET $?"',
        'echo "GUEST:HANG_NOW"; sleep 1',
        'dd if=/dev/sda of=/dev/null bs=4k count=1 skip=100 iflag=direct 2>/dev/null; echo "GUEST:DD_HUNG $?"',
        'sleep 2',
        'dd if=/dev/sda of=/dev/null bs=4k count=8 iflag=direct 2>/dev/null; echo "GUEST:DD_AFTER_ABORT $?"',
        'echo "GUEST:STATE $(cat $h/port_state)"',
        // The driver's ISP-abort path, twice in a row: the sysfs "reset" attribute parses decimal
        // and 0x2025c (131676) means "Issuing ISP reset" (qla2x00_sysfs_write_reset).
        'for n in 1 2; do',
        '  echo 131676 > /sys/class/scsi_host/host0/device/reset; echo "GUEST:ISP_RESET$n $?"',
        '  sleep 2; i=0; while [ "$(cat $h/port_state)" != Online ] && [ $i -lt 60 ]; do sleep 1; i=$((i+1)); done',
        '  sleep 3',
        '  dd if=/dev/sda of=/dev/null bs=4k count=8 iflag=direct 2>/dev/null; echo "GUEST:DD_AFTER_ISP_RESET$n $? $(cat $h/port_state)"',
        'done',
        'exit 0',
      ].join('\n'),
      timeoutMs: 400_000,
    });
    if (process.env.NPIV_GUEST_LOG) writeFileSync(process.env.NPIV_GUEST_LOG, run.output);
  });

  afterAll(async () => {
    await rig?.close();
  });

  it('boots and runs the script', () => {
    expect(run.exitStatus, run.output.slice(-6000)).toBe(0);
  });

  it('LUN reset and target reset reach the target as task management functions and succeed', () => {
    expect(run.guestLines).toContain('LUN_RESET 0');
    expect(run.guestLines).toContain('TARGET_RESET 0');
    const fns = disk.tmfs.map((t) => t.fn);
    expect(fns).toContain('lun-reset');
    expect(fns).toContain('target-reset');
    expect(run.guestLines).toContain('DD_AFTER_RESET 0');
  });

  it('a silent target: the timed-out command is aborted with ABTS and I/O recovers without an ISP abort', () => {
    const dmesg = run.guestLines.filter((l) => l.startsWith('DMESG ')).join('\n');
    expect(dmesg).toMatch(/Abort command issued/);
    expect(disk.tmfs.some((t) => t.fn === 'abort-task')).toBe(true);
    const beforeIspReset = dmesg.split(/Issuing ISP reset/)[0]!;
    expect(beforeIspReset).not.toMatch(/Performing ISP error recovery/);
    expect(dmesg).not.toMatch(/[Mm]ailbox.*timeout/);
    expect(run.guestLines).toContain('DD_AFTER_ABORT 0');
    expect(run.guestLines).toContain('STATE Online');
  });

  it('the ISP-abort path re-initializes the firmware cleanly, as many times as asked', () => {
    const dmesg = run.guestLines.filter((l) => l.startsWith('DMESG ')).join('\n');
    expect(run.guestLines).toContain('ISP_RESET1 0');
    expect(run.guestLines).toContain('ISP_RESET2 0');
    expect(run.guestLines).toContain('DD_AFTER_ISP_RESET1 0 Online');
    expect(run.guestLines).toContain('DD_AFTER_ISP_RESET2 0 Online');
    expect(dmesg.match(/Performing ISP error recovery/g)?.length ?? 0).toBeGreaterThanOrEqual(2);
    expect(dmesg).not.toMatch(/ISP abort (failed|retry)|Adapter flags|[Mm]ailbox.*timeout/);
  });
});
