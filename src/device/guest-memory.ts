/**
 * Guest-physical memory as a device model reaches it for DMA (bus mastering). The transport that
 * hosts the device provides it: src/vfio-user/dma.ts from the regions QEMU shares with DMA_MAP.
 * Device models (src/pci/, src/isp/) depend only on this interface, so they can be hosted and
 * tested without a socket.
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
 * Device models use only this to reach guest memory. Every call is bounds-checked: every byte of
 * the range must be mapped with the needed permission (read/write/readInto may span directly
 * adjacent windows; view() must lie inside one window), else DmaError — never a partial access.
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
  /**
   * Live views (no copy) covering [address, address+length) with the given access, one per
   * mapping the range crosses (adjacent windows), or DmaError. Unlike view() these may be kept
   * while an I/O is in flight: when DMA_UNMAP releases a window its buffer is detached, so a
   * kept view becomes zero-length — check byteLength before touching it.
   */
  views(address: bigint, length: number, access: 'read' | 'write'): Uint8Array[];
}
