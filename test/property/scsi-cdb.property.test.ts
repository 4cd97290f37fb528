/**
 * SCSI CDB field access and the SAM LUN structure (src/scsi/cdb.ts), and CDB parsing by the
 * array's device server: any 16 bytes as a CDB on any LUN field get a SCSI status (with sense
 * data when not GOOD), never an exception.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { LUN_FIELD_LENGTH, MAX_FLAT_LUN, decodeLun, encodeLun } from '../../src/scsi/cdb.js';
import { readU16BE, readU32BE, readU64BE, writeU16BE, writeU32BE, writeU64BE } from '../../src/util/bytes.js';
import { HOST_1, Host, makeArray } from '../unit/scsi/helpers.js';
import { FEW, RUNS, bytes, u16, u32, u64 } from './support.js';

describe('SCSI CDB fields', () => {
  it('put/get big-endian 16, 32 and 64-bit fields at any offset', () => {
    fc.assert(
      fc.property(u16, u32, u64, fc.nat(8), (a, b, c, at) => {
        const buf = new Uint8Array(24);
        writeU16BE(buf, at, a);
        expect(readU16BE(buf, at)).toBe(a);
        writeU32BE(buf, at, b);
        expect(readU32BE(buf, at)).toBe(b);
        writeU64BE(buf, at, c);
        expect(readU64BE(buf, at)).toBe(c);
      }),
      RUNS,
    );
  });
});

describe('SAM LUN structure', () => {
  it('decodeLun(encodeLun(n)) = n for every single-level LUN', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: MAX_FLAT_LUN }), (n) => {
        expect(decodeLun(encodeLun(n))).toBe(n);
      }),
      RUNS,
    );
  });
  it('decodes any field to a LUN in range (which encodes back to a field decoding to it) or null', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          bytes(10),
          bytes(2).map((b) => Uint8Array.of(...b, 0, 0, 0, 0, 0, 0)),
        ),
        (field) => {
          const n = decodeLun(field);
          if (n === null) return;
          expect(field.length).toBe(LUN_FIELD_LENGTH);
          expect(n).toBeGreaterThanOrEqual(0);
          expect(n).toBeLessThanOrEqual(MAX_FLAT_LUN);
          expect(decodeLun(encodeLun(n))).toBe(n);
        },
      ),
      RUNS,
    );
  });
  it('refuses LUNs it cannot encode with a RangeError', () => {
    fc.assert(
      fc.property(
        fc.oneof(fc.integer({ min: MAX_FLAT_LUN + 1 }), fc.integer({ max: -1 }), fc.double({ noInteger: true })),
        (n) => {
          expect(() => encodeLun(n)).toThrow(RangeError);
        },
      ),
      RUNS,
    );
  });
});

describe('CDB parsing by the device server', () => {
  it('answers any CDB on any LUN with a status, never an exception', async () => {
    const array = await makeArray();
    const host = new Host(HOST_1, array.ports[0]!);
    // Opcodes the server implements come first, so most cases reach their field parsing.
    const opcode = fc.constantFrom(
      0x00,
      0x03,
      0x12,
      0x1a,
      0x25,
      0x28,
      0x2a,
      0x2f,
      0x35,
      0x5a,
      0x5e,
      0x5f,
      0x88,
      0x8a,
      0x9e,
      0xa0,
      0xa3,
      0x41,
      0x93,
      0x42,
      0x89,
      0x1b,
      0x1e,
      0x08,
      0x0a,
      0x4d,
      0x56,
      0x57,
    );
    const cdb = fc
      .tuple(fc.oneof(opcode, fc.integer({ min: 0, max: 255 })), bytes(15, 15))
      .map(([op, rest]) => Uint8Array.of(op, ...rest));
    const lunField = fc.oneof(fc.constant(encodeLun(0)), fc.constant(encodeLun(7)), bytes(8, 8));
    await fc.assert(
      fc.asyncProperty(
        cdb,
        lunField,
        fc.constantFrom('read', 'write', 'none'),
        fc.integer({ min: 0, max: 8192 }),
        async (c, lun, direction, length) => {
          const dataOut = direction === 'write' ? new Uint8Array(length) : undefined;
          const r = await host.send(c, {
            lunField: lun,
            direction: direction as 'read' | 'write' | 'none',
            expectedLength: length,
            ...(dataOut ? { dataOut } : {}),
          });
          expect(Number.isInteger(r.status)).toBe(true);
          if (r.status === 0x02) expect(r.sense?.length ?? 0).toBeGreaterThan(0);
        },
      ),
      FEW,
    );
  });
});
