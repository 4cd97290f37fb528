/**
 * Fuzz target "ring": the AssemblyScript ring engine (build/ring.wasm) driven through
 * src/isp/ring/engine.ts, with request-ring entries from the fuzzer in a fake guest memory.
 *
 * Input: [reqEntries, rspEntries, reqOut, reqIn, budget, rspOut, rspIn, limits, entries N,
 * N × 64 ring bytes written from reqOut on (wrapping), then 12-byte status descriptions posted
 * for the decoded records]. req_q_in and rsp_q_out are the guest's registers, so they are taken
 * raw (out-of-ring values included); the device's own indices are reduced into the ring.
 *
 * Oracles:
 *  - consumeRequests/postStatus/postRaw/flushResponses never throw for any guest input
 *    (guest mistakes are data: rejected entries, faults);
 *  - out of bounds: both rings sit inside one canary-filled guest window, so a write outside the
 *    response-ring slots from rsp_q_in up to the new rsp_q_in (or any write to the request ring)
 *    shows up as damaged canary bytes;
 *  - the WASM engine and its TypeScript twin (src/isp/ring/ts-baseline.ts) decode, answer and
 *    write guest memory identically. The twin's coverage also stands in for the WASM code's,
 *    which V8 block coverage cannot see.
 */
import { RingEngine } from '../../../src/isp/ring/engine.js';
import { TsRingBaseline } from '../../../src/isp/ring/ts-baseline.js';
import type { RequestEntry, RingCodec, RingLimits, StatusType0 } from '../../../src/isp/ring/types.js';
import {
  ArrayGuestMemory,
  buildCmd7,
  buildRaw,
  segmentsOf,
  T_ABORT,
  T_CONT_A64,
  T_LOGIO,
  T_MARKER,
  T_TSK_MGMT,
  T_CT,
  T_ELS,
  T_MBX,
} from '../../unit/ring/support.js';
import { FuzzFinding, u8, type FuzzTarget } from '../engine/target.js';

const ENTRY = 64;
const HEADER = 9;
const STATUS_SIZE = 12;
const MAX_REQ = 32;
const MAX_RSP = 16;
/** One window holding both rings with canary space around and between them. */
const WINDOW_BASE = 0x10_0000n;
const WINDOW_SIZE = 0x1000;
const REQ_OFFSET = 0x100;
const RSP_OFFSET = 0xa00;
const CANARY = Uint8Array.from({ length: WINDOW_SIZE }, (_, i) => (i * 0x9d + (i >>> 7) * 0x35 + 0x5a) & 0xff);

interface Decoded {
  reqEntries: number;
  rspEntries: number;
  reqOut: number;
  reqIn: number;
  budget: number;
  rspOut: number;
  rspIn: number;
  limits: Partial<RingLimits>;
  ring: Uint8Array;
  statuses: Uint8Array;
}

function decode(input: Uint8Array): Decoded {
  const b = new Uint8Array(Math.max(HEADER, input.length));
  b.set(input);
  const reqEntries = 1 + (b[0]! % MAX_REQ);
  const rspEntries = 1 + (b[1]! % MAX_RSP);
  const flags = b[7]!;
  const limits: Partial<RingLimits> = {};
  if (flags & 1) limits.maxVpIndex = 1;
  if (flags & 2) limits.maxQueueId = 1;
  if (flags & 4) limits.maxTransferBytes = 4096;
  if (flags & 8) limits.maxHandleIndex = 15;
  const n = Math.min(b[8]!, reqEntries);
  const ring = new Uint8Array(n * ENTRY);
  ring.set(b.subarray(HEADER, HEADER + n * ENTRY));
  return {
    reqEntries,
    rspEntries,
    reqOut: b[2]! % reqEntries,
    // The guest's register: usually inside the ring, sometimes not.
    reqIn: flags & 0x80 ? b[3]! : b[3]! % reqEntries,
    budget: Math.max(1, b[4]!), // the device's own budget: always positive
    rspOut: flags & 0x40 ? b[5]! : b[5]! % rspEntries,
    rspIn: b[6]! % rspEntries,
    limits,
    ring,
    statuses: b.subarray(HEADER + n * ENTRY),
  };
}

function statusFor(handle: number, s: Uint8Array): StatusType0 {
  const d = new DataView(s.buffer, s.byteOffset, STATUS_SIZE);
  const kind = s[3]! % 3;
  const senseLength = s[8]! % 120;
  const rspInfo = [0, 4, 8][s[9]! % 3]!;
  return {
    handle,
    compStatus: d.getUint16(0, true),
    scsiStatus: s[2]!,
    ...(kind ? { residual: { kind: kind === 1 ? 'under' : 'over', bytes: d.getUint32(4, true) } } : {}),
    oxId: d.getUint16(10, true),
    stateFlags: s[10]! << 4,
    retryDelay: s[11]!,
    ...(rspInfo ? { responseInfo: s.slice(0, rspInfo) } : {}),
    ...(senseLength ? { sense: Uint8Array.from({ length: senseLength }, (_, i) => (i * 13 + s[8]!) & 0xff) } : {}),
  };
}

/** Plain data for comparing the two implementations' answers. */
function plain(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) =>
    typeof v === 'bigint' ? `0x${v.toString(16)}` : v instanceof Uint8Array ? Array.from(v) : v,
  );
}

interface Outcome {
  transcript: string[];
  memory: Uint8Array;
  /** response-ring slots the device was allowed to write */
  written: Set<number>;
}

function drive(codec: RingCodec, d: Decoded): Outcome {
  const mem = new ArrayGuestMemory();
  const window = mem.map(WINDOW_BASE, WINDOW_SIZE);
  window.set(CANARY);
  // The response ring starts "processed" as qla2x00_init_response_q_entries leaves it.
  for (let k = 0; k < d.rspEntries; k++)
    new DataView(window.buffer).setUint32(RSP_OFFSET + k * ENTRY + 60, 0xdeaddead, true);
  for (let k = 0; k < d.ring.length / ENTRY; k++) {
    const slot = (d.reqOut + k) % d.reqEntries;
    window.set(d.ring.subarray(k * ENTRY, (k + 1) * ENTRY), REQ_OFFSET + slot * ENTRY);
  }
  const before = window.slice();
  codec.configure(
    WINDOW_BASE + BigInt(REQ_OFFSET),
    d.reqEntries,
    WINDOW_BASE + BigInt(RSP_OFFSET),
    d.rspEntries,
    d.limits,
  );
  codec.resetResponses();

  const transcript: string[] = [];
  const written = new Set<number>();
  const consumed = codec.consumeRequests(mem, d.reqOut, d.reqIn, d.budget);
  transcript.push(plain(consumed));
  let k = 0;
  const handles = consumed.entries.map((e: RequestEntry) => e.handle);
  for (const handle of handles) {
    const s = d.statuses.subarray(k * STATUS_SIZE, (k + 1) * STATUS_SIZE);
    if (s.length < STATUS_SIZE) break;
    k++;
    if (s[1]! & 1) {
      // A host-built raw response (e.g. an ELS/CT pass-through completion).
      const raw = new Uint8Array(ENTRY);
      raw.set(s.subarray(0, STATUS_SIZE));
      raw[0] = [0x29, 0x03, 0x04, 0x10][s[0]! & 3]!; // response types the device posts raw
      raw[1] = 1;
      new DataView(raw.buffer).setUint32(4, handle >>> 0, true);
      transcript.push(`raw ${codec.postRaw(raw)}`);
    } else {
      transcript.push(`status ${codec.postStatus(statusFor(handle, s))}`);
    }
  }
  let rspIn = d.rspIn;
  for (let pass = 0; pass < 2; pass++) {
    const flushed = codec.flushResponses(mem, rspIn, d.rspOut);
    transcript.push(plain(flushed));
    for (let i = 0; i < flushed.written; i++) written.add((rspIn + i) % d.rspEntries);
    rspIn = flushed.newIn;
  }
  // Out of bounds: every byte the device may not write still holds what it held.
  const expected = before.slice();
  for (const slot of written) {
    const at = RSP_OFFSET + slot * ENTRY;
    expected.set(window.subarray(at, at + ENTRY), at);
  }
  if (Buffer.compare(expected, window) === 0) return { transcript, memory: window, written };
  for (let i = 0; i < WINDOW_SIZE; i++) {
    const inRsp = i >= RSP_OFFSET && i < RSP_OFFSET + d.rspEntries * ENTRY;
    if (inRsp && written.has(Math.floor((i - RSP_OFFSET) / ENTRY))) continue;
    if (window[i] !== before[i]) {
      const where = inRsp
        ? `response slot ${Math.floor((i - RSP_OFFSET) / ENTRY)} (not flushed to)`
        : i >= REQ_OFFSET && i < REQ_OFFSET + d.reqEntries * ENTRY
          ? 'the request ring'
          : 'guest memory outside both rings';
      throw new FuzzFinding('out-of-bounds', `guest byte at window offset 0x${i.toString(16)} changed: ${where}`);
    }
  }
  return { transcript, memory: window, written };
}

export function createRingTarget(): FuzzTarget {
  const wasm = new RingEngine();
  const twin = new TsRingBaseline();
  return {
    name: 'ring',
    maxLen: HEADER + MAX_REQ * ENTRY + 16 * STATUS_SIZE,
    dictionary: [
      u8(0x18),
      u8(0x0a),
      u8(0x03),
      u8(0x04),
      u8(0x33),
      u8(0x52),
      u8(0x53),
      u8(0x29),
      u8(0x14),
      u8(0x39),
      u8(0xff, 0xff, 0xff, 0x0f),
      u8(0xad, 0xde, 0xad, 0xde),
    ],
    seeds() {
      const header = (n: number, reqIn: number): number[] => [16, 8, 0, reqIn, 64, 0, 0, 0, n];
      const statuses = new Uint8Array(4 * STATUS_SIZE).fill(0);
      const seed = (entries: Uint8Array, extra = statuses): Uint8Array => {
        const n = entries.length / ENTRY;
        return Uint8Array.from([...header(n, n), ...entries, ...extra]);
      };
      const two = segmentsOf(2, WINDOW_BASE + 0x3000n, 256);
      const seven = segmentsOf(7, WINDOW_BASE + 0x3000n, 64);
      const sense = new Uint8Array(STATUS_SIZE);
      sense.set([0, 0, 2, 1, 0x10, 0, 0, 0, 40, 2, 3, 0]);
      return [
        seed(
          buildCmd7({
            handle: 1,
            direction: 'read',
            segments: segmentsOf(1, WINDOW_BASE + 0x3000n, 512),
            cdb: [0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0],
          }),
          sense,
        ),
        seed(buildCmd7({ handle: 2, direction: 'write', segments: two, cdb: [0x2a] })),
        seed(buildCmd7({ handle: 3, direction: 'read', segments: seven, lun: 300 })),
        seed(Uint8Array.from([...buildRaw(T_MARKER, 0), ...buildRaw(T_TSK_MGMT, 4), ...buildRaw(T_ABORT, 5)])),
        seed(
          Uint8Array.from([
            ...buildRaw(T_LOGIO, 6),
            ...buildRaw(T_ELS, 7),
            ...buildRaw(T_CT, 8),
            ...buildRaw(T_MBX, 9),
          ]),
        ),
        seed(
          Uint8Array.from([...buildRaw(T_CONT_A64, 10), ...buildCmd7({ handle: 11, entryCount: 3, segments: two })]),
        ),
      ];
    },
    run(input) {
      const d = decode(input);
      const a = drive(wasm, d);
      const b = drive(twin, d);
      for (let i = 0; i < a.transcript.length || i < b.transcript.length; i++) {
        if (a.transcript[i] !== b.transcript[i]) {
          throw new FuzzFinding(
            'crash',
            `WASM engine and TypeScript twin disagree at step ${i}:\n  wasm: ${a.transcript[i]}\n  twin: ${b.transcript[i]}`,
          );
        }
      }
      if (Buffer.compare(a.memory, b.memory) === 0) return;
      for (let i = 0; i < a.memory.length; i++) {
        if (a.memory[i] !== b.memory[i])
          throw new FuzzFinding(
            'crash',
            `WASM engine and TypeScript twin wrote different guest memory at window offset 0x${i.toString(16)}`,
          );
      }
    },
  };
}
