/**
 * flock(2) from the npiv_native shim (native/src/lock.cc), kept apart from src/native/index.ts.
 * Advisory whole-file locks tied to an open file: released by close, or by the kernel when the
 * holder dies — a crashed process can never leave a lock behind.
 */
import { addonWith, callNative } from './index.js';

export const LOCK_SH = 1;
export const LOCK_EX = 2;
export const LOCK_NB = 4;
export const LOCK_UN = 8;

interface LockShim {
  flock(fd: number, operation: number): boolean;
}

let binding: LockShim | undefined;

function addon(): LockShim {
  binding ??= addonWith<LockShim>(['flock'], 'flock');
  return binding;
}

/**
 * flock(fd, operation). Returns false only when LOCK_NB was given and another open file holds a
 * conflicting lock; any other failure throws a NativeError (errno code, syscall 'flock').
 */
export function flock(fd: number, operation: number): boolean {
  return callNative(() => addon().flock(fd, operation));
}

/** Exclusive lock without waiting: true if taken, false if another open file holds a lock. */
export function tryLockExclusive(fd: number): boolean {
  return flock(fd, LOCK_EX | LOCK_NB);
}
