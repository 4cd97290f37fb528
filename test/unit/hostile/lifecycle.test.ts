/**
 * Hostile timing, end to end: the guest (or QEMU) pulls the rug while commands are in flight on
 * the real VportHba cabled to an in-process SAN — DMA_UNMAP of all guest RAM, DEVICE_RESET, an ISP
 * soft reset through CTRL_STATUS. Completions that arrive afterwards must not be written anywhere
 * (the rings and buffers they belonged to are no longer the device's to write), nothing may throw
 * or be logged at error level, and the device must come back to a working state (probe, login,
 * WRITE + READ with intact data).
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { REG } from '../../../src/isp/registers.js';
import { IOCB_SIZE, IocbHeader, Sts24 } from '../../../assembly/shared/iocb.js';
import {
  BLOCK,
  GuestMachine,
  LAYOUT,
  RAM,
  RSP_ENTRIES,
  VPORT,
  ioEntry,
  sleep,
  startHba,
  startRamSan,
  type HbaUnderTest,
  type TestSan,
} from './support.js';

const IN_FLIGHT = 24;
/** init_cb_24xx request/response ring base addresses (qla_fw.h). */
const ICB_REQ_Q_ADDRESS = 44;
const ICB_RSP_Q_ADDRESS = 52;
const BLOCKS = 16;
/** Time for in-flight fabric exchanges to finish after the rug was pulled. */
const AFTERMATH_MS = 300;

/** Queues IN_FLIGHT READs (each into its own data slot) and rings the doorbell once. */
function startReads(g: GuestMachine, firstHandle: number): void {
  for (let i = 0; i < IN_FLIGHT; i++) {
    g.queue(
      ioEntry(firstHandle + i, 'read', i * BLOCKS, BLOCKS, g.addr(LAYOUT.DATA + i * BLOCKS * BLOCK), g.targetPortId),
    );
  }
  g.doorbell();
}

/** WRITE a pattern, READ it back elsewhere, compare (retrying past unit attentions). */
async function roundTrip(g: GuestMachine, handle: number, lba: number, seed: number): Promise<void> {
  const out = LAYOUT.DATA + 0x100000;
  const back = out + 0x10000;
  const pattern = new Uint8Array(8 * BLOCK).map((_, i) => (i * 11 + seed) & 0xff);
  g.ram.set(pattern, out);
  g.ram.fill(0, back, back + pattern.length);
  for (const [direction, at] of [
    ['write', out],
    ['read', back],
  ] as const) {
    let ok = false;
    for (let attempt = 0; attempt < 4 && !ok; attempt++) {
      const c = await g.iocb(ioEntry(handle++, direction, lba, 8, g.addr(at), g.targetPortId), 10_000);
      const dv = new DataView(c.buffer, c.byteOffset);
      ok =
        c[IocbHeader.ENTRY_STATUS] === 0 &&
        dv.getUint16(Sts24.COMP_STATUS, true) === 0 &&
        (dv.getUint16(Sts24.SCSI_STATUS, true) & 0xff) === 0;
    }
    expect(ok, `${direction} after recovery`).toBe(true);
  }
  expect(g.ram.subarray(back, back + pattern.length)).toEqual(pattern);
}

describe('hostile timing: the rug pulled with commands in flight', () => {
  let san: TestSan;
  let hut: HbaUnderTest;
  let guest: GuestMachine;
  beforeEach(async () => {
    san = await startRamSan();
    hut = startHba({ sanLink: san.linkPath, wwpn: VPORT.wwpn, wwnn: VPORT.wwnn });
    guest = await GuestMachine.attach(hut.socketPath);
    await guest.probe();
    await guest.discover();
    await roundTrip(guest, 0x600, 1000, 1);
  });
  afterEach(async () => {
    guest.close();
    await hut.close();
    await san.close();
  });

  it('DMA_UNMAP of all guest RAM mid-I/O: no crash, no late write, works again after re-map and re-init', async () => {
    startReads(guest, 0x100);
    await guest.client.dmaUnmapAll();
    await sleep(AFTERMATH_MS);
    // The memfd pages are still ours: any write after the unmap would show here.
    guest.fillCanary(0, RAM.SIZE);
    await sleep(AFTERMATH_MS);
    expect(guest.canaryDamage([])).toEqual([]);
    expect(hut.logs.failures()).toEqual([]);
    await guest.r32(REG.HOST_STATUS); // still answering

    await guest.client.dmaMap({ address: RAM.BASE, size: BigInt(RAM.SIZE), fd: guest.memfd, offset: 0n });
    await guest.probe();
    await guest.discover();
    await roundTrip(guest, 0x200, 1200, 2);
    expect(hut.logs.failures()).toEqual([]);
  });

  it('DEVICE_RESET mid-I/O: completions of the old life are not written to the old rings or buffers', async () => {
    startReads(guest, 0x100);
    await guest.client.reset();
    guest.fillCanary(0, RAM.SIZE);
    await sleep(AFTERMATH_MS);
    expect(guest.canaryDamage([])).toEqual([]);
    expect(hut.logs.failures()).toEqual([]);

    await guest.enableDevice();
    await guest.probe();
    await guest.discover();
    await roundTrip(guest, 0x200, 1200, 3);
    expect(hut.logs.failures()).toEqual([]);
  });

  it('ISP soft reset (CTRL_STATUS) mid-I/O: nothing written after the reset, probe works again', async () => {
    startReads(guest, 0x100);
    guest.w32(REG.CTRL_STATUS, 0x10031); // DMA shutdown + ISP soft reset, as qla24xx_reset_risc
    await guest.r32(REG.CTRL_STATUS); // the posted write has been handled
    guest.fillCanary(0, RAM.SIZE);
    await sleep(AFTERMATH_MS);
    expect(guest.canaryDamage([])).toEqual([]);
    expect(hut.logs.failures()).toEqual([]);

    await guest.probe();
    await guest.discover();
    await roundTrip(guest, 0x200, 1200, 4);
    expect(hut.logs.failures()).toEqual([]);
  });

  it('INITIALIZE_FIRMWARE with new rings mid-I/O (no reset first): the old response ring is never written again', async () => {
    startReads(guest, 0x100);
    // Move both rings into the fuzz area: the device must forget the old ones at once.
    const newReq = LAYOUT.FUZZ;
    const newRsp = LAYOUT.FUZZ + 0x10000;
    const icb = new DataView(guest.ram.buffer, LAYOUT.ICB, 128);
    icb.setBigUint64(ICB_REQ_Q_ADDRESS, guest.addr(newReq), true);
    icb.setBigUint64(ICB_RSP_Q_ADDRESS, guest.addr(newRsp), true);
    const init = await guest.mailbox(guest.dmaMailbox(0x60, guest.addr(LAYOUT.ICB)));
    guest.fillCanary(LAYOUT.RSP_RING, LAYOUT.RSP_RING + RSP_ENTRIES * IOCB_SIZE);
    await sleep(AFTERMATH_MS);
    expect([0x4000, 0x4005, 0x4006]).toContain(init.mb[0]);
    expect(
      guest.canaryDamage([
        [0, LAYOUT.RSP_RING],
        [LAYOUT.RSP_RING + RSP_ENTRIES * IOCB_SIZE, RAM.SIZE],
      ]),
    ).toEqual([]);
    expect(hut.logs.failures()).toEqual([]);
  });
});
