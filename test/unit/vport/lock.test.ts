/**
 * Vport lock files are flock(2)ed (issue 11 point 7): whatever a crashed or killed holder left in
 * the file, the next command gets the lock at once; a live holder in another process is waited
 * for (bounded) and named; holders in one process take turns.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { withLockFile } from '../../../src/vport/lock.js';

let dir: string;
let lock: string;
const holders: ChildProcess[] = [];
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'vport-lock-'));
  lock = join(dir, 'x.lock');
});
afterEach(() => {
  for (const h of holders.splice(0)) {
    try {
      process.kill(-h.pid!, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  rmSync(dir, { recursive: true, force: true });
});

/** flock(1) in its own process group holding the lock until killed. */
async function holder(): Promise<ChildProcess> {
  const h = spawn('flock', ['-x', lock, '-c', 'echo held; exec sleep 60'], {
    stdio: ['ignore', 'pipe', 'ignore'],
    detached: true,
  });
  holders.push(h);
  await new Promise<void>((resolve, reject) => {
    h.stdout!.once('data', () => resolve());
    h.once('error', reject);
  });
  h.stdout!.destroy();
  return h;
}

describe('vport lock files', () => {
  it('a file left by a crashed holder does not block: empty, garbage, or the pid of a live process', async () => {
    for (const leftover of ['', 'garbage', String(process.pid), String(process.ppid)]) {
      writeFileSync(lock, leftover);
      const t0 = Date.now();
      expect(await withLockFile(lock, 'thing', () => 'ran', 2000)).toBe('ran');
      expect(Date.now() - t0).toBeLessThan(1000);
    }
  });

  it('a live holder in another process is waited for, then named in the error; its death frees the lock', async () => {
    const h = await holder();
    await expect(withLockFile(lock, 'vport X', () => 'ran', 200)).rejects.toThrow(
      /vport X stays locked .*another npiv-hba command.*busy with it/,
    );
    process.kill(-h.pid!, 'SIGKILL'); // a crash: nothing unlocks explicitly
    expect(await withLockFile(lock, 'vport X', () => 'ran', 2000)).toBe('ran');
    expect(readFileSync(lock, 'utf8').trim()).toBe(String(process.pid));
  });

  it('holders in one process run one after the other', async () => {
    const order: string[] = [];
    const slow = withLockFile(lock, 'x', async () => {
      order.push('a in');
      await new Promise((r) => setTimeout(r, 100));
      order.push('a out');
    });
    await new Promise((r) => setTimeout(r, 10));
    const fast = withLockFile(lock, 'x', () => void order.push('b'));
    await Promise.all([slow, fast]);
    expect(order).toEqual(['a in', 'a out', 'b']);
  });

  it('refuses a lock file that is a symlink', async () => {
    const target = join(dir, 'elsewhere');
    writeFileSync(target, 'keep\n');
    symlinkSync(target, lock);
    await expect(withLockFile(lock, 'x', () => 'ran', 100)).rejects.toThrow(/cannot open the lock file/);
    expect(readFileSync(target, 'utf8')).toBe('keep\n');
  });
});
