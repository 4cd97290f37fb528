/**
 * Rate limits for log lines that someone outside the process can trigger at will (a guest renaming
 * its ICB, a vfio-user client looping a bad command): logging is a synchronous write to stderr, so
 * without a bound such a peer could flood the host's log and stall the event loop.
 */
import type { Logger } from './log.js';

/**
 * At most `burst` admissions per window of `periodMs` (a window starts at the first admission
 * after the previous one ended); the rest are counted and reported with the next admitted record.
 */
export class WarnLimiter {
  private windowStart = -Infinity;
  private inWindow = 0;
  private held = 0;

  constructor(
    private readonly periodMs: number,
    private readonly now: () => number = Date.now,
    private readonly burst = 1,
  ) {}

  /** null: hold this occurrence back; otherwise log it, with the number held back since the last one. */
  admit(): number | null {
    const t = this.now();
    if (t - this.windowStart >= this.periodMs) {
      this.windowStart = t;
      this.inWindow = 0;
    }
    if (this.inWindow >= this.burst) {
      this.held++;
      return null;
    }
    this.inWindow++;
    return this.takeSuppressed();
  }

  /** The occurrences held back and not yet reported; they count as reported afterwards. */
  takeSuppressed(): number {
    const held = this.held;
    this.held = 0;
    return held;
  }
}

export interface RateLimitedLogOptions {
  /** where records and summaries go; a record may name its own (child) logger */
  log: Logger;
  /** records per key per window (default 5) */
  burst?: number;
  /** window length in ms (default 10 s) */
  windowMs?: number;
  /**
   * Message of the summary line ({kind, suppressed, windowMs}) per key with records held back, a
   * window after the first of them and at close(). Absent: no summaries; the count of what was
   * held back rides only on the key's next admitted record.
   */
  summaryMessage?: string;
  /** a field that carries the key in every record, ahead of the record's own fields (absent: none) */
  keyField?: string;
  now?: () => number;
}

/** How one record is written: its message (default: the key) and logger (default: the log's). */
export interface RateLimitedRecord {
  message?: string;
  log?: Logger;
}

/** Keys are names from the code; past this many the rest share one limit, so the table stays bounded. */
const MAX_KEYS = 256;
/** The summary's `kind` for the shared limit of keys past MAX_KEYS. */
const OVERFLOW_KIND = 'other';

/**
 * Log records someone outside the process can trigger at will, limited per key (an event name
 * from the code, e.g. 'vfio_user_cmd_failed'): at most `burst` records per window; the key's next
 * admitted record carries `suppressed: N`. Only the log record is held back, never what the
 * caller does about the event. With `summaryMessage`, what is held back is also reported on its
 * own, so a flood that stops is still accounted for.
 */
export class RateLimitedLog {
  private readonly limiters = new Map<string, WarnLimiter>();
  private readonly overflow: WarnLimiter;
  private readonly log: Logger;
  private readonly burst: number;
  private readonly windowMs: number;
  private readonly summaryMessage: string | undefined;
  private readonly keyField: string | undefined;
  private readonly now: () => number;
  private summaryTimer: NodeJS.Timeout | null = null;

  constructor(options: RateLimitedLogOptions) {
    this.log = options.log;
    this.burst = options.burst ?? 5;
    this.windowMs = options.windowMs ?? 10_000;
    this.summaryMessage = options.summaryMessage;
    this.keyField = options.keyField;
    this.now = options.now ?? Date.now;
    this.overflow = new WarnLimiter(this.windowMs, this.now, this.burst);
  }

  warn(key: string, fields: Record<string, unknown>, record: RateLimitedRecord = {}): void {
    this.write('warn', key, fields, record);
  }

  error(key: string, fields: Record<string, unknown>, record: RateLimitedRecord = {}): void {
    this.write('error', key, fields, record);
  }

  /** Reports what is held back now (with summaries) and stops the summary timer. */
  close(): void {
    if (this.summaryTimer) clearTimeout(this.summaryTimer);
    this.summaryTimer = null;
    this.summarize();
  }

  private write(
    level: 'warn' | 'error',
    key: string,
    fields: Record<string, unknown>,
    record: RateLimitedRecord,
  ): void {
    const suppressed = this.limiter(key).admit();
    if (suppressed === null) {
      this.scheduleSummary();
      return;
    }
    const keyed = this.keyField === undefined ? fields : { [this.keyField]: key, ...fields };
    (record.log ?? this.log)[level](suppressed > 0 ? { ...keyed, suppressed } : keyed, record.message ?? key);
  }

  private limiter(key: string): WarnLimiter {
    let limiter = this.limiters.get(key);
    if (!limiter) {
      if (this.limiters.size >= MAX_KEYS) return this.overflow;
      limiter = new WarnLimiter(this.windowMs, this.now, this.burst);
      this.limiters.set(key, limiter);
    }
    return limiter;
  }

  private scheduleSummary(): void {
    if (this.summaryMessage === undefined || this.summaryTimer) return;
    this.summaryTimer = setTimeout(() => {
      this.summaryTimer = null;
      this.summarize();
    }, this.windowMs);
    this.summaryTimer.unref(); // a pending summary never keeps the process alive
  }

  private summarize(): void {
    if (this.summaryMessage === undefined) return;
    for (const [kind, limiter] of [...this.limiters, [OVERFLOW_KIND, this.overflow] as const]) {
      const suppressed = limiter.takeSuppressed();
      if (suppressed > 0) this.log.warn({ kind, suppressed, windowMs: this.windowMs }, this.summaryMessage);
    }
  }
}
