/**
 * TsRingBaseline: a plain-TypeScript twin of the AssemblyScript ring engine (assembly/request.ts,
 * assembly/response.ts) for the emulated ISP2532 (24xx/25xx firmware interface, qla2xxx 10.02.x).
 *
 * Three uses: the device model's fallback codec when build/ring.wasm cannot be loaded
 * (Isp2532's defaultCodec logs a warning and runs on this), the differential oracle of the
 * unit, property and fuzz tests, and the baseline of the ring benchmark (bench/ring.bench.ts).
 * Same inputs, same outputs, same validation order and limits as RingEngine, so the tests can
 * run both against the same vectors and prove they agree. Keep the two in step when either changes.
 */
import type { GuestMemory } from '../../device/guest-memory.js';
import {
  IOCB_SIZE,
  RESPONSE_PROCESSED,
  MAX_SENSE_BYTES,
  IocbHeader,
  EntryType,
  EntryStatus,
  Handle,
  Dsd64,
  Cmd7,
  Cmd7Flags,
  Cmd7Task,
  ContA64,
  Sts24,
  StsCont,
  ScsiStatusFlags,
  CompStatus,
  IocbLimits,
  PORT_ID_MASK,
} from '../../../assembly/shared/iocb.js';
import { Capacity, Reason } from '../../../assembly/shared/ring-layout.js';
import {
  REJECT_REASONS,
  clampBudget,
  entriesToCopy,
  entriesForLongFirstCommand,
  stagedSenseLength,
  validateRingConfig,
  validateStatus,
  type ConsumeResult,
  type ConsumeStop,
  type DataSegment,
  type FlushResult,
  type RequestEntry,
  type RingCodec,
  type RingConfig,
  type RingLimits,
  type StatusType0,
} from './types.js';
import { copyInEntries, copyOutEntries, dmaFault, isRingIndex } from './guest-ring.js';
import type { DataDirection } from '../../scsi/sam.js';

const U64_MAX = (1n << 64n) - 1n;
const RAW_REQUEST_TYPES = new Set<number>([
  EntryType.MARKER_TYPE,
  EntryType.TSK_MGMT_IOCB_TYPE,
  EntryType.CT_IOCB_TYPE,
  EntryType.VP_CTRL_IOCB_TYPE,
  EntryType.VP_CONFIG_IOCB_TYPE,
  EntryType.ABORT_IOCB_TYPE,
  EntryType.MBX_IOCB_TYPE,
  EntryType.LOGINOUT_PORT_IOCB_TYPE,
  EntryType.ELS_IOCB_TYPE,
]);
const RESPONSE_TYPES = new Set<number>([
  EntryType.STATUS_TYPE,
  EntryType.MARKER_TYPE,
  EntryType.STATUS_CONT_TYPE,
  EntryType.CT_IOCB_TYPE,
  EntryType.VP_CTRL_IOCB_TYPE,
  EntryType.VP_CONFIG_IOCB_TYPE,
  EntryType.VP_RPT_ID_IOCB_TYPE,
  EntryType.ABORT_IOCB_TYPE,
  EntryType.MBX_IOCB_TYPE,
  EntryType.LOGINOUT_PORT_IOCB_TYPE,
  EntryType.ELS_IOCB_TYPE,
]);
const ECHO_ON_ERROR_TYPES = new Set<number>([
  EntryType.LOGINOUT_PORT_IOCB_TYPE,
  EntryType.CT_IOCB_TYPE,
  EntryType.ELS_IOCB_TYPE,
  EntryType.ABORT_IOCB_TYPE,
  EntryType.MBX_IOCB_TYPE,
]);
const VALID_TASK_ATTRIBUTES = new Set<number>([
  Cmd7Task.TSK_SIMPLE,
  Cmd7Task.TSK_HEAD_OF_QUEUE,
  Cmd7Task.TSK_ORDERED,
  Cmd7Task.TSK_ACA,
  Cmd7Task.TSK_UNTAGGED,
]);
const DIRECTIONS: readonly DataDirection[] = ['none', 'write', 'read'];

function entryStatusFor(reason: number): number {
  switch (reason) {
    case Reason.ENTRY_COUNT_ZERO:
    case Reason.ENTRY_COUNT_BEYOND_PRODUCER:
    case Reason.ENTRY_COUNT_SINGLE:
      return EntryStatus.RF_INV_E_COUNT;
    case Reason.BAD_ENTRY_TYPE:
      return EntryStatus.RF_INV_E_TYPE;
    case Reason.STRAY_CONTINUATION:
    case Reason.CONTINUATION_TYPE:
      return EntryStatus.RF_INV_E_ORDER;
    default:
      return EntryStatus.RF_INV_E_PARAM;
  }
}

function entriesForDsegs(dsegs: number): number {
  if (dsegs <= Cmd7.INLINE_DSDS) return 1;
  return 1 + Math.ceil((dsegs - 1) / ContA64.DSDS_PER_ENTRY);
}

/** Linear byte i of a dword-swapped field lives at (i & ~3) + 3 - (i & 3). */
function swappedIndex(i: number): number {
  return (i & ~3) | (3 - (i & 3));
}

function unswap(src: Uint8Array, offset: number, length: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = src[offset + swappedIndex(i)]!;
  return out;
}

export class TsRingBaseline implements RingCodec {
  private readonly scratch = new Uint8Array(Capacity.SCRATCH_ENTRIES * IOCB_SIZE);
  private readonly scratchView = new DataView(this.scratch.buffer);
  private readonly fifo = new Uint8Array(Capacity.RSP_FIFO_ENTRIES * IOCB_SIZE);
  private readonly fifoView = new DataView(this.fifo.buffer);
  private fifoHead = 0;
  private fifoCount = 0;
  private config: RingConfig | null = null;

  configure(
    reqBase: bigint,
    reqEntries: number,
    rspBase: bigint,
    rspEntries: number,
    limits: Partial<RingLimits> = {},
  ): void {
    this.config = validateRingConfig(reqBase, reqEntries, rspBase, rspEntries, limits);
    this.resetResponses();
  }

  private requireConfig(): RingConfig {
    if (!this.config) throw new Error('ring baseline used before configure()');
    return this.config;
  }

  private checkHandle(handle: number, limits: RingLimits): number {
    if (handle >>> Handle.QUEUE_SHIFT > limits.maxQueueId) return Reason.HANDLE_QUEUE;
    const index = handle & Handle.INDEX_MASK;
    if (index === 0 || index > limits.maxHandleIndex) return Reason.HANDLE_INDEX;
    return Reason.NONE;
  }

  consumeRequests(mem: GuestMemory, reqOut: number, reqIn: number, budget: number): ConsumeResult {
    const config = this.requireConfig();
    const length = config.reqEntries;
    if (!isRingIndex(reqOut, length))
      throw new RangeError(`request consumer index ${reqOut} outside ring of ${length}`);
    if (!isRingIndex(reqIn, length)) {
      return {
        newOut: reqOut,
        entries: [],
        stop: 'drained',
        fault: { kind: 'request-index', message: `req_q_in ${reqIn} outside request ring of ${length} entries` },
      };
    }
    const limit = clampBudget(budget);
    const available = (reqIn - reqOut + length) % length;
    if (available === 0) return { newOut: reqOut, entries: [], stop: 'drained', fault: null };
    let copied = entriesToCopy(available, limit);
    let walked: { entries: RequestEntry[]; pos: number; stop: ConsumeStop } = { entries: [], pos: 0, stop: 'drained' };
    for (let pass = 0; pass < 2; pass++) {
      // Pass 2 only when the first command is longer than the budget: fetch just its missing entries.
      const from = pass === 0 ? 0 : copied;
      if (pass === 1) copied = entriesForLongFirstCommand(available, this.scratch[IocbHeader.ENTRY_COUNT]!);
      try {
        copyInEntries(
          mem,
          config.reqBase,
          length,
          (reqOut + from) % length,
          copied - from,
          this.scratch,
          from * IOCB_SIZE,
        );
      } catch (error) {
        return { newOut: reqOut, entries: [], stop: 'drained', fault: dmaFault(error, 'request ring') };
      }
      walked = this.walk(copied, available, limit, config.limits);
      if (walked.stop !== 'need-copy' || walked.pos !== 0) break;
    }
    return { newOut: (reqOut + walked.pos) % length, entries: walked.entries, stop: walked.stop, fault: null };
  }

  /** The twin of reqConsume (assembly/request.ts) over the scratch copy. */
  private walk(
    copied: number,
    available: number,
    limit: number,
    limits: RingLimits,
  ): { entries: RequestEntry[]; pos: number; stop: ConsumeStop } {
    const s = this.scratch;
    const v = this.scratchView;
    const entries: RequestEntry[] = [];
    let pos = 0;
    let segments = 0;
    let stop: ConsumeStop = 'drained';
    while (pos < copied) {
      if (entries.length >= Capacity.MAX_RECORDS) {
        stop = 'records-full';
        break;
      }
      const entry = pos * IOCB_SIZE;
      const type = s[entry + IocbHeader.ENTRY_TYPE]!;
      const count = s[entry + IocbHeader.ENTRY_COUNT]!;
      const published = available - pos;
      let size = 1;
      let reason: number = Reason.NONE;
      let hasHandle = true;
      let decoded: RequestEntry | null = null;
      if (type === EntryType.CONTINUE_A64_TYPE) {
        reason = Reason.STRAY_CONTINUATION;
        hasHandle = false;
      } else if (count === 0) {
        reason = Reason.ENTRY_COUNT_ZERO;
      } else if (count > published) {
        reason = Reason.ENTRY_COUNT_BEYOND_PRODUCER;
      } else if (type === EntryType.COMMAND_TYPE_7) {
        size = count;
        if (pos > 0 && pos + size > limit) {
          stop = 'budget';
          break;
        }
        if (count > copied - pos) {
          stop = 'need-copy';
          break;
        }
        if (segments + count * ContA64.DSDS_PER_ENTRY > Capacity.MAX_SEGMENTS) {
          stop = 'records-full';
          break;
        }
        const result = this.decodeCmd7(entry, count, limits);
        if (typeof result === 'number') reason = result;
        else decoded = result;
      } else if (RAW_REQUEST_TYPES.has(type)) {
        if (count !== 1) reason = Reason.ENTRY_COUNT_SINGLE;
        else if (type !== EntryType.MARKER_TYPE)
          reason = this.checkHandle(v.getUint32(entry + IocbHeader.HANDLE, true), limits);
        if (reason === Reason.NONE) {
          decoded = {
            kind: 'raw',
            type,
            handle: v.getUint32(entry + IocbHeader.HANDLE, true),
            bytes: s.slice(entry, entry + IOCB_SIZE),
          };
        }
      } else {
        reason = Reason.BAD_ENTRY_TYPE;
        size = count;
      }
      if (pos > 0 && pos + size > limit) {
        stop = 'budget';
        break;
      }

      const handle = hasHandle ? v.getUint32(entry + IocbHeader.HANDLE, true) : 0;
      if (reason !== Reason.NONE) {
        const entryStatus = entryStatusFor(reason);
        const respond = hasHandle && handle !== Handle.QLA_SKIP_HANDLE;
        if (respond) {
          if (this.responseSpace < 1) {
            stop = 'response-full';
            break;
          }
          this.queueErrorResponse(entry, entryStatus);
        }
        entries.push({
          kind: 'error',
          type,
          handle,
          entryStatus,
          reason: REJECT_REASONS[reason]!,
          entryCount: size,
          responsePosted: respond,
        });
      } else if (decoded) {
        if (decoded.kind === 'command') segments += decoded.segments.length;
        entries.push(decoded);
      }
      pos += size;
    }
    if (stop === 'drained' && pos < available) stop = 'budget'; // only `limit` entries were copied
    return { entries, pos, stop };
  }

  private decodeCmd7(entry: number, count: number, limits: RingLimits): RequestEntry | number {
    const s = this.scratch;
    const v = this.scratchView;
    for (let i = 1; i < count; i++) {
      if (s[entry + i * IOCB_SIZE + IocbHeader.ENTRY_TYPE] !== EntryType.CONTINUE_A64_TYPE)
        return Reason.CONTINUATION_TYPE;
    }
    const handle = v.getUint32(entry + IocbHeader.HANDLE, true);
    const handleReason = this.checkHandle(handle, limits);
    if (handleReason !== Reason.NONE) return handleReason;
    const dsegs = v.getUint16(entry + Cmd7.DSEG_COUNT, true);
    if (entriesForDsegs(dsegs) !== count) return Reason.DSEG_COUNT;
    const nportHandle = v.getUint16(entry + Cmd7.NPORT_HANDLE, true);
    if (nportHandle > IocbLimits.MAX_NPORT_HANDLE) return Reason.NPORT_HANDLE;
    const vpIndex = s[entry + Cmd7.VP_INDEX]!;
    if (vpIndex > limits.maxVpIndex) return Reason.VP_INDEX;
    const flags = v.getUint16(entry + Cmd7.TASK_MGMT_FLAGS, true);
    const direction = flags & Cmd7Flags.DIRECTION_MASK;
    if ((flags & ~Cmd7Flags.DIRECTION_MASK) !== 0 || direction === Cmd7Flags.DIRECTION_MASK) return Reason.DIRECTION;
    const task = s[entry + Cmd7.TASK]!;
    const attribute = task & Cmd7Task.ATTRIBUTE_MASK;
    if ((task & Cmd7Task.RESERVED_MASK) !== 0 || !VALID_TASK_ATTRIBUTES.has(attribute)) return Reason.TASK_ATTRIBUTE;
    const byteCount = v.getUint32(entry + Cmd7.BYTE_COUNT, true);
    if (byteCount > limits.maxTransferBytes) return Reason.TRANSFER_TOO_LARGE;
    if (dsegs !== 0 && direction === 0) return Reason.DIRECTION;

    const segments: DataSegment[] = new Array<DataSegment>(dsegs);
    let total = 0;
    for (let k = 0; k < dsegs; k++) {
      const dsd =
        k === 0
          ? entry + Cmd7.DSD
          : entry +
            (1 + Math.floor((k - 1) / ContA64.DSDS_PER_ENTRY)) * IOCB_SIZE +
            ContA64.DSD +
            ((k - 1) % ContA64.DSDS_PER_ENTRY) * Dsd64.SIZE;
      const address = v.getBigUint64(dsd + Dsd64.ADDRESS, true);
      const segLength = v.getUint32(dsd + Dsd64.LENGTH, true);
      if (segLength === 0) return Reason.SEGMENT_ZERO_LENGTH;
      if (address > U64_MAX - BigInt(segLength - 1)) return Reason.SEGMENT_ADDRESS_OVERFLOW;
      total += segLength; // ≤ 1271 × (2^32 - 1): exact in a double
      segments[k] = { address, length: segLength };
    }
    if (total !== byteCount) return Reason.TOTAL_LENGTH_MISMATCH;
    return {
      kind: 'command',
      handle,
      nportHandle,
      portId: v.getUint32(entry + Cmd7.PORT_ID, true) & PORT_ID_MASK,
      vpIndex,
      lun: unswap(s, entry + Cmd7.LUN, Cmd7.LUN_SIZE),
      cdb: unswap(s, entry + Cmd7.FCP_CDB, Cmd7.FCP_CDB_SIZE),
      direction: DIRECTIONS[direction]!,
      totalBytes: byteCount,
      taskAttribute: attribute,
      priority: (task >>> Cmd7Task.PRIORITY_SHIFT) & Cmd7Task.PRIORITY_MASK,
      segments,
      entryCount: count,
    };
  }

  /** Offset in `fifo` of the k-th free slot after the queued entries. */
  private fifoSlot(k: number): number {
    return ((this.fifoHead + this.fifoCount + k) % Capacity.RSP_FIFO_ENTRIES) * IOCB_SIZE;
  }

  private queueErrorResponse(entry: number, entryStatus: number): void {
    const slot = this.fifoSlot(0);
    const f = this.fifo;
    const type = this.scratch[entry + IocbHeader.ENTRY_TYPE]!;
    if (ECHO_ON_ERROR_TYPES.has(type)) {
      f.set(this.scratch.subarray(entry, entry + IOCB_SIZE), slot);
      f[slot + IocbHeader.ENTRY_COUNT] = 1;
      if (this.fifoView.getUint32(slot + IocbHeader.SIGNATURE, true) === RESPONSE_PROCESSED) {
        this.fifoView.setUint32(slot + IocbHeader.SIGNATURE, 0, true);
      }
    } else {
      f.fill(0, slot, slot + IOCB_SIZE);
      f[slot + IocbHeader.ENTRY_TYPE] = EntryType.STATUS_TYPE;
      f[slot + IocbHeader.ENTRY_COUNT] = 1;
      this.fifoView.setUint32(
        slot + IocbHeader.HANDLE,
        this.scratchView.getUint32(entry + IocbHeader.HANDLE, true),
        true,
      );
      this.fifoView.setUint16(slot + Sts24.COMP_STATUS, CompStatus.CS_IOCB_ERROR, true);
    }
    f[slot + IocbHeader.ENTRY_STATUS] = entryStatus;
    this.fifoCount += 1;
  }

  /** Sense length that keeps every entry's last dword ≠ 0xDEADDEAD (see assembly/response.ts). */
  private static senseWithoutSignature(sense: Uint8Array, senseLength: number, rspInfoLength: number): number {
    const isSignature = (at: number): boolean =>
      sense[at] === 0xde && sense[at + 1] === 0xad && sense[at + 2] === 0xde && sense[at + 3] === 0xad;
    const firstCap = Sts24.DATA_SIZE - rspInfoLength;
    let at = firstCap - 4;
    if (at + 4 <= senseLength && isSignature(at)) return at;
    at = firstCap + StsCont.DATA_SIZE - 4;
    while (at + 4 <= senseLength) {
      if (isSignature(at)) return at;
      at += StsCont.DATA_SIZE;
    }
    return senseLength;
  }

  postStatus(status: StatusType0): number {
    validateStatus(status);
    const rspInfo = status.responseInfo ?? new Uint8Array(0);
    const sense = status.sense ?? new Uint8Array(0);
    let senseLength = Math.min(stagedSenseLength(status), MAX_SENSE_BYTES);
    senseLength = TsRingBaseline.senseWithoutSignature(sense, senseLength, rspInfo.length);
    const firstChunk = Math.min(senseLength, Sts24.DATA_SIZE - rspInfo.length);
    const continuations = Math.ceil((senseLength - firstChunk) / StsCont.DATA_SIZE);
    const entries = 1 + continuations;
    if (this.responseSpace < entries) return 0;

    let scsiStatus = status.scsiStatus;
    let residual = 0;
    if (status.residual) {
      scsiStatus |=
        status.residual.kind === 'under' ? ScsiStatusFlags.SS_RESIDUAL_UNDER : ScsiStatusFlags.SS_RESIDUAL_OVER;
      residual = status.residual.bytes;
    }
    if (rspInfo.length !== 0) scsiStatus |= ScsiStatusFlags.SS_RESPONSE_INFO_LEN_VALID;
    if (senseLength !== 0) scsiStatus |= ScsiStatusFlags.SS_SENSE_LEN_VALID;

    const f = this.fifo;
    const v = this.fifoView;
    const slot = this.fifoSlot(0);
    f.fill(0, slot, slot + IOCB_SIZE);
    f[slot + IocbHeader.ENTRY_TYPE] = EntryType.STATUS_TYPE;
    f[slot + IocbHeader.ENTRY_COUNT] = 1;
    v.setUint32(slot + IocbHeader.HANDLE, status.handle, true);
    v.setUint16(slot + Sts24.COMP_STATUS, status.compStatus, true);
    v.setUint16(slot + Sts24.OX_ID, status.oxId ?? 0, true);
    v.setUint32(slot + Sts24.RESIDUAL_LEN, residual, true);
    v.setUint16(slot + Sts24.STATE_FLAGS, status.stateFlags ?? 0, true);
    v.setUint16(slot + Sts24.RETRY_DELAY, status.retryDelay ?? 0, true);
    v.setUint16(slot + Sts24.SCSI_STATUS, scsiStatus, true);
    v.setUint32(slot + Sts24.RSP_RESIDUAL_COUNT, residual, true);
    v.setUint32(slot + Sts24.SENSE_LEN, senseLength, true);
    v.setUint32(slot + Sts24.RSP_DATA_LEN, rspInfo.length, true);
    const data = slot + Sts24.DATA;
    for (let i = 0; i < rspInfo.length; i++) f[data + swappedIndex(i)] = rspInfo[i]!;
    for (let i = 0; i < firstChunk; i++) f[data + swappedIndex(rspInfo.length + i)] = sense[i]!;

    let sent = firstChunk;
    for (let c = 1; c <= continuations; c++) {
      const cont = this.fifoSlot(c);
      f.fill(0, cont, cont + IOCB_SIZE);
      f[cont + IocbHeader.ENTRY_TYPE] = EntryType.STATUS_CONT_TYPE;
      f[cont + IocbHeader.ENTRY_COUNT] = 1;
      const chunk = Math.min(senseLength - sent, StsCont.DATA_SIZE);
      for (let i = 0; i < chunk; i++) f[cont + StsCont.DATA + swappedIndex(i)] = sense[sent + i]!;
      sent += chunk;
    }
    this.fifoCount += entries;
    return entries;
  }

  postRaw(entry: Uint8Array): number {
    if (entry.length !== IOCB_SIZE)
      throw new RangeError(`response entry must be ${IOCB_SIZE} bytes, got ${entry.length}`);
    const signature = new DataView(entry.buffer, entry.byteOffset, IOCB_SIZE).getUint32(IocbHeader.SIGNATURE, true);
    if (
      !RESPONSE_TYPES.has(entry[IocbHeader.ENTRY_TYPE]!) ||
      entry[IocbHeader.ENTRY_COUNT] !== 1 ||
      signature === RESPONSE_PROCESSED
    ) {
      throw new RangeError(
        `response entry type 0x${entry[0]!.toString(16)} count ${entry[1]} refused: not a response type, entry_count ≠ 1, or ends in 0xDEADDEAD`,
      );
    }
    if (this.responseSpace < 1) return 0;
    this.fifo.set(entry, this.fifoSlot(0));
    this.fifoCount += 1;
    return 1;
  }

  flushResponses(mem: GuestMemory, rspIn: number, rspOut: number): FlushResult {
    const config = this.requireConfig();
    const length = config.rspEntries;
    if (!isRingIndex(rspIn, length)) throw new RangeError(`response producer index ${rspIn} outside ring of ${length}`);
    if (!isRingIndex(rspOut, length)) {
      return {
        newIn: rspIn,
        written: 0,
        pending: this.fifoCount,
        full: false,
        fault: { kind: 'response-index', message: `rsp_q_out ${rspOut} outside response ring of ${length} entries` },
      };
    }
    const room = (rspOut - rspIn - 1 + length) % length;
    const plan = Math.min(room, this.fifoCount);
    const { written, fault } = copyOutEntries(
      mem,
      config.rspBase,
      length,
      rspIn,
      plan,
      this.fifo,
      0,
      Capacity.RSP_FIFO_ENTRIES,
      this.fifoHead,
    );
    this.fifoHead = (this.fifoHead + written) % Capacity.RSP_FIFO_ENTRIES;
    this.fifoCount -= written;
    return {
      newIn: (rspIn + written) % length,
      written,
      pending: this.fifoCount,
      full: fault === null && this.fifoCount > 0,
      fault,
    };
  }

  get pendingResponses(): number {
    return this.fifoCount;
  }

  get responseSpace(): number {
    return Capacity.RSP_FIFO_ENTRIES - this.fifoCount;
  }

  resetResponses(): void {
    this.fifoHead = 0;
    this.fifoCount = 0;
  }
}
