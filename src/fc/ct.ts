/**
 * Common Transport (FC-GS-7 §4.3) and the Directory Service name server requests that qla2xxx
 * issues (drivers/scsi/qla2xxx/qla_gs.c), with FS_ACC / FS_RJT.
 *
 * CT_IU preamble, 16 bytes, big-endian:
 *
 *   0  revision (0x01) | 1 IN_ID (24, zero)
 *   4  GS_Type | 5 GS_Subtype | 6 options | 7 reserved
 *   8  command/response code (16) | 10 max/residual size (16, in 4-byte words)
 *   12 fragment ID | 13 reason code | 14 reason code explanation | 15 vendor specific
 *   16 command-specific payload
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
  requireLength,
} from './bytes.js';

export const CT_HEADER_SIZE = 16;
export const CT_REVISION = 0x01;
/** Largest CT_IU accepted for reassembly (a full GPN_FT of 2048 ports plus header is 32 KiB). */
export const CT_MAX_IU = 64 * 1024;

export const GS_TYPE = { MANAGEMENT: 0xfa, TIME: 0xfb, DIRECTORY: 0xfc } as const;
export const GS_SUBTYPE = { NAME_SERVER: 0x02, FABRIC_CONFIG: 0x01, FDMI: 0x10 } as const;

export const CT_RESPONSE = { FS_RJT: 0x8001, FS_ACC: 0x8002 } as const;

/** Name server command codes (FC-GS-7 Table 137). */
export const NS = {
  GA_NXT: 0x0100,
  GPN_ID: 0x0112,
  GNN_ID: 0x0113,
  GFT_ID: 0x0117,
  GSPN_ID: 0x0118,
  GFPN_ID: 0x011c,
  GFF_ID: 0x011f,
  GID_FT: 0x0171,
  GPN_FT: 0x0172,
  GNN_FT: 0x0173,
  GID_PT: 0x01a1,
  RFT_ID: 0x0217,
  RSPN_ID: 0x0218,
  RNN_ID: 0x0213,
  RFF_ID: 0x021f,
  RSNN_NN: 0x0239,
} as const;

export function nsCommandName(code: number): string {
  for (const [name, value] of Object.entries(NS)) if (value === code) return name;
  return `CT 0x${code.toString(16).padStart(4, '0')}`;
}

/** FS_RJT reason codes (FC-GS-7 Table 11). */
export const FS_RJT_REASON = {
  INVALID_COMMAND: 0x01,
  INVALID_VERSION: 0x02,
  LOGICAL_ERROR: 0x03,
  INVALID_IU_SIZE: 0x04,
  LOGICAL_BUSY: 0x05,
  PROTOCOL_ERROR: 0x07,
  UNABLE_TO_PERFORM: 0x09,
  COMMAND_NOT_SUPPORTED: 0x0b,
  SERVER_NOT_AVAILABLE: 0x0d,
} as const;

/** Name server reason code explanations (FC-GS-7 Table 138). */
export const NS_EXPLANATION = {
  NONE: 0x00,
  PORT_ID_NOT_REGISTERED: 0x01,
  PORT_NAME_NOT_REGISTERED: 0x02,
  NODE_NAME_NOT_REGISTERED: 0x03,
  FC4_TYPES_NOT_REGISTERED: 0x07,
  SYMBOLIC_PORT_NAME_NOT_REGISTERED: 0x08,
  SYMBOLIC_NODE_NAME_NOT_REGISTERED: 0x09,
  PORT_TYPE_NOT_REGISTERED: 0x0a,
  FABRIC_PORT_NAME_NOT_REGISTERED: 0x0c,
  FC4_FEATURES_NOT_REGISTERED: 0x0f,
  ACCESS_DENIED: 0x10,
  UNACCEPTABLE_PORT_ID: 0x11,
  DATABASE_EMPTY: 0x12,
  NO_OBJECT_IN_SCOPE: 0x13,
} as const;

export interface CtHeader {
  gsType: number;
  gsSubtype: number;
  options: number;
  /** Command code in a request, 0x8001/0x8002 in a response. */
  code: number;
  /** Request: max response size in words (0 = no limit). Response: residual in words. */
  maxOrResidualWords: number;
  fragmentId: number;
  reason: number;
  explanation: number;
  vendor: number;
}

export interface CtIu {
  header: CtHeader;
  payload: Uint8Array;
}

export function encodeCt(iu: CtIu): Uint8Array {
  const b = new Uint8Array(CT_HEADER_SIZE + iu.payload.length);
  const h = iu.header;
  b[0] = CT_REVISION;
  b[4] = h.gsType;
  b[5] = h.gsSubtype;
  b[6] = h.options;
  putU16(b, 8, h.code);
  putU16(b, 10, h.maxOrResidualWords);
  b[12] = h.fragmentId;
  b[13] = h.reason;
  b[14] = h.explanation;
  b[15] = h.vendor;
  b.set(iu.payload, CT_HEADER_SIZE);
  return b;
}

export function decodeCt(buf: Uint8Array): CtIu {
  requireLength(buf, CT_HEADER_SIZE, 'CT_IU');
  if (buf.length > CT_MAX_IU) throw new FcDecodeError(`CT_IU: oversized (${buf.length} bytes, at most ${CT_MAX_IU})`);
  if (buf[0] !== CT_REVISION) throw new FcDecodeError(`CT_IU: revision 0x${buf[0]!.toString(16)} is not 0x01`);
  return {
    header: {
      gsType: buf[4]!,
      gsSubtype: buf[5]!,
      options: buf[6]!,
      code: getU16(buf, 8),
      maxOrResidualWords: getU16(buf, 10),
      fragmentId: buf[12]!,
      reason: buf[13]!,
      explanation: buf[14]!,
      vendor: buf[15]!,
    },
    payload: buf.slice(CT_HEADER_SIZE),
  };
}

export function nameServerRequest(code: number, payload: Uint8Array, maxResponseBytes = 0): Uint8Array {
  const words =
    maxResponseBytes === 0 ? 0 : Math.min(0xffff, Math.max(0, Math.floor((maxResponseBytes - CT_HEADER_SIZE) / 4)));
  return encodeCt({
    header: {
      gsType: GS_TYPE.DIRECTORY,
      gsSubtype: GS_SUBTYPE.NAME_SERVER,
      options: 0,
      code,
      maxOrResidualWords: words,
      fragmentId: 0,
      reason: 0,
      explanation: 0,
      vendor: 0,
    },
    payload,
  });
}

export function ctAccept(request: CtHeader, payload: Uint8Array, residualWords = 0): Uint8Array {
  return encodeCt({
    header: {
      ...request,
      code: CT_RESPONSE.FS_ACC,
      maxOrResidualWords: residualWords,
      reason: 0,
      explanation: 0,
      vendor: 0,
    },
    payload,
  });
}

export function ctReject(
  request: Pick<CtHeader, 'gsType' | 'gsSubtype' | 'options'>,
  reason: number,
  explanation = 0,
): Uint8Array {
  return encodeCt({
    header: {
      gsType: request.gsType,
      gsSubtype: request.gsSubtype,
      options: request.options,
      code: CT_RESPONSE.FS_RJT,
      maxOrResidualWords: 0,
      fragmentId: 0,
      reason,
      explanation,
      vendor: 0,
    },
    payload: new Uint8Array(0),
  });
}

// ---------------------------------------------------------------------------------------------
// Request payloads.
// ---------------------------------------------------------------------------------------------

/** FC-4 TYPE codes used in registrations and queries. */
export const FC4_TYPE_FCP = 0x08;
/** Port type "Nx_Port" (any), as in GID_PT from qla2xxx; 0x01 = N_Port. */
export const PORT_TYPE = { N_PORT: 0x01, NX_PORT: 0x7f } as const;
/** FC-4 features for FCP (FC-GS-7 Table 141, FCP-4): bit 0 target, bit 1 initiator. */
export const FC4_FEATURE = { TARGET: 0x1, INITIATOR: 0x2 } as const;

/** {reserved, port ID}: GPN_ID, GNN_ID, GFPN_ID, GFF_ID, GFT_ID, GSPN_ID, GA_NXT. */
export function encodePortIdRequest(id: number): Uint8Array {
  const b = new Uint8Array(4);
  putU24(b, 1, id);
  return b;
}
export function decodePortIdRequest(p: Uint8Array): number {
  requireLength(p, 4, 'port ID request');
  return getU24(p, 1);
}

/** GID_FT / GPN_FT / GNN_FT: {reserved, domain scope, area scope, FC-4 type}. */
export interface FtRequest {
  domainScope: number;
  areaScope: number;
  fc4Type: number;
}
export function encodeFtRequest(r: FtRequest): Uint8Array {
  return Uint8Array.of(0, r.domainScope, r.areaScope, r.fc4Type);
}
export function decodeFtRequest(p: Uint8Array): FtRequest {
  requireLength(p, 4, 'GID_FT/GPN_FT/GNN_FT request');
  return { domainScope: p[1]!, areaScope: p[2]!, fc4Type: p[3]! };
}

/** GID_PT: {port type, domain scope, area scope, reserved}. */
export interface PtRequest {
  portType: number;
  domainScope: number;
  areaScope: number;
}
export function encodePtRequest(r: PtRequest): Uint8Array {
  return Uint8Array.of(r.portType, r.domainScope, r.areaScope, 0);
}
export function decodePtRequest(p: Uint8Array): PtRequest {
  requireLength(p, 4, 'GID_PT request');
  return { portType: p[0]!, domainScope: p[1]!, areaScope: p[2]! };
}

/** FC-4 TYPEs bitmap: 8 words, type T is bit (T % 32) of word (T / 32). */
export const FC4_TYPES_SIZE = 32;
export function fc4TypesBitmap(types: Iterable<number>): Uint8Array {
  const b = new Uint8Array(FC4_TYPES_SIZE);
  for (const t of types) {
    const word = t >> 5;
    const bit = t & 31;
    putU32(b, word * 4, getU32(b, word * 4) | (1 << bit));
  }
  return b;
}
export function fc4TypesFromBitmap(b: Uint8Array): number[] {
  requireLength(b, FC4_TYPES_SIZE, 'FC-4 TYPEs');
  const out: number[] = [];
  for (let t = 0; t < 256; t++) if ((getU32(b, (t >> 5) * 4) >>> (t & 31)) & 1) out.push(t);
  return out;
}

/** RFT_ID: {reserved, port ID, FC-4 TYPEs[32]}. */
export interface RftId {
  nportId: number;
  fc4Types: number[];
}
export function encodeRftId(r: RftId): Uint8Array {
  const b = new Uint8Array(4 + FC4_TYPES_SIZE);
  putU24(b, 1, r.nportId);
  b.set(fc4TypesBitmap(r.fc4Types), 4);
  return b;
}
export function decodeRftId(p: Uint8Array): RftId {
  requireLength(p, 4 + FC4_TYPES_SIZE, 'RFT_ID');
  return { nportId: getU24(p, 1), fc4Types: fc4TypesFromBitmap(p.subarray(4, 4 + FC4_TYPES_SIZE)) };
}

/** RFF_ID: {reserved, port ID, reserved(16), FC-4 features, FC-4 type}. */
export interface RffId {
  nportId: number;
  features: number;
  fc4Type: number;
}
export function encodeRffId(r: RffId): Uint8Array {
  const b = new Uint8Array(8);
  putU24(b, 1, r.nportId);
  b[6] = r.features;
  b[7] = r.fc4Type;
  return b;
}
export function decodeRffId(p: Uint8Array): RffId {
  requireLength(p, 8, 'RFF_ID');
  return { nportId: getU24(p, 1), features: p[6]!, fc4Type: p[7]! };
}

/** RNN_ID: {reserved, port ID, node name}. */
export interface RnnId {
  nportId: number;
  wwnn: bigint;
}
export function encodeRnnId(r: RnnId): Uint8Array {
  const b = new Uint8Array(12);
  putU24(b, 1, r.nportId);
  putU64(b, 4, r.wwnn);
  return b;
}
export function decodeRnnId(p: Uint8Array): RnnId {
  requireLength(p, 12, 'RNN_ID');
  return { nportId: getU24(p, 1), wwnn: getU64(p, 4) };
}

/** Symbolic names are at most 255 bytes (FC-GS-7 §5.2.3.5). */
export const SYMBOLIC_NAME_MAX = 255;

function encodeSymbolicName(name: string): Uint8Array {
  const bytes = new TextEncoder().encode(name);
  if (bytes.length > SYMBOLIC_NAME_MAX)
    throw new RangeError(`symbolic name of ${bytes.length} bytes exceeds ${SYMBOLIC_NAME_MAX}`);
  const b = new Uint8Array(1 + bytes.length);
  b[0] = bytes.length;
  b.set(bytes, 1);
  return b;
}

// Strict: a replacement character for each bad byte would take 3 bytes when the name is sent
// again, so a 255-byte name could no longer fit its field. BOM kept for the same reason.
const symbolicNameDecoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

function decodeSymbolicName(p: Uint8Array, off: number, what: string): string {
  requireLength(p, off + 1, what);
  const len = p[off]!;
  requireLength(p, off + 1 + len, what);
  try {
    return symbolicNameDecoder.decode(p.subarray(off + 1, off + 1 + len));
  } catch {
    throw new FcDecodeError(`${what}: symbolic name is not UTF-8`);
  }
}

/** RSNN_NN: {node name, length, symbolic node name}. */
export interface RsnnNn {
  wwnn: bigint;
  name: string;
}
export function encodeRsnnNn(r: RsnnNn): Uint8Array {
  const name = encodeSymbolicName(r.name);
  const b = new Uint8Array(8 + name.length);
  putU64(b, 0, r.wwnn);
  b.set(name, 8);
  return b;
}
export function decodeRsnnNn(p: Uint8Array): RsnnNn {
  requireLength(p, 9, 'RSNN_NN');
  return { wwnn: getU64(p, 0), name: decodeSymbolicName(p, 8, 'RSNN_NN') };
}

/** RSPN_ID: {reserved, port ID, length, symbolic port name}. */
export interface RspnId {
  nportId: number;
  name: string;
}
export function encodeRspnId(r: RspnId): Uint8Array {
  const name = encodeSymbolicName(r.name);
  const b = new Uint8Array(4 + name.length);
  putU24(b, 1, r.nportId);
  b.set(name, 4);
  return b;
}
export function decodeRspnId(p: Uint8Array): RspnId {
  requireLength(p, 5, 'RSPN_ID');
  return { nportId: getU24(p, 1), name: decodeSymbolicName(p, 4, 'RSPN_ID') };
}

// ---------------------------------------------------------------------------------------------
// Accept payloads.
// ---------------------------------------------------------------------------------------------

/** Control byte bit 7 marks the last entry of a GID_FT/GPN_FT/GNN_FT/GID_PT list. */
export const LIST_LAST_ENTRY = 0x80;
export const ID_ENTRY_SIZE = 4;
export const NAME_ENTRY_SIZE = 16;

export interface PortIdEntry {
  nportId: number;
}
export interface PortNameEntry {
  nportId: number;
  name: bigint;
}

/** GID_FT / GID_PT accept: 4-byte entries {control, port ID}. */
export function encodeIdList(ids: readonly number[], complete = true): Uint8Array {
  const b = new Uint8Array(ID_ENTRY_SIZE * ids.length);
  ids.forEach((id, i) => {
    putU24(b, i * ID_ENTRY_SIZE + 1, id);
    if (complete && i === ids.length - 1) b[i * ID_ENTRY_SIZE] = LIST_LAST_ENTRY;
  });
  return b;
}
/** Entries up to and including the one marked last; a list without a last mark is returned whole. */
export function decodeIdList(p: Uint8Array): number[] {
  const out: number[] = [];
  for (let o = 0; o + ID_ENTRY_SIZE <= p.length; o += ID_ENTRY_SIZE) {
    out.push(getU24(p, o + 1));
    if (p[o]! & LIST_LAST_ENTRY) break;
  }
  return out;
}

/** GPN_FT / GNN_FT accept: 16-byte entries {control, port ID, reserved(32), name}. */
export function encodeNameList(entries: readonly PortNameEntry[], complete = true): Uint8Array {
  const b = new Uint8Array(NAME_ENTRY_SIZE * entries.length);
  entries.forEach((e, i) => {
    const o = i * NAME_ENTRY_SIZE;
    putU24(b, o + 1, e.nportId);
    putU64(b, o + 8, e.name);
    if (complete && i === entries.length - 1) b[o] = LIST_LAST_ENTRY;
  });
  return b;
}
export function decodeNameList(p: Uint8Array): PortNameEntry[] {
  const out: PortNameEntry[] = [];
  for (let o = 0; o + NAME_ENTRY_SIZE <= p.length; o += NAME_ENTRY_SIZE) {
    out.push({ nportId: getU24(p, o + 1), name: getU64(p, o + 8) });
    if (p[o]! & LIST_LAST_ENTRY) break;
  }
  return out;
}

/** GPN_ID / GNN_ID / GFPN_ID accept: one 8-byte name. */
export function encodeName(name: bigint): Uint8Array {
  const b = new Uint8Array(8);
  putU64(b, 0, name);
  return b;
}
export function decodeName(p: Uint8Array): bigint {
  requireLength(p, 8, 'name');
  return getU64(p, 0);
}

/** GFF_ID accept: 128 bytes, 4 feature bits per FC-4 type; type T at bits (T % 8) * 4 of word T / 8. */
export const FC4_FEATURES_SIZE = 128;
export function encodeFc4Features(features: ReadonlyMap<number, number>): Uint8Array {
  const b = new Uint8Array(FC4_FEATURES_SIZE);
  for (const [type, bits] of features) {
    const word = (type >> 3) * 4;
    putU32(b, word, getU32(b, word) | ((bits & 0xf) << ((type & 7) * 4)));
  }
  return b;
}
export function fc4FeaturesOf(b: Uint8Array, type: number): number {
  requireLength(b, FC4_FEATURES_SIZE, 'FC-4 features');
  return (getU32(b, (type >> 3) * 4) >>> ((type & 7) * 4)) & 0xf;
}

/**
 * GA_NXT accept (FC-GS-7 Table 150), 620 bytes:
 *   0 port type | 1 port ID | 4 port name | 12 symbolic port name (len + 255) | 268 node name |
 *   276 symbolic node name (len + 255) | 532 initial process associator | 540 node IP (16) |
 *   556 class of service (32) | 560 FC-4 TYPEs (32) | 592 port IP (16) | 608 fabric port name |
 *   616 reserved | 617 hard address
 */
export const GA_NXT_SIZE = 620;
export interface PortObject {
  portType: number;
  nportId: number;
  wwpn: bigint;
  symbolicPortName: string;
  wwnn: bigint;
  symbolicNodeName: string;
  classOfService: number;
  fc4Types: number[];
  fabricPortName: bigint;
}
export function encodePortObject(o: PortObject): Uint8Array {
  const b = new Uint8Array(GA_NXT_SIZE);
  b[0] = o.portType;
  putU24(b, 1, o.nportId);
  putU64(b, 4, o.wwpn);
  b.set(encodeSymbolicName(o.symbolicPortName), 12);
  putU64(b, 268, o.wwnn);
  b.set(encodeSymbolicName(o.symbolicNodeName), 276);
  putU32(b, 556, o.classOfService);
  b.set(fc4TypesBitmap(o.fc4Types), 560);
  putU64(b, 608, o.fabricPortName);
  return b;
}
export function decodePortObject(p: Uint8Array): PortObject {
  requireLength(p, GA_NXT_SIZE, 'GA_NXT object');
  return {
    portType: p[0]!,
    nportId: getU24(p, 1),
    wwpn: getU64(p, 4),
    symbolicPortName: decodeSymbolicName(p, 12, 'GA_NXT symbolic port name'),
    wwnn: getU64(p, 268),
    symbolicNodeName: decodeSymbolicName(p, 276, 'GA_NXT symbolic node name'),
    classOfService: getU32(p, 556),
    fc4Types: fc4TypesFromBitmap(p.subarray(560, 592)),
    fabricPortName: getU64(p, 608),
  };
}
/** Class-of-service bitmap: class 3 is bit 3. */
export const CLASS_OF_SERVICE_3 = 1 << 3;
