/**
 * Unix sockets closed to other local users (docs/security.md).
 *
 * Listening side (vfio-user socket, SAN link socket, SAN control socket):
 *  - the socket's directory is created if missing (0700; 0750 and group-owned with a socket
 *    group; 0711 with a socket owner, so that user can reach the socket by name but neither list
 *    nor create entries) and refused when another user could replace what is in it: the directory
 *    must belong to this user or root and not be group/other-writable, and no ancestor may be
 *    writable by others without the sticky bit or belong to another user;
 *  - the socket file is 0600 (0660 with a socket group; owned by the socket owner if one is set)
 *    from the moment it appears, whatever the umask (native unixListenPrivate);
 *  - every accepted connection's SO_PEERCRED is checked: this uid, root, the socket owner, or a
 *    member (primary or supplementary gid) of the socket group; anyone else is closed before a
 *    byte is read, with a rate-limited log line;
 *  - a per-uid cap on simultaneous connections (listeners that serve many: links, control);
 *  - on close the socket file is removed if it is still ours (same inode).
 * Connecting side: the listener's SO_PEERCRED (its credentials at listen()) must be this uid,
 * root, or an explicitly allowed uid — a socket path squatted by another user gets nothing.
 */
import { chmodSync, chownSync, lstatSync, mkdirSync, realpathSync, statSync, unlinkSync, type Stats } from 'node:fs';
import net from 'node:net';
import { dirname, resolve } from 'node:path';
import { native as defaultNative, NativeError, type NativeShim, type PeerCred } from '../native/index.js';
import type { Logger } from './log.js';
import { RateLimitedLog } from './warn-limit.js';

/** sun_path is 108 bytes including the terminating NUL (unix(7), linux/un.h). */
export const UNIX_PATH_MAX = 107;

/** Who besides this process's uid and root may use a listening socket. */
export interface SocketAccess {
  /** members of this gid (primary or supplementary) may connect; the socket is 0660 and group-owned by it */
  group?: number;
  /** this uid (e.g. libvirt-qemu's) may connect; the socket file is owned by it */
  owner?: number;
}

export type SocketNative = Pick<NativeShim, 'unixListenPrivate' | 'unixConnect' | 'peerCred' | 'close'>;

export function selfUid(): number {
  // SO_PEERCRED reports effective ids; compare like with like.
  return process.geteuid?.() ?? 0;
}

/** Refuses a socket path that does not fit sun_path, naming the option it came from. */
export function checkSocketPathLength(path: string, option: string): void {
  const bytes = Buffer.byteLength(path);
  if (bytes === 0) throw new Error(`${option}: the socket path is empty`);
  if (bytes > UNIX_PATH_MAX) {
    throw new Error(
      `${option} '${path}' is ${bytes} bytes long; a Unix socket path holds at most ${UNIX_PATH_MAX} (sun_path)`,
    );
  }
}

/** `NAME` or a numeric uid → uid. */
export function parseUser(spec: string, option: string, shim: Pick<NativeShim, 'lookupUser'> = defaultNative): number {
  if (/^\d+$/.test(spec)) return checkId(Number(spec), spec, option);
  const user = spec === '' ? null : shim.lookupUser(spec);
  if (user === null) throw new Error(`${option} '${spec}': no such user (give a user name or a numeric uid)`);
  return user.uid;
}

/** `NAME` or a numeric gid → gid. */
export function parseGroup(
  spec: string,
  option: string,
  shim: Pick<NativeShim, 'lookupGroup'> = defaultNative,
): number {
  if (/^\d+$/.test(spec)) return checkId(Number(spec), spec, option);
  const gid = spec === '' ? null : shim.lookupGroup(spec);
  if (gid === null) throw new Error(`${option} '${spec}': no such group (give a group name or a numeric gid)`);
  return gid;
}

function checkId(id: number, spec: string, option: string): number {
  // (uid_t)-1 means "no id" to chown(2); anything above does not fit uid_t.
  if (!Number.isSafeInteger(id) || id >= 0xffff_ffff) throw new Error(`${option} '${spec}': not a valid id`);
  return id;
}

/** May this peer use a socket with this access? (this uid, root, the owner, the group's members) */
export function peerAllowed(cred: PeerCred, access: SocketAccess, self: number = selfUid()): boolean {
  if (cred.uid === 0 || cred.uid === self) return true;
  if (access.owner !== undefined && cred.uid === access.owner) return true;
  return access.group !== undefined && (cred.gid === access.group || cred.groups.includes(access.group));
}

export function describeAccess(access: SocketAccess, self: number = selfUid()): string {
  const who = [`uid ${self}`, 'root'];
  if (access.owner !== undefined && access.owner !== self && access.owner !== 0) who.push(`uid ${access.owner}`);
  if (access.group !== undefined) who.push(`members of gid ${access.group}`);
  return who.join(', ');
}

const octal = (mode: number): string => (mode & 0o7777).toString(8).padStart(4, '0');

/** Mode of the socket's directory when this program creates it. */
function directoryMode(access: SocketAccess): number {
  if (access.group !== undefined) return 0o750;
  if (access.owner !== undefined) return 0o711;
  return 0o700;
}

/**
 * Creates the socket's directory if it is missing (missing ancestors 0755, like `mkdir -p`; the
 * directory itself private, see the module comment) and checks that no other user can replace
 * entries in it. Returns warnings worth logging (an allowed user or group that cannot reach the
 * socket through an existing directory's permissions).
 */
export function prepareSocketDirectory(
  socketPath: string,
  access: SocketAccess = {},
  self: number = selfUid(),
): string[] {
  const dir = dirname(resolve(socketPath));
  const created = makeMissingDirectories(dir, directoryMode(access));
  if (created && access.group !== undefined) chownSync(dir, -1, access.group);
  const real = realpathSync(dir);
  const st = statSync(real);
  if (!st.isDirectory()) throw new Error(`socket directory ${dir} is not a directory`);
  if (st.uid !== self && st.uid !== 0) {
    throw new Error(
      `refusing to create a socket in ${dir}: the directory belongs to uid ${st.uid}, not to uid ${self} or root`,
    );
  }
  if ((st.mode & 0o022) !== 0) {
    throw new Error(
      `refusing to create a socket in ${dir}: the directory is writable by other users (mode ${octal(st.mode)}), ` +
        'who could replace the socket; use a private directory such as /run/npiv-hba',
    );
  }
  for (let d = dirname(real); ; d = dirname(d)) {
    const a = statSync(d);
    if (a.uid !== self && a.uid !== 0) {
      throw new Error(
        `refusing to create a socket in ${dir}: its ancestor ${d} belongs to uid ${a.uid}, who could replace it`,
      );
    }
    // A sticky world-writable ancestor (/tmp) lets others add entries but not rename ours.
    if ((a.mode & 0o022) !== 0 && (a.mode & 0o1000) === 0) {
      throw new Error(
        `refusing to create a socket in ${dir}: its ancestor ${d} is writable by other users (mode ${octal(a.mode)})`,
      );
    }
    if (dirname(d) === d) break;
  }
  return reachabilityWarnings(dir, st, access);
}

/**
 * A socket directory this user may not reach or create (a non-root user and the default
 * /run/npiv-hba): says what to do rather than `mkdir EACCES`. Other errors pass through.
 */
function socketDirectoryError(dir: string, what: 'create' | 'reach', err: unknown): unknown {
  const code = (err as NodeJS.ErrnoException).code;
  if (code !== 'EACCES' && code !== 'EPERM' && code !== 'EROFS') return err;
  const uid = process.geteuid?.() ?? 'UID';
  const own = `${process.env.XDG_RUNTIME_DIR ?? `/run/user/${uid}`}/npiv-hba/`;
  const why = code === 'EROFS' ? 'read-only file system' : `permission denied for uid ${uid}`;
  return new Error(
    `cannot ${what} the socket directory ${dir}: ${why}; run as root (sudo), or put the socket in a directory you own (e.g. ${own})`,
    { cause: err },
  );
}

/** mkdir of each missing component; only the last gets `mode` (chmod'ed: mkdir(2) applies the umask). */
function makeMissingDirectories(dir: string, mode: number): boolean {
  const missing: string[] = [];
  for (let d = dir; ; d = dirname(d)) {
    try {
      lstatSync(d);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw socketDirectoryError(d, 'reach', err);
      missing.unshift(d);
      if (dirname(d) === d) break;
    }
  }
  for (const d of missing) {
    const m = d === dir ? mode : 0o755;
    try {
      mkdirSync(d, { mode: m });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      // Created meanwhile by someone else: checked like any existing directory.
      if (code === 'EEXIST') continue;
      throw socketDirectoryError(d, 'create', err);
    }
    chmodSync(d, m);
  }
  return missing.includes(dir);
}

function reachabilityWarnings(dir: string, st: Stats, access: SocketAccess): string[] {
  const warnings: string[] = [];
  const otherX = (st.mode & 0o001) !== 0;
  if (access.group !== undefined && !otherX && !(st.gid === access.group && (st.mode & 0o010) !== 0)) {
    warnings.push(
      `members of gid ${access.group} cannot enter ${dir} (mode ${octal(st.mode)}, group ${st.gid}) to reach the socket`,
    );
  }
  if (access.owner !== undefined && !otherX && !(st.uid === access.owner && (st.mode & 0o100) !== 0)) {
    if (!(access.group !== undefined && st.gid === access.group && (st.mode & 0o010) !== 0)) {
      warnings.push(`uid ${access.owner} cannot enter ${dir} (mode ${octal(st.mode)}) to reach the socket`);
    }
  }
  return warnings;
}

/** A live process listens on the path a listener was to be created at. */
export class SocketInUseError extends Error {
  constructor(readonly path: string) {
    super(`another process is already listening on ${path}`);
    this.name = 'SocketInUseError';
  }
}

/**
 * Removes a socket file nobody listens on (a previous run that was killed); refuses when a live
 * process listens there or when the path is not a socket.
 */
export function removeStaleSocket(path: string, shim: Pick<NativeShim, 'unixConnect' | 'close'> = defaultNative): void {
  let isSocket: boolean;
  try {
    isSocket = lstatSync(path).isSocket();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  if (!isSocket) throw new Error(`refusing to replace ${path}: it exists and is not a socket`);
  let probe: number;
  try {
    probe = shim.unixConnect(path);
  } catch (err) {
    if (err instanceof NativeError && (err.code === 'ECONNREFUSED' || err.code === 'ENOENT')) {
      try {
        unlinkSync(path);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      }
      return;
    }
    // EAGAIN (backlog full) and anything else: someone may be there; do not touch it.
    throw new Error(`cannot tell whether ${path} is in use: ${(err as Error).message}`, { cause: err });
  }
  shim.close(probe);
  throw new SocketInUseError(path);
}

/** A listening socket created by listenPrivate: its fd and how to remove its file. */
export interface PrivateSocket {
  readonly fd: number;
  readonly path: string;
  /** Unlinks the socket file if it is still the one created here (not a successor's). Idempotent. */
  unlink(): void;
}

export interface ListenPrivateOptions {
  access?: SocketAccess;
  backlog?: number;
  native?: SocketNative;
  log?: Logger;
}

/**
 * The whole listening sequence: path length, directory, stale socket, then a socket file with its
 * final mode and owner (0600 / 0660 with a group) before it becomes visible at `path`.
 */
export function listenPrivate(path: string, options: ListenPrivateOptions = {}): PrivateSocket {
  const access = options.access ?? {};
  const shim = options.native ?? defaultNative;
  checkSocketPathLength(path, 'socket path');
  for (const warning of prepareSocketDirectory(path, access))
    options.log?.warn({ event: 'socket_dir_unreachable' }, warning);
  removeStaleSocket(path, shim);
  const mode = access.group !== undefined ? 0o660 : 0o600;
  const fd = shim.unixListenPrivate(path, options.backlog ?? 64, mode, access.owner ?? -1, access.group ?? -1);
  let identity: { dev: number; ino: number } | null;
  try {
    const st = lstatSync(path);
    identity = { dev: st.dev, ino: st.ino };
  } catch {
    identity = null;
  }
  return {
    fd,
    path,
    unlink(): void {
      if (identity === null) return;
      const mine = identity;
      identity = null;
      try {
        const st = lstatSync(path);
        if (st.dev === mine.dev && st.ino === mine.ino) unlinkSync(path);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT')
          options.log?.warn({ err, socket: path }, 'socket_unlink_failed');
      }
    },
  };
}

export interface ConnectionGateOptions {
  access: SocketAccess;
  /** simultaneous connections per uid (Infinity: no cap) */
  maxPerUid: number;
  /** what the socket is, for log lines: 'vfio-user', 'SAN link', 'SAN control' */
  what: string;
  log: Logger;
  native?: Pick<NativeShim, 'peerCred'>;
}

/**
 * The accept-time check of a listener: SO_PEERCRED against the access, then the per-uid cap.
 * admit() returns the peer (call release(uid) when its connection closes) or null: the caller
 * closes the connection at once, before reading anything from it.
 */
export class ConnectionGate {
  private readonly perUid = new Map<number, number>();
  private readonly refusals: RateLimitedLog;
  private readonly native: Pick<NativeShim, 'peerCred'>;

  constructor(private readonly options: ConnectionGateOptions) {
    this.native = options.native ?? defaultNative;
    this.refusals = new RateLimitedLog({ log: options.log, keyField: 'event' });
  }

  admit(fd: number): PeerCred | null {
    let cred: PeerCred;
    try {
      cred = this.native.peerCred(fd);
    } catch (err) {
      this.refusals.warn(
        'connection_refused',
        { socket: this.options.what, error: (err as Error).message },
        { message: `${this.options.what} connection refused: peer credentials unreadable` },
      );
      return null;
    }
    if (!peerAllowed(cred, this.options.access)) {
      this.refusals.warn(
        'connection_refused',
        { socket: this.options.what, uid: cred.uid, gid: cred.gid, pid: cred.pid },
        {
          message: `${this.options.what} connection refused: uid ${cred.uid} (pid ${cred.pid}) is not allowed (allowed: ${describeAccess(this.options.access)})`,
        },
      );
      return null;
    }
    const count = this.perUid.get(cred.uid) ?? 0;
    if (count >= this.options.maxPerUid) {
      this.refusals.warn(
        'connection_refused',
        { socket: this.options.what, uid: cred.uid, pid: cred.pid, limit: this.options.maxPerUid },
        {
          message: `${this.options.what} connection refused: uid ${cred.uid} already has ${count} connections (limit ${this.options.maxPerUid})`,
        },
      );
      return null;
    }
    this.perUid.set(cred.uid, count + 1);
    return cred;
  }

  release(uid: number): void {
    const count = this.perUid.get(uid) ?? 0;
    if (count <= 1) this.perUid.delete(uid);
    else this.perUid.set(uid, count - 1);
  }

  connections(uid: number): number {
    return this.perUid.get(uid) ?? 0;
  }
}

/** The fd under a connected net.Socket on a Unix socket (libuv's pipe handle), or null. */
export function netSocketFd(socket: net.Socket): number | null {
  const handle = (socket as unknown as { _handle?: { fd?: unknown } | null })._handle;
  const fd = handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : null;
}

export type GatedServerOptions = Omit<ConnectionGateOptions, 'access'> & { access?: SocketAccess };

/**
 * A net.Server on a private socket (listenPrivate) that hands a connection to `onConnection` only
 * once its peer passed the gate (allowed uid/gid by SO_PEERCRED, under the per-uid cap); a refused
 * peer is closed before a byte of it is read. Resolves when listening.
 */
export function listenGated(
  path: string,
  options: GatedServerOptions,
  onConnection: (socket: net.Socket) => void,
): Promise<{ server: net.Server; socketFile: PrivateSocket }> {
  const gate = new ConnectionGate({ ...options, access: options.access ?? {} });
  const socketFile = listenPrivate(path, { ...(options.access ? { access: options.access } : {}), log: options.log });
  return new Promise((resolve, reject) => {
    const server = net.createServer({ pauseOnConnect: true }, (socket) => {
      const fd = netSocketFd(socket);
      const peer = fd === null ? null : gate.admit(fd);
      if (peer === null) {
        socket.destroy();
        return;
      }
      socket.once('close', () => gate.release(peer.uid));
      onConnection(socket);
      socket.resume();
    });
    server.once('error', (err) => {
      socketFile.unlink();
      reject(err);
    });
    server.listen({ fd: socketFile.fd }, () => {
      server.removeAllListeners('error');
      server.on('error', (err) => options.log.warn({ err }, `${options.what} listener error`));
      resolve({ server, socketFile });
    });
  });
}

/**
 * The check a client makes before it sends anything: the listener's credentials (SO_PEERCRED on a
 * connected client socket: the listener as of its listen()) must be this uid, root or one of
 * `allowedUids`. Throws a message naming the option that would allow it.
 */
export function checkListenerCred(
  cred: PeerCred,
  path: string,
  allowedUids: readonly number[],
  option?: string,
  self: number = selfUid(),
): void {
  if (cred.uid === self || cred.uid === 0 || allowedUids.includes(cred.uid)) return;
  throw new Error(
    `refusing to use ${path}: it is served by uid ${cred.uid} (pid ${cred.pid}), not by uid ${self}` +
      `${allowedUids.length > 0 ? `, ${allowedUids.map((u) => `uid ${u}`).join(', ')}` : ''} or root; ` +
      `another user may have put a socket there${option ? ` (if that user is intended, pass ${option} ${cred.uid})` : ''}`,
  );
}

/** Connects, checks the listener's credentials as checkListenerCred does, and hangs up (nothing is sent). */
export function verifySocketServer(
  path: string,
  allowedUids: readonly number[],
  option: string | undefined,
  shim: Pick<NativeShim, 'unixConnect' | 'peerCred' | 'close'> = defaultNative,
): void {
  const fd = shim.unixConnect(path);
  try {
    checkListenerCred(shim.peerCred(fd), path, allowedUids, option);
  } finally {
    shim.close(fd);
  }
}
