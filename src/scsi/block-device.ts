/**
 * What the SCSI device server needs from a volume (src/san/volume.ts implements it), and the
 * SBC-3 limits this target advertises in the Block Limits VPD page and enforces on commands.
 */
export interface IoOptions {
  /** Force unit access: the data is on stable storage (fdatasync) before the call resolves. */
  fua?: boolean;
  /**
   * Asked once the operation owns its LBA range (after earlier overlapping I/O finished) and
   * before it touches the store; true → the operation throws TaskAbortedError without effect.
   */
  aborted?: () => boolean;
}

/** The task was aborted before its media access started; nothing was read or written. */
export class TaskAbortedError extends Error {
  constructor() {
    super('task aborted');
    this.name = 'TaskAbortedError';
  }
}

export interface BlockDevice {
  readonly name: string;
  /** 16-byte NAA-6 logical unit identifier. */
  readonly naa: Uint8Array;
  readonly serial: string;
  readonly blockSize: number;
  readonly blockCount: number;
  /** Write cache enabled (WCE): false → every write is on stable storage before it completes. */
  readonly writeCache: boolean;
  /** The saved WCE: what the device comes back with after a restart. */
  readonly savedWriteCache: boolean;
  /** Whether mode parameters can be saved (MODE SELECT SP=1, MODE SENSE saved values). */
  readonly savesModePages: boolean;
  /**
   * Changes WCE; turning the cache off first makes everything written so far durable. With save
   * (only when savesModePages) the value is also made the saved one, durably, before resolving.
   */
  setWriteCache(enabled: boolean, save?: boolean): Promise<void>;
  readBlocks(lba: number, count: number, opts?: IoOptions): Promise<Uint8Array>;
  writeBlocks(lba: number, data: Uint8Array, opts?: IoOptions): Promise<void>;
  unmapBlocks(lba: number, count: number, opts?: IoOptions): Promise<void>;
  writeSameBlocks(lba: number, count: number, pattern: Uint8Array, opts?: IoOptions): Promise<void>;
  flush(): Promise<void>;
  /** Whether savePrState keeps state across restarts (false for memory volumes): PTPL_C. */
  readonly persistsReservations: boolean;
  savePrState(json: string | null): Promise<void>;
  loadPrState(): Promise<string | null>;
}

/** Largest single READ/WRITE transfer, in bytes (bounds the memory one command can take). */
export const MAX_TRANSFER_BYTES = 8 * 1024 * 1024;
/** Largest UNMAP / WRITE SAME(UNMAP) range per command, in bytes. */
export const MAX_UNMAP_BYTES = 64 * 1024 * 1024;
/** Largest UNMAP block descriptor count per command. */
export const MAX_UNMAP_DESCRIPTORS = 64;
/** Largest WRITE SAME range per command, in bytes. */
export const MAX_WRITE_SAME_BYTES = 64 * 1024 * 1024;
/** Preferred I/O granularity: 4 KiB. */
export const OPTIMAL_GRANULARITY_BYTES = 4096;

export const blocksFor = (bytes: number, blockSize: number): number => Math.max(1, Math.floor(bytes / blockSize));
