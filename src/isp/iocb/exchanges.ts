/**
 * Outstanding FCP exchanges of the emulated ISP2532 firmware (as qla2xxx 10.02.x uses them),
 * keyed by the 32-bit IOCB handle the driver chose, so that Abort IO and Task Management IOCBs
 * can find and complete them (qla24xx_abort_iocb, qla24xx_tm_iocb).
 */
export interface ActiveExchange {
  handle: number;
  nportHandle: number;
  portId: number;
  /** 8-byte FCP LUN in wire order (already un-swapped). */
  lun: Uint8Array;
  /** FCP exchange tag used with the FabricPort (abort). */
  taskTag: number;
  /** The VP index (N_Port) the command was sent from; absent = the physical port (0). */
  vpIndex?: number;
  /**
   * Completes the command now with the given comp_status (e.g. CS_ABORTED) instead of its
   * normal result; the late result is then discarded. Returns false if it already completed.
   */
  terminate(compStatus: number): boolean;
  /**
   * The firmware forgets the command without completing it (a reset: the driver treats every
   * outstanding command as gone). Its data buffer is the guest's again; nothing may reach it.
   */
  release?(): void;
}

export class ExchangeTable {
  private readonly byHandle = new Map<number, ActiveExchange>();

  get size(): number {
    return this.byHandle.size;
  }

  add(x: ActiveExchange): boolean {
    if (this.byHandle.has(x.handle)) return false; // handle reuse while outstanding: guest error
    this.byHandle.set(x.handle, x);
    return true;
  }

  remove(handle: number): void {
    this.byHandle.delete(handle);
  }

  get(handle: number): ActiveExchange | undefined {
    return this.byHandle.get(handle);
  }

  /** Exchanges to a port (and LUN, if given). */
  matching(portId: number, lun: Uint8Array | null): ActiveExchange[] {
    const out: ActiveExchange[] = [];
    for (const x of this.byHandle.values()) {
      if (x.portId !== portId) continue;
      if (lun && !sameLun(x.lun, lun)) continue;
      out.push(x);
    }
    return out;
  }

  /** Exchanges one VP (N_Port) sent. */
  ofVp(vpIndex: number): ActiveExchange[] {
    return [...this.byHandle.values()].filter((x) => (x.vpIndex ?? 0) === vpIndex);
  }

  all(): ActiveExchange[] {
    return [...this.byHandle.values()];
  }

  clear(): void {
    const forgotten = [...this.byHandle.values()];
    this.byHandle.clear();
    for (const x of forgotten) x.release?.();
  }
}

function sameLun(a: Uint8Array, b: Uint8Array): boolean {
  for (let i = 0; i < 8; i++) if (a[i] !== b[i]) return false;
  return true;
}
