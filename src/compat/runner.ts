/**
 * Runs the compat suite for one kernel: a fresh simulated SAN and emulated HBA (src/harness/
 * isp-rig.ts) per guest boot, the kernel's own initramfs (kernels.ts), the scenario script
 * (scenarios.ts), and the host's part of the scenarios that change the SAN while the guest runs
 * (a port joining, a LUN mapped, a port's link down and up), asked for by `GUEST:REQ` lines.
 *
 * When the guest stops in the middle (a panic, a hang past its time limit), the scenario that was
 * running fails with the console's last lines as evidence and the remaining ones run in a new boot,
 * so one crash does not hide the other scenarios' results.
 */
import {
  DEFAULT_ISP_MODEL,
  ISP_MODEL_NAMES,
  type IspModel,
  type IspModelName,
  isIspModelName,
  ispModel,
} from '../isp/model.js';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { runGuest, type GuestRunResult } from '../harness/guest.js';
import { startIspRig, type IspRig } from '../harness/isp-rig.js';
import { packageRoot } from '../util/package-root.js';
import type { CompatKernel } from './kernels.js';
import {
  COMPAT_ARRAY_PORTS,
  COMPAT_HOST_GROUP,
  COMPAT_INITIAL_PORTS,
  COMPAT_NEW_LUN,
  COMPAT_NPIV_GRANT,
  COMPAT_RSCN_PORT,
  compatArrayConfig,
  compatScript,
  parseBootLines,
  type ScenarioDefinition,
  type ScenarioResult,
} from './scenarios.js';

export class CompatUsageError extends Error {}

/** The `--model` value, checked against the models the device implements (src/isp/model.ts). */
export function parseModel(text: string | undefined): IspModelName {
  const model = text ?? DEFAULT_ISP_MODEL;
  if (!isIspModelName(model))
    throw new CompatUsageError(`invalid --model '${model}': expected one of ${ISP_MODEL_NAMES.join(', ')}`);
  return model;
}

/** vendor:device as the guest's sysfs shows it, e.g. 0x1077:0x2532. */
function pciIdOf(model: Readonly<IspModel>): string {
  const hex = (n: number) => `0x${n.toString(16).padStart(4, '0')}`;
  return `${hex(model.pci.identity.vendorId)}:${hex(model.pci.identity.deviceId)}`;
}

/** Boots beyond the first, for scenarios left over after a guest stopped. */
const MAX_EXTRA_BOOTS = 2;
/** Guest time beyond the scenarios' own limits: boot, module loads, poweroff. */
const BOOT_ALLOWANCE_SECONDS = 120;
const CONSOLE_EVIDENCE_LINES = 15;
/** Lets the fabric finish removing a downed port's old login before the port logs in again. */
const PORT_UP_SETTLE_MS = 200;

export interface KernelRunResult {
  label: string;
  release: string | null;
  packageVersion: string | null;
  driverVersion: string | null;
  model: IspModelName;
  scenarios: ScenarioResult[];
  /** Guest boots used. */
  boots: number;
  durationMs: number;
  /** Console lines showing a panic, Oops, BUG or WARNING in any boot. */
  kernelProblems: string[];
  /** Set when the kernel could not be prepared or booted at all. */
  error: string | null;
}

export interface RunKernelOptions {
  model: IspModelName;
  scenarios: readonly ScenarioDefinition[];
  cacheDir?: string;
  /** Called as each scenario starts and ends. */
  onScenario?: (event: { phase: 'begin' | 'end'; name: string; result?: ScenarioResult }) => void;
  /** Every serial line of every boot (for --verbose). */
  onLine?: (line: string) => void;
  signal?: AbortSignal;
  /** Keep each boot's serial log here (optional). */
  logDir?: string;
}

/** The host's side of a `GUEST:REQ` line; returns what it did, for the log. */
async function hostAction(rig: IspRig, request: string): Promise<string> {
  const [action, arg] = request.trim().split(/\s+/);
  switch (action) {
    case 'add-port':
      await rig.attachArrayPort(COMPAT_RSCN_PORT);
      return `attached array port ${COMPAT_RSCN_PORT}`;
    case 'map-lun':
      rig.array?.mapLun(COMPAT_HOST_GROUP, COMPAT_NEW_LUN.lun, COMPAT_NEW_LUN.volume);
      return `mapped LUN ${COMPAT_NEW_LUN.lun}`;
    case 'port-down': {
      const port = COMPAT_ARRAY_PORTS[Number(arg)];
      if (!port) throw new Error(`no array port ${arg}`);
      if (!rig.fabric.linkDown(port.wwpn)) throw new Error(`array port ${arg} is not logged in`);
      return `took array port ${arg}'s link down`;
    }
    case 'port-up': {
      await new Promise((resolve) => setTimeout(resolve, PORT_UP_SETTLE_MS));
      await rig.attachArrayPort(Number(arg));
      return `attached array port ${arg} again`;
    }
    default:
      throw new Error(`unknown request ${request}`);
  }
}

function guestLibrary(): string {
  return readFileSync(join(packageRoot(), 'scripts', 'guest', 'compat-scenarios.sh'), 'utf8');
}

/** Kernel console lines at the end of a run, for a scenario the guest never finished. */
function consoleTail(run: GuestRunResult): string[] {
  return run.output
    .split('\n')
    .filter((l) => !l.startsWith('GUEST:') && l.trim() !== '')
    .slice(-CONSOLE_EVIDENCE_LINES);
}

function stoppedReason(run: GuestRunResult): string {
  if (run.timedOut) return 'the guest ran past its time limit and was stopped';
  if (run.kernelProblems.some((l) => /panic/i.test(l))) return 'the guest kernel panicked';
  if (run.exitStatus === null) return `the guest stopped (QEMU exit ${run.qemuExitCode ?? run.qemuSignal})`;
  return `the guest script ended early (status ${run.exitStatus})`;
}

/** Runs the selected scenarios against one kernel, in as few boots as the guest allows. */
export async function runKernel(kernel: CompatKernel, options: RunKernelOptions): Promise<KernelRunResult> {
  const started = Date.now();
  const model = ispModel(options.model);
  const results = new Map<string, ScenarioResult>();
  const result: KernelRunResult = {
    label: kernel.label,
    release: kernel.release,
    packageVersion: kernel.packageVersion,
    driverVersion: null,
    model: options.model,
    scenarios: [],
    boots: 0,
    durationMs: 0,
    kernelProblems: [],
    error: null,
  };
  const library = guestLibrary();
  if (options.logDir) mkdirSync(options.logDir, { recursive: true });
  let remaining = [...options.scenarios];

  while (remaining.length > 0 && result.boots <= MAX_EXTRA_BOOTS) {
    if (options.signal?.aborted) break;
    result.boots++;
    const rig = await startIspRig({
      name: 'compat',
      array: compatArrayConfig(),
      attachArrayPorts: COMPAT_INITIAL_PORTS,
      npivGrants: [COMPAT_NPIV_GRANT],
      model,
    });
    // What the host did for each scenario (its REQ lines), for that scenario's evidence.
    const hostLog = new Map<string, string[]>();
    let current = '';
    let run: GuestRunResult;
    try {
      const limit = remaining.reduce((sum, s) => sum + s.limitSeconds, BOOT_ALLOWANCE_SECONDS);
      run = await runGuest({
        devices: [rig.socket],
        kernel: { image: kernel.image, initramfs: kernel.initramfs },
        script: compatScript(remaining, { pciId: pciIdOf(model) }),
        extraFiles: [{ path: '/lib/compat-scenarios.sh', data: library }],
        timeoutMs: limit * 1000,
        ...(options.signal ? { signal: options.signal } : {}),
        ...(options.logDir
          ? { logFile: join(options.logDir, `${kernel.label.replace(/[^A-Za-z0-9.-]/g, '_')}-boot${result.boots}.log`) }
          : {}),
        onLine: (line) => {
          options.onLine?.(line);
          const req = /^GUEST:REQ (.+)$/.exec(line);
          if (req?.[1] !== undefined) {
            const request = req[1];
            const log = hostLog.get(current) ?? [];
            hostLog.set(current, log);
            hostAction(rig, request).then(
              (did) => log.push(`host: ${did}`),
              (error: unknown) => log.push(`host: ${request} failed: ${(error as Error).message}`),
            );
          }
          const begin = /^GUEST:SCBEGIN (\S+)/.exec(line);
          if (begin?.[1] !== undefined) {
            current = begin[1];
            options.onScenario?.({ phase: 'begin', name: begin[1] });
          }
          const end = /^GUEST:SC (\S+) /.exec(line);
          if (end?.[1] !== undefined) {
            const parsed = parseBootLines([line.slice('GUEST:'.length)]).results[0];
            if (parsed) options.onScenario?.({ phase: 'end', name: end[1], result: parsed });
          }
        },
      });
    } finally {
      await rig.close();
    }
    const outcome = parseBootLines(run.guestLines);
    result.driverVersion ??= outcome.driverVersion;
    result.release = outcome.kernelRelease ?? result.release;
    result.kernelProblems.push(...run.kernelProblems);
    for (const r of outcome.results) {
      // The host's part (what it did, what failed) belongs to the evidence of a failure.
      if (r.status !== 'pass') r.evidence.push(...(hostLog.get(r.name) ?? []));
      results.set(r.name, r);
    }
    const pending = remaining.filter((s) => !results.has(s.name));
    if (pending.length === 0) break;
    const stopped = outcome.unfinished ?? pending[0]!.name;
    const evidence = [stoppedReason(run), ...run.kernelProblems.slice(0, 5), ...consoleTail(run)];
    if (run.exitStatus === null && outcome.results.length === 0 && outcome.unfinished === null) {
      // Nothing ran at all: the kernel did not boot to the script. Another boot would do the same.
      const why = `${stoppedReason(run)} before the first scenario`;
      for (const s of pending) results.set(s.name, { name: s.name, status: 'fail', ms: 0, summary: why, evidence });
      result.error = why;
      break;
    }
    results.set(stopped, {
      name: stopped,
      status: 'fail',
      ms: 0,
      summary: `${stoppedReason(run)} during this scenario`,
      evidence,
    });
    options.onScenario?.({ phase: 'end', name: stopped, result: results.get(stopped)! });
    remaining = pending.filter((s) => s.name !== stopped);
  }
  for (const s of remaining) {
    if (!results.has(s.name))
      results.set(s.name, {
        name: s.name,
        status: 'skip',
        ms: 0,
        summary: options.signal?.aborted ? 'not run: interrupted' : 'not run: the guest stopped too often',
        evidence: [],
      });
  }
  result.scenarios = options.scenarios.map((s) => results.get(s.name)!);
  result.durationMs = Date.now() - started;
  return result;
}

/** A kernel that could not be prepared: every scenario fails with the same reason. */
export function kernelFailure(
  label: string,
  model: IspModelName,
  scenarios: readonly ScenarioDefinition[],
  message: string,
): KernelRunResult {
  return {
    label,
    release: null,
    packageVersion: null,
    driverVersion: null,
    model,
    scenarios: scenarios.map((s) => ({
      name: s.name,
      status: 'fail',
      ms: 0,
      summary: 'kernel not prepared',
      evidence: [message],
    })),
    boots: 0,
    durationMs: 0,
    kernelProblems: [],
    error: message,
  };
}
