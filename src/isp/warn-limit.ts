/**
 * Rate limit for warnings a guest can trigger at will (renamed ICB, flash writes to host-owned
 * sectors): one record per period, the rest counted and reported with the next record, so a
 * hostile guest cannot flood the host's log.
 */
export class WarnLimiter {
  private last = -Infinity;
  private held = 0;

  constructor(
    private readonly periodMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** null: hold this occurrence back; otherwise log it, with the number held back since the last one. */
  admit(): number | null {
    const t = this.now();
    if (t - this.last < this.periodMs) {
      this.held++;
      return null;
    }
    this.last = t;
    const suppressed = this.held;
    this.held = 0;
    return suppressed;
  }
}
