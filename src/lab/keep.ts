/**
 * `npiv-hba lab --keep`: the same guest as runGuest boots, but with its serial console on the
 * user's terminal once the results are in. runGuest has no interactive mode, so this runs QEMU
 * itself, with the argument list from src/harness/guest.ts (`qemuArguments`, through the
 * rootfs's loader exactly as runGuest does) and the serial port switched from `stdio` to
 * `mon:stdio` (Ctrl-A X quits, Ctrl-A C reaches the monitor); stdin is inherited so QEMU owns
 * the terminal. Until the guest prints `LAB SHELL` its output is only collected (like runGuest);
 * then `onResults` prints the report and the console is passed through to stdout.
 */
import { spawn } from 'node:child_process';
import { appendFile, copyFile, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import {
  GUEST_TAG,
  buildOverlayArchive,
  chooseAccelerator,
  guestEnvironment,
  qemuArguments,
  shellQuote,
  type Accelerator,
} from '../harness/guest.js';

const KILL_GRACE_MS = 2_000;
const MAX_OUTPUT_CHARS = 16 * 1024 * 1024;
/** The line after which the guest's shell owns the console (src/lab/guest-script.ts). */
const SHELL_LINE = `${GUEST_TAG}LAB SHELL`;
const EXIT_LINE = /^GUEST:EXIT=(\d+)\s*$/;
/** A subset of runGuest's kernel-problem patterns (the console carries KERN_WARNING and worse). */
const KERNEL_PROBLEM = /Kernel panic|BUG: |Oops|WARNING: |general protection fault|kernel BUG at/;

export interface InteractiveGuestOptions {
  devices: readonly string[];
  script: string;
  /** Deadline for reaching the shell; the interactive part has none. */
  timeoutMs: number;
  /** Directory for the initrd (the lab's work dir). */
  workDir: string;
  logFile: string;
  cacheDir?: string;
  accel?: Accelerator;
  signal?: AbortSignal;
  onLine?: (line: string) => void;
  /** Called once with the GUEST: lines (tag removed) when the guest reaches its shell. */
  onResults: (guestLines: string[], kernelProblems: string[]) => Promise<void> | void;
  /** Where the console goes after the results (default process.stdout). */
  console?: NodeJS.WritableStream;
}

export interface InteractiveGuestResult {
  reachedShell: boolean;
  guestLines: string[];
  kernelProblems: string[];
  exitStatus: number | null;
  timedOut: boolean;
  aborted: boolean;
  qemuExitCode: number | null;
  qemuStderr: string;
  /** The serial log up to the shell (what followed went to the terminal). */
  output: string;
  accel: Accelerator;
}

/** runGuest's QEMU arguments with the serial port multiplexed with the monitor on stdio. */
export function interactiveQemuArguments(args: readonly string[]): string[] {
  const out = [...args];
  const at = out.findIndex((arg, i) => arg === '-serial' && out[i + 1] === 'stdio');
  if (at < 0) throw new Error('qemuArguments no longer has `-serial stdio`: src/lab/keep.ts needs updating');
  out[at + 1] = 'mon:stdio';
  return out;
}

export async function runInteractiveGuest(options: InteractiveGuestOptions): Promise<InteractiveGuestResult> {
  const environment = guestEnvironment(options.cacheDir);
  const accel = options.accel ?? chooseAccelerator();
  const initrd = join(options.workDir, 'initrd-keep.cpio');
  await copyFile(environment.initramfs, initrd);
  await appendFile(initrd, buildOverlayArchive(options.script, []));
  const args = interactiveQemuArguments(qemuArguments(environment, initrd, { devices: options.devices }, accel));
  const command = [environment.loader, '--library-path', environment.libraryDir, '--argv0', basename(environment.qemuBinary), environment.qemuBinary, ...args];
  const output = options.console ?? process.stdout;

  const result = await new Promise<InteractiveGuestResult>((resolve, reject) => {
    const [program, ...programArgs] = command as [string, ...string[]];
    const child = spawn(program, programArgs, {
      stdio: ['inherit', 'pipe', 'pipe'],
      env: { ...process.env, QEMU_MODULE_DIR: environment.qemuModuleDir },
      cwd: dirname(environment.kernel),
    });
    const lines: string[] = [];
    const guestLines: string[] = [];
    const kernelProblems: string[] = [];
    let kept = 0;
    let partial = '';
    let stderr = '';
    let reachedShell = false;
    let passThrough = false;
    let timedOut = false;
    let aborted = false;
    let killTimer: NodeJS.Timeout | undefined;

    const kill = (): void => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      killTimer = setTimeout(() => child.kill('SIGKILL'), KILL_GRACE_MS);
    };
    const timer = setTimeout(() => {
      timedOut = true;
      kill();
    }, options.timeoutMs);
    const onAbort = (): void => {
      aborted = true;
      kill();
    };
    if (options.signal?.aborted) onAbort();
    options.signal?.addEventListener('abort', onAbort, { once: true });

    const take = (raw: string): void => {
      const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
      if (kept + line.length > MAX_OUTPUT_CHARS) return;
      kept += line.length + 1;
      lines.push(line);
      if (line.startsWith(GUEST_TAG)) guestLines.push(line.slice(GUEST_TAG.length));
      else if (KERNEL_PROBLEM.test(line)) kernelProblems.push(line);
      options.onLine?.(line);
    };

    child.stdout.on('data', (chunk: Buffer) => {
      if (passThrough) {
        output.write(chunk);
        return;
      }
      const pieces = (partial + chunk.toString('utf8')).split('\n');
      partial = pieces.pop() ?? '';
      for (let i = 0; i < pieces.length; i++) {
        const piece = pieces[i]!;
        take(piece);
        if (piece.replace(/\r$/, '') === SHELL_LINE && !reachedShell) {
          reachedShell = true;
          clearTimeout(timer);
          const rest = pieces.slice(i + 1).join('\n') + (i + 1 < pieces.length ? '\n' : '') + partial;
          partial = '';
          child.stdout.pause();
          void Promise.resolve(options.onResults([...guestLines], [...kernelProblems]))
            .catch(() => undefined)
            .finally(() => {
              passThrough = true;
              if (rest !== '') output.write(rest);
              child.stdout.resume();
            });
          return;
        }
      }
    });
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk: string) => {
      if (stderr.length < MAX_OUTPUT_CHARS) stderr += chunk;
    });
    child.on('error', (error) => {
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
      reject(new Error(`could not start QEMU: ${error.message}`));
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      if (killTimer) clearTimeout(killTimer);
      options.signal?.removeEventListener('abort', onAbort);
      if (partial !== '' && !passThrough) take(partial);
      let exitStatus: number | null = null;
      for (const line of lines) {
        const m = EXIT_LINE.exec(line);
        if (m?.[1] !== undefined) exitStatus = Number(m[1]);
      }
      resolve({ reachedShell, guestLines, kernelProblems, exitStatus, timedOut, aborted, qemuExitCode: code, qemuStderr: stderr, output: lines.join('\n'), accel });
    });
  });
  await writeFile(
    options.logFile,
    [`# command: ${command.map((a) => shellQuote(a)).join(' ')}`, '# ---- serial log (up to LAB SHELL; the rest went to the terminal) ----', result.output, '# ---- qemu stderr ----', result.qemuStderr].join('\n'),
  );
  return result;
}
