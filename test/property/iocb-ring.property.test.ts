/**
 * IOCB layouts (assembly/shared/iocb.ts) as the ring codecs decode and encode them (WASM release
 * and debug builds of the engine, and the TypeScript twin; src/isp/ring/types.ts): a Command
 * Type 7 (+ continuations) built the way qla2xxx builds it decodes to its fields; any bytes on
 * the request ring decode to records or faults, never an exception, identically in every
 * implementation; a posted status reads back as qla2xxx reads it.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { CommandRequest, StatusType0 } from '../../src/isp/ring/types.js';
import {
  ENTRY,
  RingFixture,
  buildCmd7,
  collectSense,
  decodeStatus,
  implementations,
  intToScsiLun,
} from '../unit/ring/support.js';
import { FEW, RUNS, bytes, u16, u24, u32, u8 } from './support.js';

const impls = implementations();

const segment = fc.record({
  address: fc.bigInt({ min: 0n, max: (1n << 48n) - 1n }),
  length: fc.integer({ min: 1, max: 1 << 16 }),
});
const cmd7 = fc.record({
  handle: fc.integer({ min: 1, max: 0xffff }),
  nportHandle: fc.integer({ min: 0, max: 0x7ff }),
  lun: fc.integer({ min: 0, max: 0x3fff }),
  cdb: fc.uint8Array({ minLength: 16, maxLength: 16 }).map((b) => [...b]),
  direction: fc.constantFrom('none', 'read', 'write'),
  segments: fc.array(segment, { minLength: 1, maxLength: 12 }),
  portId: u24,
});

describe.each(impls)('IOCB ring codec ($name)', ({ create }) => {
  it('decodes a Command Type 7 with its continuations to the fields qla2xxx wrote', () => {
    const codec = create();
    fc.assert(
      fc.property(cmd7, fc.nat(31), (spec, start) => {
        const direction = spec.direction as 'none' | 'read' | 'write';
        const segments = direction === 'none' ? [] : spec.segments;
        const fx = new RingFixture(32, 16);
        fx.configure(codec);
        codec.resetResponses();
        fx.startAt(start);
        fx.push(buildCmd7({ ...spec, direction, segments }));
        const r = fx.consume(codec);
        expect(r.fault).toBeNull();
        expect(r.entries).toHaveLength(1);
        const c = r.entries[0] as CommandRequest;
        expect(c.kind).toBe('command');
        expect({
          handle: c.handle,
          nportHandle: c.nportHandle,
          portId: c.portId,
          direction: c.direction,
          entryCount: c.entryCount,
        }).toEqual({
          handle: spec.handle,
          nportHandle: spec.nportHandle,
          portId: spec.portId,
          direction,
          entryCount: segments.length > 1 ? 1 + Math.ceil((segments.length - 1) / 5) : 1,
        });
        expect([...c.lun]).toEqual([...intToScsiLun(spec.lun)]);
        expect([...c.cdb]).toEqual(spec.cdb);
        expect(c.segments).toEqual(segments);
        expect(c.totalBytes).toBe(segments.reduce((n, s) => n + s.length, 0));
        expect(r.newOut).toBe((start + c.entryCount) % 32);
      }),
      RUNS,
    );
  });

  it('reads a posted status back the way qla2xxx does', () => {
    const codec = create();
    const status = fc.record({
      handle: u32,
      compStatus: u16,
      scsiStatus: u8,
      residual: fc.option(fc.record({ kind: fc.constantFrom<'under' | 'over'>('under', 'over'), bytes: u32 }), {
        nil: undefined,
      }),
      sense: fc.option(bytes(120, 1), { nil: undefined }),
    });
    fc.assert(
      fc.property(status, (s) => {
        const fx = new RingFixture(8, 16);
        fx.configure(codec);
        codec.resetResponses();
        const st: StatusType0 = {
          handle: s.handle,
          compStatus: s.compStatus,
          scsiStatus: s.scsiStatus,
          ...(s.residual ? { residual: s.residual } : {}),
          ...(s.sense ? { sense: s.sense } : {}),
        };
        expect(codec.postStatus(st)).toBeGreaterThan(0);
        fx.flush(codec);
        const entries = fx.drainResponses();
        const d = decodeStatus(entries[0]!);
        expect(d.handle).toBe(s.handle);
        expect(d.compStatus).toBe(s.compStatus);
        expect(d.scsiStatus & 0xff).toBe(s.scsiStatus);
        if (s.residual) expect(d.residualLen).toBe(s.residual.bytes);
        if (s.sense) expect([...collectSense(entries)]).toEqual([...s.sense.subarray(0, 96)]);
      }),
      RUNS,
    );
  });
});

describe('IOCB ring codecs on arbitrary request-ring bytes', () => {
  const ring = fc.record({
    entries: fc.integer({ min: 1, max: 16 }),
    reqOut: fc.nat(15),
    reqIn: fc.nat(20),
    budget: fc.integer({ min: 1, max: 40 }),
    // Mostly plausible entry types, so the decoders get past the first byte.
    body: fc.array(
      fc.tuple(
        fc.constantFrom(0x18, 0x0a, 0x04, 0x14, 0x33, 0x52, 0x53, 0x29, 0x39, 0x03, 0x77),
        fc.integer({ min: 0, max: 6 }),
        bytes(ENTRY - 2, ENTRY - 2),
      ),
      { maxLength: 16 },
    ),
  });
  it('never throw, and every implementation decodes and faults alike', () => {
    const codecs = impls.map((i) => i.create());
    fc.assert(
      fc.property(ring, (r) => {
        const results = codecs.map((codec) => {
          const fx = new RingFixture(r.entries, 8);
          fx.configure(codec);
          codec.resetResponses();
          fx.startAt(r.reqOut % r.entries);
          for (const [type, count, rest] of r.body.slice(0, r.entries)) fx.push(Uint8Array.of(type, count, ...rest));
          const out = codec.consumeRequests(fx.mem, r.reqOut % r.entries, r.reqIn, r.budget);
          return JSON.stringify({ ...out, fault: out.fault?.kind ?? null }, (_k, v: unknown) =>
            typeof v === 'bigint' ? v.toString() : v instanceof Uint8Array ? [...v] : v,
          );
        });
        for (const other of results.slice(1)) expect(other).toBe(results[0]);
      }),
      FEW,
    );
  });
});
