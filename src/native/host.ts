/**
 * The host NPIV backend's native calls (native/src/sg.cc, native/src/uevent.cc), kept apart from
 * src/native/index.ts like lock.ts: SCSI generic v3 asynchronous I/O and kernel uevents.
 * Errors from syscalls become NativeError (errno code, syscall name); argument errors stay
 * TypeError/RangeError.
 */
import { addonWith, callNative, translateError } from './index.js';

export interface SgCompletionRaw {
  /** The returned struct sg_io_hdr, 88 bytes, with its pointer fields zeroed. */
  header: Uint8Array;
  /** Sense bytes the kernel wrote (sb_len_wr, at most mx_sb_len). */
  sense: Uint8Array;
  /**
   * The whole bounce data-in buffer (dxfer_len bytes; the valid part is dxfer_len - resid);
   * empty for a zero-copy read, whose data the kernel has already put in its views.
   */
  data: Uint8Array;
}

/** The LUN's limits as its sg node reports them. */
export interface SgLimits {
  /** SG_GET_SG_TABLESIZE: scatter-gather entries per command (the host's sg_tablesize). */
  tablesize: number;
  /** BLKSECTGET on the sg node: the queue's max_sectors, in bytes. */
  maxBytes: number;
  /** SG_GET_RESERVED_SIZE: this fd's reserved kernel buffer. */
  reservedBytes: number;
}

export interface SgScsiId {
  host: number;
  channel: number;
  target: number;
  /** int in struct sg_scsi_id: LUNs >= 2^31 are truncated by the kernel. */
  lun: number;
  type: number;
  queueDepth: number;
}

export interface UeventRecvResult {
  bytes: number;
  /** Sender netlink port 0 and credentials uid 0: the kernel. */
  fromKernel: boolean;
  truncated: boolean;
  /** ENOBUFS: the socket queue overflowed and events were lost. */
  overflow: boolean;
}

/**
 * sgSubmit's data: views into guest memory (zero-copy, either direction: the kernel's sg driver
 * copies between them and its own pages), one bounce buffer (a write), or null (a bounce read of
 * dataInLength bytes, or no data).
 */
export type SgData = readonly Uint8Array[] | Uint8Array | null;

interface HostShim {
  sgOpen(path: string): number;
  sgSubmit(fd: number, header: Uint8Array, cdb: Uint8Array, data: SgData, dataInLength: number): boolean;
  sgRead(fd: number, packId?: number): SgCompletionRaw | null;
  sgLimits(fd: number): SgLimits;
  sgIovecs(views: readonly Uint8Array[]): { address: bigint; length: number }[];
  sgOutstanding(fd: number): number;
  sgClose(fd: number): number;
  sgScsiId(fd: number): SgScsiId;
  sgReset(fd: number, kind: number): Promise<void>;
  sgIoHdrLayout(): Record<string, number>;
  ueventOpen(): number;
  ueventRecv(fd: number, buf: Uint8Array): UeventRecvResult | null;
  fcEventOpen(): number;
}

let binding: HostShim | undefined;

function addon(): HostShim {
  binding ??= addonWith<HostShim>(['sgOpen', 'ueventOpen'], 'sg/uevent support');
  return binding;
}

const call = callNative;

export const hostNative = {
  /** open(2) of a sg node, checked to be a v3-capable SCSI generic character device. */
  sgOpen: (path: string): number => call(() => addon().sgOpen(path)),
  /**
   * Submits one command; false when the fd's queue is full (EDOM/EAGAIN): retry after a
   * completion. A zero-copy read's views must stay referenced until its completion is read.
   */
  sgSubmit: (fd: number, header: Uint8Array, cdb: Uint8Array, data: SgData, dataInLength: number) =>
    call(() => addon().sgSubmit(fd, header, cdb, data, dataInLength)),
  /** One completed command (the oldest, or the one with packId), or null when none is ready. */
  sgRead: (fd: number, packId = -1): SgCompletionRaw | null => call(() => addon().sgRead(fd, packId)),
  /** The LUN's scatter-gather and transfer limits (ioctls on its sg node). */
  sgLimits: (fd: number): SgLimits => call(() => addon().sgLimits(fd)),
  /** The sg_iovec array sgSubmit would build for these views (address, length), for tests. */
  sgIovecs: (views: readonly Uint8Array[]) => call(() => addon().sgIovecs(views)),
  sgOutstanding: (fd: number): number => call(() => addon().sgOutstanding(fd)),
  /** Closes the fd; returns how many outstanding requests' buffers were left allocated. */
  sgClose: (fd: number): number => call(() => addon().sgClose(fd)),
  sgScsiId: (fd: number): SgScsiId => call(() => addon().sgScsiId(fd)),
  /** SG_SCSI_RESET kind (1 device, 4 target) | SG_SCSI_RESET_NO_ESCALATE, on a worker thread. */
  sgReset: (fd: number, kind: 1 | 4): Promise<void> =>
    call(() => addon().sgReset(fd, kind)).catch((e: unknown) => {
      throw translateError(e);
    }),
  sgIoHdrLayout: (): Record<string, number> => call(() => addon().sgIoHdrLayout()),
  ueventOpen: (): number => call(() => addon().ueventOpen()),
  ueventRecv: (fd: number, buf: Uint8Array): UeventRecvResult | null => call(() => addon().ueventRecv(fd, buf)),
  /** NETLINK_SCSITRANSPORT joined to SCSI_NL_GRP_FC_EVENTS; read it with ueventRecv (any kernel netlink datagram). */
  fcEventOpen: (): number => call(() => addon().fcEventOpen()),
};
