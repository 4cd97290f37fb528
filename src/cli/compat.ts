/**
 * `npiv-hba compat`: the driver compatibility matrix. Runs the scenario suite (src/compat/
 * scenarios.ts) against each kernel's own qla2xxx on the emulated HBA and prints kernel ×
 * scenario with times, the kernel and driver versions, and the evidence of every failure. See
 * docs/compat.md.
 *
 *   npiv-hba compat --kernel debian:bookworm --kernel debian:trixie [--kernel deb:FILE.deb]
 *                   [--kernel-dir DIR] [--scenarios all|core|a,b] [--model isp2532|isp2432]
 *                   [--json] [--junit FILE] [--log-dir DIR] [--refresh]
 *
 * Progress (one line per kernel step and scenario) goes to stderr, the matrix (or --json) to
 * stdout. Exit status 0 only when no scenario failed; 2 for usage errors.
 */
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Command } from 'commander';
import {
  type CompatKernel,
  KernelSpecError,
  kernelSpecLabel,
  parseKernelSpec,
  prepareKernel,
  type KernelSpec,
} from '../compat/kernels.js';
import { compatJunit, compatReport, compatReportJson, formatCompatReport } from '../compat/report.js';
import { CompatUsageError, kernelFailure, parseModel, runKernel, type KernelRunResult } from '../compat/runner.js';
import { ScenarioSelectionError, selectScenarios } from '../compat/scenarios.js';
import { ensureGuestEnvironment } from '../lab/prepare.js';
import { setLogLevel } from '../util/log.js';
import { packageRoot } from '../util/package-root.js';

export interface CompatCliOptions {
  kernel?: string[];
  kernelDir?: string[];
  scenarios?: string;
  model?: string;
  json?: boolean;
  junit?: string;
  logDir?: string;
  refresh?: boolean;
  quiet?: boolean;
}

const DEFAULT_KERNELS = ['debian:bookworm', 'debian:trixie', 'debian:forky'];
const PREPARE_TIMEOUT_MS = 30 * 60_000;

export function compatKernelSpecs(opts: CompatCliOptions): KernelSpec[] {
  const texts = [...(opts.kernel ?? []), ...(opts.kernelDir ?? []).map((d) => `dir:${d}`)];
  return (texts.length > 0 ? texts : DEFAULT_KERNELS).map(parseKernelSpec);
}

export async function compat(opts: CompatCliOptions, out: NodeJS.WritableStream = process.stdout): Promise<number> {
  let specs: KernelSpec[];
  let model: ReturnType<typeof parseModel>;
  let scenarios: ReturnType<typeof selectScenarios>;
  try {
    model = parseModel(opts.model);
    specs = compatKernelSpecs(opts);
    scenarios = selectScenarios(opts.scenarios);
  } catch (error) {
    if (
      error instanceof CompatUsageError ||
      error instanceof KernelSpecError ||
      error instanceof ScenarioSelectionError
    ) {
      process.stderr.write(`npiv-hba compat: ${error.message}\n`);
      return 2;
    }
    throw error;
  }
  const progress = (line: string): void => {
    if (!opts.quiet) process.stderr.write(`[compat] ${line}\n`);
  };
  // The SAN and HBA run in this process: their info logs would bury the progress lines.
  if (process.env.NPIV_HBA_LOG_LEVEL === undefined) setLogLevel('warn');
  const stop = new AbortController();
  const onSignal = (): void => stop.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    await ensureGuestEnvironment(
      {
        projectRoot: packageRoot(),
        logFile: join(tmpdir(), 'npiv-hba-compat-prepare.log'),
        timeoutMs: PREPARE_TIMEOUT_MS,
      },
      { step: (name) => progress(name), detail: (text) => progress(text), finish() {} },
    );
    const results: KernelRunResult[] = [];
    for (const spec of specs) {
      if (stop.signal.aborted) break;
      const label = kernelSpecLabel(spec);
      let kernel: CompatKernel;
      try {
        kernel = await prepareKernel(spec, {
          refresh: opts.refresh === true,
          log: (m) => progress(m),
          signal: stop.signal,
        });
      } catch (error) {
        progress(`${label}: cannot prepare the kernel: ${(error as Error).message}`);
        results.push(kernelFailure(label, model, scenarios, (error as Error).message));
        continue;
      }
      progress(
        `${label}: kernel ${kernel.release} (${kernel.packageVersion ?? 'local build'}), ${scenarios.length} scenarios`,
      );
      const result = await runKernel(kernel, {
        model,
        scenarios,
        signal: stop.signal,
        ...(opts.logDir ? { logDir: opts.logDir } : {}),
        onScenario: (e) => {
          if (e.phase === 'begin') progress(`${label}: ${e.name} ...`);
          else if (e.result)
            progress(
              `${label}: ${e.name} ${e.result.status} (${(e.result.ms / 1000).toFixed(1)}s) ${e.result.summary}`,
            );
        },
      });
      progress(
        `${label}: qla2xxx ${result.driverVersion ?? '?'}: ${result.scenarios.filter((s) => s.status === 'pass').length}/${scenarios.length} passed in ${(result.durationMs / 1000).toFixed(1)}s`,
      );
      results.push(result);
    }
    const report = compatReport(model, results);
    out.write(opts.json ? compatReportJson(report) : formatCompatReport(report));
    if (opts.junit) writeFileSync(opts.junit, compatJunit(report));
    return report.ok && !stop.signal.aborted ? 0 : 1;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

export function registerCompatCommand(program: Command): void {
  program
    .command('compat')
    .description(
      "driver compatibility matrix: run a scenario suite against each kernel's own qla2xxx on the emulated HBA",
    )
    .option(
      '--kernel <spec>',
      `a kernel: debian:SUITE (bookworm, trixie, forky, sid) or deb:FILE.deb[,FILE.deb] (repeatable; default ${DEFAULT_KERNELS.join(', ')})`,
      collect,
      [] as string[],
    )
    .option(
      '--kernel-dir <dir>',
      'a local build: DIR with a bzImage and lib/modules/<release> (make modules_install INSTALL_MOD_PATH=DIR) (repeatable)',
      collect,
      [] as string[],
    )
    .option('--scenarios <list>', 'all (default), core, or a comma-separated list of scenario names')
    .option('--model <model>', 'emulated HBA model: isp2532 (default) or isp2432')
    .option('--json', 'print the matrix as JSON')
    .option('--junit <file>', 'also write the matrix as JUnit XML to FILE')
    .option('--log-dir <dir>', "keep each guest boot's serial log in DIR")
    .option('--refresh', 'ask the archive again for debian: kernels (default: use the cached build)')
    .option('--quiet', 'no progress lines')
    .action(async (opts: CompatCliOptions) => {
      process.exitCode = await compat(opts);
    });
}
