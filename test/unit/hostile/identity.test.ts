/**
 * Hostile guest vs. the host-pinned identity (docs/security.md), end to end: two real
 * VportHba on one in-process SAN, each masked to its own LUN by WWPN. The attacker's guest writes
 * the victim vport's names into its init control block, and rewrites its NVRAM with them through
 * the flash window. Checked: every FLOGI the fabric sees from the attacker carries the attacker's
 * configured WWPN; the victim still logs in; the attacker reads and writes only its own LUN; the
 * names survive the NVRAM rewrite and a reset; the server logs the ignored names (rate-limited)
 * and nothing at error level.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Sts24, IocbHeader } from '../../../assembly/shared/iocb.js';
import { buildNvram, NVRAM } from '../../../src/isp/nvram.js';
import { FLASH_LAYOUT } from '../../../src/isp/flash.js';
import { parseSanConfig } from '../../../src/san/config.js';
import { decodeServiceParameters, ELS } from '../../../src/fc/els.js';
import { decodeFrameHeader, FC_HEADER_SIZE, R_CTL } from '../../../src/fc/frame.js';
import { San } from '../../../src/san/san.js';
import { formatWwn } from '../../../src/util/wwn.js';
import { BLOCK, GuestMachine, LAYOUT, ioEntry, startHba, type HbaUnderTest } from './support.js';

const VICTIM = { wwpn: 0xc05076ffe5000101n, wwnn: 0xc05076ffe5000100n };
const ATTACKER = { wwpn: 0xc05076ffe5000201n, wwnn: 0xc05076ffe5000200n };

/** Block 0 of the victim's volume after the victim's WRITE. */
const VICTIM_DATA = new Uint8Array(BLOCK).map((_, i) => (i * 7 + 0x3c) & 0xff);
const ATTACKER_DATA = new Uint8Array(BLOCK).fill(0xa5);

interface FabricLoginSeen {
  command: 'FLOGI' | 'FDISC';
  wwpn: bigint;
  wwnn: bigint;
}

/** Every FLOGI/FDISC request entering the fabric, with the names in its service parameters. */
function recordFabricLogins(san: San): FabricLoginSeen[] {
  const seen: FabricLoginSeen[] = [];
  san.fabric.observe((frame) => {
    const h = decodeFrameHeader(frame);
    const payload = frame.subarray(FC_HEADER_SIZE);
    if (h.rCtl !== R_CTL.ELS_REQUEST || (payload[0] !== ELS.FLOGI && payload[0] !== ELS.FDISC)) return;
    const sp = decodeServiceParameters(payload);
    seen.push({ command: payload[0] === ELS.FLOGI ? 'FLOGI' : 'FDISC', wwpn: sp.wwpn, wwnn: sp.wwnn });
  });
  return seen;
}

function statusOf(c: Uint8Array): { entry: number; comp: number; scsi: number } {
  const dv = new DataView(c.buffer, c.byteOffset);
  return {
    entry: c[IocbHeader.ENTRY_STATUS]!,
    comp: dv.getUint16(Sts24.COMP_STATUS, true),
    scsi: dv.getUint16(Sts24.SCSI_STATUS, true) & 0xff,
  };
}

/** One-block READ/WRITE at LBA 0 into LAYOUT.DATA, retried past the power-on unit attention. */
async function io(guest: GuestMachine, handle: { next: number }, direction: 'read' | 'write'): Promise<boolean> {
  for (let attempt = 0; attempt < 4; attempt++) {
    const s = statusOf(
      await guest.iocb(ioEntry(handle.next++, direction, 0, 1, guest.addr(LAYOUT.DATA), guest.targetPortId), 10_000),
    );
    if (s.entry === 0 && s.comp === 0 && s.scsi === 0) return true;
  }
  return false;
}

describe('a guest cannot log in with another vport’s names', () => {
  let dir: string;
  let san: San;
  let logins: FabricLoginSeen[];
  const huts: HbaUnderTest[] = [];
  const guests: GuestMachine[] = [];

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'npiv-hostile-identity-'));
    const config = parseSanConfig({
      fabric: { name: 'identity', domain: 1, zoning: { default: 'allow', zones: [] } },
      arrays: [
        {
          name: 'array1',
          ports: [{ wwpn: '50:0a:09:81:00:00:00:01', wwnn: '50:0a:09:80:00:00:00:01' }],
          volumes: [
            { name: 'victim', size: '1MiB' },
            { name: 'attacker', size: '1MiB' },
          ],
          hostGroups: [
            { name: 'victim', initiators: [formatWwn(VICTIM.wwpn)], luns: { '0': 'victim' } },
            { name: 'attacker', initiators: [formatWwn(ATTACKER.wwpn)], luns: { '0': 'attacker' } },
          ],
        },
      ],
    });
    san = await San.start(config, { linkPath: join(dir, 'link.sock'), targetPortOptions: { exchangeTimeoutMs: 2000 } });
    logins = recordFabricLogins(san);
  });
  afterEach(async () => {
    for (const g of guests.splice(0)) g.close();
    for (const h of huts.splice(0)) await h.close();
    await san.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function boot(names: { wwpn: bigint; wwnn: bigint }): Promise<{ hut: HbaUnderTest; guest: GuestMachine }> {
    const hut = startHba({ sanLink: join(dir, 'link.sock'), ...names });
    huts.push(hut);
    const guest = await GuestMachine.attach(hut.socketPath);
    guests.push(guest);
    return { hut, guest };
  }

  /** Logins that carried any of the victim's names. */
  const victimNamed = () => logins.filter((l) => l.wwpn === VICTIM.wwpn || l.wwnn === VICTIM.wwnn);
  const fabricWwpns = () => san.fabric.logins().map((l) => l.wwpn);

  it('ICB names are ignored: FLOGI with the configured names, the victim still logs in, LUN masking holds', async () => {
    const attacker = await boot(ATTACKER);
    // The attacker's NVRAM says who it is; its kernel writes the victim's names into the ICB anyway.
    expect(await attacker.guest.readNvramNames()).toEqual(ATTACKER);
    await attacker.guest.probe(VICTIM);
    expect(logins).toEqual([{ command: 'FLOGI', ...ATTACKER }]);
    expect(fabricWwpns()).toContain(ATTACKER.wwpn);
    expect(fabricWwpns()).not.toContain(VICTIM.wwpn);

    // The real owner boots afterwards: its FLOGI is accepted (no duplicate-WWPN rejection).
    const victim = await boot(VICTIM);
    await victim.guest.probe(await victim.guest.readNvramNames());
    expect(logins.at(-1)).toEqual({ command: 'FLOGI', ...VICTIM });
    expect(san.fabric.logins().filter((l) => l.wwpn === VICTIM.wwpn)).toHaveLength(1);
    await victim.guest.discover();
    const vh = { next: 1 };
    victim.guest.ram.set(VICTIM_DATA, LAYOUT.DATA);
    expect(await io(victim.guest, vh, 'write')).toBe(true);

    // The attacker sees only its own LUN 0: it neither reads nor overwrites the victim's block.
    await attacker.guest.discover();
    const ah = { next: 1 };
    attacker.guest.ram.fill(0x11, LAYOUT.DATA, LAYOUT.DATA + BLOCK);
    expect(await io(attacker.guest, ah, 'read')).toBe(true);
    expect(attacker.guest.ram.subarray(LAYOUT.DATA, LAYOUT.DATA + BLOCK)).toEqual(new Uint8Array(BLOCK));
    attacker.guest.ram.set(ATTACKER_DATA, LAYOUT.DATA);
    expect(await io(attacker.guest, ah, 'write')).toBe(true);
    victim.guest.ram.fill(0, LAYOUT.DATA, LAYOUT.DATA + BLOCK);
    expect(await io(victim.guest, vh, 'read')).toBe(true);
    expect(victim.guest.ram.subarray(LAYOUT.DATA, LAYOUT.DATA + BLOCK)).toEqual(VICTIM_DATA);

    // Re-initializing over and over with the stolen names: still the attacker's names, one warning.
    for (let i = 0; i < 3; i++) await attacker.guest.probe(VICTIM);
    // Only the victim's own FLOGI ever named the victim; the attacker's 4 all named the attacker.
    expect(victimNamed()).toEqual([{ command: 'FLOGI', ...VICTIM }]);
    expect(logins.filter((l) => l.wwpn === ATTACKER.wwpn && l.wwnn === ATTACKER.wwnn)).toHaveLength(4);
    expect(logins).toHaveLength(5);
    const warnings = attacker.hut.logs.records.filter((r) => r.event === 'identity_icb_names_ignored');
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatchObject({ icbWwpn: formatWwn(VICTIM.wwpn), wwpn: formatWwn(ATTACKER.wwpn) });
    expect(attacker.hut.logs.failures()).toEqual([]);
    expect(victim.hut.logs.failures()).toEqual([]);
  });

  it('an NVRAM rewrite with the victim’s names changes nothing: after a reset NVRAM and FLOGI keep the configured names', async () => {
    const attacker = await boot(ATTACKER);
    const original = await attacker.guest.readNvram();
    // A valid NVRAM (checksum and all) naming the victim, written the way the driver updates NVRAM.
    const forged = buildNvram({ ...VICTIM, model: 'QLE2562', subsystemVendorId: 0x1077, subsystemDeviceId: 0x015d });
    await attacker.guest.flashWrite(FLASH_LAYOUT.NVRAM_FUNC0, forged);
    expect(await attacker.guest.readNvram()).toEqual(original);

    // "Reboot": a function-level reset, then the probe with whatever NVRAM now says.
    attacker.hut.hba.isp.reset();
    const names = await attacker.guest.readNvramNames();
    expect(names).toEqual(ATTACKER);
    await attacker.guest.probe(names);
    expect(logins).toEqual([{ command: 'FLOGI', ...ATTACKER }]);
    // The VPD in the same sector survived too (the sector erase was dropped, not just the program).
    expect((await attacker.guest.flashRead(FLASH_LAYOUT.VPD_FUNC0, 4))[0]).toBe(0x82);
    expect(new DataView(original.buffer).getBigUint64(NVRAM.PORT_NAME, false)).toBe(ATTACKER.wwpn);

    const victim = await boot(VICTIM);
    await victim.guest.probe(await victim.guest.readNvramNames());
    expect(san.fabric.logins().filter((l) => l.wwpn === VICTIM.wwpn)).toHaveLength(1);
    expect(attacker.hut.logs.records.filter((r) => r.event === 'flash_err_host_owned').length).toBeGreaterThanOrEqual(
      1,
    );
    expect(attacker.hut.logs.failures()).toEqual([]);
  });
});
