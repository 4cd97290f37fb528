/**
 * WWPN zoning, modelled on FC-GS-7 §6.4 (Fabric Zone Server) as switches implement it:
 * zones are named sets of port names; a zone set is a named list of zones; at most one zone set
 * is active. Two ports may see each other when some zone of the active zone set holds both.
 * Ports that are members of no zone of the active zone set are in the "default zone": with the
 * default-zone policy 'allow' they may see each other (and every port may see them when no
 * zone set is active at all); with 'deny' they see nobody.
 *
 * Enforcement (by the switch): name-server answers list only visible ports, frames between
 * ports that cannot see each other are discarded (hard zoning).
 */
import { formatWwn } from '../../util/wwn.js';

export type DefaultZonePolicy = 'allow' | 'deny';

export interface ZoneDefinition {
  name: string;
  members: bigint[];
}

export interface ZoningSnapshot {
  defaultZone: DefaultZonePolicy;
  zones: { name: string; members: string[] }[];
  zoneSets: { name: string; zones: string[] }[];
  activeZoneSet: string | null;
}

export class ZoningError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ZoningError';
  }
}

export class Zoning {
  private readonly zones = new Map<string, Set<bigint>>();
  private readonly zoneSets = new Map<string, string[]>();
  private active: string | null = null;
  /** Zones of the active set, resolved (rebuilt on every change). */
  private activeZones: Set<bigint>[] = [];
  private zonedMembers = new Set<bigint>();

  constructor(public defaultZone: DefaultZonePolicy = 'deny') {}

  setDefaultZone(policy: DefaultZonePolicy): void {
    this.defaultZone = policy;
  }

  /** Create or replace a zone. */
  setZone(zone: ZoneDefinition): void {
    if (!zone.name) throw new ZoningError('a zone needs a name');
    this.zones.set(zone.name, new Set(zone.members));
    this.rebuild();
  }

  removeZone(name: string): void {
    if (!this.zones.delete(name)) throw new ZoningError(`no zone named '${name}'`);
    for (const [setName, members] of this.zoneSets)
      this.zoneSets.set(
        setName,
        members.filter((z) => z !== name),
      );
    this.rebuild();
  }

  addZoneMember(zone: string, wwpn: bigint): void {
    const z = this.zones.get(zone);
    if (!z) throw new ZoningError(`no zone named '${zone}'`);
    z.add(wwpn);
    this.rebuild();
  }

  removeZoneMember(zone: string, wwpn: bigint): void {
    const z = this.zones.get(zone);
    if (!z) throw new ZoningError(`no zone named '${zone}'`);
    if (!z.delete(wwpn)) throw new ZoningError(`${formatWwn(wwpn)} is not a member of zone '${zone}'`);
    this.rebuild();
  }

  setZoneSet(name: string, zones: string[]): void {
    for (const z of zones)
      if (!this.zones.has(z)) throw new ZoningError(`zone set '${name}' names unknown zone '${z}'`);
    this.zoneSets.set(name, [...zones]);
    this.rebuild();
  }

  /** Activate a zone set by name, or deactivate zoning with null. */
  activate(name: string | null): void {
    if (name !== null && !this.zoneSets.has(name)) throw new ZoningError(`no zone set named '${name}'`);
    this.active = name;
    this.rebuild();
  }

  get activeZoneSet(): string | null {
    return this.active;
  }

  /** May the ports with these names exchange frames / see each other in the name server? */
  canCommunicate(a: bigint, b: bigint): boolean {
    if (a === b) return true;
    if (this.active === null) return this.defaultZone === 'allow';
    for (const zone of this.activeZones) if (zone.has(a) && zone.has(b)) return true;
    return this.defaultZone === 'allow' && !this.zonedMembers.has(a) && !this.zonedMembers.has(b);
  }

  snapshot(): ZoningSnapshot {
    return {
      defaultZone: this.defaultZone,
      zones: [...this.zones].map(([name, m]) => ({ name, members: [...m].map(formatWwn) })),
      zoneSets: [...this.zoneSets].map(([name, zones]) => ({ name, zones: [...zones] })),
      activeZoneSet: this.active,
    };
  }

  private rebuild(): void {
    const names = this.active === null ? [] : (this.zoneSets.get(this.active) ?? []);
    this.activeZones = names.map((n) => this.zones.get(n)).filter((z): z is Set<bigint> => z !== undefined);
    this.zonedMembers = new Set(this.activeZones.flatMap((z) => [...z]));
  }
}
