/**
 * A little-endian byte-addressed register file whose guest writes are filtered per bit, the way
 * QEMU's hw/pci/pci.c treats config space: `wmask` (bits the guest may write), `w1cmask` (bits
 * the guest clears by writing 1) and `cmask` (bits that never change after power-on; a saved
 * image whose constant bits differ is refused). Bits in none of the masks are read-only to the
 * guest; the device itself changes them through the unmasked set* accessors ("dynamic" bits such
 * as the interrupt-status bit are declared so they are left out of cmask).
 *
 * Used for PCI config space and for the MSI-X table.
 */
import { readU16LE, readU32LE } from '../util/bytes.js';

export interface BitMasks {
  /** Bits the guest may write (RW). */
  writable?: number;
  /** Bits the guest clears by writing 1 (RW1C). */
  w1c?: number;
  /** Read-only bits the device itself updates at run time (not constant). */
  dynamic?: number;
}

export class RegisterFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RegisterFileError';
  }
}

export class MaskedRegisterFile {
  readonly bytes: Uint8Array;
  readonly wmask: Uint8Array;
  readonly w1cmask: Uint8Array;
  readonly cmask: Uint8Array;

  constructor(readonly size: number) {
    if (!Number.isInteger(size) || size <= 0) throw new RegisterFileError(`invalid register file size ${size}`);
    this.bytes = new Uint8Array(size);
    this.wmask = new Uint8Array(size);
    this.w1cmask = new Uint8Array(size);
    this.cmask = new Uint8Array(size).fill(0xff);
  }

  /** True if [offset, offset+length) lies inside the file. */
  contains(offset: number, length: number): boolean {
    return (
      Number.isInteger(offset) && Number.isInteger(length) && offset >= 0 && length >= 0 && offset + length <= this.size
    );
  }

  private check(offset: number, width: number): void {
    if (!this.contains(offset, width)) {
      throw new RegisterFileError(
        `register access [0x${offset.toString(16)}, +${width}) outside a ${this.size}-byte file`,
      );
    }
  }

  // ---- device-side accessors: no masks applied (these model the hardware driving its own bits) ----

  getU8(offset: number): number {
    this.check(offset, 1);
    return this.bytes[offset]!;
  }

  getU16(offset: number): number {
    this.check(offset, 2);
    return readU16LE(this.bytes, offset);
  }

  getU32(offset: number): number {
    this.check(offset, 4);
    return readU32LE(this.bytes, offset);
  }

  setU8(offset: number, value: number): void {
    this.setLe(this.bytes, offset, 1, value);
  }

  setU16(offset: number, value: number): void {
    this.setLe(this.bytes, offset, 2, value);
  }

  setU32(offset: number, value: number): void {
    this.setLe(this.bytes, offset, 4, value);
  }

  /** Sets or clears `bits` of the `width`-byte register at offset without touching the others. */
  updateBits(offset: number, width: 1 | 2 | 4, bits: number, on: boolean): void {
    const current = width === 1 ? this.getU8(offset) : width === 2 ? this.getU16(offset) : this.getU32(offset);
    this.setLe(this.bytes, offset, width, on ? current | bits : current & ~bits);
  }

  /**
   * Defines the guest-visible behaviour of a `width`-byte register: its masks (little-endian
   * values) and, for every bit that is neither writable, W1C nor dynamic, that it is constant.
   */
  defineMasks(offset: number, width: 1 | 2 | 4, masks: BitMasks): void {
    const writable = masks.writable ?? 0;
    const w1c = masks.w1c ?? 0;
    const dynamic = masks.dynamic ?? 0;
    if ((writable & w1c) !== 0) throw new RegisterFileError(`bits both RW and RW1C at 0x${offset.toString(16)}`);
    this.setLe(this.wmask, offset, width, writable);
    this.setLe(this.w1cmask, offset, width, w1c);
    this.setLe(this.cmask, offset, width, ~(writable | w1c | dynamic));
  }

  private setLe(target: Uint8Array, offset: number, width: number, value: number): void {
    this.check(offset, width);
    for (let i = 0; i < width; i++) target[offset + i] = (value >>> (8 * i)) & 0xff;
  }

  // ---- guest-side accessors ----

  /** A copy of [offset, offset+length). Reads have no side effects, so any length works. */
  read(offset: number, length: number): Uint8Array {
    this.check(offset, length);
    return this.bytes.slice(offset, offset + length);
  }

  /**
   * Applies a guest write byte by byte through the masks (QEMU pci_default_write_config order:
   * RW bits take the new value, then RW1C bits written as 1 are cleared). Returns true if any
   * stored bit changed.
   */
  write(offset: number, data: Uint8Array): boolean {
    this.check(offset, data.length);
    let changed = false;
    for (let i = 0; i < data.length; i++) {
      const at = offset + i;
      const value = data[i]!;
      const old = this.bytes[at]!;
      const wmask = this.wmask[at]!;
      let next = (old & ~wmask) | (value & wmask);
      next &= ~(value & this.w1cmask[at]!);
      if (next !== old) {
        this.bytes[at] = next;
        changed = true;
      }
    }
    return changed;
  }

  /** True if [offset, offset+length) holds any bit the guest can change (RW or RW1C). */
  hasGuestWritableBits(offset: number, length: number): boolean {
    this.check(offset, length);
    for (let i = offset; i < offset + length; i++) if ((this.wmask[i]! | this.w1cmask[i]!) !== 0) return true;
    return false;
  }

  /** A copy of the current contents (for reset images and snapshots). */
  image(): Uint8Array {
    return this.bytes.slice();
  }

  /** Replaces the contents with `image`, which must keep every constant bit; else throws. */
  restore(image: Uint8Array): void {
    const bad = this.firstConstantMismatch(image);
    if (bad !== null) {
      throw new RegisterFileError(`image changes constant bits at 0x${bad.toString(16)}`);
    }
    this.bytes.set(image);
  }

  /** Offset of the first byte where `image` differs from the current contents in a constant bit, or null. */
  firstConstantMismatch(image: Uint8Array): number | null {
    if (image.length !== this.size) return 0;
    for (let i = 0; i < this.size; i++) {
      if (((image[i]! ^ this.bytes[i]!) & this.cmask[i]!) !== 0) return i;
    }
    return null;
  }
}
