/**
 * Flash of an ISP2532 (2 MiB, QLE2562 layout) and the flash/NVRAM access windows of the
 * flash_addr/flash_data registers, as qla2xxx 10.02.x qla_sup.c reads them
 * (qla24xx_read_flash_dword, qla25xx_read_optrom_data, qla2xxx_get_flash_info).
 *
 * The image is 0xFF (erased) except:
 *   byte 0x080000  firmware region (FLT default for 25xx): a generated two-segment image whose
 *                  headers carry the version; qla24xx_load_risc_flash() loads it by mailbox when
 *                  the guest lacks ql2500_fw.bin. No vendor firmware is included or executed.
 *   byte 0x120000  VPD of PCI function 0 (512 bytes)
 *   byte 0x120200  NVRAM of PCI function 0 (struct nvram_24xx, 512 bytes)
 * Absent ROM images, FLT and FDT make the driver use its 25xx defaults (qla_sup.c
 * qla2xxx_find_flt_start / qla2xxx_get_flt_info / qla2xxx_get_fdt_info fall back to them).
 *
 * The 64 KiB sector holding VPD and NVRAM (the driver's flt_region_vpd_nvram) is host-owned: it is
 * built from the host configuration (the vport's names) and the guest cannot erase or program it,
 * as with a flash part whose block-protect bits cover that sector. qla2xxx's NVRAM update
 * (qla2x00_sysfs_write_nvram → qla25xx_write_nvram_data) then leaves the names intact, so every
 * later boot reads the configured names again (docs/security.md). The rest of the flash
 * stays writable.
 *
 * ISP2432 (FLASH_LAYOUT_2432): 1 MiB of flash (the driver's optrom size for 24xx) with the same
 * generated firmware image at byte 0x080000 — the 24xx default firmware region too, which
 * qla24xx_load_risc_flash() loads when the guest lacks ql2400_fw.bin — but no VPD or NVRAM in
 * flash: 24xx parts keep them behind the separate NVRAM window of flash_addr (0x7FFE0000 + dword,
 * qla24xx_read_nvram_data): VPD of function 0 at dword 0 (the driver reads 0x800 bytes from there),
 * NVRAM at dword 0x80. That whole window is host-owned, for the reason above; the driver's NVRAM
 * update on 24xx (qla24xx_write_nvram_data) toggles the window's write protect through the NVRAM
 * config window (0x7FFF0000 + 0x101), which is accepted and changes nothing.
 * The FLT/FDT defaults the driver falls back to on 24xx (qla2xxx_find_flt_start: FLT at byte
 * 0x45000; qla2xxx_get_flt_info: firmware at 0x80000, FDT at 0x44000; qla2xxx_get_fdt_info: the
 * flash part's ids) read as erased flash / the flash id, exactly as on the 2532.
 */
import { buildNvram, buildVpd, NVRAM_SIZE, type NvramOptions } from './nvram.js';
import { WarnLimiter } from '../util/warn-limit.js';
import type { Trace } from '../device/trace.js';

export const FLASH_SIZE_2532 = 0x200000;
/** OPTROM_SIZE_24XX. */
export const FLASH_SIZE_2432 = 0x100000;
export const FLASH_LAYOUT = {
  FIRMWARE: 0x080000,
  /** Start of the VPD/NVRAM sector (25xx default flt_region_vpd_nvram, byte address). */
  VPD_NVRAM_SECTOR: 0x120000,
  VPD_FUNC0: 0x120000,
  NVRAM_FUNC0: 0x120200,
} as const;

/**
 * Where one ISP model keeps what the driver reads at start: the firmware image in flash, and VPD
 * and NVRAM of PCI function 0 either in flash (25xx) or behind the NVRAM window (24xx).
 */
export interface FlashLayout {
  sizeBytes: number;
  /** Byte offset of the firmware image (the family's default flt_region_fw). */
  firmware: number;
  vpdNvram:
    | {
        where: 'flash';
        /** Byte offsets in flash; sector = the host-owned 64 KiB sector holding both. */
        vpd: number;
        nvram: number;
        sector: number;
      }
    | {
        where: 'nvram-window';
        /** Byte offsets within the NVRAM window (dword × 4). */
        vpd: number;
        nvram: number;
        /** Bytes behind the window: what the driver reads (VPD is read as 0x800 bytes from 0). */
        windowBytes: number;
      };
}

export const FLASH_LAYOUT_2532: Readonly<FlashLayout> = Object.freeze({
  sizeBytes: FLASH_SIZE_2532,
  firmware: FLASH_LAYOUT.FIRMWARE,
  vpdNvram: Object.freeze({
    where: 'flash',
    vpd: FLASH_LAYOUT.VPD_FUNC0,
    nvram: FLASH_LAYOUT.NVRAM_FUNC0,
    sector: FLASH_LAYOUT.VPD_NVRAM_SECTOR,
  }),
});

/** 24xx: FA_NVRAM_VPD0_ADDR (dword 0) and FA_NVRAM_FUNC0_ADDR (dword 0x80) of the NVRAM window. */
export const FLASH_LAYOUT_2432: Readonly<FlashLayout> = Object.freeze({
  sizeBytes: FLASH_SIZE_2432,
  firmware: FLASH_LAYOUT.FIRMWARE,
  vpdNvram: Object.freeze({ where: 'nvram-window', vpd: 0x000 * 4, nvram: 0x080 * 4, windowBytes: 0x200 * 4 }),
});

/** Register-visible address windows (high bits of flash_addr, qla_def.h flash_*_off). */
export const FLASH_WINDOW = {
  DATA: 0x7ff00000,
  CONF: 0x7ffd0000,
  NVRAM_DATA: 0x7ffe0000,
  NVRAM_CONF: 0x7fff0000,
  MASK_64K: 0xffff0000,
} as const;

/** Flash config addresses (dword index within FLASH_WINDOW.CONF). */
export const FLASH_CONF = {
  /** Manufacturer id (LSB) / device id (MSB). */
  MFR_DEVICE_ID: 0x03ab,
  /** JEDEC RDID. */
  JEDEC_ID: 0x009f,
  /** Write-protect control (data 0 = unprotect). */
  WRITE_PROTECT: 0x0101,
  /** 0x300 | opcode: erase / sector protect commands. */
  COMMAND_BASE: 0x0300,
} as const;

/** A 16-Mbit serial flash: ST/Micron M25P16-like (man 0x20, dev 0x15). */
const FLASH_MFR_ID = 0x20;
const FLASH_DEVICE_ID = 0x15;
const FLASH_JEDEC = 0x00152020;
/** Opcode of the 64 KiB sector erase used by the driver's flash update path (0xD8). */
const FLASH_CMD_SECTOR_ERASE = 0xd8;
export const FLASH_SECTOR_SIZE = 0x10000;

/** A byte range [start, end) of the flash. */
export interface FlashRange {
  start: number;
  end: number;
}

/** Sectors only the host writes: VPD and NVRAM, i.e. the vport's names (see the header). */
export const HOST_OWNED_FLASH: readonly FlashRange[] = [
  { start: FLASH_LAYOUT.VPD_NVRAM_SECTOR, end: FLASH_LAYOUT.VPD_NVRAM_SECTOR + FLASH_SECTOR_SIZE },
];
/** At most one "write to a host-owned sector dropped" warning per period (an NVRAM update is ~16k dwords). */
const HOST_OWNED_WARN_PERIOD_MS = 60_000;

/** Firmware image header (big-endian dwords, qla24xx_load_risc_flash / FA_RISC_CODE_SEGMENTS). */
export const FW_SEGMENT = {
  RISC_ADDRESS: 2,
  LENGTH_DWORDS: 3,
  VERSION: 4, // dwords 4..7: major, minor, subminor, attributes
  RISC_ATTRIBUTES: 9,
  HEADER_DWORDS: 10,
} as const;

export interface FirmwareVersion {
  major: number;
  minor: number;
  subminor: number;
  attributes: number;
}

/** The version the generated image and MBC 0x08 both report. */
export const EMULATED_FW_VERSION: FirmwareVersion = { major: 8, minor: 7, subminor: 3, attributes: 0 };

/** RISC load addresses of the two generated segments (RISC_START_ADDRESS_2400 and a second bank). */
const FW_SEGMENTS = [
  { riscAddress: 0x00100000, lengthDwords: 16 },
  { riscAddress: 0x00108000, lengthDwords: 16 },
] as const;

/** Builds the generated two-segment firmware image (not executable; only its headers matter). */
export function buildFirmwareImage(version: FirmwareVersion = EMULATED_FW_VERSION): Uint8Array {
  const total = FW_SEGMENTS.reduce((n, s) => n + s.lengthDwords, 0);
  const img = new Uint8Array(total * 4);
  const dv = new DataView(img.buffer);
  let dw = 0;
  for (const seg of FW_SEGMENTS) {
    dv.setUint32((dw + FW_SEGMENT.RISC_ADDRESS) * 4, seg.riscAddress, false);
    dv.setUint32((dw + FW_SEGMENT.LENGTH_DWORDS) * 4, seg.lengthDwords, false);
    dv.setUint32((dw + FW_SEGMENT.VERSION) * 4, version.major, false);
    dv.setUint32((dw + FW_SEGMENT.VERSION + 1) * 4, version.minor, false);
    dv.setUint32((dw + FW_SEGMENT.VERSION + 2) * 4, version.subminor, false);
    dv.setUint32((dw + FW_SEGMENT.VERSION + 3) * 4, version.attributes, false);
    dw += seg.lengthDwords;
  }
  return img;
}

export interface FlashOptions extends NvramOptions {
  /** VPD identifier string (model description). */
  description: string;
  serialNumber: string;
}

/** The ISP2532 flash image (FLASH_LAYOUT_2532). */
export function buildFlashImage(o: FlashOptions): Uint8Array {
  return buildFlashContents(o, FLASH_LAYOUT_2532).image;
}

/** Flash image, NVRAM window contents (24xx only) and the flash ranges only the host writes. */
export interface FlashContents {
  image: Uint8Array;
  nvramWindow: Uint8Array | null;
  hostOwned: readonly FlashRange[];
}

export function buildFlashContents(o: FlashOptions, layout: Readonly<FlashLayout>): FlashContents {
  const flash = new Uint8Array(layout.sizeBytes).fill(0xff);
  flash.set(buildFirmwareImage(), layout.firmware);
  const vpd = buildVpd(o.description, { PN: o.model, SN: o.serialNumber, EC: 'A', MN: '1077' });
  const nvram = buildNvram(o);
  if (nvram.length !== NVRAM_SIZE) throw new Error('NVRAM size mismatch');
  const where = layout.vpdNvram;
  if (where.where === 'flash') {
    flash.set(vpd, where.vpd);
    flash.set(nvram, where.nvram);
    return {
      image: flash,
      nvramWindow: null,
      hostOwned: [{ start: where.sector, end: where.sector + FLASH_SECTOR_SIZE }],
    };
  }
  const window = new Uint8Array(where.windowBytes).fill(0xff);
  window.set(vpd, where.vpd);
  window.set(nvram, where.nvram);
  return { image: flash, nvramWindow: window, hostOwned: [] };
}

/**
 * The flash as the register window sees it. Reads of unmapped window addresses return
 * 0xFFFFFFFF (erased); every access is bounds-checked against the image.
 */
export interface FlashStoreOptions {
  /** Ranges the guest can neither erase nor program (default none). */
  hostOwned?: readonly FlashRange[];
  /**
   * Contents of the 24xx NVRAM window (VPD + NVRAM, host-owned: guest writes are dropped); absent
   * on a 25xx, whose NVRAM window reads as erased.
   */
  nvramWindow?: Uint8Array;
  /** Clock of the warning rate limit (default Date.now). */
  now?: () => number;
}

export class FlashStore {
  private writeProtected = true;
  private readonly hostOwned: readonly FlashRange[];
  private readonly hostOwnedWarnings: WarnLimiter;
  private readonly nvramWindow: Uint8Array | null;

  constructor(
    readonly image: Uint8Array,
    private readonly trace: Trace = () => {},
    o: FlashStoreOptions = {},
  ) {
    if (image.length % 4 !== 0) throw new Error('flash image size must be a multiple of 4');
    this.hostOwned = o.hostOwned ?? [];
    if (o.nvramWindow && o.nvramWindow.length % 4 !== 0) throw new Error('NVRAM window size must be a multiple of 4');
    this.nvramWindow = o.nvramWindow ?? null;
    this.hostOwnedWarnings = new WarnLimiter(HOST_OWNED_WARN_PERIOD_MS, o.now);
  }

  /** True when [start, end) overlaps a host-owned range. */
  isHostOwned(start: number, end: number): boolean {
    return this.hostOwned.some((r) => start < r.end && end > r.start);
  }

  /** A guest write or erase of a host-owned range: dropped, with a rate-limited warning. */
  private dropHostOwned(op: 'program' | 'erase' | 'nvram', byteAddress: number): void {
    const suppressed = this.hostOwnedWarnings.admit();
    if (suppressed !== null) this.trace('flash_err_host_owned', { guestError: true, op, byteAddress, suppressed });
  }

  get sizeBytes(): number {
    return this.image.length;
  }

  /** One dword read through flash_addr (bit 31 already stripped). */
  readWindow(address: number): number {
    const window = (address & FLASH_WINDOW.MASK_64K) >>> 0;
    if (window === FLASH_WINDOW.CONF) return this.readConf(address & 0xffff);
    if (this.nvramWindow && window === FLASH_WINDOW.NVRAM_DATA) {
      const off = (address & 0xffff) * 4;
      if (off < this.nvramWindow.length) {
        return new DataView(this.nvramWindow.buffer, this.nvramWindow.byteOffset).getUint32(off, true);
      }
      this.trace('flash_err_nvram_read_out_of_range', { address });
      return 0xffffffff;
    }
    if (window === FLASH_WINDOW.NVRAM_DATA || window === FLASH_WINDOW.NVRAM_CONF) {
      // 24xx-only windows: a 2532 keeps NVRAM in flash. Reads as erased.
      this.trace('flash_ub_nvram_window', { address });
      return 0xffffffff;
    }
    const dword = address - FLASH_WINDOW.DATA;
    if (dword >= 0 && dword * 4 < this.image.length) return this.readDword(dword * 4);
    this.trace('flash_err_read_out_of_range', { address });
    return 0xffffffff;
  }

  /** One dword write through flash_addr with bit 31 set (program, or a flash-config command). */
  writeWindow(address: number, data: number): void {
    const window = (address & FLASH_WINDOW.MASK_64K) >>> 0;
    if (window === FLASH_WINDOW.CONF) {
      this.writeConf(address & 0xffff, data >>> 0);
      return;
    }
    if (this.nvramWindow && window === FLASH_WINDOW.NVRAM_DATA) {
      this.dropHostOwned('nvram', (address & 0xffff) * 4);
      return;
    }
    if (this.nvramWindow && window === FLASH_WINDOW.NVRAM_CONF) {
      // qla24xx_write_nvram_data's write-protect toggles (0x101): nothing to protect or unprotect.
      this.trace('flash_nvram_conf_write', { reg: address & 0xffff, data });
      return;
    }
    const dword = address - FLASH_WINDOW.DATA;
    if (dword >= 0 && dword * 4 < this.image.length) {
      if (this.writeProtected) {
        this.trace('flash_err_write_protected', { address });
        return;
      }
      const off = dword * 4;
      if (this.isHostOwned(off, off + 4)) {
        this.dropHostOwned('program', off);
        return;
      }
      // NOR programming can only clear bits; an erase sets them again.
      const cur = this.readDword(off);
      new DataView(this.image.buffer, this.image.byteOffset).setUint32(off, (cur & data) >>> 0, true);
      return;
    }
    this.trace('flash_err_write_out_of_range', { address });
  }

  /** Bulk read for the MBC 0x0C DMA path; null if the range is outside the flash. */
  readBytes(byteOffset: number, length: number): Uint8Array | null {
    if (byteOffset < 0 || length < 0 || byteOffset + length > this.image.length) return null;
    return this.image.slice(byteOffset, byteOffset + length);
  }

  private readDword(off: number): number {
    return new DataView(this.image.buffer, this.image.byteOffset).getUint32(off, true);
  }

  private readConf(reg: number): number {
    switch (reg) {
      case FLASH_CONF.MFR_DEVICE_ID:
        return (FLASH_DEVICE_ID << 8) | FLASH_MFR_ID;
      case FLASH_CONF.JEDEC_ID:
        return FLASH_JEDEC;
      default:
        this.trace('flash_ub_conf_read', { reg });
        return 0;
    }
  }

  private writeConf(reg: number, data: number): void {
    if (reg === FLASH_CONF.WRITE_PROTECT) {
      this.writeProtected = data !== 0;
      return;
    }
    if ((reg & 0xff00) === FLASH_CONF.COMMAND_BASE) {
      const opcode = reg & 0xff;
      if (opcode === FLASH_CMD_SECTOR_ERASE) {
        // The driver sends the byte address in flash byte order (addr[23:16], [15:8], [7:0] swizzled
        // as ((a & 0xff) << 16) | (a & 0xff00) | ((a >> 16) & 0xff)); undo it.
        const addr = ((data & 0xff) << 16) | (data & 0xff00) | ((data >>> 16) & 0xff);
        const start = addr & ~(FLASH_SECTOR_SIZE - 1);
        if (!this.writeProtected && this.isHostOwned(start, start + FLASH_SECTOR_SIZE)) {
          this.dropHostOwned('erase', start);
        } else if (!this.writeProtected && start + FLASH_SECTOR_SIZE <= this.image.length) {
          this.image.fill(0xff, start, start + FLASH_SECTOR_SIZE);
        } else {
          this.trace('flash_err_erase_refused', { addr, writeProtected: this.writeProtected });
        }
        return;
      }
      this.trace('flash_ub_conf_command', { opcode, data });
      return;
    }
    this.trace('flash_ub_conf_write', { reg, data });
  }
}
