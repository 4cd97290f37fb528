/**
 * RISC→host event FIFO of an ISP24xx/25xx with the host_status latch and CLR_RISC_INT
 * acknowledge (qla2xxx 10.02.x qla24xx_intr_handler / qla24xx_msix_default).
 *
 * Only the head event is latched: its mailbox values are visible in the outbound mailbox
 * registers and host_status = mb0 << 16 | HSRX_RISC_INT | type. hccr CLR_RISC_INT pops it and
 * latches the next one synchronously. Events latch even with interrupts disabled (ictrl = 0)
 * because qla2xxx completes every probe-time mailbox command by polling host_status.
 *
 * Response-queue updates (0x13) are coalesced as the firmware may: qla24xx_process_response_queue
 * reads rsp_q_in once and consumes every entry up to it, so a 0x13 is only owed for entries
 * published after the driver's last rsp_q_in read. One that is not (already queued behind the
 * running handler, or delayed by ZIO) is dropped rather than raising an interrupt whose handler
 * would find the ring empty.
 */
import type { IspHost } from './host.js';
import type { Trace } from '../device/trace.js';

export const HOST_STATUS = {
  RISC_INT: 0x8000, // HSRX_RISC_INT
  RISC_PAUSED: 0x0100, // HSRX_RISC_PAUSED
} as const;

/** Interrupt type codes, host_status bits 7:0 (qla_def.h INTR_*). */
export const INTR_TYPE = {
  ROM_MB_SUCCESS: 0x01,
  ROM_MB_FAILED: 0x02,
  MB_SUCCESS: 0x10,
  MB_FAILED: 0x11,
  ASYNC_EVENT: 0x12,
  RSP_QUE_UPDATE: 0x13,
} as const;

export const MAILBOX_COUNT = 32;

export interface IspEvent {
  type: number;
  /** mb0..mb31 to present in the outbound mailboxes (null: response-queue update, no mailboxes). */
  mailboxes: Uint16Array | null;
}

/** An async event (INTR_TYPE.ASYNC_EVENT): mb0 = MBA_* code, then mb1..mb3 (qla2x00_async_event). */
export function asyncEvent(code: number, mb1: number, mb2: number, mb3: number): IspEvent {
  const mb = new Uint16Array(MAILBOX_COUNT);
  mb[0] = code;
  mb[1] = mb1;
  mb[2] = mb2;
  mb[3] = mb3;
  return { type: INTR_TYPE.ASYNC_EVENT, mailboxes: mb };
}

/** Upper bound on queued events: a driver that never acknowledges cannot grow memory without limit. */
const EVENT_FIFO_LIMIT = 256;

export class EventFifo {
  private readonly queue: IspEvent[] = [];
  private latched: IspEvent | null = null;
  /** Interrupt line state as last driven (INTx level; for MSI: "message sent for the latched event"). */
  private asserted = false;
  private interruptsEnabled = false;
  /** Entries were published to the response ring since the driver last read rsp_q_in. */
  private unseenResponses = false;
  /** 0x13 events dropped because the driver had already read past every published entry. */
  suppressedUpdates = 0;

  constructor(
    private readonly host: IspHost,
    /** Receives the latched event's mailboxes (the outbound register array). */
    private readonly outbound: Uint16Array,
    private readonly trace: Trace = () => {},
  ) {}

  get pending(): number {
    return this.queue.length + (this.latched ? 1 : 0);
  }

  get latchedEvent(): IspEvent | null {
    return this.latched;
  }

  /** host_status bits 31:16 and 15:0 (without the paused bit, which registers.ts adds). */
  hostStatus(): number {
    const e = this.latched;
    if (!e) return 0;
    const mb0 = e.mailboxes ? e.mailboxes[0]! : 0;
    return ((mb0 << 16) | HOST_STATUS.RISC_INT | e.type) >>> 0;
  }

  /** Queues a mailbox completion or async event. */
  push(event: IspEvent): void {
    if (this.pending >= EVENT_FIFO_LIMIT) {
      this.trace('event_err_fifo_overflow', { type: event.type });
      return;
    }
    this.queue.push(event);
    if (!this.latched) this.latchNext();
  }

  /** rsp_q_in moved: entries the driver has not seen yet are in the ring. */
  responsesPublished(): void {
    this.unseenResponses = true;
  }

  /**
   * The driver read rsp_q_in: the handler will consume every entry published so far
   * (qla24xx_process_response_queue loops until its ring index reaches the value read).
   */
  responseQueueRead(): void {
    this.unseenResponses = false;
  }

  /**
   * A response-queue update for entries published since the last rsp_q_in read. Merged into a
   * queued-but-unlatched 0x13 event: the handler drains the ring up to rsp_q_in anyway. A latched
   * 0x13 (handler running) gets a new one behind it, dropped at latch time if the running
   * handler's rsp_q_in read came after every publication. Nothing is owed when that read already
   * happened (flush on read, or a ZIO delay that a running handler overtook).
   */
  pushResponseUpdate(): void {
    if (!this.unseenResponses) {
      this.suppressedUpdates++;
      return;
    }
    if (this.queue.some((e) => e.type === INTR_TYPE.RSP_QUE_UPDATE)) return;
    this.push({ type: INTR_TYPE.RSP_QUE_UPDATE, mailboxes: null });
  }

  /** hccr CLR_RISC_INT: drop the latched event, latch the next. */
  acknowledge(): void {
    this.latched = null;
    this.updateLine();
    this.latchNext();
  }

  /** Soft reset: forget everything, deassert. */
  clear(): void {
    this.queue.length = 0;
    this.latched = null;
    this.unseenResponses = false;
    this.updateLine();
  }

  /** ictrl ICRX_EN_RISC_INT. */
  setInterruptsEnabled(enabled: boolean): void {
    this.interruptsEnabled = enabled;
    this.updateLine();
  }

  /** The guest changed INTx/MSI/MSI-X wiring: re-drive the current state. */
  interruptRoutingChanged(): void {
    if (this.asserted) {
      this.host.setIntx(false);
      this.asserted = false;
    }
    this.updateLine();
  }

  private latchNext(): void {
    let next = this.queue.shift();
    // A trailing 0x13 whose entries the previous handler already consumed would only make the
    // driver read host_status and rsp_q_in to find nothing new.
    while (next && next.type === INTR_TYPE.RSP_QUE_UPDATE && !this.unseenResponses) {
      this.suppressedUpdates++;
      next = this.queue.shift();
    }
    if (!next) return;
    this.latched = next;
    if (next.mailboxes) this.outbound.set(next.mailboxes.subarray(0, MAILBOX_COUNT));
    this.updateLine();
  }

  /** Level for INTx; one message per latched event for MSI/MSI-X (all on vector 0). */
  private updateLine(): void {
    const want = this.latched !== null && this.interruptsEnabled;
    const mode = this.host.interruptMode();
    if (mode === 'intx' || mode === 'none') {
      if (want !== this.asserted) {
        this.asserted = want;
        if (mode === 'intx') this.host.setIntx(want);
        else if (want) this.trace('event_ub_no_interrupt_mode', {});
      }
      return;
    }
    if (want && !this.asserted) {
      this.asserted = true;
      this.host.sendMessage(0);
    } else if (!want) {
      this.asserted = false;
    }
  }
}
