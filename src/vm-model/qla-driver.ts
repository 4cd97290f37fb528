/**
 * A QEMU-like driver model of one guest with a qla2xxx-like driver, for the emulator-only
 * benchmark. It is the shared guest model of src/vm-model/qla-guest.ts (QlaGuest: QEMU's attach
 * over a real vfio-user socket with a memfd "guest RAM", the qla2xxx probe, SNS login, GPN_FT,
 * PLOGI+PRLI, Command Type 7 entries, every vfio-user message counted) with what the benchmark
 * adds:
 *
 *   attach    MSI-X enabled in config space, one vector's eventfd bound
 *   probe     the shared probe in polling mode, then interrupts enabled (ICTRL); from then on
 *             mailboxes and IOCBs complete by interrupt
 *   I/O       runIo: random Command Type 7 READ/WRITEs at a fixed queue depth for a fixed time,
 *             doorbell = posted REQ_Q_IN write; MSI-X eventfd → HOST_STATUS read → Status Type 0
 *             reaped by signature → posted RSP_Q_OUT and HCCR CLR_RISC_INT writes
 *             (qla24xx_intr_handler's order), with per-I/O latencies
 *
 * The counters of the vfio-user messages it sends and of the interrupts it receives are where
 * the per-I/O round-trip and interrupt figures of the profile come from. It is a benchmark client,
 * not a guest: it trusts nothing it reads (every loop has a budget, every wait a timeout).
 */
import { native, POLL_READABLE, type PollHandle } from '../native/index.js';
import { REG } from '../isp/registers.js';
import { EntryType, IocbHeader, ScsiStatusFlags, Sts24 } from '../../assembly/shared/iocb.js';
import {
  BLOCK,
  ICTRL_EN_RISC_INT,
  INT_RESPONSE_UPDATE,
  QLA_LAYOUT,
  QlaGuest,
  TimeoutError,
  handleOf,
  ioEntry,
  commandEntry,
  sleep,
  swapDwords,
  type CommandSpec,
  type DriverCounters,
  type MailboxResult,
  type QlaGuestParts,
} from './qla-guest.js';

export type { DriverCounters } from './qla-guest.js';

/** Guest-physical layout of the model's "guest RAM" (one memfd mapped at address 0). */
export const GUEST = {
  RAM_SIZE: 16 * 1024 * 1024,
  ...QLA_LAYOUT,
  DATA: 0x100000,
  /** bytes reserved per outstanding command's data buffer */
  DATA_SLOT: 0x20000,
} as const;
export const REQ_ENTRIES = 256;
export const RSP_ENTRIES = 256;
export const MAX_QUEUE_DEPTH = 64;
/** Handle indexes the I/O path cycles through (qla2xxx sizes outstanding_cmds from the firmware's exchange count). */
const IO_HANDLES = 1024;
/** Bound of every vfio-user reply, mailbox command and IOCB. */
const TIMEOUT_MS = 10_000;
const LINK_TIMEOUT_MS = 15_000;
/** Interrupt passes per wake-up before the response ring is reaped regardless. */
const PUMP_BUDGET = 16;

/** PCI config space offsets used to enable MSI-X (PCI 3.0). */
const PCI_CAPABILITY_LIST = 0x34;
const PCI_CAP_ID_MSIX = 0x11;
const PCI_MSIX_FLAGS = 2;
const PCI_MSIX_FLAGS_ENABLE = 0x8000;
const PCI_MSIX_FLAGS_MASKALL = 0x4000;
const CAP_WALK_BUDGET = 48;

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

/** A completed command as the driver sees it (Status Type 0, or an entry the firmware refused). */
export interface CommandResult {
  entryType: number;
  entryStatus: number;
  compStatus: number;
  /** SAM status byte. */
  scsiStatus: number;
  /** Bytes not transferred (underrun), 0 without SS_RESIDUAL_UNDER. */
  residual: number;
  sense: Uint8Array | null;
  /** Read data copied from guest RAM (the whole buffer; the residual says how much is valid). */
  data: Uint8Array | null;
}

const SCSI_REPORT_LUNS = 0xa0;
const SAM_CHECK_CONDITION = 0x02;
const SENSE_UNIT_ATTENTION = 0x6;

/** qla_def.h CS_DATA_UNDERRUN: complete, with fewer bytes than FCP_DL (the residual says how many fewer). */
const CS_DATA_UNDERRUN = 0x15;

/** GOOD status, complete or short (check `residual` where every byte must move). */
export function commandSucceeded(r: CommandResult): boolean {
  return (
    r.entryType === EntryType.STATUS_TYPE &&
    r.entryStatus === 0 &&
    (r.compStatus === 0 || r.compStatus === CS_DATA_UNDERRUN) &&
    r.scsiStatus === 0
  );
}

export function describeResult(r: CommandResult): string {
  const sense = r.sense ? ` sense ${Buffer.from(r.sense.subarray(0, 18)).toString('hex')}` : '';
  return `entry 0x${r.entryType.toString(16)}/0x${r.entryStatus.toString(16)} comp_status 0x${r.compStatus.toString(16)} scsi_status 0x${r.scsiStatus.toString(16)}${sense}`;
}

interface Outstanding {
  resolve(entry: Uint8Array): void;
}

export class QlaDriverModel extends QlaGuest {
  private nextHandle = 1;
  private readonly outstanding = new Map<number, Outstanding>();
  private mailboxWaiter: ((r: MailboxResult) => void) | null = null;
  private msixFd = -1;
  private pollHandle: PollHandle | null = null;
  private pumping = false;
  private pumpAgain = false;

  private constructor(parts: QlaGuestParts) {
    super(parts);
  }

  /** Connects and replays QEMU's attach; enables memory space, bus mastering and MSI-X. */
  static async attach(socketPath: string): Promise<QlaDriverModel> {
    const model = await QlaGuest.connect(
      socketPath,
      {
        memfdName: 'bench-guest-ram',
        ramBase: 0n,
        ramSize: GUEST.RAM_SIZE,
        reqEntries: REQ_ENTRIES,
        rspEntries: RSP_ENTRIES,
        timeoutMs: TIMEOUT_MS,
        msixVectors: 2,
      },
      (parts) => new QlaDriverModel(parts),
    );
    try {
      await model.enableMsix();
    } catch (err) {
      model.close();
      throw err;
    }
    return model;
  }

  private async enableMsix(): Promise<void> {
    const fd = this.msixEventfds[0];
    if (fd === undefined) throw new Error('the device offered no MSI-X vector');
    this.msixFd = fd;
    const msix = this.findCapability(this.config, PCI_CAP_ID_MSIX);
    if (msix === null) throw new Error('no MSI-X capability in config space');
    const flags = this.config[msix + PCI_MSIX_FLAGS]! | (this.config[msix + PCI_MSIX_FLAGS + 1]! << 8);
    await this.configWrite16(msix + PCI_MSIX_FLAGS, (flags | PCI_MSIX_FLAGS_ENABLE) & ~PCI_MSIX_FLAGS_MASKALL);
  }

  private findCapability(config: Uint8Array, id: number): number | null {
    let at = config[PCI_CAPABILITY_LIST]! & 0xfc;
    for (let i = 0; i < CAP_WALK_BUDGET && at !== 0 && at + 1 < config.length; i++) {
      if (config[at] === id) return at;
      at = config[at + 1]! & 0xfc;
    }
    return null;
  }

  // --- interrupt handling ----------------------------------------------------------------------

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
   * pump() from the interrupt handler: a register read cut off by close() is expected (the reply
   * never comes); any other failure is a bug and still surfaces as an uncaught error.
   */
  private pumpSafely(): Promise<void> {
    return this.pump().catch((err: unknown) => {
      if (!this.closed)
        queueMicrotask(() => {
          throw err;
        });
    });
  }

  /** qla24xx_intr_handler: interrupts serviced until none is latched, mailbox completions handed over, then the response ring. */
  private async pump(): Promise<void> {
    if (this.pumping) {
      this.pumpAgain = true;
      return;
    }
    this.pumping = true;
    try {
      do {
        this.pumpAgain = false;
        for (let budget = 0; budget < PUMP_BUDGET && !this.closed; budget++) {
          const irq = await this.serviceInterrupt();
          if (irq === null) break;
          if (irq.mailbox) {
            const w = this.mailboxWaiter;
            this.mailboxWaiter = null;
            w?.(irq.mailbox);
            continue;
          }
          if (irq.type === INT_RESPONSE_UPDATE) this.reapResponses();
        }
        this.reapResponses();
      } while (this.pumpAgain && !this.closed);
    } finally {
      this.pumping = false;
    }
  }

  /** Hands each reaped response to the command waiting for its handle. */
  private reapResponses(): void {
    for (const entry of this.reap()) {
      const handle = handleOf(entry);
      const waiter = this.outstanding.get(handle);
      if (waiter) {
        this.outstanding.delete(handle);
        waiter.resolve(entry);
      }
    }
  }

  // --- mailboxes and IOCBs: polled until probe() turns interrupts on ------------------------------

  override async mailbox(regs: readonly number[], timeoutMs = this.timeoutMs): Promise<MailboxResult> {
    if (this.pollHandle === null) return super.mailbox(regs, timeoutMs);
    if (this.mailboxWaiter) throw new Error('mailbox already busy');
    const done = new Promise<MailboxResult>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.mailboxWaiter = null;
        reject(new TimeoutError(`mailbox 0x${(regs[0] ?? 0).toString(16)} timed out`));
      }, timeoutMs);
      this.mailboxWaiter = (r) => {
        clearTimeout(timer);
        resolve(r);
      };
    });
    this.postMailbox(regs);
    return done;
  }

  /** Writes one entry at the request ring's producer index; returns the handle's completion. */
  private queueEntry(entry: Uint8Array, handle: number): Promise<Uint8Array> {
    const done = new Promise<Uint8Array>((resolve) => this.outstanding.set(handle, { resolve }));
    this.queue(entry);
    return done;
  }

  override async iocb(entry: Uint8Array, timeoutMs = this.timeoutMs): Promise<Uint8Array> {
    if (this.pollHandle === null) return super.iocb(entry, timeoutMs);
    const done = this.queueEntry(entry, handleOf(entry));
    this.doorbell();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new TimeoutError(`IOCB type 0x${entry[IocbHeader.ENTRY_TYPE]!.toString(16)} timed out`)),
        timeoutMs,
      );
    });
    try {
      return await Promise.race([done, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Like qla2xxx's outstanding_cmds[]: index 1..IO_HANDLES, never one still in flight. */
  private allocateHandle(): number {
    for (let tries = 0; tries < IO_HANDLES; tries++) {
      const h = this.nextHandle;
      this.nextHandle = h >= IO_HANDLES ? 1 : h + 1;
      if (!this.outstanding.has(h)) return h;
    }
    throw new Error('no free command handle');
  }

  // --- probe ------------------------------------------------------------------------------------

  /** The qla2xxx probe up to LOOP UP + PORT UPDATE, polled; then interrupts on (ICTRL, MSI-X eventfd). */
  async probe(wwpn: bigint, wwnn: bigint, linkTimeoutMs = LINK_TIMEOUT_MS): Promise<void> {
    await this.initializeAdapter({ wwpn, wwnn, linkTimeoutMs });
    this.w32(REG.ICTRL, ICTRL_EN_RISC_INT);
    this.startInterrupts();
    await this.pump(); // anything latched before interrupts were on
  }

  // --- I/O ----------------------------------------------------------------------------------------

  /** Random I/O at a fixed queue depth for a fixed time; every command re-posted on completion. */
  async runIo(o: IoRunOptions): Promise<IoRunResult> {
    if (o.queueDepth < 1 || o.queueDepth > MAX_QUEUE_DEPTH)
      throw new RangeError(`queue depth ${o.queueDepth} outside 1..${MAX_QUEUE_DEPTH}`);
    if (o.blockSize % BLOCK !== 0 || o.blockSize > GUEST.DATA_SLOT) throw new RangeError(`block size ${o.blockSize}`);
    const before = { ...this.counters };
    const latencies: number[] = [];
    const errorSamples: string[] = [];
    const blocks = o.blockSize / BLOCK;
    const span = Math.max(1, Math.floor(o.lbaCount / blocks));
    let ios = 0;
    let errors = 0;
    const start = process.hrtime.bigint();
    const end = start + BigInt(o.durationMs) * 1_000_000n;
    await new Promise<void>((resolve, reject) => {
      let inFlight = 0;
      const issue = (slot: number): void => {
        const lba = Math.floor(Math.random() * span) * blocks;
        const handle = this.allocateHandle();
        const bytes = ioEntry(
          handle,
          o.direction,
          lba,
          blocks,
          this.addr(GUEST.DATA + slot * GUEST.DATA_SLOT),
          this.targetPortId,
        );
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
            if (errorSamples.length < 5)
              errorSamples.push(
                `${entry[IocbHeader.ENTRY_TYPE]!.toString(16)}/${comp.toString(16)}/${scsi.toString(16)}`,
              );
          }
          ios++;
          latencies.push(us);
          o.onLatency?.(us);
          if (t1 < end && !this.closed) {
            issue(slot);
            this.doorbell();
          } else if (inFlight === 0) resolve();
        }, reject);
      };
      for (let slot = 0; slot < o.queueDepth; slot++) issue(slot);
      this.doorbell();
      setTimeout(() => {
        if (inFlight > 0)
          reject(new Error(`${inFlight} commands still outstanding ${this.timeoutMs} ms after the run`));
      }, o.durationMs + this.timeoutMs).unref();
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

  // --- single commands -----------------------------------------------------------------------------

  /**
   * One SCSI command on data slot `slot` (< MAX_QUEUE_DEPTH), completed by interrupt; resolves with
   * its Status Type 0 decoded. Read data is copied out of guest RAM. Bounded by the IOCB timeout.
   */
  async command(
    spec: Omit<CommandSpec, 'handle' | 'data' | 'targetPortId'>,
    slot = 0,
    dataOut: Uint8Array | null = null,
  ): Promise<CommandResult> {
    if (this.pollHandle === null) throw new Error('command() needs probe() first (interrupts on)');
    if (!Number.isInteger(slot) || slot < 0 || slot >= MAX_QUEUE_DEPTH) throw new RangeError(`slot ${slot}`);
    if (spec.length > GUEST.DATA_SLOT) throw new RangeError(`${spec.length} bytes exceed a data slot`);
    if (dataOut !== null && (spec.direction !== 'write' || dataOut.length > spec.length))
      throw new RangeError('write data only for a write, at most its length');
    const handle = this.allocateHandle();
    const at = GUEST.DATA + slot * GUEST.DATA_SLOT;
    if (dataOut !== null) this.ram.set(dataOut, at);
    const entry = commandEntry({ ...spec, handle, data: this.addr(at), targetPortId: this.targetPortId });
    const done = await this.iocb(entry);
    return this.decodeStatus(done, spec.direction === 'read' ? this.ram.slice(at, at + spec.length) : null);
  }

  /** Status Type 0 → CommandResult (qla2x00_status_entry's view: comp_status, scsi_status, residual, sense). */
  decodeStatus(entry: Uint8Array, data: Uint8Array | null): CommandResult {
    const dv = new DataView(entry.buffer, entry.byteOffset, entry.byteLength);
    const scsiStatus = dv.getUint16(Sts24.SCSI_STATUS, true);
    const senseLength = scsiStatus & ScsiStatusFlags.SS_SENSE_LEN_VALID ? dv.getUint32(Sts24.SENSE_LEN, true) : 0;
    const inline = swapDwords(entry.subarray(Sts24.DATA, Sts24.DATA + Sts24.DATA_SIZE));
    const compStatus = dv.getUint16(Sts24.COMP_STATUS, true);
    return {
      entryType: entry[IocbHeader.ENTRY_TYPE]!,
      entryStatus: entry[IocbHeader.ENTRY_STATUS]!,
      compStatus,
      scsiStatus: scsiStatus & ScsiStatusFlags.STATUS_BYTE_MASK,
      // qla2x00_status_entry: on CS_DATA_UNDERRUN the firmware's count (residual_len) is the residual.
      residual:
        compStatus === CS_DATA_UNDERRUN
          ? dv.getUint32(Sts24.RESIDUAL_LEN, true)
          : scsiStatus & ScsiStatusFlags.SS_RESIDUAL_UNDER
            ? dv.getUint32(Sts24.RSP_RESIDUAL_COUNT, true)
            : 0,
      sense: senseLength > 0 ? inline.slice(0, Math.min(senseLength, inline.length)) : null,
      data,
    };
  }

  /** REPORT LUNS (SPC-4 6.33): the LUN numbers of single-level peripheral/flat LUNs. */
  async reportLuns(): Promise<number[]> {
    const length = 4096;
    const cdb = new Uint8Array(12);
    cdb[0] = SCSI_REPORT_LUNS;
    new DataView(cdb.buffer).setUint32(6, length, false);
    const r = await this.command({ cdb, direction: 'read', length });
    if (!commandSucceeded(r)) throw new Error(`REPORT LUNS failed: ${describeResult(r)}`);
    const data = r.data!;
    const listBytes = new DataView(data.buffer, data.byteOffset).getUint32(0, false);
    const luns: number[] = [];
    for (let o = 8; o + 8 <= Math.min(data.length - r.residual, 8 + listBytes); o += 8)
      luns.push(((data[o]! & 0x3f) << 8) | data[o + 1]!);
    return luns;
  }

  /**
   * TEST UNIT READY until GOOD, as the SCSI midlayer's scan does: a new I_T nexus first sees
   * UNIT ATTENTION (power on / reset, LUNs changed...), reported once each (SAM-5 5.14).
   * Resolves with the UNIT ATTENTION sense codes consumed ("asc/ascq" in hex).
   */
  async clearUnitAttention(lun: number, attempts = 8): Promise<string[]> {
    const seen: string[] = [];
    for (let i = 0; i < attempts; i++) {
      const r = await this.command({ cdb: new Uint8Array(6), direction: 'none', length: 0, lun });
      if (commandSucceeded(r)) return seen;
      const sense = r.sense;
      if (
        r.scsiStatus !== SAM_CHECK_CONDITION ||
        !sense ||
        sense.length < 14 ||
        (sense[2]! & 0x0f) !== SENSE_UNIT_ATTENTION
      )
        throw new Error(`TEST UNIT READY on LUN ${lun}: ${describeResult(r)}`);
      seen.push(`${sense[12]!.toString(16)}/${sense[13]!.toString(16)}`);
    }
    throw new Error(`LUN ${lun} still reports UNIT ATTENTION after ${attempts} TEST UNIT READYs (${seen.join(' ')})`);
  }

  /** Index into `aens` from which waitForAen looks; take it before causing the event. */
  get aenMark(): number {
    return this.aens.length;
  }

  /** Resolves with the first AEN of `codes` recorded at or after `mark`; rejects after timeoutMs. */
  async waitForAen(codes: readonly number[], mark: number, timeoutMs: number): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      for (let i = mark; i < this.aens.length; i++) if (codes.includes(this.aens[i]!)) return this.aens[i]!;
      if (Date.now() > deadline || this.closed)
        throw new TimeoutError(
          `none of AENs ${codes.map((c) => c.toString(16))} within ${timeoutMs} ms (seen: ${this.aens.slice(mark).map((a) => a.toString(16))})`,
        );
      await sleep(20);
    }
  }

  override close(): void {
    if (this.closed) return;
    this.pollHandle?.stop();
    super.close();
  }
}
