/**
 * Per-vport counters published by the serve process, read by `npiv-hba vport stats`.
 *
 * Contract (serve writes, the CLI reads):
 *  - File: `<socket>.stats.json` next to the vport's vfio-user socket (statsPathFor()).
 *  - Written atomically (temporary file in the same directory, then rename), so a reader sees a
 *    whole old or a whole new file, never a torn one.
 *  - Private: mode 0600, or 0640 and owned by the socket's group (serve --socket-group), so that
 *    members of that group can run `vport stats`. The counters tell how busy a VM's disks are, and
 *    the temporary file is created O_EXCL|O_NOFOLLOW under a random name, so nobody can plant a
 *    symlink that makes serve (often root) overwrite another file (src/util/private-file.ts).
 *  - Written at most once per `minIntervalMs` (1 s by default): counting is a plain field increment
 *    on the hot path; a timer flushes. close() writes a final snapshot with `running: false`.
 *  - Content: {"version":1,"pid","wwpn","startedAt","updatedAt","running","link","counters":{...}}
 *    with the counters below (all non-negative integers, monotonic while the process lives).
 *
 * How serve uses it (the lead wires this):
 *    const stats = new VportStatsWriter({ socketPath, wwpn });
 *    stats.count('framesTx'); stats.count('bytesRead', n); stats.setLink('up');
 *    ... on shutdown: stats.close();
 */
import { readFileSync, unlinkSync } from 'node:fs';
import { z } from 'zod';
import type { Logger } from '../util/log.js';
import { writePrivateFileAtomic } from '../util/private-file.js';
import { formatWwn } from '../util/wwn.js';

export const STATS_FORMAT_VERSION = 1;
export const STATS_SUFFIX = '.stats.json';
export const DEFAULT_STATS_INTERVAL_MS = 1000;

/** Counter names and what they count. */
export const COUNTER_DESCRIPTIONS = {
  framesTx: 'FC frames sent to the SAN',
  framesRx: 'FC frames received from the SAN',
  iosStarted: 'SCSI commands (FCP_CMND) issued by the guest',
  iosCompleted: 'SCSI commands completed with a response',
  iosFailed: 'SCSI commands completed with an error status or aborted',
  bytesRead: 'data bytes moved SAN -> guest',
  bytesWritten: 'data bytes moved guest -> SAN',
  errors: 'errors reported to the guest or the SAN (bad IOCBs, DMA faults, protocol errors)',
  linkUp: 'link up events',
  linkDown: 'link down events',
  clientConnects: 'vfio-user clients (QEMU) attached',
  clientDisconnects: 'vfio-user clients detached',
} as const;

export type CounterName = keyof typeof COUNTER_DESCRIPTIONS;
export const COUNTER_NAMES = Object.keys(COUNTER_DESCRIPTIONS) as CounterName[];
export type Counters = Record<CounterName, number>;
export type LinkState = 'up' | 'down' | 'unknown';

const Count = z.number().int().nonnegative();

export const VportStatsSchema = z
  .object({
    version: z.literal(STATS_FORMAT_VERSION),
    pid: z.number().int().positive(),
    wwpn: z.string(),
    startedAt: z.string(),
    updatedAt: z.string(),
    running: z.boolean(),
    link: z.enum(['up', 'down', 'unknown']),
    counters: z.object(Object.fromEntries(COUNTER_NAMES.map((n) => [n, Count])) as Record<CounterName, typeof Count>),
  })
  .strict();
export type VportStats = z.infer<typeof VportStatsSchema>;

export function statsPathFor(socketPath: string): string {
  return socketPath + STATS_SUFFIX;
}

function zeroCounters(): Counters {
  return Object.fromEntries(COUNTER_NAMES.map((n) => [n, 0])) as Counters;
}

export interface VportStatsWriterOptions {
  socketPath: string;
  wwpn: bigint;
  minIntervalMs?: number;
  /** the socket's group (serve --socket-group): may read the file (0640) */
  group?: number;
  /** where a failed background write is reported (the first write, in the constructor, throws instead) */
  log?: Logger;
  /** clock for updatedAt/startedAt (tests) */
  now?: () => Date;
}

export class VportStatsWriter {
  readonly path: string;
  readonly counters: Counters = zeroCounters();
  private link: LinkState = 'unknown';
  private readonly wwpn: string;
  private readonly startedAt: string;
  private readonly minIntervalMs: number;
  private readonly group: number | undefined;
  private readonly log: Logger | undefined;
  /** a background write failed and no write succeeded since: report the next failure only once */
  private failing = false;
  private readonly now: () => Date;
  private lastWrite = 0;
  private timer: NodeJS.Timeout | null = null;
  private closed = false;

  constructor(options: VportStatsWriterOptions) {
    this.path = statsPathFor(options.socketPath);
    this.wwpn = formatWwn(options.wwpn);
    this.minIntervalMs = options.minIntervalMs ?? DEFAULT_STATS_INTERVAL_MS;
    this.group = options.group;
    this.log = options.log;
    this.now = options.now ?? (() => new Date());
    this.startedAt = this.now().toISOString();
    this.flush();
  }

  /** Adds `n` (default 1) to a counter; the file follows within minIntervalMs. */
  count(name: CounterName, n = 1): void {
    if (!Number.isSafeInteger(n) || n < 0)
      throw new RangeError(`counter increment must be a non-negative integer, got ${n}`);
    this.counters[name] += n;
    this.schedule();
  }

  setLink(state: LinkState): void {
    if (state === this.link) return;
    this.link = state;
    if (state === 'up') this.counters.linkUp++;
    else if (state === 'down') this.counters.linkDown++;
    this.schedule();
  }

  snapshot(running = !this.closed): VportStats {
    return {
      version: STATS_FORMAT_VERSION,
      pid: process.pid,
      wwpn: this.wwpn,
      startedAt: this.startedAt,
      updatedAt: this.now().toISOString(),
      running,
      link: this.link,
      counters: { ...this.counters },
    };
  }

  /** Writes the file now (atomically), whatever the interval. */
  flush(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    writePrivateFileAtomic(this.path, JSON.stringify(this.snapshot()) + '\n', {
      what: 'statistics file',
      ...(this.group !== undefined ? { group: this.group } : {}),
    });
    this.lastWrite = Date.now();
  }

  /** Final snapshot with running=false; further counts are ignored. `remove` deletes the file instead. */
  close(options: { remove?: boolean } = {}): void {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (options.remove) {
      try {
        unlinkSync(this.path);
      } catch {
        // already gone
      }
      return;
    }
    this.flushInBackground();
  }

  /**
   * flush() for the timer and close(): statistics must never take the HBA down, so a failure is
   * logged (once until a write succeeds again) and the next write tries again.
   */
  private flushInBackground(): void {
    try {
      this.flush();
      this.failing = false;
    } catch (err) {
      if (!this.failing)
        this.log?.warn(
          { event: 'stats_write_failed', file: this.path, reason: (err as Error).message },
          'stats_write_failed',
        );
      this.failing = true;
    }
  }

  private schedule(): void {
    if (this.closed || this.timer) return;
    const wait = Math.max(0, this.lastWrite + this.minIntervalMs - Date.now());
    this.timer = setTimeout(() => {
      this.timer = null;
      this.flushInBackground();
    }, wait);
    this.timer.unref(); // statistics never keep the process alive
  }
}

export class StatsReadError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StatsReadError';
  }
}

/** The published stats for a socket, or null when no file exists; a malformed file throws StatsReadError. */
export function readVportStats(socketPath: string): VportStats | null {
  const file = statsPathFor(socketPath);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new StatsReadError(`cannot read ${file}: ${(err as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new StatsReadError(`malformed stats file ${file}: ${(err as Error).message}`);
  }
  const parsed = VportStatsSchema.safeParse(json);
  if (!parsed.success) {
    throw new StatsReadError(
      `malformed stats file ${file}: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`,
    );
  }
  return parsed.data;
}
