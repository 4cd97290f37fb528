/**
 * The data of one FCP command as the FabricPort seam carries it: live views into the guest's
 * mapped memory, one per DMA segment piece (fcp.ts builds them from the validated segment list),
 * never empty when built. A view whose window the client unmapped (DMA_UNMAP) is detached and
 * reads as zero-length, so every helper here stops at an empty view instead of moving data to or
 * from the wrong place; the firmware then completes the command with CS_DMA.
 *
 * Backends that cannot hand the views to their transport directly (the simulated SAN frames
 * them; the host backend's bounce path) copy with gatherViews/scatterToViews.
 */

/** Sum of the views' current lengths (a detached view counts 0). */
export function viewsLength(views: readonly Uint8Array[]): number {
  let n = 0;
  for (const v of views) n += v.byteLength;
  return n;
}

/** True if no view has been detached since it was built (each still has a byte). */
export function viewsIntact(views: readonly Uint8Array[]): boolean {
  for (const v of views) if (v.byteLength === 0) return false;
  return true;
}

/**
 * Copies the first `length` bytes of the views into one new buffer, or null when a view was
 * detached before those bytes could be read (the data must not go out incomplete). The length is
 * the command's (FCP_DL), never the views' current total, which shrinks when one is detached.
 */
export function gatherViews(views: readonly Uint8Array[], length: number): Uint8Array | null {
  const out = new Uint8Array(length);
  let at = 0;
  for (const v of views) {
    if (at >= length) break;
    if (v.byteLength === 0) return null;
    const n = Math.min(v.byteLength, length - at);
    out.set(n === v.byteLength ? v : v.subarray(0, n), at);
    at += n;
  }
  return at === length ? out : null;
}

/**
 * Copies data into the views in order; returns the bytes written. Stops at a detached view (the
 * rest of the data would land at the wrong offset) and at the end of the views (extra data is
 * dropped: the guest offered no room for it).
 */
export function scatterToViews(views: readonly Uint8Array[], data: Uint8Array): number {
  let at = 0;
  for (const v of views) {
    if (at >= data.length) break;
    if (v.byteLength === 0) break;
    const n = Math.min(v.byteLength, data.length - at);
    v.set(data.subarray(at, at + n));
    at += n;
  }
  return at;
}
