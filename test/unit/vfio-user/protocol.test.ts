import { describe, expect, it } from 'vitest';
import {
  COMMAND,
  ERRNO,
  HEADER_FLAGS,
  ProtocolError,
  decodeDeviceInfo,
  decodeDmaMap,
  decodeDmaUnmap,
  decodeHeader,
  decodeIrqInfo,
  decodeIrqSet,
  decodeRegionAccess,
  decodeRegionInfo,
  decodeVersion,
  encodeCommand,
  encodeDeviceInfo,
  encodeDmaMap,
  encodeDmaUnmap,
  encodeErrorReply,
  encodeHeader,
  encodeIrqInfo,
  encodeIrqSet,
  encodeRegionAccess,
  encodeRegionInfo,
  encodeVersion,
} from '../../../src/vfio-user/protocol.js';
import { formatCapabilities, parseCapabilities } from '../../../src/vfio-user/capabilities.js';

/** QEMU 11.1.2's first message payload JSON, as observed on the wire (message size 214). */
const QEMU_JSON =
  '{"capabilities": {"pgsizes": 4096, "max_msg_fds": 16, "max_dma_maps": 65535, "max_data_xfer_size": 1048576, "migration": {"max_bitmap_size": 268435456, "pgsize": 4096}, "write_multiple": true}}';

function errnoOf(fn: () => unknown): number {
  try {
    fn();
  } catch (err) {
    if (err instanceof ProtocolError) return err.errno;
    throw err;
  }
  throw new Error('expected a ProtocolError');
}

describe('message header', () => {
  it('encodes the 16-byte little-endian layout field by field', () => {
    const b = new Uint8Array(16);
    encodeHeader(b, { id: 0x1234, command: 9, size: 0x20, flags: HEADER_FLAGS.NO_REPLY, error: 0x0506 });
    expect([...b]).toEqual([0x34, 0x12, 9, 0, 0x20, 0, 0, 0, 0x10, 0, 0, 0, 0x06, 0x05, 0, 0]);
    expect(decodeHeader(b)).toEqual({ id: 0x1234, command: 9, size: 0x20, flags: 0x10, error: 0x0506 });
  });

  it('decodes at an offset inside a larger view and refuses short input', () => {
    const big = new Uint8Array(40);
    const sub = big.subarray(8);
    encodeHeader(sub, { id: 7, command: 4, size: 32, flags: 1, error: 22 }, 4);
    expect(decodeHeader(sub, 4)).toEqual({ id: 7, command: 4, size: 32, flags: 1, error: 22 });
    expect(errnoOf(() => decodeHeader(new Uint8Array(15)))).toBe(ERRNO.EINVAL);
    expect(errnoOf(() => decodeHeader(big, 30))).toBe(ERRNO.EINVAL);
  });

  it('builds error replies as a bare header with the Error flag and errno', () => {
    const r = encodeErrorReply(0xbeef, COMMAND.DMA_MAP, ERRNO.EEXIST);
    expect(r.length).toBe(16);
    expect(decodeHeader(r)).toEqual({
      id: 0xbeef,
      command: COMMAND.DMA_MAP,
      size: 16,
      flags: HEADER_FLAGS.TYPE_REPLY | HEADER_FLAGS.ERROR,
      error: ERRNO.EEXIST,
    });
  });

  it('reproduces the size of QEMU 11.1.2 first VERSION message (214 bytes)', () => {
    const msg = encodeCommand(0, COMMAND.VERSION, encodeVersion({ major: 0, minor: 0, json: QEMU_JSON }));
    expect(msg.length).toBe(214);
    expect(decodeHeader(msg)).toEqual({ id: 0, command: 1, size: 214, flags: 0, error: 0 });
    expect(msg[213]).toBe(0); // NUL terminator
  });
});

describe('VERSION payload', () => {
  it('round-trips with and without JSON', () => {
    expect(decodeVersion(encodeVersion({ major: 0, minor: 3, json: QEMU_JSON }))).toEqual({
      major: 0,
      minor: 3,
      json: QEMU_JSON,
    });
    const bare = encodeVersion({ major: 1, minor: 2, json: undefined });
    expect(bare.length).toBe(4);
    expect(decodeVersion(bare)).toEqual({ major: 1, minor: 2, json: undefined });
  });

  it('requires exactly one NUL, at the end, and valid UTF-8', () => {
    const good = encodeVersion({ major: 0, minor: 0, json: '{}' });
    expect(errnoOf(() => decodeVersion(good.subarray(0, good.length - 1)))).toBe(ERRNO.EINVAL); // no NUL
    const inner = Uint8Array.from([0, 0, 0, 0, 0x7b, 0, 0x7d, 0]);
    expect(errnoOf(() => decodeVersion(inner))).toBe(ERRNO.EINVAL);
    const badUtf8 = Uint8Array.from([0, 0, 0, 0, 0xff, 0xfe, 0]);
    expect(errnoOf(() => decodeVersion(badUtf8))).toBe(ERRNO.EINVAL);
    expect(errnoOf(() => decodeVersion(new Uint8Array(3)))).toBe(ERRNO.EINVAL);
  });

  it('caps the JSON length', () => {
    const huge = encodeVersion({ major: 0, minor: 0, json: ' '.repeat(5000) });
    expect(errnoOf(() => decodeVersion(huge))).toBe(ERRNO.E2BIG);
  });
});

describe('capabilities', () => {
  it("parses QEMU's capabilities, including the v1 migration object", () => {
    const c = parseCapabilities(QEMU_JSON);
    expect(c).toMatchObject({
      maxMsgFds: 16,
      maxDataXferSize: 1048576,
      maxDmaMaps: 65535,
      pgsizes: 4096,
      writeMultiple: true,
      migration: true,
      twinSocket: false,
    });
    expect(c.unknownKeys).toEqual([]);
  });

  it('uses the spec defaults when JSON or keys are absent and reports unknown keys', () => {
    expect(parseCapabilities(undefined)).toMatchObject({
      maxMsgFds: 1,
      maxDataXferSize: 1 << 20,
      maxDmaMaps: 65535,
      pgsizes: 4096,
    });
    const c = parseCapabilities('{"capabilities":{"future_thing":1},"other":true}');
    expect(c.maxMsgFds).toBe(1);
    expect(c.unknownKeys.sort()).toEqual(['capabilities.future_thing', 'other']);
  });

  it.each([
    ['not json', 'nope'],
    ['top level not an object', '[1,2]'],
    ['capabilities not an object', '{"capabilities": 5}'],
    ['max_msg_fds as string', '{"capabilities":{"max_msg_fds":"16"}}'],
    ['negative max_msg_fds', '{"capabilities":{"max_msg_fds":-1}}'],
    ['fractional max_data_xfer_size', '{"capabilities":{"max_data_xfer_size":1.5}}'],
    ['zero max_dma_maps', '{"capabilities":{"max_dma_maps":0}}'],
    ['pgsizes not a 4 KiB multiple', '{"capabilities":{"pgsizes":1000}}'],
    ['write_multiple not boolean', '{"capabilities":{"write_multiple":1}}'],
    ['migration not an object', '{"capabilities":{"migration":true}}'],
  ])('refuses %s with EINVAL', (_what, json) => {
    expect(errnoOf(() => parseCapabilities(json))).toBe(ERRNO.EINVAL);
  });

  it('formats the server reply within QEMU limits and without write_multiple', () => {
    const json = formatCapabilities({ maxMsgFds: 16, maxDataXferSize: 1 << 20, maxDmaMaps: 1024, pgsizes: 4096 });
    expect(JSON.parse(json)).toEqual({
      capabilities: { max_msg_fds: 16, max_data_xfer_size: 1048576, pgsizes: 4096, max_dma_maps: 1024 },
    });
    expect(() =>
      formatCapabilities({ maxMsgFds: 17, maxDataXferSize: 1 << 20, maxDmaMaps: 1024, pgsizes: 4096 }),
    ).toThrow();
    expect(() =>
      formatCapabilities({ maxMsgFds: 8, maxDataXferSize: 1 << 20, maxDmaMaps: 70000, pgsizes: 4096 }),
    ).toThrow();
  });
});

describe('payload codecs', () => {
  it('DMA_MAP: 32 bytes at the documented offsets, exact length enforced', () => {
    const m = { argsz: 32, flags: 3, offset: 0x1000n, address: 0xfedc_ba98_7654_3000n, size: 0x2000_0000n };
    const b = encodeDmaMap(m);
    expect(b.length).toBe(32);
    const v = new DataView(b.buffer);
    expect(v.getBigUint64(16, true)).toBe(m.address);
    expect(v.getBigUint64(24, true)).toBe(m.size);
    expect(decodeDmaMap(b)).toEqual(m);
    expect(errnoOf(() => decodeDmaMap(b.subarray(0, 31)))).toBe(ERRNO.EINVAL);
    expect(errnoOf(() => decodeDmaMap(new Uint8Array(33)))).toBe(ERRNO.EINVAL);
  });

  it('DMA_UNMAP: 24 bytes', () => {
    const u = { argsz: 24, flags: 2, address: 0n, size: 0n };
    expect(decodeDmaUnmap(encodeDmaUnmap(u))).toEqual(u);
    expect(encodeDmaUnmap(u).length).toBe(24);
    expect(errnoOf(() => decodeDmaUnmap(new Uint8Array(16)))).toBe(ERRNO.EINVAL);
  });

  it('DEVICE_GET_INFO / GET_IRQ_INFO: 16 bytes', () => {
    const d = { argsz: 16, flags: 3, numRegions: 9, numIrqs: 5 };
    expect(decodeDeviceInfo(encodeDeviceInfo(d))).toEqual(d);
    const i = { argsz: 16, flags: 0xf, index: 2, count: 32 };
    expect(decodeIrqInfo(encodeIrqInfo(i))).toEqual(i);
    expect(errnoOf(() => decodeIrqInfo(new Uint8Array(12)))).toBe(ERRNO.EINVAL);
  });

  it('GET_REGION_INFO: 32 bytes with 64-bit size and offset', () => {
    const r = { argsz: 32, flags: 3, index: 7, capOffset: 0, size: 0x1_0000_0000n, offset: 0x7000_0000_0000n };
    const b = encodeRegionInfo(r);
    expect(b.length).toBe(32);
    expect(new DataView(b.buffer).getBigUint64(16, true)).toBe(r.size);
    expect(decodeRegionInfo(b)).toEqual(r);
  });

  it('SET_IRQS: 20 bytes plus bool data', () => {
    const s = { argsz: 23, flags: 0x0a, index: 2, start: 1, count: 3, data: Uint8Array.from([1, 0, 1]) };
    const b = encodeIrqSet(s);
    expect(b.length).toBe(23);
    expect(decodeIrqSet(b)).toEqual(s);
    expect(errnoOf(() => decodeIrqSet(new Uint8Array(19)))).toBe(ERRNO.EINVAL);
  });

  it('REGION_READ/WRITE: 16-byte fixed part, data after it', () => {
    const a = { offset: 0x40n, region: 7, count: 4, data: Uint8Array.from([1, 2, 3, 4]) };
    const b = encodeRegionAccess(a);
    expect(b.length).toBe(20);
    expect([...b.subarray(8, 16)]).toEqual([7, 0, 0, 0, 4, 0, 0, 0]);
    expect(decodeRegionAccess(b, 'w')).toEqual(a);
    expect(errnoOf(() => decodeRegionAccess(new Uint8Array(15), 'w'))).toBe(ERRNO.EINVAL);
  });
});
