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
 */
import { POLL_READABLE, native, type PollHandle } from '../native/index.js';
import { hostNative, type SgScsiId } from '../native/host.js';
import type { FcpResult } from '../isp/fabric-port.js';
import type { DataDirection } from '../scsi/sam.js';
import type { Logger } from '../util/log.js';
import { gatherViews, scatterToViews } from '../isp/data-views.js';
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

interface Pending {
  tag: number;
  direction: DataDirection;
  length: number;
  data: readonly Uint8Array[];
  released: AbortSignal;
  resolve: (r: FcpResult) => void;
  abandoned: boolean;
}

interface SgFd {
  fd: number;
  watch: PollHandle;
  inflight: Map<number, Pending>;
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
    const entry: SgFd = { fd, inflight: new Map(), watch: undefined as unknown as PollHandle };
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
      };
      this.byTag.set(tag, pending);
      const packId = this.nextPackId;
      this.nextPackId = this.nextPackId >= 0x7fffffff ? 1 : this.nextPackId + 1;
      this.waiting.push({ packId, command, pending });
      this.pump();
    });
  }

  private pump(): void {
    while (this.waiting.length > 0 && !this.closed) {
      const slot = this.fds
        .filter((f) => f.inflight.size < SG_MAX_QUEUE)
        .sort((x, y) => x.inflight.size - y.inflight.size)[0];
      if (!slot) return;
      const next = this.waiting[0]!;
      if (next.pending.abandoned) {
        this.waiting.shift();
        continue;
      }
      const c = next.command;
      let dataOut: Uint8Array | null = null;
      if (c.direction === 'write') {
        dataOut = gatherViews(c.data, c.expectedLength);
        if (!dataOut) {
          this.waiting.shift();
          next.pending.resolve(DMA_GONE);
          continue;
        }
      }
      const header = encodeSgHeader({
        direction: c.direction,
        cdbLength: c.cdb.length,
        dataLength: c.direction === 'none' ? 0 : c.expectedLength,
        timeoutMs: c.timeoutMs,
        packId: next.packId,
      });
      let queued: boolean;
      try {
        queued = hostNative.sgSubmit(slot.fd, header, c.cdb, dataOut, c.direction === 'read' ? c.expectedLength : 0);
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
      slot.inflight.set(next.packId, next.pending);
    }
  }

  private drain(entry: SgFd, errno: number): void {
    if (errno !== 0) return this.fail(entry, `poll error ${errno}`);
    for (let budget = 0; budget < 4 * SG_MAX_QUEUE; budget++) {
      let raw: ReturnType<typeof hostNative.sgRead>;
      try {
        raw = hostNative.sgRead(entry.fd);
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
      if (pending.direction === 'read' && result.transferred > 0 && !pending.released.aborted) {
        const data = (raw.data ?? new Uint8Array(0)).subarray(0, result.transferred);
        result.transferred = scatterToViews(pending.data, data);
        if (result.transferred < data.length) result.transportError = 'dma';
      }
      pending.resolve(result);
    }
    this.pump();
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
