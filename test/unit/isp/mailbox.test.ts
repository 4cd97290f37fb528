import { describe, expect, it } from 'vitest';
import { FLASH_LAYOUT } from '../../../src/isp/flash.js';
import { MAILBOX_COMMANDS } from '../../../src/isp/mailbox.js';
import { REG, HCCRX } from '../../../src/isp/registers.js';
import { ICB_ADDR, MEM_BASE, mbWithDma, REQ_LEN, RSP_LEN, Rig, SCRATCH, WWPN } from './helpers.js';

async function runningRig() {
  const rig = new Rig();
  await rig.mbox(mbWithDma(0x0b, SCRATCH, { 4: 0, 5: 16, 8: 0x10 }));
  await rig.mbox([0x02, 0x0010, 0]);
  return rig;
}

describe('mailbox commands of the probe timeline', () => {
  it('has one table row per opcode', () => {
    const ops = MAILBOX_COMMANDS.map((c) => c.opcode);
    expect(new Set(ops).size).toBe(ops.length);
  });

  it('0x0C DUMP_RISC_RAM_EXTENDED copies flash (RISC address 0x7FF00000+dw) to the DMA buffer', async () => {
    const rig = new Rig();
    const dw = FLASH_LAYOUT.NVRAM_FUNC0 / 4;
    const risc = 0x7ff00000 + dw;
    const r = await rig.mbox(mbWithDma(0x0c, SCRATCH, { 1: risc & 0xffff, 8: risc >>> 16, 4: 0, 5: 128 }));
    expect(r.mb[0]).toBe(0x4000);
    expect(new TextDecoder().decode(rig.mem.read(SCRATCH, 4))).toBe('ISP ');
    const nv = rig.mem.read(SCRATCH, 512);
    expect(Buffer.from(nv.subarray(20, 28)).toString('hex')).toBe(WWPN.toString(16));
  });

  it('0x0C refuses hostile lengths, flash overruns and unmapped DMA with a mailbox error', async () => {
    const rig = new Rig();
    const risc = 0x7ff00000;
    expect((await rig.mbox(mbWithDma(0x0c, SCRATCH, { 1: 0, 8: risc >>> 16, 4: 0x7fff, 5: 0 }))).mb[0]).toBe(0x4006);
    const end = 0x7ff00000 + 0x200000 / 4 - 4;
    expect((await rig.mbox(mbWithDma(0x0c, SCRATCH, { 1: end & 0xffff, 8: end >>> 16, 4: 0, 5: 8 }))).mb[0]).toBe(
      0x4006,
    );
    expect((await rig.mbox(mbWithDma(0x0c, 0xdead0000n, { 1: 0, 8: risc >>> 16, 4: 0, 5: 8 }))).mb[0]).toBe(0x4005);
  });

  it('load/verify/execute move the RISC from ROM to firmware; completions change type 0x01 → 0x10', async () => {
    const rig = new Rig();
    const load = await rig.mbox(mbWithDma(0x0b, SCRATCH, { 4: 0, 5: 16, 8: 0x10 }));
    expect(load.mb[0]).toBe(0x4000);
    expect(load.hostStatus & 0xff).toBe(0x01);
    expect((await rig.mbox([0x07, 0x0010, 0])).mb[0]).toBe(0x4000);
    const exec = await rig.mbox([0x02, 0x0010, 0]);
    expect(exec.mb[0]).toBe(0x4000);
    expect(exec.hostStatus & 0xff).toBe(0x01); // issued in ROM state
    const v = await rig.mbox([0x08]);
    expect(v.hostStatus & 0xff).toBe(0x10);
    expect(rig.isp.firmware.risc).toBe('running');
  });

  it('0x0B with an unmapped buffer fails (hostile DMA address)', async () => {
    const rig = new Rig();
    expect((await rig.mbox(mbWithDma(0x0b, 0x7000000000n, { 4: 0, 5: 16 }))).mb[0]).toBe(0x4005);
  });

  it('0x08 reports version, ≥1 MiB firmware memory, multi-ID (for MID init) and no DIF/MQ attributes', async () => {
    const rig = await runningRig();
    const r = await rig.mbox([0x08]);
    expect(r.mb[0]).toBe(0x4000);
    expect(r.mb[1]).toBe(8);
    expect((r.mb[5]! << 16) | r.mb[4]!).toBeGreaterThanOrEqual(0x100000);
    expect(r.mb[6]! & (1 << 2)).toBe(1 << 2);
    expect(r.mb[6]! & ((1 << 4) | (1 << 6))).toBe(0);
    expect([r.mb[15], r.mb[16], r.mb[17]]).toEqual([0, 0, 0]);
  });

  it('0x42 returns non-zero exchange and IOCB counts', async () => {
    const r = await (await runningRig()).mbox([0x42]);
    for (const i of [3, 6, 7, 10]) expect(r.mb[i]).toBeGreaterThan(0);
  });

  it('0x31 READ_SFP fails with 0x4005 / sub-code 0x22 (no SFP data)', async () => {
    const r = await (await runningRig()).mbox(mbWithDma(0x31, SCRATCH, { 1: 0xa0, 8: 64 }));
    expect([r.mb[0], r.mb[1]]).toEqual([0x4005, 0x22]);
    expect(r.hostStatus & 0xff).toBe(0x11);
  });

  it('unknown commands answer 0x4001; commands that need firmware answer 0x4001 in ROM state', async () => {
    const rig = new Rig();
    expect((await rig.mbox([0x7f])).mb[0]).toBe(0x4001);
    expect((await rig.mbox([0x69])).mb[0]).toBe(0x4001);
    expect((await rig.mbox([0x5a, 0x0700])).mb[0]).toBe(0x4001);
  });

  it('0x60 INITIALIZE_FIRMWARE takes the ring geometry from the ICB', async () => {
    const rig = await runningRig();
    const r = await rig.mbox(rig.writeIcb());
    expect(r.mb[0]).toBe(0x4000);
    expect(rig.isp.firmware.icb?.requestQueueLength).toBe(REQ_LEN);
    expect(rig.isp.firmware.icb?.responseQueueLength).toBe(RSP_LEN);
    expect(rig.isp.firmware.icb?.portName).toBe(WWPN);
    expect(rig.isp.queues.configured).toBe(true);
  });

  it('0x48 MID_INITIALIZE_FIRMWARE (used because of the multi-ID attribute) initializes like 0x60 and arms link-up', async () => {
    const rig = await runningRig();
    const mb = rig.writeIcb();
    mb[0] = 0x48;
    expect((await rig.mbox(mb)).mb[0]).toBe(0x4000);
    expect(rig.isp.firmware.icb?.requestQueueLength).toBe(REQ_LEN);
    expect(rig.isp.firmware.link).toBe('armed');
  });

  it('0x60 refuses a hostile ICB (zero-length ring, misaligned ring, unmapped ICB) with an error', async () => {
    const rig = await runningRig();
    expect((await rig.mbox(rig.writeIcb((dv) => dv.setUint16(38, 0, true)))).mb[0]).toBe(0x4006);
    expect((await rig.mbox(rig.writeIcb((dv) => dv.setBigUint64(52, 0x140008n, true)))).mb[0]).toBe(0x4006);
    expect((await rig.mbox(mbWithDma(0x60, MEM_BASE - 0x1000n))).mb[0]).toBe(0x4005);
    expect(rig.isp.queues.configured).toBe(false);
  });

  it('0x60 before EXECUTE_FIRMWARE is refused', async () => {
    const rig = new Rig();
    rig.writeIcb();
    expect((await rig.mbox(mbWithDma(0x60, ICB_ADDR))).mb[0]).toBe(0x4001);
  });

  it('0x22 retry count: R_A_TOV 10 s', async () => {
    const r = await (await runningRig()).mbox([0x22]);
    expect([r.mb[0], r.mb[1], r.mb[3]]).toEqual([0x4000, 8, 200]);
  });

  it('0x69 firmware state: config-wait before init, ready after the link came up', async () => {
    const rig = await runningRig();
    expect((await rig.mbox([0x69])).mb[1]).toBe(0);
    await rig.mbox(rig.writeIcb());
    const afterInit = await rig.mbox([0x69]); // this command also fires the armed link-up
    expect([0, 2]).toContain(afterInit.mb[1]);
    await rig.drainEvents();
    expect((await rig.mbox([0x69])).mb[1]).toBe(3);
  });

  it('0x69 reports loss of sync when there is no fabric (no cable)', async () => {
    const rig = new Rig([], null);
    await rig.bringUp();
    expect((await rig.mbox([0x69])).mb[1]).toBe(4);
    expect((await rig.mbox([0x20])).mb[0]).toBe(0x4005);
  });

  it('a second SET_HOST_INT while a command is outstanding is ignored, not answered twice', async () => {
    const rig = await runningRig();
    rig.isp.mmioWrite(REG.MAILBOX0, 2, 0x08);
    rig.w32(REG.HCCR, HCCRX.SET_HOST_INT << 28);
    rig.w32(REG.HCCR, HCCRX.SET_HOST_INT << 28); // sync commands complete at once: this is a second command
    expect(rig.isp.events.pending).toBe(2);
  });

  it('STOP_FIRMWARE returns the RISC to ROM state', async () => {
    const rig = new Rig();
    await rig.bringUp();
    expect((await rig.mbox([0x14])).mb[0]).toBe(0x4000);
    expect(rig.isp.firmware.risc).toBe('rom');
    expect(rig.isp.queues.configured).toBe(false);
  });
});

describe('mailbox commands accepted without effect, and the direct-mailbox discovery forms', () => {
  it.each([
    [0x00, 'NOP (heartbeat)'],
    [0x10, 'SERDES_PARAMS'],
    [0x1a, 'PORT_PARAMS (iIDMA)'],
    [0x27, 'TRACE_CONTROL'],
    [0x38, 'SET_FIRMWARE_OPTION'],
    [0x3b, 'LED_CONFIG'],
    [0x59, 'SET_RNID_PARAMS'],
  ])('0x%s %s → 0x4000 once the firmware runs', async (op) => {
    const rig = await runningRig();
    const r = await rig.mbox([op, 0x0500]);
    expect(r.mb[0]).toBe(0x4000);
    expect(r.hostStatus & 0xff).toBe(0x10);
  });

  it('0x6B/0x6D link statistics write zeroed counters to the DMA buffer', async () => {
    const rig = new Rig();
    await rig.bringUp();
    rig.mem.write(SCRATCH, new Uint8Array(64).fill(0xee));
    const r = await rig.mbox(mbWithDma(0x6d, SCRATCH, { 8: 16 }));
    expect(r.mb[0]).toBe(0x4000);
    expect(rig.mem.read(SCRATCH, 64).every((b) => b === 0)).toBe(true);
    expect((await rig.mbox(mbWithDma(0x6b, 0x7000000000n, { 8: 16 }))).mb[0]).toBe(0x4005);
  });

  it('0x7C GET_ID_LIST reports no loop devices (F_Port topology)', async () => {
    const rig = new Rig();
    await rig.bringUp();
    const r = await rig.mbox(mbWithDma(0x7c, SCRATCH));
    expect([r.mb[0], r.mb[1]]).toEqual([0x4000, 0]);
  });

  it('direct 0x75 and 0x64: empty list before any login; not logged in → 0x400A; non-extended list refused', async () => {
    const rig = new Rig();
    await rig.bringUp();
    const gnl = await rig.mbox(mbWithDma(0x75, SCRATCH, { 1: 0x000c, 8: 0x400 }));
    expect([gnl.mb[0], gnl.mb[1]]).toEqual([0x4000, 0]);
    expect((await rig.mbox(mbWithDma(0x64, SCRATCH, { 1: 0x10 }))).mb[0]).toBe(0x400a);
    expect((await rig.mbox(mbWithDma(0x75, SCRATCH, { 1: 0, 8: 0x400 }))).mb[0]).toBe(0x4006);
  });

  it('0x5D DATA_RATE set requests are accepted; 0x20 while the fabric login is pending reports a loop transition', async () => {
    const rig = await runningRig();
    rig.fabric.login = () => new Promise(() => {}); // FLOGI never answered
    await rig.mbox(rig.writeIcb());
    expect((await rig.mbox([0x5d, 2, 4])).mb[0]).toBe(0x4000);
    expect(rig.isp.firmware.link).toBe('logging-in');
    const r = await rig.mbox([0x20]);
    expect([r.mb[0], r.mb[1]]).toEqual([0x4005, 0x07]);
    expect((await rig.mbox([0x69])).mb[1]).toBe(2); // FSTATE_WAIT_LOGIN
  });
});
