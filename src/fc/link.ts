/**
 * Links: how an N_Port (an HBA's port, an array's target port) attaches to the simulated fabric.
 *
 * On a Unix stream socket each frame travels as a 4-byte big-endian length N followed by N bytes:
 * the 24-byte FC-2 header and the data field (no SOF/EOF/CRC). One socket connection is one
 * physical link; the peer is hostile, so a length outside [24, 24 + 2112] closes the link (the peer
 * sees link down) instead of being trusted. In-process peers use `linkPair()`, which delivers
 * asynchronously so neither side re-enters the other.
 *
 * A link emits 'frame' (a Uint8Array of its own, never reused by the link; listeners must not
 * modify it) and, exactly once, 'down' (reason).
 *
 * Beside frames a link carries control messages between the HBA and the SAN (data-path grants,
 * src/fc/data-path-grant.ts): on a socket, a length word with its top bit set (CONTROL_FLAG)
 * followed by at most MAX_CONTROL_LENGTH bytes. They are not FC frames: taps and the fabric's
 * frame counters never see them. A control message may bring file descriptors (SCM_RIGHTS); the
 * receiver owns them ('control' listeners must close what they do not keep). Only a link that
 * reads its socket with recvmsg (NativeSocketLink, the connecting side) can receive them.
 * Taps see every frame sent ('tx') and received ('rx') — the pcap writer uses them.
 *
 * Output to socket peers is bounded, since a peer can send requests and never read the answers:
 * per link (MAX_UNREAD_BYTES), for all socket links together (OUTPUT_BUDGET_BYTES: past it the
 * link with the most unread output is dropped), and in time (a link whose queued output makes no
 * progress for STALL_MS is dropped, so a peer that stops reading and sending frees its memory).
 * Who may connect, and whom a port connects to: docs/security.md.
 */
import { EventEmitter } from 'node:events';
import type net from 'node:net';
import {
  NativeError,
  native,
  POLL_DISCONNECT,
  POLL_READABLE,
  POLL_WRITABLE,
  type PollHandle,
} from '../native/index.js';
import { checkListenerCred, netSocketFd } from '../util/private-socket.js';
import { FC_HEADER_SIZE, FC_MAX_FRAME } from './frame.js';

export const LINK_LENGTH_PREFIX = 4;
/**
 * Bytes queued for one socket peer beyond which the link is taken down at once. Queued output is
 * data the peer asked for: a reading initiator may have many READs of up to 8 MiB outstanding
 * (Linux readahead alone issues two when a LUN reports an 8 MiB optimal transfer length), so this
 * is a ceiling against abuse, not flow control; a peer that stops reading is dropped by the stall
 * check long before a healthy one nears it. 16 MiB here dropped a guest's sequential read.
 */
export const MAX_UNREAD_BYTES = 512 * 1024 * 1024;
/** Bytes queued for all socket peers together; past it the link with the most unread output goes. */
export const OUTPUT_BUDGET_BYTES = 1024 * 1024 * 1024;
/** A link whose queued output has not moved for this long is taken down (R_A_TOV). */
export const STALL_MS = 10_000;

export interface LinkOutputLimits {
  perLinkBytes: number;
  totalBytes: number;
  stallMs: number;
}

const limits: LinkOutputLimits = { perLinkBytes: MAX_UNREAD_BYTES, totalBytes: OUTPUT_BUDGET_BYTES, stallMs: STALL_MS };

/** Change the output bounds of socket links (tests; a SAN with unusual memory); returns the previous ones. */
export function setLinkOutputLimits(next: Partial<LinkOutputLimits>): LinkOutputLimits {
  const prev = { ...limits };
  Object.assign(limits, next);
  return prev;
}

/**
 * The output of every socket link in this process. Each link's share is its socket's
 * writableLength as last seen (after a write, after its turn's writev, 0 on 'drain'); the sum can
 * only overstate what is queued, so it is recomputed exactly before anyone is dropped.
 */
class OutputBudget {
  private readonly links = new Set<SocketLink>();
  private total = 0;
  private evictionScheduled = false;

  add(link: SocketLink): void {
    this.links.add(link);
  }

  remove(link: SocketLink): void {
    if (this.links.delete(link)) this.total -= link.accounted;
    link.accounted = 0;
  }

  update(link: SocketLink, queued: number): void {
    if (!this.links.has(link)) return;
    this.total += queued - link.accounted;
    link.accounted = queued;
    if (this.total > limits.totalBytes && !this.evictionScheduled) {
      // Not from inside this send: the fabric may be in the middle of routing a frame.
      this.evictionScheduled = true;
      process.nextTick(() => this.evict());
    }
  }

  /** Bytes queued for socket peers in this process (exact). */
  queuedBytes(): number {
    let sum = 0;
    for (const l of this.links) sum += l.queuedBytes;
    return sum;
  }

  private evict(): void {
    this.evictionScheduled = false;
    let sum = 0;
    for (const l of this.links) {
      l.accounted = l.queuedBytes;
      sum += l.accounted;
    }
    this.total = sum;
    // Bounded: every round closes (and so removes) one link.
    while (this.total > limits.totalBytes && this.links.size > 0) {
      let worst: SocketLink | null = null;
      for (const l of this.links) if (!worst || l.accounted > worst.accounted) worst = l;
      if (!worst || worst.accounted === 0) break;
      const queued = worst.accounted;
      worst.close(
        `peer is not reading: ${queued} bytes unread while all links together had more than ${limits.totalBytes}`,
      );
      this.remove(worst); // close() removes it too; this keeps the loop finite regardless
    }
  }
}

const outputBudget = new OutputBudget();

/** Bytes currently queued for socket link peers in this process. */
export function linkOutputQueued(): number {
  return outputBudget.queuedBytes();
}

export type LinkDirection = 'tx' | 'rx';
export type LinkTap = (direction: LinkDirection, frame: Uint8Array) => void;

/** Length-word bit marking a control message rather than a frame. */
export const CONTROL_FLAG = 0x8000_0000;
/** Largest control message body. */
export const MAX_CONTROL_LENGTH = 1024;
/** Descriptors a link holds for control messages not yet decoded; more is a protocol error. */
const MAX_PENDING_FDS = 4;
/**
 * First byte of the control messages that bring a descriptor (a data-path grant): the receiving
 * link pairs each with the next descriptor that arrived. Defined here, used by data-path-grant.ts.
 */
export const CONTROL_WITH_FD = 0x02;

export interface LinkEvents {
  frame: [frame: Uint8Array];
  /** A control message and the descriptors that came with it (now the listener's to close). */
  control: [message: Uint8Array, fds: number[]];
  down: [reason: string];
}

export abstract class Link extends EventEmitter<LinkEvents> {
  private readonly taps = new Set<LinkTap>();
  private downReason: string | null = null;

  constructor(readonly description: string) {
    super();
  }

  get isUp(): boolean {
    return this.downReason === null;
  }

  addTap(tap: LinkTap): () => void {
    this.taps.add(tap);
    return () => this.taps.delete(tap);
  }

  /** Send one frame (header + payload). Returns false when the link is down (the frame is dropped). */
  send(frame: Uint8Array): boolean {
    if (!this.isUp) return false;
    if (frame.length < FC_HEADER_SIZE || frame.length > FC_MAX_FRAME) {
      throw new RangeError(`frame of ${frame.length} bytes is outside ${FC_HEADER_SIZE}..${FC_MAX_FRAME}`);
    }
    for (const tap of this.taps) tap('tx', frame);
    this.transmit(frame);
    return true;
  }

  /**
   * Send a control message, with descriptors to pass (each is duplicated for the peer; the caller
   * keeps its own). Returns false when the link is down or cannot carry it.
   */
  sendControl(message: Uint8Array, fds: readonly number[] = []): boolean {
    if (!this.isUp) return false;
    if (message.length === 0 || message.length > MAX_CONTROL_LENGTH)
      throw new RangeError(`control message of ${message.length} bytes is outside 1..${MAX_CONTROL_LENGTH}`);
    return this.transmitControl(message, fds);
  }

  /** Whether descriptors sent with sendControl reach the peer. */
  get passesFds(): boolean {
    return false;
  }

  /** Take the link down; idempotent. */
  close(reason = 'closed locally'): void {
    if (!this.isUp) return;
    this.downReason = reason;
    this.shutdown();
    this.emit('down', reason);
  }

  protected deliver(frame: Uint8Array): void {
    if (!this.isUp) return;
    for (const tap of this.taps) tap('rx', frame);
    this.emit('frame', frame);
  }

  /** Hands a control message to listeners; without one, its descriptors are closed. */
  protected deliverControl(message: Uint8Array, fds: number[]): void {
    if (!this.isUp || this.listenerCount('control') === 0) {
      for (const fd of fds) closeQuietly(fd);
      return;
    }
    this.emit('control', message, fds);
  }

  protected abstract transmit(frame: Uint8Array): void;
  protected abstract shutdown(): void;
  /** Links that cannot carry control messages refuse them. */
  protected transmitControl(_message: Uint8Array, _fds: readonly number[]): boolean {
    return false;
  }
}

function closeQuietly(fd: number): void {
  try {
    native.close(fd);
  } catch {
    /* already closed */
  }
}

function encodeControl(message: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(LINK_LENGTH_PREFIX + message.length);
  out.writeUInt32BE((CONTROL_FLAG | message.length) >>> 0, 0);
  out.set(message, LINK_LENGTH_PREFIX);
  return out;
}

/**
 * Splits a byte stream into length-prefixed frames. Checks each length before buffering the
 * frame, so a hostile peer cannot make it allocate more than one maximum frame.
 */
export class FrameStreamDecoder {
  private pending: Buffer = Buffer.alloc(0);

  /** With onControl, control messages are handed to it (in stream order); without, they are an error. */
  constructor(private readonly onControl?: (message: Uint8Array) => void) {}

  /** Feed bytes; returns the complete frames, or throws RangeError on a bad length. */
  push(chunk: Uint8Array): Uint8Array[] {
    this.pending = this.pending.length === 0 ? Buffer.from(chunk) : Buffer.concat([this.pending, chunk]);
    const frames: Uint8Array[] = [];
    let at = 0;
    while (this.pending.length - at >= LINK_LENGTH_PREFIX) {
      const word = this.pending.readUInt32BE(at);
      if (word & CONTROL_FLAG && this.onControl) {
        const length = word & ~CONTROL_FLAG;
        if (length === 0 || length > MAX_CONTROL_LENGTH)
          throw new RangeError(`link control message length ${length} is outside 1..${MAX_CONTROL_LENGTH}`);
        if (this.pending.length - at - LINK_LENGTH_PREFIX < length) break;
        const start = at + LINK_LENGTH_PREFIX;
        this.onControl(new Uint8Array(this.pending.subarray(start, start + length)));
        at = start + length;
        continue;
      }
      const length = word;
      if (length < FC_HEADER_SIZE || length > FC_MAX_FRAME) {
        throw new RangeError(`link frame length ${length} is outside ${FC_HEADER_SIZE}..${FC_MAX_FRAME}`);
      }
      if (this.pending.length - at - LINK_LENGTH_PREFIX < length) break;
      const start = at + LINK_LENGTH_PREFIX;
      frames.push(new Uint8Array(this.pending.subarray(start, start + length)));
      at = start + length;
    }
    this.pending = Buffer.from(this.pending.subarray(at));
    return frames;
  }

  get bufferedBytes(): number {
    return this.pending.length;
  }
}

export function encodeLinkFrame(frame: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(LINK_LENGTH_PREFIX + frame.length);
  out.writeUInt32BE(frame.length, 0);
  out.set(frame, LINK_LENGTH_PREFIX);
  return out;
}

/** A link over a connected stream socket. */
export class SocketLink extends Link {
  private readonly decoder = new FrameStreamDecoder((m) => this.deliverControl(m, []));
  /** Control messages with descriptors waiting for the socket's queue to empty (see transmitControl). */
  private readonly fdMessages: { bytes: Buffer; fds: number[]; deadline: number }[] = [];
  private fdFlushScheduled = false;
  /** Frames sent in one turn of the event loop leave in one writev (see transmit). */
  private corked = false;
  /** This link's share of the output budget as last recorded (OutputBudget's bookkeeping). */
  accounted = 0;
  /** Bytes handed to the socket so far, and how many of them had left at the last stall check. */
  private written = 0;
  private flushedAtCheck = 0;
  private stallTimer: NodeJS.Timeout | null = null;

  constructor(
    private readonly socket: net.Socket,
    description = 'socket link',
  ) {
    super(description);
    outputBudget.add(this);
    socket.on('data', (chunk) => this.onData(chunk));
    socket.on('error', (err) => this.close(`socket error: ${err.message}`));
    socket.on('close', () => this.close('peer closed the link'));
    socket.on('end', () => this.close('peer closed the link'));
    socket.on('drain', () => outputBudget.update(this, this.queuedBytes));
  }

  /** Bytes written to this link that the peer has not taken yet (still in this process). */
  get queuedBytes(): number {
    return this.socket.destroyed ? 0 : this.socket.writableLength;
  }

  private onData(chunk: Buffer): void {
    let frames: Uint8Array[];
    try {
      frames = this.decoder.push(chunk);
    } catch (err) {
      this.close(`protocol error: ${(err as Error).message}`);
      return;
    }
    for (const f of frames) this.deliver(f);
  }

  protected transmit(frame: Uint8Array, encoded = false): void {
    // A peer that stops reading must not make this process buffer without bound.
    if (this.socket.writableLength > limits.perLinkBytes) {
      this.close(`peer is not reading (more than ${limits.perLinkBytes} bytes unread)`);
      return;
    }
    // A sequence (FCP_DATA frames + FCP_RSP, a CT response…) is sent frame by frame in one turn:
    // corking until the turn ends makes it one writev instead of a syscall per frame, which the
    // CPU profiles showed as the largest single cost of the SAN process.
    if (!this.corked) {
      this.corked = true;
      this.socket.cork();
      process.nextTick(() => {
        this.corked = false;
        this.socket.uncork();
        this.afterWrite();
      });
    }
    const bytes = encoded ? (frame as Buffer) : encodeLinkFrame(frame);
    this.written += bytes.length;
    this.socket.write(bytes);
    outputBudget.update(this, this.queuedBytes);
  }

  override get passesFds(): boolean {
    return netSocketFd(this.socket) !== null;
  }

  /**
   * Without descriptors a control message goes like a frame. With them it must leave by
   * sendmsg(SCM_RIGHTS) on the socket's fd, which is only in order once everything written
   * through the stream has reached the kernel: it waits (a few turns, bounded by STALL_MS) until
   * the stream's queue is empty. The descriptors are duplicated now, so the caller keeps its own.
   */
  protected override transmitControl(message: Uint8Array, fds: readonly number[]): boolean {
    // Control messages keep their order among themselves (a REVOKE must not overtake its GRANT):
    // one without descriptors waits behind any that is waiting.
    if (fds.length === 0 && this.fdMessages.length === 0) {
      this.transmit(encodeControl(message), true);
      return true;
    }
    if (netSocketFd(this.socket) === null) return false;
    this.fdMessages.push({
      bytes: encodeControl(message),
      fds: fds.map((fd) => native.dup(fd)),
      deadline: Date.now() + limits.stallMs,
    });
    this.scheduleFdFlush();
    return true;
  }

  private scheduleFdFlush(): void {
    if (this.fdFlushScheduled) return;
    this.fdFlushScheduled = true;
    setImmediate(() => {
      this.fdFlushScheduled = false;
      this.flushFdMessages();
    });
  }

  private flushFdMessages(): void {
    while (this.fdMessages.length > 0 && this.isUp) {
      const m = this.fdMessages[0]!;
      const fd = netSocketFd(this.socket);
      if (fd === null) break;
      if (this.corked || this.socket.writableLength > 0) {
        if (Date.now() > m.deadline) {
          this.close('control message with descriptors could not be sent: the link never went idle');
          return;
        }
        this.scheduleFdFlush();
        return;
      }
      let sent: number | null;
      try {
        sent = native.sendmsg(fd, m.bytes, m.fds);
      } catch (err) {
        this.close(`socket error: ${(err as Error).message}`);
        return;
      }
      if (sent === null) {
        this.scheduleFdFlush(); // EAGAIN: the socket buffer is full, try again next turn
        return;
      }
      this.fdMessages.shift();
      for (const d of m.fds) closeQuietly(d);
      // The descriptors left with the first byte; the rest follows through the stream, in order.
      if (sent < m.bytes.length) this.socket.write(m.bytes.subarray(sent));
    }
  }

  /** After a turn's frames left: record what is still queued, and watch it for progress. */
  private afterWrite(): void {
    if (!this.isUp) return;
    const queued = this.queuedBytes;
    outputBudget.update(this, queued);
    if (queued > 0 && this.stallTimer === null) this.armStallCheck();
  }

  private armStallCheck(): void {
    this.flushedAtCheck = this.written - this.queuedBytes;
    const armedAt = Date.now();
    this.stallTimer = setTimeout(() => {
      // Decided after this turn's I/O callbacks: when a busy or starved event loop wakes up, its
      // timers run before the poll phase that would show the peer's reads.
      setImmediate(() => this.checkStall(armedAt));
    }, limits.stallMs);
    this.stallTimer.unref?.();
  }

  private checkStall(armedAt: number): void {
    this.stallTimer = null;
    if (!this.isUp) return;
    const queued = this.queuedBytes;
    outputBudget.update(this, queued);
    if (queued === 0) return;
    if (this.written - queued > this.flushedAtCheck) {
      this.armStallCheck(); // the peer is reading, slowly
      return;
    }
    // This process, not the peer, was late by more than half a period (blocked or starved of
    // CPU): the peer may not have had its time to read. Give it another period.
    if (Date.now() - armedAt > limits.stallMs * 1.5) {
      this.armStallCheck();
      return;
    }
    this.close(`peer is not reading: ${queued} bytes unread for ${limits.stallMs} ms`);
  }

  protected shutdown(): void {
    for (const m of this.fdMessages.splice(0)) for (const d of m.fds) closeQuietly(d);
    if (this.stallTimer) clearTimeout(this.stallTimer);
    this.stallTimer = null;
    // Frames sent earlier in this turn (a LOGO before closing, say) still leave: hand them to
    // the socket before it is destroyed, as an uncorked write would have done.
    if (this.corked) {
      this.corked = false;
      this.socket.uncork();
    }
    this.socket.destroy();
    outputBudget.remove(this);
  }
}

/** An in-process link: two ends, each delivering to the other on a later turn of the event loop. */
class MemoryLinkEnd extends Link {
  peer!: MemoryLinkEnd;

  /** Frames (and control messages) sent this turn, delivered together (in order) on the next turn. */
  private outbox: (Uint8Array | { message: Uint8Array; fds: number[] })[] = [];

  protected transmit(frame: Uint8Array): void {
    this.post(frame.slice());
  }

  override get passesFds(): boolean {
    return true;
  }

  protected override transmitControl(message: Uint8Array, fds: readonly number[]): boolean {
    // The receiver owns what it gets, as with SCM_RIGHTS: it gets duplicates.
    this.post({ message: message.slice(), fds: fds.map((fd) => native.dup(fd)) });
    return true;
  }

  private post(item: Uint8Array | { message: Uint8Array; fds: number[] }): void {
    // Delivering a turn's frames in one callback lets the receiver's own sends of that callback
    // leave together too (SocketLink corks until the callback ends).
    if (this.outbox.length === 0) {
      const peer = this.peer;
      setImmediate(() => {
        const items = this.outbox;
        this.outbox = [];
        for (const it of items) {
          if (it instanceof Uint8Array) peer.deliverFromPeer(it);
          else peer.deliverControl(it.message, it.fds);
        }
      });
    }
    this.outbox.push(item);
  }

  deliverFromPeer(frame: Uint8Array): void {
    this.deliver(frame);
  }

  protected shutdown(): void {
    const peer = this.peer;
    setImmediate(() => peer.close('peer closed the link'));
  }
}

/**
 * The connecting side's socket link, read and written with recvmsg/sendmsg through the native
 * shim instead of a net.Socket: a stream socket read with read(2) (as libuv does) silently closes
 * descriptors that arrive with SCM_RIGHTS, and data-path grants bring the volume's descriptor.
 * Output sent in one turn leaves in one sendmsg; what the socket does not take waits for POLLOUT
 * and is bounded like SocketLink's (MAX_UNREAD_BYTES).
 */
export class NativeSocketLink extends Link {
  private readonly decoder = new FrameStreamDecoder((m) => this.onControl(m));
  private readonly rx = new Uint8Array(256 * 1024);
  /** Descriptors received and not yet claimed by a control message (FIFO: one per grant). */
  private readonly fds: number[] = [];
  private turn: Uint8Array[] = [];
  private turnScheduled = false;
  private backlog: Uint8Array | null = null;
  private watch: PollHandle | null = null;
  private watchingOut = false;

  constructor(
    private readonly fd: number,
    description = 'native socket link',
  ) {
    super(description);
    this.rewatch(false);
  }

  override get passesFds(): boolean {
    return true;
  }

  /** Bytes of this turn's output not yet handed to the socket (kept as a sum: no walk per frame). */
  private turnBytes = 0;

  get queuedBytes(): number {
    return (this.backlog?.length ?? 0) + this.turnBytes;
  }

  private onControl(message: Uint8Array): void {
    // Data-path grants (the only messages with a descriptor) carry exactly one, in send order.
    const fds = message[0] === CONTROL_WITH_FD ? [this.fds.shift()].filter((f): f is number => f !== undefined) : [];
    this.deliverControl(message, fds);
  }

  private rewatch(out: boolean): void {
    this.watch?.stop();
    this.watchingOut = out;
    this.watch = native.poll(this.fd, POLL_READABLE | (out ? POLL_WRITABLE : 0), (events, errno) => {
      if (errno !== 0) return this.close(`socket poll error ${errno}`);
      if (events & POLL_READABLE || events & POLL_DISCONNECT) this.readSome();
      if (this.isUp && events & POLL_WRITABLE) this.flush();
    });
  }

  private readSome(): void {
    // A bounded number of reads per wake-up: the poll is level-triggered and calls again.
    for (let i = 0; i < 16 && this.isUp; i++) {
      let r: ReturnType<typeof native.recvmsg>;
      try {
        r = native.recvmsg(this.fd, this.rx, 0, this.rx.length, MAX_PENDING_FDS);
      } catch (err) {
        return this.close(`socket error: ${(err as Error).message}`);
      }
      if (r === null) return;
      if (r.fds.length > 0) {
        this.fds.push(...r.fds);
        if (this.fds.length > MAX_PENDING_FDS || r.ctrunc) {
          return this.close('protocol error: the peer sent descriptors no control message claims');
        }
      }
      if (r.bytes === 0) return this.close('peer closed the link');
      let frames: Uint8Array[];
      try {
        frames = this.decoder.push(this.rx.subarray(0, r.bytes));
      } catch (err) {
        return this.close(`protocol error: ${(err as Error).message}`);
      }
      for (const f of frames) this.deliver(f);
    }
  }

  protected transmit(frame: Uint8Array): void {
    this.queue(encodeLinkFrame(frame));
  }

  protected override transmitControl(message: Uint8Array, fds: readonly number[]): boolean {
    if (fds.length > 0) return false; // the HBA never sends descriptors
    this.queue(encodeControl(message));
    return true;
  }

  private queue(bytes: Uint8Array): void {
    if (this.queuedBytes > limits.perLinkBytes) {
      this.close(`peer is not reading (more than ${limits.perLinkBytes} bytes unread)`);
      return;
    }
    this.turn.push(bytes);
    this.turnBytes += bytes.length;
    if (this.turnScheduled) return;
    this.turnScheduled = true;
    process.nextTick(() => {
      this.turnScheduled = false;
      this.flush();
    });
  }

  private flush(): void {
    if (!this.isUp) return;
    if (this.turn.length > 0) {
      const parts = this.backlog ? [this.backlog, ...this.turn] : this.turn;
      this.backlog = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
      this.turn = [];
      this.turnBytes = 0;
    }
    const data = this.backlog;
    if (data === null) {
      if (this.watchingOut) this.rewatch(false);
      return;
    }
    let sent: number | null;
    try {
      sent = native.sendmsg(this.fd, data, []);
    } catch (err) {
      return this.close(`socket error: ${(err as Error).message}`);
    }
    const left = sent === null ? data : data.subarray(sent);
    this.backlog = left.length > 0 ? left : null;
    if ((this.backlog !== null) !== this.watchingOut) this.rewatch(this.backlog !== null);
  }

  protected shutdown(): void {
    this.watch?.stop();
    this.watch = null;
    // Frames sent earlier in this turn (a LOGO before closing, say) still leave, as far as the
    // socket takes them now.
    const parts = this.backlog ? [this.backlog, ...this.turn] : this.turn;
    if (parts.length > 0) {
      try {
        native.sendmsg(this.fd, parts.length === 1 ? parts[0]! : Buffer.concat(parts), []);
      } catch {
        /* the peer is gone */
      }
    }
    for (const fd of this.fds.splice(0)) closeQuietly(fd);
    this.turn = [];
    this.turnBytes = 0;
    this.backlog = null;
    closeQuietly(this.fd);
  }
}

export function linkPair(description = 'memory link'): [Link, Link] {
  const a = new MemoryLinkEnd(`${description} (a)`);
  const b = new MemoryLinkEnd(`${description} (b)`);
  a.peer = b;
  b.peer = a;
  return [a, b];
}

export interface ConnectLinkOptions {
  /** uids besides this one and root that may run the fabric at `path` (serve --san-owner) */
  allowedUids?: readonly number[];
  /** the option that would allow another uid, for the error message */
  ownerOption?: string;
}

/**
 * Connect to a fabric's link socket. Before the link is handed out (so before any frame is sent)
 * the listener's credentials are checked: a path squatted by another local user must not receive
 * the port's FLOGI, nor answer it. The link reads with recvmsg (NativeSocketLink), so it can
 * receive data-path grants.
 */
export async function connectLink(path: string, options: ConnectLinkOptions = {}): Promise<Link> {
  let fd: number;
  for (let attempt = 0; ; attempt++) {
    try {
      fd = native.unixConnect(path);
      break;
    } catch (err) {
      // A full listen backlog: the SAN is accepting, just not yet ours.
      if (err instanceof NativeError && err.code === 'EAGAIN' && attempt < CONNECT_RETRIES) {
        await new Promise((r) => setTimeout(r, CONNECT_RETRY_MS));
        continue;
      }
      throw err;
    }
  }
  try {
    checkListenerCred(native.peerCred(fd), path, options.allowedUids ?? [], options.ownerOption ?? '--san-owner');
  } catch (err) {
    native.close(fd);
    throw err;
  }
  return new NativeSocketLink(fd, `link to ${path}`);
}

const CONNECT_RETRIES = 50;
const CONNECT_RETRY_MS = 20;
