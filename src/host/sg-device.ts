/**
 * One LUN of the host vport as a command queue over its SCSI generic node: asynchronous SG v3
 * write()/read() (drivers/scsi/sg.c `sg_new_write`/`sg_new_read`), completions when libuv reports
 * the fd readable (`sg_poll`), so the guest's queue depth reaches the target: up to SG_MAX_QUEUE
 * (16) commands per fd, `fdCount` fds per LUN, and a FIFO for the rest.
 *
 * Aborts: the sg driver has no call that aborts one queued command (no ioctl takes a pack_id;
 * ABORT TASK / ABORT TASK SET / CLEAR TASK SET have no user-space form). `abandon()` therefore
 * completes the guest's command at once as aborted and drops the host's completion when it
 * arrives; the command itself still runs to completion (or to the host's own timeout and error
 * handling) on the real target.
 *
 * Data path (docs/host-backend.md): the guest's buffer arrives as views into guest memory and is
 * handed to the sg driver as they are (an sg_iovec array): npiv-hba copies
 * nothing; the sg driver copies between them and its own kernel pages inside our write(2) (write
 * data) and inside the read(2) that collects the completion (read data). A command beyond the
 * LUN's limits (more views than its sg_tablesize, or longer than its max_sectors) is bounced
 * instead — copied through one native buffer — and counted (sgDataPathStats).
 *
 * A zero-copy read still outstanding when its command is released to the guest (abort, TMF, link
 * loss, reset: FcpCommand.released) must never be collected: collecting it would copy its data
 * into a buffer the guest may have reused. Its fd is retired: no new commands, the others are
 * collected by pack id, then the fd is closed (the kernel finishes the orphan without copying)
 * and a fresh one opened.
 */
import { POLL_READABLE, native, type PollHandle } from '../native/index.js';
import { hostNative, type SgLimits, type SgScsiId } from '../native/host.js';
import type { FcpResult } from '../isp/fabric-port.js';
import type { DataDirection } from '../scsi/sam.js';
import type { Logger } from '../util/log.js';
import { gatherViews, scatterToViews, viewsIntact } from '../isp/data-views.js';
import { decodeSgHeader, encodeSgHeader, fcpResultOf, SG_MAX_QUEUE } from './sg-io-hdr.js';

export interface LunCommand {
  cdb: Uint8Array;
  direction: DataDirection;
  /** FCP_DL: the data-in buffer size, or the write length. */
  expectedLength: number;
  /** The guest's buffer: live views into guest memory (FcpCommand.data), expectedLength bytes. */
  data: readonly Uint8Array[];
  /** FcpCommand.released: once aborted, not another byte may move through `data`. */
  released: AbortSignal;
  timeoutMs: number;
}

/** What the host fabric port needs of a LUN; tests provide fakes, NativeSgLun is the real one. */
export interface LunChannel {
  submit(tag: number, command: LunCommand): Promise<FcpResult>;
  /** Completes the command with this tag as aborted now; its host completion is dropped. */
  abandon(tag: number): boolean;
  /** SG_SCSI_RESET (device or target), never escalated. */
  reset(kind: 'device' | 'target'): Promise<void>;
  close(): void;
}

export interface LunAddress {
  host: number;
  channel: number;
  target: number;
  lun: bigint;
}

export type LunOpener = (devicePath: string, address: LunAddress) => LunChannel;

/** How the host backend moved data (process-wide, for the serve log and tests). */
export const sgDataPathStats = {
  /** commands whose data went straight between guest memory and the sg driver */
  zeroCopy: 0,
  /** commands copied through a bounce buffer (beyond the LUN's sg limits) */
  bounced: 0,
  /** sg fds retired because a zero-copy read was released to the guest while outstanding */
  fdsRetired: 0,
};

/** Most views sg takes in one sg_iovec array (UIO_MAXIOV). */
const MAX_IOVECS = 1024;

interface Pending {
  tag: number;
  direction: DataDirection;
  length: number;
  data: readonly Uint8Array[];
  released: AbortSignal;
  resolve: (r: FcpResult) => void;
  abandoned: boolean;
  /** Submitted as a zero-copy read: the kernel writes the views when it is collected. */
  zeroCopyRead: boolean;
  /** Released to the guest while a zero-copy read was outstanding: never collect it. */
  poisoned: boolean;
}

interface SgFd {
  fd: number;
  watch: PollHandle;
  inflight: Map<number, Pending>;
  /** Holds a poisoned read: takes no new commands, closed once only poisoned ones remain. */
  retiring: boolean;
}

const ABORTED: FcpResult = { scsiStatus: 0, sense: null, transferred: 0, transportError: 'aborted' };
const UNAVAILABLE: FcpResult = { scsiStatus: 0, sense: null, transferred: 0, transportError: 'port-unavailable' };
const DMA_GONE: FcpResult = { scsiStatus: 0, sense: null, transferred: 0, transportError: 'dma' };

export class NativeSgLun implements LunChannel {
  private readonly fds: SgFd[] = [];
  private readonly waiting: { packId: number; command: LunCommand; pending: Pending }[] = [];
  private readonly byTag = new Map<number, Pending>();
  private nextPackId = 1;
  private closed = false;
  /** The fd an SG_SCSI_RESET is running on: closed only when the ioctl returns. */
  private resetFd: SgFd | null = null;
  /** The LUN's limits (null if the sg node would not say: every command is then bounced). */
  private limits: SgLimits | null = null;
  /** This LUN's share of sgDataPathStats. */
  readonly stats = { zeroCopy: 0, bounced: 0, fdsRetired: 0 };

  constructor(
    private readonly path: string,
    private readonly address: LunAddress,
    private readonly o: { fdCount?: number; log?: Logger } = {},
  ) {
    const count = Math.max(1, Math.min(o.fdCount ?? 2, 8));
    try {
      for (let i = 0; i < count; i++) this.openOne();
    } catch (e) {
      this.close();
      throw e;
    }
  }

  private openOne(): void {
    const fd = hostNative.sgOpen(this.path);
    let id: SgScsiId;
    try {
      id = hostNative.sgScsiId(fd);
    } catch (e) {
      hostNative.sgClose(fd);
      throw e;
    }
    // sg minors are reused: make sure the node is still the LUN sysfs named (SG_GET_SCSI_ID's lun
    // is an int, so only LUNs below 2^31 can be compared).
    const a = this.address;
    if (
      id.host !== a.host ||
      id.channel !== a.channel ||
      id.target !== a.target ||
      (a.lun < 0x80000000n && BigInt(id.lun) !== a.lun)
    ) {
      hostNative.sgClose(fd);
      throw new Error(
        `${this.path} is ${id.host}:${id.channel}:${id.target}:${id.lun}, not ${a.host}:${a.channel}:${a.target}:${a.lun}`,
      );
    }
    if (!this.limits) {
      try {
        this.limits = hostNative.sgLimits(fd);
      } catch (e) {
        this.o.log?.warn({ event: 'host_sg_limits_unknown', path: this.path, error: String(e) }, 'sg limits unknown');
      }
    }
    const entry: SgFd = { fd, inflight: new Map(), watch: undefined as unknown as PollHandle, retiring: false };
    entry.watch = native.poll(fd, POLL_READABLE, (_events, errno) => this.drain(entry, errno));
    this.fds.push(entry);
  }

  submit(tag: number, command: LunCommand): Promise<FcpResult> {
    if (this.closed) return Promise.resolve(UNAVAILABLE);
    return new Promise<FcpResult>((resolve) => {
      const pending: Pending = {
        tag,
        direction: command.direction,
        length: command.direction === 'none' ? 0 : command.expectedLength,
        data: command.data,
        released: command.released,
        resolve: (r) => {
          if (this.byTag.get(tag) === pending) this.byTag.delete(tag);
          resolve(r);
        },
        abandoned: false,
        zeroCopyRead: false,
        poisoned: false,
      };
      this.byTag.set(tag, pending);
      const packId = this.nextPackId;
      this.nextPackId = this.nextPackId >= 0x7fffffff ? 1 : this.nextPackId + 1;
      this.waiting.push({ packId, command, pending });
      this.pump();
    });
  }

  /** Zero-copy if the views fit the LUN's limits; else the command is bounced. */
  private zeroCopyFits(c: LunCommand): boolean {
    const l = this.limits;
    if (!l || c.data.length === 0) return false;
    return c.data.length <= Math.min(l.tablesize, MAX_IOVECS) && c.expectedLength <= l.maxBytes;
  }

  private pump(): void {
    while (this.waiting.length > 0 && !this.closed) {
      const slot = this.fds
        .filter((f) => !f.retiring && f.inflight.size < SG_MAX_QUEUE)
        .sort((x, y) => x.inflight.size - y.inflight.size)[0];
      if (!slot) return;
      const next = this.waiting[0]!;
      if (next.pending.abandoned || next.pending.released.aborted) {
        this.waiting.shift();
        if (!next.pending.abandoned) next.pending.resolve(ABORTED);
        continue;
      }
      const c = next.command;
      if (c.direction !== 'none' && c.expectedLength > 0 && !viewsIntact(c.data)) {
        this.waiting.shift();
        next.pending.resolve(DMA_GONE);
        continue;
      }
      const zeroCopy = c.direction !== 'none' && c.expectedLength > 0 && this.zeroCopyFits(c);
      let data: readonly Uint8Array[] | Uint8Array | null = null;
      if (zeroCopy) {
        data = c.data;
      } else if (c.direction === 'write') {
        data = gatherViews(c.data, c.expectedLength);
        if (!data) {
          this.waiting.shift();
          next.pending.resolve(DMA_GONE);
          continue;
        }
      }
      const header = encodeSgHeader({
        direction: c.direction,
        cdbLength: c.cdb.length,
        dataLength: c.direction === 'none' ? 0 : c.expectedLength,
        iovecCount: zeroCopy ? c.data.length : 0,
        timeoutMs: c.timeoutMs,
        packId: next.packId,
      });
      let queued: boolean;
      try {
        queued = hostNative.sgSubmit(
          slot.fd,
          header,
          c.cdb,
          data,
          !zeroCopy && c.direction === 'read' ? c.expectedLength : 0,
        );
      } catch (e) {
        this.waiting.shift();
        this.o.log?.warn({ event: 'host_sg_submit_failed', path: this.path, error: String(e) }, 'sg submit failed');
        next.pending.resolve(UNAVAILABLE);
        continue;
      }
      if (!queued) {
        // The kernel's queue is fuller than our count says (another opener?): wait for a completion.
        if (slot.inflight.size === 0) {
          this.waiting.shift();
          next.pending.resolve(UNAVAILABLE);
          continue;
        }
        return;
      }
      this.waiting.shift();
      if (c.direction !== 'none' && c.expectedLength > 0) {
        const counter = zeroCopy ? 'zeroCopy' : 'bounced';
        this.stats[counter]++;
        sgDataPathStats[counter]++;
      }
      const p = next.pending;
      p.zeroCopyRead = zeroCopy && c.direction === 'read';
      slot.inflight.set(next.packId, p);
      if (p.zeroCopyRead) {
        p.released.addEventListener('abort', () => this.poison(slot, next.packId, p), { once: true });
      }
    }
  }

  /** A zero-copy read released to the guest while outstanding: its fd is retired (see top). */
  private poison(entry: SgFd, packId: number, p: Pending): void {
    if (entry.inflight.get(packId) !== p) return; // already collected
    p.poisoned = true;
    if (!p.abandoned) {
      p.abandoned = true;
      p.resolve(ABORTED);
    }
    if (!entry.retiring) {
      entry.retiring = true;
      this.stats.fdsRetired++;
      sgDataPathStats.fdsRetired++;
      this.o.log?.info({ event: 'host_sg_fd_retired', path: this.path, tag: p.tag }, 'sg fd retired');
    }
    this.retireIfDone(entry);
  }

  /** Closes a retiring fd once only poisoned reads are left on it, and opens a fresh one. */
  private retireIfDone(entry: SgFd): void {
    if (!entry.retiring || !this.fds.includes(entry)) return;
    for (const p of entry.inflight.values()) if (!p.poisoned) return;
    entry.watch.stop();
    this.fds.splice(this.fds.indexOf(entry), 1);
    entry.inflight.clear();
    this.closeFd(entry);
    if (!this.closed) {
      try {
        this.openOne();
      } catch (e) {
        this.o.log?.warn({ event: 'host_sg_reopen_failed', path: this.path, error: String(e) }, 'sg reopen failed');
        if (this.fds.length === 0) this.close();
      }
    }
    this.pump();
  }

  private drain(entry: SgFd, errno: number): void {
    if (errno !== 0) return this.fail(entry, `poll error ${errno}`);
    for (let budget = 0; budget < 4 * SG_MAX_QUEUE; budget++) {
      let raw: ReturnType<typeof hostNative.sgRead>;
      try {
        raw = entry.retiring ? this.readUnpoisoned(entry) : hostNative.sgRead(entry.fd);
      } catch (e) {
        // ENODEV: the device is going away (dev_loss_tmo, vport deleted).
        return this.fail(entry, String(e));
      }
      if (raw === null) break;
      const c = decodeSgHeader(raw.header, raw.sense);
      const pending = entry.inflight.get(c.packId);
      if (!pending) continue;
      entry.inflight.delete(c.packId);
      if (pending.abandoned) continue;
      const result = fcpResultOf(c, pending.direction, pending.length);
      if (pending.direction === 'read' && result.transferred > 0 && !pending.zeroCopyRead) {
        // Bounced: the data came back in a native buffer.
        const data = raw.data.subarray(0, result.transferred);
        result.transferred = pending.released.aborted ? 0 : scatterToViews(pending.data, data);
        if (result.transferred < data.length) result.transportError = 'dma';
      }
      pending.resolve(result);
    }
    if (entry.retiring) this.retireIfDone(entry);
    this.pump();
  }

  /** On a retiring fd: the next completion that is not a poisoned read, by pack id. */
  private readUnpoisoned(entry: SgFd): ReturnType<typeof hostNative.sgRead> {
    for (const [packId, p] of entry.inflight) {
      if (p.poisoned) continue;
      const raw = hostNative.sgRead(entry.fd, packId);
      if (raw) return raw;
    }
    return null;
  }

  private fail(entry: SgFd, reason: string): void {
    this.o.log?.warn({ event: 'host_sg_lost', path: this.path, reason }, 'sg node failed');
    for (const p of entry.inflight.values()) if (!p.abandoned) p.resolve(UNAVAILABLE);
    entry.inflight.clear();
    entry.watch.stop();
    const i = this.fds.indexOf(entry);
    if (i >= 0) this.fds.splice(i, 1);
    this.closeFd(entry);
    if (this.fds.length === 0) this.close();
    else this.pump();
  }

  abandon(tag: number): boolean {
    const p = this.byTag.get(tag);
    if (!p || p.abandoned) return false;
    p.abandoned = true;
    p.resolve(ABORTED);
    return true;
  }

  async reset(kind: 'device' | 'target'): Promise<void> {
    const f = this.fds[0];
    if (!f || this.closed) throw new Error(`${this.path} is closed`);
    if (this.resetFd) throw new Error(`a reset is already running on ${this.path}`);
    this.resetFd = f;
    try {
      await hostNative.sgReset(f.fd, kind === 'device' ? 1 : 4);
    } finally {
      this.resetFd = null;
      if (!this.fds.includes(f)) this.closeFd(f);
    }
  }

  private closeFd(entry: SgFd): void {
    // An fd a reset is still using is closed when the reset returns.
    if (this.resetFd === entry) return;
    try {
      const left = hostNative.sgClose(entry.fd);
      if (left > 0)
        this.o.log?.warn(
          { event: 'host_sg_orphans', path: this.path, requests: left },
          'sg closed with commands outstanding',
        );
    } catch {
      // already closed
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const w of this.waiting) if (!w.pending.abandoned) w.pending.resolve(UNAVAILABLE);
    this.waiting.length = 0;
    for (const f of this.fds) {
      for (const p of f.inflight.values()) if (!p.abandoned) p.resolve(UNAVAILABLE);
      f.watch.stop();
      this.closeFd(f);
    }
    this.fds.length = 0;
  }
}

export const nativeLunOpener: LunOpener = (path, address) => new NativeSgLun(path, address);
