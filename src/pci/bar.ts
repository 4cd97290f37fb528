/**
 * Base Address Registers as the device model sees them (PCI 3.0 §6.2.5.1): the kind and size of
 * each BAR, and the `BarHandler` through which the register model of the device serves accesses.
 * PciFunction validates width and alignment before a handler is called, so a handler only ever
 * sees naturally aligned accesses of a width its BAR kind permits (I/O: 1/2/4; memory: 1/2/4/8).
 */
import type { ResetType } from './reset.js';
import {
  PCI_BASE_ADDRESS_MEM_PREFETCH,
  PCI_BASE_ADDRESS_MEM_TYPE_32,
  PCI_BASE_ADDRESS_MEM_TYPE_64,
  PCI_BASE_ADDRESS_SPACE_IO,
  PCI_IO_BAR_MAX_SIZE,
  PCI_IO_BAR_MIN_SIZE,
  PCI_MEM32_BAR_MAX_SIZE,
  PCI_MEM_BAR_MIN_SIZE,
  PCI_NUM_BARS,
} from './regs.js';
import { view } from '../util/bytes.js';

export type AccessSize = 1 | 2 | 4 | 8;

/**
 * The register model behind one BAR. `read` returns a number for 1/2/4-byte accesses (a bigint
 * is accepted and truncated) and a bigint or number for 8-byte accesses; `write` receives a
 * number for 1/2/4 bytes and a bigint for 8 bytes. Values are zero-extended to the access width.
 * Handlers must not throw for guest input; if one does, PciFunction logs it and answers all-ones.
 */
export interface BarHandler {
  read(offset: number, size: AccessSize): number | bigint;
  write(offset: number, size: AccessSize, value: number | bigint): void;
  /** Reset phases (see reset.ts): enter resets local state only, hold may signal others, exit releases. */
  resetEnter?(type: ResetType): void;
  resetHold?(type: ResetType): void;
  resetExit?(type: ResetType): void;
}

export type BarKind = 'io' | 'mem32' | 'mem64';

export interface BarDescription {
  kind: BarKind;
  /** Power of two; I/O 4..256 bytes, memory at least 16 bytes (≤ 2 GiB for mem32). */
  size: number;
  prefetchable?: boolean;
  /**
   * The register model; may be left out when the BAR is declared and bound later with
   * PciFunction.bindBar() (the model often needs the function first: guest memory, interrupts).
   */
  handler?: BarHandler;
}

export class BarConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BarConfigError';
  }
}

export function isPowerOfTwo(n: number): boolean {
  return Number.isSafeInteger(n) && n > 0 && Number.isInteger(Math.log2(n));
}

/** Checks a BAR layout (index → description) and throws BarConfigError on a host configuration error. */
export function validateBars(bars: ReadonlyMap<number, BarDescription>): void {
  const used = new Set<number>();
  for (const [index, bar] of bars) {
    if (!Number.isInteger(index) || index < 0 || index >= PCI_NUM_BARS)
      throw new BarConfigError(`BAR index ${index} is not 0..5`);
    if (!isPowerOfTwo(bar.size)) throw new BarConfigError(`BAR${index} size ${bar.size} is not a power of two`);
    if (bar.kind === 'io') {
      if (bar.size < PCI_IO_BAR_MIN_SIZE || bar.size > PCI_IO_BAR_MAX_SIZE) {
        throw new BarConfigError(
          `BAR${index}: I/O BAR size ${bar.size} outside ${PCI_IO_BAR_MIN_SIZE}..${PCI_IO_BAR_MAX_SIZE}`,
        );
      }
      if (bar.prefetchable) throw new BarConfigError(`BAR${index}: an I/O BAR cannot be prefetchable`);
    } else {
      if (bar.size < PCI_MEM_BAR_MIN_SIZE)
        throw new BarConfigError(`BAR${index}: memory BAR size ${bar.size} below ${PCI_MEM_BAR_MIN_SIZE}`);
      if (bar.kind === 'mem32' && bar.size > PCI_MEM32_BAR_MAX_SIZE)
        throw new BarConfigError(`BAR${index}: 32-bit BAR larger than 2 GiB`);
      // Region sizes travel as numbers; keep them exact.
      if (bar.size > Number.MAX_SAFE_INTEGER) throw new BarConfigError(`BAR${index}: size too large`);
    }
    const slots = bar.kind === 'mem64' ? [index, index + 1] : [index];
    for (const slot of slots) {
      if (slot >= PCI_NUM_BARS)
        throw new BarConfigError(`BAR${index}: a 64-bit BAR needs BAR${index + 1}, which does not exist`);
      if (used.has(slot)) throw new BarConfigError(`BAR${slot} is claimed twice`);
      used.add(slot);
    }
  }
}

/** The read-only flag bits in the low nibble of a BAR register. */
export function barFlagBits(bar: BarDescription): number {
  switch (bar.kind) {
    case 'io':
      return PCI_BASE_ADDRESS_SPACE_IO;
    case 'mem32':
      return PCI_BASE_ADDRESS_MEM_TYPE_32 | (bar.prefetchable ? PCI_BASE_ADDRESS_MEM_PREFETCH : 0);
    case 'mem64':
      return PCI_BASE_ADDRESS_MEM_TYPE_64 | (bar.prefetchable ? PCI_BASE_ADDRESS_MEM_PREFETCH : 0);
  }
}

/** Widths a BAR of this kind accepts: I/O space has no 8-byte transactions. */
export function barAcceptsWidth(kind: BarKind, length: number): length is AccessSize {
  if (kind === 'io') return length === 1 || length === 2 || length === 4;
  return length === 1 || length === 2 || length === 4 || length === 8;
}

// ---- value <-> little-endian bytes ----

export function decodeLe(data: Uint8Array, size: AccessSize): number | bigint {
  if (size === 8) {
    return view(data, 0, 8).getBigUint64(0, true);
  }
  let v = 0;
  for (let i = 0; i < size; i++) v |= data[i]! << (8 * i);
  return v >>> 0;
}

/** Encodes a handler's result, truncated to `size` bytes; non-finite numbers become all-ones. */
export function encodeLe(value: number | bigint, size: AccessSize): Uint8Array {
  const out = new Uint8Array(size);
  if (typeof value === 'number' && size <= 4) {
    // Hot path (every MMIO read): stay in 32-bit integer arithmetic.
    const v = Number.isFinite(value) ? Math.trunc(value) >>> 0 : 0xffffffff;
    for (let i = 0; i < size; i++) out[i] = (v >>> (8 * i)) & 0xff;
    return out;
  }
  let big: bigint;
  if (typeof value === 'bigint') big = value;
  else if (Number.isFinite(value)) big = BigInt(Math.trunc(value));
  else big = -1n;
  big = BigInt.asUintN(size * 8, big);
  for (let i = 0; i < size; i++) {
    out[i] = Number(big & 0xffn);
    big >>= 8n;
  }
  return out;
}

export function allOnes(length: number): Uint8Array {
  return new Uint8Array(length).fill(0xff);
}
