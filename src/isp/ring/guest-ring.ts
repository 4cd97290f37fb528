/**
 * Moving 64-byte ISP24xx/25xx ring entries (emulated ISP2532, qla2xxx 10.02.x) between guest
 * memory and a local buffer, undoing/applying the ring wrap:
 * at most two GuestMemory calls per direction per contiguous run. Every access goes through
 * GuestMemory, which bounds-checks it (DmaError); a copy-in happens once per entry per call,
 * so the parser never reads guest memory twice (no TOCTOU).
 */
import { DmaError, type GuestMemory } from '../../device/guest-memory.js';
import { IOCB_SIZE, IocbHeader, RESPONSE_PROCESSED } from '../../../assembly/shared/iocb.js';
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
 * `srcHead` of `src`) into the ring at index `to`. Returns the entries published and, on a
 * DmaError, the fault.
 *
 * Older qla2xxx (≈ ≤ 4.14) read the response ring up to the first entry whose last dword is
 * RESPONSE_PROCESSED and ignore rsp_q_in, possibly while entries are being written. So each run
 * is written with its signature slots still saying "processed", and then every entry's real last
 * dword is stored in ring order with one aligned 32-bit store: an entry becomes visible only
 * whole, and never torn. The run goes through GuestMemory.view (the hot-path access), so the
 * window lookup and bounds check happen once per run.
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
  const srcView = new DataView(src.buffer, src.byteOffset, src.byteLength);
  let written = 0;
  let ringIndex = to;
  let srcIndex = srcHead;
  try {
    while (written < count) {
      const chunk = Math.min(count - written, length - ringIndex, srcCapacity - srcIndex);
      const start = srcOffset + srcIndex * IOCB_SIZE;
      const bytes = chunk * IOCB_SIZE;
      // One bounds-checked live view per run; used at once, never kept.
      const live = mem.view(base + BigInt(ringIndex * IOCB_SIZE), bytes, 'write');
      const signatures = new Array<number>(chunk);
      for (let i = 0; i < chunk; i++) {
        const at = start + i * IOCB_SIZE + IocbHeader.SIGNATURE;
        signatures[i] = srcView.getUint32(at, true);
        srcView.setUint32(at, RESPONSE_PROCESSED, true);
      }
      live.set(src.subarray(start, start + bytes));
      for (let i = 0; i < chunk; i++)
        srcView.setUint32(start + i * IOCB_SIZE + IocbHeader.SIGNATURE, signatures[i]!, true);
      if (LITTLE_ENDIAN_HOST && (live.byteOffset & 3) === 0) {
        const words = new Uint32Array(live.buffer, live.byteOffset, bytes >>> 2);
        for (let i = 0; i < chunk; i++) words[(i * IOCB_SIZE + IocbHeader.SIGNATURE) >>> 2] = signatures[i]!;
      } else {
        const dv = new DataView(live.buffer, live.byteOffset, bytes);
        for (let i = 0; i < chunk; i++) dv.setUint32(i * IOCB_SIZE + IocbHeader.SIGNATURE, signatures[i]!, true);
      }
      written += chunk;
      ringIndex = (ringIndex + chunk) % length;
      srcIndex = (srcIndex + chunk) % srcCapacity;
    }
  } catch (error) {
    return { written, fault: dmaFault(error, 'response ring') };
  }
  return { written, fault: null };
}

const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/** Turns a DmaError into a ring fault; anything else is a bug and propagates. */
export function dmaFault(error: unknown, what: string): RingFault {
  if (error instanceof DmaError) {
    return {
      kind: 'dma',
      message: `${what}: ${error.message} (0x${error.address.toString(16)}, ${error.length} bytes)`,
    };
  }
  throw error;
}

export function isRingIndex(value: number, length: number): boolean {
  return Number.isInteger(value) && value >= 0 && value < length;
}
