/**
 * The ISP2432 model (serve --model isp2432) as qla2xxx's 24xx paths read it: PCI config space
 * (qla2xxx_pci_tbl, qla2x00_set_isp_flags, qla2x00_request_irqs' revision check), the flash with
 * the 24xx default regions (qla2xxx_find_flt_start / qla2xxx_get_flt_info / qla24xx_load_risc_flash),
 * VPD and NVRAM behind the NVRAM window (qla24xx_read_nvram_data, qla24xx_nvram_config), and
 * the link speed its firmware reports. The ISP2532 default is checked to be unchanged alongside.
 */
import { describe, expect, it } from 'vitest';
import {
  buildFlashContents,
  buildFlashImage,
  FLASH_LAYOUT,
  FLASH_LAYOUT_2432,
  FLASH_LAYOUT_2532,
  FLASH_SIZE_2432,
  FLASH_WINDOW,
  FlashStore,
  FW_SEGMENT,
  HOST_OWNED_FLASH,
} from '../../../src/isp/flash.js';
import { ISP2432_MODEL, ISP2532_MODEL, ISP_MODEL_NAMES, ispModel, maxSpeedGbps } from '../../../src/isp/model.js';
import { NVRAM, nvramDwordSum } from '../../../src/isp/nvram.js';
import {
  bindIsp2532Registers,
  createIsp2532Function,
  ISP2432_PCI,
  ISP2532_CAP_MSIX,
  ISP2532_CAP_PCIE,
  ISP2532_MSIX_TABLE_OFFSET,
} from '../../../src/isp/pci-identity.js';
import { REG } from '../../../src/isp/registers.js';
import { VFIO_PCI_CONFIG_REGION_INDEX, VFIO_PCI_MSIX_IRQ_INDEX } from '../../../src/device/linux-vfio.js';
import { walkCapabilities } from '../../../src/pci/capabilities.js';
import * as R from '../../../src/pci/regs.js';
import { definitionFromJson, definitionToJson } from '../../../src/vport/definition.js';
import { serveArguments } from '../../../src/vport/runtime.js';
import { RecordingBar, u16, u32 } from '../pci/helpers.js';
import { Rig, WWNN, WWPN } from './helpers.js';

const NV = {
  wwpn: WWPN,
  wwnn: WWNN,
  model: ISP2432_MODEL.board,
  description: ISP2432_MODEL.description,
  serialNumber: 'SN1',
  subsystemVendorId: 0x1077,
  subsystemDeviceId: 0x0138,
};

/** The driver's 24xx defaults when the flash has no FLT (qla_fw.h FA_*_24 / FA_RISC_CODE_ADDR, dwords). */
const FA_FLASH_LAYOUT_ADDR_24 = 0x11400;
const FA_FLASH_DESCR_ADDR_24 = 0x11000;
const FA_RISC_CODE_ADDR = 0x20000;
const FA_NVRAM_VPD0_ADDR = 0x00;
const FA_NVRAM_FUNC0_ADDR = 0x80;
/** FA_NVRAM_VPD_SIZE dwords: what qla24xx_nvram_config reads as VPD. */
const FA_NVRAM_VPD_SIZE = 0x200;

function config(profile = ISP2432_PCI) {
  const fn = createIsp2532Function({ profile });
  bindIsp2532Registers(fn, new RecordingBar(0x4000));
  fn.realize();
  return { fn, cfg: fn.regionRead(VFIO_PCI_CONFIG_REGION_INDEX, 0, 4096) };
}

describe('ISP2432 model descriptor', () => {
  it('is chosen by name; isp2532 stays the default-first choice', () => {
    expect(ISP_MODEL_NAMES).toEqual(['isp2532', 'isp2432']);
    expect(ispModel('isp2432')).toBe(ISP2432_MODEL);
    expect(ispModel('isp2532')).toBe(ISP2532_MODEL);
    expect(() => ispModel('isp2312')).toThrow("invalid model 'isp2312': expected one of isp2532, isp2432");
    expect(ISP2432_MODEL.firmwareFile).toBe('ql2400_fw.bin');
    expect(ISP2532_MODEL.firmwareFile).toBe('ql2500_fw.bin');
    expect(maxSpeedGbps(ISP2432_MODEL)).toBe(4);
    expect(maxSpeedGbps(ISP2532_MODEL)).toBe(8);
  });
});

describe('ISP2432 PCI config space', () => {
  it('is a QLE2462: 1077:2432 rev 3, subsystem 1077:0138, FC class, pin A (port_no = !(pin & 1) = 0)', () => {
    const { cfg } = config();
    expect(u16(cfg, R.PCI_VENDOR_ID)).toBe(0x1077);
    expect(u16(cfg, R.PCI_DEVICE_ID)).toBe(0x2432);
    // qla2x00_request_irqs: MSI-X on an ISP2432 needs revision >= QLA_MSIX_CHIP_REV_24XX (3).
    expect(cfg[R.PCI_REVISION_ID]).toBe(0x03);
    expect(u32(cfg, R.PCI_REVISION_ID) >>> 8).toBe(0x0c0400);
    expect(u16(cfg, R.PCI_SUBSYSTEM_VENDOR_ID)).toBe(0x1077);
    expect(u16(cfg, R.PCI_SUBSYSTEM_ID)).toBe(0x0138);
    expect(cfg[R.PCI_INTERRUPT_PIN]).toBe(1);
  });

  it('same BARs as the 2532: BAR0 256 B I/O, BAR1 64-bit 16 KiB memory (the only BAR the "Mem only" probe maps)', () => {
    const { fn } = config();
    expect(fn.regionInfo(0).size).toBe(256);
    expect(fn.regionInfo(1).size).toBe(0x4000);
    expect(fn.regionInfo(3).size).toBe(0);
    const bar1 = u32(fn.regionRead(VFIO_PCI_CONFIG_REGION_INDEX, R.PCI_BASE_ADDRESS_0 + 4, 4));
    expect(bar1 & 0x7).toBe(0x4); // memory, 64-bit
  });

  it('PCIe Gen1 x4 link and an MSI-X table of QLA_BASE_VECTORS (2) entries in BAR1', () => {
    const { fn, cfg } = config();
    const lnkcap = u32(cfg, ISP2532_CAP_PCIE + R.PCI_EXP_LNKCAP);
    expect(lnkcap & R.PCI_EXP_LNKCAP_SLS).toBe(R.PCI_EXP_LNK_SPEED_2_5GT);
    expect((lnkcap & R.PCI_EXP_LNKCAP_MLW) >> R.PCI_EXP_LNKCAP_MLW_SHIFT).toBe(4);
    expect(walkCapabilities((o) => cfg[o]!).found.map((c) => c.id)).toEqual([
      R.PCI_CAP_ID_PM,
      R.PCI_CAP_ID_EXP,
      R.PCI_CAP_ID_MSI,
      R.PCI_CAP_ID_MSIX,
    ]);
    expect(u16(cfg, ISP2532_CAP_MSIX + R.PCI_MSIX_FLAGS) & R.PCI_MSIX_FLAGS_QSIZE).toBe(1);
    expect(u32(cfg, ISP2532_CAP_MSIX + R.PCI_MSIX_TABLE)).toBe(ISP2532_MSIX_TABLE_OFFSET | 1);
    expect(fn.irqInfo(VFIO_PCI_MSIX_IRQ_INDEX).count).toBe(2);
  });

  it('the 2532 profile is unchanged by the option (the default)', () => {
    const def = createIsp2532Function();
    bindIsp2532Registers(def, new RecordingBar(0x4000));
    def.realize();
    const cfg = def.regionRead(VFIO_PCI_CONFIG_REGION_INDEX, 0, 64);
    expect(u16(cfg, R.PCI_DEVICE_ID)).toBe(0x2532);
    expect(cfg[R.PCI_REVISION_ID]).toBe(0x02);
    expect(def.irqInfo(VFIO_PCI_MSIX_IRQ_INDEX).count).toBe(32);
  });
});

describe('ISP2432 flash and NVRAM window as the 24xx driver reads them', () => {
  const contents = buildFlashContents(NV, FLASH_LAYOUT_2432);
  const traces: [string, Record<string, unknown>][] = [];
  const store = () =>
    new FlashStore(contents.image, (e, d) => traces.push([e, d]), {
      hostOwned: contents.hostOwned,
      nvramWindow: contents.nvramWindow!,
      now: () => 0,
    });
  const flashDword = (f: FlashStore, dw: number) => f.readWindow(FLASH_WINDOW.DATA + dw);
  const nvramDword = (f: FlashStore, dw: number) => f.readWindow(FLASH_WINDOW.NVRAM_DATA + dw);
  const nvramBytes = (f: FlashStore, dw: number, bytes: number) => {
    const out = new Uint8Array(bytes);
    const dv = new DataView(out.buffer);
    for (let i = 0; i < bytes / 4; i++) dv.setUint32(i * 4, nvramDword(f, dw + i), true);
    return out;
  };

  it('1 MiB of flash (optrom size 24xx); no FLT and no FDT, so the driver uses its 24xx defaults', () => {
    expect(contents.image.length).toBe(FLASH_SIZE_2432);
    const f = store();
    // qla2xxx_find_flt_start: no ROM signature at 0 -> FA_FLASH_LAYOUT_ADDR_24; qla2xxx_get_flt_info
    // and qla2xxx_get_fdt_info then see 0xFFFF and fall back to defaults.
    expect(flashDword(f, 0) & 0xffff).toBe(0xffff);
    expect(flashDword(f, FA_FLASH_LAYOUT_ADDR_24) & 0xffff).toBe(0xffff);
    expect(flashDword(f, FA_FLASH_DESCR_ADDR_24) & 0xffff).toBe(0xffff);
    // Beyond the 1 MiB part: erased, logged.
    expect(flashDword(f, FLASH_SIZE_2432 / 4)).toBe(0xffffffff);
  });

  it('a two-segment firmware image at the 24xx default firmware region (qla24xx_load_risc_flash)', () => {
    const f = store();
    const be = (dw: number) => {
      const v = flashDword(f, dw);
      return (((v & 0xff) << 24) | ((v & 0xff00) << 8) | ((v >>> 8) & 0xff00) | (v >>> 24)) >>> 0;
    };
    expect(FA_RISC_CODE_ADDR * 4).toBe(FLASH_LAYOUT_2432.firmware);
    const seg1 = FA_RISC_CODE_ADDR;
    expect(be(seg1 + FW_SEGMENT.RISC_ADDRESS)).toBe(0x00100000); // RISC_START_ADDRESS_2400
    const len = be(seg1 + FW_SEGMENT.LENGTH_DWORDS);
    expect(len).toBeGreaterThan(FW_SEGMENT.HEADER_DWORDS);
    // qla24xx_risc_firmware_invalid: version dwords neither all 0 nor all ~0.
    const version = [0, 1, 2, 3].map((i) => be(seg1 + FW_SEGMENT.VERSION + i));
    expect(version.some((v) => v !== 0) && version.some((v) => v !== 0xffffffff)).toBe(true);
    expect(be(seg1 + len + FW_SEGMENT.RISC_ADDRESS)).not.toBe(0xffffffff);
  });

  it('VPD at NVRAM-window dword 0 and a valid nvram_24xx at dword 0x80 with the configured names', () => {
    const f = store();
    const vpd = nvramBytes(f, FA_NVRAM_VPD0_ADDR, FA_NVRAM_VPD_SIZE * 4);
    expect(vpd[0]).toBe(0x82);
    expect(new TextDecoder().decode(vpd.subarray(3, 3 + vpd[1]!))).toBe(ISP2432_MODEL.description);
    expect(new TextDecoder().decode(vpd)).toContain('QLE2462');
    const nv = nvramBytes(f, FA_NVRAM_FUNC0_ADDR, 512);
    expect(new TextDecoder().decode(nv.subarray(0, 4))).toBe('ISP ');
    expect(nvramDwordSum(nv)).toBe(0);
    expect(Buffer.from(nv.subarray(NVRAM.PORT_NAME, NVRAM.PORT_NAME + 8)).toString('hex')).toBe('5001438001234567');
    expect(Buffer.from(nv.subarray(NVRAM.NODE_NAME, NVRAM.NODE_NAME + 8)).toString('hex')).toBe('5001438001234566');
    expect(new TextDecoder().decode(nv.subarray(NVRAM.MODEL_NAME, NVRAM.MODEL_NAME + 16))).toBe('QLE2462         ');
    const dv = new DataView(nv.buffer);
    expect(dv.getUint16(NVRAM.SUBSYSTEM_VENDOR_ID, true)).toBe(0x1077);
    expect(dv.getUint16(NVRAM.SUBSYSTEM_DEVICE_ID, true)).toBe(0x0138);
    // Nothing of it in flash: the 25xx VPD/NVRAM addresses are past the end of this part.
    expect(FLASH_LAYOUT.VPD_NVRAM_SECTOR).toBeGreaterThanOrEqual(FLASH_SIZE_2432);
    expect(contents.hostOwned).toEqual([]);
  });

  it('the NVRAM window is host-owned: guest programming is dropped (warned once), write-protect toggles are accepted', () => {
    traces.length = 0;
    const f = store();
    const before = nvramDword(f, FA_NVRAM_FUNC0_ADDR + NVRAM.PORT_NAME / 4);
    // qla24xx_write_nvram_data: unprotect (conf 0x101 = 0), program dwords, protect (0x8c).
    f.writeWindow(FLASH_WINDOW.NVRAM_CONF + 0x101, 0);
    for (let i = 0; i < 4; i++) f.writeWindow(FLASH_WINDOW.NVRAM_DATA + FA_NVRAM_FUNC0_ADDR + 5 + i, 0);
    f.writeWindow(FLASH_WINDOW.NVRAM_CONF + 0x101, 0x8c);
    expect(nvramDword(f, FA_NVRAM_FUNC0_ADDR + NVRAM.PORT_NAME / 4)).toBe(before);
    const warnings = traces.filter(([e]) => e.includes('_err_'));
    expect(warnings).toEqual([
      [
        'flash_err_host_owned',
        { guestError: true, op: 'nvram', byteAddress: (FA_NVRAM_FUNC0_ADDR + 5) * 4, suppressed: 0 },
      ],
    ]);
    // Past the window: erased, and logged as an error.
    expect(nvramDword(f, FA_NVRAM_VPD_SIZE)).toBe(0xffffffff);
    expect(traces.some(([e]) => e === 'flash_err_nvram_read_out_of_range')).toBe(true);
  });

  it('through the register file of an ISP built as ISP2432 (flash_addr / flash_data)', () => {
    const rig = new Rig([], undefined, undefined, undefined, undefined, undefined, undefined, ISP2432_MODEL);
    const read = (addr: number) => {
      rig.w32(REG.FLASH_ADDR, addr);
      expect(rig.r32(REG.FLASH_ADDR) & 0x80000000).not.toBe(0);
      return rig.r32(REG.FLASH_DATA);
    };
    expect(read(FLASH_WINDOW.NVRAM_DATA + FA_NVRAM_FUNC0_ADDR)).toBe(0x20505349); // "ISP "
    expect(read(FLASH_WINDOW.DATA + (FLASH_LAYOUT_2432.firmware + 8) / 4)).toBe(0x00001000); // BE 0x00100000
    expect(rig.isp.flash.sizeBytes).toBe(FLASH_SIZE_2432);
  });

  it('the 2532 layout is unchanged: 2 MiB, VPD/NVRAM in the host-owned flash sector, NVRAM window erased', () => {
    const c = buildFlashContents({ ...NV, model: 'QLE2562', subsystemDeviceId: 0x015d }, FLASH_LAYOUT_2532);
    expect(c.nvramWindow).toBeNull();
    expect(c.hostOwned).toEqual(HOST_OWNED_FLASH);
    // Byte-compared (toEqual on 2 MiB is slow).
    expect(Buffer.compare(c.image, buildFlashImage({ ...NV, model: 'QLE2562', subsystemDeviceId: 0x015d }))).toBe(0);
    const rig = new Rig();
    rig.w32(REG.FLASH_ADDR, FLASH_WINDOW.NVRAM_DATA + FA_NVRAM_FUNC0_ADDR);
    expect(rig.r32(REG.FLASH_DATA)).toBe(0xffffffff);
  });
});

describe('ISP2432 link speed', () => {
  it('an 8 Gb fabric port comes up at 4 Gb (AEN 0x8011 mb1 = 3, MBC 0x5D mb1 = 3); the 2532 at 8 Gb', async () => {
    const r2432 = new Rig([], undefined, undefined, undefined, undefined, undefined, undefined, ISP2432_MODEL);
    expect(r2432.fabric.loginResult.speedGbps).toBe(8);
    await r2432.bringUp();
    expect(r2432.aens.find((a) => a[0] === 0x8011)?.[1]).toBe(3);
    expect((await r2432.mbox([0x5d, 0])).mb[1]).toBe(3);
    const r2532 = new Rig();
    await r2532.bringUp();
    expect(r2532.aens.find((a) => a[0] === 0x8011)?.[1]).toBe(4);
    expect((await r2532.mbox([0x5d, 0])).mb[1]).toBe(4);
  });

  it('a slower fabric port sets the speed (2 Gb -> code 1)', async () => {
    const rig = new Rig([], undefined, undefined, undefined, undefined, undefined, undefined, ISP2432_MODEL);
    rig.fabric.loginResult = { ...rig.fabric.loginResult, speedGbps: 2 };
    await rig.bringUp();
    expect(rig.aens.find((a) => a[0] === 0x8011)?.[1]).toBe(1);
  });
});

describe('vport definitions carry the model to serve', () => {
  const FILE = {
    version: 1,
    uuid: '7d3c5e0a-2f4b-4c61-9a8e-0b1c2d3e4f50',
    wwpn: '50:01:43:80:01:23:45:67',
    wwnn: '50:01:43:80:01:23:45:66',
    backend: { type: 'none' },
    socket: '/run/x/v.sock',
    autostart: false,
  };
  it('model round-trips and becomes --model; absent stays absent (serve default)', () => {
    const def = definitionFromJson({ ...FILE, model: 'isp2432' });
    expect(def.model).toBe('isp2432');
    expect(definitionToJson(def)).toMatchObject({ model: 'isp2432' });
    expect(serveArguments(def)).toEqual(expect.arrayContaining(['--model', 'isp2432']));
    const plain = definitionFromJson(FILE);
    expect(plain.model).toBeUndefined();
    expect(definitionToJson(plain)).not.toHaveProperty('model');
    expect(serveArguments(plain)).not.toContain('--model');
    expect(() => definitionFromJson({ ...FILE, model: 'isp2312' })).toThrow(/model/);
  });
});
