import { describe, expect, it } from 'vitest';
import { le16, le32, readReturning, Rig, SCRATCH } from './helpers.js';
import { gatherViews } from '../../../src/isp/data-views.js';
import type { FcpResult } from '../../../src/isp/fabric-port.js';

const TARGET = { portId: 0x010400, wwpn: 0x500a098012345678n, wwnn: 0x500a098000345678n };
const NPORT = 0x10;

/** host_to_fcp_swap of a 16/8-byte field. */
function swapped(bytes: number[], len: number): Uint8Array {
  const src = new Uint8Array(len);
  src.set(bytes);
  const out = new Uint8Array(len);
  for (let i = 0; i < len; i++) out[(i & ~3) + 3 - (i & 3)] = src[i]!;
  return out;
}

/** A Command Type 7 with one inline data segment (as qla24xx_start_scsi builds it). */
function cmd7(
  handle: number,
  cdb: number[],
  dir: 'read' | 'write' | 'none',
  addr: bigint,
  len: number,
  nport = NPORT,
  lun = 0,
): Uint8Array {
  const b = new Uint8Array(64);
  const dv = new DataView(b.buffer);
  b[0] = 0x18;
  b[1] = 1;
  dv.setUint32(4, handle, true);
  dv.setUint16(8, nport, true);
  dv.setUint16(12, dir === 'none' ? 0 : 1, true);
  b.set(swapped([0, lun], 8), 16);
  dv.setUint16(24, dir === 'write' ? 1 : dir === 'read' ? 2 : 0, true);
  b.set(swapped(cdb, 16), 28);
  dv.setUint32(44, dir === 'none' ? 0 : len, true);
  b[48] = TARGET.portId & 0xff;
  b[49] = (TARGET.portId >> 8) & 0xff;
  b[50] = TARGET.portId >> 16;
  if (dir !== 'none') {
    dv.setBigUint64(52, addr, true);
    dv.setUint32(60, len, true);
  }
  return b;
}

function logio(handle: number): Uint8Array {
  const b = new Uint8Array(64);
  const dv = new DataView(b.buffer);
  b[0] = 0x52;
  b[1] = 1;
  dv.setUint32(4, handle, true);
  dv.setUint16(10, NPORT, true);
  dv.setUint16(12, 0x10, true);
  b[16] = 0x00;
  b[17] = 0x04;
  b[18] = 0x01;
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

async function roundTrip(rig: Rig, e: Uint8Array) {
  rig.postRequest(e);
  await rig.drainEvents();
  return rig.takeResponses();
}

describe('FCP commands (Command Type 7 → FCP exchange → Status Type 0)', () => {
  it('READ: data lands in the guest segment, status GOOD, CDB/LUN un-swapped for the target', async () => {
    const rig = await loggedIn();
    const data = new Uint8Array(512).map((_, i) => i & 0xff);
    rig.fabric.fcpHandler = readReturning(data);
    const [s] = await roundTrip(rig, cmd7(5, [0x28, 0, 0, 0, 0, 8, 0, 0, 1, 0], 'read', SCRATCH, 512, NPORT, 3));
    expect([s![0], le32(s!, 4), le16(s!, 8), le16(s!, 22)]).toEqual([0x03, 5, 0, 0]);
    expect(Array.from(rig.mem.read(SCRATCH, 8))).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    const c = rig.fabric.fcpCommands[0]!;
    expect(c.cdb[0]).toBe(0x28);
    expect(c.cdb[5]).toBe(8);
    expect(c.lun[1]).toBe(3);
    expect([c.direction, c.expectedLength]).toEqual(['read', 512]);
    expect(rig.isp.firmware.exchanges.size).toBe(0);
  });

  it('WRITE: the guest data is gathered and handed to the exchange', async () => {
    const rig = await loggedIn();
    rig.mem.write(SCRATCH, new Uint8Array(1024).fill(0x5a));
    const [s] = await roundTrip(rig, cmd7(6, [0x2a, 0, 0, 0, 0, 0, 0, 0, 2, 0], 'write', SCRATCH, 1024));
    expect(le16(s!, 8)).toBe(0);
    const c = rig.fabric.fcpCommands[0]!;
    expect(c.direction).toBe('write');
    const out = gatherViews(c.data, c.expectedLength)!;
    expect(out.length).toBe(1024);
    expect(out.every((b) => b === 0x5a)).toBe(true);
  });

  it('short read: CS_DATA_UNDERRUN with the firmware-computed residual', async () => {
    const rig = await loggedIn();
    rig.fabric.fcpHandler = readReturning(new Uint8Array(36));
    const [s] = await roundTrip(rig, cmd7(7, [0x12, 0, 0, 0, 0xff], 'read', SCRATCH, 255));
    expect(le16(s!, 8)).toBe(0x15);
    expect(le32(s!, 12)).toBe(255 - 36);
    expect(le16(s!, 22) & 0x0800).toBe(0x0800);
    expect(le32(s!, 24)).toBe(255 - 36);
  });

  it('CHECK CONDITION carries sense (dword-swapped in the status entry)', async () => {
    const rig = await loggedIn();
    const sense = new Uint8Array(18);
    sense.set([0x70, 0, 0x05, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x24, 0]);
    rig.fabric.fcpHandler = async (): Promise<FcpResult> => ({ scsiStatus: 2, sense, transferred: 0 });
    const [s] = await roundTrip(rig, cmd7(8, [0xff], 'none', 0n, 0));
    expect(le16(s!, 8)).toBe(0);
    expect(le16(s!, 22) & 0xff).toBe(2);
    expect(le16(s!, 22) & 0x0200).toBe(0x0200);
    expect(le32(s!, 28)).toBe(18);
    expect(s![36 + 3]).toBe(0x70); // sense byte 0, pre-swapped
    expect(s![36 + 1]).toBe(0x05); // sense byte 2 (key)
  });

  it('commands to a handle without a PRLI-complete login complete with CS_PORT_LOGGED_OUT', async () => {
    const rig = await loggedIn();
    const [s] = await roundTrip(rig, cmd7(9, [0], 'none', 0n, 0, 0x22));
    expect([le32(s!, 4), le16(s!, 8)]).toEqual([9, 0x29]);
    expect(rig.fabric.fcpCommands.length).toBe(0);
  });

  it('a read into an unmapped guest segment fails the command with CS_DMA instead of writing anything', async () => {
    const rig = await loggedIn();
    rig.fabric.fcpHandler = readReturning(new Uint8Array(512));
    const [s] = await roundTrip(rig, cmd7(10, [0x28], 'read', 0x7f0000000n, 512));
    expect([le32(s!, 4), le16(s!, 8)]).toEqual([10, 0x02]);
  });

  it('Abort IO completes an in-flight command with CS_ABORTED before the abort entry', async () => {
    const rig = await loggedIn();
    rig.fabric.fcpHandler = () => new Promise<FcpResult>(() => {}); // never answers
    expect(await roundTrip(rig, cmd7(11, [0x28], 'read', SCRATCH, 512))).toEqual([]);
    expect(rig.isp.firmware.exchanges.size).toBe(1);
    const ab = new Uint8Array(64);
    ab[0] = 0x33;
    ab[1] = 1;
    new DataView(ab.buffer).setUint32(4, 12, true);
    new DataView(ab.buffer).setUint32(12, 11, true);
    const out = await roundTrip(rig, ab);
    expect(out.map((e) => [e[0], le32(e, 4), le16(e, 8)])).toEqual([
      [0x03, 11, 0x05],
      [0x33, 12, 0],
    ]);
    expect(rig.fabric.calls).toContain(`abort ${TARGET.portId.toString(16)} 11`);
  });

  it('link loss fails in-flight commands with CS_PORT_UNAVAILABLE', async () => {
    const rig = await loggedIn();
    rig.fabric.fcpHandler = () => new Promise<FcpResult>(() => {});
    await roundTrip(rig, cmd7(13, [0x28], 'read', SCRATCH, 512));
    rig.fabric.emit({ type: 'link-down' });
    await rig.drainEvents();
    const out = rig.takeResponses();
    expect(out.map((e) => [e[0], le32(e, 4), le16(e, 8)])).toEqual([[0x03, 13, 0x28]]);
    const [after] = await roundTrip(rig, cmd7(14, [0], 'none', 0n, 0));
    expect(le16(after!, 8)).toBe(0x28);
  });

  it('a malformed command (FCP_DL ≠ segment total) is rejected by the ring codec with entry_status', async () => {
    const rig = await loggedIn();
    const bad = cmd7(15, [0x28], 'read', SCRATCH, 512);
    new DataView(bad.buffer).setUint32(44, 4096, true);
    const [s] = await roundTrip(rig, bad);
    expect(le32(s!, 4)).toBe(15);
    expect(s![3]).not.toBe(0);
    expect(rig.fabric.fcpCommands.length).toBe(0);
  });
});
