/**
 * A QEMU-like driver model of one guest with a qla2xxx-like driver, for the emulator-only
 * benchmark: it attaches to one `npiv-hba serve` over a real vfio-user socket exactly as QEMU
 * 11 does (VfioUserClient.startup: VERSION, DMA_MAP of a memfd "guest RAM", region/IRQ info,
 * config read, MSI-X eventfds), then plays the qla2xxx (10.02.x, ISP25xx path) probe and I/O
 * path against the emulated ISP2532:
 *
 *   probe     RISC reset, LOAD_RISC_RAM_EXTENDED / VERIFY_CHECKSUM / EXECUTE_FIRMWARE mailboxes,
 *             response ring signatures, INITIALIZE_FIRMWARE with an ICB, wait for LOOP UP +
 *             PORT UPDATE AENs, interrupts enabled (ICTRL)
 *   discover  SNS login (Login IOCB via MBC_IOCB_COMMAND_A64), GPN_FT (CT Pass-Through IOCB),
 *             PLOGI+PRLI (Login IOCB on the ring) to the first FCP target
 *   I/O       Command Type 7 with one DSD into guest RAM, doorbell = posted REQ_Q_IN write;
 *             MSI-X eventfd → HOST_STATUS read → Status Type 0 reaped by signature →
 *             posted RSP_Q_OUT and HCCR CLR_RISC_INT writes (qla24xx_intr_handler's order)
 *
 * It counts every vfio-user message it sends and every interrupt it receives, which is where
 * the per-I/O round-trip and interrupt figures of the profile come from. It is a benchmark
 * client, not a guest: it trusts nothing it reads (every loop has a budget, every wait a timeout).
 */
import { native, POLL_READABLE, type PollHandle } from '../../src/native/index.js';
import { VfioUserClient } from '../../src/vfio-user/client.js';
import { PCI_REGION } from '../../src/vfio-user/protocol.js';
import { REG, HCCRX } from '../../src/isp/registers.js';
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
  Sts24,
} from '../../assembly/shared/iocb.js';

/** Guest-physical layout of the model's "guest RAM" (one memfd mapped at address 0). */
export const GUEST = {
  RAM_SIZE: 16 * 1024 * 1024,
  ICB: 0x1000,
  SCRATCH: 0x2000, // firmware-load source and IOCB-via-mailbox buffer
  CT_REQUEST: 0x4000,
  CT_RESPONSE: 0x5000,
  CT_RESPONSE_SIZE: 0x1000,
  REQ_RING: 0x10000,
  RSP_RING: 0x20000,
  DATA: 0x100000,
  /** bytes reserved per outstanding command's data buffer */
  DATA_SLOT: 0x20000,
} as const;
export const REQ_ENTRIES = 256;
export const RSP_ENTRIES = 256;
export const MAX_QUEUE_DEPTH = 64;
/** Handle indexes the driver uses (qla2xxx sizes outstanding_cmds from the firmware's exchange count). */
const MAX_HANDLE_INDEX = 1024;

/** PCI config space offsets used by the model (PCI 3.0). */
const PCI_COMMAND = 0x04;
const PCI_COMMAND_MEMORY = 0x2;
const PCI_COMMAND_MASTER = 0x4;
const PCI_CAPABILITY_LIST = 0x34;
const PCI_CAP_ID_MSIX = 0x11;
const PCI_MSIX_FLAGS = 2;
const PCI_MSIX_FLAGS_ENABLE = 0x8000;
const PCI_MSIX_FLAGS_MASKALL = 0x4000;
const CAP_WALK_BUDGET = 48;

/** HOST_STATUS (qla_def.h HSRX_RISC_INT and the 24xx interrupt types). */
const HSRX_RISC_INT = 0x8000;
const INT_TYPE_MASK = 0xff;
const INT_MAILBOX = new Set([0x01, 0x02, 0x10, 0x11]);
const INT_ASYNC_EVENT = 0x12;
const INT_RESPONSE_UPDATE = 0x13;
/** ICTRL: ICRX_EN_RISC_INT */
const ICTRL_ENABLE_RISC_INT = 0x8;
/** CTRL_STATUS write of qla24xx_reset_risc (DMA shutdown + ISP reset + burst setting). */
const CTRL_STATUS_RESET = 0x10031;

/** Mailbox commands (qla_def.h MBC_*). */
const MBC = {
  LOAD_RISC_RAM_EXTENDED: 0x0b,
  EXECUTE_FIRMWARE: 0x02,
  VERIFY_CHECKSUM: 0x07,
  GET_ADAPTER_LOOP_ID: 0x20,
  IOCB_COMMAND_A64: 0x54,
  GET_FIRMWARE_OPTIONS: 0x28,
  INITIALIZE_FIRMWARE: 0x60,
} as const;
const MBS_COMMAND_COMPLETE = 0x4000;
const MBA_LOOP_UP = 0x8011;
const MBA_PORT_UPDATE = 0x8014;
const RISC_START_ADDRESS = 0x100000;

/** ICB (init_cb_24xx) fields the model fills. */
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
/** firmware_options_2 qla2xxx sets for point-to-point-preferred fabric attach with NPIV. */
const ICB_FW_OPTIONS_2 = 0x6006;

const NPORT_HANDLE_SNS = 0x7fc;
const SNS_PORT_ID = 0xfffffc;
const TARGET_NPORT_HANDLE = 0x81;
const LOGIO_PLOGI = 0x00;
const LOGIO_SKIP_PRLI_OFF = 0x10; // LCF_COND_PLOGI-free: PLOGI then PRLI (qla24xx_login_fabric)
const LOGIO_SNS_FLAGS = 0x10 | 0x20;
const CT_GPN_FT = 0x0172;
const CT_FC4_FCP = 0x08;
const CT_ACCEPT = 0x8002;
const GPN_FT_ENTRY_SIZE = 16;
const GPN_FT_LAST = 0x80;

const MAILBOX_TIMEOUT_MS = 10_000;
const POLL_INTERVAL_MS = 1;
const IOCB_TIMEOUT_MS = 10_000;

export interface DriverCounters {
  /** vfio-user requests that waited for a reply (region reads, non-posted writes) */
  roundTrips: number;
  /** posted region writes (no reply, like QEMU's posted MMIO writes) */
  postedWrites: number;
  /** eventfd wake-ups of the MSI-X vector */
  interruptWakeups: number;
  /** interrupts signalled (sum of eventfd counters; several may coalesce into one wake-up) */
  interrupts: number;
}

export interface IoRunOptions {
  direction: 'read' | 'write';
  blockSize: number;
  queueDepth: number;
  durationMs: number;
  /** LBA range (512-byte blocks) random I/O is spread over */
  lbaCount: number;
  /** per-completion latency hook (µs) */
  onLatency?: (us: number) => void;
}

export interface IoRunResult {
  ios: number;
  errors: number;
  elapsedMs: number;
  latenciesUs: number[];
  counters: DriverCounters;
  /** the first few failed completions: "type/comp_status/scsi_status" in hex */
  errorSamples: string[];
}

function swapDwords(src: Uint8Array): Uint8Array {
  const out = new Uint8Array(src.length);
  for (let i = 0; i < src.length; i++) out[(i & ~3) + 3 - (i & 3)] = src[i]!;
  return out;
}

function u16le(value: number): Uint8Array {
  return new Uint8Array([value & 0xff, (value >> 8) & 0xff]);
}
function u32le(value: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, value >>> 0, true);
  return b;
}
function writePortIdLe(dv: DataView, offset: number, id: number): void {
  dv.setUint8(offset, id & 0xff);
  dv.setUint8(offset + 1, (id >> 8) & 0xff);
  dv.setUint8(offset + 2, (id >> 16) & 0xff);
}

interface Outstanding {
  resolve(entry: Uint8Array): void;
  started: bigint;
}

export class QlaDriverModel {
  readonly counters: DriverCounters = { roundTrips: 0, postedWrites: 0, interruptWakeups: 0, interrupts: 0 };
  readonly aens: number[] = [];
  private readonly ram: Uint8Array;
  private readonly view: DataView;
  private reqIn = 0;
  private rspOut = 0;
  private nextHandle = 1;
  private readonly outstanding = new Map<number, Outstanding>();
  private mailboxWaiter: ((mb: number[]) => void) | null = null;
  private msixFd = -1;
  private pollHandle: PollHandle | null = null;
  private pollTimer: NodeJS.Timeout | null = null;
  private pumping = false;
  private pumpAgain = false;
  private closed = false;
  targetPortId = 0;

  private constructor(
    private readonly client: VfioUserClient,
    private readonly memfd: number,
    private readonly ramBuffer: ArrayBuffer,
  ) {
    this.ram = new Uint8Array(ramBuffer);
    this.view = new DataView(ramBuffer);
  }

  /** Connects and replays QEMU's attach; enables memory space, bus mastering and MSI-X. */
  static async attach(socketPath: string): Promise<QlaDriverModel> {
    const memfd = native.memfdCreate('bench-guest-ram', GUEST.RAM_SIZE);
    const ramBuffer = native.mmap(memfd, GUEST.RAM_SIZE, 0n, 3);
    const client = VfioUserClient.connect(socketPath, { timeoutMs: MAILBOX_TIMEOUT_MS });
    const model = new QlaDriverModel(client, memfd, ramBuffer);
    const s = await client.startup({ dma: [{ address: 0n, size: BigInt(GUEST.RAM_SIZE), fd: memfd, offset: 0n }], msixVectors: 2 });
    const fd = s.msixEventfds[0];
    if (fd === undefined) throw new Error('the device offered no MSI-X vector');
    model.msixFd = fd;
    await model.configWrite16(PCI_COMMAND, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
    const msix = model.findCapability(s.config, PCI_CAP_ID_MSIX);
    if (msix === null) throw new Error('no MSI-X capability in config space');
    const flags = s.config[msix + PCI_MSIX_FLAGS]! | (s.config[msix + PCI_MSIX_FLAGS + 1]! << 8);
    await model.configWrite16(msix + PCI_MSIX_FLAGS, (flags | PCI_MSIX_FLAGS_ENABLE) & ~PCI_MSIX_FLAGS_MASKALL);
    return model;
  }

  private findCapability(config: Uint8Array, id: number): number | null {
    let at = config[PCI_CAPABILITY_LIST]! & 0xfc;
    for (let i = 0; i < CAP_WALK_BUDGET && at !== 0 && at + 1 < config.length; i++) {
      if (config[at] === id) return at;
      at = config[at + 1]! & 0xfc;
    }
    return null;
  }

  private async configWrite16(offset: number, value: number): Promise<void> {
    this.counters.roundTrips++;
    await this.client.regionWrite(PCI_REGION.CONFIG, offset, u16le(value));
  }

  // --- BAR1 register access (counted) -------------------------------------------------------

  private async readReg(offset: number): Promise<number> {
    this.counters.roundTrips++;
    const b = await this.client.regionRead(PCI_REGION.BAR1, offset, 4);
    if (b.length !== 4) throw new Error(`short BAR1 read at 0x${offset.toString(16)}`);
    return new DataView(b.buffer, b.byteOffset, 4).getUint32(0, true);
  }

  private writeReg(offset: number, value: number): void {
    this.counters.postedWrites++;
    void this.client.regionWrite(PCI_REGION.BAR1, offset, u32le(value), true);
  }

  private writeMailbox(n: number, value: number): void {
    this.counters.postedWrites++;
    void this.client.regionWrite(PCI_REGION.BAR1, REG.MAILBOX0 + 2 * n, u16le(value), true);
  }

  private async readMailbox(n: number): Promise<number> {
    this.counters.roundTrips++;
    const b = await this.client.regionRead(PCI_REGION.BAR1, REG.MAILBOX0 + 2 * n, 2);
    return (b[0] ?? 0) | ((b[1] ?? 0) << 8);
  }

  // --- interrupt/event handling ---------------------------------------------------------------

  /** Polling mode for the probe (interrupts still disabled), like qla2xxx's polled mailboxes. */
  private startPolling(): void {
    const tick = () => {
      if (this.closed || this.pollTimer === null) return;
      this.pumpSafely().finally(() => {
        if (this.pollTimer !== null) this.pollTimer = setTimeout(tick, POLL_INTERVAL_MS);
      });
    };
    this.pollTimer = setTimeout(tick, POLL_INTERVAL_MS);
  }

  private stopPolling(): void {
    if (this.pollTimer) clearTimeout(this.pollTimer);
    this.pollTimer = null;
  }

  private startInterrupts(): void {
    this.pollHandle = native.poll(this.msixFd, POLL_READABLE, (_events, errno) => {
      if (errno !== 0 || this.closed) return;
      const n = native.eventfdRead(this.msixFd);
      if (n === null) return;
      this.counters.interruptWakeups++;
      this.counters.interrupts += Number(n);
      void this.pumpSafely();
    });
  }

  /**
   * pump() from an event handler: a register read cut off by close() is expected (the reply
   * never comes); any other failure is a bug and still surfaces as an uncaught error.
   */
  private pumpSafely(): Promise<void> {
    return this.pump().catch((err: unknown) => {
      if (!this.closed) queueMicrotask(() => { throw err; });
    });
  }

  /** One pass of qla24xx_intr_handler: HOST_STATUS, dispatch by type, CLR_RISC_INT, then the response ring. */
  private async pump(): Promise<void> {
    if (this.pumping) {
      this.pumpAgain = true;
      return;
    }
    this.pumping = true;
    try {
      do {
        this.pumpAgain = false;
        for (let budget = 0; budget < 16 && !this.closed; budget++) {
          const hs = await this.readReg(REG.HOST_STATUS);
          if (!(hs & HSRX_RISC_INT)) break;
          const type = hs & INT_TYPE_MASK;
          if (INT_MAILBOX.has(type)) {
            const mb = [hs >>> 16];
            for (let i = 1; i < 8; i++) mb.push(await this.readMailbox(i));
            this.writeReg(REG.HCCR, HCCRX.CLR_RISC_INT << 28);
            const w = this.mailboxWaiter;
            this.mailboxWaiter = null;
            w?.(mb);
            continue;
          }
          if (type === INT_ASYNC_EVENT) this.aens.push(hs >>> 16);
          this.writeReg(REG.HCCR, HCCRX.CLR_RISC_INT << 28);
          if (type === INT_RESPONSE_UPDATE) this.reapResponses();
        }
        this.reapResponses();
      } while (this.pumpAgain && !this.closed);
    } finally {
      this.pumping = false;
    }
  }

  /** Consumes response entries by signature (qla2x00_process_response_queue), budgeted to one ring. */
  private reapResponses(): void {
    let reaped = 0;
    for (; reaped < RSP_ENTRIES; reaped++) {
      const at = GUEST.RSP_RING + this.rspOut * IOCB_SIZE;
      if (this.view.getUint32(at + IocbHeader.SIGNATURE, true) === RESPONSE_PROCESSED) break;
      const entry = this.ram.slice(at, at + IOCB_SIZE); // copy out before handing the slot back
      this.view.setUint32(at + IocbHeader.SIGNATURE, RESPONSE_PROCESSED, true);
      this.rspOut = (this.rspOut + 1) % RSP_ENTRIES;
      const handle = new DataView(entry.buffer).getUint32(IocbHeader.HANDLE, true);
      const waiter = this.outstanding.get(handle);
      if (waiter) {
        this.outstanding.delete(handle);
        waiter.resolve(entry);
      }
    }
    if (reaped > 0) this.writeReg(REG.RSP_Q_OUT, this.rspOut);
  }

  // --- mailboxes and IOCBs ----------------------------------------------------------------------

  async mailbox(regs: number[]): Promise<number[]> {
    if (this.mailboxWaiter) throw new Error('mailbox already busy');
    const done = new Promise<number[]>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.mailboxWaiter = null;
        reject(new Error(`mailbox 0x${(regs[0] ?? 0).toString(16)} timed out`));
      }, MAILBOX_TIMEOUT_MS);
      this.mailboxWaiter = (mb) => {
        clearTimeout(timer);
        resolve(mb);
      };
    });
    for (let i = 0; i < regs.length; i++) this.writeMailbox(i, regs[i] ?? 0);
    this.writeReg(REG.HCCR, HCCRX.SET_HOST_INT << 28);
    return done;
  }

  private dmaMailbox(opcode: number, address: number, extra: Record<number, number> = {}): number[] {
    const mb = new Array<number>(10).fill(0);
    mb[0] = opcode;
    mb[2] = (address >>> 16) & 0xffff;
    mb[3] = address & 0xffff;
    for (const [k, v] of Object.entries(extra)) mb[Number(k)] = v;
    return mb;
  }

  /** Writes one 64-byte entry at the request ring's producer index; returns the handle's completion. */
  private queueEntry(entry: Uint8Array, handle: number): Promise<Uint8Array> {
    const done = new Promise<Uint8Array>((resolve) => this.outstanding.set(handle, { resolve, started: process.hrtime.bigint() }));
    this.ram.set(entry, GUEST.REQ_RING + this.reqIn * IOCB_SIZE);
    this.reqIn = (this.reqIn + 1) % REQ_ENTRIES;
    return done;
  }

  private ringDoorbell(): void {
    this.writeReg(REG.REQ_Q_IN, this.reqIn);
  }

  private async iocb(entry: Uint8Array): Promise<Uint8Array> {
    const handle = new DataView(entry.buffer).getUint32(IocbHeader.HANDLE, true);
    const done = this.queueEntry(entry, handle);
    this.ringDoorbell();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`IOCB type 0x${entry[0]!.toString(16)} timed out`)), IOCB_TIMEOUT_MS);
    });
    try {
      return await Promise.race([done, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Like qla2xxx's outstanding_cmds[]: index 1..MAX_HANDLE_INDEX, never one still in flight. */
  private allocateHandle(): number {
    for (let tries = 0; tries < MAX_HANDLE_INDEX; tries++) {
      const h = this.nextHandle;
      this.nextHandle = h >= MAX_HANDLE_INDEX ? 1 : h + 1;
      if (!this.outstanding.has(h)) return h;
    }
    throw new Error('no free command handle');
  }

  private newEntry(type: number): { bytes: Uint8Array; dv: DataView; handle: number } {
    const bytes = new Uint8Array(IOCB_SIZE);
    const dv = new DataView(bytes.buffer);
    const handle = this.allocateHandle();
    bytes[IocbHeader.ENTRY_TYPE] = type;
    bytes[IocbHeader.ENTRY_COUNT] = 1;
    dv.setUint32(IocbHeader.HANDLE, handle, true);
    return { bytes, dv, handle };
  }

  // --- probe and discovery ----------------------------------------------------------------------

  async probe(wwpn: bigint, wwnn: bigint, linkTimeoutMs = 15_000): Promise<void> {
    this.startPolling();
    try {
      this.writeReg(REG.CTRL_STATUS, CTRL_STATUS_RESET);
      this.writeReg(REG.HCCR, HCCRX.SET_RISC_RESET << 28);
      this.writeReg(REG.HCCR, HCCRX.REL_RISC_PAUSE << 28);
      this.writeReg(REG.HCCR, HCCRX.CLR_RISC_RESET << 28);
      const load = this.dmaMailbox(MBC.LOAD_RISC_RAM_EXTENDED, GUEST.SCRATCH, { 1: RISC_START_ADDRESS & 0xffff, 5: 16, 8: RISC_START_ADDRESS >>> 16 });
      await this.expectOk(load, 'LOAD_RISC_RAM_EXTENDED');
      await this.expectOk([MBC.VERIFY_CHECKSUM, RISC_START_ADDRESS >>> 16, 0], 'VERIFY_CHECKSUM');
      await this.expectOk([MBC.EXECUTE_FIRMWARE, RISC_START_ADDRESS >>> 16, 0], 'EXECUTE_FIRMWARE');
      for (let i = 0; i < RSP_ENTRIES; i++) this.view.setUint32(GUEST.RSP_RING + i * IOCB_SIZE + IocbHeader.SIGNATURE, RESPONSE_PROCESSED, true);
      for (const r of [REG.REQ_Q_IN, REG.REQ_Q_OUT, REG.RSP_Q_IN, REG.RSP_Q_OUT]) this.writeReg(r, 0);
      this.writeIcb(wwpn, wwnn);
      await this.expectOk(this.dmaMailbox(MBC.INITIALIZE_FIRMWARE, GUEST.ICB), 'INITIALIZE_FIRMWARE');
      const deadline = Date.now() + linkTimeoutMs;
      // The model reports link events with the next mailbox completion or on its own; keep asking.
      while (!this.aens.includes(MBA_PORT_UPDATE)) {
        if (Date.now() > deadline) throw new Error(`no LOOP UP / PORT UPDATE within ${linkTimeoutMs} ms (AENs: ${this.aens.map((a) => a.toString(16))})`);
        await this.mailbox([MBC.GET_FIRMWARE_OPTIONS]);
        await new Promise((r) => setTimeout(r, 20));
      }
      if (!this.aens.includes(MBA_LOOP_UP)) throw new Error('PORT UPDATE without LOOP UP');
    } finally {
      this.stopPolling();
    }
    this.writeReg(REG.ICTRL, ICTRL_ENABLE_RISC_INT);
    this.startInterrupts();
    await this.pump(); // anything latched before interrupts were on
  }

  private async expectOk(regs: number[], name: string): Promise<number[]> {
    const mb = await this.mailbox(regs);
    if (mb[0] !== MBS_COMMAND_COMPLETE) throw new Error(`${name} failed: mb0=0x${(mb[0] ?? 0).toString(16)}`);
    return mb;
  }

  private writeIcb(wwpn: bigint, wwnn: bigint): void {
    const icb = new DataView(this.ram.buffer, GUEST.ICB, ICB.SIZE);
    new Uint8Array(this.ram.buffer, GUEST.ICB, ICB.SIZE).fill(0);
    icb.setUint16(ICB.VERSION, 1, true);
    icb.setUint16(ICB.FRAME_PAYLOAD_SIZE, 2048, true);
    icb.setBigUint64(ICB.PORT_NAME, wwpn, false);
    icb.setBigUint64(ICB.NODE_NAME, wwnn, false);
    icb.setUint16(ICB.RSP_Q_LENGTH, RSP_ENTRIES, true);
    icb.setUint16(ICB.REQ_Q_LENGTH, REQ_ENTRIES, true);
    icb.setBigUint64(ICB.REQ_Q_ADDRESS, BigInt(GUEST.REQ_RING), true);
    icb.setBigUint64(ICB.RSP_Q_ADDRESS, BigInt(GUEST.RSP_RING), true);
    icb.setUint32(ICB.FIRMWARE_OPTIONS_2, ICB_FW_OPTIONS_2, true);
  }

  /** SNS login, GPN_FT for FCP ports, PLOGI+PRLI to the first one; returns its port id. */
  async discover(): Promise<number> {
    // SNS login through MBC_IOCB_COMMAND_A64, as qla24xx_login_fabric does.
    const sns = this.newEntry(EntryType.LOGINOUT_PORT_IOCB_TYPE);
    sns.dv.setUint16(Logio.NPORT_HANDLE, NPORT_HANDLE_SNS, true);
    sns.dv.setUint16(Logio.CONTROL_FLAGS, LOGIO_SNS_FLAGS, true);
    writePortIdLe(sns.dv, Logio.PORT_ID, SNS_PORT_ID);
    this.ram.set(sns.bytes, GUEST.SCRATCH);
    await this.expectOk(this.dmaMailbox(MBC.IOCB_COMMAND_A64, GUEST.SCRATCH), 'SNS login');
    const snsStatus = this.view.getUint16(GUEST.SCRATCH + Logio.COMP_STATUS, true);
    if (snsStatus !== 0) throw new Error(`SNS login status 0x${snsStatus.toString(16)}`);

    // GPN_FT (FC-4 type FCP) through a CT Pass-Through IOCB.
    const ctReq = new Uint8Array(20);
    // FC-GS preamble: revision 1, GS type 0xfc (directory), subtype 0x02 (name server), command, max size in words.
    const maxWords = (GUEST.CT_RESPONSE_SIZE - 16) / 4;
    ctReq.set([1, 0, 0, 0, 0xfc, 0x02, 0, 0, CT_GPN_FT >> 8, CT_GPN_FT & 0xff, maxWords >> 8, maxWords & 0xff]);
    ctReq[19] = CT_FC4_FCP;
    this.ram.set(ctReq, GUEST.CT_REQUEST);
    const ct = this.newEntry(EntryType.CT_IOCB_TYPE);
    ct.dv.setUint16(Ct.NPORT_HANDLE, NPORT_HANDLE_SNS, true);
    ct.dv.setUint16(Ct.CMD_DSD_COUNT, 1, true);
    ct.dv.setUint16(Ct.RSP_DSD_COUNT, 1, true);
    ct.dv.setUint32(Ct.RSP_BYTE_COUNT, GUEST.CT_RESPONSE_SIZE, true);
    ct.dv.setUint32(Ct.CMD_BYTE_COUNT, ctReq.length, true);
    ct.dv.setBigUint64(Ct.DSD0 + Dsd64.ADDRESS, BigInt(GUEST.CT_REQUEST), true);
    ct.dv.setUint32(Ct.DSD0 + Dsd64.LENGTH, ctReq.length, true);
    ct.dv.setBigUint64(Ct.DSD1 + Dsd64.ADDRESS, BigInt(GUEST.CT_RESPONSE), true);
    ct.dv.setUint32(Ct.DSD1 + Dsd64.LENGTH, GUEST.CT_RESPONSE_SIZE, true);
    const ctDone = await this.iocb(ct.bytes);
    const ctStatus = new DataView(ctDone.buffer).getUint16(Ct.COMP_STATUS, true);
    if (ctStatus !== 0) throw new Error(`GPN_FT CT pass-through status 0x${ctStatus.toString(16)}`);
    const list = this.ram.slice(GUEST.CT_RESPONSE, GUEST.CT_RESPONSE + GUEST.CT_RESPONSE_SIZE);
    const listView = new DataView(list.buffer);
    if (listView.getUint16(8, false) !== CT_ACCEPT) throw new Error('GPN_FT rejected');
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

    // PLOGI + PRLI with a driver-chosen N_Port handle.
    const login = this.newEntry(EntryType.LOGINOUT_PORT_IOCB_TYPE);
    login.dv.setUint16(Logio.NPORT_HANDLE, TARGET_NPORT_HANDLE, true);
    login.dv.setUint16(Logio.CONTROL_FLAGS, LOGIO_PLOGI | LOGIO_SKIP_PRLI_OFF, true);
    writePortIdLe(login.dv, Logio.PORT_ID, target);
    const done = await this.iocb(login.bytes);
    const status = new DataView(done.buffer).getUint16(Logio.COMP_STATUS, true);
    if (status !== 0) throw new Error(`PLOGI to ${target.toString(16)} status 0x${status.toString(16)}`);
    this.targetPortId = target;
    return target;
  }

  // --- I/O ----------------------------------------------------------------------------------------

  private commandEntry(direction: 'read' | 'write', lba: number, blockSize: number, slot: number): { bytes: Uint8Array; handle: number } {
    const e = this.newEntry(EntryType.COMMAND_TYPE_7);
    const blocks = blockSize / 512;
    e.dv.setUint16(Cmd7.NPORT_HANDLE, TARGET_NPORT_HANDLE, true);
    e.dv.setUint16(Cmd7.DSEG_COUNT, 1, true);
    e.dv.setUint16(Cmd7.TASK_MGMT_FLAGS, direction === 'write' ? Cmd7Flags.TMF_WRITE_DATA : Cmd7Flags.TMF_READ_DATA, true);
    const cdb = new Uint8Array(Cmd7.FCP_CDB_SIZE);
    const cdv = new DataView(cdb.buffer);
    cdb[0] = direction === 'write' ? 0x2a : 0x28; // WRITE(10) / READ(10)
    cdv.setUint32(2, lba, false);
    cdv.setUint16(7, blocks, false);
    e.bytes.set(swapDwords(cdb), Cmd7.FCP_CDB); // qla2xxx host_to_fcp_swap
    e.dv.setUint32(Cmd7.BYTE_COUNT, blockSize, true);
    writePortIdLe(e.dv, Cmd7.PORT_ID, this.targetPortId);
    e.dv.setBigUint64(Cmd7.DSD + Dsd64.ADDRESS, BigInt(GUEST.DATA + slot * GUEST.DATA_SLOT), true);
    e.dv.setUint32(Cmd7.DSD + Dsd64.LENGTH, blockSize, true);
    return e;
  }

  /** Random I/O at a fixed queue depth for a fixed time; every command re-posted on completion. */
  async runIo(o: IoRunOptions): Promise<IoRunResult> {
    if (o.queueDepth < 1 || o.queueDepth > MAX_QUEUE_DEPTH) throw new RangeError(`queue depth ${o.queueDepth} outside 1..${MAX_QUEUE_DEPTH}`);
    if (o.blockSize % 512 !== 0 || o.blockSize > GUEST.DATA_SLOT) throw new RangeError(`block size ${o.blockSize}`);
    const before = { ...this.counters };
    const latencies: number[] = [];
    const errorSamples: string[] = [];
    const blocks = o.blockSize / 512;
    const span = Math.max(1, Math.floor(o.lbaCount / blocks));
    let ios = 0;
    let errors = 0;
    const start = process.hrtime.bigint();
    const end = start + BigInt(o.durationMs) * 1_000_000n;
    await new Promise<void>((resolve, reject) => {
      let inFlight = 0;
      const issue = (slot: number): void => {
        const lba = Math.floor(Math.random() * span) * blocks;
        const { bytes, handle } = this.commandEntry(o.direction, lba, o.blockSize, slot);
        const t0 = process.hrtime.bigint();
        inFlight++;
        this.queueEntry(bytes, handle).then((entry) => {
          inFlight--;
          const t1 = process.hrtime.bigint();
          const us = Number(t1 - t0) / 1000;
          const dv = new DataView(entry.buffer);
          const comp = dv.getUint16(Sts24.COMP_STATUS, true);
          const scsi = dv.getUint16(Sts24.SCSI_STATUS, true);
          if (entry[IocbHeader.ENTRY_TYPE] !== EntryType.STATUS_TYPE || comp !== 0 || (scsi & 0xff) !== 0) {
            errors++;
            if (errorSamples.length < 5) errorSamples.push(`${entry[IocbHeader.ENTRY_TYPE]!.toString(16)}/${comp.toString(16)}/${scsi.toString(16)}`);
          }
          ios++;
          latencies.push(us);
          o.onLatency?.(us);
          if (t1 < end && !this.closed) {
            issue(slot);
            this.ringDoorbell();
          } else if (inFlight === 0) resolve();
        }, reject);
      };
      for (let slot = 0; slot < o.queueDepth; slot++) issue(slot);
      this.ringDoorbell();
      setTimeout(() => {
        if (inFlight > 0) reject(new Error(`${inFlight} commands still outstanding ${IOCB_TIMEOUT_MS} ms after the run`));
      }, o.durationMs + IOCB_TIMEOUT_MS).unref();
    });
    const elapsedMs = Number(process.hrtime.bigint() - start) / 1e6;
    const counters: DriverCounters = {
      roundTrips: this.counters.roundTrips - before.roundTrips,
      postedWrites: this.counters.postedWrites - before.postedWrites,
      interruptWakeups: this.counters.interruptWakeups - before.interruptWakeups,
      interrupts: this.counters.interrupts - before.interrupts,
    };
    return { ios, errors, elapsedMs, latenciesUs: latencies, counters, errorSamples };
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.stopPolling();
    this.pollHandle?.stop();
    this.client.close();
    native.munmap(this.ramBuffer);
    native.close(this.memfd);
  }
}
