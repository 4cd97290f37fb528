/**
 * A whole simulated SAN assembled from a configuration: the fabric (switch, name server, zoning),
 * the storage arrays (src/san/array.ts) with each target port attached in-process through an FC
 * target port (src/san/target-port.ts), a link socket HBAs connect to, an optional pcap of every
 * frame through the switch, and run-time changes (used by the control interface and tests).
 * HBAs may be granted the data path of a nexus (src/san/data-path.ts); the SAN stays the
 * authority and revokes grants whenever its state needs the frame path.
 */
import * as path from 'node:path';
import { Fabric } from './fabric/switch.js';
import { FaultInjector } from './faults.js';
import { Zoning, type ZoningSnapshot } from './fabric/zoning.js';
import { formatPortId, isWellKnownAddress } from '../fc/frame.js';
import { linkPair, type Link } from '../fc/link.js';
import { LinkListener, type LinkListenerOptions } from './link-listener.js';
import { PcapWriter } from '../fc/pcap.js';
import { StorageArray, type VolumeRequest } from './array.js';
import type { SanConfig, ZoningConfig } from './config.js';
import { FcTargetPort, type TargetPortOptions } from './target-port.js';
import type { ScsiTargetPort } from '../scsi/api.js';
import { prepareDataDir, Volume, type VolumeSpec } from './volume.js';
import { DataPathGrants, type NexusTarget } from './data-path.js';
import { GRANT_REASON } from '../fc/data-path-grant.js';
import { type Logger, logger } from '../util/log.js';
import { formatWwn } from '../util/wwn.js';

export interface SanOptions {
  /** Unix socket path HBAs connect their links to. */
  linkPath?: string;
  /** Who may connect to linkPath and how many links per uid (default: this uid and root, 64). */
  linkAccess?: Omit<LinkListenerOptions, 'log'>;
  /** Record every frame entering or leaving the switch. */
  pcapPath?: string;
  /** Relative volume file paths (and a relative dataDir) resolve against this directory. */
  baseDir?: string;
  /** The data directory for volume files; overrides the configuration's dataDir. */
  dataDir?: string;
  targetPortOptions?: TargetPortOptions;
  /** How long a link may stay without a fabric login (default R_A_TOV, 10 s); for tests. */
  loginTimeoutMs?: number;
  /**
   * Give HBAs data-path grants for READ/WRITE of local volumes (default true; `san --no-data-path`
   * or NPIV_HBA_DATA_PATH=0 turn it off). Never while a pcap is recorded or faults are injected.
   */
  dataPath?: boolean;
  log?: Logger;
}

interface TargetPortSlot {
  array: StorageArray;
  scsi: ScsiTargetPort;
  link: Link | null;
  port: FcTargetPort | null;
}

export interface SanStatus {
  fabric: { name: string; domain: number; wwnn: string; stats: Fabric['stats'] };
  logins: { nportId: string; wwpn: string; wwnn: string; physical: boolean; fPortArea: number; rscn: boolean }[];
  targetPorts: {
    array: string;
    wwpn: string;
    up: boolean;
    nportId: string | null;
    sessions: { nportId: string; wwpn: string; fcp: boolean }[];
  }[];
  /** naa: the NAA-6 designator of VPD page 0x83 as lower-case hex (what Linux shows as wwid naa.<hex>). */
  arrays: { name: string; volumes: { name: string; bytes: number; file: string | null; naa: string }[] }[];
  zoning: ZoningSnapshot;
  /** Data-path grants: whether given, how many are in force, and what they moved per volume. */
  dataPath?: {
    enabled: boolean;
    active: number;
    granted: number;
    denied: number;
    revoked: number;
    volumes: { array: string; volume: string; reads: number; writes: number; readBytes: number; writeBytes: number }[];
  };
}

/** The data-path default: on, unless the environment turns it off (tests that compare both). */
export function dataPathDefault(): boolean {
  const v = process.env.NPIV_HBA_DATA_PATH;
  return !(v === '0' || v === 'off' || v === 'false');
}

export function zoningFromConfig(cfg: ZoningConfig): Zoning {
  const zoning = new Zoning(cfg.default);
  for (const zone of cfg.zones) zoning.setZone({ name: zone.name, members: zone.members });
  if (cfg.zoneSets) {
    for (const set of cfg.zoneSets) zoning.setZoneSet(set.name, set.zones);
    if (cfg.activeZoneSet) zoning.activate(cfg.activeZoneSet);
  } else if (cfg.zones.length > 0) {
    zoning.setZoneSet(
      'cfg',
      cfg.zones.map((z) => z.name),
    );
    zoning.activate('cfg');
  }
  return zoning;
}

export class San {
  readonly fabric: Fabric;
  readonly arrays = new Map<string, StorageArray>();
  /** Run-time fault injection and administratively held-down links (src/san/faults.ts). */
  readonly faults: FaultInjector;
  /** Data-path grants to HBAs (src/san/data-path.ts). */
  readonly dataPath: DataPathGrants;
  private readonly targets = new Map<bigint, TargetPortSlot>();
  private listener: LinkListener | null = null;
  private pcap: PcapWriter | null = null;
  private readonly log: Logger;
  private closed = false;
  /** Real path of the data directory, null when none is configured. */
  dataDir: string | null = null;

  private constructor(
    config: SanConfig,
    private readonly opts: SanOptions,
  ) {
    this.log = opts.log ?? logger('san', { fabric: config.fabric.name });
    this.fabric = new Fabric({
      name: config.fabric.name,
      domain: config.fabric.domain,
      ...(config.fabric.wwnn !== undefined ? { wwnn: config.fabric.wwnn } : {}),
      zoning: zoningFromConfig(config.fabric.zoning),
      ...(opts.loginTimeoutMs !== undefined ? { loginTimeoutMs: opts.loginTimeoutMs } : {}),
    });
    this.faults = new FaultInjector({
      wwpnOf: (id) => this.fabric.logins().find((l) => l.nportId === id)?.wwpn,
      rscn: () => this.fabric.zoningChanged(),
      portDown: (wwpn) => this.holdLinkDown(wwpn),
      portUp: async (wwpn) => {
        if (this.targets.has(wwpn)) await this.targetPortUp(wwpn);
        else this.faults.release(wwpn);
      },
    });
    this.dataPath = new DataPathGrants(
      {
        globalBlock: () => (this.pcap ? GRANT_REASON.CAPTURE : this.faults.idle ? null : GRANT_REASON.FAULTS),
        resolve: (link, sId, dId, lun) => this.resolveNexus(link, sId, dId, lun),
      },
      opts.dataPath ?? dataPathDefault(),
      this.log.child({ layer: 'data-path' }),
    );
    this.fabric.controlHandler = (link, message, fds) => this.dataPath.onControl(link, message, fds);
    this.faults.onChange = () => void this.dataPath.reevaluate();
  }

  /** The nexus a grant request names, as the SAN sees it now (DataPathHost.resolve). */
  private resolveNexus(link: Link, sId: number, dId: number, lun: number): NexusTarget | number {
    const login = this.fabric.loginOnLink(link, sId);
    if (!login) return GRANT_REASON.NO_SESSION;
    let slot: TargetPortSlot | undefined;
    for (const s of this.targets.values()) if (s.port && s.link?.isUp && s.port.nportId === dId) slot = s;
    if (!slot?.port) return GRANT_REASON.NO_SESSION;
    if (!this.fabric.canCommunicate(sId, dId)) return GRANT_REASON.NOT_ZONED;
    const session = slot.port.sessions.get(sId);
    if (!session || session.fcpServiceParams === null || session.wwpn !== login.wwpn) return GRANT_REASON.NO_SESSION;
    const lu = slot.array.lunsFor(login.wwpn).get(lun);
    if (!lu || !(lu.device instanceof Volume)) return GRANT_REASON.NO_LUN;
    return {
      nexus: { initiatorWwpn: login.wwpn, targetWwpn: slot.scsi.wwpn, relativeTargetPortId: slot.scsi.relativePortId },
      lu,
      volume: lu.device,
      maxBytes: slot.port.maxTransferLength,
    };
  }

  static async start(config: SanConfig, opts: SanOptions = {}): Promise<San> {
    const san = new San(config, opts);
    try {
      if (opts.pcapPath) {
        const pcap = new PcapWriter(opts.pcapPath);
        san.pcap = pcap;
        san.fabric.observe((frame) => pcap.write(frame));
      }
      const dataDir =
        opts.dataDir ??
        (config.dataDir !== undefined ? path.resolve(opts.baseDir ?? process.cwd(), config.dataDir) : undefined);
      if (dataDir !== undefined) san.dataDir = prepareDataDir(dataDir);
      for (const a of config.arrays) {
        const array = await StorageArray.create(a, {
          ...(opts.baseDir !== undefined ? { baseDir: opts.baseDir } : {}),
          dataDir: san.dataDir,
        });
        array.dataPath = san.dataPath;
        san.arrays.set(a.name, array);
        for (const scsi of array.ports) san.targets.set(scsi.wwpn, { array, scsi, link: null, port: null });
      }
      for (const wwpn of san.targets.keys()) await san.targetPortUp(wwpn);
      if (opts.linkPath) {
        san.listener = await LinkListener.listen(
          opts.linkPath,
          (link) => san.fabric.attach(san.faults.wrap(link)),
          opts.linkAccess,
        );
      }
    } catch (err) {
      await san.close();
      throw err;
    }
    san.log.info({ link: opts.linkPath, arrays: san.arrays.size, targetPorts: san.targets.size }, 'SAN up');
    return san;
  }

  // ------------------------------------------------------------------------------ target ports

  /** Attach an array target port to the fabric (FLOGI, name-server registration, SCR). */
  async targetPortUp(wwpn: bigint): Promise<FcTargetPort> {
    const slot = this.slot(wwpn);
    if (slot.port && slot.link?.isUp) return slot.port;
    const [fabricEnd, portEnd] = linkPair(`target ${formatWwn(wwpn)}`);
    // Its FLOGI (in FcTargetPort.start) takes an F_Port, or is rejected when none is free.
    this.fabric.attach(this.faults.wrap(fabricEnd));
    slot.link = portEnd;
    portEnd.once('down', () => {
      if (slot.link === portEnd) {
        slot.link = null;
        slot.port = null;
      }
      void this.dataPath.reevaluate();
    });
    try {
      slot.port = await FcTargetPort.start(portEnd, slot.scsi, {
        ...this.opts.targetPortOptions,
        symbolicName: `${slot.array.name} port ${slot.scsi.relativePortId}`,
      });
    } catch (err) {
      // E.g. an HBA already logged in with this WWPN: leave the port down, and say why.
      portEnd.close('target port login failed');
      throw new Error(`target port ${formatWwn(wwpn)} could not log in to the fabric: ${(err as Error).message}`);
    }
    this.log.info({ wwpn: formatWwn(wwpn), nportId: formatPortId(slot.port.nportId) }, 'target port up');
    return slot.port;
  }

  /** Take an array target port's link down (initiators see it leave with an RSCN). */
  targetPortDown(wwpn: bigint): void {
    const slot = this.slot(wwpn);
    slot.link?.close('target port taken down');
    slot.link = null;
    slot.port = null;
  }

  targetPort(wwpn: bigint): FcTargetPort | null {
    return this.targets.get(wwpn)?.port ?? null;
  }

  private slot(wwpn: bigint): TargetPortSlot {
    const slot = this.targets.get(wwpn);
    if (!slot) throw new Error(`no array target port with WWPN ${formatWwn(wwpn)}`);
    return slot;
  }

  /** Drop the link of any logged-in port (HBA or array); an HBA sees link down and may reconnect. */
  linkDown(wwpn: bigint): void {
    if (this.targets.has(wwpn)) return this.targetPortDown(wwpn);
    if (!this.fabric.linkDown(wwpn)) throw new Error(`no port with WWPN ${formatWwn(wwpn)} is logged in`);
  }

  /**
   * Administrative link down: an array target port goes down; an HBA port's link drops and stays
   * down (its FLOGI finds no light) until linkUp.
   */
  holdLinkDown(wwpn: bigint): void {
    if (this.targets.has(wwpn)) return this.targetPortDown(wwpn);
    this.faults.holdDown(wwpn);
    this.fabric.linkDown(wwpn);
  }

  /** Undo holdLinkDown: a target port logs in again; an HBA port may log in on its next attempt. */
  async linkUp(wwpn: bigint): Promise<void> {
    if (this.targets.has(wwpn)) {
      await this.targetPortUp(wwpn);
      return;
    }
    if (!this.faults.release(wwpn)) throw new Error(`port ${formatWwn(wwpn)} is not held down`);
  }

  // ------------------------------------------------------------------------------ arrays

  array(name: string): StorageArray {
    const a = this.arrays.get(name);
    if (!a) throw new Error(`no array named '${name}'`);
    return a;
  }

  async addVolume(arrayName: string, spec: VolumeSpec, request?: VolumeRequest): Promise<void> {
    await this.array(arrayName).addVolume(spec, request);
  }
  async removeVolume(arrayName: string, volume: string): Promise<void> {
    await this.array(arrayName).removeVolume(volume);
  }
  async resizeVolume(
    arrayName: string,
    volume: string,
    size: string | number,
    origin: VolumeRequest['origin'] = 'config',
  ): Promise<void> {
    await this.array(arrayName).resizeVolume(volume, size, { origin });
  }
  mapLun(arrayName: string, hostGroup: string, lun: number, volume: string): void {
    this.array(arrayName).mapLun(hostGroup, lun, volume);
  }
  unmapLun(arrayName: string, hostGroup: string, lun: number): void {
    this.array(arrayName).unmapLun(hostGroup, lun);
  }
  addHostGroup(arrayName: string, name: string, initiators: bigint[]): void {
    this.array(arrayName).addHostGroup(name, initiators);
  }

  // ------------------------------------------------------------------------------ zoning

  /** Apply a zoning change and announce it (RSCN to every SCR-registered port). */
  changeZoning(change: (zoning: Zoning) => void): void {
    change(this.fabric.zoning);
    void this.dataPath.reevaluate();
    this.fabric.zoningChanged();
  }

  // ------------------------------------------------------------------------------ status / shutdown

  status(): SanStatus {
    return {
      fabric: {
        name: this.fabric.name,
        domain: this.fabric.domain,
        wwnn: formatWwn(this.fabric.wwnn),
        stats: { ...this.fabric.stats },
      },
      logins: this.fabric.logins().map((l) => ({
        nportId: formatPortId(l.nportId),
        wwpn: formatWwn(l.wwpn),
        wwnn: formatWwn(l.wwnn),
        physical: l.physical,
        fPortArea: l.port.area,
        rscn: l.scr !== 0,
      })),
      targetPorts: [...this.targets.entries()].map(([wwpn, s]) => ({
        array: s.array.name,
        wwpn: formatWwn(wwpn),
        up: s.port !== null,
        nportId: s.port ? formatPortId(s.port.nportId) : null,
        sessions: s.port
          ? [...s.port.sessions.values()]
              .filter((x) => !isWellKnownAddress(x.nportId))
              .map((x) => ({
                nportId: formatPortId(x.nportId),
                wwpn: formatWwn(x.wwpn),
                fcp: x.fcpServiceParams !== null,
              }))
          : [],
      })),
      arrays: [...this.arrays.values()].map((a) => ({
        name: a.name,
        volumes: a.volumeNames().map((n) => {
          const v = a.volume(n)!;
          return { name: n, bytes: v.sizeBytes, file: v.file, naa: Buffer.from(v.naa).toString('hex') };
        }),
      })),
      zoning: this.fabric.zoning.snapshot(),
      dataPath: {
        enabled: this.dataPath.enabled,
        active: this.dataPath.active,
        ...this.dataPath.stats,
        volumes: [...this.arrays.values()].flatMap((a) =>
          a.volumeNames().map((n) => ({ array: a.name, volume: n, ...this.dataPath.countersFor(a.volume(n)!) })),
        ),
      },
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.dataPath.close();
    this.faults.close();
    // Stop accepting, then drop every link (server.close() only completes once they are gone).
    const listenerClosed = this.listener?.close();
    this.fabric.close();
    await listenerClosed;
    for (const a of this.arrays.values()) await a.close();
    this.pcap?.close();
    this.log.info('SAN stopped');
  }
}
