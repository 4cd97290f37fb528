/**
 * Real QEMU + real Linux guest: the harness itself (no vfio-user device attached).
 * Needs the environment from `bash scripts/guest/prepare.sh`; skipped without it.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { guestEnvironment, haveGuestEnvironment, runGuest, shellQuote } from '../../src/harness/guest.js';
import { packageRoot } from '../../src/util/package-root.js';

const haveGuest = haveGuestEnvironment();

describe.skipIf(!haveGuest)('real guest harness', () => {
  it('runs a script in the guest, returns its output and exit status, with qla2xxx loaded', async () => {
    const environment = guestEnvironment();
    // The sum and the file round trip are computed in the guest; the test only knows the inputs.
    const awkward = `it's "$HOME" \\ $(reboot) ;`;
    const script = [
      'echo "GUEST:KERNEL $(uname -r)"',
      'echo "GUEST:SUM $((6 * 7 + 1000))"',
      'echo "GUEST:QLA $(lsmod | awk \'$1 == "qla2xxx" { print "loaded" }\')"',
      'echo "GUEST:EXTRA $(tr a-z A-Z < /etc/npiv/greeting)"',
      'echo "GUEST:QLAPARAM $(cat /sys/module/qla2xxx/parameters/ql2xmaxlun)"',
      `echo "GUEST:QUOTED $(printf '%s' ${shellQuote(awkward)} | wc -c)" ${shellQuote(awkward)}`,
      'exit 7',
      '',
    ].join('\n');
    const run = await runGuest({
      script,
      extraFiles: [{ path: '/etc/npiv/greeting', data: 'hello from the host\n' }],
      qlaParams: { ql2xmaxlun: 300 },
      dmesg: true,
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
    expect(run.guestLines).toContain(`QUOTED ${awkward.length} ${awkward}`);
    expect(run.guestLines).toContain('EXIT=7');
    expect(
      run.guestLines.some((line) => /^DMESG .*QLogic Fibre Channel HBA Driver/.test(line)),
      context,
    ).toBe(true);
    expect(run.kernelProblems, context).toEqual([]);
    // The q35 host bridge is always there and reported by /init.
    expect(run.guestLines.some((line) => /^PCI 0000:00:00\.0 0x8086:0x29c0 /.test(line))).toBe(true);
  });

  it('kills a guest that does not finish within the timeout and reports timedOut', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'npiv-hba-harness-'));
    const logFile = join(dir, 'run.log');
    const run = await runGuest({
      script: 'echo GUEST:HANGING\nwhile :; do sleep 1; done\n',
      loadQla: false,
      // Short: whether the guest is still booting or already in the loop, it must be killed.
      timeoutMs: 15_000,
      logFile,
    });
    const log = await readFile(logFile, 'utf8');
    await rm(dir, { recursive: true, force: true });
    expect(run.timedOut).toBe(true);
    expect(run.aborted).toBe(false);
    expect(run.exitStatus).toBeNull();
    expect(run.output).not.toContain('GUEST:EXIT=');
    expect(log).toContain('"timedOut":true');
    expect(log).toContain('# ---- serial log ----');
  });

  it('keeps every script line whole while the kernel floods the console', async () => {
    // A printk used to land inside a line the script was writing ("GUEST:ISP_RESET2[ 45.7] …"
    // then " 0" three lines later), which made guest tests fail now and then. The script now
    // has its own serial port; this floods the console with kernel messages while the script
    // prints numbered lines and checks that every one arrives intact and in order.
    const lines = 400;
    const payload = 'abcdefghijklmnopqrstuvwxyz0123456789';
    const script = [
      '(i=0; while [ ! -e /tmp/stop ]; do echo "<4>npiv-hba flood $i with a long enough body to take a while on the wire" > /dev/kmsg; i=$((i+1)); done) &',
      'sleep 1',
      `i=1; while [ $i -le ${lines} ]; do echo "GUEST:LINE $i ${payload}"; i=$((i+1)); done`,
      'touch /tmp/stop; wait',
      'echo "GUEST:FLOOD $(dmesg | grep -c "npiv-hba flood")"',
      'exit 0',
      '',
    ].join('\n');
    const run = await runGuest({ script, loadQla: false, kernelArgs: ['printk.devkmsg=on'], timeoutMs: 240_000 });
    expect(run.exitStatus, run.output.slice(-4000)).toBe(0);
    const numbered = run.guestLines.filter((line) => line.startsWith('LINE '));
    expect(numbered).toEqual(Array.from({ length: lines }, (_, i) => `LINE ${i + 1} ${payload}`));
    // The flood really ran alongside and reached the console.
    const flood = Number(run.guestLines.find((line) => line.startsWith('FLOOD '))?.slice('FLOOD '.length));
    expect(flood).toBeGreaterThan(50);
    expect(run.output).toMatch(/\] npiv-hba flood \d+/);
  });

  it('streams lines while the guest runs and kills it when the caller aborts', async () => {
    const seen: string[] = [];
    const controller = new AbortController();
    const run = await runGuest({
      script: 'echo GUEST:HANGING\nwhile :; do sleep 1; done\n',
      loadQla: false,
      timeoutMs: 240_000,
      signal: controller.signal,
      onLine: (line) => {
        seen.push(line);
        if (line === 'GUEST:HANGING') controller.abort();
      },
    });
    expect(run.aborted).toBe(true);
    expect(run.timedOut).toBe(false);
    expect(run.exitStatus).toBeNull();
    expect(seen).toContain('GUEST:HANGING');
    expect(run.guestLines).toContain('HANGING');
    expect(run.guestLines).toContain('INSMOD qla2xxx skipped');
  });

  it('reports a guest kernel panic as a kernel problem without an exit status', async () => {
    const run = await runGuest({
      script: 'echo GUEST:CRASHING\necho c > /proc/sysrq-trigger\nsleep 60\n',
      loadQla: false,
      timeoutMs: 120_000,
    });
    const context = `serial log:\n${run.output}`;
    expect(run.timedOut, context).toBe(false);
    expect(run.guestLines).toContain('CRASHING');
    expect(run.exitStatus, context).toBeNull();
    expect(
      run.kernelProblems.some((line) => line.includes('Kernel panic')),
      context,
    ).toBe(true);
  });

  it('boots the no-firmware initramfs with working sg3-utils, fio, lspci and multipath tools', async () => {
    const script = [
      '[ -e /lib/firmware/ql2500_fw.bin ] || echo GUEST:NO-FIRMWARE',
      'sg_inq -V >/dev/null 2>&1 && echo GUEST:SG3-UTILS-OK',
      'lsscsi --version >/dev/null 2>&1 && echo GUEST:LSSCSI-OK',
      'lspci -n -s 00:00.0 | grep -q "0600: 8086:29c0" && echo GUEST:LSPCI-OK',
      'fio --name=smoke --filename=/tmp/fio.dat --size=256k --bs=4k --rw=write --ioengine=psync >/tmp/fio.log 2>&1',
      'echo "GUEST:FIO-STATUS $? $(stat -c %s /tmp/fio.dat)"',
      'multipath -t >/dev/null 2>&1 && echo GUEST:MULTIPATH-CONFIG-OK',
      'multipath -ll >/tmp/mp.log 2>&1; echo "GUEST:MULTIPATH-LL-STATUS $?"',
      '(sleep 1; touch /tmp/later) &',
      'wait_for /tmp/later 10; echo "GUEST:WAIT-FOR-LATER $?"',
      'wait_for /tmp/never 1; echo "GUEST:WAIT-FOR-NEVER $?"',
      'fc_host; echo "GUEST:FC-HOST-STATUS $?"',
      'wait_fc_online 0 1; echo "GUEST:FC-ONLINE-STATUS $?"',
      'exit 0',
      '',
    ].join('\n');
    const run = await runGuest({ script, firmware: false, timeoutMs: 240_000 });
    const context = `serial log:\n${run.output}\nqemu stderr:\n${run.qemuStderr}`;
    expect(run.exitStatus, context).toBe(0);
    for (const expected of [
      'NO-FIRMWARE',
      'SG3-UTILS-OK',
      'LSSCSI-OK',
      'LSPCI-OK',
      'FIO-STATUS 0 262144',
      'MULTIPATH-CONFIG-OK',
      'MULTIPATH-LL-STATUS 0',
      'WAIT-FOR-LATER 0',
      'WAIT-FOR-NEVER 1',
      'FC-HOST-STATUS 1', // no HBA attached in this run
      'FC-ONLINE-STATUS 1',
    ]) {
      expect(run.guestLines, context).toContain(expected);
    }
  });

  it('runs the project itself in the guest: Node.js from the 9p-shared rootfs, this checkout read-only', async () => {
    // The two-level host-backend tests run npiv-hba inside a guest this way (enter_rootfs).
    const root = packageRoot();
    const expected = createHash('sha256')
      .update(execFileSync(process.execPath, [join(root, 'bin/npiv-hba.js'), 'san', '--example']))
      .digest('hex');
    const script = [
      'enter_rootfs || { echo GUEST:ENTER-ROOTFS-FAILED; exit 3; }',
      'echo "GUEST:NODE $(in_rootfs node -v)"',
      "in_rootfs sh -c 'cd /run/share/project && node bin/npiv-hba.js san --example | sha256sum' | sed 's/^/GUEST:EXAMPLE /'",
      // The native shim (built on this host) loads in the guest's Node and maps a sealed memfd.
      "cat >/rootfs/tmp/memfd.mjs <<'EOF'",
      "import { native } from '/run/share/project/dist/src/native/index.js';",
      "const fd = native.memfdCreate('guest', 65536);",
      'const m = new Uint8Array(native.mmap(fd, 65536, 0n, 3));',
      'm[4095] = 0x5a;',
      "console.log('GUEST:MEMFD ' + m[4095]);",
      'EOF',
      'in_rootfs node /tmp/memfd.mjs',
      'touch /rootfs/run/share/project/.guest-write 2>/dev/null && echo GUEST:PROJECT-WRITABLE || echo GUEST:PROJECT-READONLY',
      'touch /rootfs/etc/.guest-write 2>/dev/null && echo GUEST:ROOTFS-WRITABLE || echo GUEST:ROOTFS-READONLY',
      'exit 0',
      '',
    ].join('\n');
    const run = await runGuest({
      script,
      shareRootfs: true,
      shares: [{ tag: 'project', path: root }],
      memMiB: 1024,
      timeoutMs: 300_000,
    });
    const context = `serial log:\n${run.output}\nqemu stderr:\n${run.qemuStderr}`;
    expect(run.exitStatus, context).toBe(0);
    expect(
      run.guestLines.find((l) => l.startsWith('NODE ')),
      context,
    ).toMatch(/^NODE v\d+\./);
    expect(run.guestLines, context).toContain(`EXAMPLE ${expected}  -`);
    expect(run.guestLines, context).toContain('MEMFD 90');
    expect(run.guestLines, context).toContain('PROJECT-READONLY');
    expect(run.guestLines, context).toContain('ROOTFS-READONLY');
    expect(existsSync(join(root, '.guest-write'))).toBe(false);
  });

  it('attaches a vfio-user device: QEMU connects and sends VERSION; a silent server fails the run', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'npiv-hba-harness-'));
    const socketPath = join(dir, 'vport0.sock');
    const received: Buffer[] = [];
    const connections: Socket[] = [];
    const server = createServer((connection) => {
      connections.push(connection);
      connection.on('data', (chunk: Buffer) => received.push(chunk));
    });
    await new Promise<void>((resolve) => server.listen(socketPath, resolve));
    try {
      const run = await runGuest({ devices: [socketPath], timeoutMs: 120_000 });
      expect(run.timedOut).toBe(false);
      expect(run.exitStatus).toBeNull();
      expect(run.qemuExitCode).not.toBe(0);
      expect(run.qemuStderr).toContain(socketPath);
      expect(connections.length).toBe(1);
      const message = Buffer.concat(received);
      // vfio-user header: id u16, command u16 (1 = VERSION), size u32, flags u32 (type 0 = command).
      expect(message.length).toBeGreaterThanOrEqual(16);
      expect(message.readUInt16LE(2)).toBe(1);
      expect(message.readUInt32LE(4)).toBe(message.length);
      expect(message.readUInt32LE(8) & 0xf).toBe(0);
    } finally {
      for (const connection of connections) connection.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await rm(dir, { recursive: true, force: true });
    }
  });
});
