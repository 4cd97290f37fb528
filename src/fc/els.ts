/**
 * Extended Link Services (FC-LS-3) payloads: FLOGI, FDISC, PLOGI, PRLI, PRLO, LOGO, ADISC, SCR,
 * RSCN, ECHO, RNID, and the replies LS_ACC / LS_RJT. Every ELS payload starts with a command word
 * whose first byte is the ELS command code; the other three bytes are command specific.
 *
 * Decoders accept only what the layout allows: truncated payloads, wrong command codes, page
 * lengths or counts that disagree with the payload length raise FcDecodeError.
 */
import {
  FcDecodeError,
  getU16,
  getU24,
  getU32,
  getU64,
  putU16,
  putU24,
  putU32,
  putU64,
  requireAtMost,
  requireLength,
} from './bytes.js';
import { FC_MAX_PAYLOAD } from './frame.js';

export const ELS = {
  LS_RJT: 0x01,
  LS_ACC: 0x02,
  PLOGI: 0x03,
  FLOGI: 0x04,
  LOGO: 0x05,
  ECHO: 0x10,
  PRLI: 0x20,
  PRLO: 0x21,
  ADISC: 0x52,
  FDISC: 0x51,
  RSCN: 0x61,
  SCR: 0x62,
  RNID: 0x78,
} as const;

export function elsCommandName(code: number): string {
  for (const [name, value] of Object.entries(ELS)) if (value === code) return name;
  return `ELS 0x${code.toString(16).padStart(2, '0')}`;
}

/** ELS command code of a payload (first byte), or throws when empty. */
export function elsCommandCode(payload: Uint8Array): number {
  requireLength(payload, 4, 'ELS payload');
  return payload[0]!;
}

function requireCommand(payload: Uint8Array, code: number, what: string): void {
  requireLength(payload, 4, what);
  if (payload[0] !== code) {
    throw new FcDecodeError(`${what}: command code 0x${payload[0]!.toString(16)} is not 0x${code.toString(16)}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Service parameters: FLOGI / FDISC / PLOGI requests and their LS_ACC (FC-LS-3 §6.6).
//
//   0   command word (code, 0, 0, 0)
//   4   common service parameters (16 bytes)
//         +0 FC-PH version high, +1 low, +2 BB_Credit(16), +4 common features(16),
//         +6 BB receive data field size(16, low 12 bits), +8 total concurrent seqs(16) /
//         R_A_TOV (F_Port, 32), +10 relative offset by category(16), +12 E_D_TOV(32)
//   20  port name (WWPN)
//   28  node name (WWNN)
//   36  class 1, 52 class 2, 68 class 3, 84 class 4 service parameters (16 bytes each)
//         +0 service options(16) bit 15 = class valid, +2 initiator ctl(16), +4 recipient ctl(16),
//         +6 receive data field size(16), +8 concurrent seqs(16), +10 EE credit(16),
//         +13 open seqs per exchange(8)
//   100 vendor version level (16 bytes)
//   116 end
// ---------------------------------------------------------------------------------------------
export const SERVICE_PARAMS_SIZE = 116;
const SP_CSP = 4;
const SP_WWPN = 20;
const SP_WWNN = 28;
const SP_CLASS3 = 68;

/** Common features bits (FC-LS-3 Table 152). */
export const CSP_FEATURES = {
  /** N_Port: continuously increasing relative offset; in FLOGI: NPIV (multiple N_Port_ID) supported. */
  CIRO_OR_NPIV: 0x8000,
  RANDOM_RELATIVE_OFFSET: 0x4000,
  /** In FLOGI LS_ACC: the fabric supports NPIV assignment. */
  NPIV_ACC: 0x2000,
  /** Sent by an F_Port. */
  F_PORT: 0x1000,
  E_D_TOV_RESOLUTION: 0x0400,
} as const;
export const CLASS_VALID = 0x8000;
/** Class 3 service options bit 11: sequential delivery requested (FLOGI). */
export const CLASS_SEQUENTIAL_DELIVERY = 0x0800;

export interface ServiceParameters {
  /** ELS code of the payload: FLOGI, FDISC, PLOGI or LS_ACC. */
  command: number;
  bbCredit: number;
  commonFeatures: number;
  /** BB receive data field size from the common service parameters. */
  bbRxDataFieldSize: number;
  /** R_A_TOV (ms) in an F_Port's FLOGI LS_ACC; total concurrent seqs/RO by category otherwise (packed). */
  raTovOrSeqs: number;
  edTov: number;
  wwpn: bigint;
  wwnn: bigint;
  class3Valid: boolean;
  class3RxDataFieldSize: number;
  class3ServiceOptions: number;
  class3ConcurrentSeqs: number;
  class3OpenSeqs: number;
}

export function defaultServiceParameters(
  command: number,
  wwpn: bigint,
  wwnn: bigint,
  rxDataFieldSize: number,
): ServiceParameters {
  return {
    command,
    bbCredit: 3,
    commonFeatures: command === ELS.PLOGI ? CSP_FEATURES.CIRO_OR_NPIV : 0,
    bbRxDataFieldSize: rxDataFieldSize,
    raTovOrSeqs: command === ELS.PLOGI ? (0x00ff << 16) | 0x001f : 0,
    edTov: 2000,
    wwpn,
    wwnn,
    class3Valid: true,
    class3RxDataFieldSize: rxDataFieldSize,
    class3ServiceOptions: CLASS_VALID,
    class3ConcurrentSeqs: 0xff,
    class3OpenSeqs: 1,
  };
}

export function encodeServiceParameters(p: ServiceParameters): Uint8Array {
  const b = new Uint8Array(SERVICE_PARAMS_SIZE);
  b[0] = p.command;
  b[SP_CSP] = 0x20; // FC-PH version: highest 0x20 (FC-PH-3 and later) ...
  b[SP_CSP + 1] = 0x20; // ... lowest 0x20
  putU16(b, SP_CSP + 2, p.bbCredit);
  putU16(b, SP_CSP + 4, p.commonFeatures);
  putU16(b, SP_CSP + 6, p.bbRxDataFieldSize & 0x0fff);
  putU32(b, SP_CSP + 8, p.raTovOrSeqs);
  putU32(b, SP_CSP + 12, p.edTov);
  putU64(b, SP_WWPN, p.wwpn);
  putU64(b, SP_WWNN, p.wwnn);
  if (p.class3Valid) {
    putU16(b, SP_CLASS3, p.class3ServiceOptions | CLASS_VALID);
    putU16(b, SP_CLASS3 + 6, p.class3RxDataFieldSize & 0x0fff);
    putU16(b, SP_CLASS3 + 8, p.class3ConcurrentSeqs);
    b[SP_CLASS3 + 13] = p.class3OpenSeqs;
  }
  return b;
}

export function decodeServiceParameters(payload: Uint8Array): ServiceParameters {
  requireLength(payload, SERVICE_PARAMS_SIZE, 'service parameters');
  // FC-LS allows a 256-byte FLOGI payload (with the "payload length" feature); nothing bigger.
  requireAtMost(payload, 256, 'service parameters');
  const command = payload[0]!;
  if (command !== ELS.FLOGI && command !== ELS.FDISC && command !== ELS.PLOGI && command !== ELS.LS_ACC) {
    throw new FcDecodeError(`service parameters: command 0x${command.toString(16)} carries none`);
  }
  const class3Options = getU16(payload, SP_CLASS3);
  return {
    command,
    bbCredit: getU16(payload, SP_CSP + 2),
    commonFeatures: getU16(payload, SP_CSP + 4),
    bbRxDataFieldSize: getU16(payload, SP_CSP + 6) & 0x0fff,
    raTovOrSeqs: getU32(payload, SP_CSP + 8),
    edTov: getU32(payload, SP_CSP + 12),
    wwpn: getU64(payload, SP_WWPN),
    wwnn: getU64(payload, SP_WWNN),
    class3Valid: (class3Options & CLASS_VALID) !== 0,
    class3RxDataFieldSize: getU16(payload, SP_CLASS3 + 6) & 0x0fff,
    class3ServiceOptions: class3Options,
    class3ConcurrentSeqs: getU16(payload, SP_CLASS3 + 8),
    class3OpenSeqs: payload[SP_CLASS3 + 13]!,
  };
}

// ---------------------------------------------------------------------------------------------
// PRLI / PRLO (FC-LS-3 §6.14, FCP-4 §6.3): a 4-byte header and 16-byte service parameter pages.
//
//   0  command code | page length (16) | payload length (16-bit, 4 + 16 × pages)
//   4  page: +0 TYPE (8 = FCP) +1 type code extension +2 flags (bit 7 OPA valid, bit 6 RPA valid,
//            bit 5 establish image pair; low nibble = response code in LS_ACC) +3 reserved
//            +4 originator process associator +8 responder process associator
//            +12 service parameters (32; FCP: bit 5 initiator, bit 4 target, ...)
// ---------------------------------------------------------------------------------------------
export const PRLI_PAGE_LENGTH = 16;
const PRLI_HEADER = 4;
const PRLI_MAX_PAGES = 16;

export const PRLI_FLAGS = {
  OPA_VALID: 0x80,
  RPA_VALID: 0x40,
  ESTABLISH_IMAGE_PAIR: 0x20,
  RESPONSE_CODE_MASK: 0x0f,
} as const;

/** PRLI accept response codes (FC-LS-3 Table 140). */
export const PRLI_RESPONSE = {
  REQUEST_EXECUTED: 1,
  NO_RESOURCES: 2,
  INITIALIZATION_NOT_COMPLETE: 3,
  TARGET_IMAGE_DOES_NOT_EXIST: 4,
  PRECLUDED_BY_CONFIG: 5,
  EXECUTED_CONDITIONALLY: 6,
  MULTIPLE_PAGES_NOT_SUPPORTED: 7,
  INVALID_SERVICE_PARAMETERS: 8,
} as const;

/** FCP service parameter bits in word 3 of an FCP PRLI page (FCP-4 Table 9). */
export const FCP_SPP = {
  TASK_RETRY_ID: 0x0200,
  RETRY: 0x0100,
  CONFIRMED_COMPLETION: 0x0080,
  DATA_OVERLAY: 0x0040,
  INITIATOR_FUNCTION: 0x0020,
  TARGET_FUNCTION: 0x0010,
  READ_XFER_RDY_DISABLED: 0x0002,
  WRITE_XFER_RDY_DISABLED: 0x0001,
} as const;

export interface PrliPage {
  type: number;
  typeExtension: number;
  flags: number;
  originatorPa: number;
  responderPa: number;
  serviceParams: number;
}

/** PRLI, PRLO or their LS_ACC: command is ELS.PRLI, ELS.PRLO or ELS.LS_ACC. */
export interface ProcessLogin {
  command: number;
  pages: PrliPage[];
}

export function encodeProcessLogin(p: ProcessLogin): Uint8Array {
  if (p.pages.length === 0 || p.pages.length > PRLI_MAX_PAGES) {
    throw new RangeError(`PRLI/PRLO must carry 1..${PRLI_MAX_PAGES} pages, not ${p.pages.length}`);
  }
  const len = PRLI_HEADER + PRLI_PAGE_LENGTH * p.pages.length;
  const b = new Uint8Array(len);
  b[0] = p.command;
  b[1] = PRLI_PAGE_LENGTH;
  putU16(b, 2, len);
  p.pages.forEach((page, i) => {
    const o = PRLI_HEADER + i * PRLI_PAGE_LENGTH;
    b[o] = page.type;
    b[o + 1] = page.typeExtension;
    b[o + 2] = page.flags;
    putU32(b, o + 4, page.originatorPa);
    putU32(b, o + 8, page.responderPa);
    putU32(b, o + 12, page.serviceParams);
  });
  return b;
}

export function decodeProcessLogin(payload: Uint8Array): ProcessLogin {
  requireLength(payload, PRLI_HEADER + PRLI_PAGE_LENGTH, 'PRLI/PRLO');
  const command = payload[0]!;
  if (command !== ELS.PRLI && command !== ELS.PRLO && command !== ELS.LS_ACC) {
    throw new FcDecodeError(`PRLI/PRLO: command 0x${command.toString(16)} is neither PRLI, PRLO nor LS_ACC`);
  }
  if (payload[1] !== PRLI_PAGE_LENGTH) throw new FcDecodeError(`PRLI/PRLO: page length ${payload[1]} is not 16`);
  const len = getU16(payload, 2);
  if (len < PRLI_HEADER + PRLI_PAGE_LENGTH || (len - PRLI_HEADER) % PRLI_PAGE_LENGTH !== 0) {
    throw new FcDecodeError(`PRLI/PRLO: payload length ${len} is not 4 + 16 × pages`);
  }
  if (len > payload.length)
    throw new FcDecodeError(`PRLI/PRLO: payload length ${len} exceeds the ${payload.length} bytes received`);
  const count = (len - PRLI_HEADER) / PRLI_PAGE_LENGTH;
  if (count > PRLI_MAX_PAGES) throw new FcDecodeError(`PRLI/PRLO: ${count} pages, at most ${PRLI_MAX_PAGES}`);
  const pages: PrliPage[] = [];
  for (let i = 0; i < count; i++) {
    const o = PRLI_HEADER + i * PRLI_PAGE_LENGTH;
    pages.push({
      type: payload[o]!,
      typeExtension: payload[o + 1]!,
      flags: payload[o + 2]!,
      originatorPa: getU32(payload, o + 4),
      responderPa: getU32(payload, o + 8),
      serviceParams: getU32(payload, o + 12),
    });
  }
  return { command, pages };
}

// ---------------------------------------------------------------------------------------------
// LOGO (FC-LS-3 §4.2.13): 0 command | 4 reserved(8) + N_Port ID(24) | 8 port name. 16 bytes.
// ---------------------------------------------------------------------------------------------
export const LOGO_SIZE = 16;
export interface Logo {
  nportId: number;
  wwpn: bigint;
}
export function encodeLogo(l: Logo): Uint8Array {
  const b = new Uint8Array(LOGO_SIZE);
  b[0] = ELS.LOGO;
  putU24(b, 5, l.nportId);
  putU64(b, 8, l.wwpn);
  return b;
}
export function decodeLogo(payload: Uint8Array): Logo {
  requireCommand(payload, ELS.LOGO, 'LOGO');
  requireLength(payload, LOGO_SIZE, 'LOGO');
  return { nportId: getU24(payload, 5), wwpn: getU64(payload, 8) };
}

// ---------------------------------------------------------------------------------------------
// ADISC and its LS_ACC (FC-LS-3 §4.2.2): 0 command | 4 reserved(8) + hard address(24) |
// 8 port name | 16 node name | 24 reserved(8) + N_Port ID(24). 28 bytes.
// ---------------------------------------------------------------------------------------------
export const ADISC_SIZE = 28;
export interface Adisc {
  command: number;
  hardAddress: number;
  wwpn: bigint;
  wwnn: bigint;
  nportId: number;
}
export function encodeAdisc(a: Adisc): Uint8Array {
  const b = new Uint8Array(ADISC_SIZE);
  b[0] = a.command;
  putU24(b, 5, a.hardAddress);
  putU64(b, 8, a.wwpn);
  putU64(b, 16, a.wwnn);
  putU24(b, 25, a.nportId);
  return b;
}
export function decodeAdisc(payload: Uint8Array): Adisc {
  requireLength(payload, ADISC_SIZE, 'ADISC');
  const command = payload[0]!;
  if (command !== ELS.ADISC && command !== ELS.LS_ACC)
    throw new FcDecodeError(`ADISC: command 0x${command.toString(16)}`);
  return {
    command,
    hardAddress: getU24(payload, 5),
    wwpn: getU64(payload, 8),
    wwnn: getU64(payload, 16),
    nportId: getU24(payload, 25),
  };
}

// ---------------------------------------------------------------------------------------------
// SCR (FC-LS-3 §4.2.30): 0 command | 4 reserved(24) + registration function(8). 8 bytes.
// ---------------------------------------------------------------------------------------------
export const SCR_SIZE = 8;
export const SCR_FUNCTION = {
  FABRIC_DETECTED: 1,
  NX_PORT_DETECTED: 2,
  FULL: 3,
  CLEAR: 0xff,
} as const;
export function encodeScr(fn: number): Uint8Array {
  const b = new Uint8Array(SCR_SIZE);
  b[0] = ELS.SCR;
  b[7] = fn;
  return b;
}
export function decodeScr(payload: Uint8Array): number {
  requireCommand(payload, ELS.SCR, 'SCR');
  requireLength(payload, SCR_SIZE, 'SCR');
  return payload[7]!;
}

// ---------------------------------------------------------------------------------------------
// RSCN (FC-LS-3 §4.2.28): 0 command | 1 page length (4) | 2 payload length (16) |
// 4.. pages: +0 (bits 5..2 event qualifier, bits 1..0 address format) +1 affected ID (24).
// ---------------------------------------------------------------------------------------------
export const RSCN_PAGE_LENGTH = 4;
/** Largest payload: fits one frame. */
const RSCN_MAX_PAGES = (FC_MAX_PAYLOAD - 4) / RSCN_PAGE_LENGTH;
export const RSCN_ADDRESS_FORMAT = { PORT: 0, AREA: 1, DOMAIN: 2, FABRIC: 3 } as const;
export const RSCN_EVENT = {
  UNSPECIFIED: 0,
  NAME_SERVER_OBJECT: 1,
  PORT_ATTRIBUTE: 2,
  SERVICE_OBJECT: 3,
  SWITCH_CONFIG: 4,
} as const;
export interface RscnPage {
  addressFormat: number;
  eventQualifier: number;
  affectedId: number;
}
export function encodeRscn(pages: readonly RscnPage[]): Uint8Array {
  if (pages.length === 0 || pages.length > RSCN_MAX_PAGES)
    throw new RangeError(`RSCN needs 1..${RSCN_MAX_PAGES} pages`);
  const len = 4 + RSCN_PAGE_LENGTH * pages.length;
  const b = new Uint8Array(len);
  b[0] = ELS.RSCN;
  b[1] = RSCN_PAGE_LENGTH;
  putU16(b, 2, len);
  pages.forEach((p, i) => {
    const o = 4 + i * RSCN_PAGE_LENGTH;
    b[o] = ((p.eventQualifier & 0xf) << 2) | (p.addressFormat & 0x3);
    putU24(b, o + 1, p.affectedId);
  });
  return b;
}
export function decodeRscn(payload: Uint8Array): RscnPage[] {
  requireCommand(payload, ELS.RSCN, 'RSCN');
  requireLength(payload, 8, 'RSCN');
  if (payload[1] !== RSCN_PAGE_LENGTH) throw new FcDecodeError(`RSCN: page length ${payload[1]} is not 4`);
  const len = getU16(payload, 2);
  if (len < 8 || len % RSCN_PAGE_LENGTH !== 0 || len > payload.length) {
    throw new FcDecodeError(`RSCN: payload length ${len} is invalid for ${payload.length} bytes received`);
  }
  const pages: RscnPage[] = [];
  for (let o = 4; o < len; o += RSCN_PAGE_LENGTH) {
    pages.push({
      addressFormat: payload[o]! & 0x3,
      eventQualifier: (payload[o]! >> 2) & 0xf,
      affectedId: getU24(payload, o + 1),
    });
  }
  return pages;
}

/** Does an RSCN page cover this N_Port ID? */
export function rscnPageCovers(page: RscnPage, id: number): boolean {
  switch (page.addressFormat) {
    case RSCN_ADDRESS_FORMAT.PORT:
      return page.affectedId === id;
    case RSCN_ADDRESS_FORMAT.AREA:
      return page.affectedId >> 8 === id >> 8;
    case RSCN_ADDRESS_FORMAT.DOMAIN:
      return page.affectedId >> 16 === id >> 16;
    default:
      return true;
  }
}

// ---------------------------------------------------------------------------------------------
// ECHO (FC-LS-3 §4.2.8): command word followed by data that the LS_ACC returns unchanged.
// ---------------------------------------------------------------------------------------------
export function encodeEcho(data: Uint8Array, command: number = ELS.ECHO): Uint8Array {
  if (4 + data.length > FC_MAX_PAYLOAD)
    throw new RangeError(`ECHO data of ${data.length} bytes does not fit one frame`);
  const b = new Uint8Array(4 + data.length);
  b[0] = command;
  b.set(data, 4);
  return b;
}
export function decodeEcho(payload: Uint8Array): Uint8Array {
  requireLength(payload, 4, 'ECHO');
  if (payload[0] !== ELS.ECHO && payload[0] !== ELS.LS_ACC)
    throw new FcDecodeError(`ECHO: command 0x${payload[0]!.toString(16)}`);
  return payload.slice(4);
}

// ---------------------------------------------------------------------------------------------
// RNID (FC-LS-3 §4.2.27). Request: 0 command | 4 node identification data format(8) + reserved(24).
// LS_ACC: 0 LS_ACC | 4 format | 5 common ID data length (16) | 6 reserved | 7 specific ID data
// length | 8 port name | 16 node name | 24 specific data. Only the common data (format 0) is
// supplied here; FC-LS says an unsupported format is answered with format 0.
// ---------------------------------------------------------------------------------------------
export const RNID_REQUEST_SIZE = 8;
export const RNID_COMMON_DATA_LENGTH = 16;
export interface RnidReply {
  format: number;
  wwpn: bigint;
  wwnn: bigint;
  specific: Uint8Array;
}
export function encodeRnidRequest(format: number): Uint8Array {
  const b = new Uint8Array(RNID_REQUEST_SIZE);
  b[0] = ELS.RNID;
  b[4] = format;
  return b;
}
export function decodeRnidRequest(payload: Uint8Array): number {
  requireCommand(payload, ELS.RNID, 'RNID');
  requireLength(payload, RNID_REQUEST_SIZE, 'RNID');
  return payload[4]!;
}
export function encodeRnidReply(r: RnidReply): Uint8Array {
  if (r.specific.length > 255) throw new RangeError('RNID specific data is at most 255 bytes');
  const b = new Uint8Array(8 + RNID_COMMON_DATA_LENGTH + r.specific.length);
  b[0] = ELS.LS_ACC;
  b[4] = r.format;
  b[5] = RNID_COMMON_DATA_LENGTH;
  b[7] = r.specific.length;
  putU64(b, 8, r.wwpn);
  putU64(b, 16, r.wwnn);
  b.set(r.specific, 24);
  return b;
}
export function decodeRnidReply(payload: Uint8Array): RnidReply {
  requireCommand(payload, ELS.LS_ACC, 'RNID LS_ACC');
  requireLength(payload, 8, 'RNID LS_ACC');
  const common = payload[5]!;
  const specific = payload[7]!;
  if (common !== 0 && common !== RNID_COMMON_DATA_LENGTH)
    throw new FcDecodeError(`RNID LS_ACC: common data length ${common}`);
  requireLength(payload, 8 + common + specific, 'RNID LS_ACC');
  return {
    format: payload[4]!,
    wwpn: common ? getU64(payload, 8) : 0n,
    wwnn: common ? getU64(payload, 16) : 0n,
    specific: payload.slice(8 + common, 8 + common + specific),
  };
}

// ---------------------------------------------------------------------------------------------
// LS_ACC (bare) and LS_RJT (FC-LS-3 §4.3): LS_RJT = 0 command | 4 reserved | 5 reason code |
// 6 reason explanation | 7 vendor unique. 8 bytes.
// ---------------------------------------------------------------------------------------------
export const LS_RJT_SIZE = 8;
export const LS_RJT_REASON = {
  INVALID_COMMAND: 0x01,
  LOGICAL_ERROR: 0x03,
  LOGICAL_BUSY: 0x05,
  PROTOCOL_ERROR: 0x07,
  UNABLE_TO_PERFORM: 0x09,
  COMMAND_NOT_SUPPORTED: 0x0b,
  COMMAND_IN_PROGRESS: 0x0e,
} as const;
export const LS_RJT_EXPLANATION = {
  NONE: 0x00,
  SERVICE_PARAM_ERROR_OPTIONS: 0x01,
  INVALID_PORT_NAME: 0x0d,
  INVALID_NODE_NAME: 0x0e,
  INVALID_COMMON_SERVICE_PARAMS: 0x0f,
  INVALID_OX_ID_RX_ID: 0x17,
  PLOGI_REQUIRED: 0x1e,
  INSUFFICIENT_RESOURCES: 0x29,
  UNABLE_TO_SUPPLY_DATA: 0x2a,
  REQUEST_NOT_SUPPORTED: 0x2c,
  INVALID_PAYLOAD_LENGTH: 0x2d,
} as const;

export interface LsRjt {
  reason: number;
  explanation: number;
  vendor: number;
}
export function encodeLsAcc(): Uint8Array {
  const b = new Uint8Array(4);
  b[0] = ELS.LS_ACC;
  return b;
}
export function encodeLsRjt(r: Partial<LsRjt> & { reason: number }): Uint8Array {
  const b = new Uint8Array(LS_RJT_SIZE);
  b[0] = ELS.LS_RJT;
  b[5] = r.reason;
  b[6] = r.explanation ?? LS_RJT_EXPLANATION.NONE;
  b[7] = r.vendor ?? 0;
  return b;
}
export function decodeLsRjt(payload: Uint8Array): LsRjt {
  requireCommand(payload, ELS.LS_RJT, 'LS_RJT');
  requireLength(payload, LS_RJT_SIZE, 'LS_RJT');
  return { reason: payload[5]!, explanation: payload[6]!, vendor: payload[7]! };
}
