/**
 * What every lab run shares, whatever it sets up: its work directory, the steps it reports and
 * times, the processes and sockets it starts, the guest environment and the simulated SAN, and
 * the cleanup (processes in reverse order, sockets and their stats files, the temp directory
 * unless a failure's logs must stay readable). `npiv-hba lab` (lab.ts) and `lab --backend host`
 * (host-lab.ts) are two scripts over one LabSession.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { GuestRunResult } from '../harness/guest.js';
import { controlRequest } from '../san/control.js';
import type { SanStatus } from '../san/san.js';
import { statsPathFor } from '../vport/stats.js';
import { ensureGuestEnvironment } from './prepare.js';
import { claimSocketPath, type LabProcess, startCliProcess, waitForSocket } from './processes.js';
import type { LabReporter } from './progress.js';

/** Longest Unix socket path (sun_path holds 108 bytes with the terminating NUL). */
const MAX_SOCKET_PATH = 107;

/** A step of the lab failed (not the guest's findings: those are in the report). */
export class LabStepError extends Error {
  constructor(
    readonly step: string,
    message: string,
    readonly logs: Record<string, string>,
    readonly workDir: string | null,
  ) {
    super(`${step}: ${message}`);
    this.name = 'LabStepError';
  }
}

export class LabSession {
  readonly logs: Record<string, string> = {};
  readonly processes: LabProcess[] = [];
  readonly sockets: string[] = [];
  readonly steps: { step: string; seconds: number }[] = [];
  readonly started = Date.now();
  /** The step running now (or the last one), for an error raised outside any step. */
  current = 'setup';

  private constructor(
    readonly workDir: string,
    /** A temp directory of our own: removed at the end unless a failure's logs must stay. */
    readonly ownWorkDir: boolean,
    private readonly reporter: LabReporter,
    private readonly signal: AbortSignal | undefined,
  ) {}

  static async open(workDir: string | undefined, reporter: LabReporter, signal?: AbortSignal): Promise<LabSession> {
    if (workDir === undefined) {
      return new LabSession(await mkdtemp(join(tmpdir(), 'npiv-hba-lab-')), true, reporter, signal);
    }
    const dir = resolve(workDir);
    mkdirSync(dir, { recursive: true });
    return new LabSession(dir, false, reporter, signal);
  }

  /** Runs one reported, timed step; any failure becomes a LabStepError naming it and the logs so far. */
  async step<T>(name: string, work: () => Promise<T>): Promise<T> {
    this.current = name;
    this.reporter.step(name);
    const t0 = Date.now();
    try {
      if (this.signal?.aborted) throw new Error('interrupted');
      return await work();
    } catch (err) {
      if (err instanceof LabStepError) throw err;
      if (this.signal?.aborted) throw this.interrupted(name);
      throw new LabStepError(name, (err as Error).message, { ...this.logs }, this.workDir);
    } finally {
      this.steps.push({ step: name, seconds: (Date.now() - t0) / 1000 });
    }
  }

  /** An interrupted run in a temp dir is cleaned up completely: no logs to point at. */
  interrupted(step: string): LabStepError {
    return new LabStepError(
      step,
      'interrupted (SIGINT/SIGTERM)',
      this.ownWorkDir ? {} : { ...this.logs },
      this.ownWorkDir ? null : this.workDir,
    );
  }

  checkSocketPath(path: string): void {
    if (Buffer.byteLength(path) > MAX_SOCKET_PATH)
      throw new Error(`socket path ${path} is longer than ${MAX_SOCKET_PATH} bytes: use a shorter --work-dir`);
  }

  /** The 'guest environment' step's work: build or reuse the cached guest (prepare.sh). */
  async prepareGuest(o: { projectRoot: string; cacheDir: string | undefined; timeoutMs: number }): Promise<void> {
    this.logs.prepare = join(this.workDir, 'prepare.log');
    const built = await ensureGuestEnvironment(
      {
        projectRoot: o.projectRoot,
        logFile: this.logs.prepare,
        timeoutMs: o.timeoutMs,
        ...(o.cacheDir !== undefined ? { cacheDir: o.cacheDir } : {}),
        ...(this.signal !== undefined ? { signal: this.signal } : {}),
      },
      this.reporter,
    );
    if (!built) delete this.logs.prepare;
  }

  /**
   * The 'starting the SAN' step's work: `npiv-hba san` with its link and control sockets in the
   * work directory and a pcap of the fabric; resolves once both sockets accept.
   */
  async startSan(o: {
    cli: string;
    configPath: string;
    timeoutMs: number;
  }): Promise<{ link: string; control: string }> {
    const link = join(this.workDir, 'san.sock');
    const control = join(this.workDir, 'san-ctl.sock');
    this.checkSocketPath(link);
    this.checkSocketPath(control);
    this.logs.san = join(this.workDir, 'san.log');
    for (const path of [link, control]) await claimSocketPath(path);
    this.sockets.push(link, control);
    const san = startCliProcess({
      name: 'npiv-hba san',
      cli: o.cli,
      args: [
        'san',
        '--config',
        o.configPath,
        '--link',
        link,
        '--control',
        control,
        '--pcap',
        join(this.workDir, 'san.pcap'),
      ],
      logFile: this.logs.san,
      cwd: this.workDir,
    });
    this.processes.push(san);
    await waitForSocket(san, link, o.timeoutMs, this.signal);
    await waitForSocket(san, control, o.timeoutMs, this.signal);
    return { link, control };
  }

  /** Stops everything this session started and removes what it created; keeps a failed run's temp dir. */
  async close(failed: boolean): Promise<void> {
    this.reporter.finish();
    // Reverse order: HBAs before the SAN they are linked to.
    for (const proc of [...this.processes].reverse()) await proc.stop();
    // Sockets, and the counters file serve keeps next to each (src/vport/stats.ts).
    for (const socket of this.sockets) {
      for (const path of [socket, statsPathFor(socket)]) if (existsSync(path)) await rm(path, { force: true });
    }
    // A failed run keeps its temp dir so that the logs named in the error can be read.
    if (this.ownWorkDir && (!failed || this.signal?.aborted)) await rm(this.workDir, { recursive: true, force: true });
  }
}

/** Why a guest run produced no usable results, in the report's words (empty when it finished with 0). */
export function guestRunProblems(run: GuestRunResult, what: string, timeoutMs: number): string[] {
  if (run.timedOut) return [`${what}: no results within ${timeoutMs / 1000} s (QEMU killed)`];
  if (run.exitStatus === null) {
    const stderr = run.qemuStderr.trim().slice(-500);
    return [
      `${what}: QEMU exited (${run.qemuExitCode ?? run.qemuSignal}) before the script finished${stderr ? `: ${stderr}` : ''}`,
    ];
  }
  if (run.exitStatus !== 0) return [`${what}: script exit status ${run.exitStatus}`];
  return [];
}

/** The SAN's `status` answer over its control socket, or null when it cannot be had in time or is malformed. */
export async function readSanStatus(control: string, timeoutMs: number): Promise<SanStatus | null> {
  try {
    const res = await controlRequest(control, { cmd: 'status' }, timeoutMs);
    return res.ok && isSanStatus(res.result) ? res.result : null;
  } catch {
    return null;
  }
}

function isSanStatus(value: unknown): value is SanStatus {
  const v = value as Partial<SanStatus> | null;
  return (
    typeof v === 'object' &&
    v !== null &&
    Array.isArray(v.logins) &&
    Array.isArray(v.targetPorts) &&
    Array.isArray(v.arrays) &&
    typeof v.fabric === 'object' &&
    v.fabric !== null
  );
}
