/**
 * The vfio-user server: serves one VfioUserDevice (one PCI function) on a Unix socket to one
 * client at a time — QEMU >= 10.1's `vfio-user-pci` (protocol version 0.0, see protocol.ts).
 *
 * Lifecycle:
 *  - start(): refuses if another server is live on the path; removes a stale socket file
 *    (one nobody listens on); never removes anything that is not a socket. The socket file is
 *    0600 (0660 with a socket group) from the start, in a directory other users cannot write
 *    (src/util/private-socket.ts).
 *  - every accepted connection's SO_PEERCRED must be this uid, root, or the configured socket
 *    owner/group: anyone else is closed before a byte is read (a local user must not attach
 *    before QEMU and drive the HBA with its own memory).
 *  - one client at a time: a second connection while one is served is closed at once with a
 *    warning (QEMU then fails fast with "server closed socket" instead of timing out) — unless
 *    the served client has already hung up and its hang-up is merely not processed yet: that
 *    client is dropped and the newcomer served (an immediate reconnect is not a second client).
 *  - client disconnect (spec "Client disconnection"): the device is detached, every DMA window
 *    unmapped and every irq fd closed; device state is kept; the next client is accepted.
 *  - close(): stops listening, drops the client, removes the socket file.
 *  - warnings a client can trigger at will (a failed command, a framing error) are logged at most
 *    5 per kind per 10 s for all clients together, then counted: a client looping a bad command
 *    still gets every error reply, but cannot turn the log into an unbounded synchronous write.
 *
 * Events: 'connect' (), 'disconnect' (reason: string) for every accepted connection; 'attach' () once
 * a client negotiated VERSION and 'detach' (reason) when that client goes (what `vport stats` counts);
 * 'error' (err: Error) for accept failures.
 */
import { EventEmitter } from 'node:events';
import { native as defaultNative, POLL_READABLE, type NativeShim, type PollHandle } from '../native/index.js';
import type { VfioUserDevice } from './device-api.js';
import { MessageChannel } from './transport.js';
import { DEFAULT_LIMITS, VfioUserSession, maxIncomingMessageSize, type ServerLimits } from './session.js';
import { assertHostLittleEndian, encodeErrorReply, ERRNO } from './protocol.js';
import type { FramingError } from './framer.js';
import { eventfdProblem } from './fdinfo.js';
import { logger, type Logger } from '../util/log.js';
import {
  ConnectionGate,
  listenPrivate,
  SocketInUseError,
  type PrivateSocket,
  type SocketAccess,
} from '../util/private-socket.js';
import { RateLimitedLog } from '../util/warn-limit.js';
import { VFIO_PCI_REQ_IRQ_INDEX } from '../device/linux-vfio.js';

export interface VfioUserServerOptions {
  socketPath: string;
  device: VfioUserDevice;
  native?: NativeShim;
  limits?: ServerLimits;
  log?: Logger;
  /** listen(2) backlog */
  backlog?: number;
  /** who besides this uid and root may connect (serve --socket-owner / --socket-group) */
  access?: SocketAccess;
}

interface Client {
  fd: number;
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
  private readonly access: SocketAccess;
  private readonly gate: ConnectionGate;
  private readonly secondClientLog: RateLimitedLog;
  /** failed commands and framing errors, for all clients: a client may loop them, or reconnect to */
  private readonly warnings: RateLimitedLog;
  private listenFd: number | null = null;
  private socketFile: PrivateSocket | null = null;
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
    this.access = options.access ?? {};
    // One client at a time is enforced below; the gate only checks who connects.
    this.gate = new ConnectionGate({
      access: this.access,
      maxPerUid: Infinity,
      what: 'vfio-user',
      log: this.log,
      native: this.native,
    });
    this.secondClientLog = new RateLimitedLog({ log: this.log, keyField: 'event' });
    this.warnings = new RateLimitedLog({ log: this.log, summaryMessage: 'vfio_user_warnings_suppressed' });
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
    return this.client?.session.irqs.trigger(VFIO_PCI_REQ_IRQ_INDEX, 0) ?? false;
  }

  /** Binds and listens; throws if the path is served by a live server or is not a socket. */
  start(): void {
    if (this.listenFd !== null) throw new Error(`vfio-user server already listening on ${this.socketPath}`);
    let socketFile: PrivateSocket;
    try {
      socketFile = listenPrivate(this.socketPath, {
        access: this.access,
        backlog: this.backlog,
        native: this.native,
        log: this.log,
      });
    } catch (err) {
      if (err instanceof SocketInUseError) {
        throw new Error(`another vfio-user server is already listening on ${this.socketPath}`, { cause: err });
      }
      throw err;
    }
    const fd = socketFile.fd;
    this.socketFile = socketFile;
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
    this.warnings.close();
  }

  // --- internals ------------------------------------------------------------------------

  private stopListening(): void {
    this.listenWatch?.stop();
    this.listenWatch = null;
    if (this.listenFd !== null) {
      this.native.close(this.listenFd);
      this.listenFd = null;
      this.socketFile?.unlink();
      this.socketFile = null;
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
      // Before anything is read: a peer that is not allowed never reaches a session.
      const peer = this.gate.admit(fd);
      if (peer === null) {
        this.native.close(fd);
        continue;
      }
      // The old client's hang-up and this connection can become ready in the same loop turn, and
      // this callback may run first: a client that is gone is not "another client".
      if (this.client && this.clientHungUp(this.client)) {
        this.client.channel.close('peer closed the connection');
      }
      if (this.client) {
        this.secondClientLog.warn(
          'vfio_user_second_client_refused',
          {},
          { message: 'vfio_user_second_client_refused: one client at a time' },
        );
        this.gate.release(peer.uid);
        this.native.close(fd);
        continue;
      }
      this.serve(fd, peer.uid);
    }
  }

  private clientHungUp(client: Client): boolean {
    try {
      return this.native.socketHungUp(client.fd);
    } catch (err) {
      this.log.warn({ err }, 'vfio_user_client_state_unknown');
      return false;
    }
  }

  private serve(fd: number, uid: number): void {
    const log = this.log.child({ conn: fd, uid });
    const session = new VfioUserSession({
      device: this.device,
      native: this.native,
      watch: (watchFd, onReadable, onError) =>
        this.native.poll(watchFd, POLL_READABLE, (_events, errno) => (errno !== 0 ? onError(errno) : onReadable())),
      log,
      limits: this.limits,
      checkEventfd: eventfdProblem,
      warnings: this.warnings,
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
        const wasNegotiated = session.isNegotiated;
        const result = session.handle(msg);
        if (result.reply) ref.channel?.send(result.reply);
        // A client that negotiated VERSION is a real attach (QEMU); a connect-and-hang-up probe
        // (`vport start` readiness, socket checks) never gets this far.
        if (!wasNegotiated && session.isNegotiated) this.emit('attach');
        if (result.close) ref.channel?.closeAfterFlush('protocol error before negotiation');
      },
      onFramingError: (error: FramingError) => {
        this.warnings.warn('vfio_user_framing_error', { kind: error.kind, reason: error.message }, { log });
        if (error.kind === 'size-too-large' && error.header) {
          ref.channel?.send(encodeErrorReply(error.header.id, error.header.command, ERRNO.EMSGSIZE));
        }
      },
      onClose: (reason, error) => {
        this.gate.release(uid);
        const wasAttached = session.isNegotiated;
        session.end();
        if (this.client?.session === session) this.client = null;
        log.info({ reason, err: error ?? undefined }, 'vfio_user_client_disconnected');
        this.emit('disconnect', reason);
        if (wasAttached) this.emit('detach', reason);
      },
    });
    ref.channel = channel;
    const client: Client = { fd, session, channel };
    // The channel may already have closed (poll failure) inside its constructor.
    if (!client.channel.isClosed) {
      this.client = client;
      log.info('vfio_user_client_connected');
      this.emit('connect');
    }
  }
}
