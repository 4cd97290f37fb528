/**
 * Response side of the ring engine of the emulated QLogic ISP2532 (24xx/25xx firmware
 * interface): a FIFO of encoded 64-byte response entries in WASM memory, Status Type 0
 * (+ Status Continuation) encoding, staging of host-built entries, and the flush plan that
 * respects the guest's response ring (back-pressure: never write more than
 * (rsp_q_out - rsp_q_in - 1) mod length entries; the rest stay queued).
 *
 * Behavioural reference: qla2xxx qla2x00_status_entry, qla2x00_handle_sense,
 * qla2x00_status_cont_entry, qla24xx_process_response_queue (signature 0xDEADDEAD).
 */
import {
  IOCB_SIZE,
  IOCB_SHIFT,
  IocbHeader,
  EntryType,
  Sts24,
  StsCont,
  ScsiStatusFlags,
  CompStatus,
  RESPONSE_PROCESSED,
  MAX_SENSE_BYTES,
  IocbLimits,
} from './shared/iocb';
import { CONTROL_BASE, RSP_FIFO_BASE, Capacity, Ctl, ResidualKind, EngineResult } from './shared/ring-layout';
import { ctlLoad8, ctlLoad16, ctlLoad32, ctlStore32, storeSwapped } from './mem';

// @ts-ignore: decorator
@inline function fifoCount(): u32 {
  return ctlLoad32(Ctl.FIFO_COUNT);
}

/** Response entries that can still be queued. */
export function fifoFree(): i32 {
  return <i32>(<u32>Capacity.RSP_FIFO_ENTRIES - fifoCount());
}

/** Address of the k-th free slot after the queued entries (k < fifoFree()). */
function fifoSlot(k: u32): usize {
  const index = (ctlLoad32(Ctl.FIFO_HEAD) + fifoCount() + k) % <u32>Capacity.RSP_FIFO_ENTRIES;
  return <usize>RSP_FIFO_BASE + (<usize>index << IOCB_SHIFT);
}

function fifoCommit(entries: u32): void {
  ctlStore32(Ctl.FIFO_COUNT, fifoCount() + entries);
}

export function fifoClear(): void {
  ctlStore32(Ctl.FIFO_HEAD, 0);
  ctlStore32(Ctl.FIFO_COUNT, 0);
}

/** A response entry must never end in RESPONSE_PROCESSED, or the driver stops reading there. */
// @ts-ignore: decorator
@inline function endsInSignature(entry: usize): bool {
  return load<u32>(entry + IocbHeader.SIGNATURE) == <u32>RESPONSE_PROCESSED;
}

/** Linear data-area bytes that decide an entry's signature dword: the last four. */
// @ts-ignore: decorator
@inline function senseIsSignature(sense: usize, at: u32): bool {
  return bswap<u32>(load<u32>(sense + <usize>at)) == <u32>RESPONSE_PROCESSED;
}

/**
 * Sense bytes that can be sent without any entry ending in 0xDEADDEAD: sense is cut just before
 * the first dword that would land in a signature slot with that value (needs sense bytes
 * DE AD DE AD at exactly that position; real sense data practically never has them).
 */
function senseWithoutSignature(sense: usize, senseLen: u32, rspInfoLen: u32): u32 {
  const firstCap = <u32>Sts24.DATA_SIZE - rspInfoLen;
  let at = firstCap - 4;
  if (at + 4 <= senseLen && senseIsSignature(sense, at)) return at;
  at = firstCap + <u32>StsCont.DATA_SIZE - 4;
  while (at + 4 <= senseLen) {
    if (senseIsSignature(sense, at)) return at;
    at += <u32>StsCont.DATA_SIZE;
  }
  return senseLen;
}

/**
 * Encodes the Status Type 0 described by the control block's status input (Ctl.ST_*) plus the
 * Status Continuation entries its sense needs, and queues them contiguously.
 * Returns the number of entries queued, ERR_FIFO_FULL (nothing queued) or ERR_INVALID.
 */
export function rspPostStatus(): i32 {
  const residualKind = ctlLoad8(Ctl.ST_RESIDUAL_KIND);
  const rspInfoLen = ctlLoad8(Ctl.ST_RSP_INFO_LEN);
  const stagedSense = ctlLoad32(Ctl.ST_SENSE_LEN);
  if (residualKind > <u32>ResidualKind.OVER) return EngineResult.ERR_INVALID;
  if (rspInfoLen != 0 && rspInfoLen != 4 && rspInfoLen != 8) return EngineResult.ERR_INVALID;
  if (stagedSense > <u32>Capacity.SENSE_STAGING) return EngineResult.ERR_INVALID;

  const sense = <usize>(CONTROL_BASE + Ctl.ST_SENSE);
  let senseLen = min<u32>(stagedSense, <u32>MAX_SENSE_BYTES);
  senseLen = senseWithoutSignature(sense, senseLen, rspInfoLen);
  const firstChunk = min<u32>(senseLen, <u32>Sts24.DATA_SIZE - rspInfoLen);
  const continuations = (senseLen - firstChunk + <u32>StsCont.DATA_SIZE - 1) / <u32>StsCont.DATA_SIZE;
  const entries: u32 = continuations + 1;
  if (<u32>fifoFree() < entries) return EngineResult.ERR_FIFO_FULL;

  let scsiStatus = ctlLoad8(Ctl.ST_SCSI_STATUS);
  let residual: u32 = 0;
  if (residualKind == <u32>ResidualKind.UNDER) {
    scsiStatus |= ScsiStatusFlags.SS_RESIDUAL_UNDER;
    residual = ctlLoad32(Ctl.ST_RESIDUAL);
  } else if (residualKind == <u32>ResidualKind.OVER) {
    scsiStatus |= ScsiStatusFlags.SS_RESIDUAL_OVER;
    residual = ctlLoad32(Ctl.ST_RESIDUAL);
  }
  if (rspInfoLen != 0) scsiStatus |= ScsiStatusFlags.SS_RESPONSE_INFO_LEN_VALID;
  if (senseLen != 0) scsiStatus |= ScsiStatusFlags.SS_SENSE_LEN_VALID;

  const status = fifoSlot(0);
  memory.fill(status, 0, IOCB_SIZE);
  store<u8>(status + IocbHeader.ENTRY_TYPE, <u8>EntryType.STATUS_TYPE);
  store<u8>(status + IocbHeader.ENTRY_COUNT, 1);
  store<u32>(status + IocbHeader.HANDLE, ctlLoad32(Ctl.ST_HANDLE));
  store<u16>(status + Sts24.COMP_STATUS, <u16>ctlLoad16(Ctl.ST_COMP_STATUS));
  store<u16>(status + Sts24.OX_ID, <u16>ctlLoad16(Ctl.ST_OX_ID));
  // The driver rejects the residual as "dropped frames" unless both residual fields agree.
  store<u32>(status + Sts24.RESIDUAL_LEN, residual);
  store<u16>(status + Sts24.STATE_FLAGS, <u16>ctlLoad16(Ctl.ST_STATE_FLAGS));
  store<u16>(status + Sts24.RETRY_DELAY, <u16>ctlLoad16(Ctl.ST_RETRY_DELAY));
  store<u16>(status + Sts24.SCSI_STATUS, <u16>scsiStatus);
  store<u32>(status + Sts24.RSP_RESIDUAL_COUNT, residual);
  store<u32>(status + Sts24.SENSE_LEN, senseLen);
  store<u32>(status + Sts24.RSP_DATA_LEN, rspInfoLen);
  const data = status + <usize>Sts24.DATA;
  storeSwapped(data, 0, <usize>(CONTROL_BASE + Ctl.ST_RSP_INFO), rspInfoLen);
  storeSwapped(data, rspInfoLen, sense, firstChunk);

  let sent = firstChunk;
  for (let c: u32 = 1; c <= continuations; c++) {
    const cont = fifoSlot(c);
    memory.fill(cont, 0, IOCB_SIZE);
    store<u8>(cont + IocbHeader.ENTRY_TYPE, <u8>EntryType.STATUS_CONT_TYPE);
    store<u8>(cont + IocbHeader.ENTRY_COUNT, 1);
    const chunk = min<u32>(senseLen - sent, <u32>StsCont.DATA_SIZE);
    storeSwapped(cont + <usize>StsCont.DATA, 0, sense + <usize>sent, chunk);
    sent += chunk;
  }
  fifoCommit(entries);
  return <i32>entries;
}

/** Entry types the firmware model may return on the response ring. */
function isResponseType(type: u32): bool {
  switch (type) {
    case EntryType.STATUS_TYPE:
    case EntryType.MARKER_TYPE:
    case EntryType.STATUS_CONT_TYPE:
    case EntryType.CT_IOCB_TYPE:
    case EntryType.VP_CTRL_IOCB_TYPE:
    case EntryType.VP_CONFIG_IOCB_TYPE:
    case EntryType.VP_RPT_ID_IOCB_TYPE:
    case EntryType.ABORT_IOCB_TYPE:
    case EntryType.MBX_IOCB_TYPE:
    case EntryType.LOGINOUT_PORT_IOCB_TYPE:
    case EntryType.ELS_IOCB_TYPE:
      return true;
  }
  return false;
}

/**
 * Queues the host-built response entry staged at Ctl.RAW_STAGING. It must be a response type
 * with entry_count 1 and must not end in the driver's processed signature.
 * Returns 1, ERR_FIFO_FULL or ERR_INVALID.
 */
export function rspPostRaw(): i32 {
  const staged = <usize>(CONTROL_BASE + Ctl.RAW_STAGING);
  if (!isResponseType(<u32>load<u8>(staged + IocbHeader.ENTRY_TYPE))) return EngineResult.ERR_INVALID;
  if (load<u8>(staged + IocbHeader.ENTRY_COUNT) != 1) return EngineResult.ERR_INVALID;
  if (endsInSignature(staged)) return EngineResult.ERR_INVALID;
  if (fifoFree() < 1) return EngineResult.ERR_FIFO_FULL;
  memory.copy(fifoSlot(0), staged, IOCB_SIZE);
  fifoCommit(1);
  return 1;
}

/**
 * Entry types whose error echo qla2x00_error_entry routes to the srb in every driver version
 * (NOTIFY_ACK/STATUS/STATUS_CONT/LOGIO/CT/ELS/ABORT/MBX cases). Errors in any other IOCB type
 * are returned as a Status Type 0 carrying the entry_status bits and the original handle.
 */
function echoesOnError(type: u32): bool {
  switch (type) {
    case EntryType.LOGINOUT_PORT_IOCB_TYPE:
    case EntryType.CT_IOCB_TYPE:
    case EntryType.ELS_IOCB_TYPE:
    case EntryType.ABORT_IOCB_TYPE:
    case EntryType.MBX_IOCB_TYPE:
      return true;
  }
  return false;
}

/**
 * Queues the error response for the request entry at `entry`: entry_status = `entryStatus`,
 * handle unchanged, so the driver completes the srb with DID_ERROR. Caller checked fifoFree().
 */
export function queueErrorResponse(entry: usize, entryStatus: u32): void {
  const slot = fifoSlot(0);
  const type = <u32>load<u8>(entry + IocbHeader.ENTRY_TYPE);
  if (echoesOnError(type)) {
    memory.copy(slot, entry, IOCB_SIZE);
    store<u8>(slot + IocbHeader.ENTRY_COUNT, 1);
    if (endsInSignature(slot)) store<u32>(slot + IocbHeader.SIGNATURE, 0);
  } else {
    memory.fill(slot, 0, IOCB_SIZE);
    store<u8>(slot + IocbHeader.ENTRY_TYPE, <u8>EntryType.STATUS_TYPE);
    store<u8>(slot + IocbHeader.ENTRY_COUNT, 1);
    store<u32>(slot + IocbHeader.HANDLE, load<u32>(entry + IocbHeader.HANDLE));
    store<u16>(slot + Sts24.COMP_STATUS, <u16>CompStatus.CS_IOCB_ERROR);
  }
  store<u8>(slot + IocbHeader.ENTRY_STATUS, <u8>entryStatus);
  fifoCommit(1);
}

/**
 * How many queued entries fit into the guest's response ring now: the ring is full when
 * (in + 1) % length == out. Returns that count (≥ 0) or ERR_INDEX for an index ≥ length.
 */
export function rspFlushPlan(rspIn: i32, rspOut: i32): i32 {
  const length = <i32>ctlLoad32(Ctl.RSP_ENTRIES);
  if (length < 1 || length > <i32>IocbLimits.MAX_RING_ENTRIES) return EngineResult.ERR_NOT_CONFIGURED;
  if (rspIn < 0 || rspIn >= length || rspOut < 0 || rspOut >= length) return EngineResult.ERR_INDEX;
  const free = (rspOut - rspIn - 1 + length) % length;
  return min<i32>(free, <i32>fifoCount());
}

/** Drops `entries` entries from the FIFO head after the host copied them out. Returns the count left. */
export function rspFlushCommit(entries: i32): i32 {
  const count = <i32>fifoCount();
  if (entries < 0 || entries > count) return EngineResult.ERR_INVALID;
  const head = (ctlLoad32(Ctl.FIFO_HEAD) + <u32>entries) % <u32>Capacity.RSP_FIFO_ENTRIES;
  ctlStore32(Ctl.FIFO_HEAD, head);
  ctlStore32(Ctl.FIFO_COUNT, <u32>(count - entries));
  return count - entries;
}
