/**
 * The initiator against a hostile target: a hand-written N_Port that logs in properly but answers
 * FCP commands with out-of-range XFER_RDYs, over-long data, impossible residuals, garbage FCP_RSPs
 * or silence. The initiator must fail the command with an error (and abort the exchange where a
 * reply is wrong) — never crash, hang, or write outside the caller's buffer.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FC4_TYPE_FCP } from '../../../src/fc/ct.js';
import { ELS, FCP_SPP, PRLI_FLAGS, PRLI_RESPONSE, encodeProcessLogin } from '../../../src/fc/els.js';
import { encodeFcpRsp, encodeXferRdy } from '../../../src/fc/fcp.js';
import { F_CTL, FC_TYPE, type FcFrame, R_CTL } from '../../../src/fc/frame.js';
import { ExchangeTimeoutError, ProtocolError } from '../../../src/fc/nport/errors.js';
import { NPortLink } from '../../../src/fc/nport/exchange-manager.js';
import { NPort } from '../../../src/fc/nport/port.js';
import { buildSequence } from '../../../src/fc/sequence.js';
import { CommandAbort, Initiator, ScsiAbortedError } from '../../../src/fc/initiator.js';
import { linkPair } from '../../../src/fc/link.js';
import { read10, write10 } from './fake-scsi.js';
import { type TestSan, startTestSan } from './helpers.js';

type Mode = 'xfer-rdy-beyond-dl' | 'data-overrun' | 'residual-beyond-dl' | 'garbage-rsp' | 'silent' | 'abts-silent';

class EvilTarget extends NPort {
  mode: Mode = 'silent';
  abtsSeen = 0;

  protected override handleElsCommand(frame: FcFrame): boolean {
    if (frame.payload[0] !== ELS.PRLI) return false;
    this.lsAcc(
      frame.header,
      encodeProcessLogin({
        command: ELS.LS_ACC,
        pages: [
          {
            type: FC4_TYPE_FCP,
            typeExtension: 0,
            flags: PRLI_FLAGS.ESTABLISH_IMAGE_PAIR | PRLI_RESPONSE.REQUEST_EXECUTED,
            originatorPa: 0,
            responderPa: 0,
            serviceParams: FCP_SPP.TARGET_FUNCTION,
          },
        ],
      }),
    );
    return true;
  }

  protected override handleAbts(): void {
    this.abtsSeen++; // and never answer
  }

  protected override handleOther(frame: FcFrame): void {
    const h = frame.header;
    if (h.type !== FC_TYPE.FCP || h.rCtl !== R_CTL.UNSOL_COMMAND) return;
    const send = (rCtl: number, payload: Uint8Array, fCtl: number, relativeOffset?: number): void => {
      this.mux.send(
        buildSequence(
          {
            rCtl,
            dId: h.sId,
            csCtl: 0,
            sId: this.nportId,
            type: FC_TYPE.FCP,
            fCtl,
            seqId: this.nextSeqId(),
            dfCtl: 0,
            oxId: h.oxId,
            rxId: 0x55,
            ...(relativeOffset !== undefined ? { relativeOffset } : {}),
          },
          payload,
          2048,
        ),
      );
    };
    const rsp = (r: Partial<Parameters<typeof encodeFcpRsp>[0]>): void =>
      send(
        R_CTL.COMMAND_STATUS,
        encodeFcpRsp({
          status: 0,
          retryDelay: 0,
          residualOver: false,
          residualUnder: false,
          residual: 0,
          responseCode: null,
          sense: null,
          ...r,
        }),
        F_CTL.EX_CTX | F_CTL.LAST_SEQ | F_CTL.END_SEQ,
      );
    switch (this.mode) {
      case 'xfer-rdy-beyond-dl':
        send(
          R_CTL.DATA_DESCRIPTOR,
          encodeXferRdy({ relativeOffset: 0, burstLength: 1 << 30 }),
          F_CTL.EX_CTX | F_CTL.END_SEQ | F_CTL.SEQ_INIT,
        );
        return;
      case 'data-overrun':
        // 8 KiB of data for a 512-byte read, some of it at absurd offsets.
        send(R_CTL.DEVICE_DATA_SOLICITED, new Uint8Array(8192).fill(0xee), F_CTL.EX_CTX | F_CTL.END_SEQ, 0);
        send(R_CTL.DEVICE_DATA_SOLICITED, new Uint8Array(512).fill(0xdd), F_CTL.EX_CTX | F_CTL.END_SEQ, 0xfffff000);
        rsp({ residualOver: true, residual: 8192 - 512 });
        return;
      case 'residual-beyond-dl':
        rsp({ residualUnder: true, residual: 1 << 20 });
        return;
      case 'garbage-rsp':
        send(R_CTL.COMMAND_STATUS, Uint8Array.of(1, 2, 3), F_CTL.EX_CTX | F_CTL.LAST_SEQ | F_CTL.END_SEQ);
        return;
      case 'silent':
      case 'abts-silent':
        return;
    }
  }
}

describe('initiator against a hostile target', () => {
  let san: TestSan;
  let evil: EvilTarget;
  let hba: Initiator;
  beforeEach(async () => {
    san = await startTestSan();
    const [fabricEnd, portEnd] = linkPair('evil');
    san.fabric.attach(fabricEnd);
    evil = new EvilTarget(new NPortLink(portEnd), { wwpn: 0x5000000000000badn, wwnn: 0x5000000000000ba0n });
    await evil.fabricLogin('flogi');
    hba = await Initiator.connect(san.linkPath, {
      wwpn: 0x2100000000000001n,
      wwnn: 0x2000000000000001n,
      exchangeTimeoutMs: 1000,
    });
    await hba.plogi(evil.nportId);
    await hba.prli(evil.nportId);
  });
  afterEach(async () => {
    hba.closeLink();
    await san.close();
  });

  it('aborts a write when XFER_RDY asks for more than FCP_DL', async () => {
    evil.mode = 'xfer-rdy-beyond-dl';
    const err = await hba
      .scsiCommand(evil.nportId, { lun: 0, cdb: write10(0, 1), direction: 'write', dataOut: new Uint8Array(512) })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ProtocolError);
    expect((err as Error).message).toMatch(/XFER_RDY/);
    expect(evil.abtsSeen).toBe(1);
  });

  it("keeps over-run data out of the caller's buffer and reports the over-run", async () => {
    evil.mode = 'data-overrun';
    const r = await hba.scsiCommand(evil.nportId, {
      lun: 0,
      cdb: read10(0, 1),
      direction: 'read',
      expectedLength: 512,
    });
    expect(r.data.length).toBe(512);
    expect(r.data.every((b) => b === 0xee)).toBe(true);
    expect(r.residualOver).toBe(true);
  });

  it('refuses an under-run residual larger than FCP_DL', async () => {
    evil.mode = 'residual-beyond-dl';
    await expect(
      hba.scsiCommand(evil.nportId, { lun: 0, cdb: read10(0, 1), direction: 'read', expectedLength: 512 }),
    ).rejects.toThrow(/residual/);
  });

  it('fails the command on an undecodable FCP_RSP', async () => {
    evil.mode = 'garbage-rsp';
    await expect(
      hba.scsiCommand(evil.nportId, { lun: 0, cdb: read10(0, 1), direction: 'read', expectedLength: 512 }),
    ).rejects.toThrow(/FCP_RSP/);
  });

  it('gives up on a silent target: timeout, ABTS, and no answer to that either', async () => {
    evil.mode = 'abts-silent';
    const err = await hba
      .scsiCommand(evil.nportId, { lun: 0, cdb: read10(0, 1), direction: 'read', expectedLength: 512, timeoutMs: 50 })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ExchangeTimeoutError);
    expect(evil.abtsSeen).toBe(1);
  });

  it('one deadline sweep times out each command at its own deadline, a later shorter one first', async () => {
    evil.mode = 'silent';
    const cmd = (timeoutMs: number) =>
      hba
        .scsiCommand(evil.nportId, { lun: 0, cdb: read10(0, 1), direction: 'read', expectedLength: 512, timeoutMs })
        .catch((e: unknown) => e);
    const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
    // The long one arms the sweep first; the short one, issued later, must re-arm it earlier.
    // Each expiry sends ABTS (the silent target never answers it; the command fails after that).
    const long = cmd(600);
    const short = cmd(30);
    await sleep(250);
    expect(evil.abtsSeen).toBe(1);
    await sleep(500);
    expect(evil.abtsSeen).toBe(2);
    expect(await short).toBeInstanceOf(ExchangeTimeoutError);
    expect(await long).toBeInstanceOf(ExchangeTimeoutError);
  });

  it('CommandAbort sends ABTS for its command only, and an aborted one is never sent', async () => {
    evil.mode = 'silent';
    const a = new CommandAbort();
    const aborted = hba
      .scsiCommand(evil.nportId, { lun: 0, cdb: read10(0, 1), direction: 'read', expectedLength: 512, abort: a })
      .catch((e: unknown) => e);
    a.abort();
    a.abort(); // a second fire is a no-op
    expect(await aborted).toBeInstanceOf(ScsiAbortedError);
    expect(evil.abtsSeen).toBe(1);
    const early = new CommandAbort();
    early.abort();
    await expect(
      hba.scsiCommand(evil.nportId, {
        lun: 0,
        cdb: read10(0, 1),
        direction: 'read',
        expectedLength: 512,
        abort: early,
      }),
    ).rejects.toThrow(/before it was sent/);
    expect(evil.abtsSeen).toBe(1);
  });
});
