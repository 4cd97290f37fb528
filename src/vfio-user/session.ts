/**
 * The vfio-user command dispatcher for one client connection (vfio-user spec version 0.0 as
 * QEMU >= 10.1 uses it; see protocol.ts). It is pure with respect to I/O: it takes whole
 * framed messages and returns the reply bytes, so it is unit-testable with buffers; the
 * socket side lives in transport.ts / server.ts.
 *
 * Error handling has one exit: every failure inside a handler is a ProtocolError (errno) or
 * an unexpected exception (answered as EIO and logged), turned into a header-only error reply
 * — or only logged when the command carried No_reply. Nothing escapes handle().
 *
 * Connection-level decisions (documented choices):
 *  - Before a successful VERSION only VERSION is accepted; anything else, and a VERSION that
 *    fails negotiation, is answered with an error and the connection is closed (the spec: a
 *    client whose version is not accepted closes; a second VERSION later is just EINVAL).
 *  - DMA_MAP without an fd is accepted as a window with no backing, as the spec allows
 *    (observed with QEMU 11.1.2 and memfd guest RAM with share=on: the BIOS ROM window at
 *    0xfffc0000 and the read-only 0xc0000/0xe0000 sections arrive without an fd; refusing them
 *    would make QEMU fail to start). A
 *    *writable* fd-less window means guest RAM is not shared: that is logged loudly once per
 *    connection, and every device DMA into such a window fails with a DmaError saying so.
 *    Message-based DMA (DMA_READ/DMA_WRITE) is not implemented.
 *  - REGION_WRITE_MULTI is not offered (no write_multiple), so cmd 15 gets ENOTSUP like every
 *    other unsupported command; the connection stays up.
 *  - Fds on a command that takes none are closed and the command fails with EINVAL.
 */
import type { IrqIndex } from '../device/interrupts.js';
import type { VfioUserDevice } from './device-api.js';
import { DmaWindowSet, type DmaWindow } from './dma.js';
import { IrqTable, type FdWatcher } from './irq.js';
import {
  formatCapabilities,
  parseCapabilities,
  type PeerCapabilities,
  type ServerCapabilities,
} from './capabilities.js';
import {
  COMMAND,
  DEVICE_INFO,
  DMA_MAP,
  DMA_UNMAP,
  ERRNO,
  HEADER,
  HEADER_FLAGS,
  IRQ_INFO,
  PROTOCOL_MAJOR,
  PROTOCOL_MINOR,
  ProtocolError,
  REGION_INFO,
  REGION_RW,
  commandName,
  decodeDeviceInfo,
  decodeDmaMap,
  decodeDmaUnmap,
  decodeIrqInfo,
  decodeIrqSet,
  decodeRegionAccess,
  decodeRegionInfo,
  decodeVersion,
  encodeDeviceInfo,
  encodeDmaUnmap,
  encodeErrorReply,
  encodeIrqInfo,
  encodeRegionAccess,
  encodeRegionInfo,
  encodeReply,
  encodeVersion,
} from './protocol.js';
import type { FramedMessage } from './framer.js';
import { F_SEAL_SHRINK, type NativeShim } from '../native/index.js';
import type { Logger } from '../util/log.js';
import { RateLimitedLog } from '../util/warn-limit.js';
import {
  VFIO_DEVICE_FLAGS_PCI,
  VFIO_DEVICE_FLAGS_RESET,
  VFIO_DMA_MAP_FLAG_READ,
  VFIO_DMA_MAP_FLAG_WRITE,
  VFIO_DMA_UNMAP_FLAG_ALL,
  VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP,
  VFIO_PCI_REQ_IRQ_INDEX,
  VFIO_REGION_INFO_FLAG_READ,
  VFIO_REGION_INFO_FLAG_WRITE,
} from '../device/linux-vfio.js';

export type SessionNative = Pick<
  NativeShim,
  'mmap' | 'munmap' | 'close' | 'eventfdWrite' | 'eventfdRead' | 'fdSize' | 'fdSeals'
>;

/** What the server announces and enforces. */
export interface ServerLimits extends ServerCapabilities {}

export const DEFAULT_LIMITS: ServerLimits = {
  // QEMU chunks SET_IRQS eventfds to this; 16 is QEMU's own ceiling.
  maxMsgFds: 16,
  maxDataXferSize: 1 << 20,
  // No vIOMMU: a q35 guest needs about a dozen windows. Bounded so a client cannot pile up mappings.
  maxDmaMaps: 1024,
  pgsizes: 4096,
};

/** The largest legal incoming message: a REGION_WRITE of maxDataXferSize bytes. */
export function maxIncomingMessageSize(limits: ServerLimits): number {
  return HEADER.SIZEOF + REGION_RW.SIZEOF + limits.maxDataXferSize;
}

export interface HandleResult {
  /** bytes to send back, or null (No_reply, or nothing to say) */
  reply: Uint8Array | null;
  /** close the connection once the reply is flushed */
  close: boolean;
}

export interface SessionOptions {
  device: VfioUserDevice;
  native: SessionNative;
  /** fd readiness for client MASK/UNMASK eventfds; null in tests without a loop */
  watch: FdWatcher | null;
  /** rejects SET_IRQS fds that are not non-blocking eventfds (the server passes fdinfo.ts's check) */
  checkEventfd?: ((fd: number) => string | null) | null;
  log: Logger;
  limits?: ServerLimits;
  /**
   * Limits the lines logged for failed commands: a client can send a bad command in a loop. The
   * server passes one for all its sessions, so reconnecting does not reset the limit; without
   * it the session has its own.
   */
  warnings?: RateLimitedLog;
}

const MMAP_PROT_READ = 1;
const MMAP_PROT_WRITE = 2;

export class VfioUserSession {
  readonly memory: DmaWindowSet;
  readonly irqs: IrqTable;
  readonly limits: ServerLimits;
  private negotiated = false;
  private attached = false;
  private ended = false;
  private warnedUnsharedRam = false;
  private peer: PeerCapabilities | null = null;
  private readonly device: VfioUserDevice;
  private readonly native: SessionNative;
  private readonly log: Logger;
  private readonly warnings: RateLimitedLog;
  private readonly ownWarnings: boolean;

  constructor(options: SessionOptions) {
    this.device = options.device;
    this.native = options.native;
    this.log = options.log;
    this.ownWarnings = options.warnings === undefined;
    this.warnings =
      options.warnings ?? new RateLimitedLog({ log: this.log, summaryMessage: 'vfio_user_warnings_suppressed' });
    this.limits = options.limits ?? DEFAULT_LIMITS;
    this.memory = new DmaWindowSet(this.limits.maxDmaMaps);
    this.irqs = new IrqTable({
      numIrqs: this.device.numIrqs,
      irqInfo: (i) => this.device.irqInfo(i),
      native: this.native,
      watch: options.watch,
      checkEventfd: options.checkEventfd ?? null,
      onChanged: (index) => this.notifyIrqsChanged(index),
      log: this.log,
    });
  }

  /** The client's capabilities once VERSION succeeded. */
  get peerCapabilities(): PeerCapabilities | null {
    return this.peer;
  }

  get isNegotiated(): boolean {
    return this.negotiated;
  }

  /** Handles one framed message; takes ownership of msg.fds. Never throws. */
  handle(msg: FramedMessage): HandleResult {
    const { header } = msg;
    const noReply = (header.flags & HEADER_FLAGS.NO_REPLY) !== 0;
    const fds = msg.fds;
    let fdsTaken = false;
    const takeFds = (): number[] => {
      fdsTaken = true;
      return fds;
    };
    let closeAfter = false;
    try {
      if (this.ended) throw new ProtocolError(ERRNO.ENOTCONN, 'session already ended');
      if ((header.flags & ~(HEADER_FLAGS.TYPE_MASK | HEADER_FLAGS.NO_REPLY)) !== 0) {
        throw new ProtocolError(ERRNO.EINVAL, `unknown header flag bits 0x${header.flags.toString(16)}`);
      }
      if (!this.negotiated && header.command !== COMMAND.VERSION) {
        closeAfter = true;
        throw new ProtocolError(ERRNO.EINVAL, `${commandName(header.command)} before VERSION negotiation`);
      }
      const takesFds = header.command === COMMAND.DMA_MAP || header.command === COMMAND.DEVICE_SET_IRQS;
      if (!takesFds && fds.length > 0) {
        throw new ProtocolError(ERRNO.EINVAL, `${fds.length} unexpected fds with ${commandName(header.command)}`);
      }
      let payload: Uint8Array;
      switch (header.command) {
        case COMMAND.VERSION:
          if (!this.negotiated) closeAfter = true; // cleared on success
          payload = this.handleVersion(msg.payload);
          closeAfter = false;
          break;
        case COMMAND.DMA_MAP:
          payload = this.handleDmaMap(msg.payload, takeFds());
          break;
        case COMMAND.DMA_UNMAP:
          payload = this.handleDmaUnmap(msg.payload);
          break;
        case COMMAND.DEVICE_GET_INFO:
          payload = this.handleDeviceGetInfo(msg.payload);
          break;
        case COMMAND.DEVICE_GET_REGION_INFO:
          payload = this.handleGetRegionInfo(msg.payload);
          break;
        case COMMAND.DEVICE_GET_IRQ_INFO:
          payload = this.handleGetIrqInfo(msg.payload);
          break;
        case COMMAND.DEVICE_SET_IRQS:
          payload = this.handleSetIrqs(msg.payload, takeFds());
          break;
        case COMMAND.REGION_READ:
          payload = this.handleRegionRead(msg.payload);
          break;
        case COMMAND.REGION_WRITE:
          payload = this.handleRegionWrite(msg.payload);
          break;
        case COMMAND.DEVICE_RESET:
          payload = this.handleReset(msg.payload);
          break;
        default:
          // Includes REGION_WRITE_MULTI (write_multiple not offered), GET_REGION_IO_FDS,
          // DMA_READ/WRITE (server-to-client only), DEVICE_FEATURE and MIG_DATA_*.
          throw new ProtocolError(ERRNO.ENOTSUP, `${commandName(header.command)} is not supported by this server`);
      }
      if (noReply) return { reply: null, close: false };
      return { reply: encodeReply(header.id, header.command, payload), close: false };
    } catch (err) {
      if (!fdsTaken) this.closeFds(fds);
      const errno = err instanceof ProtocolError ? err.errno : ERRNO.EIO;
      const context = { id: header.id, cmd: commandName(header.command), errno, noReply };
      // The reply below goes out for every command; the log line only within the rate limit.
      if (err instanceof ProtocolError)
        this.warnings.warn('vfio_user_cmd_failed', { ...context, reason: err.message }, { log: this.log });
      else this.warnings.error('vfio_user_cmd_crashed', { ...context, err }, { log: this.log });
      if (noReply) return { reply: null, close: closeAfter };
      return { reply: encodeErrorReply(header.id, header.command, errno), close: closeAfter };
    }
  }

  /** Client gone: the device drops its references, then every mapping and irq fd is released. Idempotent. */
  end(): void {
    if (this.ended) return;
    this.ended = true;
    if (this.ownWarnings) this.warnings.close();
    if (this.attached) {
      this.attached = false;
      try {
        this.device.detach();
      } catch (err) {
        this.log.error({ err }, 'device_detach_failed');
      }
    }
    for (const w of this.memory.removeAll()) this.release(w);
    this.irqs.release();
  }

  // --- handlers: each returns the reply payload or throws ProtocolError ------------------

  private handleVersion(p: Uint8Array): Uint8Array {
    if (this.negotiated) throw new ProtocolError(ERRNO.EINVAL, 'VERSION already negotiated');
    const v = decodeVersion(p);
    if (v.major !== PROTOCOL_MAJOR) {
      throw new ProtocolError(ERRNO.ENOTSUP, `client protocol major ${v.major} is not ${PROTOCOL_MAJOR}`);
    }
    const peer = parseCapabilities(v.json);
    if (peer.unknownKeys.length > 0)
      this.log.info({ keys: peer.unknownKeys }, 'vfio_user_version_unknown_capabilities');
    this.peer = peer;
    this.negotiated = true;
    this.log.info({ major: v.major, minor: v.minor, peer }, 'vfio_user_version_negotiated');
    this.device.attach({ memory: this.memory, irq: this.irqs });
    this.attached = true;
    return encodeVersion({
      major: PROTOCOL_MAJOR,
      minor: Math.min(v.minor, PROTOCOL_MINOR),
      json: formatCapabilities(this.limits),
    });
  }

  private handleDmaMap(p: Uint8Array, fds: number[]): Uint8Array {
    let fd: number | null = null;
    try {
      const m = decodeDmaMap(p);
      if (fds.length > 1) throw new ProtocolError(ERRNO.EINVAL, `DMA_MAP with ${fds.length} fds (at most 1)`);
      fd = fds[0] ?? null;
      if (m.argsz !== DMA_MAP.SIZEOF)
        throw new ProtocolError(ERRNO.EINVAL, `DMA_MAP argsz ${m.argsz} is not ${DMA_MAP.SIZEOF}`);
      if ((m.flags & ~(VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE)) !== 0) {
        throw new ProtocolError(ERRNO.EINVAL, `DMA_MAP flags 0x${m.flags.toString(16)} has unknown bits`);
      }
      const page = BigInt(this.limits.pgsizes & -this.limits.pgsizes); // smallest page size offered
      if (m.size === 0n || m.address % page !== 0n || m.size % page !== 0n || m.address + m.size > 1n << 64n) {
        throw new ProtocolError(
          ERRNO.EINVAL,
          `DMA_MAP [0x${m.address.toString(16)}, +0x${m.size.toString(16)}) is empty, unaligned to ${page} or wraps`,
        );
      }
      const readable = (m.flags & VFIO_DMA_MAP_FLAG_READ) !== 0;
      const writable = (m.flags & VFIO_DMA_MAP_FLAG_WRITE) !== 0;
      const overlapping = this.overlapping(m.address, m.size);
      if (overlapping) {
        throw new ProtocolError(
          ERRNO.EEXIST,
          `DMA_MAP [0x${m.address.toString(16)}, +0x${m.size.toString(16)}) overlaps an existing window`,
        );
      }
      if (this.memory.windows.length >= this.limits.maxDmaMaps) {
        throw new ProtocolError(ERRNO.ENOSPC, `too many DMA windows (max_dma_maps ${this.limits.maxDmaMaps})`);
      }
      let mapping: ArrayBuffer | null = null;
      if (fd !== null) {
        mapping = this.mapFd(fd, m.offset, m.size, readable, writable);
      } else if (writable && !this.warnedUnsharedRam) {
        this.warnedUnsharedRam = true;
        this.log.error(
          { address: m.address.toString(16), size: m.size.toString(16) },
          'DMA_MAP of writable guest memory without a file descriptor: guest RAM is not shared, so the device cannot DMA. ' +
            'Start QEMU with -object memory-backend-memfd,id=mem,size=...,share=on -machine memory-backend=mem',
        );
      }
      const window: DmaWindow = { address: m.address, size: m.size, readable, writable, mapping };
      try {
        this.memory.insert(window);
      } catch (err) {
        this.release(window);
        throw err;
      }
      this.log.debug(
        { address: m.address.toString(16), size: m.size.toString(16), flags: m.flags, fd: fd !== null },
        'vfio_user_dma_map',
      );
      return new Uint8Array(0);
    } finally {
      // The mapping (if any) keeps the memory alive; the fd itself is not needed any more.
      this.closeFds(fds);
    }
  }

  /**
   * The size check above holds only if the file cannot shrink later: the fd must carry
   * F_SEAL_SHRINK (fcntl(2) "File Sealing"; QEMU's memory-backend-memfd seals by default). A file
   * that cannot carry seals (a regular file: F_GET_SEALS fails with EINVAL) or that is not sealed
   * is refused with EPERM: its owner could truncate it under the mapping, and the next DMA access
   * would kill this server with SIGBUS.
   */
  private checkShrinkSeal(fd: number): void {
    let seals: number | null;
    try {
      seals = this.native.fdSeals(fd);
    } catch (err) {
      throw new ProtocolError(errnoOf(err, ERRNO.EBADF), `DMA_MAP fd seals cannot be read: ${(err as Error).message}`);
    }
    if (seals === null) {
      throw new ProtocolError(
        ERRNO.EPERM,
        'DMA_MAP fd is a file that cannot be sealed against shrinking (not a memfd): truncating it while mapped would crash ' +
          'this server; use memory-backend-memfd (share=on, seal=on)',
      );
    }
    if ((seals & F_SEAL_SHRINK) === 0) {
      throw new ProtocolError(
        ERRNO.EPERM,
        'DMA_MAP memfd is not sealed against shrinking (F_SEAL_SHRINK): use memory-backend-memfd with its default seal=on',
      );
    }
  }

  private mapFd(fd: number, offset: bigint, size: bigint, readable: boolean, writable: boolean): ArrayBuffer {
    const page = BigInt(this.limits.pgsizes & -this.limits.pgsizes);
    if (offset % page !== 0n)
      throw new ProtocolError(ERRNO.EINVAL, `DMA_MAP file offset 0x${offset.toString(16)} is not page aligned`);
    if (size > BigInt(Number.MAX_SAFE_INTEGER)) throw new ProtocolError(ERRNO.EINVAL, 'DMA_MAP size too large to map');
    // Touching a mapping past the end of the file raises SIGBUS and would kill the server.
    let fileSize: number;
    try {
      fileSize = this.native.fdSize(fd);
    } catch (err) {
      throw new ProtocolError(errnoOf(err, ERRNO.EBADF), `DMA_MAP fd cannot be inspected: ${(err as Error).message}`);
    }
    if (offset + size > BigInt(fileSize)) {
      throw new ProtocolError(
        ERRNO.EINVAL,
        `DMA_MAP range [0x${offset.toString(16)}, +0x${size.toString(16)}) runs past the end of its file (${fileSize} bytes)`,
      );
    }
    this.checkShrinkSeal(fd);
    const prot = (readable ? MMAP_PROT_READ : 0) | (writable ? MMAP_PROT_WRITE : 0);
    try {
      return this.native.mmap(fd, Number(size), offset, prot);
    } catch (err) {
      throw new ProtocolError(errnoOf(err, ERRNO.ENOMEM), `DMA_MAP mmap failed: ${(err as Error).message}`);
    }
  }

  private handleDmaUnmap(p: Uint8Array): Uint8Array {
    const u = decodeDmaUnmap(p);
    if (u.argsz < DMA_UNMAP.SIZEOF)
      throw new ProtocolError(ERRNO.EINVAL, `DMA_UNMAP argsz ${u.argsz} < ${DMA_UNMAP.SIZEOF}`);
    if (u.flags & VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP) {
      throw new ProtocolError(ERRNO.ENOTSUP, 'DMA_UNMAP dirty bitmaps are not supported (no migration)');
    }
    if ((u.flags & ~VFIO_DMA_UNMAP_FLAG_ALL) !== 0) {
      throw new ProtocolError(ERRNO.EINVAL, `DMA_UNMAP flags 0x${u.flags.toString(16)} has unknown bits`);
    }
    let removed: DmaWindow[];
    if (u.flags & VFIO_DMA_UNMAP_FLAG_ALL) {
      if (u.address !== 0n || u.size !== 0n)
        throw new ProtocolError(ERRNO.EINVAL, 'DMA_UNMAP FLAG_ALL needs address = size = 0');
      removed = this.memory.removeAll();
    } else {
      removed = [this.memory.remove(u.address, u.size)];
    }
    // All references are dropped (munmap detaches the buffers) before the reply goes out.
    for (const w of removed) this.release(w);
    this.log.debug(
      { address: u.address.toString(16), size: u.size.toString(16), count: removed.length },
      'vfio_user_dma_unmap',
    );
    return encodeDmaUnmap({ argsz: DMA_UNMAP.SIZEOF, flags: u.flags, address: u.address, size: u.size });
  }

  private handleDeviceGetInfo(p: Uint8Array): Uint8Array {
    const req = decodeDeviceInfo(p);
    if (req.argsz < DEVICE_INFO.SIZEOF)
      throw new ProtocolError(ERRNO.EINVAL, `DEVICE_GET_INFO argsz ${req.argsz} too small`);
    return encodeDeviceInfo({
      argsz: DEVICE_INFO.SIZEOF,
      flags: VFIO_DEVICE_FLAGS_PCI | VFIO_DEVICE_FLAGS_RESET,
      numRegions: this.device.numRegions,
      numIrqs: this.device.numIrqs,
    });
  }

  private handleGetRegionInfo(p: Uint8Array): Uint8Array {
    const req = decodeRegionInfo(p);
    if (req.argsz < REGION_INFO.SIZEOF) {
      throw new ProtocolError(ERRNO.EINVAL, `GET_REGION_INFO argsz ${req.argsz} < ${REGION_INFO.SIZEOF}`);
    }
    if (req.index >= this.device.numRegions) {
      throw new ProtocolError(
        ERRNO.EINVAL,
        `GET_REGION_INFO index ${req.index} out of range (${this.device.numRegions} regions)`,
      );
    }
    const info = this.device.regionInfo(req.index);
    const present = info.size > 0;
    const flags = present
      ? (info.readable ? VFIO_REGION_INFO_FLAG_READ : 0) | (info.writable ? VFIO_REGION_INFO_FLAG_WRITE : 0)
      : 0;
    // No capability chain (no sparse mmap: every region is trapped), so 32 bytes are needed.
    // The argsz convention still holds: reply min(needed, argsz) bytes, argsz = needed.
    const full = encodeRegionInfo({
      argsz: REGION_INFO.SIZEOF,
      flags,
      index: req.index,
      capOffset: 0,
      size: BigInt(present ? info.size : 0),
      offset: 0n,
    });
    return full.subarray(0, Math.min(full.length, req.argsz));
  }

  private handleGetIrqInfo(p: Uint8Array): Uint8Array {
    const req = decodeIrqInfo(p);
    if (req.argsz < IRQ_INFO.SIZEOF) throw new ProtocolError(ERRNO.EINVAL, `GET_IRQ_INFO argsz ${req.argsz} too small`);
    if (req.index >= this.device.numIrqs) {
      throw new ProtocolError(
        ERRNO.EINVAL,
        `GET_IRQ_INFO index ${req.index} out of range (${this.device.numIrqs} IRQ types)`,
      );
    }
    const info = this.device.irqInfo(req.index);
    return encodeIrqInfo({ argsz: IRQ_INFO.SIZEOF, flags: info.flags, index: req.index, count: info.count });
  }

  private handleSetIrqs(p: Uint8Array, fds: number[]): Uint8Array {
    let req: ReturnType<typeof decodeIrqSet>;
    try {
      req = decodeIrqSet(p);
    } catch (err) {
      this.closeFds(fds);
      throw err;
    }
    this.irqs.setIrqs(req, p.length, fds);
    this.log.debug(
      { index: req.index, start: req.start, count: req.count, flags: req.flags, fds: fds.length },
      'vfio_user_set_irqs',
    );
    // Always, even for DATA_NONE|UNMASK: the device re-asserts a still-pending INTx after EOI.
    this.notifyIrqsChanged(req.index as IrqIndex);
    return new Uint8Array(0);
  }

  private handleRegionRead(p: Uint8Array): Uint8Array {
    const a = decodeRegionAccess(p, 'REGION_READ');
    if (a.data.length !== 0)
      throw new ProtocolError(ERRNO.EINVAL, `REGION_READ request carries ${a.data.length} data bytes`);
    const offset = this.checkRegionAccess(a.region, a.offset, a.count, 'read');
    const data = this.device.regionRead(a.region, offset, a.count);
    if (!(data instanceof Uint8Array) || data.length !== a.count) {
      throw new Error(`device returned ${data?.length} bytes for a ${a.count}-byte read of region ${a.region}`);
    }
    return encodeRegionAccess({ offset: a.offset, region: a.region, count: a.count, data });
  }

  private handleRegionWrite(p: Uint8Array): Uint8Array {
    const a = decodeRegionAccess(p, 'REGION_WRITE');
    if (a.data.length !== a.count) {
      throw new ProtocolError(ERRNO.EINVAL, `REGION_WRITE count ${a.count} but ${a.data.length} data bytes`);
    }
    const offset = this.checkRegionAccess(a.region, a.offset, a.count, 'write');
    this.device.regionWrite(a.region, offset, a.data);
    return encodeRegionAccess({ offset: a.offset, region: a.region, count: a.count, data: new Uint8Array(0) });
  }

  private handleReset(p: Uint8Array): Uint8Array {
    if (p.length !== 0) throw new ProtocolError(ERRNO.EINVAL, `DEVICE_RESET carries ${p.length} payload bytes`);
    this.device.reset();
    return new Uint8Array(0);
  }

  // --- helpers ------------------------------------------------------------------------

  /** Validates index/offset/count against the region; returns the offset as a number. */
  private checkRegionAccess(region: number, offset: bigint, count: number, access: 'read' | 'write'): number {
    if (region >= this.device.numRegions) {
      throw new ProtocolError(ERRNO.EINVAL, `region ${region} out of range (${this.device.numRegions} regions)`);
    }
    if (count === 0) throw new ProtocolError(ERRNO.EINVAL, `zero-length ${access} of region ${region}`);
    if (count > this.limits.maxDataXferSize) {
      throw new ProtocolError(
        ERRNO.E2BIG,
        `${access} of ${count} bytes exceeds max_data_xfer_size ${this.limits.maxDataXferSize}`,
      );
    }
    const info = this.device.regionInfo(region);
    if (info.size <= 0) throw new ProtocolError(ERRNO.EINVAL, `region ${region} does not exist`);
    if (access === 'read' ? !info.readable : !info.writable) {
      throw new ProtocolError(ERRNO.EPERM, `region ${region} is not ${access === 'read' ? 'readable' : 'writable'}`);
    }
    if (offset > BigInt(info.size) || BigInt(count) > BigInt(info.size) - offset) {
      throw new ProtocolError(
        ERRNO.EINVAL,
        `${access} [0x${offset.toString(16)}, +${count}) outside region ${region} of ${info.size} bytes`,
      );
    }
    return Number(offset);
  }

  private overlapping(address: bigint, size: bigint): boolean {
    const end = address + size;
    return this.memory.windows.some((w) => w.address < end && address < w.address + w.size);
  }

  private notifyIrqsChanged(index: IrqIndex): void {
    if (!this.device.irqsChanged || index > VFIO_PCI_REQ_IRQ_INDEX) return;
    try {
      this.device.irqsChanged(index);
    } catch (err) {
      this.log.error({ index, err }, 'device_irqs_changed_failed');
    }
  }

  private release(w: DmaWindow): void {
    if (w.mapping === null) return;
    try {
      this.native.munmap(w.mapping);
    } catch (err) {
      this.log.error({ address: w.address.toString(16), err }, 'dma_munmap_failed');
    }
  }

  private closeFds(fds: readonly number[]): void {
    for (const fd of fds) {
      try {
        this.native.close(fd);
      } catch (err) {
        this.log.warn({ fd, err }, 'fd_close_failed');
      }
    }
  }
}

function errnoOf(err: unknown, fallback: number): number {
  const e = (err as { errno?: unknown } | null)?.errno;
  return typeof e === 'number' && e > 0 ? e : fallback;
}
