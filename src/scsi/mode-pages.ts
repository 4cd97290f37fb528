/**
 * MODE SENSE(6/10) and MODE SELECT(6/10) (SPC-4 §6.9-§6.12) with the pages a Linux disk uses:
 * 01h read-write error recovery, 08h caching (SBC-3 §6.4.5), 0Ah control (SPC-4 §7.5.8), 3Fh all.
 * The one changeable parameter is WCE in the caching page (what sd's cache_type attribute sets).
 * Volumes that keep state (file-backed) have saved values: the caching page reports PS=1, so sd
 * sends its cache_type change with SP=1 and it survives a restart of the array; MODE SELECT with
 * SP=0 changes the current value only, which a restart resets to the saved one (as on a disk).
 * Volumes in memory keep nothing: PS=0, and SP=1 or saved values are refused.
 */
import { clampToAllocation } from './cdb.js';
import {
  readU16BE,
  readU24BE,
  readU32BE,
  readU64BE,
  writeU16BE,
  writeU24BE,
  writeU32BE,
  writeU64BE,
} from '../util/bytes.js';
import { Asc, Opcode, SenseKey } from './constants.js';
import { checkCondition, invalidFieldInCdb, invalidFieldInParameterList, parameterListLengthError } from './sense.js';
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
const PAGE_PS = 0x80;

/** Caching page byte 2: WCE(2) RCD(0) — the write cache is the host page cache; reads are cached too. */
const CACHING_FLAGS = 2;
const CACHING_WCE = 0x04;
/** The write cache is on unless an initiator turns it off. */
const DEFAULT_WCE = true;

type PageValues = 'current' | 'changeable' | 'default' | 'saved';

function buildPage(code: number, dev: BlockDevice, values: PageValues): Uint8Array {
  const changeable = values === 'changeable';
  switch (code) {
    case ModePage.READ_WRITE_ERROR_RECOVERY:
      return page(code, 0x0a);
    case ModePage.CACHING:
      return page(code, 0x12, (p) => {
        if (dev.savesModePages) p[0] = p[0]! | PAGE_PS;
        const wce = { current: dev.writeCache, changeable: true, default: DEFAULT_WCE, saved: dev.savedWriteCache }[
          values
        ];
        if (wce) p[CACHING_FLAGS] = CACHING_WCE;
      });
    case ModePage.CONTROL:
      // byte 2: TST=000b (one task set) D_SENSE=0 (fixed sense); byte 3: QUEUE ALGORITHM MODIFIER=1 (unrestricted);
      // byte 5: TAS(6)=1 — aborted tasks of other nexuses end with TASK ABORTED status; 8-9 BUSY TIMEOUT PERIOD (unlimited).
      return page(code, 0x0a, (p) => {
        if (changeable) return;
        p[3] = 0x10;
        p[5] = 0x40;
        writeU16BE(p, 8, 0xffff);
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
  const alloc = ten ? readU16BE(cdb, 7) : cdb[4]!;
  if (pc === PageControl.SAVED && !dev.savesModePages) {
    throw checkCondition(
      SenseKey.ILLEGAL_REQUEST,
      Asc.SAVING_PARAMETERS_NOT_SUPPORTED,
      'saved mode parameters not supported (the volume is in memory)',
    );
  }
  let codes: number[];
  if (code === ModePage.ALL) {
    if (subpage !== 0 && subpage !== ALL_SUBPAGES)
      throw invalidFieldInCdb(CDB_SUBPAGE, 7, `subpage 0x${subpage.toString(16)} of all pages`);
    codes = ALL_PAGES;
  } else {
    if (!(ALL_PAGES as number[]).includes(code))
      throw invalidFieldInCdb(CDB_PAGE, 5, `mode page 0x${code.toString(16)} not supported`);
    if (subpage !== 0) throw invalidFieldInCdb(CDB_SUBPAGE, 7, `mode subpage 0x${subpage.toString(16)} not supported`);
    codes = [code];
  }
  const values: PageValues = (['current', 'changeable', 'default', 'saved'] as const)[pc]!;
  const pages = codes.map((c) => buildPage(c, dev, values));

  // Block descriptor (SPC-4 §7.5.5): short = 0-3 NUMBER OF LOGICAL BLOCKS, 5-7 LOGICAL BLOCK LENGTH;
  // long (LLBAA, 10-byte CDB only) = 0-7 NUMBER OF LOGICAL BLOCKS, 12-15 LOGICAL BLOCK LENGTH.
  const longLba = ten && (flags & LLBAA) !== 0;
  let descriptor = new Uint8Array(0);
  if (!(flags & DBD)) {
    if (longLba) {
      descriptor = new Uint8Array(16);
      writeU64BE(descriptor, 0, BigInt(dev.blockCount));
      writeU32BE(descriptor, 12, dev.blockSize);
    } else {
      descriptor = new Uint8Array(8);
      writeU32BE(descriptor, 0, Math.min(dev.blockCount, 0xffffffff));
      writeU24BE(descriptor, 5, dev.blockSize);
    }
  }
  // Header: (6) 0 MODE DATA LENGTH | 1 MEDIUM TYPE | 2 DEVICE-SPECIFIC | 3 BLOCK DESCRIPTOR LENGTH
  //         (10) 0-1 MODE DATA LENGTH | 2 MEDIUM TYPE | 3 DEVICE-SPECIFIC | 4 LONGLBA(0) | 6-7 BLOCK DESCRIPTOR LENGTH
  const headerLength = ten ? 8 : 4;
  const total = headerLength + descriptor.length + pages.reduce((n, p) => n + p.length, 0);
  const out = new Uint8Array(total);
  if (ten) {
    writeU16BE(out, 0, total - 2);
    out[3] = DEVICE_SPECIFIC_DPOFUA;
    out[4] = longLba && descriptor.length ? 0x01 : 0;
    writeU16BE(out, 6, descriptor.length);
  } else {
    out[0] = total - 1;
    out[2] = DEVICE_SPECIFIC_DPOFUA;
    out[3] = descriptor.length;
  }
  out.set(descriptor, headerLength);
  let off = headerLength + descriptor.length;
  for (const p of pages) {
    out.set(p, off);
    off += p.length;
  }
  return clampToAllocation(out, alloc);
}

// MODE SELECT CDB: 1 PF(4) SP(0) | 4 PARAMETER LIST LENGTH (6-byte) or 7-8 (10-byte).
const SELECT_PF = 0x10;
const SELECT_SP = 0x01;
const PAGE_SPF = 0x40;
/** Bound on pages in one MODE SELECT parameter list (it is at most 64 KiB anyway). */
const MAX_SELECT_PAGES = 64;

export interface ModeSelectResult {
  /** Whether any current value changed (others are told MODE PARAMETERS CHANGED). */ changed: boolean;
}

/**
 * Applies a MODE SELECT parameter list. Every page must have its full length and differ from the
 * current values only in changeable bits; the block descriptor, if present, must describe the
 * volume as it is. Nothing is applied unless the whole list is valid.
 */
export async function modeSelect(
  cdb: Uint8Array,
  data: Uint8Array | null,
  dev: BlockDevice,
): Promise<ModeSelectResult> {
  const ten = cdb[0] === Opcode.MODE_SELECT_10;
  const flags = cdb[CDB_FLAGS]!;
  const length = ten ? readU16BE(cdb, 7) : cdb[4]!;
  if (!(flags & SELECT_PF))
    throw invalidFieldInCdb(CDB_FLAGS, 4, 'only page-format mode parameters are supported (PF=1)');
  const save = (flags & SELECT_SP) !== 0;
  if (save && !dev.savesModePages)
    throw invalidFieldInCdb(CDB_FLAGS, 0, 'saving mode pages is not supported (the volume is in memory)');
  if (length === 0) return { changed: false };
  if (!data || data.length < length)
    throw parameterListLengthError('MODE SELECT data shorter than the parameter list length');
  const list = data.subarray(0, length);
  const headerLength = ten ? 8 : 4;
  if (list.length < headerLength) throw parameterListLengthError('MODE SELECT parameter list shorter than its header');
  const longLba = ten && (list[4]! & 0x01) !== 0;
  const descriptorLength = ten ? readU16BE(list, 6) : list[3]!;
  const expectedDescriptor = longLba ? 16 : 8;
  if (descriptorLength !== 0 && descriptorLength !== expectedDescriptor) {
    throw invalidFieldInParameterList(ten ? 6 : 3, 7, `block descriptor length ${descriptorLength}`);
  }
  if (headerLength + descriptorLength > list.length)
    throw parameterListLengthError('block descriptor runs past the parameter list');
  if (descriptorLength) {
    const d = headerLength;
    const blocks = longLba ? readU64BE(list, d) : BigInt(readU32BE(list, d));
    const blockLength = longLba ? readU32BE(list, d + 12) : readU24BE(list, d + 5);
    const shortMax = BigInt(Math.min(dev.blockCount, 0xffffffff));
    if (blocks !== 0n && blocks !== (longLba ? BigInt(dev.blockCount) : shortMax)) {
      throw invalidFieldInParameterList(d, 7, 'changing the number of blocks is not supported');
    }
    if (blockLength !== dev.blockSize)
      throw invalidFieldInParameterList(d + (longLba ? 12 : 5), 7, 'changing the block length is not supported');
  }
  let wce: boolean | null = null;
  let off = headerLength + descriptorLength;
  for (let n = 0; off < list.length; n++) {
    if (n >= MAX_SELECT_PAGES) throw invalidFieldInParameterList(off, 7, 'too many mode pages');
    if (off + 2 > list.length) throw parameterListLengthError('mode page header runs past the parameter list');
    const code = list[off]! & 0x3f;
    if (list[off]! & PAGE_SPF) throw invalidFieldInParameterList(off, 6, 'mode subpages are not supported');
    if (!(ALL_PAGES as number[]).includes(code))
      throw invalidFieldInParameterList(off, 5, `mode page 0x${code.toString(16)} not supported`);
    const current = buildPage(code, dev, 'current');
    const mask = buildPage(code, dev, 'changeable');
    if (list[off + 1] !== current[1])
      throw invalidFieldInParameterList(off + 1, 7, `mode page 0x${code.toString(16)} length ${list[off + 1]!}`);
    if (off + current.length > list.length)
      throw parameterListLengthError(`mode page 0x${code.toString(16)} runs past the parameter list`);
    const sent = list.subarray(off, off + current.length);
    // Byte 0's PS bit is reserved in MODE SELECT data and ignored; parameters start at byte 2.
    for (let i = 2; i < current.length; i++) {
      if (((sent[i]! ^ current[i]!) & ~mask[i]!) !== 0) {
        throw invalidFieldInParameterList(off + i, 7, `mode page 0x${code.toString(16)} byte ${i} is not changeable`);
      }
    }
    if (code === ModePage.CACHING) wce = (sent[CACHING_FLAGS]! & CACHING_WCE) !== 0;
    off += current.length;
  }
  if (wce === null) return { changed: false };
  const changed = wce !== dev.writeCache;
  // With SP=1 the value is saved even when the current one already matches (an earlier SP=0 change).
  if (changed || (save && wce !== dev.savedWriteCache)) await dev.setWriteCache(wce, save);
  return { changed };
}
