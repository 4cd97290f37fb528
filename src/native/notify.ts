/**
 * sd_notify datagrams from the npiv_native shim (native/src/notify.cc), kept apart from
 * src/native/index.ts. Node has no AF_UNIX datagram sockets, so the send (and, for tests and
 * local supervisors, the receiving end) lives in the shim.
 */
import { addonWith, callNative } from './index.js';

interface NotifyShim {
  notifySend(path: string, text: string): void;
  notifyBind(path: string): number;
  notifyReceive(fd: number): string | null;
}

let binding: NotifyShim | undefined;

function addon(): NotifyShim {
  binding ??= addonWith<NotifyShim>(['notifySend'], 'notifySend');
  return binding;
}

/** Sends one datagram to the socket at path (an absolute path, or '@name' in the abstract namespace). */
export function notifySend(path: string, text: string): void {
  callNative(() => addon().notifySend(path, text));
}

/** Binds a non-blocking datagram socket at path (same naming); returns its fd (close with native.close). */
export function notifyBind(path: string): number {
  return callNative(() => addon().notifyBind(path));
}

/** The next queued datagram on fd, or null when none is waiting. */
export function notifyReceive(fd: number): string | null {
  return callNative(() => addon().notifyReceive(fd));
}
