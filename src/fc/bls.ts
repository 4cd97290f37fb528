/**
 * Basic Link Services (FC-FS-3 §15): ABTS (no payload) and its replies BA_ACC / BA_RJT.
 *
 * BA_ACC, 12 bytes: 0 SEQ_ID validity (0x80 valid, 0 invalid) | 1 SEQ_ID of the last deliverable
 *   sequence | 2 reserved (16) | 4 OX_ID | 6 RX_ID | 8 low SEQ_CNT | 10 high SEQ_CNT
 * BA_RJT, 4 bytes: 0 reserved | 1 reason code | 2 reason explanation | 3 vendor unique
 */
import { getU16, putU16, requireLength } from './bytes.js';

export const BA_ACC_SIZE = 12;
export const BA_RJT_SIZE = 4;
export const BA_SEQ_ID_VALID = 0x80;

export const BA_RJT_REASON = {
  INVALID_COMMAND: 0x01,
  LOGICAL_ERROR: 0x03,
  LOGICAL_BUSY: 0x05,
  PROTOCOL_ERROR: 0x07,
  UNABLE_TO_PERFORM: 0x09,
} as const;
export const BA_RJT_EXPLANATION = { NONE: 0x00, INVALID_OX_ID_RX_ID: 0x03, SEQUENCE_ABORTED: 0x05 } as const;

export interface BaAcc {
  seqIdValid: boolean;
  seqId: number;
  oxId: number;
  rxId: number;
  lowSeqCnt: number;
  highSeqCnt: number;
}
export function encodeBaAcc(a: BaAcc): Uint8Array {
  const b = new Uint8Array(BA_ACC_SIZE);
  b[0] = a.seqIdValid ? BA_SEQ_ID_VALID : 0;
  b[1] = a.seqId;
  putU16(b, 4, a.oxId);
  putU16(b, 6, a.rxId);
  putU16(b, 8, a.lowSeqCnt);
  putU16(b, 10, a.highSeqCnt);
  return b;
}
export function decodeBaAcc(p: Uint8Array): BaAcc {
  requireLength(p, BA_ACC_SIZE, 'BA_ACC');
  return {
    seqIdValid: (p[0]! & BA_SEQ_ID_VALID) !== 0,
    seqId: p[1]!,
    oxId: getU16(p, 4),
    rxId: getU16(p, 6),
    lowSeqCnt: getU16(p, 8),
    highSeqCnt: getU16(p, 10),
  };
}

export interface BaRjt {
  reason: number;
  explanation: number;
  vendor: number;
}
export function encodeBaRjt(r: BaRjt): Uint8Array {
  return Uint8Array.of(0, r.reason, r.explanation, r.vendor);
}
export function decodeBaRjt(p: Uint8Array): BaRjt {
  requireLength(p, BA_RJT_SIZE, 'BA_RJT');
  return { reason: p[1]!, explanation: p[2]!, vendor: p[3]! };
}
