/**
 * The seam between the vfio-user server (transport, DMA windows, interrupt eventfds)
 * and a device model (src/pci/ + src/isp/). The server knows nothing about PCI
 * semantics; the device knows nothing about sockets.
 *
 * Region indices and IRQ indices follow linux/vfio.h: BAR0..BAR5 = 0..5, ROM = 6,
 * CONFIG = 7, VGA = 8; IRQ INTX = 0, MSI = 1, MSIX = 2, ERR = 3, REQ = 4.
 */

/** Thrown by GuestMemory for any access not wholly inside one mapped, permitted window. */
export class DmaError extends Error {
  constructor(
    message: string,
    readonly address: bigint,
    readonly length: number,
  ) {
    super(message);
    this.name = 'DmaError';
  }
}

/**
 * Guest-physical memory as QEMU shared it with DMA_MAP. Device models use only this to
 * reach guest memory. Every call is bounds-checked: every byte of the range must be mapped
 * with the needed permission (read/write/readInto may span directly adjacent windows; view()
 * must lie inside one window), else DmaError — never a partial access.
 */
export interface GuestMemory {
  /** Copies guest bytes into a new buffer (copy-in: no double fetch). */
  read(address: bigint, length: number): Uint8Array;
  /** Copies guest bytes into dst[dstOffset..dstOffset+length). */
  readInto(address: bigint, dst: Uint8Array, dstOffset?: number, length?: number): void;
  /** Writes bytes into guest memory. */
  write(address: bigint, data: Uint8Array): void;
  /** True if [address, address+length) is wholly mapped with the given access. */
  isMapped(address: bigint, length: number, access: 'read' | 'write'): boolean;
  /**
   * A live view into guest memory (no copy) for the hot path, or DmaError. The view
   * must not be kept past the current event-loop turn: DMA_UNMAP may invalidate it.
   */
  view(address: bigint, length: number, access: 'read' | 'write'): Uint8Array;
}

export const IRQ_INDEX = { INTX: 0, MSI: 1, MSIX: 2, ERR: 3, REQ: 4 } as const;
export type IrqIndex = (typeof IRQ_INDEX)[keyof typeof IRQ_INDEX];

/** What the server does for a device's interrupt request: write 1 to the bound eventfd. */
export interface IrqSignaller {
  /** Signals vector `vector` of IRQ index `index`; returns false if no eventfd is bound (or it is masked). */
  trigger(index: IrqIndex, vector: number): boolean;
  /** Which of INTx/MSI/MSI-X QEMU has currently bound eventfds for (MSI-X wins over MSI over INTx). */
  activeIndex(): IrqIndex | null;
  /** Number of vectors with a bound eventfd for this index. */
  boundVectors(index: IrqIndex): number;
}

export interface RegionInfo {
  /** Size in bytes; 0 for an absent region. */
  size: number;
  readable: boolean;
  writable: boolean;
}

export interface IrqInfo {
  /** Number of vectors; 0 for an unsupported IRQ type. */
  count: number;
  /** VFIO_IRQ_INFO_* flags (EVENTFD, MASKABLE, AUTOMASKED, NORESIZE). */
  flags: number;
}

export interface DeviceContext {
  memory: GuestMemory;
  irq: IrqSignaller;
}

/**
 * A device as the vfio-user server serves it. Region accesses arrive already checked
 * to lie within [0, size) of an existing region; the device still validates width and
 * alignment and must never throw for guest-controlled input (return 0xff.. / ignore and
 * trace instead). The server applies every posted write before handling the next message.
 */
export interface VfioUserDevice {
  readonly numRegions: number;
  readonly numIrqs: number;
  regionInfo(index: number): RegionInfo;
  irqInfo(index: number): IrqInfo;
  /** Called once the server has a DMA view and interrupt signaller for this connection. */
  attach(ctx: DeviceContext): void;
  /** The connection went away: drop references to guest memory, keep device state. */
  detach(): void;
  regionRead(index: number, offset: number, length: number): Uint8Array;
  regionWrite(index: number, offset: number, data: Uint8Array): void;
  /** IRQ wiring changed (SET_IRQS); devices may re-evaluate pending interrupts. */
  irqsChanged?(index: IrqIndex): void;
  /** DEVICE_RESET: a function-level reset. Must finish quickly (QEMU waits at most 5 s). */
  reset(): void;
}
