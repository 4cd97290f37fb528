/**
 * PCI Express configuration space of one type 0 function (PCI Local Bus 3.0 §6.1–6.2, PCIe Base
 * 2.1 §7.5): 4 KiB, guest writes filtered by per-bit RW / RW1C masks as in QEMU hw/pci/pci.c
 * (pci_init_wmask, pci_init_w1cmask, pci_default_write_config).
 *
 * What the type 0 header does here:
 *  - vendor/device/revision/class/header type/subsystem IDs/interrupt pin/capability pointer: RO;
 *  - command: IO, MEM, bus master, parity, SERR, INTx disable writable; the rest hardwired 0;
 *  - status: capabilities-list bit (RO), interrupt-status bit (RO, driven by the device from
 *    its INTx line), error bits RW1C;
 *  - cache line size and interrupt line: RW storage; latency timer: 0 (PCIe);
 *  - BARs: RW address bits above the size, RO type bits below — so writing all-ones reads back
 *    the size mask (~(size-1) | flags); a 64-bit BAR's upper dword is fully writable while the
 *    size is below 4 GiB; unimplemented BARs read 0 and ignore writes;
 *  - expansion ROM BAR absent: reads 0, writes ignored; cardbus CIS, BIST, min/max: 0.
 * Reads have no side effects and may be of any length (QEMU reads the whole space at once).
 * Capabilities are laid out by capabilities.ts on top of this.
 */
import { barFlagBits, validateBars, type BarDescription } from './bar.js';
import { MaskedRegisterFile } from './masked-registers.js';
import {
  PCIE_CONFIG_SPACE_SIZE,
  PCI_BAR_SIZEOF,
  PCI_BASE_ADDRESS_0,
  PCI_BASE_ADDRESS_IO_FLAGS_MASK,
  PCI_BASE_ADDRESS_MEM_FLAGS_MASK,
  PCI_CACHE_LINE_SIZE,
  PCI_CLASS_PROG,
  PCI_COMMAND,
  PCI_COMMAND_WRITABLE,
  PCI_CONFIG_SPACE_SIZE,
  PCI_DEVICE_ID,
  PCI_HEADER_TYPE,
  PCI_HEADER_TYPE_NORMAL,
  PCI_INTERRUPT_LINE,
  PCI_INTERRUPT_PIN,
  PCI_REVISION_ID,
  PCI_STATUS,
  PCI_STATUS_INTERRUPT,
  PCI_STATUS_W1C,
  PCI_SUBSYSTEM_ID,
  PCI_SUBSYSTEM_VENDOR_ID,
  PCI_VENDOR_ID,
} from './regs.js';

export interface PciIdentity {
  vendorId: number;
  deviceId: number;
  revisionId: number;
  /** 24-bit class code: base class << 16 | sub-class << 8 | programming interface. */
  classCode: number;
  subsystemVendorId: number;
  subsystemId: number;
  /** 0 = no INTx, 1..4 = INTA..INTD. */
  interruptPin: number;
}

export class PciIdentityError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PciIdentityError';
  }
}

function checkField(name: string, value: number, max: number): void {
  if (!Number.isInteger(value) || value < 0 || value > max) {
    throw new PciIdentityError(`${name} ${value} is not an integer in 0..0x${max.toString(16)}`);
  }
}

export function validateIdentity(id: PciIdentity): void {
  checkField('vendor id', id.vendorId, 0xffff);
  // 0xffff is what an absent function reads as; the driver's timer treats it as surprise removal.
  if (id.vendorId === 0xffff) throw new PciIdentityError('vendor id 0xffff means "no device"');
  checkField('device id', id.deviceId, 0xffff);
  checkField('revision id', id.revisionId, 0xff);
  checkField('class code', id.classCode, 0xffffff);
  checkField('subsystem vendor id', id.subsystemVendorId, 0xffff);
  checkField('subsystem id', id.subsystemId, 0xffff);
  checkField('interrupt pin', id.interruptPin, 4);
}

/** Byte offset of BAR `index`'s register. */
export function barRegisterOffset(index: number): number {
  return PCI_BASE_ADDRESS_0 + index * PCI_BAR_SIZEOF;
}

export class ConfigSpace {
  readonly regs: MaskedRegisterFile;
  private powerOnImage: Uint8Array | null = null;

  constructor(
    readonly identity: PciIdentity,
    readonly bars: ReadonlyMap<number, BarDescription>,
    readonly size: number = PCIE_CONFIG_SPACE_SIZE,
  ) {
    validateIdentity(identity);
    validateBars(bars);
    if (size !== PCIE_CONFIG_SPACE_SIZE && size !== PCI_CONFIG_SPACE_SIZE) {
      throw new PciIdentityError(`config space size ${size} is neither 256 nor 4096`);
    }
    this.regs = new MaskedRegisterFile(size);
    this.initHeader();
  }

  private initHeader(): void {
    const r = this.regs;
    const id = this.identity;
    r.setU16(PCI_VENDOR_ID, id.vendorId);
    r.setU16(PCI_DEVICE_ID, id.deviceId);
    r.setU8(PCI_REVISION_ID, id.revisionId);
    r.setU8(PCI_CLASS_PROG, id.classCode & 0xff);
    r.setU16(PCI_CLASS_PROG + 1, id.classCode >>> 8);
    r.setU8(PCI_HEADER_TYPE, PCI_HEADER_TYPE_NORMAL);
    r.setU16(PCI_SUBSYSTEM_VENDOR_ID, id.subsystemVendorId);
    r.setU16(PCI_SUBSYSTEM_ID, id.subsystemId);
    r.setU8(PCI_INTERRUPT_PIN, id.interruptPin);

    r.defineMasks(PCI_COMMAND, 2, { writable: PCI_COMMAND_WRITABLE });
    r.defineMasks(PCI_STATUS, 2, { w1c: PCI_STATUS_W1C, dynamic: PCI_STATUS_INTERRUPT });
    r.defineMasks(PCI_CACHE_LINE_SIZE, 1, { writable: 0xff });
    r.defineMasks(PCI_INTERRUPT_LINE, 1, { writable: 0xff });

    for (const [index, bar] of this.bars) this.initBar(index, bar);
  }

  private initBar(index: number, bar: BarDescription): void {
    const at = barRegisterOffset(index);
    const flags = barFlagBits(bar);
    this.regs.setU32(at, flags);
    if (bar.kind === 'io') {
      this.regs.defineMasks(at, 4, { writable: ~(bar.size - 1) & ~PCI_BASE_ADDRESS_IO_FLAGS_MASK });
      return;
    }
    // Address bits at and above log2(size) are writable; split into dwords for 64-bit BARs.
    const sizeMask = BigInt.asUintN(64, ~(BigInt(bar.size) - 1n));
    const low = Number(sizeMask & 0xffffffffn) & ~PCI_BASE_ADDRESS_MEM_FLAGS_MASK;
    this.regs.defineMasks(at, 4, { writable: low });
    if (bar.kind === 'mem64') {
      this.regs.setU32(at + PCI_BAR_SIZEOF, 0);
      this.regs.defineMasks(at + PCI_BAR_SIZEOF, 4, { writable: Number(sizeMask >> 32n) });
    }
  }

  /** Records the current contents as the power-on image (call after capabilities are built). */
  sealPowerOnImage(): void {
    this.powerOnImage = this.regs.image();
  }

  get sealed(): boolean {
    return this.powerOnImage !== null;
  }

  /** Restores the power-on image (reset enter phase). */
  resetToPowerOn(): void {
    if (this.powerOnImage === null)
      throw new PciIdentityError('config space reset before its power-on image was sealed');
    this.regs.bytes.set(this.powerOnImage);
  }

  /** Guest read of any length inside the space. */
  read(offset: number, length: number): Uint8Array {
    return this.regs.read(offset, length);
  }

  /** Guest write through the masks; returns true if any stored bit changed. */
  write(offset: number, data: Uint8Array): boolean {
    return this.regs.write(offset, data);
  }

  command(): number {
    return this.regs.getU16(PCI_COMMAND);
  }

  status(): number {
    return this.regs.getU16(PCI_STATUS);
  }

  /** The device drives the status register's interrupt bit from its INTx line. */
  setInterruptStatus(asserted: boolean): void {
    this.regs.updateBits(PCI_STATUS, 2, PCI_STATUS_INTERRUPT, asserted);
  }

  /** The device latches an error condition in the status register (the guest clears it with W1C). */
  raiseStatusBits(bits: number): void {
    this.regs.updateBits(PCI_STATUS, 2, bits & PCI_STATUS_W1C, true);
  }

  interruptPin(): number {
    return this.regs.getU8(PCI_INTERRUPT_PIN);
  }

  /** The address currently programmed into BAR `index` (flag bits stripped), as the guest wrote it. */
  barAddress(index: number): bigint {
    const bar = this.bars.get(index);
    if (bar === undefined) return 0n;
    const at = barRegisterOffset(index);
    const low = this.regs.getU32(at);
    if (bar.kind === 'io') return BigInt(low & ~PCI_BASE_ADDRESS_IO_FLAGS_MASK) & 0xffffffffn;
    const lowAddr = BigInt((low & ~PCI_BASE_ADDRESS_MEM_FLAGS_MASK) >>> 0);
    if (bar.kind === 'mem32') return lowAddr;
    return (BigInt(this.regs.getU32(at + PCI_BAR_SIZEOF)) << 32n) | lowAddr;
  }
}
