/**
 * Starting the rootfs's QEMU: the one place that builds the command line around QEMU's own
 * arguments (the rootfs's dynamic loader and library path, optionally under coreutils `timeout`)
 * and owns the process's deadline, abort and SIGTERM-then-SIGKILL. runGuest (batch runs) and
 * `lab --keep` (interactive) both launch through it, so a fix to either reaches both.
 */
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { basename, dirname } from 'node:path';
import type { Readable, Writable } from 'node:stream';

const KILL_GRACE_MS = 2_000;
const PROCESS_GUARD_EXTRA_SECONDS = 15;
const PROCESS_GUARD_KILL_AFTER_SECONDS = 5;

/** What the launcher needs of the guest environment (src/harness/guest.ts GuestEnvironment). */
export interface QemuInstallation {
  /** The rootfs's dynamic loader and library directory: QEMU runs through them. */
  loader: string;
  libraryDir: string;
  qemuBinary: string;
  qemuModuleDir: string;
  /** QEMU runs in this file's directory. */
  kernel: string;
}

export interface QemuLaunchOptions {
  /** QEMU's arguments (src/harness/guest.ts qemuArguments). */
  args: readonly string[];
  /** Deadline: QEMU gets SIGTERM, then SIGKILL, when it expires (see clearDeadline). */
  timeoutMs: number;
  /**
   * Also run QEMU under coreutils `timeout` a little past the deadline, so it dies even if this
   * Node process does (a killed test worker). Off for an interactive QEMU: `timeout` moves it
   * out of the terminal's foreground process group, and the interactive part has no deadline.
   */
  processGuard: boolean;
  /** 'inherit' hands the terminal to QEMU (interactive); 'ignore' otherwise. */
  stdin: 'ignore' | 'inherit';
  /** QEMU's stderr kept in memory; the rest is dropped. */
  maxStderrChars: number;
  /** Aborting kills QEMU like the deadline does. */
  signal?: AbortSignal;
}

export interface QemuExit {
  /** QEMU's exit code; null when it was killed by a signal. */
  code: number | null;
  signal: NodeJS.Signals | null;
  /** True when the deadline killed QEMU. */
  timedOut: boolean;
  aborted: boolean;
  stderr: string;
}

export interface QemuProcess {
  /** stdout carries the serial console; stderr is collected into QemuExit.stderr. */
  readonly child: ChildProcessByStdio<Writable | null, Readable, Readable>;
  /** The command that runs (guard, loader, binary and arguments), for logs and failure messages. */
  readonly command: string[];
  /** Stops the deadline; an abort still kills QEMU. */
  clearDeadline(): void;
  /**
   * Resolves once QEMU has exited and its output streams are closed (so every chunk was
   * delivered), after the deadline and abort listener are released; rejects if QEMU could not
   * be started.
   */
  readonly exited: Promise<QemuExit>;
}

/** The command line that runs QEMU from the rootfs, optionally under a `timeout` guard. */
export function qemuCommand(installation: QemuInstallation, args: readonly string[], guardSeconds?: number): string[] {
  const guard =
    guardSeconds === undefined
      ? []
      : ['timeout', `--kill-after=${PROCESS_GUARD_KILL_AFTER_SECONDS}`, String(guardSeconds)];
  return [
    ...guard,
    installation.loader,
    '--library-path',
    installation.libraryDir,
    '--argv0',
    basename(installation.qemuBinary),
    installation.qemuBinary,
    ...args,
  ];
}

/** Starts QEMU; see QemuProcess. Throws only for what spawn() itself throws synchronously. */
export function launchQemu(installation: QemuInstallation, options: QemuLaunchOptions): QemuProcess {
  const guardSeconds = options.processGuard
    ? Math.ceil(options.timeoutMs / 1000) + PROCESS_GUARD_EXTRA_SECONDS
    : undefined;
  const command = qemuCommand(installation, options.args, guardSeconds);
  const [program, ...programArgs] = command as [string, ...string[]];
  const child = spawn(program, programArgs, {
    stdio: [options.stdin, 'pipe', 'pipe'],
    env: { ...process.env, QEMU_MODULE_DIR: installation.qemuModuleDir },
    cwd: dirname(installation.kernel),
  });

  let stderr = '';
  let timedOut = false;
  let aborted = false;
  let killTimer: NodeJS.Timeout | undefined;
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk: string) => {
    if (stderr.length < options.maxStderrChars) stderr += chunk;
  });

  const kill = (): void => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    killTimer = setTimeout(() => child.kill('SIGKILL'), KILL_GRACE_MS);
  };
  const deadline = setTimeout(() => {
    timedOut = true;
    kill();
  }, options.timeoutMs);
  const onAbort = (): void => {
    aborted = true;
    kill();
  };
  if (options.signal?.aborted) onAbort();
  options.signal?.addEventListener('abort', onAbort, { once: true });
  const release = (): void => {
    clearTimeout(deadline);
    if (killTimer) clearTimeout(killTimer);
    options.signal?.removeEventListener('abort', onAbort);
  };

  const exited = new Promise<QemuExit>((resolve, reject) => {
    child.on('error', (error) => {
      release();
      reject(new Error(`could not start QEMU (${command.slice(0, 8).join(' ')}): ${error.message}`));
    });
    child.on('close', (code, signal) => {
      release();
      resolve({ code, signal, timedOut, aborted, stderr });
    });
  });
  return { child, command, clearDeadline: () => clearTimeout(deadline), exited };
}
