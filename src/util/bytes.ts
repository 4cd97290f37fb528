/**
 * Byte access for every binary layout in src/: one DataView constructor and the fixed-width
 * big- and little-endian integer readers and writers. Fibre Channel, FC-GS and SCSI fields are
 * big-endian on the wire; vfio-user messages, PCI configuration space and the ISP's DMA
 * structures are little-endian, except for the port identifiers some ISP structures carry
 * big-endian (domain, area, AL_PA).
 *
 * Every reader and writer checks that the whole field lies inside the buffer and throws
 * RangeError otherwise, as DataView does; modules that must answer malformed input with their
 * own error (FcDecodeError, ProtocolError) check lengths before calling these.
 */

/** A DataView over exactly the given bytes (respecting the array's own byteOffset). */
export function view(bytes: Uint8Array, offset = 0, length = bytes.length - offset): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset + offset, length);
}

function checkField(b: Uint8Array, off: number, width: number): void {
  if (!(off >= 0 && off + width <= b.length)) {
    throw new RangeError(`${8 * width}-bit field at ${off} runs past ${b.length} bytes`);
  }
}

// ---- big-endian -------------------------------------------------------------------------------

export function readU16BE(b: Uint8Array, off: number): number {
  checkField(b, off, 2);
  return (b[off]! << 8) | b[off + 1]!;
}

export function writeU16BE(b: Uint8Array, off: number, value: number): void {
  checkField(b, off, 2);
  b[off] = (value >>> 8) & 0xff;
  b[off + 1] = value & 0xff;
}

/** 24-bit big-endian: FC addresses and F_CTL, SCSI 6-byte LBAs and block lengths. */
export function readU24BE(b: Uint8Array, off: number): number {
  checkField(b, off, 3);
  return (b[off]! << 16) | (b[off + 1]! << 8) | b[off + 2]!;
}

export function writeU24BE(b: Uint8Array, off: number, value: number): void {
  checkField(b, off, 3);
  b[off] = (value >>> 16) & 0xff;
  b[off + 1] = (value >>> 8) & 0xff;
  b[off + 2] = value & 0xff;
}

export function readU32BE(b: Uint8Array, off: number): number {
  checkField(b, off, 4);
  return ((b[off]! << 24) | (b[off + 1]! << 16) | (b[off + 2]! << 8) | b[off + 3]!) >>> 0;
}

export function writeU32BE(b: Uint8Array, off: number, value: number): void {
  checkField(b, off, 4);
  b[off] = (value >>> 24) & 0xff;
  b[off + 1] = (value >>> 16) & 0xff;
  b[off + 2] = (value >>> 8) & 0xff;
  b[off + 3] = value & 0xff;
}

export function readU64BE(b: Uint8Array, off: number): bigint {
  checkField(b, off, 8);
  return view(b).getBigUint64(off, false);
}

/** Writes the low 64 bits of `value` (as BigInt.asUintN(64, value)). */
export function writeU64BE(b: Uint8Array, off: number, value: bigint): void {
  checkField(b, off, 8);
  view(b).setBigUint64(off, BigInt.asUintN(64, value), false);
}

// ---- little-endian ----------------------------------------------------------------------------

export function readU16LE(b: Uint8Array, off: number): number {
  checkField(b, off, 2);
  return b[off]! | (b[off + 1]! << 8);
}

/** 24-bit little-endian: port_id[3] of ISP24xx request IOCBs (al_pa, area, domain). */
export function readU24LE(b: Uint8Array, off: number): number {
  checkField(b, off, 3);
  return b[off]! | (b[off + 1]! << 8) | (b[off + 2]! << 16);
}

export function writeU24LE(b: Uint8Array, off: number, value: number): void {
  checkField(b, off, 3);
  b[off] = value & 0xff;
  b[off + 1] = (value >>> 8) & 0xff;
  b[off + 2] = (value >>> 16) & 0xff;
}

export function readU32LE(b: Uint8Array, off: number): number {
  checkField(b, off, 4);
  return (b[off]! | (b[off + 1]! << 8) | (b[off + 2]! << 16) | (b[off + 3]! << 24)) >>> 0;
}
