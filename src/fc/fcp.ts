/**
 * FCP-4 information units: FCP_CMND, FCP_XFER_RDY, FCP_RSP (FCP_DATA is raw bytes whose place
 * in the transfer is the frame header's relative offset).
 *
 * FCP_CMND (FCP-4 §9.2), 32 bytes with no additional CDB:
 *   0 FCP_LUN (8) | 8 command reference number | 9 task attribute (bits 2..0) |
 *   10 task management flags | 11 additional CDB length in words (bits 7..2), RDDATA (bit 1),
 *   WRDATA (bit 0) | 12 FCP_CDB (16) | 28 + 4·addl FCP_DL (32)
 *
 * FCP_XFER_RDY (§9.3), 12 bytes: 0 FCP_DATA_RO | 4 FCP_BURST_LEN | 8 reserved
 *
 * FCP_RSP (§9.5): 0 reserved (8) | 8 retry delay timer (16) | 10 flags | 11 SCSI status |
 *   12 FCP_RESID | 16 FCP_SNS_LEN | 20 FCP_RSP_LEN | 24 FCP_RSP_INFO | 24 + rsp_len FCP_SNS_INFO
 */
import { FcDecodeError, getU16, getU32, putU16, putU32, requireLength } from './bytes.js';
import { FC_MAX_PAYLOAD } from './frame.js';

export const FCP_LUN_SIZE = 8;
export const FCP_CDB_SIZE = 16;
export const FCP_CMND_SIZE = 32;
export const FCP_XFER_RDY_SIZE = 12;
export const FCP_RSP_HEADER_SIZE = 24;
/** FCP_RSP_INFO as sent here: 8 bytes, response code in byte 3. */
export const FCP_RSP_INFO_SIZE = 8;
/** Sense data is bounded by what fits one FCP_RSP frame; SPC limits it to 252 bytes anyway. */
export const FCP_MAX_SENSE = 252;

export const FCP_TASK_ATTRIBUTE = { SIMPLE: 0, HEAD_OF_QUEUE: 1, ORDERED: 2, ACA: 4, UNTAGGED: 5 } as const;

/** Task management flags byte (FCP-4 Table 23). */
export const FCP_TMF = {
  ABORT_TASK_SET: 0x02,
  CLEAR_TASK_SET: 0x04,
  LUN_RESET: 0x10,
  TARGET_RESET: 0x20,
  CLEAR_ACA: 0x40,
} as const;

export const FCP_CMND_RDDATA = 0x02;
export const FCP_CMND_WRDATA = 0x01;

export interface FcpCmnd {
  lun: Uint8Array;
  crn: number;
  taskAttribute: number;
  taskManagement: number;
  read: boolean;
  write: boolean;
  cdb: Uint8Array;
  dataLength: number;
}

export function encodeFcpCmnd(c: FcpCmnd): Uint8Array {
  if (c.lun.length !== FCP_LUN_SIZE) throw new RangeError('FCP_LUN must be 8 bytes');
  if (c.cdb.length > FCP_CDB_SIZE) throw new RangeError('CDBs longer than 16 bytes (additional CDB) are not supported');
  const b = new Uint8Array(FCP_CMND_SIZE);
  b.set(c.lun, 0);
  b[8] = c.crn;
  b[9] = c.taskAttribute & 0x7;
  b[10] = c.taskManagement;
  b[11] = (c.read ? FCP_CMND_RDDATA : 0) | (c.write ? FCP_CMND_WRDATA : 0);
  b.set(c.cdb, 12);
  putU32(b, 28, c.dataLength);
  return b;
}

export function decodeFcpCmnd(p: Uint8Array): FcpCmnd {
  requireLength(p, FCP_CMND_SIZE, 'FCP_CMND');
  const additionalWords = p[11]! >> 2;
  if (additionalWords !== 0) {
    throw new FcDecodeError(`FCP_CMND: additional CDB of ${additionalWords * 4} bytes is not supported`);
  }
  if (p.length > FCP_CMND_SIZE) throw new FcDecodeError(`FCP_CMND: ${p.length} bytes, expected ${FCP_CMND_SIZE}`);
  return {
    lun: p.slice(0, 8),
    crn: p[8]!,
    taskAttribute: p[9]! & 0x7,
    taskManagement: p[10]!,
    read: (p[11]! & FCP_CMND_RDDATA) !== 0,
    write: (p[11]! & FCP_CMND_WRDATA) !== 0,
    cdb: p.slice(12, 28),
    dataLength: getU32(p, 28),
  };
}

export interface FcpXferRdy {
  relativeOffset: number;
  burstLength: number;
}
export function encodeXferRdy(x: FcpXferRdy): Uint8Array {
  const b = new Uint8Array(FCP_XFER_RDY_SIZE);
  putU32(b, 0, x.relativeOffset);
  putU32(b, 4, x.burstLength);
  return b;
}
export function decodeXferRdy(p: Uint8Array): FcpXferRdy {
  requireLength(p, FCP_XFER_RDY_SIZE, 'FCP_XFER_RDY');
  if (p.length > FCP_XFER_RDY_SIZE) throw new FcDecodeError(`FCP_XFER_RDY: ${p.length} bytes, expected 12`);
  return { relativeOffset: getU32(p, 0), burstLength: getU32(p, 4) };
}

/** FCP_RSP flags byte (FCP-4 Table 29). */
export const FCP_RSP_FLAGS = {
  RSP_LEN_VALID: 0x01,
  SNS_LEN_VALID: 0x02,
  RESID_OVER: 0x04,
  RESID_UNDER: 0x08,
  CONF_REQ: 0x10,
} as const;

/** FCP_RSP_INFO response codes (FCP-4 Table 30). */
export const FCP_RSP_CODE = {
  COMPLETE: 0,
  DATA_LENGTH_MISMATCH: 1,
  INVALID_FIELDS: 2,
  RO_MISMATCH: 3,
  TMF_REJECTED: 4,
  TMF_FAILED: 5,
  TMF_INCORRECT_LUN: 9,
} as const;

export interface FcpRsp {
  status: number;
  retryDelay: number;
  residualOver: boolean;
  residualUnder: boolean;
  residual: number;
  /** FCP_RSP_INFO response code, or null when FCP_RSP_LEN_VALID is clear. */
  responseCode: number | null;
  sense: Uint8Array | null;
}

export function encodeFcpRsp(r: FcpRsp): Uint8Array {
  if (r.residualOver && r.residualUnder) throw new RangeError('FCP_RSP cannot report both over- and under-run');
  const sense = r.sense ?? new Uint8Array(0);
  if (sense.length > FCP_MAX_SENSE)
    throw new RangeError(`sense data of ${sense.length} bytes exceeds ${FCP_MAX_SENSE}`);
  const rspLen = r.responseCode === null ? 0 : FCP_RSP_INFO_SIZE;
  const b = new Uint8Array(FCP_RSP_HEADER_SIZE + rspLen + sense.length);
  putU16(b, 8, r.retryDelay);
  b[10] =
    (rspLen ? FCP_RSP_FLAGS.RSP_LEN_VALID : 0) |
    (sense.length ? FCP_RSP_FLAGS.SNS_LEN_VALID : 0) |
    (r.residualOver ? FCP_RSP_FLAGS.RESID_OVER : 0) |
    (r.residualUnder ? FCP_RSP_FLAGS.RESID_UNDER : 0);
  b[11] = r.status;
  putU32(b, 12, r.residualOver || r.residualUnder ? r.residual : 0);
  putU32(b, 16, sense.length);
  putU32(b, 20, rspLen);
  if (r.responseCode !== null) b[FCP_RSP_HEADER_SIZE + 3] = r.responseCode;
  b.set(sense, FCP_RSP_HEADER_SIZE + rspLen);
  return b;
}

export function decodeFcpRsp(p: Uint8Array): FcpRsp {
  requireLength(p, FCP_RSP_HEADER_SIZE, 'FCP_RSP');
  if (p.length > FC_MAX_PAYLOAD) throw new FcDecodeError(`FCP_RSP: ${p.length} bytes is oversized`);
  const flags = p[10]!;
  const over = (flags & FCP_RSP_FLAGS.RESID_OVER) !== 0;
  const under = (flags & FCP_RSP_FLAGS.RESID_UNDER) !== 0;
  if (over && under) throw new FcDecodeError('FCP_RSP: both FCP_RESID_OVER and FCP_RESID_UNDER are set');
  const rspLen = flags & FCP_RSP_FLAGS.RSP_LEN_VALID ? getU32(p, 20) : 0;
  const snsLen = flags & FCP_RSP_FLAGS.SNS_LEN_VALID ? getU32(p, 16) : 0;
  if (rspLen !== 0 && rspLen !== 4 && rspLen !== 8)
    throw new FcDecodeError(`FCP_RSP: FCP_RSP_LEN ${rspLen} is not 0, 4 or 8`);
  if (snsLen > FCP_MAX_SENSE) throw new FcDecodeError(`FCP_RSP: FCP_SNS_LEN ${snsLen} exceeds ${FCP_MAX_SENSE}`);
  requireLength(p, FCP_RSP_HEADER_SIZE + rspLen + snsLen, 'FCP_RSP');
  return {
    status: p[11]!,
    retryDelay: getU16(p, 8),
    residualOver: over,
    residualUnder: under,
    residual: over || under ? getU32(p, 12) : 0,
    responseCode: rspLen ? p[FCP_RSP_HEADER_SIZE + 3]! : null,
    sense: snsLen ? p.slice(FCP_RSP_HEADER_SIZE + rspLen, FCP_RSP_HEADER_SIZE + rspLen + snsLen) : null,
  };
}
