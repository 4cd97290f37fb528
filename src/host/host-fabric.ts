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
 *              link-down, Active again → link-up. From uevents, plus a periodic re-read of sysfs
 *              because rport port_state and vport_state changes send no uevent.
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
import { type FcRport, listRports, readFcHost, scsilunToInt } from './fc-model.js';
import { checkManualScan, LunGate, W_LUN_REPORT_LUNS } from './lun-gate.js';
import { answerNameServer } from './name-server.js';
import { type LunChannel, type LunOpener, nativeLunOpener } from './sg-device.js';
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
  openLun?: LunOpener;
  /** vport creation timeout (default 60 s). */
  createTimeoutMs?: number;
  pollMs?: number;
  /** How long a manual LUN scan may take to produce the sg node (default 5 s). */
  lunScanTimeoutMs?: number;
  /** Re-read of vport and remote-port state (default 2 s). */
  resyncMs?: number;
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
    this.timer = setInterval(() => this.resync('periodic'), this.o.resyncMs ?? 2000);
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
    if (
      e.subsystem === 'fc_remote_ports' ||
      e.subsystem === 'scsi' ||
      e.subsystem === 'fc_host' ||
      e.subsystem === 'scsi_host'
    )
      this.resync(`uevent ${e.action} ${e.subsystem}`);
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
    this.tagOwner.set(c.taskTag, channel);
    try {
      return await channel.submit(c.taskTag, {
        cdb: c.cdb,
        direction: c.direction,
        expectedLength: c.expectedLength,
        data: c.data,
        released: c.released,
        timeoutMs: this.o.fcpTimeoutMs ?? 120_000,
      });
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
    this.uevents?.close();
    this.dropLuns();
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
