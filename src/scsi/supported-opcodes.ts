/**
 * REPORT SUPPORTED OPERATION CODES (SPC-4 §6.35), built from the device server's command table.
 * Linux's sd asks it whether WRITE SAME(10/16) are supported (scsi_report_opcode).
 * Command timeouts descriptors (RCTD) are not implemented.
 */
import { clampToAllocation } from './cdb.js';
import { readU16BE, readU32BE, writeU16BE, writeU32BE } from '../util/bytes.js';
import { invalidFieldInCdb } from './sense.js';

export interface OperationDescriptor {
  opcode: number;
  serviceAction: number | null;
  /** CDB USAGE DATA: the CDB with every bit the device server looks at set (byte 0 is the opcode). */
  usage: Uint8Array;
}

// CDB: 2 RCTD(7) REPORTING OPTIONS(2..0) | 3 REQUESTED OPERATION CODE | 4-5 REQUESTED SERVICE ACTION | 6-9 ALLOCATION LENGTH
const CDB_OPTIONS = 2;
const RCTD = 0x80;
const ReportingOptions = { ALL: 0, OPCODE: 1, OPCODE_AND_SA: 2, OPCODE_MAYBE_SA: 3 } as const;
// All-commands descriptor: 0 OPCODE | 2-3 SERVICE ACTION | 5 CTDP(1) SERVACTV(0) | 6-7 CDB LENGTH
const ALL_DESCRIPTOR = 8;
const SERVACTV = 0x01;
// One-command data: 1 CTDP(7) SUPPORT(2..0) | 2-3 CDB SIZE | 4.. CDB USAGE DATA
const SUPPORT_NOT_SUPPORTED = 0x1;
const SUPPORT_STANDARD = 0x3;

export function reportSupportedOperationCodes(cdb: Uint8Array, ops: readonly OperationDescriptor[]): Uint8Array {
  if (cdb[CDB_OPTIONS]! & RCTD)
    throw invalidFieldInCdb(CDB_OPTIONS, 7, 'command timeouts descriptors are not supported');
  const options = cdb[CDB_OPTIONS]! & 0x07;
  const opcode = cdb[3]!;
  const sa = readU16BE(cdb, 4);
  const alloc = readU32BE(cdb, 6);
  if (options === ReportingOptions.ALL) {
    const out = new Uint8Array(4 + ALL_DESCRIPTOR * ops.length);
    writeU32BE(out, 0, ALL_DESCRIPTOR * ops.length);
    ops.forEach((op, i) => {
      const d = 4 + ALL_DESCRIPTOR * i;
      out[d] = op.opcode;
      if (op.serviceAction !== null) {
        writeU16BE(out, d + 2, op.serviceAction);
        out[d + 5] = SERVACTV;
      }
      writeU16BE(out, d + 6, op.usage.length);
    });
    return clampToAllocation(out, alloc);
  }
  if (options > ReportingOptions.OPCODE_MAYBE_SA)
    throw invalidFieldInCdb(CDB_OPTIONS, 2, `reporting options ${options} not supported`);
  const hasServiceActions = ops.some((o) => o.opcode === opcode && o.serviceAction !== null);
  if (options === ReportingOptions.OPCODE && hasServiceActions) {
    throw invalidFieldInCdb(3, 7, `opcode 0x${opcode.toString(16)} has service actions`);
  }
  const anyOpcode = ops.some((o) => o.opcode === opcode);
  if (options === ReportingOptions.OPCODE_AND_SA && anyOpcode && !hasServiceActions) {
    throw invalidFieldInCdb(3, 7, `opcode 0x${opcode.toString(16)} has no service actions`);
  }
  const found = ops.find((o) => o.opcode === opcode && (hasServiceActions ? o.serviceAction === sa : true));
  if (!found) {
    const out = new Uint8Array(4);
    out[1] = SUPPORT_NOT_SUPPORTED;
    return clampToAllocation(out, alloc);
  }
  const out = new Uint8Array(4 + found.usage.length);
  out[1] = SUPPORT_STANDARD;
  writeU16BE(out, 2, found.usage.length);
  out.set(found.usage, 4);
  return clampToAllocation(out, alloc);
}
