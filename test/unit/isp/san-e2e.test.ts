/**
 * The ISP2532 model over the real SAN engine: a socket link to a fabric with an in-process FCP
 * target; the test plays the qla2xxx discovery path (SNS login, GPN_FT, PLOGI+PRLI, GPDB) and
 * runs SCSI commands through Command Type 7 / Status Type 0.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { InitiatorFabricPort } from '../../../src/isp/initiator-fabric.js';
import { connectLink } from '../../../src/fc/link.js';
import { FakeScsiTarget } from '../san/fake-scsi.js';
import { startTestSan, type TestSan } from '../san/helpers.js';
import { writeU24LE } from '../../../src/util/bytes.js';
import { swapDwords } from '../../../src/vm-model/qla-guest.js';
import { le16, le32, mbWithDma, Rig, SCRATCH, WWPN, entry } from './helpers.js';

const TGT = { wwpn: 0x500a098100000001n, wwnn: 0x500a098000000001n };

async function roundTrip(rig: Rig, e: Uint8Array, expect = 1): Promise<Uint8Array[]> {
  rig.postRequest(e);
  const got: Uint8Array[] = [];
  for (let i = 0; i < 200 && got.length < expect; i++) {
    await rig.drainEvents();
    got.push(...rig.takeResponses());
  }
  return got;
}

describe('ISP2532 firmware over the SAN initiator engine', () => {
  let san: TestSan;
  let disk: FakeScsiTarget;
  let port: InitiatorFabricPort;
  beforeEach(async () => {
    san = await startTestSan();
    disk = new FakeScsiTarget(TGT.wwpn, TGT.wwnn);
    await san.addTarget(disk);
    port = new InitiatorFabricPort({ connect: () => connectLink(san.linkPath) });
  });
  afterEach(async () => {
    await port.close();
    await san.close();
  });

  it('FLOGI with the vport WWPN, name-server scan, PLOGI+PRLI, GPDB, INQUIRY, WRITE and READ', async () => {
    const rig = new Rig([], undefined, port);
    rig.realTime = true;
    await rig.bringUp();
    expect(rig.aens.map((a) => a[0])).toEqual([0x8011, 0x8014]);
    const id = await rig.mbox([0x20]);
    const myId = (id.mb[3]! << 16) | id.mb[2]!;
    expect(myId >> 16).toBe(1);
    expect(san.fabric).toBeTruthy();
    rig.takeResponses(); // RIDA

    // SNS login through MBC 0x54, as qla24xx_login_fabric does.
    rig.mem.write(
      SCRATCH,
      entry(0x52, 0, (dv, b) => {
        dv.setUint16(10, 0x7fc, true);
        dv.setUint16(12, 0x10 | 0x20, true);
        writeU24LE(b, 16, 0xfffffc);
      }),
    );
    expect((await rig.mbox(mbWithDma(0x54, SCRATCH))).mb[0]).toBe(0x4000);
    expect(le16(rig.mem.read(SCRATCH, 64), 8)).toBe(0);

    // GPN_FT (FCP) on the ring.
    const req = SCRATCH + 0x1000n;
    const rsp = SCRATCH + 0x2000n;
    const ct = new Uint8Array(20);
    ct.set([1, 0, 0, 0, 0xfc, 0x02, 0, 0, 0x01, 0x72, 0x00, 0xfc]);
    ct[19] = 0x08;
    rig.mem.write(req, ct);
    const [c] = await roundTrip(
      rig,
      entry(0x29, 3, (dv) => {
        dv.setUint16(10, 0x7fc, true);
        dv.setUint16(12, 1, true);
        dv.setUint16(20, 1, true);
        dv.setUint32(32, 1024, true);
        dv.setUint32(36, 20, true);
        dv.setBigUint64(40, req, true);
        dv.setUint32(48, 20, true);
        dv.setBigUint64(52, rsp, true);
        dv.setUint32(60, 1024, true);
      }),
    );
    expect([c![0], le32(c!, 4), le16(c!, 8)]).toEqual([0x29, 3, 0]);
    const list = rig.mem.read(rsp, 64);
    expect([list[8], list[9]]).toEqual([0x80, 0x02]);
    const entries: { id: number; wwpn: bigint }[] = [];
    for (let o = 16; o + 16 <= 64; o += 16) {
      const id = (list[o + 1]! << 16) | (list[o + 2]! << 8) | list[o + 3]!;
      const wwpn = new DataView(list.buffer, list.byteOffset + o + 8, 8).getBigUint64(0, false);
      if (wwpn) entries.push({ id, wwpn });
      if (list[o]! & 0x80) break;
    }
    const target = entries.find((e) => e.wwpn === TGT.wwpn)!;
    expect(target).toBeTruthy();

    // PLOGI (+PRLI) with a driver-chosen handle.
    const [l] = await roundTrip(
      rig,
      entry(0x52, 4, (dv, b) => {
        dv.setUint16(10, 0x81, true);
        dv.setUint16(12, 0x10, true);
        writeU24LE(b, 16, target.id);
      }),
    );
    expect([l![0], le16(l!, 8)]).toEqual([0x52, 0]);
    expect(le32(l!, 20) & 0x10).toBe(0x10);

    // GPDB through a Mailbox IOCB.
    const pdbAddr = SCRATCH + 0x3000n;
    const mb = mbWithDma(0x64, pdbAddr, { 1: 0x81 });
    const [g] = await roundTrip(
      rig,
      entry(0x39, 5, (dv) => {
        for (const [i, v] of mb.slice(0, 28).entries()) dv.setUint16(8 + 2 * i, v, true);
      }),
    );
    expect(le16(g!, 8)).toBe(0x4000);
    const pdb = rig.mem.read(pdbAddr, 64);
    expect(pdb[2]! & 0xf).toBe(6);
    expect(new DataView(pdb.buffer, pdb.byteOffset + 24, 8).getBigUint64(0, false)).toBe(TGT.wwpn);

    const cmd7 = (handle: number, cdb: number[], dir: 'read' | 'write', addr: bigint, len: number) =>
      entry(0x18, handle, (dv, b) => {
        dv.setUint16(8, 0x81, true);
        dv.setUint16(12, 1, true);
        dv.setUint16(24, dir === 'write' ? 1 : 2, true);
        const c16 = new Uint8Array(16);
        c16.set(cdb);
        b.set(swapDwords(c16), 28);
        dv.setUint32(44, len, true);
        writeU24LE(b, 48, target.id);
        dv.setBigUint64(52, addr, true);
        dv.setUint32(60, len, true);
      });

    const data = SCRATCH + 0x10000n;
    const [inq] = await roundTrip(rig, cmd7(6, [0x12, 0, 0, 0, 36, 0], 'read', data, 36));
    expect([inq![0], le32(inq!, 4), le16(inq!, 8)]).toEqual([0x03, 6, 0]);
    expect(new TextDecoder().decode(rig.mem.read(data + 8n, 8))).toBe('NPIVHBA ');

    const block = new Uint8Array(4096).map((_, i) => (i * 13 + 1) & 0xff);
    rig.mem.write(data, block);
    const [w] = await roundTrip(rig, cmd7(7, [0x2a, 0, 0, 0, 0, 10, 0, 0, 8, 0], 'write', data, 4096));
    expect(le16(w!, 8)).toBe(0);
    expect(disk.disk.subarray(10 * 512, 18 * 512)).toEqual(block);
    rig.mem.write(data, new Uint8Array(4096));
    const [r] = await roundTrip(rig, cmd7(8, [0x28, 0, 0, 0, 0, 10, 0, 0, 8, 0], 'read', data, 4096));
    expect(le16(r!, 8)).toBe(0);
    expect(rig.mem.read(data, 4096)).toEqual(block);
    expect(disk.requests.every((q) => q.nexus.initiatorWwpn === WWPN)).toBe(true);
  });
});
