/**
 * SBC-3 commands on a logical unit: READ/WRITE(6/10/12/16), READ CAPACITY(10/16), SYNCHRONIZE
 * CACHE(10/16), WRITE SAME(10/16) (with UNMAP, and NDOB for 16), UNMAP.
 * Writes complete (GOOD) only after the data is in the backing store; FUA and SYNCHRONIZE CACHE
 * reach the disk (fdatasync) before GOOD.
 */
import type { ScsiRequest } from './api.js';
import { clampToAllocation } from './cdb.js';
import { readU16BE, readU24BE, readU32BE, readU64BE, writeU32BE, writeU64BE } from '../util/bytes.js';
import { Asc, Opcode, SenseKey } from './constants.js';
import { Status } from './sam.js';
import {
  MAX_TRANSFER_BYTES,
  MAX_UNMAP_BYTES,
  MAX_UNMAP_DESCRIPTORS,
  MAX_WRITE_SAME_BYTES,
  blocksFor,
  TaskAbortedError,
  type BlockDevice,
} from './block-device.js';
export { TaskAbortedError } from './block-device.js';
import {
  CommandError,
  invalidFieldInCdb,
  invalidFieldInParameterList,
  lbaOutOfRange,
  parameterListLengthError,
} from './sense.js';
import { isAllZero } from './zero.js';

/** Where the LBA and transfer length sit in each READ/WRITE CDB form. */
interface RwLayout {
  lbaOffset: number;
  lbaBytes: 3 | 4 | 8;
  lengthOffset: number;
  lengthBytes: 1 | 2 | 4;
}
const RW_LAYOUT: Record<number, RwLayout> = {
  [Opcode.READ_6]: { lbaOffset: 1, lbaBytes: 3, lengthOffset: 4, lengthBytes: 1 },
  [Opcode.WRITE_6]: { lbaOffset: 1, lbaBytes: 3, lengthOffset: 4, lengthBytes: 1 },
  [Opcode.READ_10]: { lbaOffset: 2, lbaBytes: 4, lengthOffset: 7, lengthBytes: 2 },
  [Opcode.WRITE_10]: { lbaOffset: 2, lbaBytes: 4, lengthOffset: 7, lengthBytes: 2 },
  [Opcode.READ_12]: { lbaOffset: 2, lbaBytes: 4, lengthOffset: 6, lengthBytes: 4 },
  [Opcode.WRITE_12]: { lbaOffset: 2, lbaBytes: 4, lengthOffset: 6, lengthBytes: 4 },
  [Opcode.READ_16]: { lbaOffset: 2, lbaBytes: 8, lengthOffset: 10, lengthBytes: 4 },
  [Opcode.WRITE_16]: { lbaOffset: 2, lbaBytes: 8, lengthOffset: 10, lengthBytes: 4 },
};
// Byte 1 of the 10/12/16-byte forms: RDPROTECT/WRPROTECT(7..5) DPO(4) FUA(3).
const FLAGS_BYTE = 1;
const PROTECT_MASK = 0xe0;
const FUA = 0x08;
/** READ(6)/WRITE(6): LBA is byte 1 bits 4..0 + bytes 2-3; a length of 0 means 256 blocks. */
const SIX_BYTE_LBA_MASK = 0x1fffff;
const SIX_BYTE_ZERO_LENGTH_BLOCKS = 256;

function readField(cdb: Uint8Array, off: number, bytes: number): bigint {
  switch (bytes) {
    case 1:
      return BigInt(cdb[off]!);
    case 2:
      return BigInt(readU16BE(cdb, off));
    case 3:
      return BigInt(readU24BE(cdb, off) & SIX_BYTE_LBA_MASK);
    case 4:
      return BigInt(readU32BE(cdb, off));
    default:
      return readU64BE(cdb, off);
  }
}

/** LBA range check (SBC-3 §4.5): lba + count must not pass the capacity. */
function checkRange(dev: BlockDevice, lba: bigint, count: bigint): number {
  const capacity = BigInt(dev.blockCount);
  if (lba > capacity || lba + count > capacity) {
    throw lbaOutOfRange(`LBA ${lba} + ${count} blocks exceeds capacity ${capacity}`);
  }
  return Number(lba);
}

export interface IoContext {
  req: ScsiRequest;
  cdb: Uint8Array;
  device: BlockDevice;
  aborted: () => boolean;
}

export async function readWrite(ctx: IoContext): Promise<Uint8Array | null> {
  const { cdb, device: dev, req } = ctx;
  const op = cdb[0]!;
  const layout = RW_LAYOUT[op]!;
  const isWrite = op === Opcode.WRITE_6 || op === Opcode.WRITE_10 || op === Opcode.WRITE_12 || op === Opcode.WRITE_16;
  const sixByte = layout.lbaBytes === 3;
  const flags = sixByte ? 0 : cdb[FLAGS_BYTE]!;
  if (flags & PROTECT_MASK) throw invalidFieldInCdb(FLAGS_BYTE, 7, 'protection information is not supported');
  const lba = readField(cdb, layout.lbaOffset, layout.lbaBytes);
  let count = Number(readField(cdb, layout.lengthOffset, layout.lengthBytes));
  if (sixByte && count === 0) count = SIX_BYTE_ZERO_LENGTH_BLOCKS;
  if (count > blocksFor(MAX_TRANSFER_BYTES, dev.blockSize)) {
    throw invalidFieldInCdb(layout.lengthOffset, 7, `transfer of ${count} blocks exceeds the maximum transfer length`);
  }
  const first = checkRange(dev, lba, BigInt(count));
  const bytes = count * dev.blockSize;
  const fua = (flags & FUA) !== 0;
  if (isWrite) {
    // The data-out length must match the CDB exactly: a short or long FCP_DL would leave the
    // written range undefined, so the command is refused before anything is written.
    if (
      req.expectedLength !== bytes ||
      (bytes > 0 && (req.direction !== 'write' || !req.dataOut || req.dataOut.length < bytes))
    ) {
      throw invalidFieldInCdb(
        layout.lengthOffset,
        7,
        `WRITE of ${bytes} bytes but FCP_DL is ${req.expectedLength} with ${req.dataOut?.length ?? 0} bytes received`,
      );
    }
    if (count === 0) return null;
    await dev.writeBlocks(first, req.dataOut!.subarray(0, bytes), { fua, aborted: ctx.aborted });
    return null;
  }
  if (count === 0) return null;
  // A short FCP_DL on a read is an overrun the transport reports as a residual (FCP-4 §9.4.2).
  return dev.readBlocks(first, count, { aborted: ctx.aborted });
}

// VERIFY(10) (SBC-3 §5.31): 1 VRPROTECT(7..5) DPO(4) BYTCHK(2..1) | 2-5 LBA | 7-8 VERIFICATION LENGTH
// VERIFY(16) (SBC-3 §5.33): 1 same | 2-9 LBA | 10-13 VERIFICATION LENGTH
const VERIFY_BYTCHK_SHIFT = 1;
const BytCheck = { MEDIUM_ONLY: 0, COMPARE: 1 } as const;
/** Medium verification reads at most this much at a time. */
const VERIFY_PIECE_BYTES = 1024 * 1024;

/**
 * BYTCHK 00b reads the range back (the medium is verified when it can be read); 01b compares the
 * data-out with the medium and reports the first difference as MISCOMPARE with its offset.
 */
export async function verify(ctx: IoContext): Promise<null> {
  const { cdb, device: dev, req } = ctx;
  const sixteen = cdb[0] === Opcode.VERIFY_16;
  const flags = cdb[1]!;
  const lengthOffset = sixteen ? 10 : 7;
  if (flags & PROTECT_MASK) throw invalidFieldInCdb(1, 7, 'protection information is not supported');
  const bytchk = (flags >> VERIFY_BYTCHK_SHIFT) & 0x03;
  if (bytchk !== BytCheck.MEDIUM_ONLY && bytchk !== BytCheck.COMPARE)
    throw invalidFieldInCdb(1, 2, `BYTCHK ${bytchk} not supported`);
  const lba = sixteen ? readU64BE(cdb, 2) : BigInt(readU32BE(cdb, 2));
  const count = sixteen ? readU32BE(cdb, 10) : readU16BE(cdb, 7);
  if (count > blocksFor(MAX_TRANSFER_BYTES, dev.blockSize))
    throw invalidFieldInCdb(lengthOffset, 7, `verification of ${count} blocks exceeds the maximum transfer length`);
  const first = checkRange(dev, lba, BigInt(count));
  const bytes = count * dev.blockSize;
  if (bytchk === BytCheck.COMPARE) {
    if (req.expectedLength !== bytes || (bytes > 0 && (!req.dataOut || req.dataOut.length < bytes))) {
      throw invalidFieldInCdb(lengthOffset, 7, `VERIFY compares ${bytes} bytes but FCP_DL is ${req.expectedLength}`);
    }
  }
  const piece = blocksFor(VERIFY_PIECE_BYTES, dev.blockSize);
  for (let done = 0; done < count; done += piece) {
    const n = Math.min(piece, count - done);
    const medium = await dev.readBlocks(first + done, n, { aborted: ctx.aborted });
    if (bytchk !== BytCheck.COMPARE) continue;
    const base = done * dev.blockSize;
    for (let i = 0; i < medium.length; i++) {
      if (medium[i] !== req.dataOut![base + i]) {
        throw new CommandError(
          Status.CHECK_CONDITION,
          { key: SenseKey.MISCOMPARE, sense: Asc.MISCOMPARE_DURING_VERIFY, information: base + i },
          `miscompare at byte ${base + i}`,
        );
      }
    }
  }
  return null;
}

// READ CAPACITY(10) (SBC-3 §5.15): CDB 2-5 LOGICAL BLOCK ADDRESS, 8 PMI(0). Data: 0-3 RETURNED LBA, 4-7 BLOCK LENGTH.
const RC10_LENGTH = 8;
const RC10_MAX_LBA = 0xffffffff;
export function readCapacity10(ctx: IoContext): Uint8Array {
  const { cdb, device: dev } = ctx;
  const pmi = (cdb[8]! & 0x01) !== 0;
  if (!pmi && readU32BE(cdb, 2) !== 0)
    throw invalidFieldInCdb(2, 7, 'LOGICAL BLOCK ADDRESS must be zero when PMI is zero');
  const out = new Uint8Array(RC10_LENGTH);
  writeU32BE(out, 0, Math.min(dev.blockCount - 1, RC10_MAX_LBA));
  writeU32BE(out, 4, dev.blockSize);
  return out;
}

// READ CAPACITY(16) (SBC-3 §5.16): CDB 2-9 LBA, 10-13 ALLOCATION LENGTH, 14 PMI(0).
// Data: 0-7 RETURNED LBA | 8-11 BLOCK LENGTH | 12 P_TYPE PROT_EN | 13 P_I_EXPONENT LBPPBE
//   | 14 LBPME(7) LBPRZ(6) LOWEST ALIGNED LBA(13..8) | 15 LOWEST ALIGNED LBA(7..0)
const RC16_LENGTH = 32;
const RC16_LBPME = 0x80;
const RC16_LBPRZ = 0x40;
export function readCapacity16(ctx: IoContext): Uint8Array {
  const { cdb, device: dev } = ctx;
  const pmi = (cdb[14]! & 0x01) !== 0;
  if (!pmi && readU64BE(cdb, 2) !== 0n)
    throw invalidFieldInCdb(2, 7, 'LOGICAL BLOCK ADDRESS must be zero when PMI is zero');
  const out = new Uint8Array(RC16_LENGTH);
  writeU64BE(out, 0, BigInt(dev.blockCount - 1));
  writeU32BE(out, 8, dev.blockSize);
  out[13] = Math.log2(Math.max(1, 4096 / dev.blockSize)); // 4 KiB physical blocks
  out[14] = RC16_LBPME | RC16_LBPRZ;
  return clampToAllocation(out, readU32BE(cdb, 10));
}

// SYNCHRONIZE CACHE(10): 2-5 LBA, 7-8 NUMBER OF BLOCKS; (16): 2-9 LBA, 10-13 NUMBER OF BLOCKS. 0 blocks = to the end.
export async function synchronizeCache(ctx: IoContext): Promise<null> {
  const { cdb, device: dev } = ctx;
  const sixteen = cdb[0] === Opcode.SYNCHRONIZE_CACHE_16;
  const lba = sixteen ? readU64BE(cdb, 2) : BigInt(readU32BE(cdb, 2));
  const count = sixteen ? BigInt(readU32BE(cdb, 10)) : BigInt(readU16BE(cdb, 7));
  checkRange(dev, lba, count);
  // The whole file is flushed: fdatasync has no range form in Node, and flushing more is safe.
  await dev.flush();
  return null;
}

// WRITE SAME(10): 1 WRPROTECT(7..5) ANCHOR(4) UNMAP(3) | 2-5 LBA | 7-8 NUMBER OF BLOCKS
// WRITE SAME(16): 1 WRPROTECT(7..5) ANCHOR(4) UNMAP(3) NDOB(0) | 2-9 LBA | 10-13 NUMBER OF BLOCKS
const WS_ANCHOR = 0x10;
const WS_UNMAP = 0x08;
const WS_NDOB = 0x01;
export async function writeSame(ctx: IoContext): Promise<null> {
  const { cdb, device: dev, req } = ctx;
  const sixteen = cdb[0] === Opcode.WRITE_SAME_16;
  const flags = cdb[1]!;
  const countOffset = sixteen ? 10 : 7;
  if (flags & PROTECT_MASK) throw invalidFieldInCdb(1, 7, 'protection information is not supported');
  if (flags & WS_ANCHOR) throw invalidFieldInCdb(1, 4, 'ANCHOR is not supported');
  if (!sixteen && flags & WS_NDOB) throw invalidFieldInCdb(1, 0, 'reserved bit set');
  const lba = sixteen ? readU64BE(cdb, 2) : BigInt(readU32BE(cdb, 2));
  const count = sixteen ? readU32BE(cdb, 10) : readU16BE(cdb, 7);
  if (count === 0) throw invalidFieldInCdb(countOffset, 7, 'WRITE SAME with zero blocks (WSNZ is set)');
  if (count > blocksFor(MAX_WRITE_SAME_BYTES, dev.blockSize))
    throw invalidFieldInCdb(countOffset, 7, `WRITE SAME of ${count} blocks exceeds the maximum`);
  const first = checkRange(dev, lba, BigInt(count));
  const ndob = sixteen && (flags & WS_NDOB) !== 0;
  let pattern: Uint8Array;
  if (ndob) {
    pattern = new Uint8Array(dev.blockSize);
  } else {
    if (req.expectedLength !== dev.blockSize || !req.dataOut || req.dataOut.length < dev.blockSize) {
      throw invalidFieldInCdb(
        countOffset,
        7,
        `WRITE SAME needs exactly one ${dev.blockSize}-byte block of data-out (FCP_DL ${req.expectedLength})`,
      );
    }
    pattern = req.dataOut.subarray(0, dev.blockSize);
  }
  // Unmapped blocks read as zeros (LBPRZ), so only a zero pattern may be satisfied by unmapping.
  const io = { aborted: ctx.aborted };
  if (flags & WS_UNMAP && isAllZero(pattern)) await dev.unmapBlocks(first, count, io);
  else await dev.writeSameBlocks(first, count, pattern, io);
  return null;
}

// UNMAP (SBC-3 §5.28): CDB 1 ANCHOR(0) | 7-8 PARAMETER LIST LENGTH.
// Parameter list: 0-1 UNMAP DATA LENGTH | 2-3 BLOCK DESCRIPTOR DATA LENGTH | 8.. descriptors
//   descriptor: 0-7 LBA | 8-11 NUMBER OF LOGICAL BLOCKS | 12-15 reserved
const UNMAP_HEADER = 8;
const UNMAP_DESCRIPTOR = 16;
export async function unmap(ctx: IoContext): Promise<null> {
  const { cdb, device: dev, req } = ctx;
  if (cdb[1]! & 0x01) throw invalidFieldInCdb(1, 0, 'ANCHOR is not supported');
  const listLength = readU16BE(cdb, 7);
  if (listLength === 0) return null;
  if (listLength < UNMAP_HEADER)
    throw parameterListLengthError(`UNMAP parameter list length ${listLength} is shorter than its header`);
  const data = req.dataOut;
  if (!data || data.length < listLength)
    throw parameterListLengthError('UNMAP parameter data shorter than the parameter list length');
  const descriptorBytes = readU16BE(data, 2);
  if (descriptorBytes % UNMAP_DESCRIPTOR !== 0 || UNMAP_HEADER + descriptorBytes > listLength) {
    throw invalidFieldInParameterList(2, 7, `block descriptor data length ${descriptorBytes} is invalid`);
  }
  const n = descriptorBytes / UNMAP_DESCRIPTOR;
  if (n > MAX_UNMAP_DESCRIPTORS)
    throw invalidFieldInParameterList(2, 7, `${n} block descriptors exceed the maximum of ${MAX_UNMAP_DESCRIPTORS}`);
  const maxBlocks = blocksFor(MAX_UNMAP_BYTES, dev.blockSize);
  const ranges: [number, number][] = [];
  let total = 0;
  for (let i = 0; i < n; i++) {
    const d = UNMAP_HEADER + i * UNMAP_DESCRIPTOR;
    const lba = readU64BE(data, d);
    const count = readU32BE(data, d + 8);
    total += count;
    if (total > maxBlocks) throw invalidFieldInParameterList(d + 8, 7, 'UNMAP exceeds the maximum unmap LBA count');
    ranges.push([checkRange(dev, lba, BigInt(count)), count]);
  }
  if (ctx.aborted()) throw new TaskAbortedError();
  for (const [lba, count] of ranges) if (count > 0) await dev.unmapBlocks(lba, count, { aborted: ctx.aborted });
  return null;
}
