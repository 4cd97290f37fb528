/**
 * Data-path grants: the control messages (src/fc/link.ts "control messages") with which the
 * simulated SAN lets an HBA move READ/WRITE data of one logical unit itself, between the volume's
 * file descriptor and guest memory, while the SAN stays the authority over everything else.
 *
 *   HBA → SAN   REQUEST   (sId, dId, FCP LUN): may this I_T_L nexus use the data path?
 *   SAN → HBA   GRANT     the volume's descriptor (SCM_RIGHTS), block size, block count, rights,
 *                         write-cache setting, generation; or
 *               DENIED    (reason)
 *   SAN → HBA   REVOKE    the SAN needs the frame path again (unit attention, reservation, fault,
 *                         zoning or LUN map change, resize...): the HBA stops starting data-path
 *                         I/O on that grant, waits for what is in flight, then answers
 *   HBA → SAN   RELEASED  (also unprompted, when the HBA drops a grant), with final counters
 *   HBA → SAN   STATS     counters of a live grant, sent in batches
 *
 * Every layout is defined here once; all integers are big-endian. Both ends treat the peer as
 * hostile: a message of the wrong size or an unknown type is refused (decode returns null).
 */
import { CONTROL_WITH_FD } from './link.js';

export const GRANT_MSG = {
  REQUEST: 0x01,
  GRANT: CONTROL_WITH_FD,
  DENIED: 0x03,
  REVOKE: 0x04,
  RELEASED: 0x05,
  STATS: 0x06,
} as const;

/**
 * GRANT flags: the rights, and what makes a write durable on this volume (a file volume: FUA
 * needs fdatasync; with its write cache off, every write does — as the array does it).
 */
export const GRANT_FLAG = { READ: 0x01, WRITE: 0x02, FLUSH_ON_FUA: 0x08, SYNC_WRITES: 0x10 } as const;

/** Why a grant was refused or revoked (for logs and tests; the HBA only falls back to frames). */
export const GRANT_REASON = {
  DISABLED: 1,
  NO_SESSION: 2,
  NO_LUN: 3,
  UNIT_ATTENTION: 4,
  RESERVATION: 5,
  FAULTS: 6,
  CAPTURE: 7,
  STATE_CHANGED: 8,
  NOT_ZONED: 9,
  STOPPED: 10,
  LINK: 11,
  TOO_MANY: 12,
} as const;

export interface GrantRequest {
  type: typeof GRANT_MSG.REQUEST;
  requestId: number;
  sId: number;
  dId: number;
  lun: Uint8Array;
}
export interface Grant {
  type: typeof GRANT_MSG.GRANT;
  requestId: number;
  grantId: number;
  generation: number;
  flags: number;
  blockSize: number;
  blockCount: number;
  /** Largest transfer the data path may serve (the array's limit); larger ones go as frames. */
  maxBytes: number;
}
export interface GrantDenied {
  type: typeof GRANT_MSG.DENIED;
  requestId: number;
  reason: number;
}
export interface GrantRevoke {
  type: typeof GRANT_MSG.REVOKE;
  grantId: number;
  reason: number;
}
export interface GrantCounters {
  reads: number;
  writes: number;
  readBytes: number;
  writeBytes: number;
}
export interface GrantReport extends GrantCounters {
  type: typeof GRANT_MSG.RELEASED | typeof GRANT_MSG.STATS;
  grantId: number;
}
export type GrantMessage = GrantRequest | Grant | GrantDenied | GrantRevoke | GrantReport;

// REQUEST: 0 type | 1-3 reserved | 4 requestId u32 | 8 sId u32 (24-bit) | 12 dId u32 | 16 LUN[8]
const REQUEST_SIZE = 24;
// GRANT: 0 type | 1 flags | 2-3 reserved | 4 requestId | 8 grantId | 12 generation | 16 blockSize | 20 maxBytes | 24 blockCount u64
const GRANT_SIZE = 32;
// DENIED: 0 type | 1 reason | 2-3 reserved | 4 requestId
// REVOKE: 0 type | 1 reason | 2-3 reserved | 4 grantId
const SHORT_SIZE = 8;
// RELEASED/STATS: 0 type | 1-3 reserved | 4 grantId | 8 reads u32 | 12 writes u32 | 16 readBytes f64 | 24 writeBytes f64
const REPORT_SIZE = 32;

/** Largest block count a grant may carry: byte offsets must stay exact in a double. */
const MAX_BLOCK_COUNT = Math.floor(Number.MAX_SAFE_INTEGER / 4096);

export function encodeGrantMessage(m: GrantMessage): Uint8Array {
  let out: Uint8Array;
  switch (m.type) {
    case GRANT_MSG.REQUEST: {
      out = new Uint8Array(REQUEST_SIZE);
      const dv = new DataView(out.buffer);
      dv.setUint32(4, m.requestId);
      dv.setUint32(8, m.sId & 0xffffff);
      dv.setUint32(12, m.dId & 0xffffff);
      out.set(m.lun.subarray(0, 8), 16);
      break;
    }
    case GRANT_MSG.GRANT: {
      out = new Uint8Array(GRANT_SIZE);
      const dv = new DataView(out.buffer);
      out[1] = m.flags;
      dv.setUint32(4, m.requestId);
      dv.setUint32(8, m.grantId);
      dv.setUint32(12, m.generation);
      dv.setUint32(16, m.blockSize);
      dv.setUint32(20, m.maxBytes);
      dv.setBigUint64(24, BigInt(m.blockCount));
      break;
    }
    case GRANT_MSG.DENIED:
    case GRANT_MSG.REVOKE: {
      out = new Uint8Array(SHORT_SIZE);
      out[1] = m.reason;
      new DataView(out.buffer).setUint32(4, m.type === GRANT_MSG.DENIED ? m.requestId : m.grantId);
      break;
    }
    case GRANT_MSG.RELEASED:
    case GRANT_MSG.STATS: {
      out = new Uint8Array(REPORT_SIZE);
      const dv = new DataView(out.buffer);
      dv.setUint32(4, m.grantId);
      dv.setUint32(8, Math.min(m.reads, 0xffffffff));
      dv.setUint32(12, Math.min(m.writes, 0xffffffff));
      dv.setFloat64(16, m.readBytes);
      dv.setFloat64(24, m.writeBytes);
      break;
    }
  }
  out[0] = m.type;
  return out;
}

/** Decodes a control message; null when it is not a well-formed grant message. */
export function decodeGrantMessage(b: Uint8Array): GrantMessage | null {
  if (b.length < SHORT_SIZE) return null;
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  switch (b[0]) {
    case GRANT_MSG.REQUEST:
      if (b.length !== REQUEST_SIZE) return null;
      return {
        type: GRANT_MSG.REQUEST,
        requestId: dv.getUint32(4),
        sId: dv.getUint32(8) & 0xffffff,
        dId: dv.getUint32(12) & 0xffffff,
        lun: b.slice(16, 24),
      };
    case GRANT_MSG.GRANT: {
      if (b.length !== GRANT_SIZE) return null;
      const blockCount = dv.getBigUint64(24);
      const blockSize = dv.getUint32(16);
      if (blockCount > BigInt(MAX_BLOCK_COUNT) || (blockSize !== 512 && blockSize !== 4096)) return null;
      return {
        type: GRANT_MSG.GRANT,
        flags: b[1]!,
        requestId: dv.getUint32(4),
        grantId: dv.getUint32(8),
        generation: dv.getUint32(12),
        blockSize,
        maxBytes: dv.getUint32(20),
        blockCount: Number(blockCount),
      };
    }
    case GRANT_MSG.DENIED:
      if (b.length !== SHORT_SIZE) return null;
      return { type: GRANT_MSG.DENIED, reason: b[1]!, requestId: dv.getUint32(4) };
    case GRANT_MSG.REVOKE:
      if (b.length !== SHORT_SIZE) return null;
      return { type: GRANT_MSG.REVOKE, reason: b[1]!, grantId: dv.getUint32(4) };
    case GRANT_MSG.RELEASED:
    case GRANT_MSG.STATS: {
      if (b.length !== REPORT_SIZE) return null;
      const readBytes = dv.getFloat64(16);
      const writeBytes = dv.getFloat64(24);
      if (!validCount(readBytes) || !validCount(writeBytes)) return null;
      return {
        type: b[0] as typeof GRANT_MSG.RELEASED | typeof GRANT_MSG.STATS,
        grantId: dv.getUint32(4),
        reads: dv.getUint32(8),
        writes: dv.getUint32(12),
        readBytes,
        writeBytes,
      };
    }
    default:
      return null;
  }
}

function validCount(n: number): boolean {
  return Number.isSafeInteger(n) && n >= 0;
}
