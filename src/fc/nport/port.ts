/**
 * N_Port engine shared by the initiator (src/fc/initiator.ts) and the array target ports
 * (src/san/target-port.ts): fabric login (FLOGI / FDISC), ELS and CT request/reply with
 * per-exchange timeouts, ABTS, PLOGI sessions with remote N_Ports, and the ELS every N_Port must
 * answer (RSCN, ECHO, RNID, ADISC, LOGO, PLOGI). Its exchanges go through the link's exchange
 * manager (exchange-manager.ts); its name-server queries through `nameServer`
 * (name-server-client.ts).
 *
 * Nothing a peer sends is trusted: malformed frames are dropped, replies whose S_ID does not match
 * the exchange's peer are ignored, every originated exchange has a deadline, and sequences are
 * reassembled under a byte budget.
 */
import { EventEmitter } from 'node:events';
import { encodeBaAcc } from '../bls.js';
import { FcDecodeError } from '../bytes.js';
import { CT_MAX_IU, CT_RESPONSE, type CtIu, decodeCt } from '../ct.js';
import {
  ELS,
  LS_RJT_EXPLANATION,
  LS_RJT_REASON,
  type RscnPage,
  type ServiceParameters,
  CSP_FEATURES,
  SCR_FUNCTION,
  decodeAdisc,
  decodeEcho,
  decodeLogo,
  decodeLsRjt,
  decodeRnidRequest,
  decodeRscn,
  decodeServiceParameters,
  defaultServiceParameters,
  elsCommandName,
  encodeAdisc,
  encodeEcho,
  encodeLogo,
  encodeLsAcc,
  encodeLsRjt,
  encodeRnidReply,
  encodeScr,
  encodeServiceParameters,
} from '../els.js';
import {
  F_CTL,
  F_CTL_REPLY,
  F_CTL_REQUEST,
  FC_DEFAULT_RX_DATA_FIELD,
  FC_TYPE,
  FC_XID_UNKNOWN,
  type FcFrame,
  type FcHeader,
  R_CTL,
  WELL_KNOWN,
  formatPortId,
  isWellKnownAddress,
} from '../frame.js';
import { SequenceAssembler, buildSequence } from '../sequence.js';
import { type Logger, logger } from '../../util/log.js';
import { formatWwn } from '../../util/wwn.js';
import { CtRejectError, ElsRejectError, ExchangeTimeoutError, LinkDownError, ProtocolError } from './errors.js';
import type { NPortLink } from './exchange-manager.js';
import { NameServerClient } from './name-server-client.js';
import { readU16BE } from '../../util/bytes.js';

/** Default deadline for an ELS/CT exchange (2 × R_A_TOV would be 20 s; peers here answer at once). */
export const DEFAULT_EXCHANGE_TIMEOUT_MS = 10_000;

export interface NPortOptions {
  wwpn: bigint;
  wwnn: bigint;
  /** Deadline for each originated ELS/CT exchange (ms). */
  exchangeTimeoutMs?: number;
  /** Receive data field size advertised in logins. */
  rxDataFieldSize?: number;
  log?: Logger;
}

export interface FabricParameters {
  nportId: number;
  fabricPortName: bigint;
  fabricName: bigint;
  npivSupported: boolean;
  raTovMs: number;
  edTovMs: number;
  rxDataFieldSize: number;
}

/** A PLOGI session with a remote N_Port. */
export interface RemoteSession {
  nportId: number;
  wwpn: bigint;
  wwnn: bigint;
  /** Largest data field to send to this port. */
  rxDataFieldSize: number;
  /** FCP service parameters of an established image pair, or null without PRLI. */
  fcpServiceParams: number | null;
}

export interface NPortEvents {
  rscn: [pages: RscnPage[]];
  'link-down': [reason: string];
  /** The fabric login ended without link loss: the physical port of this vport logged out or re-did FLOGI. */
  'fabric-logout': [reason: string];
  /** A remote port logged out from us (LOGO received) or its session was dropped. */
  'session-lost': [session: RemoteSession];
}

export interface ElsReply {
  header: FcHeader;
  payload: Uint8Array;
}

export class NPort extends EventEmitter<NPortEvents> {
  readonly wwpn: bigint;
  readonly wwnn: bigint;
  readonly exchangeTimeoutMs: number;
  readonly rxDataFieldSize: number;
  nportId = 0;
  fabric: FabricParameters | null = null;
  /** Logged in with FLOGI (the link's physical N_Port) rather than FDISC. */
  physical = false;
  readonly sessions = new Map<number, RemoteSession>();
  /** Registration with, and queries of, the directory server (through this port's CT exchanges). */
  readonly nameServer = new NameServerClient(this);
  protected readonly log: Logger;
  private readonly assembler = new SequenceAssembler(CT_MAX_IU);
  private seqId = 0;
  private rxIdNext = 1;

  constructor(
    readonly mux: NPortLink<NPort>,
    opts: NPortOptions,
  ) {
    super();
    this.wwpn = opts.wwpn;
    this.wwnn = opts.wwnn;
    this.exchangeTimeoutMs = opts.exchangeTimeoutMs ?? DEFAULT_EXCHANGE_TIMEOUT_MS;
    this.rxDataFieldSize = opts.rxDataFieldSize ?? FC_DEFAULT_RX_DATA_FIELD;
    this.log = opts.log ?? logger('nport', { wwpn: formatWwn(opts.wwpn) });
  }

  get loggedIn(): boolean {
    return this.fabric !== null;
  }

  // ----------------------------------------------------------------------------- fabric login

  /** FLOGI (the link's physical N_Port) or FDISC (an NPIV vport on a link whose physical port is logged in). */
  async fabricLogin(kind: 'flogi' | 'fdisc'): Promise<FabricParameters> {
    if (this.fabric) throw new ProtocolError(`${formatWwn(this.wwpn)} is already logged in to the fabric`);
    const sp = defaultServiceParameters(
      kind === 'flogi' ? ELS.FLOGI : ELS.FDISC,
      this.wwpn,
      this.wwnn,
      this.rxDataFieldSize,
    );
    if (kind === 'flogi') sp.commonFeatures |= CSP_FEATURES.CIRO_OR_NPIV; // we would like NPIV
    const reply = await this.exchange(
      WELL_KNOWN.F_PORT,
      R_CTL.ELS_REQUEST,
      FC_TYPE.ELS,
      encodeServiceParameters(sp),
      true,
    );
    const payload = this.elsAccept(sp.command, reply.payload);
    const acc = decodeServiceParameters(payload);
    const assigned = reply.header.dId;
    if (assigned === 0 || isWellKnownAddress(assigned))
      throw new ProtocolError(`fabric assigned an invalid N_Port ID ${formatPortId(assigned)}`);
    // A FLOGI re-initialises the link at the fabric: every other login on it is gone there.
    if (kind === 'flogi') this.endOtherLogins('the physical port logged in again (FLOGI)');
    this.physical = kind === 'flogi';
    this.nportId = assigned;
    this.fabric = {
      nportId: assigned,
      fabricPortName: acc.wwpn,
      fabricName: acc.wwnn,
      npivSupported: (acc.commonFeatures & CSP_FEATURES.NPIV_ACC) !== 0,
      raTovMs: acc.raTovOrSeqs,
      edTovMs: acc.edTov,
      rxDataFieldSize: Math.min(this.rxDataFieldSize, acc.bbRxDataFieldSize || FC_DEFAULT_RX_DATA_FIELD) & ~3,
    };
    this.mux.ports.set(assigned, this);
    this.log.info({ nportId: formatPortId(assigned), kind }, 'logged in to the fabric');
    return this.fabric;
  }

  /** LOGO to the F_Port: leave the fabric (a physical port's logout also ends its vports there). */
  async fabricLogout(): Promise<void> {
    if (!this.fabric) return;
    try {
      await this.els(WELL_KNOWN.F_PORT, encodeLogo({ nportId: this.nportId, wwpn: this.wwpn }));
    } finally {
      if (this.physical) this.endOtherLogins('the physical port logged out of the fabric');
      this.forgetFabric();
    }
  }

  /** The fabric dropped the other logins of this link; make the local N_Ports agree. */
  private endOtherLogins(reason: string): void {
    for (const p of [...this.mux.ports.values()]) {
      if (p === this) continue;
      p.forgetFabric();
      p.emit('fabric-logout', reason);
    }
  }

  /** Drop local fabric state (after logout or link loss). */
  protected forgetFabric(): void {
    if (this.mux.ports.get(this.nportId) === this) this.mux.ports.delete(this.nportId);
    this.fabric = null;
    for (const s of [...this.sessions.values()]) this.dropSession(s.nportId);
    this.nportId = 0;
  }

  /** Called by NPortLink when the link goes down. */
  linkLost(reason: string): void {
    this.forgetFabric();
    this.emit('link-down', reason);
  }

  // ----------------------------------------------------------------------------- requests

  /** Send an ELS request and return the LS_ACC payload; LS_RJT raises ElsRejectError. */
  async els(dId: number, payload: Uint8Array): Promise<Uint8Array> {
    const reply = await this.exchange(dId, R_CTL.ELS_REQUEST, FC_TYPE.ELS, payload, false);
    return this.elsAccept(payload[0]!, reply.payload);
  }

  /** Send a CT request (a full CT_IU) and return the FS_ACC; FS_RJT raises CtRejectError. */
  async ct(dId: number, request: Uint8Array): Promise<CtIu> {
    const reply = await this.exchange(dId, R_CTL.UNSOL_CONTROL, FC_TYPE.CT, request, false);
    const iu = decodeCt(reply.payload);
    const code = readU16BE(request, 8);
    if (iu.header.code === CT_RESPONSE.FS_RJT) throw new CtRejectError(code, iu.header.reason, iu.header.explanation);
    if (iu.header.code !== CT_RESPONSE.FS_ACC)
      throw new ProtocolError(`CT reply code 0x${iu.header.code.toString(16)} is neither FS_ACC nor FS_RJT`);
    return iu;
  }

  /**
   * ELS request whose reply payload (LS_ACC or LS_RJT) is returned as received, for pass-through
   * of a guest's ELS IOCB. No session state is kept for what passes through this way.
   */
  async elsRaw(dId: number, payload: Uint8Array): Promise<Uint8Array> {
    return (await this.exchange(dId, R_CTL.ELS_REQUEST, FC_TYPE.ELS, payload, false)).payload;
  }

  /** CT request whose reply CT_IU (FS_ACC or FS_RJT) is returned as received (guest CT pass-through). */
  async ctRaw(dId: number, request: Uint8Array): Promise<Uint8Array> {
    return (await this.exchange(dId, R_CTL.UNSOL_CONTROL, FC_TYPE.CT, request, false)).payload;
  }

  private elsAccept(command: number, payload: Uint8Array): Uint8Array {
    if (payload.length < 4) throw new ProtocolError(`${elsCommandName(command)} reply is ${payload.length} bytes`);
    if (payload[0] === ELS.LS_RJT) throw new ElsRejectError(command, decodeLsRjt(payload));
    if (payload[0] !== ELS.LS_ACC)
      throw new ProtocolError(
        `${elsCommandName(command)} reply 0x${payload[0]!.toString(16)} is neither LS_ACC nor LS_RJT`,
      );
    return payload;
  }

  /** One request sequence, one reply sequence, under the exchange deadline. */
  private exchange(dId: number, rCtl: number, type: number, payload: Uint8Array, login: boolean): Promise<ElsReply> {
    if (!this.mux.isUp) return Promise.reject(new LinkDownError('link is down'));
    if (!login && !this.fabric) return Promise.reject(new ProtocolError('not logged in to the fabric'));
    const what = `${type === FC_TYPE.ELS ? elsCommandName(payload[0] ?? 0) : 'CT'} to ${formatPortId(dId)}`;
    return new Promise<ElsReply>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const assembler = new SequenceAssembler(CT_MAX_IU, 2);
      const ex = this.mux.openExchange(this, login, (oxId) => ({
        oxId,
        peer: dId,
        rxId: FC_XID_UNKNOWN,
        onFrame: (frame) => {
          const whole = assembler.push(frame);
          if (!whole) return;
          finish();
          resolve({ header: whole.header, payload: whole.payload });
        },
        onFail: (err) => {
          finish();
          reject(err);
        },
      }));
      const finish = (): void => {
        clearTimeout(timer);
        this.mux.closeExchange(ex.oxId);
      };
      timer = setTimeout(() => {
        finish();
        this.sendAbts(dId, ex.oxId, FC_XID_UNKNOWN);
        reject(new ExchangeTimeoutError(what, this.exchangeTimeoutMs));
      }, this.exchangeTimeoutMs);
      const frames = buildSequence(
        {
          rCtl,
          dId,
          csCtl: 0,
          sId: login ? 0 : this.nportId,
          type,
          fCtl: F_CTL_REQUEST,
          seqId: this.nextSeqId(),
          dfCtl: 0,
          oxId: ex.oxId,
          rxId: FC_XID_UNKNOWN,
        },
        payload,
        this.maxDataFieldTo(dId),
      );
      if (!this.mux.send(frames)) {
        finish();
        reject(new LinkDownError('link is down'));
      }
    });
  }

  /** Largest data field to send to a destination: the PLOGI-negotiated size, else the fabric's. */
  maxDataFieldTo(dId: number): number {
    const s = this.sessions.get(dId);
    const fabric = this.fabric?.rxDataFieldSize ?? FC_DEFAULT_RX_DATA_FIELD;
    return Math.max(256, Math.min(s?.rxDataFieldSize ?? fabric, fabric)) & ~3;
  }

  nextSeqId(): number {
    this.seqId = (this.seqId + 1) & 0xff;
    return this.seqId;
  }

  /** Allocate an RX_ID for an exchange a remote port originated to us. */
  allocRxId(): number {
    const id = this.rxIdNext;
    this.rxIdNext = this.rxIdNext >= 0xfffe ? 1 : this.rxIdNext + 1;
    return id;
  }

  /** ABTS for an exchange we originated (fire and forget: the BA_ACC/BA_RJT only ends it). */
  sendAbts(dId: number, oxId: number, rxId: number): void {
    this.mux.send(
      buildSequence(
        {
          rCtl: R_CTL.BLS_ABTS,
          dId,
          csCtl: 0,
          sId: this.nportId,
          type: FC_TYPE.BLS,
          fCtl: F_CTL.END_SEQ | F_CTL.SEQ_INIT,
          seqId: this.nextSeqId(),
          dfCtl: 0,
          oxId,
          rxId,
        },
        new Uint8Array(0),
        FC_DEFAULT_RX_DATA_FIELD,
      ),
    );
  }

  /** Send a reply sequence on an exchange a remote port originated (we are the responder). */
  reply(req: FcHeader, rCtl: number, payload: Uint8Array, rxId = req.rxId, extraFCtl = F_CTL_REPLY): void {
    this.mux.send(
      buildSequence(
        {
          rCtl,
          dId: req.sId,
          csCtl: 0,
          sId: this.nportId,
          type: req.type,
          fCtl: extraFCtl,
          seqId: this.nextSeqId(),
          dfCtl: 0,
          oxId: req.oxId,
          rxId: rxId === FC_XID_UNKNOWN ? this.allocRxId() : rxId,
        },
        payload,
        this.maxDataFieldTo(req.sId),
      ),
    );
  }

  protected lsRjt(req: FcHeader, reason: number, explanation: number = LS_RJT_EXPLANATION.NONE): void {
    this.reply(req, R_CTL.ELS_REPLY, encodeLsRjt({ reason, explanation }));
  }

  protected lsAcc(req: FcHeader, payload: Uint8Array = encodeLsAcc()): void {
    this.reply(req, R_CTL.ELS_REPLY, payload);
  }

  // ----------------------------------------------------------------------------- fabric services

  /** Register for RSCNs with the fabric controller (SCR, full registration by default). */
  async scr(fn: number = SCR_FUNCTION.FULL): Promise<void> {
    await this.els(WELL_KNOWN.FABRIC_CONTROLLER, encodeScr(fn));
  }

  // ----------------------------------------------------------------------------- sessions

  /** PLOGI to a remote N_Port (or a well-known server); records the session. */
  async plogi(dId: number): Promise<RemoteSession> {
    const sp = defaultServiceParameters(ELS.PLOGI, this.wwpn, this.wwnn, this.rxDataFieldSize);
    const acc = decodeServiceParameters(await this.els(dId, encodeServiceParameters(sp)));
    const session: RemoteSession = {
      nportId: dId,
      wwpn: acc.wwpn,
      wwnn: acc.wwnn,
      rxDataFieldSize: sessionDataField(acc),
      fcpServiceParams: null,
    };
    this.sessions.set(dId, session);
    return session;
  }

  /** Explicit LOGO to a remote N_Port; the session is dropped whatever the answer. */
  async logo(dId: number): Promise<void> {
    try {
      await this.els(dId, encodeLogo({ nportId: this.nportId, wwpn: this.wwpn }));
    } finally {
      this.dropSession(dId);
    }
  }

  /** ADISC: confirm a remote port's identity; returns its names and N_Port ID. */
  async adisc(dId: number): Promise<{ wwpn: bigint; wwnn: bigint; nportId: number }> {
    const a = decodeAdisc(
      await this.els(
        dId,
        encodeAdisc({ command: ELS.ADISC, hardAddress: 0, wwpn: this.wwpn, wwnn: this.wwnn, nportId: this.nportId }),
      ),
    );
    return { wwpn: a.wwpn, wwnn: a.wwnn, nportId: a.nportId };
  }

  dropSession(nportId: number): void {
    const s = this.sessions.get(nportId);
    if (!s) return;
    this.sessions.delete(nportId);
    this.sessionEnded(s);
    this.emit('session-lost', s);
  }

  /** Hook for subclasses: a session ended (LOGO, link loss, RSCN verification). */
  protected sessionEnded(_session: RemoteSession): void {}

  // ----------------------------------------------------------------------------- inbound

  /** A frame not belonging to an exchange we originated (routed here by D_ID). */
  receiveUnsolicited(frame: FcFrame): void {
    const h = frame.header;
    if (h.type === FC_TYPE.BLS && h.rCtl === R_CTL.BLS_ABTS) {
      this.handleAbts(h);
      return;
    }
    if (h.type === FC_TYPE.ELS && h.rCtl === R_CTL.ELS_REQUEST) {
      const whole = this.assembler.push(frame);
      if (!whole) return;
      try {
        this.handleEls(whole);
      } catch (err) {
        if (!(err instanceof FcDecodeError)) throw err;
        this.lsRjt(h, LS_RJT_REASON.PROTOCOL_ERROR, LS_RJT_EXPLANATION.INVALID_PAYLOAD_LENGTH);
      }
      return;
    }
    this.handleOther(frame);
  }

  /** ELS requests every N_Port answers; subclasses extend through handleElsCommand. */
  protected handleEls(frame: FcFrame): void {
    const h = frame.header;
    const p = frame.payload;
    const code = p[0] ?? 0;
    switch (code) {
      case ELS.RSCN: {
        const pages = decodeRscn(p);
        this.lsAcc(h);
        this.emit('rscn', pages);
        return;
      }
      case ELS.ECHO:
        this.lsAcc(h, encodeEcho(decodeEcho(p), ELS.LS_ACC));
        return;
      case ELS.RNID:
        decodeRnidRequest(p);
        this.lsAcc(h, encodeRnidReply({ format: 0, wwpn: this.wwpn, wwnn: this.wwnn, specific: new Uint8Array(0) }));
        return;
      case ELS.PLOGI: {
        const sp = decodeServiceParameters(p);
        if (sp.wwpn === 0n) return this.lsRjt(h, LS_RJT_REASON.LOGICAL_ERROR, LS_RJT_EXPLANATION.INVALID_PORT_NAME);
        // A new PLOGI replaces an existing session (and with it any image pair).
        if (this.sessions.has(h.sId)) this.dropSession(h.sId);
        this.sessions.set(h.sId, {
          nportId: h.sId,
          wwpn: sp.wwpn,
          wwnn: sp.wwnn,
          rxDataFieldSize: sessionDataField(sp),
          fcpServiceParams: null,
        });
        const acc = defaultServiceParameters(ELS.LS_ACC, this.wwpn, this.wwnn, this.rxDataFieldSize);
        this.lsAcc(h, encodeServiceParameters(acc));
        return;
      }
      case ELS.LOGO: {
        const logo = decodeLogo(p);
        this.lsAcc(h);
        if (logo.nportId === h.sId) this.dropSession(h.sId);
        return;
      }
      case ELS.ADISC: {
        decodeAdisc(p);
        if (!this.sessions.has(h.sId))
          return this.lsRjt(h, LS_RJT_REASON.UNABLE_TO_PERFORM, LS_RJT_EXPLANATION.PLOGI_REQUIRED);
        this.lsAcc(
          h,
          encodeAdisc({ command: ELS.LS_ACC, hardAddress: 0, wwpn: this.wwpn, wwnn: this.wwnn, nportId: this.nportId }),
        );
        return;
      }
      default:
        if (!this.handleElsCommand(frame))
          this.lsRjt(h, LS_RJT_REASON.COMMAND_NOT_SUPPORTED, LS_RJT_EXPLANATION.REQUEST_NOT_SUPPORTED);
    }
  }

  /** Subclass hook for further ELS (PRLI, PRLO); return false to answer LS_RJT "not supported". */
  protected handleElsCommand(_frame: FcFrame): boolean {
    return false;
  }

  /** Subclass hook for FCP and other FC-4 frames. */
  protected handleOther(_frame: FcFrame): void {}

  /** Default ABTS handling: nothing of ours to abort, accept (the exchange is gone). */
  protected handleAbts(h: FcHeader): void {
    this.reply(
      h,
      R_CTL.BLS_BA_ACC,
      encodeBaAcc({ seqIdValid: false, seqId: 0, oxId: h.oxId, rxId: h.rxId, lowSeqCnt: 0, highSeqCnt: 0xffff }),
      h.rxId,
      F_CTL.EX_CTX | F_CTL.LAST_SEQ | F_CTL.END_SEQ,
    );
  }
}

/** Data field size a peer accepts, from its PLOGI service parameters (class 3, bounded). */
function sessionDataField(sp: ServiceParameters): number {
  const size =
    sp.class3Valid && sp.class3RxDataFieldSize
      ? Math.min(sp.class3RxDataFieldSize, sp.bbRxDataFieldSize || 2112)
      : sp.bbRxDataFieldSize;
  return Math.max(256, Math.min(size || FC_DEFAULT_RX_DATA_FIELD, FC_DEFAULT_RX_DATA_FIELD)) & ~3;
}
