/**
 * The HBA's end of data-path grants (src/fc/data-path-grant.ts): for an I_T_L nexus the SAN has
 * granted, READ and WRITE (10/12/16) move data straight between the volume's descriptor and the
 * command's buffers (one copy, in the kernel), and the status is built here. Anything else, and
 * anything unusual about a READ or WRITE (protection bits, NACA, a transfer length that does not
 * match FCP_DL, a range past the granted capacity, an I/O error), returns null: the caller sends
 * the command as frames and the SAN answers it exactly as it always does.
 *
 * One client per link, shared by every N_Port on it. A grant is asked for on the first READ/WRITE
 * of a nexus (that command still goes as frames) and again at most every RETRY_MS after a denial
 * or a revocation. On REVOKE no new I/O starts on the grant; once the I/O in flight on it (only
 * writes waiting for fdatasync can be) has finished, the descriptor is closed and RELEASED goes
 * back with the final counters. Counters of live grants go to the SAN every STATS_MS.
 *
 * Writes are acknowledged only when in the backing store: pwrite returned (the memfd or the
 * file's page cache is what the SAN's own write would have reached), and for a file volume, with
 * FUA or with the volume's write cache off, after fdatasync — as the array does.
 */
import { fdatasync, readSync, writeSync } from 'node:fs';
import { native } from '../native/index.js';
import type { DataDirection } from '../scsi/sam.js';
import {
  GRANT_FLAG,
  GRANT_MSG,
  type Grant,
  type GrantCounters,
  decodeGrantMessage,
  encodeGrantMessage,
} from './data-path-grant.js';
import type { Link } from './link.js';

/** After a denial or revocation, the next request for that nexus waits this long. */
export const RETRY_MS = 1000;
/** Period of counter reports for live grants. */
export const STATS_MS = 1000;
/** Requests outstanding at once on one link. */
const MAX_PENDING_REQUESTS = 64;

const GOOD = 0x00;

export interface DataPathCommand {
  /** 8-byte FCP LUN. */
  lun: Uint8Array;
  cdb: Uint8Array;
  direction: DataDirection;
  expectedLength: number;
  /**
   * The data buffer as views (into guest memory, for the HBA: src/isp/data-views.ts), together
   * expectedLength bytes: read data goes straight into them, write data comes straight from them.
   */
  data: readonly Uint8Array[];
}

export interface DataPathResult {
  status: number;
  sense: Uint8Array | null;
  /** Bytes moved (all of expectedLength: partial transfers fall back to frames). */
  transferred: number;
}

interface HeldGrant extends GrantCounters {
  id: number;
  key: string;
  sId: number;
  dId: number;
  fd: number;
  blockSize: number;
  blockCount: number;
  maxBytes: number;
  flags: number;
  inFlight: number;
  released: boolean;
  revoking: boolean;
  reported: number;
}

interface Parsed {
  write: boolean;
  lba: number;
  blocks: number;
  fua: boolean;
}

/** READ/WRITE 10/12/16 as the array parses them (src/scsi/block-commands.ts); null for anything else. */
function parseRw(cdb: Uint8Array): Parsed | null {
  const op = cdb[0];
  let write: boolean;
  let lba: number;
  let blocks: number;
  let control: number;
  const dv = new DataView(cdb.buffer, cdb.byteOffset, cdb.byteLength);
  switch (op) {
    case 0x28: // READ(10)
    case 0x2a: // WRITE(10)
      if (cdb.length < 10) return null;
      write = op === 0x2a;
      lba = dv.getUint32(2);
      blocks = dv.getUint16(7);
      control = cdb[9]!;
      break;
    case 0xa8: // READ(12)
    case 0xaa: // WRITE(12)
      if (cdb.length < 12) return null;
      write = op === 0xaa;
      lba = dv.getUint32(2);
      blocks = dv.getUint32(6);
      control = cdb[11]!;
      break;
    case 0x88: // READ(16)
    case 0x8a: {
      // WRITE(16)
      if (cdb.length < 16) return null;
      write = op === 0x8a;
      const hi = dv.getUint32(2);
      if (hi >= 0x200000) return null; // beyond any granted capacity (and a double's exact range)
      lba = hi * 0x1_0000_0000 + dv.getUint32(6);
      blocks = dv.getUint32(10);
      control = cdb[15]!;
      break;
    }
    default:
      return null;
  }
  const flags = cdb[1]!;
  // Protection information and NACA are refused by the array: let it say so.
  if (flags & 0xe0 || control & 0x04) return null;
  return { write, lba, blocks, fua: (flags & 0x08) !== 0 };
}

export class DataPathClient {
  private static readonly byLink = new WeakMap<Link, DataPathClient>();

  /** The client of a link that can receive descriptors; null for one that cannot. */
  static for(link: Link): DataPathClient | null {
    if (!link.passesFds || !link.isUp) return null;
    let c = DataPathClient.byLink.get(link);
    if (!c) {
      c = new DataPathClient(link);
      DataPathClient.byLink.set(link, c);
    }
    return c;
  }

  /** The client of a link if one was made (nothing to tell otherwise). */
  static existing(link: Link): DataPathClient | null {
    return DataPathClient.byLink.get(link) ?? null;
  }

  private readonly grants = new Map<string, HeldGrant>();
  private readonly byId = new Map<number, HeldGrant>();
  private readonly pending = new Map<number, string>();
  private readonly pendingKeys = new Set<string>();
  private readonly retryAt = new Map<string, number>();
  private nextRequestId = 1;
  private statsTimer: NodeJS.Timeout | null = null;
  private down = false;

  private constructor(private readonly link: Link) {
    link.on('control', (message, fds) => this.onControl(message, fds));
    link.once('down', () => this.linkDown());
  }

  /** Grants held now (tests, status). */
  get heldGrants(): number {
    return this.grants.size;
  }

  /**
   * Serve a command on the data path: a result (or a promise of one) when it was, null when it
   * must go as frames. A write that returns null has possibly written some of its data; the frame
   * path then writes all of it again, which is what the command asked for anyway.
   */
  serve(sId: number, dId: number, cmd: DataPathCommand): DataPathResult | Promise<DataPathResult | null> | null {
    if (this.down) return null;
    const p = parseRw(cmd.cdb);
    if (!p) return null;
    const key = nexusKey(sId, dId, cmd.lun);
    const g = this.grants.get(key);
    if (!g) {
      this.maybeRequest(key, sId, dId, cmd.lun);
      return null;
    }
    if (g.revoking || p.blocks === 0) return null;
    const bytes = p.blocks * g.blockSize;
    if (
      bytes !== cmd.expectedLength ||
      bytes > g.maxBytes ||
      p.lba + p.blocks > g.blockCount ||
      cmd.direction !== (p.write ? 'write' : 'read') ||
      !(g.flags & (p.write ? GRANT_FLAG.WRITE : GRANT_FLAG.READ))
    )
      return null;
    const offset = p.lba * g.blockSize;
    // Every view intact and exactly the transfer: a detached view (DMA_UNMAP) is the frame
    // path's to report.
    let total = 0;
    for (const v of cmd.data) {
      if (v.byteLength === 0) return null;
      total += v.byteLength;
    }
    if (total !== bytes) return null;
    try {
      let pos = offset;
      for (const v of cmd.data) {
        let done = 0;
        while (done < v.byteLength) {
          const n = p.write
            ? writeSync(g.fd, v, done, v.byteLength - done, pos + done)
            : readSync(g.fd, v, done, v.byteLength - done, pos + done);
          if (n <= 0) return null; // the store is shorter than granted: the SAN decides
          done += n;
        }
        pos += v.byteLength;
      }
    } catch {
      return null; // an I/O error: the array reports it (medium error) on the frame path
    }
    if (!p.write) {
      g.reads++;
      g.readBytes += bytes;
      return { status: GOOD, sense: null, transferred: bytes };
    }
    const flush = (p.fua && g.flags & GRANT_FLAG.FLUSH_ON_FUA) || g.flags & GRANT_FLAG.SYNC_WRITES;
    if (!flush) {
      g.writes++;
      g.writeBytes += bytes;
      return { status: GOOD, sense: null, transferred: bytes };
    }
    g.inFlight++;
    return new Promise((resolve) => {
      fdatasync(g.fd, (err) => {
        g.inFlight--;
        if (!err) {
          g.writes++;
          g.writeBytes += bytes;
        }
        if (g.inFlight === 0 && g.revoking) this.release(g);
        // Not durable: the frame path writes it again and reports what the store says.
        resolve(err ? null : { status: GOOD, sense: null, transferred: bytes });
      });
    });
  }

  /** The session with dId ended (LOGO, PRLO, lost): its grants go. */
  sessionEnded(sId: number, dId: number): void {
    for (const g of [...this.grants.values()]) if (g.sId === sId && g.dId === dId) this.startRevoke(g);
  }

  private maybeRequest(key: string, sId: number, dId: number, lun: Uint8Array): void {
    if (this.pendingKeys.has(key) || this.pending.size >= MAX_PENDING_REQUESTS) return;
    const at = this.retryAt.get(key);
    if (at !== undefined && Date.now() < at) return;
    const requestId = this.nextRequestId;
    this.nextRequestId = (this.nextRequestId + 1) >>> 0 || 1;
    const sent = this.link.sendControl(
      encodeGrantMessage({ type: GRANT_MSG.REQUEST, requestId, sId, dId, lun: lun.slice(0, 8) }),
    );
    if (!sent) return;
    this.pending.set(requestId, key);
    this.pendingKeys.add(key);
  }

  private onControl(message: Uint8Array, fds: number[]): void {
    const m = decodeGrantMessage(message);
    if (m?.type === GRANT_MSG.GRANT) return this.onGrant(m, fds);
    for (const fd of fds) native.close(fd);
    if (!m) return;
    if (m.type === GRANT_MSG.DENIED) {
      const key = this.pending.get(m.requestId);
      if (key === undefined) return;
      this.pending.delete(m.requestId);
      this.pendingKeys.delete(key);
      this.retryAt.set(key, Date.now() + RETRY_MS);
    } else if (m.type === GRANT_MSG.REVOKE) {
      const g = this.byId.get(m.grantId);
      if (g) this.startRevoke(g);
      // A grant unknown here (refused on arrival, released meanwhile): the SAN still waits.
      else this.report(GRANT_MSG.RELEASED, { id: m.grantId, reads: 0, writes: 0, readBytes: 0, writeBytes: 0 });
    }
  }

  private onGrant(m: Grant, fds: number[]): void {
    const key = this.pending.get(m.requestId);
    const fd = fds.length === 1 ? fds[0]! : null;
    if (key !== undefined) {
      this.pending.delete(m.requestId);
      this.pendingKeys.delete(key);
    }
    let ok = key !== undefined && fd !== null && !this.byId.has(m.grantId) && !this.grants.has(key);
    if (ok) {
      try {
        ok = native.fdSize(fd!) >= m.blockCount * m.blockSize;
      } catch {
        ok = false;
      }
    }
    if (!ok) {
      for (const f of fds) native.close(f);
      this.report(GRANT_MSG.RELEASED, { id: m.grantId, reads: 0, writes: 0, readBytes: 0, writeBytes: 0 });
      return;
    }
    const [sId, dId] = key!.split('/').map(Number) as [number, number];
    const g: HeldGrant = {
      id: m.grantId,
      key: key!,
      sId,
      dId,
      fd: fd!,
      blockSize: m.blockSize,
      blockCount: m.blockCount,
      maxBytes: m.maxBytes,
      flags: m.flags,
      inFlight: 0,
      released: false,
      revoking: false,
      reads: 0,
      writes: 0,
      readBytes: 0,
      writeBytes: 0,
      reported: 0,
    };
    this.grants.set(g.key, g);
    this.byId.set(g.id, g);
    this.armStats();
  }

  private startRevoke(g: HeldGrant): void {
    if (g.revoking) return;
    g.revoking = true;
    if (this.grants.get(g.key) === g) this.grants.delete(g.key);
    this.retryAt.set(g.key, Date.now() + RETRY_MS);
    if (g.inFlight === 0) this.release(g);
  }

  private release(g: HeldGrant): void {
    if (g.released) return;
    g.released = true;
    this.byId.delete(g.id);
    native.close(g.fd);
    this.report(GRANT_MSG.RELEASED, g);
  }

  private report(type: typeof GRANT_MSG.RELEASED | typeof GRANT_MSG.STATS, g: { id: number } & GrantCounters): void {
    this.link.sendControl(
      encodeGrantMessage({
        type,
        grantId: g.id,
        reads: g.reads,
        writes: g.writes,
        readBytes: g.readBytes,
        writeBytes: g.writeBytes,
      }),
    );
  }

  private armStats(): void {
    if (this.statsTimer) return;
    this.statsTimer = setInterval(() => {
      if (this.byId.size === 0) {
        clearInterval(this.statsTimer!);
        this.statsTimer = null;
        return;
      }
      for (const g of this.byId.values()) {
        const ops = g.reads + g.writes;
        if (ops === g.reported || g.revoking) continue;
        g.reported = ops;
        this.report(GRANT_MSG.STATS, g);
      }
    }, STATS_MS);
    this.statsTimer.unref?.();
  }

  private linkDown(): void {
    this.down = true;
    if (this.statsTimer) clearInterval(this.statsTimer);
    this.statsTimer = null;
    for (const g of [...this.byId.values()]) {
      g.revoking = true;
      this.grants.delete(g.key);
      // A write waiting for fdatasync keeps the descriptor until it completes.
      if (g.inFlight === 0 && !g.released) {
        g.released = true;
        this.byId.delete(g.id);
        native.close(g.fd);
      }
    }
    this.pending.clear();
    this.pendingKeys.clear();
  }
}

function nexusKey(sId: number, dId: number, lun: Uint8Array): string {
  return `${sId}/${dId}/${lun[0]}.${lun[1]}.${lun[2]}.${lun[3]}.${lun[4]}.${lun[5]}.${lun[6]}.${lun[7]}`;
}
