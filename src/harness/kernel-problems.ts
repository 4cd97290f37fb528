/**
 * Which guest console lines mean the guest kernel hit a bug, a warning, a panic, a lockup or a
 * stall. One pattern for every reader of a guest's console: runGuest (kernelProblems) and
 * `lab --keep`. The console carries kernel messages of KERN_WARNING and worse, so qla2xxx's own
 * warning-level lines (aborts, loop down, mailbox timeouts) reach it too; they are the driver
 * reporting on a device, not the kernel misbehaving, and do not count. Callers drop their own
 * tagged lines (GUEST:) first: a script may print any text.
 */

/** Console lines that mean the guest kernel hit a bug, warning or panic. */
const KERNEL_PROBLEM =
  /Kernel panic|BUG: |Oops|WARNING: |general protection fault|Call Trace:|kernel BUG at|UBSAN:|KASAN:|hung_task|soft lockup|rcu_sched self-detected|RCU stall/;

/** Whether one console line (kernel timestamp and all) shows a guest kernel problem. */
export function isKernelProblem(line: string): boolean {
  return KERNEL_PROBLEM.test(line);
}
