/**
 * Hostile guest, request/response ring level, end to end: the real VportHba cabled to an
 * in-process SAN (one array, one RAM volume), attached over vfio-user, probed, logged in to the
 * target; then batches of good Command Type 7 READ/WRITEs mixed with malformed ones (DSDs outside
 * RAM, straddling its end, wrapping 2^64, bad dseg/entry counts, byte counts that do not add up,
 * bad handles and N_Port handles, stray continuations, unknown types) and random management IOCBs.
 * Checked: every good command gets exactly one completion; a malformed one exactly one, and it is
 * an error (entry_status or a non-zero completion status); random management IOCBs at most one;
 * no completion for a handle nobody posted; guest RAM outside the rings and the guest's own buffers keeps its canary; then producer
 * and consumer index chaos; afterwards a WRITE + READ round-trips data intact.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { REG } from '../../../src/isp/registers.js';
import {
  Cmd7,
  ContA64,
  Ct,
  Dsd64,
  Els,
  EntryType,
  IOCB_SIZE,
  IocbHeader,
  Logio,
  RESPONSE_PROCESSED,
  Sts24,
} from '../../../assembly/shared/iocb.js';
import {
  BLOCK,
  GuestMachine,
  LAYOUT,
  NPORT_HANDLE_SNS,
  RAM,
  REQ_ENTRIES,
  RSP_ENTRIES,
  TARGET_NPORT_HANDLE,
  TimeoutError,
  VPORT,
  handleOf,
  ioEntry,
  sleep,
  startHba,
  startRamSan,
  SAN_VOLUME_BLOCKS,
  withSeed,
  type HbaUnderTest,
  type TestSan,
  type Rng,
} from './support.js';

const ROUNDS = 40;
const MAX_ITEMS_PER_ROUND = 16;
/** Per-item data slot in the guest's DATA area (16 blocks). */
const SLOT = 16 * BLOCK;
const MAX_BLOCKS = 16;
const QUIET_POLLS = 4;
const ROUND_TIMEOUT_MS = 15_000;

/** RAM the device may write: probe/discovery buffers, rings, the guest's data buffers, the fuzz area. */
const DEVICE_WRITABLE: [number, number][] = [
  [LAYOUT.ICB, LAYOUT.REQ_RING],
  [LAYOUT.REQ_RING, LAYOUT.REQ_RING + REQ_ENTRIES * IOCB_SIZE],
  [LAYOUT.RSP_RING, LAYOUT.RSP_RING + RSP_ENTRIES * IOCB_SIZE],
  [LAYOUT.DATA, LAYOUT.DATA_END],
  [LAYOUT.FUZZ, RAM.SIZE],
];

type Kind = 'good' | 'malformed' | 'junk' | 'marker' | 'stray';
interface Item {
  kind: Kind;
  what: string;
  handle: number;
  entries: Uint8Array[];
}

/** A DSD address outside guest RAM, straddling its end, or wrapping 2^64. */
function badAddress(r: Rng, length: number): bigint {
  const end = RAM.BASE + BigInt(RAM.SIZE);
  switch (r.int(5)) {
    case 0:
      return end - BigInt(1 + r.int(length - 1 || 1)); // straddles the end
    case 1:
      return RAM.BASE - BigInt(length - r.int(length)); // straddles the start
    case 2:
      return (1n << 64n) - BigInt(1 + r.int(length)); // wraps 2^64
    case 3:
      return end + BigInt(r.int(1 << 20));
    default:
      return r.u64();
  }
}

/** Adds continuation entries to a Command Type 7 so that it carries `segments` DSDs. */
function withSegments(cmd: Uint8Array, segments: { address: bigint; length: number }[]): Uint8Array[] {
  const dv = new DataView(cmd.buffer);
  const first = segments[0]!;
  dv.setBigUint64(Cmd7.DSD + Dsd64.ADDRESS, BigInt.asUintN(64, first.address), true);
  dv.setUint32(Cmd7.DSD + Dsd64.LENGTH, first.length >>> 0, true);
  dv.setUint16(Cmd7.DSEG_COUNT, segments.length, true);
  const entries = [cmd];
  for (let k = 1; k < segments.length; k += ContA64.DSDS_PER_ENTRY) {
    const cont = new Uint8Array(IOCB_SIZE);
    const cv = new DataView(cont.buffer);
    cont[IocbHeader.ENTRY_TYPE] = EntryType.CONTINUE_A64_TYPE;
    for (let j = 0; j < ContA64.DSDS_PER_ENTRY && k + j < segments.length; j++) {
      const s = segments[k + j]!;
      cv.setBigUint64(ContA64.DSD + j * Dsd64.SIZE + Dsd64.ADDRESS, BigInt.asUintN(64, s.address), true);
      cv.setUint32(ContA64.DSD + j * Dsd64.SIZE + Dsd64.LENGTH, s.length >>> 0, true);
    }
    entries.push(cont);
  }
  cmd[IocbHeader.ENTRY_COUNT] = entries.length;
  return entries;
}

/** Splits `bytes` at `slot` into 1..7 segments of whole-byte lengths. */
function splitSegments(r: Rng, slot: bigint, bytes: number): { address: bigint; length: number }[] {
  const n = Math.min(1 + r.int(7), bytes);
  const out: { address: bigint; length: number }[] = [];
  let at = 0;
  for (let i = 0; i < n; i++) {
    const left = bytes - at;
    const length = i === n - 1 ? left : 1 + r.int(left - (n - 1 - i));
    out.push({ address: slot + BigInt(at), length });
    at += length;
  }
  return out;
}

class RingFuzzer {
  private nextHandle = 1;
  private nextBadQueue = 1;
  readonly items = new Map<number, Item>();
  readonly seen = new Map<number, Uint8Array[]>();
  readonly unmatched: Uint8Array[] = [];

  constructor(
    private readonly g: GuestMachine,
    private readonly r: Rng,
  ) {}

  private handle(): number {
    return this.nextHandle++;
  }

  /** One good READ/WRITE, possibly scattered over continuation entries. */
  good(slot: number): Item {
    const r = this.r;
    const handle = this.handle();
    const blocks = 1 + r.int(MAX_BLOCKS);
    const lba = r.int(SAN_VOLUME_BLOCKS - blocks);
    const direction = r.chance(0.5) ? 'read' : 'write';
    const address = this.g.addr(LAYOUT.DATA + slot * SLOT);
    const cmd = ioEntry(handle, direction, lba, blocks, address, this.g.targetPortId);
    const entries = r.chance(0.4) ? withSegments(cmd, splitSegments(r, address, blocks * BLOCK)) : [cmd];
    return { kind: 'good', what: `${direction} lba ${lba} x${blocks} in ${entries.length} entries`, handle, entries };
  }

  /** A Command Type 7 with exactly one thing wrong. */
  malformed(slot: number): Item {
    const r = this.r;
    let handle = this.handle();
    const blocks = 1 + r.int(MAX_BLOCKS);
    const bytes = blocks * BLOCK;
    const direction = r.chance(0.5) ? 'read' : 'write';
    const address = this.g.addr(LAYOUT.DATA + slot * SLOT);
    const cmd = ioEntry(handle, direction, r.int(SAN_VOLUME_BLOCKS - blocks), blocks, address, this.g.targetPortId);
    const dv = new DataView(cmd.buffer);
    let entries = [cmd];
    const variant = r.int(13);
    let what: string;
    switch (variant) {
      case 0: {
        const a = badAddress(r, bytes);
        dv.setBigUint64(Cmd7.DSD + Dsd64.ADDRESS, BigInt.asUintN(64, a), true);
        what = `DSD at 0x${BigInt.asUintN(64, a).toString(16)}`;
        break;
      }
      case 1: {
        // A scatter list whose last segment lies outside RAM.
        const segs = splitSegments(r, address, bytes);
        const last = segs[segs.length - 1]!;
        last.address = badAddress(r, last.length);
        entries = withSegments(cmd, segs);
        what = `segment list (${segs.length}) ending outside RAM`;
        break;
      }
      case 2:
        dv.setUint16(Cmd7.DSEG_COUNT, r.pick([0xffff, 2, 6, 1000]), true);
        what = 'dseg_count disagrees with entry_count';
        break;
      case 3:
        dv.setUint32(Cmd7.BYTE_COUNT, r.pick([0xffffffff, bytes + 1, bytes - 1, 0x7fffffff]), true);
        what = 'byte_count disagrees with the DSDs';
        break;
      case 4:
        dv.setUint32(Cmd7.DSD + Dsd64.LENGTH, 0xffffffff, true);
        dv.setUint32(Cmd7.BYTE_COUNT, 0xffffffff, true);
        what = 'huge DSD and byte_count';
        break;
      case 5:
        dv.setUint16(Cmd7.NPORT_HANDLE, r.pick([0x800, 0xffff, 0x123, NPORT_HANDLE_SNS]), true);
        what = 'N_Port handle out of range or not logged in';
        break;
      case 6:
        cmd[IocbHeader.ENTRY_COUNT] = 0;
        what = 'entry_count 0';
        break;
      case 7:
        handle = (this.nextBadQueue++ << 16) | (r.chance(0.5) ? 0 : 1 + r.int(0xffff));
        dv.setUint32(IocbHeader.HANDLE, handle >>> 0, true);
        what = 'handle with a queue id out of range';
        break;
      case 8:
        dv.setUint16(Cmd7.TASK_MGMT_FLAGS, r.pick([0x0003, 0x0104, 0xffff]), true);
        what = 'bad data direction flags';
        break;
      case 9:
        cmd[Cmd7.TASK] = r.pick([0x80, 0x07, 0x03]);
        what = 'bad task attribute';
        break;
      case 10:
        dv.setUint32(Cmd7.DSD + Dsd64.LENGTH, 0, true);
        what = 'zero-length DSD';
        break;
      case 11:
        cmd[IocbHeader.ENTRY_TYPE] = r.pick([0x00, 0x77, 0xff, EntryType.STATUS_TYPE, EntryType.VP_RPT_ID_IOCB_TYPE]);
        what = `entry type 0x${cmd[0]!.toString(16)}`;
        break;
      default: {
        // Continuation entries that are not continuations.
        const segs = splitSegments(r, address, bytes);
        entries = withSegments(cmd, segs.length > 1 ? segs : [...segs.slice(0, 1), { address, length: 0 }]);
        if (entries.length > 1) entries[1]![IocbHeader.ENTRY_TYPE] = r.pick([EntryType.COMMAND_TYPE_7, 0x00, 0x55]);
        else cmd[IocbHeader.ENTRY_COUNT] = 2;
        what = 'bad continuation entry';
        break;
      }
    }
    return { kind: 'malformed', what, handle: handle >>> 0, entries };
  }

  /** A management IOCB with random fields (its N_Port handle never the target's, so the session survives). */
  junk(): Item {
    const r = this.r;
    const handle = this.handle();
    const type = r.pick([
      EntryType.MARKER_TYPE,
      EntryType.TSK_MGMT_IOCB_TYPE,
      EntryType.CT_IOCB_TYPE,
      EntryType.VP_CTRL_IOCB_TYPE,
      EntryType.VP_CONFIG_IOCB_TYPE,
      EntryType.ABORT_IOCB_TYPE,
      EntryType.MBX_IOCB_TYPE,
      EntryType.LOGINOUT_PORT_IOCB_TYPE,
      EntryType.ELS_IOCB_TYPE,
    ]);
    const bytes = r.bytes(IOCB_SIZE);
    const dv = new DataView(bytes.buffer);
    bytes[IocbHeader.ENTRY_TYPE] = type;
    bytes[IocbHeader.ENTRY_COUNT] = 1;
    bytes[IocbHeader.ENTRY_STATUS] = 0;
    dv.setUint32(IocbHeader.HANDLE, handle, true);
    // Keep the one real session: no logout/abort/TMF aimed at the target's N_Port handle or port id.
    const nportOffset =
      type === EntryType.LOGINOUT_PORT_IOCB_TYPE || type === EntryType.CT_IOCB_TYPE || type === EntryType.ELS_IOCB_TYPE
        ? Logio.NPORT_HANDLE
        : 8;
    if (dv.getUint16(nportOffset, true) === TARGET_NPORT_HANDLE) dv.setUint16(nportOffset, 0x7ff, true);
    if ((dv.getUint32(48, true) & 0xffffff) === this.g.targetPortId) bytes[48] = bytes[48]! ^ 0x55;
    // Pass-through IOCBs with buffers inside RAM (random payloads) get past the DMA checks to the fabric.
    if ((type === EntryType.CT_IOCB_TYPE || type === EntryType.ELS_IOCB_TYPE) && r.chance(0.6))
      this.passThroughBuffers(bytes, type);
    return {
      kind: type === EntryType.MARKER_TYPE ? 'marker' : 'junk',
      what: `random type 0x${type.toString(16)}`,
      handle,
      entries: [bytes],
    };
  }

  private fuzzCursor = 0;

  /** Points a CT/ELS pass-through's one command and one response DSD at random payloads in the fuzz area. */
  private passThroughBuffers(bytes: Uint8Array, type: number): void {
    const r = this.r;
    const dv = new DataView(bytes.buffer);
    const cmdLength = 1 + r.int(r.chance(0.8) ? 256 : 0x2000);
    const rspLength = 1 + r.int(r.chance(0.8) ? 1024 : 0x10000);
    const span = cmdLength + rspLength;
    if (this.fuzzCursor + span > RAM.SIZE - LAYOUT.FUZZ) this.fuzzCursor = 0;
    const cmdAt = LAYOUT.FUZZ + this.fuzzCursor;
    const rspAt = cmdAt + cmdLength;
    this.fuzzCursor += span;
    const payload = r.bytes(cmdLength);
    if (type === EntryType.CT_IOCB_TYPE) {
      payload.set([1, 0, 0, 0, r.pick([0xfc, 0xfa, r.int(256)]), r.pick([0x02, 0x01, r.int(256)])].slice(0, cmdLength)); // CT preamble: GS type / subtype
      dv.setUint16(Ct.NPORT_HANDLE, r.chance(0.8) ? NPORT_HANDLE_SNS : r.int(0x800), true);
      dv.setUint16(Ct.CMD_DSD_COUNT, 1, true);
      dv.setUint16(Ct.RSP_DSD_COUNT, 1, true);
      dv.setUint32(Ct.CMD_BYTE_COUNT, cmdLength, true);
      dv.setUint32(Ct.RSP_BYTE_COUNT, rspLength, true);
      dv.setBigUint64(Ct.DSD0 + Dsd64.ADDRESS, this.g.addr(cmdAt), true);
      dv.setUint32(Ct.DSD0 + Dsd64.LENGTH, cmdLength, true);
      dv.setBigUint64(Ct.DSD1 + Dsd64.ADDRESS, this.g.addr(rspAt), true);
      dv.setUint32(Ct.DSD1 + Dsd64.LENGTH, rspLength, true);
    } else {
      // Harmless ELS opcodes (RLS, ECHO, RRQ, ADISC, RNID) or unknown ones: never LOGO/PRLO aimed at the target.
      payload[0] = r.pick([0x0f, 0x10, 0x12, 0x52, 0x78, 0xee, 0x00]);
      dv.setUint16(Els.NPORT_HANDLE, r.chance(0.5) ? TARGET_NPORT_HANDLE : r.int(0x800), true);
      bytes[Els.OPCODE] = payload[0]!;
      dv.setUint16(Els.TX_DSD_COUNT, 1, true);
      dv.setUint16(Els.RX_DSD_COUNT, 1, true);
      dv.setUint32(Els.TX_BYTE_COUNT, cmdLength, true);
      dv.setUint32(Els.RX_BYTE_COUNT, rspLength, true);
      dv.setBigUint64(Els.TX_ADDRESS, this.g.addr(cmdAt), true);
      dv.setUint32(Els.TX_LEN, cmdLength, true);
      dv.setBigUint64(Els.RX_ADDRESS, this.g.addr(rspAt), true);
      dv.setUint32(Els.RX_LEN, rspLength, true);
    }
    this.g.ram.set(payload, cmdAt);
  }

  /** A continuation entry on its own (no handle: nothing for the driver to match). */
  stray(): Item {
    const bytes = this.r.bytes(IOCB_SIZE);
    bytes[IocbHeader.ENTRY_TYPE] = EntryType.CONTINUE_A64_TYPE;
    bytes[IocbHeader.ENTRY_COUNT] = 0;
    return { kind: 'stray', what: 'stray continuation', handle: -1, entries: [bytes] };
  }

  batch(): Item[] {
    const r = this.r;
    const out: Item[] = [];
    const n = 1 + r.int(MAX_ITEMS_PER_ROUND);
    for (let slot = 0; slot < n; slot++) {
      const p = r.int(10);
      out.push(p < 4 ? this.good(slot) : p < 7 ? this.malformed(slot) : p < 9 ? this.junk() : this.stray());
    }
    // Sometimes end the batch with an entry whose entry_count runs past the producer index.
    if (r.chance(0.2)) {
      const e = this.good(n);
      e.entries[0]![IocbHeader.ENTRY_COUNT] = e.entries.length + 1 + r.int(200);
      out.push({ ...e, kind: 'malformed', what: 'entry_count beyond the producer index' });
    }
    for (const it of out) if (it.handle >= 0) this.items.set(it.handle, it);
    return out;
  }

  record(completions: Uint8Array[]): void {
    for (const c of completions) {
      const h = handleOf(c);
      if (!this.items.has(h)) {
        this.unmatched.push(c);
        continue;
      }
      const list = this.seen.get(h) ?? [];
      list.push(c);
      this.seen.set(h, list);
    }
  }

  pendingGood(batch: Item[]): number {
    return batch.filter((it) => it.kind === 'good' && !this.seen.has(it.handle)).length;
  }
}

function isError(c: Uint8Array): boolean {
  const dv = new DataView(c.buffer, c.byteOffset);
  if (c[IocbHeader.ENTRY_STATUS] !== 0) return true;
  if (c[IocbHeader.ENTRY_TYPE] === EntryType.STATUS_TYPE)
    return dv.getUint16(Sts24.COMP_STATUS, true) !== 0 || (dv.getUint16(Sts24.SCSI_STATUS, true) & 0xff) !== 0;
  return true; // a malformed Command Type 7 answered with anything but a status is itself an error report
}

function describeCompletion(c: Uint8Array): string {
  const dv = new DataView(c.buffer, c.byteOffset);
  return `type 0x${c[0]!.toString(16)} entry_status 0x${c[3]!.toString(16)} handle 0x${handleOf(c).toString(16)} comp 0x${dv.getUint16(8, true).toString(16)}`;
}

/** Waits until every good command of the batch completed, the request ring is consumed and no completion came for a while. */
async function settle(g: GuestMachine, f: RingFuzzer, batch: Item[]): Promise<void> {
  const deadline = Date.now() + ROUND_TIMEOUT_MS;
  let quiet = 0;
  while (true) {
    if (Date.now() > deadline) {
      const missing = batch
        .filter((it) => it.kind === 'good' && !f.seen.has(it.handle))
        .map((it) => `0x${it.handle.toString(16)} ${it.what}`);
      throw new TimeoutError(
        `round did not settle in ${ROUND_TIMEOUT_MS} ms; good commands without completion: ${missing.join('; ')}`,
      );
    }
    await g.pollOnce();
    const got = g.reap();
    f.record(got);
    const consumed = (await g.r32(REG.REQ_Q_OUT)) === g.reqIn;
    quiet = got.length === 0 && consumed && f.pendingGood(batch) === 0 ? quiet + 1 : 0;
    if (quiet >= QUIET_POLLS) return;
    await sleep(2);
  }
}

/** A READ/WRITE, retried past unit attentions; returns the completion. */
async function io(
  g: GuestMachine,
  handle: number,
  direction: 'read' | 'write',
  lba: number,
  blocks: number,
  dataOffset: number,
): Promise<Uint8Array> {
  for (let attempt = 0; attempt < 4; attempt++) {
    const c = await g.iocb(
      ioEntry(handle + attempt, direction, lba, blocks, g.addr(dataOffset), g.targetPortId),
      10_000,
    );
    const dv = new DataView(c.buffer, c.byteOffset);
    if (dv.getUint16(Sts24.COMP_STATUS, true) === 0 && (dv.getUint16(Sts24.SCSI_STATUS, true) & 0xff) === 2) continue; // CHECK CONDITION (unit attention)
    return c;
  }
  throw new Error(`${direction} kept failing`);
}

function completedOk(c: Uint8Array): boolean {
  const dv = new DataView(c.buffer, c.byteOffset);
  return (
    c[IocbHeader.ENTRY_STATUS] === 0 &&
    dv.getUint16(Sts24.COMP_STATUS, true) === 0 &&
    (dv.getUint16(Sts24.SCSI_STATUS, true) & 0xff) === 0
  );
}

/** WRITE a pattern, READ it back elsewhere, compare. */
async function roundTripData(
  g: GuestMachine,
  handleBase: number,
  lba: number,
  blocks: number,
  seed: number,
): Promise<void> {
  const out = LAYOUT.DATA;
  const back = LAYOUT.DATA + 0x20000;
  const pattern = new Uint8Array(blocks * BLOCK).map((_, i) => (i * 13 + seed) & 0xff);
  g.ram.set(pattern, out);
  g.ram.fill(0, back, back + pattern.length);
  expect(completedOk(await io(g, handleBase, 'write', lba, blocks, out))).toBe(true);
  expect(completedOk(await io(g, handleBase + 8, 'read', lba, blocks, back))).toBe(true);
  expect(g.ram.subarray(back, back + pattern.length)).toEqual(pattern);
}

describe('hostile guest: request ring through vfio-user, cabled to a SAN', () => {
  let san: TestSan;
  let hut: HbaUnderTest;
  let guest: GuestMachine;
  beforeEach(async () => {
    san = await startRamSan();
    hut = startHba({ sanLink: san.linkPath, wwpn: VPORT.wwpn, wwnn: VPORT.wwnn });
    guest = await GuestMachine.attach(hut.socketPath);
    await guest.probe();
    await guest.discover();
  });
  afterEach(async () => {
    guest.close();
    await hut.close();
    await san.close();
  });

  it('answers good commands once and malformed ones with errors, stays inside its rings, survives index chaos', async () => {
    await withSeed(0x5eed0003, async (r) => {
      await roundTripData(guest, 0x700, 100, 8, 1);
      const f = new RingFuzzer(guest, r);
      for (let round = 0; round < ROUNDS; round++) {
        const batch = f.batch();
        for (const it of batch) for (const e of it.entries) guest.queue(e);
        guest.doorbell();
        await settle(guest, f, batch);
      }

      const problems: string[] = [];
      let goodOk = 0;
      let malformedAnswered = 0;
      for (const [handle, it] of f.items) {
        const got = f.seen.get(handle) ?? [];
        const tag = `0x${handle.toString(16)} ${it.kind} (${it.what})`;
        if (it.kind === 'good') {
          if (got.length !== 1) problems.push(`${tag}: ${got.length} completions`);
          else if (completedOk(got[0]!)) goodOk++;
        } else if (got.length > 1) {
          problems.push(`${tag}: ${got.length} completions: ${got.map(describeCompletion).join(' / ')}`);
        } else if (it.kind === 'malformed') {
          // Each carries a handle the driver can match, so each must come back, as an error.
          if (got.length === 0) problems.push(`${tag}: no completion`);
          else if (!isError(got[0]!))
            problems.push(`${tag}: completed without an error: ${describeCompletion(got[0]!)}`);
          else malformedAnswered++;
        }
      }
      // Unsolicited firmware entries (VP report ID) carry no guest handle; anything else must match one.
      for (const c of f.unmatched)
        if (c[0] !== EntryType.VP_RPT_ID_IOCB_TYPE)
          problems.push(`completion for a handle nobody posted: ${describeCompletion(c)}`);
      if (process.env.HOSTILE_DEBUG) {
        const junkOutcomes: Record<string, number> = {};
        for (const [h, it] of f.items) {
          if (it.kind !== 'junk') continue;
          const c = f.seen.get(h)?.[0];
          const key = `${it.what} -> ${c ? `es ${c[3]} cs ${new DataView(c.buffer, c.byteOffset).getUint16(8, true).toString(16)}` : 'none'}`;
          junkOutcomes[key] = (junkOutcomes[key] ?? 0) + 1;
        }
        console.log('ring fuzz', { goods: goodOk, malformedAnswered, unmatched: f.unmatched.length, junkOutcomes });
      }
      expect(problems).toEqual([]);
      const goods = [...f.items.values()].filter((it) => it.kind === 'good').length;
      expect(goods).toBeGreaterThan(50);
      expect(goodOk).toBeGreaterThan(goods / 2);
      expect(malformedAnswered).toBeGreaterThan(20);
      expect(guest.canaryDamage(DEVICE_WRITABLE)).toEqual([]);
      expect(hut.logs.failures()).toEqual([]);

      // Index chaos: out-of-range and backward producer indices, wild consumer indices.
      for (let i = 0; i < 300; i++) {
        const which = r.int(4);
        if (which === 0) guest.w32(REG.REQ_Q_IN, r.pick([REQ_ENTRIES, REQ_ENTRIES + 1, 0xffff, 0xffffffff, r.u32()]));
        else if (which === 1) guest.w32(REG.REQ_Q_IN, r.int(REQ_ENTRIES));
        else if (which === 2) guest.w32(REG.RSP_Q_OUT, r.chance(0.5) ? r.int(RSP_ENTRIES) : r.u32());
        else guest.w32(r.pick([REG.REQ_Q_OUT, REG.RSP_Q_IN]), r.chance(0.5) ? 0 : r.u32());
        if (i % 20 === 0) {
          await guest.pollOnce();
          guest.reap();
        }
      }
      // Resynchronize like a driver after an ISP error: wait for the device to go quiet, adopt its indices.
      let last = -1;
      for (let i = 0; i < 500; i++) {
        await guest.pollOnce();
        const reqOut = await guest.r32(REG.REQ_Q_OUT);
        const reqIn = await guest.r32(REG.REQ_Q_IN);
        if (reqOut === reqIn && reqOut === last) break;
        last = reqOut === reqIn ? reqOut : -1;
        await sleep(5);
      }
      guest.reqIn = await guest.r32(REG.REQ_Q_OUT);
      for (let i = 0; i < RSP_ENTRIES; i++)
        guest.view.setUint32(LAYOUT.RSP_RING + i * IOCB_SIZE + IocbHeader.SIGNATURE, RESPONSE_PROCESSED, true);
      guest.rspOut = await guest.r32(REG.RSP_Q_IN);
      guest.w32(REG.RSP_Q_OUT, guest.rspOut);
      expect(guest.reqIn).toBeLessThan(REQ_ENTRIES);
      expect(guest.rspOut).toBeLessThan(RSP_ENTRIES);

      // The HBA still does real I/O with correct data.
      await roundTripData(guest, 0x710, 1000, 16, 7);
      expect(guest.canaryDamage(DEVICE_WRITABLE)).toEqual([]);
      expect(hut.logs.failures()).toEqual([]);
    });
  });
});
