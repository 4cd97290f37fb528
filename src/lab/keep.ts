/**
 * `npiv-hba lab --keep`: the same guest as runGuest boots, but with its serial console on the
 * user's terminal once the results are in. runGuest has no interactive mode, so this reads
 * QEMU's output itself, but builds the arguments (`qemuArguments`) and starts QEMU
 * (`launchQemu`) as runGuest does, with these differences: the serial port is `mon:stdio`
 * (Ctrl-A X quits, Ctrl-A C reaches the monitor), stdin is inherited so QEMU owns the terminal,
 * there is no script virtio console and no `timeout` guard (the interactive part has no
 * deadline). The guest writes its results to a second serial port backed by a file (the mux
 * can drop console output when its reader lags; a file cannot); when the console shows
 * KEEP_CONSOLE_MARKER the file is complete, `onResults` prints the report, and from then on the
 * console is passed through to stdout. Before that, console output is only collected.
 */
import { appendFile, copyFile, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  GUEST_TAG,
  buildOverlayArchive,
  chooseAccelerator,
  guestEnvironment,
  qemuArguments,
  shellQuote,
  type Accelerator,
} from '../harness/guest.js';
import { isKernelProblem } from '../harness/kernel-problems.js';
import { launchQemu } from '../harness/qemu-process.js';
import { KEEP_CONSOLE_MARKER } from './guest-script.js';

const MAX_OUTPUT_CHARS = 16 * 1024 * 1024;
/** The results file's last line (src/lab/guest-script.ts). */
const SHELL_LINE = `${GUEST_TAG}LAB SHELL`;
/** The results reach the file before the marker reaches the console; allow for a slow flush. */
const RESULTS_WAIT_MS = 5_000;
const RESULTS_POLL_MS = 100;
/** How often the results file is read for progress lines (LAB PHASE) while the guest works. */
const PROGRESS_POLL_MS = 500;
const EXIT_LINE = /^GUEST:EXIT=(\d+)\s*$/;

export interface InteractiveGuestOptions {
  devices: readonly string[];
  script: string;
  /** Deadline for reaching the shell; the interactive part has none. */
  timeoutMs: number;
  /** Directory for the initrd (the lab's work dir). */
  workDir: string;
  logFile: string;
  /** Extra guest kernel command-line words. */
  kernelArgs?: readonly string[];
  cacheDir?: string;
  accel?: Accelerator;
  signal?: AbortSignal;
  onLine?: (line: string) => void;
  /** Called once with the GUEST: lines (console and results, tag removed) when the guest reaches its shell. */
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

export async function runInteractiveGuest(options: InteractiveGuestOptions): Promise<InteractiveGuestResult> {
  const environment = guestEnvironment(options.cacheDir);
  const accel = options.accel ?? chooseAccelerator();
  const initrd = join(options.workDir, 'initrd-keep.cpio');
  const resultsFile = join(options.workDir, 'guest-results.log');
  // QEMU's option syntax treats a comma as a separator.
  if (resultsFile.includes(','))
    throw new Error(`work dir ${options.workDir} contains a comma, which QEMU's -serial file: cannot take`);
  await writeFile(resultsFile, '');
  await copyFile(environment.initramfs, initrd);
  await appendFile(initrd, buildOverlayArchive(options.script, []));
  const args = qemuArguments(
    environment,
    initrd,
    { devices: options.devices, kernelArgs: options.kernelArgs ?? [] },
    accel,
    {
      consoleMonitor: true,
      resultsSerialFile: resultsFile,
    },
  );
  const terminal = options.console ?? process.stdout;
  const qemu = launchQemu(environment, {
    args,
    timeoutMs: options.timeoutMs,
    processGuard: false,
    stdin: 'inherit',
    maxStderrChars: MAX_OUTPUT_CHARS,
    ...(options.signal ? { signal: options.signal } : {}),
  });
  const { child, command } = qemu;

  const result = await new Promise<InteractiveGuestResult>((resolve, reject) => {
    const lines: string[] = [];
    const guestLines: string[] = [];
    const kernelProblems: string[] = [];
    let kept = 0;
    let partial = '';
    let reachedShell = false;
    let passThrough = false;

    // Progress: hand the results file's new lines to onLine as they arrive.
    let progressOffset = 0;
    let progressPartial = '';
    const progressTimer = setInterval(() => {
      void readFile(resultsFile)
        .then((data) => {
          if (data.length <= progressOffset) return;
          const pieces = (progressPartial + data.subarray(progressOffset).toString('utf8')).split('\n');
          progressOffset = data.length;
          progressPartial = pieces.pop() ?? '';
          for (const piece of pieces) options.onLine?.(piece.replace(/\r$/, ''));
        })
        .catch(() => undefined);
    }, PROGRESS_POLL_MS);

    const take = (raw: string): void => {
      const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
      if (kept + line.length > MAX_OUTPUT_CHARS) return;
      kept += line.length + 1;
      lines.push(line);
      if (line.startsWith(GUEST_TAG)) guestLines.push(line.slice(GUEST_TAG.length));
      else if (isKernelProblem(line)) kernelProblems.push(line);
      options.onLine?.(line);
    };

    /** The guest's results: the file's GUEST: lines once it ends with LAB SHELL (null: not yet). */
    const readResults = async (): Promise<string[] | null> => {
      const deadline = Date.now() + RESULTS_WAIT_MS;
      for (;;) {
        const text = await readFile(resultsFile, 'utf8').catch(() => '');
        const lines = text.split('\n').map((l) => l.replace(/\r$/, ''));
        if (lines.includes(SHELL_LINE))
          return lines.filter((l) => l.startsWith(GUEST_TAG)).map((l) => l.slice(GUEST_TAG.length));
        if (Date.now() > deadline) return null;
        await new Promise((r) => setTimeout(r, RESULTS_POLL_MS));
      }
    };

    child.stdout.on('data', (chunk: Buffer) => {
      if (passThrough) {
        terminal.write(chunk);
        return;
      }
      const pieces = (partial + chunk.toString('utf8')).split('\n');
      partial = pieces.pop() ?? '';
      for (let i = 0; i < pieces.length; i++) {
        const piece = pieces[i]!;
        take(piece);
        if (piece.replace(/\r$/, '') === KEEP_CONSOLE_MARKER && !reachedShell) {
          reachedShell = true;
          qemu.clearDeadline();
          clearInterval(progressTimer);
          const rest = pieces.slice(i + 1).join('\n') + (i + 1 < pieces.length ? '\n' : '') + partial;
          partial = '';
          child.stdout.pause();
          void readResults()
            .then(async (results) => {
              // Without complete results the report shows what is missing (and fails).
              await options.onResults([...guestLines, ...(results ?? [])], [...kernelProblems]);
            })
            .catch(() => undefined)
            .finally(() => {
              passThrough = true;
              if (rest !== '') terminal.write(rest);
              child.stdout.resume();
            });
          return;
        }
      }
    });
    qemu.exited.then(
      ({ code, timedOut, aborted, stderr }) => {
        clearInterval(progressTimer);
        if (partial !== '' && !passThrough) take(partial);
        let exitStatus: number | null = null;
        for (const line of lines) {
          const m = EXIT_LINE.exec(line);
          if (m?.[1] !== undefined) exitStatus = Number(m[1]);
        }
        resolve({
          reachedShell,
          guestLines,
          kernelProblems,
          exitStatus,
          timedOut,
          aborted,
          qemuExitCode: code,
          qemuStderr: stderr,
          output: lines.join('\n'),
          accel,
        });
      },
      (error: unknown) => {
        clearInterval(progressTimer);
        reject(error);
      },
    );
  });
  await rm(initrd, { force: true });
  const results = await readFile(resultsFile, 'utf8').catch(() => '');
  await rm(resultsFile, { force: true });
  await writeFile(
    options.logFile,
    [
      `# command: ${command.map((a) => shellQuote(a)).join(' ')}`,
      '# ---- console (up to the shell; the rest went to the terminal) ----',
      result.output,
      '# ---- results (second serial port) ----',
      results,
      '# ---- qemu stderr ----',
      result.qemuStderr,
    ].join('\n'),
  );
  return result;
}
