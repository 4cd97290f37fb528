/**
 * sd_notify datagrams from the npiv_native shim (native/src/notify.cc), kept apart from
 * src/native/index.ts. Node has no AF_UNIX datagram sockets, so the send (and, for tests and
 * local supervisors, the receiving end) lives in the shim.
 */
import { createRequire } from 'node:module';
import { getSystemErrorName } from 'node:util';
import { NativeError, nativeAddonPath } from './index.js';

interface NotifyShim {
  notifySend(path: string, text: string): void;
  notifyBind(path: string): number;
  notifyReceive(fd: number): string | null;
}

let binding: NotifyShim | undefined;

function addon(): NotifyShim {
  if (binding) return binding;
  const path = nativeAddonPath();
  let loaded: Partial<NotifyShim>;
  try {
    loaded = createRequire(import.meta.url)(path) as Partial<NotifyShim>;
  } catch (cause) {
    throw new Error(
      `npiv native shim could not be loaded from ${path} (build it with \`npx node-gyp rebuild --directory=native\`): ${(cause as Error).message}`,
      { cause },
    );
  }
  if (typeof loaded.notifySend !== 'function') {
    throw new Error(
      `the npiv native shim at ${path} has no notifySend (an older build): rebuild it with \`npx node-gyp rebuild --directory=native\``,
    );
  }
  binding = loaded as NotifyShim;
  return binding;
}

function call<T>(operation: () => T): T {
  try {
    return operation();
  } catch (err) {
    const e = err as Error & { errno?: unknown; syscall?: unknown };
    if (typeof e.errno === 'number' && typeof e.syscall === 'string') {
      const code = getSystemErrorName(-e.errno);
      throw new NativeError(`${code}: ${e.message}`, e.syscall, e.errno, code);
    }
    throw err;
  }
}

/** Sends one datagram to the socket at path (an absolute path, or '@name' in the abstract namespace). */
export function notifySend(path: string, text: string): void {
  call(() => addon().notifySend(path, text));
}

/** Binds a non-blocking datagram socket at path (same naming); returns its fd (close with native.close). */
export function notifyBind(path: string): number {
  return call(() => addon().notifyBind(path));
}

/** The next queued datagram on fd, or null when none is waiting. */
export function notifyReceive(fd: number): string | null {
  return call(() => addon().notifyReceive(fd));
}
