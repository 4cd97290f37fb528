import { describe, expect, it } from 'vitest';
import { REG } from '../../../src/isp/registers.js';
import type { FcpResult } from '../../../src/isp/fabric-port.js';
import { le16, le32, Rig, SCRATCH } from './helpers.js';

const TARGET = { portId: 0x010400, wwpn: 0x500a098012345678n, wwnn: 0x500a098000345678n };

function logio(handle: number): Uint8Array {
  const b = new Uint8Array(64);
  const dv = new DataView(b.buffer);
  b[0] = 0x52;
  b[1] = 1;
  dv.setUint32(4, handle, true);
  dv.setUint16(10, 0x10, true);
  dv.setUint16(12, 0x10, true);
  b.set([0x00, 0x04, 0x01], 16);
  return b;
}

function readCmd(handle: number): Uint8Array {
  const b = new Uint8Array(64);
  const dv = new DataView(b.buffer);
  b[0] = 0x18;
  b[1] = 1;
  dv.setUint32(4, handle, true);
  dv.setUint16(8, 0x10, true);
  dv.setUint16(12, 1, true);
  dv.setUint16(24, 2, true);
  b[31] = 0x28; // CDB byte 0, dword-swapped
  dv.setUint32(44, 512, true);
  b.set([0x00, 0x04, 0x01], 48);
  dv.setBigUint64(52, SCRATCH, true);
  dv.setUint32(60, 512, true);
  return b;
}

async function loggedIn(): Promise<Rig> {
  const rig = new Rig([TARGET]);
  await rig.bringUp();
  rig.takeResponses();
  rig.postRequest(logio(1));
  await rig.drainEvents();
  rig.takeResponses();
  return rig;
}

describe('LIP, remote logout, ring faults, repeated resets', () => {
  it('LINK_INITIALIZATION (0x72, issue_lip) fails outstanding I/O, drops logins and logs in again', async () => {
    const rig = await loggedIn();
    rig.fabric.fcpHandler = () => new Promise<FcpResult>(() => {});
    rig.postRequest(readCmd(20));
    await rig.drainEvents();
    rig.aens.length = 0;
    const r = await rig.mbox([0x72, 0x10]);
    expect(r.mb[0]).toBe(0x4000);
    await rig.drainEvents();
    expect(rig.aens.map((a) => a[0])).toEqual([0x8012, 0x8011, 0x8014]);
    const out = rig.takeResponses();
    expect(out.filter((e) => e[0] === 0x03).map((e) => [le32(e, 4), le16(e, 8)])).toEqual([[20, 0x28]]);
    expect(out.some((e) => e[0] === 0x32)).toBe(true); // a new RIDA
    expect(rig.isp.firmware.logins.size).toBe(0);
    expect(rig.fabric.calls.filter((c) => c.startsWith('login')).length).toBe(2);
    expect((await rig.mbox([0x69])).mb[1]).toBe(3);
  });

  it('a target ending our session becomes AEN 0x8014 (handle, logged out) and fails its commands', async () => {
    const rig = await loggedIn();
    rig.fabric.fcpHandler = () => new Promise<FcpResult>(() => {});
    rig.postRequest(readCmd(21));
    await rig.drainEvents();
    rig.aens.length = 0;
    rig.fabric.emit({ type: 'session-lost', portId: TARGET.portId });
    await rig.drainEvents();
    expect(rig.aens).toEqual([[0x8014, 0x10, 0x0007, 0]]);
    const out = rig.takeResponses();
    expect(out.map((e) => [le32(e, 4), le16(e, 8)])).toEqual([[21, 0x29]]);
    expect(rig.isp.firmware.logins.has(0x10)).toBe(false);
  });

  it('a request ring that is not mapped raises AEN 0x8003 (request transfer error)', async () => {
    const rig = new Rig();
    await rig.bringUp();
    rig.host.mem = null; // DMA windows gone
    rig.aens.length = 0;
    rig.w32(REG.REQ_Q_IN, 1);
    await rig.drainEvents();
    expect(rig.aens).toEqual([]); // no memory at all: nothing to consume, no crash
    rig.host.mem = rig.mem;
    // Shrink what the ring may reach: point a fresh init at a ring beyond guest memory.
    const r = await rig.mbox(rig.writeIcb((dv) => dv.setBigUint64(44, 0x7ffff000n, true)));
    expect(r.mb[0]).toBe(0x4000);
    await rig.drainEvents();
    rig.aens.length = 0;
    rig.w32(REG.REQ_Q_IN, 1);
    await rig.drainEvents();
    expect(rig.aens.map((a) => a[0])).toContain(0x8003);
  });

  it('survives many soft resets and re-inits in a row (ISP abort loop)', async () => {
    const rig = new Rig([TARGET]);
    for (let i = 0; i < 5; i++) {
      rig.rspOut = 0;
      rig.aens.length = 0;
      await rig.bringUp();
      expect(rig.aens.map((a) => a[0])).toEqual([0x8011, 0x8014]);
      rig.takeResponses();
      rig.w32(REG.CTRL_STATUS, 0x10031);
      expect(rig.r32(REG.HOST_STATUS)).toBe(0);
    }
    expect(rig.fabric.calls.filter((c) => c === 'logout').length).toBe(5);
  });
});
