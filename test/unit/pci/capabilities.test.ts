import { describe, expect, it } from 'vitest';
import type { BarDescription } from '../../../src/pci/bar.js';
import {
  CAPABILITY_WALK_BUDGET,
  CapabilityChainBuilder,
  CapabilityLayoutError,
  walkCapabilities,
} from '../../../src/pci/capabilities.js';
import { ConfigSpace } from '../../../src/pci/config-space.js';
import * as R from '../../../src/pci/regs.js';
import { makeFunction, MSIX_BAR, MSIX_PBA_OFFSET, MSIX_VECTORS, TEST_IDENTITY } from './fixture.js';
import { le, RecordingBar, u16, u32 } from './helpers.js';
import { VFIO_PCI_CONFIG_REGION_INDEX } from '../../../src/device/linux-vfio.js';

const CFG = VFIO_PCI_CONFIG_REGION_INDEX;

function setup() {
  const t = makeFunction();
  const rd = (off: number, len: number) => t.fn.regionRead(CFG, off, len);
  const wr = (off: number, value: number, len: number) => t.fn.regionWrite(CFG, off, le(value, len));
  return { ...t, rd, wr, rd16: (o: number) => u16(rd(o, 2)), rd32: (o: number) => u32(rd(o, 4)) };
}

describe('capability chain', () => {
  it('every capability is reachable, aligned, linked upward and terminated', () => {
    const { fn, rd } = setup();
    const image = rd(0, 256);
    const walk = walkCapabilities((o) => image[o]!);
    expect(walk.error).toBeNull();
    expect(walk.found.map((c) => c.id)).toEqual([
      R.PCI_CAP_ID_PM,
      R.PCI_CAP_ID_EXP,
      R.PCI_CAP_ID_MSI,
      R.PCI_CAP_ID_MSIX,
    ]);
    for (const c of walk.found) {
      expect(c.offset % 4).toBe(0);
      expect(c.offset).toBeGreaterThanOrEqual(0x40);
    }
    const offsets = walk.found.map((c) => c.offset);
    expect([...offsets].sort((a, b) => a - b)).toEqual(offsets);
    expect(image[offsets.at(-1)! + 1]).toBe(0);
    expect(offsets).toEqual(fn.caps.chain.map((c) => c.offset));
    // No capability overlaps the next one.
    for (let i = 0; i + 1 < fn.caps.chain.length; i++) {
      expect(fn.caps.chain[i]!.offset + fn.caps.chain[i]!.length).toBeLessThanOrEqual(fn.caps.chain[i + 1]!.offset);
    }
  });

  it('the extended capability list is empty (header 0 at 0x100)', () => {
    const { rd32 } = setup();
    expect(rd32(R.PCI_EXT_CAP_START)).toBe(0);
  });

  it('no capabilities: pointer 0 and the status cap-list bit clear', () => {
    const { fn } = makeFunction({}, { withAllCaps: false });
    expect(fn.regionRead(CFG, R.PCI_CAPABILITY_LIST, 1)[0]).toBe(0);
    expect(u16(fn.regionRead(CFG, R.PCI_STATUS, 2)) & R.PCI_STATUS_CAP_LIST).toBe(0);
  });

  it('walker stops on loops, misaligned pointers, pointers into the header and over-long chains', () => {
    const img = new Uint8Array(256);
    const walkImg = () => walkCapabilities((o) => img[o]!);
    img[R.PCI_CAPABILITY_LIST] = 0x40;
    img[0x40] = 1;
    img[0x41] = 0x50;
    img[0x50] = 5;
    img[0x51] = 0x40; // loop
    expect(walkImg().error).toMatch(/loop/);
    img[0x51] = 0x53;
    expect(walkImg().error).toMatch(/aligned/);
    img[0x51] = 0x10;
    expect(walkImg().error).toMatch(/header/);
    // 0x40, 0x44, ... each pointing at the next, never ending within the budget
    for (let o = 0x40; o < 0x100; o += 4) img[o + 1] = o + 4 < 0x100 ? o + 4 : 0x40;
    const r = walkImg();
    expect(r.error).not.toBeNull();
    expect(r.found.length).toBeLessThanOrEqual(CAPABILITY_WALK_BUDGET);
  });
});

describe('builder checks the layout', () => {
  const bars = () =>
    new Map<number, BarDescription>([
      [0, { kind: 'io', size: 256, handler: new RecordingBar(256) }],
      [1, { kind: 'mem32', size: 4096, handler: new RecordingBar(4096) }],
    ]);
  const builder = () => new CapabilityChainBuilder(new ConfigSpace(TEST_IDENTITY, bars()));

  it('refuses overlaps, misalignment and offsets outside 0x40..0xff', () => {
    const b = builder();
    b.addPowerManagement(0x40);
    expect(() => b.addMsi(1, 0x44)).toThrow(CapabilityLayoutError);
    expect(() => b.addMsi(1, 0x4a)).toThrow(CapabilityLayoutError);
    expect(() => b.addMsi(1, 0x3c)).toThrow(CapabilityLayoutError);
    expect(() => b.addMsi(1, 0xf8)).toThrow(CapabilityLayoutError);
    expect(() => b.addPowerManagement()).toThrow(CapabilityLayoutError);
  });

  it('refuses MSI-X structures outside a memory BAR or overlapping', () => {
    const layout = { vectors: 4, tableBar: 1, tableOffset: 0, pbaBar: 1, pbaOffset: 0x800 };
    expect(() => builder().addMsix({ ...layout, tableBar: 0 })).toThrow(/I\/O/);
    expect(() => builder().addMsix({ ...layout, tableBar: 3 })).toThrow(/not an implemented BAR/);
    expect(() => builder().addMsix({ ...layout, pbaOffset: 0x20 })).toThrow(/overlap/);
    expect(() => builder().addMsix({ ...layout, tableOffset: 4 })).toThrow(/aligned/);
    expect(() => builder().addMsix({ ...layout, vectors: 300 })).toThrow(/runs past/);
    expect(() => builder().addMsix({ ...layout, vectors: 0 })).toThrow(CapabilityLayoutError);
    expect(() => builder().addMsix(layout)).not.toThrow();
  });

  it('refuses impossible MSI vector counts and PCIe link parameters', () => {
    expect(() => builder().addMsi(3)).toThrow(CapabilityLayoutError);
    expect(() => builder().addMsi(64)).toThrow(CapabilityLayoutError);
    expect(() => builder().addPciExpress({ maxPayloadBytes: 100, maxLinkSpeed: 2, maxLinkWidth: 8 })).toThrow(
      CapabilityLayoutError,
    );
    expect(() => builder().addPciExpress({ maxPayloadBytes: 256, maxLinkSpeed: 2, maxLinkWidth: 3 })).toThrow(
      CapabilityLayoutError,
    );
  });
});

describe('MSI capability registers', () => {
  it('enable and multiple-message-enable are writable; MMC and 64-bit are not', () => {
    const { fn, rd16, wr } = setup();
    const at = fn.caps.msi!.offset;
    expect(rd16(at + R.PCI_MSI_FLAGS)).toBe(R.PCI_MSI_FLAGS_64BIT);
    wr(at + R.PCI_MSI_FLAGS, 0xffff, 2);
    expect(rd16(at + R.PCI_MSI_FLAGS)).toBe(R.PCI_MSI_FLAGS_64BIT | R.PCI_MSI_FLAGS_ENABLE | R.PCI_MSI_FLAGS_QSIZE);
    expect(fn.caps.msi!.enabled()).toBe(true);
    // MME beyond what the function supports is clamped.
    expect(fn.caps.msi!.vectorsEnabled()).toBe(1);
    wr(at + R.PCI_MSI_FLAGS, 0, 2);
    expect(rd16(at + R.PCI_MSI_FLAGS)).toBe(R.PCI_MSI_FLAGS_64BIT);
  });

  it('message address keeps bits 1:0 at 0; upper address and data are storage', () => {
    const { fn, rd32, rd16, wr } = setup();
    const at = fn.caps.msi!.offset;
    wr(at + R.PCI_MSI_ADDRESS_LO, 0xfee0_1003, 4);
    wr(at + R.PCI_MSI_ADDRESS_HI, 0x0000_0001, 4);
    wr(at + R.PCI_MSI_DATA_64, 0x4041, 2);
    expect(rd32(at + R.PCI_MSI_ADDRESS_LO)).toBe(0xfee01000);
    expect(fn.caps.msi!.address()).toBe(0x1_fee0_1000n);
    expect(rd16(at + R.PCI_MSI_DATA_64)).toBe(0x4041);
  });
});

describe('MSI-X capability registers', () => {
  it('enable and function mask are writable; table size and BIR/offsets are not', () => {
    const { fn, rd16, rd32, wr } = setup();
    const at = fn.caps.msix!.offset;
    expect(rd16(at + R.PCI_MSIX_FLAGS)).toBe(MSIX_VECTORS - 1);
    expect(rd32(at + R.PCI_MSIX_TABLE)).toBe(MSIX_BAR);
    expect(rd32(at + R.PCI_MSIX_PBA)).toBe(MSIX_PBA_OFFSET | MSIX_BAR);
    wr(at + R.PCI_MSIX_FLAGS, 0xffff, 2);
    expect(rd16(at + R.PCI_MSIX_FLAGS)).toBe(0xc000 | (MSIX_VECTORS - 1));
    expect(fn.caps.msix!.enabled()).toBe(true);
    expect(fn.caps.msix!.functionMasked()).toBe(true);
    wr(at + R.PCI_MSIX_TABLE, 0xffffffff, 4);
    wr(at + R.PCI_MSIX_PBA, 0, 4);
    expect(rd32(at + R.PCI_MSIX_TABLE)).toBe(MSIX_BAR);
    expect(rd32(at + R.PCI_MSIX_PBA)).toBe(MSIX_PBA_OFFSET | MSIX_BAR);
  });
});

describe('Power Management capability', () => {
  it('D0 and D3hot are accepted; D1/D2 writes are discarded; No_Soft_Reset is set and read-only', () => {
    const { fn, rd16, wr } = setup();
    const at = fn.caps.pm!.offset;
    expect(rd16(at + R.PCI_PM_PMC) & 0x7).toBe(3);
    expect(rd16(at + R.PCI_PM_CTRL)).toBe(R.PCI_PM_CTRL_NO_SOFT_RESET);
    wr(at + R.PCI_PM_CTRL, 3, 2);
    expect(fn.powerState()).toBe(R.PCI_PM_STATE_D3HOT);
    wr(at + R.PCI_PM_CTRL, 1, 2);
    expect(fn.powerState()).toBe(R.PCI_PM_STATE_D3HOT);
    wr(at + R.PCI_PM_CTRL, 0, 2);
    expect(fn.powerState()).toBe(R.PCI_PM_STATE_D0);
    wr(at + R.PCI_PM_CTRL, 2, 2);
    expect(fn.powerState()).toBe(R.PCI_PM_STATE_D0);
    expect(rd16(at + R.PCI_PM_CTRL) & R.PCI_PM_CTRL_NO_SOFT_RESET).toBe(R.PCI_PM_CTRL_NO_SOFT_RESET);
  });
});

describe('PCI Express capability', () => {
  it('is a v2 endpoint with the configured link, trained at maximum', () => {
    const { fn, rd16, rd32 } = setup();
    const at = fn.caps.pcie!.offset;
    expect(rd16(at + R.PCI_EXP_FLAGS)).toBe(0x0002);
    const lnkcap = rd32(at + R.PCI_EXP_LNKCAP);
    expect(lnkcap & R.PCI_EXP_LNKCAP_SLS).toBe(R.PCI_EXP_LNK_SPEED_5_0GT);
    expect((lnkcap & R.PCI_EXP_LNKCAP_MLW) >> R.PCI_EXP_LNKCAP_MLW_SHIFT).toBe(4);
    const lnksta = rd16(at + R.PCI_EXP_LNKSTA);
    expect(lnksta & R.PCI_EXP_LNKSTA_CLS).toBe(R.PCI_EXP_LNK_SPEED_5_0GT);
    expect((lnksta >> R.PCI_EXP_LNKSTA_NLW_SHIFT) & 0x3f).toBe(4);
    expect(rd32(at + R.PCI_EXP_DEVCAP) & R.PCI_EXP_DEVCAP_PAYLOAD_MASK).toBe(1);
    expect(rd32(at + R.PCI_EXP_DEVCAP) & R.PCI_EXP_DEVCAP_FLR).toBe(0);
  });

  it('device control: documented fields writable, FLR/ext-tag/phantom/aux read 0', () => {
    const { fn, rd16, wr } = setup();
    const at = fn.caps.pcie!.offset;
    wr(at + R.PCI_EXP_DEVCTL, 0xffff, 2);
    expect(rd16(at + R.PCI_EXP_DEVCTL)).toBe(0x78ff);
    wr(at + R.PCI_EXP_DEVCTL, 5 << R.PCI_EXP_DEVCTL_READRQ_SHIFT, 2);
    expect(fn.caps.pcie!.maxReadRequestBytes()).toBe(4096);
  });

  it('link status is read-only; device status error bits are W1C', () => {
    const { fn, rd16, wr } = setup();
    const at = fn.caps.pcie!.offset;
    const lnksta = rd16(at + R.PCI_EXP_LNKSTA);
    wr(at + R.PCI_EXP_LNKSTA, 0, 2);
    expect(rd16(at + R.PCI_EXP_LNKSTA)).toBe(lnksta);
    fn.caps.pcie!.raiseDeviceStatus(0x9);
    expect(rd16(at + R.PCI_EXP_DEVSTA)).toBe(0x9);
    wr(at + R.PCI_EXP_DEVSTA, 0x1, 2);
    expect(rd16(at + R.PCI_EXP_DEVSTA)).toBe(0x8);
  });
});
