/**
 * Queue mechanics: configuration checks, index validation, budgets, wrap-around, response-ring
 * back-pressure and drain, DMA faults — and agreement of every implementation on random vectors.
 */
import { describe, expect, it } from 'vitest';
import { RingConfigError, type RequestEntry, type RingCodec, type StatusType0 } from '../../../src/isp/ring/types.js';
import { RingEngine } from '../../../src/isp/ring/engine.js';
import type { GuestMemory } from '../../../src/device/guest-memory.js';
import {
  ArrayGuestMemory,
  ENTRY,
  REQ_BASE,
  RSP_BASE,
  RingFixture,
  T_ABORT,
  T_CMD7,
  T_CONT_A64,
  T_LOGIO,
  T_MARKER,
  T_STATUS,
  T_STATUS_CONT,
  buildCmd7,
  buildRaw,
  decodeStatus,
  implementations,
  segmentsOf,
} from './support.js';
import { rng } from '../../support/rng.js';

const good = (handle: number): StatusType0 => ({ handle, compStatus: 0, scsiStatus: 0 });

/** A live guest view whose bulk copy stores the tail first, one dword at a time, observed after each. */
class TailFirstBytes extends Uint8Array {
  constructor(
    buffer: ArrayBuffer,
    byteOffset: number,
    length: number,
    private readonly observe: () => void,
  ) {
    super(buffer, byteOffset, length);
  }
  override set(source: ArrayLike<number>, offset = 0): void {
    for (let at = source.length - 4; at >= 0; at -= 4) {
      this.observe();
      for (let i = 0; i < 4; i++) this[offset + at + i] = source[at + i]!;
    }
  }
}

describe.each(implementations())('ring configuration and indices ($name)', ({ create }) => {
  it.each([
    ['request length 0', () => [REQ_BASE, 0, RSP_BASE, 16] as const],
    ['request length 65536', () => [REQ_BASE, 65536, RSP_BASE, 16] as const],
    ['fractional response length', () => [REQ_BASE, 16, RSP_BASE, 1.5] as const],
    ['misaligned request base', () => [REQ_BASE + 8n, 16, RSP_BASE, 16] as const],
    ['negative response base', () => [REQ_BASE, 16, -64n, 16] as const],
    ['ring wrapping past 2^64', () => [(1n << 64n) - 64n * 4n, 8, RSP_BASE, 16] as const],
  ])('refuses %s', (_what, args) => {
    const codec = create();
    const [reqBase, reqEntries, rspBase, rspEntries] = args();
    expect(() => codec.configure(reqBase, reqEntries, rspBase, rspEntries)).toThrow(RingConfigError);
  });

  it('refuses out-of-range limits', () => {
    const codec = create();
    expect(() => codec.configure(REQ_BASE, 16, RSP_BASE, 16, { maxHandleIndex: 0 })).toThrow(RingConfigError);
    expect(() => codec.configure(REQ_BASE, 16, RSP_BASE, 16, { maxVpIndex: 256 })).toThrow(RingConfigError);
    expect(() => codec.configure(REQ_BASE, 16, RSP_BASE, 16, { maxTransferBytes: 2 ** 32 })).toThrow(RingConfigError);
  });

  it('refuses use before configure', () => {
    const codec = create();
    expect(() => codec.consumeRequests(new ArrayGuestMemory(), 0, 0, 8)).toThrow(/configure/);
  });

  it('turns a req_q_in outside the ring into a fault without consuming anything', () => {
    const codec = create();
    const fx = new RingFixture(16);
    fx.configure(codec);
    fx.push(buildCmd7({ handle: 1 }));
    for (const bad of [16, 0xffff, -1, 2.5]) {
      const result = codec.consumeRequests(fx.mem, 0, bad, 8);
      expect(result.fault?.kind).toBe('request-index');
      expect(result.entries).toHaveLength(0);
      expect(result.newOut).toBe(0);
    }
    expect(codec.pendingResponses).toBe(0);
  });

  it('refuses a consumer index or budget the device model got wrong', () => {
    const codec = create();
    const fx = new RingFixture(16);
    fx.configure(codec);
    expect(() => codec.consumeRequests(fx.mem, 16, 0, 8)).toThrow(RangeError);
    expect(() => codec.consumeRequests(fx.mem, 0, 1, 0)).toThrow(RangeError);
    expect(() => codec.consumeRequests(fx.mem, 0, 1, 1.5)).toThrow(RangeError);
  });

  it('returns nothing for an empty ring', () => {
    const codec = create();
    const fx = new RingFixture(16);
    fx.configure(codec);
    fx.startAt(9);
    expect(fx.consume(codec)).toEqual({ newOut: 9, entries: [], stop: 'drained', fault: null });
  });

  it('reports an unmapped request ring as a DMA fault and consumes nothing', () => {
    const codec = create();
    const fx = new RingFixture(16);
    codec.configure(0x4000_0000n, 16, RSP_BASE, 16);
    const result = codec.consumeRequests(fx.mem, 0, 3, 8);
    expect(result.fault?.kind).toBe('dma');
    expect(result.newOut).toBe(0);
  });
});

describe.each(implementations())('budgets and wrap-around ($name)', ({ create }) => {
  it('stops at the budget and continues on the next call', () => {
    const codec = create();
    const fx = new RingFixture(32);
    fx.configure(codec);
    for (let h = 1; h <= 10; h++) fx.push(buildCmd7({ handle: h }));
    const first = fx.consume(codec, 4);
    expect(first.entries.map((e) => (e as { handle: number }).handle)).toEqual([1, 2, 3, 4]);
    expect(first.stop).toBe('budget');
    expect(first.newOut).toBe(4);
    const rest = fx.consume(codec, 100);
    expect(rest.entries).toHaveLength(6);
    expect(rest.stop).toBe('drained');
    expect(fx.reqOut).toBe(10);
  });

  it('never splits a command: it waits for the next call when the budget ends inside it', () => {
    const codec = create();
    const fx = new RingFixture(32);
    fx.configure(codec);
    fx.push(buildCmd7({ handle: 1 }));
    fx.push(buildCmd7({ handle: 2, direction: 'read', segments: segmentsOf(11) })); // 3 entries
    const first = fx.consume(codec, 2);
    expect(first.entries).toHaveLength(1);
    expect(first.newOut).toBe(1);
    const second = fx.consume(codec, 2);
    expect(second.entries[0]).toMatchObject({ kind: 'command', handle: 2, entryCount: 3 });
    expect(second.newOut).toBe(4);
  });

  it('always consumes a whole first command even when it is larger than the budget', () => {
    const codec = create();
    const fx = new RingFixture(32);
    fx.configure(codec);
    fx.push(buildCmd7({ handle: 1, direction: 'write', segments: segmentsOf(26) })); // 6 entries
    const result = fx.consume(codec, 1);
    expect(result.entries[0]).toMatchObject({ kind: 'command', entryCount: 6 });
    expect(result.newOut).toBe(6);
  });

  it('fetches each entry of a command longer than the budget exactly once', () => {
    const codec = create();
    const fx = new RingFixture(16);
    fx.configure(codec);
    fx.startAt(13);
    fx.push(buildCmd7({ handle: 1, direction: 'write', segments: segmentsOf(26) })); // 6 entries, wraps
    fx.push(buildCmd7({ handle: 2 }));
    const result = fx.consume(codec, 2);
    expect(result.entries).toHaveLength(1);
    expect(result.newOut).toBe((13 + 6) % 16);
    expect(fx.mem.bytesRead).toBe(6 * ENTRY);
  });

  it('handles the largest command (255 entries, 1271 segments) in one call', () => {
    const codec = create();
    const fx = new RingFixture(512);
    fx.configure(codec, { maxTransferBytes: 0xffffffff });
    fx.startAt(400);
    const segments = segmentsOf(1271, 0x1_0000_0000n, 512);
    fx.push(buildCmd7({ handle: 1, direction: 'read', segments }));
    const result = fx.consume(codec, 8);
    expect(result.entries).toHaveLength(1);
    expect((result.entries[0] as { segments: unknown[] }).segments).toEqual(segments);
    expect(result.newOut).toBe((400 + 255) % 512);
  });

  it('keeps decoding over several laps of a small ring', () => {
    const codec = create();
    const fx = new RingFixture(7);
    fx.configure(codec);
    const seen: number[] = [];
    for (let h = 1; h <= 40; h++) {
      fx.push(buildCmd7({ handle: h, direction: 'read', segments: segmentsOf(1 + (h % 7)) }));
      if (h % 2 === 0) {
        for (const e of fx.consume(codec, 5).entries) seen.push((e as { handle: number }).handle);
        for (const e of fx.consume(codec, 5).entries) seen.push((e as { handle: number }).handle);
      }
    }
    expect(seen).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
    expect(fx.reqOut).toBe(fx.reqIn);
  });
});

describe.each(implementations())('response ring back-pressure ($name)', ({ create }) => {
  it('writes only what fits ((in + 1) % N == out is full) and drains the rest later', () => {
    const codec = create();
    const fx = new RingFixture(8, 4);
    fx.configure(codec);
    for (let h = 1; h <= 5; h++) expect(codec.postStatus(good(h))).toBe(1);
    const first = fx.flush(codec);
    expect(first).toMatchObject({ newIn: 3, written: 3, pending: 2, full: true, fault: null });
    expect(fx.flush(codec)).toMatchObject({ newIn: 3, written: 0, pending: 2, full: true });
    expect(fx.drainResponses().map((e) => decodeStatus(e).handle)).toEqual([1, 2, 3]);
    const second = fx.flush(codec);
    expect(second).toMatchObject({ newIn: 1, written: 2, pending: 0, full: false }); // wrapped
    expect(fx.drainResponses().map((e) => decodeStatus(e).handle)).toEqual([4, 5]);
  });

  it('keeps a status and its continuations in order when the ring splits them', () => {
    const codec = create();
    const fx = new RingFixture(8, 3); // room for 2 entries
    fx.configure(codec);
    const sense = new Uint8Array(96).map((_, i) => i + 1);
    expect(codec.postStatus({ handle: 9, compStatus: 0, scsiStatus: 2, sense })).toBe(3);
    expect(codec.postStatus(good(10))).toBe(1);
    expect(fx.flush(codec).written).toBe(2);
    const a = fx.drainResponses();
    expect(fx.flush(codec).written).toBe(2);
    const b = fx.drainResponses();
    expect([...a, ...b].map((e) => e[0])).toEqual([T_STATUS, T_STATUS_CONT, T_STATUS_CONT, T_STATUS]);
    expect(decodeStatus(b[1]!).handle).toBe(10);
  });

  it('refuses more statuses once the FIFO is full and accepts them after a flush', () => {
    const codec = create();
    const fx = new RingFixture(8, 1024);
    fx.configure(codec);
    let queued = 0;
    while (codec.postStatus(good(1 + (queued % 1000))) === 1) queued++;
    expect(queued).toBe(512);
    expect(codec.responseSpace).toBe(0);
    // A status needing three entries does not fit partially either.
    expect(codec.postStatus({ ...good(1), sense: new Uint8Array(90) })).toBe(0);
    expect(fx.flush(codec)).toMatchObject({ written: 512, pending: 0 });
    expect(codec.postStatus(good(2))).toBe(1);
  });

  it('stops consuming (response-full) when a rejected entry cannot be answered, then resumes', () => {
    const codec = create();
    const fx = new RingFixture(8, 1024);
    fx.configure(codec);
    while (codec.postStatus(good(1)) === 1);
    fx.push(buildCmd7({ handle: 2 }));
    fx.push(buildCmd7({ handle: 0 })); // invalid handle → needs an error response
    const blocked = fx.consume(codec);
    expect(blocked.entries).toHaveLength(1);
    expect(blocked.stop).toBe('response-full');
    expect(blocked.newOut).toBe(1);
    fx.flush(codec);
    fx.drainResponses();
    const resumed = fx.consume(codec);
    expect(resumed.entries[0]).toMatchObject({ kind: 'error', reason: 'handle-index', responsePosted: true });
    expect(resumed.newOut).toBe(2);
  });

  it('publishes each response entry whole for drivers that only watch the signature', () => {
    const codec = create();
    const fx = new RingFixture(8, 8);
    fx.configure(codec);
    fx.rspIn = fx.rspOut = 6; // the run wraps: slots 6, 7, then 0, 1
    const sense = new Uint8Array(96).map((_, i) => 0x40 + i);
    codec.postStatus({ handle: 1, compStatus: 0, scsiStatus: 2, sense }); // 3 entries
    codec.postStatus(good(2));
    // An old qla2xxx (no rsp_q_in) scanning from rsp_q_out before every guest-memory operation.
    const seen: Uint8Array[][] = [];
    const scan = (): void => {
      const entries: Uint8Array[] = [];
      for (let i = 0, slot = 6; i < 8; i++, slot = (slot + 1) % 8) {
        const entry = fx.rsp.slice(slot * ENTRY, (slot + 1) * ENTRY);
        if (new DataView(entry.buffer).getUint32(60, true) === 0xdeaddead) break;
        entries.push(entry);
      }
      seen.push(entries);
    };
    const spy: GuestMemory = {
      read: (a, l) => fx.mem.read(a, l),
      readInto: (a, d, o, l) => fx.mem.readInto(a, d, o, l),
      isMapped: (a, l, acc) => fx.mem.isMapped(a, l, acc),
      views: (a, l, acc) => fx.mem.views(a, l, acc),
      // A memcpy that stores the tail first, observed after every dword.
      write: (a, d) => {
        for (let off = d.length - 4; off >= 0; off -= 4) {
          scan();
          fx.mem.write(a + BigInt(off), d.subarray(off, off + 4));
        }
      },
      view: (a, l, acc) => {
        scan();
        const live = fx.mem.view(a, l, acc);
        return new TailFirstBytes(live.buffer as ArrayBuffer, live.byteOffset, live.length, scan);
      },
    };
    expect(codec.flushResponses(spy, 6, 6)).toMatchObject({ written: 4, newIn: 2 });
    scan();
    const final = seen[seen.length - 1]!;
    expect(final.map((e) => e[0])).toEqual([T_STATUS, T_STATUS_CONT, T_STATUS_CONT, T_STATUS]);
    expect(seen.length).toBeGreaterThan(4);
    for (const snapshot of seen) {
      // Every entry visible at any moment is already complete and in order.
      for (const [i, entry] of snapshot.entries()) expect(Array.from(entry)).toEqual(Array.from(final[i]!));
    }
    expect(seen.map((s) => s.length)).toEqual([...seen.map((s) => s.length)].sort((a, b) => a - b));
  });

  it('turns an rsp_q_out outside the ring into a fault and keeps the entries', () => {
    const codec = create();
    const fx = new RingFixture(8, 4);
    fx.configure(codec);
    codec.postStatus(good(1));
    const result = codec.flushResponses(fx.mem, 0, 4);
    expect(result).toMatchObject({ written: 0, pending: 1, fault: { kind: 'response-index' } });
    expect(codec.pendingResponses).toBe(1);
  });

  it('reports an unwritable response ring as a DMA fault and keeps the entries', () => {
    const codec = create();
    const mem = new ArrayGuestMemory();
    mem.map(REQ_BASE, 8 * ENTRY);
    mem.map(RSP_BASE, 4 * ENTRY, false);
    codec.configure(REQ_BASE, 8, RSP_BASE, 4);
    codec.postStatus(good(1));
    const result = codec.flushResponses(mem, 0, 0);
    expect(result).toMatchObject({ newIn: 0, written: 0, pending: 1, fault: { kind: 'dma' } });
  });

  it('drops queued responses on reset and on reconfiguration', () => {
    const codec = create();
    const fx = new RingFixture(8, 4);
    fx.configure(codec);
    codec.postStatus(good(1));
    codec.resetResponses();
    expect(codec.pendingResponses).toBe(0);
    codec.postStatus(good(2));
    fx.configure(codec);
    expect(codec.pendingResponses).toBe(0);
  });
});

describe('RingEngine loading', () => {
  it('fails loudly when the module file is missing', () => {
    expect(() => new RingEngine({ wasmPath: '/nonexistent/ring.wasm' })).toThrow(/npm run build:wasm/);
  });
});

/** A mix of valid and corrupted IOCBs, built once so every implementation sees the same bytes. */
function randomBatch(next: () => number, maxEntries: number): Uint8Array {
  const parts: Uint8Array[] = [];
  let used = 0;
  while (used < maxEntries) {
    const pick = next() % 10;
    let part: Uint8Array;
    if (pick < 5) {
      const dsds = next() % 14;
      const segs = segmentsOf(dsds, BigInt(next() % 0x1000) * 0x1000n, 1 + (next() % 9000));
      part = buildCmd7({
        handle: 1 + (next() % 300),
        direction: dsds ? (next() & 1 ? 'read' : 'write') : 'none',
        segments: segs,
        lun: next() % 300,
        cdb: [0x28, next() & 0xff, 1, 2, 3, 4, 0, 0, 8, 0],
        task: next() % 8,
      });
      if (pick >= 3) {
        // Corrupt a field the codec validates: count, handle, nport, dseg_count, flags, task,
        // byte_count, vp_index or the inline DSD.
        const fields = [1, 4, 6, 7, 8, 9, 12, 13, 24, 25, 26, 44, 45, 47, 51, 59, 60, 62];
        part[fields[next() % fields.length]!] = next() & 0xff;
      }
    } else if (pick < 7) {
      part = buildRaw(
        [T_LOGIO, T_ABORT, T_MARKER, 0x14, 0x29, 0x39, 0x53][next() % 7]!,
        next() % 400,
        next() % 8 === 0 ? 2 : 1,
      );
    } else if (pick < 9) {
      part = new Uint8Array(ENTRY).map(() => next() & 0xff);
      part[0] = [T_CONT_A64, T_CMD7, 0x6a, 0x00][next() % 4]!;
    } else {
      part = buildRaw(T_LOGIO, 0);
      new DataView(part.buffer).setUint32(60, 0xdeaddead, true);
    }
    if (used + part.length / ENTRY > maxEntries) break;
    parts.push(part);
    used += part.length / ENTRY;
  }
  const out = new Uint8Array(used * ENTRY);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function randomStatus(next: () => number): StatusType0 {
  const senseLength = next() % 4 === 0 ? next() % 130 : 0;
  const sense = new Uint8Array(senseLength).map(() => next() & 0xff);
  if (senseLength > 30 && next() % 3 === 0) sense.set([0xde, 0xad, 0xde, 0xad], 24);
  const status: StatusType0 = {
    handle: next(),
    compStatus: next() % 0x50,
    scsiStatus: next() & 0xff,
    sense,
    oxId: next() & 0xffff,
  };
  if (next() % 3 === 0) status.residual = { kind: next() & 1 ? 'under' : 'over', bytes: next() };
  if (next() % 5 === 0) status.responseInfo = new Uint8Array(next() & 1 ? 4 : 8).map(() => next() & 0xff);
  return status;
}

describe('implementations agree', () => {
  it('produce identical entries, indices and response bytes on random traffic', () => {
    const impls = implementations();
    const traces = impls.map(({ create }) => {
      const codec: RingCodec = create();
      const fx = new RingFixture(61, 23);
      fx.configure(codec, { maxHandleIndex: 256, maxTransferBytes: 1 << 20 });
      const next = rng(0x5eed).u32;
      const trace: { entries: RequestEntry[]; newOut: number; stop: string; rsp: number[][]; flush: unknown }[] = [];
      for (let round = 0; round < 400; round++) {
        const free = (fx.reqOut - fx.reqIn - 1 + fx.reqEntries) % fx.reqEntries;
        fx.push(randomBatch(next, Math.min(free, 1 + (next() % 24))));
        const result = fx.consume(codec, 1 + (next() % 12));
        for (let s = next() % 4; s > 0; s--) codec.postStatus(randomStatus(next));
        const flush = fx.flush(codec);
        const rsp = (next() % 3 === 0 ? [] : fx.drainResponses()).map((e) => Array.from(e));
        trace.push({ entries: result.entries, newOut: result.newOut, stop: result.stop, rsp, flush });
      }
      return trace;
    });
    const [reference, ...others] = traces;
    const kinds = new Set(reference!.flatMap((t) => t.entries.map((e) => (e.kind === 'error' ? e.reason : e.kind))));
    // The vectors must exercise decoding, pass-through and several rejection paths.
    expect(kinds.has('command')).toBe(true);
    expect(kinds.has('raw')).toBe(true);
    expect(kinds.size).toBeGreaterThan(6);
    for (const other of others) expect(other).toEqual(reference);
  });
});

describe.each(implementations())('hostile ring contents ($name)', ({ create }) => {
  it('always makes progress, never consumes past the producer, and accounts for every entry', () => {
    const next = rng(0xbad5eed).u32;
    for (let trial = 0; trial < 150; trial++) {
      const codec = create();
      const length = 2 + (next() % 300);
      const fx = new RingFixture(length, 8);
      fx.configure(codec, { maxHandleIndex: 1 + (next() % 0xffff), maxVpIndex: next() % 3, maxTransferBytes: next() });
      fx.req.set(new Uint8Array(length * ENTRY).map(() => next() & 0xff));
      // Make headers look plausible often enough to reach the deeper checks.
      for (let i = 0; i < length; i++) {
        if (next() % 2) fx.req[i * ENTRY] = [T_CMD7, T_CONT_A64, T_LOGIO, T_MARKER][next() % 4]!;
        if (next() % 2) fx.req[i * ENTRY + 1] = 1 + (next() % 4);
      }
      fx.reqOut = next() % length;
      fx.reqIn = next() % length;
      let remaining = (fx.reqIn - fx.reqOut + length) % length;
      for (let calls = 0; remaining > 0; calls++) {
        expect(calls).toBeLessThan(length + 1);
        const before = fx.reqOut;
        const result = fx.consume(codec, 1 + (next() % 40));
        expect(result.fault).toBeNull();
        const consumed = result.entries.reduce((n, e) => n + (e.kind === 'raw' ? 1 : e.entryCount), 0);
        expect(consumed).toBeGreaterThan(0);
        expect(consumed).toBeLessThanOrEqual(remaining);
        expect(result.newOut).toBe((before + consumed) % length);
        remaining -= consumed;
        fx.flush(codec);
        fx.drainResponses();
      }
      expect(fx.reqOut).toBe(fx.reqIn);
    }
  });
});
