/**
 * Guest memory as the vfio-user client shared it with DMA_MAP (vfio-user spec, DMA_MAP /
 * DMA_UNMAP): a set of non-overlapping IOVA windows, each either mmapped from the fd that
 * came with the DMA_MAP or — when the client sent no fd (guest RAM not shared, or ROM) —
 * recorded without a backing so that accesses fail with a clear DmaError.
 *
 * Address translation: windows kept sorted by IOVA, binary search for the window holding an
 * address. Every access is checked before any byte moves: address + length must not wrap
 * 2^64, every byte must be covered by windows with the needed permission, and no access is
 * ever partial. An access may cross from one window into the next only where the two are
 * contiguous in IOVA space (QEMU splits guest RAM into several windows; a buffer may straddle
 * a split); copies are then done piecewise. view() cannot straddle (one mapping per view).
 */
import { DmaError, type GuestMemory } from '../device/guest-memory.js';
import { ERRNO, ProtocolError } from './protocol.js';

const U64_LIMIT = 1n << 64n;
/** Largest single access (the GuestMemory contract: lengths are numbers <= 2^31). */
export const DMA_ACCESS_MAX = 2 ** 31;

export interface DmaWindow {
  /** first IOVA */
  readonly address: bigint;
  readonly size: bigint;
  readonly readable: boolean;
  readonly writable: boolean;
  /** the mmapped file range, or null when the client sent no fd */
  readonly mapping: ArrayBuffer | null;
}

interface Segment {
  window: DmaWindow;
  mapping: ArrayBuffer;
  /** byte offset within the window */
  offset: number;
  length: number;
}

type Access = 'read' | 'write';

export class DmaWindowSet implements GuestMemory {
  /** sorted by address, non-overlapping */
  private readonly list: DmaWindow[] = [];

  constructor(private readonly maxWindows: number) {}

  get windows(): readonly DmaWindow[] {
    return this.list;
  }

  /** Adds a window; EEXIST if it overlaps one already mapped, ENOSPC past maxWindows. */
  insert(window: DmaWindow): void {
    if (window.size <= 0n || window.address < 0n || window.address + window.size > U64_LIMIT) {
      throw new ProtocolError(
        ERRNO.EINVAL,
        `DMA window [${hex(window.address)}, +${hex(window.size)}) is empty or wraps 2^64`,
      );
    }
    if (this.list.length >= this.maxWindows) {
      throw new ProtocolError(ERRNO.ENOSPC, `too many DMA windows (max ${this.maxWindows})`);
    }
    const i = this.firstEndingAfter(window.address);
    const next = this.list[i];
    if (next && next.address < window.address + window.size) {
      throw new ProtocolError(
        ERRNO.EEXIST,
        `DMA window [${hex(window.address)}, +${hex(window.size)}) overlaps [${hex(next.address)}, +${hex(next.size)})`,
      );
    }
    this.list.splice(i, 0, window);
  }

  /** Removes the window with exactly this address and size; ENOENT otherwise. */
  remove(address: bigint, size: bigint): DmaWindow {
    const i = this.indexContaining(address);
    const w = i < 0 ? undefined : this.list[i];
    if (!w || w.address !== address || w.size !== size) {
      throw new ProtocolError(ERRNO.ENOENT, `no DMA window is exactly [${hex(address)}, +${hex(size)})`);
    }
    this.list.splice(i, 1);
    return w;
  }

  /** Removes and returns every window (client asked for unmap-all, or disconnected). */
  removeAll(): DmaWindow[] {
    return this.list.splice(0, this.list.length);
  }

  /** The window holding this IOVA, if any. */
  find(address: bigint): DmaWindow | undefined {
    const i = this.indexContaining(address);
    return i < 0 ? undefined : this.list[i];
  }

  // --- GuestMemory ----------------------------------------------------------------------

  read(address: bigint, length: number): Uint8Array {
    const out = new Uint8Array(checkLength(address, length));
    this.copyOut(address, out, 0, length);
    return out;
  }

  readInto(address: bigint, dst: Uint8Array, dstOffset = 0, length = dst.length - dstOffset): void {
    if (!Number.isInteger(dstOffset) || dstOffset < 0 || dstOffset > dst.length) {
      throw new RangeError(`readInto: destination offset ${dstOffset} outside a buffer of ${dst.length}`);
    }
    checkLength(address, length);
    if (length > dst.length - dstOffset) {
      throw new RangeError(`readInto: ${length} bytes do not fit at offset ${dstOffset} of a buffer of ${dst.length}`);
    }
    this.copyOut(address, dst, dstOffset, length);
  }

  write(address: bigint, data: Uint8Array): void {
    const segments = this.resolve(address, checkLength(address, data.length), 'write');
    let done = 0;
    for (const s of segments) {
      new Uint8Array(s.mapping, s.offset, s.length).set(data.subarray(done, done + s.length));
      done += s.length;
    }
  }

  isMapped(address: bigint, length: number, access: Access): boolean {
    try {
      this.resolve(address, checkLength(address, length), access);
      return true;
    } catch (err) {
      if (err instanceof DmaError) return false;
      throw err;
    }
  }

  /**
   * A live view of one window. A 'read' view of a read-only window (DMA_MAP without
   * VFIO_DMA_MAP_FLAG_WRITE) covers pages mapped without PROT_WRITE: writing through it faults
   * and kills the process, so a read view must never be written.
   */
  view(address: bigint, length: number, access: Access): Uint8Array {
    const segments = this.resolve(address, checkLength(address, length), access);
    if (segments.length > 1) {
      throw new DmaError(
        `DMA ${access} of ${length} bytes at ${hex(address)} straddles two DMA windows; a live view needs one window (copy with read/write instead)`,
        address,
        length,
      );
    }
    const s = segments[0];
    if (!s) return new Uint8Array(0);
    return new Uint8Array(s.mapping, s.offset, s.length);
  }

  views(address: bigint, length: number, access: Access): Uint8Array[] {
    return this.resolve(address, checkLength(address, length), access).map(
      (s) => new Uint8Array(s.mapping, s.offset, s.length),
    );
  }

  // --- internals ------------------------------------------------------------------------

  private copyOut(address: bigint, dst: Uint8Array, dstOffset: number, length: number): void {
    const segments = this.resolve(address, length, 'read');
    let at = dstOffset;
    for (const s of segments) {
      dst.set(new Uint8Array(s.mapping, s.offset, s.length), at);
      at += s.length;
    }
  }

  /** Checks the whole range and splits it into per-window pieces; DmaError if any byte fails. */
  private resolve(address: bigint, length: number, access: Access): Segment[] {
    if (typeof address !== 'bigint' || address < 0n || address >= U64_LIMIT) {
      throw new DmaError(
        `DMA address ${String(address)} is not a 64-bit bus address`,
        BigInt.asUintN(64, BigInt(address)),
        length,
      );
    }
    if (address + BigInt(length) > U64_LIMIT) {
      throw new DmaError(`DMA ${access} of ${length} bytes at ${hex(address)} wraps past 2^64`, address, length);
    }
    const segments: Segment[] = [];
    if (length === 0) return segments;
    let i = this.indexContaining(address);
    let cursor = address;
    let remaining = length;
    // Bounded by the number of windows: each iteration moves to the next one.
    while (remaining > 0) {
      const w = i < 0 ? undefined : this.list[i];
      if (!w || cursor < w.address || cursor >= w.address + w.size) {
        throw new DmaError(
          `DMA ${access} of ${length} bytes at ${hex(address)}: ${hex(cursor)} is not in any DMA window (unmapped guest memory)`,
          address,
          length,
        );
      }
      if (access === 'read' ? !w.readable : !w.writable) {
        throw new DmaError(
          `DMA ${access} of ${length} bytes at ${hex(address)}: window [${hex(w.address)}, +${hex(w.size)}) is not ${access === 'read' ? 'readable' : 'writable'}`,
          address,
          length,
        );
      }
      if (w.mapping === null) {
        throw new DmaError(
          `DMA ${access} at ${hex(address)}: window [${hex(w.address)}, +${hex(w.size)}) was mapped without a file descriptor; ` +
            'the device needs shared guest memory (start QEMU with a memory-backend-memfd/-file with share=on)',
          address,
          length,
        );
      }
      const offset = Number(cursor - w.address);
      const inWindow = Math.min(remaining, Number(w.size) - offset);
      if (w.mapping.byteLength < offset + inWindow) {
        // The mapping was released (munmap detaches the buffer) while the window is still listed.
        throw new DmaError(`DMA ${access} at ${hex(address)}: the window's mapping is gone`, address, length);
      }
      segments.push({ window: w, mapping: w.mapping, offset, length: inWindow });
      remaining -= inWindow;
      cursor += BigInt(inWindow);
      i += 1;
    }
    return segments;
  }

  /** Index of the window containing address, or -1. */
  private indexContaining(address: bigint): number {
    const i = this.firstEndingAfter(address);
    const w = this.list[i];
    return w && w.address <= address ? i : -1;
  }

  /** Index of the first window whose end is above address (binary search). */
  private firstEndingAfter(address: bigint): number {
    let lo = 0;
    let hi = this.list.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const w = this.list[mid]!;
      if (w.address + w.size <= address) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}

/** Lengths usually derive from guest data, so a bad one is a DmaError the device can report. */
function checkLength(address: bigint, length: number): number {
  if (!Number.isInteger(length) || length < 0 || length > DMA_ACCESS_MAX) {
    throw new DmaError(`DMA length ${length} is not an integer in [0, 2^31]`, address, 0);
  }
  return length;
}

function hex(n: bigint): string {
  return '0x' + n.toString(16);
}
