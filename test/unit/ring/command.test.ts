/**
 * Command Type 7 + Continuation Type 1 decoding, and raw pass-through of other request IOCBs,
 * on every codec implementation, against entries built the way qla2xxx builds them.
 */
import { describe, expect, it } from 'vitest';
import type { CommandRequest, RawRequest, RingCodec } from '../../../src/isp/ring/types.js';
import {
  ENTRY,
  RingFixture,
  T_ABORT,
  T_CT,
  T_LOGIO,
  T_MARKER,
  T_MBX,
  T_TSK_MGMT,
  T_ELS,
  QLA_SKIP_HANDLE,
  buildCmd7,
  buildRaw,
  implementations,
  segmentsOf,
} from './support.js';

function onlyCommand(codec: RingCodec, fx: RingFixture): CommandRequest {
  const result = fx.consume(codec);
  expect(result.fault).toBeNull();
  expect(result.entries).toHaveLength(1);
  const entry = result.entries[0]!;
  if (entry.kind !== 'command') throw new Error(`expected a command, got ${JSON.stringify(entry)}`);
  return entry;
}

describe.each(implementations())('Command Type 7 decoding ($name)', ({ create }) => {
  it('decodes a command without data: no segments, direction none, one entry', () => {
    const codec = create();
    const fx = new RingFixture();
    fx.configure(codec);
    // TEST UNIT READY to LUN 0 with handle 1 on queue 0.
    fx.push(buildCmd7({ handle: 1, nportHandle: 0x81, cdb: [0x00, 0, 0, 0, 0, 0] }));
    const cmd = onlyCommand(codec, fx);
    expect(cmd).toMatchObject({
      handle: 1,
      nportHandle: 0x81,
      direction: 'none',
      totalBytes: 0,
      segments: [],
      entryCount: 1,
    });
    expect(fx.reqOut).toBe(1);
    expect(codec.pendingResponses).toBe(0);
  });

  it('returns LUN and CDB in SAM byte order (undoing int_to_scsilun + host_to_fcp_swap)', () => {
    const codec = create();
    const fx = new RingFixture();
    fx.configure(codec);
    // READ(10) LBA 0x01020304, 8 blocks, to Linux LUN 0x4105 (flat space, LUN 261).
    const cdb = [0x28, 0x00, 0x01, 0x02, 0x03, 0x04, 0x00, 0x00, 0x08, 0x00];
    const entries = buildCmd7({
      handle: 7,
      lun: 0x4105,
      cdb,
      direction: 'read',
      segments: [{ address: 0x8000n, length: 4096 }],
    });
    // Hand check of the guest bytes the driver produces: LUN bytes {0x41,0x05,0,0} → dword-swapped.
    expect(Array.from(entries.subarray(16, 24))).toEqual([0x00, 0x00, 0x05, 0x41, 0, 0, 0, 0]);
    expect(Array.from(entries.subarray(28, 32))).toEqual([0x02, 0x01, 0x00, 0x28]);
    fx.push(entries);
    const cmd = onlyCommand(codec, fx);
    expect(Array.from(cmd.lun)).toEqual([0x41, 0x05, 0, 0, 0, 0, 0, 0]);
    expect(Array.from(cmd.cdb)).toEqual([...cdb, 0, 0, 0, 0, 0, 0]);
    expect(cmd.direction).toBe('read');
    expect(cmd.totalBytes).toBe(4096);
    expect(cmd.segments).toEqual([{ address: 0x8000n, length: 4096 }]);
  });

  it('decodes multi-level LUNs byte for byte', () => {
    const codec = create();
    const fx = new RingFixture();
    fx.configure(codec);
    // Linux LUN 0x0000_0000_2233_0011 → int_to_scsilun {0x00,0x11,0x22,0x33,0,0,0,0}.
    fx.push(buildCmd7({ handle: 2, lun: 0x22330011 }));
    expect(Array.from(onlyCommand(codec, fx).lun)).toEqual([0x00, 0x11, 0x22, 0x33, 0, 0, 0, 0]);
  });

  it('decodes a write with one inline segment and the other command fields', () => {
    const codec = create();
    const fx = new RingFixture();
    fx.configure(codec, { maxVpIndex: 3 });
    // task: ORDERED with FCP priority 5 (qla24xx_start_scsi ORs fcp_prio << 3).
    fx.push(
      buildCmd7({
        handle: 0x1234,
        nportHandle: 0x7ee,
        direction: 'write',
        segments: [{ address: 0xffff_ffff_0000_1000n, length: 512 }],
        portId: 0x0a0b0c,
        vpIndex: 3,
        task: 2 | (5 << 3),
      }),
    );
    const cmd = onlyCommand(codec, fx);
    expect(cmd).toMatchObject({
      handle: 0x1234,
      nportHandle: 0x7ee,
      direction: 'write',
      portId: 0x0a0b0c,
      vpIndex: 3,
      taskAttribute: 2,
      priority: 5,
      totalBytes: 512,
    });
    expect(cmd.segments).toEqual([{ address: 0xffff_ffff_0000_1000n, length: 512 }]);
  });

  it.each([2, 6, 7, 11, 13, 128])('walks %i segments across continuation entries', (count) => {
    const codec = create();
    const fx = new RingFixture(64);
    fx.configure(codec);
    const segments = segmentsOf(count);
    // Stale bytes in the unused DSD slots of the last continuation must be ignored.
    const entries = buildCmd7({ handle: 9, direction: 'read', segments, staleFill: 0xee });
    const expectedEntries = 1 + Math.ceil((count - 1) / 5);
    expect(entries.length / ENTRY).toBe(expectedEntries);
    fx.push(entries);
    const cmd = onlyCommand(codec, fx);
    expect(cmd.entryCount).toBe(expectedEntries);
    expect(cmd.segments).toEqual(segments);
    expect(cmd.totalBytes).toBe(segments.reduce((s, x) => s + x.length, 0));
    expect(fx.reqOut).toBe(expectedEntries % 64);
  });

  it('decodes a command whose continuations wrap around the ring end', () => {
    const codec = create();
    const fx = new RingFixture(8);
    fx.configure(codec);
    fx.startAt(6);
    const segments = segmentsOf(12); // 1 + 3 continuation entries: slots 6, 7, 0, 1
    fx.push(buildCmd7({ handle: 3, direction: 'write', segments }));
    expect(fx.reqIn).toBe(2);
    const cmd = onlyCommand(codec, fx);
    expect(cmd.segments).toEqual(segments);
    expect(fx.reqOut).toBe(2);
  });

  it('decodes several commands in one call, in ring order', () => {
    const codec = create();
    const fx = new RingFixture();
    fx.configure(codec);
    fx.push(buildCmd7({ handle: 1, direction: 'read', segments: segmentsOf(3) }));
    fx.push(buildCmd7({ handle: 2 }));
    fx.push(buildCmd7({ handle: 3, direction: 'write', segments: segmentsOf(8, 0x5000_0000n) }));
    const result = fx.consume(codec);
    expect(result.entries.map((e) => e.kind === 'command' && e.handle)).toEqual([1, 2, 3]);
    const third = result.entries[2] as CommandRequest;
    expect(third.segments).toEqual(segmentsOf(8, 0x5000_0000n));
    expect(result.stop).toBe('drained');
    expect(result.newOut).toBe(fx.reqIn);
  });

  it('reads each request entry from guest memory once per call (copy-in, no double fetch)', () => {
    const codec = create();
    const fx = new RingFixture(8);
    fx.configure(codec);
    fx.startAt(5);
    fx.push(buildCmd7({ handle: 1, direction: 'read', segments: segmentsOf(12) })); // wraps
    const before = fx.mem.reads;
    onlyCommand(codec, fx);
    expect(fx.mem.reads - before).toBe(2); // one contiguous run before the wrap, one after
  });
});

describe.each(implementations())('raw request IOCBs ($name)', ({ create }) => {
  it.each([
    ['Task Management', T_TSK_MGMT],
    ['CT Pass-Through', T_CT],
    ['Abort IO', T_ABORT],
    ['Mailbox IOCB', T_MBX],
    ['Login/Logout', T_LOGIO],
    ['ELS Pass-Through', T_ELS],
  ])('passes %s through as a 64-byte copy', (_name, type) => {
    const codec = create();
    const fx = new RingFixture();
    fx.configure(codec);
    const iocb = buildRaw(type, 0x0000_0042);
    fx.push(iocb);
    const result = fx.consume(codec);
    expect(result.entries).toHaveLength(1);
    const raw = result.entries[0] as RawRequest;
    expect(raw).toMatchObject({ kind: 'raw', type, handle: 0x42 });
    expect(Array.from(raw.bytes)).toEqual(Array.from(iocb));
  });

  it.each([0, QLA_SKIP_HANDLE, 5])('passes a Marker with handle %i through (no handle check)', (handle) => {
    const codec = create();
    const fx = new RingFixture();
    fx.configure(codec);
    fx.push(buildRaw(T_MARKER, handle));
    const result = fx.consume(codec);
    expect(result.entries[0]).toMatchObject({ kind: 'raw', type: T_MARKER, handle });
  });

  it('keeps a raw copy independent of later guest writes', () => {
    const codec = create();
    const fx = new RingFixture();
    fx.configure(codec);
    fx.push(buildRaw(T_LOGIO, 4));
    const raw = fx.consume(codec).entries[0] as RawRequest;
    fx.req.fill(0xaa, 0, ENTRY);
    expect(raw.bytes[0]).toBe(T_LOGIO);
    expect(raw.bytes[8]).toBe((8 * 7) & 0xff);
  });
});
