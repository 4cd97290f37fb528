/**
 * Malformed request IOCBs: each becomes a rejected entry with the entry_status bit the driver
 * checks (qla2x00_error_entry, RF_* in qla_def.h) and, when it carries a usable handle, an
 * error response on the response ring that the driver completes with DID_ERROR.
 */
import { describe, expect, it } from 'vitest';
import type { RejectedRequest, RingLimits } from '../../../src/isp/ring/types.js';
import {
  ENTRY,
  QLA_SKIP_HANDLE,
  RF_INV_E_COUNT,
  RF_INV_E_ORDER,
  RF_INV_E_PARAM,
  RF_INV_E_TYPE,
  RingFixture,
  T_CMD7,
  T_CONT_A64,
  T_LOGIO,
  T_STATUS,
  T_TSK_MGMT,
  buildCmd7,
  buildRaw,
  decodeStatus,
  implementations,
  segmentsOf,
} from './support.js';
import { rng } from '../../support/rng.js';

interface Case {
  name: string;
  push(fx: RingFixture): void;
  limits?: Partial<RingLimits>;
  reason: RejectedRequest['reason'];
  entryStatus: number;
  entryCount: number;
  handle: number;
  responsePosted: boolean;
}

const read = (segments = segmentsOf(1)) => ({ direction: 'read' as const, segments });

const cases: Case[] = [
  {
    name: 'unknown entry type (skips its entry_count entries)',
    push: (fx) => {
      const entries = new Uint8Array(3 * ENTRY);
      entries.set(buildRaw(0x77, 21, 3));
      fx.push(entries);
    },
    reason: 'bad-entry-type',
    entryStatus: RF_INV_E_TYPE,
    entryCount: 3,
    handle: 21,
    responsePosted: true,
  },
  {
    name: 'entry_count 0',
    push: (fx) => fx.push(buildCmd7({ handle: 5, entryCount: 0 })),
    reason: 'entry-count-zero',
    entryStatus: RF_INV_E_COUNT,
    entryCount: 1,
    handle: 5,
    responsePosted: true,
  },
  {
    name: 'entry_count larger than the ring',
    push: (fx) => fx.push(buildCmd7({ handle: 6, entryCount: 255 })),
    reason: 'entry-count-beyond-producer',
    entryStatus: RF_INV_E_COUNT,
    entryCount: 1,
    handle: 6,
    responsePosted: true,
  },
  {
    name: 'entry_count ≠ 1 on a single-entry IOCB',
    push: (fx) => fx.push(buildRaw(T_TSK_MGMT, 8, 2)),
    reason: 'entry-count-single',
    entryStatus: RF_INV_E_COUNT,
    entryCount: 1,
    handle: 8,
    responsePosted: true,
  },
  {
    name: 'dseg_count larger than the entries hold',
    push: (fx) => fx.push(buildCmd7({ handle: 9, ...read(segmentsOf(3)), dsegCount: 7 })),
    reason: 'dseg-count',
    entryStatus: RF_INV_E_PARAM,
    entryCount: 2,
    handle: 9,
    responsePosted: true,
  },
  {
    name: 'dseg_count 0 with a continuation entry',
    push: (fx) => fx.push(buildCmd7({ handle: 10, ...read(segmentsOf(2)), dsegCount: 0, byteCount: 0 })),
    reason: 'dseg-count',
    entryStatus: RF_INV_E_PARAM,
    entryCount: 2,
    handle: 10,
    responsePosted: true,
  },
  {
    name: 'continuation slot holding another entry type',
    push: (fx) => {
      const entries = buildCmd7({ handle: 11, ...read(segmentsOf(4)) });
      entries[ENTRY] = T_CMD7;
      fx.push(entries);
    },
    reason: 'continuation-type',
    entryStatus: RF_INV_E_ORDER,
    entryCount: 2,
    handle: 11,
    responsePosted: true,
  },
  {
    name: 'stray continuation (no handle to report)',
    push: (fx) => fx.push(buildCmd7({ handle: 12, ...read(segmentsOf(4)) }).subarray(ENTRY)),
    reason: 'stray-continuation',
    entryStatus: RF_INV_E_ORDER,
    entryCount: 1,
    handle: 0,
    responsePosted: false,
  },
  {
    name: 'handle index 0 (never allocated by the driver)',
    push: (fx) => fx.push(buildCmd7({ handle: 0 })),
    reason: 'handle-index',
    entryStatus: RF_INV_E_PARAM,
    entryCount: 1,
    handle: 0,
    responsePosted: true,
  },
  {
    name: 'handle index above the outstanding-command limit',
    push: (fx) => fx.push(buildCmd7({ handle: 101 })),
    limits: { maxHandleIndex: 100 },
    reason: 'handle-index',
    entryStatus: RF_INV_E_PARAM,
    entryCount: 1,
    handle: 101,
    responsePosted: true,
  },
  {
    name: 'handle naming request queue 1 on a single-queue HBA',
    push: (fx) => fx.push(buildCmd7({ handle: 0x0001_0005 })),
    reason: 'handle-queue',
    entryStatus: RF_INV_E_PARAM,
    entryCount: 1,
    handle: 0x0001_0005,
    responsePosted: true,
  },
  {
    name: 'QLA_SKIP_HANDLE on a command (no completion possible)',
    push: (fx) => fx.push(buildCmd7({ handle: QLA_SKIP_HANDLE })),
    reason: 'handle-queue',
    entryStatus: RF_INV_E_PARAM,
    entryCount: 1,
    handle: QLA_SKIP_HANDLE,
    responsePosted: false,
  },
  {
    name: 'zero-length segment',
    push: (fx) =>
      fx.push(
        buildCmd7({ handle: 13, direction: 'write', segments: [...segmentsOf(2), { address: 0x9000n, length: 0 }] }),
      ),
    reason: 'segment-zero-length',
    entryStatus: RF_INV_E_PARAM,
    entryCount: 2,
    handle: 13,
    responsePosted: true,
  },
  {
    name: 'segment address + length past 2^64',
    push: (fx) => fx.push(buildCmd7({ handle: 14, ...read([{ address: 0xffff_ffff_ffff_f000n, length: 0x1001 }]) })),
    reason: 'segment-address-overflow',
    entryStatus: RF_INV_E_PARAM,
    entryCount: 1,
    handle: 14,
    responsePosted: true,
  },
  {
    name: 'byte_count larger than the segments',
    push: (fx) => fx.push(buildCmd7({ handle: 15, ...read(segmentsOf(6)), byteCount: 6 * 4096 + 15 + 1 })),
    reason: 'total-length-mismatch',
    entryStatus: RF_INV_E_PARAM,
    entryCount: 2,
    handle: 15,
    responsePosted: true,
  },
  {
    name: 'byte_count without segments',
    push: (fx) => fx.push(buildCmd7({ handle: 16, direction: 'read', byteCount: 512 })),
    reason: 'total-length-mismatch',
    entryStatus: RF_INV_E_PARAM,
    entryCount: 1,
    handle: 16,
    responsePosted: true,
  },
  {
    name: 'both data-direction bits',
    push: (fx) => fx.push(buildCmd7({ handle: 17, ...read(), taskMgmtFlags: 0x0003 })),
    reason: 'direction',
    entryStatus: RF_INV_E_PARAM,
    entryCount: 1,
    handle: 17,
    responsePosted: true,
  },
  {
    name: 'task-management bits on a command',
    push: (fx) => fx.push(buildCmd7({ handle: 18, ...read(), taskMgmtFlags: 0x0102 })),
    reason: 'direction',
    entryStatus: RF_INV_E_PARAM,
    entryCount: 1,
    handle: 18,
    responsePosted: true,
  },
  {
    name: 'data segments without a direction',
    push: (fx) => fx.push(buildCmd7({ handle: 19, segments: segmentsOf(1), taskMgmtFlags: 0 })),
    reason: 'direction',
    entryStatus: RF_INV_E_PARAM,
    entryCount: 1,
    handle: 19,
    responsePosted: true,
  },
  {
    name: 'byte_count above the transfer limit',
    push: (fx) => fx.push(buildCmd7({ handle: 20, ...read([{ address: 0x1000n, length: 8192 }]) })),
    limits: { maxTransferBytes: 4096 },
    reason: 'transfer-too-large',
    entryStatus: RF_INV_E_PARAM,
    entryCount: 1,
    handle: 20,
    responsePosted: true,
  },
  {
    name: 'reserved task attribute 3',
    push: (fx) => fx.push(buildCmd7({ handle: 22, task: 3 })),
    reason: 'task-attribute',
    entryStatus: RF_INV_E_PARAM,
    entryCount: 1,
    handle: 22,
    responsePosted: true,
  },
  {
    name: 'reserved task bit 7',
    push: (fx) => fx.push(buildCmd7({ handle: 23, task: 0x80 })),
    reason: 'task-attribute',
    entryStatus: RF_INV_E_PARAM,
    entryCount: 1,
    handle: 23,
    responsePosted: true,
  },
  {
    name: 'vp_index above the configured maximum',
    push: (fx) => fx.push(buildCmd7({ handle: 24, vpIndex: 1 })),
    reason: 'vp-index',
    entryStatus: RF_INV_E_PARAM,
    entryCount: 1,
    handle: 24,
    responsePosted: true,
  },
  {
    name: 'nport_handle above 0x7FF',
    push: (fx) => fx.push(buildCmd7({ handle: 25, nportHandle: 0x800 })),
    reason: 'nport-handle',
    entryStatus: RF_INV_E_PARAM,
    entryCount: 1,
    handle: 25,
    responsePosted: true,
  },
];

describe.each(implementations())('rejected request IOCBs ($name)', ({ create }) => {
  it.each(cases)('$name → entry_status $entryStatus', (c) => {
    const codec = create();
    const fx = new RingFixture();
    fx.configure(codec, c.limits ?? {});
    c.push(fx);
    // A valid command behind the bad entry must still be decoded.
    fx.push(buildCmd7({ handle: 99, ...read() }));
    const result = fx.consume(codec);
    expect(result.fault).toBeNull();
    expect(result.entries).toHaveLength(2);
    expect(result.entries[0]).toEqual({
      kind: 'error',
      type: expect.any(Number),
      handle: c.handle,
      entryStatus: c.entryStatus,
      reason: c.reason,
      entryCount: c.entryCount,
      responsePosted: c.responsePosted,
    });
    expect(result.entries[1]).toMatchObject({ kind: 'command', handle: 99 });
    expect(result.newOut).toBe(fx.reqIn);

    fx.flush(codec);
    const responses = fx.drainResponses();
    if (!c.responsePosted) {
      expect(responses).toHaveLength(0);
      return;
    }
    expect(responses).toHaveLength(1);
    const status = decodeStatus(responses[0]!);
    expect(status).toMatchObject({ type: T_STATUS, entryCount: 1, entryStatus: c.entryStatus, handle: c.handle });
  });

  it('reports a command whose continuations are not yet published as an entry-count error', () => {
    const codec = create();
    const fx = new RingFixture();
    fx.configure(codec);
    const entries = buildCmd7({ handle: 30, ...read(segmentsOf(11)) }); // 3 entries
    fx.push(entries.subarray(0, 2 * ENTRY)); // doorbell after only two
    const result = fx.consume(codec);
    expect(result.entries.map((e) => (e.kind === 'error' ? e.reason : e.kind))).toEqual([
      'entry-count-beyond-producer',
      'stray-continuation',
    ]);
    expect(result.newOut).toBe(2);
    fx.flush(codec);
    const responses = fx.drainResponses();
    expect(responses.map((r) => decodeStatus(r).handle)).toEqual([30]);
  });

  it('echoes a Login/Logout IOCB with a bad handle with entry_status set and its body kept', () => {
    const codec = create();
    const fx = new RingFixture();
    fx.configure(codec);
    const iocb = buildRaw(T_LOGIO, 0);
    fx.push(iocb);
    const result = fx.consume(codec);
    expect(result.entries[0]).toMatchObject({ kind: 'error', reason: 'handle-index', entryStatus: RF_INV_E_PARAM });
    fx.flush(codec);
    const [echo] = fx.drainResponses();
    expect(echo![0]).toBe(T_LOGIO);
    expect(echo![1]).toBe(1);
    expect(echo![3]).toBe(RF_INV_E_PARAM);
    expect(Array.from(echo!.subarray(4))).toEqual(Array.from(iocb.subarray(4)));
  });

  it('never echoes an entry ending in the processed signature 0xDEADDEAD', () => {
    const codec = create();
    const fx = new RingFixture();
    fx.configure(codec);
    const iocb = buildRaw(T_LOGIO, 0);
    new DataView(iocb.buffer).setUint32(60, 0xdeaddead, true);
    fx.push(iocb);
    fx.consume(codec);
    fx.flush(codec);
    const [echo] = fx.drainResponses();
    expect(new DataView(echo!.buffer).getUint32(60, true)).toBe(0);
    expect(echo![3]).toBe(RF_INV_E_PARAM);
  });

  it('accepts a segment that ends exactly at 2^64', () => {
    const codec = create();
    const fx = new RingFixture();
    fx.configure(codec);
    fx.push(buildCmd7({ handle: 31, ...read([{ address: 0xffff_ffff_ffff_f000n, length: 0x1000 }]) }));
    expect(fx.consume(codec).entries[0]).toMatchObject({ kind: 'command', totalBytes: 0x1000 });
  });

  it('treats random garbage in every slot without faults and consumes exactly what was published', () => {
    const codec = create();
    const fx = new RingFixture(64, 64);
    fx.configure(codec);
    const garbage = rng(12345).bytes(63 * ENTRY);
    // Bias some entries towards interesting types.
    for (let i = 0; i < 63; i += 3) garbage[i * ENTRY] = [T_CMD7, T_CONT_A64, T_LOGIO][i % 9 === 0 ? 0 : i % 2]!;
    fx.push(garbage);
    let consumed = 0;
    for (let calls = 0; calls < 64 && fx.reqOut !== fx.reqIn; calls++) {
      const result = fx.consume(codec, 16);
      expect(result.fault).toBeNull();
      consumed += result.entries.reduce((n, e) => n + (e.kind === 'raw' ? 1 : e.entryCount), 0);
      fx.flush(codec);
      fx.drainResponses();
    }
    expect(fx.reqOut).toBe(fx.reqIn);
    expect(consumed).toBe(63);
  });
});
