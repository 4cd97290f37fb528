import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { qemuArguments, type GuestEnvironment } from '../../../src/harness/guest.js';
import { startCliProcess, waitForSocket } from '../../../src/lab/processes.js';
import { packageRoot } from '../../../src/util/package-root.js';

const dir = mkdtempSync(join(tmpdir(), 'lab-proc-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A stand-in CLI: creates argv[2] (if given) after a moment, logs, and exits on SIGTERM or with argv[3]. */
const STAND_IN = join(dir, 'stand-in.mjs');
writeFileSync(
  STAND_IN,
  `import { writeFileSync } from 'node:fs';
const [path, exitCode] = process.argv.slice(2);
console.error('stand-in started');
if (exitCode !== undefined && exitCode !== '-') process.exit(Number(exitCode));
setTimeout(() => { if (path !== '-') writeFileSync(path, ''); }, 100);
process.on('SIGTERM', () => { console.log('stopping'); process.exit(0); });
setInterval(() => {}, 1000);
`,
);

/** Listens on argv[2] until killed (SIGKILL leaves the socket file behind). */
writeFileSync(join(dir, 'holder.mjs'), "import net from 'node:net'; net.createServer().listen(process.argv[2]);\n");

describe('lab child processes', () => {
  it('finds the project root', () => {
    expect(existsSync(join(packageRoot(), 'bin', 'npiv-hba.js'))).toBe(true);
  });

  it('waits for the socket, logs to its file, stops on SIGTERM', async () => {
    const sock = join(dir, 'a.sock');
    const log = join(dir, 'a.log');
    const proc = startCliProcess({ name: 'stand-in', cli: STAND_IN, args: [sock], logFile: log, cwd: dir });
    await waitForSocket(proc, sock, 5_000);
    expect(await proc.stop()).toBe(0);
    expect(readFileSync(log, 'utf8')).toContain('stand-in started');
    expect(readFileSync(log, 'utf8')).toContain('stopping');
  });

  it('a process that dies first is named with its log', async () => {
    const log = join(dir, 'b.log');
    const proc = startCliProcess({ name: 'npiv-hba san', cli: STAND_IN, args: ['-', '4'], logFile: log, cwd: dir });
    await expect(waitForSocket(proc, join(dir, 'never.sock'), 5_000)).rejects.toThrow(
      /npiv-hba san exited \(4\) before creating .*never\.sock; log .*b\.log:\nstand-in started/,
    );
  });

  it('a socket that never appears times out naming the process', async () => {
    const proc = startCliProcess({
      name: 'npiv-hba serve (vport 1)',
      cli: STAND_IN,
      args: ['-'],
      logFile: join(dir, 'c.log'),
      cwd: dir,
    });
    try {
      await expect(waitForSocket(proc, join(dir, 'late.sock'), 300)).rejects.toThrow(
        /npiv-hba serve \(vport 1\) did not create .*late\.sock within 0\.3 s/,
      );
    } finally {
      await proc.stop();
    }
  });

  it('an aborted wait stops at once', async () => {
    const proc = startCliProcess({ name: 'x', cli: STAND_IN, args: ['-'], logFile: join(dir, 'd.log'), cwd: dir });
    const abort = new AbortController();
    abort.abort();
    try {
      await expect(waitForSocket(proc, join(dir, 'x.sock'), 5_000, abort.signal)).rejects.toThrow('interrupted');
    } finally {
      await proc.stop();
    }
  });
});

describe('--keep QEMU arguments', () => {
  const environment: GuestEnvironment = {
    cacheDir: '/c',
    rootfs: '/c/rootfs',
    kernelRelease: 'k',
    kernel: '/c/vmlinux',
    vmlinuz: '/c/vmlinuz',
    initramfs: '/c/initramfs.cpio',
    initramfsNoFirmware: '/c/initramfs-nofw.cpio',
    loader: '/c/ld.so',
    libraryDir: '/c/lib',
    qemuBinary: '/c/qemu-system-x86_64',
    qemuDataDirs: ['/c/share/qemu'],
    qemuModuleDir: '/c/lib/qemu',
  };

  it('switches the serial port to mon:stdio and nothing else', () => {
    const args = qemuArguments(environment, '/i', { devices: ['/s.sock'] }, 'tcg');
    const keep = qemuArguments(environment, '/i', { devices: ['/s.sock'] }, 'tcg', { consoleMonitor: true });
    const at = args.findIndex((arg, i) => arg === '-serial' && args[i + 1] === 'stdio');
    expect(at).toBeGreaterThan(0);
    expect(keep).toEqual([...args.slice(0, at + 1), 'mon:stdio', ...args.slice(at + 2)]);
  });

  it('puts the results on a second serial port, a file, after everything else', () => {
    const args = qemuArguments(environment, '/i', {}, 'tcg', { consoleMonitor: true });
    expect(
      qemuArguments(environment, '/i', {}, 'tcg', { consoleMonitor: true, resultsSerialFile: '/w/r.log' }),
    ).toEqual([...args, '-serial', 'file:/w/r.log']);
    expect(() => qemuArguments(environment, '/i', {}, 'tcg', { resultsSerialFile: '/w,x/r.log' })).toThrow(/comma/);
  });
});
