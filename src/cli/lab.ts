/**
 * `npiv-hba lab`: the one-command lab. Prepares the guest environment if needed, starts the
 * simulated SAN from the embedded example (or --config), one vport HBA per --vports/--wwpn, and a
 * QEMU guest running the stock qla2xxx; prints a report of what the guest sees (fabric logins,
 * targets, LUNs, a verified fio run) and shuts everything down. See docs/lab.md.
 *
 *   npiv-hba lab [--config FILE] [--vports N] [--wwpn W]... [--keep] [--json] [--work-dir DIR]
 *   npiv-hba lab --backend host [--wwpn VM] [--io-size MiB] [--json] [--work-dir DIR]
 *
 * `--backend host` runs the two-level lab instead (src/lab/host-lab.ts): the host NPIV backend
 * inside a level-1 guest, with a VM (the guest model) on it.
 *
 * Progress goes to stderr, the report (or --json) to stdout. Exit status 0 only when every vport
 * logged in, saw at least one LUN and its verified I/O had no errors.
 */
import type { Command } from 'commander';
import { LabUsageError, parseVportCount } from '../lab/config.js';
import {
  formatHostLabReport,
  type HostLabOptions,
  type HostLabReport,
  hostLabNames,
  runHostLab,
} from '../lab/host-lab.js';
import { LabStepError, runLab, type LabOptions } from '../lab/lab.js';
import { ProgressDisplay, silentReporter } from '../lab/progress.js';
import { formatLabReport, labReportJson, type LabReport } from '../lab/report.js';
import { parseDuration } from '../util/duration.js';

export interface LabCliOptions {
  config?: string;
  vports?: string;
  wwpn?: string[];
  keep?: boolean;
  json?: boolean;
  workDir?: string;
  ioSize?: string;
  timeout?: string;
  quiet?: boolean;
  backend?: string;
}

/** `--backend`: the default lab (`san`, the guest's qla2xxx on the simulated SAN) or the two-level host-backend lab. */
export type LabBackend = 'san' | 'host';

export function parseLabBackend(text: string | undefined): LabBackend {
  if (text === undefined || text === 'san') return 'san';
  if (text === 'host') return 'host';
  throw new LabUsageError(
    `invalid --backend '${text}': expected san (default) or host (the two-level host NPIV backend lab)`,
  );
}

/** Options of the default lab that the two-level lab has no use for: refused, not ignored. */
const NOT_WITH_HOST: { key: keyof LabCliOptions; option: string; why: string }[] = [
  { key: 'config', option: '--config', why: 'the two-level lab runs its own SAN configuration' },
  { key: 'vports', option: '--vports', why: 'the two-level lab has one level-1 HBA and one VM' },
  { key: 'keep', option: '--keep', why: 'level 1 has no console session to keep' },
];

/** `lab --backend host` command-line options → runHostLab options; usage errors before anything starts. */
export function hostLabOptionsFromCli(opts: LabCliOptions): HostLabOptions {
  for (const { key, option, why } of NOT_WITH_HOST) {
    const value = opts[key];
    if (value !== undefined && value !== false)
      throw new LabUsageError(`${option} cannot be used with --backend host: ${why}`);
  }
  const options: HostLabOptions = {};
  if (opts.wwpn !== undefined && opts.wwpn.length > 1)
    throw new LabUsageError("--backend host takes one --wwpn: the VM's WWPN");
  if (opts.wwpn !== undefined && opts.wwpn.length === 1) options.wwpn = opts.wwpn[0]!;
  if (opts.workDir !== undefined) options.workDir = opts.workDir;
  if (opts.ioSize !== undefined) options.ioMiB = positiveInteger(opts.ioSize, '--io-size', 64);
  if (opts.timeout !== undefined) options.guestTimeoutMs = guestTimeout(opts.timeout);
  // Checked now, as runHostLab checks them: a bad VM WWPN is refused before anything starts.
  hostLabNames(options.wwpn);
  return options;
}

/** --timeout: a duration (seconds, or with a unit), at least one second, at most a day. */
function guestTimeout(text: string): number {
  let ms: number;
  try {
    ms = parseDuration(text, '--timeout');
  } catch (err) {
    throw new LabUsageError((err as Error).message);
  }
  if (ms < 1000) throw new LabUsageError(`invalid --timeout '${text}': at least 1s`);
  return ms;
}

function positiveInteger(text: string, option: string, max: number): number {
  if (!/^\s*\d+\s*$/.test(text) || Number(text) < 1 || Number(text) > max) {
    throw new LabUsageError(`invalid ${option} '${text}': expected a whole number from 1 to ${max}`);
  }
  return Number(text);
}

/** Command-line options → runLab options; usage errors (LabUsageError) before anything starts. */
export function labOptionsFromCli(opts: LabCliOptions): LabOptions {
  const options: LabOptions = {};
  if (opts.config !== undefined) options.configFile = opts.config;
  if (opts.vports !== undefined) options.vports = parseVportCount(opts.vports);
  if (opts.wwpn !== undefined && opts.wwpn.length > 0) options.wwpns = opts.wwpn;
  if (opts.keep) options.keep = true;
  if (opts.workDir !== undefined) options.workDir = opts.workDir;
  if (opts.ioSize !== undefined) options.ioMiB = positiveInteger(opts.ioSize, '--io-size', 4096);
  if (opts.timeout !== undefined) options.guestTimeoutMs = guestTimeout(opts.timeout);
  if (opts.keep && opts.json)
    throw new LabUsageError('--keep attaches the guest console to the terminal: it cannot be combined with --json');
  return options;
}

/** The JSON printed for a step failure (--json): same top-level shape as a report. */
export function stepFailureJson(error: LabStepError): string {
  return (
    JSON.stringify(
      { ok: false, failures: [error.message], step: error.step, workDir: error.workDir, logs: error.logs },
      null,
      2,
    ) + '\n'
  );
}

export function formatStepFailure(error: LabStepError): string {
  const lines = [`npiv-hba lab: FAILED at step "${error.step}"`, `  ${error.message.split('\n').join('\n  ')}`];
  const logs = Object.entries(error.logs);
  if (logs.length > 0) {
    lines.push('logs:');
    for (const [name, path] of logs) lines.push(`  ${name.padEnd(10)} ${path}`);
  }
  return lines.join('\n') + '\n';
}

export async function lab(opts: LabCliOptions, out: NodeJS.WritableStream = process.stdout): Promise<number> {
  if (parseLabBackend(opts.backend) === 'host') return hostLab(opts, out);
  const options = labOptionsFromCli(opts);
  const reporter = opts.quiet ? silentReporter : new ProgressDisplay(process.stderr);
  let printed = false;
  const print = (report: LabReport): void => {
    printed = true;
    out.write(opts.json ? labReportJson(report) : formatLabReport(report));
  };
  return runLabCommand(opts, out, async (signal) => {
    const report = await runLab({ ...options, signal, onReport: print }, reporter);
    if (!printed) print(report);
    return report.ok;
  });
}

/** `npiv-hba lab --backend host`: the two-level lab, printed as text or JSON. */
export async function hostLab(opts: LabCliOptions, out: NodeJS.WritableStream = process.stdout): Promise<number> {
  const options = hostLabOptionsFromCli(opts);
  const reporter = opts.quiet ? silentReporter : new ProgressDisplay(process.stderr);
  return runLabCommand(opts, out, async (signal) => {
    const report: HostLabReport = await runHostLab({ ...options, signal }, reporter);
    out.write(opts.json ? `${JSON.stringify(report, null, 2)}\n` : formatHostLabReport(report));
    return report.ok;
  });
}

/**
 * Runs one lab with SIGINT/SIGTERM aborting it (everything it started is stopped); exit status 0
 * when its report passed, 1 when it failed or a step failed (printed as text or JSON).
 */
async function runLabCommand(
  opts: LabCliOptions,
  out: NodeJS.WritableStream,
  run: (signal: AbortSignal) => Promise<boolean>,
): Promise<number> {
  const stop = new AbortController();
  const onSignal = (): void => stop.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    return (await run(stop.signal)) ? 0 : 1;
  } catch (err) {
    if (err instanceof LabStepError) {
      if (opts.json) out.write(stepFailureJson(err));
      else process.stderr.write(formatStepFailure(err));
      return 1;
    }
    throw err;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

export function registerLabCommand(program: Command): void {
  program
    .command('lab')
    .description(
      'one-command lab: simulated SAN + vport HBAs + a QEMU guest running qla2xxx; reports logins, targets, LUNs and a verified I/O run',
    )
    .option(
      '--config <file>',
      'SAN configuration (JSON, see `san --example`); default: the embedded example with RAM-backed volumes',
    )
    .option('--vports <n>', 'number of vport HBAs (default 2; with --config: its host-group initiators)')
    .option(
      '--wwpn <wwpn>',
      'a vport WWPN (repeatable); with --config the SAN must already admit it',
      collect,
      [] as string[],
    )
    .option(
      '--keep',
      'after the report, leave the guest running with its serial console on this terminal (Ctrl-A X quits)',
    )
    .option('--json', 'print the report as JSON')
    .option(
      '--work-dir <dir>',
      'keep sockets, logs, the SAN config and pcap here (default: a temp dir, removed after a passing run)',
    )
    .option('--io-size <MiB>', 'MiB each vport writes and verifies with fio (default 32)')
    .option(
      '--timeout <duration>',
      'limit for the guest run, boot to results: seconds or 500ms/30s/2m/1h (default 420s)',
    )
    .option('--quiet', 'no progress display on stderr')
    .option(
      '--backend <backend>',
      "san (default: the guest's qla2xxx on the simulated SAN) or host: the two-level lab of the host NPIV backend (a level-1 guest runs serve --backend host and a VM model; docs/lab.md)",
    )
    .action(async (opts: LabCliOptions) => {
      const status = await lab(opts);
      if (status !== 0) process.exitCode = status;
    });
}
