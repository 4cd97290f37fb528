/**
 * Stream framing for vfio-user (16-byte header whose size field counts the whole message)
 * over an AF_UNIX stream socket, with SCM_RIGHTS fds.
 *
 * Bytes arrive in arbitrary chunks (one chunk per recvmsg). Which message do received fds
 * belong to? Senders (QEMU, libvfio-user, our client) attach a message's fds to the sendmsg
 * that carries its first bytes, and never put bytes of two messages into one sendmsg; Linux's
 * unix_stream_read_generic() ends a read right after the skb that carried fds. So the fds of a
 * recvmsg always belong to the message holding the LAST byte of that chunk — that is the rule
 * applied here. Fds that would arrive for a message
 * that started in an earlier chunk are still attached to it; the dispatcher checks every
 * command's fd count and closes what it does not use.
 *
 * Fatal framing errors (the stream cannot be re-synchronised): a size below the header size,
 * a size above maxMessageSize, a message type this side never receives, or more fds piled on
 * one message than maxFdsPerMessage. After one, the framer refuses all further input; the
 * owner closes the connection and closes takePendingFds().
 */
import { HEADER, HEADER_FLAGS, messageType, type MessageHeader } from './protocol.js';

export interface FramedMessage {
  header: MessageHeader;
  /** the payload (bytes after the header): an owned copy, safe to keep */
  payload: Uint8Array;
  /** fds received with this message; the receiver owns them (must store or close each) */
  fds: number[];
}

export type FramingErrorKind = 'size-too-small' | 'size-too-large' | 'unexpected-type' | 'too-many-fds' | 'dead';

export class FramingError extends Error {
  constructor(
    readonly kind: FramingErrorKind,
    message: string,
    /** the offending header, when one was decoded (lets the owner send an error reply) */
    readonly header: MessageHeader | null,
  ) {
    super(message);
    this.name = 'FramingError';
  }
}

export interface FramerOptions {
  /** whole-message size limit including the header */
  maxMessageSize: number;
  /** fds one message may carry; more is fatal */
  maxFdsPerMessage: number;
  /** 'command' on the server, 'reply' on a client that never receives commands, 'any' otherwise */
  accept: 'command' | 'reply' | 'any';
}

export interface FramerOutput {
  messages: FramedMessage[];
  /** set once the stream is unusable; the messages before it are still valid */
  error: FramingError | null;
}

const INITIAL_CAPACITY = 4096;

export class MessageFramer {
  private buffer: Uint8Array;
  /** one DataView over `buffer`, reused for every header (no allocation per message) */
  private bufferView: DataView;
  /** unconsumed bytes are buffer[start, end) */
  private start = 0;
  private end = 0;
  /** absolute stream position of buffer[start] */
  private streamPos = 0;
  /** fds not yet handed out, keyed by the absolute position of the last byte of their chunk */
  private pendingFds: { pos: number; fds: number[] }[] = [];
  private dead: FramingError | null = null;

  constructor(private readonly options: FramerOptions) {
    if (options.maxMessageSize < HEADER.SIZEOF) throw new RangeError('maxMessageSize below the header size');
    this.buffer = new Uint8Array(Math.min(INITIAL_CAPACITY, options.maxMessageSize));
    this.bufferView = new DataView(this.buffer.buffer);
  }

  /** Feeds one received chunk with the fds that arrived with it. */
  push(chunk: Uint8Array, fds: readonly number[] = []): FramerOutput {
    if (this.dead) {
      // Nothing more is parsed; fds still must not leak.
      if (fds.length > 0) this.pendingFds.push({ pos: -1, fds: [...fds] });
      return { messages: [], error: new FramingError('dead', 'stream already failed: ' + this.dead.message, null) };
    }
    this.append(chunk);
    if (fds.length > 0) {
      // chunk.length 0 with fds (not produced by Linux) attributes them to the message in progress.
      const lastByte = this.streamPos + (this.end - this.start) - 1;
      this.pendingFds.push({ pos: Math.max(lastByte, this.streamPos), fds: [...fds] });
    }
    const messages: FramedMessage[] = [];
    const error = this.parse(messages);
    return { messages, error };
  }

  /** fds received but not (yet) delivered with a message; the caller now owns them. */
  takePendingFds(): number[] {
    const all = this.pendingFds.flatMap((p) => p.fds);
    this.pendingFds = [];
    return all;
  }

  /** Bytes buffered towards an incomplete message. */
  get bufferedBytes(): number {
    return this.end - this.start;
  }

  private parse(out: FramedMessage[]): FramingError | null {
    for (;;) {
      const available = this.end - this.start;
      if (available >= HEADER.SIZEOF) {
        const header = this.headerAt(this.start);
        const bad = this.checkHeader(header);
        if (bad) return this.fail(bad);
        if (available >= header.size) {
          const msgEnd = this.streamPos + header.size;
          const fds = this.takeFdsBefore(msgEnd);
          if (fds.length > this.options.maxFdsPerMessage) {
            this.pendingFds.unshift({ pos: -1, fds }); // the owner closes them
            return this.fail(
              new FramingError(
                'too-many-fds',
                `${fds.length} fds for one message (max ${this.options.maxFdsPerMessage})`,
                header,
              ),
            );
          }
          out.push({
            header,
            payload: this.buffer.slice(this.start + HEADER.SIZEOF, this.start + header.size),
            fds,
          });
          this.start += header.size;
          this.streamPos = msgEnd;
          continue;
        }
      }
      // Incomplete message: bound the fds piled up on it.
      const waiting = this.pendingFds.reduce((n, p) => n + p.fds.length, 0);
      if (waiting > this.options.maxFdsPerMessage) {
        return this.fail(
          new FramingError(
            'too-many-fds',
            `${waiting} fds for one message (max ${this.options.maxFdsPerMessage})`,
            null,
          ),
        );
      }
      if (this.start === this.end) {
        this.start = this.end = 0;
      }
      return null;
    }
  }

  /** protocol.ts's decodeHeader, on the reused view (the caller checked 16 bytes are there). */
  private headerAt(offset: number): MessageHeader {
    const v = this.bufferView;
    return {
      id: v.getUint16(offset + HEADER.OFFSET.id, true),
      command: v.getUint16(offset + HEADER.OFFSET.command, true),
      size: v.getUint32(offset + HEADER.OFFSET.size, true),
      flags: v.getUint32(offset + HEADER.OFFSET.flags, true),
      error: v.getUint32(offset + HEADER.OFFSET.error, true),
    };
  }

  private checkHeader(h: MessageHeader): FramingError | null {
    if (h.size < HEADER.SIZEOF) {
      return new FramingError(
        'size-too-small',
        `message size ${h.size} is smaller than the ${HEADER.SIZEOF}-byte header`,
        h,
      );
    }
    if (h.size > this.options.maxMessageSize) {
      return new FramingError(
        'size-too-large',
        `message size ${h.size} exceeds the limit of ${this.options.maxMessageSize}`,
        h,
      );
    }
    const type = messageType(h.flags);
    const accept = this.options.accept;
    const ok =
      (type === HEADER_FLAGS.TYPE_COMMAND && accept !== 'reply') ||
      (type === HEADER_FLAGS.TYPE_REPLY && accept !== 'command');
    if (!ok) {
      return new FramingError('unexpected-type', `message type ${type} is not acceptable here (${accept})`, h);
    }
    return null;
  }

  private takeFdsBefore(msgEnd: number): number[] {
    const fds: number[] = [];
    while (this.pendingFds.length > 0 && this.pendingFds[0]!.pos < msgEnd) {
      fds.push(...this.pendingFds.shift()!.fds);
    }
    return fds;
  }

  private fail(error: FramingError): FramingError {
    this.dead = error;
    this.start = this.end = 0;
    return error;
  }

  private append(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    const used = this.end - this.start;
    if (this.end + chunk.length > this.buffer.length) {
      if (used + chunk.length <= this.buffer.length) {
        this.buffer.copyWithin(0, this.start, this.end);
      } else {
        let capacity = this.buffer.length * 2;
        while (capacity < used + chunk.length) capacity *= 2;
        const grown = new Uint8Array(capacity);
        grown.set(this.buffer.subarray(this.start, this.end));
        this.buffer = grown;
        this.bufferView = new DataView(grown.buffer);
      }
      this.start = 0;
      this.end = used;
    }
    this.buffer.set(chunk, this.end);
    this.end += chunk.length;
  }
}
