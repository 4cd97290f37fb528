/**
 * BAR1 register file of the emulated QLogic ISP2532 (struct device_reg_24xx, 256 bytes at the
 * start of a 16 KiB MMIO BAR) as qla2xxx 10.02.x drives it (qla24xx_reset_risc,
 * qla2x00_mailbox_command, qla24xx_intr_handler, qla24xx_enable_intrs).
 *
 * Mailboxes are two arrays at the same offsets: writes land in the inbound (host→RISC) set,
 * reads return the outbound (RISC→host) set. Every access is width/alignment checked; an access
 * the model does not handle is traced and reads as 0 — never an exception to the transport.
 */
import { type EventFifo, HOST_STATUS, MAILBOX_COUNT } from './events.js';
import type { FlashStore } from './flash.js';
import type { IspFirmware } from './firmware.js';
import type { IspQueues } from './queues.js';
import type { Trace } from '../device/trace.js';

/** device_reg_24xx offsets (qla_fw.h). */
export const REG = {
  FLASH_ADDR: 0x00,
  FLASH_DATA: 0x04,
  CTRL_STATUS: 0x08,
  ICTRL: 0x0c,
  ISTATUS: 0x10,
  REQ_Q_IN: 0x1c,
  REQ_Q_OUT: 0x20,
  RSP_Q_IN: 0x24,
  RSP_Q_OUT: 0x28,
  PREQ_Q_IN: 0x2c,
  PREQ_Q_OUT: 0x30,
  ATIO_Q_IN: 0x3c,
  ATIO_Q_OUT: 0x40,
  HOST_STATUS: 0x44,
  HCCR: 0x48,
  GPIOD: 0x4c,
  GPIOE: 0x50,
  IOBASE_ADDR: 0x54,
  MAILBOX0: 0x80,
  MAILBOX_END: 0xc0,
  IOBASE_WINDOW: 0xc0,
  IOBASE_C4: 0xc4,
  IOBASE_C8: 0xc8,
  IOBASE_Q: 0xe4,
  IOBASE_SELECT: 0xf0,
  IOBASE_SDATA: 0xfc,
  SIZE: 0x100,
} as const;

/** flash_addr BIT31: FARX_DATA_FLAG. */
export const FARX_DATA_FLAG = 0x80000000;

/** ctrl_status bits (CSRX_*). */
export const CSRX = {
  ISP_SOFT_RESET: 1 << 0,
  FLASH_ENABLE: 1 << 1,
  MAX_WRT_BURST: 0x30,
  DMA_SHUTDOWN: 1 << 16,
  DMA_ACTIVE: 1 << 17,
} as const;
/** Bits of ctrl_status the guest may set and read back. */
const CTRL_STATUS_STORED = CSRX.FLASH_ENABLE | CSRX.MAX_WRT_BURST | CSRX.DMA_SHUTDOWN;

/** ictrl ICRX_EN_RISC_INT; istatus ISRX_RISC_INT. */
const ICRX_EN_RISC_INT = 1 << 3;
const ISRX_RISC_INT = 1 << 3;

/** hccr command codes (bits 31:28) and status bits. */
export const HCCRX = {
  SET_RISC_RESET: 0x1,
  CLR_RISC_RESET: 0x2,
  SET_RISC_PAUSE: 0x3,
  REL_RISC_PAUSE: 0x4,
  SET_HOST_INT: 0x5,
  CLR_HOST_INT: 0x6,
  CLR_RISC_INT: 0xa,
  STATUS_RISC_RESET: 1 << 5,
} as const;

/** Left in the outbound mailboxes by the boot ROM after reset: "ISP " (OpenBSD qle checks it). */
const ROM_SIGNATURE_MB1 = 0x4953;
const ROM_SIGNATURE_MB2 = 0x5020;

export class IspRegisterFile {
  readonly inbound = new Uint16Array(MAILBOX_COUNT);
  readonly outbound: Uint16Array;
  private flashAddr = 0;
  private flashData = 0;
  private ctrlStatus = 0;
  private ictrl = 0;
  private paused = false;
  /** Plain stored registers without side effects (priority/ATIO queues, GPIO, fw-dump windows). */
  private readonly stored = new Map<number, number>();

  constructor(
    private readonly fw: IspFirmware,
    private readonly events: EventFifo,
    private readonly queues: IspQueues,
    private readonly flash: FlashStore,
    outbound: Uint16Array,
    private readonly trace: Trace = () => {},
  ) {
    this.outbound = outbound;
  }

  /** BAR1 read of size 1, 2 or 4 at offset; invalid accesses read 0. */
  read(offset: number, size: number): number {
    if (!this.validAccess(offset, size)) return 0;
    if (offset >= REG.SIZE) return 0; // the rest of the 16 KiB BAR is unimplemented space
    if (offset >= REG.MAILBOX0 && offset < REG.MAILBOX_END) return this.readMailboxes(offset, size);
    const dword = this.readDword(offset & ~3);
    if (size === 4) return dword >>> 0;
    const shift = (offset & 3) * 8;
    return (dword >>> shift) & (size === 2 ? 0xffff : 0xff);
  }

  write(offset: number, size: number, value: number): void {
    if (!this.validAccess(offset, size)) return;
    if (offset >= REG.SIZE) {
      this.trace('mmio_ub_write_beyond_registers', { offset, size, value });
      return;
    }
    if (offset >= REG.MAILBOX0 && offset < REG.MAILBOX_END) {
      this.writeMailboxes(offset, size, value);
      return;
    }
    if (size !== 4) {
      // Sub-dword writes to dword registers: merge into the current value (GPIO beacon code).
      const base = offset & ~3;
      const shift = (offset & 3) * 8;
      const mask = (size === 2 ? 0xffff : 0xff) << shift;
      const merged = ((this.readDword(base) & ~mask) | ((value << shift) & mask)) >>> 0;
      this.writeDword(base, merged);
      return;
    }
    this.writeDword(offset, value >>> 0);
  }

  /** Power-on / function-level reset. */
  reset(): void {
    this.fw.holdRiscReset();
    this.fw.releaseRiscReset();
    this.ictrl = 0;
    this.events.setInterruptsEnabled(false);
    this.ctrlStatus = 0;
    this.flashAddr = 0;
    this.flashData = 0;
    this.paused = false;
    this.inbound.fill(0);
    this.resetOutbound();
    this.stored.clear();
  }

  private validAccess(offset: number, size: number): boolean {
    if ((size !== 1 && size !== 2 && size !== 4) || offset < 0 || offset % size !== 0) {
      this.trace('mmio_ub_bad_access', { offset, size });
      return false;
    }
    return true;
  }

  private readMailboxes(offset: number, size: number): number {
    const n = (offset - REG.MAILBOX0) >> 1;
    if (size === 2) return this.outbound[n]!;
    if (size === 1) return (this.outbound[n]! >> ((offset & 1) * 8)) & 0xff;
    return ((this.outbound[n + 1]! << 16) | this.outbound[n]!) >>> 0;
  }

  private writeMailboxes(offset: number, size: number, value: number): void {
    const n = (offset - REG.MAILBOX0) >> 1;
    if (size === 2) this.inbound[n] = value;
    else if (size === 4) {
      this.inbound[n] = value & 0xffff;
      this.inbound[n + 1] = value >>> 16;
    } else {
      const shift = (offset & 1) * 8;
      this.inbound[n] = (this.inbound[n]! & ~(0xff << shift)) | ((value & 0xff) << shift);
    }
  }

  private readDword(offset: number): number {
    switch (offset) {
      case REG.FLASH_ADDR:
        return this.flashAddr;
      case REG.FLASH_DATA:
        return this.flashData;
      case REG.CTRL_STATUS:
        // SOFT_RESET completes synchronously and DMA is never active: both read 0.
        return this.ctrlStatus;
      case REG.ICTRL:
        return this.ictrl;
      case REG.ISTATUS:
        return this.events.latchedEvent ? ISRX_RISC_INT : 0;
      case REG.REQ_Q_IN:
        return this.queues.requestIn;
      case REG.REQ_Q_OUT:
        return this.queues.requestOut;
      case REG.RSP_Q_IN:
        // The response handler's read: it consumes up to the value returned (events.ts).
        this.queues.flushForRead();
        this.events.responseQueueRead();
        return this.queues.responseIn;
      case REG.RSP_Q_OUT:
        return this.queues.responseOut;
      case REG.HOST_STATUS:
        return (this.events.hostStatus() | (this.paused ? HOST_STATUS.RISC_PAUSED : 0)) >>> 0;
      case REG.HCCR:
        return this.fw.risc === 'reset' ? HCCRX.STATUS_RISC_RESET : 0;
      case REG.PREQ_Q_IN:
      case REG.PREQ_Q_OUT:
      case REG.ATIO_Q_IN:
      case REG.ATIO_Q_OUT:
      case REG.GPIOD:
      case REG.GPIOE:
      case REG.IOBASE_ADDR:
      case REG.IOBASE_WINDOW:
        return this.stored.get(offset) ?? 0;
      case REG.IOBASE_C4:
      case REG.IOBASE_C8:
      case REG.IOBASE_Q:
      case REG.IOBASE_SELECT:
      case REG.IOBASE_SDATA:
        return 0; // RISC-internal windows for firmware dumps: not modelled
      default:
        this.trace('mmio_unhandled_read', { offset });
        return 0;
    }
  }

  private writeDword(offset: number, value: number): void {
    switch (offset) {
      case REG.FLASH_ADDR:
        this.flashAddressWrite(value);
        return;
      case REG.FLASH_DATA:
        this.flashData = value;
        return;
      case REG.CTRL_STATUS:
        this.ctrlStatusWrite(value);
        return;
      case REG.ICTRL:
        this.ictrlWrite(value);
        return;
      case REG.REQ_Q_IN:
        this.queues.writeRequestIn(value);
        return;
      case REG.REQ_Q_OUT:
        this.queues.writeRequestOut(value);
        return;
      case REG.RSP_Q_IN:
        this.queues.writeResponseIn(value);
        return;
      case REG.RSP_Q_OUT:
        this.queues.writeResponseOut(value);
        return;
      case REG.HCCR:
        this.hccrWrite(value);
        return;
      case REG.PREQ_Q_IN:
      case REG.PREQ_Q_OUT:
      case REG.ATIO_Q_IN:
      case REG.ATIO_Q_OUT:
      case REG.GPIOD:
      case REG.GPIOE:
      case REG.IOBASE_ADDR:
      case REG.IOBASE_WINDOW:
      case REG.IOBASE_SELECT:
        this.stored.set(offset, value);
        return;
      case REG.ISTATUS:
      case REG.HOST_STATUS:
        this.trace('mmio_ub_write_read_only', { offset, value });
        return;
      default:
        this.trace('mmio_unhandled_write', { offset, value });
    }
  }

  /** Bit 31 clear: read cycle, data ready at once (flag set). Bit 31 set: write cycle, done at once (flag clear). */
  private flashAddressWrite(value: number): void {
    const address = value & ~FARX_DATA_FLAG;
    if (value & FARX_DATA_FLAG) {
      this.flash.writeWindow(address, this.flashData);
      this.flashAddr = address;
    } else {
      this.flashData = this.flash.readWindow(address);
      this.flashAddr = (address | FARX_DATA_FLAG) >>> 0;
    }
  }

  private ctrlStatusWrite(value: number): void {
    this.ctrlStatus = value & CTRL_STATUS_STORED;
    if (value & CSRX.ISP_SOFT_RESET) {
      this.fw.softReset();
      this.paused = false;
      this.resetOutbound();
    }
  }

  private ictrlWrite(value: number): void {
    this.ictrl = value & ICRX_EN_RISC_INT;
    const enabled = (this.ictrl & ICRX_EN_RISC_INT) !== 0;
    this.events.setInterruptsEnabled(enabled);
    // On 24xx the first event after INITIALIZE_FIRMWARE may be this enable (qla2x00_probe_one →
    // qla24xx_enable_intrs): the armed link-up fires here (fabric-session.ts LINK_UP_DEFER_MS).
    if (enabled) this.fw.fireLinkUpIfArmed();
  }

  private hccrWrite(value: number): void {
    const command = value >>> 28;
    switch (command) {
      case HCCRX.SET_RISC_RESET:
        this.fw.holdRiscReset();
        this.resetOutbound();
        return;
      case HCCRX.CLR_RISC_RESET:
        this.fw.releaseRiscReset();
        this.paused = false;
        this.resetOutbound();
        return;
      case HCCRX.SET_RISC_PAUSE:
        this.paused = true;
        return;
      case HCCRX.REL_RISC_PAUSE:
        this.paused = false;
        return;
      case HCCRX.SET_HOST_INT:
        this.fw.executeMailbox(this.inbound);
        return;
      case HCCRX.CLR_HOST_INT:
        return;
      case HCCRX.CLR_RISC_INT:
        this.events.acknowledge();
        return;
      default:
        this.trace('mmio_ub_hccr_command', { value });
    }
  }

  private resetOutbound(): void {
    this.outbound.fill(0);
    this.outbound[1] = ROM_SIGNATURE_MB1;
    this.outbound[2] = ROM_SIGNATURE_MB2;
  }
}
