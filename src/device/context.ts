/**
 * What a device model declares to its host (regions, in linux/vfio.h numbering: BAR0..5 = 0..5,
 * ROM = 6, CONFIG = 7, VGA = 8) and what the host hands it while a client is attached.
 */
import type { GuestMemory } from './guest-memory.js';
import type { IrqSignaller } from './interrupts.js';

/** What a device declares about one region (VFIO_DEVICE_GET_REGION_INFO). */
export interface RegionInfo {
  /** Size in bytes; 0 for an absent region. */
  size: number;
  readable: boolean;
  writable: boolean;
}

/** Guest memory and interrupt delivery, valid from attach() until detach(). */
export interface DeviceContext {
  memory: GuestMemory;
  irq: IrqSignaller;
}
