/**
 * The SAM-5 §4.7 LUN structure as carried in the 8-byte FCP_LUN field, and ALLOCATION LENGTH
 * truncation. CDB and parameter-data fields are big-endian (SPC-4 §3.5); they are read and written
 * with src/util/bytes.ts.
 */

/** Truncate data-in to the CDB's ALLOCATION LENGTH (SPC-4 §4.3.5.6). */
export function clampToAllocation(data: Uint8Array, allocationLength: number): Uint8Array {
  return data.length > allocationLength ? data.subarray(0, allocationLength) : data;
}

// ---- SAM-5 LUN structure ----------------------------------------------------------------------
//   byte 0: ADDRESS METHOD (7..6) | bus identifier / LUN high bits (5..0)
//   byte 1: LUN (low bits)
//   bytes 2..7: second..fourth level addressing (must be zero: single-level LUNs only)
export const LUN_FIELD_LENGTH = 8;
const ADDRESS_METHOD_PERIPHERAL = 0;
const ADDRESS_METHOD_FLAT = 1;
/** Largest LUN the flat space addressing method can carry (14 bits). */
export const MAX_FLAT_LUN = 0x3fff;
const PERIPHERAL_MAX_LUN = 0xff;

/**
 * The REPORT LUNS well-known logical unit (SPC-4 §8.2; W-LUN C101h in the extended logical unit
 * addressing form of SAM-5 §4.7.7): answers INQUIRY, REPORT LUNS, REQUEST SENSE and TEST UNIT
 * READY for the whole target, so an initiator can list LUNs without addressing LUN 0.
 */
export const REPORT_LUNS_WLUN = Uint8Array.of(0xc1, 0x01, 0, 0, 0, 0, 0, 0);

export function isReportLunsWlun(field: Uint8Array): boolean {
  return field.length === LUN_FIELD_LENGTH && REPORT_LUNS_WLUN.every((b, i) => field[i] === b);
}

/** Decode a single-level LUN; null if the structure uses an addressing form this target does not implement. */
export function decodeLun(field: Uint8Array): number | null {
  if (field.length !== LUN_FIELD_LENGTH) return null;
  for (let i = 2; i < LUN_FIELD_LENGTH; i++) if (field[i] !== 0) return null;
  const method = field[0]! >> 6;
  if (method === ADDRESS_METHOD_PERIPHERAL) {
    if ((field[0]! & 0x3f) !== 0) return null; // bus identifier other than 0
    return field[1]!;
  }
  if (method === ADDRESS_METHOD_FLAT) return ((field[0]! & 0x3f) << 8) | field[1]!;
  return null; // logical unit / extended addressing (incl. well-known LUNs): not implemented
}

/** Encode a LUN the way Linux's int_to_scsilun expects: peripheral method below 256, flat above. */
export function encodeLun(lun: number): Uint8Array {
  if (!Number.isInteger(lun) || lun < 0 || lun > MAX_FLAT_LUN)
    throw new RangeError(`LUN ${lun} is outside 0..${MAX_FLAT_LUN}`);
  const out = new Uint8Array(LUN_FIELD_LENGTH);
  if (lun <= PERIPHERAL_MAX_LUN) {
    out[1] = lun;
  } else {
    out[0] = (ADDRESS_METHOD_FLAT << 6) | (lun >> 8);
    out[1] = lun & 0xff;
  }
  return out;
}
