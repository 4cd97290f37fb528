/**
 * Typed facade over the node-addon-api shim in native/ (build/Release/npiv_native.node).
 *
 * The shim exists only for Linux calls Node lacks: SCM_RIGHTS fd passing on AF_UNIX
 * stream sockets, mmap of a received fd as a zero-copy ArrayBuffer, eventfd, and fd
 * readiness through libuv (uv_poll) so the event loop never blocks.
 *
 * Contract (shared by the vfio-user server, the SAN link and the tests):
 *  - Every call checks its syscall result; failures throw a NativeError carrying
 *    `errno` (number) and `code` (e.g. "EAGAIN", "EBADF") and the syscall name.
 *  - All sockets the shim creates are non-blocking and close-on-exec.
 *  - recvmsg never blocks: with nothing to read it returns null (EAGAIN); a peer
 *    hang-up returns { bytes: 0, fds: [] }.
 *  - Received fds are close-on-exec (MSG_CMSG_CLOEXEC); control-message truncation
 *    (MSG_CTRUNC) is reported via `ctrunc` and the fds that did arrive are returned
 *    so that the caller can close them.
 *  - Argument errors (wrong type, out of range) throw TypeError / RangeError as is.
 *
 * The addon is loaded on first use, so importing this module never fails; a missing
 * build is reported (with the command that fixes it) by the first call.
 */
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { getSystemErrorName } from 'node:util';
import { packageRoot } from '../util/package-root.js';

export interface RecvResult {
  /** Bytes read into the buffer; 0 means the peer closed the connection. */
  bytes: number;
  /** File descriptors received with SCM_RIGHTS alongside these bytes. */
  fds: number[];
  /** MSG_CTRUNC: the sender attached more fds than the control buffer holds. */
  ctrunc: boolean;
}

/** SO_PEERCRED (+ SO_PEERGROUPS) of a connected Unix socket: the peer process as of connect()/listen(). */
export interface PeerCred {
  pid: number;
  uid: number;
  /** effective gid */
  gid: number;
  /** supplementary groups (empty on kernels before 4.13, which lack SO_PEERGROUPS) */
  groups: number[];
}

export interface PollHandle {
  /**
   * Stops watching; idempotent, and safe from inside the callback. Does not close the fd
   * (stop before closing it: native.close refuses a watched fd). A handle dropped without
   * stop() keeps watching.
   */
  stop(): void;
}

/** linux/fcntl.h seal bits (fcntl F_GET_SEALS / F_ADD_SEALS). */
export const F_SEAL_SEAL = 0x0001;
export const F_SEAL_SHRINK = 0x0002;
export const F_SEAL_GROW = 0x0004;

export const POLL_READABLE = 1;
export const POLL_WRITABLE = 2;
export const POLL_DISCONNECT = 4;

export interface NativeShim {
  /** socket(AF_UNIX, SOCK_STREAM)+bind+listen at path (an existing socket file is NOT removed). */
  unixListen(path: string, backlog: number): number;
  /**
   * Like unixListen, but the socket file gets `mode` (and owner uid/gid; -1 = unchanged) before it
   * appears at `path`: bound in a private mkdtemp directory next to it, chmod/chown'ed, then renamed
   * into place without replacing anything (an existing path throws EEXIST). Never umask-dependent.
   */
  unixListenPrivate(path: string, backlog: number, mode: number, uid: number, gid: number): number;
  /** The peer of this connected stream socket has hung up (poll POLLHUP/POLLRDHUP; reads nothing). */
  socketHungUp(fd: number): boolean;
  /** getsockopt SO_PEERCRED/SO_PEERGROUPS: who connected (or, on a client socket, who listens). */
  peerCred(fd: number): PeerCred;
  /** getpwnam_r: the uid and primary gid of a user name, or null when there is no such user. */
  lookupUser(name: string): { uid: number; gid: number } | null;
  /** getgrnam_r: the gid of a group name, or null when there is no such group. */
  lookupGroup(name: string): number | null;
  /** accept4 on a listening fd; null when no connection is pending (EAGAIN). */
  unixAccept(listenFd: number): number | null;
  /** Blocking-free connect to a Unix stream socket path (connect on a non-blocking socket; ECONNREFUSED/ENOENT throw). */
  unixConnect(path: string): number;
  /** socketpair(AF_UNIX, SOCK_STREAM) for tests. */
  socketPair(): [number, number];
  /** recvmsg into buf[offset..offset+length) (length >= 1) with room for maxFds (0..253) fds. */
  recvmsg(fd: number, buf: Uint8Array, offset: number, length: number, maxFds: number): RecvResult | null;
  /**
   * sendmsg of data with fds (at most 253) as SCM_RIGHTS; returns bytes written (may be short;
   * the fds travel with the first byte written); null on EAGAIN. Fds need data.length >= 1.
   * MSG_NOSIGNAL: a closed peer throws EPIPE instead of raising SIGPIPE.
   */
  sendmsg(fd: number, data: Uint8Array, fds: readonly number[]): number | null;
  /**
   * mmap(MAP_SHARED) of length bytes at file offset; prot bit0=read bit1=write. External ArrayBuffer, no copy.
   * offset must be page-aligned and, for a regular file, the range must lie within the file
   * (EINVAL otherwise: touching pages past EOF would SIGBUS). The mapping is always readable;
   * without the write bit, writing to it faults — never write to a read-only mapping.
   * Unmapped by munmap() or, failing that, when the buffer is garbage-collected.
   */
  mmap(fd: number, length: number, offset: bigint, prot: number): ArrayBuffer;
  /**
   * munmap of an ArrayBuffer returned by mmap; afterwards the buffer is detached (byteLength 0).
   * Unmapping an already unmapped buffer is a no-op; any other ArrayBuffer is a TypeError.
   */
  munmap(buf: ArrayBuffer): void;
  /** eventfd(initval, EFD_CLOEXEC|EFD_NONBLOCK). */
  eventfd(initval: number): number;
  /** write(2) of an 8-byte counter value to an eventfd. */
  eventfdWrite(fd: number, value: bigint): void;
  /** read(2) of an eventfd counter; null when the counter is 0 (EAGAIN). */
  eventfdRead(fd: number): bigint | null;
  /**
   * memfd_create + ftruncate(size), sealed against resizing (F_SEAL_SHRINK|GROW|SEAL) like QEMU's
   * memfd backend; with resizable, only F_SEAL_SEAL (a volume store that grows and shrinks).
   */
  memfdCreate(name: string, size: number, resizable?: boolean): number;
  /** fallocate(PUNCH_HOLE|KEEP_SIZE): the range reads as zeros and its storage is freed. */
  punchHole(fd: number, offset: number, length: number): void;
  /** fcntl(F_DUPFD_CLOEXEC). */
  dup(fd: number): number;
  /** fstat st_blocks × 512: the bytes a sparse file or memfd really holds. */
  fdAllocatedBytes(fd: number): number;
  /**
   * uv_poll on fd; callback(events) with POLL_* bits, or (0, errno) on a poll error (the
   * watch is then already stopped). One watch per fd: a second poll() of a watched fd
   * throws EEXIST. The fd is switched to non-blocking. An active watch keeps the event
   * loop alive; a stopped one does not.
   */
  poll(fd: number, events: number, callback: (events: number, errno: number) => void): PollHandle;
  /** close(2). An fd with an active poll() watch is refused (EBUSY): stop() the watch first. */
  close(fd: number): void;
  /** fstat size of a file descriptor (st_size). */
  fdSize(fd: number): number;
  /** fcntl(F_GET_SEALS): the file's seal bits (F_SEAL_*), or null when it cannot carry seals (not a memfd). */
  fdSeals(fd: number): number | null;
  /** fcntl(F_GETFD) succeeds — the fd is open in this process. */
  isOpen(fd: number): boolean;
}

export class NativeError extends Error {
  constructor(
    message: string,
    readonly syscall: string,
    readonly errno: number,
    readonly code: string,
  ) {
    super(message);
    this.name = 'NativeError';
  }
}

/** The shape of errors the addon throws for a failed syscall (see native/src/common.cc). */
interface AddonErrnoError extends Error {
  errno: number;
  syscall: string;
}

function isAddonErrnoError(error: unknown): error is AddonErrnoError {
  return (
    error instanceof Error &&
    typeof (error as Partial<AddonErrnoError>).errno === 'number' &&
    typeof (error as Partial<AddonErrnoError>).syscall === 'string'
  );
}

/**
 * Turns an addon errno error into a NativeError; anything else (TypeError, RangeError) passes
 * through. Shared with the addon's other front modules (host.ts, lock.ts, notify.ts).
 */
export function translateError(error: unknown): unknown {
  if (!isAddonErrnoError(error)) return error;
  const code = getSystemErrorName(-error.errno);
  const translated = new NativeError(`${code}: ${error.message}`, error.syscall, error.errno, code);
  translated.stack = `${translated.name}: ${translated.message}\n${(error.stack ?? '').split('\n').slice(1).join('\n')}`;
  return translated;
}

/** Runs an addon call; a failed syscall throws a NativeError (translateError). */
export function callNative<T>(operation: () => T): T {
  try {
    return operation();
  } catch (error) {
    throw translateError(error);
  }
}

const call = callNative;

const ADDON_RELATIVE_PATH = ['native', 'build', 'Release', 'npiv_native.node'] as const;

/** Absolute path of the compiled addon. */
export function nativeAddonPath(): string {
  return join(packageRoot(), ...ADDON_RELATIVE_PATH);
}

let binding: NativeShim | undefined;

function addon(): NativeShim {
  if (binding) return binding;
  const path = nativeAddonPath();
  try {
    binding = createRequire(import.meta.url)(path) as NativeShim;
  } catch (cause) {
    throw new Error(
      `npiv native shim could not be loaded from ${path} (build it with \`npx node-gyp rebuild --directory=native\`): ${
        cause instanceof Error ? cause.message : String(cause)
      }`,
      { cause },
    );
  }
  return binding;
}

/**
 * The addon for a front module whose functions came after the core shim (sg and uevents, flock,
 * sd_notify): the same load as the core shim's, plus a clear "rebuild it" error when the built
 * addon predates `required` (it names `feature`).
 */
export function addonWith<T extends object>(required: readonly (keyof T & string)[], feature: string): T {
  const loaded = addon() as unknown as Partial<Record<string, unknown>>;
  if (required.some((name) => typeof loaded[name] !== 'function')) {
    throw new Error(
      `the npiv native shim at ${nativeAddonPath()} has no ${feature} (an older build): rebuild it with \`npx node-gyp rebuild --directory=native\``,
    );
  }
  return loaded as unknown as T;
}

/** The shim. Every method loads the addon on first use and throws NativeError for syscall failures. */
export const native: NativeShim = {
  unixListen: (path, backlog) => call(() => addon().unixListen(path, backlog)),
  unixListenPrivate: (path, backlog, mode, uid, gid) =>
    call(() => addon().unixListenPrivate(path, backlog, mode, uid, gid)),
  socketHungUp: (fd) => call(() => addon().socketHungUp(fd)),
  peerCred: (fd) => call(() => addon().peerCred(fd)),
  lookupUser: (name) => call(() => addon().lookupUser(name)),
  lookupGroup: (name) => call(() => addon().lookupGroup(name)),
  unixAccept: (listenFd) => call(() => addon().unixAccept(listenFd)),
  unixConnect: (path) => call(() => addon().unixConnect(path)),
  socketPair: () => call(() => addon().socketPair()),
  recvmsg: (fd, buf, offset, length, maxFds) => call(() => addon().recvmsg(fd, buf, offset, length, maxFds)),
  sendmsg: (fd, data, fds) => call(() => addon().sendmsg(fd, data, fds)),
  mmap: (fd, length, offset, prot) => call(() => addon().mmap(fd, length, offset, prot)),
  munmap: (buf) => call(() => addon().munmap(buf)),
  eventfd: (initval) => call(() => addon().eventfd(initval)),
  eventfdWrite: (fd, value) => call(() => addon().eventfdWrite(fd, value)),
  eventfdRead: (fd) => call(() => addon().eventfdRead(fd)),
  memfdCreate: (name, size, resizable) => call(() => addon().memfdCreate(name, size, resizable === true)),
  punchHole: (fd, offset, length) => call(() => addon().punchHole(fd, offset, length)),
  dup: (fd) => call(() => addon().dup(fd)),
  fdAllocatedBytes: (fd) => call(() => addon().fdAllocatedBytes(fd)),
  poll: (fd, events, callback) => call(() => addon().poll(fd, events, callback)),
  close: (fd) => call(() => addon().close(fd)),
  fdSize: (fd) => call(() => addon().fdSize(fd)),
  fdSeals: (fd) =>
    call(() => {
      const seals = addon().fdSeals(fd) as number;
      return seals < 0 ? null : seals;
    }),
  isOpen: (fd) => call(() => addon().isOpen(fd)),
};
