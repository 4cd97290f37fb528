/**
 * Status Type 0 / Status Continuation encoding and host-built response entries, checked the way
 * qla2x00_status_entry / qla2x00_handle_sense / qla2x00_status_cont_entry read them.
 */
import { describe, expect, it } from 'vitest';
import type { RingCodec, StatusType0 } from '../../../src/isp/ring/types.js';
import {
  ENTRY,
  RingFixture,
  T_CMD7,
  T_LOGIO,
  T_STATUS,
  T_STATUS_CONT,
  buildRaw,
  collectSense,
  decodeStatus,
  implementations,
} from './support.js';

function post(codec: RingCodec, status: StatusType0): Uint8Array[] {
  const fx = new RingFixture(8, 16);
  fx.configure(codec);
  const queued = codec.postStatus(status);
  const flushed = fx.flush(codec);
  expect(flushed.written).toBe(queued);
  return fx.drainResponses();
}

function senseBytes(length: number, seed = 1): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = (seed + i * 13) & 0xff;
  out[0] = 0x70;
  return out;
}

describe.each(implementations())('Status Type 0 encoding ($name)', ({ create }) => {
  it('encodes GOOD as a single all-quiet entry echoing the handle', () => {
    const [entry, ...rest] = post(create(), { handle: 0x0000_0123, compStatus: 0, scsiStatus: 0 });
    expect(rest).toHaveLength(0);
    const expected = new Uint8Array(ENTRY);
    expected.set([T_STATUS, 1, 0, 0, 0x23, 0x01, 0x00, 0x00]);
    expect(Array.from(entry!)).toEqual(Array.from(expected));
  });

  it('encodes CHECK CONDITION with short sense byte for byte (sense pre-swapped per dword)', () => {
    const sense = Uint8Array.from([0x70, 0, 0x05, 0, 0, 0, 0, 0x0a, 0, 0, 0, 0, 0x24, 0x00, 0, 0, 0, 0]);
    const [entry, ...rest] = post(create(), { handle: 7, compStatus: 0, scsiStatus: 0x02, sense, oxId: 0x1234 });
    expect(rest).toHaveLength(0);
    const expected = new Uint8Array(ENTRY);
    const v = new DataView(expected.buffer);
    expected.set([T_STATUS, 1, 0, 0]);
    v.setUint32(4, 7, true);
    v.setUint16(10, 0x1234, true);
    v.setUint16(22, 0x0202, true); // CHECK CONDITION | SS_SENSE_LEN_VALID
    v.setUint32(28, 18, true);
    // data[28] holds sense dword-swapped: {70 00 05 00} → {00 05 00 70} ...
    expected.set([0x00, 0x05, 0x00, 0x70, 0x0a, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x00, 0x24, 0, 0, 0, 0], 36);
    expect(Array.from(entry!)).toEqual(Array.from(expected));
    expect(Array.from(collectSense([entry!]))).toEqual(Array.from(sense));
  });

  it('reports an underrun with both residual fields equal and SS_RESIDUAL_UNDER', () => {
    const [entry] = post(create(), {
      handle: 3,
      compStatus: 0x15,
      scsiStatus: 0,
      residual: { kind: 'under', bytes: 512 },
    });
    expect(decodeStatus(entry!)).toMatchObject({
      compStatus: 0x15,
      residualLen: 512,
      rspResidualCount: 512,
      scsiStatus: 0x0800,
    });
  });

  it('reports an overrun with SS_RESIDUAL_OVER', () => {
    const [entry] = post(create(), {
      handle: 3,
      compStatus: 0x07,
      scsiStatus: 0,
      residual: { kind: 'over', bytes: 100 },
    });
    expect(decodeStatus(entry!)).toMatchObject({
      compStatus: 0x07,
      rspResidualCount: 100,
      residualLen: 100,
      scsiStatus: 0x0400,
    });
  });

  it('carries BUSY / TASK SET FULL with a retry delay and state flags', () => {
    const [entry] = post(create(), {
      handle: 4,
      compStatus: 0x1c,
      scsiStatus: 0x28,
      retryDelay: 0x0040,
      stateFlags: 0x0800,
    });
    expect(decodeStatus(entry!)).toMatchObject({
      compStatus: 0x1c,
      scsiStatus: 0x28,
      retryDelay: 0x40,
      stateFlags: 0x800,
    });
  });

  it.each([
    [28, 1],
    [29, 2],
    [88, 2],
    [89, 3],
    [96, 3],
  ])('splits %i sense bytes over %i entries (28 in the status, 60 per continuation)', (length, entries) => {
    const sense = senseBytes(length);
    const out = post(create(), { handle: 5, compStatus: 0, scsiStatus: 0x02, sense });
    expect(out).toHaveLength(entries);
    expect(out.map((e) => e[0])).toEqual([T_STATUS, ...Array<number>(entries - 1).fill(T_STATUS_CONT)]);
    expect(out.slice(1).every((e) => e[1] === 1 && e[3] === 0)).toBe(true);
    expect(decodeStatus(out[0]!).senseLen).toBe(length);
    expect(Array.from(collectSense(out))).toEqual(Array.from(sense));
  });

  it('caps sense at the 96 bytes the driver keeps', () => {
    const sense = senseBytes(200);
    const out = post(create(), { handle: 5, compStatus: 0, scsiStatus: 0x02, sense });
    expect(out).toHaveLength(3);
    expect(decodeStatus(out[0]!).senseLen).toBe(96);
    expect(Array.from(collectSense(out))).toEqual(Array.from(sense.subarray(0, 96)));
  });

  it('puts FCP_RSP_INFO before the sense and sets both valid bits', () => {
    const rspInfo = Uint8Array.from([0, 0, 0, 0x00, 0, 0, 0, 0]);
    rspInfo[3] = 0x05; // RSP_CODE: TMF rejected
    const sense = senseBytes(40);
    const out = post(create(), { handle: 6, compStatus: 0, scsiStatus: 0x02, responseInfo: rspInfo, sense });
    expect(out).toHaveLength(2); // 20 sense bytes fit after 8 bytes of response info
    const status = decodeStatus(out[0]!);
    expect(status.scsiStatus).toBe(0x0302);
    expect(status.rspDataLen).toBe(8);
    expect(Array.from(status.data.subarray(0, 8))).toEqual(Array.from(rspInfo));
    expect(Array.from(collectSense(out))).toEqual(Array.from(sense));
  });

  it('never lets an entry end in 0xDEADDEAD: sense is cut before such a dword', () => {
    const first = senseBytes(40);
    first.set([0xde, 0xad, 0xde, 0xad], 24); // would be the status entry's last dword
    const out = post(create(), { handle: 8, compStatus: 0, scsiStatus: 0x02, sense: first });
    expect(out).toHaveLength(1);
    expect(decodeStatus(out[0]!).senseLen).toBe(24);
    expect(new DataView(out[0]!.buffer).getUint32(60, true)).not.toBe(0xdeaddead);

    const second = senseBytes(96);
    second.set([0xde, 0xad, 0xde, 0xad], 28 + 56); // last dword of the first continuation
    const out2 = post(create(), { handle: 9, compStatus: 0, scsiStatus: 0x02, sense: second });
    expect(decodeStatus(out2[0]!).senseLen).toBe(84);
    expect(out2).toHaveLength(2);
    for (const e of out2) expect(new DataView(e.buffer).getUint32(60, true)).not.toBe(0xdeaddead);
    expect(Array.from(collectSense(out2))).toEqual(Array.from(second.subarray(0, 84)));
  });

  it('refuses invalid host-side status input with RangeError', () => {
    const codec = create();
    new RingFixture().configure(codec);
    expect(() => codec.postStatus({ handle: 1, compStatus: 0, scsiStatus: 0x100 })).toThrow(RangeError);
    expect(() => codec.postStatus({ handle: -1, compStatus: 0, scsiStatus: 0 })).toThrow(RangeError);
    expect(() =>
      codec.postStatus({ handle: 1, compStatus: 0, scsiStatus: 0, responseInfo: new Uint8Array(3) }),
    ).toThrow(RangeError);
    expect(() =>
      codec.postStatus({ handle: 1, compStatus: 0, scsiStatus: 0, residual: { kind: 'under', bytes: 2 ** 32 } }),
    ).toThrow(RangeError);
    expect(codec.pendingResponses).toBe(0);
  });
});

describe.each(implementations())('host-built response entries ($name)', ({ create }) => {
  it('queues a Login/Logout completion verbatim', () => {
    const codec = create();
    const fx = new RingFixture();
    fx.configure(codec);
    const entry = buildRaw(T_LOGIO, 0x11);
    expect(codec.postRaw(entry)).toBe(1);
    fx.flush(codec);
    expect(fx.drainResponses().map((e) => Array.from(e))).toEqual([Array.from(entry)]);
  });

  it.each([
    ['a request-only type', () => buildRaw(T_CMD7, 1)],
    ['entry_count 2', () => buildRaw(T_LOGIO, 1, 2)],
    ['a wrong size', () => new Uint8Array(63)],
    [
      'a trailing 0xDEADDEAD',
      () => {
        const e = buildRaw(T_LOGIO, 1);
        new DataView(e.buffer).setUint32(60, 0xdeaddead, true);
        return e;
      },
    ],
  ])('refuses %s', (_what, make) => {
    const codec = create();
    new RingFixture().configure(codec);
    expect(() => codec.postRaw(make())).toThrow(RangeError);
    expect(codec.pendingResponses).toBe(0);
  });
});
