/**
 * Phased reset, after QEMU's Resettable interface (docs/devel/reset.rst):
 *  - enter: every part puts its own state back to reset values; no interrupts, no guest-memory
 *    access, no calls into other parts (a DMA engine cancels outstanding work here or in hold);
 *  - hold:  parts may act on others (e.g. drop an interrupt line) — all enters have finished;
 *  - exit:  the reset is released; parts may start running again.
 * A PciFunction runs enter on all its parts, then hold on all, then exit on all.
 */

/**
 * 'cold' = power-on; 'function' = function-level reset (vfio DEVICE_RESET / FLR). An unknown
 * kind must be treated like 'cold', the hardest one (reset.rst).
 */
export type ResetType = 'cold' | 'function';

export interface Resettable {
  resetEnter?(type: ResetType): void;
  resetHold?(type: ResetType): void;
  resetExit?(type: ResetType): void;
}

/** Runs the three phases over `parts` in order. */
export function runResetPhases(parts: readonly Resettable[], type: ResetType): void {
  for (const p of parts) p.resetEnter?.(type);
  for (const p of parts) p.resetHold?.(type);
  for (const p of parts) p.resetExit?.(type);
}
