/**
 * The tests' one fake guest memory: windows over ArrayBuffers, an access outside every window
 * (or a write to a read-only one) is a DmaError as the real DMA window set raises it, and
 * counters of reads and writes so tests can check copy-in behaviour.
 */
import { DmaError, type GuestMemory } from '../../src/device/guest-memory.js';

interface Window {
  base: bigint;
  bytes: Uint8Array;
  writable: boolean;
}

export class ArrayGuestMemory implements GuestMemory {
  private readonly windows: Window[] = [];
  reads = 0;
  bytesRead = 0;
  writes = 0;

  /** With `base` and `size`: starts with one writable window there (see `bytes`). */
  constructor(base?: bigint, size?: number) {
    if (base !== undefined && size !== undefined) this.map(base, size);
  }

  /** Adds a window of `size` zero bytes at `base`; returns its bytes (live). */
  map(base: bigint, size: number, writable = true): Uint8Array {
    const bytes = new Uint8Array(size);
    this.windows.push({ base, bytes, writable });
    return bytes;
  }

  /**
   * Removes the window at `base` and detaches its buffer, as a DMA_UNMAP's munmap does: every
   * view into it (kept by an I/O in flight) becomes zero-length.
   */
  unmap(base: bigint): void {
    const i = this.windows.findIndex((w) => w.base === base);
    if (i < 0) throw new Error(`ArrayGuestMemory: no window at 0x${base.toString(16)}`);
    const [w] = this.windows.splice(i, 1);
    structuredClone(w!.bytes.buffer, { transfer: [w!.bytes.buffer as ArrayBuffer] });
  }

  /** The first window's bytes (live). */
  get bytes(): Uint8Array {
    const first = this.windows[0];
    if (!first) throw new Error('ArrayGuestMemory: no window mapped');
    return first.bytes;
  }

  private find(address: bigint, length: number, access: 'read' | 'write'): { bytes: Uint8Array; offset: number } {
    if (length >= 0) {
      for (const w of this.windows) {
        if (
          address >= w.base &&
          address + BigInt(length) <= w.base + BigInt(w.bytes.length) &&
          (access === 'read' || w.writable)
        ) {
          return { bytes: w.bytes, offset: Number(address - w.base) };
        }
      }
    }
    throw new DmaError(
      `${access} of ${length} bytes at 0x${address.toString(16)} outside guest memory`,
      address,
      length,
    );
  }

  read(address: bigint, length: number): Uint8Array {
    const { bytes, offset } = this.find(address, length, 'read');
    this.reads++;
    return bytes.slice(offset, offset + length);
  }

  readInto(address: bigint, dst: Uint8Array, dstOffset = 0, length = dst.length - dstOffset): void {
    if (dstOffset < 0 || length < 0 || dstOffset + length > dst.length)
      throw new RangeError('readInto destination range');
    const { bytes, offset } = this.find(address, length, 'read');
    this.reads++;
    this.bytesRead += length;
    dst.set(bytes.subarray(offset, offset + length), dstOffset);
  }

  write(address: bigint, data: Uint8Array): void {
    const { bytes, offset } = this.find(address, data.length, 'write');
    this.writes++;
    bytes.set(data, offset);
  }

  isMapped(address: bigint, length: number, access: 'read' | 'write' = 'read'): boolean {
    try {
      this.find(address, length, access);
      return true;
    } catch {
      return false;
    }
  }

  view(address: bigint, length: number, access: 'read' | 'write' = 'read'): Uint8Array {
    const { bytes, offset } = this.find(address, length, access);
    return bytes.subarray(offset, offset + length);
  }

  views(address: bigint, length: number, access: 'read' | 'write' = 'read'): Uint8Array[] {
    return length === 0 ? [] : [this.view(address, length, access)];
  }

  /** Little-endian u16 at `address` (not counted as a guest-visible read). */
  u16(address: bigint): number {
    const b = this.view(address, 2);
    return b[0]! | (b[1]! << 8);
  }

  /** Little-endian u32 at `address` (not counted as a guest-visible read). */
  u32(address: bigint): number {
    const b = this.view(address, 4);
    return new DataView(b.buffer, b.byteOffset, 4).getUint32(0, true);
  }
}
