/**
 * Hostile SAN peer aimed at the HBA: while the guest runs verified READs and WRITEs through the
 * real VportHba (vfio-user, in-process SAN), another N_Port logged in to the same fabric sends the
 * vport's N_Port random and forged FC frames — ELS requests (PLOGI, LOGO, PRLI, RSCN...), BLS
 * ABTS, and FCP data/status/transfer-ready frames whose exchange ids collide with the vport's own
 * (an attempt to inject data into, or complete, the guest's commands). Checked: the guest's data
 * is never corrupted (every READ returns what was written), every command completes once, guest
 * RAM outside its buffers keeps the canary, nothing is logged at error level, and the HBA still
 * works after the storm.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { encodeFcpRsp, encodeXferRdy } from '../../../src/fc/fcp.js';
import { FC_HEADER_SIZE, FC_TYPE, F_CTL, R_CTL, encodeFrame, type FcHeader } from '../../../src/fc/frame.js';
import { Initiator } from '../../../src/fc/initiator.js';
import { IocbHeader, IOCB_SIZE, Sts24 } from '../../../assembly/shared/iocb.js';
import {
  BLOCK,
  GuestMachine,
  LAYOUT,
  REQ_ENTRIES,
  RSP_ENTRIES,
  VPORT,
  handleOf,
  ioEntry,
  sleep,
  startHba,
  startRamSan,
  withSeed,
  type HbaUnderTest,
  type Rng,
  type TestSan,
} from './support.js';

const EVIL = { wwpn: 0xc05076ffe5000666n, wwnn: 0xc05076ffe5000600n };
const ROUNDS = 20;
const COMMANDS_PER_ROUND = 8;
const FRAMES_PER_ROUND = 80;
const BLOCKS = 4;
/** ELS command codes a port may receive (FC-LS-3): PLOGI, LOGO, PRLI, PRLO, ADISC, RSCN, RRQ, RLS, ECHO, unknown. */
const ELS_CODES = [0x03, 0x05, 0x20, 0x21, 0x52, 0x61, 0x12, 0x0f, 0x10, 0x99];

const DEVICE_WRITABLE: [number, number][] = [
  [LAYOUT.ICB, LAYOUT.REQ_RING],
  [LAYOUT.REQ_RING, LAYOUT.REQ_RING + REQ_ENTRIES * IOCB_SIZE],
  [LAYOUT.RSP_RING, LAYOUT.RSP_RING + RSP_ENTRIES * IOCB_SIZE],
  [LAYOUT.DATA, LAYOUT.DATA_END],
];

/** The pattern block `lba` holds after the preparation WRITEs. */
function blockPattern(lba: number): Uint8Array {
  return new Uint8Array(BLOCK).map((_, i) => (lba * 37 + i * 5 + (i >> 7)) & 0xff);
}

function header(r: Rng, evil: number, vport: number, rCtl: number, type: number, fCtl: number): FcHeader {
  return {
    rCtl,
    dId: vport,
    csCtl: 0,
    sId: evil,
    type,
    fCtl,
    seqId: r.int(256),
    dfCtl: 0,
    seqCnt: r.int(4),
    // The vport's exchange ids are small sequential numbers: collide with them.
    oxId: r.chance(0.8) ? r.int(256) : r.u32() & 0xffff,
    rxId: r.chance(0.5) ? 0xffff : r.int(256),
    parameter: r.chance(0.7) ? r.int(BLOCKS * BLOCK) : r.u32(),
  };
}

/** A forged frame for the vport's N_Port from the hostile port. */
function forgedFrame(r: Rng, evil: number, vport: number): Uint8Array {
  switch (r.int(6)) {
    case 0: {
      // FCP_DATA into "someone's" read.
      const h = header(
        r,
        evil,
        vport,
        R_CTL.DEVICE_DATA_SOLICITED,
        FC_TYPE.FCP,
        F_CTL.EX_CTX | F_CTL.REL_OFF | (r.chance(0.5) ? F_CTL.END_SEQ : 0),
      );
      return encodeFrame({ header: h, payload: new Uint8Array(r.pick([1, 512, 2048])).fill(0xee) });
    }
    case 1: {
      // A good FCP_RSP, as if completing the guest's command.
      const h = header(
        r,
        evil,
        vport,
        R_CTL.COMMAND_STATUS,
        FC_TYPE.FCP,
        F_CTL.EX_CTX | F_CTL.LAST_SEQ | F_CTL.END_SEQ,
      );
      return encodeFrame({
        header: h,
        payload: encodeFcpRsp({
          status: 0,
          retryDelay: 0,
          residualOver: false,
          residualUnder: r.chance(0.3),
          residual: r.int(4096),
          responseCode: null,
          sense: null,
        }),
      });
    }
    case 2: {
      const h = header(
        r,
        evil,
        vport,
        R_CTL.DATA_DESCRIPTOR,
        FC_TYPE.FCP,
        F_CTL.EX_CTX | F_CTL.END_SEQ | F_CTL.SEQ_INIT,
      );
      return encodeFrame({
        header: h,
        payload: encodeXferRdy({ relativeOffset: r.int(8192), burstLength: r.pick([512, 1 << 20, r.u32()]) }),
      });
    }
    case 3: {
      const h = header(
        r,
        evil,
        vport,
        R_CTL.BLS_ABTS,
        FC_TYPE.BLS,
        F_CTL.FIRST_SEQ | F_CTL.END_SEQ | F_CTL.SEQ_INIT | (r.chance(0.5) ? F_CTL.EX_CTX : 0),
      );
      return encodeFrame({ header: h, payload: new Uint8Array(0) });
    }
    case 4: {
      const h = header(
        r,
        evil,
        vport,
        R_CTL.ELS_REQUEST,
        FC_TYPE.ELS,
        F_CTL.FIRST_SEQ | F_CTL.END_SEQ | F_CTL.SEQ_INIT,
      );
      h.rxId = 0xffff;
      const payload = r.bytes(r.pick([4, 16, 20, 116, r.int(2112)]));
      payload[0] = r.pick(ELS_CODES);
      return encodeFrame({ header: h, payload });
    }
    default: {
      const b = r.bytes(FC_HEADER_SIZE + r.int(512));
      const h = header(r, evil, vport, r.u32() & 0xff, r.u32() & 0xff, r.u32() & 0xffffff);
      return encodeFrame({ header: h, payload: b.subarray(FC_HEADER_SIZE) });
    }
  }
}

function completedOk(c: Uint8Array): boolean {
  const dv = new DataView(c.buffer, c.byteOffset);
  return (
    c[IocbHeader.ENTRY_STATUS] === 0 &&
    dv.getUint16(Sts24.COMP_STATUS, true) === 0 &&
    (dv.getUint16(Sts24.SCSI_STATUS, true) & 0xff) === 0
  );
}

describe('hostile SAN peer aimed at the HBA', () => {
  let san: TestSan;
  let hut: HbaUnderTest;
  let guest: GuestMachine;
  beforeEach(async () => {
    san = await startRamSan();
    hut = startHba({ sanLink: san.linkPath });
    guest = await GuestMachine.attach(hut.socketPath);
    await guest.probe({ wwpn: VPORT.wwpn, wwnn: VPORT.wwnn });
    await guest.discover();
  });
  afterEach(async () => {
    guest.close();
    await hut.close();
    await san.close();
  });

  it('never lets forged frames corrupt or complete the guest’s commands; the HBA keeps working', async () => {
    await withSeed(0x5eed0006, async (r) => {
      const vport = san.san.fabric.logins().find((l) => l.wwpn === VPORT.wwpn)?.nportId;
      expect(vport).toBeDefined();
      // Known data on the first 256 blocks (retried past the power-on unit attention).
      let handle = 1;
      for (let lba = 0; lba < 256; lba += 64) {
        for (let b = 0; b < 64; b++) guest.ram.set(blockPattern(lba + b), LAYOUT.DATA + b * BLOCK);
        let ok = false;
        for (let attempt = 0; attempt < 4 && !ok; attempt++)
          ok = completedOk(
            await guest.iocb(ioEntry(handle++, 'write', lba, 64, guest.addr(LAYOUT.DATA), guest.targetPortId), 10_000),
          );
        expect(ok).toBe(true);
      }

      const evil = await Initiator.connect(san.linkPath, { ...EVIL, exchangeTimeoutMs: 500 });
      const evilId = evil.nportId;
      let reads = 0;
      let failedReads = 0;
      for (let round = 0; round < ROUNDS; round++) {
        const batch: { handle: number; lba: number; at: number }[] = [];
        for (let i = 0; i < COMMANDS_PER_ROUND; i++) {
          const lba = r.int(256 - BLOCKS);
          const at = LAYOUT.DATA + i * BLOCKS * BLOCK;
          guest.ram.fill(0, at, at + BLOCKS * BLOCK);
          const h = handle++;
          batch.push({ handle: h, lba, at });
          guest.queue(ioEntry(h, 'read', lba, BLOCKS, guest.addr(at), guest.targetPortId));
        }
        guest.doorbell();
        for (let f = 0; f < FRAMES_PER_ROUND && evil.mux.link.isUp; f++) {
          evil.mux.link.send(forgedFrame(r, evilId, vport!));
          if (f % 10 === 0) await sleep(0);
        }
        const seen = new Map<number, Uint8Array[]>();
        await guest.collect((all) => {
          for (const c of all.splice(0)) seen.set(handleOf(c), [...(seen.get(handleOf(c)) ?? []), c]);
          return batch.every((b) => seen.has(b.handle));
        }, 15_000);
        await sleep(5);
        for (const c of guest.reap()) seen.set(handleOf(c), [...(seen.get(handleOf(c)) ?? []), c]);
        for (const b of batch) {
          const got = seen.get(b.handle)!;
          expect(got.length, `round ${round} handle ${b.handle}`).toBe(1);
          reads++;
          if (!completedOk(got[0]!)) {
            failedReads++;
            continue;
          }
          // A successful READ carries exactly the target's data: nothing forged got in.
          for (let k = 0; k < BLOCKS; k++) {
            const block = guest.ram.subarray(b.at + k * BLOCK, b.at + (k + 1) * BLOCK);
            expect(block, `round ${round} lba ${b.lba + k}`).toEqual(blockPattern(b.lba + k));
          }
        }
        expect([...seen.keys()].filter((h) => !batch.some((b) => b.handle === h))).toEqual([]);
      }
      expect(reads).toBe(ROUNDS * COMMANDS_PER_ROUND);
      // Forged traffic may cost a command (an error the guest sees), but not most of them.
      expect(failedReads).toBeLessThan(reads / 4);
      expect(guest.canaryDamage(DEVICE_WRITABLE)).toEqual([]);
      expect(hut.logs.failures()).toEqual([]);

      // After the storm: still a working HBA.
      const at = LAYOUT.DATA;
      guest.ram.fill(0, at, at + BLOCKS * BLOCK);
      let ok = false;
      for (let attempt = 0; attempt < 4 && !ok; attempt++)
        ok = completedOk(
          await guest.iocb(ioEntry(handle++, 'read', 10, BLOCKS, guest.addr(at), guest.targetPortId), 10_000),
        );
      expect(ok).toBe(true);
      expect(guest.ram.subarray(at, at + BLOCK)).toEqual(blockPattern(10));
      evil.closeLink();
    });
  });
});
