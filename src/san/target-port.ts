/**
 * The FC side of a storage array port: an N_Port with the FCP-4 target function in front of a
 * ScsiTargetPort (src/scsi/api.ts).
 *
 * It logs in to the fabric (FLOGI), registers with the name server (FC-4 type FCP, feature
 * "target"), registers for RSCN (SCR), accepts PLOGI / PRLI (target function) / PRLO / LOGO / ADISC
 * and runs FCP exchanges (FCP-4 §9, FC-FS-3 exchange and sequence rules):
 *
 *   write:  FCP_CMND → FCP_XFER_RDY (bursts of at most maxBurst) → FCP_DATA … → execute → FCP_RSP
 *   read:   FCP_CMND → execute → FCP_DATA (frames ≤ the initiator's receive data field) → FCP_RSP
 *   TMF:    FCP_CMND with a task management flag → ScsiTargetPort.taskManagement → FCP_RSP + RSP_INFO
 *   ABTS:   the exchange is dropped, the SCSI layer told (abort-task), BA_ACC (BA_RJT if unknown)
 *
 * FCP_RSP reports residual over/under-run against FCP_DL and carries sense data. An FCP_CMND from a
 * port without a PLOGI session is answered with LOGO, without an image pair with PRLO (FCP-4 §6.5).
 * Limits protect the array from a hostile initiator: FCP_DL at most maxTransferLength, a bounded
 * number of open exchanges (TASK SET FULL beyond), write data only at the expected relative offset,
 * and a deadline for write data to arrive.
 */
import { BA_RJT_EXPLANATION, BA_RJT_REASON, encodeBaAcc, encodeBaRjt } from '../fc/bls.js';
import { FcDecodeError } from '../fc/bytes.js';
import { FC4_FEATURE, FC4_TYPE_FCP } from '../fc/ct.js';
import {
  ELS,
  FCP_SPP,
  LS_RJT_EXPLANATION,
  LS_RJT_REASON,
  PRLI_FLAGS,
  PRLI_RESPONSE,
  type RscnPage,
  decodeProcessLogin,
  encodeLogo,
  encodeProcessLogin,
  rscnPageCovers,
} from '../fc/els.js';
import { FCP_RSP_CODE, FCP_TMF, type FcpCmnd, decodeFcpCmnd, encodeFcpRsp, encodeXferRdy } from '../fc/fcp.js';
import {
  F_CTL,
  FC_TYPE,
  FC_XID_UNKNOWN,
  type FcFrame,
  type FcHeader,
  R_CTL,
  formatPortId,
  isWellKnownAddress,
} from '../fc/frame.js';
import { NPortLink } from '../fc/nport/exchange-manager.js';
import { NPort, type NPortOptions, type RemoteSession } from '../fc/nport/port.js';
import { buildSequence } from '../fc/sequence.js';
import type { Link } from '../fc/link.js';
import type { ItNexus, ScsiResponse, ScsiTargetPort } from '../scsi/api.js';
import { type DataDirection, Status, type TaskManagementFunction } from '../scsi/sam.js';
import { formatWwn } from '../util/wwn.js';

export interface TargetPortOptions extends Omit<NPortOptions, 'wwpn' | 'wwnn'> {
  symbolicName?: string;
  /** Largest FCP_DL accepted (bytes). */
  maxTransferLength?: number;
  /** Largest FCP_XFER_RDY burst (bytes). */
  maxBurst?: number;
  /** Open exchanges across all initiators. */
  maxExchanges?: number;
}

interface TargetExchange {
  initiator: number;
  oxId: number;
  rxId: number;
  cmd: FcpCmnd;
  nexus: ItNexus;
  writeBuf: Uint8Array | null;
  received: number;
  burstEnd: number;
  aborted: boolean;
  timer: NodeJS.Timeout | undefined;
}

const TMF_BY_FLAG: [number, TaskManagementFunction][] = [
  [FCP_TMF.ABORT_TASK_SET, 'abort-task-set'],
  [FCP_TMF.CLEAR_TASK_SET, 'clear-task-set'],
  [FCP_TMF.LUN_RESET, 'lun-reset'],
  [FCP_TMF.TARGET_RESET, 'target-reset'],
  [FCP_TMF.CLEAR_ACA, 'clear-aca'],
];

/** Fixed-format sense (SPC-4 §4.5.3) for failures the transport itself reports. */
function fixedSense(key: number, asc: number, ascq: number): Uint8Array {
  const s = new Uint8Array(18);
  s[0] = 0x70;
  s[2] = key & 0xf;
  s[7] = 10;
  s[12] = asc;
  s[13] = ascq;
  return s;
}

export class FcTargetPort extends NPort {
  private readonly exchanges = new Map<string, TargetExchange>();
  readonly maxTransferLength: number;
  readonly maxBurst: number;
  readonly maxExchanges: number;
  private readonly symbolicName: string;

  constructor(
    mux: NPortLink<NPort>,
    readonly scsi: ScsiTargetPort,
    opts: TargetPortOptions = {},
  ) {
    super(mux, { ...opts, wwpn: scsi.wwpn, wwnn: scsi.wwnn });
    this.maxTransferLength = opts.maxTransferLength ?? 16 * 1024 * 1024;
    this.maxBurst = opts.maxBurst ?? 1024 * 1024;
    this.maxExchanges = opts.maxExchanges ?? 2048;
    this.symbolicName = opts.symbolicName ?? `npiv-hba target ${formatWwn(scsi.wwpn)}`;
    this.on('rscn', (pages) => void this.verifySessions(pages));
  }

  /** Attach to the fabric over `link`: FLOGI, name-server registration, SCR. */
  static async start(link: Link, scsi: ScsiTargetPort, opts: TargetPortOptions = {}): Promise<FcTargetPort> {
    const port = new FcTargetPort(new NPortLink(link), scsi, opts);
    await port.fabricLogin('flogi');
    await port.nameServer.register({
      fcpFeatures: FC4_FEATURE.TARGET,
      symbolicNodeName: port.symbolicName,
      symbolicPortName: port.symbolicName,
    });
    await port.scr();
    return port;
  }

  /** Number of FCP exchanges in progress (for tests and the control interface). */
  get openExchanges(): number {
    return this.exchanges.size;
  }

  // ------------------------------------------------------------------------------ ELS

  protected override handleElsCommand(frame: FcFrame): boolean {
    const h = frame.header;
    const code = frame.payload[0];
    if (code !== ELS.PRLI && code !== ELS.PRLO) return false;
    const session = this.sessions.get(h.sId);
    if (!session) {
      this.lsRjt(h, LS_RJT_REASON.UNABLE_TO_PERFORM, LS_RJT_EXPLANATION.PLOGI_REQUIRED);
      return true;
    }
    const req = decodeProcessLogin(frame.payload);
    const page = req.pages.find((p) => p.type === FC4_TYPE_FCP);
    if (!page) {
      this.lsRjt(h, LS_RJT_REASON.UNABLE_TO_PERFORM, LS_RJT_EXPLANATION.REQUEST_NOT_SUPPORTED);
      return true;
    }
    if (code === ELS.PRLI) {
      if (!(page.serviceParams & FCP_SPP.INITIATOR_FUNCTION)) {
        this.lsAcc(h, this.prliAccept(PRLI_RESPONSE.PRECLUDED_BY_CONFIG, 0));
        return true;
      }
      // A new PRLI replaces the image pair: tasks of the old one are gone.
      if (session.fcpServiceParams !== null) this.endNexus(session);
      session.fcpServiceParams = page.serviceParams;
      this.lsAcc(
        h,
        this.prliAccept(PRLI_RESPONSE.REQUEST_EXECUTED, FCP_SPP.TARGET_FUNCTION | FCP_SPP.READ_XFER_RDY_DISABLED),
      );
      this.log.info({ initiator: formatWwn(session.wwpn), nportId: formatPortId(h.sId) }, 'FCP image pair established');
    } else {
      const had = session.fcpServiceParams !== null;
      session.fcpServiceParams = null;
      this.lsAcc(
        h,
        encodeProcessLogin({
          command: ELS.LS_ACC,
          pages: [{ ...page, flags: PRLI_RESPONSE.REQUEST_EXECUTED, serviceParams: 0 }],
        }),
      );
      if (had) this.endNexus(session);
    }
    return true;
  }

  private prliAccept(code: number, serviceParams: number): Uint8Array {
    return encodeProcessLogin({
      command: ELS.LS_ACC,
      pages: [
        {
          type: FC4_TYPE_FCP,
          typeExtension: 0,
          flags: PRLI_FLAGS.ESTABLISH_IMAGE_PAIR | code,
          originatorPa: 0,
          responderPa: 0,
          serviceParams,
        },
      ],
    });
  }

  protected override sessionEnded(session: RemoteSession): void {
    if (session.fcpServiceParams !== null) this.endNexus(session);
  }

  private endNexus(session: RemoteSession): void {
    for (const [key, ex] of this.exchanges) {
      if (ex.initiator === session.nportId) {
        ex.aborted = true;
        clearTimeout(ex.timer);
        this.exchanges.delete(key);
      }
    }
    this.scsi.nexusLost(this.nexusFor(session));
  }

  private nexusFor(session: RemoteSession): ItNexus {
    return { initiatorWwpn: session.wwpn, targetWwpn: this.wwpn, relativeTargetPortId: this.scsi.relativePortId };
  }

  /** After an RSCN, confirm that the initiators we have sessions with are still there. */
  private async verifySessions(pages: RscnPage[]): Promise<void> {
    for (const session of [...this.sessions.values()]) {
      if (isWellKnownAddress(session.nportId)) continue;
      if (!pages.some((p) => rscnPageCovers(p, session.nportId))) continue;
      let still = false;
      try {
        still = (await this.nameServer.gpnId(session.nportId)) === session.wwpn;
      } catch {
        still = false;
      }
      if (!still && this.sessions.get(session.nportId) === session) {
        this.log.info({ initiator: formatWwn(session.wwpn) }, 'initiator left the fabric; session dropped');
        this.dropSession(session.nportId);
      }
    }
  }

  // ------------------------------------------------------------------------------ FCP

  protected override handleOther(frame: FcFrame): void {
    const h = frame.header;
    if (h.type !== FC_TYPE.FCP) return;
    if (h.rCtl === R_CTL.UNSOL_COMMAND) this.onCommand(frame);
    else if (h.rCtl === R_CTL.DEVICE_DATA_SOLICITED) this.onWriteData(frame);
  }

  private onCommand(frame: FcFrame): void {
    const h = frame.header;
    const session = this.sessions.get(h.sId);
    if (!session) {
      this.els(h.sId, encodeLogo({ nportId: this.nportId, wwpn: this.wwpn })).catch(() => undefined);
      return;
    }
    if (session.fcpServiceParams === null) {
      this.els(
        h.sId,
        encodeProcessLogin({
          command: ELS.PRLO,
          pages: [
            { type: FC4_TYPE_FCP, typeExtension: 0, flags: 0, originatorPa: 0, responderPa: 0, serviceParams: 0 },
          ],
        }),
      ).catch(() => undefined);
      return;
    }
    const key = `${h.sId}:${h.oxId}`;
    const rxId = this.allocRxId();
    const respond = (rsp: Parameters<typeof encodeFcpRsp>[0]): void => this.sendRsp(h.sId, h.oxId, rxId, rsp);
    const noResidual = { retryDelay: 0, residualOver: false, residualUnder: false, residual: 0 };
    if (this.exchanges.has(key)) {
      // OX_ID reuse while the exchange is open: the initiator is confused; refuse this command.
      respond({ ...noResidual, status: Status.BUSY, responseCode: null, sense: null });
      return;
    }
    let cmd: FcpCmnd;
    try {
      cmd = decodeFcpCmnd(frame.payload);
    } catch (err) {
      if (!(err instanceof FcDecodeError)) throw err;
      respond({ ...noResidual, status: Status.GOOD, responseCode: FCP_RSP_CODE.INVALID_FIELDS, sense: null });
      return;
    }
    const nexus = this.nexusFor(session);
    if (cmd.taskManagement !== 0) {
      void this.runTaskManagement(nexus, cmd, (code) =>
        respond({ ...noResidual, status: Status.GOOD, responseCode: code, sense: null }),
      );
      return;
    }
    if ((cmd.read && cmd.write) || cmd.dataLength > this.maxTransferLength) {
      respond({ ...noResidual, status: Status.GOOD, responseCode: FCP_RSP_CODE.INVALID_FIELDS, sense: null });
      return;
    }
    if (this.exchanges.size >= this.maxExchanges) {
      respond({ ...noResidual, status: Status.TASK_SET_FULL, responseCode: null, sense: null });
      return;
    }
    const ex: TargetExchange = {
      initiator: h.sId,
      oxId: h.oxId,
      rxId,
      cmd,
      nexus,
      writeBuf: cmd.write && cmd.dataLength > 0 ? new Uint8Array(cmd.dataLength) : null,
      received: 0,
      burstEnd: 0,
      aborted: false,
      timer: undefined,
    };
    this.exchanges.set(key, ex);
    if (ex.writeBuf) {
      ex.timer = setTimeout(() => {
        if (this.exchanges.get(key) === ex) this.exchanges.delete(key);
        this.log.warn({ oxId: ex.oxId }, 'write data did not arrive in time; exchange dropped');
      }, this.exchangeTimeoutMs);
      this.requestBurst(ex);
    } else {
      void this.execute(key, ex);
    }
  }

  private requestBurst(ex: TargetExchange): void {
    const burst = Math.min(this.maxBurst, ex.cmd.dataLength - ex.received);
    ex.burstEnd = ex.received + burst;
    this.mux.send(
      buildSequence(
        {
          rCtl: R_CTL.DATA_DESCRIPTOR,
          dId: ex.initiator,
          csCtl: 0,
          sId: this.nportId,
          type: FC_TYPE.FCP,
          fCtl: F_CTL.EX_CTX | F_CTL.END_SEQ | F_CTL.SEQ_INIT,
          seqId: this.nextSeqId(),
          dfCtl: 0,
          oxId: ex.oxId,
          rxId: ex.rxId,
        },
        encodeXferRdy({ relativeOffset: ex.received, burstLength: burst }),
        this.maxDataFieldTo(ex.initiator),
      ),
    );
  }

  private onWriteData(frame: FcFrame): void {
    const h = frame.header;
    const key = `${h.sId}:${h.oxId}`;
    const ex = this.exchanges.get(key);
    if (!ex?.writeBuf || ex.received >= ex.burstEnd) return;
    const ro = h.fCtl & F_CTL.REL_OFF ? h.parameter : ex.received;
    if (ro !== ex.received || ro + frame.payload.length > ex.burstEnd) {
      clearTimeout(ex.timer);
      this.exchanges.delete(key);
      this.sendRsp(ex.initiator, ex.oxId, ex.rxId, {
        status: Status.GOOD,
        retryDelay: 0,
        residualOver: false,
        residualUnder: false,
        residual: 0,
        responseCode: FCP_RSP_CODE.RO_MISMATCH,
        sense: null,
      });
      return;
    }
    ex.writeBuf.set(frame.payload, ro);
    ex.received += frame.payload.length;
    if (ex.received < ex.burstEnd) return;
    if (ex.received < ex.cmd.dataLength) {
      this.requestBurst(ex);
      return;
    }
    clearTimeout(ex.timer);
    void this.execute(key, ex);
  }

  private async execute(key: string, ex: TargetExchange): Promise<void> {
    const direction: DataDirection = ex.cmd.read ? 'read' : ex.cmd.write ? 'write' : 'none';
    let resp: ScsiResponse;
    try {
      resp = await this.scsi.execute({
        nexus: ex.nexus,
        lun: ex.cmd.lun,
        cdb: ex.cmd.cdb,
        direction,
        expectedLength: ex.cmd.dataLength,
        dataOut: ex.writeBuf,
        taskTag: ex.oxId,
      });
    } catch (err) {
      this.log.error({ err: (err as Error).message, oxId: ex.oxId }, 'SCSI execution failed');
      resp = { status: Status.CHECK_CONDITION, sense: fixedSense(0x4, 0x44, 0x00), dataIn: null };
    }
    if (ex.aborted || this.exchanges.get(key) !== ex) return;
    this.exchanges.delete(key);
    const expected = ex.cmd.dataLength;
    let moved = direction === 'write' ? expected : 0;
    const data = resp.dataIn;
    if (direction === 'read' && data && data.length > 0 && expected > 0) {
      const send = data.subarray(0, Math.min(data.length, expected));
      moved = send.length;
      this.mux.send(
        buildSequence(
          {
            rCtl: R_CTL.DEVICE_DATA_SOLICITED,
            dId: ex.initiator,
            csCtl: 0,
            sId: this.nportId,
            type: FC_TYPE.FCP,
            fCtl: F_CTL.EX_CTX | F_CTL.END_SEQ,
            seqId: this.nextSeqId(),
            dfCtl: 0,
            oxId: ex.oxId,
            rxId: ex.rxId,
            relativeOffset: 0,
          },
          send,
          this.maxDataFieldTo(ex.initiator),
        ),
      );
    }
    const available = direction === 'read' ? (data?.length ?? 0) : moved;
    const over = direction === 'read' && available > expected;
    const under = moved < expected;
    this.sendRsp(ex.initiator, ex.oxId, ex.rxId, {
      status: resp.status,
      retryDelay: 0,
      residualOver: over,
      residualUnder: under && !over,
      residual: over ? available - expected : under ? expected - moved : 0,
      responseCode: null,
      sense: resp.sense?.length ? resp.sense.subarray(0, 252) : null,
    });
  }

  private async runTaskManagement(nexus: ItNexus, cmd: FcpCmnd, done: (code: number) => void): Promise<void> {
    const matches = TMF_BY_FLAG.filter(([flag]) => cmd.taskManagement & flag);
    if (matches.length !== 1) {
      done(FCP_RSP_CODE.TMF_REJECTED);
      return;
    }
    const fn = matches[0]![1];
    // Exchanges the function ends are dropped here; the SCSI layer ends the tasks.
    for (const [key, ex] of this.exchanges) {
      const sameLun = ex.cmd.lun.every((b, i) => b === cmd.lun[i]);
      const hit =
        fn === 'target-reset' ||
        (fn === 'lun-reset' && sameLun) ||
        ((fn === 'abort-task-set' || fn === 'clear-task-set') &&
          sameLun &&
          ex.nexus.initiatorWwpn === nexus.initiatorWwpn);
      if (hit) {
        ex.aborted = true;
        clearTimeout(ex.timer);
        this.exchanges.delete(key);
      }
    }
    let code: number;
    try {
      code = await this.scsi.taskManagement(nexus, cmd.lun, fn);
    } catch {
      code = FCP_RSP_CODE.TMF_FAILED;
    }
    done(code);
  }

  private sendRsp(dId: number, oxId: number, rxId: number, rsp: Parameters<typeof encodeFcpRsp>[0]): void {
    this.mux.send(
      buildSequence(
        {
          rCtl: R_CTL.COMMAND_STATUS,
          dId,
          csCtl: 0,
          sId: this.nportId,
          type: FC_TYPE.FCP,
          fCtl: F_CTL.EX_CTX | F_CTL.LAST_SEQ | F_CTL.END_SEQ,
          seqId: this.nextSeqId(),
          dfCtl: 0,
          oxId,
          rxId,
        },
        encodeFcpRsp(rsp),
        this.maxDataFieldTo(dId),
      ),
    );
  }

  protected override handleAbts(h: FcHeader): void {
    const key = `${h.sId}:${h.oxId}`;
    const ex = this.exchanges.get(key);
    const fCtl = F_CTL.EX_CTX | F_CTL.LAST_SEQ | F_CTL.END_SEQ;
    if (!ex) {
      // Already completed (FCP_RSP crossed the ABTS) or never seen.
      this.reply(
        h,
        R_CTL.BLS_BA_RJT,
        encodeBaRjt({
          reason: BA_RJT_REASON.LOGICAL_ERROR,
          explanation: BA_RJT_EXPLANATION.INVALID_OX_ID_RX_ID,
          vendor: 0,
        }),
        h.rxId === FC_XID_UNKNOWN ? 0 : h.rxId,
        fCtl,
      );
      return;
    }
    ex.aborted = true;
    clearTimeout(ex.timer);
    this.exchanges.delete(key);
    this.reply(
      h,
      R_CTL.BLS_BA_ACC,
      encodeBaAcc({ seqIdValid: false, seqId: 0, oxId: ex.oxId, rxId: ex.rxId, lowSeqCnt: 0, highSeqCnt: 0xffff }),
      ex.rxId,
      fCtl,
    );
    this.scsi.taskManagement(ex.nexus, ex.cmd.lun, 'abort-task', ex.oxId).catch(() => undefined);
  }
}
