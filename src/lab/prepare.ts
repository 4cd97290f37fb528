/**
 * Preparation for the lab: makes sure the guest environment (QEMU 11, the Debian guest kernel
 * with qla2xxx, the busybox initramfs; see src/harness/guest.ts) exists, building it with
 * scripts/guest/prepare.sh as a child process when it does not. The script's own progress lines
 * ("[guest-prepare] ...") feed the progress display; its whole output goes to a log file.
 */
import { spawn } from 'node:child_process';
import { createWriteStream, existsSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { guestEnvironment, haveGuestEnvironment } from '../harness/guest.js';
import type { LabReporter } from './progress.js';

const PREPARE_PREFIX = '[guest-prepare] ';
const KILL_GRACE_MS = 5_000;
const OUTPUT_TAIL_LINES = 20;

export interface PrepareOptions {
  projectRoot: string;
  logFile: string;
  timeoutMs: number;
  cacheDir?: string;
  signal?: AbortSignal;
  /** For tests: the effective user id and PATH to check. */
  uid?: number;
  path?: string;
}

function onPath(program: string, path: string): boolean {
  return path.split(delimiter).some((dir) => dir !== '' && existsSync(join(dir, program)));
}

/** Why the environment cannot be built here, or null when it can. */
export function prepareBlocker(uid: number, path: string): string | null {
  if (uid !== 0) {
    return 'the guest environment is not built yet and building it needs root: run `sudo bash scripts/guest/prepare.sh` once (or run npiv-hba lab as root)';
  }
  if (!onPath('apt-get', path) || !onPath('dpkg-query', path)) {
    return 'the guest environment is not built yet and building it needs a Debian host with apt (apt-get, dpkg-query not found on PATH)';
  }
  return null;
}

/** Returns true when it had to build the environment. Throws with a clear message on failure. */
export async function ensureGuestEnvironment(options: PrepareOptions, reporter: LabReporter): Promise<boolean> {
  if (haveGuestEnvironment(options.cacheDir)) return false;
  const blocker = prepareBlocker(options.uid ?? process.getuid?.() ?? -1, options.path ?? process.env.PATH ?? '');
  if (blocker) throw new Error(blocker);
  const script = join(options.projectRoot, 'scripts', 'guest', 'prepare.sh');
  if (!existsSync(script)) throw new Error(`${script} is missing: the lab needs the project's scripts/ directory`);
  reporter.detail('building the guest environment (first run: downloads ~350 MB, a few minutes)');

  const log = createWriteStream(options.logFile, { flags: 'a' });
  const tail: string[] = [];
  const status = await new Promise<{
    code: number | null;
    signal: NodeJS.Signals | null;
    timedOut: boolean;
    error?: Error;
  }>((resolve) => {
    const env: NodeJS.ProcessEnv = { ...process.env };
    if (options.cacheDir !== undefined) env.NPIV_HBA_CACHE = options.cacheDir;
    const child = spawn('bash', [script], { cwd: options.projectRoot, stdio: ['ignore', 'pipe', 'pipe'], env });
    let timedOut = false;
    let killTimer: NodeJS.Timeout | undefined;
    const kill = (): void => {
      child.kill('SIGTERM');
      killTimer = setTimeout(() => child.kill('SIGKILL'), KILL_GRACE_MS);
    };
    const timer = setTimeout(() => {
      timedOut = true;
      kill();
    }, options.timeoutMs);
    const onAbort = (): void => kill();
    options.signal?.addEventListener('abort', onAbort, { once: true });
    const take = (stream: NodeJS.ReadableStream): void => {
      let partial = '';
      stream.setEncoding('utf8');
      stream.on('data', (chunk: string) => {
        log.write(chunk);
        const lines = (partial + chunk).split('\n');
        partial = lines.pop() ?? '';
        for (const line of lines) {
          tail.push(line);
          if (tail.length > OUTPUT_TAIL_LINES) tail.shift();
          if (line.startsWith(PREPARE_PREFIX)) reporter.detail(line.slice(PREPARE_PREFIX.length));
        }
      });
    };
    take(child.stdout);
    take(child.stderr);
    child.on('error', (error) => {
      clearTimeout(timer);
      resolve({ code: null, signal: null, timedOut, error });
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (killTimer) clearTimeout(killTimer);
      options.signal?.removeEventListener('abort', onAbort);
      resolve({ code, signal, timedOut });
    });
  });
  await new Promise<void>((resolve) => log.end(() => resolve()));
  if (status.error) throw new Error(`could not run ${script}: ${status.error.message}`);
  if (options.signal?.aborted) throw new Error('interrupted while building the guest environment');
  if (status.timedOut)
    throw new Error(
      `building the guest environment took longer than ${options.timeoutMs / 1000} s; log ${options.logFile}`,
    );
  if (status.code !== 0) {
    throw new Error(
      `building the guest environment failed (prepare.sh exit ${status.code ?? status.signal}); log ${options.logFile}:\n${tail.join('\n')}`,
    );
  }
  guestEnvironment(options.cacheDir); // throws with prepare.sh's hint if it is still incomplete
  return true;
}
