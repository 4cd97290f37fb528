/**
 * FC-2 frame header (FC-FS-3 §9, "Frame_Header"), 24 bytes, big-endian. Frames on a link are
 * this header followed by the data field; SOF/EOF delimiters and the CRC are not carried (the
 * link is reliable and in-order), which is also how pcap LINKTYPE_FC_2 (224) records them.
 *
 *    byte:   0        1        2        3
 *  word 0  R_CTL    |<------------ D_ID ------------>|
 *  word 1  CS_CTL   |<------------ S_ID ------------>|
 *  word 2  TYPE     |<------------ F_CTL ----------->|
 *  word 3  SEQ_ID   | DF_CTL |<------ SEQ_CNT ------>|
 *  word 4  |<----- OX_ID ----->|<------ RX_ID ------>|
 *  word 5  |<--------------- Parameter ------------->|
 */
import {
  FcDecodeError,
  getU16,
  getU24,
  getU32,
  putU16,
  putU24,
  putU32,
  requireAtMost,
  requireLength,
} from './bytes.js';

export const FC_HEADER_SIZE = 24;
/** Largest FC-2 data field (FC-FS-3 §8: 2112 bytes). */
export const FC_MAX_PAYLOAD = 2112;
export const FC_MAX_FRAME = FC_HEADER_SIZE + FC_MAX_PAYLOAD;
/** Receive data field size this implementation advertises and uses by default (a multiple of 4). */
export const FC_DEFAULT_RX_DATA_FIELD = 2048;
/** RX_ID of an exchange whose responder has not assigned one yet. */
export const FC_XID_UNKNOWN = 0xffff;

const OFF_R_CTL = 0;
const OFF_D_ID = 1;
const OFF_CS_CTL = 4;
const OFF_S_ID = 5;
const OFF_TYPE = 8;
const OFF_F_CTL = 9;
const OFF_SEQ_ID = 12;
const OFF_DF_CTL = 13;
const OFF_SEQ_CNT = 14;
const OFF_OX_ID = 16;
const OFF_RX_ID = 18;
const OFF_PARAMETER = 20;

/** R_CTL values used here (FC-FS-3 Table 35 routing + information category). */
export const R_CTL = {
  /** FC-4 solicited data (FCP_DATA). */
  DEVICE_DATA_SOLICITED: 0x01,
  /** Unsolicited control: CT request. */
  UNSOL_CONTROL: 0x02,
  /** Solicited control: CT response. */
  SOL_CONTROL: 0x03,
  /** Data descriptor: FCP_XFER_RDY. */
  DATA_DESCRIPTOR: 0x05,
  /** Unsolicited command: FCP_CMND. */
  UNSOL_COMMAND: 0x06,
  /** Command status: FCP_RSP. */
  COMMAND_STATUS: 0x07,
  ELS_REQUEST: 0x22,
  ELS_REPLY: 0x23,
  BLS_ABTS: 0x81,
  BLS_BA_ACC: 0x84,
  BLS_BA_RJT: 0x85,
} as const;

/** TYPE field values (FC-FS-3 Table 36). */
export const FC_TYPE = {
  BLS: 0x00,
  ELS: 0x01,
  FCP: 0x08,
  /** Fibre Channel Services (CT, FC-GS). */
  CT: 0x20,
} as const;

/** F_CTL bits (FC-FS-3 Table 37). */
export const F_CTL = {
  /** Set by the exchange responder. */
  EX_CTX: 1 << 23,
  /** Set by the sequence recipient. */
  SEQ_CTX: 1 << 22,
  FIRST_SEQ: 1 << 21,
  LAST_SEQ: 1 << 20,
  END_SEQ: 1 << 19,
  SEQ_INIT: 1 << 16,
  /** Parameter field carries the relative offset of the data. */
  REL_OFF: 1 << 3,
  FILL_MASK: 0x3,
} as const;

/** Common F_CTL combinations. */
export const F_CTL_REQUEST = F_CTL.FIRST_SEQ | F_CTL.END_SEQ | F_CTL.SEQ_INIT;
export const F_CTL_REPLY = F_CTL.EX_CTX | F_CTL.LAST_SEQ | F_CTL.END_SEQ;

/** Well-known addresses (FC-FS-3 Table 31) that qla2xxx talks to. */
export const WELL_KNOWN = {
  MANAGEMENT_SERVER: 0xfffffa,
  DIRECTORY_SERVER: 0xfffffc,
  FABRIC_CONTROLLER: 0xfffffd,
  F_PORT: 0xfffffe,
  BROADCAST: 0xffffff,
} as const;

export function isWellKnownAddress(id: number): boolean {
  return id >= 0xfffff0;
}

export interface FcHeader {
  rCtl: number;
  dId: number;
  csCtl: number;
  sId: number;
  type: number;
  fCtl: number;
  seqId: number;
  dfCtl: number;
  seqCnt: number;
  oxId: number;
  rxId: number;
  parameter: number;
}

export interface FcFrame {
  header: FcHeader;
  payload: Uint8Array;
}

export function encodeHeader(h: FcHeader, out = new Uint8Array(FC_HEADER_SIZE), at = 0): Uint8Array {
  const b = out.subarray(at, at + FC_HEADER_SIZE);
  b[OFF_R_CTL] = h.rCtl & 0xff;
  putU24(b, OFF_D_ID, h.dId & 0xffffff);
  b[OFF_CS_CTL] = h.csCtl & 0xff;
  putU24(b, OFF_S_ID, h.sId & 0xffffff);
  b[OFF_TYPE] = h.type & 0xff;
  putU24(b, OFF_F_CTL, h.fCtl & 0xffffff);
  b[OFF_SEQ_ID] = h.seqId & 0xff;
  b[OFF_DF_CTL] = h.dfCtl & 0xff;
  putU16(b, OFF_SEQ_CNT, h.seqCnt & 0xffff);
  putU16(b, OFF_OX_ID, h.oxId & 0xffff);
  putU16(b, OFF_RX_ID, h.rxId & 0xffff);
  putU32(b, OFF_PARAMETER, h.parameter >>> 0);
  return out;
}

export function decodeHeader(buf: Uint8Array): FcHeader {
  requireLength(buf, FC_HEADER_SIZE, 'FC-2 header');
  return {
    rCtl: buf[OFF_R_CTL]!,
    dId: getU24(buf, OFF_D_ID),
    csCtl: buf[OFF_CS_CTL]!,
    sId: getU24(buf, OFF_S_ID),
    type: buf[OFF_TYPE]!,
    fCtl: getU24(buf, OFF_F_CTL),
    seqId: buf[OFF_SEQ_ID]!,
    dfCtl: buf[OFF_DF_CTL]!,
    seqCnt: getU16(buf, OFF_SEQ_CNT),
    oxId: getU16(buf, OFF_OX_ID),
    rxId: getU16(buf, OFF_RX_ID),
    parameter: getU32(buf, OFF_PARAMETER),
  };
}

/** Header + payload as one buffer, as carried on a link. */
export function encodeFrame(frame: FcFrame): Uint8Array {
  if (frame.payload.length > FC_MAX_PAYLOAD) {
    throw new RangeError(`FC frame payload of ${frame.payload.length} bytes exceeds ${FC_MAX_PAYLOAD}`);
  }
  const out = new Uint8Array(FC_HEADER_SIZE + frame.payload.length);
  encodeHeader(frame.header, out, 0);
  out.set(frame.payload, FC_HEADER_SIZE);
  return out;
}

/**
 * Header of a frame as received from a link, with the frame-level checks (size, no optional
 * headers). Enough for the switch to route a frame without touching its payload.
 */
export function decodeFrameHeader(buf: Uint8Array): FcHeader {
  requireLength(buf, FC_HEADER_SIZE, 'FC frame');
  requireAtMost(buf, FC_MAX_FRAME, 'FC frame');
  if (buf[OFF_DF_CTL] !== 0) {
    // Optional headers (ESP, network, association, device) are not supported by any peer here.
    throw new FcDecodeError(
      `FC frame: DF_CTL 0x${buf[OFF_DF_CTL]!.toString(16)} announces optional headers, which are not supported`,
    );
  }
  return decodeHeader(buf);
}

/**
 * Parse a frame as received from a link. The payload is a view into `buf`, not a copy: links hand
 * out a buffer of its own for every frame (src/fc/link.ts), so nothing else writes to it.
 */
export function decodeFrame(buf: Uint8Array): FcFrame {
  return { header: decodeFrameHeader(buf), payload: buf.subarray(FC_HEADER_SIZE) };
}

/** "0x010203" style text for logs. */
export function formatPortId(id: number): string {
  return '0x' + (id & 0xffffff).toString(16).padStart(6, '0');
}

/** N_Port ID from its FC-FS address components. */
export function portId(domain: number, area: number, port: number): number {
  return ((domain & 0xff) << 16) | ((area & 0xff) << 8) | (port & 0xff);
}
