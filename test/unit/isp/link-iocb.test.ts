import { describe, expect, it } from 'vitest';
import { REG } from '../../../src/isp/registers.js';
import { ctAccept, le16, le32, mbWithDma, Rig, SCRATCH, WWPN, entry } from './helpers.js';

const TARGET = { portId: 0x010400, wwpn: 0x500a098012345678n, wwnn: 0x500a098000345678n };

function logio(handle: number, nport: number, flags: number, portId: number): Uint8Array {
  return entry(0x52, handle, (dv, b) => {
    dv.setUint16(10, nport, true);
    dv.setUint16(12, flags, true);
    b[16] = portId & 0xff;
    b[17] = (portId >> 8) & 0xff;
    b[18] = portId >> 16;
  });
}

async function ringRoundTrip(rig: Rig, e: Uint8Array): Promise<Uint8Array[]> {
  rig.postRequest(e);
  await rig.drainEvents();
  return rig.takeResponses();
}

describe('link-up sequence after INITIALIZE_FIRMWARE', () => {
  it('fires at the next mailbox command: fabric login with the vport WWPN, 0x8011, RIDA, 0x8014 global', async () => {
    const rig = new Rig();
    await rig.bringUp();
    expect(rig.fabric.calls[0]).toBe(`login ${WWPN.toString(16)}`);
    const codes = rig.aens.map((a) => a[0]);
    expect(codes).toEqual([0x8011, 0x8014]);
    expect(rig.aens[0]![1]).toBe(4); // 8 Gb/s
    expect(rig.aens[1]!.slice(1)).toEqual([0xffff, 0x0006, 0x00ff]);
    const rsp = rig.takeResponses();
    expect(rsp.length).toBe(1);
    const rida = rsp[0]!;
    expect(rida[0]).toBe(0x32);
    expect([rida[12], rida[13], rida[14]]).toEqual([0x03, 0x02, 0x01]); // al_pa, area, domain
    expect(rida[15]).toBe(1);
    expect(rida[17]).toBe(0x06);
    expect(Buffer.from(rida.subarray(40, 48)).toString('hex')).toBe('2001000dec000001');
    expect(rig.responseUpdates).toBe(1);
  });

  it('does not fire before the next command or interrupt enable, but does after the timer', async () => {
    const rig = new Rig();
    await rig.mbox(mbWithDma(0x0b, SCRATCH, { 4: 0, 5: 16 }));
    await rig.mbox([0x02]);
    await rig.mbox(rig.writeIcb());
    await rig.settle();
    expect(rig.fabric.calls).toEqual([]);
    expect(rig.r32(REG.HOST_STATUS)).toBe(0); // nothing latched for the post-0x60 poll to swallow
    rig.sched.advance(1000);
    await rig.drainEvents();
    expect(rig.aens.map((a) => a[0])).toEqual([0x8011, 0x8014]);
  });

  it('interrupt enable fires the armed link-up (24xx order) and raises INTx for its events', async () => {
    const rig = new Rig();
    await rig.mbox(mbWithDma(0x0b, SCRATCH, { 4: 0, 5: 16 }));
    await rig.mbox([0x02]);
    await rig.mbox(rig.writeIcb());
    rig.w32(REG.ICTRL, 0x8);
    await rig.settle();
    expect(rig.host.intx).toBe(true);
    expect(rig.r32(REG.HOST_STATUS)).toBe(((0x8011 << 16) | 0x8012) >>> 0);
  });

  it('GET_ADAPTER_ID, GET_PORT_NAME(0x7FE) and DATA_RATE reflect the fabric login', async () => {
    const rig = new Rig();
    await rig.bringUp();
    const id = await rig.mbox([0x20]);
    expect([id.mb[0], id.mb[2], id.mb[3], id.mb[6]]).toEqual([0x4000, 0x0203, 0x01, 3]);
    const node = await rig.mbox([0x6a, 0x7fe, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    expect([node.mb[2], node.mb[3], node.mb[6], node.mb[7]]).toEqual([0x1001, 0x000d, 0xec00, 0x0001]);
    const port = await rig.mbox([0x6a, 0x7fe]);
    expect([port.mb[2], port.mb[3], port.mb[6], port.mb[7]]).toEqual([0x2001, 0x000d, 0xec00, 0x0001]);
    expect((await rig.mbox([0x6a, 0x123])).mb[0]).toBe(0x4005);
    expect((await rig.mbox([0x5d, 0])).mb[1]).toBe(4);
  });

  it('link down and back up: 0x8012, then 0x8011 + 0x8014 again; RSCN becomes AEN 0x8015', async () => {
    const rig = new Rig();
    await rig.bringUp();
    rig.aens.length = 0;
    rig.fabric.emit({ type: 'link-down' });
    await rig.drainEvents();
    expect(rig.aens.map((a) => a[0])).toEqual([0x8012]);
    expect((await rig.mbox([0x69])).mb[1]).toBe(4);
    rig.fabric.emit({ type: 'link-up' });
    await rig.drainEvents();
    expect(rig.aens.map((a) => a[0])).toEqual([0x8012, 0x8011, 0x8014]);
    rig.aens.length = 0;
    rig.fabric.emit({ type: 'rscn', format: 0, address: 0x010500 });
    rig.fabric.emit({ type: 'rscn', format: 0, address: 0x010203 }); // own address: ignored
    await rig.drainEvents();
    expect(rig.aens).toEqual([[0x8015, 0x0001, 0x0500, 0]]);
  });

  it('soft reset drops the session; a second init comes back up (ISP abort path)', async () => {
    const rig = new Rig([TARGET]);
    await rig.bringUp();
    await ringRoundTrip(rig, logio(1, 0x10, 0x10, TARGET.portId));
    expect(rig.isp.firmware.logins.size).toBe(1);
    rig.w32(REG.CTRL_STATUS, 0x10031);
    expect(rig.outMb(0)).toBe(0);
    expect(rig.r32(REG.HOST_STATUS)).toBe(0);
    expect(rig.isp.firmware.logins.size).toBe(0);
    expect(rig.isp.firmware.link).toBe('down');
    rig.aens.length = 0;
    rig.rspOut = 0;
    await rig.bringUp();
    expect(rig.aens.map((a) => a[0])).toEqual([0x8011, 0x8014]);
    expect((await rig.mbox([0x69])).mb[1]).toBe(3);
  });
});

describe('management IOCBs on the request ring', () => {
  it('LOGIO PLOGI (+PRLI) logs in to the target and reports the target function', async () => {
    const rig = new Rig([TARGET]);
    await rig.bringUp();
    rig.takeResponses();
    const [c] = await ringRoundTrip(rig, logio(7, 0x10, 0x10, TARGET.portId));
    expect(c![0]).toBe(0x52);
    expect(le32(c!, 4)).toBe(7);
    expect(le16(c!, 8)).toBe(0);
    expect(le32(c!, 20) & 0x10).toBe(0x10);
    expect(le32(c!, 20 + 9 * 4)).not.toBe(0);
    expect(rig.fabric.calls).toContain(`plogi ${TARGET.portId.toString(16)}`);
    expect(rig.fabric.calls).toContain(`prli ${TARGET.portId.toString(16)}`);
  });

  it('LOGIO failures: ELS reject, handle in use, port already logged in under another handle', async () => {
    const rig = new Rig([TARGET]);
    await rig.bringUp();
    rig.takeResponses();
    const [rej] = await ringRoundTrip(rig, logio(1, 0x11, 0, 0x0105ef));
    expect([le16(rej!, 8), le32(rej!, 20)]).toEqual([0x31, 0x18]);
    await ringRoundTrip(rig, logio(2, 0x10, 0, TARGET.portId));
    const [used] = await ringRoundTrip(rig, logio(3, 0x10, 0, 0x010500));
    expect([le16(used!, 8), le32(used!, 20), le32(used!, 24)]).toEqual([0x31, 0x1b, TARGET.portId]);
    const [dup] = await ringRoundTrip(rig, logio(4, 0x12, 0, TARGET.portId));
    expect([le16(dup!, 8), le32(dup!, 20), le32(dup!, 24)]).toEqual([0x31, 0x1a, 0x10]);
  });

  it('MBX IOCB GNL returns an empty list by default (qla2xxx GNL name-compare bug)', async () => {
    const rig = new Rig([TARGET]);
    await rig.bringUp();
    rig.takeResponses();
    await ringRoundTrip(rig, logio(1, 0x10, 0x10, TARGET.portId));
    const gnl = mbWithDma(0x75, SCRATCH, { 1: 0x000c, 8: 0x400 });
    const [g] = await ringRoundTrip(
      rig,
      entry(0x39, 9, (dv) => {
        for (const [i, v] of gnl.slice(0, 28).entries()) dv.setUint16(8 + 2 * i, v, true);
      }),
    );
    expect([le16(g!, 8), le16(g!, 10)]).toEqual([0x4000, 0]);
  });

  it('MBX IOCB GNL (logins reported) lists the login; GPDB returns state 6 (PRLI complete), WWPN and word 3', async () => {
    const rig = new Rig([TARGET], undefined, undefined, true);
    await rig.bringUp();
    rig.takeResponses();
    await ringRoundTrip(rig, logio(1, 0x10, 0x10, TARGET.portId));
    const mbx = (mb: number[]) =>
      entry(0x39, 9, (dv) => {
        for (const [i, v] of mb.slice(0, 28).entries()) dv.setUint16(8 + 2 * i, v, true);
      });
    const gnl = mbWithDma(0x75, SCRATCH, { 1: 0x000c, 8: 0x400 });
    const [g] = await ringRoundTrip(rig, mbx(gnl));
    expect([le16(g!, 8), le16(g!, 10)]).toEqual([0x4000, 40]);
    const list = rig.mem.read(SCRATCH, 40);
    expect([list[8], list[9], list[10]]).toEqual([0x00, 0x04, 0x01]); // al_pa, area, domain
    expect(le16(list, 14)).toBe(0x10);
    const [p] = await ringRoundTrip(rig, mbx(mbWithDma(0x64, SCRATCH + 0x1000n, { 1: 0x10 })));
    expect(le16(p!, 8)).toBe(0x4000);
    const pdb = rig.mem.read(SCRATCH + 0x1000n, 64);
    expect(pdb[2]! & 0xf).toBe(6);
    expect([pdb[8], pdb[9], pdb[10]]).toEqual([0x01, 0x04, 0x00]); // domain, area, al_pa
    expect(pdb[22]! & 0x10).toBe(0x10);
    expect(Buffer.from(pdb.subarray(24, 32)).toString('hex')).toBe(TARGET.wwpn.toString(16));
    const [none] = await ringRoundTrip(rig, mbx(mbWithDma(0x64, SCRATCH, { 1: 0x55 })));
    expect(le16(none!, 8)).toBe(0x400a);
  });

  it('ADISC keeps a valid session; LOGO frees the handle and sends LOGO on the link', async () => {
    const rig = new Rig([TARGET]);
    await rig.bringUp();
    rig.takeResponses();
    await ringRoundTrip(rig, logio(1, 0x10, 0x10, TARGET.portId));
    const [a] = await ringRoundTrip(rig, logio(2, 0x10, 0x03, TARGET.portId));
    expect(le16(a!, 8)).toBe(0);
    const [l] = await ringRoundTrip(rig, logio(3, 0x10, 0x08 | 0x80, TARGET.portId));
    expect(le16(l!, 8)).toBe(0);
    expect(rig.fabric.calls).toContain(`logo ${TARGET.portId.toString(16)}`);
    expect(rig.isp.firmware.logins.has(0x10)).toBe(false);
    const [a2] = await ringRoundTrip(rig, logio(4, 0x10, 0x03, TARGET.portId));
    expect([le16(a2!, 8), le32(a2!, 20)]).toEqual([0x31, 0x09]);
  });

  it('MBC 0x54: SNS PLOGI in place, then a name-server CT through the fabric, completion written back', async () => {
    const rig = new Rig([TARGET]);
    await rig.bringUp();
    const iocbAddr = SCRATCH;
    rig.mem.write(iocbAddr, logio(0, 0x7fc, 0x10 | 0x20 | (0x03 * 0), 0xfffffc));
    expect((await rig.mbox(mbWithDma(0x54, iocbAddr))).mb[0]).toBe(0x4000);
    expect(le16(rig.mem.read(iocbAddr, 64), 8)).toBe(0);
    // GID_PT request and response sharing one buffer (24xx sync path)
    const buf = SCRATCH + 0x1000n;
    const req = new Uint8Array(20);
    req.set([1, 0, 0, 0, 0xfc, 0x02, 0, 0, 0x01, 0xa1]);
    rig.mem.write(buf, req);
    rig.fabric.ctResponse = ctAccept(new Uint8Array([0x80, 0x01, 0x04, 0x00]));
    const ct = entry(0x29, 0, (dv) => {
      dv.setUint16(10, 0x7fc, true);
      dv.setUint16(12, 1, true);
      dv.setUint16(20, 1, true);
      dv.setUint32(32, 256, true);
      dv.setUint32(36, 20, true);
      dv.setBigUint64(40, buf, true);
      dv.setUint32(48, 256, true);
      dv.setBigUint64(52, buf, true);
      dv.setUint32(60, 256, true);
    });
    rig.mem.write(iocbAddr, ct);
    expect((await rig.mbox(mbWithDma(0x54, iocbAddr))).mb[0]).toBe(0x4000);
    expect(Array.from(rig.fabric.ctRequests[0]!.subarray(8, 10))).toEqual([0x01, 0xa1]);
    const back = rig.mem.read(iocbAddr, 64);
    expect(back[0]).toBe(0x29);
    expect(le16(back, 8)).toBe(0);
    const rsp = rig.mem.read(buf, 20);
    expect([rsp[8], rsp[9]]).toEqual([0x80, 0x02]);
    expect(Array.from(rsp.subarray(16, 20))).toEqual([0x80, 0x01, 0x04, 0x00]);
    expect(rig.takeResponses().filter((e) => e[0] === 0x29)).toEqual([]); // nothing on the ring
  });

  it('CT to the management server gets a clean CT reject (reason 0x0B) without touching the fabric', async () => {
    const rig = new Rig();
    await rig.bringUp();
    rig.takeResponses();
    const buf = SCRATCH;
    const req = new Uint8Array(24);
    req.set([1, 0, 0, 0, 0xfa, 0x01, 0, 0, 0x01, 0x27]);
    rig.mem.write(buf, req);
    const ct = entry(0x29, 5, (dv) => {
      dv.setUint16(10, 0x7ef, true);
      dv.setUint16(12, 1, true);
      dv.setUint16(20, 1, true);
      dv.setUint32(32, 64, true);
      dv.setUint32(36, 24, true);
      dv.setBigUint64(40, buf, true);
      dv.setUint32(48, 24, true);
      dv.setBigUint64(52, buf + 0x100n, true);
      dv.setUint32(60, 64, true);
    });
    const [c] = await ringRoundTrip(rig, ct);
    expect([c![0], le32(c!, 4), le16(c!, 8)]).toEqual([0x29, 5, 0]);
    const rsp = rig.mem.read(buf + 0x100n, 16);
    expect([rsp[8], rsp[9], rsp[13]]).toEqual([0x80, 0x01, 0x0b]);
    expect(rig.fabric.calls.filter((x) => x.startsWith('ct'))).toEqual([]);
  });

  it('hostile CT descriptors (byte count beyond the DSD) are declined with entry_status', async () => {
    const rig = new Rig();
    await rig.bringUp();
    rig.takeResponses();
    const ct = entry(0x29, 6, (dv) => {
      dv.setUint16(10, 0x7fc, true);
      dv.setUint16(12, 1, true);
      dv.setUint16(20, 1, true);
      dv.setUint32(32, 64, true);
      dv.setUint32(36, 4096, true);
      dv.setBigUint64(40, SCRATCH, true);
      dv.setUint32(48, 16, true);
    });
    const [c] = await ringRoundTrip(rig, ct);
    expect([le32(c!, 4), c![3]]).toEqual([6, 0x08]);
  });

  it('unknown entry types and bad entry counts come back with entry_status; a skip-handle marker does not', async () => {
    const rig = new Rig();
    await rig.bringUp();
    rig.takeResponses();
    const [u] = await ringRoundTrip(rig, entry(0x77, 11));
    expect([u![0], le32(u!, 4), u![3]]).toEqual([0x03, 11, 0x04]); // Status Type 0 carrying RF_INV_E_TYPE
    const zero = entry(0x52, 12);
    zero[1] = 0;
    const [z] = await ringRoundTrip(rig, zero);
    expect([le32(z!, 4), z![3]]).toEqual([12, 0x10]);
    expect(await ringRoundTrip(rig, entry(0x04, 0x0fffffff))).toEqual([]);
    const [m] = await ringRoundTrip(
      rig,
      entry(0x04, 13, (dv) => dv.setUint8(10, 2)),
    );
    expect([m![0], le32(m!, 4), m![3]]).toEqual([0x04, 13, 0]);
  });

  it('Abort of an unknown handle returns 0x31; TMF LUN reset completes as Status Type 0 with RSP_CODE 0', async () => {
    const rig = new Rig([TARGET]);
    await rig.bringUp();
    rig.takeResponses();
    await ringRoundTrip(rig, logio(1, 0x10, 0x10, TARGET.portId));
    const [ab] = await ringRoundTrip(
      rig,
      entry(0x33, 30, (dv) => dv.setUint32(12, 99, true)),
    );
    expect([ab![0], le32(ab!, 4), le16(ab!, 8)]).toEqual([0x33, 30, 0x31]);
    let terminated = -1;
    rig.isp.firmware.exchanges.add({
      handle: 44,
      nportHandle: 0x10,
      portId: TARGET.portId,
      lun: new Uint8Array([0, 1, 0, 0, 0, 0, 0, 0]),
      taskTag: 44,
      terminate: (cs) => {
        terminated = cs;
        return true;
      },
    });
    const tmf = entry(0x14, 31, (dv, b) => {
      dv.setUint16(8, 0x10, true);
      b.set([0, 0, 1, 0], 16); // LUN 1, dword-swapped
      dv.setUint32(24, 0x10, true);
    });
    const [s] = await ringRoundTrip(rig, tmf);
    expect([s![0], le32(s!, 4), le16(s!, 8)]).toEqual([0x03, 31, 0]);
    expect(le16(s!, 22) & 0x100).toBe(0x100);
    expect(s![36]).toBe(0); // RSP_CODE (byte 3 of the swapped FCP_RSP_INFO)
    expect(terminated).toBe(0x05);
    expect(rig.fabric.calls).toContain(`tmf ${TARGET.portId.toString(16)} lun-reset`);
  });

  it('Abort of an outstanding exchange terminates it with CS_ABORTED and returns comp 0', async () => {
    const rig = new Rig([TARGET]);
    await rig.bringUp();
    rig.takeResponses();
    let terminated = -1;
    rig.isp.firmware.exchanges.add({
      handle: 50,
      nportHandle: 0x10,
      portId: TARGET.portId,
      lun: new Uint8Array(8),
      taskTag: 50,
      terminate: (cs) => {
        terminated = cs;
        return true;
      },
    });
    const [ab] = await ringRoundTrip(
      rig,
      entry(0x33, 51, (dv) => dv.setUint32(12, 50, true)),
    );
    expect(le16(ab!, 8)).toBe(0);
    expect(terminated).toBe(0x05);
    expect(rig.isp.firmware.exchanges.size).toBe(0);
  });
});

describe('response ring back-pressure and hostile ring indices', () => {
  it('holds completions while the ring is full and posts them when rsp_q_out advances', async () => {
    const rig = new Rig();
    await rig.bringUp();
    rig.takeResponses();
    for (let i = 0; i < 70; i++) rig.postRequest(entry(0x04, 100 + i));
    await rig.drainEvents();
    expect(rig.isp.queues.responseBacklog).toBeGreaterThan(0);
    const first = rig.takeResponses();
    expect(first.length).toBe(63); // ring of 64 entries holds 63
    await rig.drainEvents();
    const rest = rig.takeResponses();
    expect(first.length + rest.length).toBe(70);
    expect(le32(rest[rest.length - 1]!, 4)).toBe(169);
  });

  it('ignores out-of-range req_q_in / rsp_q_out writes', async () => {
    const rig = new Rig();
    await rig.bringUp();
    rig.w32(REG.REQ_Q_IN, 5000);
    expect(rig.r32(REG.REQ_Q_IN)).toBe(0);
    rig.w32(REG.RSP_Q_OUT, 0xffff);
    expect(rig.r32(REG.RSP_Q_OUT)).not.toBe(0xffff);
    expect(rig.r32(REG.REQ_Q_OUT)).not.toBe(0xffff);
  });
});
