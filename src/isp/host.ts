/**
 * The emulated ISP2532's view of its surroundings (qla2xxx 10.02.x as the driver): guest memory
 * for DMA, the interrupt line(s), and a scheduler for deferred work. Kept free of PCI so that the
 * register file and firmware model can be tested alone; src/isp/pci-identity.ts adapts a
 * PciFunction to it (ispHostOf).
 */
import type { GuestMemory } from '../device/guest-memory.js';
import type { InterruptMode } from '../device/interrupts.js';

export interface IspHost {
  /** Guest memory while a vfio-user connection is attached; null otherwise (DMA then fails cleanly). */
  memory(): GuestMemory | null;
  /** The mechanism currently enabled in config space (MSI-X wins over MSI over INTx). */
  interruptMode(): InterruptMode;
  /** INTx pin A level. Called on every level change. */
  setIntx(asserted: boolean): void;
  /** One MSI / MSI-X message. The ISP sends everything on vector 0 (see events.ts). */
  sendMessage(vector: number): void;
}

/**
 * Deferred work: MMIO handlers never do ring or fabric work inline; the register access returns
 * first, so neither the vCPU nor the socket loop waits on that work.
 */
export interface IspScheduler {
  /** Runs fn soon, after the current register access has returned. */
  defer(fn: () => void): void;
  /** Runs fn after ms milliseconds; returns a cancel function. */
  after(ms: number, fn: () => void): () => void;
}

/** The Node event loop as scheduler. */
export const nodeScheduler: IspScheduler = {
  defer(fn) {
    setImmediate(fn);
  },
  after(ms, fn) {
    const t = setTimeout(fn, ms);
    t.unref?.();
    return () => clearTimeout(t);
  },
};
