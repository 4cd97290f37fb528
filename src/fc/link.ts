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
 * Taps see every frame sent ('tx') and received ('rx') — the pcap writer uses them.
 *
 * Output to socket peers is bounded, since a peer can send requests and never read the answers:
 * per link (MAX_UNREAD_BYTES), for all socket links together (OUTPUT_BUDGET_BYTES: past it the
 * link with the most unread output is dropped), and in time (a link whose queued output makes no
 * progress for STALL_MS is dropped, so a peer that stops reading and sending frees its memory).
 * Who may connect, and whom a port connects to: docs/security.md.
 */
import { EventEmitter } from 'node:events';
import net from 'node:net';
import { native } from '../native/index.js';
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

export interface LinkEvents {
  frame: [frame: Uint8Array];
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

  protected abstract transmit(frame: Uint8Array): void;
  protected abstract shutdown(): void;
}

/**
 * Splits a byte stream into length-prefixed frames. Checks each length before buffering the
 * frame, so a hostile peer cannot make it allocate more than one maximum frame.
 */
export class FrameStreamDecoder {
  private pending: Buffer = Buffer.alloc(0);

  /** Feed bytes; returns the complete frames, or throws RangeError on a bad length. */
  push(chunk: Uint8Array): Uint8Array[] {
    this.pending = this.pending.length === 0 ? Buffer.from(chunk) : Buffer.concat([this.pending, chunk]);
    const frames: Uint8Array[] = [];
    let at = 0;
    while (this.pending.length - at >= LINK_LENGTH_PREFIX) {
      const length = this.pending.readUInt32BE(at);
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
  private readonly decoder = new FrameStreamDecoder();
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

  protected transmit(frame: Uint8Array): void {
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
    const bytes = encodeLinkFrame(frame);
    this.written += bytes.length;
    this.socket.write(bytes);
    outputBudget.update(this, this.queuedBytes);
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
    this.stallTimer = setTimeout(() => {
      this.stallTimer = null;
      if (!this.isUp) return;
      const queued = this.queuedBytes;
      outputBudget.update(this, queued);
      if (queued === 0) return;
      if (this.written - queued > this.flushedAtCheck) {
        this.armStallCheck(); // the peer is reading, slowly
        return;
      }
      this.close(`peer is not reading: ${queued} bytes unread for ${limits.stallMs} ms`);
    }, limits.stallMs);
    this.stallTimer.unref?.();
  }

  protected shutdown(): void {
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

  /** Frames sent this turn, delivered together (in order) on the next turn. */
  private outbox: Uint8Array[] = [];

  protected transmit(frame: Uint8Array): void {
    // Delivering a turn's frames in one callback lets the receiver's own sends of that callback
    // leave together too (SocketLink corks until the callback ends).
    if (this.outbox.length === 0) {
      const peer = this.peer;
      setImmediate(() => {
        const frames = this.outbox;
        this.outbox = [];
        for (const f of frames) peer.deliverFromPeer(f);
      });
    }
    this.outbox.push(frame.slice());
  }

  deliverFromPeer(frame: Uint8Array): void {
    this.deliver(frame);
  }

  protected shutdown(): void {
    const peer = this.peer;
    setImmediate(() => peer.close('peer closed the link'));
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
 * the port's FLOGI, nor answer it.
 */
export function connectLink(path: string, options: ConnectLinkOptions = {}): Promise<SocketLink> {
  return new Promise((resolve, reject) => {
    const socket = net.createConnection({ path });
    const onError = (err: Error): void => reject(err);
    socket.once('error', onError);
    socket.once('connect', () => {
      socket.off('error', onError);
      try {
        const fd = netSocketFd(socket);
        if (fd === null) throw new Error(`link to ${path}: the socket's fd is not available to check who listens`);
        checkListenerCred(native.peerCred(fd), path, options.allowedUids ?? [], options.ownerOption ?? '--san-owner');
      } catch (err) {
        socket.destroy();
        reject(err as Error);
        return;
      }
      resolve(new SocketLink(socket, `link to ${path}`));
    });
  });
}
