/**
 * A QEMU-like guest with a qla2xxx-like driver (10.02.x, ISP25xx path): the one guest-side model
 * that the hostile-guest tests (test/unit/hostile/support.ts, GuestMachine), the CLI tests and the
 * emulator-only benchmark (src/vm-model/qla-driver.ts, QlaDriverModel) drive the emulated ISP2532
 * with. It attaches to a vfio-user socket exactly as QEMU does (VfioUserClient.startup: VERSION,
 * DMA_MAP of a memfd "guest RAM", region/IRQ info, config read, INTx/MSI-X eventfds), enables
 * memory space and bus mastering, and then plays the driver:
 *
 *   probe     RISC reset, LOAD_RISC_RAM_EXTENDED / VERIFY_CHECKSUM / EXECUTE_FIRMWARE mailboxes,
 *             response ring signatures, INITIALIZE_FIRMWARE with an ICB, wait for LOOP UP +
 *             PORT UPDATE AENs (interrupts off, polled, like qla2xxx's probe-time mailboxes)
 *   discover  SNS login (Login IOCB via MBC_IOCB_COMMAND_A64), GPN_FT (CT Pass-Through IOCB),
 *             PLOGI+PRLI (Login IOCB on the ring) to the first FCP target
 *   I/O       Command Type 7 with one DSD into guest RAM (ioEntry), queued at the request ring's
 *             producer index, doorbell = posted REQ_Q_IN write; responses reaped by signature,
 *             then a posted RSP_Q_OUT write
 *   flash     dword reads and writes through FLASH_ADDR/FLASH_DATA (qla24xx_read_flash_dword,
 *             qla24xx_write_flash_dword), the NVRAM port/node names as qla24xx_nvram_config reads
 *             them, and an NVRAM update as qla24xx_write_flash_data does it (unprotect, sector
 *             erase, program, protect)
 *
 * Mailbox commands and IOCBs complete by polling HOST_STATUS here (qla24xx_intr_handler's order:
 * HOST_STATUS, mailboxes or AEN, CLR_RISC_INT); a subclass that turns interrupts on overrides
 * mailbox() and iocb(). Every vfio-user message it sends is counted (round trips and posted
 * writes). It trusts nothing it reads: every loop has a budget, every wait a timeout.
 *
 * Guest RAM is one memfd, DMA-mapped at `ramBase`; the driver's structures sit at the QLA_LAYOUT
 * offsets from its start, and each user adds its own data area behind them:
 *
 *   + 0x001000  ICB (128 bytes)
 *   + 0x002000  scratch (firmware-load source, IOCB via mailbox)
 *   + 0x004000  CT request / + 0x005000 CT response
 *   + 0x010000  request ring  (reqEntries)
 *   + 0x020000  response ring (rspEntries)
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { FARX_DATA_FLAG, HCCRX, REG } from '../isp/registers.js';
import { FLASH_CONF, FLASH_LAYOUT, FLASH_SECTOR_SIZE, FLASH_WINDOW } from '../isp/flash.js';
import { NVRAM } from '../isp/nvram.js';
import { native } from '../native/index.js';
import { writeU24LE } from '../util/bytes.js';
import { VfioUserClient } from '../vfio-user/client.js';
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
} from '../../assembly/shared/iocb.js';
import { LCF_COMMAND_PLOGI, LCF_COND_PLOGI, LCF_SKIP_PRLI } from '../../assembly/shared/iocb-mgmt.js';
import { VFIO_PCI_BAR1_REGION_INDEX, VFIO_PCI_CONFIG_REGION_INDEX } from '../device/linux-vfio.js';

/** Offsets in guest RAM of the driver's structures (the same for every user of the model). */
export const QLA_LAYOUT = {
  ICB: 0x1000,
  SCRATCH: 0x2000,
  CT_REQUEST: 0x4000,
  CT_RESPONSE: 0x5000,
  CT_RESPONSE_SIZE: 0x1000,
  REQ_RING: 0x10000,
  RSP_RING: 0x20000,
} as const;

/** PCI config space (PCI 3.0) offsets the guest touches. */
const PCI_COMMAND = 0x04;
const PCI_COMMAND_MEMORY = 0x2;
const PCI_COMMAND_MASTER = 0x4;

/** HOST_STATUS (qla_def.h HSRX_RISC_INT and the 24xx interrupt types). */
export const HSRX_RISC_INT = 0x8000;
const INT_TYPE_MASK = 0xff;
const INT_MAILBOX = new Set([0x01, 0x02, 0x10, 0x11]);
const INT_ASYNC_EVENT = 0x12;
export const INT_RESPONSE_UPDATE = 0x13;
/** ICTRL: ICRX_EN_RISC_INT. */
export const ICTRL_EN_RISC_INT = 0x8;
const MAILBOXES = 32;
/** qla24xx_reset_risc's CTRL_STATUS write (DMA shutdown + ISP reset + burst setting). */
const CTRL_STATUS_RESET = 0x10031;

/** Flash sector erase opcode the driver uses for this part (no FDT: its 25xx default). */
const FLASH_SECTOR_ERASE = 0xd8;
/** qla24xx_protect_flash's write-protect value (any non-zero value protects). */
const FLASH_PROTECT_ALL = 0x9c;
/** Poll budget of one flash cycle (qla24xx_read_flash_dword polls 30000 × 10 µs). */
const FLASH_POLLS = 100;

/** Mailbox commands (qla_def.h MBC_*). */
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
/** firmware_options_2 qla2xxx sets for point-to-point-preferred fabric attach with NPIV. */
const ICB_FW_OPTIONS_2 = 0x6006;

export const NPORT_HANDLE_SNS = 0x7fc;
const SNS_PORT_ID = 0xfffffc;
export const TARGET_NPORT_HANDLE = 0x81;
/** Handles are (queue 0 << 16) | index, index 1..2047 (the firmware's exchange count): discovery uses the top two. */
export const MAX_HANDLE_INDEX = 2047;
const DISCOVERY_HANDLE = MAX_HANDLE_INDEX - 1;
/** Login IOCB control flags of qla24xx_login_fabric: the SNS login (no PRLI), and PLOGI then PRLI to a target. */
const LOGIO_SNS_FLAGS = LCF_COND_PLOGI | LCF_SKIP_PRLI;
const LOGIO_PLOGI_THEN_PRLI = LCF_COMMAND_PLOGI | LCF_COND_PLOGI;
const CT_GPN_FT = 0x0172;
const CT_FC4_FCP = 0x08;
const CT_ACCEPT = 0x8002;
const GPN_FT_ENTRY_SIZE = 16;
const GPN_FT_LAST = 0x80;
export const SCSI_READ_10 = 0x28;
export const SCSI_WRITE_10 = 0x2a;
export const BLOCK = 512;

export class TimeoutError extends Error {}

export { sleep };

/** Dword-swaps (qla2xxx host_to_fcp_swap) a CDB or LUN. */
export function swapDwords(src: Uint8Array): Uint8Array {
  const out = new Uint8Array(src.length);
  for (let i = 0; i < src.length; i++) out[(i & ~3) + 3 - (i & 3)] = src[i]!;
  return out;
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

/** What one Command Type 7 carries (qla24xx_build_scsi_iocbs with a single data segment). */
export interface CommandSpec {
  handle: number;
  /** Up to 16 CDB bytes, as the SCSI midlayer hands them over. */
  cdb: Uint8Array;
  direction: 'read' | 'write' | 'none';
  /** FCP_DL; also the one DSD's length (0 for 'none'). */
  length: number;
  /** Guest address of the data buffer (ignored for 'none'). */
  data: bigint;
  targetPortId: number;
  /** LUN below 256 (single-level SAM LUN, peripheral addressing). */
  lun?: number;
}

/** A Command Type 7 for any CDB: LUN and CDB dword-swapped as host_to_fcp_swap leaves them. */
export function commandEntry(c: CommandSpec): Uint8Array {
  if (c.cdb.length > Cmd7.FCP_CDB_SIZE) throw new RangeError(`CDB of ${c.cdb.length} bytes`);
  const lun = c.lun ?? 0;
  if (!Number.isInteger(lun) || lun < 0 || lun > 255) throw new RangeError(`LUN ${lun} outside 0..255`);
  const e = newEntry(EntryType.COMMAND_TYPE_7, c.handle);
  e.dv.setUint16(Cmd7.NPORT_HANDLE, TARGET_NPORT_HANDLE, true);
  const samLun = new Uint8Array(8);
  samLun[1] = lun;
  e.bytes.set(swapDwords(samLun), Cmd7.LUN);
  const cdb = new Uint8Array(Cmd7.FCP_CDB_SIZE);
  cdb.set(c.cdb);
  e.bytes.set(swapDwords(cdb), Cmd7.FCP_CDB);
  writeU24LE(e.bytes, Cmd7.PORT_ID, c.targetPortId);
  if (c.direction !== 'none' && c.length > 0) {
    e.dv.setUint16(Cmd7.DSEG_COUNT, 1, true);
    e.dv.setUint16(
      Cmd7.TASK_MGMT_FLAGS,
      c.direction === 'write' ? Cmd7Flags.TMF_WRITE_DATA : Cmd7Flags.TMF_READ_DATA,
      true,
    );
    e.dv.setUint32(Cmd7.BYTE_COUNT, c.length, true);
    e.dv.setBigUint64(Cmd7.DSD + Dsd64.ADDRESS, c.data, true);
    e.dv.setUint32(Cmd7.DSD + Dsd64.LENGTH, c.length, true);
  }
  return e.bytes;
}

/** A Command Type 7 READ(10)/WRITE(10) with one DSD at guest address `data`. */
export function ioEntry(
  handle: number,
  direction: 'read' | 'write',
  lba: number,
  blocks: number,
  data: bigint,
  targetPortId: number,
  lun = 0,
): Uint8Array {
  const cdb = new Uint8Array(10);
  cdb[0] = direction === 'write' ? SCSI_WRITE_10 : SCSI_READ_10;
  new DataView(cdb.buffer).setUint32(2, lba, false);
  new DataView(cdb.buffer).setUint16(7, blocks, false);
  return commandEntry({ handle, cdb, direction, length: blocks * BLOCK, data, targetPortId, lun });
}

export function handleOf(entry: Uint8Array): number {
  return new DataView(entry.buffer, entry.byteOffset).getUint32(IocbHeader.HANDLE, true);
}

export interface MailboxResult {
  mb: number[];
}

/** One serviced interrupt: its HOST_STATUS type, and the outbound mailboxes of a mailbox completion. */
export interface ServicedInterrupt {
  type: number;
  mailbox: MailboxResult | null;
}

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

export interface QlaGuestOptions {
  /** name of the memfd behind guest RAM */
  memfdName: string;
  /** guest-physical address guest RAM is DMA-mapped at */
  ramBase: bigint;
  ramSize: number;
  reqEntries: number;
  rspEntries: number;
  /** bound of every vfio-user reply, and the default bound of mailbox and IOCB completions */
  timeoutMs: number;
  /** MSI-X vectors bound to eventfds at attach */
  msixVectors: number;
  /** writes guest RAM before it is DMA-mapped (a canary pattern, say) */
  fill?: (ram: Uint8Array) => void;
}

/** What a subclass constructor hands to QlaGuest's (made by QlaGuest.connect). */
export interface QlaGuestParts {
  client: VfioUserClient;
  memfd: number;
  ramBuffer: ArrayBuffer;
  options: QlaGuestOptions;
}

export interface InitializeOptions {
  wwpn: bigint;
  wwnn: bigint;
  /** wait for LOOP UP + PORT UPDATE (default true) */
  expectLink?: boolean;
  /** default 10 s */
  linkTimeoutMs?: number;
}

export class QlaGuest {
  /** this port's name (initializeAdapter): discovery skips it in the name server's list */
  private ownWwpn: bigint | null = null;
  readonly client: VfioUserClient;
  /** the memfd behind guest RAM (for tests that re-map it) */
  readonly memfd: number;
  readonly ram: Uint8Array;
  readonly view: DataView;
  readonly ramBase: bigint;
  readonly reqEntries: number;
  readonly rspEntries: number;
  readonly counters: DriverCounters = { roundTrips: 0, postedWrites: 0, interruptWakeups: 0, interrupts: 0 };
  /** AEN codes seen while servicing interrupts. */
  readonly aens: number[] = [];
  reqIn = 0;
  rspOut = 0;
  targetPortId = 0;
  /** region sizes reported at attach (index = vfio region index) */
  regionSizes: number[] = [];
  /** config space as read at attach */
  config: Uint8Array = new Uint8Array(0);
  /** eventfds bound at attach (owned by the client) */
  intxEventfd: number | null = null;
  msixEventfds: number[] = [];
  protected readonly timeoutMs: number;
  protected closed = false;
  private readonly ramBuffer: ArrayBuffer;

  protected constructor(parts: QlaGuestParts) {
    this.client = parts.client;
    this.memfd = parts.memfd;
    this.ramBuffer = parts.ramBuffer;
    this.ram = new Uint8Array(parts.ramBuffer);
    this.view = new DataView(parts.ramBuffer);
    this.ramBase = parts.options.ramBase;
    this.reqEntries = parts.options.reqEntries;
    this.rspEntries = parts.options.rspEntries;
    this.timeoutMs = parts.options.timeoutMs;
  }

  /**
   * Maps guest RAM, connects and replays QEMU's attach, then enables memory space and bus
   * mastering; `make` builds the subclass instance around the pieces.
   */
  protected static async connect<T extends QlaGuest>(
    socketPath: string,
    options: QlaGuestOptions,
    make: (parts: QlaGuestParts) => T,
  ): Promise<T> {
    const memfd = native.memfdCreate(options.memfdName, options.ramSize);
    const ramBuffer = native.mmap(memfd, options.ramSize, 0n, 3);
    let client: VfioUserClient;
    try {
      client = VfioUserClient.connect(socketPath, { timeoutMs: options.timeoutMs });
    } catch (err) {
      native.munmap(ramBuffer);
      native.close(memfd);
      throw err;
    }
    const g = make({ client, memfd, ramBuffer, options });
    try {
      options.fill?.(g.ram);
      const s = await client.startup({
        dma: [{ address: options.ramBase, size: BigInt(options.ramSize), fd: memfd, offset: 0n }],
        msixVectors: options.msixVectors,
      });
      g.regionSizes = s.regions.map((r) => Number(r.size));
      g.config = s.config;
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
    return this.ramBase + BigInt(offset);
  }

  async configWrite16(offset: number, value: number): Promise<void> {
    this.counters.roundTrips++;
    await this.client.regionWrite(
      VFIO_PCI_CONFIG_REGION_INDEX,
      offset,
      new Uint8Array([value & 0xff, (value >> 8) & 0xff]),
    );
  }

  async enableDevice(): Promise<void> {
    await this.configWrite16(PCI_COMMAND, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
  }

  // --- registers ---------------------------------------------------------------------------

  async r32(offset: number): Promise<number> {
    this.counters.roundTrips++;
    const b = await this.client.regionRead(VFIO_PCI_BAR1_REGION_INDEX, offset, 4);
    if (b.length !== 4) throw new Error(`short BAR1 read at 0x${offset.toString(16)}`);
    return new DataView(b.buffer, b.byteOffset, 4).getUint32(0, true);
  }

  /** Posted 32-bit BAR1 write (QEMU posts MMIO writes). */
  w32(offset: number, value: number): void {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, value >>> 0, true);
    this.counters.postedWrites++;
    void this.client.regionWrite(VFIO_PCI_BAR1_REGION_INDEX, offset, b, true);
  }

  w16(offset: number, value: number): void {
    this.counters.postedWrites++;
    void this.client.regionWrite(
      VFIO_PCI_BAR1_REGION_INDEX,
      offset,
      new Uint8Array([value & 0xff, (value >> 8) & 0xff]),
      true,
    );
  }

  /** The 32 outbound mailboxes, read 8 bytes at a time. */
  async readMailboxes(): Promise<number[]> {
    const mb: number[] = [];
    for (let off = 0; off < MAILBOXES * 2; off += 8) {
      this.counters.roundTrips++;
      const b = await this.client.regionRead(VFIO_PCI_BAR1_REGION_INDEX, REG.MAILBOX0 + off, 8);
      if (b.length !== 8) throw new Error('short mailbox read');
      for (let i = 0; i < 8; i += 2) mb.push(b[i]! | (b[i + 1]! << 8));
    }
    return mb;
  }

  // --- interrupts and mailboxes ----------------------------------------------------------------

  /**
   * One pass of qla24xx_intr_handler: reads HOST_STATUS; a mailbox completion's outbound
   * mailboxes are read, an AEN is recorded; then RISC_INT is cleared. Null when none was latched.
   * Response entries are left on the ring for reap().
   */
  async serviceInterrupt(): Promise<ServicedInterrupt | null> {
    const hs = await this.r32(REG.HOST_STATUS);
    if (!(hs & HSRX_RISC_INT)) return null;
    const type = hs & INT_TYPE_MASK;
    let mailbox: MailboxResult | null = null;
    if (INT_MAILBOX.has(type)) {
      const mb = await this.readMailboxes();
      mb[0] = hs >>> 16;
      mailbox = { mb };
    } else if (type === INT_ASYNC_EVENT) {
      this.aens.push(hs >>> 16);
    }
    this.w32(REG.HCCR, HCCRX.CLR_RISC_INT << 28);
    return { type, mailbox };
  }

  /** serviceInterrupt() in polling mode: returns a mailbox completion if one was latched. */
  async pollOnce(): Promise<MailboxResult | null> {
    return (await this.serviceInterrupt())?.mailbox ?? null;
  }

  /** Writes mb0..mb[regs.length-1] and sets HOST_INT: the command starts. */
  protected postMailbox(regs: readonly number[]): void {
    for (let i = 0; i < regs.length && i < MAILBOXES; i++) this.w16(REG.MAILBOX0 + 2 * i, regs[i] ?? 0);
    this.w32(REG.HCCR, HCCRX.SET_HOST_INT << 28);
  }

  /** Issues a mailbox command and polls HOST_STATUS for its completion, bounded. */
  async mailbox(regs: readonly number[], timeoutMs = this.timeoutMs): Promise<MailboxResult> {
    this.postMailbox(regs);
    const deadline = Date.now() + timeoutMs;
    for (let polls = 0; ; polls++) {
      const r = await this.pollOnce();
      if (r) return r;
      if (Date.now() > deadline) {
        throw new TimeoutError(
          `mailbox 0x${(regs[0] ?? 0).toString(16)} [${regs.map((v) => v.toString(16)).join(' ')}] got no completion in ${timeoutMs} ms`,
        );
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

  // --- probe ---------------------------------------------------------------------------------

  /** The qla2xxx probe (qla2x00_initialize_adapter) in polling mode, up to LOOP UP + PORT UPDATE (when `expectLink`). */
  async initializeAdapter(o: InitializeOptions): Promise<void> {
    this.ownWwpn = o.wwpn;
    this.aens.length = 0;
    this.w32(REG.ICTRL, 0);
    this.w32(REG.CTRL_STATUS, CTRL_STATUS_RESET);
    this.w32(REG.HCCR, HCCRX.SET_RISC_RESET << 28);
    this.w32(REG.HCCR, HCCRX.REL_RISC_PAUSE << 28);
    this.w32(REG.HCCR, HCCRX.CLR_RISC_RESET << 28);
    // Drain whatever the reset left latched.
    for (let i = 0; i < 16 && (await this.pollOnce()) !== null; i++);
    await this.expectOk(
      this.dmaMailbox(MBC.LOAD_RISC_RAM_EXTENDED, this.addr(QLA_LAYOUT.SCRATCH), {
        1: RISC_START_ADDRESS & 0xffff,
        5: 16,
        8: RISC_START_ADDRESS >>> 16,
      }),
      'LOAD_RISC_RAM_EXTENDED',
    );
    await this.expectOk([MBC.VERIFY_CHECKSUM, RISC_START_ADDRESS >>> 16, 0], 'VERIFY_CHECKSUM');
    await this.expectOk([MBC.EXECUTE_FIRMWARE, RISC_START_ADDRESS >>> 16, 0], 'EXECUTE_FIRMWARE');
    for (let i = 0; i < this.rspEntries; i++)
      this.view.setUint32(QLA_LAYOUT.RSP_RING + i * IOCB_SIZE + IocbHeader.SIGNATURE, RESPONSE_PROCESSED, true);
    for (const r of [REG.REQ_Q_IN, REG.REQ_Q_OUT, REG.RSP_Q_IN, REG.RSP_Q_OUT]) this.w32(r, 0);
    this.reqIn = 0;
    this.rspOut = 0;
    this.writeIcb(o.wwpn, o.wwnn);
    await this.expectOk(this.dmaMailbox(MBC.INITIALIZE_FIRMWARE, this.addr(QLA_LAYOUT.ICB)), 'INITIALIZE_FIRMWARE');
    if (o.expectLink === false) return;
    const linkTimeoutMs = o.linkTimeoutMs ?? 10_000;
    const deadline = Date.now() + linkTimeoutMs;
    // The model reports link events with the next mailbox completion or on its own; keep asking.
    while (!this.aens.includes(MBA_PORT_UPDATE)) {
      if (Date.now() > deadline)
        throw new TimeoutError(
          `no PORT UPDATE within ${linkTimeoutMs} ms (AENs: ${this.aens.map((a) => a.toString(16))})`,
        );
      await this.mailbox([MBC.GET_FIRMWARE_STATE]);
      await sleep(5);
    }
    if (!this.aens.includes(MBA_LOOP_UP)) throw new Error('PORT UPDATE without LOOP UP');
  }

  writeIcb(wwpn: bigint, wwnn: bigint): void {
    this.ram.fill(0, QLA_LAYOUT.ICB, QLA_LAYOUT.ICB + ICB.SIZE);
    const icb = new DataView(this.ram.buffer, QLA_LAYOUT.ICB, ICB.SIZE);
    icb.setUint16(ICB.VERSION, 1, true);
    icb.setUint16(ICB.FRAME_PAYLOAD_SIZE, 2048, true);
    icb.setBigUint64(ICB.PORT_NAME, wwpn, false);
    icb.setBigUint64(ICB.NODE_NAME, wwnn, false);
    icb.setUint16(ICB.RSP_Q_LENGTH, this.rspEntries, true);
    icb.setUint16(ICB.REQ_Q_LENGTH, this.reqEntries, true);
    icb.setBigUint64(ICB.REQ_Q_ADDRESS, this.addr(QLA_LAYOUT.REQ_RING), true);
    icb.setBigUint64(ICB.RSP_Q_ADDRESS, this.addr(QLA_LAYOUT.RSP_RING), true);
    icb.setUint32(ICB.FIRMWARE_OPTIONS_2, ICB_FW_OPTIONS_2, true);
  }

  // --- flash and NVRAM -----------------------------------------------------------------------

  /** One dword through the flash window: address cycle, wait for FARX_DATA_FLAG, read flash_data. */
  async flashReadDword(windowAddress: number): Promise<number> {
    this.w32(REG.FLASH_ADDR, windowAddress & ~FARX_DATA_FLAG);
    for (let i = 0; i < FLASH_POLLS; i++) {
      if ((await this.r32(REG.FLASH_ADDR)) & FARX_DATA_FLAG) return (await this.r32(REG.FLASH_DATA)) >>> 0;
    }
    throw new TimeoutError(`flash read of 0x${windowAddress.toString(16)} never completed`);
  }

  /** One dword write cycle (or flash-config command): flash_data, then the address with bit 31. */
  async flashWriteDword(windowAddress: number, data: number): Promise<void> {
    this.w32(REG.FLASH_DATA, data);
    this.w32(REG.FLASH_ADDR, (windowAddress | FARX_DATA_FLAG) >>> 0);
    for (let i = 0; i < FLASH_POLLS; i++) if (!((await this.r32(REG.FLASH_ADDR)) & FARX_DATA_FLAG)) return;
    throw new TimeoutError(`flash write of 0x${windowAddress.toString(16)} never completed`);
  }

  /** `length` bytes of flash from byte address `start` (dword aligned). */
  async flashRead(start: number, length: number): Promise<Uint8Array> {
    const out = new Uint8Array(length);
    const dv = new DataView(out.buffer);
    for (let off = 0; off < length; off += 4)
      dv.setUint32(off, await this.flashReadDword(FLASH_WINDOW.DATA + (start + off) / 4), true);
    return out;
  }

  /**
   * Rewrites flash from byte address `start` as qla24xx_write_flash_data does: unprotect, erase
   * each 64 KiB sector the data starts, program the dwords, protect again. `data` is dword aligned.
   */
  async flashWrite(start: number, data: Uint8Array): Promise<void> {
    const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
    await this.flashWriteDword(FLASH_WINDOW.CONF + FLASH_CONF.WRITE_PROTECT, 0);
    for (let off = 0; off < data.length; off += 4) {
      const a = start + off;
      if (off === 0 || a % FLASH_SECTOR_SIZE === 0) {
        const s = a & ~(FLASH_SECTOR_SIZE - 1);
        // The erase command carries the sector's byte address in flash byte order (qla24xx_erase_sector).
        await this.flashWriteDword(
          FLASH_WINDOW.CONF + FLASH_CONF.COMMAND_BASE + FLASH_SECTOR_ERASE,
          (s & 0xff00) | ((s << 16) & 0xff0000) | ((s >> 16) & 0xff),
        );
      }
      await this.flashWriteDword(FLASH_WINDOW.DATA + a / 4, dv.getUint32(off, true));
    }
    await this.flashWriteDword(FLASH_WINDOW.CONF + FLASH_CONF.WRITE_PROTECT, FLASH_PROTECT_ALL);
  }

  /** The function-0 NVRAM block (struct nvram_24xx). */
  readNvram(): Promise<Uint8Array> {
    return this.flashRead(FLASH_LAYOUT.NVRAM_FUNC0, NVRAM.CHECKSUM + 4);
  }

  /** The port and node names qla24xx_nvram_config takes from NVRAM into the ICB. */
  async readNvramNames(): Promise<{ wwpn: bigint; wwnn: bigint }> {
    const nv = await this.readNvram();
    const dv = new DataView(nv.buffer);
    return { wwpn: dv.getBigUint64(NVRAM.PORT_NAME, false), wwnn: dv.getBigUint64(NVRAM.NODE_NAME, false) };
  }

  // --- rings ---------------------------------------------------------------------------------

  /** Copies an entry to the request ring at the producer index (no doorbell). */
  queue(entry: Uint8Array): void {
    this.ram.set(entry, QLA_LAYOUT.REQ_RING + this.reqIn * IOCB_SIZE);
    this.reqIn = (this.reqIn + 1) % this.reqEntries;
  }

  doorbell(): void {
    this.w32(REG.REQ_Q_IN, this.reqIn);
  }

  /** Consumes response entries by signature (qla24xx_process_response_queue), one ring at most. */
  reap(): Uint8Array[] {
    const out: Uint8Array[] = [];
    for (let n = 0; n < this.rspEntries; n++) {
      const at = QLA_LAYOUT.RSP_RING + this.rspOut * IOCB_SIZE;
      if (this.view.getUint32(at + IocbHeader.SIGNATURE, true) === RESPONSE_PROCESSED) break;
      out.push(this.ram.slice(at, at + IOCB_SIZE)); // copy out before handing the slot back
      this.view.setUint32(at + IocbHeader.SIGNATURE, RESPONSE_PROCESSED, true);
      this.rspOut = (this.rspOut + 1) % this.rspEntries;
    }
    if (out.length) this.w32(REG.RSP_Q_OUT, this.rspOut);
    return out;
  }

  /** Polls and reaps until `done(all reaped so far)` or the deadline; returns everything reaped. */
  async collect(done: (got: Uint8Array[]) => boolean, timeoutMs = this.timeoutMs): Promise<Uint8Array[]> {
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
  async iocb(entry: Uint8Array, timeoutMs = this.timeoutMs): Promise<Uint8Array> {
    const handle = handleOf(entry);
    this.queue(entry);
    this.doorbell();
    const got = await this.collect((g) => g.some((e) => handleOf(e) === handle), timeoutMs);
    return got.find((e) => handleOf(e) === handle)!;
  }

  // --- discovery -----------------------------------------------------------------------------

  /**
   * SNS login, GPN_FT for FCP ports, PLOGI+PRLI to the first one that is not this port (handle
   * TARGET_NPORT_HANDLE); returns its port id. A name server may list the requester itself (the
   * host backend's does), and right after a link up the targets may not be back yet: as
   * qla2x00_find_all_fabric_devs skips its own port and later RSCNs bring the rest, GPN_FT is
   * asked again (every 0.5 s, up to `timeoutMs`) while it lists no other FCP port.
   */
  async discover(timeoutMs = 10_000): Promise<number> {
    // SNS login through MBC_IOCB_COMMAND_A64, as qla24xx_login_fabric does.
    const sns = newEntry(EntryType.LOGINOUT_PORT_IOCB_TYPE, 0);
    sns.dv.setUint16(Logio.NPORT_HANDLE, NPORT_HANDLE_SNS, true);
    sns.dv.setUint16(Logio.CONTROL_FLAGS, LOGIO_SNS_FLAGS, true);
    writeU24LE(sns.bytes, Logio.PORT_ID, SNS_PORT_ID);
    this.ram.set(sns.bytes, QLA_LAYOUT.SCRATCH);
    await this.expectOk(this.dmaMailbox(MBC.IOCB_COMMAND_A64, this.addr(QLA_LAYOUT.SCRATCH)), 'SNS login');
    const snsStatus = this.view.getUint16(QLA_LAYOUT.SCRATCH + Logio.COMP_STATUS, true);
    if (snsStatus !== 0) throw new Error(`SNS login status 0x${snsStatus.toString(16)}`);

    const deadline = Date.now() + timeoutMs;
    let target = await this.gpnFtFirstOther();
    while (target === 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 500));
      target = await this.gpnFtFirstOther();
    }
    if (target === 0) throw new Error('GPN_FT listed no FCP port other than this one');

    // PLOGI + PRLI with a driver-chosen N_Port handle.
    const login = newEntry(EntryType.LOGINOUT_PORT_IOCB_TYPE, DISCOVERY_HANDLE + 1);
    login.dv.setUint16(Logio.NPORT_HANDLE, TARGET_NPORT_HANDLE, true);
    login.dv.setUint16(Logio.CONTROL_FLAGS, LOGIO_PLOGI_THEN_PRLI, true);
    writeU24LE(login.bytes, Logio.PORT_ID, target);
    const done = await this.iocb(login.bytes);
    if (done[IocbHeader.ENTRY_STATUS] !== 0)
      throw new Error(`PLOGI entry_status 0x${done[IocbHeader.ENTRY_STATUS]!.toString(16)}`);
    const status = new DataView(done.buffer).getUint16(Logio.COMP_STATUS, true);
    if (status !== 0) throw new Error(`PLOGI to ${target.toString(16)} status 0x${status.toString(16)}`);
    this.targetPortId = target;
    return target;
  }

  /** One GPN_FT (FC-4 type FCP) through a CT Pass-Through IOCB: the first listed port that is not this one, or 0. */
  private async gpnFtFirstOther(): Promise<number> {
    const ctReq = new Uint8Array(20);
    // FC-GS preamble: revision 1, GS type 0xfc (directory), subtype 0x02 (name server), command, max size in words.
    const maxWords = (QLA_LAYOUT.CT_RESPONSE_SIZE - 16) / 4;
    ctReq.set([1, 0, 0, 0, 0xfc, 0x02, 0, 0, CT_GPN_FT >> 8, CT_GPN_FT & 0xff, maxWords >> 8, maxWords & 0xff]);
    ctReq[19] = CT_FC4_FCP;
    this.ram.set(ctReq, QLA_LAYOUT.CT_REQUEST);
    const ct = newEntry(EntryType.CT_IOCB_TYPE, DISCOVERY_HANDLE);
    ct.dv.setUint16(Ct.NPORT_HANDLE, NPORT_HANDLE_SNS, true);
    ct.dv.setUint16(Ct.CMD_DSD_COUNT, 1, true);
    ct.dv.setUint16(Ct.RSP_DSD_COUNT, 1, true);
    ct.dv.setUint32(Ct.RSP_BYTE_COUNT, QLA_LAYOUT.CT_RESPONSE_SIZE, true);
    ct.dv.setUint32(Ct.CMD_BYTE_COUNT, ctReq.length, true);
    ct.dv.setBigUint64(Ct.DSD0 + Dsd64.ADDRESS, this.addr(QLA_LAYOUT.CT_REQUEST), true);
    ct.dv.setUint32(Ct.DSD0 + Dsd64.LENGTH, ctReq.length, true);
    ct.dv.setBigUint64(Ct.DSD1 + Dsd64.ADDRESS, this.addr(QLA_LAYOUT.CT_RESPONSE), true);
    ct.dv.setUint32(Ct.DSD1 + Dsd64.LENGTH, QLA_LAYOUT.CT_RESPONSE_SIZE, true);
    const ctDone = await this.iocb(ct.bytes);
    if (ctDone[IocbHeader.ENTRY_STATUS] !== 0)
      throw new Error(`GPN_FT entry_status 0x${ctDone[IocbHeader.ENTRY_STATUS]!.toString(16)}`);
    const ctStatus = new DataView(ctDone.buffer).getUint16(Ct.COMP_STATUS, true);
    if (ctStatus !== 0) throw new Error(`GPN_FT status 0x${ctStatus.toString(16)}`);
    const list = this.ram.slice(QLA_LAYOUT.CT_RESPONSE, QLA_LAYOUT.CT_RESPONSE + QLA_LAYOUT.CT_RESPONSE_SIZE);
    if (new DataView(list.buffer).getUint16(8, false) !== CT_ACCEPT)
      throw new Error(`GPN_FT rejected: ${Buffer.from(list.subarray(0, 16)).toString('hex')}`);
    for (let o = 16; o + GPN_FT_ENTRY_SIZE <= list.length; o += GPN_FT_ENTRY_SIZE) {
      const id = (list[o + 1]! << 16) | (list[o + 2]! << 8) | list[o + 3]!;
      // entry: control + port id, reserved, port name (FC-GS-7 GPN_FT accept)
      const name = new DataView(list.buffer, list.byteOffset + o + 8, 8).getBigUint64(0, false);
      if (id !== 0 && name !== this.ownWwpn) return id;
      if (list[o]! & GPN_FT_LAST) break;
    }
    return 0;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.client.close();
    native.munmap(this.ramBuffer);
    native.close(this.memfd);
  }
}
