/**
 * vfio-user wire protocol, version 0.0 as spoken by QEMU >= 10.1's `vfio-user-pci` client
 * (spec: qemu docs/interop/vfio-user.rst, "Version 0.9.2"; struct layouts from
 * include/uapi/linux/vfio.h). Every binary layout is defined here once, as a field table
 * (src/util/struct.ts) from which its codec, offsets and size are derived; the rest of
 * src/vfio-user/ only uses these names. The linux/vfio.h flag and index
 * constants the messages carry live in src/device/linux-vfio.ts.
 *
 * All fields are in host byte order ("all data is in the endianness of the host system");
 * this project runs on little-endian x86_64/aarch64, asserted by assertHostLittleEndian().
 *
 * Decoders check every length against the bytes actually present and throw ProtocolError
 * with the errno the peer should see; they never read out of bounds.
 */
import { constants as osConstants, endianness } from 'node:os';
import { view } from '../util/bytes.js';
import { bytes, type Decoded, defineStruct, u16le, u32le, u64le } from '../util/struct.js';

// ---------------------------------------------------------------------------------------
// errno values (Linux), as carried in the header's Error field.

const E = osConstants.errno;
export const ERRNO = {
  EPERM: E.EPERM,
  ENOENT: E.ENOENT,
  EIO: E.EIO,
  E2BIG: E.E2BIG,
  EBADF: E.EBADF,
  ENOMEM: E.ENOMEM,
  EFAULT: E.EFAULT,
  EEXIST: E.EEXIST,
  EINVAL: E.EINVAL,
  ENOSPC: E.ENOSPC,
  EMSGSIZE: E.EMSGSIZE,
  ENOTSUP: E.ENOTSUP,
  ENOTCONN: E.ENOTCONN,
  ETIMEDOUT: E.ETIMEDOUT,
} as const;

/** An error the peer sees as the errno of an error reply. */
export class ProtocolError extends Error {
  constructor(
    readonly errno: number,
    message: string,
  ) {
    super(message);
    this.name = 'ProtocolError';
  }
}

export function assertHostLittleEndian(): void {
  if (endianness() !== 'LE') {
    throw new Error('vfio-user codecs assume a little-endian host (the protocol uses host byte order)');
  }
}

// ---------------------------------------------------------------------------------------
// Message header (16 bytes), shared by commands and replies.
//
//   0        2         4                 8                 12                16
//   +--------+---------+-----------------+-----------------+-----------------+
//   | msg id | command |  message size   |      flags      |      error      |
//   +--------+---------+-----------------+-----------------+-----------------+
//   size counts the whole message including this header; error is valid in replies only.

export const HEADER = defineStruct('message header', 16, {
  id: u16le(0),
  command: u16le(2),
  size: u32le(4),
  flags: u32le(8),
  error: u32le(12),
});

export const HEADER_FLAGS = {
  /** bits 0-3: message type */
  TYPE_MASK: 0xf,
  TYPE_COMMAND: 0x0,
  TYPE_REPLY: 0x1,
  /** the sender does not want a reply (posted writes) */
  NO_REPLY: 0x10,
  /** reply only: the Error field holds an errno */
  ERROR: 0x20,
} as const;

export const COMMAND = {
  VERSION: 1,
  DMA_MAP: 2,
  DMA_UNMAP: 3,
  DEVICE_GET_INFO: 4,
  DEVICE_GET_REGION_INFO: 5,
  DEVICE_GET_REGION_IO_FDS: 6,
  DEVICE_GET_IRQ_INFO: 7,
  DEVICE_SET_IRQS: 8,
  REGION_READ: 9,
  REGION_WRITE: 10,
  DMA_READ: 11,
  DMA_WRITE: 12,
  DEVICE_RESET: 13,
  /** obsolete v1 VFIO_USER_DIRTY_PAGES; absent from the current spec */
  DIRTY_PAGES: 14,
  REGION_WRITE_MULTI: 15,
  DEVICE_FEATURE: 16,
  MIG_DATA_READ: 17,
  MIG_DATA_WRITE: 18,
} as const;
export type CommandNumber = (typeof COMMAND)[keyof typeof COMMAND];

const COMMAND_NAMES = new Map<number, string>(Object.entries(COMMAND).map(([name, n]) => [n, name]));
export function commandName(command: number): string {
  return COMMAND_NAMES.get(command) ?? `UNKNOWN(${command})`;
}

const H = HEADER.OFFSET;

/** size counts the whole message including the header. */
export type MessageHeader = Decoded<typeof HEADER>;

export function decodeHeader(bytes: Uint8Array, offset = 0): MessageHeader {
  if (offset < 0 || offset + HEADER.SIZEOF > bytes.length) {
    throw new ProtocolError(ERRNO.EINVAL, `message header needs ${HEADER.SIZEOF} bytes`);
  }
  // Hot path (every message): specialised by hand, offsets from the table.
  const v = view(bytes, offset, HEADER.SIZEOF);
  return {
    id: v.getUint16(H.id, true),
    command: v.getUint16(H.command, true),
    size: v.getUint32(H.size, true),
    flags: v.getUint32(H.flags, true),
    error: v.getUint32(H.error, true),
  };
}

export function encodeHeader(bytes: Uint8Array, header: MessageHeader, offset = 0): void {
  if (offset < 0 || offset + HEADER.SIZEOF > bytes.length) {
    throw new RangeError('no room for a message header');
  }
  const v = view(bytes, offset, HEADER.SIZEOF);
  v.setUint16(H.id, header.id, true);
  v.setUint16(H.command, header.command, true);
  v.setUint32(H.size, header.size, true);
  v.setUint32(H.flags, header.flags, true);
  v.setUint32(H.error, header.error, true);
}

export function messageType(flags: number): number {
  return flags & HEADER_FLAGS.TYPE_MASK;
}

/** One whole message as a new buffer: header (size filled in) + payload. */
export function encodeMessage(
  fields: { id: number; command: number; flags: number; error?: number },
  payload: Uint8Array = EMPTY,
): Uint8Array {
  const out = new Uint8Array(HEADER.SIZEOF + payload.length);
  encodeHeader(out, {
    id: fields.id,
    command: fields.command,
    size: out.length,
    flags: fields.flags,
    error: fields.error ?? 0,
  });
  out.set(payload, HEADER.SIZEOF);
  return out;
}

export function encodeCommand(id: number, command: number, payload?: Uint8Array, noReply = false): Uint8Array {
  const flags = HEADER_FLAGS.TYPE_COMMAND | (noReply ? HEADER_FLAGS.NO_REPLY : 0);
  return encodeMessage({ id, command, flags }, payload);
}

export function encodeReply(id: number, command: number, payload?: Uint8Array): Uint8Array {
  return encodeMessage({ id, command, flags: HEADER_FLAGS.TYPE_REPLY }, payload);
}

/** An error reply carries only the header, with the Error flag and the errno. */
export function encodeErrorReply(id: number, command: number, errno: number): Uint8Array {
  return encodeMessage({ id, command, flags: HEADER_FLAGS.TYPE_REPLY | HEADER_FLAGS.ERROR, error: errno });
}

// ---------------------------------------------------------------------------------------
// Payload layouts. Offsets are relative to the first byte after the header.

/**
 * VERSION (cmd 1), request and reply:
 *   0       2       4
 *   +-------+-------+---------------------------------------+
 *   | major | minor | UTF-8 JSON capabilities, NUL-terminated (optional) |
 *   +-------+-------+---------------------------------------+
 */
export const VERSION = defineStruct('VERSION', 4, { major: u16le(0), minor: u16le(2) });
/** The only version QEMU speaks: it rejects a reply with major != 0 or minor > 0. */
export const PROTOCOL_MAJOR = 0;
export const PROTOCOL_MINOR = 0;

/**
 * DMA_MAP (cmd 2) request, 32 bytes; the reply is the header alone.
 *   0       4       8               16              24              32
 *   +-------+-------+---------------+---------------+---------------+
 *   | argsz | flags | file offset   | address (IOVA)| size          |
 *   +-------+-------+---------------+---------------+---------------+
 */
export const DMA_MAP = defineStruct('DMA_MAP', 32, {
  argsz: u32le(0),
  flags: u32le(4),
  offset: u64le(8),
  address: u64le(16),
  size: u64le(24),
});

/**
 * DMA_UNMAP (cmd 3) request, 24 bytes; the reply echoes the entry.
 *   0       4       8               16              24
 *   +-------+-------+---------------+---------------+
 *   | argsz | flags | address       | size          |
 *   +-------+-------+---------------+---------------+
 */
export const DMA_UNMAP = defineStruct('DMA_UNMAP', 24, {
  argsz: u32le(0),
  flags: u32le(4),
  address: u64le(8),
  size: u64le(16),
});

/**
 * DEVICE_GET_INFO (cmd 4), request and reply, 16 bytes (QEMU's VFIOUserDeviceInfo).
 *   0       4       8             12         16
 *   +-------+-------+-------------+----------+
 *   | argsz | flags | num_regions | num_irqs |
 *   +-------+-------+-------------+----------+
 */
export const DEVICE_INFO = defineStruct('DEVICE_GET_INFO', 16, {
  argsz: u32le(0),
  flags: u32le(4),
  numRegions: u32le(8),
  numIrqs: u32le(12),
});

/**
 * DEVICE_GET_REGION_INFO (cmd 5), struct vfio_region_info, 32 bytes (+ capability chain
 * in the reply; the request sets only argsz and index).
 *   0       4       8       12           16              24              32
 *   +-------+-------+-------+------------+---------------+---------------+
 *   | argsz | flags | index | cap_offset | size          | offset        |
 *   +-------+-------+-------+------------+---------------+---------------+
 */
export const REGION_INFO = defineStruct('DEVICE_GET_REGION_INFO', 32, {
  argsz: u32le(0),
  flags: u32le(4),
  index: u32le(8),
  capOffset: u32le(12),
  size: u64le(16),
  offset: u64le(24),
});

/**
 * DEVICE_GET_IRQ_INFO (cmd 7), struct vfio_irq_info, 16 bytes.
 *   0       4       8       12      16
 *   +-------+-------+-------+-------+
 *   | argsz | flags | index | count |
 *   +-------+-------+-------+-------+
 */
export const IRQ_INFO = defineStruct('DEVICE_GET_IRQ_INFO', 16, {
  argsz: u32le(0),
  flags: u32le(4),
  index: u32le(8),
  count: u32le(12),
});

/**
 * DEVICE_SET_IRQS (cmd 8), struct vfio_irq_set, 20 bytes + data (DATA_BOOL: count bytes;
 * eventfds travel as SCM_RIGHTS, never in the payload).
 *   0       4       8       12      16      20
 *   +-------+-------+-------+-------+-------+--------------+
 *   | argsz | flags | index | start | count | bool data... |
 *   +-------+-------+-------+-------+-------+--------------+
 */
export const IRQ_SET = defineStruct('DEVICE_SET_IRQS', 20, {
  argsz: u32le(0),
  flags: u32le(4),
  index: u32le(8),
  start: u32le(12),
  count: u32le(16),
});

/**
 * REGION_READ (9) / REGION_WRITE (10): 16 bytes + data (write request, read reply).
 *   0               8        12      16
 *   +---------------+--------+-------+---------+
 *   | offset        | region | count | data... |
 *   +---------------+--------+-------+---------+
 */
export const REGION_RW = defineStruct('REGION_READ/WRITE', 16, {
  offset: u64le(0),
  region: u32le(8),
  count: u32le(12),
});

/** REGION_WRITE_MULTI (15): wr_cnt u64, then wr_cnt entries of REGION_WRITE_MULTI_ENTRY. */
export const REGION_WRITE_MULTI = defineStruct('REGION_WRITE_MULTI', 8, { wrCnt: u64le(0) });
/** One REGION_WRITE_MULTI entry: at most 8 data bytes, inline. */
export const REGION_WRITE_MULTI_ENTRY = defineStruct('REGION_WRITE_MULTI entry', 24, {
  offset: u64le(0),
  region: u32le(8),
  count: u32le(12),
  data: bytes(16, 8),
});

/** Capability header inside the region-info reply (next is relative to the region-info struct). */
export const INFO_CAP_HEADER = defineStruct('vfio_info_cap_header', 8, {
  id: u16le(0),
  version: u16le(2),
  next: u32le(4),
});

/** Every layout above, for the layout test. */
export const LAYOUTS = [
  HEADER,
  VERSION,
  DMA_MAP,
  DMA_UNMAP,
  DEVICE_INFO,
  REGION_INFO,
  IRQ_INFO,
  IRQ_SET,
  REGION_RW,
  REGION_WRITE_MULTI,
  REGION_WRITE_MULTI_ENTRY,
  INFO_CAP_HEADER,
] as const;

// ---------------------------------------------------------------------------------------
// Payload codecs. Each checks the payload length and raises ProtocolError(EINVAL) before the
// table-derived codec reads anything.

export interface VersionPayload extends Decoded<typeof VERSION> {
  /** JSON text without its terminating NUL; undefined if the message carries none. */
  json: string | undefined;
}

/** Cap on the VERSION JSON we accept: QEMU's is about 200 bytes. */
export const VERSION_JSON_MAX = 4096;

const utf8Strict = new TextDecoder('utf-8', { fatal: true });
const utf8Encoder = new TextEncoder();

export function decodeVersion(p: Uint8Array): VersionPayload {
  requireLength(p, VERSION.SIZEOF, 'VERSION');
  const { major, minor } = VERSION.decode(p);
  if (p.length === VERSION.SIZEOF) return { major, minor, json: undefined };
  const text = p.subarray(VERSION.SIZEOF);
  if (text.length > VERSION_JSON_MAX + 1) {
    throw new ProtocolError(ERRNO.E2BIG, `VERSION JSON of ${text.length} bytes exceeds ${VERSION_JSON_MAX}`);
  }
  const nul = text.indexOf(0);
  if (nul !== text.length - 1) {
    throw new ProtocolError(ERRNO.EINVAL, 'VERSION JSON must be NUL-terminated with no NUL inside');
  }
  let json: string;
  try {
    json = utf8Strict.decode(text.subarray(0, nul));
  } catch {
    throw new ProtocolError(ERRNO.EINVAL, 'VERSION JSON is not valid UTF-8');
  }
  return { major, minor, json };
}

export function encodeVersion(v: VersionPayload): Uint8Array {
  const json = v.json === undefined ? EMPTY : utf8Encoder.encode(v.json);
  const out = VERSION.encode({ major: v.major, minor: v.minor }, v.json === undefined ? 0 : json.length + 1);
  out.set(json, VERSION.SIZEOF); // the trailing NUL is already 0
  return out;
}

export type DmaMapPayload = Decoded<typeof DMA_MAP>;

export function decodeDmaMap(p: Uint8Array): DmaMapPayload {
  requireExactLength(p, DMA_MAP.SIZEOF, 'DMA_MAP');
  return DMA_MAP.decode(p);
}

export function encodeDmaMap(m: DmaMapPayload): Uint8Array {
  return DMA_MAP.encode(m);
}

export type DmaUnmapPayload = Decoded<typeof DMA_UNMAP>;

export function decodeDmaUnmap(p: Uint8Array): DmaUnmapPayload {
  requireExactLength(p, DMA_UNMAP.SIZEOF, 'DMA_UNMAP');
  return DMA_UNMAP.decode(p);
}

export function encodeDmaUnmap(m: DmaUnmapPayload): Uint8Array {
  return DMA_UNMAP.encode(m);
}

export type DeviceInfoPayload = Decoded<typeof DEVICE_INFO>;

export function decodeDeviceInfo(p: Uint8Array): DeviceInfoPayload {
  requireLength(p, DEVICE_INFO.SIZEOF, 'DEVICE_GET_INFO');
  return DEVICE_INFO.decode(p);
}

export function encodeDeviceInfo(d: DeviceInfoPayload): Uint8Array {
  return DEVICE_INFO.encode(d);
}

export type RegionInfoPayload = Decoded<typeof REGION_INFO>;

export function decodeRegionInfo(p: Uint8Array): RegionInfoPayload {
  requireLength(p, REGION_INFO.SIZEOF, 'DEVICE_GET_REGION_INFO');
  return REGION_INFO.decode(p);
}

export function encodeRegionInfo(r: RegionInfoPayload): Uint8Array {
  return REGION_INFO.encode(r);
}

export type IrqInfoPayload = Decoded<typeof IRQ_INFO>;

export function decodeIrqInfo(p: Uint8Array): IrqInfoPayload {
  requireLength(p, IRQ_INFO.SIZEOF, 'DEVICE_GET_IRQ_INFO');
  return IRQ_INFO.decode(p);
}

export function encodeIrqInfo(i: IrqInfoPayload): Uint8Array {
  return IRQ_INFO.encode(i);
}

export interface IrqSetPayload extends Decoded<typeof IRQ_SET> {
  /** DATA_BOOL payload bytes (a copy); empty for DATA_NONE / DATA_EVENTFD. */
  data: Uint8Array;
}

export function decodeIrqSet(p: Uint8Array): IrqSetPayload {
  requireLength(p, IRQ_SET.SIZEOF, 'DEVICE_SET_IRQS');
  const { argsz, flags, index, start, count } = IRQ_SET.decode(p);
  return { argsz, flags, index, start, count, data: p.slice(IRQ_SET.SIZEOF) };
}

export function encodeIrqSet(s: IrqSetPayload): Uint8Array {
  const out = IRQ_SET.encode(s, s.data.length);
  out.set(s.data, IRQ_SET.SIZEOF);
  return out;
}

const RW = REGION_RW.OFFSET;

export interface RegionAccessPayload extends Decoded<typeof REGION_RW> {
  /** data bytes following the fixed part (write request / read reply); a view, not a copy */
  data: Uint8Array;
}

export function decodeRegionAccess(p: Uint8Array, what: string): RegionAccessPayload {
  requireLength(p, REGION_RW.SIZEOF, what);
  // Hot path (every BAR access): specialised by hand, offsets from the table.
  const v = view(p, 0, REGION_RW.SIZEOF);
  return {
    offset: v.getBigUint64(RW.offset, true),
    region: v.getUint32(RW.region, true),
    count: v.getUint32(RW.count, true),
    data: p.subarray(REGION_RW.SIZEOF),
  };
}

export function encodeRegionAccess(a: RegionAccessPayload): Uint8Array {
  const out = new Uint8Array(REGION_RW.SIZEOF + a.data.length);
  const v = view(out, 0, REGION_RW.SIZEOF);
  v.setBigUint64(RW.offset, a.offset, true);
  v.setUint32(RW.region, a.region, true);
  v.setUint32(RW.count, a.count, true);
  out.set(a.data, REGION_RW.SIZEOF);
  return out;
}

// ---------------------------------------------------------------------------------------
// helpers

const EMPTY = new Uint8Array(0);

function requireLength(p: Uint8Array, min: number, what: string): void {
  if (p.length < min) {
    throw new ProtocolError(ERRNO.EINVAL, `${what} payload of ${p.length} bytes is shorter than ${min}`);
  }
}

function requireExactLength(p: Uint8Array, size: number, what: string): void {
  if (p.length !== size) {
    throw new ProtocolError(ERRNO.EINVAL, `${what} payload must be ${size} bytes, got ${p.length}`);
  }
}
