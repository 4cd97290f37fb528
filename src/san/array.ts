/**
 * A storage array of the simulated SAN: target ports (WWPN/WWNN), volumes, and LUN masking by
 * host groups (initiator WWPNs → LUN number → volume). The SCSI semantics are in src/scsi; this
 * module owns the configuration and run-time changes, and raises the unit attentions they imply
 * (REPORTED LUNS DATA HAS CHANGED on masking changes, CAPACITY DATA HAS CHANGED on resize).
 */
import type { DataPathGrants } from './data-path.js';
import * as path from 'node:path';
import type { ScsiTargetPort } from '../scsi/api.js';
import { MAX_FLAT_LUN } from '../scsi/cdb.js';
import { Asc } from '../scsi/constants.js';
import { DeviceServer, type LunMapping } from '../scsi/device-server.js';
import type { PortIdentity, ProductIdentity } from '../scsi/inquiry.js';
import { LogicalUnit } from '../scsi/logical-unit.js';
import { nexusKey } from '../scsi/nexus.js';
import { logger, type Logger } from '../util/log.js';
import { formatWwn, parseWwn } from '../util/wwn.js';
import {
  FALLBACK_OUI,
  checkMemoryCapacity,
  ouiFromWwn,
  parseSize,
  resolveInDataDir,
  Volume,
  type BlockSize,
  type ExistingFilePolicy,
  type VolumeOpenOptions,
  type VolumeSpec,
} from './volume.js';

/**
 * The array part of the SAN configuration: the parsed `ArrayConfig` of src/san/config.ts is
 * accepted as is (test/unit/san/array-config.test.ts checks the types stay compatible); WWNs may
 * also be given as text (parsed with src/util/wwn.ts), for callers that build arrays directly.
 */
export interface ArrayConfig {
  name: string;
  ports: { wwpn: string | bigint; wwnn: string | bigint }[];
  volumes: {
    name: string;
    size: string | number;
    file?: string | undefined;
    blockSize?: BlockSize | undefined;
    existing?: ExistingFilePolicy | undefined;
  }[];
  hostGroups: { name: string; initiators: (string | bigint)[]; luns: Record<string, string> }[];
}

export interface StorageArrayOptions {
  /** Relative backing-file paths are resolved against this directory (default: the working directory). */
  baseDir?: string;
  /**
   * The data directory (a real path, see prepareDataDir): when set, every backing file must be
   * inside it and relative paths are taken from it; without one, only the configuration (not the
   * control socket) may name backing files.
   */
  dataDir?: string | null;
  product?: ProductIdentity;
  log?: Logger;
}

export const DEFAULT_PRODUCT: ProductIdentity = { vendor: 'NPIVSIM', product: 'VIRTUAL ARRAY', revision: '0001' };

interface HostGroup {
  readonly name: string;
  readonly initiators: Set<bigint>;
  /** LUN → volume name. */
  readonly luns: Map<number, string>;
  /** LUN → logical unit, kept in step with `luns`. */
  readonly units: Map<number, LogicalUnit>;
}

interface VolumeEntry {
  volume: Volume;
  lu: LogicalUnit;
}

/**
 * Who asks for a volume. The configuration file is the administrator's: its volumes may adopt
 * existing files (default) and, without a data directory, live anywhere; RAM volumes beyond the
 * host's memory are only warned about. The control socket is confined: files only inside the data
 * directory, new unless it says adopt, and RAM volumes beyond the host's memory are refused.
 */
export interface VolumeRequest {
  origin: 'config' | 'control';
  /** Default: 'adopt' for the configuration, 'create' for the control socket. */
  existing?: ExistingFilePolicy | undefined;
}

const FROM_CONFIG: VolumeRequest = { origin: 'config' };

const asWwn = (v: string | bigint, what: string): bigint => (typeof v === 'bigint' ? v : parseWwn(v, what));

function parseLunNumber(text: string, group: string): number {
  if (!/^\d{1,5}$/.test(text) || Number(text) > MAX_FLAT_LUN) {
    throw new Error(`host group '${group}': LUN '${text}' must be an integer 0..${MAX_FLAT_LUN}`);
  }
  return Number(text);
}

export class StorageArray implements LunMapping {
  readonly ports: ScsiTargetPort[];
  private readonly server: DeviceServer;
  private readonly volumes = new Map<string, VolumeEntry>();
  private readonly groups = new Map<string, HostGroup>();
  private readonly groupOfInitiator = new Map<bigint, HostGroup>();
  private readonly portIdentities: PortIdentity[];
  private readonly oui: number;
  private readonly log: Logger;
  private closed = false;
  /** Data-path grants on this array's logical units (src/san/data-path.ts), when the SAN gives any. */
  dataPath: DataPathGrants | null = null;

  private constructor(
    readonly name: string,
    ports: PortIdentity[],
    private readonly baseDir: string,
    private readonly dataDir: string | null,
    product: ProductIdentity,
    log: Logger,
  ) {
    this.portIdentities = ports;
    this.log = log;
    const first = ports[0];
    this.oui = (first && ouiFromWwn(first.wwnn)) ?? FALLBACK_OUI;
    this.server = new DeviceServer(this, ports, product, log);
    this.ports = this.server.ports;
  }

  /** Builds an array from its configuration, opening (and creating, sparse) its backing files. */
  static async create(config: ArrayConfig, opts: StorageArrayOptions = {}): Promise<StorageArray> {
    if (config.ports.length === 0) throw new Error(`array '${config.name}' has no target ports`);
    const seen = new Set<bigint>();
    const ports = config.ports.map((p, i): PortIdentity => {
      const wwpn = asWwn(p.wwpn, `array '${config.name}' port WWPN`);
      if (seen.has(wwpn)) throw new Error(`array '${config.name}': port WWPN ${formatWwn(wwpn)} appears twice`);
      seen.add(wwpn);
      return { wwpn, wwnn: asWwn(p.wwnn, `array '${config.name}' port WWNN`), relativePortId: i + 1 };
    });
    const log = opts.log ?? logger('san.array', { array: config.name });
    const array = new StorageArray(
      config.name,
      ports,
      opts.baseDir ?? process.cwd(),
      opts.dataDir ?? null,
      opts.product ?? DEFAULT_PRODUCT,
      log,
    );
    try {
      for (const v of config.volumes) {
        const spec: VolumeSpec = { name: v.name, size: v.size };
        if (v.file !== undefined) spec.file = v.file;
        if (v.blockSize !== undefined) spec.blockSize = v.blockSize;
        await array.addVolume(spec, { origin: 'config', existing: v.existing });
      }
      for (const g of config.hostGroups) {
        array.addHostGroup(
          g.name,
          g.initiators.map((i) => asWwn(i, `host group '${g.name}' initiator`)),
        );
        for (const [lunText, volumeName] of Object.entries(g.luns)) {
          array.mapLun(g.name, parseLunNumber(lunText, g.name), volumeName);
        }
      }
    } catch (e) {
      await array.close();
      throw e;
    }
    return array;
  }

  // ---- LunMapping (used by the device server) ---------------------------------------------------
  lunsFor(initiatorWwpn: bigint): ReadonlyMap<number, LogicalUnit> {
    return this.groupOfInitiator.get(initiatorWwpn)?.units ?? EMPTY_UNITS;
  }

  allUnits(): Iterable<LogicalUnit> {
    return [...this.volumes.values()].map((e) => e.lu);
  }

  // ---- inspection -------------------------------------------------------------------------------
  volume(name: string): Volume | undefined {
    return this.volumes.get(name)?.volume;
  }
  volumeNames(): string[] {
    return [...this.volumes.keys()];
  }
  /** LUN → volume name as an initiator sees it. */
  /** LunMapping.stateChanged: grants that no longer stand are revoked before the change completes. */
  stateChanged(): Promise<void> | null {
    return this.dataPath?.reevaluate() ?? null;
  }

  lunMapFor(initiatorWwpn: bigint): Map<number, string> {
    return new Map(this.groupOfInitiator.get(initiatorWwpn)?.luns ?? []);
  }
  /** The logical unit of a volume (PR and unit attention state), for status displays and tests. */
  logicalUnit(volumeName: string): LogicalUnit | undefined {
    return this.volumes.get(volumeName)?.lu;
  }

  // ---- run-time changes -------------------------------------------------------------------------
  async addVolume(spec: VolumeSpec, request: VolumeRequest = FROM_CONFIG): Promise<Volume> {
    this.checkOpen();
    if (this.volumes.has(spec.name)) throw new Error(`array '${this.name}': volume '${spec.name}' already exists`);
    const s: VolumeSpec = { ...spec };
    const open: VolumeOpenOptions = {
      existing: request.existing ?? (request.origin === 'config' ? 'adopt' : 'create'),
    };
    if (s.file !== undefined) {
      if (this.dataDir !== null) {
        s.file = resolveInDataDir(this.dataDir, s.file);
        open.noFollow = true;
      } else if (request.origin === 'control') {
        throw new Error(
          `volume '${s.name}': this SAN has no data directory, so the control socket cannot name backing files; ` +
            'restart the SAN with --data-dir DIR (or "dataDir" in its configuration), or leave out file= for a RAM volume',
        );
      } else {
        s.file = path.resolve(this.baseDir, s.file);
      }
    } else {
      const bytes = parseSizeOrZero(s.size);
      const warning = checkMemoryCapacity(s.name, bytes, request.origin === 'control' ? 'refuse' : 'warn');
      if (warning) this.log.warn({ volume: s.name, bytes }, warning);
    }
    for (const e of this.volumes.values()) {
      if (s.file !== undefined && e.volume.file === s.file)
        throw new Error(
          `array '${this.name}': volumes '${e.volume.name}' and '${s.name}' share backing file ${s.file}`,
        );
    }
    const volume = await Volume.open(s, { arrayName: this.name, oui: this.oui }, open);
    try {
      const lu = await LogicalUnit.create(volume, () => this.portIdentities);
      // Re-checked after the awaits: a concurrent addVolume of the same name may have won.
      if (this.volumes.has(spec.name)) throw new Error(`array '${this.name}': volume '${spec.name}' already exists`);
      this.volumes.set(spec.name, { volume, lu });
    } catch (e) {
      await volume.close();
      throw e;
    }
    this.log.info({ volume: spec.name, bytes: volume.sizeBytes, file: volume.file }, 'volume added');
    return volume;
  }

  /** Unmaps the volume from every host group (raising REPORTED LUNS DATA HAS CHANGED), then closes it. The file is kept. */
  async removeVolume(name: string): Promise<void> {
    this.checkOpen();
    const entry = this.volumes.get(name);
    if (!entry) throw new Error(`array '${this.name}': no volume '${name}'`);
    for (const g of this.groups.values()) {
      for (const [lun, vol] of [...g.luns]) if (vol === name) this.unmapLun(g.name, lun);
    }
    this.volumes.delete(name);
    await this.stateChanged();
    await entry.volume.close();
    this.log.info({ volume: name }, 'volume removed');
  }

  /** Grows (or, with allowShrink, shrinks) a volume; every nexus that knows it gets CAPACITY DATA HAS CHANGED. */
  async resizeVolume(
    name: string,
    size: string | number,
    opts: { allowShrink?: boolean; origin?: VolumeRequest['origin'] } = {},
  ): Promise<void> {
    this.checkOpen();
    const entry = this.volumes.get(name);
    if (!entry) throw new Error(`array '${this.name}': no volume '${name}'`);
    if (entry.volume.file === null) {
      const growth = parseSizeOrZero(size) - entry.volume.sizeBytes;
      if (growth > 0) {
        const warning = checkMemoryCapacity(name, growth, opts.origin === 'control' ? 'refuse' : 'warn');
        if (warning) this.log.warn({ volume: name, bytes: parseSizeOrZero(size) }, warning);
      }
    }
    // No HBA may read or write the volume by a grant while its capacity changes.
    const release = (await this.dataPath?.holdVolume(entry.volume)) ?? null;
    try {
      await entry.volume.resize(size, opts);
      entry.lu.capacityChanged();
    } finally {
      release?.();
    }
    this.log.info({ volume: name, bytes: entry.volume.sizeBytes }, 'volume resized');
  }

  addHostGroup(name: string, initiators: bigint[]): void {
    this.checkOpen();
    if (this.groups.has(name)) throw new Error(`array '${this.name}': host group '${name}' already exists`);
    for (const i of initiators) {
      const other = this.groupOfInitiator.get(i);
      if (other)
        throw new Error(
          `array '${this.name}': initiator ${formatWwn(i)} is in host groups '${other.name}' and '${name}'`,
        );
    }
    const group: HostGroup = { name, initiators: new Set(initiators), luns: new Map(), units: new Map() };
    this.groups.set(name, group);
    for (const i of initiators) this.groupOfInitiator.set(i, group);
    void this.stateChanged();
  }

  mapLun(groupName: string, lun: number, volumeName: string): void {
    this.checkOpen();
    const g = this.group(groupName);
    if (!Number.isInteger(lun) || lun < 0 || lun > MAX_FLAT_LUN)
      throw new Error(`LUN ${lun} must be an integer 0..${MAX_FLAT_LUN}`);
    const entry = this.volumes.get(volumeName);
    if (!entry) throw new Error(`array '${this.name}': no volume '${volumeName}'`);
    if (g.luns.has(lun))
      throw new Error(`host group '${groupName}': LUN ${lun} is already mapped to '${g.luns.get(lun)!}'`);
    for (const [l, v] of g.luns)
      if (v === volumeName) throw new Error(`host group '${groupName}': volume '${volumeName}' is already LUN ${l}`);
    g.luns.set(lun, volumeName);
    g.units.set(lun, entry.lu);
    this.reportedLunsChanged(g);
    void this.stateChanged();
  }

  unmapLun(groupName: string, lun: number): void {
    this.checkOpen();
    const g = this.group(groupName);
    const lu = g.units.get(lun);
    if (!lu) throw new Error(`host group '${groupName}': LUN ${lun} is not mapped`);
    g.luns.delete(lun);
    g.units.delete(lun);
    this.reportedLunsChanged(g);
    void this.stateChanged();
  }

  /** Flushes and closes every volume. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const errors: unknown[] = [];
    for (const e of this.volumes.values()) {
      try {
        await e.volume.close();
      } catch (err) {
        errors.push(err);
      }
    }
    if (errors.length)
      throw new AggregateError(errors, `array '${this.name}': ${errors.length} volume(s) failed to close`);
  }

  private group(name: string): HostGroup {
    const g = this.groups.get(name);
    if (!g) throw new Error(`array '${this.name}': no host group '${name}'`);
    return g;
  }

  private checkOpen(): void {
    if (this.closed) throw new Error(`array '${this.name}' is closed`);
  }

  /**
   * SPC-4 §7.5.5 / SAM-5: REPORTED LUNS DATA HAS CHANGED for every I_T nexus of the group's
   * initiators, queued on every logical unit still visible to them.
   */
  private reportedLunsChanged(g: HostGroup): void {
    const nexuses: string[] = [];
    for (const initiatorWwpn of g.initiators) {
      for (const p of this.portIdentities) {
        nexuses.push(nexusKey({ initiatorWwpn, targetWwpn: p.wwpn, relativeTargetPortId: p.relativePortId }));
      }
    }
    for (const lu of new Set(g.units.values())) lu.ua.establish(Asc.REPORTED_LUNS_DATA_HAS_CHANGED, nexuses);
  }
}

const EMPTY_UNITS: ReadonlyMap<number, LogicalUnit> = new Map();

/** A size for the memory check; an invalid one counts as 0 here and is reported by Volume itself. */
function parseSizeOrZero(size: string | number): number {
  try {
    return parseSize(size);
  } catch {
    return 0;
  }
}
