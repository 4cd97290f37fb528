/**
 * vfio-user wire format (src/vfio-user/protocol.ts) and stream framing (framer.ts): every payload
 * codec round-trips, decodes any bytes to a value or a ProtocolError, and re-encodes what it
 * decoded to the same bytes; the framer delivers the same messages however the stream is split.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FramingError, MessageFramer, type FramedMessage } from '../../src/vfio-user/framer.js';
import {
  DMA_MAP,
  DMA_UNMAP,
  DEVICE_INFO,
  HEADER,
  HEADER_FLAGS,
  IRQ_INFO,
  ProtocolError,
  REGION_INFO,
  decodeDeviceInfo,
  decodeDmaMap,
  decodeDmaUnmap,
  decodeHeader,
  decodeIrqInfo,
  decodeIrqSet,
  decodeRegionAccess,
  decodeRegionInfo,
  decodeVersion,
  encodeDeviceInfo,
  encodeDmaMap,
  encodeDmaUnmap,
  encodeIrqInfo,
  encodeIrqSet,
  encodeMessage,
  encodeRegionAccess,
  encodeRegionInfo,
  encodeVersion,
} from '../../src/vfio-user/protocol.js';
import { RUNS, bytes, decodesOrRejects, u16, u32, u64 } from './support.js';

interface Codec<T> {
  name: string;
  arb: fc.Arbitrary<T>;
  encode(v: T): Uint8Array;
  decode(b: Uint8Array): T;
  /** payload sizes worth trying around the fixed size */
  size: number;
}

const codecs: Codec<never>[] = [
  {
    name: 'DMA_MAP',
    size: DMA_MAP.SIZEOF,
    arb: fc.record({ argsz: u32, flags: u32, offset: u64, address: u64, size: u64 }),
    encode: encodeDmaMap,
    decode: decodeDmaMap,
  },
  {
    name: 'DMA_UNMAP',
    size: DMA_UNMAP.SIZEOF,
    arb: fc.record({ argsz: u32, flags: u32, address: u64, size: u64 }),
    encode: encodeDmaUnmap,
    decode: decodeDmaUnmap,
  },
  {
    name: 'DEVICE_GET_INFO',
    size: DEVICE_INFO.SIZEOF,
    arb: fc.record({ argsz: u32, flags: u32, numRegions: u32, numIrqs: u32 }),
    encode: encodeDeviceInfo,
    decode: decodeDeviceInfo,
  },
  {
    name: 'DEVICE_GET_REGION_INFO',
    size: REGION_INFO.SIZEOF,
    arb: fc.record({ argsz: u32, flags: u32, index: u32, capOffset: u32, size: u64, offset: u64 }),
    encode: encodeRegionInfo,
    decode: decodeRegionInfo,
  },
  {
    name: 'DEVICE_GET_IRQ_INFO',
    size: IRQ_INFO.SIZEOF,
    arb: fc.record({ argsz: u32, flags: u32, index: u32, count: u32 }),
    encode: encodeIrqInfo,
    decode: decodeIrqInfo,
  },
  {
    name: 'DEVICE_SET_IRQS',
    size: 20,
    arb: fc.record({ argsz: u32, flags: u32, index: u32, start: u32, count: u32, data: bytes(64) }),
    encode: encodeIrqSet,
    decode: decodeIrqSet,
  },
  {
    name: 'REGION_READ/WRITE',
    size: 16,
    arb: fc.record({ offset: u64, region: u32, count: u32, data: bytes(64) }),
    encode: encodeRegionAccess,
    decode: (b: Uint8Array) => decodeRegionAccess(b, 'REGION_WRITE'),
  },
] as unknown as Codec<never>[];

/** Payload bytes near a codec's size: the interesting lengths are just below, at and above it. */
const payloadNear = (size: number) =>
  fc.oneof(
    bytes(size + 40),
    fc.integer({ min: Math.max(0, size - 2), max: size + 2 }).chain((n) => bytes(n, n)),
  );

describe.each(codecs)('vfio-user $name payload', (c) => {
  it('decode(encode(v)) = v', () => {
    fc.assert(
      fc.property(c.arb, (v) => {
        expect(c.decode(c.encode(v))).toEqual(v);
      }),
      RUNS,
    );
  });
  it('decodes any bytes to a value or a ProtocolError, and re-encodes what it decoded', () => {
    fc.assert(
      fc.property(payloadNear(c.size), (b) => {
        const v = decodesOrRejects(() => c.decode(b), ProtocolError);
        if (v === undefined) return;
        // Fixed-size requests may carry trailing bytes (argsz convention): those are ignored.
        const again = c.encode(v);
        expect(again).toEqual(b.subarray(0, again.length));
        expect(c.decode(again)).toEqual(v);
      }),
      RUNS,
    );
  });
});

describe('vfio-user VERSION payload', () => {
  const json = fc.oneof(
    fc.constant(undefined),
    fc.string({ maxLength: 200, unit: 'grapheme' }).filter((s) => !s.includes('\0')),
  );
  it('decode(encode(v)) = v', () => {
    fc.assert(
      fc.property(fc.record({ major: u16, minor: u16, json }), (v) => {
        expect(decodeVersion(encodeVersion(v))).toEqual(v);
      }),
      RUNS,
    );
  });
  it('decodes any bytes to a value or a ProtocolError, and re-encodes what it decoded', () => {
    fc.assert(
      fc.property(bytes(80), (b) => {
        const v = decodesOrRejects(() => decodeVersion(b), ProtocolError);
        if (v !== undefined) expect(encodeVersion(v)).toEqual(b);
      }),
      RUNS,
    );
  });
});

describe('vfio-user message header', () => {
  it('encodeMessage → decodeHeader gives the fields back, size = whole message', () => {
    fc.assert(
      fc.property(fc.record({ id: u16, command: u16, flags: u32, error: u32 }), bytes(64), (h, payload) => {
        const m = encodeMessage(h, payload);
        expect(decodeHeader(m)).toEqual({ ...h, size: HEADER.SIZEOF + payload.length });
        expect(m.subarray(HEADER.SIZEOF)).toEqual(payload);
      }),
      RUNS,
    );
  });
  it('decodes any bytes to a header or a ProtocolError', () => {
    fc.assert(
      fc.property(bytes(24), fc.nat(30), (b, offset) => {
        decodesOrRejects(() => decodeHeader(b, offset), ProtocolError);
      }),
      RUNS,
    );
  });
});

// ---- framer ---------------------------------------------------------------------------------

const MAX_MESSAGE = 512;

function framer(): MessageFramer {
  return new MessageFramer({ maxMessageSize: MAX_MESSAGE, maxFdsPerMessage: 4, accept: 'command' });
}

interface Framed {
  messages: { header: FramedMessage['header']; payload: number[]; fds: number[] }[];
  error: string | null;
}

/** Feeds `stream` cut at `cuts` (fds of chunk i are [i]); collects everything the framer says. */
function feed(stream: Uint8Array, cuts: number[], withFds = false): Framed {
  const f = framer();
  const out: Framed = { messages: [], error: null };
  let at = 0;
  const ends = [...new Set([...cuts.map((c) => Math.min(c, stream.length)), stream.length])].sort((a, b) => a - b);
  ends.forEach((end, i) => {
    const r = f.push(stream.subarray(at, end), withFds && end > at ? [1000 + i] : []);
    for (const m of r.messages) out.messages.push({ header: m.header, payload: [...m.payload], fds: m.fds });
    if (r.error && out.error === null) {
      expect(r.error).toBeInstanceOf(FramingError);
      out.error = r.error.kind;
    }
    at = end;
  });
  return out;
}

const command = fc.record({
  id: u16,
  command: fc.integer({ min: 0, max: 40 }),
  noReply: fc.boolean(),
  payload: bytes(64),
});
const stream = fc.array(command, { maxLength: 8 }).map((cs) => {
  const parts = cs.map((c) =>
    encodeMessage(
      { id: c.id, command: c.command, flags: HEADER_FLAGS.TYPE_COMMAND | (c.noReply ? HEADER_FLAGS.NO_REPLY : 0) },
      c.payload,
    ),
  );
  const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    all.set(p, at);
    at += p.length;
  }
  return { cs, all };
});
const cuts = (max: number) => fc.array(fc.nat(max), { maxLength: 12 });

describe('vfio-user stream framer', () => {
  it('gives back every message of a well-formed stream, identically at every split', () => {
    fc.assert(
      fc.property(stream, cuts(600), ({ cs, all }, at) => {
        const whole = feed(all, []);
        expect(whole.error).toBeNull();
        expect(whole.messages.map((m) => [m.header.id, m.header.command, m.payload])).toEqual(
          cs.map((c) => [c.id, c.command, [...c.payload]]),
        );
        expect(feed(all, at)).toEqual(whole);
      }),
      RUNS,
    );
  });

  it('gives the same messages and the same error for arbitrary bytes at every split', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          bytes(300),
          stream.chain(({ all }) =>
            fc.tuple(fc.nat(all.length), u16).map(([i, v]) => {
              const b = all.slice();
              if (b.length) b[i % b.length] = v & 0xff;
              return b;
            }),
          ),
        ),
        cuts(300),
        (b, at) => {
          expect(feed(b, at)).toEqual(feed(b, []));
        },
      ),
      RUNS,
    );
  });

  it("hands each chunk's fds to the message holding the chunk's last byte", () => {
    fc.assert(
      fc.property(stream, cuts(600), ({ all }, at) => {
        const split = feed(all, at, true);
        if (split.error !== null) return; // too many fds piled on one message: a fatal framing error by design
        const ends = [...new Set([...at.map((c) => Math.min(c, all.length)), all.length])].sort((a, b) => a - b);
        let msgEnd = 0;
        for (const m of split.messages) {
          const msgStart = msgEnd;
          msgEnd += m.header.size;
          // The chunks whose last byte lies in this message.
          const expected = ends.flatMap((end, i) =>
            end > (i ? ends[i - 1]! : 0) && end - 1 >= msgStart && end - 1 < msgEnd ? [1000 + i] : [],
          );
          expect(m.fds).toEqual(expected);
        }
      }),
      RUNS,
    );
  });
});
