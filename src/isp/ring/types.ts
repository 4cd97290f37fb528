/**
 * Public types of the request/response ring codec of the emulated ISP2532 (24xx/25xx firmware
 * interface, Linux qla2xxx 10.02.x), shared by the WASM-backed RingEngine (engine.ts) and its
 * plain-TypeScript twin (ts-baseline.ts: fallback codec, test oracle, benchmark baseline), plus the validation both apply to
 * host-side inputs (ring configuration, status descriptions).
 */
import type { GuestMemory } from '../../device/guest-memory.js';
import { IocbLimits, IOCB_SIZE, MAX_SENSE_BYTES } from '../../../assembly/shared/iocb.js';
import { Capacity, Reason } from '../../../assembly/shared/ring-layout.js';
import type { DataDirection } from '../../scsi/sam.js';

/** One data segment descriptor (dsd64) of a command, validated: length > 0, no 2^64 wrap. */
export interface DataSegment {
  address: bigint;
  length: number;
}

/** A validated Command Type 7 (+ Continuation Type 1 entries), CDB/LUN back in SAM byte order. */
export interface CommandRequest {
  kind: 'command';
  handle: number;
  nportHandle: number;
  /** domain << 16 | area << 8 | al_pa. */
  portId: number;
  vpIndex: number;
  /** FCP LUN, 8 bytes, SAM order (byte 0 first on the wire). */
  lun: Uint8Array;
  /** CDB, 16 bytes, SAM order, zero padded. */
  cdb: Uint8Array;
  direction: DataDirection;
  /** FCP_DL: equals the sum of segment lengths. */
  totalBytes: number;
  /** TSK_* (0 simple, 1 head of queue, 2 ordered, 4 ACA, 5 untagged). */
  taskAttribute: number;
  /** FCP priority from task bits 6:3. */
  priority: number;
  segments: DataSegment[];
  /** Ring entries this command occupied. */
  entryCount: number;
}

/** Another known single-entry request IOCB, copied once, for the TS IOCB handlers. */
export interface RawRequest {
  kind: 'raw';
  type: number;
  handle: number;
  /** The 64-byte entry as copied in (one fetch). */
  bytes: Uint8Array;
}

export type RejectReason =
  | 'entry-count-zero'
  | 'entry-count-beyond-producer'
  | 'entry-count-single'
  | 'bad-entry-type'
  | 'stray-continuation'
  | 'continuation-type'
  | 'handle-index'
  | 'handle-queue'
  | 'dseg-count'
  | 'segment-zero-length'
  | 'segment-address-overflow'
  | 'total-length-mismatch'
  | 'direction'
  | 'transfer-too-large'
  | 'task-attribute'
  | 'vp-index'
  | 'nport-handle';

/** Reason codes of the shared layout, by name. */
export const REJECT_REASONS: Readonly<Record<number, RejectReason>> = {
  [Reason.ENTRY_COUNT_ZERO]: 'entry-count-zero',
  [Reason.ENTRY_COUNT_BEYOND_PRODUCER]: 'entry-count-beyond-producer',
  [Reason.ENTRY_COUNT_SINGLE]: 'entry-count-single',
  [Reason.BAD_ENTRY_TYPE]: 'bad-entry-type',
  [Reason.STRAY_CONTINUATION]: 'stray-continuation',
  [Reason.CONTINUATION_TYPE]: 'continuation-type',
  [Reason.HANDLE_INDEX]: 'handle-index',
  [Reason.HANDLE_QUEUE]: 'handle-queue',
  [Reason.DSEG_COUNT]: 'dseg-count',
  [Reason.SEGMENT_ZERO_LENGTH]: 'segment-zero-length',
  [Reason.SEGMENT_ADDRESS_OVERFLOW]: 'segment-address-overflow',
  [Reason.TOTAL_LENGTH_MISMATCH]: 'total-length-mismatch',
  [Reason.DIRECTION]: 'direction',
  [Reason.TRANSFER_TOO_LARGE]: 'transfer-too-large',
  [Reason.TASK_ATTRIBUTE]: 'task-attribute',
  [Reason.VP_INDEX]: 'vp-index',
  [Reason.NPORT_HANDLE]: 'nport-handle',
};

/**
 * A request entry the engine refused. When `responsePosted`, an error entry (entry_status bits,
 * original handle) is already queued for the driver; otherwise (stray continuation, or
 * QLA_SKIP_HANDLE) there is nothing the driver could match it to.
 */
export interface RejectedRequest {
  kind: 'error';
  type: number;
  handle: number;
  /** RF_* bits reported to the driver. */
  entryStatus: number;
  reason: RejectReason;
  entryCount: number;
  responsePosted: boolean;
}

export type RequestEntry = CommandRequest | RawRequest | RejectedRequest;

/** A condition that stops ring processing and that the device model reports as a firmware error. */
export interface RingFault {
  kind: 'request-index' | 'response-index' | 'dma';
  message: string;
}

export type ConsumeStop = 'drained' | 'budget' | 'response-full' | 'need-copy' | 'records-full';
export const CONSUME_STOPS: readonly ConsumeStop[] = [
  'drained',
  'budget',
  'response-full',
  'need-copy',
  'records-full',
];

export interface ConsumeResult {
  /** The new consumer index (req_q_out) after the consumed entries. */
  newOut: number;
  entries: RequestEntry[];
  /** Why consumption stopped before the producer index (only meaningful when entries remain). */
  stop: ConsumeStop;
  fault: RingFault | null;
}

export interface FlushResult {
  /** The new producer index (rsp_q_in) to publish after the written entries. */
  newIn: number;
  written: number;
  /** Entries still queued (ring full = back-pressure, or a fault). */
  pending: number;
  /** True when entries remain queued because the guest's ring has no room. */
  full: boolean;
  fault: RingFault | null;
}

/** A Status Type 0 to return for a command or task-management IOCB. */
export interface StatusType0 {
  handle: number;
  /** CompStatus.* (assembly/shared/iocb.ts). */
  compStatus: number;
  /** SCSI status byte (SAM). */
  scsiStatus: number;
  /** Residual: 'under' = fewer bytes moved than FCP_DL, 'over' = the target wanted more. */
  residual?: { kind: 'under' | 'over'; bytes: number };
  oxId?: number;
  stateFlags?: number;
  /** Status qualifier for BUSY / TASK SET FULL. */
  retryDelay?: number;
  /** FCP_RSP_INFO: 0, 4 or 8 bytes (byte 3 = RSP_CODE). */
  responseInfo?: Uint8Array;
  /** Sense data in SAM order; more than MAX_SENSE_BYTES is cut (the driver keeps 96). */
  sense?: Uint8Array;
}

export interface RingLimits {
  /** Highest outstanding_cmds index a handle may name (the exchange count advertised). */
  maxHandleIndex: number;
  /** Highest request-queue id in a handle's upper 16 bits (0: single queue). */
  maxQueueId: number;
  /** Highest vp_index accepted in a command (0 without guest-side NPIV). */
  maxVpIndex: number;
  /** Largest FCP_DL accepted. */
  maxTransferBytes: number;
}

export const DEFAULT_RING_LIMITS: Readonly<RingLimits> = {
  maxHandleIndex: 0xffff,
  maxQueueId: 0,
  maxVpIndex: 0,
  // qla2xxx caps transfers at max_sectors 0xFFFF × 512; 32 MiB covers it.
  maxTransferBytes: 32 * 1024 * 1024,
};

export interface RingConfig {
  reqBase: bigint;
  reqEntries: number;
  rspBase: bigint;
  rspEntries: number;
  limits: RingLimits;
}

/** The codec both implementations offer. */
export interface RingCodec {
  configure(
    reqBase: bigint,
    reqEntries: number,
    rspBase: bigint,
    rspEntries: number,
    limits?: Partial<RingLimits>,
  ): void;
  consumeRequests(mem: GuestMemory, reqOut: number, reqIn: number, budget: number): ConsumeResult;
  /** Queues a status (+ continuations); returns entries queued, or 0 if the FIFO is full. */
  postStatus(status: StatusType0): number;
  /** Queues a host-built response entry; returns 1, or 0 if the FIFO is full. */
  postRaw(entry: Uint8Array): number;
  flushResponses(mem: GuestMemory, rspIn: number, rspOut: number): FlushResult;
  /** Response entries waiting for room in the guest ring. */
  readonly pendingResponses: number;
  /** Response entries that can still be queued. */
  readonly responseSpace: number;
  /** Drops queued responses (chip reset). */
  resetResponses(): void;
}

export class RingConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RingConfigError';
  }
}

const U64_LIMIT = 1n << 64n;

function checkInteger(value: number, min: number, max: number, what: string): void {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new RingConfigError(`${what} ${value} out of range ${min}..${max}`);
  }
}

/** Validates ring bases/lengths (from the init control block) and limits. */
export function validateRingConfig(
  reqBase: bigint,
  reqEntries: number,
  rspBase: bigint,
  rspEntries: number,
  limits: Partial<RingLimits> = {},
): RingConfig {
  const ring = (base: bigint, entries: number, what: string): void => {
    checkInteger(entries, 1, IocbLimits.MAX_RING_ENTRIES, `${what} ring length`);
    if (base < 0n || base >= U64_LIMIT)
      throw new RingConfigError(`${what} ring base 0x${base.toString(16)} is not a 64-bit address`);
    if (base % BigInt(IOCB_SIZE) !== 0n) {
      throw new RingConfigError(
        `${what} ring base 0x${base.toString(16)} is not aligned to the ${IOCB_SIZE}-byte entry size`,
      );
    }
    if (base + BigInt(entries) * BigInt(IOCB_SIZE) > U64_LIMIT) {
      throw new RingConfigError(`${what} ring at 0x${base.toString(16)} with ${entries} entries wraps past 2^64`);
    }
  };
  ring(reqBase, reqEntries, 'request');
  ring(rspBase, rspEntries, 'response');
  const merged: RingLimits = { ...DEFAULT_RING_LIMITS, ...limits };
  checkInteger(merged.maxHandleIndex, 1, IocbLimits.MAX_HANDLE_INDEX, 'maxHandleIndex');
  checkInteger(merged.maxQueueId, 0, IocbLimits.MAX_QUEUE_ID, 'maxQueueId');
  checkInteger(merged.maxVpIndex, 0, IocbLimits.MAX_VP_INDEX, 'maxVpIndex');
  checkInteger(merged.maxTransferBytes, 0, 0xffffffff, 'maxTransferBytes');
  return { reqBase, reqEntries, rspBase, rspEntries, limits: merged };
}

/** Budget as both implementations apply it: an integer ≥ 1, at most one scratch area. */
export function clampBudget(budget: number): number {
  if (!Number.isInteger(budget) || budget < 1) throw new RangeError(`ring budget ${budget} must be a positive integer`);
  return Math.min(budget, Capacity.SCRATCH_ENTRIES);
}

/**
 * Entries to copy in for one call: the budget's worth. A first command longer than the budget is
 * completed by a second copy of only its missing entries, up to this many in all.
 */
export function entriesToCopy(available: number, budget: number): number {
  return Math.min(available, budget);
}
/** Entries to have in the scratch area for a first command of `entryCount` (copied-in) entries. */
export function entriesForLongFirstCommand(available: number, entryCount: number): number {
  return Math.min(available, entryCount, IocbLimits.MAX_ENTRY_COUNT, Capacity.SCRATCH_ENTRIES);
}

/** Host-side (not guest) input checks of a status description; throws RangeError. */
export function validateStatus(s: StatusType0): void {
  const u = (v: number, max: number, what: string): void => {
    if (!Number.isInteger(v) || v < 0 || v > max) throw new RangeError(`status ${what} ${v} out of range 0..${max}`);
  };
  u(s.handle, 0xffffffff, 'handle');
  u(s.compStatus, 0xffff, 'compStatus');
  u(s.scsiStatus, 0xff, 'scsiStatus');
  if (s.residual) u(s.residual.bytes, 0xffffffff, 'residual');
  u(s.oxId ?? 0, 0xffff, 'oxId');
  u(s.stateFlags ?? 0, 0xffff, 'stateFlags');
  u(s.retryDelay ?? 0, 0xffff, 'retryDelay');
  const rspInfo = s.responseInfo?.length ?? 0;
  if (rspInfo !== 0 && rspInfo !== 4 && rspInfo !== 8)
    throw new RangeError(`status responseInfo must be 0, 4 or 8 bytes, got ${rspInfo}`);
}

/** Sense bytes both implementations stage: what the driver can use. */
export function stagedSenseLength(s: StatusType0): number {
  return Math.min(s.sense?.length ?? 0, MAX_SENSE_BYTES);
}
