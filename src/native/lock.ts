/**
 * flock(2) from the npiv_native shim (native/src/lock.cc), kept apart from src/native/index.ts.
 * Advisory whole-file locks tied to an open file: released by close, or by the kernel when the
 * holder dies — a crashed process can never leave a lock behind.
 */
import { createRequire } from 'node:module';
import { getSystemErrorName } from 'node:util';
import { NativeError, nativeAddonPath } from './index.js';

export const LOCK_SH = 1;
export const LOCK_EX = 2;
export const LOCK_NB = 4;
export const LOCK_UN = 8;

interface LockShim {
  flock(fd: number, operation: number): boolean;
}

let binding: LockShim | undefined;

function addon(): LockShim {
  if (binding) return binding;
  const path = nativeAddonPath();
  let loaded: Partial<LockShim>;
  try {
    loaded = createRequire(import.meta.url)(path) as Partial<LockShim>;
  } catch (cause) {
    throw new Error(
      `npiv native shim could not be loaded from ${path} (build it with \`npx node-gyp rebuild --directory=native\`): ${(cause as Error).message}`,
      { cause },
    );
  }
  if (typeof loaded.flock !== 'function') {
    throw new Error(
      `the npiv native shim at ${path} has no flock (an older build): rebuild it with \`npx node-gyp rebuild --directory=native\``,
    );
  }
  binding = loaded as LockShim;
  return binding;
}

/**
 * flock(fd, operation). Returns false only when LOCK_NB was given and another open file holds a
 * conflicting lock; any other failure throws a NativeError (errno code, syscall 'flock').
 */
export function flock(fd: number, operation: number): boolean {
  const shim = addon();
  try {
    return shim.flock(fd, operation);
  } catch (err) {
    const e = err as Error & { errno?: unknown; syscall?: unknown };
    if (typeof e.errno === 'number' && typeof e.syscall === 'string') {
      const code = getSystemErrorName(-e.errno);
      throw new NativeError(`${code}: ${e.message}`, e.syscall, e.errno, code);
    }
    throw err;
  }
}

/** Exclusive lock without waiting: true if taken, false if another open file holds a lock. */
export function tryLockExclusive(fd: number): boolean {
  return flock(fd, LOCK_EX | LOCK_NB);
}
