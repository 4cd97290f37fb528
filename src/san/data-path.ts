/**
 * The SAN's authority over data-path grants (protocol: src/fc/data-path-grant.ts; the HBA's end:
 * src/fc/data-path-client.ts). The SAN may let an HBA serve READ/WRITE of one I_T_L nexus from
 * the volume's descriptor, and takes that back whenever its own semantics need to see the
 * commands again. A nexus is granted only while all of this holds:
 *   - grants are enabled (SAN option), no pcap capture runs (it must see every frame), no fault
 *     is injected (faults act on frames);
 *   - the initiator's login is on the link that asked, the target port is up, zoning lets the two
 *     talk, and the target port has an FCP image pair (PRLI) with the initiator;
 *   - the LUN is mapped to the initiator, the logical unit is started, has no unit attention
 *     pending for the nexus and no persistent reservation (any reservation makes access depend
 *     on the nexus, which only the device server decides);
 *   - the grant's capacity, rights and write-cache semantics are still the volume's, and the
 *     volume is not being resized.
 * Every change of SAN state that could end one of these calls reevaluate(): the array after each
 * command that is not a READ/WRITE, after task management and nexus loss, after LUN map, volume
 * and zoning changes; faults, target ports and links likewise. Grants that no longer qualify are
 * revoked and the change is complete only when the HBAs acknowledged (RELEASED): the device
 * server holds the response of the command that caused it until then, so a later command of
 * any nexus sees the new state on the frame path. An HBA that does not acknowledge within
 * REVOKE_TIMEOUT_MS loses its link.
 *
 * Counters the HBA reports (STATS, RELEASED) are added to the volume's data-path statistics.
 */
import {
  GRANT_FLAG,
  GRANT_MSG,
  GRANT_REASON,
  type GrantRequest,
  decodeGrantMessage,
  encodeGrantMessage,
} from '../fc/data-path-grant.js';
import type { Link } from '../fc/link.js';
import { native } from '../native/index.js';
import type { ItNexus } from '../scsi/api.js';
import { decodeLun } from '../scsi/cdb.js';
import type { LogicalUnit } from '../scsi/logical-unit.js';
import { nexusKey } from '../scsi/nexus.js';
import type { Volume } from './volume.js';
import { type Logger, logger } from '../util/log.js';

/** How long an HBA has to acknowledge a revocation before its link is taken down. */
export const REVOKE_TIMEOUT_MS = 5000;
/** Grants one link may hold. */
const MAX_GRANTS_PER_LINK = 256;
/** The array's limit on one transfer (MAX_TRANSFER_BYTES in src/scsi/block-device.ts is the same). */
const DEFAULT_MAX_BYTES = 8 * 1024 * 1024;

/** What a grant needs to know about the nexus at the time it is asked for and re-checked. */
export interface NexusTarget {
  nexus: ItNexus;
  lu: LogicalUnit;
  volume: Volume;
  /** The largest transfer the target port accepts. */
  maxBytes: number;
}

export interface DataPathHost {
  /** Capture or faults are active: no grant may exist (the reason). */
  globalBlock(): number | null;
  /**
   * The nexus sId → dId, LUN as the SAN sees it now: null (with a reason) when it is not one a
   * grant can cover (no login on that link, no image pair, not zoned, not mapped...).
   */
  resolve(link: Link, sId: number, dId: number, lun: number): NexusTarget | number;
}

export interface DataPathCounters {
  reads: number;
  writes: number;
  readBytes: number;
  writeBytes: number;
}

interface ActiveGrant {
  id: number;
  link: Link;
  sId: number;
  dId: number;
  lun: number;
  target: NexusTarget;
  flags: number;
  blockCount: number;
  /** Counters already added to the volume's statistics. */
  seen: DataPathCounters;
  revoking: Promise<void> | null;
  settle: (() => void) | null;
}

export class DataPathGrants {
  private readonly grants = new Map<number, ActiveGrant>();
  private readonly links = new Set<Link>();
  private readonly resizing = new Set<Volume>();
  /** Per volume: what the data path moved (statistics stay whole). */
  private readonly counters = new WeakMap<Volume, DataPathCounters>();
  private nextId = 1;
  private generation = 1;
  private readonly log: Logger;
  /** Grants given and revoked, for status and tests. */
  readonly stats = { granted: 0, denied: 0, revoked: 0 };

  constructor(
    private readonly host: DataPathHost,
    public enabled: boolean,
    log?: Logger,
  ) {
    this.log = log ?? logger('san.data-path');
  }

  /** Grants in force now. */
  get active(): number {
    return this.grants.size;
  }

  /** The grants held on a nexus (tests, status). */
  grantsFor(sId: number, dId: number): number {
    let n = 0;
    for (const g of this.grants.values()) if (g.sId === sId && g.dId === dId && !g.revoking) n++;
    return n;
  }

  /** What the data path moved for this volume (as reported by the HBAs so far). */
  countersFor(volume: Volume): DataPathCounters {
    return { ...(this.counters.get(volume) ?? { reads: 0, writes: 0, readBytes: 0, writeBytes: 0 }) };
  }

  /** A control message from an attached link. */
  onControl(link: Link, message: Uint8Array, fds: number[]): void {
    for (const fd of fds) native.close(fd); // HBAs send none
    const m = decodeGrantMessage(message);
    if (!m) {
      link.close('protocol error: malformed data-path control message');
      return;
    }
    this.watch(link);
    switch (m.type) {
      case GRANT_MSG.REQUEST:
        return this.onRequest(link, m);
      case GRANT_MSG.STATS:
      case GRANT_MSG.RELEASED: {
        const g = this.grants.get(m.grantId);
        if (!g || g.link !== link) return;
        this.account(g, m);
        if (m.type === GRANT_MSG.RELEASED) this.drop(g);
        return;
      }
      default:
        link.close('protocol error: unexpected data-path control message');
    }
  }

  /**
   * Re-checks every grant against the SAN's state now; resolves once those that lost their
   * standing are revoked and acknowledged. Null when nothing had to be revoked (the common case:
   * callers on the command path skip an await).
   */
  reevaluate(): Promise<void> | null {
    if (this.grants.size === 0) return null;
    const waits: Promise<void>[] = [];
    const blocked = this.host.globalBlock();
    for (const g of this.grants.values()) {
      if (g.revoking) {
        waits.push(g.revoking);
        continue;
      }
      const reason = blocked ?? this.standing(g);
      if (reason !== null) waits.push(this.revoke(g, reason));
    }
    return waits.length === 0 ? null : Promise.all(waits).then(() => undefined);
  }

  /** Before a volume's capacity changes: no grant may exist on it, and none is given, until release. */
  async holdVolume(volume: Volume): Promise<() => void> {
    this.resizing.add(volume);
    const waits: Promise<void>[] = [];
    for (const g of this.grants.values())
      if (g.target.volume === volume) waits.push(g.revoking ?? this.revoke(g, GRANT_REASON.STATE_CHANGED));
    await Promise.all(waits);
    return () => this.resizing.delete(volume);
  }

  /** Turn grants on or off at run time; off revokes every grant. */
  async setEnabled(enabled: boolean): Promise<void> {
    this.enabled = enabled;
    if (!enabled)
      await Promise.all([...this.grants.values()].map((g) => g.revoking ?? this.revoke(g, GRANT_REASON.DISABLED)));
  }

  /** SAN shutdown: grants end with their links. */
  close(): void {
    this.enabled = false;
    for (const g of [...this.grants.values()]) this.drop(g);
  }

  // -------------------------------------------------------------------------------------------

  private watch(link: Link): void {
    if (this.links.has(link)) return;
    this.links.add(link);
    link.once('down', () => {
      this.links.delete(link);
      // The HBA's descriptors close with its link; nothing it does after reaches us as a grant.
      for (const g of [...this.grants.values()]) if (g.link === link) this.drop(g);
    });
  }

  private onRequest(link: Link, req: GrantRequest): void {
    const deny = (reason: number): void => {
      this.stats.denied++;
      link.sendControl(encodeGrantMessage({ type: GRANT_MSG.DENIED, requestId: req.requestId, reason }));
    };
    if (!this.enabled) return deny(GRANT_REASON.DISABLED);
    if (!link.passesFds) return deny(GRANT_REASON.LINK);
    const blocked = this.host.globalBlock();
    if (blocked !== null) return deny(blocked);
    const lun = decodeLun(req.lun);
    if (lun === null) return deny(GRANT_REASON.NO_LUN);
    let held = 0;
    for (const g of this.grants.values()) {
      if (g.link !== link) continue;
      held++;
      if (g.sId === req.sId && g.dId === req.dId && g.lun === lun) return deny(GRANT_REASON.TOO_MANY);
    }
    if (held >= MAX_GRANTS_PER_LINK) return deny(GRANT_REASON.TOO_MANY);
    const t = this.host.resolve(link, req.sId, req.dId, lun);
    if (typeof t === 'number') return deny(t);
    const g: ActiveGrant = {
      id: this.nextId,
      link,
      sId: req.sId,
      dId: req.dId,
      lun,
      target: t,
      flags: flagsFor(t.volume),
      blockCount: t.volume.blockCount,
      seen: { reads: 0, writes: 0, readBytes: 0, writeBytes: 0 },
      revoking: null,
      settle: null,
    };
    const reason = this.standing(g);
    if (reason !== null) return deny(reason);
    let fd: number;
    try {
      fd = t.volume.backing.fd;
    } catch {
      return deny(GRANT_REASON.STATE_CHANGED);
    }
    this.nextId = (this.nextId + 1) >>> 0 || 1;
    const sent = link.sendControl(
      encodeGrantMessage({
        type: GRANT_MSG.GRANT,
        requestId: req.requestId,
        grantId: g.id,
        generation: this.generation++,
        flags: g.flags,
        blockSize: t.volume.blockSize,
        blockCount: g.blockCount,
        maxBytes: Math.min(t.maxBytes, DEFAULT_MAX_BYTES),
      }),
      [fd],
    );
    if (!sent) return deny(GRANT_REASON.LINK);
    this.grants.set(g.id, g);
    this.stats.granted++;
    this.log.debug({ grant: g.id, sId: g.sId, dId: g.dId, lun, volume: t.volume.name }, 'data-path grant');
  }

  /** Null while the grant still stands; otherwise why not. */
  private standing(g: ActiveGrant): number | null {
    if (!this.enabled) return GRANT_REASON.DISABLED;
    const now = this.host.resolve(g.link, g.sId, g.dId, g.lun);
    if (typeof now === 'number') return now;
    const { lu, volume } = now;
    if (lu !== g.target.lu || volume !== g.target.volume) return GRANT_REASON.STATE_CHANGED;
    if (this.resizing.has(volume) || volume.blockCount !== g.blockCount || flagsFor(volume) !== g.flags)
      return GRANT_REASON.STATE_CHANGED;
    if (lu.stopped) return GRANT_REASON.STOPPED;
    if (lu.ua.has(nexusKey(now.nexus))) return GRANT_REASON.UNIT_ATTENTION;
    if (lu.pr.reserved) return GRANT_REASON.RESERVATION;
    return null;
  }

  private revoke(g: ActiveGrant, reason: number): Promise<void> {
    if (g.revoking) return g.revoking;
    this.stats.revoked++;
    g.revoking = new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.log.warn(
          { grant: g.id, link: g.link.description },
          'data-path revocation not acknowledged; link taken down',
        );
        g.link.close('data-path revocation not acknowledged');
        this.drop(g);
      }, REVOKE_TIMEOUT_MS);
      timer.unref?.();
      g.settle = () => {
        clearTimeout(timer);
        resolve();
      };
    }).then(async () => {
      // Writes the HBA completed under the write cache are in the page cache; if the cache has
      // been switched off meanwhile they must reach the medium as the array's own flush did.
      if (g.flags & GRANT_FLAG.WRITE && g.target.volume.file !== null && !g.target.volume.writeCache)
        await g.target.volume.flush().catch(() => {});
    });
    this.log.debug({ grant: g.id, reason }, 'data-path grant revoked');
    if (!g.link.sendControl(encodeGrantMessage({ type: GRANT_MSG.REVOKE, grantId: g.id, reason }))) this.drop(g);
    return g.revoking;
  }

  private drop(g: ActiveGrant): void {
    if (!this.grants.delete(g.id)) return;
    g.settle?.();
  }

  private account(g: ActiveGrant, m: DataPathCounters): void {
    // Counters only grow; a report below what was seen is ignored (a hostile or confused HBA).
    const d = {
      reads: m.reads - g.seen.reads,
      writes: m.writes - g.seen.writes,
      readBytes: m.readBytes - g.seen.readBytes,
      writeBytes: m.writeBytes - g.seen.writeBytes,
    };
    if (d.reads < 0 || d.writes < 0 || d.readBytes < 0 || d.writeBytes < 0) return;
    g.seen = { reads: m.reads, writes: m.writes, readBytes: m.readBytes, writeBytes: m.writeBytes };
    const c = this.counters.get(g.target.volume) ?? { reads: 0, writes: 0, readBytes: 0, writeBytes: 0 };
    c.reads += d.reads;
    c.writes += d.writes;
    c.readBytes += d.readBytes;
    c.writeBytes += d.writeBytes;
    this.counters.set(g.target.volume, c);
  }
}

function flagsFor(volume: Volume): number {
  let f = GRANT_FLAG.READ | GRANT_FLAG.WRITE;
  if (volume.file !== null) {
    f |= GRANT_FLAG.FLUSH_ON_FUA;
    if (!volume.writeCache) f |= GRANT_FLAG.SYNC_WRITES;
  }
  return f;
}
