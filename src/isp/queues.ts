/**
 * Request and response rings of an ISP24xx/25xx single-queue port (isp25xx.md §5; qla2xxx 10.02.x
 * qla2x00_start_iocbs / qla24xx_process_response_queue): the firmware side of req_q_in/req_q_out
 * and rsp_q_in/rsp_q_out.
 *
 * Request side: the req_q_in doorbell only records the producer index and schedules a drain;
 * entries are copied in (no double fetch), their entry_count checked, and handed to the entry
 * handler; req_q_out advances as they are consumed. Response side: entries are written whole,
 * never more than (rsp_q_out − rsp_q_in − 1) mod length (back-pressure: the rest wait for the
 * driver to advance rsp_q_out), then rsp_q_in is published and one coalesced 0x13 event queued.
 *
 * This is the TypeScript ring used for management traffic; the AssemblyScript RingEngine
 * (src/isp/ring/) can take over Command Type 7 decoding through the entry handler.
 */
import { EntryStatus, IOCB_SIZE, IocbHeader } from '../../assembly/shared/iocb.js';
import type { EventFifo } from './events.js';
import type { IspHost, IspScheduler } from './host.js';

export interface RingGeometry {
  requestAddress: bigint;
  requestLength: number;
  responseAddress: bigint;
  responseLength: number;
}

/** Receives one copied-in request entry (entry_count × 64 bytes). */
export type RequestEntryHandler = (entry: Uint8Array) => void;
export type RingTrace = (event: string, detail: Record<string, unknown>) => void;

/** Completions waiting for ring space beyond this are dropped (a driver that never consumes). */
const RESPONSE_BACKLOG_LIMIT = 65536;
/** The largest multi-entry IOCB: Cmd7 with QLA_SG_ALL (1024) DSDs = 1 + ceil(1023 / 5) entries. */
const MAX_ENTRY_COUNT = 206;

export class IspQueues {
  private geometry: RingGeometry | null = null;
  private reqIn = 0;
  private reqOut = 0;
  private rspIn = 0;
  private rspOut = 0;
  private drainScheduled = false;
  private flushScheduled = false;
  private readonly backlog: Uint8Array[] = [];

  constructor(
    private readonly host: IspHost,
    private readonly scheduler: IspScheduler,
    private readonly events: EventFifo,
    private readonly onEntry: RequestEntryHandler,
    private readonly trace: RingTrace = () => {},
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
  get responseBacklog(): number {
    return this.backlog.length;
  }

  /** INITIALIZE_FIRMWARE: new rings, all indices 0. */
  configure(g: RingGeometry): void {
    this.geometry = { ...g };
    this.reqIn = this.reqOut = this.rspIn = this.rspOut = 0;
    this.backlog.length = 0;
  }

  /** Soft reset / STOP_FIRMWARE: rings forgotten, pending completions dropped. */
  reset(): void {
    this.geometry = null;
    this.reqIn = this.reqOut = this.rspIn = this.rspOut = 0;
    this.backlog.length = 0;
  }

  /** req_q_in write (doorbell). */
  writeRequestIn(value: number): void {
    const g = this.geometry;
    if (!g) {
      this.reqIn = value & 0xffff;
      return; // qla24xx_config_rings writes 0 before INITIALIZE_FIRMWARE
    }
    if (value >= g.requestLength) {
      this.trace('ring_err_req_in_out_of_range', { value, length: g.requestLength });
      return;
    }
    this.reqIn = value;
    if (!this.drainScheduled) {
      this.drainScheduled = true;
      this.scheduler.defer(() => {
        this.drainScheduled = false;
        this.drainRequests();
      });
    }
  }

  /** req_q_out write: the driver only writes 0 at ring init; honour it only then. */
  writeRequestOut(value: number): void {
    if (value !== 0 || (this.geometry && this.reqIn !== 0)) {
      this.trace('ring_ub_req_out_write', { value });
      return;
    }
    this.reqOut = 0;
  }

  writeResponseIn(value: number): void {
    if (value !== 0) {
      this.trace('ring_ub_rsp_in_write', { value });
      return;
    }
    if (this.geometry && this.rspOut === 0) this.rspIn = 0;
  }

  /** rsp_q_out write: the driver consumed up to here; post waiting completions. */
  writeResponseOut(value: number): void {
    const g = this.geometry;
    if (!g) {
      this.rspOut = value & 0xffff;
      return;
    }
    if (value >= g.responseLength) {
      this.trace('ring_err_rsp_out_out_of_range', { value, length: g.responseLength });
      return;
    }
    this.rspOut = value;
    if (this.backlog.length) this.scheduleFlush();
  }

  /** Queues a 64-byte response entry for the response ring. */
  post(entry: Uint8Array): void {
    if (entry.length !== IOCB_SIZE) throw new Error(`response entry must be ${IOCB_SIZE} bytes`);
    if (!this.geometry) {
      this.trace('ring_err_post_unconfigured', { type: entry[0] });
      return;
    }
    if (this.backlog.length >= RESPONSE_BACKLOG_LIMIT) {
      this.trace('ring_err_response_backlog_full', { type: entry[0] });
      return;
    }
    this.backlog.push(entry.slice());
    this.scheduleFlush();
  }

  /** Writes as many waiting entries as fit, publishes rsp_q_in once and queues one 0x13 event. */
  flushResponses(): void {
    const g = this.geometry;
    const mem = this.host.memory();
    if (!g || !mem || !this.backlog.length) return;
    let wrote = 0;
    while (this.backlog.length) {
      const free = (this.rspOut - this.rspIn - 1 + g.responseLength) % g.responseLength;
      if (free === 0) break;
      const entry = this.backlog.shift()!;
      const addr = g.responseAddress + BigInt(this.rspIn * IOCB_SIZE);
      try {
        mem.write(addr, entry);
      } catch (e) {
        this.trace('ring_err_response_dma', { address: addr.toString(16), error: String(e) });
        continue;
      }
      this.rspIn = (this.rspIn + 1) % g.responseLength;
      wrote++;
    }
    if (wrote) this.events.pushResponseUpdate();
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    this.scheduler.defer(() => {
      this.flushScheduled = false;
      this.flushResponses();
    });
  }

  /** Consumes entries up to req_q_in; the budget is one ring's worth per pass. */
  drainRequests(): void {
    const g = this.geometry;
    const mem = this.host.memory();
    if (!g || !mem) return;
    let budget = g.requestLength;
    while (this.reqOut !== this.reqIn && budget-- > 0) {
      const available = (this.reqIn - this.reqOut + g.requestLength) % g.requestLength;
      const first = this.readEntries(mem, g, this.reqOut, 1);
      if (!first) {
        this.reqOut = (this.reqOut + 1) % g.requestLength;
        continue;
      }
      const count = first[IocbHeader.ENTRY_COUNT]!;
      if (count === 0 || count > available || count > MAX_ENTRY_COUNT) {
        this.trace('ring_err_entry_count', { count, available });
        first[IocbHeader.ENTRY_STATUS] = first[IocbHeader.ENTRY_STATUS]! | EntryStatus.RF_INV_E_COUNT;
        this.reqOut = (this.reqOut + 1) % g.requestLength;
        this.onEntry(first);
        continue;
      }
      const entry = count === 1 ? first : this.readEntries(mem, g, this.reqOut, count);
      this.reqOut = (this.reqOut + count) % g.requestLength;
      if (entry) this.onEntry(entry);
    }
    if (this.reqOut !== this.reqIn) {
      // Budget exhausted: continue on a later turn rather than monopolising the loop.
      this.scheduler.defer(() => this.drainRequests());
    }
  }

  private readEntries(
    mem: NonNullable<ReturnType<IspHost['memory']>>,
    g: RingGeometry,
    index: number,
    count: number,
  ): Uint8Array | null {
    const out = new Uint8Array(count * IOCB_SIZE);
    try {
      for (let i = 0; i < count; i++) {
        const slot = (index + i) % g.requestLength;
        mem.readInto(g.requestAddress + BigInt(slot * IOCB_SIZE), out, i * IOCB_SIZE, IOCB_SIZE);
      }
    } catch (e) {
      this.trace('ring_err_request_dma', { index, error: String(e) });
      return null;
    }
    return out;
  }
}
