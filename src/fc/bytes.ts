/**
 * Bounds-checked big-endian field access for FC wire formats (every FC-2/ELS/CT/FCP field is
 * big-endian on the wire). Decoders never index past their buffer: a short or oversized input
 * raises FcDecodeError naming the structure and field, which the caller turns into an LS_RJT,
 * FS_RJT or a dropped frame — never a crash. The byte access itself is src/util/bytes.ts; this
 * module only turns a field past the end into FcDecodeError.
 */
import {
  readU16BE,
  readU24BE,
  readU32BE,
  readU64BE,
  writeU16BE,
  writeU24BE,
  writeU32BE,
  writeU64BE,
} from '../util/bytes.js';

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

/** Raise FcDecodeError unless a `width`-byte field at `off` lies inside `buf`. */
function requireField(buf: Uint8Array, off: number, width: number): void {
  if (off < 0 || off + width > buf.length) {
    throw new FcDecodeError(`${8 * width}-bit field at ${off} runs past ${buf.length} bytes`);
  }
}

/** 24-bit big-endian value (FC addresses, F_CTL). */
export function getU24(buf: Uint8Array, off: number): number {
  requireField(buf, off, 3);
  return readU24BE(buf, off);
}

export const putU24 = writeU24BE;

export function getU16(buf: Uint8Array, off: number): number {
  requireField(buf, off, 2);
  return readU16BE(buf, off);
}

export const putU16 = writeU16BE;

export function getU32(buf: Uint8Array, off: number): number {
  requireField(buf, off, 4);
  return readU32BE(buf, off);
}

export function putU32(buf: Uint8Array, off: number, value: number): void {
  writeU32BE(buf, off, value >>> 0);
}

export function getU64(buf: Uint8Array, off: number): bigint {
  requireField(buf, off, 8);
  return readU64BE(buf, off);
}

export const putU64 = writeU64BE;
