/**
 * Reachability probes for the Unix sockets a vport depends on: the SAN link socket it plugs
 * into, and its own vfio-user socket (is a server answering there?).
 */
import { lstatSync } from 'node:fs';
import net from 'node:net';
import { NativeError } from '../native/index.js';
import { VfioUserClient } from '../vfio-user/client.js';

export type SocketProbe =
  | { state: 'listening' }
  | { state: 'missing' }
  | { state: 'not-a-socket' }
  /** a socket file nobody listens on (ECONNREFUSED): left behind by a process that is gone */
  | { state: 'refused' }
  | { state: 'error'; message: string };

const CONNECT_TIMEOUT_MS = 2000;

function socketFileState(path: string): SocketProbe | null {
  try {
    return lstatSync(path).isSocket() ? null : { state: 'not-a-socket' };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { state: 'missing' };
    return { state: 'error', message: (err as Error).message };
  }
}

/**
 * Connects to `path` and hangs up at once. On a SAN link socket this is one link-up/link-down
 * with no frames sent (the fabric sees a cable plugged in and pulled); on a vfio-user socket the
 * server sees a client that leaves before VERSION.
 */
export function probeUnixSocket(path: string, timeoutMs = CONNECT_TIMEOUT_MS): Promise<SocketProbe> {
  const fileState = socketFileState(path);
  if (fileState) return Promise.resolve(fileState);
  return new Promise((resolve) => {
    const socket = net.connect({ path });
    const done = (result: SocketProbe) => {
      clearTimeout(timer);
      socket.removeAllListeners();
      socket.on('error', () => {});
      socket.destroy();
      resolve(result);
    };
    const timer = setTimeout(
      () => done({ state: 'error', message: `no answer to connect within ${timeoutMs} ms` }),
      timeoutMs,
    );
    socket.once('connect', () => done({ state: 'listening' }));
    socket.once('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ECONNREFUSED') done({ state: 'refused' });
      else if (err.code === 'ENOENT') done({ state: 'missing' });
      else done({ state: 'error', message: err.message });
    });
  });
}

export function describeProbe(probe: SocketProbe): string {
  switch (probe.state) {
    case 'listening':
      return 'a process is listening';
    case 'missing':
      return 'the socket file does not exist';
    case 'not-a-socket':
      return 'the path exists but is not a socket';
    case 'refused':
      return 'the socket file exists but nothing listens on it (connection refused)';
    case 'error':
      return probe.message;
  }
}

/**
 * True when a vfio-user server at `path` answers VERSION the way QEMU's client expects — what
 * QEMU will do first when it attaches. The probe connection is then closed; the server accepts
 * the next client. A connect refused or a socket not there is `false`; anything else (the native
 * shim not built, say) throws, so that it is not mistaken for "not ready yet".
 */
export async function probeVfioUserServer(path: string, timeoutMs = CONNECT_TIMEOUT_MS): Promise<boolean> {
  let client: VfioUserClient;
  try {
    client = VfioUserClient.connect(path, { timeoutMs });
  } catch (err) {
    if (err instanceof NativeError) return false;
    throw err;
  }
  try {
    await client.version();
    return true;
  } catch {
    return false;
  } finally {
    client.close();
  }
}
