/**
 * Real QEMU + real Linux guest: the harness itself (no vfio-user device attached).
 * Needs the environment from `bash scripts/guest/prepare.sh`; skipped without it.
 */
import { describe, expect, it } from 'vitest';
import { guestEnvironment, haveGuestEnvironment, runGuest } from '../../src/harness/guest.js';

const haveGuest = haveGuestEnvironment();

describe.skipIf(!haveGuest)('real guest harness', () => {
  it('runs a script in the guest, returns its output and exit status, with qla2xxx loaded', async () => {
    const environment = guestEnvironment();
    // The sum and the file round trip are computed in the guest; the test only knows the inputs.
    const script = [
      'echo "GUEST:KERNEL $(uname -r)"',
      'echo "GUEST:SUM $((6 * 7 + 1000))"',
      'echo "GUEST:QLA $(lsmod | awk \'$1 == "qla2xxx" { print "loaded" }\')"',
      'echo "GUEST:EXTRA $(tr a-z A-Z < /etc/npiv/greeting)"',
      'echo "GUEST:QLAPARAM $(cat /sys/module/qla2xxx/parameters/ql2xmaxlun)"',
      'exit 7',
      '',
    ].join('\n');
    const run = await runGuest({
      script,
      extraFiles: [{ path: '/etc/npiv/greeting', data: 'hello from the host\n' }],
      qlaParams: { ql2xmaxlun: 300 },
      timeoutMs: 240_000,
    });
    const context = `serial log:\n${run.output}\nqemu stderr:\n${run.qemuStderr}`;
    expect(run.timedOut, context).toBe(false);
    expect(run.exitStatus, context).toBe(7);
    expect(run.qemuExitCode, context).toBe(0);
    expect(run.guestLines).toContain(`KERNEL ${environment.kernelRelease}`);
    expect(run.guestLines).toContain('SUM 1042');
    expect(run.guestLines).toContain('QLA loaded');
    expect(run.guestLines).toContain('EXTRA HELLO FROM THE HOST');
    expect(run.guestLines).toContain('QLAPARAM 300');
    expect(run.guestLines).toContain('EXIT=7');
    // The q35 host bridge is always there and reported by /init.
    expect(run.guestLines.some((line) => /^PCI 0000:00:00\.0 0x8086:0x29c0 /.test(line))).toBe(true);
  });

  it('kills a guest whose script hangs and reports the timeout', async () => {
    const seen: string[] = [];
    const run = await runGuest({
      script: 'echo GUEST:HANGING\nwhile :; do sleep 1; done\n',
      loadQla: false,
      timeoutMs: 30_000,
      onLine: (line) => seen.push(line),
    });
    expect(run.timedOut).toBe(true);
    expect(run.exitStatus).toBeNull();
    expect(run.output).not.toContain('GUEST:EXIT=');
    // The script did start (streamed lines arrive before QEMU is killed).
    expect(run.guestLines).toContain('HANGING');
    expect(seen).toContain('GUEST:HANGING');
    expect(run.guestLines).toContain('INSMOD qla2xxx skipped');
  });
});
