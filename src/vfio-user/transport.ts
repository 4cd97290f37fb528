/**
 * A vfio-user message channel over one connected AF_UNIX stream socket, driven by the
 * event loop (uv_poll through the native shim): it never blocks.
 *
 * Receive: on POLL_READABLE, recvmsg in a bounded loop (READ_BUDGET calls per wake-up, so one
 * busy peer cannot starve the loop; level-triggered polling brings us back), feed the framer,
 * hand every whole message to onMessage in order. A peer hang-up, a recvmsg error, control
 * truncation (MSG_CTRUNC: the peer sent more fds than we accept) or a fatal framing error
 * closes the channel; every fd received but not handed out is closed.
 *
 * Send: messages are queued; the queue is written until the socket says EAGAIN or writes
 * short, then POLL_WRITABLE is added to the watch until the queue drains. A message's fds ride
 * with its first byte. The caller keeps ownership of the fds it sends (the kernel duplicates
 * them into the peer). Back-pressure: while more than QUEUE_HIGH_WATER bytes wait to be
 * written (a peer that sends requests but does not read replies), input is not read until the
 * queue drains below QUEUE_LOW_WATER.
 */
import { POLL_DISCONNECT, POLL_READABLE, POLL_WRITABLE, type NativeShim, type PollHandle } from '../native/index.js';
import { MessageFramer, type FramedMessage, type FramerOptions, type FramingError } from './framer.js';
import type { Logger } from '../util/log.js';

/** Linux errno values the poll callback reports for a peer's reset (asm-generic/errno.h). */
const ECONNRESET = 104;
const EPIPE = 32;

export type ChannelNative = Pick<NativeShim, 'recvmsg' | 'sendmsg' | 'poll' | 'close'>;

export interface ChannelOptions {
  fd: number;
  native: ChannelNative;
  framer: FramerOptions;
  onMessage(msg: FramedMessage): void;
  /** called once when the channel closes (after the socket fd is closed) */
  onClose(reason: string, error: Error | null): void;
  /** a fatal framing error, before the channel closes (lets the owner log or reply) */
  onFramingError?(error: FramingError): void;
  log: Logger;
  recvBufferSize?: number;
}

/** recvmsg calls per readable wake-up. */
const READ_BUDGET = 64;
const DEFAULT_RECV_BUFFER = 256 * 1024;
/** Output queue size above which input is no longer read, and below which it resumes. */
const QUEUE_HIGH_WATER = 8 << 20;
const QUEUE_LOW_WATER = 1 << 20;
/** How long closeAfterFlush waits for the peer to take queued output. */
const CLOSE_LINGER_MS = 2000;

interface Outgoing {
  bytes: Uint8Array;
  written: number;
  fds: readonly number[];
}

export class MessageChannel {
  private readonly native: ChannelNative;
  private readonly framer: MessageFramer;
  private readonly recvBuffer: Uint8Array;
  private readonly queue: Outgoing[] = [];
  private watch: PollHandle | null = null;
  /** the POLL_* set the current watch was started with */
  private watchedEvents = 0;
  /** bytes in the queue not yet written */
  private queued = 0;
  /** reading stopped because the peer does not take our replies (back-pressure) */
  private readPaused = false;
  private closing = false;
  private closed = false;
  private closeReason = 'closed';
  private lingerTimer: NodeJS.Timeout | null = null;
  private readonly fd: number;

  constructor(private readonly options: ChannelOptions) {
    this.fd = options.fd;
    this.native = options.native;
    this.framer = new MessageFramer(options.framer);
    this.recvBuffer = new Uint8Array(options.recvBufferSize ?? DEFAULT_RECV_BUFFER);
    this.updateWatch();
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Bytes queued but not yet written. */
  get queuedBytes(): number {
    return this.queued;
  }

  /** True while reading is paused because too much output is queued. */
  get isReadPaused(): boolean {
    return this.readPaused;
  }

  /** Queues one whole message; written as soon as the socket accepts it. */
  send(bytes: Uint8Array, fds: readonly number[] = []): void {
    if (this.closed || this.closing) return;
    const idle = this.queue.length === 0;
    this.queue.push({ bytes, written: 0, fds });
    this.queued += bytes.length;
    // With output already pending we are waiting for POLL_WRITABLE; writing now would only EAGAIN.
    if (idle) this.flush();
    else this.updateBackPressure();
  }

  /** Stops reading, flushes what is queued, then closes. */
  closeAfterFlush(reason: string): void {
    if (this.closed) return;
    this.closing = true;
    this.closeReason = reason;
    if (this.queue.length === 0) {
      this.close(reason);
      return;
    }
    this.updateWatch(); // writable only
    // A peer that never reads must not keep the connection (and its resources) alive.
    this.lingerTimer = setTimeout(() => this.close(`${reason} (output not drained)`), CLOSE_LINGER_MS);
    this.lingerTimer.unref();
  }

  /** Closes now (queued output is dropped). Idempotent. */
  close(reason: string, error: Error | null = null): void {
    if (this.closed) return;
    this.closed = true;
    if (this.lingerTimer) clearTimeout(this.lingerTimer);
    this.watch?.stop();
    this.watch = null;
    this.queue.length = 0;
    this.queued = 0;
    for (const fd of this.framer.takePendingFds()) this.closeQuietly(fd);
    this.closeQuietly(this.fd);
    this.options.onClose(reason, error);
  }

  // --- event handling -------------------------------------------------------------------

  private onPoll(events: number, errno: number): void {
    if (this.closed) return;
    if (errno !== 0) {
      // A peer that closes with data of ours still unread resets the connection: the poll then
      // reports the socket's ECONNRESET (native poll(); libuv itself would call it EBADF).
      if (errno === ECONNRESET || errno === EPIPE) this.close('peer reset the connection', null);
      else this.close(`poll error ${errno}`, new Error(`poll error errno ${errno}`));
      return;
    }
    if (events & POLL_WRITABLE) this.flush();
    if (!this.closed && !this.closing && events & (POLL_READABLE | POLL_DISCONNECT)) this.readSome();
  }

  private readSome(): void {
    for (let i = 0; i < READ_BUDGET && !this.closed && !this.closing && !this.readPaused; i++) {
      let r: ReturnType<ChannelNative['recvmsg']>;
      try {
        r = this.native.recvmsg(
          this.fd,
          this.recvBuffer,
          0,
          this.recvBuffer.length,
          this.options.framer.maxFdsPerMessage,
        );
      } catch (err) {
        this.close('recvmsg failed', err as Error);
        return;
      }
      if (r === null) return; // drained (EAGAIN)
      if (r.ctrunc) {
        for (const fd of r.fds) this.closeQuietly(fd);
        this.options.log.warn({ fds: r.fds.length }, 'vfio_user_recv_ctrunc');
        this.close('peer sent more fds than accepted (MSG_CTRUNC)', null);
        return;
      }
      if (r.bytes === 0) {
        for (const fd of r.fds) this.closeQuietly(fd);
        this.close('peer closed the connection', null);
        return;
      }
      const out = this.framer.push(this.recvBuffer.subarray(0, r.bytes), r.fds);
      this.deliver(out.messages);
      if (out.error) {
        // The owner may queue a last error reply; it is flushed before the socket closes.
        this.options.onFramingError?.(out.error);
        this.closeAfterFlush(`framing error: ${out.error.message}`);
        return;
      }
    }
  }

  private deliver(messages: FramedMessage[]): void {
    for (let i = 0; i < messages.length; i++) {
      const msg = messages[i]!;
      if (this.closed || this.closing) {
        // The owner closed the channel while handling an earlier message: drop the rest.
        for (const fd of msg.fds) this.closeQuietly(fd);
        continue;
      }
      try {
        this.options.onMessage(msg);
      } catch (err) {
        this.options.log.error({ err }, 'vfio_user_message_handler_threw');
        this.close('message handler threw', err as Error);
      }
    }
  }

  private flush(): void {
    while (this.queue.length > 0 && !this.closed) {
      const head = this.queue[0]!;
      let n: number | null;
      try {
        n = this.native.sendmsg(this.fd, head.bytes.subarray(head.written), head.written === 0 ? head.fds : []);
      } catch (err) {
        this.close('sendmsg failed', err as Error);
        return;
      }
      if (n === null) break; // EAGAIN: wait for POLL_WRITABLE
      head.written += n;
      this.queued -= n;
      if (head.written < head.bytes.length) continue; // short write: try the rest
      this.queue.shift();
    }
    if (this.closed) return;
    if (this.queue.length === 0 && this.closing) {
      this.close(this.closeReason);
      return;
    }
    this.updateBackPressure();
  }

  /**
   * Back-pressure with hysteresis: a peer that sends requests without reading the replies must
   * not make the queue grow without bound. Also refreshes the watch (POLL_WRITABLE while queued).
   */
  private updateBackPressure(): void {
    if (!this.readPaused && this.queued > QUEUE_HIGH_WATER) {
      this.readPaused = true;
      this.options.log.warn({ queued: this.queued }, 'vfio_user_peer_not_reading_pausing_input');
    } else if (this.readPaused && this.queued <= QUEUE_LOW_WATER) {
      this.readPaused = false;
    }
    this.updateWatch();
  }

  /** libuv allows one watch per fd: changing the event set means stop + start. */
  private updateWatch(): void {
    if (this.closed) return;
    const reading = !this.closing && !this.readPaused;
    const events = (reading ? POLL_READABLE | POLL_DISCONNECT : 0) | (this.queue.length > 0 ? POLL_WRITABLE : 0);
    if (events === this.watchedEvents && (this.watch !== null || events === 0)) return;
    this.watch?.stop();
    this.watch = null;
    this.watchedEvents = events;
    if (events === 0) return;
    try {
      this.watch = this.native.poll(this.fd, events, (ev, errno) => this.onPoll(ev, errno));
    } catch (err) {
      this.close('poll failed', err as Error);
    }
  }

  private closeQuietly(fd: number): void {
    try {
      this.native.close(fd);
    } catch (err) {
      this.options.log.warn({ fd, err }, 'fd_close_failed');
    }
  }
}
