/**
 * An in-repo vfio-user CLIENT modelled on QEMU >= 10.1's `vfio-user-pci` (hw/vfio-user/
 * proxy.c, device.c, container.c; protocol version 0.0): promise-returning requests matched
 * to replies by message id, posted (No_reply) region writes, eventfd chunking in SET_IRQS the
 * way QEMU does it, and startup() replaying QEMU's attach sequence. Used by tests and by
 * benchmarks as a "QEMU-like driver model"; it is not a guest.
 *
 * The replies it receives are checked like QEMU checks them (id, command, sizes), so it also
 * catches server-side protocol mistakes.
 */
import { native as defaultNative, type NativeShim } from '../native/index.js';
import { MessageChannel } from './transport.js';
import type { FramedMessage } from './framer.js';
import { parseCapabilities, QEMU_LIMITS, type PeerCapabilities } from './capabilities.js';
import {
  COMMAND,
  DEVICE_INFO,
  DMA_MAP,
  DMA_UNMAP,
  ERRNO,
  HEADER,
  HEADER_FLAGS,
  IRQ_INFO,
  IRQ_SET,
  PROTOCOL_MAJOR,
  PROTOCOL_MINOR,
  REGION_INFO,
  REGION_RW,
  commandName,
  decodeDeviceInfo,
  decodeDmaUnmap,
  decodeIrqInfo,
  decodeRegionAccess,
  decodeRegionInfo,
  decodeVersion,
  encodeCommand,
  encodeDeviceInfo,
  encodeDmaMap,
  encodeDmaUnmap,
  encodeErrorReply,
  encodeIrqInfo,
  encodeIrqSet,
  encodeRegionAccess,
  encodeRegionInfo,
  encodeVersion,
  messageType,
  type DeviceInfoPayload,
  type DmaUnmapPayload,
  type IrqInfoPayload,
  type RegionInfoPayload,
} from './protocol.js';
import { logger, type Logger } from '../util/log.js';
import {
  VFIO_DEVICE_FLAGS_PCI,
  VFIO_DMA_MAP_FLAG_READ,
  VFIO_DMA_MAP_FLAG_WRITE,
  VFIO_DMA_UNMAP_FLAG_ALL,
  VFIO_IRQ_SET_ACTION_TRIGGER,
  VFIO_IRQ_SET_DATA_BOOL,
  VFIO_IRQ_SET_DATA_EVENTFD,
  VFIO_PCI_CONFIG_REGION_INDEX,
  VFIO_PCI_INTX_IRQ_INDEX,
  VFIO_PCI_MSIX_IRQ_INDEX,
} from '../device/linux-vfio.js';

/** A request answered with an error reply (or failed locally with an errno). */
export class VfioUserRequestError extends Error {
  constructor(
    readonly command: number,
    readonly errno: number,
    message: string,
  ) {
    super(message);
    this.name = 'VfioUserRequestError';
  }
}

export interface Reply {
  payload: Uint8Array;
  fds: number[];
}

export interface VfioUserClientOptions {
  native?: NativeShim;
  log?: Logger;
  /** per-request timeout, like QEMU's x-msg-timeout (default 5000 ms) */
  timeoutMs?: number;
  /** largest reply accepted (header included) */
  maxReplySize?: number;
}

/** The capabilities QEMU 11.1.2 sends in VERSION (observed on the wire). */
export const QEMU_VERSION_CAPABILITIES = {
  capabilities: {
    pgsizes: 4096,
    max_msg_fds: 16,
    max_dma_maps: 65535,
    max_data_xfer_size: 1048576,
    migration: { max_bitmap_size: 268435456, pgsize: 4096 },
    write_multiple: true,
  },
};

export interface DmaMapRequest {
  address: bigint;
  size: bigint;
  /** file offset of the window within fd */
  offset?: bigint;
  /** the memory fd (memfd/file); omitted for a non-mappable window, like QEMU without share=on */
  fd?: number;
  readonly?: boolean;
}

export interface RegionInfo extends RegionInfoPayload {
  /** capability chain bytes (after the 32-byte struct), when the server reported CAPS */
  caps: Uint8Array;
  /** fd sent with the reply (mappable region), owned by the caller */
  fd: number | null;
}

export interface SetIrqsRequest {
  index: number;
  /** VFIO_IRQ_SET_*: one DATA_* and one ACTION_* */
  flags: number;
  start: number;
  count: number;
  /** DATA_EVENTFD: one entry per vector, -1 to de-assign (QEMU's convention) */
  fds?: readonly number[];
  /** DATA_BOOL: one byte per vector */
  bools?: Uint8Array;
}

export interface StartupOptions {
  /** guest memory windows to DMA_MAP, in order (QEMU: one per RAM/ROM section) */
  dma: DmaMapRequest[];
  /** bind an eventfd to INTx if the config space's Interrupt Pin is non-zero (QEMU does) */
  intx?: boolean;
  /** bind this many MSI-X vectors to new eventfds (QEMU does so when the guest enables MSI-X) */
  msixVectors?: number;
  /** VERSION JSON to send (default: QEMU's) */
  capabilities?: unknown;
}

export interface StartupResult {
  server: PeerCapabilities;
  deviceInfo: DeviceInfoPayload;
  regions: RegionInfo[];
  irqs: IrqInfoPayload[];
  config: Uint8Array;
  /** eventfds created and bound by startup(); owned by the client (closed by close()) */
  intxEventfd: number | null;
  msixEventfds: number[];
}

interface Pending {
  command: number;
  resolve(reply: Reply): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
}

const PCI_INTERRUPT_PIN = 0x3d;
/** proxy.c: max_send_fds when the server's VERSION reply has no max_msg_fds */
const QEMU_DEFAULT_MAX_SEND_FDS = 8;
const REGION_INFO_ARGSZ_MAX = 64 * 1024;

export class VfioUserClient {
  private readonly native: NativeShim;
  private readonly log: Logger;
  private readonly timeoutMs: number;
  private readonly channel: MessageChannel;
  private readonly pending = new Map<number, Pending>();
  private nextId = 0;
  private closedReason: string | null = null;
  private readonly ownedFds = new Set<number>();
  private closeWaiters: (() => void)[] = [];
  /** the server's capabilities after version() */
  server: PeerCapabilities | null = null;

  /** Connects to a server's socket (throws NativeError ECONNREFUSED/ENOENT). */
  static connect(socketPath: string, options: VfioUserClientOptions = {}): VfioUserClient {
    const native = options.native ?? defaultNative;
    return new VfioUserClient(native.unixConnect(socketPath), options);
  }

  /** Wraps an already connected socket fd (e.g. one end of a socketpair); takes ownership. */
  constructor(fd: number, options: VfioUserClientOptions = {}) {
    this.native = options.native ?? defaultNative;
    this.log = options.log ?? logger('vfio-user-client');
    this.timeoutMs = options.timeoutMs ?? 5000;
    this.channel = new MessageChannel({
      fd,
      native: this.native,
      framer: {
        maxMessageSize: options.maxReplySize ?? HEADER.SIZEOF + REGION_RW.SIZEOF + QEMU_LIMITS.maxDataXferSize,
        maxFdsPerMessage: QEMU_LIMITS.maxMsgFds,
        accept: 'any',
      },
      log: this.log,
      onMessage: (msg) => this.onMessage(msg),
      onClose: (reason) => this.onClose(reason),
    });
  }

  get isClosed(): boolean {
    return this.closedReason !== null;
  }

  /** Sends one command and resolves with its reply; rejects with VfioUserRequestError on an error reply. */
  request(command: number, payload: Uint8Array, fds: readonly number[] = []): Promise<Reply> {
    if (this.closedReason !== null) {
      return Promise.reject(
        new VfioUserRequestError(command, ERRNO.ENOTCONN, `connection closed: ${this.closedReason}`),
      );
    }
    const id = this.allocateId();
    return new Promise<Reply>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(
          new VfioUserRequestError(
            command,
            ERRNO.ETIMEDOUT,
            `${commandName(command)} (id ${id}) timed out after ${this.timeoutMs} ms`,
          ),
        );
      }, this.timeoutMs);
      this.pending.set(id, { command, resolve, reject, timer });
      this.channel.send(encodeCommand(id, command, payload), fds);
    });
  }

  /** Sends a command with No_reply (posted); nothing comes back, errors are only logged by the server. */
  post(command: number, payload: Uint8Array): void {
    if (this.closedReason !== null)
      throw new VfioUserRequestError(command, ERRNO.ENOTCONN, `connection closed: ${this.closedReason}`);
    this.channel.send(encodeCommand(this.allocateId(), command, payload, true));
  }

  /** Sends raw bytes (tests: malformed messages, garbage). */
  sendRaw(bytes: Uint8Array, fds: readonly number[] = []): void {
    this.channel.send(bytes, fds);
  }

  /** Resolves when the connection is closed (by either side). */
  closed(): Promise<void> {
    if (this.closedReason !== null) return Promise.resolve();
    return new Promise((resolve) => this.closeWaiters.push(resolve));
  }

  close(): void {
    this.channel.close('client closed');
  }

  // --- commands --------------------------------------------------------------------------

  async version(
    capabilities: unknown = QEMU_VERSION_CAPABILITIES,
  ): Promise<{ major: number; minor: number; server: PeerCapabilities }> {
    const json = capabilities === undefined ? undefined : JSON.stringify(capabilities);
    const reply = await this.request(
      COMMAND.VERSION,
      encodeVersion({ major: PROTOCOL_MAJOR, minor: PROTOCOL_MINOR, json }),
    );
    const v = decodeVersion(reply.payload);
    this.closeFds(reply.fds);
    // QEMU's checks: "incompatible server version", NUL-terminated JSON (decodeVersion), limits.
    if (v.major !== PROTOCOL_MAJOR || v.minor > PROTOCOL_MINOR) {
      throw new VfioUserRequestError(
        COMMAND.VERSION,
        ERRNO.ENOTSUP,
        `incompatible server version ${v.major}.${v.minor}`,
      );
    }
    const server = parseCapabilities(v.json);
    // QEMU assumes 8 (not the spec's 1) when the server leaves max_msg_fds out.
    const announced =
      v.json === undefined
        ? undefined
        : (JSON.parse(v.json) as { capabilities?: { max_msg_fds?: unknown } }).capabilities?.max_msg_fds;
    if (announced === undefined) server.maxMsgFds = QEMU_DEFAULT_MAX_SEND_FDS;
    if (
      server.maxMsgFds > QEMU_LIMITS.maxMsgFds ||
      server.maxDataXferSize > QEMU_LIMITS.maxDataXferSize ||
      server.maxDmaMaps > QEMU_LIMITS.maxDmaMaps ||
      server.pgsizes % 4096 !== 0
    ) {
      throw new VfioUserRequestError(COMMAND.VERSION, ERRNO.EINVAL, 'server capabilities exceed what QEMU accepts');
    }
    this.server = server;
    return { major: v.major, minor: v.minor, server };
  }

  async dmaMap(m: DmaMapRequest): Promise<void> {
    const flags = VFIO_DMA_MAP_FLAG_READ | (m.readonly ? 0 : VFIO_DMA_MAP_FLAG_WRITE);
    const payload = encodeDmaMap({
      argsz: DMA_MAP.SIZEOF,
      flags,
      offset: m.fd === undefined ? 0n : (m.offset ?? 0n),
      address: m.address,
      size: m.size,
    });
    const reply = await this.request(COMMAND.DMA_MAP, payload, m.fd === undefined ? [] : [m.fd]);
    this.closeFds(reply.fds);
  }

  async dmaUnmap(address: bigint, size: bigint): Promise<DmaUnmapPayload> {
    return this.unmap({ argsz: DMA_UNMAP.SIZEOF, flags: 0, address, size });
  }

  /** QEMU's unmap_all: FLAG_ALL with address = size = 0. */
  async dmaUnmapAll(): Promise<DmaUnmapPayload> {
    return this.unmap({ argsz: DMA_UNMAP.SIZEOF, flags: VFIO_DMA_UNMAP_FLAG_ALL, address: 0n, size: 0n });
  }

  async getDeviceInfo(): Promise<DeviceInfoPayload> {
    const reply = await this.request(
      COMMAND.DEVICE_GET_INFO,
      encodeDeviceInfo({ argsz: DEVICE_INFO.SIZEOF, flags: 0, numRegions: 0, numIrqs: 0 }),
    );
    this.closeFds(reply.fds);
    return decodeDeviceInfo(reply.payload);
  }

  /** GET_REGION_INFO with QEMU's argsz convention: ask with 32, re-ask with the argsz the server needs. */
  async getRegionInfo(index: number): Promise<RegionInfo> {
    let argsz: number = REGION_INFO.SIZEOF;
    for (let attempt = 0; attempt < 2; attempt++) {
      const reply = await this.request(
        COMMAND.DEVICE_GET_REGION_INFO,
        encodeRegionInfo({ argsz, flags: 0, index, capOffset: 0, size: 0n, offset: 0n }),
      );
      const info = decodeRegionInfo(reply.payload);
      if (reply.fds.length > 1) {
        this.closeFds(reply.fds);
        throw new VfioUserRequestError(
          COMMAND.DEVICE_GET_REGION_INFO,
          ERRNO.EINVAL,
          'more than one fd with a region info reply',
        );
      }
      if (info.argsz > argsz && attempt === 0) {
        if (info.argsz > REGION_INFO_ARGSZ_MAX) {
          this.closeFds(reply.fds);
          throw new VfioUserRequestError(
            COMMAND.DEVICE_GET_REGION_INFO,
            ERRNO.E2BIG,
            `region ${index} info needs ${info.argsz} bytes`,
          );
        }
        this.closeFds(reply.fds);
        argsz = info.argsz;
        continue;
      }
      if (reply.payload.length > argsz) {
        this.closeFds(reply.fds);
        throw new VfioUserRequestError(
          COMMAND.DEVICE_GET_REGION_INFO,
          ERRNO.E2BIG,
          'region info reply larger than argsz',
        );
      }
      const fd = reply.fds[0] ?? null;
      if (fd !== null) this.ownedFds.add(fd);
      return { ...info, caps: reply.payload.slice(REGION_INFO.SIZEOF), fd };
    }
    throw new VfioUserRequestError(COMMAND.DEVICE_GET_REGION_INFO, ERRNO.EINVAL, `region ${index}: argsz kept growing`);
  }

  async getIrqInfo(index: number): Promise<IrqInfoPayload> {
    const reply = await this.request(
      COMMAND.DEVICE_GET_IRQ_INFO,
      encodeIrqInfo({ argsz: IRQ_INFO.SIZEOF, flags: 0, index, count: 0 }),
    );
    this.closeFds(reply.fds);
    return decodeIrqInfo(reply.payload);
  }

  /**
   * SET_IRQS. With DATA_EVENTFD the fds are sent QEMU's way: in chunks of at most the server's
   * max_msg_fds, each chunk a run of all-valid fds (sent) or all -1 (zero fds = de-assign).
   */
  async setIrqs(req: SetIrqsRequest): Promise<void> {
    if ((req.flags & VFIO_IRQ_SET_DATA_EVENTFD) === 0) {
      const data = req.flags & VFIO_IRQ_SET_DATA_BOOL ? (req.bools ?? new Uint8Array(req.count)) : new Uint8Array(0);
      const payload = encodeIrqSet({
        argsz: IRQ_SET.SIZEOF + data.length,
        flags: req.flags,
        index: req.index,
        start: req.start,
        count: req.count,
        data,
      });
      this.closeFds((await this.request(COMMAND.DEVICE_SET_IRQS, payload)).fds);
      return;
    }
    const fds = req.fds ?? [];
    if (fds.length === 0) {
      // De-assign [start, start+count) in one message with zero fds.
      const payload = encodeIrqSet({
        argsz: IRQ_SET.SIZEOF,
        flags: req.flags,
        index: req.index,
        start: req.start,
        count: req.count,
        data: new Uint8Array(0),
      });
      this.closeFds((await this.request(COMMAND.DEVICE_SET_IRQS, payload)).fds);
      return;
    }
    const maxFds = Math.max(1, this.server?.maxMsgFds ?? 1);
    for (let sent = 0; sent < fds.length; ) {
      const valid = fds[sent] !== -1;
      let n = 1;
      while (n < maxFds && sent + n < fds.length && (fds[sent + n] !== -1) === valid) n++;
      const payload = encodeIrqSet({
        argsz: IRQ_SET.SIZEOF,
        flags: req.flags,
        index: req.index,
        start: req.start + sent,
        count: n,
        data: new Uint8Array(0),
      });
      const reply = await this.request(COMMAND.DEVICE_SET_IRQS, payload, valid ? fds.slice(sent, sent + n) : []);
      this.closeFds(reply.fds);
      sent += n;
    }
  }

  async regionRead(region: number, offset: number | bigint, count: number): Promise<Uint8Array> {
    const reply = await this.request(
      COMMAND.REGION_READ,
      encodeRegionAccess({ offset: BigInt(offset), region, count, data: new Uint8Array(0) }),
    );
    this.closeFds(reply.fds);
    const a = decodeRegionAccess(reply.payload, 'REGION_READ reply');
    // QEMU: a reply count above the request is E2BIG; the data must be all there.
    if (a.count > count || a.data.length !== a.count) {
      throw new VfioUserRequestError(
        COMMAND.REGION_READ,
        ERRNO.E2BIG,
        `REGION_READ reply count ${a.count} / ${a.data.length} bytes for ${count}`,
      );
    }
    return a.data.slice();
  }

  /** A region write; posted (No_reply, returns at once) when `posted` is true, like QEMU's posted BAR writes. */
  async regionWrite(region: number, offset: number | bigint, data: Uint8Array, posted = false): Promise<void> {
    const payload = encodeRegionAccess({ offset: BigInt(offset), region, count: data.length, data });
    if (posted) {
      this.post(COMMAND.REGION_WRITE, payload);
      return;
    }
    this.closeFds((await this.request(COMMAND.REGION_WRITE, payload)).fds);
  }

  async reset(): Promise<void> {
    this.closeFds((await this.request(COMMAND.DEVICE_RESET, new Uint8Array(0))).fds);
  }

  /**
   * QEMU's attach sequence (vfio_user_pci_realize): VERSION, DMA_MAP of guest memory,
   * DEVICE_GET_INFO, GET_REGION_INFO for every region, GET_IRQ_INFO for every IRQ type, read
   * of the whole config space, then INTx / MSI-X eventfds.
   */
  async startup(options: StartupOptions): Promise<StartupResult> {
    const { server } = await this.version(options.capabilities ?? QEMU_VERSION_CAPABILITIES);
    for (const window of options.dma) await this.dmaMap(window);
    const deviceInfo = await this.getDeviceInfo();
    // vfio_pci_populate_device's requirements.
    if (
      !(deviceInfo.flags & VFIO_DEVICE_FLAGS_PCI) ||
      deviceInfo.numRegions < VFIO_PCI_CONFIG_REGION_INDEX + 1 ||
      deviceInfo.numIrqs < VFIO_PCI_MSIX_IRQ_INDEX + 1
    ) {
      throw new Error(`not a usable vfio-user PCI device: ${JSON.stringify(deviceInfo)}`);
    }
    if (deviceInfo.numRegions > 100 || deviceInfo.numIrqs > 50) throw new Error('invalid reply: too many regions/irqs');
    const regions: RegionInfo[] = [];
    for (let i = 0; i < deviceInfo.numRegions; i++) regions.push(await this.getRegionInfo(i));
    const irqs: IrqInfoPayload[] = [];
    for (let i = 0; i < deviceInfo.numIrqs; i++) irqs.push(await this.getIrqInfo(i));

    const configSize = Number(regions[VFIO_PCI_CONFIG_REGION_INDEX]!.size);
    const config = new Uint8Array(configSize);
    const chunk = server.maxDataXferSize;
    for (let off = 0; off < configSize; off += chunk) {
      config.set(await this.regionRead(VFIO_PCI_CONFIG_REGION_INDEX, off, Math.min(chunk, configSize - off)), off);
    }

    let intxEventfd: number | null = null;
    if (
      options.intx !== false &&
      (config[PCI_INTERRUPT_PIN] ?? 0) !== 0 &&
      (irqs[VFIO_PCI_INTX_IRQ_INDEX]?.count ?? 0) > 0
    ) {
      intxEventfd = this.createEventfd();
      await this.setIrqs({
        index: VFIO_PCI_INTX_IRQ_INDEX,
        flags: VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
        start: 0,
        count: 1,
        fds: [intxEventfd],
      });
    }
    const msixEventfds: number[] = [];
    const vectors = Math.min(options.msixVectors ?? 0, irqs[VFIO_PCI_MSIX_IRQ_INDEX]?.count ?? 0);
    if (vectors > 0) {
      for (let v = 0; v < vectors; v++) msixEventfds.push(this.createEventfd());
      await this.setIrqs({
        index: VFIO_PCI_MSIX_IRQ_INDEX,
        flags: VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
        start: 0,
        count: vectors,
        fds: msixEventfds,
      });
    }
    return { server, deviceInfo, regions, irqs, config, intxEventfd, msixEventfds };
  }

  /** An eventfd owned by this client (closed by close()). */
  createEventfd(): number {
    const fd = this.native.eventfd(0);
    this.ownedFds.add(fd);
    return fd;
  }

  // --- internals ------------------------------------------------------------------------

  private async unmap(u: DmaUnmapPayload): Promise<DmaUnmapPayload> {
    const reply = await this.request(COMMAND.DMA_UNMAP, encodeDmaUnmap(u));
    this.closeFds(reply.fds);
    if (reply.payload.length === 0) return u; // a header-only reply is also accepted by QEMU
    return decodeDmaUnmap(reply.payload);
  }

  private allocateId(): number {
    // Ids are 16 bits and may wrap; skip any still waiting for a reply.
    for (let i = 0; i < 0x10000; i++) {
      const id = this.nextId;
      this.nextId = (this.nextId + 1) & 0xffff;
      if (!this.pending.has(id)) return id;
    }
    throw new Error('65536 requests in flight');
  }

  private onMessage(msg: FramedMessage): void {
    const { header } = msg;
    if (messageType(header.flags) === HEADER_FLAGS.TYPE_COMMAND) {
      // Server-to-client DMA_READ/DMA_WRITE: this client shares memory by fd only.
      this.closeFds(msg.fds);
      this.log.warn({ cmd: commandName(header.command) }, 'vfio_user_client_unsupported_server_command');
      if (!(header.flags & HEADER_FLAGS.NO_REPLY))
        this.channel.send(encodeErrorReply(header.id, header.command, ERRNO.ENOTSUP));
      return;
    }
    const p = this.pending.get(header.id);
    if (!p) {
      this.closeFds(msg.fds);
      this.log.warn({ id: header.id, cmd: commandName(header.command) }, 'vfio_user_client_unexpected_reply');
      return;
    }
    this.pending.delete(header.id);
    clearTimeout(p.timer);
    if (header.command !== p.command) {
      this.closeFds(msg.fds);
      p.reject(
        new VfioUserRequestError(
          p.command,
          ERRNO.EINVAL,
          `reply for ${commandName(header.command)} to a ${commandName(p.command)} request`,
        ),
      );
      return;
    }
    if (header.flags & HEADER_FLAGS.ERROR) {
      this.closeFds(msg.fds);
      p.reject(
        new VfioUserRequestError(
          p.command,
          header.error,
          `${commandName(p.command)} failed with errno ${header.error}`,
        ),
      );
      return;
    }
    p.resolve({ payload: msg.payload, fds: msg.fds });
  }

  private onClose(reason: string): void {
    this.closedReason = reason;
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(
        new VfioUserRequestError(
          p.command,
          ERRNO.ENOTCONN,
          `connection closed before the reply to id ${id}: ${reason}`,
        ),
      );
    }
    this.pending.clear();
    this.closeFds([...this.ownedFds]);
    this.ownedFds.clear();
    for (const w of this.closeWaiters.splice(0)) w();
  }

  private closeFds(fds: readonly number[]): void {
    for (const fd of fds) {
      try {
        this.native.close(fd);
      } catch {
        // already closed: nothing to release
      }
    }
  }
}
