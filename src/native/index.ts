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
 */
export interface RecvResult {
  /** Bytes read into the buffer; 0 means the peer closed the connection. */
  bytes: number;
  /** File descriptors received with SCM_RIGHTS alongside these bytes. */
  fds: number[];
  /** MSG_CTRUNC: the sender attached more fds than the control buffer holds. */
  ctrunc: boolean;
}

export interface PollHandle {
  /** Stops watching; idempotent. Does not close the fd. */
  stop(): void;
}

export const POLL_READABLE = 1;
export const POLL_WRITABLE = 2;
export const POLL_DISCONNECT = 4;

export interface NativeShim {
  /** socket(AF_UNIX, SOCK_STREAM)+bind+listen at path (an existing socket file is NOT removed). */
  unixListen(path: string, backlog: number): number;
  /** accept4 on a listening fd; null when no connection is pending (EAGAIN). */
  unixAccept(listenFd: number): number | null;
  /** Blocking-free connect to a Unix stream socket path (connect on a non-blocking socket; ECONNREFUSED/ENOENT throw). */
  unixConnect(path: string): number;
  /** socketpair(AF_UNIX, SOCK_STREAM) for tests. */
  socketPair(): [number, number];
  /** recvmsg into buf[offset..offset+length) with room for maxFds fds. */
  recvmsg(fd: number, buf: Uint8Array, offset: number, length: number, maxFds: number): RecvResult | null;
  /** sendmsg of data with fds as SCM_RIGHTS; returns bytes written (may be short); null on EAGAIN. */
  sendmsg(fd: number, data: Uint8Array, fds: readonly number[]): number | null;
  /** mmap(MAP_SHARED) of length bytes at file offset; prot bit0=read bit1=write. External ArrayBuffer, no copy. */
  mmap(fd: number, length: number, offset: bigint, prot: number): ArrayBuffer;
  /** munmap of an ArrayBuffer returned by mmap; afterwards the buffer is detached (byteLength 0). */
  munmap(buf: ArrayBuffer): void;
  /** eventfd(initval, EFD_CLOEXEC|EFD_NONBLOCK). */
  eventfd(initval: number): number;
  /** write(2) of an 8-byte counter value to an eventfd. */
  eventfdWrite(fd: number, value: bigint): void;
  /** read(2) of an eventfd counter; null when the counter is 0 (EAGAIN). */
  eventfdRead(fd: number): bigint | null;
  /** memfd_create(name, MFD_CLOEXEC) + ftruncate(size), for tests and shared guest RAM. */
  memfdCreate(name: string, size: number): number;
  /** uv_poll on fd; callback(events) with POLL_* bits, or (0, errno) on a poll error. */
  poll(fd: number, events: number, callback: (events: number, errno: number) => void): PollHandle;
  /** close(2). */
  close(fd: number): void;
  /** fstat size of a file descriptor (st_size). */
  fdSize(fd: number): number;
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
