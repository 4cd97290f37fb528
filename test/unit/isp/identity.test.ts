/**
 * The host pins the vport's identity (src/isp/identity.ts, docs/security.md): the
 * IdentityPolicy itself, the firmware's fabric login with ICB names that differ from the
 * configuration, the rate limit of the resulting warning, and the host-owned VPD/NVRAM sector.
 */
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import {
  FLASH_LAYOUT,
  FLASH_SECTOR_SIZE,
  FLASH_WINDOW,
  FlashStore,
  HOST_OWNED_FLASH,
  buildFlashImage,
} from '../../../src/isp/flash.js';
import { IdentityPolicy } from '../../../src/isp/identity.js';
import { buildNvram, NVRAM, nvramDwordSum } from '../../../src/isp/nvram.js';
import { REG } from '../../../src/isp/registers.js';
import { WarnLimiter } from '../../../src/util/warn-limit.js';
import { mbWithDma, Rig, SCRATCH, WWNN, WWPN } from './helpers.js';

const OTHER = { wwpn: 0x5001438009999999n, wwnn: 0x5001438009999998n };
const GRANT = { wwpn: 0x5001438001230001n, wwnn: 0x5001438001230000n };
const NV_OPTS = { model: 'QLE2562', subsystemVendorId: 0x1077, subsystemDeviceId: 0x015d };

function capture() {
  const records: { event?: string; [k: string]: unknown }[] = [];
  const log = pino({ level: 'warn', base: null }, { write: (line: string) => void records.push(JSON.parse(line)) });
  return { log, records };
}

describe('IdentityPolicy', () => {
  it('the physical port always gets the configured pair, and says when the guest asked for another', () => {
    const p = new IdentityPolicy({ wwpn: WWPN, wwnn: WWNN });
    expect(p.physicalLogin({ wwpn: WWPN, wwnn: WWNN })).toEqual({
      identity: { wwpn: WWPN, wwnn: WWNN },
      overridden: false,
    });
    expect(p.physicalLogin(OTHER)).toEqual({ identity: { wwpn: WWPN, wwnn: WWNN }, overridden: true });
    // A different node name alone is also a different identity.
    expect(p.physicalLogin({ wwpn: WWPN, wwnn: OTHER.wwnn }).overridden).toBe(true);
  });

  it('NPIV vports get only host grants: none by default, never the base WWPN', () => {
    const none = new IdentityPolicy({ wwpn: WWPN, wwnn: WWNN });
    expect(none.npivGrants).toEqual([]);
    expect(none.vportLogin(OTHER.wwpn)).toBeNull();
    expect(none.vportLogin(WWPN)).toBeNull();
    expect(none.allows(WWPN)).toBe(true);
    expect(none.allows(OTHER.wwpn)).toBe(false);

    const granted = new IdentityPolicy({ wwpn: WWPN, wwnn: WWNN }, [GRANT]);
    expect(granted.vportLogin(GRANT.wwpn)).toEqual(GRANT);
    expect(granted.vportLogin(OTHER.wwpn)).toBeNull();
    expect(granted.vportLogin(WWPN)).toBeNull();
    expect(granted.allows(GRANT.wwpn)).toBe(true);
  });

  it('refuses zero or oversized names and a WWPN granted twice (or equal to the base)', () => {
    expect(() => new IdentityPolicy({ wwpn: 0n, wwnn: WWNN })).toThrow(RangeError);
    expect(() => new IdentityPolicy({ wwpn: WWPN, wwnn: 1n << 64n })).toThrow(RangeError);
    expect(() => new IdentityPolicy({ wwpn: WWPN, wwnn: WWNN }, [{ wwpn: WWPN, wwnn: GRANT.wwnn }])).toThrow(
      /used twice/,
    );
    expect(() => new IdentityPolicy({ wwpn: WWPN, wwnn: WWNN }, [GRANT, GRANT])).toThrow(/used twice/);
  });

  it('cannot be changed after construction', () => {
    const grants = [{ ...GRANT }];
    const p = new IdentityPolicy({ wwpn: WWPN, wwnn: WWNN }, grants);
    grants[0]!.wwpn = OTHER.wwpn;
    grants.push(OTHER);
    expect(p.npivGrants).toEqual([GRANT]);
    expect(Object.isFrozen(p.base) && Object.isFrozen(p.npivGrants) && Object.isFrozen(p.npivGrants[0])).toBe(true);
  });
});

describe('WarnLimiter', () => {
  it('admits one per period and reports how many it held back', () => {
    let t = 1000;
    const w = new WarnLimiter(100, () => t);
    expect(w.admit()).toBe(0);
    t += 50;
    expect(w.admit()).toBeNull();
    expect(w.admit()).toBeNull();
    t += 50;
    expect(w.admit()).toBe(2);
    t += 99;
    expect(w.admit()).toBeNull();
  });
});

describe('fabric login identity', () => {
  const renamed = (dv: DataView) => {
    dv.setBigUint64(12, OTHER.wwpn, false);
    dv.setBigUint64(20, OTHER.wwnn, false);
  };

  it('INITIALIZE_FIRMWARE / MID_INITIALIZE_FIRMWARE with other ICB names: accepted, login with the configured names, one warning', async () => {
    const { log, records } = capture();
    const rig = new Rig([], undefined, undefined, undefined, log);
    await rig.bringUp();
    expect(rig.fabric.loginNames).toEqual([{ wwpn: WWPN, wwnn: WWNN }]);
    expect(records.filter((r) => r.event === 'identity_icb_names_ignored')).toEqual([]);

    for (const opcode of [0x60, 0x48, 0x60]) {
      const mb = rig.writeIcb(renamed);
      mb[0] = opcode;
      expect((await rig.mbox(mb)).mb[0]).toBe(0x4000);
      expect(rig.isp.firmware.icb?.portName).toBe(OTHER.wwpn);
      expect(rig.isp.firmware.loginIdentity).toEqual({ wwpn: WWPN, wwnn: WWNN });
      await rig.mbox([0x59, 0x0900]); // the next command fires the armed link-up
      await rig.drainEvents();
      expect(rig.isp.firmware.link).toBe('up');
    }
    expect(rig.fabric.loginNames).toEqual(Array(4).fill({ wwpn: WWPN, wwnn: WWNN }));
    const warnings = records.filter((r) => r.event === 'identity_icb_names_ignored');
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatchObject({
      icbWwpn: '50:01:43:80:09:99:99:99',
      wwpn: '50:01:43:80:01:23:45:67',
      suppressed: 0,
    });
  });

  it('a refused ICB (zero port name) still fails with a parameter error and logs nothing in', async () => {
    const rig = new Rig();
    await rig.bringUp();
    const before = rig.fabric.loginNames.length;
    const mb = rig.writeIcb((dv) => dv.setBigUint64(12, 0n, false));
    expect((await rig.mbox(mb)).mb[0]).toBe(0x4006);
    await rig.drainEvents();
    expect(rig.fabric.loginNames.length).toBe(before);
  });
});

describe('host-owned VPD/NVRAM sector', () => {
  const image = () => buildFlashImage({ wwpn: WWPN, wwnn: WWNN, ...NV_OPTS, description: 'd', serialNumber: 's' });
  const dword = (byte: number) => FLASH_WINDOW.DATA + byte / 4;
  const swizzle = (a: number) => (a & 0xff00) | ((a << 16) & 0xff0000) | ((a >> 16) & 0xff);

  it('covers the whole VPD/NVRAM sector and nothing else', () => {
    expect(HOST_OWNED_FLASH).toEqual([
      { start: FLASH_LAYOUT.VPD_NVRAM_SECTOR, end: FLASH_LAYOUT.VPD_NVRAM_SECTOR + FLASH_SECTOR_SIZE },
    ]);
    const f = new FlashStore(image(), () => {}, { hostOwned: HOST_OWNED_FLASH });
    expect(f.isHostOwned(FLASH_LAYOUT.NVRAM_FUNC0, FLASH_LAYOUT.NVRAM_FUNC0 + 512)).toBe(true);
    expect(f.isHostOwned(FLASH_LAYOUT.VPD_NVRAM_SECTOR - 4, FLASH_LAYOUT.VPD_NVRAM_SECTOR)).toBe(false);
    expect(f.isHostOwned(FLASH_LAYOUT.FIRMWARE, FLASH_LAYOUT.FIRMWARE + 4)).toBe(false);
  });

  it('unprotected sector erase and programming of it are dropped (one warning); other sectors still change', () => {
    const traces: [string, Record<string, unknown>][] = [];
    const img = image();
    const f = new FlashStore(img, (e, d) => traces.push([e, d]), { hostOwned: HOST_OWNED_FLASH, now: () => 0 });
    const pristine = img.slice();
    f.writeWindow(FLASH_WINDOW.CONF + 0x101, 0); // unprotect
    f.writeWindow(FLASH_WINDOW.CONF + 0x3d8, swizzle(FLASH_LAYOUT.VPD_NVRAM_SECTOR));
    const forged = buildNvram({ ...OTHER, ...NV_OPTS });
    const dv = new DataView(forged.buffer);
    for (let off = 0; off < forged.length; off += 4)
      f.writeWindow(dword(FLASH_LAYOUT.NVRAM_FUNC0 + off), dv.getUint32(off, true));
    f.writeWindow(dword(FLASH_LAYOUT.NVRAM_FUNC0 + NVRAM.PORT_NAME), 0); // NOR could clear bits: not here
    expect(Buffer.compare(img, pristine)).toBe(0); // (toEqual on 2 MiB is slow)
    expect(traces.filter(([e]) => e === 'flash_err_host_owned')).toEqual([
      [
        'flash_err_host_owned',
        { guestError: true, op: 'erase', byteAddress: FLASH_LAYOUT.VPD_NVRAM_SECTOR, suppressed: 0 },
      ],
    ]);

    const other = 0x1f0000;
    f.writeWindow(FLASH_WINDOW.CONF + 0x3d8, swizzle(other));
    f.writeWindow(dword(other), 0x12345678);
    expect(f.readWindow(dword(other))).toBe(0x12345678);
  });

  it('the guest reads the configured names back, by register and by MBC 0x0C, after trying to rewrite them and a reset', async () => {
    const rig = new Rig();
    const flashWrite = (addr: number, data: number) => {
      rig.w32(REG.FLASH_DATA, data);
      rig.w32(REG.FLASH_ADDR, (addr | 0x80000000) >>> 0);
    };
    flashWrite(FLASH_WINDOW.CONF + 0x101, 0);
    flashWrite(FLASH_WINDOW.CONF + 0x3d8, swizzle(FLASH_LAYOUT.VPD_NVRAM_SECTOR));
    const forged = buildNvram({ ...OTHER, ...NV_OPTS });
    for (let off = 0; off < forged.length; off += 4)
      flashWrite(dword(FLASH_LAYOUT.NVRAM_FUNC0 + off), new DataView(forged.buffer).getUint32(off, true));
    flashWrite(FLASH_WINDOW.CONF + 0x101, 0x9c);
    rig.isp.reset();

    // qla25xx_read_optrom_data path: DUMP_RISC_RAM_EXTENDED of the NVRAM dwords into guest memory.
    const at = dword(FLASH_LAYOUT.NVRAM_FUNC0);
    const r = await rig.mbox(mbWithDma(0x0c, SCRATCH, { 1: at & 0xffff, 8: at >>> 16, 4: 0, 5: 128 }));
    expect(r.mb[0]).toBe(0x4000);
    const nv = rig.mem.read(SCRATCH, 512);
    expect(nvramDwordSum(nv)).toBe(0);
    expect(new DataView(nv.buffer, nv.byteOffset).getBigUint64(NVRAM.PORT_NAME, false)).toBe(WWPN);
    expect(new DataView(nv.buffer, nv.byteOffset).getBigUint64(NVRAM.NODE_NAME, false)).toBe(WWNN);
    rig.w32(REG.FLASH_ADDR, dword(FLASH_LAYOUT.NVRAM_FUNC0 + NVRAM.PORT_NAME));
    expect(rig.r32(REG.FLASH_DATA)).toBe(new DataView(nv.buffer, nv.byteOffset).getUint32(NVRAM.PORT_NAME, true));

    await rig.bringUp();
    expect(rig.fabric.loginNames).toEqual([{ wwpn: WWPN, wwnn: WWNN }]);
  });
});
