/**
 * The emulated ISP2532 "firmware": RISC state machine, mailbox execution, link-up and the vport's
 * fabric login, the N_Port handle (login) table, and the IOCB side of the request ring. No vendor
 * firmware is needed or executed; loads by mailbox are accepted and discarded.
 *
 * Modelled on what qla2xxx 10.02.x (ISP25xx path) needs — isp25xx.md §3 (bring-up), §3.7
 * (link-up and discovery), §9.3–§9.5 (event, mailbox and ring rules).
 *
 *   reset ──CLR_RISC_RESET / soft reset──▶ rom ──EXECUTE_FIRMWARE──▶ running ──INIT_FW──▶ initialized
 *   initialized: link armed → (next mailbox | ictrl enable | timer) → fabric login → AEN 0x8011,
 *   RIDA, AEN 0x8014 (global) → link up
 *
 * Identity: the fabric login uses the host-configured names (IdentityPolicy), never the port and
 * node names in the guest's init control block. A guest that writes other names there is not
 * refused — qla2xxx treats a failed INITIALIZE_FIRMWARE as fatal (qla2x00_init_rings →
 * "Init Firmware **** FAILED ****", probe or ISP abort fails, the board is disabled), so a refusal
 * would only turn a misconfigured guest into a dead HBA — the names are ignored, as on a port
 * whose WWPN the fabric assigns, and a rate-limited warning is logged (docs/security.md).
 */
import { CompStatus, EntryType, IOCB_SIZE, IocbHeader, VpRptId } from '../../assembly/shared/iocb.js';
import {
  GNL_ENTRY_SIZE,
  GNL_OPTION_EXTENDED,
  PDB_CURRENT_LOGIN_STATE,
  PDB_LAST_LOGIN_STATE,
  PDB_NODE_NAME,
  PDB_NPORT_HANDLE,
  PDB_PORT_ID,
  PDB_PORT_NAME,
  PDB_PRLI_WORD_0,
  PDB_PRLI_WORD_3,
  PDB_RECEIVE_DATA_SIZE,
  PDB_SIZE,
  PDS_PLOGI_COMPLETE,
  PDS_PRLI_COMPLETE,
  RIDA_F1_FLAGS_TOPO_F,
  RIDA_FORMAT_FABRIC,
} from '../../assembly/shared/iocb-mgmt.js';
import type { GuestMemory } from '../vfio-user/device-api.js';
import { formatWwn, wwnToBytes } from '../util/wwn.js';
import { EventFifo, INTR_TYPE, MAILBOX_COUNT } from './events.js';
import type { FabricEvent, FabricLoginResult, FabricPort } from './fabric-port.js';
import type { FlashStore } from './flash.js';
import type { IspHost, IspScheduler } from './host.js';
import type { IdentityPolicy, PortIdentity } from './identity.js';
import { WarnLimiter } from './warn-limit.js';
import { ICB_SIZE, parseInitControlBlock, RING_ENTRY_SIZE, type InitControlBlock } from './init-cb.js';
import { FSTATE, mailboxCommand, mailboxReply, MBS, RESOURCE_COUNT } from './mailbox.js';
import { executeCommand } from './iocb/fcp.js';
import type { CommandRequest, RingFault } from './ring/types.js';
import type { IspQueues } from './queues.js';
import { handleIocb } from './iocb/dispatch.js';
import { ExchangeTable } from './iocb/exchanges.js';

export type RiscState = 'reset' | 'rom' | 'running' | 'initialized';
export type LinkPhase = 'down' | 'armed' | 'logging-in' | 'up' | 'failed';

/** Async event codes (qla_def.h MBA_*). */
export const MBA = {
  REQ_TRANSFER_ERR: 0x8003,
  RSP_TRANSFER_ERR: 0x8004,
  LOOP_UP: 0x8011,
  LOOP_DOWN: 0x8012,
  PORT_UPDATE: 0x8014,
  RSCN_UPDATE: 0x8015,
} as const;

/** Well-known N_Port handles (qla_def.h NPH_*) and their fabric addresses. */
export const NPH = {
  MGMT_SERVER: 0x7ef,
  SNS: 0x7fc,
  F_PORT: 0x7fe,
  LAST_HANDLE: 0x7ef,
} as const;
export const WELL_KNOWN = {
  MGMT_SERVER: 0xfffffa,
  NAME_SERVER: 0xfffffc,
  F_PORT: 0xfffffe,
} as const;

/** AEN 0x8014 global: mb1 = 0xFFFF, mb2 = 6 (not 7: logged out), mb3 = 0xFF (all VPs). */
const PORT_UPDATE_GLOBAL = { handle: 0xffff, state: 0x0006, vp: 0x00ff } as const;
/** AEN 0x8014 mb2 for a remote port that logged out. */
const PDB_STATE_LOGGED_OUT = 0x0007;
/** Link-up fires at the latest this long after INITIALIZE_FIRMWARE (isp25xx.md §2.3 rule). */
const LINK_UP_DEFER_MS = 250;
/** Retry period for a failed fabric login while the link is up. */
const FABRIC_LOGIN_RETRY_MS = 2000;
/** At most one "ICB names ignored" warning per this period (a guest may re-initialize in a loop). */
const IDENTITY_WARN_PERIOD_MS = 60_000;

export interface RemoteLogin {
  handle: number;
  portId: number;
  wwpn: bigint;
  wwnn: bigint;
  receiveDataSize: number;
  /** PRLI accept word 3 (0 while only PLOGI is complete). */
  prliWord3: number;
  prliComplete: boolean;
}

export type IspTrace = (event: string, detail: Record<string, unknown>) => void;

export interface IspFirmwareOptions {
  host: IspHost;
  scheduler: IspScheduler;
  flash: FlashStore;
  events: EventFifo;
  fabric: FabricPort | null;
  /** The names the port may log in with (host configuration). */
  identity: IdentityPolicy;
  trace: IspTrace;
  /** Clock of the warning rate limit (default Date.now). */
  now?: () => number;
  /**
   * List the current logins in PORT_NODE_NAME_LIST (0x75, GNL) answers, as real firmware does.
   * Default false: qla2xxx 10.02.x (qla24xx_async_gnl_sp_done) compares each entry's name as a
   * host-order u64 with the wire-order fcport name, so on little-endian guests every listed
   * login looks unknown and is posted as a new session under the byte-reversed WWPN; its PLOGI
   * then collides (port ID used) and invalidates the real session. With an empty list the
   * driver simply logs in with COND_PLOGI, which completes at once for an existing login.
   */
  reportLoginsInPortList?: boolean;
}

export class IspFirmware {
  readonly flash: FlashStore;
  readonly events: EventFifo;
  queues!: IspQueues;
  risc: RiscState = 'rom';
  link: LinkPhase = 'down';
  firmwareLoaded = false;
  icb: InitControlBlock | null = null;
  /** The names the current initialization logs in with (set by INITIALIZE_FIRMWARE). */
  loginIdentity: PortIdentity | null = null;
  fabricLogin: FabricLoginResult | null = null;
  readonly logins = new Map<number, RemoteLogin>();
  /** Outstanding FCP commands by IOCB handle (for Abort IO / TMF / link loss). */
  readonly exchanges = new ExchangeTable();
  /** Bumped by every reset: async work started before it must not touch the new state. */
  generation = 0;
  private mailboxBusy = false;
  private cancelLinkTimer: (() => void) | null = null;
  private readonly host: IspHost;
  private readonly scheduler: IspScheduler;
  readonly fabric: FabricPort | null;
  readonly identity: IdentityPolicy;
  private readonly trace: IspTrace;
  private readonly reportLoginsInPortList: boolean;
  private readonly identityWarnings: WarnLimiter;

  constructor(o: IspFirmwareOptions) {
    this.host = o.host;
    this.scheduler = o.scheduler;
    this.flash = o.flash;
    this.events = o.events;
    this.fabric = o.fabric;
    this.identity = o.identity;
    this.identityWarnings = new WarnLimiter(IDENTITY_WARN_PERIOD_MS, o.now);
    this.trace = o.trace;
    this.reportLoginsInPortList = o.reportLoginsInPortList ?? false;
    this.fabric?.onEvent((e) => this.onFabricEvent(e));
  }

  attachQueues(queues: IspQueues): void {
    this.queues = queues;
  }

  // ---- guest-visible errors and DMA -------------------------------------------------------

  guestError(event: string, detail: Record<string, unknown>): void {
    this.trace(event, { guestError: true, ...detail });
  }

  private memory(): GuestMemory | null {
    return this.host.memory();
  }

  /** Guest memory for the data phase of FCP commands (null while detached). */
  hostMemory(): GuestMemory | null {
    return this.host.memory();
  }

  dmaRead(address: bigint, length: number): Uint8Array | null {
    const mem = this.memory();
    if (!mem) {
      this.guestError('dma_err_no_memory', { address: address.toString(16), length });
      return null;
    }
    try {
      return mem.read(address, length);
    } catch (e) {
      this.guestError('dma_err_read', { address: address.toString(16), length, error: String(e) });
      return null;
    }
  }

  dmaReadable(address: bigint, length: number): boolean {
    const mem = this.memory();
    return !!mem && mem.isMapped(address, length, 'read');
  }

  dmaWrite(address: bigint, data: Uint8Array): boolean {
    const mem = this.memory();
    if (!mem) {
      this.guestError('dma_err_no_memory', { address: address.toString(16), length: data.length });
      return false;
    }
    try {
      mem.write(address, data);
      return true;
    } catch (e) {
      this.guestError('dma_err_write', { address: address.toString(16), length: data.length, error: String(e) });
      return false;
    }
  }

  // ---- RISC state -------------------------------------------------------------------------

  /** ctrl_status SOFT_RESET: everything back to ROM state (isp25xx.md §2.1). */
  softReset(): void {
    this.generation++;
    this.risc = 'rom';
    this.resetFirmwareState();
    this.events.clear();
  }

  /** hccr SET_RISC_RESET: RISC held in reset. */
  holdRiscReset(): void {
    this.generation++;
    this.risc = 'reset';
    this.resetFirmwareState();
    this.events.clear();
  }

  /** hccr CLR_RISC_RESET: ROM code runs again. */
  releaseRiscReset(): void {
    if (this.risc === 'reset') this.risc = 'rom';
  }

  private resetFirmwareState(): void {
    this.cancelLinkTimer?.();
    this.cancelLinkTimer = null;
    this.mailboxBusy = false;
    this.firmwareLoaded = false;
    this.icb = null;
    this.loginIdentity = null;
    if (this.fabricLogin && this.fabric) {
      this.fabric.logout().catch((e) => this.trace('fabric_err_logout', { error: String(e) }));
    }
    this.fabricLogin = null;
    this.link = 'down';
    this.logins.clear();
    // Outstanding commands are not completed on reset: the driver aborts them itself (§9.7).
    this.exchanges.clear();
    this.queues?.reset();
  }

  startFirmware(): void {
    this.risc = 'running';
  }

  stopFirmware(): void {
    this.generation++;
    const wasRunning = this.risc !== 'reset';
    this.resetFirmwareState();
    if (wasRunning) this.risc = 'rom';
  }

  initializeFirmware(icbAddress: bigint, midInit: boolean): number {
    if (this.risc !== 'running' && this.risc !== 'initialized') {
      this.guestError('mbox_err_init_fw_not_running', { risc: this.risc });
      return MBS.COMMAND_ERROR;
    }
    const raw = this.dmaRead(icbAddress, ICB_SIZE);
    if (!raw) return MBS.COMMAND_ERROR;
    const icb = parseInitControlBlock(raw);
    if (typeof icb === 'string') {
      this.guestError('mbox_err_init_fw_icb', { reason: icb, midInit });
      return MBS.COMMAND_PARAMETER_ERROR;
    }
    // Re-initialization drops the previous session, as real firmware does.
    this.generation++;
    this.cancelLinkTimer?.();
    this.logins.clear();
    this.fabricLogin = null;
    this.icb = icb;
    this.loginIdentity = null;
    try {
      this.queues.configure(
        {
          requestAddress: icb.requestQueueAddress,
          requestLength: icb.requestQueueLength,
          responseAddress: icb.responseQueueAddress,
          responseLength: icb.responseQueueLength,
        },
        { maxHandleIndex: RESOURCE_COUNT - 1 },
      );
    } catch (e) {
      this.guestError('mbox_err_init_fw_rings', { error: String(e) });
      this.icb = null;
      return MBS.COMMAND_PARAMETER_ERROR;
    }
    for (const [addr, len] of [
      [icb.requestQueueAddress, icb.requestQueueLength],
      [icb.responseQueueAddress, icb.responseQueueLength],
    ] as const) {
      if (!this.dmaReadable(addr, len * RING_ENTRY_SIZE)) {
        this.guestError('mbox_err_init_fw_ring_unmapped', { address: addr.toString(16), entries: len });
      }
    }
    const identity = this.resolveIdentity(icb, midInit);
    this.loginIdentity = identity;
    this.risc = 'initialized';
    this.armLinkUp();
    this.trace('fw_initialized', { wwpn: formatWwn(identity.wwpn), wwnn: formatWwn(identity.wwnn), midInit });
    return MBS.COMMAND_COMPLETE;
  }

  /** The login names for an ICB: always the configured ones; other ICB names are warned about. */
  private resolveIdentity(icb: InitControlBlock, midInit: boolean): PortIdentity {
    const login = this.identity.physicalLogin({ wwpn: icb.portName, wwnn: icb.nodeName });
    if (login.overridden) {
      const suppressed = this.identityWarnings.admit();
      if (suppressed !== null) {
        this.guestError('identity_icb_names_ignored', {
          icbWwpn: formatWwn(icb.portName),
          icbWwnn: formatWwn(icb.nodeName),
          wwpn: formatWwn(login.identity.wwpn),
          wwnn: formatWwn(login.identity.wwnn),
          midInit,
          suppressed,
        });
      }
    }
    return login.identity;
  }

  // ---- mailbox ----------------------------------------------------------------------------

  /** hccr SET_HOST_INT with the inbound mailboxes copied in. */
  executeMailbox(inbound: Uint16Array): void {
    const mb = inbound.slice(0, MAILBOX_COUNT);
    if (this.risc === 'reset') {
      this.guestError('mbox_err_risc_in_reset', { opcode: mb[0] });
      return; // a RISC held in reset does not answer; the driver times out as on hardware
    }
    if (this.mailboxBusy) {
      this.guestError('mbox_err_busy', { opcode: mb[0] });
      return;
    }
    // qla2xxx polls the next command after INITIALIZE_FIRMWARE: the armed link-up fires now so
    // that its AENs are not swallowed by the post-0x60 "additional resp interrupt" poll.
    this.fireLinkUpIfArmed();
    const opcode = mb[0]!;
    const cmd = mailboxCommand(opcode);
    const rom = this.risc === 'rom';
    let reply: Uint16Array | Promise<Uint16Array>;
    if (!cmd) {
      this.trace('mbox_unhandled', { opcode: `0x${opcode.toString(16)}` });
      reply = mailboxReply(MBS.INVALID_COMMAND);
    } else if (rom && !cmd.inRom) {
      this.guestError('mbox_err_needs_firmware', { opcode, name: cmd.name });
      reply = mailboxReply(MBS.INVALID_COMMAND);
    } else {
      this.trace('mbox_cmd_enter', { opcode, name: cmd.name });
      try {
        reply = cmd.handler(this, mb);
      } catch (e) {
        this.trace('mbox_err_handler', { opcode, error: String(e) });
        reply = mailboxReply(MBS.COMMAND_ERROR);
      }
    }
    if (reply instanceof Uint16Array) {
      this.completeMailbox(reply, rom);
      return;
    }
    this.mailboxBusy = true;
    const gen = this.generation;
    reply
      .catch((e) => {
        this.trace('mbox_err_handler', { opcode, error: String(e) });
        return mailboxReply(MBS.COMMAND_ERROR);
      })
      .then((r) => {
        if (gen !== this.generation) return;
        this.mailboxBusy = false;
        this.completeMailbox(r, rom);
      });
  }

  private completeMailbox(reply: Uint16Array, rom: boolean): void {
    const success = reply[0] === MBS.COMMAND_COMPLETE;
    const type = rom
      ? success
        ? INTR_TYPE.ROM_MB_SUCCESS
        : INTR_TYPE.ROM_MB_FAILED
      : success
        ? INTR_TYPE.MB_SUCCESS
        : INTR_TYPE.MB_FAILED;
    this.events.push({ type, mailboxes: reply });
  }

  firmwareState(): number {
    if (this.risc !== 'initialized') return FSTATE.CONFIG_WAIT;
    switch (this.link) {
      case 'up':
        return FSTATE.READY;
      case 'armed':
      case 'logging-in':
        return FSTATE.WAIT_LOGIN;
      default:
        return FSTATE.LOSS_OF_SYNC;
    }
  }

  /** MBC 0x5D / AEN 0x8011 speed code (0 1G, 1 2G, 3 4G, 4 8G, 5 16G; 7 unknown). */
  speedCode(): number {
    const g = this.fabricLogin?.speedGbps;
    switch (g) {
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
    if (handle === NPH.F_PORT && this.fabricLogin) {
      return nodeName ? this.fabricLogin.fabricName : this.fabricLogin.fabricPortName;
    }
    const l = this.logins.get(handle);
    if (l) return nodeName ? l.wwnn : l.wwpn;
    return null;
  }

  // ---- link-up and fabric login ------------------------------------------------------------

  private armLinkUp(): void {
    this.link = 'armed';
    this.cancelLinkTimer = this.scheduler.after(LINK_UP_DEFER_MS, () => this.fireLinkUpIfArmed());
  }

  /** Called on a mailbox command, on ictrl interrupt enable, and by the arm timer. */
  fireLinkUpIfArmed(): void {
    if (this.link !== 'armed') return;
    this.cancelLinkTimer?.();
    this.cancelLinkTimer = null;
    this.startFabricLogin();
  }

  /** LIP / link initialization requests: log in again from scratch. */
  restartLink(): void {
    if (this.risc !== 'initialized') return;
    this.dropSession(CompStatus.CS_PORT_UNAVAILABLE);
    this.events.push(aen(MBA.LOOP_DOWN, 0, 0, 0));
    this.link = 'armed';
    this.fireLinkUpIfArmed();
  }

  /**
   * The fabric session ends (link loss, LIP): outstanding commands complete with compStatus
   * first (under the current generation), then logins and the fabric login are forgotten and
   * late results of older exchanges are ignored.
   */
  private dropSession(compStatus: number): void {
    for (const x of this.exchanges.all()) x.terminate(compStatus);
    this.exchanges.clear();
    this.generation++;
    this.cancelLinkTimer?.();
    this.cancelLinkTimer = null;
    this.fabricLogin = null;
    this.logins.clear();
  }

  private startFabricLogin(): void {
    const id = this.loginIdentity;
    if (!id) return;
    if (!this.fabric || !this.fabric.isLinkUp()) {
      this.link = 'down';
      this.trace('link_down_no_fabric', {});
      return;
    }
    this.link = 'logging-in';
    const gen = this.generation;
    this.fabric.login(id.wwpn, id.wwnn).then(
      (result) => {
        if (gen !== this.generation) return;
        this.fabricLogin = result;
        this.link = 'up';
        this.announceLinkUp(result);
      },
      (e) => {
        if (gen !== this.generation) return;
        this.link = 'failed';
        this.trace('fabric_err_login', { error: String(e) });
        this.cancelLinkTimer = this.scheduler.after(FABRIC_LOGIN_RETRY_MS, () => {
          if (gen === this.generation && this.link === 'failed') {
            this.link = 'armed';
            this.fireLinkUpIfArmed();
          }
        });
      },
    );
  }

  /** AEN 0x8011 → Report ID Acquisition on the response ring → AEN 0x8014 global (§3.7). */
  private announceLinkUp(r: FabricLoginResult): void {
    this.trace('link_up', { portId: r.portId.toString(16), speedGbps: r.speedGbps });
    this.events.push(aen(MBA.LOOP_UP, this.speedCode(), 0, 0));
    this.queues.post(buildReportIdAcquisition(r));
    this.queues.flushResponses();
    this.events.push(aen(MBA.PORT_UPDATE, PORT_UPDATE_GLOBAL.handle, PORT_UPDATE_GLOBAL.state, PORT_UPDATE_GLOBAL.vp));
  }

  private onFabricEvent(e: FabricEvent): void {
    if (this.risc !== 'initialized') return;
    switch (e.type) {
      case 'link-down':
        if (this.link === 'down') return;
        this.dropSession(CompStatus.CS_PORT_UNAVAILABLE);
        this.link = 'down';
        this.events.push(aen(MBA.LOOP_DOWN, 0, 0, 0));
        return;
      case 'link-up':
        if (this.link !== 'down' && this.link !== 'failed') return;
        this.link = 'armed';
        this.fireLinkUpIfArmed();
        return;
      case 'session-lost': {
        const l = this.loginByPortId(e.portId);
        if (!l || this.link !== 'up') return;
        for (const x of this.exchanges.matching(l.portId, null)) x.terminate(CompStatus.CS_PORT_LOGGED_OUT);
        this.logins.delete(l.handle);
        // PDB changed for that handle, new state "logged out": the driver deletes the session.
        this.events.push(aen(MBA.PORT_UPDATE, l.handle, PDB_STATE_LOGGED_OUT, 0));
        return;
      }
      case 'rscn': {
        if (this.link !== 'up' || !this.fabricLogin) return;
        const a = e.address & 0xffffff;
        if (a === this.fabricLogin.portId) return;
        this.events.push(aen(MBA.RSCN_UPDATE, ((e.format & 3) << 8) | (a >>> 16), a & 0xffff, 0));
        return;
      }
    }
  }

  // ---- login table (N_Port handles) ---------------------------------------------------------

  /** MBC 0x64 (direct form) / MBX IOCB GPDB. */
  writePortDatabase(handle: number, address: bigint): number {
    const pdb = this.portDatabase(handle);
    if (!pdb) return MBS.NOT_LOGGED_IN;
    return this.dmaWrite(address, pdb) ? MBS.COMMAND_COMPLETE : MBS.COMMAND_ERROR;
  }

  portDatabase(handle: number): Uint8Array | null {
    const l = this.logins.get(handle);
    if (!l) return null;
    const b = new Uint8Array(PDB_SIZE);
    const dv = new DataView(b.buffer);
    const state = l.prliComplete ? PDS_PRLI_COMPLETE : PDS_PLOGI_COMPLETE;
    b[PDB_CURRENT_LOGIN_STATE] = state;
    b[PDB_LAST_LOGIN_STATE] = state;
    b[PDB_PORT_ID] = (l.portId >>> 16) & 0xff; // domain, area, al_pa
    b[PDB_PORT_ID + 1] = (l.portId >>> 8) & 0xff;
    b[PDB_PORT_ID + 2] = l.portId & 0xff;
    dv.setUint16(PDB_NPORT_HANDLE, l.handle, true);
    dv.setUint16(PDB_RECEIVE_DATA_SIZE, l.receiveDataSize, true);
    b[PDB_PRLI_WORD_0] = 0x08; // FC-4 type FCP
    b[PDB_PRLI_WORD_0 + 1] = l.prliComplete ? 0x21 : 0; // image pair established
    b[PDB_PRLI_WORD_3] = l.prliWord3 & 0xff;
    b[PDB_PRLI_WORD_3 + 1] = (l.prliWord3 >>> 8) & 0xff;
    b.set(wwnToBytes(l.wwpn), PDB_PORT_NAME);
    b.set(wwnToBytes(l.wwnn), PDB_NODE_NAME);
    return b;
  }

  /** MBC 0x75 (direct or via MBX IOCB): extended name list of logged-in ports. */
  writePortList(options: number, address: bigint, bufferSize: number): { status: number; bytes: number } {
    if (!(options & GNL_OPTION_EXTENDED)) {
      this.guestError('mbox_err_gnl_format', { options });
      return { status: MBS.COMMAND_PARAMETER_ERROR, bytes: 0 };
    }
    const entries = this.reportLoginsInPortList
      ? [...this.logins.values()].filter((l) => l.handle <= NPH.LAST_HANDLE)
      : [];
    const fit = Math.min(entries.length, Math.floor(bufferSize / GNL_ENTRY_SIZE));
    const buf = new Uint8Array(fit * GNL_ENTRY_SIZE);
    for (let i = 0; i < fit; i++) {
      const pdb = this.portDatabase(entries[i]!.handle)!;
      const e = pdb.subarray(0, GNL_ENTRY_SIZE);
      // The driver's main GNL path reads port_id as al_pa, area, domain.
      const id = entries[i]!.portId;
      e[PDB_PORT_ID] = id & 0xff;
      e[PDB_PORT_ID + 1] = (id >>> 8) & 0xff;
      e[PDB_PORT_ID + 2] = (id >>> 16) & 0xff;
      buf.set(e, i * GNL_ENTRY_SIZE);
    }
    if (fit && !this.dmaWrite(address, buf)) return { status: MBS.COMMAND_ERROR, bytes: 0 };
    return { status: MBS.COMMAND_COMPLETE, bytes: buf.length };
  }

  loginByPortId(portId: number): RemoteLogin | undefined {
    for (const l of this.logins.values()) if (l.portId === portId) return l;
    return undefined;
  }

  // ---- IOCBs ------------------------------------------------------------------------------

  /** A decoded Command Type 7 from the request ring. */
  onCommand(cmd: CommandRequest): void {
    executeCommand(this, cmd);
  }

  /** The codec hit a DMA/index fault on a ring: report a transfer error (the driver aborts the ISP). */
  onRingFault(ring: 'request' | 'response', fault: RingFault): void {
    this.guestError('ring_err_fault', { ring, kind: fault.kind, message: fault.message });
    this.events.push(aen(ring === 'request' ? MBA.REQ_TRANSFER_ERR : MBA.RSP_TRANSFER_ERR, 0, 0, 0));
  }

  /** A request-ring entry (copied in by the queues). Completions go to the response ring. */
  onRequestEntry(entry: Uint8Array): void {
    const gen = this.generation;
    handleIocb(this, entry, 'ring').then(
      (completion) => {
        if (gen !== this.generation || !completion) return;
        this.queues.post(completion);
      },
      (e) => this.trace('iocb_err_handler', { type: entry[0], error: String(e) }),
    );
  }

  /** MBC 0x54: execute the IOCB at address and write its completion back in place. */
  async executeIocbInPlace(address: bigint): Promise<number> {
    const entry = this.dmaRead(address, IOCB_SIZE);
    if (!entry) return MBS.COMMAND_ERROR;
    if (entry[IocbHeader.ENTRY_COUNT] !== 1) entry[IocbHeader.ENTRY_COUNT] = 1; // one entry by definition here
    const gen = this.generation;
    const completion = await handleIocb(this, entry, 'mailbox');
    if (gen !== this.generation) return MBS.COMMAND_ERROR;
    if (completion && !this.dmaWrite(address, completion)) return MBS.COMMAND_ERROR;
    return MBS.COMMAND_COMPLETE;
  }

  traceEvent(event: string, detail: Record<string, unknown>): void {
    this.trace(event, detail);
  }
}

/** An async event with mb1..mb3. */
export function aen(code: number, mb1: number, mb2: number, mb3: number) {
  const mb = new Uint16Array(MAILBOX_COUNT);
  mb[0] = code;
  mb[1] = mb1;
  mb[2] = mb2;
  mb[3] = mb3;
  return { type: INTR_TYPE.ASYNC_EVENT, mailboxes: mb };
}

/** Report ID Acquisition (0x32), format 1 (fabric), F_Port topology. */
export function buildReportIdAcquisition(r: FabricLoginResult): Uint8Array {
  const e = new Uint8Array(IOCB_SIZE);
  e[0] = EntryType.VP_RPT_ID_IOCB_TYPE;
  e[IocbHeader.ENTRY_COUNT] = 1;
  e[VpRptId.PORT_ID] = r.portId & 0xff;
  e[VpRptId.PORT_ID + 1] = (r.portId >>> 8) & 0xff;
  e[VpRptId.PORT_ID + 2] = (r.portId >>> 16) & 0xff;
  e[VpRptId.FORMAT] = RIDA_FORMAT_FABRIC;
  e[VpRptId.F1_FLAGS] = RIDA_F1_FLAGS_TOPO_F;
  e.set(wwnToBytes(r.fabricPortName), VpRptId.F1_PORT_NAME);
  e.set(wwnToBytes(r.fabricName), VpRptId.F1_NODE_NAME);
  return e;
}
