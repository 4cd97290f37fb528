/**
 * FabricPort over the N_Port initiator engine (src/fc/initiator.ts): the emulated ISP2532
 * firmware's logins, name-server CT, FCP exchanges and task management become real frames on
 * the vport's link. Two ways in:
 *   - own link: connect() opens a link per fabric login and the vport FLOGIs on it (its link is
 *     the physical port); after link loss the link is re-probed and 'link-up' reported;
 *   - NPIV: an already logged-in physical Initiator FDISCs the vport on its link; createVport()
 *     gives such a port for one guest VP, FDISCing through whatever physical login this port
 *     has at the time (the firmware re-FDISCs its VPs after each physical login).
 * As real 24xx firmware does after FLOGI, the port registers for RSCNs (SCR).
 */
import { CommandAbort, Initiator, ScsiAbortedError, type TaskManagement } from '../fc/initiator.js';
import { CtRejectError, ElsRejectError, ExchangeTimeoutError, LinkDownError } from '../fc/nport/errors.js';
import { encodeCt } from '../fc/ct.js';
import type { Link } from '../fc/link.js';
import type { TaskManagementFunction } from '../scsi/sam.js';
import { logger, type Logger } from '../util/log.js';
import type {
  AdiscResult,
  ElsFailure,
  FabricEvent,
  FabricLoginResult,
  FabricPort,
  FcpCommand,
  FcpResult,
  PlogiResult,
  PrliResult,
} from './fabric-port.js';
import { FabricLoginRejected } from './fabric-port.js';
import { ctReject } from './iocb/ct.js';
import { gatherViews, scatterToViews } from './data-views.js';

export interface InitiatorFabricOptions {
  /** Opens the vport's own link to the fabric (FLOGI mode). */
  connect?: () => Promise<Link>;
  /** A logged-in physical port to FDISC through (NPIV mode), or how to find the current one. */
  physical?: Initiator | (() => Initiator | null);
  /** Link speed to report (Gbit/s); the emulated ISP2532 is an 8 Gb part. */
  speedGbps?: number;
  /** Period of link re-probes after a loss (own-link mode). */
  reconnectMs?: number;
  /**
   * Serve READ/WRITE on data paths the SAN grants (default true); off when this port's frames
   * are recorded (serve --pcap), since a capture must see every command.
   */
  dataPath?: boolean;
  log?: Logger;
}

const DEFAULT_RECONNECT_MS = 2000;

function elsFailure(e: unknown): ElsFailure {
  if (e instanceof ElsRejectError)
    return { ok: false, kind: 'rejected', reason: e.rjt.reason, explanation: e.rjt.explanation };
  return { ok: false, kind: 'no-response' };
}

export class InitiatorFabricPort implements FabricPort {
  private port: Initiator | null = null;
  private link: Link | null = null;
  /** A link opened by a re-probe, kept for the next login. */
  private spareLink: Link | null = null;
  private linkUsable = true;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private readonly listeners = new Set<(e: FabricEvent) => void>();
  private readonly inFlight = new Map<number, CommandAbort>();
  private readonly log: Logger;
  private closed = false;
  private loginSeq = 0;

  constructor(private readonly o: InitiatorFabricOptions) {
    if (!o.connect === !o.physical) throw new Error('InitiatorFabricPort needs exactly one of connect or physical');
    this.log = o.log ?? logger('isp-fabric');
  }

  isLinkUp(): boolean {
    if (this.o.physical) {
      const p = this.physicalPort();
      return p?.mux.isUp === true && p.loggedIn;
    }
    return this.linkUsable;
  }

  private physicalPort(): Initiator | null {
    const p = this.o.physical;
    return typeof p === 'function' ? p() : (p ?? null);
  }

  /** NPIV: a port for one more N_Port on this port's link (FabricPort.createVport). */
  createVport(): FabricPort {
    return new InitiatorFabricPort({
      physical: () => (this.o.physical ? this.physicalPort() : this.port),
      ...(this.o.dataPath !== undefined ? { dataPath: this.o.dataPath } : {}),
      ...(this.o.speedGbps !== undefined ? { speedGbps: this.o.speedGbps } : {}),
      log: this.log,
    });
  }

  async login(wwpn: bigint, wwnn: bigint): Promise<FabricLoginResult> {
    // A newer login (firmware reset during FLOGI) supersedes this one.
    const seq = ++this.loginSeq;
    await this.detach();
    let port: Initiator;
    let link: Link | null = null;
    if (this.o.physical) {
      const physical = this.physicalPort();
      if (!physical?.loggedIn) throw new LinkDownError('the physical port is not logged in to the fabric');
      try {
        port = await physical.createVport({ wwpn, wwnn });
      } catch (e) {
        if (e instanceof ElsRejectError)
          throw new FabricLoginRejected(e.rjt.reason, e.rjt.explanation, `FDISC rejected: ${e.message}`);
        throw e;
      }
    } else {
      link = this.spareLink ?? (await this.o.connect!());
      this.spareLink = null;
      try {
        port = await Initiator.overLink(link, { wwpn, wwnn });
      } catch (e) {
        link.close('fabric login failed');
        throw e;
      }
    }
    if (seq !== this.loginSeq) {
      await port.fabricLogout().catch(() => {});
      link?.close('superseded by a newer login');
      throw new Error('fabric login superseded by a newer one');
    }
    this.port = port;
    this.link = link;
    port.on('link-down', (reason) => this.onLinkDown(port, reason));
    // An FDISC login also ends when its physical port logs out or logs in again (FLOGI).
    port.on('fabric-logout', (reason) => this.onLinkDown(port, reason));
    port.on('rscn', (pages) => {
      if (this.port !== port) return;
      for (const p of pages) this.emit({ type: 'rscn', format: p.addressFormat, address: p.affectedId });
    });
    port.on('session-lost', (s) => {
      if (this.port === port) this.emit({ type: 'session-lost', portId: s.nportId });
    });
    await port.scr().catch((e) => this.log.warn({ event: 'fabric_err_scr', error: String(e) }, 'SCR failed'));
    const f = port.fabric!;
    return {
      portId: f.nportId,
      fabricPortName: f.fabricPortName,
      fabricName: f.fabricName,
      speedGbps: this.o.speedGbps ?? 8,
      npivSupported: f.npivSupported,
    };
  }

  async logout(): Promise<void> {
    // A login still in flight is superseded: it logs itself out when it completes.
    this.loginSeq++;
    await this.detach();
  }

  private async detach(): Promise<void> {
    // Detach first: a login may start while this logout is still waiting for the fabric, and
    // must not see (or lose) the old port and link.
    const port = this.port;
    const link = this.link;
    this.port = null;
    this.link = null;
    for (const c of this.inFlight.values()) c.abort();
    this.inFlight.clear();
    if (port) await port.fabricLogout().catch(() => {});
    link?.close('vport logged out');
  }

  /** Stops re-probing and closes everything (device teardown). */
  async close(): Promise<void> {
    this.closed = true;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    await this.logout();
    this.spareLink?.close('closed');
  }

  private onLinkDown(port: Initiator, reason: string): void {
    if (this.port !== port) return;
    this.port = null;
    this.link = null;
    this.log.warn({ event: 'fabric_link_down', reason }, 'vport link down');
    if (this.o.connect) {
      this.linkUsable = false;
      this.scheduleReprobe();
    }
    this.emit({ type: 'link-down' });
  }

  private scheduleReprobe(): void {
    if (this.closed || this.reconnectTimer) return;
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      this.o.connect!().then(
        (link) => {
          if (this.closed) return link.close('closed');
          this.spareLink = link;
          // The switch closes a link that does not log in within R_A_TOV (the guest may keep
          // its firmware down longer): forget it then, and the next login connects afresh.
          link.once('down', () => {
            if (this.spareLink === link) this.spareLink = null;
          });
          this.linkUsable = true;
          this.emit({ type: 'link-up' });
        },
        () => this.scheduleReprobe(),
      );
    }, this.o.reconnectMs ?? DEFAULT_RECONNECT_MS);
    this.reconnectTimer.unref?.();
  }

  private requirePort(): Initiator {
    if (!this.port) throw new LinkDownError('not logged in to the fabric');
    return this.port;
  }

  async plogi(portId: number): Promise<PlogiResult> {
    try {
      const s = await this.requirePort().plogi(portId);
      return { ok: true, wwpn: s.wwpn, wwnn: s.wwnn, receiveDataSize: s.rxDataFieldSize };
    } catch (e) {
      return elsFailure(e);
    }
  }

  async prli(portId: number): Promise<PrliResult> {
    try {
      return { ok: true, serviceParamWord3: await this.requirePort().prli(portId) };
    } catch (e) {
      return elsFailure(e);
    }
  }

  async adisc(portId: number): Promise<AdiscResult> {
    try {
      const a = await this.requirePort().adisc(portId);
      return { ok: true, wwpn: a.wwpn, wwnn: a.wwnn, portId: a.nportId };
    } catch (e) {
      return elsFailure(e);
    }
  }

  async logo(portId: number): Promise<void> {
    await this.port?.logo(portId).catch(() => {});
  }

  async prlo(portId: number): Promise<void> {
    await this.port?.prlo(portId).catch(() => {});
  }

  async ct(serverPortId: number, request: Uint8Array, maxResponse: number): Promise<Uint8Array> {
    try {
      const iu = await this.requirePort().ct(serverPortId, request);
      return encodeCt(iu).subarray(0, maxResponse);
    } catch (e) {
      if (e instanceof CtRejectError) return ctReject(request, e.reason, e.explanation);
      throw e;
    }
  }

  async fcp(portId: number, c: FcpCommand): Promise<FcpResult> {
    // A READ/WRITE on a nexus the SAN granted moves between the volume and the views directly.
    const fast = this.o.dataPath === false ? null : (this.port?.dataPathCommand(portId, c) ?? null);
    if (fast) {
      const r = fast instanceof Promise ? await fast : fast;
      if (r) return { scsiStatus: r.status, sense: r.sense, transferred: r.transferred };
    }
    // The simulated SAN is another process: the data is framed, so it is copied here once each way.
    let dataOut: Uint8Array | undefined;
    if (c.direction === 'write') {
      const gathered = gatherViews(c.data, c.expectedLength);
      if (!gathered) return { scsiStatus: 0, sense: null, transferred: 0, transportError: 'dma' };
      dataOut = gathered;
    }
    const controller = new CommandAbort();
    this.inFlight.set(c.taskTag, controller);
    try {
      const r = await this.requirePort().scsiCommand(portId, {
        lun: c.lun,
        cdb: c.cdb,
        direction: c.direction,
        expectedLength: c.expectedLength,
        ...(dataOut ? { dataOut } : {}),
        abort: controller,
      });
      const result: FcpResult = { scsiStatus: r.status, sense: r.sense, transferred: 0 };
      if (c.direction === 'read') {
        const data = r.data.subarray(0, c.expectedLength);
        // Completed to the guest meanwhile (abort, TMF, reset): its buffer is no longer ours.
        if (c.released.aborted) return { ...result, transportError: 'aborted' };
        result.transferred = scatterToViews(c.data, data);
        if (result.transferred < data.length) result.transportError = 'dma';
      } else if (c.direction === 'write') {
        result.transferred = r.residualUnder ? Math.max(0, c.expectedLength - r.residual) : c.expectedLength;
      }
      return result;
    } catch (e) {
      const transportError: FcpResult['transportError'] =
        e instanceof ScsiAbortedError
          ? 'aborted'
          : e instanceof ExchangeTimeoutError
            ? 'timeout'
            : e instanceof LinkDownError
              ? 'port-unavailable'
              : 'logged-out';
      return { scsiStatus: 0, sense: null, transferred: 0, transportError };
    } finally {
      if (this.inFlight.get(c.taskTag) === controller) this.inFlight.delete(c.taskTag);
    }
  }

  async taskManagement(portId: number, lun: Uint8Array, fn: TaskManagementFunction): Promise<number> {
    if (fn === 'abort-task') return 4; // FCP_RSP_INFO "function not supported": aborts use ABTS
    return this.requirePort().taskManagement(portId, lun, fn as TaskManagement);
  }

  async abort(_portId: number, taskTag: number): Promise<boolean> {
    const c = this.inFlight.get(taskTag);
    if (!c) return false;
    c.abort();
    return true;
  }

  onEvent(listener: (event: FabricEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private emit(e: FabricEvent): void {
    for (const l of this.listeners) l(e);
  }
}
