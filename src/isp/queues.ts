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
 * published and one coalesced 0x13 event queued.
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

export class IspQueues {
  private geometry: RingGeometry | null = null;
  private reqIn = 0;
  private reqOut = 0;
  private rspIn = 0;
  private rspOut = 0;
  private drainScheduled = false;
  private flushScheduled = false;
  private readonly backlog: Pending[] = [];

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

  /** Soft reset / STOP_FIRMWARE: rings forgotten, pending completions dropped. */
  reset(): void {
    if (this.geometry) this.codec.resetResponses();
    this.geometry = null;
    this.reqIn = this.reqOut = this.rspIn = this.rspOut = 0;
    this.backlog.length = 0;
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
      this.events.pushResponseUpdate();
      if (this.reqIn !== this.reqOut) this.scheduleDrain();
    }
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
