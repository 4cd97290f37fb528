/**
 * The link and fabric-login state machine of one N_Port of the emulated ISP2532 firmware: what
 * ISP24xx/25xx firmware does between INITIALIZE_FIRMWARE and "link up", and again after a link
 * loss or a LIP, as qla2xxx 10.02.x sees it (qla2x00_async_event for AEN 0x8011/0x8012/0x8014/
 * 0x8015, qla24xx_report_id_acquisition for the Report ID Acquisition entry, qla2x00_fw_ready for
 * the firmware state).
 *
 *   down ──arm (INIT_FW)──▶ armed ──fire (next mailbox │ ictrl enable │ 250 ms timer)──▶ logging-in
 *   logging-in ──FLOGI/FDISC accepted──▶ up: AEN 0x8011, RIDA (0x32, N_Port ID), AEN 0x8014 global
 *   logging-in ──refused──▶ failed ──2 s──▶ armed          (no fabric / no light ──▶ down)
 *   up ──link loss──▶ down: exchanges complete CS_PORT_UNAVAILABLE, AEN 0x8012; light ──▶ armed
 *   LIP / LINK_INITIALIZATION: as link loss, then armed at once
 *
 * The session owns the port's fabric login (its N_Port ID), its N_Port handle table and the
 * generation counter that invalidates work begun under an ended session. RISC state is the
 * firmware's: it feeds fabric events here only while initialized, and resets the session with
 * the RISC.
 *
 * A guest NPIV vport (kind 'vport', VP index ≥ 1) runs the same machine with an FDISC login on
 * the physical port's link, started by the VP table (vports.ts) and never by link AENs: qla2xxx
 * learns of it only through Report ID Acquisition (format 1, its vp_idx; vp_status 1 with the
 * LS_RJT codes when the fabric refused: qla24xx_report_id_acquisition). Its AENs (0x8014 for a
 * lost login, 0x8015 RSCN) carry the VP index in mb3 (qla2x00_async_event routes by it); link
 * loss is reported once, by the physical port (0x8012 reaches every vport through
 * qla2x00_alert_all_vps). A vport whose own login ends while the physical port stays up tries
 * the FDISC again every 2 s.
 */
import { CompStatus, EntryType, IOCB_SIZE, IocbHeader, VpRptId } from '../../assembly/shared/iocb.js';
import { RIDA_F1_FLAGS_TOPO_F, RIDA_FORMAT_FABRIC } from '../../assembly/shared/iocb-mgmt.js';
import { writeU24LE } from '../util/bytes.js';
import { wwnToBytes } from '../util/wwn.js';
import { asyncEvent, type IspEvent } from './events.js';
import { FabricLoginRejected, type FabricEvent, type FabricLoginResult, type FabricPort } from './fabric-port.js';
import { MBA, NPH } from './fw-constants.js';
import type { IspScheduler } from './host.js';
import type { PortIdentity } from './identity.js';
import type { ExchangeTable } from './iocb/exchanges.js';
import type { LinkPhase, PortSession } from './iocb/context.js';
import { LoginTable } from './login-table.js';
import type { Trace } from '../device/trace.js';

/** AEN 0x8014 global: mb1 = 0xFFFF, mb2 = 6 (not 7: logged out), mb3 = 0xFF (all VPs). */
const PORT_UPDATE_GLOBAL = { handle: 0xffff, state: 0x0006, vp: 0x00ff } as const;
/** AEN 0x8014 mb2 for a remote port that logged out. */
const PDB_STATE_LOGGED_OUT = 0x0007;
/**
 * Link-up fires at the latest this long after INITIALIZE_FIRMWARE. It is held back at first because
 * AENs latched with the 0x60 completion are lost: qla2x00_mailbox_command polls once more after it,
 * before qla2x00_init_rings sets fw_started, and qla2x00_async_event drops events until then.
 */
const LINK_UP_DEFER_MS = 250;
/** Retry period for a failed fabric login while the link is up. */
const FABRIC_LOGIN_RETRY_MS = 2000;
/** vp_rpt_id_entry_24xx vp_status (qla_def.h enum VP_STATUS): VP_STAT_COMPL, VP_STAT_FAIL. */
export const VP_STAT_COMPL = 0;
export const VP_STAT_FAIL = 1;

export interface FabricSessionOptions {
  vpIndex: number;
  fabric: FabricPort | null;
  scheduler: IspScheduler;
  /** Where async events (AENs) go: the RISC→host event FIFO. */
  events: { push(event: IspEvent): void };
  /** The firmware's outstanding FCP commands: a session that ends completes them. */
  exchanges: ExchangeTable;
  /** Posts a host-built entry on the response ring and flushes it at once (RIDA). */
  postResponse(entry: Uint8Array): void;
  trace: Trace;
  /**
   * The fastest link the HBA negotiates (the model's, src/isp/model.ts): a faster fabric port
   * comes up at this speed, as a 4 Gb HBA does on an 8 Gb switch port. Default: the fabric's.
   */
  maxSpeedGbps?: number;
  /** 'physical' (default: VP 0, FLOGI, link AENs) or 'vport' (FDISC, reported by RIDA only). */
  kind?: 'physical' | 'vport';
  /** Physical port: its fabric login is up and announced (the VPs may FDISC now). */
  onUp?(): void;
  /** Physical port: its fabric session ended (link loss, LIP): the VPs' logins are gone too. */
  onDown?(): void;
}

export class FabricSession implements PortSession {
  readonly vpIndex: number;
  readonly fabric: FabricPort | null;
  readonly logins = new LoginTable();
  private phaseNow: LinkPhase = 'down';
  private login: FabricLoginResult | null = null;
  /** The names the port logs in with (set when the firmware arms the link). */
  private names: PortIdentity | null = null;
  private gen = 0;
  private cancelTimer: (() => void) | null = null;
  private readonly o: FabricSessionOptions;
  private readonly vport: boolean;
  /** A vport's refused FDISC was reported (one failure RIDA per enable, not one per retry). */
  private failureReported = false;

  constructor(o: FabricSessionOptions) {
    this.o = o;
    this.vpIndex = o.vpIndex;
    this.fabric = o.fabric;
    this.vport = o.kind === 'vport';
  }

  get phase(): LinkPhase {
    return this.phaseNow;
  }

  get fabricLogin(): FabricLoginResult | null {
    return this.login;
  }

  get identity(): PortIdentity | null {
    return this.names;
  }

  get generation(): number {
    return this.gen;
  }

  /** RISC reset or STOP_FIRMWARE: the session ends without AENs; the fabric login is logged out. */
  reset(): void {
    this.gen++;
    this.stopTimer();
    this.names = null;
    // A login still in flight is superseded by the logout (FabricPort.logout).
    if (this.fabric && (this.login || this.phaseNow === 'logging-in')) {
      this.fabric.logout().catch((e) => this.o.trace('fabric_err_logout', { error: String(e) }));
    }
    this.login = null;
    this.phaseNow = 'down';
    this.logins.clear();
  }

  /**
   * (Re-)initialization starts: the previous session is dropped, as real firmware does on a new
   * INITIALIZE_FIRMWARE; the phase stays until arm() (a refused init leaves it as it was).
   */
  beginInitialization(): void {
    this.gen++;
    this.stopTimer();
    this.logins.clear();
    this.login = null;
    this.names = null;
  }

  /** Initialization succeeded: log in with names once the link-up fires (see fireIfArmed). */
  arm(names: PortIdentity): void {
    this.names = names;
    this.phaseNow = 'armed';
    this.cancelTimer = this.o.scheduler.after(LINK_UP_DEFER_MS, () => this.fireIfArmed());
  }

  /** Called on a mailbox command, on ictrl interrupt enable, and by the arm timer. */
  fireIfArmed(): void {
    if (this.phaseNow !== 'armed') return;
    this.stopTimer();
    this.startFabricLogin();
  }

  /** LIP / link initialization requests (the firmware is initialized): log in again from scratch. */
  restart(): void {
    this.dropSession(CompStatus.CS_PORT_UNAVAILABLE);
    this.o.events.push(asyncEvent(MBA.LOOP_DOWN, 0, 0, 0));
    this.phaseNow = 'armed';
    this.fireIfArmed();
  }

  /** A vport is enabled (VP_CONFIG) or its physical port came up: FDISC with these names now. */
  start(names: PortIdentity): void {
    this.gen++;
    this.stopTimer();
    this.names = names;
    this.failureReported = false;
    this.phaseNow = 'armed';
    this.fireIfArmed();
  }

  /**
   * The physical port's session ended: a vport's FDISC login went with it (its exchanges were
   * completed by the physical port). It stays enabled and logs in again on start().
   */
  suspend(): void {
    this.dropSession(CompStatus.CS_PORT_UNAVAILABLE);
    this.phaseNow = 'down';
  }

  /**
   * VP_CTRL disable: LOGO to every remote port this N_Port is logged in to (when logoAll), then
   * LOGO of the N_Port itself to the F_Port (releasing its N_Port ID); outstanding commands
   * complete with CS_PORT_UNAVAILABLE. Resolves when the fabric has been told.
   */
  async disable(logoAll: boolean): Promise<void> {
    const login = this.login;
    const inFlight = this.phaseNow === 'logging-in';
    const remote = this.logins
      .entries()
      .filter((l) => l.handle <= NPH.LAST_HANDLE)
      .map((l) => l.portId);
    this.dropSession(CompStatus.CS_PORT_UNAVAILABLE);
    this.names = null;
    this.phaseNow = 'down';
    const fabric = this.fabric;
    if (!fabric || (!login && !inFlight)) return;
    if (login && logoAll) await Promise.all(remote.map((id) => fabric.logo(id).catch(() => {})));
    await fabric.logout().catch((e) => this.o.trace('fabric_err_logout', { error: String(e) }));
  }

  /** A vport that is up is configured again (VP_CONFIG for an enabled index): report it again. */
  reannounce(): void {
    if (this.vport && this.phaseNow === 'up' && this.login) {
      this.o.postResponse(buildReportIdAcquisition(this.login, this.vpIndex));
    }
  }

  /** A link or fabric notification while the firmware is initialized. */
  onFabricEvent(e: FabricEvent): void {
    switch (e.type) {
      case 'link-down':
        if (this.phaseNow === 'down') return;
        this.dropSession(CompStatus.CS_PORT_UNAVAILABLE);
        if (this.vport) {
          // Only this FDISC login ended: try again while the VP is enabled (the physical
          // port's own loss, if that is the cause, suspends the VP instead).
          this.phaseNow = 'failed';
          this.scheduleRetry();
          return;
        }
        this.phaseNow = 'down';
        this.o.events.push(asyncEvent(MBA.LOOP_DOWN, 0, 0, 0));
        return;
      case 'link-up':
        if (this.phaseNow !== 'down' && this.phaseNow !== 'failed') return;
        this.phaseNow = 'armed';
        this.fireIfArmed();
        return;
      case 'session-lost': {
        const l = this.logins.byPortId(e.portId);
        if (!l || this.phaseNow !== 'up') return;
        for (const x of this.o.exchanges.matching(l.portId, null)) x.terminate(CompStatus.CS_PORT_LOGGED_OUT);
        this.logins.remove(l.handle);
        // PDB changed for that handle, new state "logged out": the driver deletes the session.
        this.o.events.push(asyncEvent(MBA.PORT_UPDATE, l.handle, PDB_STATE_LOGGED_OUT, this.vpIndex));
        return;
      }
      case 'rscn': {
        if (this.phaseNow !== 'up' || !this.login) return;
        const a = e.address & 0xffffff;
        if (a === this.login.portId) return;
        this.o.events.push(asyncEvent(MBA.RSCN_UPDATE, ((e.format & 3) << 8) | (a >>> 16), a & 0xffff, this.vpIndex));
        return;
      }
    }
  }

  /** MBC 0x5D / AEN 0x8011 speed code (0 1G, 1 2G, 3 4G, 4 8G, 5 16G; 7 unknown). */
  speedCode(): number {
    const fabric = this.login?.speedGbps;
    const cap = this.o.maxSpeedGbps;
    switch (fabric !== undefined && cap !== undefined ? Math.min(fabric, cap) : fabric) {
      case 1:
        return 0;
      case 2:
        return 1;
      case 4:
        return 3;
      case 8:
        return 4;
      case 16:
        return 5;
      default:
        return 7;
    }
  }

  portNameOf(handle: number, nodeName: boolean): bigint | null {
    if (handle === NPH.F_PORT && this.login) {
      return nodeName ? this.login.fabricName : this.login.fabricPortName;
    }
    const l = this.logins.get(handle);
    if (l) return nodeName ? l.wwnn : l.wwpn;
    return null;
  }

  private stopTimer(): void {
    this.cancelTimer?.();
    this.cancelTimer = null;
  }

  /**
   * The fabric session ends (link loss, LIP): outstanding commands complete with compStatus
   * first (under the current generation), then logins and the fabric login are forgotten and
   * late results of older exchanges are ignored.
   */
  private dropSession(compStatus: number): void {
    if (this.vport) {
      for (const x of this.o.exchanges.ofVp(this.vpIndex)) {
        x.terminate(compStatus);
        this.o.exchanges.remove(x.handle);
      }
    } else {
      // The physical link carries every VP: all outstanding commands end with it.
      for (const x of this.o.exchanges.all()) x.terminate(compStatus);
      this.o.exchanges.clear();
      this.o.onDown?.();
    }
    this.gen++;
    this.stopTimer();
    this.login = null;
    this.logins.clear();
  }

  private startFabricLogin(): void {
    const id = this.names;
    if (!id) return;
    if (!this.fabric?.isLinkUp()) {
      this.phaseNow = 'down';
      this.o.trace('link_down_no_fabric', {});
      return;
    }
    this.phaseNow = 'logging-in';
    const gen = this.gen;
    this.fabric.login(id.wwpn, id.wwnn).then(
      (result) => {
        if (gen !== this.gen) return;
        this.login = result;
        this.phaseNow = 'up';
        this.announceLinkUp(result);
      },
      (e) => {
        if (gen !== this.gen) return;
        this.phaseNow = 'failed';
        this.o.trace('fabric_err_login', { vpIndex: this.vpIndex, error: String(e) });
        if (this.vport && !this.failureReported) {
          // qla24xx_report_id_acquisition logs "Could not acquire ID for VP[n]" for vp_status 1.
          this.failureReported = true;
          this.o.postResponse(buildVportFailure(this.vpIndex, e instanceof FabricLoginRejected ? e : null));
        }
        this.scheduleRetry();
      },
    );
  }

  private scheduleRetry(): void {
    const gen = this.gen;
    this.stopTimer();
    this.cancelTimer = this.o.scheduler.after(FABRIC_LOGIN_RETRY_MS, () => {
      if (gen === this.gen && this.phaseNow === 'failed') {
        this.phaseNow = 'armed';
        this.fireIfArmed();
      }
    });
  }

  /** AEN 0x8011 → Report ID Acquisition on the response ring → AEN 0x8014 global (§3.7). */
  private announceLinkUp(r: FabricLoginResult): void {
    if (this.vport) {
      this.o.trace('vport_up', { vpIndex: this.vpIndex, portId: r.portId.toString(16) });
      this.failureReported = false;
      this.o.postResponse(buildReportIdAcquisition(r, this.vpIndex));
      return;
    }
    this.o.trace('link_up', { portId: r.portId.toString(16), speedGbps: r.speedGbps });
    this.o.events.push(asyncEvent(MBA.LOOP_UP, this.speedCode(), 0, 0));
    this.o.postResponse(buildReportIdAcquisition(r));
    this.o.events.push(
      asyncEvent(MBA.PORT_UPDATE, PORT_UPDATE_GLOBAL.handle, PORT_UPDATE_GLOBAL.state, PORT_UPDATE_GLOBAL.vp),
    );
    this.o.onUp?.();
  }
}

/** Report ID Acquisition (0x32), format 1 (fabric), F_Port topology, for VP vpIndex. */
export function buildReportIdAcquisition(r: FabricLoginResult, vpIndex = 0): Uint8Array {
  const e = new Uint8Array(IOCB_SIZE);
  e[0] = EntryType.VP_RPT_ID_IOCB_TYPE;
  e[IocbHeader.ENTRY_COUNT] = 1;
  e[VpRptId.VP_IDX] = vpIndex;
  e[VpRptId.VP_STATUS] = VP_STAT_COMPL;
  writeU24LE(e, VpRptId.PORT_ID, r.portId);
  e[VpRptId.FORMAT] = RIDA_FORMAT_FABRIC;
  e[VpRptId.F1_FLAGS] = RIDA_F1_FLAGS_TOPO_F;
  e.set(wwnToBytes(r.fabricPortName), VpRptId.F1_PORT_NAME);
  e.set(wwnToBytes(r.fabricName), VpRptId.F1_NODE_NAME);
  return e;
}

/**
 * Report ID Acquisition (0x32), format 1, vp_status VP_STAT_FAIL: the FDISC of VP vpIndex was
 * refused (LS_RJT reason and explanation when the fabric sent one) or got no answer.
 */
export function buildVportFailure(vpIndex: number, rjt: FabricLoginRejected | null): Uint8Array {
  const e = new Uint8Array(IOCB_SIZE);
  e[0] = EntryType.VP_RPT_ID_IOCB_TYPE;
  e[IocbHeader.ENTRY_COUNT] = 1;
  e[VpRptId.VP_IDX] = vpIndex;
  e[VpRptId.VP_STATUS] = VP_STAT_FAIL;
  e[VpRptId.FORMAT] = RIDA_FORMAT_FABRIC;
  e[VpRptId.F1_FLAGS] = RIDA_F1_FLAGS_TOPO_F;
  if (rjt) {
    e[VpRptId.F1_LS_RJT_REASON] = rjt.reason & 0xff;
    e[VpRptId.F1_LS_RJT_EXPLANATION] = rjt.explanation & 0xff;
  }
  return e;
}
