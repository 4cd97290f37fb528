/**
 * The one kernel-problem pattern (src/harness/kernel-problems.ts) that runGuest and `lab --keep`
 * apply to the guest console, against kernel log lines as Linux prints them.
 */
import { describe, expect, it } from 'vitest';
import { isKernelProblem } from '../../../src/harness/kernel-problems.js';

/** Lines that count, by what they report. */
const COUNTED: Record<string, string[]> = {
  'an oops and its parts': [
    '[   41.203117] BUG: kernel NULL pointer dereference, address: 0000000000000008',
    '[   41.204010] Oops: 0000 [#1] PREEMPT SMP NOPTI',
    '[   41.204890] Oops: general protection fault, probably for non-canonical address 0xdead000000000100: 0000 [#1] PREEMPT SMP NOPTI',
    '[   41.211532] Call Trace:',
    '[   41.219774] Kernel panic - not syncing: Fatal exception in interrupt',
    '[   41.220001] kernel BUG at drivers/scsi/qla2xxx/qla_init.c:1234!',
  ],
  'a WARNING splat, sanitizer reports, lockups and stalls': [
    '[   12.877401] WARNING: CPU: 1 PID: 57 at drivers/scsi/qla2xxx/qla_isr.c:3567 qla24xx_process_response_queue+0x3f1/0x4a0 [qla2xxx]',
    '[   13.001922] UBSAN: array-index-out-of-bounds in drivers/scsi/qla2xxx/qla_os.c:1402:19',
    '[   13.101922] BUG: KASAN: slab-out-of-bounds in qla2x00_get_sp+0x2a/0x90 [qla2xxx]',
    '[   52.004135] watchdog: BUG: soft lockup - CPU#0 stuck for 26s! [kworker/0:1:23]',
    '[   84.113300] rcu: INFO: rcu_sched self-detected stall on CPU',
  ],
};

describe('isKernelProblem', () => {
  for (const [what, lines] of Object.entries(COUNTED))
    it(`counts ${what}`, () => {
      for (const line of lines) expect(isKernelProblem(line), line).toBe(true);
    });

  it('counts a hung task by the hung_task line of its report', () => {
    const report = [
      '[  245.760112] INFO: task kworker/u4:2:57 blocked for more than 122 seconds.',
      '[  245.760871]       Not tainted 6.12.6-amd64 #1 Debian 6.12.6-1',
      '[  245.761402] "echo 0 > /proc/sys/kernel/hung_task_timeout_secs" disables this message.',
      '[  245.762214] task:kworker/u4:2    state:D stack:0     pid:57    tgid:57    ppid:2      flags:0x00004000',
      '[  245.763015] Call Trace:',
    ];
    expect(report.filter(isKernelProblem)).toEqual([report[2], report[4]]);
  });

  it("does not count qla2xxx's own warning-level lines or ordinary SCSI errors", () => {
    for (const line of [
      '[    6.538021] qla2xxx [0000:01:00.0]-00fb:1: QLogic QLE2562 - PCI-Express Dual Channel 8Gb Fibre Channel HBA.',
      '[   36.661339] qla2xxx [0000:01:00.0]-883a:0: fw_state=3 (0, 0, 0, 0 0) curr time=fffefee0.',
      '[   61.270310] qla2xxx [0000:01:00.0]-801c:1: Abort command issued nexus=1:0:0 --  2002.',
      '[   70.100432] qla2xxx [0000:01:00.0]-5009:1: Mailbox cmd timeout occurred, cmd=0x69, mb[0]=0x69. Scheduling ISP abort',
      '[   70.101200] qla2xxx [0000:01:00.0]-500b:1: LOOP DOWN detected (2 7 0 0).',
      '[   71.000012] sd 1:0:0:0: [sdb] tag#0 FAILED Result: hostbyte=DID_ERROR driverbyte=DRIVER_OK cmd_age=30s',
      '[   71.000511] I/O error, dev sdb, sector 2048 op 0x1:(WRITE) flags 0x8800 phys_seg 1 prio class 0',
    ])
      expect(isKernelProblem(line), line).toBe(false);
  });
});
