/**
 * Progress display for `npiv-hba lab` on stderr (stdout carries the report): the current step,
 * its latest detail line and the elapsed time. On a TTY it is one line rewritten in place (and
 * refreshed every second so the clock moves during long downloads); otherwise plain lines, one
 * per step or detail.
 */

export interface LabReporter {
  /** A new step starts (e.g. "starting the SAN"). */
  step(name: string): void;
  /** A progress line within the current step (e.g. a line of prepare.sh). */
  detail(text: string): void;
  /** Clears the live line before the report is printed. */
  finish(): void;
}

export const silentReporter: LabReporter = { step() {}, detail() {}, finish() {} };

const REFRESH_MS = 1_000;
const CLEAR_LINE = '\r\x1b[K';

export interface ProgressStream {
  write(text: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

export class ProgressDisplay implements LabReporter {
  private current = '';
  private latest = '';
  private timer: NodeJS.Timeout | null = null;
  private readonly started: number;

  constructor(
    private readonly stream: ProgressStream,
    private readonly now: () => number = Date.now,
  ) {
    this.started = now();
  }

  private elapsed(): string {
    return `${((this.now() - this.started) / 1000).toFixed(0).padStart(4)}s`;
  }

  private render(): void {
    const text = `[lab ${this.elapsed()}] ${this.current}${this.latest ? `: ${this.latest}` : ''}`;
    const width = Math.max(20, (this.stream.columns ?? 100) - 1);
    this.stream.write(CLEAR_LINE + (text.length > width ? text.slice(0, width - 1) + '…' : text));
  }

  step(name: string): void {
    this.current = name;
    this.latest = '';
    if (this.stream.isTTY) {
      this.render();
      if (this.timer === null) {
        this.timer = setInterval(() => this.render(), REFRESH_MS);
        this.timer.unref();
      }
    } else {
      this.stream.write(`[lab ${this.elapsed()}] ${name}\n`);
    }
  }

  detail(text: string): void {
    const line = text.trim();
    if (line === '') return;
    this.latest = line;
    if (this.stream.isTTY) this.render();
    else this.stream.write(`[lab ${this.elapsed()}]   ${line}\n`);
  }

  finish(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    if (this.stream.isTTY) this.stream.write(CLEAR_LINE);
  }
}
