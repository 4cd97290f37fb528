/**
 * MODE SENSE(6) / MODE SENSE(10) (SPC-4 §6.11, §6.12) with the pages a Linux disk asks for:
 * 01h read-write error recovery, 08h caching (SBC-3 §6.4.5), 0Ah control (SPC-4 §7.5.8), 3Fh all.
 * Nothing is changeable (MODE SELECT is not implemented), so the changeable-values mask is zero.
 */
import { be16, clampToAllocation, put16, put32, put64 } from './cdb.js';
import { Asc, Opcode, SenseKey } from './constants.js';
import { checkCondition, invalidFieldInCdb } from './sense.js';
import type { BlockDevice } from './block-device.js';

// MODE SENSE CDB: 1 LLBAA(4, 10-byte only) DBD(3) | 2 PC(7..6) PAGE CODE(5..0) | 3 SUBPAGE CODE
//   | 4 ALLOCATION LENGTH (6-byte) or 7-8 ALLOCATION LENGTH (10-byte)
const CDB_FLAGS = 1;
const LLBAA = 0x10;
const DBD = 0x08;
const CDB_PAGE = 2;
const CDB_SUBPAGE = 3;

const PageControl = { CURRENT: 0, CHANGEABLE: 1, DEFAULT: 2, SAVED: 3 } as const;
export const ModePage = { READ_WRITE_ERROR_RECOVERY: 0x01, CACHING: 0x08, CONTROL: 0x0a, ALL: 0x3f } as const;
const ALL_SUBPAGES = 0xff;

// Device-specific parameter for direct-access devices (SBC-3 §6.4.1): WP(7) DPOFUA(4).
const DEVICE_SPECIFIC_DPOFUA = 0x10;

/** Each page: byte 0 PS(7) SPF(6) PAGE CODE(5..0), byte 1 PAGE LENGTH, then parameters. */
function page(code: number, length: number, fill?: (p: Uint8Array) => void): Uint8Array {
  const p = new Uint8Array(2 + length);
  p[0] = code;
  p[1] = length;
  fill?.(p);
  return p;
}

function buildPage(code: number, dev: BlockDevice, changeable: boolean): Uint8Array {
  switch (code) {
    case ModePage.READ_WRITE_ERROR_RECOVERY:
      return page(code, 0x0a);
    case ModePage.CACHING:
      // byte 2: WCE(2) RCD(0) — the write cache is the host page cache; reads are cached too.
      return page(code, 0x12, (p) => { if (!changeable && dev.writeCache) p[2] = 0x04; });
    case ModePage.CONTROL:
      // byte 2: TST=000b (one task set) D_SENSE=0 (fixed sense); byte 3: QUEUE ALGORITHM MODIFIER=1 (unrestricted);
      // byte 5: TAS(6)=1 — aborted tasks of other nexuses end with TASK ABORTED status; 8-9 BUSY TIMEOUT PERIOD (unlimited).
      return page(code, 0x0a, (p) => {
        if (changeable) return;
        p[3] = 0x10;
        p[5] = 0x40;
        put16(p, 8, 0xffff);
      });
    default:
      throw new Error(`mode page ${code} not built`);
  }
}

const ALL_PAGES = [ModePage.READ_WRITE_ERROR_RECOVERY, ModePage.CACHING, ModePage.CONTROL];

export function modeSense(cdb: Uint8Array, dev: BlockDevice): Uint8Array {
  const ten = cdb[0] === Opcode.MODE_SENSE_10;
  const flags = cdb[CDB_FLAGS]!;
  const pc = cdb[CDB_PAGE]! >> 6;
  const code = cdb[CDB_PAGE]! & 0x3f;
  const subpage = cdb[CDB_SUBPAGE]!;
  const alloc = ten ? be16(cdb, 7) : cdb[4]!;
  if (pc === PageControl.SAVED) {
    throw checkCondition(SenseKey.ILLEGAL_REQUEST, Asc.SAVING_PARAMETERS_NOT_SUPPORTED, 'saved mode parameters not supported');
  }
  let codes: number[];
  if (code === ModePage.ALL) {
    if (subpage !== 0 && subpage !== ALL_SUBPAGES) throw invalidFieldInCdb(CDB_SUBPAGE, 7, `subpage 0x${subpage.toString(16)} of all pages`);
    codes = ALL_PAGES;
  } else {
    if (!(ALL_PAGES as number[]).includes(code)) throw invalidFieldInCdb(CDB_PAGE, 5, `mode page 0x${code.toString(16)} not supported`);
    if (subpage !== 0) throw invalidFieldInCdb(CDB_SUBPAGE, 7, `mode subpage 0x${subpage.toString(16)} not supported`);
    codes = [code];
  }
  const pages = codes.map((c) => buildPage(c, dev, pc === PageControl.CHANGEABLE));

  // Block descriptor (SPC-4 §7.5.5): short = 0-3 NUMBER OF LOGICAL BLOCKS, 5-7 LOGICAL BLOCK LENGTH;
  // long (LLBAA, 10-byte CDB only) = 0-7 NUMBER OF LOGICAL BLOCKS, 12-15 LOGICAL BLOCK LENGTH.
  const longLba = ten && (flags & LLBAA) !== 0;
  let descriptor = new Uint8Array(0);
  if (!(flags & DBD)) {
    if (longLba) {
      descriptor = new Uint8Array(16);
      put64(descriptor, 0, BigInt(dev.blockCount));
      put32(descriptor, 12, dev.blockSize);
    } else {
      descriptor = new Uint8Array(8);
      put32(descriptor, 0, Math.min(dev.blockCount, 0xffffffff));
      descriptor[5] = (dev.blockSize >> 16) & 0xff;
      put16(descriptor, 6, dev.blockSize & 0xffff);
    }
  }
  // Header: (6) 0 MODE DATA LENGTH | 1 MEDIUM TYPE | 2 DEVICE-SPECIFIC | 3 BLOCK DESCRIPTOR LENGTH
  //         (10) 0-1 MODE DATA LENGTH | 2 MEDIUM TYPE | 3 DEVICE-SPECIFIC | 4 LONGLBA(0) | 6-7 BLOCK DESCRIPTOR LENGTH
  const headerLength = ten ? 8 : 4;
  const total = headerLength + descriptor.length + pages.reduce((n, p) => n + p.length, 0);
  const out = new Uint8Array(total);
  if (ten) {
    put16(out, 0, total - 2);
    out[3] = DEVICE_SPECIFIC_DPOFUA;
    out[4] = longLba && descriptor.length ? 0x01 : 0;
    put16(out, 6, descriptor.length);
  } else {
    out[0] = total - 1;
    out[2] = DEVICE_SPECIFIC_DPOFUA;
    out[3] = descriptor.length;
  }
  out.set(descriptor, headerLength);
  let off = headerLength + descriptor.length;
  for (const p of pages) { out.set(p, off); off += p.length; }
  return clampToAllocation(out, alloc);
}
