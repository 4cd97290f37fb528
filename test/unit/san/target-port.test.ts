/**
 * The FC target port against a hostile or careless initiator: frames are crafted by hand on a real
 * link, and the target must answer the way FCP-4 says (FCP_RSP response codes, LOGO/PRLO to ports
 * without a session) without crashing or leaking exchanges.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ELS } from '../../../src/fc/els.js';
import { FCP_RSP_CODE, decodeFcpRsp, decodeXferRdy, encodeFcpCmnd } from '../../../src/fc/fcp.js';
import {
  F_CTL,
  F_CTL_REQUEST,
  FC_TYPE,
  FC_XID_UNKNOWN,
  type FcFrame,
  R_CTL,
  decodeFrame,
} from '../../../src/fc/frame.js';
import { buildSequence } from '../../../src/fc/sequence.js';
import { Initiator, lunField } from '../../../src/fc/initiator.js';
import type { FcTargetPort } from '../../../src/san/target-port.js';
import { FakeScsiTarget, read10, write10 } from './fake-scsi.js';
import { type TestSan, startTestSan, until } from './helpers.js';

const HBA = { wwpn: 0x2100000000000001n, wwnn: 0x2000000000000001n, exchangeTimeoutMs: 1000 };
/** A CDB padded to the 16-byte FCP_CDB field. */
function cdb16(cdb: Uint8Array): Uint8Array {
  const c = new Uint8Array(16);
  c.set(cdb);
  return c;
}

const TGT = { wwpn: 0x5000000000000001n, wwnn: 0x5000000000000000n };

describe('FC target port', () => {
  let san: TestSan;
  let disk: FakeScsiTarget;
  let target: FcTargetPort;
  let hba: Initiator;
  let tid: number;
  /** Frames the target sends to the initiator outside the initiator's own exchange bookkeeping. */
  let seen: FcFrame[];

  beforeEach(async () => {
    san = await startTestSan();
    disk = new FakeScsiTarget(TGT.wwpn, TGT.wwnn);
    target = await san.addTarget(disk, { maxBurst: 8192, maxTransferLength: 1024 * 1024, exchangeTimeoutMs: 1000 });
    hba = await Initiator.connect(san.linkPath, HBA);
    tid = target.nportId;
    seen = [];
    hba.mux.link.on('frame', (f) => seen.push(decodeFrame(f)));
  });
  afterEach(async () => {
    hba.closeLink();
    await san.close();
  });

  /** Send a hand-made FCP_CMND on a fresh OX_ID and collect what comes back on it. */
  function rawCommand(payload: Uint8Array, oxId: number): void {
    hba.mux.send(
      buildSequence(
        {
          rCtl: R_CTL.UNSOL_COMMAND,
          dId: tid,
          csCtl: 0,
          sId: hba.nportId,
          type: FC_TYPE.FCP,
          fCtl: F_CTL_REQUEST,
          seqId: 1,
          dfCtl: 0,
          oxId,
          rxId: FC_XID_UNKNOWN,
        },
        payload,
        2048,
      ),
    );
  }
  const fromTarget = (oxId: number, rCtl: number): FcFrame[] =>
    seen.filter((f) => f.header.sId === tid && f.header.oxId === oxId && f.header.rCtl === rCtl);

  it('splits a large write into several XFER_RDY bursts of at most maxBurst', async () => {
    await hba.plogi(tid);
    await hba.prli(tid);
    const data = Uint8Array.from({ length: 20 * 1024 }, (_, i) => (i * 3) & 0xff);
    const r = await hba.scsiCommand(tid, { lun: 0, cdb: write10(0, 40), direction: 'write', dataOut: data });
    expect(r.status).toBe(0);
    const bursts = seen.filter((f) => f.header.rCtl === R_CTL.DATA_DESCRIPTOR).map((f) => decodeXferRdy(f.payload));
    expect(bursts).toEqual([
      { relativeOffset: 0, burstLength: 8192 },
      { relativeOffset: 8192, burstLength: 8192 },
      { relativeOffset: 16384, burstLength: 4096 },
    ]);
    expect(disk.disk.subarray(0, data.length)).toEqual(data);
    expect(target.openExchanges).toBe(0);
  });

  it("sends read data in frames no larger than the initiator's receive data field size", async () => {
    const small = await Initiator.connect(san.linkPath, {
      wwpn: 0x2100000000000002n,
      wwnn: 0x2000000000000002n,
      rxDataFieldSize: 1024,
    });
    const sizes: number[] = [];
    small.mux.link.on('frame', (f) => {
      const frame = decodeFrame(f);
      if (frame.header.rCtl === R_CTL.DEVICE_DATA_SOLICITED) sizes.push(frame.payload.length);
    });
    await small.plogi(tid);
    await small.prli(tid);
    disk.disk.fill(0x5a, 0, 8192);
    const r = await small.scsiCommand(tid, { lun: 0, cdb: read10(0, 16), direction: 'read', expectedLength: 8192 });
    expect(r.data.every((b) => b === 0x5a)).toBe(true);
    expect(sizes).toEqual(new Array(8).fill(1024));
    small.closeLink();
  });

  it('sends LOGO to a port that sends FCP_CMND without logging in, PRLO without an image pair', async () => {
    const cmd = encodeFcpCmnd({
      lun: lunField(0),
      crn: 0,
      taskAttribute: 0,
      taskManagement: 0,
      read: true,
      write: false,
      cdb: cdb16(read10(0, 1)),
      dataLength: 512,
    });
    rawCommand(cmd, 0x7001);
    await until(
      () => seen.some((f) => f.header.sId === tid && f.header.rCtl === R_CTL.ELS_REQUEST && f.payload[0] === ELS.LOGO),
      'LOGO from the target',
    );
    await hba.plogi(tid);
    rawCommand(cmd, 0x7002);
    await until(
      () => seen.some((f) => f.header.sId === tid && f.header.rCtl === R_CTL.ELS_REQUEST && f.payload[0] === ELS.PRLO),
      'PRLO from the target',
    );
    expect(disk.requests).toHaveLength(0);
  });

  it('answers malformed commands with FCP_RSP response codes instead of executing them', async () => {
    await hba.plogi(tid);
    await hba.prli(tid);
    const cdb = cdb16(read10(0, 1));
    const good = encodeFcpCmnd({
      lun: lunField(0),
      crn: 0,
      taskAttribute: 0,
      taskManagement: 0,
      read: true,
      write: false,
      cdb,
      dataLength: 512,
    });
    // Additional CDB announced.
    const addl = good.slice();
    addl[11] = 0x02 | (4 << 2);
    rawCommand(addl, 0x100);
    // Read and write at once (bidirectional) is not supported.
    const bidi = good.slice();
    bidi[11] = 0x03;
    rawCommand(bidi, 0x101);
    // FCP_DL beyond the transfer limit.
    const huge = encodeFcpCmnd({
      lun: lunField(0),
      crn: 0,
      taskAttribute: 0,
      taskManagement: 0,
      read: false,
      write: true,
      cdb: cdb16(write10(0, 1)),
      dataLength: 64 * 1024 * 1024,
    });
    rawCommand(huge, 0x102);
    // Two task management flags at once.
    const tmf = good.slice();
    tmf[10] = 0x10 | 0x20;
    rawCommand(tmf, 0x103);
    await until(
      () => [0x100, 0x101, 0x102, 0x103].every((ox) => fromTarget(ox, R_CTL.COMMAND_STATUS).length === 1),
      'four FCP_RSPs',
    );
    const code = (ox: number): number | null =>
      decodeFcpRsp(fromTarget(ox, R_CTL.COMMAND_STATUS)[0]!.payload).responseCode;
    expect(code(0x100)).toBe(FCP_RSP_CODE.INVALID_FIELDS);
    expect(code(0x101)).toBe(FCP_RSP_CODE.INVALID_FIELDS);
    expect(code(0x102)).toBe(FCP_RSP_CODE.INVALID_FIELDS);
    expect(code(0x103)).toBe(FCP_RSP_CODE.TMF_REJECTED);
    expect(disk.requests).toHaveLength(0);
    expect(disk.tmfs).toHaveLength(0);
  });

  it('ends a write whose data arrives at the wrong offset (RO mismatch) and one whose data never comes', async () => {
    await hba.plogi(tid);
    await hba.prli(tid);
    const cdb = cdb16(write10(0, 2));
    const cmd = encodeFcpCmnd({
      lun: lunField(0),
      crn: 0,
      taskAttribute: 0,
      taskManagement: 0,
      read: false,
      write: true,
      cdb,
      dataLength: 1024,
    });
    rawCommand(cmd, 0x200);
    await until(() => fromTarget(0x200, R_CTL.DATA_DESCRIPTOR).length === 1, 'XFER_RDY');
    const rxId = fromTarget(0x200, R_CTL.DATA_DESCRIPTOR)[0]!.header.rxId;
    hba.mux.send(
      buildSequence(
        {
          rCtl: R_CTL.DEVICE_DATA_SOLICITED,
          dId: tid,
          csCtl: 0,
          sId: hba.nportId,
          type: FC_TYPE.FCP,
          fCtl: F_CTL.END_SEQ | F_CTL.SEQ_INIT,
          seqId: 2,
          dfCtl: 0,
          oxId: 0x200,
          rxId,
          relativeOffset: 512,
        },
        new Uint8Array(512),
        2048,
      ),
    );
    await until(() => fromTarget(0x200, R_CTL.COMMAND_STATUS).length === 1, 'FCP_RSP');
    expect(decodeFcpRsp(fromTarget(0x200, R_CTL.COMMAND_STATUS)[0]!.payload).responseCode).toBe(
      FCP_RSP_CODE.RO_MISMATCH,
    );
    // No data at all: the exchange is dropped after the target's exchange timeout.
    rawCommand(cmd, 0x201);
    await until(() => fromTarget(0x201, R_CTL.DATA_DESCRIPTOR).length === 1, 'XFER_RDY');
    expect(target.openExchanges).toBe(1);
    await until(() => target.openExchanges === 0, 'write exchange timed out');
    expect(disk.requests).toHaveLength(0);
  });

  it('a LOGO from the target ends the initiator\'s session there ("session-lost") and the nexus here', async () => {
    await hba.plogi(tid);
    await hba.prli(tid);
    const lost = new Promise<bigint>((r) => hba.once('session-lost', (s) => r(s.wwpn)));
    await target.logo(hba.nportId);
    expect(await lost).toBe(TGT.wwpn);
    expect(hba.sessions.has(tid)).toBe(false);
    expect(disk.lost.map((n) => n.initiatorWwpn)).toEqual([HBA.wwpn]);
    await expect(
      hba.scsiCommand(tid, { lun: 0, cdb: read10(0, 1), direction: 'read', expectedLength: 512 }),
    ).rejects.toThrow(/image pair/);
  });

  it('rejects ABTS for an exchange it does not have (BA_RJT)', async () => {
    await hba.plogi(tid);
    hba.sendAbts(tid, 0x4242, FC_XID_UNKNOWN);
    await until(() => fromTarget(0x4242, R_CTL.BLS_BA_RJT).length === 1, 'BA_RJT');
  });
});
