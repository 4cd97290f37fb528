import { describe, expect, it } from 'vitest';
import { MessageFramer, type FramedMessage, type FramerOptions } from '../../../src/vfio-user/framer.js';
import { COMMAND, HEADER_FLAGS, encodeCommand, encodeHeader, encodeReply } from '../../../src/vfio-user/protocol.js';

const OPTIONS: FramerOptions = { maxMessageSize: 4096, maxFdsPerMessage: 4, accept: 'command' };

/** One sendmsg: the bytes of one message and the fds attached to it. */
interface Send {
  bytes: Uint8Array;
  fds: number[];
}

/**
 * What Linux's unix_stream_read_generic() hands to successive recvmsg calls of at most
 * `limit(i)` bytes: data of consecutive sends is glued together, fds come with the first read
 * touching their send, and a read ends right after the send whose fds it delivered.
 */
function kernelReads(sends: Send[], limit: (readIndex: number) => number): { chunk: Uint8Array; fds: number[] }[] {
  const queue = sends.map((s) => ({ bytes: s.bytes, pos: 0, fds: s.fds, fdsDelivered: false }));
  const reads: { chunk: Uint8Array; fds: number[] }[] = [];
  let q = 0;
  while (q < queue.length) {
    const max = limit(reads.length);
    const parts: Uint8Array[] = [];
    const fds: number[] = [];
    let copied = 0;
    while (q < queue.length && copied < max) {
      const skb = queue[q]!;
      const n = Math.min(skb.bytes.length - skb.pos, max - copied);
      parts.push(skb.bytes.subarray(skb.pos, skb.pos + n));
      copied += n;
      skb.pos += n;
      let gotFds = false;
      if (!skb.fdsDelivered && skb.fds.length > 0) {
        fds.push(...skb.fds);
        skb.fdsDelivered = true;
        gotFds = true;
      }
      if (skb.pos === skb.bytes.length) q++;
      if (gotFds) break;
    }
    const chunk = new Uint8Array(copied);
    let at = 0;
    for (const p of parts) {
      chunk.set(p, at);
      at += p.length;
    }
    reads.push({ chunk, fds });
  }
  return reads;
}

function feed(framer: MessageFramer, reads: { chunk: Uint8Array; fds: number[] }[]): FramedMessage[] {
  const out: FramedMessage[] = [];
  for (const r of reads) {
    const res = framer.push(r.chunk, r.fds);
    expect(res.error).toBeNull();
    out.push(...res.messages);
  }
  return out;
}

/** A stream mixing empty payloads, odd sizes and fd-carrying messages. */
function sampleStream(): Send[] {
  const payload = (n: number, seed: number) => Uint8Array.from({ length: n }, (_, i) => (i * 7 + seed) & 0xff);
  return [
    { bytes: encodeCommand(1, COMMAND.VERSION, payload(30, 1)), fds: [] },
    { bytes: encodeCommand(2, COMMAND.DMA_MAP, payload(32, 2)), fds: [100] },
    { bytes: encodeCommand(3, COMMAND.DEVICE_RESET), fds: [] },
    { bytes: encodeCommand(4, COMMAND.DEVICE_SET_IRQS, payload(20, 3)), fds: [101, 102, 103] },
    { bytes: encodeCommand(5, COMMAND.REGION_WRITE, payload(517, 4), true), fds: [] },
    { bytes: encodeCommand(6, COMMAND.DMA_MAP, payload(32, 5)), fds: [104] },
    { bytes: encodeCommand(7, COMMAND.REGION_READ, payload(16, 6)), fds: [] },
  ];
}

/** Compares cheaply (this runs for thousands of splits) and reports the first difference. */
function expectStream(messages: FramedMessage[], sends: Send[]): void {
  const problems: string[] = [];
  if (messages.length !== sends.length) problems.push(`${messages.length} messages, expected ${sends.length}`);
  messages.forEach((m, i) => {
    const s = sends[i];
    if (!s) return;
    if (m.header.id !== i + 1) problems.push(`message ${i} has id ${m.header.id}`);
    if (m.header.size !== s.bytes.length) problems.push(`message ${i} size ${m.header.size}`);
    if (!Buffer.from(m.payload).equals(Buffer.from(s.bytes.subarray(16))))
      problems.push(`message ${i} payload differs`);
    if (m.fds.join(',') !== s.fds.join(',')) problems.push(`message ${i} fds [${m.fds}] expected [${s.fds}]`);
  });
  expect(problems).toEqual([]);
}

describe('MessageFramer', () => {
  it('parses the stream split at every offset (kernel read semantics for fds)', () => {
    const sends = sampleStream();
    const total = sends.reduce((n, s) => n + s.bytes.length, 0);
    for (let split = 1; split < total; split++) {
      const reads = kernelReads(sends, (i) => (i === 0 ? split : Infinity));
      expectStream(feed(new MessageFramer(OPTIONS), reads), sends);
    }
  });

  it('parses the stream split at every pair of offsets into three raw chunks (no fds)', () => {
    const sends = sampleStream().map((s) => ({ bytes: s.bytes, fds: [] }));
    const stream = new Uint8Array(sends.reduce((n, s) => n + s.bytes.length, 0));
    let at = 0;
    for (const s of sends) {
      stream.set(s.bytes, at);
      at += s.bytes.length;
    }
    // Every first offset, with second offsets stepping through the rest (all pairs would be slow).
    for (let a = 1; a < stream.length; a++) {
      for (let b = a; b < stream.length; b += 37) {
        const f = new MessageFramer(OPTIONS);
        const msgs = feed(f, [
          { chunk: stream.subarray(0, a), fds: [] },
          { chunk: stream.subarray(a, b), fds: [] },
          { chunk: stream.subarray(b), fds: [] },
        ]);
        expectStream(msgs, sends);
        expect(f.bufferedBytes).toBe(0);
      }
    }
  });

  it.each([1, 2, 3, 5, 7, 13, 16, 64, 128, 4096])('parses the stream in reads of %i bytes', (size) => {
    const sends = sampleStream();
    expectStream(
      feed(
        new MessageFramer(OPTIONS),
        kernelReads(sends, () => size),
      ),
      sends,
    );
  });

  it('keeps delivered payloads intact after later chunks reuse the buffer', () => {
    const f = new MessageFramer(OPTIONS);
    const a = encodeCommand(1, COMMAND.REGION_WRITE, Uint8Array.from([1, 2, 3, 4]));
    const b = encodeCommand(2, COMMAND.REGION_WRITE, Uint8Array.from([9, 9, 9, 9]));
    const first = f.push(a).messages[0]!;
    f.push(b);
    expect([...first.payload]).toEqual([1, 2, 3, 4]);
  });

  it('gives fds to the message holding the last byte of their chunk', () => {
    const f = new MessageFramer(OPTIONS);
    const a = encodeCommand(1, COMMAND.DEVICE_RESET);
    const b = encodeCommand(2, COMMAND.DMA_MAP, new Uint8Array(32));
    const both = new Uint8Array(a.length + 10);
    both.set(a);
    both.set(b.subarray(0, 10), a.length);
    const r1 = f.push(both, [55]);
    expect(r1.messages.map((m) => [m.header.id, m.fds])).toEqual([[1, []]]);
    const r2 = f.push(b.subarray(10));
    expect(r2.messages.map((m) => [m.header.id, m.fds])).toEqual([[2, [55]]]);
  });

  it('attaches fds arriving in the middle of a message to that message', () => {
    const f = new MessageFramer(OPTIONS);
    const b = encodeCommand(9, COMMAND.DMA_MAP, new Uint8Array(32));
    f.push(b.subarray(0, 20));
    const r = f.push(b.subarray(20), [77]);
    expect(r.messages[0]!.fds).toEqual([77]);
  });

  describe('fatal framing errors', () => {
    function header(size: number, flags = 0): Uint8Array {
      const h = new Uint8Array(16);
      encodeHeader(h, { id: 3, command: COMMAND.REGION_READ, size, flags, error: 0 });
      return h;
    }

    it.each([0, 1, 15])('size %i below the header size', (size) => {
      const r = new MessageFramer(OPTIONS).push(header(size));
      expect(r.error?.kind).toBe('size-too-small');
      expect(r.messages).toEqual([]);
    });

    it('size above the limit (a lying or oversize length), with the header kept for an error reply', () => {
      const r = new MessageFramer(OPTIONS).push(header(OPTIONS.maxMessageSize + 1));
      expect(r.error?.kind).toBe('size-too-large');
      expect(r.error?.header?.id).toBe(3);
      const huge = new MessageFramer(OPTIONS).push(header(0xffff_ffff));
      expect(huge.error?.kind).toBe('size-too-large');
    });

    it('a reply arriving at the server', () => {
      const r = new MessageFramer(OPTIONS).push(encodeReply(1, COMMAND.VERSION));
      expect(r.error?.kind).toBe('unexpected-type');
      const clientSide = new MessageFramer({ ...OPTIONS, accept: 'reply' }).push(encodeCommand(1, COMMAND.VERSION));
      expect(clientSide.error?.kind).toBe('unexpected-type');
      const any = new MessageFramer({ ...OPTIONS, accept: 'any' }).push(encodeReply(1, COMMAND.VERSION));
      expect(any.error).toBeNull();
      expect(any.messages).toHaveLength(1);
    });

    it('an unknown message type (garbage flags)', () => {
      const r = new MessageFramer(OPTIONS).push(header(16, 0x7));
      expect(r.error?.kind).toBe('unexpected-type');
    });

    it('delivers the good messages before a garbage header, then refuses everything', () => {
      const f = new MessageFramer(OPTIONS);
      const good = encodeCommand(1, COMMAND.DEVICE_RESET);
      const garbage = Uint8Array.from({ length: 16 }, () => 0xff);
      const stream = new Uint8Array(good.length + garbage.length);
      stream.set(good);
      stream.set(garbage, good.length);
      const r = f.push(stream);
      expect(r.messages.map((m) => m.header.id)).toEqual([1]);
      expect(r.error?.kind).toBe('size-too-large');
      const later = f.push(good, [42]);
      expect(later.error?.kind).toBe('dead');
      expect(later.messages).toEqual([]);
      expect(f.takePendingFds()).toEqual([42]); // owner closes them
    });

    it('too many fds piled on one message, complete or not', () => {
      const complete = new MessageFramer(OPTIONS).push(
        encodeCommand(1, COMMAND.DEVICE_SET_IRQS, new Uint8Array(20)),
        [1, 2, 3, 4, 5],
      );
      expect(complete.error?.kind).toBe('too-many-fds');
      const f = new MessageFramer(OPTIONS);
      const msg = encodeCommand(1, COMMAND.DEVICE_SET_IRQS, new Uint8Array(20));
      expect(f.push(msg.subarray(0, 5), [1, 2, 3]).error).toBeNull();
      const r = f.push(msg.subarray(5, 9), [4, 5]);
      expect(r.error?.kind).toBe('too-many-fds');
      expect(f.takePendingFds().sort()).toEqual([1, 2, 3, 4, 5]);
    });
  });

  it('holds a lying (too long) length until the rest arrives, without inventing a message', () => {
    const f = new MessageFramer(OPTIONS);
    const h = new Uint8Array(16);
    encodeHeader(h, { id: 1, command: COMMAND.DEVICE_RESET, size: 100, flags: HEADER_FLAGS.TYPE_COMMAND, error: 0 });
    const r = f.push(h, [5]);
    expect(r.messages).toEqual([]);
    expect(r.error).toBeNull();
    expect(f.bufferedBytes).toBe(16);
    expect(f.takePendingFds()).toEqual([5]);
  });
});
