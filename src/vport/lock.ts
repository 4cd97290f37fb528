/**
 * Advisory lock files for vport management: a file created with O_EXCL holding the holder's pid.
 * A lock whose holder no longer exists is taken over; a live holder is waited for, bounded.
 * Used for the definition store (duplicate checks + write) and per vport for start/stop, so two
 * commands never act on the same names or the same process at once.
 */
import { closeSync, mkdirSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { VportError } from './errors.js';

export const LOCK_WAIT_MS = 10_000;
const LOCK_POLL_MS = 25;

function errnoCode(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | null)?.code;
}

function holderGone(lock: string): boolean {
  let pid: number;
  try {
    pid = Number(readFileSync(lock, 'utf8'));
  } catch {
    return false; // being created or removed right now: wait
  }
  if (!Number.isInteger(pid) || pid <= 0) return false; // created, pid not written yet
  try {
    process.kill(pid, 0);
    return false;
  } catch (err) {
    return errnoCode(err) === 'ESRCH';
  }
}

/** Runs `fn` holding the lock file `lock`; `what` names the locked thing in the timeout error. */
export async function withLockFile<T>(lock: string, what: string, fn: () => Promise<T> | T, waitMs = LOCK_WAIT_MS): Promise<T> {
  mkdirSync(dirname(lock), { recursive: true, mode: 0o755 });
  const deadline = Date.now() + waitMs;
  for (;;) {
    try {
      const fd = openSync(lock, 'wx', 0o644);
      try {
        writeSync(fd, String(process.pid));
      } finally {
        closeSync(fd);
      }
      break;
    } catch (err) {
      if (errnoCode(err) !== 'EEXIST') throw err;
      if (holderGone(lock)) {
        try {
          unlinkSync(lock);
        } catch {
          // another waiter removed it first
        }
        continue;
      }
      if (Date.now() > deadline) throw new VportError(`${what} stays locked (${lock}); another npiv-hba command is busy with it`);
      await sleep(LOCK_POLL_MS);
    }
  }
  try {
    return await fn();
  } finally {
    unlinkSync(lock);
  }
}
