/**
 * MessageChannel against a scripted fake socket: short writes and EAGAIN drive the write
 * queue through POLL_WRITABLE, fds ride with a message's first byte, and receive-side
 * failures (hang-up, MSG_CTRUNC, framing errors) close the channel without leaking fds.
 */
import { describe, expect, it } from 'vitest';
import { POLL_READABLE, POLL_WRITABLE, type PollHandle, type RecvResult } from '../../../src/native/index.js';
import { MessageChannel, type ChannelNative } from '../../../src/vfio-user/transport.js';
import type { FramedMessage, FramingError } from '../../../src/vfio-user/framer.js';
import { COMMAND, encodeCommand, encodeErrorReply } from '../../../src/vfio-user/protocol.js';
import { silentLog } from './helpers.js';

class FakeSocket implements ChannelNative {
  readonly sent: { data: number[]; fds: number[] }[] = [];
  /** what the next sendmsg calls return: a byte count cap, or null for EAGAIN */
  sendScript: (number | null)[] = [];
  readonly incoming: { bytes: Uint8Array; fds: number[]; ctrunc?: boolean }[] = [];
  readonly closed: number[] = [];
  watches: { events: number; cb: (events: number, errno: number) => void; stopped: boolean }[] = [];
  recvCalls = 0;

  recvmsg(_fd: number, buf: Uint8Array, offset: number, length: number): RecvResult | null {
    this.recvCalls++;
    const next = this.incoming.shift();
    if (!next) return null;
    const n = Math.min(length, next.bytes.length);
    buf.set(next.bytes.subarray(0, n), offset);
    if (n < next.bytes.length) this.incoming.unshift({ bytes: next.bytes.subarray(n), fds: [] });
    return { bytes: n, fds: next.fds, ctrunc: next.ctrunc ?? false };
  }

  sendmsg(_fd: number, data: Uint8Array, fds: readonly number[]): number | null {
    const step = this.sendScript.length > 0 ? this.sendScript.shift()! : Infinity;
    if (step === null) return null;
    const n = Math.min(step, data.length);
    this.sent.push({ data: [...data.subarray(0, n)], fds: [...fds] });
    return n;
  }

  poll(_fd: number, events: number, cb: (events: number, errno: number) => void): PollHandle {
    const w = { events, cb, stopped: false };
    if (this.active()) throw new Error('EEXIST: one watch per fd');
    this.watches.push(w);
    return {
      stop: () => {
        w.stopped = true;
      },
    };
  }

  close(fd: number): void {
    this.closed.push(fd);
  }

  active() {
    return this.watches.find((w) => !w.stopped);
  }

  /** Fires the live watch with the given events. */
  fire(events: number): void {
    const w = this.active();
    if (!w) throw new Error('no live watch');
    w.cb(events & w.events, 0);
  }

  /** Fires the live watch with a poll error, as the native poll() reports it. */
  fail(errno: number): void {
    const w = this.active();
    if (!w) throw new Error('no live watch');
    w.cb(0, errno);
  }

  bytesSent(): number[] {
    return this.sent.flatMap((s) => s.data);
  }
}

function channel(sock: FakeSocket, opts: { onMessage?: (m: FramedMessage) => void; recvBufferSize?: number } = {}) {
  const messages: FramedMessage[] = [];
  const closes: string[] = [];
  const framingErrors: FramingError[] = [];
  const errors: (Error | null)[] = [];
  const ch: MessageChannel = new MessageChannel({
    fd: 7,
    native: sock,
    framer: { maxMessageSize: 1024, maxFdsPerMessage: 2, accept: 'command' },
    log: silentLog,
    onMessage: opts.onMessage ?? ((m) => messages.push(m)),
    onClose: (reason, error) => {
      closes.push(reason);
      errors.push(error);
    },
    onFramingError: (e) => {
      framingErrors.push(e);
      ch.send(encodeErrorReply(e.header?.id ?? 0, e.header?.command ?? 0, 90));
    },
    recvBufferSize: opts.recvBufferSize ?? 64,
  });
  return { ch, messages, closes, framingErrors, errors };
}

describe('MessageChannel sending', () => {
  it('writes at once when the socket takes everything, watching only for input', () => {
    const sock = new FakeSocket();
    const { ch } = channel(sock);
    const msg = encodeCommand(1, COMMAND.DEVICE_RESET);
    ch.send(msg, [33]);
    expect(sock.bytesSent()).toEqual([...msg]);
    expect(sock.sent[0]!.fds).toEqual([33]);
    expect(sock.active()!.events & POLL_WRITABLE).toBe(0);
  });

  it('queues on short writes and EAGAIN, resumes on POLL_WRITABLE, fds only with the first byte, order kept', () => {
    const sock = new FakeSocket();
    const { ch } = channel(sock);
    const a = encodeCommand(1, COMMAND.REGION_READ, new Uint8Array(40).fill(1));
    const b = encodeCommand(2, COMMAND.DMA_MAP, new Uint8Array(32).fill(2));
    sock.sendScript = [10, null];
    ch.send(a, [5]);
    ch.send(b, [6]);
    expect(sock.bytesSent()).toEqual([...a.subarray(0, 10)]);
    expect(ch.queuedBytes).toBe(a.length + b.length - 10);
    expect(sock.active()!.events & POLL_WRITABLE).toBe(POLL_WRITABLE);
    sock.sendScript = [7, 7, null];
    sock.fire(POLL_WRITABLE);
    sock.sendScript = [];
    sock.fire(POLL_WRITABLE);
    expect(sock.bytesSent()).toEqual([...a, ...b]);
    expect(sock.sent.map((s) => s.fds)).toEqual([[5], [], [], [], [6]]);
    expect(ch.queuedBytes).toBe(0);
    expect(sock.active()!.events & POLL_WRITABLE).toBe(0);
    expect(sock.active()!.events & POLL_READABLE).toBe(POLL_READABLE);
  });

  it('stops reading while too much output is queued, and resumes once it drains', () => {
    const sock = new FakeSocket();
    const { ch } = channel(sock);
    sock.sendScript = [null];
    const big = new Uint8Array(9 << 20);
    ch.send(big);
    expect(ch.isReadPaused).toBe(true);
    expect(sock.active()!.events).toBe(POLL_WRITABLE);
    sock.sendScript = [];
    sock.fire(POLL_WRITABLE);
    expect(ch.isReadPaused).toBe(false);
    expect(sock.active()!.events & POLL_READABLE).toBe(POLL_READABLE);
  });

  it('closeAfterFlush sends what is queued, then closes the socket', () => {
    const sock = new FakeSocket();
    const { ch, closes } = channel(sock);
    sock.sendScript = [null];
    ch.send(encodeCommand(1, COMMAND.DEVICE_RESET));
    ch.closeAfterFlush('bye');
    expect(closes).toEqual([]);
    expect(sock.active()!.events).toBe(POLL_WRITABLE);
    sock.fire(POLL_WRITABLE);
    expect(sock.bytesSent()).toHaveLength(16);
    expect(closes).toEqual(['bye']);
    expect(sock.closed).toEqual([7]);
    expect(sock.active()).toBeUndefined();
  });
});

describe('MessageChannel receiving', () => {
  it('frames messages across reads and delivers fds with their message', () => {
    const sock = new FakeSocket();
    const { messages } = channel(sock, { recvBufferSize: 20 });
    const a = encodeCommand(1, COMMAND.DMA_MAP, new Uint8Array(32));
    const b = encodeCommand(2, COMMAND.DEVICE_RESET);
    sock.incoming.push({ bytes: a, fds: [40] }, { bytes: b, fds: [] });
    sock.fire(POLL_READABLE);
    expect(messages.map((m) => [m.header.id, m.fds])).toEqual([
      [1, [40]],
      [2, []],
    ]);
  });

  it('bounds the recvmsg calls per wake-up', () => {
    const sock = new FakeSocket();
    const { messages } = channel(sock, { recvBufferSize: 16 });
    for (let i = 0; i < 100; i++) sock.incoming.push({ bytes: encodeCommand(i, COMMAND.DEVICE_RESET), fds: [] });
    sock.fire(POLL_READABLE);
    expect(sock.recvCalls).toBe(64);
    expect(messages).toHaveLength(64);
    sock.fire(POLL_READABLE);
    expect(messages).toHaveLength(100);
  });

  it('closes on peer hang-up, closing fds of an unfinished message', () => {
    const sock = new FakeSocket();
    const { ch, closes } = channel(sock);
    sock.incoming.push({ bytes: encodeCommand(1, COMMAND.DMA_MAP, new Uint8Array(32)).subarray(0, 20), fds: [50] });
    sock.incoming.push({ bytes: new Uint8Array(0), fds: [] });
    sock.fire(POLL_READABLE);
    expect(closes).toEqual(['peer closed the connection']);
    expect(ch.isClosed).toBe(true);
    expect(sock.closed.sort()).toEqual([50, 7].sort());
  });

  it('takes a peer reset (ECONNRESET from poll) as a disconnect, any other poll error as an error', () => {
    const sock = new FakeSocket();
    const reset = channel(sock);
    sock.fail(104);
    expect([reset.closes, reset.errors, reset.ch.isClosed]).toEqual([['peer reset the connection'], [null], true]);
    const other = new FakeSocket();
    const bad = channel(other);
    other.fail(9);
    expect(bad.closes).toEqual(['poll error 9']);
    expect(bad.errors[0]?.message).toBe('poll error errno 9');
  });

  it('closes on MSG_CTRUNC and closes the fds that did arrive', () => {
    const sock = new FakeSocket();
    const { closes, messages } = channel(sock);
    sock.incoming.push({
      bytes: encodeCommand(1, COMMAND.DEVICE_SET_IRQS, new Uint8Array(20)),
      fds: [60, 61],
      ctrunc: true,
    });
    sock.fire(POLL_READABLE);
    expect(messages).toEqual([]);
    expect(closes[0]).toMatch(/MSG_CTRUNC/);
    expect(sock.closed).toEqual(expect.arrayContaining([60, 61, 7]));
  });

  it('on a framing error lets the owner queue a last reply, flushes it, then closes', () => {
    const sock = new FakeSocket();
    const { closes, framingErrors, messages } = channel(sock);
    const good = encodeCommand(1, COMMAND.DEVICE_RESET);
    const bad = encodeCommand(2, COMMAND.REGION_WRITE);
    new DataView(bad.buffer).setUint32(4, 5000, true);
    sock.incoming.push({ bytes: Uint8Array.of(...good, ...bad), fds: [] });
    sock.fire(POLL_READABLE);
    expect(messages.map((m) => m.header.id)).toEqual([1]);
    expect(framingErrors.map((e) => e.kind)).toEqual(['size-too-large']);
    expect(sock.bytesSent()).toHaveLength(16); // the error reply
    expect(closes[0]).toMatch(/framing error/);
  });

  it('drops (and closes the fds of) messages after the owner closes mid-batch', () => {
    const sock = new FakeSocket();
    const seen: number[] = [];
    const ref: { ch: MessageChannel | null } = { ch: null };
    const { ch } = channel(sock, {
      recvBufferSize: 256,
      onMessage: (m) => {
        seen.push(m.header.id);
        ref.ch!.close('owner');
      },
    });
    ref.ch = ch;
    const a = encodeCommand(1, COMMAND.DEVICE_RESET);
    const b = encodeCommand(2, COMMAND.DMA_MAP, new Uint8Array(32));
    sock.incoming.push({ bytes: Uint8Array.of(...a, ...b), fds: [70] });
    sock.fire(POLL_READABLE);
    expect(seen).toEqual([1]);
    expect(sock.closed).toEqual(expect.arrayContaining([7, 70]));
  });
});
