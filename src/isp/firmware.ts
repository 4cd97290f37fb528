/**
 * The emulated ISP2532 "firmware": RISC state machine, mailbox execution, INITIALIZE_FIRMWARE, and
 * the entry points of the request ring (commands, other IOCBs, ring faults). No vendor firmware is
 * needed or executed; loads by mailbox are accepted and discarded.
 *
 * Modelled on what qla2xxx 10.02.x (ISP25xx path) needs: bring-up by qla2x00_initialize_adapter
 * (qla24xx_reset_risc, qla24xx_load_risc, qla2x00_init_rings), link-up and discovery as
 * qla2x00_async_event and qla2x00_fw_ready see them, and the mailbox and ring protocols of
 * qla2x00_mailbox_command and qla24xx_process_response_queue.
 *
 *   reset ──CLR_RISC_RESET / soft reset──▶ rom ──EXECUTE_FIRMWARE──▶ running ──INIT_FW──▶ initialized
 *   initialized: the port's fabric session (fabric-session.ts) arms the link and logs in;
 *                the guest's NPIV vports (VP index ≥ 1, vports.ts) FDISC on that link
 *
 * The firmware owns the RISC state, the mailbox, the exchange table, the physical N_Port's fabric
 * session (which owns the login table) and the VP table of the guest's vports. An IOCB's
 * vp_index and mailbox 9 of the per-VP mailbox commands select the N_Port a handler sees. Mailbox commands (mailbox.ts) and IOCB handlers (iocb/)
 * see only a MailboxContext / IocbContext (iocb/context.ts) built here, never this object.
 *
 * Identity: the fabric login uses the host-configured names (IdentityPolicy), never the port and
 * node names in the guest's init control block. A guest that writes other names there is not
 * refused — qla2xxx treats a failed INITIALIZE_FIRMWARE as fatal (qla2x00_init_rings →
 * "Init Firmware **** FAILED ****", probe or ISP abort fails, the board is disabled), so a refusal
 * would only turn a misconfigured guest into a dead HBA — the names are ignored, as on a port
 * whose WWPN the fabric assigns, and a rate-limited warning is logged (docs/security.md).
 */
import { CompStatus, IOCB_SIZE, IocbHeader } from '../../assembly/shared/iocb.js';
import { formatWwn } from '../util/wwn.js';
import { asyncEvent, INTR_TYPE, MAILBOX_COUNT, type EventFifo } from './events.js';
import type { FabricPort } from './fabric-port.js';
import { FabricSession } from './fabric-session.js';
import type { FlashStore } from './flash.js';
import { FSTATE, MAX_NPIV_VPORTS, MBA, MBS } from './fw-constants.js';
import { GuestDma } from './guest-dma.js';
import type { IspHost, IspScheduler } from './host.js';
import type { IdentityPolicy, PortIdentity } from './identity.js';
import { WarnLimiter } from '../util/warn-limit.js';
import { ICB_SIZE, parseInitControlBlock, type InitControlBlock } from './init-cb.js';
import { mailboxCommand, mailboxReply, RESOURCE_COUNT, type FirmwareControl, type MailboxContext } from './mailbox.js';
import { executeCommand } from './iocb/fcp.js';
import type { LinkPhase, PortSession } from './iocb/context.js';
import type { CommandRequest, RingFault } from './ring/types.js';
import type { IspQueues } from './queues.js';
import { handleIocb } from './iocb/dispatch.js';
import { VportTable } from './vports.js';
import { ExchangeTable } from './iocb/exchanges.js';
import type { LoginTable } from './login-table.js';
import type { Trace } from '../device/trace.js';

export type RiscState = 'reset' | 'rom' | 'running' | 'initialized';

/** At most one "ICB names ignored" warning per this period (a guest may re-initialize in a loop). */
const IDENTITY_WARN_PERIOD_MS = 60_000;
/** The physical port's VP index (the only N_Port until the firmware offers NPIV). */
const PHYSICAL_VP = 0;

export interface IspFirmwareOptions {
  host: IspHost;
  scheduler: IspScheduler;
  flash: FlashStore;
  events: EventFifo;
  fabric: FabricPort | null;
  /** The names the port may log in with (host configuration). */
  identity: IdentityPolicy;
  trace: Trace;
  /** Clock of the warning rate limit (default Date.now). */
  now?: () => number;
  /** The fastest link the model negotiates (FabricSessionOptions.maxSpeedGbps). */
  maxSpeedGbps?: number;
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

export class IspFirmware implements FirmwareControl {
  readonly flash: FlashStore;
  readonly events: EventFifo;
  /** Attached by attachQueues() right after construction (the queues call back into this object). */
  queues!: IspQueues;
  risc: RiscState = 'rom';
  firmwareLoaded = false;
  icb: InitControlBlock | null = null;
  /** Outstanding FCP commands by IOCB handle (for Abort IO / TMF / link loss). */
  readonly exchanges = new ExchangeTable();
  /** The physical port's link and fabric login, with its login table. */
  readonly session: FabricSession;
  /** The guest's NPIV vports (VP index 1..MAX_NPIV_VPORTS) on the physical port's link. */
  readonly vports: VportTable;
  readonly identity: IdentityPolicy;
  private mailboxBusy = false;
  private readonly dma: GuestDma;
  private readonly trace: Trace;
  private readonly identityWarnings: WarnLimiter;
  /** What the mailbox commands and IOCB handlers see of this firmware. */
  private readonly context: MailboxContext;

  constructor(o: IspFirmwareOptions) {
    this.flash = o.flash;
    this.events = o.events;
    this.identity = o.identity;
    this.identityWarnings = new WarnLimiter(IDENTITY_WARN_PERIOD_MS, o.now);
    this.trace = o.trace;
    this.dma = new GuestDma(o.host, (event, detail) => this.guestError(event, detail));
    const sessionOptions = {
      scheduler: o.scheduler,
      events: o.events,
      exchanges: this.exchanges,
      postResponse: (entry: Uint8Array) => {
        this.queues.post(entry);
        this.queues.flushResponses();
      },
      trace: o.trace,
      ...(o.maxSpeedGbps !== undefined ? { maxSpeedGbps: o.maxSpeedGbps } : {}),
    };
    this.session = new FabricSession({
      ...sessionOptions,
      vpIndex: PHYSICAL_VP,
      fabric: o.fabric,
      onUp: () => this.vports.physicalUp(),
      onDown: () => this.vports.physicalDown(),
    });
    this.vports = new VportTable({
      physical: this.session,
      identity: o.identity,
      scheduler: o.scheduler,
      session: sessionOptions,
      accepting: () => this.risc === 'initialized',
    });
    this.context = {
      dma: this.dma,
      exchanges: this.exchanges,
      port: this.session,
      portOf: (vp) => this.vports.portOf(vp),
      vports: this.vports,
      reportLoginsInPortList: o.reportLoginsInPortList ?? false,
      postStatus: (status) => this.queues.postStatus(status),
      guestError: (event, detail) => this.guestError(event, detail),
      trace: (event, detail) => this.trace(event, detail),
      flash: this.flash,
      firmware: this,
    };
    o.fabric?.onEvent((e) => {
      if (this.risc === 'initialized') this.session.onFabricEvent(e);
    });
  }

  attachQueues(queues: IspQueues): void {
    this.queues = queues;
  }

  /** The physical port's link phase. */
  get link(): LinkPhase {
    return this.session.phase;
  }

  /** The physical port's N_Port handle table. */
  get logins(): LoginTable {
    return this.session.logins;
  }

  /** The names the current initialization logs in with (set by INITIALIZE_FIRMWARE). */
  get loginIdentity(): PortIdentity | null {
    return this.session.identity;
  }

  guestError(event: string, detail: Record<string, unknown>): void {
    this.trace(event, { guestError: true, ...detail });
  }

  // ---- RISC state -------------------------------------------------------------------------

  /** ctrl_status SOFT_RESET: everything back to ROM state (qla24xx_reset_risc). */
  softReset(): void {
    this.risc = 'rom';
    this.resetFirmwareState();
    this.events.clear();
  }

  /** hccr SET_RISC_RESET: RISC held in reset. */
  holdRiscReset(): void {
    this.risc = 'reset';
    this.resetFirmwareState();
    this.events.clear();
  }

  /** hccr CLR_RISC_RESET: ROM code runs again. */
  releaseRiscReset(): void {
    if (this.risc === 'reset') this.risc = 'rom';
  }

  /** Everything a reset forgets; the session's new generation orphans work still in flight. */
  private resetFirmwareState(): void {
    this.vports.clear();
    this.session.reset();
    this.mailboxBusy = false;
    this.firmwareLoaded = false;
    this.icb = null;
    // Outstanding commands are not completed on reset: the driver aborts them itself (§9.7).
    this.exchanges.clear();
    this.queues.reset();
  }

  firmwareImageLoaded(): void {
    this.firmwareLoaded = true;
  }

  startFirmware(): void {
    this.risc = 'running';
  }

  stopFirmware(): void {
    const wasRunning = this.risc !== 'reset';
    this.resetFirmwareState();
    if (wasRunning) this.risc = 'rom';
  }

  initializeFirmware(icbAddress: bigint, midInit: boolean): number {
    if (this.risc !== 'running' && this.risc !== 'initialized') {
      this.guestError('mbox_err_init_fw_not_running', { risc: this.risc });
      return MBS.COMMAND_ERROR;
    }
    const raw = this.dma.read(icbAddress, ICB_SIZE);
    if (!raw) return MBS.COMMAND_ERROR;
    const icb = parseInitControlBlock(raw);
    if (typeof icb === 'string') {
      this.guestError('mbox_err_init_fw_icb', { reason: icb, midInit });
      return MBS.COMMAND_PARAMETER_ERROR;
    }
    // Re-initialization drops the previous session and every VP, as real firmware does.
    this.vports.clear();
    this.session.beginInitialization();
    this.icb = icb;
    try {
      this.queues.configure(
        {
          requestAddress: icb.requestQueueAddress,
          requestLength: icb.requestQueueLength,
          responseAddress: icb.responseQueueAddress,
          responseLength: icb.responseQueueLength,
        },
        { maxHandleIndex: RESOURCE_COUNT - 1, maxVpIndex: MAX_NPIV_VPORTS },
      );
      this.queues.configureZio(icb.firmwareOptions2 & 0xf, icb.interruptDelayTimer, () => this.exchanges.size);
    } catch (e) {
      this.guestError('mbox_err_init_fw_rings', { error: String(e) });
      this.icb = null;
      return MBS.COMMAND_PARAMETER_ERROR;
    }
    for (const [addr, len] of [
      [icb.requestQueueAddress, icb.requestQueueLength],
      [icb.responseQueueAddress, icb.responseQueueLength],
    ] as const) {
      if (!this.dma.readable(addr, len * IOCB_SIZE)) {
        this.guestError('mbox_err_init_fw_ring_unmapped', { address: addr.toString(16), entries: len });
      }
    }
    const identity = this.resolveIdentity(icb, midInit);
    this.risc = 'initialized';
    this.session.arm(identity);
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

  /** The handlers' context for VP index vpIndex (0 = physical); null outside the VP range. */
  private contextOf(vpIndex: number): MailboxContext | null {
    if (vpIndex === PHYSICAL_VP) return this.context;
    const port: PortSession | null = this.vports.portOf(vpIndex);
    return port ? { ...this.context, port } : null;
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
    this.session.fireIfArmed();
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
      // Commands qla2xxx sends with the VP index in mailbox 9 run against that VP's N_Port.
      const ctx = cmd.perVp ? this.contextOf(mb[9]!) : this.context;
      try {
        if (!ctx) {
          this.guestError('mbox_err_vp_index', { opcode, name: cmd.name, vpIndex: mb[9] });
          reply = mailboxReply(MBS.COMMAND_PARAMETER_ERROR);
        } else reply = cmd.handler(ctx, mb);
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
    // A reset or an ended session orphans the reply (see FabricSession.generation).
    const gen = this.session.generation;
    reply
      .catch((e) => {
        this.trace('mbox_err_handler', { opcode, error: String(e) });
        return mailboxReply(MBS.COMMAND_ERROR);
      })
      .then((r) => {
        if (gen !== this.session.generation) return;
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
    switch (this.session.phase) {
      case 'up':
        return FSTATE.READY;
      case 'armed':
      case 'logging-in':
        return FSTATE.WAIT_LOGIN;
      default:
        return FSTATE.LOSS_OF_SYNC;
    }
  }

  /** Called on ictrl interrupt enable (and on every mailbox command, above). */
  fireLinkUpIfArmed(): void {
    this.session.fireIfArmed();
  }

  restartLink(): void {
    if (this.risc !== 'initialized') return;
    this.session.restart();
  }

  // ---- IOCBs ------------------------------------------------------------------------------

  /** A decoded Command Type 7 from the request ring. */
  onCommand(cmd: CommandRequest): void {
    // The codec accepts vp_index 0..MAX_NPIV_VPORTS only (RingLimits.maxVpIndex).
    const ctx = this.contextOf(cmd.vpIndex);
    if (!ctx) {
      this.guestError('fcp_err_vp_index', { handle: cmd.handle, vpIndex: cmd.vpIndex });
      this.queues.postStatus({ handle: cmd.handle, compStatus: CompStatus.CS_PORT_UNAVAILABLE, scsiStatus: 0 });
      return;
    }
    executeCommand(ctx, cmd);
  }

  /** The codec hit a DMA/index fault on a ring: report a transfer error (the driver aborts the ISP). */
  onRingFault(ring: 'request' | 'response', fault: RingFault): void {
    this.guestError('ring_err_fault', { ring, kind: fault.kind, message: fault.message });
    this.events.push(asyncEvent(ring === 'request' ? MBA.REQ_TRANSFER_ERR : MBA.RSP_TRANSFER_ERR, 0, 0, 0));
  }

  /** A request-ring entry (copied in by the queues). Completions go to the response ring. */
  onRequestEntry(entry: Uint8Array): void {
    const gen = this.session.generation;
    handleIocb(this.context, entry, 'ring').then(
      (completion) => {
        if (gen !== this.session.generation || !completion) return;
        this.queues.post(completion);
      },
      (e) => this.trace('iocb_err_handler', { type: entry[0], error: String(e) }),
    );
  }

  /** MBC 0x54: execute the IOCB at address and write its completion back in place. */
  async executeIocbInPlace(address: bigint): Promise<number> {
    const entry = this.dma.read(address, IOCB_SIZE);
    if (!entry) return MBS.COMMAND_ERROR;
    if (entry[IocbHeader.ENTRY_COUNT] !== 1) entry[IocbHeader.ENTRY_COUNT] = 1; // one entry by definition here
    const gen = this.session.generation;
    const completion = await handleIocb(this.context, entry, 'mailbox');
    if (gen !== this.session.generation) return MBS.COMMAND_ERROR;
    if (completion && !this.dma.write(address, completion)) return MBS.COMMAND_ERROR;
    return MBS.COMMAND_COMPLETE;
  }
}
