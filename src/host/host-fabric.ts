/**
 * HostFabricPort: the FabricPort of an emulated HBA whose fabric is the real one, reached through
 * an NPIV vport of the host's physical FC HBA created with the guest's WWPN/WWNN
 * (docs/host-backend.md). Only generic Linux interfaces are used: fc_host/fc_vport/fc_remote_ports
 * sysfs, the scsi_host `scan` attribute, SCSI generic (sg) v3 async I/O and kernel uevents.
 *
 *   login      the vport's real port_id, fabric_name and speed (the host driver did the FDISC)
 *   logout     local: the host's vport stays logged in (it is deleted by close())
 *   ct         the name server answered locally from the vport's remote ports (name-server.ts)
 *   PLOGI/PRLI/ADISC   answered from the remote port's state: not there or not Online gives no
 *              response, as a fabric gives for an absent N_Port ID; LOGO/PRLO are local
 *   fcp        SG v3 write()/read() on the LUN's sg node (sg-device.ts), the LUN created by a
 *              manual scan with no upper-level driver (lun-gate.ts); data is copied (see limits)
 *   TMF        SG_SCSI_RESET device/target with SG_SCSI_RESET_NO_ESCALATE
 *   abort      the guest's command completes as aborted at once; sg cannot abort one command
 *   events     remote ports added/removed/changed → RSCN (port format); vport not Active →
 *              link-down, Active again → link-up. sysfs is re-read when an event says something
 *              changed: uevents (rport add/remove), FC transport netlink events (link, LIP,
 *              RSCN: fc-event.ts) followed by a few settle re-reads, and a slow safety re-read
 *              for the state changes the kernel announces nowhere (docs/host-backend.md#events)
 *   LUNs       REPORTED LUNS DATA HAS CHANGED (a command's sense, or the SDEV_UA uevent) → REPORT
 *              LUNS through the well-known LU; new LUNs are scanned by the gate (no sd), vanished
 *              ones deleted; a UA the backend itself consumed is owed to the guest per LUN
 */
import type {
  AdiscResult,
  FabricEvent,
  FabricLoginResult,
  FabricPort,
  FcpCommand,
  FcpResult,
  PlogiResult,
  PrliResult,
} from '../isp/fabric-port.js';
import { FCP_SPP } from '../fc/els.js';
import type { TaskManagementFunction } from '../scsi/sam.js';
import { logger, type Logger } from '../util/log.js';
import { formatWwn } from '../util/wwn.js';
import { type FcEventSource, type FcHostEvent, fcEventKind, NetlinkFcEventSource } from './fc-event.js';
import { type FcRport, listRports, listScsiDevices, readFcHost, scsilunToInt } from './fc-model.js';
import { checkManualScan, LunGate, W_LUN_REPORT_LUNS } from './lun-gate.js';
import { answerNameServer } from './name-server.js';
import { type LunChannel, type LunOpener, nativeLunOpener, sgDataPathStats } from './sg-device.js';
import { scatterToViews } from '../isp/data-views.js';
import type { Sysfs } from './sysfs.js';
import { type Uevent, type UeventSource, NetlinkUeventSource } from './uevent.js';
import { acquireVport, deleteVport, type HostVport, refreshVport } from './vport.js';

export interface HostFabricOptions {
  sys: Sysfs;
  /** Parent fc_host: hostN or its port WWPN. */
  parent: string;
  wwpn: bigint;
  wwnn: bigint;
  uevents?: UeventSource;
  /** FC transport netlink events (default the kernel's; without them sysfs is re-read every fallbackResyncMs). */
  fcEvents?: FcEventSource;
  openLun?: LunOpener;
  /** vport creation timeout (default 60 s). */
  createTimeoutMs?: number;
  pollMs?: number;
  /** How long a manual LUN scan may take to produce the sg node (default 5 s). */
  lunScanTimeoutMs?: number;
  /** Safety re-read of vport and remote-port state while FC events arrive (default 10 s). */
  resyncMs?: number;
  /** The re-read interval when the FC event socket cannot be opened (default 2 s). */
  fallbackResyncMs?: number;
  /** Intervals of the re-reads after an FC event, while the driver updates sysfs (default SETTLE_INTERVALS_MS). */
  settleMs?: readonly number[];
  /** Host-side command timeout, longer than the guest's (default 120 s; docs/host-backend.md). */
  fcpTimeoutMs?: number;
  /** Keep the vport when closing (default: delete it). */
  keepVport?: boolean;
  log?: Logger;
}

const NO_RESPONSE = { ok: false, kind: 'no-response' } as const;
/**
 * Well-known fabric addresses (FC-FS-3 table 34) a guest logs in to. The management server
 * (0xFFFFFA, FDMI) is not offered: there is no host interface to register through for a vport,
 * so that PLOGI gets no response and qla2xxx skips FDMI.
 */
const WELL_KNOWN = { DIRECTORY: 0xfffffc, FABRIC_CONTROLLER: 0xfffffd } as const;
/** Receive data field size the guest is told for the fabric's servers (FC-FS maximum). */
const WELL_KNOWN_RECEIVE_SIZE = 2112;
const FCP_RSP_TMF_NOT_SUPPORTED = 4;
const FCP_RSP_TMF_FAILED = 5;
const REPORT_LUNS = 0xa0;
const INQUIRY = 0x12;
const REQUEST_SENSE = 0x03;
/** Commands that never report a unit attention (SAM-5 5.14, SPC-4 6.6 / 6.33 / 6.39). */
const UA_EXEMPT = new Set([INQUIRY, REPORT_LUNS, REQUEST_SENSE]);
const SENSE_UNIT_ATTENTION = 0x6;
/** ASC/ASCQ REPORTED LUNS DATA HAS CHANGED (SPC-4 annex F). */
const LUNS_CHANGED = { asc: 0x3f, ascq: 0x0e } as const;
/** A UA passed through this recently is the one the kernel's SDEV_UA uevent is about. */
const UA_PASSED_MS = 5000;
/** REPORT LUNS allocation length the backend asks with: 1024 LUNs. */
const REPORT_LUNS_ALLOCATION = 8 + 8 * 1024;
/** The backend's own commands (the inventory REPORT LUNS) are never handed back early. */
const NEVER_RELEASED = new AbortController().signal;

/**
 * After an FC event the LLDD updates sysfs asynchronously (qla2xxx: its DPC thread relogs in,
 * re-FDISCs the vports, adds or blocks rports), so one re-read at the event is not enough: these
 * are the gaps between the re-reads that follow (at +0.25, 1, 2, 4, 8, 16 s).
 */
export const SETTLE_INTERVALS_MS: readonly number[] = [250, 750, 1000, 2000, 4000, 8000];
/**
 * Safety re-read while FC events arrive. It covers what no event announces: an rport blocked or
 * back Online without a link event or RSCN (a target's own LOGO, an ELS timeout:
 * fc_remote_port_delete / fc_remote_port_add on an existing rport send no uevent) and
 * vport_state changes (fc_vport_set_state sends none). One read is a few small sysfs files per
 * remote port.
 */
export const SAFETY_RESYNC_MS = 10_000;
/** Without FC events (no CAP_NET_ADMIN, not the initial network namespace) link changes need this. */
export const FALLBACK_RESYNC_MS = 2000;

export class HostFabricPort implements FabricPort {
  private vport: HostVport | null = null;
  private active = false;
  private rports: FcRport[] = [];
  private readonly listeners = new Set<(e: FabricEvent) => void>();
  private readonly luns = new Map<string, Promise<LunChannel | null>>();
  private readonly tagOwner = new Map<number, LunChannel>();
  private gate: LunGate | null = null;
  private timer: NodeJS.Timeout | null = null;
  private uevents: UeventSource | null = null;
  private fcEvents: FcEventSource | null = null;
  private settleTimer: NodeJS.Timeout | null = null;
  private settleStep = 0;
  private settleReason = '';
  /** Targets whose LUN inventory is being re-read (value: run again when done). */
  private readonly inventory = new Map<number, boolean>();
  /** Per target, LUNs that owe the guest a REPORTED LUNS DATA HAS CHANGED the backend consumed. */
  private readonly owedUa = new Map<number, Set<bigint>>();
  /** "portId/lun" → when the guest last got REPORTED LUNS DATA HAS CHANGED through from the target. */
  private readonly passedUa = new Map<string, number>();
  /** LUNs an inventory re-read added: a UA on them tells the guest nothing it does not learn anyway. */
  private readonly newLuns = new Set<string>();
  private internalTag = 0;
  private closed = false;
  private readonly log: Logger;

  constructor(private readonly o: HostFabricOptions) {
    this.log = o.log ?? logger('host-fabric', { vport: formatWwn(o.wwpn) });
  }

  /** Creates (or adopts) the host vport and starts following its events. Call before serving. */
  async start(): Promise<HostVport> {
    checkManualScan(this.o.sys);
    const v = await acquireVport(this.o.sys, {
      parent: this.o.parent,
      wwpn: this.o.wwpn,
      wwnn: this.o.wwnn,
      ...(this.o.createTimeoutMs !== undefined ? { timeoutMs: this.o.createTimeoutMs } : {}),
      ...(this.o.pollMs !== undefined ? { pollMs: this.o.pollMs } : {}),
      log: this.log,
    });
    this.vport = v;
    this.active = true;
    this.gate = new LunGate(this.o.sys, v.hostNo, {
      log: this.log,
      ...(this.o.pollMs ? { pollMs: this.o.pollMs } : {}),
      ...(this.o.lunScanTimeoutMs ? { timeoutMs: this.o.lunScanTimeoutMs } : {}),
    });
    this.rports = this.readRports();
    this.uevents = this.o.uevents ?? new NetlinkUeventSource();
    this.uevents.start(
      (e) => this.onUevent(e),
      () => this.resync('uevent overflow'),
    );
    let fcEvents = false;
    try {
      const source = this.o.fcEvents ?? new NetlinkFcEventSource();
      source.start(
        (e) => this.onFcEvent(e),
        () => this.resyncAndSettle('FC event overflow'),
      );
      this.fcEvents = source;
      fcEvents = true;
    } catch (e) {
      this.log.warn(
        { event: 'host_fc_events_unavailable', error: String(e) },
        'no FC transport netlink events (needs CAP_NET_ADMIN in the initial network namespace): link and RSCN changes are found by re-reading sysfs',
      );
    }
    const every = fcEvents ? (this.o.resyncMs ?? SAFETY_RESYNC_MS) : (this.o.fallbackResyncMs ?? FALLBACK_RESYNC_MS);
    this.timer = setInterval(() => this.resync(fcEvents ? 'safety re-read' : 'periodic'), every);
    this.timer.unref?.();
    this.log.info(
      { event: 'host_vport_ready', vport: v.vport.name, host: `host${v.hostNo}`, adopted: v.adopted },
      'host vport active',
    );
    return v;
  }

  /** The vport and its host (null before start). */
  get hostVport(): HostVport | null {
    return this.vport;
  }

  private readRports(): FcRport[] {
    if (!this.vport) return [];
    const skipped: { object: string; reason: string }[] = [];
    const list = listRports(this.o.sys, this.vport.hostNo, skipped);
    for (const s of skipped) this.log.warn({ event: 'host_rport_unreadable', ...s }, 'remote port skipped');
    return list;
  }

  private onUevent(e: Uevent): void {
    if (!this.vport) return;
    const host = `/host${this.vport.hostNo}/`;
    if (!e.devpath.includes(host) && !e.devpath.endsWith(`/host${this.vport.hostNo}`)) return;
    if (e.subsystem === 'scsi' && e.action === 'change' && e.env.get('SDEV_UA') === 'REPORTED_LUNS_DATA_HAS_CHANGED') {
      // scsi_report_sense → scsi_evt_emit: a command on this LUN met the UA in the host kernel.
      // The midlayer may retry a passthrough command that met it (the two-level lab's kernel
      // does), so the guest's command completes GOOD and never shows it: unless the guest got it
      // through just now, it is owed to the guest on this LUN. The inventory is re-read too.
      const m = /\/([0-9]+):([0-9]+):([0-9]+):([0-9]+)$/.exec(e.devpath);
      const r = m && Number(m[1]) === this.vport.hostNo ? this.rportOfTarget(Number(m[2]), Number(m[3])) : undefined;
      if (!r || !m) return;
      const lun = BigInt(m[4]!);
      const key = `${r.portId}/${lun}`;
      const passed = this.passedUa.get(key);
      if (this.luns.has(key) && !this.newLuns.has(key) && (passed === undefined || Date.now() - passed > UA_PASSED_MS))
        this.oweUa(r.portId, [lun]);
      this.lunInventoryChanged(r.portId, 'uevent SDEV_UA');
      return;
    }
    if (
      e.subsystem === 'fc_remote_ports' ||
      e.subsystem === 'scsi' ||
      e.subsystem === 'fc_host' ||
      e.subsystem === 'scsi_host'
    )
      this.resync(`uevent ${e.action} ${e.subsystem}`);
  }

  /** An FC transport event of the vport's host or its parent: re-read now and while it settles. */
  private onFcEvent(e: FcHostEvent): void {
    if (!this.vport || this.closed) return;
    const kind = fcEventKind(e, { vport: this.vport.hostNo, parent: this.vport.parent.hostNo });
    if (kind === null) return;
    this.log.info(
      { event: 'host_fc_event', host: `host${e.hostNo}`, code: e.name, kind, data: e.data },
      'FC transport event',
    );
    this.resyncAndSettle(`FC ${e.name} host${e.hostNo}`);
  }

  /** Re-reads now, then at the settle intervals (restarted by each new event). */
  private resyncAndSettle(reason: string): void {
    this.resync(reason);
    this.settleStep = 0;
    this.settleReason = reason;
    if (this.settleTimer) clearTimeout(this.settleTimer);
    this.settleTimer = null;
    this.scheduleSettle(0);
  }

  private scheduleSettle(elapsed: number): void {
    const steps = this.o.settleMs ?? SETTLE_INTERVALS_MS;
    const gap = steps[this.settleStep];
    if (gap === undefined || this.closed) {
      this.settleTimer = null;
      return;
    }
    this.settleTimer = setTimeout(() => {
      this.settleStep++;
      this.resync(`${this.settleReason} +${elapsed + gap} ms`);
      this.scheduleSettle(elapsed + gap);
    }, gap);
    this.settleTimer.unref?.();
  }

  private rportOfTarget(channel: number, target: number): FcRport | undefined {
    return this.rports.find((r) => r.channel === channel && r.scsiTargetId === target);
  }

  /**
   * The target's LUN inventory changed (REPORTED LUNS DATA HAS CHANGED): REPORT LUNS through the
   * well-known LU, then new LUNs are scanned by the gate (sg only) and opened, and SCSI devices
   * of LUNs no longer reported are deleted. One run per target at a time; a change reported
   * meanwhile runs it again.
   */
  private lunInventoryChanged(portId: number, reason: string): void {
    if (this.closed) return;
    if (this.inventory.has(portId)) {
      this.inventory.set(portId, true);
      return;
    }
    this.inventory.set(portId, false);
    void (async () => {
      try {
        do {
          this.inventory.set(portId, false);
          await this.reconcileLuns(portId, reason);
        } while (this.inventory.get(portId) === true && !this.closed);
      } catch (e) {
        this.log.warn(
          { event: 'host_lun_inventory_failed', portId: portId.toString(16), error: String(e) },
          'LUN re-scan failed',
        );
      } finally {
        this.inventory.delete(portId);
      }
    })();
  }

  private async reconcileLuns(portId: number, reason: string): Promise<void> {
    const r = this.rport(portId);
    if (!r || r.scsiTargetId < 0 || !this.vport || !this.gate) return;
    const wlun = await this.lun(portId, W_LUN_REPORT_LUNS);
    if (!wlun) throw new Error(`target ${portId.toString(16)} has no REPORT LUNS well-known LU`);
    let reported: bigint[] | null = null;
    for (let attempt = 0; attempt < 4 && reported === null; attempt++) {
      const cdb = new Uint8Array(12);
      cdb[0] = REPORT_LUNS;
      new DataView(cdb.buffer).setUint32(6, REPORT_LUNS_ALLOCATION, false);
      const buffer = new Uint8Array(REPORT_LUNS_ALLOCATION);
      const res = await wlun.submit(--this.internalTag, {
        cdb,
        direction: 'read',
        expectedLength: REPORT_LUNS_ALLOCATION,
        data: [buffer],
        released: NEVER_RELEASED,
        timeoutMs: 30_000,
      });
      if (isLunsChangedUa(res)) {
        // This UA was meant for the guest too: it gets it from each LUN it addresses next.
        this.oweUa(portId, this.openLuns(portId));
        continue;
      }
      if (res.transportError || res.scsiStatus !== 0)
        throw new Error(`REPORT LUNS: status ${res.scsiStatus} ${res.transportError ?? ''}`);
      reported = parseReportLuns(buffer.subarray(0, res.transferred));
    }
    if (reported === null) throw new Error('REPORT LUNS kept reporting unit attentions');
    const wanted = new Set(reported);
    const present = listScsiDevices(this.o.sys, this.vport.hostNo, r.channel, r.scsiTargetId).filter(
      (d) => d.lun !== W_LUN_REPORT_LUNS,
    );
    const added: string[] = [];
    const removed: string[] = [];
    for (const lun of reported) {
      if (present.some((d) => d.lun === lun)) continue;
      this.newLuns.add(`${portId}/${lun}`);
      const ch = await this.lun(portId, lun).catch(() => null);
      if (ch) added.push(String(lun));
    }
    for (const d of present) {
      if (wanted.has(d.lun)) continue;
      const key = `${portId}/${d.lun}`;
      const p = this.luns.get(key);
      this.luns.delete(key);
      if (p) await p.then((c) => c?.close()).catch(() => {});
      await this.gate.removeLun(r.channel, r.scsiTargetId, d.lun);
      this.owedUa.get(portId)?.delete(d.lun);
      this.newLuns.delete(key);
      this.passedUa.delete(key);
      removed.push(String(d.lun));
    }
    this.log.info(
      { event: 'host_luns_changed', portId: portId.toString(16), reason, luns: reported.map(String), added, removed },
      'LUN inventory re-read',
    );
  }

  /** The LUNs of a target the guest has open (not the W-LUN, not ones an inventory re-read added). */
  private openLuns(portId: number): bigint[] {
    const out: bigint[] = [];
    for (const key of this.luns.keys()) {
      const [p, lun] = key.split('/');
      if (Number(p) === portId && BigInt(lun!) !== W_LUN_REPORT_LUNS && !this.newLuns.has(key)) out.push(BigInt(lun!));
    }
    return out;
  }

  private oweUa(portId: number, luns: readonly bigint[]): void {
    const owed = this.owedUa.get(portId) ?? new Set<bigint>();
    for (const lun of luns) owed.add(lun);
    this.owedUa.set(portId, owed);
  }

  /** Re-reads vport and remote-port state and reports what changed. */
  resync(reason: string): void {
    if (!this.vport || this.closed) return;
    const v = refreshVport(this.o.sys, this.vport.vport.name);
    const nowActive = v !== null && v.state === 'Active';
    if (nowActive !== this.active) {
      this.active = nowActive;
      this.log.warn(
        { event: nowActive ? 'host_vport_up' : 'host_vport_down', state: v?.state ?? 'gone', reason },
        'vport state changed',
      );
      if (!nowActive) this.dropLuns();
      this.emit({ type: nowActive ? 'link-up' : 'link-down' });
      if (!nowActive) return;
    }
    const before = new Map(this.rports.map((r) => [r.name, r]));
    const after = this.readRports();
    this.rports = after;
    const changed = new Set<number>();
    for (const r of after) {
      const old = before.get(r.name);
      if (!old || old.state !== r.state || old.portId !== r.portId || old.scsiTargetId !== r.scsiTargetId) {
        changed.add(r.portId);
        if (old && old.portId !== r.portId) changed.add(old.portId);
      }
      before.delete(r.name);
    }
    for (const gone of before.values()) changed.add(gone.portId);
    for (const id of changed) {
      if (id === 0) continue;
      this.dropLuns(id);
      this.emit({ type: 'rscn', format: 0, address: id });
    }
  }

  private dropLuns(portId?: number): void {
    for (const [key, p] of this.luns) {
      if (portId !== undefined && !key.startsWith(`${portId}/`)) continue;
      this.luns.delete(key);
      void p.then((c) => c?.close());
    }
  }

  isLinkUp(): boolean {
    return this.vport !== null && this.active && !this.closed;
  }

  async login(wwpn: bigint, wwnn: bigint): Promise<FabricLoginResult> {
    if (!this.vport) throw new Error('host vport not started');
    if (wwpn !== this.o.wwpn || wwnn !== this.o.wwnn)
      throw new Error(`login as ${formatWwn(wwpn)}: this backend's host vport is ${formatWwn(this.o.wwpn)}`);
    if (!this.active) throw new Error(`host vport ${this.vport.vport.name} is not Active`);
    const h = readFcHost(this.o.sys, this.vport.hostNo);
    if (h.portId === 0) throw new Error(`host vport host${this.vport.hostNo} has no port ID`);
    const fabric = h.fabricName ?? 0n;
    // The F_Port's own name is not in sysfs: the fabric name stands in for it.
    return { portId: h.portId, fabricPortName: fabric, fabricName: fabric, speedGbps: h.speedGbps ?? 8 };
  }

  async logout(): Promise<void> {
    // The host vport stays logged in; the guest's firmware reset only ends its own view.
  }

  private rport(portId: number): FcRport | undefined {
    return this.rports.find((r) => r.portId === portId && r.state === 'Online');
  }

  async plogi(portId: number): Promise<PlogiResult> {
    if (portId === WELL_KNOWN.DIRECTORY || portId === WELL_KNOWN.FABRIC_CONTROLLER) {
      // The host driver holds the real login to these servers, and the name server is answered
      // locally (ct()), so the guest's login to them is accepted here. The fabric name stands in
      // for the server's names: sysfs does not show them.
      if (!this.isLinkUp() || !this.vport) return NO_RESPONSE;
      const fabric = readFcHost(this.o.sys, this.vport.hostNo).fabricName ?? 0n;
      return { ok: true, wwpn: fabric, wwnn: fabric, receiveDataSize: WELL_KNOWN_RECEIVE_SIZE };
    }
    const r = this.isLinkUp() ? this.rport(portId) : undefined;
    if (!r) return NO_RESPONSE;
    return { ok: true, wwpn: r.portName, wwnn: r.nodeName, receiveDataSize: r.maxFrameSize ?? 2048 };
  }

  async prli(portId: number): Promise<PrliResult> {
    const r = this.isLinkUp() ? this.rport(portId) : undefined;
    if (!r) return NO_RESPONSE;
    const word3 =
      (r.roles.includes('FCP Target') ? FCP_SPP.TARGET_FUNCTION | FCP_SPP.READ_XFER_RDY_DISABLED : 0) |
      (r.roles.includes('FCP Initiator') ? FCP_SPP.INITIATOR_FUNCTION : 0);
    if (word3 === 0) return { ok: false, kind: 'rejected', reason: 0x03, explanation: 0 }; // logical error
    return { ok: true, serviceParamWord3: word3 };
  }

  async adisc(portId: number): Promise<AdiscResult> {
    const r = this.isLinkUp() ? this.rport(portId) : undefined;
    if (!r) return NO_RESPONSE;
    return { ok: true, wwpn: r.portName, wwnn: r.nodeName, portId: r.portId };
  }

  async logo(_portId: number): Promise<void> {}

  async prlo(_portId: number): Promise<void> {}

  async ct(_serverPortId: number, request: Uint8Array, maxResponse: number): Promise<Uint8Array> {
    if (!this.vport) throw new Error('host vport not started');
    const h = readFcHost(this.o.sys, this.vport.hostNo);
    return answerNameServer(
      request,
      {
        self: { portId: h.portId, wwpn: this.o.wwpn, wwnn: this.o.wwnn, target: false, initiator: true },
        rports: this.rports,
      },
      maxResponse,
    );
  }

  /** The LUN's channel, creating its SCSI device (without sd) on first use; null = no such LUN. */
  private lun(portId: number, lun: bigint): Promise<LunChannel | null> {
    const key = `${portId}/${lun}`;
    let p = this.luns.get(key);
    if (!p) {
      p = this.openLun(portId, lun).catch((e: unknown) => {
        this.log.error(
          { event: 'host_lun_unavailable', portId: portId.toString(16), lun: String(lun), error: String(e) },
          'LUN not served',
        );
        this.luns.delete(key);
        throw e;
      });
      this.luns.set(key, p);
    }
    return p;
  }

  private async openLun(portId: number, lun: bigint): Promise<LunChannel | null> {
    const r = this.rport(portId);
    if (!r || r.scsiTargetId < 0 || !this.vport || !this.gate)
      throw new Error(`no FCP target at ${portId.toString(16)}`);
    const d = await this.gate.ensureLun(r.channel, r.scsiTargetId, lun);
    if (!d?.sg) return null;
    const open = this.o.openLun ?? nativeLunOpener;
    return open(`${this.o.sys.devRoot}/${d.sg}`, {
      host: this.vport.hostNo,
      channel: r.channel,
      target: r.scsiTargetId,
      lun,
    });
  }

  async fcp(portId: number, c: FcpCommand): Promise<FcpResult> {
    if (!this.isLinkUp()) return { scsiStatus: 0, sense: null, transferred: 0, transportError: 'port-unavailable' };
    if (!this.rport(portId)) return { scsiStatus: 0, sense: null, transferred: 0, transportError: 'port-unavailable' };
    const linuxLun = scsilunToInt(c.lun);
    let channel: LunChannel | null;
    try {
      channel = await this.lun(portId, linuxLun);
      // A target that does not present LUN 0 still answers REPORT LUNS through its well-known LU.
      if (!channel && c.cdb[0] === REPORT_LUNS && linuxLun === 0n) channel = await this.lun(portId, W_LUN_REPORT_LUNS);
    } catch {
      return { scsiStatus: 0, sense: null, transferred: 0, transportError: 'port-unavailable' };
    }
    if (!channel) return notPresent(c);
    const owed = this.owedUa.get(portId);
    if (owed?.has(linuxLun) && !UA_EXEMPT.has(c.cdb[0]!)) {
      owed.delete(linuxLun);
      return lunsChangedUa();
    }
    this.tagOwner.set(c.taskTag, channel);
    try {
      const r = await channel.submit(c.taskTag, {
        cdb: c.cdb,
        direction: c.direction,
        expectedLength: c.expectedLength,
        data: c.data,
        released: c.released,
        timeoutMs: this.o.fcpTimeoutMs ?? 120_000,
      });
      // The guest sees this UA itself (nothing owed on this LUN); the host follows the new inventory.
      if (isLunsChangedUa(r)) {
        this.passedUa.set(`${portId}/${linuxLun}`, Date.now());
        this.owedUa.get(portId)?.delete(linuxLun);
        this.lunInventoryChanged(portId, 'unit attention');
      }
      // The path to the target failed: its rport may be blocked without any event (see SAFETY_RESYNC_MS).
      else if (r.transportError === 'port-unavailable' && !this.settleTimer)
        this.resyncAndSettle('command: port unavailable');
      return r;
    } finally {
      if (this.tagOwner.get(c.taskTag) === channel) this.tagOwner.delete(c.taskTag);
    }
  }

  async taskManagement(portId: number, lun: Uint8Array, fn: TaskManagementFunction): Promise<number> {
    if (fn !== 'lun-reset' && fn !== 'target-reset') return FCP_RSP_TMF_NOT_SUPPORTED; // no sg equivalent
    try {
      let channel = await this.lun(portId, scsilunToInt(lun));
      if (!channel && fn === 'target-reset') {
        const open = [...this.luns.entries()].filter(([k]) => k.startsWith(`${portId}/`));
        for (const [, p] of open) channel ??= await p.catch(() => null);
      }
      if (!channel) return FCP_RSP_TMF_FAILED;
      await channel.reset(fn === 'lun-reset' ? 'device' : 'target');
      return 0;
    } catch (e) {
      this.log.warn({ event: 'host_tmf_failed', fn, error: String(e) }, 'task management failed');
      return FCP_RSP_TMF_FAILED;
    }
  }

  async abort(_portId: number, taskTag: number): Promise<boolean> {
    const channel = this.tagOwner.get(taskTag);
    return channel ? channel.abandon(taskTag) : false;
  }

  onEvent(listener: (event: FabricEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private emit(e: FabricEvent): void {
    for (const l of this.listeners) l(e);
  }

  /** Stops events, closes the LUNs and deletes the host vport (unless keepVport). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    if (this.settleTimer) clearTimeout(this.settleTimer);
    this.uevents?.close();
    this.fcEvents?.close();
    this.dropLuns();
    // How the FCP data moved (docs/host-backend.md, data path): zero-copy vs bounced commands.
    this.log.info({ event: 'host_sg_datapath', ...sgDataPathStats }, 'sg data path');
    const v = this.vport;
    if (v && !this.o.keepVport) {
      await deleteVport(this.o.sys, v.parent.hostNo, this.o.wwpn, this.o.wwnn, {
        ...(this.o.pollMs !== undefined ? { pollMs: this.o.pollMs } : {}),
      });
      this.log.info({ event: 'host_vport_deleted', vport: v.vport.name }, 'host vport deleted');
    }
  }
}

/**
 * A LUN the target does not present (the manual scan created no device): INQUIRY answers
 * peripheral qualifier 3 / type 0x1F ("not capable of supporting a device on this LUN", SPC-4
 * 6.6.2), anything else CHECK CONDITION, ILLEGAL REQUEST, LOGICAL UNIT NOT SUPPORTED (25h/00h),
 * as the target itself would.
 */
function notPresent(c: FcpCommand): FcpResult {
  if (c.cdb[0] === INQUIRY && !(c.cdb[1]! & 1)) {
    const data = new Uint8Array(Math.min(36, c.expectedLength));
    if (data.length > 0) data[0] = 0x7f;
    if (data.length > 4) data[4] = 31;
    if (data.length > 2) data[2] = 0x06;
    if (data.length > 3) data[3] = 0x02;
    if (c.released.aborted) return { scsiStatus: 0, sense: null, transferred: 0, transportError: 'aborted' };
    return { scsiStatus: 0, sense: null, transferred: scatterToViews(c.data, data) };
  }
  const sense = new Uint8Array(18);
  sense[0] = 0x70;
  sense[2] = 0x05;
  sense[7] = 10;
  sense[12] = 0x25;
  // As before the views seam: a refused write reports no residual, a refused read moved nothing.
  return { scsiStatus: 0x02, sense, transferred: c.direction === 'write' ? c.expectedLength : 0 };
}

/** CHECK CONDITION, UNIT ATTENTION, REPORTED LUNS DATA HAS CHANGED (fixed or descriptor sense). */
export function isLunsChangedUa(r: FcpResult): boolean {
  const s = r.sense;
  if (r.transportError || r.scsiStatus !== 0x02 || !s || s.length < 4) return false;
  const code = s[0]! & 0x7f;
  if (code === 0x70 || code === 0x71)
    return (
      s.length >= 14 &&
      (s[2]! & 0x0f) === SENSE_UNIT_ATTENTION &&
      s[12] === LUNS_CHANGED.asc &&
      s[13] === LUNS_CHANGED.ascq
    );
  if (code === 0x72 || code === 0x73)
    return (s[1]! & 0x0f) === SENSE_UNIT_ATTENTION && s[2] === LUNS_CHANGED.asc && s[3] === LUNS_CHANGED.ascq;
  return false;
}

/** The UA a LUN owes the guest, as the target would have returned it (fixed format sense). */
function lunsChangedUa(): FcpResult {
  const sense = new Uint8Array(18);
  sense[0] = 0x70;
  sense[2] = SENSE_UNIT_ATTENTION;
  sense[7] = 10;
  sense[12] = LUNS_CHANGED.asc;
  sense[13] = LUNS_CHANGED.ascq;
  return { scsiStatus: 0x02, sense, transferred: 0 };
}

/** REPORT LUNS parameter data (SPC-4 6.33) → Linux LUN numbers; bounded by the data received. */
export function parseReportLuns(data: Uint8Array): bigint[] {
  if (data.length < 8) throw new Error(`REPORT LUNS data of ${data.length} bytes`);
  const listBytes = new DataView(data.buffer, data.byteOffset, data.byteLength).getUint32(0, false);
  const end = Math.min(data.length, 8 + listBytes);
  const out: bigint[] = [];
  for (let o = 8; o + 8 <= end; o += 8) out.push(scsilunToInt(data.subarray(o, o + 8)));
  return out;
}
