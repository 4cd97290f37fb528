/**
 * Hostile guest, ring capacity and scatter-list limits, end to end (real VportHba over vfio-user,
 * cabled to an in-process SAN):
 *  - a guest that stops consuming responses while it keeps posting commands: the device must fill
 *    at most (length - 1) response slots, never overwrite one the guest has not consumed, and
 *    deliver every completion exactly once as soon as the guest catches up;
 *  - a READ scattered over hundreds of tiny DSDs (continuation entries) lands byte-exact;
 *  - an entry_count larger than the ring itself is refused with an error completion, not a hang.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { REG } from '../../../src/isp/registers.js';
import {
  Cmd7,
  ContA64,
  Dsd64,
  EntryType,
  IOCB_SIZE,
  IocbHeader,
  RESPONSE_PROCESSED,
  Sts24,
} from '../../../assembly/shared/iocb.js';
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
  type HbaUnderTest,
  type TestSan,
} from './support.js';

const BATCH = 100;
const BATCHES = 3;

function completedOk(c: Uint8Array): boolean {
  const dv = new DataView(c.buffer, c.byteOffset);
  return (
    c[IocbHeader.ENTRY_STATUS] === 0 &&
    dv.getUint16(Sts24.COMP_STATUS, true) === 0 &&
    (dv.getUint16(Sts24.SCSI_STATUS, true) & 0xff) === 0
  );
}

/** A single-DSD command, retried past unit attentions. */
async function io(
  g: GuestMachine,
  handle: number,
  direction: 'read' | 'write',
  lba: number,
  blocks: number,
  at: number,
): Promise<void> {
  for (let attempt = 0; attempt < 4; attempt++) {
    if (
      completedOk(await g.iocb(ioEntry(handle + attempt, direction, lba, blocks, g.addr(at), g.targetPortId), 10_000))
    )
      return;
  }
  throw new Error(`${direction} lba ${lba} failed`);
}

/** Response slots the device filled that the guest has not consumed, by slot index. */
function unconsumedSlots(g: GuestMachine): Map<number, number> {
  const out = new Map<number, number>();
  for (let i = 0; i < RSP_ENTRIES; i++) {
    const at = LAYOUT.RSP_RING + i * IOCB_SIZE;
    if (g.view.getUint32(at + IocbHeader.SIGNATURE, true) !== RESPONSE_PROCESSED)
      out.set(i, g.view.getUint32(at + IocbHeader.HANDLE, true));
  }
  return out;
}

describe('hostile guest: ring capacity and scatter lists', () => {
  let san: TestSan;
  let hut: HbaUnderTest;
  let guest: GuestMachine;
  beforeEach(async () => {
    san = await startRamSan();
    hut = startHba({ sanLink: san.linkPath });
    guest = await GuestMachine.attach(hut.socketPath);
    await guest.probe({ wwpn: VPORT.wwpn, wwnn: VPORT.wwnn });
    await guest.discover();
    await io(guest, 0x700, 'read', 0, 1, LAYOUT.DATA); // past the power-on unit attention
  });
  afterEach(async () => {
    guest.close();
    await hut.close();
    await san.close();
  });

  it('never overwrites an unconsumed response while the guest does not read them, then delivers all exactly once', async () => {
    const posted: number[] = [];
    for (let b = 0; b < BATCHES; b++) {
      for (let i = 0; i < BATCH; i++) {
        const handle = 1 + posted.length;
        posted.push(handle);
        guest.queue(
          ioEntry(handle, 'read', i, 1, guest.addr(LAYOUT.DATA + (posted.length % 512) * BLOCK), guest.targetPortId),
        );
      }
      guest.doorbell();
      // Wait until the device has consumed the batch (or stalls for response space); acknowledge interrupts, reap nothing.
      for (let i = 0; i < 200; i++) {
        await guest.r32(REG.HOST_STATUS);
        guest.w32(REG.HCCR, 0xa << 28);
        if ((await guest.r32(REG.REQ_Q_OUT)) === guest.reqIn) break;
        await sleep(5);
      }
      await sleep(50);
      const filled = unconsumedSlots(guest);
      // One slot always stays free (in == out means empty); every filled slot holds a distinct handle.
      expect(filled.size).toBeLessThanOrEqual(RSP_ENTRIES - 1);
      expect(new Set(filled.values()).size).toBe(filled.size);
      expect((await guest.r32(REG.RSP_Q_IN)) < RSP_ENTRIES).toBe(true);
    }
    expect(unconsumedSlots(guest).size).toBe(RSP_ENTRIES - 1);

    // The guest catches up: every command completes exactly once, successfully.
    const seen = new Map<number, number>();
    const deadline = Date.now() + 20_000;
    while (seen.size < posted.length) {
      if (Date.now() > deadline) throw new Error(`only ${seen.size} of ${posted.length} completions arrived`);
      await guest.pollOnce();
      for (const c of guest.reap()) seen.set(handleOf(c), (seen.get(handleOf(c)) ?? 0) + (completedOk(c) ? 1 : 1000));
      await sleep(1);
    }
    expect([...seen.entries()].filter(([, n]) => n !== 1)).toEqual([]);
    expect([...seen.keys()].sort((a, b) => a - b)).toEqual(posted);
    expect(hut.logs.failures()).toEqual([]);
  });

  it('lands a READ scattered over 496 DSDs (99 continuation entries) byte-exact', async () => {
    const blocks = 8;
    const bytes = blocks * BLOCK;
    const pattern = new Uint8Array(bytes).map((_, i) => (i * 7 + (i >> 8)) & 0xff);
    guest.ram.set(pattern, LAYOUT.DATA);
    await io(guest, 0x710, 'write', 300, blocks, LAYOUT.DATA);

    // 496 segments, laid out in reverse address order with gaps, lengths 1..15 then the rest.
    const entryCount = 100;
    const segments = 1 + (entryCount - 1) * ContA64.DSDS_PER_ENTRY;
    const lengths: number[] = [];
    for (let k = 0; k < segments - 1; k++) lengths.push(1 + (k % 7));
    lengths.push(bytes - lengths.reduce((a, b) => a + b, 0));
    expect(lengths[lengths.length - 1]!).toBeGreaterThan(0);
    const base = LAYOUT.DATA + 0x40000;
    const places: number[] = [];
    let cursor = base + 0x20000;
    for (const len of lengths) {
      cursor -= len + 3;
      places.push(cursor);
    }
    guest.ram.fill(0, base, base + 0x20000);
    const cmd = ioEntry(0x720, 'read', 300, blocks, guest.addr(places[0]!), guest.targetPortId);
    const dv = new DataView(cmd.buffer);
    dv.setUint32(Cmd7.DSD + Dsd64.LENGTH, lengths[0]!, true);
    dv.setUint16(Cmd7.DSEG_COUNT, segments, true);
    cmd[IocbHeader.ENTRY_COUNT] = entryCount;
    guest.queue(cmd);
    for (let e = 1, k = 1; e < entryCount; e++) {
      const cont = new Uint8Array(IOCB_SIZE);
      const cv = new DataView(cont.buffer);
      cont[IocbHeader.ENTRY_TYPE] = EntryType.CONTINUE_A64_TYPE;
      for (let j = 0; j < ContA64.DSDS_PER_ENTRY; j++, k++) {
        cv.setBigUint64(ContA64.DSD + j * Dsd64.SIZE + Dsd64.ADDRESS, guest.addr(places[k]!), true);
        cv.setUint32(ContA64.DSD + j * Dsd64.SIZE + Dsd64.LENGTH, lengths[k]!, true);
      }
      guest.queue(cont);
    }
    guest.doorbell();
    const got = await guest.collect((all) => all.some((c) => handleOf(c) === 0x720), 10_000);
    const c = got.find((x) => handleOf(x) === 0x720)!;
    expect(completedOk(c)).toBe(true);
    let at = 0;
    const gathered = new Uint8Array(bytes);
    lengths.forEach((len, k) => {
      gathered.set(guest.ram.subarray(places[k]!, places[k]! + len), at);
      at += len;
    });
    expect(gathered).toEqual(pattern);
    // The 3-byte gaps between segments were not touched.
    for (let k = 0; k < places.length; k++)
      expect(guest.ram.subarray(places[k]! + lengths[k]!, places[k]! + lengths[k]! + 3)).toEqual(new Uint8Array(3));
  });

  it('refuses an entry_count larger than the ring with an error completion', async () => {
    const cmd = ioEntry(0x730, 'read', 0, 1, guest.addr(LAYOUT.DATA), guest.targetPortId);
    cmd[IocbHeader.ENTRY_COUNT] = 200;
    guest.queue(cmd);
    for (let i = 0; i < REQ_ENTRIES - 8; i++) {
      const cont = new Uint8Array(IOCB_SIZE);
      cont[IocbHeader.ENTRY_TYPE] = EntryType.CONTINUE_A64_TYPE;
      guest.queue(cont);
    }
    guest.doorbell();
    const got = await guest.collect((all) => all.some((c) => handleOf(c) === 0x730), 5000);
    const c = got.find((x) => handleOf(x) === 0x730)!;
    expect(c[IocbHeader.ENTRY_STATUS]).not.toBe(0);
    // And the ring keeps working.
    await io(guest, 0x740, 'read', 0, 1, LAYOUT.DATA);
    expect(hut.logs.failures()).toEqual([]);
  });
});
