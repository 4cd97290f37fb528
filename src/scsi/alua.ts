/**
 * REPORT TARGET PORT GROUPS (SPC-4 §6.36): implicit ALUA with one target port group per target
 * port, each active/optimized. Linux's scsi_dh_alua reads this with the extended header.
 */
import { clampToAllocation } from './cdb.js';
import { readU32BE, writeU16BE, writeU32BE } from '../util/bytes.js';
import { targetPortGroupOf, type PortIdentity } from './inquiry.js';
import { invalidFieldInCdb } from './sense.js';

// CDB (MAINTENANCE IN, SA 0Ah): 1 PARAMETER DATA FORMAT(7..5) SERVICE ACTION(4..0) | 6-9 ALLOCATION LENGTH
const CDB_FORMAT = 1;
const FORMAT_LENGTH_ONLY = 0;
const FORMAT_EXTENDED = 1;
const CDB_ALLOCATION_LENGTH = 6;
// Extended header: 0-3 RETURN DATA LENGTH | 4 FORMAT TYPE(6..4)=001b | 5 IMPLICIT TRANSITION TIME | 6-7 reserved
const EXTENDED_HEADER = 8;
const LENGTH_ONLY_HEADER = 4;
const EXTENDED_FORMAT_TYPE = 0x10;
// Target port group descriptor (Table 261): 0 PREF(7) ASYMMETRIC ACCESS STATE(3..0)
//   | 1 T_SUP(7) O_SUP(6) LBD_SUP(4) U_SUP(3) S_SUP(2) AN_SUP(1) AO_SUP(0) | 2-3 TARGET PORT GROUP
//   | 5 STATUS CODE | 7 TARGET PORT COUNT | 8.. target port descriptors (4 bytes: 2-3 RELATIVE TARGET PORT ID)
const GROUP_DESCRIPTOR = 8;
const PORT_DESCRIPTOR = 4;
export const AccessState = { ACTIVE_OPTIMIZED: 0x0 } as const;
const AO_SUP = 0x01;

export function reportTargetPortGroups(cdb: Uint8Array, ports: readonly PortIdentity[]): Uint8Array {
  const format = cdb[CDB_FORMAT]! >> 5;
  if (format !== FORMAT_LENGTH_ONLY && format !== FORMAT_EXTENDED)
    throw invalidFieldInCdb(CDB_FORMAT, 7, `parameter data format ${format} not supported`);
  const header = format === FORMAT_EXTENDED ? EXTENDED_HEADER : LENGTH_ONLY_HEADER;
  const out = new Uint8Array(header + ports.length * (GROUP_DESCRIPTOR + PORT_DESCRIPTOR));
  writeU32BE(out, 0, out.length - 4);
  if (format === FORMAT_EXTENDED) out[4] = EXTENDED_FORMAT_TYPE;
  let off = header;
  for (const p of ports) {
    out[off] = AccessState.ACTIVE_OPTIMIZED;
    out[off + 1] = AO_SUP;
    writeU16BE(out, off + 2, targetPortGroupOf(p));
    out[off + 7] = 1;
    writeU16BE(out, off + GROUP_DESCRIPTOR + 2, p.relativePortId);
    off += GROUP_DESCRIPTOR + PORT_DESCRIPTOR;
  }
  return clampToAllocation(out, readU32BE(cdb, CDB_ALLOCATION_LENGTH));
}
