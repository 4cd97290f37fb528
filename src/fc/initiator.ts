/**
 * FC initiator N_Port engine over a link (FCP-4 initiator function; FC-LS-3 logins; FC-GS-7 name
 * server client). It is the test initiator of the SAN unit tests and the "firmware" of the
 * emulated HBA, which carries the guest's logins and I/O through it.
 *
 * Usage:
 *   const hba = await Initiator.connect(linkPath, { wwpn, wwnn });   // FLOGI on a new link
 *   const vport = await hba.createVport({ wwpn, wwnn });               // FDISC on the same link
 *   await vport.scr(); await vport.nameServer.register({ fcpFeatures: FC4_FEATURE.INITIATOR });
 *   for (const t of await vport.discoverTargets()) { await vport.plogi(t.nportId); await vport.prli(t.nportId); }
 *   const r = await vport.scsiCommand(t.nportId, { lun: 0, cdb, direction: 'read', expectedLength: 36 });
 *
 * Every exchange has a deadline (exchangeTimeoutMs for ELS/CT, `timeoutMs` per SCSI command);
 * on expiry the exchange is aborted with ABTS and the promise rejects. Events: 'rscn' (pages),
 * 'link-down' (reason), 'session-lost' (a target logged us out).
 */
import { FC4_FEATURE, FC4_TYPE_FCP } from './ct.js';
import { ELS, FCP_SPP, PRLI_FLAGS, PRLI_RESPONSE, decodeProcessLogin, encodeProcessLogin } from './els.js';
import {
  FCP_CDB_SIZE,
  FCP_LUN_SIZE,
  FCP_TASK_ATTRIBUTE,
  FCP_TMF,
  decodeFcpRsp,
  decodeXferRdy,
  encodeFcpCmnd,
} from './fcp.js';
import { F_CTL, F_CTL_REQUEST, FC_TYPE, FC_XID_UNKNOWN, type FcFrame, R_CTL, formatPortId } from './frame.js';
import { ExchangeTimeoutError, LinkDownError, ProtocolError } from './nport/errors.js';
import { NPortLink } from './nport/exchange-manager.js';
import { NPort, type NPortOptions, type RemoteSession } from './nport/port.js';
import { buildSequence } from './sequence.js';
import { type Link, connectLink } from './link.js';
import { DataPathClient, type DataPathCommand } from './data-path-client.js';
import type { DataDirection, TaskManagementFunction } from '../scsi/sam.js';

/** Default deadline for one SCSI command exchange. */
export const DEFAULT_SCSI_TIMEOUT_MS = 30_000;
/** Largest transfer one command may move (FCP_DL); bounds the read buffer we allocate. */
export const MAX_TRANSFER_LENGTH = 64 * 1024 * 1024;
/** Longest wait for BA_ACC after sending ABTS (capped by the port's exchange timeout). */
const ABTS_TIMEOUT_MS = 2_000;

export interface TargetInfo {
  nportId: number;
  wwpn: bigint;
  wwnn: bigint;
}

export interface ScsiCommand {
  /** LUN number (single-level peripheral/flat addressing) or the 8-byte FCP_LUN field. */
  lun: number | Uint8Array;
  cdb: Uint8Array;
  direction: DataDirection;
  /** FCP_DL: bytes expected to move (read buffer size / write length). Defaults to dataOut length or 0. */
  expectedLength?: number;
  dataOut?: Uint8Array;
  taskAttribute?: number;
  timeoutMs?: number;
  /** Aborts the command with ABTS when fired (see CommandAbort). */
  abort?: CommandAbort;
}

/**
 * Cancels one SCSI command (ABORT TASK as ABTS of its exchange). A one-listener stand-in for
 * AbortController, which costs an EventTarget and an AbortSignal per command on the I/O path.
 */
export class CommandAbort {
  private fired = false;
  private listener: (() => void) | null = null;

  get aborted(): boolean {
    return this.fired;
  }

  abort(): void {
    if (this.fired) return;
    this.fired = true;
    const l = this.listener;
    this.listener = null;
    l?.();
  }

  /** The command's own hook (one at a time); null detaches it when the command ends. */
  attach(listener: (() => void) | null): void {
    this.listener = listener;
  }
}

/** A SCSI exchange's deadline in the port's sweep (Date.now() ms). */
interface Deadline {
  at: number;
  expire(): void;
}

export interface ScsiResult {
  status: number;
  sense: Uint8Array | null;
  /** Read data actually received (expectedLength minus any under-run). */
  data: Uint8Array;
  residualUnder: boolean;
  residualOver: boolean;
  residual: number;
  /** FCP_RSP_INFO response code when the target sent one. */
  responseCode: number | null;
  /**
   * Bytes actually moved, as counted here: highest read byte received, or write bytes sent. An
   * HBA compares this with the target's residual (qla2xxx: firmware vs FCP residual) to detect
   * dropped frames.
   */
  transferred: number;
  /** The OX_ID the command used (the task tag at the target). */
  oxId: number;
}

/** The task management functions FCP_CMND carries; ABORT TASK is an ABTS of the command's exchange (FCP-4). */
export type TaskManagement = Exclude<TaskManagementFunction, 'abort-task'>;
const TMF_FLAGS: Record<TaskManagement, number> = {
  'abort-task-set': FCP_TMF.ABORT_TASK_SET,
  'clear-task-set': FCP_TMF.CLEAR_TASK_SET,
  'lun-reset': FCP_TMF.LUN_RESET,
  'target-reset': FCP_TMF.TARGET_RESET,
  'clear-aca': FCP_TMF.CLEAR_ACA,
};

export class ScsiAbortedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ScsiAbortedError';
  }
}

/** SAM LUN field for a LUN number: peripheral device addressing below 256, flat space above. */
export function lunField(lun: number): Uint8Array {
  if (!Number.isInteger(lun) || lun < 0 || lun > 0x3fff) throw new RangeError(`LUN ${lun} is outside 0..16383`);
  const b = new Uint8Array(FCP_LUN_SIZE);
  if (lun < 256) b[1] = lun;
  else {
    b[0] = 0x40 | (lun >> 8);
    b[1] = lun & 0xff;
  }
  return b;
}

export class Initiator extends NPort {
  /**
   * Deadlines of the open SCSI exchanges, checked by one timer armed for the earliest (commands
   * share one timeout, so a new deadline is almost never earlier than the armed one): a Set
   * insert/delete per command instead of a setTimeout/clearTimeout pair.
   */
  private readonly deadlines = new Set<Deadline>();
  private sweepTimer: NodeJS.Timeout | null = null;
  private sweepAt = Number.POSITIVE_INFINITY;

  /** Connect a new link to a fabric socket and FLOGI as its physical N_Port. */
  static async connect(path: string, opts: NPortOptions): Promise<Initiator> {
    const link = await connectLink(path);
    return Initiator.overLink(link, opts);
  }

  /** FLOGI on an already-connected link. */
  static async overLink(link: Link, opts: NPortOptions): Promise<Initiator> {
    const port = new Initiator(new NPortLink(link), opts);
    try {
      await port.fabricLogin('flogi');
    } catch (err) {
      link.close('fabric login failed');
      throw err;
    }
    return port;
  }

  /** NPIV: FDISC a further N_Port on this port's link. */
  async createVport(opts: NPortOptions): Promise<Initiator> {
    if (!this.fabric) throw new ProtocolError('the physical port is not logged in');
    if (!this.fabric.npivSupported) throw new ProtocolError('the fabric does not support NPIV');
    const vport = new Initiator(this.mux, { exchangeTimeoutMs: this.exchangeTimeoutMs, ...opts });
    await vport.fabricLogin('fdisc');
    return vport;
  }

  /** Take the whole link down (all its N_Ports). */
  closeLink(reason = 'closed by the initiator'): void {
    this.mux.close(reason);
  }

  /** GPN_FT + GNN_FT for FCP: the FCP ports this port may see (itself excluded), with names. */
  async discoverTargets(): Promise<TargetInfo[]> {
    const ports = await this.nameServer.gpnFt(FC4_TYPE_FCP);
    const nodes = new Map((await this.nameServer.gnnFt(FC4_TYPE_FCP)).map((e) => [e.nportId, e.name]));
    const out: TargetInfo[] = [];
    for (const p of ports) {
      if (p.nportId === this.nportId || p.name === 0n) continue;
      const features = await this.nameServer.gffIdFcp(p.nportId).catch(() => FC4_FEATURE.TARGET);
      if (!(features & FC4_FEATURE.TARGET)) continue;
      out.push({ nportId: p.nportId, wwpn: p.name, wwnn: nodes.get(p.nportId) ?? 0n });
    }
    return out;
  }

  /** PRLI (FCP image pair, initiator function). Requires a PLOGI session; returns the target's FCP service parameters. */
  async prli(dId: number): Promise<number> {
    const session = this.requireSession(dId);
    const acc = decodeProcessLogin(
      await this.els(
        dId,
        encodeProcessLogin({
          command: ELS.PRLI,
          pages: [
            {
              type: FC4_TYPE_FCP,
              typeExtension: 0,
              flags: PRLI_FLAGS.ESTABLISH_IMAGE_PAIR,
              originatorPa: 0,
              responderPa: 0,
              serviceParams: FCP_SPP.INITIATOR_FUNCTION | FCP_SPP.READ_XFER_RDY_DISABLED,
            },
          ],
        }),
      ),
    );
    const page = acc.pages.find((pg) => pg.type === FC4_TYPE_FCP);
    if (!page) throw new ProtocolError(`PRLI LS_ACC from ${formatPortId(dId)} has no FCP page`);
    const code = page.flags & PRLI_FLAGS.RESPONSE_CODE_MASK;
    if (code !== PRLI_RESPONSE.REQUEST_EXECUTED && code !== PRLI_RESPONSE.EXECUTED_CONDITIONALLY) {
      throw new ProtocolError(`PRLI to ${formatPortId(dId)} not executed (response code ${code})`);
    }
    session.fcpServiceParams = page.serviceParams;
    return page.serviceParams;
  }

  /** PRLO: end the FCP image pair (the PLOGI session stays). */
  async prlo(dId: number): Promise<void> {
    const session = this.requireSession(dId);
    await this.els(
      dId,
      encodeProcessLogin({
        command: ELS.PRLO,
        pages: [{ type: FC4_TYPE_FCP, typeExtension: 0, flags: 0, originatorPa: 0, responderPa: 0, serviceParams: 0 }],
      }),
    );
    session.fcpServiceParams = null;
  }

  /** Task management function (FCP_CMND with a TMF flag); returns the FCP_RSP_INFO response code. */
  async taskManagement(dId: number, lun: number | Uint8Array, fn: TaskManagement): Promise<number> {
    const r = await this.fcpExchange(dId, {
      lun,
      cdb: new Uint8Array(FCP_CDB_SIZE),
      direction: 'none',
      tmf: TMF_FLAGS[fn],
    });
    if (r.responseCode === null)
      throw new ProtocolError('FCP_RSP to a task management function carries no response code');
    return r.responseCode;
  }

  /** Run one SCSI command on a target we have PLOGI + PRLI with. */
  scsiCommand(dId: number, cmd: ScsiCommand): Promise<ScsiResult> {
    return this.fcpExchange(dId, { ...cmd, tmf: 0 });
  }

  private addDeadline(d: Deadline): void {
    this.deadlines.add(d);
    if (d.at < this.sweepAt) this.armSweep(d.at);
  }

  private armSweep(at: number): void {
    if (this.sweepTimer) clearTimeout(this.sweepTimer);
    this.sweepAt = at;
    // Unref'd: an open exchange always has its link keeping the process alive; the timer alone
    // must not (it outlives the last command until it fires).
    this.sweepTimer = setTimeout(() => this.sweepDeadlines(), Math.max(0, at - Date.now())).unref();
  }

  private sweepDeadlines(): void {
    this.sweepTimer = null;
    this.sweepAt = Number.POSITIVE_INFINITY;
    const now = Date.now();
    let next = Number.POSITIVE_INFINITY;
    for (const d of this.deadlines) {
      if (d.at <= now) {
        this.deadlines.delete(d);
        d.expire();
      } else if (d.at < next) next = d.at;
    }
    if (next !== Number.POSITIVE_INFINITY) this.armSweep(next);
  }

  /**
   * A READ/WRITE served on the data path the SAN granted for this nexus (src/fc/data-path-client.ts),
   * or null: send it as frames (scsiCommand).
   */
  dataPathCommand(dId: number, cmd: DataPathCommand): ReturnType<DataPathClient['serve']> {
    const session = this.sessions.get(dId);
    if (!session || session.fcpServiceParams === null || !(session.fcpServiceParams & FCP_SPP.TARGET_FUNCTION))
      return null;
    return DataPathClient.for(this.mux.link)?.serve(this.nportId, dId, cmd) ?? null;
  }

  protected override sessionEnded(session: RemoteSession): void {
    super.sessionEnded(session);
    DataPathClient.existing(this.mux.link)?.sessionEnded(this.nportId, session.nportId);
  }

  private requireSession(dId: number): RemoteSession {
    const s = this.sessions.get(dId);
    if (!s) throw new ProtocolError(`no PLOGI session with ${formatPortId(dId)}`);
    return s;
  }

  private fcpExchange(dId: number, cmd: ScsiCommand & { tmf: number }): Promise<ScsiResult> {
    const session = this.sessions.get(dId);
    if (!session || session.fcpServiceParams === null) {
      return Promise.reject(new ProtocolError(`no FCP image pair (PLOGI + PRLI) with ${formatPortId(dId)}`));
    }
    if (!(session.fcpServiceParams & FCP_SPP.TARGET_FUNCTION)) {
      return Promise.reject(new ProtocolError(`${formatPortId(dId)} did not offer the FCP target function`));
    }
    if (cmd.cdb.length > FCP_CDB_SIZE)
      return Promise.reject(new RangeError('CDBs longer than 16 bytes are not supported'));
    const dataOut = cmd.direction === 'write' ? (cmd.dataOut ?? new Uint8Array(0)) : null;
    const expected = cmd.expectedLength ?? dataOut?.length ?? 0;
    if (!Number.isInteger(expected) || expected < 0 || expected > MAX_TRANSFER_LENGTH) {
      return Promise.reject(new RangeError(`expected length ${expected} is outside 0..${MAX_TRANSFER_LENGTH}`));
    }
    if (dataOut && dataOut.length < expected)
      return Promise.reject(new RangeError('write data is shorter than the expected length'));
    const cdb = new Uint8Array(FCP_CDB_SIZE);
    cdb.set(cmd.cdb);
    const lun = typeof cmd.lun === 'number' ? lunField(cmd.lun) : cmd.lun;
    const timeoutMs = cmd.timeoutMs ?? DEFAULT_SCSI_TIMEOUT_MS;
    const maxField = this.maxDataFieldTo(dId);

    return new Promise<ScsiResult>((resolve, reject) => {
      const readBuf = cmd.direction === 'read' ? new Uint8Array(expected) : null;
      let readBytes = 0;
      let writeOffset = 0;
      let writeSeqCnt = 0;
      let aborting = false;
      let abtsTimer: NodeJS.Timeout | undefined;
      const deadline: Deadline = {
        at: Date.now() + timeoutMs,
        expire: () =>
          abort(
            new ExchangeTimeoutError(`SCSI command OX_ID 0x${ex.oxId.toString(16)} to ${formatPortId(dId)}`, timeoutMs),
          ),
      };

      const finish = (): void => {
        this.deadlines.delete(deadline);
        if (abtsTimer) clearTimeout(abtsTimer);
        cmd.abort?.attach(null);
        this.mux.closeExchange(ex.oxId);
      };
      const fail = (err: Error): void => {
        finish();
        reject(err);
      };
      const abort = (err: Error): void => {
        if (aborting) return;
        aborting = true;
        this.deadlines.delete(deadline);
        this.sendAbts(dId, ex.oxId, ex.rxId);
        // The exchange stays open until BA_ACC/BA_RJT arrives (or a short deadline passes), so
        // late frames of the aborted exchange are not mistaken for a new one with the same OX_ID.
        abtsTimer = setTimeout(() => fail(err), Math.min(ABTS_TIMEOUT_MS, this.exchangeTimeoutMs));
        pendingAbortError = err;
      };
      let pendingAbortError: Error | null = null;
      const onAbortSignal = (): void => abort(new ScsiAbortedError(`command OX_ID 0x${ex.oxId.toString(16)} aborted`));

      const onFrame = (frame: FcFrame): void => {
        const h = frame.header;
        if (ex.rxId === FC_XID_UNKNOWN && h.rxId !== FC_XID_UNKNOWN) ex.rxId = h.rxId;
        if (aborting) {
          if (h.type === FC_TYPE.BLS && (h.rCtl === R_CTL.BLS_BA_ACC || h.rCtl === R_CTL.BLS_BA_RJT))
            fail(pendingAbortError!);
          return;
        }
        if (h.type !== FC_TYPE.FCP) return;
        switch (h.rCtl) {
          case R_CTL.DEVICE_DATA_SOLICITED: {
            if (!readBuf) return abort(new ProtocolError('target sent FCP_DATA on a command without read data'));
            const ro = h.fCtl & F_CTL.REL_OFF ? h.parameter : readBytes;
            // Data past FCP_DL is an over-run; the target reports it in FCP_RSP, we just discard it.
            if (ro < readBuf.length) readBuf.set(frame.payload.subarray(0, readBuf.length - ro), ro);
            readBytes = Math.max(readBytes, Math.min(readBuf.length, ro + frame.payload.length));
            return;
          }
          case R_CTL.DATA_DESCRIPTOR: {
            if (!dataOut) return abort(new ProtocolError('target sent FCP_XFER_RDY on a command without write data'));
            const x = decodeXferRdy(frame.payload);
            if (
              x.relativeOffset !== writeOffset ||
              x.burstLength === 0 ||
              x.relativeOffset + x.burstLength > expected
            ) {
              return abort(
                new ProtocolError(
                  `FCP_XFER_RDY offset ${x.relativeOffset} length ${x.burstLength} does not fit the ${expected}-byte write at ${writeOffset}`,
                ),
              );
            }
            const frames = buildSequence(
              {
                rCtl: R_CTL.DEVICE_DATA_SOLICITED,
                dId,
                csCtl: 0,
                sId: this.nportId,
                type: FC_TYPE.FCP,
                fCtl: F_CTL.END_SEQ | F_CTL.SEQ_INIT,
                seqId: this.nextSeqId(),
                dfCtl: 0,
                oxId: ex.oxId,
                rxId: ex.rxId,
                relativeOffset: x.relativeOffset,
                firstSeqCnt: writeSeqCnt,
              },
              dataOut.subarray(x.relativeOffset, x.relativeOffset + x.burstLength),
              maxField,
            );
            writeSeqCnt = (writeSeqCnt + frames.length) & 0xffff;
            writeOffset += x.burstLength;
            this.mux.send(frames);
            return;
          }
          case R_CTL.COMMAND_STATUS: {
            const rsp = decodeFcpRsp(frame.payload);
            if (rsp.residualUnder && rsp.residual > expected) {
              return fail(new ProtocolError(`FCP_RSP under-run residual ${rsp.residual} exceeds FCP_DL ${expected}`));
            }
            // Under-run: the target says how much did not come; otherwise FCP_DL bytes were sent.
            const received = readBuf
              ? readBuf.subarray(0, rsp.residualUnder ? expected - rsp.residual : expected)
              : new Uint8Array(0);
            finish();
            resolve({
              status: rsp.status,
              sense: rsp.sense,
              data: received,
              residualUnder: rsp.residualUnder,
              residualOver: rsp.residualOver,
              residual: rsp.residual,
              responseCode: rsp.responseCode,
              transferred: readBuf ? readBytes : writeOffset,
              oxId: ex.oxId,
            });
            return;
          }
          default:
            return;
        }
      };

      const ex = this.mux.openExchange(this, false, (oxId) => ({
        oxId,
        peer: dId,
        rxId: FC_XID_UNKNOWN,
        onFrame,
        onFail: (err) =>
          fail(err instanceof LinkDownError ? err : new ProtocolError(`exchange failed: ${err.message}`)),
      }));
      if (cmd.abort) {
        if (cmd.abort.aborted) {
          finish();
          reject(new ScsiAbortedError('aborted before it was sent'));
          return;
        }
        cmd.abort.attach(onAbortSignal);
      }
      this.addDeadline(deadline);
      const payload = encodeFcpCmnd({
        lun,
        crn: 0,
        taskAttribute: cmd.taskAttribute ?? FCP_TASK_ATTRIBUTE.SIMPLE,
        taskManagement: cmd.tmf,
        read: cmd.direction === 'read',
        write: cmd.direction === 'write',
        cdb,
        dataLength: expected,
      });
      const sent = this.mux.send(
        buildSequence(
          {
            rCtl: R_CTL.UNSOL_COMMAND,
            dId,
            csCtl: 0,
            sId: this.nportId,
            type: FC_TYPE.FCP,
            fCtl: F_CTL_REQUEST,
            seqId: this.nextSeqId(),
            dfCtl: 0,
            oxId: ex.oxId,
            rxId: FC_XID_UNKNOWN,
          },
          payload,
          maxField,
        ),
      );
      if (!sent) fail(new LinkDownError('link is down'));
    });
  }
}
