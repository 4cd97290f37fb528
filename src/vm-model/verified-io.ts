/**
 * Verified I/O for the qla2xxx-like guest model: a deterministic data pattern written over a
 * block range at a fixed queue depth, then read back and compared block by block. The pattern is
 * a pure function of (seed, LBA), so whoever holds the backing store (the simulated SAN's volume
 * file, say) can check that the bytes landed there without trusting the model's own read-back.
 */
import { createHash } from 'node:crypto';
import { BLOCK } from './qla-guest.js';
import {
  type CommandResult,
  commandSucceeded,
  describeResult,
  MAX_QUEUE_DEPTH,
  type QlaDriverModel,
} from './qla-driver.js';

/** The 512 bytes block `lba` holds after a verified write with `seed`: "NPIVHBA!", seed, LBA, then xorshift32. */
export function patternBlock(seed: number, lba: number): Uint8Array {
  const out = new Uint8Array(BLOCK);
  const dv = new DataView(out.buffer);
  out.set(PATTERN_MAGIC);
  dv.setUint32(8, seed >>> 0, false);
  dv.setUint32(12, lba >>> 0, false);
  let x = (Math.imul(lba + 1, 0x9e3779b1) ^ seed ^ 0x5bd1e995) >>> 0 || 1;
  for (let o = 16; o < BLOCK; o += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    dv.setUint32(o, x >>> 0, false);
  }
  return out;
}

const PATTERN_MAGIC = new TextEncoder().encode('NPIVHBA!');

/** SHA-256 of the pattern over [startLba, startLba + blocks): compare with the backing store's bytes. */
export function patternSha256(seed: number, startLba: number, blocks: number): string {
  const h = createHash('sha256');
  for (let i = 0; i < blocks; i++) h.update(patternBlock(seed, startLba + i));
  return h.digest('hex');
}

export interface VerifiedIoOptions {
  lun: number;
  startLba: number;
  /** Blocks in the range (512 bytes each). */
  blocks: number;
  /** Blocks per command. */
  blocksPerIo: number;
  queueDepth: number;
  seed: number;
}

export interface VerifiedIoResult {
  writes: number;
  reads: number;
  /** Commands that did not complete with GOOD status. */
  errors: number;
  /** Blocks whose read-back differs from the pattern. */
  mismatches: number;
  errorSamples: string[];
  /** patternSha256 of the range: what the backing store must hold now. */
  sha256: string;
  elapsedMs: number;
}

/**
 * Clears pending UNIT ATTENTIONs (TEST UNIT READY, as a scan does), writes the pattern over the
 * range at `queueDepth` commands in flight, then reads it back the same way and compares. Every
 * command's outcome is counted; nothing is retried.
 */
export async function runVerifiedIo(model: QlaDriverModel, o: VerifiedIoOptions): Promise<VerifiedIoResult> {
  if (!Number.isInteger(o.queueDepth) || o.queueDepth < 1 || o.queueDepth > MAX_QUEUE_DEPTH)
    throw new RangeError(`queue depth ${o.queueDepth} outside 1..${MAX_QUEUE_DEPTH}`);
  if (!Number.isInteger(o.blocksPerIo) || o.blocksPerIo < 1 || o.blocksPerIo > 0xffff)
    throw new RangeError(`blocks per I/O ${o.blocksPerIo}`);
  if (!Number.isInteger(o.blocks) || o.blocks < 1) throw new RangeError(`blocks ${o.blocks}`);
  const started = Date.now();
  await model.clearUnitAttention(o.lun);
  const result: VerifiedIoResult = {
    writes: 0,
    reads: 0,
    errors: 0,
    mismatches: 0,
    errorSamples: [],
    sha256: patternSha256(o.seed, o.startLba, o.blocks),
    elapsedMs: 0,
  };
  const failed = (what: string, r: CommandResult): void => {
    result.errors++;
    if (result.errorSamples.length < 5) result.errorSamples.push(`${what}: ${describeResult(r)}`);
  };
  const chunks: { lba: number; count: number }[] = [];
  for (let lba = o.startLba; lba < o.startLba + o.blocks; lba += o.blocksPerIo)
    chunks.push({ lba, count: Math.min(o.blocksPerIo, o.startLba + o.blocks - lba) });

  await atQueueDepth(chunks, o.queueDepth, async ({ lba, count }, slot) => {
    const data = new Uint8Array(count * BLOCK);
    for (let i = 0; i < count; i++) data.set(patternBlock(o.seed, lba + i), i * BLOCK);
    const r = await model.command(
      { cdb: rw10(WRITE_10, lba, count), direction: 'write', length: data.length, lun: o.lun },
      slot,
      data,
    );
    result.writes++;
    if (!commandSucceeded(r) || r.residual !== 0) failed(`WRITE(10) lba ${lba}`, r);
  });
  await atQueueDepth(chunks, o.queueDepth, async ({ lba, count }, slot) => {
    const r = await model.command(
      { cdb: rw10(READ_10, lba, count), direction: 'read', length: count * BLOCK, lun: o.lun },
      slot,
    );
    result.reads++;
    if (!commandSucceeded(r) || r.residual !== 0) {
      failed(`READ(10) lba ${lba}`, r);
      return;
    }
    for (let i = 0; i < count; i++) {
      const got = r.data!.subarray(i * BLOCK, (i + 1) * BLOCK);
      if (!Buffer.from(got).equals(patternBlock(o.seed, lba + i))) result.mismatches++;
    }
  });
  result.elapsedMs = Date.now() - started;
  return result;
}

const READ_10 = 0x28;
const WRITE_10 = 0x2a;

function rw10(opcode: number, lba: number, blocks: number): Uint8Array {
  const cdb = new Uint8Array(10);
  const dv = new DataView(cdb.buffer);
  cdb[0] = opcode;
  dv.setUint32(2, lba >>> 0, false);
  dv.setUint16(7, blocks, false);
  return cdb;
}

/** Runs `work` over `items` with at most `depth` in flight; each worker owns one data slot. */
async function atQueueDepth<T>(
  items: readonly T[],
  depth: number,
  work: (item: T, slot: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async (slot: number): Promise<void> => {
    while (next < items.length) await work(items[next++]!, slot);
  };
  await Promise.all(Array.from({ length: Math.min(depth, items.length) }, (_, slot) => worker(slot)));
}
