/**
 * struct sg_io_hdr (SG v3, include/scsi/sg.h; 88 bytes on LP64) without its pointers: the fields
 * TypeScript fills for a submission and reads from a completion. native/src/sg.cc sets dxferp,
 * cmdp, sbp and usr_ptr and checks the rest against the buffers; its sgIoHdrLayout() returns the
 * real offsetof() values, which test/unit/host/sg.test.ts compares with SG_IO_HDR below.
 *
 * Completion → FcpResult (the FabricPort seam), by the SCSI host byte (`DID_*`,
 * include/scsi/scsi_status.h) the sg driver reports in host_status.
 */
import type { FcpResult } from '../isp/fabric-port.js';
import type { DataDirection } from '../scsi/sam.js';

export const SG_IO_HDR = {
  SIZE: 88,
  INTERFACE_ID: 0x00,
  DXFER_DIRECTION: 0x04,
  CMD_LEN: 0x08,
  MX_SB_LEN: 0x09,
  IOVEC_COUNT: 0x0a,
  DXFER_LEN: 0x0c,
  DXFERP: 0x10,
  CMDP: 0x18,
  SBP: 0x20,
  TIMEOUT: 0x28,
  FLAGS: 0x2c,
  PACK_ID: 0x30,
  USR_PTR: 0x38,
  STATUS: 0x40,
  MASKED_STATUS: 0x41,
  MSG_STATUS: 0x42,
  SB_LEN_WR: 0x43,
  HOST_STATUS: 0x44,
  DRIVER_STATUS: 0x46,
  RESID: 0x48,
  DURATION: 0x4c,
  INFO: 0x50,
} as const;

/** dxfer_direction values (include/scsi/sg.h). */
export const SG_DXFER = { NONE: -1, TO_DEV: -2, FROM_DEV: -3 } as const;
export const SG_FLAG_Q_AT_TAIL = 0x10;
export const SG_INFO_CHECK = 0x1;
/** Sense buffer offered to the kernel (SCSI_SENSE_BUFFERSIZE). */
export const SG_SENSE_MAX = 96;
/** Outstanding commands per sg fd before write() fails with EDOM (SG_MAX_QUEUE, drivers/scsi/sg.c). */
export const SG_MAX_QUEUE = 16;

/** Host bytes (include/scsi/scsi_status.h). */
export const DID = {
  OK: 0x00,
  NO_CONNECT: 0x01,
  BUS_BUSY: 0x02,
  TIME_OUT: 0x03,
  BAD_TARGET: 0x04,
  ABORT: 0x05,
  PARITY: 0x06,
  ERROR: 0x07,
  RESET: 0x08,
  BAD_INTR: 0x09,
  PASSTHROUGH: 0x0a,
  SOFT_ERROR: 0x0b,
  IMM_RETRY: 0x0c,
  REQUEUE: 0x0d,
  TRANSPORT_DISRUPTED: 0x0e,
  TRANSPORT_FAILFAST: 0x0f,
  TRANSPORT_MARGINAL: 0x14,
} as const;

/** driver_status: DRIVER_TIMEOUT (include/scsi/sg.h of old kernels; still set by sg on timeouts). */
export const DRIVER_TIMEOUT = 0x06;
export const DRIVER_MASK = 0x0f;

export interface SgSubmitHeader {
  direction: DataDirection;
  cdbLength: number;
  dataLength: number;
  timeoutMs: number;
  packId: number;
}

export function encodeSgHeader(h: SgSubmitHeader): Uint8Array {
  const b = new Uint8Array(SG_IO_HDR.SIZE);
  const v = new DataView(b.buffer);
  v.setInt32(SG_IO_HDR.INTERFACE_ID, 'S'.charCodeAt(0), true);
  const dir = h.direction === 'none' ? SG_DXFER.NONE : h.direction === 'write' ? SG_DXFER.TO_DEV : SG_DXFER.FROM_DEV;
  v.setInt32(SG_IO_HDR.DXFER_DIRECTION, dir, true);
  b[SG_IO_HDR.CMD_LEN] = h.cdbLength;
  b[SG_IO_HDR.MX_SB_LEN] = SG_SENSE_MAX;
  v.setUint32(SG_IO_HDR.DXFER_LEN, h.direction === 'none' ? 0 : h.dataLength, true);
  v.setUint32(SG_IO_HDR.TIMEOUT, h.timeoutMs, true);
  v.setUint32(SG_IO_HDR.FLAGS, SG_FLAG_Q_AT_TAIL, true);
  v.setInt32(SG_IO_HDR.PACK_ID, h.packId | 0, true);
  return b;
}

export interface SgCompletion {
  packId: number;
  status: number;
  hostStatus: number;
  driverStatus: number;
  resid: number;
  durationMs: number;
  info: number;
  sense: Uint8Array;
}

/** Reads a completed header (88 bytes, pointers zeroed by the native side). */
export function decodeSgHeader(header: Uint8Array, sense: Uint8Array): SgCompletion {
  if (header.length !== SG_IO_HDR.SIZE) throw new RangeError(`sg_io_hdr: ${header.length} bytes, expected 88`);
  const v = new DataView(header.buffer, header.byteOffset, header.length);
  return {
    packId: v.getInt32(SG_IO_HDR.PACK_ID, true),
    status: header[SG_IO_HDR.STATUS]!,
    hostStatus: v.getUint16(SG_IO_HDR.HOST_STATUS, true),
    driverStatus: v.getUint16(SG_IO_HDR.DRIVER_STATUS, true),
    resid: v.getInt32(SG_IO_HDR.RESID, true),
    durationMs: v.getUint32(SG_IO_HDR.DURATION, true),
    info: v.getUint32(SG_IO_HDR.INFO, true),
    sense,
  };
}

/**
 * A completion as the guest's firmware sees it. DID_OK carries the SCSI status, sense and residual
 * (the data moved is dxfer_len - resid bytes; resid outside [0, dxfer_len] is clamped). Host
 * errors become transport errors:
 *   DID_NO_CONNECT, DID_BAD_TARGET, DID_TRANSPORT_DISRUPTED/FAILFAST/MARGINAL → 'port-unavailable'
 *     (the remote port is gone or blocked: the guest re-logs in, as after a lost port);
 *   DID_TIME_OUT (or driver_status DRIVER_TIMEOUT) → 'timeout';
 *   everything else (DID_ABORT, DID_RESET, DID_ERROR, DID_BUS_BUSY, DID_IMM_RETRY, DID_REQUEUE,
 *     DID_SOFT_ERROR, ...) → 'aborted', which the guest retries without a logout.
 */
export function fcpResultOf(c: SgCompletion, direction: DataDirection, dataLength: number): FcpResult {
  const host = c.hostStatus & 0xff;
  if (host !== DID.OK) {
    let transportError: NonNullable<FcpResult['transportError']>;
    switch (host) {
      case DID.NO_CONNECT:
      case DID.BAD_TARGET:
      case DID.TRANSPORT_DISRUPTED:
      case DID.TRANSPORT_FAILFAST:
      case DID.TRANSPORT_MARGINAL:
        transportError = 'port-unavailable';
        break;
      case DID.TIME_OUT:
        transportError = 'timeout';
        break;
      default:
        transportError = 'aborted';
    }
    return { scsiStatus: 0, sense: null, transferred: 0, transportError };
  }
  if ((c.driverStatus & DRIVER_MASK) === DRIVER_TIMEOUT)
    return { scsiStatus: 0, sense: null, transferred: 0, transportError: 'timeout' };
  const resid = Math.min(Math.max(c.resid, 0), dataLength);
  const moved = dataLength - resid;
  return {
    scsiStatus: c.status & 0xff,
    sense: c.sense.length > 0 ? c.sense : null,
    transferred: direction === 'none' ? 0 : moved,
  };
}
