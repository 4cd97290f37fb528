/**
 * Scaffolding for the tests that drive the built CLI (bin/npiv-hba.js → dist/) as child
 * processes: the paths, the pcap and FC-2 offsets their capture checks read, a check that dist/
 * exists before any test runs (the unit project's global setup, test/support/build-dist.ts,
 * rebuilds it when src/ is newer), starting a CLI process with its output captured, waiting for a
 * state with a bound, a stale socket file, and a per-test sandbox (a fresh temporary directory,
 * and every process started through it SIGKILLed after the test if it is still running).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, lstatSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, beforeEach, expect } from 'vitest';
import { native } from '../../../src/native/index.js';
import { packageRoot } from '../../../src/util/package-root.js';

export const REPO = packageRoot();
export const CLI = join(REPO, 'bin', 'npiv-hba.js');
export const BUILT = join(REPO, 'dist', 'src', 'cli.js');
/** Upper bound for a child process to reach a state; not a speed goal. */
export const WAIT_MS = 20_000;

/** pcap classic format (see src/fc/pcap.ts): 24-byte global header, 16-byte record headers. */
export const PCAP = { MAGIC_USEC: 0xa1b2c3d4, GLOBAL_HEADER: 24, RECORD_HEADER: 16 } as const;
/** FC-2 frame header (FC-FS-3): R_CTL at 0, D_ID at 1..3, payload after HEADER bytes; and the FLOGI to the F_Port a capture starts with. */
export const FC2 = { HEADER: 24, R_CTL_ELS_REQUEST: 0x22, FABRIC_F_PORT_ID: 0xfffffe, ELS_FLOGI: 0x04 } as const;

export interface CliProcess {
  proc: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** exit code, or the name of the signal that killed it */
  exit: Promise<number | string>;
}

export interface CliResult {
  code: number | string;
  stdout: string;
  stderr: string;
}

/** The built CLI with `args`, logging at `logLevel` (NPIV_HBA_LOG_LEVEL). */
export function startCli(args: string[], logLevel = 'warn'): CliProcess {
  const proc = spawn(process.execPath, [CLI, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, NPIV_HBA_LOG_LEVEL: logLevel },
  });
  let out = '';
  let err = '';
  proc.stdout!.setEncoding('utf8').on('data', (t: string) => (out += t));
  proc.stderr!.setEncoding('utf8').on('data', (t: string) => (err += t));
  const exit = new Promise<number | string>((done) =>
    proc.once('close', (code, signal) => done(code ?? signal ?? 'unknown')),
  );
  return { proc, stdout: () => out, stderr: () => err, exit };
}

/** The built CLI with `args`, to its exit. */
export async function runCli(args: string[], logLevel = 'warn'): Promise<CliResult> {
  const p = startCli(args, logLevel);
  const code = await p.exit;
  return { code, stdout: p.stdout(), stderr: p.stderr() };
}

/** Waits until `cond` holds, at most WAIT_MS; fails at once if `p` exits meanwhile. */
export async function waitFor(cond: () => boolean, what: string, p?: CliProcess): Promise<void> {
  const deadline = Date.now() + WAIT_MS;
  while (!cond()) {
    if (p && p.proc.exitCode !== null)
      throw new Error(`${what}: the process exited (${p.proc.exitCode}): ${p.stderr()}`);
    if (Date.now() > deadline)
      throw new Error(`${what}: not within ${WAIT_MS} ms${p ? `; stderr: ${p.stderr()}` : ''}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A socket file nobody listens on, as a killed server leaves behind. */
export function staleSocket(path: string): void {
  native.close(native.unixListen(path, 1));
  expect(lstatSync(path).isSocket()).toBe(true);
}

/** Fails the tests of the calling file up front when the CLI is not built. */
export function requireBuiltCli(): void {
  beforeAll(() => {
    if (!existsSync(BUILT))
      throw new Error(`${BUILT} is missing: build the CLI first (npm run build, or npm run build:ts)`);
  });
}

export interface CliSandbox {
  /** this test's temporary directory */
  readonly dir: string;
  /** startCli(), the process SIGKILLed after the test if it still runs */
  start(args: string[]): CliProcess;
  /** runCli() */
  run(args: string[]): Promise<CliResult>;
}

/**
 * Registers, for the tests of the calling file or describe block: the built-CLI check, a fresh
 * temporary directory per test (`prefix`: keep it short, Unix socket paths must fit in 107
 * bytes) removed afterwards, and the clean-up of the processes started through the sandbox.
 */
export function cliSandbox(prefix: string, logLevel = 'warn'): CliSandbox {
  let dir: string | undefined;
  const children: CliProcess[] = [];
  requireBuiltCli();
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), prefix));
  });
  afterEach(() => {
    for (const c of children.splice(0))
      if (c.proc.exitCode === null && c.proc.signalCode === null) c.proc.kill('SIGKILL');
    if (dir) rmSync(dir, { recursive: true, force: true });
    dir = undefined;
  });
  return {
    get dir(): string {
      if (dir === undefined) throw new Error('the sandbox directory exists only while a test runs');
      return dir;
    },
    start(args) {
      const p = startCli(args, logLevel);
      children.push(p);
      return p;
    },
    run(args) {
      return runCli(args, logLevel);
    },
  };
}
