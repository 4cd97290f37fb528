/**
 * The simulated FC switch (one domain): F_Ports that links attach to, fabric login (FLOGI for the
 * physical N_Port of a link, FDISC for its NPIV vports — FC-LS-3 §4.2.11/§4.2.12), the name server,
 * zoning, RSCN (FC-LS-3 §4.2.28) to ports registered with SCR, and frame forwarding.
 *
 * Addresses: domain from the config, area = the F_Port the link was given at its FLOGI (1..239),
 * port (AL_PA byte) 0x00 for the FLOGI login and 0x01.. for FDISC logins on the same link.
 *
 * A link takes an F_Port only when its FLOGI is accepted, and gives it back when its last login
 * goes: connections that never log in cannot use up the switch's fixed number of ports. A link
 * with no login for R_A_TOV (at attach, or after its logins went) is closed, and at most
 * MAX_PENDING_LINKS links wait for a login at once (the oldest is closed first).
 * Well-known addresses served here: F_Port 0xFFFFFE (FLOGI/FDISC/LOGO), directory 0xFFFFFC
 * (PLOGI, name-server CT), fabric controller 0xFFFFFD (SCR, RSCN); the management server
 * 0xFFFFFA is not provided and answers LS_RJT / FS_RJT.
 *
 * Behaviour choices, as on common switches:
 *  - a login whose WWPN is already logged in anywhere is rejected (LS_RJT logical error,
 *    "invalid port name"); a repeated FLOGI on the same link first logs out that link's logins;
 *  - frames whose S_ID is not a login of the link they arrive on are discarded (no spoofing);
 *  - frames between ports that zoning separates, or to unknown N_Port IDs, are discarded (class 3:
 *    the originator's exchange times out);
 *  - a link going down or a LOGO to 0xFFFFFE removes the logins (a physical port's LOGO also
 *    removes its vports) and RSCNs the ports that could see them.
 */
import { native } from '../../native/index.js';
import { FcDecodeError } from '../../fc/bytes.js';
import { encodeBaAcc } from '../../fc/bls.js';
import { CT_MAX_IU, FS_RJT_REASON, GS_TYPE, ctReject, decodeCt } from '../../fc/ct.js';
import {
  CSP_FEATURES,
  ELS,
  LS_RJT_EXPLANATION,
  LS_RJT_REASON,
  RSCN_ADDRESS_FORMAT,
  RSCN_EVENT,
  type RscnPage,
  SCR_FUNCTION,
  decodeEcho,
  decodeLogo,
  decodeRnidRequest,
  decodeScr,
  decodeServiceParameters,
  defaultServiceParameters,
  encodeEcho,
  encodeLsAcc,
  encodeLsRjt,
  encodeRnidReply,
  encodeRscn,
  encodeServiceParameters,
  elsCommandName,
} from '../../fc/els.js';
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
  FC_HEADER_SIZE,
  decodeFrameHeader,
  formatPortId,
  isWellKnownAddress,
  portId,
} from '../../fc/frame.js';
import { SequenceAssembler, buildSequence } from '../../fc/sequence.js';
import type { Link } from '../../fc/link.js';
import { formatWwn } from '../../util/wwn.js';
import { type Logger, logger } from '../../util/log.js';
import { NameServer } from './name-server.js';
import { Zoning } from './zoning.js';

/** Areas available for F_Ports (0xF0..0xFF are avoided so IDs never look like well-known ones). */
const MAX_AREA = 0xef;
/** NPIV logins per link (AL_PA byte 0x01..0xFF). */
const MAX_VPORTS_PER_LINK = 0xff;
/** R_A_TOV advertised in the FLOGI LS_ACC, ms; also how long a link may go without a fabric login. */
export const R_A_TOV_MS = 10_000;
/** Links waiting for their FLOGI at one time; beyond it the oldest waiting link is closed. */
export const MAX_PENDING_LINKS = 256;
/**
 * Names of the switch and its ports: IEEE registered-style names under one OUI (00:05:1e), NAA 1
 * for the switch (node) name with the domain in the low byte, NAA 2 for F_Port and well-known
 * server port names with the port's area/domain or the well-known address in the low bytes.
 */
const SWITCH_NODE_NAME_BASE = 0x10000005_1e000000n;
const SWITCH_PORT_NAME_BASE = 0x20000005_1e000000n;

export interface FabricOptions {
  name: string;
  domain: number;
  /** Switch node name; derived from the domain when absent. */
  wwnn?: bigint;
  zoning?: Zoning;
  log?: Logger;
  /** How long a link may stay without a fabric login before it is closed (default R_A_TOV_MS). */
  loginTimeoutMs?: number;
  /** Links waiting for a login at once (default MAX_PENDING_LINKS). */
  maxPendingLinks?: number;
}

/** One attached link: its F_Port once logged in (null before the FLOGI), and the login timer. */
interface Attachment {
  readonly link: Link;
  port: FabricPort | null;
  timer: NodeJS.Timeout | null;
}

export interface FabricLogin {
  nportId: number;
  wwpn: bigint;
  wwnn: bigint;
  /** Logged in with FLOGI (the link's physical N_Port) rather than FDISC. */
  physical: boolean;
  /** SCR registration function, 0 = none. */
  scr: number;
  rxDataFieldSize: number;
  port: FabricPort;
}

export class FabricPort {
  readonly logins = new Map<number, FabricLogin>();
  constructor(
    readonly area: number,
    readonly link: Link,
    readonly wwpn: bigint,
  ) {}
}

export type FrameObserver = (frame: Uint8Array) => void;

export class Fabric {
  readonly name: string;
  readonly domain: number;
  readonly wwnn: bigint;
  readonly zoning: Zoning;
  readonly nameServer: NameServer;
  private readonly ports = new Map<number, FabricPort>();
  private readonly attachments = new Set<Attachment>();
  /** Attachments without an F_Port, oldest first (Set keeps insertion order). */
  private readonly pending = new Set<Attachment>();
  private readonly loginTimeoutMs: number;
  private readonly maxPendingLinks: number;
  private readonly byId = new Map<number, FabricLogin>();
  private readonly assembler = new SequenceAssembler(CT_MAX_IU);
  private readonly log: Logger;
  private readonly observers = new Set<FrameObserver>();
  private nextOxId = 0;
  private seqId = 0;
  /** Counters, for tests and the control interface. */
  readonly stats = {
    forwarded: 0,
    droppedZoning: 0,
    droppedUnknown: 0,
    droppedSpoofed: 0,
    droppedMalformed: 0,
    rscnSent: 0,
    loginTimeouts: 0,
    pendingEvicted: 0,
  };

  constructor(opts: FabricOptions) {
    if (!Number.isInteger(opts.domain) || opts.domain < 1 || opts.domain > 239) {
      throw new RangeError(`fabric domain ${opts.domain} is outside 1..239`);
    }
    this.name = opts.name;
    this.domain = opts.domain;
    this.wwnn = opts.wwnn ?? SWITCH_NODE_NAME_BASE | BigInt(opts.domain);
    this.zoning = opts.zoning ?? new Zoning('allow');
    this.log = opts.log ?? logger('fabric', { fabric: opts.name });
    this.loginTimeoutMs = opts.loginTimeoutMs ?? R_A_TOV_MS;
    this.maxPendingLinks = opts.maxPendingLinks ?? MAX_PENDING_LINKS;
    this.nameServer = new NameServer((from, to) => this.visible(from, to));
  }

  /** Every frame entering the fabric and every frame the fabric's services originate (pcap). */
  observe(observer: FrameObserver): () => void {
    this.observers.add(observer);
    return () => this.observers.delete(observer);
  }

  /**
   * Attach a link. It gets an F_Port (area) when its FLOGI is accepted; until then only a FLOGI is
   * answered, and without one within the login timeout the link is closed.
   */
  attach(link: Link): void {
    const a: Attachment = { link, port: null, timer: null };
    this.attachments.add(a);
    link.on('frame', (bytes) => this.receive(a, bytes));
    link.on('control', (message, fds) => {
      // Control messages (data-path grants) are the SAN's business, not the switch's; only a
      // logged-in link may send them. A switch without a SAN behind it ignores them (the HBA's
      // request stays unanswered and its commands go as frames).
      if (!a.port) link.close('protocol error: control message before a fabric login');
      else if (this.controlHandler) this.controlHandler(link, message, fds);
      else for (const fd of fds) native.close(fd);
    });
    link.on('down', (reason) => this.detach(a, reason));
    this.awaitLogin(a);
    this.log.info({ link: link.description }, 'link attached');
  }

  /** Who handles control messages of attached links (src/san/data-path.ts); none: they close the link. */
  controlHandler: ((link: Link, message: Uint8Array, fds: number[]) => void) | null = null;

  /** The login with this N_Port ID if it came in on `link`. */
  loginOnLink(link: Link, nportId: number): FabricLogin | undefined {
    const l = this.byId.get(nportId);
    return l && l.port.link === link ? l : undefined;
  }

  /** Whether two logged-in N_Ports may talk (zoning). */
  canCommunicate(from: number, to: number): boolean {
    return this.visible(from, to);
  }

  /** Links attached and not (or no longer) logged in. */
  get pendingLinks(): number {
    return this.pending.size;
  }

  /** Logins currently known, ordered by N_Port ID. */
  logins(): FabricLogin[] {
    return [...this.byId.values()].sort((a, b) => a.nportId - b.nportId);
  }

  findByWwpn(wwpn: bigint): FabricLogin | undefined {
    for (const l of this.byId.values()) if (l.wwpn === wwpn) return l;
    return undefined;
  }

  /** Take the link carrying this WWPN down (the peer sees link down). Returns false if not logged in. */
  linkDown(wwpn: bigint): boolean {
    const login = this.findByWwpn(wwpn);
    if (!login) return false;
    login.port.link.close('taken down by the fabric administrator');
    return true;
  }

  /** Announce a zoning change: every SCR-registered port gets a fabric-format RSCN. */
  zoningChanged(): void {
    for (const login of this.byId.values()) {
      if (login.scr === 0) continue;
      this.sendRscn(login, [
        {
          addressFormat: RSCN_ADDRESS_FORMAT.DOMAIN,
          eventQualifier: RSCN_EVENT.SWITCH_CONFIG,
          affectedId: this.domain << 16,
        },
      ]);
    }
  }

  /** Detach every link (SAN shutdown). */
  close(): void {
    for (const a of [...this.attachments]) a.link.close('fabric shut down');
  }

  // -------------------------------------------------------------------------------------------

  private visible(from: number, to: number): boolean {
    if (isWellKnownAddress(from) || isWellKnownAddress(to)) return true;
    const a = this.byId.get(from);
    const b = this.byId.get(to);
    if (!a || !b) return false;
    return this.zoning.canCommunicate(a.wwpn, b.wwpn);
  }

  /** Start (or restart) the wait for a login; the oldest waiting link goes when too many wait. */
  private awaitLogin(a: Attachment): void {
    if (!a.link.isUp) return;
    this.pending.add(a);
    a.timer = setTimeout(() => {
      this.stats.loginTimeouts++;
      this.log.warn(
        { link: a.link.description, ms: this.loginTimeoutMs },
        'no fabric login within R_A_TOV; link closed',
      );
      a.link.close(`no fabric login within ${this.loginTimeoutMs} ms`);
    }, this.loginTimeoutMs);
    a.timer.unref?.();
    while (this.pending.size > this.maxPendingLinks) {
      const oldest = this.pending.values().next().value!;
      this.stats.pendingEvicted++;
      this.log.warn(
        { link: oldest.link.description, pending: this.pending.size },
        'too many links waiting for a fabric login; oldest closed',
      );
      oldest.link.close('too many links waiting for a fabric login');
    }
  }

  private loggedIn(a: Attachment, port: FabricPort): void {
    a.port = port;
    this.ports.set(port.area, port);
    this.pending.delete(a);
    if (a.timer) clearTimeout(a.timer);
    a.timer = null;
  }

  /** The link's last login went (LOGO): its F_Port is free again and the link must log in anew. */
  private loggedOut(a: Attachment): void {
    const port = a.port;
    if (!port || port.logins.size > 0) return;
    a.port = null;
    if (this.ports.get(port.area) === port) this.ports.delete(port.area);
    this.awaitLogin(a);
  }

  private detach(a: Attachment, reason: string): void {
    if (!this.attachments.delete(a)) return;
    this.pending.delete(a);
    if (a.timer) clearTimeout(a.timer);
    a.timer = null;
    const port = a.port;
    a.port = null;
    if (!port) {
      this.log.info({ link: a.link.description, reason }, 'link detached before logging in');
      return;
    }
    if (this.ports.get(port.area) === port) this.ports.delete(port.area);
    const gone = [...port.logins.values()];
    for (const l of gone) this.removeLogin(l);
    this.log.info({ area: port.area, reason, logins: gone.length }, 'link detached');
    this.announce(gone);
  }

  private removeLogin(login: FabricLogin): void {
    login.port.logins.delete(login.nportId);
    this.byId.delete(login.nportId);
    this.nameServer.remove(login.nportId);
  }

  /** RSCN the ports affected by logins that appeared or vanished (each to those that could see them). */
  private announce(changed: readonly FabricLogin[]): void {
    if (changed.length === 0) return;
    for (const target of this.byId.values()) {
      if (target.scr === 0) continue;
      const pages = changed
        .filter((c) => c.nportId !== target.nportId && this.zoning.canCommunicate(c.wwpn, target.wwpn))
        .map((c) => ({
          addressFormat: RSCN_ADDRESS_FORMAT.PORT,
          eventQualifier: RSCN_EVENT.NAME_SERVER_OBJECT,
          affectedId: c.nportId,
        }));
      if (pages.length) this.sendRscn(target, pages);
    }
  }

  private sendRscn(to: FabricLogin, pages: RscnPage[]): void {
    this.stats.rscnSent++;
    this.transmit(
      to.port,
      {
        rCtl: R_CTL.ELS_REQUEST,
        dId: to.nportId,
        csCtl: 0,
        sId: WELL_KNOWN.FABRIC_CONTROLLER,
        type: FC_TYPE.ELS,
        fCtl: F_CTL_REQUEST,
        seqId: this.nextSeqId(),
        dfCtl: 0,
        oxId: this.allocOxId(),
        rxId: FC_XID_UNKNOWN,
      },
      encodeRscn(pages),
      to.rxDataFieldSize,
    );
  }

  private allocOxId(): number {
    const id = this.nextOxId;
    this.nextOxId = (this.nextOxId + 1) % FC_XID_UNKNOWN;
    return id;
  }

  private nextSeqId(): number {
    this.seqId = (this.seqId + 1) & 0xff;
    return this.seqId;
  }

  private transmit(
    port: { readonly link: Link },
    t: Omit<FcHeader, 'seqCnt' | 'parameter'>,
    payload: Uint8Array,
    maxDataField: number,
  ): void {
    for (const frame of buildSequence(t, payload, maxDataField)) {
      for (const o of this.observers) o(frame);
      port.link.send(frame);
    }
  }

  /** Reply on the exchange `req` opened, from the address it was sent to. */
  private reply(
    port: { readonly link: Link },
    req: FcHeader,
    rCtl: number,
    payload: Uint8Array,
    maxDataField = FC_DEFAULT_RX_DATA_FIELD,
  ): void {
    this.transmit(
      port,
      {
        rCtl,
        dId: req.sId,
        csCtl: 0,
        sId: req.dId,
        type: req.type,
        fCtl: F_CTL_REPLY,
        seqId: this.nextSeqId(),
        dfCtl: 0,
        oxId: req.oxId,
        rxId: req.rxId === FC_XID_UNKNOWN ? this.allocOxId() : req.rxId,
      },
      payload,
      maxDataField,
    );
  }

  private receive(a: Attachment, bytes: Uint8Array): void {
    try {
      this.route(a, bytes);
    } catch (err) {
      // A frame must never take the switch down; whatever it was, it is dropped and logged.
      this.stats.droppedMalformed++;
      this.log.error({ area: a.port?.area, err: (err as Error).message }, 'error handling a frame; dropped');
    }
  }

  private route(a: Attachment, bytes: Uint8Array): void {
    for (const o of this.observers) o(bytes);
    let h: FcHeader;
    try {
      h = decodeFrameHeader(bytes);
    } catch (err) {
      this.stats.droppedMalformed++;
      this.log.warn({ area: a.port?.area, err: (err as Error).message }, 'malformed frame discarded');
      return;
    }
    const payload = bytes.subarray(FC_HEADER_SIZE);
    const frame: FcFrame = { header: h, payload };
    const isLoginRequest =
      h.rCtl === R_CTL.ELS_REQUEST &&
      h.type === FC_TYPE.ELS &&
      h.dId === WELL_KNOWN.F_PORT &&
      h.sId === 0 &&
      payload.length >= 1 &&
      (payload[0] === ELS.FLOGI || payload[0] === ELS.FDISC);
    if (isLoginRequest) {
      this.handleLogin(a, frame);
      return;
    }
    const port = a.port;
    const from = port?.logins.get(h.sId);
    if (!port || !from) {
      this.stats.droppedSpoofed++;
      this.log.debug(
        { area: port?.area, sId: formatPortId(h.sId) },
        'frame from an S_ID not logged in on this link discarded',
      );
      return;
    }
    if (isWellKnownAddress(h.dId)) {
      this.handleService(a, port, from, frame);
      return;
    }
    const to = this.byId.get(h.dId);
    if (!to) {
      this.stats.droppedUnknown++;
      return;
    }
    if (!this.zoning.canCommunicate(from.wwpn, to.wwpn)) {
      this.stats.droppedZoning++;
      return;
    }
    this.stats.forwarded++;
    to.port.link.send(bytes);
  }

  private handleLogin(a: Attachment, frame: FcFrame): void {
    const h = frame.header;
    const rjt = (reason: number, explanation: number): void =>
      this.reply(a, h, R_CTL.ELS_REPLY, encodeLsRjt({ reason, explanation }));
    let sp: ReturnType<typeof decodeServiceParameters>;
    try {
      sp = decodeServiceParameters(frame.payload);
    } catch {
      rjt(LS_RJT_REASON.PROTOCOL_ERROR, LS_RJT_EXPLANATION.INVALID_COMMON_SERVICE_PARAMS);
      return;
    }
    const isFlogi = sp.command === ELS.FLOGI;
    if (sp.wwpn === 0n) return rjt(LS_RJT_REASON.LOGICAL_ERROR, LS_RJT_EXPLANATION.INVALID_PORT_NAME);
    if (sp.wwnn === 0n) return rjt(LS_RJT_REASON.LOGICAL_ERROR, LS_RJT_EXPLANATION.INVALID_NODE_NAME);
    if (sp.bbRxDataFieldSize < 256 || sp.bbRxDataFieldSize > 2112) {
      return rjt(LS_RJT_REASON.PROTOCOL_ERROR, LS_RJT_EXPLANATION.INVALID_COMMON_SERVICE_PARAMS);
    }
    let physical: FabricLogin | undefined;
    for (const l of a.port?.logins.values() ?? []) if (l.physical) physical = l;
    if (isFlogi && a.port && a.port.logins.size > 0) {
      // A new FLOGI on a link re-initialises it: everything it had logged in goes (FC-LS-3 §4.2.11).
      // The link keeps its F_Port.
      const gone = [...a.port.logins.values()];
      for (const l of gone) this.removeLogin(l);
      this.announce(gone);
      physical = undefined;
    }
    if (!isFlogi && !physical) {
      // FDISC without a FLOGI on this link first.
      return rjt(LS_RJT_REASON.LOGICAL_ERROR, LS_RJT_EXPLANATION.PLOGI_REQUIRED);
    }
    const duplicate = this.findByWwpn(sp.wwpn);
    if (duplicate) {
      this.log.warn(
        { wwpn: formatWwn(sp.wwpn), existing: formatPortId(duplicate.nportId) },
        'login with a WWPN already logged in rejected',
      );
      return rjt(LS_RJT_REASON.LOGICAL_ERROR, LS_RJT_EXPLANATION.INVALID_PORT_NAME);
    }
    let port = a.port;
    if (!port) {
      // The F_Port is taken only now, for a login that is otherwise accepted.
      let area = 1;
      while (this.ports.has(area) && area <= MAX_AREA) area++;
      if (area > MAX_AREA) {
        this.log.warn({ link: a.link.description, wwpn: formatWwn(sp.wwpn) }, 'no free F_Port; FLOGI rejected');
        return rjt(LS_RJT_REASON.UNABLE_TO_PERFORM, LS_RJT_EXPLANATION.INSUFFICIENT_RESOURCES);
      }
      port = new FabricPort(area, a.link, SWITCH_PORT_NAME_BASE | (BigInt(area) << 8n) | BigInt(this.domain));
      this.loggedIn(a, port);
    }
    let alpa = 0;
    if (!isFlogi) {
      alpa = 1;
      while (port.logins.has(portId(this.domain, port.area, alpa)) && alpa <= MAX_VPORTS_PER_LINK) alpa++;
      if (alpa > MAX_VPORTS_PER_LINK)
        return rjt(LS_RJT_REASON.UNABLE_TO_PERFORM, LS_RJT_EXPLANATION.INSUFFICIENT_RESOURCES);
    }
    const nportId = portId(this.domain, port.area, alpa);
    const login: FabricLogin = {
      nportId,
      wwpn: sp.wwpn,
      wwnn: sp.wwnn,
      physical: isFlogi,
      scr: 0,
      rxDataFieldSize: Math.min(sp.bbRxDataFieldSize, FC_DEFAULT_RX_DATA_FIELD) & ~3,
      port,
    };
    port.logins.set(nportId, login);
    this.byId.set(nportId, login);
    this.nameServer.add({ nportId, wwpn: sp.wwpn, wwnn: sp.wwnn, fabricPortName: port.wwpn });
    this.log.info(
      { nportId: formatPortId(nportId), wwpn: formatWwn(sp.wwpn), kind: isFlogi ? 'FLOGI' : 'FDISC' },
      'fabric login',
    );

    const acc = defaultServiceParameters(ELS.LS_ACC, port.wwpn, this.wwnn, FC_DEFAULT_RX_DATA_FIELD);
    acc.commonFeatures = CSP_FEATURES.F_PORT | CSP_FEATURES.NPIV_ACC;
    acc.raTovOrSeqs = R_A_TOV_MS;
    acc.bbCredit = 0;
    // The LS_ACC goes to the newly assigned address (FC-LS-3 §4.2.11).
    this.reply(port, { ...h, sId: nportId }, R_CTL.ELS_REPLY, encodeServiceParameters(acc));
    this.announce([login]);
  }

  private handleService(a: Attachment, port: FabricPort, from: FabricLogin, frame: FcFrame): void {
    const h = frame.header;
    // Replies (our RSCNs being accepted) and BLS answers to fabric-originated exchanges end here.
    if (h.fCtl & F_CTL.EX_CTX) return;
    if (h.type === FC_TYPE.BLS && h.rCtl === R_CTL.BLS_ABTS) {
      this.reply(
        port,
        h,
        R_CTL.BLS_BA_ACC,
        encodeBaAcc({ seqIdValid: false, seqId: 0, oxId: h.oxId, rxId: h.rxId, lowSeqCnt: 0, highSeqCnt: 0xffff }),
      );
      return;
    }
    if (h.type === FC_TYPE.ELS && h.rCtl === R_CTL.ELS_REQUEST) {
      this.handleServiceEls(a, port, from, frame);
      return;
    }
    if (h.type === FC_TYPE.CT && h.rCtl === R_CTL.UNSOL_CONTROL) {
      const iu = this.assembler.push(frame);
      if (iu) this.handleCt(port, from, iu);
      return;
    }
    this.stats.droppedUnknown++;
  }

  private handleServiceEls(a: Attachment, port: FabricPort, from: FabricLogin, frame: FcFrame): void {
    const h = frame.header;
    const acc = (payload: Uint8Array = encodeLsAcc()): void =>
      this.reply(port, h, R_CTL.ELS_REPLY, payload, from.rxDataFieldSize);
    const rjt = (reason: number, explanation: number = LS_RJT_EXPLANATION.NONE): void =>
      this.reply(port, h, R_CTL.ELS_REPLY, encodeLsRjt({ reason, explanation }));
    if (frame.payload.length < 4) return rjt(LS_RJT_REASON.PROTOCOL_ERROR, LS_RJT_EXPLANATION.INVALID_PAYLOAD_LENGTH);
    const code = frame.payload[0]!;
    if (h.dId === WELL_KNOWN.MANAGEMENT_SERVER) {
      // No management server (FDMI/GPSC) in this fabric: a clean reject, as qla2xxx tolerates.
      return rjt(LS_RJT_REASON.UNABLE_TO_PERFORM, LS_RJT_EXPLANATION.REQUEST_NOT_SUPPORTED);
    }
    try {
      switch (code) {
        case ELS.PLOGI: {
          if (h.dId !== WELL_KNOWN.DIRECTORY_SERVER && h.dId !== WELL_KNOWN.FABRIC_CONTROLLER) break;
          decodeServiceParameters(frame.payload);
          const serverWwpn = SWITCH_PORT_NAME_BASE | BigInt(h.dId & 0xffffff);
          return acc(
            encodeServiceParameters(
              defaultServiceParameters(ELS.LS_ACC, serverWwpn, this.wwnn, FC_DEFAULT_RX_DATA_FIELD),
            ),
          );
        }
        case ELS.LOGO: {
          const logo = decodeLogo(frame.payload);
          if (h.dId === WELL_KNOWN.F_PORT) {
            if (logo.nportId !== from.nportId) return rjt(LS_RJT_REASON.LOGICAL_ERROR, LS_RJT_EXPLANATION.NONE);
            acc();
            const gone = from.physical ? [...port.logins.values()] : [from];
            for (const l of gone) this.removeLogin(l);
            this.log.info({ nportId: formatPortId(from.nportId), removed: gone.length }, 'fabric logout');
            this.announce(gone);
            this.loggedOut(a);
            return;
          }
          return acc(); // logout from a server: nothing kept per session
        }
        case ELS.SCR: {
          if (h.dId !== WELL_KNOWN.FABRIC_CONTROLLER) break;
          const fn = decodeScr(frame.payload);
          if (fn === SCR_FUNCTION.CLEAR) from.scr = 0;
          else if (fn >= SCR_FUNCTION.FABRIC_DETECTED && fn <= SCR_FUNCTION.FULL) from.scr = fn;
          else return rjt(LS_RJT_REASON.UNABLE_TO_PERFORM, LS_RJT_EXPLANATION.NONE);
          return acc();
        }
        case ELS.ECHO:
          return acc(encodeEcho(decodeEcho(frame.payload), ELS.LS_ACC));
        case ELS.RNID:
          decodeRnidRequest(frame.payload);
          return acc(encodeRnidReply({ format: 0, wwpn: port.wwpn, wwnn: this.wwnn, specific: new Uint8Array(0) }));
      }
    } catch (err) {
      if (err instanceof FcDecodeError)
        return rjt(LS_RJT_REASON.PROTOCOL_ERROR, LS_RJT_EXPLANATION.INVALID_PAYLOAD_LENGTH);
      throw err;
    }
    this.log.debug({ els: elsCommandName(code), dId: formatPortId(h.dId) }, 'ELS to a fabric service not supported');
    rjt(LS_RJT_REASON.COMMAND_NOT_SUPPORTED, LS_RJT_EXPLANATION.REQUEST_NOT_SUPPORTED);
  }

  private handleCt(port: FabricPort, from: FabricLogin, frame: FcFrame): void {
    const h = frame.header;
    const send = (payload: Uint8Array): void => this.reply(port, h, R_CTL.SOL_CONTROL, payload, from.rxDataFieldSize);
    let iu: ReturnType<typeof decodeCt>;
    try {
      iu = decodeCt(frame.payload);
    } catch {
      send(
        ctReject(
          { gsType: frame.payload[4] ?? 0, gsSubtype: frame.payload[5] ?? 0, options: 0 },
          FS_RJT_REASON.INVALID_VERSION,
        ),
      );
      return;
    }
    if (h.dId !== WELL_KNOWN.DIRECTORY_SERVER || iu.header.gsType !== GS_TYPE.DIRECTORY) {
      send(ctReject(iu.header, FS_RJT_REASON.COMMAND_NOT_SUPPORTED));
      return;
    }
    const r = this.nameServer.handle(from.nportId, iu);
    send(r.response);
    if (r.changedPort !== null) {
      const changed = this.byId.get(r.changedPort);
      if (changed) this.announce([changed]);
    }
  }
}
