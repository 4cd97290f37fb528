import { describe, expect, it } from 'vitest';
import { buildNvram, buildVpd, NVRAM, nvramDwordSum } from '../../../src/isp/nvram.js';
import { buildFlashImage, FLASH_LAYOUT, FLASH_SIZE_2532, FlashStore } from '../../../src/isp/flash.js';
import { REG } from '../../../src/isp/registers.js';
import { Rig, WWNN, WWPN } from './helpers.js';

const opts = {
  wwpn: WWPN,
  wwnn: WWNN,
  model: 'QLE2562',
  subsystemVendorId: 0x1077,
  subsystemDeviceId: 0x015d,
  description: 'test adapter',
  serialNumber: 'SN1',
};

describe('NVRAM (struct nvram_24xx)', () => {
  const nv = buildNvram(opts);
  it('has the id, version and a zero 32-bit dword sum', () => {
    expect(new TextDecoder().decode(nv.subarray(0, 4))).toBe('ISP ');
    expect(nv[NVRAM.NVRAM_VERSION]).toBe(1);
    expect(nvramDwordSum(nv)).toBe(0);
  });
  it('carries the vport WWPN and WWNN in wire byte order', () => {
    expect(Buffer.from(nv.subarray(20, 28)).toString('hex')).toBe('5001438001234567');
    expect(Buffer.from(nv.subarray(28, 36)).toString('hex')).toBe('5001438001234566');
  });
  it('checksum changes when a name changes, and stays valid', () => {
    const other = buildNvram({ ...opts, wwpn: 0x5001438001234568n });
    expect(nvramDwordSum(other)).toBe(0);
    expect(new DataView(other.buffer).getUint32(508, true)).not.toBe(new DataView(nv.buffer).getUint32(508, true));
  });
  it('sets node-name-valid and the ZIO timer, never target mode or serdes-disable, and the model name', () => {
    const dv = new DataView(nv.buffer);
    const fo1 = dv.getUint32(NVRAM.FIRMWARE_OPTIONS_1, true);
    expect(fo1 & (1 << 14)).not.toBe(0);
    expect(fo1 & 0x30).toBe(0);
    expect(dv.getUint32(NVRAM.HOST_P, true) & (1 << 5)).toBe(0);
    // ZIO off; the delay timer the guest gets if it turns ZIO on (qla24xx_nvram_config).
    expect(dv.getUint32(NVRAM.FIRMWARE_OPTIONS_2, true) & 0xf).toBe(0);
    expect(dv.getUint16(NVRAM.INTERRUPT_DELAY_TIMER, true)).toBe(1);
    expect(new TextDecoder().decode(nv.subarray(480, 496))).toBe('QLE2562         ');
  });
  it('VPD starts with an identifier string and ends with the end tag', () => {
    const vpd = buildVpd('abc', { PN: 'QLE2562' });
    expect(vpd[0]).toBe(0x82);
    expect(vpd[1]).toBe(3);
    expect(new TextDecoder().decode(vpd.subarray(3, 6))).toBe('abc');
    expect(vpd[6]).toBe(0x90);
    const roLen = vpd[7]!;
    expect(vpd[9 + roLen]).toBe(0x78);
  });
});

describe('flash image', () => {
  const img = buildFlashImage(opts);
  it('is 2 MiB of erased flash with NVRAM and VPD at the 25xx function-0 addresses', () => {
    expect(img.length).toBe(FLASH_SIZE_2532);
    expect(img[0]).toBe(0xff);
    expect(img[0x141000]).toBe(0xff); // no FLT: driver uses defaults
    expect(new TextDecoder().decode(img.subarray(FLASH_LAYOUT.NVRAM_FUNC0, FLASH_LAYOUT.NVRAM_FUNC0 + 4))).toBe('ISP ');
    expect(img[FLASH_LAYOUT.VPD_FUNC0]).toBe(0x82);
  });
  it('holds a two-segment firmware image at 0x80000 with a valid version', () => {
    const dv = new DataView(img.buffer, FLASH_LAYOUT.FIRMWARE);
    expect(dv.getUint32(8, false)).toBe(0x00100000);
    const len = dv.getUint32(12, false);
    expect(len).toBe(16);
    const version = [4, 5, 6, 7].map((i) => dv.getUint32(i * 4, false));
    expect(version.every((v) => v === 0)).toBe(false);
    expect(version.every((v) => v === 0xffffffff)).toBe(false);
    const seg2 = new DataView(img.buffer, FLASH_LAYOUT.FIRMWARE + len * 4);
    expect(seg2.getUint32(8, false)).toBe(0x00108000);
    expect(seg2.getUint32(12, false)).toBe(16);
  });
});

describe('flash register window', () => {
  const flashRead = (rig: Rig, addr: number) => {
    rig.w32(REG.FLASH_ADDR, addr);
    const a = rig.r32(REG.FLASH_ADDR);
    expect(a & 0x80000000).not.toBe(0); // FARX_DATA_FLAG: data ready
    return rig.r32(REG.FLASH_DATA);
  };
  it('reads flash dwords little-endian through flash_addr/flash_data', () => {
    const rig = new Rig();
    expect(flashRead(rig, 0x7ff00000 + FLASH_LAYOUT.NVRAM_FUNC0 / 4)).toBe(0x20505349); // "ISP "
    expect(flashRead(rig, 0x7ff00000)).toBe(0xffffffff);
    expect(flashRead(rig, 0x7ff00000 + (FLASH_LAYOUT.FIRMWARE + 8) / 4)).toBe(0x00001000); // BE 0x00100000
  });
  it('answers the flash manufacturer id and reads out-of-range addresses as erased', () => {
    const rig = new Rig();
    const ids = flashRead(rig, 0x7ffd03ab);
    expect(ids & 0xff).not.toBe(0);
    expect((ids >> 8) & 0xff).not.toBe(0);
    expect(flashRead(rig, 0x7ff00000 + FLASH_SIZE_2532 / 4)).toBe(0xffffffff);
    expect(flashRead(rig, 0x12345678)).toBe(0xffffffff);
  });
  it('ignores programming while write protected; erase + program work once unprotected', () => {
    const rig = new Rig();
    const dw = 0x7ff00000 + 0x1f0000 / 4;
    rig.w32(REG.FLASH_DATA, 0x12345678);
    rig.w32(REG.FLASH_ADDR, (dw | 0x80000000) >>> 0);
    expect(rig.r32(REG.FLASH_ADDR) & 0x80000000).toBe(0); // write cycle complete
    expect(flashRead(rig, dw)).toBe(0xffffffff);
    rig.w32(REG.FLASH_DATA, 0); // unprotect
    rig.w32(REG.FLASH_ADDR, (0x7ffd0101 | 0x80000000) >>> 0);
    rig.w32(REG.FLASH_DATA, 0x12345678);
    rig.w32(REG.FLASH_ADDR, (dw | 0x80000000) >>> 0);
    expect(flashRead(rig, dw)).toBe(0x12345678);
    const a = 0x1f0000; // sector erase with the driver's byte-swizzled address
    rig.w32(REG.FLASH_DATA, (a & 0xff00) | ((a << 16) & 0xff0000) | ((a >> 16) & 0xff));
    rig.w32(REG.FLASH_ADDR, (0x7ffd03d8 | 0x80000000) >>> 0);
    expect(flashRead(rig, dw)).toBe(0xffffffff);
  });
  it('FlashStore.readBytes refuses ranges outside the image', () => {
    const f = new FlashStore(new Uint8Array(16).fill(7));
    expect(f.readBytes(12, 8)).toBeNull();
    expect(f.readBytes(-4, 4)).toBeNull();
    expect(Array.from(f.readBytes(8, 4)!)).toEqual([7, 7, 7, 7]);
  });
});
