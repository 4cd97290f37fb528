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
import { RateLimitedLog } from '../util/warn-limit.js';

/** At most one record per event name in this period. */
export const GUEST_ERROR_LOG_PERIOD_MS = 10_000;

/**
 * The ISP's settings of RateLimitedLog: one record per event name per period, the name in the
 * record's `event` field and its message, no summary lines. warn(event, detail) logs.
 */
export class RateLimitedWarnings extends RateLimitedLog {
  constructor(log: Logger, periodMs = GUEST_ERROR_LOG_PERIOD_MS, now: () => number = Date.now) {
    super({ log, burst: 1, windowMs: periodMs, now, keyField: 'event' });
  }
}
