/**
 * Ring codec benchmark: the AssemblyScript RingEngine against its plain-TypeScript twin
 * on realistic qla2xxx traffic — request batches of Command Type 7 (+ continuations) and the
 * matching Status Type 0 completions flushed to the response ring. Guest memory is a plain
 * ArrayBuffer window, so the numbers are codec cost (copy-in, validate, decode, encode, copy-out),
 * not vfio-user cost.
 *
 * Needs build/ring.wasm (`npm run build:wasm`). It is TypeScript, so it runs compiled (by the
 * project's bench runner: `npm run bench -- --only ring`, or directly: `node bench/run.js --only ring`).
 * Raw benny output: bench/results/raw/ring-*.json; the runner's summary: bench/results/ring-latest.json.
 * First measurement on the shared 2-core dev machine (noisy): 64 × 1 DSD ≈ equal (≈ 9k batches/s
 * each); 32 × 8 DSDs WASM ≈ 3× faster; 8 × 64 DSDs WASM ≈ 2.2× faster.
 */
import { suite, add, cycle, complete, save } from 'benny';
import { pathToFileURL } from 'node:url';
import { DmaError, type GuestMemory } from '../src/device/guest-memory.js';
import { RingEngine } from '../src/isp/ring/engine.js';
import { TsRingBaseline } from '../src/isp/ring/ts-baseline.js';
import type { RingCodec } from '../src/isp/ring/types.js';
import { IOCB_SIZE, EntryType, Cmd7, Cmd7Flags, ContA64, Dsd64, IocbHeader } from '../assembly/shared/iocb.js';

const REQ_BASE = 0x10_0000n;
const RSP_BASE = 0x20_0000n;
const REQ_ENTRIES = 2048; // qla2xxx REQUEST_ENTRY_CNT_24XX
const RSP_ENTRIES = 512; // qla2xxx RESPONSE_ENTRY_CNT_2300

class FlatMemory implements GuestMemory {
  constructor(
    private readonly base: bigint,
    private readonly bytes: Uint8Array,
  ) {}
  private offset(address: bigint, length: number): number {
    const off = address - this.base;
    if (off < 0n || off + BigInt(length) > BigInt(this.bytes.length)) throw new DmaError('outside', address, length);
    return Number(off);
  }
  read(address: bigint, length: number): Uint8Array {
    const o = this.offset(address, length);
    return this.bytes.slice(o, o + length);
  }
  readInto(address: bigint, dst: Uint8Array, dstOffset = 0, length = dst.length - dstOffset): void {
    const o = this.offset(address, length);
    dst.set(this.bytes.subarray(o, o + length), dstOffset);
  }
  write(address: bigint, data: Uint8Array): void {
    this.bytes.set(data, this.offset(address, data.length));
  }
  isMapped(address: bigint, length: number): boolean {
    try {
      this.offset(address, length);
      return true;
    } catch {
      return false;
    }
  }
  view(address: bigint, length: number): Uint8Array {
    const o = this.offset(address, length);
    return this.bytes.subarray(o, o + length);
  }
  views(address: bigint, length: number): Uint8Array[] {
    return length === 0 ? [] : [this.view(address, length)];
  }
}

/** Writes one READ command with `dsds` 4 KiB segments at ring index `at`; returns entries used. */
function writeCommand(ring: DataView, at: number, handle: number, dsds: number): number {
  const entries = dsds > 1 ? 1 + Math.ceil((dsds - 1) / ContA64.DSDS_PER_ENTRY) : 1;
  const base = at * IOCB_SIZE;
  for (let i = 0; i < entries * IOCB_SIZE; i++) ring.setUint8(base + i, 0);
  ring.setUint8(base + IocbHeader.ENTRY_TYPE, EntryType.COMMAND_TYPE_7);
  ring.setUint8(base + IocbHeader.ENTRY_COUNT, entries);
  ring.setUint32(base + IocbHeader.HANDLE, handle, true);
  ring.setUint16(base + Cmd7.NPORT_HANDLE, 0x81, true);
  ring.setUint16(base + Cmd7.DSEG_COUNT, dsds, true);
  ring.setUint16(base + Cmd7.TASK_MGMT_FLAGS, Cmd7Flags.TMF_READ_DATA, true);
  ring.setUint32(base + Cmd7.FCP_CDB, 0x00000028, true);
  ring.setUint32(base + Cmd7.BYTE_COUNT, dsds * 4096, true);
  for (let k = 0; k < dsds; k++) {
    const dsd =
      k === 0
        ? base + Cmd7.DSD
        : base + (1 + Math.floor((k - 1) / 5)) * IOCB_SIZE + ContA64.DSD + ((k - 1) % 5) * Dsd64.SIZE;
    if (k > 0 && (k - 1) % 5 === 0) ring.setUint8(dsd - ContA64.DSD, EntryType.CONTINUE_A64_TYPE);
    ring.setBigUint64(dsd + Dsd64.ADDRESS, 0x1_0000_0000n + BigInt(handle * 0x100000 + k * 4096), true);
    ring.setUint32(dsd + Dsd64.LENGTH, 4096, true);
  }
  return entries;
}

export interface Workload {
  name: string;
  commands: number;
  dsds: number;
}

export const ringWorkloads: Workload[] = [
  { name: '64 × 4 KiB reads (1 DSD)', commands: 64, dsds: 1 },
  { name: '32 × 32 KiB reads (8 DSDs, 3 entries)', commands: 32, dsds: 8 },
  { name: '8 × 256 KiB reads (64 DSDs, 14 entries)', commands: 8, dsds: 64 },
];

function prepare(work: Workload, codec: RingCodec): () => void {
  const bytes = new Uint8Array(REQ_ENTRIES * IOCB_SIZE + 0x10_0000 + RSP_ENTRIES * IOCB_SIZE);
  const mem = new FlatMemory(REQ_BASE, bytes);
  codec.configure(REQ_BASE, REQ_ENTRIES, RSP_BASE, RSP_ENTRIES);
  const ring = new DataView(bytes.buffer, 0, REQ_ENTRIES * IOCB_SIZE);
  let used = 0;
  for (let c = 0; c < work.commands; c++) used += writeCommand(ring, used, c + 1, work.dsds);
  return () => {
    // One doorbell's worth: consume the batch, complete every command, flush the completions.
    let out = 0;
    while (out !== used) {
      const result = codec.consumeRequests(mem, out, used, 128);
      out = result.newOut;
      for (const entry of result.entries) {
        if (entry.kind === 'command') codec.postStatus({ handle: entry.handle, compStatus: 0, scsiStatus: 0 });
      }
    }
    codec.flushResponses(mem, 0, RSP_ENTRIES - 1);
  };
}

export const RING_CASES = { wasm: 'AssemblyScript RingEngine', ts: 'TypeScript baseline' } as const;

export interface RingCaseResult {
  workload: string;
  commands: number;
  dsds: number;
  implementation: string;
  /** consumed+completed batches per second */
  batchesPerSecond: number;
  /** commands (IOCB chains) per second = batches/s × commands per batch */
  commandsPerSecond: number;
  /** relative margin of error, percent */
  marginPercent: number;
  samples: number;
}

export interface RingBenchOptions {
  /** benny/benchmark.js maxTime per case, seconds (default 5) */
  maxTimeSeconds?: number;
  /** folder for benny's raw JSON (default bench/results/raw) */
  rawFolder?: string;
}

/** Runs every workload with both codecs in the same process, one benny suite per workload. */
export async function runRingBench(options: RingBenchOptions = {}): Promise<RingCaseResult[]> {
  const caseOptions = { maxTime: options.maxTimeSeconds ?? 5 };
  const out: RingCaseResult[] = [];
  for (const work of ringWorkloads) {
    const summary = await suite(
      `ring codec: ${work.name}`,
      add(RING_CASES.wasm, () => prepare(work, new RingEngine()), caseOptions),
      add(RING_CASES.ts, () => prepare(work, new TsRingBaseline()), caseOptions),
      cycle(),
      complete(),
      save({
        file: `ring-${work.commands}x${work.dsds}`,
        folder: options.rawFolder ?? 'bench/results/raw',
        format: 'json',
      }),
    );
    for (const r of summary.results) {
      out.push({
        workload: work.name,
        commands: work.commands,
        dsds: work.dsds,
        implementation: r.name,
        batchesPerSecond: r.ops,
        commandsPerSecond: r.ops * work.commands,
        marginPercent: r.margin,
        samples: r.samples,
      });
    }
  }
  return out;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await runRingBench();
