/**
 * Starting the project's own processes for real-guest tests: `npiv-hba serve` (one vport HBA) and,
 * later, `npiv-hba san`, each as a child process of the test, exactly as a user runs them.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../../../src/util/package-root.js';

export const PROJECT_ROOT = packageRoot();
const CLI = join(PROJECT_ROOT, 'bin', 'npiv-hba.js');

export interface ProjectProcess {
  child: ChildProcess;
  /** Everything the process wrote to stderr (its pino log) so far. */
  log(): string;
  /** SIGTERM, then wait for exit; resolves with the exit code (null if killed by a signal). */
  stop(): Promise<number | null>;
}

export function startCli(args: readonly string[], env: Record<string, string> = {}): ProjectProcess {
  const child = spawn(process.execPath, [CLI, ...args], {
    cwd: PROJECT_ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, NPIV_HBA_LOG_LEVEL: 'debug', ...env },
  });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => {
    if (stderr.length < 32 * 1024 * 1024) stderr += d.toString();
  });
  child.stdout!.resume();
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return {
    child,
    log: () => stderr,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}

/** Waits until `path` exists (a socket the process creates) or the process dies or time runs out. */
export async function waitForPath(path: string, proc: ProjectProcess, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!existsSync(path)) {
    if (proc.child.exitCode !== null)
      throw new Error(`process exited (${proc.child.exitCode}) before creating ${path}:\n${proc.log()}`);
    if (Date.now() > deadline) throw new Error(`${path} did not appear within ${timeoutMs} ms:\n${proc.log()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Parses pino JSON lines from a log, skipping anything else. */
export function logRecords(log: string): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  for (const line of log.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      out.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      /* a partial line at the end of the buffer */
    }
  }
  return out;
}
