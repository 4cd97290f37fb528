import { describe, expect, it } from 'vitest';
import {
  bindIsp2532Registers,
  createIsp2532Function,
  ISP2532_CAP_MSI,
  ISP2532_CAP_MSIX,
  ISP2532_CAP_PCIE,
  ISP2532_CAP_PM,
  ISP2532_MSIX_PBA_OFFSET,
  ISP2532_MSIX_TABLE_OFFSET,
  Isp2532ConfigError,
  ispHostOf,
  unimplementedRegisterBlock,
} from '../../../src/isp/pci-identity.js';
import { walkCapabilities } from '../../../src/pci/capabilities.js';
import * as R from '../../../src/pci/regs.js';

import { FakeIrq, fakeContext, le, RecordingBar, recordingLogger, u16, u32 } from './helpers.js';
import {
  VFIO_PCI_CONFIG_REGION_INDEX,
  VFIO_PCI_INTX_IRQ_INDEX,
  VFIO_PCI_MSIX_IRQ_INDEX,
  VFIO_PCI_MSI_IRQ_INDEX,
  VFIO_PCI_ROM_REGION_INDEX,
} from '../../../src/device/linux-vfio.js';

const CFG = VFIO_PCI_CONFIG_REGION_INDEX;

function isp(opts: Parameters<typeof createIsp2532Function>[0] = {}) {
  const bar1 = new RecordingBar(0x4000);
  const fn = createIsp2532Function(opts);
  bindIsp2532Registers(fn, bar1);
  fn.realize();
  const cfg = fn.regionRead(CFG, 0, 4096);
  return { fn, bar1, cfg };
}

describe('ISP2532 PCI identity', () => {
  it('is a QLE2562: 1077:2532 rev 2, subsystem 1077:015D, FC class, pin A', () => {
    const { cfg } = isp();
    expect(u16(cfg, R.PCI_VENDOR_ID)).toBe(0x1077);
    expect(u16(cfg, R.PCI_DEVICE_ID)).toBe(0x2532);
    expect(cfg[R.PCI_REVISION_ID]).toBe(0x02);
    expect(u32(cfg, R.PCI_REVISION_ID) >>> 8).toBe(0x0c0400);
    expect(u16(cfg, R.PCI_SUBSYSTEM_VENDOR_ID)).toBe(0x1077);
    expect(u16(cfg, R.PCI_SUBSYSTEM_ID)).toBe(0x015d);
    // qla2x00_set_isp_flags: port_no = pin - 1 on 25xx; must be 0.
    expect(cfg[R.PCI_INTERRUPT_PIN]).toBe(1);
  });

  it('BAR0 is 256 bytes of I/O, BAR1 a 64-bit 16 KiB memory BAR, nothing else', () => {
    const { fn } = isp();
    const bar = (i: number) => R.PCI_BASE_ADDRESS_0 + 4 * i;
    const probe = (i: number) => {
      fn.regionWrite(CFG, bar(i), le(0xffffffff, 4));
      return u32(fn.regionRead(CFG, bar(i), 4));
    };
    expect(probe(0)).toBe(0xffffff01);
    expect(probe(1)).toBe(0xffffc004); // 16 KiB, memory, 64-bit, non-prefetchable
    expect(probe(2)).toBe(0xffffffff); // upper dword of BAR1
    expect(probe(3)).toBe(0);
    expect(probe(4)).toBe(0);
    expect(probe(5)).toBe(0);
    expect(u32(fn.regionRead(CFG, R.PCI_ROM_ADDRESS, 4))).toBe(0);
    expect(fn.regionInfo(0).size).toBe(256);
    expect(fn.regionInfo(1).size).toBe(0x4000);
    expect(fn.regionInfo(3).size).toBe(0);
    expect(fn.regionInfo(VFIO_PCI_ROM_REGION_INDEX).size).toBe(0);
  });

  it('capabilities sit where a QLE2562 has them; MSI-X at 0xA0 as QLA_PCI_MSIX_CONTROL assumes', () => {
    const { cfg } = isp();
    const walk = walkCapabilities((o) => cfg[o]!);
    expect(walk.error).toBeNull();
    expect(walk.found).toEqual([
      { id: R.PCI_CAP_ID_PM, offset: ISP2532_CAP_PM },
      { id: R.PCI_CAP_ID_EXP, offset: ISP2532_CAP_PCIE },
      { id: R.PCI_CAP_ID_MSI, offset: ISP2532_CAP_MSI },
      { id: R.PCI_CAP_ID_MSIX, offset: ISP2532_CAP_MSIX },
    ]);
    expect(u16(cfg, 0xa2) & R.PCI_MSIX_FLAGS_QSIZE).toBe(31);
    expect(u32(cfg, ISP2532_CAP_MSIX + R.PCI_MSIX_TABLE)).toBe(ISP2532_MSIX_TABLE_OFFSET | 1);
    expect(u32(cfg, ISP2532_CAP_MSIX + R.PCI_MSIX_PBA)).toBe(ISP2532_MSIX_PBA_OFFSET | 1);
    expect(u16(cfg, ISP2532_CAP_MSI + R.PCI_MSI_FLAGS)).toBe(R.PCI_MSI_FLAGS_64BIT); // 1 vector
    // LNKCAP as qla24xx_pci_info_str decodes it: 5.0 GT/s x8
    const lnkcap = u32(cfg, ISP2532_CAP_PCIE + R.PCI_EXP_LNKCAP);
    expect(lnkcap & R.PCI_EXP_LNKCAP_SLS).toBe(2);
    expect((lnkcap & R.PCI_EXP_LNKCAP_MLW) >> R.PCI_EXP_LNKCAP_MLW_SHIFT).toBe(8);
  });

  it('the driver needs at least QLA_BASE_VECTORS MSI-X entries; the table must fit before the PBA', () => {
    expect(() => isp({ msixVectors: 1 })).toThrow(Isp2532ConfigError);
    expect(() => isp({ msixVectors: 257 })).toThrow(Isp2532ConfigError);
    expect(isp({ msixVectors: 2 }).fn.irqInfo(VFIO_PCI_MSIX_IRQ_INDEX).count).toBe(2);
    expect(isp().fn.irqInfo(VFIO_PCI_MSIX_IRQ_INDEX).count).toBe(32);
  });

  it('interrupts option: msi drops MSI-X, intx drops both', () => {
    const msi = isp({ interrupts: 'msi' });
    expect(walkCapabilities((o) => msi.cfg[o]!).found.map((c) => c.id)).toEqual([
      R.PCI_CAP_ID_PM,
      R.PCI_CAP_ID_EXP,
      R.PCI_CAP_ID_MSI,
    ]);
    expect(msi.fn.irqInfo(VFIO_PCI_MSIX_IRQ_INDEX).count).toBe(0);
    const intx = isp({ interrupts: 'intx' });
    expect(walkCapabilities((o) => intx.cfg[o]!).found.map((c) => c.id)).toEqual([R.PCI_CAP_ID_PM, R.PCI_CAP_ID_EXP]);
    expect(intx.fn.irqInfo(VFIO_PCI_MSI_IRQ_INDEX).count).toBe(0);
    expect(intx.fn.irqInfo(VFIO_PCI_INTX_IRQ_INDEX).count).toBe(1);
  });

  it('BAR1 goes to the register model except the MSI-X structures; BAR0 aliases the register block', () => {
    const { fn, bar1 } = isp();
    fn.regionWrite(1, 0x0c, le(0x8, 4)); // ictrl
    fn.regionWrite(1, ISP2532_MSIX_TABLE_OFFSET + 8, le(0x1234, 4));
    expect(u32(fn.regionRead(0, 0x0c, 4))).toBe(0x8);
    fn.regionWrite(0, 0x48, le(0x10000000, 4));
    expect(bar1.calls.map((c) => [c.op, c.offset])).toEqual([
      ['write', 0x0c],
      ['read', 0x0c],
      ['write', 0x48],
    ]);
    expect(fn.msixTable!.entry(0).data).toBe(0x1234);
  });

  it('the placeholder register block reads 0 and traces every access', () => {
    const rec = recordingLogger();
    const block = unimplementedRegisterBlock(rec.log);
    const fn = createIsp2532Function();
    bindIsp2532Registers(fn, block);
    fn.realize();
    expect(u32(fn.regionRead(1, 0x44, 4))).toBe(0);
    fn.regionWrite(1, 0x48, le(0x10000000, 4));
    expect([...fn.regionRead(1, 8, 8)]).toEqual([0, 0, 0, 0, 0, 0, 0, 0]);
    expect(rec.events()).toEqual([
      'ub_isp_register_read_unimplemented',
      'ub_isp_register_write_unimplemented',
      'ub_isp_register_read_unimplemented',
    ]);
  });

  it('ispHostOf: INTx line without message conversion, messages on the enabled mechanism', () => {
    const { fn } = isp();
    const irq = new FakeIrq();
    fn.attach(fakeContext(irq));
    const host = ispHostOf(fn);
    expect(host.interruptMode()).toBe('intx');
    irq.bind(VFIO_PCI_INTX_IRQ_INDEX, 1);
    host.setIntx(true);
    expect(irq.take()).toEqual([{ index: VFIO_PCI_INTX_IRQ_INDEX, vector: 0 }]);
    host.setIntx(false);
    fn.regionWrite(CFG, R.PCI_COMMAND, le(R.PCI_COMMAND_MASTER | R.PCI_COMMAND_MEMORY, 2));
    fn.regionWrite(CFG, ISP2532_CAP_MSIX + R.PCI_MSIX_FLAGS, le(R.PCI_MSIX_FLAGS_ENABLE, 2));
    irq.bind(VFIO_PCI_MSIX_IRQ_INDEX, 2);
    expect(host.interruptMode()).toBe('msix');
    host.setIntx(true);
    expect(irq.fired).toEqual([]);
    host.sendMessage(0);
    expect(irq.take()).toEqual([{ index: VFIO_PCI_MSIX_IRQ_INDEX, vector: 0 }]);
    expect(host.memory()).not.toBeNull();
  });
});
