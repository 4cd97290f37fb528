/**
 * DMA by the emulated ISP2532 firmware into and out of guest memory: what its mailbox commands
 * and IOCBs (ICB, port database, CT buffers, flash reads, FCP data) reach through. Every address
 * and length comes from the guest, so each access is checked by the DMA windows of GuestMemory
 * and a failure is a guest error the caller turns into a firmware status (MBS_COMMAND_ERROR,
 * entry_status, CS_DMA) — never an exception that escapes to the register access.
 */
import type { GuestMemory } from '../device/guest-memory.js';
import type { IspHost } from './host.js';
import type { Trace } from '../device/trace.js';

/** The firmware's DMA engine as its command handlers use it. */
export interface IspDma {
  /** Guest memory for the data phase of FCP commands (null while detached). */
  memory(): GuestMemory | null;
  /** Copy-in; null (and a guest error logged) when any byte is outside guest memory. */
  read(address: bigint, length: number): Uint8Array | null;
  /** Whether the range is readable guest memory, without reading it. */
  readable(address: bigint, length: number): boolean;
  /** Copy-out; false (and a guest error logged) when any byte is outside guest memory. */
  write(address: bigint, data: Uint8Array): boolean;
}

export class GuestDma implements IspDma {
  constructor(
    private readonly host: Pick<IspHost, 'memory'>,
    private readonly guestError: Trace,
  ) {}

  memory(): GuestMemory | null {
    return this.host.memory();
  }

  read(address: bigint, length: number): Uint8Array | null {
    const mem = this.host.memory();
    if (!mem) {
      this.guestError('dma_err_no_memory', { address: address.toString(16), length });
      return null;
    }
    try {
      return mem.read(address, length);
    } catch (e) {
      this.guestError('dma_err_read', { address: address.toString(16), length, error: String(e) });
      return null;
    }
  }

  readable(address: bigint, length: number): boolean {
    const mem = this.host.memory();
    return !!mem && mem.isMapped(address, length, 'read');
  }

  write(address: bigint, data: Uint8Array): boolean {
    const mem = this.host.memory();
    if (!mem) {
      this.guestError('dma_err_no_memory', { address: address.toString(16), length: data.length });
      return false;
    }
    try {
      mem.write(address, data);
      return true;
    } catch (e) {
      this.guestError('dma_err_write', { address: address.toString(16), length: data.length, error: String(e) });
      return false;
    }
  }
}
