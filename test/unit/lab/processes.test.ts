import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { interactiveQemuArguments } from '../../../src/lab/keep.js';
import { claimSocketPath, startCliProcess, waitForSocket } from '../../../src/lab/processes.js';
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
    await expect(waitForSocket(proc, join(dir, 'never.sock'), 5_000)).rejects.toThrow(/npiv-hba san exited \(4\) before creating .*never\.sock; log .*b\.log:\nstand-in started/);
  });

  it('a socket that never appears times out naming the process', async () => {
    const proc = startCliProcess({ name: 'npiv-hba serve (vport 1)', cli: STAND_IN, args: ['-'], logFile: join(dir, 'c.log'), cwd: dir });
    try {
      await expect(waitForSocket(proc, join(dir, 'late.sock'), 300)).rejects.toThrow(/npiv-hba serve \(vport 1\) did not create .*late\.sock within 0\.3 s/);
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
  it('switches the serial port to mon:stdio and nothing else', () => {
    const args = ['-m', '512', '-serial', 'stdio', '-kernel', 'k'];
    expect(interactiveQemuArguments(args)).toEqual(['-m', '512', '-serial', 'mon:stdio', '-kernel', 'k']);
    expect(args[3]).toBe('stdio');
    expect(() => interactiveQemuArguments(['-serial', 'pty'])).toThrow(/no longer has `-serial stdio`/);
  });
});

describe('socket paths in a reused work dir', () => {
  it('removes a stale socket, refuses a live one and a non-socket file', async () => {
    await expect(claimSocketPath(join(dir, 'none.sock'))).resolves.toBeUndefined();

    const live = join(dir, 'live.sock');
    const server = net.createServer();
    await new Promise<void>((r) => server.listen(live, r));
    try {
      await expect(claimSocketPath(live)).rejects.toThrow(/live\.sock is in use \(a process is listening\)/);
      expect(existsSync(live)).toBe(true);
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
    }

    // A socket file whose server is gone: a listener killed with SIGKILL cannot unlink it.
    const stale = join(dir, 'stale.sock');
    const holder = startCliProcess({ name: 'holder', cli: join(dir, 'holder.mjs'), args: [stale], logFile: join(dir, 'holder.log'), cwd: dir });
    await waitForSocket(holder, stale, 5_000);
    holder.child.kill('SIGKILL');
    await holder.exited;
    expect(existsSync(stale)).toBe(true);
    await claimSocketPath(stale);
    expect(existsSync(stale)).toBe(false);

    const plain = join(dir, 'plain.sock');
    writeFileSync(plain, 'x');
    await expect(claimSocketPath(plain)).rejects.toThrow(/plain\.sock is in use/);
  });
});
