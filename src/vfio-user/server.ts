/**
 * The vfio-user server: serves one VfioUserDevice (one PCI function) on a Unix socket to one
 * client at a time — QEMU >= 10.1's `vfio-user-pci` (protocol version 0.0, see protocol.ts).
 *
 * Lifecycle:
 *  - start(): refuses if another server is live on the path; removes a stale socket file
 *    (one nobody listens on); never removes anything that is not a socket.
 *  - one client at a time: a second connection while one is served is closed at once with a
 *    warning (QEMU then fails fast with "server closed socket" instead of timing out).
 *  - client disconnect (spec "Client disconnection"): the device is detached, every DMA window
 *    unmapped and every irq fd closed; device state is kept; the next client is accepted.
 *  - close(): stops listening, drops the client, removes the socket file.
 *
 * Events: 'connect' (), 'disconnect' (reason: string), 'error' (err: Error) for accept failures.
 */
import { EventEmitter } from 'node:events';
import { lstatSync, unlinkSync } from 'node:fs';
import { native as defaultNative, NativeError, POLL_READABLE, type NativeShim, type PollHandle } from '../native/index.js';
import { IRQ_INDEX, type VfioUserDevice } from './device-api.js';
import { MessageChannel } from './transport.js';
import { DEFAULT_LIMITS, VfioUserSession, maxIncomingMessageSize, type ServerLimits } from './session.js';
import { assertHostLittleEndian, encodeErrorReply, ERRNO } from './protocol.js';
import type { FramingError } from './framer.js';
import { eventfdProblem } from './fdinfo.js';
import { logger, type Logger } from '../util/log.js';

export interface VfioUserServerOptions {
  socketPath: string;
  device: VfioUserDevice;
  native?: NativeShim;
  limits?: ServerLimits;
  log?: Logger;
  /** listen(2) backlog */
  backlog?: number;
}

interface Client {
  channel: MessageChannel;
  session: VfioUserSession;
}

/** Connections accepted per readable wake-up of the listening socket. */
const ACCEPT_BUDGET = 16;

export class VfioUserServer extends EventEmitter {
  readonly socketPath: string;
  private readonly device: VfioUserDevice;
  private readonly native: NativeShim;
  private readonly limits: ServerLimits;
  private readonly log: Logger;
  private readonly backlog: number;
  private listenFd: number | null = null;
  private listenWatch: PollHandle | null = null;
  private client: Client | null = null;

  constructor(options: VfioUserServerOptions) {
    super();
    assertHostLittleEndian();
    this.socketPath = options.socketPath;
    this.device = options.device;
    this.native = options.native ?? defaultNative;
    this.limits = options.limits ?? DEFAULT_LIMITS;
    this.log = options.log ?? logger('vfio-user', { socket: options.socketPath });
    this.backlog = options.backlog ?? 4;
  }

  get listening(): boolean {
    return this.listenFd !== null;
  }

  get clientConnected(): boolean {
    return this.client !== null;
  }

  /** The live session (DMA windows, irq table) while a client is connected; for diagnostics and tests. */
  get session(): VfioUserSession | null {
    return this.client?.session ?? null;
  }

  /**
   * Asks the client to release the device: writes the REQ eventfd, on which QEMU calls
   * qdev_unplug() (a graceful hot-unplug request to the guest). False if no client is connected
   * or it bound no REQ eventfd.
   */
  requestUnplug(): boolean {
    return this.client?.session.irqs.trigger(IRQ_INDEX.REQ, 0) ?? false;
  }

  /** Binds and listens; throws if the path is served by a live server or is not a socket. */
  start(): void {
    if (this.listenFd !== null) throw new Error(`vfio-user server already listening on ${this.socketPath}`);
    this.removeStaleSocket();
    const fd = this.native.unixListen(this.socketPath, this.backlog);
    this.listenFd = fd;
    try {
      this.listenWatch = this.native.poll(fd, POLL_READABLE, (_events, errno) => this.onListenReadable(errno));
    } catch (err) {
      this.stopListening();
      throw err;
    }
    this.log.info({ socket: this.socketPath }, 'vfio_user_server_listening');
  }

  /** Stops listening, disconnects the client (detaching the device) and removes the socket file. */
  close(): void {
    if (this.client) this.client.channel.close('server shutting down');
    this.stopListening();
  }

  // --- internals ------------------------------------------------------------------------

  private removeStaleSocket(): void {
    let isSocket: boolean;
    try {
      isSocket = lstatSync(this.socketPath).isSocket();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    if (!isSocket) throw new Error(`refusing to replace ${this.socketPath}: it exists and is not a socket`);
    let probe: number;
    try {
      probe = this.native.unixConnect(this.socketPath);
    } catch (err) {
      if (err instanceof NativeError && (err.code === 'ECONNREFUSED' || err.code === 'ENOENT')) {
        this.log.info({ socket: this.socketPath }, 'vfio_user_removing_stale_socket');
        unlinkSync(this.socketPath);
        return;
      }
      // EAGAIN (backlog full) and anything else: someone may be there; do not touch it.
      throw new Error(`cannot tell whether ${this.socketPath} is in use: ${(err as Error).message}`, { cause: err });
    }
    this.native.close(probe);
    throw new Error(`another vfio-user server is already listening on ${this.socketPath}`);
  }

  private stopListening(): void {
    this.listenWatch?.stop();
    this.listenWatch = null;
    if (this.listenFd !== null) {
      this.native.close(this.listenFd);
      this.listenFd = null;
      try {
        unlinkSync(this.socketPath);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.log.warn({ err }, 'vfio_user_socket_unlink_failed');
      }
    }
  }

  private onListenReadable(errno: number): void {
    if (this.listenFd === null) return;
    if (errno !== 0) {
      const err = new Error(`poll on the listening socket failed (errno ${errno}); no further clients are accepted`);
      this.log.error({ errno }, 'vfio_user_listen_poll_failed');
      if (this.listenerCount('error') > 0) this.emit('error', err);
      return;
    }
    for (let i = 0; i < ACCEPT_BUDGET; i++) {
      let fd: number | null;
      try {
        fd = this.native.unixAccept(this.listenFd);
      } catch (err) {
        this.log.warn({ err }, 'vfio_user_accept_failed');
        if (this.listenerCount('error') > 0) this.emit('error', err);
        return;
      }
      if (fd === null) return;
      if (this.client) {
        this.log.warn('vfio_user_second_client_refused: one client at a time');
        this.native.close(fd);
        continue;
      }
      this.serve(fd);
    }
  }

  private serve(fd: number): void {
    const log = this.log.child({ conn: fd });
    const session = new VfioUserSession({
      device: this.device,
      native: this.native,
      watch: (watchFd, onReadable, onError) =>
        this.native.poll(watchFd, POLL_READABLE, (_events, errno) => (errno !== 0 ? onError(errno) : onReadable())),
      log,
      limits: this.limits,
      checkEventfd: eventfdProblem,
    });
    // Callbacks reach the channel through `ref`: the channel may call onClose from its constructor.
    const ref: { channel: MessageChannel | null } = { channel: null };
    const channel = new MessageChannel({
      fd,
      native: this.native,
      framer: {
        maxMessageSize: maxIncomingMessageSize(this.limits),
        maxFdsPerMessage: this.limits.maxMsgFds,
        accept: 'command',
      },
      log,
      onMessage: (msg) => {
        const result = session.handle(msg);
        if (result.reply) ref.channel?.send(result.reply);
        if (result.close) ref.channel?.closeAfterFlush('protocol error before negotiation');
      },
      onFramingError: (error: FramingError) => {
        log.warn({ kind: error.kind, reason: error.message }, 'vfio_user_framing_error');
        if (error.kind === 'size-too-large' && error.header) {
          ref.channel?.send(encodeErrorReply(error.header.id, error.header.command, ERRNO.EMSGSIZE));
        }
      },
      onClose: (reason, error) => {
        session.end();
        if (this.client?.session === session) this.client = null;
        log.info({ reason, err: error ?? undefined }, 'vfio_user_client_disconnected');
        this.emit('disconnect', reason);
      },
    });
    ref.channel = channel;
    const client: Client = { session, channel };
    // The channel may already have closed (poll failure) inside its constructor.
    if (!client.channel.isClosed) {
      this.client = client;
      log.info('vfio_user_client_connected');
      this.emit('connect');
    }
  }
}
