/**
 * RingEngine: the TypeScript driver of the AssemblyScript ring engine (build/ring.wasm, source in
 * assembly/) for the emulated QLogic ISP2532's request and response rings (24xx/25xx firmware
 * interface as driven by Linux qla2xxx 10.02.x; see assembly/index.ts for the design).
 *
 * This side moves bytes — guest request ring → WASM scratch (copy-in once), WASM response FIFO →
 * guest response ring — and turns the engine's fixed-layout records into RequestEntry objects.
 * The WASM side validates and decodes. One engine (one WASM instance with its own memory) per
 * emulated HBA. The memory is never grown, so the views taken at construction stay valid.
 *
 * Guest-caused problems come back as data (rejected entries, `fault`); exceptions mean a bug or
 * invalid host-side input (RangeError / RingConfigError).
 */
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import type { GuestMemory } from '../../device/guest-memory.js';
import { packageRoot } from '../../util/package-root.js';
import { IOCB_SIZE, IocbHeader, Cmd7 } from '../../../assembly/shared/iocb.js';
import {
  CONTROL_BASE,
  SCRATCH_BASE,
  RECORDS_BASE,
  SEGMENTS_BASE,
  RSP_FIFO_BASE,
  LAYOUT_END,
  Capacity,
  Ctl,
  Rec,
  RecKind,
  RecFlags,
  Seg,
  ResidualKind,
  Direction,
  EngineResult,
} from '../../../assembly/shared/ring-layout.js';
import {
  CONSUME_STOPS,
  REJECT_REASONS,
  clampBudget,
  entriesToCopy,
  entriesForLongFirstCommand,
  stagedSenseLength,
  validateRingConfig,
  validateStatus,
  type ConsumeResult,
  type ConsumeStop,
  type DataSegment,
  type FlushResult,
  type RequestEntry,
  type RingCodec,
  type RingConfig,
  type RingLimits,
  type StatusType0,
} from './types.js';
import { copyInEntries, copyOutEntries, dmaFault, isRingIndex } from './guest-ring.js';
import type { DataDirection } from '../../scsi/sam.js';

/**
 * The slice of the WebAssembly JS API used here. The project's lib setting (ES2022, no DOM)
 * carries no WebAssembly typings, so they are declared locally instead of globally.
 */
interface WasmModule {
  readonly __brand: 'WasmModule';
}
interface WasmApi {
  Module: new (bytes: Uint8Array) => WasmModule;
  Instance: new (module: WasmModule, imports: Record<string, Record<string, unknown>>) => { exports: unknown };
}
const wasmApi = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;

interface RingExports {
  memory: { buffer: ArrayBuffer };
  init(): number;
  configure(
    reqEntries: number,
    rspEntries: number,
    maxHandleIndex: number,
    maxQueueId: number,
    maxVpIndex: number,
    maxTransfer: number,
  ): number;
  resetResponses(): void;
  reqConsume(copied: number, available: number, budget: number): number;
  rspPostStatus(): number;
  rspPostRaw(): number;
  rspFlushPlan(rspIn: number, rspOut: number): number;
  rspFlushCommit(entries: number): number;
}

const DIRECTIONS: Record<number, DataDirection> = {
  [Direction.NONE]: 'none',
  [Direction.WRITE]: 'write',
  [Direction.READ]: 'read',
};

/** Path of the release build of the engine. */
export function defaultWasmPath(): string {
  return join(packageRoot(), 'build', 'ring.wasm');
}

const modules = new Map<string, WasmModule>();

function compiledModule(path: string): WasmModule {
  let module = modules.get(path);
  if (!module) {
    if (!existsSync(path)) throw new Error(`ring engine ${path} is missing: run \`npm run build:wasm\``);
    module = new wasmApi.Module(readFileSync(path));
    modules.set(path, module);
  }
  return module;
}

export interface RingEngineOptions {
  /** A specific build of the engine (e.g. build/ring.debug.wasm); default build/ring.wasm. */
  wasmPath?: string;
}

export class RingEngine implements RingCodec {
  private readonly exports: RingExports;
  private readonly bytes: Uint8Array;
  private readonly view: DataView;
  private config: RingConfig | null = null;

  constructor(options: RingEngineOptions = {}) {
    const instance = new wasmApi.Instance(compiledModule(options.wasmPath ?? defaultWasmPath()), {
      env: {
        abort: (_message: number, _file: number, line: number, column: number): never => {
          throw new Error(`ring engine aborted at ${line}:${column}`);
        },
      },
    });
    this.exports = instance.exports as unknown as RingExports;
    const buffer = this.exports.memory.buffer;
    if (buffer.byteLength < LAYOUT_END)
      throw new Error(`ring engine memory ${buffer.byteLength} bytes < layout ${LAYOUT_END}`);
    this.bytes = new Uint8Array(buffer);
    this.view = new DataView(buffer);
    const status = this.exports.init();
    if (status !== EngineResult.OK)
      throw new Error(`ring engine init failed (${status}): static data overlaps the layout`);
  }

  configure(
    reqBase: bigint,
    reqEntries: number,
    rspBase: bigint,
    rspEntries: number,
    limits: Partial<RingLimits> = {},
  ): void {
    const config = validateRingConfig(reqBase, reqEntries, rspBase, rspEntries, limits);
    const l = config.limits;
    const status = this.exports.configure(
      reqEntries,
      rspEntries,
      l.maxHandleIndex,
      l.maxQueueId,
      l.maxVpIndex,
      l.maxTransferBytes,
    );
    if (status !== EngineResult.OK) throw new Error(`ring engine refused a validated configuration (${status})`);
    this.config = config;
  }

  get configuration(): RingConfig | null {
    return this.config;
  }

  private requireConfig(): RingConfig {
    if (!this.config) throw new Error('ring engine used before configure()');
    return this.config;
  }

  consumeRequests(mem: GuestMemory, reqOut: number, reqIn: number, budget: number): ConsumeResult {
    const config = this.requireConfig();
    const length = config.reqEntries;
    if (!isRingIndex(reqOut, length))
      throw new RangeError(`request consumer index ${reqOut} outside ring of ${length}`);
    if (!isRingIndex(reqIn, length)) {
      return {
        newOut: reqOut,
        entries: [],
        stop: 'drained',
        fault: { kind: 'request-index', message: `req_q_in ${reqIn} outside request ring of ${length} entries` },
      };
    }
    const limit = clampBudget(budget);
    const available = (reqIn - reqOut + length) % length;
    if (available === 0) return { newOut: reqOut, entries: [], stop: 'drained', fault: null };

    let copied = entriesToCopy(available, limit);
    let records = 0;
    let consumed = 0;
    let stop: ConsumeStop = 'drained';
    for (let pass = 0; pass < 2; pass++) {
      // Pass 2 only when the first command is longer than the budget: fetch just its missing entries.
      const from = pass === 0 ? 0 : copied;
      if (pass === 1)
        copied = entriesForLongFirstCommand(available, this.bytes[SCRATCH_BASE + IocbHeader.ENTRY_COUNT]!);
      try {
        copyInEntries(
          mem,
          config.reqBase,
          length,
          (reqOut + from) % length,
          copied - from,
          this.bytes,
          SCRATCH_BASE + from * IOCB_SIZE,
        );
      } catch (error) {
        return { newOut: reqOut, entries: [], stop: 'drained', fault: dmaFault(error, 'request ring') };
      }
      records = this.exports.reqConsume(copied, available, limit);
      if (records < 0) throw new Error(`ring engine reqConsume failed (${records})`);
      consumed = this.view.getUint32(CONTROL_BASE + Ctl.CONSUMED_ENTRIES, true);
      stop = CONSUME_STOPS[this.view.getUint32(CONTROL_BASE + Ctl.STOP_REASON, true)] ?? 'drained';
      if (stop !== 'need-copy' || consumed !== 0) break;
    }
    const entries: RequestEntry[] = new Array<RequestEntry>(records);
    for (let i = 0; i < records; i++) entries[i] = this.readRecord(RECORDS_BASE + i * Rec.SIZE);
    return { newOut: (reqOut + consumed) % length, entries, stop, fault: null };
  }

  private readRecord(rec: number): RequestEntry {
    const b = this.bytes;
    const v = this.view;
    const kind = b[rec + Rec.KIND];
    const type = b[rec + Rec.ENTRY_TYPE]!;
    const handle = v.getUint32(rec + Rec.HANDLE, true);
    const entryCount = b[rec + Rec.ENTRIES]!;
    if (kind === RecKind.COMMAND) {
      const segStart = v.getUint32(rec + Rec.SEG_START, true);
      const segCount = v.getUint32(rec + Rec.SEG_COUNT, true);
      const segments: DataSegment[] = new Array<DataSegment>(segCount);
      for (let k = 0; k < segCount; k++) {
        const seg = SEGMENTS_BASE + (segStart + k) * Seg.SIZE;
        segments[k] = { address: v.getBigUint64(seg + Seg.ADDRESS, true), length: v.getUint32(seg + Seg.LENGTH, true) };
      }
      return {
        kind: 'command',
        handle,
        nportHandle: v.getUint16(rec + Rec.NPORT_HANDLE, true),
        portId: v.getUint32(rec + Rec.PORT_ID, true),
        vpIndex: b[rec + Rec.VP_INDEX]!,
        lun: b.slice(rec + Rec.LUN, rec + Rec.LUN + Cmd7.LUN_SIZE),
        cdb: b.slice(rec + Rec.CDB, rec + Rec.CDB + Cmd7.FCP_CDB_SIZE),
        direction: DIRECTIONS[b[rec + Rec.DIRECTION]!] ?? 'none',
        totalBytes: v.getUint32(rec + Rec.BYTE_COUNT, true),
        taskAttribute: b[rec + Rec.TASK_ATTRIBUTE]!,
        priority: b[rec + Rec.PRIORITY]!,
        segments,
        entryCount,
      };
    }
    if (kind === RecKind.RAW) {
      const start = SCRATCH_BASE + v.getUint32(rec + Rec.SCRATCH_INDEX, true) * IOCB_SIZE;
      return { kind: 'raw', type, handle, bytes: b.slice(start, start + IOCB_SIZE) };
    }
    if (kind === RecKind.ERROR) {
      const reason = REJECT_REASONS[b[rec + Rec.REASON]!];
      if (!reason) throw new Error(`ring engine produced unknown reason ${b[rec + Rec.REASON]}`);
      return {
        kind: 'error',
        type,
        handle,
        entryStatus: b[rec + Rec.ENTRY_STATUS]!,
        reason,
        entryCount,
        responsePosted: (b[rec + Rec.FLAGS]! & RecFlags.RESPONSE_POSTED) !== 0,
      };
    }
    throw new Error(`ring engine produced unknown record kind ${kind}`);
  }

  postStatus(status: StatusType0): number {
    validateStatus(status);
    const v = this.view;
    const c = CONTROL_BASE;
    v.setUint32(c + Ctl.ST_HANDLE, status.handle, true);
    v.setUint16(c + Ctl.ST_COMP_STATUS, status.compStatus, true);
    v.setUint8(c + Ctl.ST_SCSI_STATUS, status.scsiStatus);
    const residual = status.residual;
    v.setUint8(
      c + Ctl.ST_RESIDUAL_KIND,
      residual ? (residual.kind === 'under' ? ResidualKind.UNDER : ResidualKind.OVER) : ResidualKind.NONE,
    );
    v.setUint32(c + Ctl.ST_RESIDUAL, residual ? residual.bytes : 0, true);
    v.setUint16(c + Ctl.ST_OX_ID, status.oxId ?? 0, true);
    v.setUint16(c + Ctl.ST_STATE_FLAGS, status.stateFlags ?? 0, true);
    v.setUint16(c + Ctl.ST_RETRY_DELAY, status.retryDelay ?? 0, true);
    const rspInfo = status.responseInfo;
    v.setUint8(c + Ctl.ST_RSP_INFO_LEN, rspInfo?.length ?? 0);
    if (rspInfo) this.bytes.set(rspInfo, c + Ctl.ST_RSP_INFO);
    const senseLength = stagedSenseLength(status);
    v.setUint32(c + Ctl.ST_SENSE_LEN, senseLength, true);
    if (status.sense && senseLength > 0) this.bytes.set(status.sense.subarray(0, senseLength), c + Ctl.ST_SENSE);
    const queued = this.exports.rspPostStatus();
    if (queued === EngineResult.ERR_FIFO_FULL) return 0;
    if (queued < 0) throw new Error(`ring engine rspPostStatus refused validated input (${queued})`);
    return queued;
  }

  postRaw(entry: Uint8Array): number {
    if (entry.length !== IOCB_SIZE)
      throw new RangeError(`response entry must be ${IOCB_SIZE} bytes, got ${entry.length}`);
    this.bytes.set(entry, CONTROL_BASE + Ctl.RAW_STAGING);
    const queued = this.exports.rspPostRaw();
    if (queued === EngineResult.ERR_FIFO_FULL) return 0;
    if (queued === EngineResult.ERR_INVALID) {
      throw new RangeError(
        `response entry type 0x${entry[0]!.toString(16)} count ${entry[1]} refused: not a response type, entry_count ≠ 1, or ends in 0xDEADDEAD`,
      );
    }
    if (queued < 0) throw new Error(`ring engine rspPostRaw failed (${queued})`);
    return queued;
  }

  flushResponses(mem: GuestMemory, rspIn: number, rspOut: number): FlushResult {
    const config = this.requireConfig();
    const length = config.rspEntries;
    if (!isRingIndex(rspIn, length)) throw new RangeError(`response producer index ${rspIn} outside ring of ${length}`);
    const plan = this.exports.rspFlushPlan(rspIn, isRingIndex(rspOut, length) ? rspOut : -1);
    if (plan === EngineResult.ERR_INDEX) {
      return {
        newIn: rspIn,
        written: 0,
        pending: this.pendingResponses,
        full: false,
        fault: { kind: 'response-index', message: `rsp_q_out ${rspOut} outside response ring of ${length} entries` },
      };
    }
    if (plan < 0) throw new Error(`ring engine rspFlushPlan failed (${plan})`);
    const head = this.view.getUint32(CONTROL_BASE + Ctl.FIFO_HEAD, true);
    const { written, fault } = copyOutEntries(
      mem,
      config.rspBase,
      length,
      rspIn,
      plan,
      this.bytes,
      RSP_FIFO_BASE,
      Capacity.RSP_FIFO_ENTRIES,
      head,
    );
    const pending = this.exports.rspFlushCommit(written);
    if (pending < 0) throw new Error(`ring engine rspFlushCommit failed (${pending})`);
    return { newIn: (rspIn + written) % length, written, pending, full: fault === null && pending > 0, fault };
  }

  get pendingResponses(): number {
    return this.view.getUint32(CONTROL_BASE + Ctl.FIFO_COUNT, true);
  }

  get responseSpace(): number {
    return Capacity.RSP_FIFO_ENTRIES - this.pendingResponses;
  }

  resetResponses(): void {
    this.exports.resetResponses();
  }
}
