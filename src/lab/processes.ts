/**
 * The lab's child processes: `npiv-hba san` and one `npiv-hba serve` per vport, started through
 * the project's own CLI exactly as a user would, each logging into its own file in the work
 * dir. Each has a start timeout (its socket must appear) and a stop that escalates from SIGTERM
 * to SIGKILL.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, openSync, closeSync, readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { describeProbe, probeUnixSocket } from '../vport/probe.js';

const SOCKET_POLL_MS = 50;
export const STOP_GRACE_MS = 5_000;
const LOG_TAIL_CHARS = 2_000;

export interface LabProcess {
  name: string;
  child: ChildProcess;
  logFile: string;
  /** Resolves with the exit code (null when killed by a signal) once the process has exited. */
  exited: Promise<number | null>;
  /** SIGTERM, SIGKILL after the grace period; resolves when it has exited. */
  stop(): Promise<number | null>;
  /** The end of its log, for error messages. */
  logTail(): string;
}

export interface StartOptions {
  name: string;
  /** The CLI launcher (bin/npiv-hba.js). */
  cli: string;
  args: readonly string[];
  logFile: string;
  cwd: string;
  env?: Record<string, string>;
  /** Node.js options before the CLI path (e.g. --cpu-prof for the benchmarks). */
  nodeArgs?: readonly string[];
}

export function startCliProcess(options: StartOptions): LabProcess {
  // stdout and stderr both go to the log file: nothing the child prints reaches the lab's report.
  const fd = openSync(options.logFile, 'a');
  let child: ChildProcess;
  try {
    child = spawn(process.execPath, [...(options.nodeArgs ?? []), options.cli, ...options.args], {
      cwd: options.cwd,
      stdio: ['ignore', fd, fd],
      env: { ...process.env, ...options.env },
    });
  } finally {
    closeSync(fd);
  }
  let exitCode: number | null | undefined;
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (code) => {
      exitCode = code;
      resolve(code);
    });
    child.once('error', () => {
      exitCode = null;
      resolve(null);
    });
  });
  return {
    name: options.name,
    child,
    logFile: options.logFile,
    exited,
    async stop() {
      if (exitCode === undefined && child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
      try {
        return await exited;
      } finally {
        clearTimeout(timer);
      }
    },
    logTail() {
      try {
        const text = readFileSync(options.logFile, 'utf8');
        return text.slice(-LOG_TAIL_CHARS);
      } catch {
        return '';
      }
    },
  };
}

/** Waits until the process has created `path`; throws naming the process when it dies or time runs out. */
export async function waitForSocket(
  proc: LabProcess,
  path: string,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!existsSync(path)) {
    if (signal?.aborted) throw new Error('interrupted');
    if (proc.child.exitCode !== null || proc.child.signalCode !== null) {
      throw new Error(
        `${proc.name} exited (${proc.child.exitCode ?? proc.child.signalCode}) before creating ${path}; log ${proc.logFile}:\n${proc.logTail()}`,
      );
    }
    if (Date.now() > deadline)
      throw new Error(`${proc.name} did not create ${path} within ${timeoutMs / 1000} s; log ${proc.logFile}`);
    await new Promise((resolve) => setTimeout(resolve, SOCKET_POLL_MS));
  }
}

/**
 * Makes `path` free for a new socket: a socket left behind by a process that is gone is removed;
 * one a live process listens on, or a file that is not a socket, is an error (another lab may be
 * using the same --work-dir).
 */
export async function claimSocketPath(path: string): Promise<void> {
  const probe = await probeUnixSocket(path);
  if (probe.state === 'missing') return;
  if (probe.state === 'refused') {
    await rm(path, { force: true });
    return;
  }
  throw new Error(`${path} is in use (${describeProbe(probe)}): is another lab running in this work dir?`);
}
