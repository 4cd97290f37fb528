/**
 * Test support for the ring codecs: the fake guest memory (test/support/guest-memory.ts), IOCB builders that
 * follow what qla2xxx writes (qla24xx_start_scsi / qla24xx_build_scsi_iocbs /
 * qla2x00_prep_cont_type1_iocb, int_to_scsilun + host_to_fcp_swap), a ring fixture, a Status
 * Type 0 reader that follows qla2x00_status_entry / qla2x00_status_cont_entry, and the list of
 * codec implementations every test runs against (WASM release, WASM debug, TS twin).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { RingEngine } from '../../../src/isp/ring/engine.js';
import { packageRoot } from '../../../src/util/package-root.js';
import { TsRingBaseline } from '../../../src/isp/ring/ts-baseline.js';
import type { RingCodec } from '../../../src/isp/ring/types.js';
import { ArrayGuestMemory } from '../../support/guest-memory.js';

/** The tests' fake guest memory, re-exported for the ring tests and fuzz target that import it from here. */
export { ArrayGuestMemory };

// Literal layout values in this file are deliberately NOT imported from assembly/shared: the
// fixtures are independent hand-built bytes that check the shared layout, not reuse it.
export const ENTRY = 64;
export const T_STATUS = 0x03;
export const T_MARKER = 0x04;
export const T_CONT_A64 = 0x0a;
export const T_STATUS_CONT = 0x10;
export const T_TSK_MGMT = 0x14;
export const T_CMD7 = 0x18;
export const T_CT = 0x29;
export const T_ABORT = 0x33;
export const T_MBX = 0x39;
export const T_LOGIO = 0x52;
export const T_ELS = 0x53;
export const RF_INV_E_TYPE = 0x04;
export const RF_INV_E_PARAM = 0x08;
export const RF_INV_E_COUNT = 0x10;
export const RF_INV_E_ORDER = 0x20;
export const QLA_SKIP_HANDLE = 0x0fffffff;

/** int_to_scsilun(): two bytes per level, most significant byte first. */
export function intToScsiLun(lun: number): Uint8Array {
  const out = new Uint8Array(8);
  let rest = BigInt(lun);
  for (let i = 0; i < 8; i += 2) {
    out[i] = Number((rest >> 8n) & 0xffn);
    out[i + 1] = Number(rest & 0xffn);
    rest >>= 16n;
  }
  return out;
}

/** host_to_fcp_swap(): swab32 on every dword (returns a copy). */
export function hostToFcpSwap(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(bytes.length);
  for (let i = 0; i < bytes.length; i += 4) {
    out[i] = bytes[i + 3]!;
    out[i + 1] = bytes[i + 2]!;
    out[i + 2] = bytes[i + 1]!;
    out[i + 3] = bytes[i]!;
  }
  return out;
}

export interface Cmd7Spec {
  handle: number;
  nportHandle?: number;
  lun?: number;
  cdb?: number[];
  direction?: 'none' | 'read' | 'write';
  segments?: { address: bigint; length: number }[];
  portId?: number;
  vpIndex?: number;
  task?: number;
  /** Overrides for malformed IOCBs. */
  entryCount?: number;
  dsegCount?: number;
  byteCount?: number;
  taskMgmtFlags?: number;
  /** Fill for DSD slots the driver leaves unwritten in the last continuation (stale ring data). */
  staleFill?: number;
}

/** Entries qla24xx_calc_iocbs() reserves for a command with `dsds` DSDs. */
export function calcIocbs(dsds: number): number {
  return dsds > 1 ? 1 + Math.ceil((dsds - 1) / 5) : 1;
}

/** The ring entries qla24xx_start_scsi writes for one command (entry 0 + continuations). */
export function buildCmd7(spec: Cmd7Spec): Uint8Array {
  const segments = spec.segments ?? [];
  const entries = calcIocbs(segments.length);
  const out = new Uint8Array(entries * ENTRY).fill(spec.staleFill ?? 0);
  const v = new DataView(out.buffer);
  out.fill(0, 0, ENTRY); // the driver memsets the command entry after the handle
  out[0] = T_CMD7;
  out[1] = spec.entryCount ?? entries;
  v.setUint32(4, spec.handle >>> 0, true);
  v.setUint16(8, spec.nportHandle ?? 0x81, true);
  v.setUint16(12, spec.dsegCount ?? segments.length, true);
  out.set(hostToFcpSwap(intToScsiLun(spec.lun ?? 0)), 16);
  const flags = spec.direction === 'write' ? 0x0001 : spec.direction === 'read' ? 0x0002 : 0;
  v.setUint16(24, spec.taskMgmtFlags ?? flags, true);
  out[26] = spec.task ?? 0;
  const cdb = new Uint8Array(16);
  cdb.set(spec.cdb ?? [0x00]);
  out.set(hostToFcpSwap(cdb), 28);
  v.setUint32(44, spec.byteCount ?? segments.reduce((sum, s) => sum + s.length, 0), true);
  const portId = spec.portId ?? 0x010203;
  out[48] = portId & 0xff;
  out[49] = (portId >> 8) & 0xff;
  out[50] = (portId >> 16) & 0xff;
  out[51] = spec.vpIndex ?? 0;
  segments.forEach((seg, k) => {
    let at: number;
    if (k === 0) at = 52;
    else {
      const cont = 1 + Math.floor((k - 1) / 5);
      if ((k - 1) % 5 === 0) {
        // qla2x00_prep_cont_type1_iocb: one 32-bit store of the type (count/sys/status = 0).
        v.setUint32(cont * ENTRY, T_CONT_A64, true);
      }
      at = cont * ENTRY + 4 + ((k - 1) % 5) * 12;
    }
    v.setBigUint64(at, seg.address, true);
    v.setUint32(at + 8, seg.length, true);
  });
  return out;
}

/** A single-entry IOCB of `type` with `handle` and a recognisable body. */
export function buildRaw(type: number, handle: number, entryCount = 1): Uint8Array {
  const out = new Uint8Array(ENTRY);
  for (let i = 8; i < ENTRY; i++) out[i] = (i * 7) & 0xff;
  out[0] = type;
  out[1] = entryCount;
  new DataView(out.buffer).setUint32(4, handle >>> 0, true);
  return out;
}

export function segmentsOf(count: number, base = 0x1_0000_0000n, length = 4096): { address: bigint; length: number }[] {
  return Array.from({ length: count }, (_, k) => ({ address: base + BigInt(k) * 0x10000n, length: length + k }));
}

export const REQ_BASE = 0x10_0000n;
export const RSP_BASE = 0x20_0000n;

/** Guest memory with a request and a response ring, and the driver's producer index. */
export class RingFixture {
  readonly mem = new ArrayGuestMemory();
  readonly req: Uint8Array;
  readonly rsp: Uint8Array;
  reqIn = 0;
  reqOut = 0;
  rspIn = 0;
  rspOut = 0;

  constructor(
    readonly reqEntries = 32,
    readonly rspEntries = 16,
  ) {
    this.req = this.mem.map(REQ_BASE, reqEntries * ENTRY);
    this.rsp = this.mem.map(RSP_BASE, rspEntries * ENTRY);
    // qla2x00_init_response_q_entries: every response slot starts "processed".
    for (let i = 0; i < rspEntries; i++) new DataView(this.rsp.buffer).setUint32(i * ENTRY + 60, 0xdeaddead, true);
  }

  configure(codec: RingCodec, limits: Parameters<RingCodec['configure']>[4] = {}): void {
    codec.configure(REQ_BASE, this.reqEntries, RSP_BASE, this.rspEntries, limits);
  }

  /** Writes entries at the producer index with wrap, then advances it (the doorbell value). */
  push(entries: Uint8Array): void {
    for (let i = 0; i < entries.length / ENTRY; i++) {
      this.req.set(entries.subarray(i * ENTRY, (i + 1) * ENTRY), this.reqIn * ENTRY);
      this.reqIn = (this.reqIn + 1) % this.reqEntries;
    }
  }

  /** Moves the producer and consumer so that the next entry lands at `index`. */
  startAt(index: number): void {
    this.reqIn = this.reqOut = index;
  }

  consume(codec: RingCodec, budget = 64): ReturnType<RingCodec['consumeRequests']> {
    const result = codec.consumeRequests(this.mem, this.reqOut, this.reqIn, budget);
    this.reqOut = result.newOut;
    return result;
  }

  flush(codec: RingCodec): ReturnType<RingCodec['flushResponses']> {
    const result = codec.flushResponses(this.mem, this.rspIn, this.rspOut);
    this.rspIn = result.newIn;
    return result;
  }

  /** The driver's side: takes every entry up to rsp_q_in, marks it processed, advances rsp_q_out. */
  drainResponses(): Uint8Array[] {
    const out: Uint8Array[] = [];
    while (this.rspOut !== this.rspIn) {
      const at = this.rspOut * ENTRY;
      out.push(this.rsp.slice(at, at + ENTRY));
      new DataView(this.rsp.buffer).setUint32(at + 60, 0xdeaddead, true);
      this.rspOut = (this.rspOut + 1) % this.rspEntries;
    }
    return out;
  }
}

/** Fields of a Status Type 0 as qla2x00_status_entry reads them (data un-swapped). */
export interface DecodedStatus {
  type: number;
  entryCount: number;
  entryStatus: number;
  handle: number;
  compStatus: number;
  oxId: number;
  residualLen: number;
  stateFlags: number;
  retryDelay: number;
  scsiStatus: number;
  rspResidualCount: number;
  senseLen: number;
  rspDataLen: number;
  /** data[28] after host_to_fcp_swap, as the driver sees it. */
  data: Uint8Array;
}

export function decodeStatus(entry: Uint8Array): DecodedStatus {
  const v = new DataView(entry.buffer, entry.byteOffset, ENTRY);
  return {
    type: entry[0]!,
    entryCount: entry[1]!,
    entryStatus: entry[3]!,
    handle: v.getUint32(4, true),
    compStatus: v.getUint16(8, true),
    oxId: v.getUint16(10, true),
    residualLen: v.getUint32(12, true),
    stateFlags: v.getUint16(18, true),
    retryDelay: v.getUint16(20, true),
    scsiStatus: v.getUint16(22, true),
    rspResidualCount: v.getUint32(24, true),
    senseLen: v.getUint32(28, true),
    rspDataLen: v.getUint32(32, true),
    data: hostToFcpSwap(entry.slice(36, 64)),
  };
}

/**
 * The sense bytes the driver collects from a status entry and the continuation entries after it
 * (qla2x00_handle_sense + qla2x00_status_cont_entry, SCSI_SENSE_BUFFERSIZE 96).
 */
export function collectSense(entries: Uint8Array[]): Uint8Array {
  const status = decodeStatus(entries[0]!);
  if (!(status.scsiStatus & 0x0200)) return new Uint8Array(0);
  const rspInfo = status.scsiStatus & 0x0100 ? status.rspDataLen : 0;
  let want = Math.min(status.senseLen, 96);
  const out: number[] = [];
  const first = Math.min(want, 28 - rspInfo);
  out.push(...status.data.subarray(rspInfo, rspInfo + first));
  want -= first;
  for (let i = 1; want > 0 && i < entries.length; i++) {
    const cont = entries[i]!;
    if (cont[0] !== T_STATUS_CONT) break;
    const data = hostToFcpSwap(cont.slice(4, 64));
    const take = Math.min(want, 60);
    out.push(...data.subarray(0, take));
    want -= take;
  }
  return Uint8Array.from(out);
}

function newestSource(dir: string): number {
  let newest = 0;
  for (const name of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, name.name);
    if (name.isDirectory()) newest = Math.max(newest, newestSource(path));
    else if (name.name.endsWith('.ts')) newest = Math.max(newest, statSync(path).mtimeMs);
  }
  return newest;
}

/**
 * Path of an up-to-date build of the engine for `target`: rebuilt with asc when missing or
 * older than assembly/ sources (into a private temp file, renamed into place atomically, so
 * test files running in parallel never see a half-written module).
 */
export function ensureEngineBuild(target: 'release' | 'debug'): string {
  const root = packageRoot();
  const file = target === 'release' ? 'ring.wasm' : 'ring.debug.wasm';
  const path = join(root, 'build', file);
  if (existsSync(path) && statSync(path).mtimeMs >= newestSource(join(root, 'assembly'))) return path;
  // asc names its side outputs (.js/.d.ts bindings, .wat, .wasm.map) after the output file.
  const stem = join(root, 'build', `ring-${target}-${process.pid}`);
  execFileSync(
    process.execPath,
    [
      join(root, 'node_modules', 'assemblyscript', 'bin', 'asc.js'),
      'assembly/index.ts',
      '--target',
      target,
      '--outFile',
      `${stem}.wasm`,
      '--textFile',
      `${stem}.wat`,
    ],
    { cwd: root, stdio: 'pipe' },
  );
  renameSync(`${stem}.wasm`, path);
  for (const extra of ['.wat', '.js', '.d.ts', '.wasm.map']) rmSync(`${stem}${extra}`, { force: true });
  return path;
}

export interface Implementation {
  name: string;
  create(): RingCodec;
}

/** Every codec the tests cover: both WASM builds (asserts on/off) and the TypeScript twin. */
export function implementations(): Implementation[] {
  const release = ensureEngineBuild('release');
  const debug = ensureEngineBuild('debug');
  return [
    { name: 'wasm release', create: () => new RingEngine({ wasmPath: release }) },
    { name: 'wasm debug', create: () => new RingEngine({ wasmPath: debug }) },
    { name: 'ts baseline', create: () => new TsRingBaseline() },
  ];
}
