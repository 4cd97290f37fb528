import { describe, expect, it } from 'vitest';
import { MaskedRegisterFile, RegisterFileError } from '../../../src/pci/masked-registers.js';
import * as R from '../../../src/pci/regs.js';
import { IO_BAR, makeFunction, MEM32_BAR, MEM64_BAR, TEST_IDENTITY } from './fixture.js';
import { le, u16, u32 } from './helpers.js';
import { mulberry32 } from '../../support/rng.js';
import { VFIO_PCI_CONFIG_REGION_INDEX } from '../../../src/device/linux-vfio.js';

const CFG = VFIO_PCI_CONFIG_REGION_INDEX;

function setup() {
  const t = makeFunction();
  const rd = (off: number, len: number) => t.fn.regionRead(CFG, off, len);
  const wr = (off: number, value: number, len: number) => t.fn.regionWrite(CFG, off, le(value, len));
  const rd16 = (off: number) => u16(rd(off, 2));
  const rd32 = (off: number) => u32(rd(off, 4));
  return { ...t, rd, wr, rd16, rd32 };
}

describe('type 0 header', () => {
  it('presents the identity read-only', () => {
    const { rd16, rd, wr } = setup();
    const before = rd(0, 0x40);
    expect(rd16(R.PCI_VENDOR_ID)).toBe(TEST_IDENTITY.vendorId);
    expect(rd16(R.PCI_DEVICE_ID)).toBe(TEST_IDENTITY.deviceId);
    expect(rd(R.PCI_REVISION_ID, 1)[0]).toBe(TEST_IDENTITY.revisionId);
    expect(u32(rd(R.PCI_REVISION_ID, 4)) >>> 8).toBe(TEST_IDENTITY.classCode);
    expect(rd16(R.PCI_SUBSYSTEM_VENDOR_ID)).toBe(TEST_IDENTITY.subsystemVendorId);
    expect(rd16(R.PCI_SUBSYSTEM_ID)).toBe(TEST_IDENTITY.subsystemId);
    expect(rd(R.PCI_INTERRUPT_PIN, 1)[0]).toBe(1);
    expect(rd(R.PCI_HEADER_TYPE, 1)[0]).toBe(0);
    for (const off of [
      R.PCI_VENDOR_ID,
      R.PCI_REVISION_ID,
      R.PCI_SUBSYSTEM_VENDOR_ID,
      R.PCI_CAPABILITY_LIST,
      R.PCI_INTERRUPT_PIN,
    ]) {
      wr(off, 0xffffffff, 4 - (off % 4));
    }
    const after = rd(0, 0x40);
    for (const off of [0, 1, 2, 3, 8, 9, 10, 11, 0x2c, 0x2d, 0x2e, 0x2f, 0x34, 0x3d])
      expect(after[off]).toBe(before[off]);
  });

  it('interrupt line and cache line size are plain storage', () => {
    const { rd, wr } = setup();
    wr(R.PCI_INTERRUPT_LINE, 0x0b, 1);
    wr(R.PCI_CACHE_LINE_SIZE, 0x10, 1);
    expect(rd(R.PCI_INTERRUPT_LINE, 1)[0]).toBe(0x0b);
    expect(rd(R.PCI_CACHE_LINE_SIZE, 1)[0]).toBe(0x10);
    // PCIe: latency timer hardwired 0
    wr(R.PCI_LATENCY_TIMER, 0x80, 1);
    expect(rd(R.PCI_LATENCY_TIMER, 1)[0]).toBe(0);
  });

  it('command register keeps only the implemented bits', () => {
    const { rd16, wr } = setup();
    wr(R.PCI_COMMAND, 0xffff, 2);
    expect(rd16(R.PCI_COMMAND)).toBe(R.PCI_COMMAND_WRITABLE);
    wr(R.PCI_COMMAND, 0, 2);
    expect(rd16(R.PCI_COMMAND)).toBe(0);
  });

  it('status error bits clear on 1, stay on 0; cap-list bit is read-only', () => {
    const { fn, rd16, wr } = setup();
    expect(rd16(R.PCI_STATUS) & R.PCI_STATUS_CAP_LIST).toBe(R.PCI_STATUS_CAP_LIST);
    fn.config.raiseStatusBits(R.PCI_STATUS_REC_MASTER_ABORT | R.PCI_STATUS_DETECTED_PARITY);
    expect(rd16(R.PCI_STATUS) & R.PCI_STATUS_W1C).toBe(R.PCI_STATUS_REC_MASTER_ABORT | R.PCI_STATUS_DETECTED_PARITY);
    wr(R.PCI_STATUS, 0, 2);
    expect(rd16(R.PCI_STATUS) & R.PCI_STATUS_W1C).toBe(R.PCI_STATUS_REC_MASTER_ABORT | R.PCI_STATUS_DETECTED_PARITY);
    wr(R.PCI_STATUS, R.PCI_STATUS_REC_MASTER_ABORT, 2);
    expect(rd16(R.PCI_STATUS) & R.PCI_STATUS_W1C).toBe(R.PCI_STATUS_DETECTED_PARITY);
    wr(R.PCI_STATUS, 0xffff, 2);
    expect(rd16(R.PCI_STATUS)).toBe(R.PCI_STATUS_CAP_LIST);
  });

  it('a write to the command word that also covers status does not set status bits', () => {
    const { rd16, wr } = setup();
    wr(R.PCI_COMMAND, 0xffff_0006, 4);
    expect(rd16(R.PCI_COMMAND)).toBe(0x0006);
    expect(rd16(R.PCI_STATUS)).toBe(R.PCI_STATUS_CAP_LIST);
  });
});

describe('BAR sizing', () => {
  const barOff = (i: number) => R.PCI_BASE_ADDRESS_0 + 4 * i;

  it('I/O BAR: all-ones probe reads back the size mask with the I/O flag', () => {
    const { rd32, wr } = setup();
    expect(rd32(barOff(IO_BAR))).toBe(R.PCI_BASE_ADDRESS_SPACE_IO);
    wr(barOff(IO_BAR), 0xffffffff, 4);
    expect(rd32(barOff(IO_BAR))).toBe(0xffffffe1);
    wr(barOff(IO_BAR), 0xc040, 4);
    expect(rd32(barOff(IO_BAR))).toBe(0xc041);
  });

  it('32-bit memory BAR: size mask, type bits read-only, address stored', () => {
    const { fn, rd32, wr } = setup();
    expect(rd32(barOff(MEM32_BAR))).toBe(0);
    wr(barOff(MEM32_BAR), 0xffffffff, 4);
    expect(rd32(barOff(MEM32_BAR))).toBe(0xfffff000);
    wr(barOff(MEM32_BAR), 0xfebf1234, 4);
    expect(rd32(barOff(MEM32_BAR))).toBe(0xfebf1000);
    expect(fn.config.barAddress(MEM32_BAR)).toBe(0xfebf1000n);
  });

  it('64-bit memory BAR pair: low dword sizes with flags, high dword all-ones', () => {
    const { fn, rd32, wr } = setup();
    const flags = R.PCI_BASE_ADDRESS_MEM_TYPE_64 | R.PCI_BASE_ADDRESS_MEM_PREFETCH;
    expect(rd32(barOff(MEM64_BAR))).toBe(flags);
    wr(barOff(MEM64_BAR), 0xffffffff, 4);
    wr(barOff(MEM64_BAR + 1), 0xffffffff, 4);
    expect(rd32(barOff(MEM64_BAR))).toBe((0xffff0000 | flags) >>> 0);
    expect(rd32(barOff(MEM64_BAR + 1))).toBe(0xffffffff);
    wr(barOff(MEM64_BAR), 0x00010000, 4);
    wr(barOff(MEM64_BAR + 1), 0x00000080, 4);
    expect(fn.config.barAddress(MEM64_BAR)).toBe(0x80_0001_0000n);
    expect(fn.regionInfo(MEM64_BAR + 1).size).toBe(0);
  });

  it('unimplemented BARs and the expansion ROM read 0 and ignore writes', () => {
    const { rd32, wr } = setup();
    wr(barOff(5), 0xffffffff, 4);
    expect(rd32(barOff(5))).toBe(0);
    wr(R.PCI_ROM_ADDRESS, 0xffffffff, 4);
    expect(rd32(R.PCI_ROM_ADDRESS)).toBe(0);
    wr(R.PCI_ROM_ADDRESS, 0xfffff801, 4);
    expect(rd32(R.PCI_ROM_ADDRESS)).toBe(0);
  });
});

describe('access shapes', () => {
  it('reads the whole 4 KiB space in one access', () => {
    const { rd } = setup();
    const all = rd(0, 4096);
    expect(all.length).toBe(4096);
    expect(u16(all, 0)).toBe(TEST_IDENTITY.vendorId);
  });

  it('unaligned and odd-length accesses work byte-wise', () => {
    const { rd, rd16, wr } = setup();
    // A 2-byte access straddling vendor/device ids.
    expect(u16(rd(1, 2))).toBe(((TEST_IDENTITY.vendorId >> 8) | ((TEST_IDENTITY.deviceId & 0xff) << 8)) & 0xffff);
    // 3-byte read of the class code.
    const cls = rd(R.PCI_CLASS_PROG, 3);
    expect(cls[0]! | (cls[1]! << 8) | (cls[2]! << 16)).toBe(TEST_IDENTITY.classCode);
    // An unaligned 4-byte write covering cache line size .. header type only changes the RW byte.
    wr(R.PCI_CACHE_LINE_SIZE - 1, 0xffffff_ff, 4);
    expect(rd(R.PCI_CACHE_LINE_SIZE, 1)[0]).toBe(0xff);
    expect(rd(R.PCI_HEADER_TYPE, 1)[0]).toBe(0);
    expect(rd16(R.PCI_VENDOR_ID)).toBe(TEST_IDENTITY.vendorId);
  });

  it('out-of-range accesses never throw: reads answer all-ones, writes are dropped and traced', () => {
    const { fn, rec } = setup();
    expect(() => fn.regionRead(CFG, 4095, 4)).not.toThrow();
    expect([...fn.regionRead(CFG, 4095, 4)]).toEqual([0xff, 0xff, 0xff, 0xff]);
    expect(() => fn.regionWrite(CFG, 5000, new Uint8Array(4))).not.toThrow();
    expect(rec.events()).toContain('ub_config_write_range');
    expect(rec.events()).toContain('ub_config_read_range');
  });

  it('writes to read-only bytes are traced', () => {
    const { fn, rec } = setup();
    fn.regionWrite(CFG, R.PCI_VENDOR_ID, le(0x1234, 2));
    expect(rec.events()).toContain('ub_config_write_readonly');
  });

  it('random writes anywhere never change a constant bit', () => {
    const { fn } = setup();
    const powerOn = fn.config.regs.image();
    const rnd = mulberry32(0x5eed);
    for (let i = 0; i < 3000; i++) {
      const len = [1, 2, 4, 3, 8][Math.floor(rnd() * 5)]!;
      const off = Math.floor(rnd() * (4096 - len));
      const data = new Uint8Array(len).map(() => Math.floor(rnd() * 256));
      fn.regionWrite(CFG, off, data);
    }
    expect(fn.config.regs.firstConstantMismatch(powerOn)).toBeNull();
    // and the identity survived
    expect(u16(fn.regionRead(CFG, 0, 2))).toBe(TEST_IDENTITY.vendorId);
  });
});

describe('MaskedRegisterFile', () => {
  it('restore refuses an image that changes constant bits and accepts one that changes RW bits', () => {
    const f = new MaskedRegisterFile(8);
    f.setU32(0, 0x12345678);
    f.defineMasks(4, 4, { writable: 0x0000ffff });
    const ok = f.image();
    ok[4] = 0xaa;
    expect(() => f.restore(ok)).not.toThrow();
    expect(f.getU8(4)).toBe(0xaa);
    const bad = f.image();
    bad[0] = 0;
    expect(() => f.restore(bad)).toThrow(RegisterFileError);
    expect(() => f.restore(new Uint8Array(4))).toThrow(RegisterFileError);
  });

  it('rejects accessors outside the file and RW+W1C overlaps', () => {
    const f = new MaskedRegisterFile(4);
    expect(() => f.getU32(2)).toThrow(RegisterFileError);
    expect(() => f.defineMasks(0, 2, { writable: 1, w1c: 1 })).toThrow(RegisterFileError);
  });
});
