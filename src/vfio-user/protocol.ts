/**
 * vfio-user wire protocol, version 0.0 as spoken by QEMU >= 10.1's `vfio-user-pci` client
 * (spec: qemu docs/interop/vfio-user.rst, "Version 0.9.2"; struct layouts from
 * include/uapi/linux/vfio.h). Every binary layout is defined here once, as named offsets
 * and sizes; the rest of src/vfio-user/ only uses these names. The linux/vfio.h flag and index
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

export const HEADER = { ID: 0, COMMAND: 2, SIZE: 4, FLAGS: 8, ERROR: 12, SIZEOF: 16 } as const;

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

export interface MessageHeader {
  id: number;
  command: number;
  /** whole message size including the header */
  size: number;
  flags: number;
  error: number;
}

export function decodeHeader(bytes: Uint8Array, offset = 0): MessageHeader {
  if (offset < 0 || offset + HEADER.SIZEOF > bytes.length) {
    throw new ProtocolError(ERRNO.EINVAL, `message header needs ${HEADER.SIZEOF} bytes`);
  }
  const v = view(bytes, offset, HEADER.SIZEOF);
  return {
    id: v.getUint16(HEADER.ID, true),
    command: v.getUint16(HEADER.COMMAND, true),
    size: v.getUint32(HEADER.SIZE, true),
    flags: v.getUint32(HEADER.FLAGS, true),
    error: v.getUint32(HEADER.ERROR, true),
  };
}

export function encodeHeader(bytes: Uint8Array, header: MessageHeader, offset = 0): void {
  if (offset < 0 || offset + HEADER.SIZEOF > bytes.length) {
    throw new RangeError('no room for a message header');
  }
  const v = view(bytes, offset, HEADER.SIZEOF);
  v.setUint16(HEADER.ID, header.id, true);
  v.setUint16(HEADER.COMMAND, header.command, true);
  v.setUint32(HEADER.SIZE, header.size, true);
  v.setUint32(HEADER.FLAGS, header.flags, true);
  v.setUint32(HEADER.ERROR, header.error, true);
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
export const VERSION = { MAJOR: 0, MINOR: 2, JSON: 4, SIZEOF_FIXED: 4 } as const;
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
export const DMA_MAP = { ARGSZ: 0, FLAGS: 4, OFFSET: 8, ADDRESS: 16, SIZE: 24, SIZEOF: 32 } as const;

/**
 * DMA_UNMAP (cmd 3) request, 24 bytes; the reply echoes the entry.
 *   0       4       8               16              24
 *   +-------+-------+---------------+---------------+
 *   | argsz | flags | address       | size          |
 *   +-------+-------+---------------+---------------+
 */
export const DMA_UNMAP = { ARGSZ: 0, FLAGS: 4, ADDRESS: 8, SIZE: 16, SIZEOF: 24 } as const;

/**
 * DEVICE_GET_INFO (cmd 4), request and reply, 16 bytes (QEMU's VFIOUserDeviceInfo).
 *   0       4       8             12         16
 *   +-------+-------+-------------+----------+
 *   | argsz | flags | num_regions | num_irqs |
 *   +-------+-------+-------------+----------+
 */
export const DEVICE_INFO = { ARGSZ: 0, FLAGS: 4, NUM_REGIONS: 8, NUM_IRQS: 12, SIZEOF: 16 } as const;

/**
 * DEVICE_GET_REGION_INFO (cmd 5), struct vfio_region_info, 32 bytes (+ capability chain
 * in the reply; the request sets only argsz and index).
 *   0       4       8       12           16              24              32
 *   +-------+-------+-------+------------+---------------+---------------+
 *   | argsz | flags | index | cap_offset | size          | offset        |
 *   +-------+-------+-------+------------+---------------+---------------+
 */
export const REGION_INFO = { ARGSZ: 0, FLAGS: 4, INDEX: 8, CAP_OFFSET: 12, SIZE: 16, OFFSET: 24, SIZEOF: 32 } as const;

/**
 * DEVICE_GET_IRQ_INFO (cmd 7), struct vfio_irq_info, 16 bytes.
 *   0       4       8       12      16
 *   +-------+-------+-------+-------+
 *   | argsz | flags | index | count |
 *   +-------+-------+-------+-------+
 */
export const IRQ_INFO = { ARGSZ: 0, FLAGS: 4, INDEX: 8, COUNT: 12, SIZEOF: 16 } as const;

/**
 * DEVICE_SET_IRQS (cmd 8), struct vfio_irq_set, 20 bytes + data (DATA_BOOL: count bytes;
 * eventfds travel as SCM_RIGHTS, never in the payload).
 *   0       4       8       12      16      20
 *   +-------+-------+-------+-------+-------+--------------+
 *   | argsz | flags | index | start | count | bool data... |
 *   +-------+-------+-------+-------+-------+--------------+
 */
export const IRQ_SET = { ARGSZ: 0, FLAGS: 4, INDEX: 8, START: 12, COUNT: 16, DATA: 20, SIZEOF: 20 } as const;

/**
 * REGION_READ (9) / REGION_WRITE (10): 16 bytes + data (write request, read reply).
 *   0               8        12      16
 *   +---------------+--------+-------+---------+
 *   | offset        | region | count | data... |
 *   +---------------+--------+-------+---------+
 */
export const REGION_RW = { OFFSET: 0, REGION: 8, COUNT: 12, DATA: 16, SIZEOF: 16 } as const;

/** REGION_WRITE_MULTI (15): wr_cnt u64, then wr_cnt x {offset u64, region u32, count u32, data[8]}. */
export const REGION_WRITE_MULTI = { WR_CNT: 0, SIZEOF_FIXED: 8, ENTRY_SIZEOF: 24, ENTRY_DATA_MAX: 8 } as const;

/** Capability header inside the region-info reply (next is relative to the region-info struct). */
export const INFO_CAP_HEADER = { ID: 0, VERSION: 2, NEXT: 4, SIZEOF: 8 } as const;

// ---------------------------------------------------------------------------------------
// Payload codecs.

export interface VersionPayload {
  major: number;
  minor: number;
  /** JSON text without its terminating NUL; undefined if the message carries none. */
  json: string | undefined;
}

/** Cap on the VERSION JSON we accept: QEMU's is about 200 bytes. */
export const VERSION_JSON_MAX = 4096;

const utf8Strict = new TextDecoder('utf-8', { fatal: true });
const utf8Encoder = new TextEncoder();

export function decodeVersion(p: Uint8Array): VersionPayload {
  requireLength(p, VERSION.SIZEOF_FIXED, 'VERSION');
  const v = view(p);
  const major = v.getUint16(VERSION.MAJOR, true);
  const minor = v.getUint16(VERSION.MINOR, true);
  if (p.length === VERSION.SIZEOF_FIXED) return { major, minor, json: undefined };
  const text = p.subarray(VERSION.JSON);
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
  const out = new Uint8Array(VERSION.SIZEOF_FIXED + (v.json === undefined ? 0 : json.length + 1));
  const dv = view(out);
  dv.setUint16(VERSION.MAJOR, v.major, true);
  dv.setUint16(VERSION.MINOR, v.minor, true);
  out.set(json, VERSION.JSON); // the trailing NUL is already 0
  return out;
}

export interface DmaMapPayload {
  argsz: number;
  flags: number;
  offset: bigint;
  address: bigint;
  size: bigint;
}

export function decodeDmaMap(p: Uint8Array): DmaMapPayload {
  requireExactLength(p, DMA_MAP.SIZEOF, 'DMA_MAP');
  const v = view(p);
  return {
    argsz: v.getUint32(DMA_MAP.ARGSZ, true),
    flags: v.getUint32(DMA_MAP.FLAGS, true),
    offset: v.getBigUint64(DMA_MAP.OFFSET, true),
    address: v.getBigUint64(DMA_MAP.ADDRESS, true),
    size: v.getBigUint64(DMA_MAP.SIZE, true),
  };
}

export function encodeDmaMap(m: DmaMapPayload): Uint8Array {
  const out = new Uint8Array(DMA_MAP.SIZEOF);
  const v = view(out);
  v.setUint32(DMA_MAP.ARGSZ, m.argsz, true);
  v.setUint32(DMA_MAP.FLAGS, m.flags, true);
  v.setBigUint64(DMA_MAP.OFFSET, m.offset, true);
  v.setBigUint64(DMA_MAP.ADDRESS, m.address, true);
  v.setBigUint64(DMA_MAP.SIZE, m.size, true);
  return out;
}

export interface DmaUnmapPayload {
  argsz: number;
  flags: number;
  address: bigint;
  size: bigint;
}

export function decodeDmaUnmap(p: Uint8Array): DmaUnmapPayload {
  requireExactLength(p, DMA_UNMAP.SIZEOF, 'DMA_UNMAP');
  const v = view(p);
  return {
    argsz: v.getUint32(DMA_UNMAP.ARGSZ, true),
    flags: v.getUint32(DMA_UNMAP.FLAGS, true),
    address: v.getBigUint64(DMA_UNMAP.ADDRESS, true),
    size: v.getBigUint64(DMA_UNMAP.SIZE, true),
  };
}

export function encodeDmaUnmap(m: DmaUnmapPayload): Uint8Array {
  const out = new Uint8Array(DMA_UNMAP.SIZEOF);
  const v = view(out);
  v.setUint32(DMA_UNMAP.ARGSZ, m.argsz, true);
  v.setUint32(DMA_UNMAP.FLAGS, m.flags, true);
  v.setBigUint64(DMA_UNMAP.ADDRESS, m.address, true);
  v.setBigUint64(DMA_UNMAP.SIZE, m.size, true);
  return out;
}

export interface DeviceInfoPayload {
  argsz: number;
  flags: number;
  numRegions: number;
  numIrqs: number;
}

export function decodeDeviceInfo(p: Uint8Array): DeviceInfoPayload {
  requireLength(p, DEVICE_INFO.SIZEOF, 'DEVICE_GET_INFO');
  const v = view(p);
  return {
    argsz: v.getUint32(DEVICE_INFO.ARGSZ, true),
    flags: v.getUint32(DEVICE_INFO.FLAGS, true),
    numRegions: v.getUint32(DEVICE_INFO.NUM_REGIONS, true),
    numIrqs: v.getUint32(DEVICE_INFO.NUM_IRQS, true),
  };
}

export function encodeDeviceInfo(d: DeviceInfoPayload): Uint8Array {
  const out = new Uint8Array(DEVICE_INFO.SIZEOF);
  const v = view(out);
  v.setUint32(DEVICE_INFO.ARGSZ, d.argsz, true);
  v.setUint32(DEVICE_INFO.FLAGS, d.flags, true);
  v.setUint32(DEVICE_INFO.NUM_REGIONS, d.numRegions, true);
  v.setUint32(DEVICE_INFO.NUM_IRQS, d.numIrqs, true);
  return out;
}

export interface RegionInfoPayload {
  argsz: number;
  flags: number;
  index: number;
  capOffset: number;
  size: bigint;
  offset: bigint;
}

export function decodeRegionInfo(p: Uint8Array): RegionInfoPayload {
  requireLength(p, REGION_INFO.SIZEOF, 'DEVICE_GET_REGION_INFO');
  const v = view(p);
  return {
    argsz: v.getUint32(REGION_INFO.ARGSZ, true),
    flags: v.getUint32(REGION_INFO.FLAGS, true),
    index: v.getUint32(REGION_INFO.INDEX, true),
    capOffset: v.getUint32(REGION_INFO.CAP_OFFSET, true),
    size: v.getBigUint64(REGION_INFO.SIZE, true),
    offset: v.getBigUint64(REGION_INFO.OFFSET, true),
  };
}

export function encodeRegionInfo(r: RegionInfoPayload): Uint8Array {
  const out = new Uint8Array(REGION_INFO.SIZEOF);
  const v = view(out);
  v.setUint32(REGION_INFO.ARGSZ, r.argsz, true);
  v.setUint32(REGION_INFO.FLAGS, r.flags, true);
  v.setUint32(REGION_INFO.INDEX, r.index, true);
  v.setUint32(REGION_INFO.CAP_OFFSET, r.capOffset, true);
  v.setBigUint64(REGION_INFO.SIZE, r.size, true);
  v.setBigUint64(REGION_INFO.OFFSET, r.offset, true);
  return out;
}

export interface IrqInfoPayload {
  argsz: number;
  flags: number;
  index: number;
  count: number;
}

export function decodeIrqInfo(p: Uint8Array): IrqInfoPayload {
  requireLength(p, IRQ_INFO.SIZEOF, 'DEVICE_GET_IRQ_INFO');
  const v = view(p);
  return {
    argsz: v.getUint32(IRQ_INFO.ARGSZ, true),
    flags: v.getUint32(IRQ_INFO.FLAGS, true),
    index: v.getUint32(IRQ_INFO.INDEX, true),
    count: v.getUint32(IRQ_INFO.COUNT, true),
  };
}

export function encodeIrqInfo(i: IrqInfoPayload): Uint8Array {
  const out = new Uint8Array(IRQ_INFO.SIZEOF);
  const v = view(out);
  v.setUint32(IRQ_INFO.ARGSZ, i.argsz, true);
  v.setUint32(IRQ_INFO.FLAGS, i.flags, true);
  v.setUint32(IRQ_INFO.INDEX, i.index, true);
  v.setUint32(IRQ_INFO.COUNT, i.count, true);
  return out;
}

export interface IrqSetPayload {
  argsz: number;
  flags: number;
  index: number;
  start: number;
  count: number;
  /** DATA_BOOL payload bytes (a copy); empty for DATA_NONE / DATA_EVENTFD. */
  data: Uint8Array;
}

export function decodeIrqSet(p: Uint8Array): IrqSetPayload {
  requireLength(p, IRQ_SET.SIZEOF, 'DEVICE_SET_IRQS');
  const v = view(p);
  return {
    argsz: v.getUint32(IRQ_SET.ARGSZ, true),
    flags: v.getUint32(IRQ_SET.FLAGS, true),
    index: v.getUint32(IRQ_SET.INDEX, true),
    start: v.getUint32(IRQ_SET.START, true),
    count: v.getUint32(IRQ_SET.COUNT, true),
    data: p.slice(IRQ_SET.DATA),
  };
}

export function encodeIrqSet(s: IrqSetPayload): Uint8Array {
  const out = new Uint8Array(IRQ_SET.SIZEOF + s.data.length);
  const v = view(out);
  v.setUint32(IRQ_SET.ARGSZ, s.argsz, true);
  v.setUint32(IRQ_SET.FLAGS, s.flags, true);
  v.setUint32(IRQ_SET.INDEX, s.index, true);
  v.setUint32(IRQ_SET.START, s.start, true);
  v.setUint32(IRQ_SET.COUNT, s.count, true);
  out.set(s.data, IRQ_SET.DATA);
  return out;
}

export interface RegionAccessPayload {
  offset: bigint;
  region: number;
  count: number;
  /** data bytes following the fixed part (write request / read reply); a view, not a copy */
  data: Uint8Array;
}

export function decodeRegionAccess(p: Uint8Array, what: string): RegionAccessPayload {
  requireLength(p, REGION_RW.SIZEOF, what);
  const v = view(p);
  return {
    offset: v.getBigUint64(REGION_RW.OFFSET, true),
    region: v.getUint32(REGION_RW.REGION, true),
    count: v.getUint32(REGION_RW.COUNT, true),
    data: p.subarray(REGION_RW.DATA),
  };
}

export function encodeRegionAccess(a: RegionAccessPayload): Uint8Array {
  const out = new Uint8Array(REGION_RW.SIZEOF + a.data.length);
  const v = view(out);
  v.setBigUint64(REGION_RW.OFFSET, a.offset, true);
  v.setUint32(REGION_RW.REGION, a.region, true);
  v.setUint32(REGION_RW.COUNT, a.count, true);
  out.set(a.data, REGION_RW.DATA);
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
