/**
 * Warn-level records of the emulated ISP2532, rate-limited per event name. A guest that loops an
 * invalid command (an unknown IOCB type, a mailbox command the ROM does not take, DMA to unmapped
 * memory, a ring index out of range) must not become one synchronous log write per occurrence
 * (src/util/log.ts writes stderr synchronously; `serve` keeps the log per vport). The first record
 * of each event name is written; after it at most one per period, carrying the number held back
 * since the previous one (`suppressed`), as WarnLimiter does for the identity warnings. Only the
 * log record is held back: the guest still gets its error (mailbox status, entry_status, CS_DMA,
 * async event) every time.
 */
import type { Logger } from '../util/log.js';
import { WarnLimiter } from './warn-limit.js';

/** At most one record per event name in this period. */
export const GUEST_ERROR_LOG_PERIOD_MS = 10_000;
/** Event names are literals in the code; this only keeps the map bounded if that ever changes. */
const MAX_EVENT_NAMES = 256;

export class RateLimitedWarnings {
  private readonly byEvent = new Map<string, WarnLimiter>();
  private readonly overflow: WarnLimiter;

  constructor(
    private readonly log: Logger,
    private readonly periodMs = GUEST_ERROR_LOG_PERIOD_MS,
    private readonly now: () => number = Date.now,
  ) {
    this.overflow = new WarnLimiter(periodMs, now);
  }

  warn(event: string, detail: Record<string, unknown>): void {
    const suppressed = this.limiter(event).admit();
    if (suppressed === null) return;
    this.log.warn({ event, ...detail, ...(suppressed > 0 ? { suppressed } : {}) }, event);
  }

  private limiter(event: string): WarnLimiter {
    let l = this.byEvent.get(event);
    if (!l) {
      if (this.byEvent.size >= MAX_EVENT_NAMES) return this.overflow;
      l = new WarnLimiter(this.periodMs, this.now);
      this.byEvent.set(event, l);
    }
    return l;
  }
}
