/**
 * systemd readiness notification (sd_notify(3), `Type=notify` units) without libsystemd.
 * When the service manager starts us it passes $NOTIFY_SOCKET; the daemon sends `READY=1` once
 * its sockets listen, `STATUS=...` for `systemctl status`, and `STOPPING=1` when it begins to
 * shut down. Without $NOTIFY_SOCKET (a shell, `vport start`, tests) every call does nothing.
 */
import { notifySend } from '../native/notify.js';
import { logger } from './log.js';

let socketPath: string | undefined;
let taken = false;

/**
 * Reads $NOTIFY_SOCKET once and removes it from the environment, so child processes (QEMU in the
 * lab, helper tools) do not talk to the service manager on our behalf.
 */
function notifySocket(env: NodeJS.ProcessEnv): string | undefined {
  if (!taken) {
    taken = true;
    const value = env.NOTIFY_SOCKET;
    delete env.NOTIFY_SOCKET;
    if (value !== undefined && value !== '') socketPath = value;
  }
  return socketPath;
}

export interface SdNotifyState {
  ready?: boolean;
  stopping?: boolean;
  status?: string;
}

/** The datagram text for a state: one KEY=VALUE per line; newlines in STATUS become spaces. */
export function formatNotify(state: SdNotifyState): string {
  const lines: string[] = [];
  if (state.ready) lines.push('READY=1');
  if (state.stopping) lines.push('STOPPING=1');
  if (state.status !== undefined) lines.push(`STATUS=${state.status.replace(/[\r\n\0]+/g, ' ')}`);
  return lines.join('\n');
}

/**
 * Tells the service manager about a state change. Returns true if a notification was sent, false
 * when not running under a notify-aware manager. A failed send is logged, never thrown: the
 * service keeps working, and systemd reports the missing READY=1 on its own (start timeout).
 */
export function sdNotify(state: SdNotifyState, env: NodeJS.ProcessEnv = process.env): boolean {
  const path = notifySocket(env);
  if (path === undefined) return false;
  const text = formatNotify(state);
  if (text === '') return false;
  try {
    notifySend(path, text);
    return true;
  } catch (err) {
    logger('sd-notify').warn({ event: 'sd_notify_failed', socket: path, error: String(err) }, 'sd_notify failed');
    return false;
  }
}

/** Forgets the cached $NOTIFY_SOCKET (tests). */
export function resetSdNotifyForTest(): void {
  socketPath = undefined;
  taken = false;
}
