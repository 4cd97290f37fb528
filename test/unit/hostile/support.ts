/**
 * Support for the end-to-end hostile-guest tests: the REAL composed HBA (src/hba.ts VportHba:
 * ISP2532 model + PCI function + vfio-user server) on a real Unix socket, attached through the
 * in-repo vfio-user client the way QEMU >= 10.1 attaches, with a memfd as guest RAM.
 *
 *  - `rng(seed)`: a deterministic xorshift32 PRNG, so every failure is reproducible from its seed.
 *  - `LogCapture`: a pino logger into memory; the tests assert that no error-level record (a
 *    handler that threw, "crashed", "uncaught") was logged by the server.
 *  - `startHba()`: a VportHba on a temporary socket, optionally cabled to a SAN link socket.
 *  - `GuestMachine`: guest RAM (memfd, mapped at RAM.BASE, pre-filled with a canary pattern),
 *    BAR1 register access, polled mailboxes with a bounded wait, the qla2xxx probe, SNS login,
 *    GPN_FT, PLOGI+PRLI and Command Type 7 I/O on the rings.
 *
 * Guest-physical layout (RAM.BASE = 1 MiB, so addresses below and above RAM are unmapped):
 *
 *   RAM.BASE + 0x000000  ┌──────────────────────────────┐
 *              0x001000  │ ICB (128 bytes)              │
 *              0x002000  │ scratch (IOCB via mailbox)   │
 *              0x004000  │ CT request / 0x5000 response │
 *              0x010000  │ request ring  (REQ_ENTRIES)  │
 *              0x020000  │ response ring (RSP_ENTRIES)  │
 *              0x040000  │ I/O data buffers             │
 *              0x200000  │ fuzz target area (to the end)│
 *   RAM.BASE + RAM.SIZE  └──────────────────────────────┘
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino, type Logger } from 'pino';
import { VportHba } from '../../../src/hba.js';
import type { FabricPort } from '../../../src/isp/fabric-port.js';
import { InitiatorFabricPort } from '../../../src/isp/initiator-fabric.js';
import type { Isp2532Interrupts } from '../../../src/isp/pci-identity.js';
import { HCCRX, REG } from '../../../src/isp/registers.js';
import { native } from '../../../src/native/index.js';
import { parseSanConfig } from '../../../src/san/config.js';
import { connectLink } from '../../../src/san/link.js';
import { San } from '../../../src/san/san.js';
import { VfioUserClient } from '../../../src/vfio-user/client.js';
import { PCI_REGION } from '../../../src/vfio-user/protocol.js';
import {
  Cmd7,
  Cmd7Flags,
  Ct,
  Dsd64,
  EntryType,
  IOCB_SIZE,
  IocbHeader,
  Logio,
  RESPONSE_PROCESSED,
} from '../../../assembly/shared/iocb.js';

// --- deterministic randomness ------------------------------------------------------------

export interface Rng {
  readonly seed: number;
  /** uniform u32 */
  u32(): number;
  /** uniform integer in [0, n) */
  int(n: number): number;
  pick<T>(items: readonly T[]): T;
  chance(p: number): boolean;
  bytes(n: number): Uint8Array;
  /** a random u64 as bigint */
  u64(): bigint;
}

/** xorshift32; the seed is printed by the tests on failure. */
export function rng(seed: number): Rng {
  let x = seed >>> 0 || 1;
  const u32 = (): number => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
  return {
    seed,
    u32,
    int: (n) => (n <= 1 ? 0 : u32() % n),
    pick: (items) => items[u32() % items.length]!,
    chance: (p) => u32() / 0x1_0000_0000 < p,
    bytes: (n) => {
      const b = new Uint8Array(n);
      for (let i = 0; i < n; i++) b[i] = u32() & 0xff;
      return b;
    },
    u64: () => (BigInt(u32()) << 32n) | BigInt(u32()),
  };
}

/**
 * Runs `body` with a PRNG; on failure re-throws with the seed in the message so the case can be
 * replayed (HOSTILE_SEED=0x... in the environment overrides every test's default seed).
 */
export async function withSeed<T>(defaultSeed: number, body: (r: Rng) => Promise<T>): Promise<T> {
  const seed = process.env.HOSTILE_SEED ? Number(process.env.HOSTILE_SEED) >>> 0 : defaultSeed;
  try {
    return await body(rng(seed));
  } catch (err) {
    const e = err as Error;
    e.message = `[seed 0x${seed.toString(16)}] ${e.message}`;
    throw e;
  }
}

// --- log capture ---------------------------------------------------------------------------

export interface LogRecord {
  level: number;
  msg?: string;
  [key: string]: unknown;
}

/**
 * Error-level records that are deliberate advice to the operator about a peer's configuration,
 * not a server failure (session.ts: a DMA window without an fd means QEMU's RAM is not shared).
 */
const OPERATOR_DIAGNOSTICS = [/^DMA_MAP of writable guest memory without a file descriptor/];
/** pino levels: 50 = error, 60 = fatal. */
const PINO_ERROR = 50;

/** A pino logger writing parsed records into memory (warn and above). */
export class LogCapture {
  readonly records: LogRecord[] = [];
  readonly logger: Logger;
  constructor(level = 'warn') {
    this.logger = pino({ level, base: null }, { write: (line: string) => void this.records.push(JSON.parse(line) as LogRecord) });
  }
  /** Records saying the server failed: error/fatal level, or anything mentioning an uncaught exception. */
  failures(): LogRecord[] {
    return this.records.filter(
      (r) => (r.level >= PINO_ERROR || /uncaught|crash/i.test(JSON.stringify(r))) && !OPERATOR_DIAGNOSTICS.some((d) => d.test(r.msg ?? '')),
    );
  }
}

// --- the HBA under test --------------------------------------------------------------------

export const VPORT = { wwpn: 0xc05076ffe5000101n, wwnn: 0xc05076ffe5000100n };

export interface HbaUnderTest {
  hba: VportHba;
  socketPath: string;
  logs: LogCapture;
  fabric: FabricPort | null;
  close(): Promise<void>;
}

/** A VportHba on a fresh socket; with `sanLink`, cabled to that SAN link socket (as `serve --san`). */
export function startHba(o: { sanLink?: string; wwpn?: bigint; wwnn?: bigint; interrupts?: Isp2532Interrupts } = {}): HbaUnderTest {
  const dir = mkdtempSync(join(tmpdir(), 'npiv-hostile-'));
  const socketPath = join(dir, 'vport.sock');
  const logs = new LogCapture();
  const sanLink = o.sanLink;
  const fabric =
    sanLink === undefined
      ? null
      : new InitiatorFabricPort({ connect: () => connectLink(sanLink), log: logs.logger.child({ layer: 'fabric' }) });
  const hba = new VportHba({
    socketPath,
    wwpn: o.wwpn ?? VPORT.wwpn,
    wwnn: o.wwnn ?? VPORT.wwnn,
    fabric,
    log: logs.logger,
    ...(o.interrupts ? { interrupts: o.interrupts } : {}),
  });
  hba.start();
  return {
    hba,
    socketPath,
    logs,
    fabric,
    async close() {
      hba.close();
      if (fabric instanceof InitiatorFabricPort) await fabric.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

// --- an in-process SAN ---------------------------------------------------------------------

export const SAN_TARGET = { wwpn: '50:0a:09:81:00:00:00:01', wwnn: '50:0a:09:80:00:00:00:01' };
/** The RAM volume behind LUN 0 of the target: 1 MiB = 2048 blocks of 512 bytes. */
export const SAN_VOLUME_BLOCKS = 2048;

export interface TestSan {
  san: San;
  linkPath: string;
  close(): Promise<void>;
}

/** One fabric (zoning: allow), one array with one target port and a RAM volume as LUN 0 for VPORT. */
export async function startRamSan(): Promise<TestSan> {
  const dir = mkdtempSync(join(tmpdir(), 'npiv-hostile-san-'));
  const linkPath = join(dir, 'link.sock');
  const config = parseSanConfig({
    fabric: { name: 'hostile', domain: 1, zoning: { default: 'allow', zones: [] } },
    arrays: [
      {
        name: 'array1',
        ports: [SAN_TARGET],
        volumes: [{ name: 'ram', size: '1MiB' }],
        hostGroups: [{ name: 'h', initiators: [formatWwnColons(VPORT.wwpn)], luns: { '0': 'ram' } }],
      },
    ],
  });
  const san = await San.start(config, { linkPath, targetPortOptions: { exchangeTimeoutMs: 2000 } });
  return {
    san,
    linkPath,
    async close() {
      await san.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function formatWwnColons(w: bigint): string {
  return w.toString(16).padStart(16, '0').replace(/(..)(?!$)/g, '$1:');
}

// --- the guest ------------------------------------------------------------------------------

export const RAM = { BASE: 0x10_0000n, SIZE: 4 * 1024 * 1024 } as const;
export const LAYOUT = {
  ICB: 0x1000,
  SCRATCH: 0x2000,
  CT_REQUEST: 0x4000,
  CT_RESPONSE: 0x5000,
  CT_RESPONSE_SIZE: 0x1000,
  REQ_RING: 0x10000,
  RSP_RING: 0x20000,
  DATA: 0x40000,
  DATA_END: 0x200000,
  FUZZ: 0x200000,
} as const;
export const REQ_ENTRIES = 128;
export const RSP_ENTRIES = 128;

/** The byte the canary pattern holds at RAM offset i (not periodic at any small power of two). */
export function canaryByte(i: number): number {
  return (i * 0x9d + (i >>> 7) * 0x35 + 0x5a) & 0xff;
}

/** PCI config space (PCI 3.0) offsets the guest touches. */
const PCI_COMMAND = 0x04;
const PCI_COMMAND_MEMORY = 0x2;
const PCI_COMMAND_MASTER = 0x4;

/** HOST_STATUS (qla_def.h HSRX_RISC_INT and the 24xx interrupt types). */
export const HSRX_RISC_INT = 0x8000;
const INT_TYPE_MASK = 0xff;
const INT_MAILBOX = new Set([0x01, 0x02, 0x10, 0x11]);
const INT_ASYNC_EVENT = 0x12;
const MAILBOXES = 32;
/** qla24xx_reset_risc's CTRL_STATUS write (DMA shutdown + ISP reset + burst setting). */
const CTRL_STATUS_RESET = 0x10031;

export const MBC = {
  EXECUTE_FIRMWARE: 0x02,
  VERIFY_CHECKSUM: 0x07,
  LOAD_RISC_RAM_EXTENDED: 0x0b,
  GET_ADAPTER_LOOP_ID: 0x20,
  GET_FIRMWARE_STATE: 0x69,
  IOCB_COMMAND_A64: 0x54,
  INITIALIZE_FIRMWARE: 0x60,
} as const;
export const MBS_COMMAND_COMPLETE = 0x4000;
const MBA_LOOP_UP = 0x8011;
const MBA_PORT_UPDATE = 0x8014;
const RISC_START_ADDRESS = 0x100000;

/** init_cb_24xx fields the guest fills (qla_fw.h). */
const ICB = {
  SIZE: 128,
  VERSION: 0,
  FRAME_PAYLOAD_SIZE: 4,
  PORT_NAME: 12,
  NODE_NAME: 20,
  RSP_Q_LENGTH: 36,
  REQ_Q_LENGTH: 38,
  REQ_Q_ADDRESS: 44,
  RSP_Q_ADDRESS: 52,
  FIRMWARE_OPTIONS_2: 92,
} as const;
const ICB_FW_OPTIONS_2 = 0x6006;

export const NPORT_HANDLE_SNS = 0x7fc;
const SNS_PORT_ID = 0xfffffc;
export const TARGET_NPORT_HANDLE = 0x81;
/** Handles are (queue 0 << 16) | index, index 1..2047 (the firmware's exchange count): discovery uses the top two. */
export const MAX_HANDLE_INDEX = 2047;
const DISCOVERY_HANDLE = MAX_HANDLE_INDEX - 1;
const LOGIO_PLOGI_THEN_PRLI = 0x10;
const LOGIO_SNS_FLAGS = 0x10 | 0x20;
const CT_GPN_FT = 0x0172;
const CT_FC4_FCP = 0x08;
const CT_ACCEPT = 0x8002;
const GPN_FT_ENTRY_SIZE = 16;
const GPN_FT_LAST = 0x80;
export const SCSI_READ_10 = 0x28;
export const SCSI_WRITE_10 = 0x2a;
export const BLOCK = 512;

export class TimeoutError extends Error {}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Dword-swaps (qla2xxx host_to_fcp_swap) a CDB or LUN. */
export function swapDwords(src: Uint8Array): Uint8Array {
  const out = new Uint8Array(src.length);
  for (let i = 0; i < src.length; i++) out[(i & ~3) + 3 - (i & 3)] = src[i]!;
  return out;
}

function writePortIdLe(dv: DataView, offset: number, id: number): void {
  dv.setUint8(offset, id & 0xff);
  dv.setUint8(offset + 1, (id >> 8) & 0xff);
  dv.setUint8(offset + 2, (id >> 16) & 0xff);
}

/** A fresh 64-byte request entry with type, entry_count 1 and handle. */
export function newEntry(type: number, handle: number): { bytes: Uint8Array; dv: DataView } {
  const bytes = new Uint8Array(IOCB_SIZE);
  const dv = new DataView(bytes.buffer);
  bytes[IocbHeader.ENTRY_TYPE] = type;
  bytes[IocbHeader.ENTRY_COUNT] = 1;
  dv.setUint32(IocbHeader.HANDLE, handle >>> 0, true);
  return { bytes, dv };
}

/** A Command Type 7 READ(10)/WRITE(10) with one DSD at guest address `data`. */
export function ioEntry(handle: number, direction: 'read' | 'write', lba: number, blocks: number, data: bigint, targetPortId: number): Uint8Array {
  const e = newEntry(EntryType.COMMAND_TYPE_7, handle);
  const bytes = blocks * BLOCK;
  e.dv.setUint16(Cmd7.NPORT_HANDLE, TARGET_NPORT_HANDLE, true);
  e.dv.setUint16(Cmd7.DSEG_COUNT, 1, true);
  e.dv.setUint16(Cmd7.TASK_MGMT_FLAGS, direction === 'write' ? Cmd7Flags.TMF_WRITE_DATA : Cmd7Flags.TMF_READ_DATA, true);
  const cdb = new Uint8Array(Cmd7.FCP_CDB_SIZE);
  cdb[0] = direction === 'write' ? SCSI_WRITE_10 : SCSI_READ_10;
  new DataView(cdb.buffer).setUint32(2, lba, false);
  new DataView(cdb.buffer).setUint16(7, blocks, false);
  e.bytes.set(swapDwords(cdb), Cmd7.FCP_CDB);
  e.dv.setUint32(Cmd7.BYTE_COUNT, bytes, true);
  writePortIdLe(e.dv, Cmd7.PORT_ID, targetPortId);
  e.dv.setBigUint64(Cmd7.DSD + Dsd64.ADDRESS, data, true);
  e.dv.setUint32(Cmd7.DSD + Dsd64.LENGTH, bytes, true);
  return e.bytes;
}

export interface MailboxResult {
  mb: number[];
}

export class GuestMachine {
  readonly ram: Uint8Array;
  readonly view: DataView;
  /** AEN codes seen while polling. */
  readonly aens: number[] = [];
  reqIn = 0;
  rspOut = 0;
  targetPortId = 0;
  /** region sizes reported at attach (index = vfio region index) */
  regionSizes: number[] = [];
  /** eventfds bound at attach (owned by the client) */
  intxEventfd: number | null = null;
  msixEventfds: number[] = [];
  private closed = false;

  private constructor(
    readonly client: VfioUserClient,
    /** the memfd behind guest RAM (for tests that re-map it) */
    readonly memfd: number,
    private readonly ramBuffer: ArrayBuffer,
  ) {
    this.ram = new Uint8Array(ramBuffer);
    this.view = new DataView(ramBuffer);
  }

  /** Connects and replays QEMU's attach with canary-filled RAM; enables memory space and bus mastering. */
  static async attach(socketPath: string, o: { timeoutMs?: number; msixVectors?: number } = {}): Promise<GuestMachine> {
    const memfd = native.memfdCreate('hostile-guest-ram', RAM.SIZE);
    const ramBuffer = native.mmap(memfd, RAM.SIZE, 0n, 3);
    const client = VfioUserClient.connect(socketPath, { timeoutMs: o.timeoutMs ?? 5000 });
    const g = new GuestMachine(client, memfd, ramBuffer);
    try {
      for (let i = 0; i < RAM.SIZE; i++) g.ram[i] = canaryByte(i);
      const s = await client.startup({ dma: [{ address: RAM.BASE, size: BigInt(RAM.SIZE), fd: memfd, offset: 0n }], msixVectors: o.msixVectors ?? 2 });
      g.regionSizes = s.regions.map((r) => Number(r.size));
      g.intxEventfd = s.intxEventfd;
      g.msixEventfds = s.msixEventfds;
      await g.enableDevice();
    } catch (err) {
      g.close();
      throw err;
    }
    return g;
  }

  /** Guest-physical address of a RAM offset. */
  addr(offset: number): bigint {
    return RAM.BASE + BigInt(offset);
  }

  async enableDevice(): Promise<void> {
    await this.client.regionWrite(PCI_REGION.CONFIG, PCI_COMMAND, new Uint8Array([PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER, 0]));
  }

  /** Offsets (at most `limit`) in RAM that no longer hold the canary, outside the `allowed` [start, end) ranges. */
  canaryDamage(allowed: readonly (readonly [number, number])[], limit = 8): number[] {
    const bad: number[] = [];
    const sorted = [...allowed].sort((a, b) => a[0] - b[0]);
    let i = 0;
    for (const [start, end] of [...sorted, [RAM.SIZE, RAM.SIZE] as const]) {
      for (; i < start && bad.length < limit; i++) if (this.ram[i] !== canaryByte(i)) bad.push(i);
      i = Math.max(i, end);
    }
    return bad;
  }

  /** Restores the canary in [start, end). */
  fillCanary(start: number, end: number): void {
    for (let i = start; i < end; i++) this.ram[i] = canaryByte(i);
  }

  // --- registers ---------------------------------------------------------------------------

  async r32(offset: number): Promise<number> {
    const b = await this.client.regionRead(PCI_REGION.BAR1, offset, 4);
    if (b.length !== 4) throw new Error(`short BAR1 read at 0x${offset.toString(16)}`);
    return new DataView(b.buffer, b.byteOffset, 4).getUint32(0, true);
  }

  /** Posted 32-bit BAR1 write (QEMU posts MMIO writes). */
  w32(offset: number, value: number): void {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, value >>> 0, true);
    void this.client.regionWrite(PCI_REGION.BAR1, offset, b, true);
  }

  w16(offset: number, value: number): void {
    void this.client.regionWrite(PCI_REGION.BAR1, offset, new Uint8Array([value & 0xff, (value >> 8) & 0xff]), true);
  }

  /** The 32 outbound mailboxes, read 8 bytes at a time. */
  async readMailboxes(): Promise<number[]> {
    const mb: number[] = [];
    for (let off = 0; off < MAILBOXES * 2; off += 8) {
      const b = await this.client.regionRead(PCI_REGION.BAR1, REG.MAILBOX0 + off, 8);
      if (b.length !== 8) throw new Error('short mailbox read');
      for (let i = 0; i < 8; i += 2) mb.push(b[i]! | (b[i + 1]! << 8));
    }
    return mb;
  }

  /**
   * One pass of qla24xx_intr_handler in polling mode: returns a mailbox completion if one was
   * latched; AENs are recorded, response updates acknowledged.
   */
  async pollOnce(): Promise<MailboxResult | null> {
    const hs = await this.r32(REG.HOST_STATUS);
    if (!(hs & HSRX_RISC_INT)) return null;
    const type = hs & INT_TYPE_MASK;
    let result: MailboxResult | null = null;
    if (INT_MAILBOX.has(type)) {
      const mb = await this.readMailboxes();
      mb[0] = hs >>> 16;
      result = { mb };
    } else if (type === INT_ASYNC_EVENT) {
      this.aens.push(hs >>> 16);
    }
    this.w32(REG.HCCR, HCCRX.CLR_RISC_INT << 28);
    return result;
  }

  /** Issues a mailbox command (writes mb0..mb[regs.length-1]) and polls HOST_STATUS for its completion, bounded. */
  async mailbox(regs: readonly number[], timeoutMs = 5000): Promise<MailboxResult> {
    for (let i = 0; i < regs.length && i < MAILBOXES; i++) this.w16(REG.MAILBOX0 + 2 * i, regs[i] ?? 0);
    this.w32(REG.HCCR, HCCRX.SET_HOST_INT << 28);
    const deadline = Date.now() + timeoutMs;
    for (let polls = 0; ; polls++) {
      const r = await this.pollOnce();
      if (r) return r;
      if (Date.now() > deadline) {
        throw new TimeoutError(`mailbox 0x${(regs[0] ?? 0).toString(16)} [${regs.map((v) => v.toString(16)).join(' ')}] got no completion in ${timeoutMs} ms`);
      }
      if (polls > 4) await sleep(1);
    }
  }

  async expectOk(regs: readonly number[], name: string): Promise<number[]> {
    const r = await this.mailbox(regs);
    if (r.mb[0] !== MBS_COMMAND_COMPLETE) throw new Error(`${name} failed: mb0=0x${(r.mb[0] ?? 0).toString(16)}`);
    return r.mb;
  }

  /** mb0, mb2/3 (address 31:0), mb6/7 (address 63:32) for a DMA mailbox command. */
  dmaMailbox(opcode: number, address: bigint, extra: Record<number, number> = {}): number[] {
    const mb = new Array<number>(10).fill(0);
    const a = BigInt.asUintN(64, address);
    mb[0] = opcode;
    mb[2] = Number((a >> 16n) & 0xffffn);
    mb[3] = Number(a & 0xffffn);
    mb[6] = Number((a >> 48n) & 0xffffn);
    mb[7] = Number((a >> 32n) & 0xffffn);
    for (const [k, v] of Object.entries(extra)) mb[Number(k)] = v;
    return mb;
  }

  /** The qla2xxx probe in polling mode up to LOOP UP + PORT UPDATE (when `expectLink`). */
  async probe(o: { wwpn?: bigint; wwnn?: bigint; expectLink?: boolean; linkTimeoutMs?: number } = {}): Promise<void> {
    this.aens.length = 0;
    this.w32(REG.ICTRL, 0);
    this.w32(REG.CTRL_STATUS, CTRL_STATUS_RESET);
    this.w32(REG.HCCR, HCCRX.SET_RISC_RESET << 28);
    this.w32(REG.HCCR, HCCRX.REL_RISC_PAUSE << 28);
    this.w32(REG.HCCR, HCCRX.CLR_RISC_RESET << 28);
    // Drain whatever the reset left latched.
    for (let i = 0; i < 16 && (await this.pollOnce()) !== null; i++);
    await this.expectOk(
      this.dmaMailbox(MBC.LOAD_RISC_RAM_EXTENDED, this.addr(LAYOUT.SCRATCH), { 1: RISC_START_ADDRESS & 0xffff, 5: 16, 8: RISC_START_ADDRESS >>> 16 }),
      'LOAD_RISC_RAM_EXTENDED',
    );
    await this.expectOk([MBC.VERIFY_CHECKSUM, RISC_START_ADDRESS >>> 16, 0], 'VERIFY_CHECKSUM');
    await this.expectOk([MBC.EXECUTE_FIRMWARE, RISC_START_ADDRESS >>> 16, 0], 'EXECUTE_FIRMWARE');
    for (let i = 0; i < RSP_ENTRIES; i++) this.view.setUint32(LAYOUT.RSP_RING + i * IOCB_SIZE + IocbHeader.SIGNATURE, RESPONSE_PROCESSED, true);
    for (const r of [REG.REQ_Q_IN, REG.REQ_Q_OUT, REG.RSP_Q_IN, REG.RSP_Q_OUT]) this.w32(r, 0);
    this.reqIn = 0;
    this.rspOut = 0;
    this.writeIcb(o.wwpn ?? VPORT.wwpn, o.wwnn ?? VPORT.wwnn);
    await this.expectOk(this.dmaMailbox(MBC.INITIALIZE_FIRMWARE, this.addr(LAYOUT.ICB)), 'INITIALIZE_FIRMWARE');
    if (o.expectLink === false) return;
    const deadline = Date.now() + (o.linkTimeoutMs ?? 10_000);
    while (!this.aens.includes(MBA_PORT_UPDATE)) {
      if (Date.now() > deadline) throw new TimeoutError(`no PORT UPDATE (AENs: ${this.aens.map((a) => a.toString(16))})`);
      await this.mailbox([MBC.GET_FIRMWARE_STATE]);
      await sleep(5);
    }
    if (!this.aens.includes(MBA_LOOP_UP)) throw new Error('PORT UPDATE without LOOP UP');
  }

  writeIcb(wwpn: bigint, wwnn: bigint): void {
    this.ram.fill(0, LAYOUT.ICB, LAYOUT.ICB + ICB.SIZE);
    const icb = new DataView(this.ram.buffer, LAYOUT.ICB, ICB.SIZE);
    icb.setUint16(ICB.VERSION, 1, true);
    icb.setUint16(ICB.FRAME_PAYLOAD_SIZE, 2048, true);
    icb.setBigUint64(ICB.PORT_NAME, wwpn, false);
    icb.setBigUint64(ICB.NODE_NAME, wwnn, false);
    icb.setUint16(ICB.RSP_Q_LENGTH, RSP_ENTRIES, true);
    icb.setUint16(ICB.REQ_Q_LENGTH, REQ_ENTRIES, true);
    icb.setBigUint64(ICB.REQ_Q_ADDRESS, this.addr(LAYOUT.REQ_RING), true);
    icb.setBigUint64(ICB.RSP_Q_ADDRESS, this.addr(LAYOUT.RSP_RING), true);
    icb.setUint32(ICB.FIRMWARE_OPTIONS_2, ICB_FW_OPTIONS_2, true);
  }

  // --- rings ---------------------------------------------------------------------------------

  /** Copies an entry to the request ring at the producer index (no doorbell). */
  queue(entry: Uint8Array): void {
    this.ram.set(entry, LAYOUT.REQ_RING + this.reqIn * IOCB_SIZE);
    this.reqIn = (this.reqIn + 1) % REQ_ENTRIES;
  }

  doorbell(): void {
    this.w32(REG.REQ_Q_IN, this.reqIn);
  }

  /** Consumes response entries by signature (qla24xx_process_response_queue), one ring at most. */
  reap(): Uint8Array[] {
    const out: Uint8Array[] = [];
    for (let n = 0; n < RSP_ENTRIES; n++) {
      const at = LAYOUT.RSP_RING + this.rspOut * IOCB_SIZE;
      if (this.view.getUint32(at + IocbHeader.SIGNATURE, true) === RESPONSE_PROCESSED) break;
      out.push(this.ram.slice(at, at + IOCB_SIZE));
      this.view.setUint32(at + IocbHeader.SIGNATURE, RESPONSE_PROCESSED, true);
      this.rspOut = (this.rspOut + 1) % RSP_ENTRIES;
    }
    if (out.length) this.w32(REG.RSP_Q_OUT, this.rspOut);
    return out;
  }

  /** Polls and reaps until `done(all reaped so far)` or the deadline; returns everything reaped. */
  async collect(done: (got: Uint8Array[]) => boolean, timeoutMs = 5000): Promise<Uint8Array[]> {
    const got: Uint8Array[] = [];
    const deadline = Date.now() + timeoutMs;
    for (let polls = 0; !done(got); polls++) {
      if (Date.now() > deadline) throw new TimeoutError(`ring completions: waited ${timeoutMs} ms, got ${got.length}`);
      await this.pollOnce();
      got.push(...this.reap());
      if (polls > 2) await sleep(1);
    }
    return got;
  }

  /** Posts one entry, rings the doorbell and waits for the completion carrying its handle. */
  async iocb(entry: Uint8Array, timeoutMs = 5000): Promise<Uint8Array> {
    const handle = new DataView(entry.buffer, entry.byteOffset).getUint32(IocbHeader.HANDLE, true);
    this.queue(entry);
    this.doorbell();
    const got = await this.collect((g) => g.some((e) => handleOf(e) === handle), timeoutMs);
    return got.find((e) => handleOf(e) === handle)!;
  }

  /** SNS login, GPN_FT for FCP ports, PLOGI+PRLI to the first one (handle TARGET_NPORT_HANDLE). */
  async discover(): Promise<number> {
    const sns = newEntry(EntryType.LOGINOUT_PORT_IOCB_TYPE, 0);
    sns.dv.setUint16(Logio.NPORT_HANDLE, NPORT_HANDLE_SNS, true);
    sns.dv.setUint16(Logio.CONTROL_FLAGS, LOGIO_SNS_FLAGS, true);
    writePortIdLe(sns.dv, Logio.PORT_ID, SNS_PORT_ID);
    this.ram.set(sns.bytes, LAYOUT.SCRATCH);
    await this.expectOk(this.dmaMailbox(MBC.IOCB_COMMAND_A64, this.addr(LAYOUT.SCRATCH)), 'SNS login');
    const snsStatus = this.view.getUint16(LAYOUT.SCRATCH + Logio.COMP_STATUS, true);
    if (snsStatus !== 0) throw new Error(`SNS login status 0x${snsStatus.toString(16)}`);

    const ctReq = new Uint8Array(20);
    const maxWords = (LAYOUT.CT_RESPONSE_SIZE - 16) / 4;
    ctReq.set([1, 0, 0, 0, 0xfc, 0x02, 0, 0, CT_GPN_FT >> 8, CT_GPN_FT & 0xff, maxWords >> 8, maxWords & 0xff]);
    ctReq[19] = CT_FC4_FCP;
    this.ram.set(ctReq, LAYOUT.CT_REQUEST);
    const ct = newEntry(EntryType.CT_IOCB_TYPE, DISCOVERY_HANDLE);
    ct.dv.setUint16(Ct.NPORT_HANDLE, NPORT_HANDLE_SNS, true);
    ct.dv.setUint16(Ct.CMD_DSD_COUNT, 1, true);
    ct.dv.setUint16(Ct.RSP_DSD_COUNT, 1, true);
    ct.dv.setUint32(Ct.RSP_BYTE_COUNT, LAYOUT.CT_RESPONSE_SIZE, true);
    ct.dv.setUint32(Ct.CMD_BYTE_COUNT, ctReq.length, true);
    ct.dv.setBigUint64(Ct.DSD0 + Dsd64.ADDRESS, this.addr(LAYOUT.CT_REQUEST), true);
    ct.dv.setUint32(Ct.DSD0 + Dsd64.LENGTH, ctReq.length, true);
    ct.dv.setBigUint64(Ct.DSD1 + Dsd64.ADDRESS, this.addr(LAYOUT.CT_RESPONSE), true);
    ct.dv.setUint32(Ct.DSD1 + Dsd64.LENGTH, LAYOUT.CT_RESPONSE_SIZE, true);
    const ctDone = await this.iocb(ct.bytes);
    if (ctDone[IocbHeader.ENTRY_STATUS] !== 0) throw new Error(`GPN_FT entry_status 0x${ctDone[IocbHeader.ENTRY_STATUS]!.toString(16)}`);
    const ctStatus = new DataView(ctDone.buffer).getUint16(Ct.COMP_STATUS, true);
    if (ctStatus !== 0) throw new Error(`GPN_FT status 0x${ctStatus.toString(16)}`);
    const list = this.ram.slice(LAYOUT.CT_RESPONSE, LAYOUT.CT_RESPONSE + LAYOUT.CT_RESPONSE_SIZE);
    if (new DataView(list.buffer).getUint16(8, false) !== CT_ACCEPT) throw new Error(`GPN_FT rejected: ${Buffer.from(list.subarray(0, 16)).toString("hex")}`);
    let target = 0;
    for (let o = 16; o + GPN_FT_ENTRY_SIZE <= list.length; o += GPN_FT_ENTRY_SIZE) {
      const id = (list[o + 1]! << 16) | (list[o + 2]! << 8) | list[o + 3]!;
      if (id !== 0) {
        target = id;
        break;
      }
      if (list[o]! & GPN_FT_LAST) break;
    }
    if (target === 0) throw new Error('GPN_FT listed no FCP port');

    const login = newEntry(EntryType.LOGINOUT_PORT_IOCB_TYPE, DISCOVERY_HANDLE + 1);
    login.dv.setUint16(Logio.NPORT_HANDLE, TARGET_NPORT_HANDLE, true);
    login.dv.setUint16(Logio.CONTROL_FLAGS, LOGIO_PLOGI_THEN_PRLI, true);
    writePortIdLe(login.dv, Logio.PORT_ID, target);
    const done = await this.iocb(login.bytes);
    if (done[IocbHeader.ENTRY_STATUS] !== 0) throw new Error(`PLOGI entry_status 0x${done[IocbHeader.ENTRY_STATUS]!.toString(16)}`);
    const status = new DataView(done.buffer).getUint16(Logio.COMP_STATUS, true);
    if (status !== 0) throw new Error(`PLOGI to ${target.toString(16)} status 0x${status.toString(16)}`);
    this.targetPortId = target;
    return target;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.client.close();
    native.munmap(this.ramBuffer);
    native.close(this.memfd);
  }
}

export function handleOf(entry: Uint8Array): number {
  return new DataView(entry.buffer, entry.byteOffset).getUint32(IocbHeader.HANDLE, true);
}

/** Attaches with retries: the server serves one client at a time and notices a hang-up asynchronously. */
export async function attachWhenFree(socketPath: string, attempts = 100): Promise<GuestMachine> {
  let last: unknown;
  for (let i = 0; i < attempts; i++) {
    try {
      return await GuestMachine.attach(socketPath);
    } catch (err) {
      last = err;
      await sleep(10);
    }
  }
  throw last instanceof Error ? last : new Error(String(last));
}
