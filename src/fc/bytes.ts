/**
 * Bounds-checked big-endian field access for FC wire formats (every FC-2/ELS/CT/FCP field is
 * big-endian on the wire). Decoders never index past their buffer: a short or oversized input
 * raises FcDecodeError naming the structure and field, which the caller turns into an LS_RJT,
 * FS_RJT or a dropped frame — never a crash.
 */

export class FcDecodeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FcDecodeError';
  }
}

/** Raise FcDecodeError unless `buf` holds at least `need` bytes. */
export function requireLength(buf: Uint8Array, need: number, what: string): void {
  if (buf.length < need) {
    throw new FcDecodeError(`${what}: truncated (${buf.length} bytes, need ${need})`);
  }
}

/** Raise FcDecodeError when `buf` is longer than `max` bytes. */
export function requireAtMost(buf: Uint8Array, max: number, what: string): void {
  if (buf.length > max) {
    throw new FcDecodeError(`${what}: oversized (${buf.length} bytes, at most ${max})`);
  }
}

export function view(buf: Uint8Array): DataView {
  return new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
}

/** 24-bit big-endian value (FC addresses, F_CTL). */
export function getU24(buf: Uint8Array, off: number): number {
  if (off < 0 || off + 3 > buf.length) throw new FcDecodeError(`24-bit field at ${off} runs past ${buf.length} bytes`);
  return (buf[off]! << 16) | (buf[off + 1]! << 8) | buf[off + 2]!;
}

export function putU24(buf: Uint8Array, off: number, value: number): void {
  buf[off] = (value >>> 16) & 0xff;
  buf[off + 1] = (value >>> 8) & 0xff;
  buf[off + 2] = value & 0xff;
}

export function getU16(buf: Uint8Array, off: number): number {
  if (off < 0 || off + 2 > buf.length) throw new FcDecodeError(`16-bit field at ${off} runs past ${buf.length} bytes`);
  return (buf[off]! << 8) | buf[off + 1]!;
}

export function putU16(buf: Uint8Array, off: number, value: number): void {
  buf[off] = (value >>> 8) & 0xff;
  buf[off + 1] = value & 0xff;
}

export function getU32(buf: Uint8Array, off: number): number {
  if (off < 0 || off + 4 > buf.length) throw new FcDecodeError(`32-bit field at ${off} runs past ${buf.length} bytes`);
  return view(buf).getUint32(off, false);
}

export function putU32(buf: Uint8Array, off: number, value: number): void {
  view(buf).setUint32(off, value >>> 0, false);
}

export function getU64(buf: Uint8Array, off: number): bigint {
  if (off < 0 || off + 8 > buf.length) throw new FcDecodeError(`64-bit field at ${off} runs past ${buf.length} bytes`);
  return view(buf).getBigUint64(off, false);
}

export function putU64(buf: Uint8Array, off: number, value: bigint): void {
  view(buf).setBigUint64(off, BigInt.asUintN(64, value), false);
}

export function concat(parts: readonly Uint8Array[]): Uint8Array {
  let total = 0;
  for (const p of parts) total += p.length;
  const out = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
