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

export interface RateLimitedWarningsOptions {
  /** where summaries go; each warning may name its own (child) logger */
  log: Logger;
  /** lines per event kind per window (default 5) */
  burst?: number;
  /** window length in ms (default 10 s) */
  windowMs?: number;
  /** message of the summary line (default 'warnings_suppressed') */
  summaryMessage?: string;
  now?: () => number;
}

/**
 * Per event kind (the log message, e.g. 'vfio_user_cmd_failed'): at most `burst` lines per window;
 * the next admitted line of that kind carries `suppressed: N`. Kinds are names from the code, so
 * the table stays small whatever a peer sends. Occurrences held back are also reported on their own
 * in a summary line ({kind, suppressed}) a window after the first of them, and at close(), so a
 * flood that stops is still accounted for.
 */
export class RateLimitedWarnings {
  private readonly limiters = new Map<string, WarnLimiter>();
  private readonly log: Logger;
  private readonly burst: number;
  private readonly windowMs: number;
  private readonly summaryMessage: string;
  private readonly now: () => number;
  private summaryTimer: NodeJS.Timeout | null = null;

  constructor(options: RateLimitedWarningsOptions) {
    this.log = options.log;
    this.burst = options.burst ?? 5;
    this.windowMs = options.windowMs ?? 10_000;
    this.summaryMessage = options.summaryMessage ?? 'warnings_suppressed';
    this.now = options.now ?? Date.now;
  }

  warn(kind: string, fields: Record<string, unknown>, log: Logger = this.log): void {
    this.write('warn', kind, fields, log);
  }

  error(kind: string, fields: Record<string, unknown>, log: Logger = this.log): void {
    this.write('error', kind, fields, log);
  }

  /** Reports what is held back now and stops the summary timer. */
  close(): void {
    if (this.summaryTimer) clearTimeout(this.summaryTimer);
    this.summaryTimer = null;
    this.summarize();
  }

  private write(level: 'warn' | 'error', kind: string, fields: Record<string, unknown>, log: Logger): void {
    let limiter = this.limiters.get(kind);
    if (!limiter) {
      limiter = new WarnLimiter(this.windowMs, this.now, this.burst);
      this.limiters.set(kind, limiter);
    }
    const suppressed = limiter.admit();
    if (suppressed === null) {
      this.scheduleSummary();
      return;
    }
    log[level](suppressed > 0 ? { ...fields, suppressed } : fields, kind);
  }

  private scheduleSummary(): void {
    if (this.summaryTimer) return;
    this.summaryTimer = setTimeout(() => {
      this.summaryTimer = null;
      this.summarize();
    }, this.windowMs);
    this.summaryTimer.unref(); // a pending summary never keeps the process alive
  }

  private summarize(): void {
    for (const [kind, limiter] of this.limiters) {
      const suppressed = limiter.takeSuppressed();
      if (suppressed > 0) this.log.warn({ kind, suppressed, windowMs: this.windowMs }, this.summaryMessage);
    }
  }
}
