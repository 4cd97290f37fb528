/**
 * Request side of the ring engine of the emulated QLogic ISP2532 (24xx/25xx firmware
 * interface): walks the request entries the host copied into the scratch area (ring order,
 * wrap undone), validates every field the firmware model relies on, decodes
 * Command Type 7 + Continuation Type 1 into records and a segment table, passes other known
 * single-entry IOCBs through as raw records, and turns malformed entries into error records
 * plus an error response (entry_status RF_* bits, original handle) queued for the driver.
 *
 * Behavioural reference: qla2xxx qla24xx_start_scsi / qla24xx_build_scsi_iocbs /
 * qla24xx_calc_iocbs / qla2x00_prep_cont_type1_iocb (what a valid command looks like) and
 * qla2x00_error_entry (how the driver completes a rejected one).
 */
import {
  IOCB_SHIFT,
  IocbHeader,
  EntryType,
  EntryStatus,
  Handle,
  Dsd64,
  Cmd7,
  Cmd7Flags,
  Cmd7Task,
  ContA64,
  IocbLimits,
  PORT_ID_MASK,
} from './shared/iocb';
import {
  SCRATCH_BASE,
  RECORDS_BASE,
  SEGMENTS_BASE,
  Capacity,
  Ctl,
  Rec,
  RecKind,
  RecFlags,
  Seg,
  StopReason,
  Reason,
  Direction,
  EngineResult,
} from './shared/ring-layout';
import { ctlLoad32, ctlStore32, copySwapped } from './mem';
import { fifoFree, queueErrorResponse } from './response';

/** Single-entry request IOCB types handed to the host's IOCB handlers as raw copies. */
function isRawRequestType(type: u32): bool {
  switch (type) {
    case EntryType.MARKER_TYPE:
    case EntryType.TSK_MGMT_IOCB_TYPE:
    case EntryType.CT_IOCB_TYPE:
    case EntryType.VP_CTRL_IOCB_TYPE:
    case EntryType.VP_CONFIG_IOCB_TYPE:
    case EntryType.ABORT_IOCB_TYPE:
    case EntryType.MBX_IOCB_TYPE:
    case EntryType.LOGINOUT_PORT_IOCB_TYPE:
    case EntryType.ELS_IOCB_TYPE:
      return true;
  }
  return false;
}

/**
 * A completion handle the driver can have produced: (queue << 16) | index with an existing
 * queue and 1 ≤ index ≤ max_handle_index (outstanding_cmds[0] is never used).
 * Returns Reason.NONE or the reason it is not.
 */
function checkHandle(handle: u32): u32 {
  if ((handle >>> <u32>Handle.QUEUE_SHIFT) > ctlLoad32(Ctl.MAX_QUEUE_ID)) return Reason.HANDLE_QUEUE;
  const index = handle & <u32>Handle.INDEX_MASK;
  if (index == 0 || index > ctlLoad32(Ctl.MAX_HANDLE_INDEX)) return Reason.HANDLE_INDEX;
  return Reason.NONE;
}

/** entry_status bit reported for each rejection reason. */
function entryStatusFor(reason: u32): u32 {
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
  }
  return EntryStatus.RF_INV_E_PARAM;
}

/** DSD k of a command spanning entries at `entry`: 1 inline, then 5 per continuation. */
// @ts-ignore: decorator
@inline function dsdAddress(entry: usize, k: u32): usize {
  if (k == 0) return entry + <usize>Cmd7.DSD;
  const c = k - 1;
  const cont = entry + (<usize>(1 + c / <u32>ContA64.DSDS_PER_ENTRY) << IOCB_SHIFT);
  return cont + <usize>ContA64.DSD + <usize>((c % <u32>ContA64.DSDS_PER_ENTRY) * <u32>Dsd64.SIZE);
}

/** Entries a command with `dsegs` DSDs occupies (qla24xx_calc_iocbs). */
// @ts-ignore: decorator
@inline function entriesForDsegs(dsegs: u32): u32 {
  if (dsegs <= <u32>Cmd7.INLINE_DSDS) return 1;
  return 1 + (dsegs - 1 + <u32>ContA64.DSDS_PER_ENTRY - 1) / <u32>ContA64.DSDS_PER_ENTRY;
}

// @ts-ignore: decorator
@inline function validTaskAttribute(attribute: u32): bool {
  return (
    attribute == <u32>Cmd7Task.TSK_SIMPLE ||
    attribute == <u32>Cmd7Task.TSK_HEAD_OF_QUEUE ||
    attribute == <u32>Cmd7Task.TSK_ORDERED ||
    attribute == <u32>Cmd7Task.TSK_ACA ||
    attribute == <u32>Cmd7Task.TSK_UNTAGGED
  );
}

/**
 * Validates and decodes the Command Type 7 at `entry` spanning `count` entries into record `rec`,
 * its DSDs into the segment table from index `segStart`. Returns Reason.NONE or the rejection.
 * Reads only the `count` entries the host copied (count ≤ copied entries is checked by the caller).
 */
function decodeCmd7(entry: usize, count: u32, rec: usize, segStart: u32): u32 {
  for (let i: u32 = 1; i < count; i++) {
    const cont = entry + (<usize>i << IOCB_SHIFT);
    if (<u32>load<u8>(cont + IocbHeader.ENTRY_TYPE) != <u32>EntryType.CONTINUE_A64_TYPE) {
      return Reason.CONTINUATION_TYPE;
    }
  }
  const handleReason = checkHandle(load<u32>(entry + IocbHeader.HANDLE));
  if (handleReason != Reason.NONE) return handleReason;

  const dsegs = <u32>load<u16>(entry + Cmd7.DSEG_COUNT);
  if (entriesForDsegs(dsegs) != count) return Reason.DSEG_COUNT;

  const nportHandle = <u32>load<u16>(entry + Cmd7.NPORT_HANDLE);
  if (nportHandle > <u32>IocbLimits.MAX_NPORT_HANDLE) return Reason.NPORT_HANDLE;
  const vpIndex = <u32>load<u8>(entry + Cmd7.VP_INDEX);
  if (vpIndex > ctlLoad32(Ctl.MAX_VP_INDEX)) return Reason.VP_INDEX;

  const flags = <u32>load<u16>(entry + Cmd7.TASK_MGMT_FLAGS);
  const direction = flags & <u32>Cmd7Flags.DIRECTION_MASK;
  // Both bits would be a bidirectional command (a different IOCB); other bits are TMF requests
  // the driver never combines with Command Type 7.
  if ((flags & ~<u32>Cmd7Flags.DIRECTION_MASK) != 0 || direction == <u32>Cmd7Flags.DIRECTION_MASK) {
    return Reason.DIRECTION;
  }
  const task = <u32>load<u8>(entry + Cmd7.TASK);
  const attribute = task & <u32>Cmd7Task.ATTRIBUTE_MASK;
  if ((task & <u32>Cmd7Task.RESERVED_MASK) != 0 || !validTaskAttribute(attribute)) return Reason.TASK_ATTRIBUTE;

  const byteCount = load<u32>(entry + Cmd7.BYTE_COUNT);
  if (byteCount > ctlLoad32(Ctl.MAX_TRANSFER)) return Reason.TRANSFER_TOO_LARGE;
  if (dsegs != 0 && direction == <u32>Direction.NONE) return Reason.DIRECTION;

  let total: u64 = 0;
  for (let k: u32 = 0; k < dsegs; k++) {
    const dsd = dsdAddress(entry, k);
    const address = load<u64>(dsd + Dsd64.ADDRESS);
    const length = load<u32>(dsd + Dsd64.LENGTH);
    if (length == 0) return Reason.SEGMENT_ZERO_LENGTH;
    // The last byte, address + length - 1, must not wrap past 2^64.
    if (address > <u64>-1 - <u64>(length - 1)) return Reason.SEGMENT_ADDRESS_OVERFLOW;
    total += <u64>length;
    const seg = <usize>SEGMENTS_BASE + (<usize>(segStart + k) * <usize>Seg.SIZE);
    store<u64>(seg + Seg.ADDRESS, address);
    store<u32>(seg + Seg.LENGTH, length);
  }
  if (total != <u64>byteCount) return Reason.TOTAL_LENGTH_MISMATCH;

  store<u8>(rec + Rec.KIND, <u8>RecKind.COMMAND);
  store<u16>(rec + Rec.NPORT_HANDLE, <u16>nportHandle);
  store<u8>(rec + Rec.VP_INDEX, <u8>vpIndex);
  store<u8>(rec + Rec.DIRECTION, <u8>direction);
  store<u32>(rec + Rec.BYTE_COUNT, byteCount);
  copySwapped(rec + Rec.LUN, entry + Cmd7.LUN, <u32>Cmd7.LUN_SIZE >>> 2);
  copySwapped(rec + Rec.CDB, entry + Cmd7.FCP_CDB, <u32>Cmd7.FCP_CDB_SIZE >>> 2);
  store<u32>(rec + Rec.PORT_ID, load<u32>(entry + Cmd7.PORT_ID) & <u32>PORT_ID_MASK);
  store<u8>(rec + Rec.TASK_ATTRIBUTE, <u8>attribute);
  store<u8>(rec + Rec.PRIORITY, <u8>((task >>> <u32>Cmd7Task.PRIORITY_SHIFT) & <u32>Cmd7Task.PRIORITY_MASK));
  store<u32>(rec + Rec.SEG_START, segStart);
  store<u32>(rec + Rec.SEG_COUNT, dsegs);
  return Reason.NONE;
}

/**
 * Consumes request entries from the scratch area.
 *   copied     entries the host copied into the scratch area (from the consumer index on)
 *   available  entries the producer has published (req_q_in - out mod length) ≥ copied
 *   budget     entries to consume at most; the first item is always consumed whole, so one
 *              call always makes progress (an item is at most 255 entries)
 * Returns the number of records written (≥ 0) or a negative EngineResult. Ctl.CONSUMED_ENTRIES
 * receives the entries consumed, Ctl.STOP_REASON why it stopped.
 *
 * The host copies min(available, budget) entries. Only a first command longer than that can
 * extend past them: then nothing is consumed, the stop reason is NEED_COPY, and the host copies
 * the missing entries of that command (its entry_count, read from the copy; the first ones are
 * not fetched again) and calls again.
 */
export function reqConsume(copied: i32, available: i32, budget: i32): i32 {
  if (ctlLoad32(Ctl.CONFIGURED) == 0) return EngineResult.ERR_NOT_CONFIGURED;
  if (copied < 0 || copied > <i32>Capacity.SCRATCH_ENTRIES) return EngineResult.ERR_INVALID;
  if (available < copied || available > <i32>IocbLimits.MAX_RING_ENTRIES) return EngineResult.ERR_INVALID;
  if (budget < 1) return EngineResult.ERR_INVALID;

  let pos: u32 = 0;
  let records: u32 = 0;
  let segments: u32 = 0;
  let stop: u32 = StopReason.DRAINED;
  while (pos < <u32>copied) {
    if (records >= <u32>Capacity.MAX_RECORDS) {
      stop = StopReason.RECORDS_FULL;
      break;
    }
    const entry = <usize>SCRATCH_BASE + (<usize>pos << IOCB_SHIFT);
    const rec = <usize>RECORDS_BASE + <usize>(records * <u32>Rec.SIZE);
    const type = <u32>load<u8>(entry + IocbHeader.ENTRY_TYPE);
    const count = <u32>load<u8>(entry + IocbHeader.ENTRY_COUNT);
    const published = <u32>available - pos;
    memory.fill(rec, 0, Rec.SIZE);

    let size: u32 = 1;
    let reason: u32 = Reason.NONE;
    let hasHandle = true;
    if (type == <u32>EntryType.CONTINUE_A64_TYPE) {
      reason = Reason.STRAY_CONTINUATION;
      hasHandle = false; // bytes 4..7 are a DSD address, not a handle
    } else if (count == 0) {
      reason = Reason.ENTRY_COUNT_ZERO;
    } else if (count > published) {
      reason = Reason.ENTRY_COUNT_BEYOND_PRODUCER;
    } else if (type == <u32>EntryType.COMMAND_TYPE_7) {
      size = count;
      if (pos > 0 && pos + size > <u32>budget) {
        stop = StopReason.BUDGET;
        break;
      }
      if (count > <u32>copied - pos) {
        stop = StopReason.NEED_COPY;
        break;
      }
      if (segments + count * <u32>ContA64.DSDS_PER_ENTRY > <u32>Capacity.MAX_SEGMENTS) {
        stop = StopReason.RECORDS_FULL;
        break;
      }
      reason = decodeCmd7(entry, count, rec, segments);
    } else if (isRawRequestType(type)) {
      if (count != 1) {
        reason = Reason.ENTRY_COUNT_SINGLE;
      } else if (type != <u32>EntryType.MARKER_TYPE) {
        // Markers may carry 0 or QLA_SKIP_HANDLE; every other IOCB completes through its handle.
        reason = checkHandle(load<u32>(entry + IocbHeader.HANDLE));
      }
      if (reason == Reason.NONE) store<u8>(rec + Rec.KIND, <u8>RecKind.RAW);
    } else {
      reason = Reason.BAD_ENTRY_TYPE;
      size = count; // skip the whole unsupported IOCB, continuations included (count ≤ published)
    }
    if (pos > 0 && pos + size > <u32>budget) {
      stop = StopReason.BUDGET;
      break;
    }

    const handle = hasHandle ? load<u32>(entry + IocbHeader.HANDLE) : 0;
    if (reason != Reason.NONE) {
      const entryStatus = entryStatusFor(reason);
      const respond = hasHandle && handle != <u32>Handle.QLA_SKIP_HANDLE;
      if (respond) {
        if (fifoFree() < 1) {
          stop = StopReason.RESPONSE_FULL;
          break;
        }
        queueErrorResponse(entry, entryStatus);
      }
      memory.fill(rec, 0, Rec.SIZE);
      store<u8>(rec + Rec.KIND, <u8>RecKind.ERROR);
      store<u8>(rec + Rec.ENTRY_STATUS, <u8>entryStatus);
      store<u8>(rec + Rec.REASON, <u8>reason);
      store<u8>(rec + Rec.FLAGS, respond ? <u8>RecFlags.RESPONSE_POSTED : 0);
    } else if (type == <u32>EntryType.COMMAND_TYPE_7) {
      segments += <u32>load<u16>(entry + Cmd7.DSEG_COUNT);
    }
    store<u8>(rec + Rec.ENTRY_TYPE, <u8>type);
    store<u8>(rec + Rec.ENTRIES, <u8>size);
    store<u32>(rec + Rec.HANDLE, handle);
    store<u32>(rec + Rec.SCRATCH_INDEX, pos);
    records++;
    pos += size;
  }
  // Everything copied was consumed but the producer published more: the budget limited the copy.
  if (stop == StopReason.DRAINED && pos < <u32>available) stop = StopReason.BUDGET;
  ctlStore32(Ctl.CONSUMED_ENTRIES, pos);
  ctlStore32(Ctl.STOP_REASON, stop);
  ctlStore32(Ctl.SEGMENTS_USED, segments);
  return <i32>records;
}
