/**
 * Hostile guest, mailbox level, end to end: every mailbox command the emulated firmware knows (and
 * unknown ones) with random mb1..mb31, DMA addresses aimed outside guest RAM, straddling its end,
 * wrapping 2^64 or unaligned, and huge lengths, through vfio-user on the real VportHba. Each
 * command must complete with an MBS_* status in mb0 within a bounded wait; guest RAM outside the
 * fuzz target area (and the probe's own ICB/rings) must keep its canary bytes; nothing is logged at
 * error level; the driver probe works again afterwards.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MAILBOX_COMMANDS, MBS } from '../../../src/isp/mailbox.js';
import {
  GuestMachine,
  LAYOUT,
  MBC,
  MBS_COMMAND_COMPLETE,
  RAM,
  RSP_ENTRIES,
  startHba,
  startRamSan,
  withSeed,
  type HbaUnderTest,
  type Rng,
} from './support.js';

const KNOWN_STATUSES = new Set<number>(Object.values(MBS));
const UNKNOWN_OPCODES = [0x01, 0x7f, 0x80, 0xff, 0x4000, 0xffff];
/** Commands that replace the firmware state; fuzzed too, then the probe restores a running firmware. */
const STATE_CHANGING = new Set([0x14, 0x48, 0x60, 0x02, 0x0b]);
/** Commands that DMA results into a guest buffer (dump RAM, port database, ID list, SFP, link status, statistics). */
const DMA_WRITING = new Set([0x0c, 0x31, 0x64, 0x6b, 0x6d, 0x7c]);
const ITERATIONS = 1200;
const REPROBE_EVERY = 150;
/** The canary scan covers ~2 MiB: done every few commands, naming the commands since the last scan. */
const CANARY_CHECK_EVERY = 25;

/** RAM the device may write: the probe's ICB..response ring and the fuzz target area. */
const DEVICE_WRITABLE: [number, number][] = [
  [LAYOUT.ICB, LAYOUT.RSP_RING + RSP_ENTRIES * 64],
  [LAYOUT.FUZZ, RAM.SIZE],
];

/** A DMA address a hostile guest might hand over (bigint, may exceed 2^64 - 1 before masking). */
function hostileAddress(r: Rng): bigint {
  const end = RAM.BASE + BigInt(RAM.SIZE);
  const inFuzz = RAM.BASE + BigInt(LAYOUT.FUZZ + r.int(RAM.SIZE - LAYOUT.FUZZ));
  switch (r.int(9)) {
    case 0:
      return 0n;
    case 1:
      return RAM.BASE - BigInt(1 + r.int(64)); // just below RAM
    case 2:
      return end - BigInt(r.int(256)); // straddles the end of RAM
    case 3:
      return end + BigInt(r.int(0x10000)); // just above RAM
    case 4:
      return (1n << 64n) - BigInt(1 + r.int(4096)); // wraps 2^64
    case 5:
      return r.u64();
    case 6:
      return inFuzz | 1n; // unaligned
    default:
      return inFuzz & ~3n;
  }
}

function setDmaAddress(mb: number[], address: bigint): void {
  const a = BigInt.asUintN(64, address);
  mb[2] = Number((a >> 16n) & 0xffffn);
  mb[3] = Number(a & 0xffffn);
  mb[6] = Number((a >> 48n) & 0xffffn);
  mb[7] = Number((a >> 32n) & 0xffffn);
}

/** An ICB at `at` (fuzz area) whose ring addresses and lengths are hostile. */
function writeHostileIcb(g: GuestMachine, r: Rng, at: number): void {
  const icb = r.bytes(128);
  const dv = new DataView(icb.buffer);
  dv.setUint16(0, r.chance(0.7) ? 1 : r.int(0x10000), true);
  if (r.chance(0.5)) dv.setUint16(36, r.pick([0, 1, 2, 64, 0xffff, r.int(0x10000)]), true);
  if (r.chance(0.5)) dv.setUint16(38, r.pick([0, 1, 2, 64, 0xffff, r.int(0x10000)]), true);
  if (r.chance(0.7)) dv.setBigUint64(44, BigInt.asUintN(64, hostileAddress(r)), true);
  if (r.chance(0.7)) dv.setBigUint64(52, BigInt.asUintN(64, hostileAddress(r)), true);
  const room = RAM.SIZE - at;
  g.ram.set(icb.subarray(0, Math.min(128, room)), at);
}

/** Login/Logout IOCB (for MBC 0x54) at `at`: random flags and handles, port ids of real, well-known or absent ports. */
function writeLoginIocb(g: GuestMachine, r: Rng, at: number, portIds: number[]): void {
  const e = r.bytes(64);
  e[0] = r.chance(0.8) ? 0x52 : r.pick([0x29, 0x53, 0x14, 0x33, r.int(256)]);
  e[1] = r.chance(0.9) ? 1 : r.int(256);
  e[3] = 0;
  const dv = new DataView(e.buffer);
  dv.setUint16(12, r.pick([0x00, 0x01, 0x10, 0x30, 0x08, 0x18, r.int(0x10000)]), true); // control flags: PLOGI, LOGO, PRLI, ...
  dv.setUint16(10, r.chance(0.7) ? 0x80 + r.int(0x20) : r.int(0x10000), true); // N_Port handle, often the target's (0x81)
  const id = r.pick(portIds);
  e[16] = id & 0xff;
  e[17] = (id >> 8) & 0xff;
  e[18] = (id >> 16) & 0xff;
  if (at + 64 <= RAM.SIZE) g.ram.set(e, at);
}

describe('hostile guest: mailbox commands through vfio-user', () => {
  let hut: HbaUnderTest;
  let guest: GuestMachine;
  beforeEach(async () => {
    hut = startHba();
    guest = await GuestMachine.attach(hut.socketPath);
  });
  afterEach(async () => {
    guest.close();
    await hut.close();
  });

  it(`completes ${ITERATIONS} random mailbox commands with an MBS status, never writing outside their buffers`, async () => {
    await withSeed(0x5eed0002, async (r) => {
      await guest.probe({ expectLink: false });
      const opcodes = [...MAILBOX_COMMANDS.map((c) => c.opcode), ...UNKNOWN_OPCODES];
      const statuses = new Map<number, number>();
      const recent: string[] = [];
      let dmaWritesDone = 0;
      for (let i = 0; i < ITERATIONS; i++) {
        if (i % REPROBE_EVERY === REPROBE_EVERY - 1) await guest.probe({ expectLink: false });
        const op = r.pick(opcodes);
        const count = 1 + r.int(32);
        const mb = Array.from({ length: count }, () =>
          r.chance(0.2) ? r.pick([0, 0xffff, 0x8000, 1]) : r.int(0x10000),
        );
        mb[0] = op;
        let intoFuzzArea = false;
        if (count >= 8 && r.chance(0.8)) {
          const address = hostileAddress(r);
          setDmaAddress(mb, address);
          const offset = Number(BigInt.asUintN(64, address) - RAM.BASE);
          intoFuzzArea = offset >= LAYOUT.FUZZ && offset < RAM.SIZE;
          if ((op === MBC.INITIALIZE_FIRMWARE || op === 0x48) && offset >= LAYOUT.FUZZ && offset < RAM.SIZE)
            writeHostileIcb(guest, r, offset);
        }
        const res = await guest.mailbox(mb);
        const status = res.mb[0]!;
        if (!KNOWN_STATUSES.has(status))
          throw new Error(
            `iteration ${i}: mailbox [${mb.map((v) => v.toString(16))}] completed with mb0=0x${status.toString(16)}`,
          );
        if (intoFuzzArea && DMA_WRITING.has(op) && status === MBS_COMMAND_COMPLETE) dmaWritesDone++;
        if (!STATE_CHANGING.has(op)) statuses.set(status, (statuses.get(status) ?? 0) + 1);
        recent.push(`[${mb.map((v) => v.toString(16)).join(' ')}]`);
        if (recent.length === CANARY_CHECK_EVERY || i === ITERATIONS - 1) {
          const damage = guest.canaryDamage(DEVICE_WRITABLE);
          if (damage.length)
            throw new Error(
              `guest RAM changed outside the buffers at offsets ${damage.map((o) => o.toString(16))} by one of ${recent.join(', ')}`,
            );
          recent.length = 0;
        }
      }
      // Both outcomes were exercised: commands that worked and commands refused with an error status.
      expect(statuses.get(MBS_COMMAND_COMPLETE) ?? 0).toBeGreaterThan(50);
      expect([...statuses.keys()].filter((s) => s !== MBS_COMMAND_COMPLETE).length).toBeGreaterThan(1);
      expect(dmaWritesDone).toBeGreaterThan(0);
      expect(hut.logs.failures()).toEqual([]);

      await guest.client.reset();
      await guest.enableDevice();
      await guest.probe({ expectLink: false });
      expect((await guest.mailbox([MBC.GET_FIRMWARE_STATE])).mb[0]).toBe(MBS_COMMAND_COMPLETE);
      expect(guest.canaryDamage(DEVICE_WRITABLE)).toEqual([]);
      expect(hut.logs.failures()).toEqual([]);
    });
  });

  it('completes random mailbox commands on a cabled HBA (fabric logins via MBC 0x54, port database, ID list)', async () => {
    const san = await startRamSan();
    const cabled = startHba({ sanLink: san.linkPath });
    const g = await GuestMachine.attach(cabled.socketPath);
    try {
      await withSeed(0x5eed0012, async (r) => {
        await g.probe();
        const target = await g.discover();
        // Only ports that exist: the switch discards frames for absent D_IDs silently (class 3), so
        // a login to one completes only after the full exchange timeout (10 s) — bounded, but too
        // slow for a fuzz loop.
        const portIds = [target, 0xfffffc, 0xfffffe, 0xfffffd, 0xfffffa];
        // Commands that bounce the link are left out here: each costs a full fabric re-login.
        const linkBouncing = new Set([0x14, 0x48, 0x60, 0x02, 0x0b, 0x62, 0x6c, 0x72]);
        const opcodes = [
          ...MAILBOX_COMMANDS.map((c) => c.opcode).filter((op) => !linkBouncing.has(op)),
          0x54,
          0x54,
          0x54,
          0x64,
          0x64,
          0x7c,
        ];
        let completed = 0;
        for (let i = 0; i < 300; i++) {
          const op = r.pick(opcodes);
          const mb = Array.from({ length: 12 }, () => r.int(0x10000));
          mb[0] = op;
          const at = LAYOUT.FUZZ + r.int(RAM.SIZE - LAYOUT.FUZZ - 0x10000);
          setDmaAddress(mb, r.chance(0.85) ? RAM.BASE + BigInt(at & ~3) : hostileAddress(r));
          if (op === 0x54) writeLoginIocb(g, r, at & ~3, portIds);
          if (op === 0x64 && r.chance(0.5)) mb[1] = r.pick([0x81, 0x7fc, 0x7fe, 0x800, 0xffff]);
          const res = await g.mailbox(mb);
          if (!KNOWN_STATUSES.has(res.mb[0]!))
            throw new Error(`iteration ${i}: [${mb.map((v) => v.toString(16))}] -> mb0 0x${res.mb[0]!.toString(16)}`);
          if (res.mb[0] === MBS_COMMAND_COMPLETE) completed++;
        }
        expect(completed).toBeGreaterThan(30);
        expect(g.canaryDamage(DEVICE_WRITABLE)).toEqual([]);
        expect(cabled.logs.failures()).toEqual([]);
        // Still a working initiator: a fresh probe and discovery.
        await g.probe();
        expect(await g.discover()).toBe(target);
      });
    } finally {
      g.close();
      await cabled.close();
      await san.close();
    }
  });
});
