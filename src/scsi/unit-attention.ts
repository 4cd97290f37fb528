/**
 * Unit attention conditions of one logical unit, kept per I_T nexus (SAM-5 §5.14, SPC-4 §5.14).
 * Each condition is reported once, to the first command from that nexus that reports unit
 * attentions (INQUIRY, REPORT LUNS and REQUEST SENSE do not; REQUEST SENSE returns it as data).
 * A nexus that has not yet been told about the last power on / reset sees that first; it
 * supersedes anything else that would be queued for it.
 */
import { Asc, type AdditionalSense } from './constants.js';

/** Bound on queued conditions per nexus: the queue is driven by run-time events, keep it finite. */
const MAX_QUEUED = 16;

export class UnitAttentions {
  /** Nexuses that have consumed the current power-on/reset condition. */
  private readonly acknowledged = new Set<string>();
  private readonly pending = new Map<string, AdditionalSense[]>();
  private resetSense: AdditionalSense = Asc.POWER_ON_RESET;

  /** Returns and clears the next condition for this nexus, or null. */
  take(nexus: string): AdditionalSense | null {
    if (!this.acknowledged.has(nexus)) {
      this.acknowledged.add(nexus);
      this.pending.delete(nexus);
      return this.resetSense;
    }
    const q = this.pending.get(nexus);
    const next = q?.shift() ?? null;
    if (q && q.length === 0) this.pending.delete(nexus);
    return next;
  }

  /** Whether take() would return a condition (without consuming it). */
  has(nexus: string): boolean {
    return !this.acknowledged.has(nexus) || (this.pending.get(nexus)?.length ?? 0) > 0;
  }

  /** Queues a condition for the given nexuses (each once); nexuses still owed a reset condition already get that. */
  establish(sense: AdditionalSense, nexuses: Iterable<string>): void {
    for (const n of nexuses) {
      if (!this.acknowledged.has(n)) continue;
      const q = this.pending.get(n) ?? [];
      if (q.some((s) => s.asc === sense.asc && s.ascq === sense.ascq)) continue;
      if (q.length >= MAX_QUEUED) q.shift();
      q.push(sense);
      this.pending.set(n, q);
    }
  }

  /** Queues a condition for every nexus that has talked to this logical unit, except `except`. */
  establishForAll(sense: AdditionalSense, except?: string): void {
    this.establish(
      sense,
      [...this.acknowledged].filter((n) => n !== except),
    );
  }

  /** Every nexus known to this logical unit. */
  knownNexuses(): string[] {
    return [...this.acknowledged];
  }

  /** Power on / LU reset / target reset: every nexus is owed this condition, everything else is dropped. */
  reset(sense: AdditionalSense): void {
    this.resetSense = sense;
    this.acknowledged.clear();
    this.pending.clear();
  }

  /** I_T nexus loss (logout, link down): that nexus alone gets I_T NEXUS LOSS OCCURRED. */
  nexusLost(nexus: string): void {
    if (!this.acknowledged.has(nexus)) return;
    this.pending.set(nexus, [Asc.I_T_NEXUS_LOSS_OCCURRED]);
  }
}
