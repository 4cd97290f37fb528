/**
 * Running vports: each started vport is one detached `npiv-hba serve` process (one HBA, one socket,
 * one process — a crash costs one VM one HBA). Its runtime state lives in the run directory:
 *
 *   <run-dir>/<uuid>.state.json   {"version":1,"uuid","pid","socket","startedAt","log"}
 *   <run-dir>/<uuid>.log          serve's stdout and stderr (pino JSON lines)
 *   <run-dir>/<uuid>.lock         held during start and stop (two commands never race on one vport)
 *
 * Status is derived, never trusted from the file alone: a recorded pid counts as running only if
 * that process exists and its command line is a `serve` of this vport's socket (so a reused pid
 * is never signalled). A state file whose process is gone, or a socket file nobody listens on, is
 * stale: `start` and `stop` report it and clean it up. A corrupt state file (a crash or a full
 * disk while it was written) names no pid: the serve process of this vport's socket is looked for
 * among the running processes instead; without one the file is stale like any other.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, lstatSync, mkdirSync, openSync, readFileSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { packageRoot } from '../util/package-root.js';
import { writePrivateFileAtomic } from '../util/private-file.js';
import { listPids, processArgv, processState } from '../util/proc.js';
import { formatWwn } from '../util/wwn.js';
import { ACCESS_OPTIONS, type VportDefinition } from './definition.js';
import { VportError } from './errors.js';
import { withLockFile } from './lock.js';
import { describeProbe, probeUnixSocket, probeVfioUserServer } from './probe.js';

export const STATE_FORMAT_VERSION = 1;
const STATE_SUFFIX = '.state.json';
const LOG_SUFFIX = '.log';
const LOCK_SUFFIX = '.lock';
/** how long `start` waits for serve to answer VERSION on its socket */
export const DEFAULT_START_TIMEOUT_MS = 15_000;
/**
 * The same for a host backend: serve creates the host vport before its socket and waits up to
 * 60 s for it to become Active (acquireVport), plus the deletion of a leftover and of a vport
 * that failed; `start` must not kill it while the fabric is still answering.
 */
export const DEFAULT_HOST_START_TIMEOUT_MS = 90_000;
/** how long `stop` waits after SIGTERM before SIGKILL */
export const DEFAULT_STOP_TIMEOUT_MS = 5_000;
const KILL_WAIT_MS = 2_000;
const POLL_MS = 50;
/** bytes of serve's log quoted when it dies during start */
const LOG_TAIL_BYTES = 2048;

const StateSchema = z
  .object({
    version: z.literal(STATE_FORMAT_VERSION),
    uuid: z.string(),
    pid: z.number().int().positive(),
    socket: z.string(),
    startedAt: z.string(),
    log: z.string(),
  })
  .strict();
export type RuntimeState = z.infer<typeof StateSchema>;

export type VportStatus =
  | { status: 'running'; pid: number; state: RuntimeState }
  | { status: 'stopped'; leftoverSocket: boolean }
  /**
   * recorded as started, but the process is gone (or the pid now belongs to another program);
   * pid null: the state file is corrupt and no serve process of the vport's socket runs
   */
  | { status: 'stale'; pid: number | null; reason: string }
  /** the state file cannot be read (permissions, I/O): whether serve runs is unknown, so nothing acts on it */
  | { status: 'unknown'; reason: string };

/** The state file exists but is not a state file this program wrote (truncated, garbage). */
export class CorruptStateError extends VportError {}

export function statePath(runDir: string, uuid: string): string {
  return join(runDir, uuid + STATE_SUFFIX);
}

export function logPath(runDir: string, uuid: string): string {
  return join(runDir, uuid + LOG_SUFFIX);
}

/** held while a start or stop of this vport is in progress */
export function lockPath(runDir: string, uuid: string): string {
  return join(runDir, uuid + LOCK_SUFFIX);
}

function errnoCode(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | null)?.code;
}

export function readState(runDir: string, uuid: string): RuntimeState | null {
  const file = statePath(runDir, uuid);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return null;
    throw err;
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new CorruptStateError(`invalid runtime state ${file}: ${(err as Error).message}`);
  }
  const parsed = StateSchema.safeParse(json);
  if (!parsed.success || parsed.data.uuid !== uuid) {
    throw new CorruptStateError(`invalid runtime state ${file}: not a state record of vport ${uuid}`);
  }
  return parsed.data;
}

/** Records a running serve process (start does this; exported for tools that adopt a process they started). */
export function writeRuntimeState(runDir: string, state: RuntimeState): void {
  mkdirSync(runDir, { recursive: true, mode: 0o755 });
  const file = statePath(runDir, state.uuid);
  // A fresh random temporary name, never through a symlink, renamed over the state file.
  writePrivateFileAtomic(file, JSON.stringify(state) + '\n', { what: 'vport state file' });
}

function removeIfPresent(path: string): boolean {
  try {
    unlinkSync(path);
    return true;
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return false;
    throw err;
  }
}

function isSocketFile(path: string): boolean {
  try {
    return lstatSync(path).isSocket();
  } catch {
    return false;
  }
}

/** Whether `pid` is (still) the serve process recorded for this socket. */
function isServeOf(pid: number, socket: string): { alive: boolean; reason: string } {
  const state = processState(pid);
  if (state === 'absent') return { alive: false, reason: `process ${pid} is gone` };
  if (state === 'zombie') return { alive: false, reason: `process ${pid} has exited` };
  if (state === 'exiting') return { alive: true, reason: '' }; // still holds its socket
  const argv = processArgv(pid);
  if (argv === null) return { alive: true, reason: '' }; // no /proc to tell: trust the pid
  const socketIndex = argv.indexOf('--socket');
  if (!argv.includes('serve') || socketIndex < 0 || argv[socketIndex + 1] !== socket) {
    return {
      alive: false,
      reason: `process ${pid} is gone (the pid now belongs to another program: ${argv.slice(0, 3).join(' ')})`,
    };
  }
  return { alive: true, reason: '' };
}

/** Most processes looked at when searching for a vport's serve process (a bound on /proc walks). */
const MAX_PROCESSES_SCANNED = 1 << 16;

/** The pid of a live `serve` of `socket` other than this process, or null (none, or no /proc). */
function findServeProcess(socket: string): number | null {
  const pids = listPids();
  if (pids === null) return null;
  let scanned = 0;
  for (const pid of pids) {
    if (++scanned > MAX_PROCESSES_SCANNED) break;
    if (pid === process.pid) continue;
    const argv = processArgv(pid);
    if (argv === null) continue;
    const i = argv.indexOf('--socket');
    if (argv.includes('serve') && i >= 0 && argv[i + 1] === socket && isServeOf(pid, socket).alive) return pid;
  }
  return null;
}

export function vportStatus(def: VportDefinition, runDir: string): VportStatus {
  let state: RuntimeState | null;
  try {
    state = readState(runDir, def.uuid);
  } catch (err) {
    if (!(err instanceof CorruptStateError))
      return {
        status: 'unknown',
        reason: `${(err as Error).message}; fix its permissions, or remove it if no serve process runs for this vport`,
      };
    // No pid to trust: whether serve runs is decided by the processes that exist.
    const pid = findServeProcess(def.socket);
    if (pid !== null) {
      return {
        status: 'running',
        pid,
        state: {
          version: STATE_FORMAT_VERSION,
          uuid: def.uuid,
          pid,
          socket: def.socket,
          startedAt: '',
          log: logPath(runDir, def.uuid),
        },
      };
    }
    return { status: 'stale', pid: null, reason: `${err.message}; no serve process of ${def.socket} runs` };
  }
  if (!state) return { status: 'stopped', leftoverSocket: isSocketFile(def.socket) };
  const check = isServeOf(state.pid, state.socket);
  if (check.alive) return { status: 'running', pid: state.pid, state };
  return { status: 'stale', pid: state.pid, reason: check.reason };
}

export function describeStatus(status: VportStatus): string {
  switch (status.status) {
    case 'running':
      return `running (pid ${status.pid})`;
    case 'stopped':
      return status.leftoverSocket ? 'stopped (a socket file is left at the socket path)' : 'stopped';
    case 'stale':
      return `stale (${status.reason})`;
    case 'unknown':
      return `unknown (${status.reason})`;
  }
}

/** Removes what a dead serve left behind: the state file and, if nobody listens on it, the socket. */
async function cleanStale(def: VportDefinition, runDir: string, notes: string[]): Promise<void> {
  const status = vportStatus(def, runDir);
  if (status.status === 'running' || status.status === 'unknown') return;
  if (status.status === 'stale') {
    removeIfPresent(statePath(runDir, def.uuid));
    notes.push(`stale state of vport ${def.uuid} cleaned up: ${status.reason}`);
  }
  const probe = await probeUnixSocket(def.socket);
  if (probe.state === 'refused') {
    removeIfPresent(def.socket);
    notes.push(`stale socket ${def.socket} removed (nothing listened on it)`);
  }
}

// --- start -------------------------------------------------------------------------------

/** argv prefix that runs the npiv-hba CLI: this node binary + bin/npiv-hba.js. */
export function defaultServeCommand(): string[] {
  let root: string;
  try {
    root = packageRoot();
  } catch (err) {
    throw new VportError((err as Error).message);
  }
  return [process.execPath, join(root, 'bin', 'npiv-hba.js')];
}

export function serveArguments(def: VportDefinition): string[] {
  const args = ['serve', '--socket', def.socket, '--wwpn', formatWwn(def.wwpn), '--wwnn', formatWwn(def.wwnn)];
  if (def.backend.type === 'san') args.push('--san', def.backend.link);
  if (def.backend.type === 'host') args.push('--backend', `host:${def.backend.parent}`);
  if (def.model !== undefined) args.push('--model', def.model);
  for (const g of def.npiv ?? []) args.push('--npiv-wwpn', `${formatWwn(g.wwpn)}:${formatWwn(g.wwnn)}`);
  for (const { field, option } of ACCESS_OPTIONS) {
    const value = def[field];
    if (value !== undefined) args.push(option, value);
  }
  return args;
}

export interface StartOptions {
  /** argv prefix for the CLI (default: defaultServeCommand()); tests substitute a stand-in */
  serveCommand?: string[];
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
}

export interface StartResult {
  pid: number;
  /** things cleaned up or worth telling on the way (stale state, stale socket) */
  notes: string[];
}

function logTail(file: string): string {
  try {
    const text = readFileSync(file, 'utf8');
    const tail = text.length > LOG_TAIL_BYTES ? text.slice(-LOG_TAIL_BYTES) : text;
    return tail.trim();
  } catch {
    return '';
  }
}

/**
 * Starts `def` as a detached serve process and waits until it answers a vfio-user VERSION on its
 * socket. Refuses when it already runs, when another process serves its socket path, or when its
 * SAN link is unreachable; reports serve's own error if it exits first.
 */
export function startVport(def: VportDefinition, runDir: string, options: StartOptions = {}): Promise<StartResult> {
  return withLockFile(lockPath(runDir, def.uuid), `vport ${def.uuid}`, () => startUnlocked(def, runDir, options));
}

async function startUnlocked(def: VportDefinition, runDir: string, options: StartOptions): Promise<StartResult> {
  const notes: string[] = [];
  const current = vportStatus(def, runDir);
  if (current.status === 'running') throw new VportError(`vport ${def.uuid} is already running (pid ${current.pid})`);
  if (current.status === 'unknown') throw new VportError(current.reason);
  await cleanStale(def, runDir, notes);
  try {
    return await startClean(def, runDir, options, notes);
  } catch (err) {
    // What was cleaned up is worth telling even when the start then fails.
    if (notes.length === 0 || !(err instanceof VportError)) throw err;
    throw new VportError(`${notes.join('; ')}; then: ${err.message}`);
  }
}

async function startClean(
  def: VportDefinition,
  runDir: string,
  options: StartOptions,
  notes: string[],
): Promise<StartResult> {
  const own = await probeUnixSocket(def.socket);
  if (own.state === 'listening') {
    throw new VportError(
      `socket ${def.socket} of vport ${def.uuid} is served by a process npiv-hba did not start; stop it first`,
    );
  }
  if (own.state === 'not-a-socket')
    throw new VportError(`socket path ${def.socket} of vport ${def.uuid} exists and is not a socket`);

  // Only a san backend has a socket to probe. A host backend's parent is checked by serve itself
  // (resolveParent, NPIV capability, link Online) before its socket appears, and a refusal
  // there ends serve: startClean reports its exit status and log tail.
  if (def.backend.type === 'san') {
    const san = await probeUnixSocket(def.backend.link);
    if (san.state !== 'listening') {
      throw new VportError(
        `SAN unreachable for vport ${def.uuid}: link socket ${def.backend.link}: ${describeProbe(san)}`,
      );
    }
  }

  mkdirSync(runDir, { recursive: true, mode: 0o755 });
  // The socket's directory is serve's to create: privately (0700, 0750 with a socket group), and
  // it refuses one that other users could write to (docs/security.md).
  const log = logPath(runDir, def.uuid);
  const logFd = openSync(log, 'w', 0o644);
  const [command, ...prefix] = options.serveCommand ?? defaultServeCommand();
  if (!command) throw new VportError('empty serve command');
  let child: ChildProcess;
  try {
    child = spawn(command, [...prefix, ...serveArguments(def)], {
      detached: true, // own session: survives the CLI and the terminal that ran it
      stdio: ['ignore', logFd, logFd],
      env: options.env ?? process.env,
    });
  } finally {
    closeSync(logFd);
  }
  let exited: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  let spawnError: Error | null = null;
  child.on('exit', (code, signal) => (exited = { code, signal }));
  child.on('error', (err) => (spawnError = err));
  child.unref();
  await new Promise((resolve) => setImmediate(resolve));
  if (spawnError || child.pid === undefined) {
    throw new VportError(`could not run serve (${command}): ${(spawnError as Error | null)?.message ?? 'no pid'}`);
  }
  const pid = child.pid;
  writeRuntimeState(runDir, {
    version: STATE_FORMAT_VERSION,
    uuid: def.uuid,
    pid,
    socket: def.socket,
    startedAt: new Date().toISOString(),
    log,
  });

  const timeoutMs =
    options.timeoutMs ?? (def.backend.type === 'host' ? DEFAULT_HOST_START_TIMEOUT_MS : DEFAULT_START_TIMEOUT_MS);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (exited) break;
    let ready = false;
    try {
      ready = isSocketFile(def.socket) && (await probeVfioUserServer(def.socket));
    } catch (err) {
      child.kill('SIGKILL');
      removeIfPresent(statePath(runDir, def.uuid));
      throw new VportError(
        `vport ${def.uuid}: cannot check serve's socket ${def.socket} (killed serve, pid ${pid}): ${(err as Error).message}`,
      );
    }
    if (ready) return { pid, notes };
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      removeIfPresent(statePath(runDir, def.uuid));
      const tail = logTail(log);
      throw new VportError(
        `vport ${def.uuid}: serve (pid ${pid}) did not answer on ${def.socket} within ${timeoutMs} ms; killed it${tail ? `; its log:\n${tail}` : ''}`,
      );
    }
    await sleep(POLL_MS);
  }
  removeIfPresent(statePath(runDir, def.uuid));
  const how = exited as { code: number | null; signal: NodeJS.Signals | null };
  const tail = logTail(log);
  throw new VportError(
    `vport ${def.uuid}: serve exited (${how.signal ? `signal ${how.signal}` : `status ${how.code}`}) before answering on ${def.socket}` +
      (tail ? `; its output (${log}):\n${tail}` : `; it wrote nothing to ${log}`),
  );
}

// --- stop --------------------------------------------------------------------------------

export interface StopOptions {
  timeoutMs?: number;
}

export interface StopResult {
  /** how it ended: SIGTERM honoured, SIGKILL needed, or nothing was running (stale state cleaned) */
  outcome: 'terminated' | 'killed' | 'was-stale';
  notes: string[];
}

async function waitGone(pid: number, socket: string, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (!isServeOf(pid, socket).alive) return true;
    if (Date.now() > deadline) return false;
    await sleep(POLL_MS);
  }
}

/** SIGTERM, wait, SIGKILL after the timeout; removes the state file and a socket left behind. */
export function stopVport(def: VportDefinition, runDir: string, options: StopOptions = {}): Promise<StopResult> {
  return withLockFile(lockPath(runDir, def.uuid), `vport ${def.uuid}`, () => stopUnlocked(def, runDir, options));
}

async function stopUnlocked(def: VportDefinition, runDir: string, options: StopOptions): Promise<StopResult> {
  const status = vportStatus(def, runDir);
  const notes: string[] = [];
  if (status.status === 'unknown') throw new VportError(status.reason);
  if (status.status !== 'running') {
    await cleanStale(def, runDir, notes);
    if (notes.length === 0) throw new VportError(`vport ${def.uuid} is not running`);
    return { outcome: 'was-stale', notes };
  }
  const { pid, state } = status;
  let outcome: StopResult['outcome'] = 'terminated';
  try {
    process.kill(pid, 'SIGTERM');
  } catch (err) {
    if (errnoCode(err) !== 'ESRCH') throw err;
  }
  if (!(await waitGone(pid, state.socket, options.timeoutMs ?? DEFAULT_STOP_TIMEOUT_MS))) {
    outcome = 'killed';
    notes.push(
      `serve (pid ${pid}) ignored SIGTERM for ${options.timeoutMs ?? DEFAULT_STOP_TIMEOUT_MS} ms; sent SIGKILL`,
    );
    try {
      process.kill(pid, 'SIGKILL');
    } catch (err) {
      if (errnoCode(err) !== 'ESRCH') throw err;
    }
    if (!(await waitGone(pid, state.socket, KILL_WAIT_MS))) throw new VportError(`serve (pid ${pid}) survived SIGKILL`);
  }
  removeIfPresent(statePath(runDir, def.uuid));
  if (isSocketFile(state.socket)) {
    const probe = await probeUnixSocket(state.socket);
    if (probe.state === 'refused') {
      removeIfPresent(state.socket);
      notes.push(`removed the socket ${state.socket} serve left behind`);
    }
  }
  return { outcome, notes };
}

/** Removes a stopped vport's runtime leftovers (log file). */
export function forgetRuntime(runDir: string, uuid: string): void {
  removeIfPresent(logPath(runDir, uuid));
  removeIfPresent(statePath(runDir, uuid));
}
