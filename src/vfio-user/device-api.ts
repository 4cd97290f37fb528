/**
 * The seam between the vfio-user server (transport, DMA windows, interrupt eventfds) and a device
 * model (src/pci/ + src/isp/): how the server drives a device. The server knows nothing about PCI
 * semantics; the device knows nothing about sockets — what it is given (guest memory, interrupt
 * signalling) is the transport-free contract in src/device/.
 */
import type { DeviceContext, RegionInfo } from '../device/context.js';
import type { IrqIndex, IrqInfo } from '../device/interrupts.js';

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
