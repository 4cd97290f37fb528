/**
 * Request and response rings of an ISP24xx/25xx single-queue port (qla2xxx 10.02.x
 * qla2x00_start_iocbs / qla24xx_process_response_queue): the firmware side of req_q_in/req_q_out
 * and rsp_q_in/rsp_q_out, driving the ring codec (src/isp/ring/: the AssemblyScript RingEngine,
 * or its TypeScript twin) that copies entries in once, validates and decodes them, and encodes
 * responses.
 *
 * Request side: the req_q_in doorbell only records the producer index and schedules a drain (no
 * ring work inside an MMIO write); decoded Command Type 7 go to the command handler, other IOCBs
 * to the entry handler, malformed ones were already answered by the codec with entry_status.
 * Response side: entries wait in the codec's FIFO (and behind it a bounded backlog) until the
 * guest ring has room — never more than (rsp_q_out − rsp_q_in − 1) mod length — then rsp_q_in is
 * published and one coalesced 0x13 event queued. A driver read of rsp_q_in first publishes what
 * is waiting, so the running handler consumes it in the same pass (events.ts then owes no 0x13).
 *
 * ZIO (ICB firmware_options_2[3:0] = 6, which qla24xx_nvram_config selects when the NVRAM asks
 * for any ZIO mode; interrupt_delay_timer in 100 µs units): the 0x13 for a publication is
 * delayed up to the timer, but only while other commands are still outstanding, so a lone
 * command (QD1: qla2xxx on 24xx/25xx learns of completions only through interrupts) is never
 * delayed. Node timers have 1 ms granularity, so a delay below 1 ms becomes 1 ms.
 */
import type { EventFifo } from './events.js';
import type { IspHost, IspScheduler } from './host.js';
import type { CommandRequest, RingCodec, RingFault, RingLimits, StatusType0 } from './ring/types.js';
import type { Trace } from '../device/trace.js';

export interface RingGeometry {
  requestAddress: bigint;
  requestLength: number;
  responseAddress: bigint;
  responseLength: number;
}

export interface QueueHandlers {
  /** A decoded Command Type 7 (+ continuations). */
  command(request: CommandRequest): void;
  /** Another single-entry IOCB, as copied in (64 bytes). */
  entry(bytes: Uint8Array): void;
  /** A DMA or index fault on a ring: the firmware reports it to the driver (AEN 0x8003/0x8004). */
  fault(ring: 'request' | 'response', fault: RingFault): void;
}

/** Completions that do not fit the codec's FIFO wait here; beyond this they are dropped. */
const RESPONSE_BACKLOG_LIMIT = 65536;
/** Entries consumed per drain pass before yielding to the event loop. */
const REQUEST_BUDGET = 128;

type Pending = { kind: 'raw'; entry: Uint8Array } | { kind: 'status'; status: StatusType0 };

/** firmware_options_2[3:0] ZIO modes (qla_def.h QLA_ZIO_*). */
export const ZIO_MODE_6 = 6;
/** ICB interrupt_delay_timer unit. */
export const ZIO_TIMER_UNIT_US = 100;

export class IspQueues {
  private geometry: RingGeometry | null = null;
  private reqIn = 0;
  private reqOut = 0;
  private rspIn = 0;
  private rspOut = 0;
  private drainScheduled = false;
  private flushScheduled = false;
  private readonly backlog: Pending[] = [];
  /** ZIO mode 6 delay in ms (0: off) and the count of commands still in flight. */
  private zioDelayMs = 0;
  private outstanding: () => number = () => 0;
  private cancelZio: (() => void) | null = null;

  constructor(
    private readonly host: IspHost,
    private readonly scheduler: IspScheduler,
    private readonly events: EventFifo,
    private readonly codec: RingCodec,
    private readonly handlers: QueueHandlers,
    private readonly trace: Trace = () => {},
  ) {}

  get configured(): boolean {
    return this.geometry !== null;
  }
  get requestIn(): number {
    return this.reqIn;
  }
  get requestOut(): number {
    return this.reqOut;
  }
  get responseIn(): number {
    return this.rspIn;
  }
  get responseOut(): number {
    return this.rspOut;
  }
  /** Responses not yet written to the guest ring. */
  get responseBacklog(): number {
    return this.backlog.length + (this.geometry ? this.codec.pendingResponses : 0);
  }

  /** INITIALIZE_FIRMWARE: new rings, all indices 0. Throws RingConfigError for bad geometry. */
  configure(g: RingGeometry, limits: Partial<RingLimits> = {}): void {
    this.codec.configure(g.requestAddress, g.requestLength, g.responseAddress, g.responseLength, limits);
    this.geometry = { ...g };
    this.reqIn = this.reqOut = this.rspIn = this.rspOut = 0;
    this.backlog.length = 0;
  }

  /**
   * ZIO from the ICB (INITIALIZE_FIRMWARE): mode 6 with interrupt_delay_timer units of 100 µs;
   * any other mode means an interrupt per publication. `outstanding` counts commands in flight.
   */
  configureZio(mode: number, timerUnits: number, outstanding: () => number): void {
    this.stopZio();
    if (mode !== 0 && mode !== ZIO_MODE_6) this.trace('ring_ub_zio_mode', { mode });
    this.zioDelayMs = mode === ZIO_MODE_6 && timerUnits > 0 ? (timerUnits * ZIO_TIMER_UNIT_US) / 1000 : 0;
    this.outstanding = outstanding;
  }

  get zioActive(): boolean {
    return this.zioDelayMs > 0;
  }

  private stopZio(): void {
    this.cancelZio?.();
    this.cancelZio = null;
  }

  /** Soft reset / STOP_FIRMWARE: rings forgotten, pending completions dropped. */
  reset(): void {
    this.stopZio();
    this.zioDelayMs = 0;
    if (this.geometry) this.codec.resetResponses();
    this.geometry = null;
    this.reqIn = this.reqOut = this.rspIn = this.rspOut = 0;
    this.backlog.length = 0;
  }

  /**
   * The driver is about to read rsp_q_in (its response handler): publish waiting completions
   * now, so that this pass consumes them instead of a later interrupt.
   */
  flushForRead(): void {
    if (this.geometry && (this.backlog.length || this.codec.pendingResponses)) this.flushResponses();
  }

  /** req_q_in write (doorbell). */
  writeRequestIn(value: number): void {
    const g = this.geometry;
    if (!g) {
      // qla24xx_config_rings writes 0 before INITIALIZE_FIRMWARE; nothing to consume yet.
      if (value !== 0) this.trace('ring_ub_doorbell_unconfigured', { value });
      return;
    }
    if (value >= g.requestLength) {
      this.trace('ring_err_req_in_out_of_range', { value, length: g.requestLength, guestError: true });
      return;
    }
    this.reqIn = value;
    this.scheduleDrain();
  }

  /** req_q_out: the driver writes 0 at ring init only; it is the firmware's register. */
  writeRequestOut(value: number): void {
    if (value !== 0 || (this.geometry && this.reqIn !== this.reqOut)) {
      this.trace('ring_ub_req_out_write', { value });
      return;
    }
    this.reqOut = 0;
    this.reqIn = 0;
  }

  /** rsp_q_in: the driver writes 0 at ring init only. */
  writeResponseIn(value: number): void {
    if (value !== 0 || this.responseBacklog > 0 || this.rspIn !== this.rspOut) {
      if (value !== 0 || this.rspIn !== 0) this.trace('ring_ub_rsp_in_write', { value });
      return;
    }
    this.rspIn = 0;
  }

  /** rsp_q_out write: the driver consumed up to here; post waiting completions. */
  writeResponseOut(value: number): void {
    const g = this.geometry;
    if (!g) {
      if (value !== 0) this.trace('ring_ub_rsp_out_unconfigured', { value });
      return;
    }
    if (value >= g.responseLength) {
      this.trace('ring_err_rsp_out_out_of_range', { value, length: g.responseLength, guestError: true });
      return;
    }
    this.rspOut = value;
    if (this.responseBacklog) this.scheduleFlush();
    // A drain stopped by a full response FIFO can continue now.
    if (this.reqIn !== this.reqOut) this.scheduleDrain();
  }

  /** Queues a host-built 64-byte response entry (RIDA, management IOCB completions). */
  post(entry: Uint8Array): void {
    this.enqueue({ kind: 'raw', entry: entry.slice() });
  }

  /** Queues a Status Type 0 (+ continuations) for a command or TMF. */
  postStatus(status: StatusType0): void {
    this.enqueue({ kind: 'status', status });
  }

  private enqueue(p: Pending): void {
    if (!this.geometry) {
      this.trace('ring_err_post_unconfigured', { kind: p.kind });
      return;
    }
    if (this.backlog.length === 0 && this.pushToCodec(p)) {
      this.scheduleFlush();
      return;
    }
    if (this.backlog.length >= RESPONSE_BACKLOG_LIMIT) {
      this.trace('ring_err_response_backlog_full', { kind: p.kind });
      return;
    }
    this.backlog.push(p);
    this.scheduleFlush();
  }

  private pushToCodec(p: Pending): boolean {
    try {
      return (p.kind === 'raw' ? this.codec.postRaw(p.entry) : this.codec.postStatus(p.status)) > 0;
    } catch (e) {
      // Host-side bug (an entry the codec refuses): drop it loudly rather than wedge the ring.
      this.trace('ring_err_response_refused', { kind: p.kind, error: String(e) });
      return true;
    }
  }

  /** Writes as much as fits, publishes rsp_q_in once and queues one 0x13 event. */
  flushResponses(): void {
    const g = this.geometry;
    const mem = this.host.memory();
    if (!g || !mem) return;
    let wrote = 0;
    for (let round = 0; round < 2; round++) {
      while (this.backlog.length && this.pushToCodec(this.backlog[0]!)) this.backlog.shift();
      if (this.codec.pendingResponses === 0) break;
      const r = this.codec.flushResponses(mem, this.rspIn, this.rspOut);
      this.rspIn = r.newIn;
      wrote += r.written;
      if (r.fault) {
        this.handlers.fault('response', r.fault);
        break;
      }
      if (r.full || r.written === 0) break;
    }
    if (wrote) {
      this.events.responsesPublished();
      this.raiseResponseUpdate();
      if (this.reqIn !== this.reqOut) this.scheduleDrain();
    }
  }

  /** 0x13 now, or (ZIO) once the timer runs out while other commands are still in flight. */
  private raiseResponseUpdate(): void {
    if (this.zioDelayMs > 0 && this.outstanding() > 0) {
      this.cancelZio ??= this.scheduler.after(this.zioDelayMs, () => {
        this.cancelZio = null;
        this.events.pushResponseUpdate();
      });
      return;
    }
    this.stopZio();
    this.events.pushResponseUpdate();
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    this.scheduler.defer(() => {
      this.flushScheduled = false;
      this.flushResponses();
    });
  }

  private scheduleDrain(): void {
    if (this.drainScheduled) return;
    this.drainScheduled = true;
    this.scheduler.defer(() => {
      this.drainScheduled = false;
      this.drainRequests();
    });
  }

  /** Consumes entries up to req_q_in in budgeted passes. */
  drainRequests(): void {
    const g = this.geometry;
    const mem = this.host.memory();
    if (!g || !mem || this.reqOut === this.reqIn) return;
    const r = this.codec.consumeRequests(mem, this.reqOut, this.reqIn, REQUEST_BUDGET);
    this.reqOut = r.newOut;
    for (const e of r.entries) {
      if (e.kind === 'command') this.handlers.command(e);
      else if (e.kind === 'raw') this.handlers.entry(e.bytes);
      else
        this.trace('ring_err_rejected_entry', { type: e.type, handle: e.handle, reason: e.reason, guestError: true });
    }
    if (this.codec.pendingResponses || this.backlog.length) this.scheduleFlush();
    if (r.fault) {
      this.handlers.fault('request', r.fault);
      return;
    }
    // More to do and not blocked on response space: continue on a later turn.
    if (this.reqOut !== this.reqIn && r.stop !== 'response-full') this.scheduleDrain();
  }
}
