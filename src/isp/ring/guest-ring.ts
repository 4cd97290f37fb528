/**
 * Moving ring entries between guest memory and a local buffer, undoing/applying the ring wrap:
 * at most two GuestMemory calls per direction per contiguous run. Every access goes through
 * GuestMemory, which bounds-checks it (DmaError); a copy-in happens once per entry per call,
 * so the parser never reads guest memory twice (no TOCTOU).
 */
import { DmaError, type GuestMemory } from '../../vfio-user/device-api.js';
import { IOCB_SIZE } from '../../../assembly/shared/iocb.js';
import type { RingFault } from './types.js';

/** Copies `count` entries starting at ring index `from` into dst[dstOffset..]. */
export function copyInEntries(
  mem: GuestMemory,
  base: bigint,
  length: number,
  from: number,
  count: number,
  dst: Uint8Array,
  dstOffset: number,
): void {
  const first = Math.min(count, length - from);
  mem.readInto(base + BigInt(from * IOCB_SIZE), dst, dstOffset, first * IOCB_SIZE);
  if (count > first) mem.readInto(base, dst, dstOffset + first * IOCB_SIZE, (count - first) * IOCB_SIZE);
}

/**
 * Writes `count` entries from a circular source of `srcCapacity` entries (starting at entry
 * `srcHead` of `src`) into the ring at index `to`. Returns the entries written before any
 * DmaError (then rethrown to the caller through `onFault`).
 */
export function copyOutEntries(
  mem: GuestMemory,
  base: bigint,
  length: number,
  to: number,
  count: number,
  src: Uint8Array,
  srcOffset: number,
  srcCapacity: number,
  srcHead: number,
): { written: number; fault: RingFault | null } {
  let written = 0;
  let ringIndex = to;
  let srcIndex = srcHead;
  try {
    while (written < count) {
      const chunk = Math.min(count - written, length - ringIndex, srcCapacity - srcIndex);
      const start = srcOffset + srcIndex * IOCB_SIZE;
      mem.write(base + BigInt(ringIndex * IOCB_SIZE), src.subarray(start, start + chunk * IOCB_SIZE));
      written += chunk;
      ringIndex = (ringIndex + chunk) % length;
      srcIndex = (srcIndex + chunk) % srcCapacity;
    }
  } catch (error) {
    return { written, fault: dmaFault(error, 'response ring') };
  }
  return { written, fault: null };
}

/** Turns a DmaError into a ring fault; anything else is a bug and propagates. */
export function dmaFault(error: unknown, what: string): RingFault {
  if (error instanceof DmaError) {
    return { kind: 'dma', message: `${what}: ${error.message} (0x${error.address.toString(16)}, ${error.length} bytes)` };
  }
  throw error;
}

export function isRingIndex(value: number, length: number): boolean {
  return Number.isInteger(value) && value >= 0 && value < length;
}
