/**
 * Issue 2, real guest: QEMU 11 (vfio-user-pci) attaches `npiv-hba serve`; the unmodified qla2xxx of
 * the Debian forky kernel sees a QLogic ISP2532 (1077:2532, subsystem 1077:015d, class 0c0400,
 * revision 02) and binds to it, and QEMU reports no vfio-user error or warning.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runGuest, type GuestRunResult } from '../../src/harness/guest.js';
import { logRecords, startCli, waitForPath, type ProjectProcess } from './support/processes.js';

const WWPN = '50:01:43:80:01:23:45:67';
const WWNN = '50:01:43:80:01:23:45:66';

describe('real QEMU attaches npiv-hba serve and qla2xxx binds', () => {
  const dir = mkdtempSync(join(tmpdir(), 'npiv-attach-'));
  const socket = join(dir, 'vport0.sock');
  let serve: ProjectProcess;
  let run: GuestRunResult;
  let serveExit: number | null;

  beforeAll(async () => {
    serve = startCli(['serve', '--socket', socket, '--wwpn', WWPN, '--wwnn', WWNN]);
    await waitForPath(socket, serve);
    run = await runGuest({
      devices: [socket],
      qlaParams: { ql2xextended_error_logging: '0x40000000' },
      script: [
        'd=/sys/bus/pci/devices/0000:01:00.0',
        'echo "GUEST:ID $(cat $d/vendor) $(cat $d/device) $(cat $d/subsystem_vendor) $(cat $d/subsystem_device) $(cat $d/class) $(cat $d/revision)"',
        'echo "GUEST:DRIVER $(basename $(readlink $d/driver))"',
        'dmesg | grep -o "Found an ISP[0-9]*" | sed "s/^/GUEST:/"',
        'wait_for /sys/class/fc_host/host0/port_name 60 || exit 3',
        'echo "GUEST:PORT_NAME $(cat /sys/class/fc_host/host0/port_name)"',
        'echo "GUEST:NODE_NAME $(cat /sys/class/fc_host/host0/node_name)"',
        'exit 0',
      ].join('\n'),
      timeoutMs: 300_000,
    });
    serveExit = await serve.stop();
  });

  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('the guest sees the ISP2532 identity and qla2xxx binds', () => {
    expect(run.timedOut, run.output.slice(-4000)).toBe(false);
    expect(run.exitStatus, run.output.slice(-4000)).toBe(0);
    expect(run.guestLines).toContain('ID 0x1077 0x2532 0x1077 0x015d 0x0c0400 0x02');
    expect(run.guestLines).toContain('DRIVER qla2xxx');
    expect(run.guestLines).toContain('Found an ISP2532');
  });

  it('the driver reads the vport names from the emulated NVRAM', () => {
    expect(run.guestLines).toContain(`PORT_NAME 0x${WWPN.replaceAll(':', '')}`);
    expect(run.guestLines).toContain(`NODE_NAME 0x${WWNN.replaceAll(':', '')}`);
  });

  it('QEMU reports no vfio-user error or warning and exits cleanly', () => {
    expect(run.qemuStderr).not.toMatch(/vfio|error|warning/i);
    expect(run.qemuExitCode).toBe(0);
  });

  it('the server logged no error and stopped cleanly on SIGTERM', () => {
    const errors = logRecords(serve.log()).filter((r) => typeof r.level === 'number' && r.level >= 50);
    expect(errors).toEqual([]);
    expect(serveExit).toBe(0);
  });
});
