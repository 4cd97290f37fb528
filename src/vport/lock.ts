/**
 * Lock files for vport management, held with flock(2): the kernel releases the lock when its
 * holder's file is closed — also when the holder crashes or is killed — so no leftover file can
 * wedge `define`, `start` or `stop`. The file itself stays (removing it would let a waiter lock a
 * file that a third command has already replaced); it records the last holder's pid for messages.
 * A live holder is waited for, bounded. Used for the definition store (duplicate checks + write)
 * and per vport for start/stop, so two commands never act on the same names or process at once.
 */
import { closeSync, constants as fsc, ftruncateSync, mkdirSync, openSync, readFileSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { tryLockExclusive } from '../native/lock.js';
import { VportError } from './errors.js';

export const LOCK_WAIT_MS = 10_000;
const LOCK_POLL_MS = 25;

/** The pid the holder wrote, for the message when it does not let go. */
function lastHolder(lock: string): string {
  try {
    const pid = Number(readFileSync(lock, 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 ? ` (pid ${pid})` : '';
  } catch {
    return '';
  }
}

/** Runs `fn` holding the lock file `lock`; `what` names the locked thing in the timeout error. */
export async function withLockFile<T>(
  lock: string,
  what: string,
  fn: () => Promise<T> | T,
  waitMs = LOCK_WAIT_MS,
): Promise<T> {
  mkdirSync(dirname(lock), { recursive: true, mode: 0o755 });
  let fd: number;
  try {
    // Never through a symlink: the run directory may be shared.
    fd = openSync(lock, fsc.O_RDWR | fsc.O_CREAT | fsc.O_NOFOLLOW, 0o644);
  } catch (err) {
    throw new VportError(`cannot open the lock file ${lock}: ${(err as Error).message}`);
  }
  try {
    const deadline = Date.now() + waitMs;
    while (!tryLockExclusive(fd)) {
      if (Date.now() > deadline) {
        throw new VportError(
          `${what} stays locked (${lock}): another npiv-hba command${lastHolder(lock)} is busy with it; try again when it has finished`,
        );
      }
      await sleep(LOCK_POLL_MS);
    }
    ftruncateSync(fd, 0);
    writeSync(fd, `${process.pid}\n`, 0);
    return await fn();
  } finally {
    closeSync(fd); // releases the lock
  }
}
