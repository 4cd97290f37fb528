/**
 * Fixed-format sense data (SPC-4 §4.5.3) and the error type command handlers throw.
 *
 *   byte  0   VALID(7) | RESPONSE CODE (70h = current error)
 *   byte  2   FILEMARK | EOM | ILI | SENSE KEY (3..0)
 *   bytes 3-6 INFORMATION
 *   byte  7   ADDITIONAL SENSE LENGTH (= total - 8)
 *   bytes 8-11 COMMAND-SPECIFIC INFORMATION
 *   byte 12   ADDITIONAL SENSE CODE      byte 13  ADDITIONAL SENSE CODE QUALIFIER
 *   byte 14   FIELD REPLACEABLE UNIT CODE
 *   byte 15   SKSV(7) | C/D(6) | BPV(3) | BIT POINTER(2..0)   -- sense-key specific, field pointer form
 *   bytes 16-17 FIELD POINTER (byte offset into the CDB or parameter list)
 */
import { Asc, SenseKey, type AdditionalSense } from './constants.js';
import { Status } from './sam.js';
import { readU16BE, readU32BE, writeU16BE, writeU32BE } from '../util/bytes.js';

export const FIXED_SENSE_LENGTH = 18;
const SENSE_RESPONSE_CODE_CURRENT = 0x70;
const SENSE_VALID = 0x80;
const OFF_SENSE_KEY = 2;
const OFF_INFORMATION = 3;
const OFF_ADDITIONAL_LENGTH = 7;
const OFF_ASC = 12;
const OFF_ASCQ = 13;
const OFF_SKS = 15;
const OFF_FIELD_POINTER = 16;
const SKSV = 0x80;
const SKS_CD_CDB = 0x40;
const SKS_BPV = 0x08;

/** Where in the CDB (or parameter list) the offending field is. */
export interface FieldPointer {
  /** true: the pointer is into the CDB; false: into the parameter list (data-out). */
  inCdb: boolean;
  byte: number;
  /** Most significant bit of the offending field within the byte, when known. */
  bit?: number;
}

export interface SenseData {
  key: number;
  sense: AdditionalSense;
  field?: FieldPointer;
  /** INFORMATION field (sets VALID), e.g. the offset of the first miscompare. */
  information?: number;
}

export function buildFixedSense(s: SenseData): Uint8Array {
  const out = new Uint8Array(FIXED_SENSE_LENGTH);
  out[0] = SENSE_RESPONSE_CODE_CURRENT;
  if (s.information !== undefined) {
    out[0] |= SENSE_VALID;
    writeU32BE(out, OFF_INFORMATION, s.information >>> 0);
  }
  out[OFF_SENSE_KEY] = s.key & 0x0f;
  out[OFF_ADDITIONAL_LENGTH] = FIXED_SENSE_LENGTH - (OFF_ADDITIONAL_LENGTH + 1);
  out[OFF_ASC] = s.sense.asc;
  out[OFF_ASCQ] = s.sense.ascq;
  if (s.field) {
    let b = SKSV;
    if (s.field.inCdb) b |= SKS_CD_CDB;
    if (s.field.bit !== undefined) b |= SKS_BPV | (s.field.bit & 0x07);
    out[OFF_SKS] = b;
    writeU16BE(out, OFF_FIELD_POINTER, s.field.byte);
  }
  return out;
}

/** Decoded view of fixed sense, for tests and logs. */
export function parseFixedSense(b: Uint8Array): SenseData {
  if (b.length < FIXED_SENSE_LENGTH || (b[0]! & 0x7f) !== SENSE_RESPONSE_CODE_CURRENT) {
    throw new Error('not current fixed-format sense data');
  }
  const data: SenseData = { key: b[OFF_SENSE_KEY]! & 0x0f, sense: { asc: b[OFF_ASC]!, ascq: b[OFF_ASCQ]! } };
  const sks = b[OFF_SKS]!;
  if (b[0]! & SENSE_VALID) data.information = readU32BE(b, OFF_INFORMATION);
  if (sks & SKSV) {
    data.field = { inCdb: (sks & SKS_CD_CDB) !== 0, byte: readU16BE(b, OFF_FIELD_POINTER) };
    if (sks & SKS_BPV) data.field.bit = sks & 0x07;
  }
  return data;
}

/** A command ends with a status other than GOOD. Thrown by handlers, turned into a ScsiResponse by the dispatcher. */
export class CommandError extends Error {
  constructor(
    readonly status: number,
    readonly senseData: SenseData | null,
    message: string,
  ) {
    super(message);
    this.name = 'CommandError';
  }
}

export function checkCondition(
  key: number,
  sense: AdditionalSense,
  message: string,
  field?: FieldPointer,
): CommandError {
  return new CommandError(Status.CHECK_CONDITION, field ? { key, sense, field } : { key, sense }, message);
}

export function invalidFieldInCdb(byte: number, bit: number | undefined, message: string): CommandError {
  return checkCondition(
    SenseKey.ILLEGAL_REQUEST,
    Asc.INVALID_FIELD_IN_CDB,
    message,
    bit === undefined ? { inCdb: true, byte } : { inCdb: true, byte, bit },
  );
}

export function invalidFieldInParameterList(byte: number, bit: number | undefined, message: string): CommandError {
  return checkCondition(
    SenseKey.ILLEGAL_REQUEST,
    Asc.INVALID_FIELD_IN_PARAMETER_LIST,
    message,
    bit === undefined ? { inCdb: false, byte } : { inCdb: false, byte, bit },
  );
}

export function parameterListLengthError(message: string): CommandError {
  return checkCondition(SenseKey.ILLEGAL_REQUEST, Asc.PARAMETER_LIST_LENGTH_ERROR, message);
}

export function lbaOutOfRange(message: string): CommandError {
  return checkCondition(SenseKey.ILLEGAL_REQUEST, Asc.LBA_OUT_OF_RANGE, message);
}

export function invalidOpcode(opcode: number, byte = 0): CommandError {
  return checkCondition(
    SenseKey.ILLEGAL_REQUEST,
    Asc.INVALID_COMMAND_OPERATION_CODE,
    `unsupported operation code 0x${opcode.toString(16).padStart(2, '0')}`,
    { inCdb: true, byte },
  );
}

export function reservationConflict(message: string): CommandError {
  return new CommandError(Status.RESERVATION_CONFLICT, null, message);
}
