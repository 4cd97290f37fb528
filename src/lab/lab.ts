import { writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { chooseAccelerator, runGuest, type Accelerator } from '../harness/guest.js';
import type { SanStatus } from '../san/san.js';
import { parseSize } from '../san/volume.js';
import { packageRoot } from '../util/package-root.js';
import { formatWwn } from '../util/wwn.js';
import { labSanSetup, type LabSanSetup } from './config.js';
import { labGuestScript } from './guest-script.js';
import { runInteractiveGuest } from './keep.js';
import { claimSocketPath, startCliProcess, waitForSocket } from './processes.js';
import { guestRunProblems, LabSession, readSanStatus, LabStepError } from './session.js';

import type { LabReporter } from './progress.js';
import { buildLabReport, parseGuestLines, type LabReport, type LabSanSummary } from './report.js';

export { LabStepError } from './session.js';

export const LAB_DEFAULTS = {
  prepareTimeoutMs: 45 * 60_000,
  sanStartTimeoutMs: 20_000,
  serveStartTimeoutMs: 20_000,
  /** Boot + logins + LUN scan + fio under TCG, with room to spare. */
  guestTimeoutMs: 420_000,
  /** In-guest budget for the fabric logins, and again for the disks. */
  guestWaitSeconds: 120,
  guestSettleSeconds: 3,
  guestRportGraceSeconds: 20,
  statusTimeoutMs: 10_000,
  ioMiB: 32,
  ioBlockSize: 64 * 1024,
  ioDepth: 16,
  guestMemMiB: 512,
} as const;

/**
 * Guest kernel words: under TCG on a busy host the boot-time IO-APIC timer check can time out
 * and panic ("IO-APIC + timer doesn't work"); no_timer_check skips it, as is usual for VMs.
 */
const LAB_KERNEL_ARGS = ['no_timer_check'];

export interface LabOptions {
  /** User SAN configuration (JSON); default: the embedded example. */
  configFile?: string;
  vports?: number;
  wwpns?: readonly string[];
  /** After the report, leave the guest's console on the terminal (Ctrl-A X quits). */
  keep?: boolean;
  /** Keep everything here (created if needed, never deleted); default a temp dir. */
  workDir?: string;
  /** MiB each vport's verified fio run writes. */
  ioMiB?: number;
  /** Hard limit for the guest run (boot to results). */
  guestTimeoutMs?: number;
  cacheDir?: string;
  accel?: Accelerator;
  signal?: AbortSignal;
  /** bin/npiv-hba.js used for the san/serve children (default: this project's). */
  cliPath?: string;
  /** Called with the report before --keep attaches the console (always called once a report exists). */
  onReport?: (report: LabReport) => Promise<void> | void;
}

function sanSummary(setup: LabSanSetup, status: SanStatus | null): LabSanSummary {
  if (status) {
    return {
      source: setup.source,
      fabric: status.fabric.name,
      domain: status.fabric.domain,
      logins: status.logins.map((l) => ({ nportId: l.nportId, wwpn: l.wwpn })),
      targetPorts: status.targetPorts.map((t) => t.wwpn),
      arrays: status.arrays,
    };
  }
  // The SAN could not be asked: describe it from the configuration.
  return {
    source: setup.source,
    fabric: setup.config.fabric.name,
    domain: setup.config.fabric.domain,
    logins: [],
    targetPorts: setup.config.arrays.flatMap((a) => a.ports.map((p) => formatWwn(p.wwpn))),
    arrays: setup.config.arrays.map((a) => ({
      name: a.name,
      volumes: a.volumes.map((v) => ({ name: v.name, bytes: parseSize(v.size), file: v.file ?? null })),
    })),
  };
}

export async function runLab(options: LabOptions, reporter: LabReporter): Promise<LabReport> {
  // Usage problems first: nothing is started for a bad configuration or WWPN.
  const setup = labSanSetup({
    ...(options.configFile !== undefined ? { configFile: options.configFile } : {}),
    ...(options.vports !== undefined ? { vports: options.vports } : {}),
    ...(options.wwpns !== undefined ? { wwpns: options.wwpns } : {}),
  });
  const ioMiB = options.ioMiB ?? LAB_DEFAULTS.ioMiB;
  if (!Number.isInteger(ioMiB) || ioMiB < 1 || ioMiB > 4096)
    throw new Error(`invalid I/O size ${ioMiB} MiB: expected 1..4096`);
  const root = packageRoot();
  const cli = options.cliPath ?? join(root, 'bin', 'npiv-hba.js');
  const session = await LabSession.open(options.workDir, reporter, options.signal);
  const { workDir, ownWorkDir, logs, processes, sockets } = session;
  const step = <T>(name: string, work: () => Promise<T>): Promise<T> => session.step(name, work);
  const checkSocketPath = (path: string): void => session.checkSocketPath(path);
  let failed = true;

  try {
    await step('guest environment', () =>
      session.prepareGuest({ projectRoot: root, cacheDir: options.cacheDir, timeoutMs: LAB_DEFAULTS.prepareTimeoutMs }),
    );

    const { link, control } = await step('starting the SAN', async () => {
      const configPath = setup.configFile === null ? join(workDir, 'san.json') : resolve(setup.configFile);
      if (setup.configText !== null) await writeFile(configPath, setup.configText);
      return session.startSan({ cli, configPath: resolve(configPath), timeoutMs: LAB_DEFAULTS.sanStartTimeoutMs });
    });

    const deviceSockets: string[] = [];
    await step('starting the vport HBAs', async () => {
      for (const [i, vport] of setup.vports.entries()) {
        const socket = join(workDir, `vport${i + 1}.sock`);
        checkSocketPath(socket);
        const log = join(workDir, `vport${i + 1}.log`);
        logs[`vport${i + 1}`] = log;
        await claimSocketPath(socket);
        sockets.push(socket);
        reporter.detail(`vport ${i + 1}: ${formatWwn(vport.wwpn)}`);
        const serve = startCliProcess({
          name: `npiv-hba serve (vport ${i + 1})`,
          cli,
          args: [
            'serve',
            '--socket',
            socket,
            '--wwpn',
            formatWwn(vport.wwpn),
            '--wwnn',
            formatWwn(vport.wwnn),
            '--san',
            link,
          ],
          logFile: log,
          cwd: workDir,
        });
        processes.push(serve);
        deviceSockets.push(socket);
      }
      for (const [i, socket] of deviceSockets.entries()) {
        await waitForSocket(processes[i + 1]!, socket, LAB_DEFAULTS.serveStartTimeoutMs, options.signal);
      }
    });

    const script = labGuestScript({
      vports: setup.vports.length,
      waitSeconds: LAB_DEFAULTS.guestWaitSeconds,
      settleSeconds: LAB_DEFAULTS.guestSettleSeconds,
      rportGraceSeconds: LAB_DEFAULTS.guestRportGraceSeconds,
      ioBytes: ioMiB * 1024 * 1024,
      ioBlockSize: LAB_DEFAULTS.ioBlockSize,
      ioDepth: LAB_DEFAULTS.ioDepth,
      keep: options.keep === true,
    });
    const accel = options.accel ?? chooseAccelerator();
    const guestTimeoutMs = options.guestTimeoutMs ?? LAB_DEFAULTS.guestTimeoutMs;
    logs.guest = join(workDir, 'guest.log');
    const phaseNames: Record<string, string> = {
      login: 'waiting for the fabric logins',
      disks: 'waiting for the LUNs',
      inventory: 'reading fc_host, rports and disks',
      io: `verified I/O (fio, ${ioMiB} MiB per vport)`,
      done: 'done',
    };
    const sanStatus = (): Promise<SanStatus | null> => readSanStatus(control, LAB_DEFAULTS.statusTimeoutMs);
    // The switch's view is taken while the guest is up (its vports log out when QEMU stops).
    let statusWhileUp: Promise<SanStatus | null> | null = null;
    const onLine = (line: string): void => {
      const m = /^GUEST:LAB PHASE ([a-z]+)$/.exec(line);
      if (m) {
        reporter.detail(phaseNames[m[1]!] ?? m[1]!);
        if (m[1] === 'inventory') statusWhileUp = sanStatus();
      } else if (line.startsWith('GUEST:BOOT ')) reporter.detail('guest kernel booted; loading qla2xxx');
    };
    const finishReport = async (
      guestLines: string[],
      exitStatus: number | null,
      kernelProblems: string[],
      extraFailures: string[],
    ): Promise<LabReport> => {
      const status = (await (statusWhileUp ?? Promise.resolve(null))) ?? (await sanStatus());
      const boot = guestLines.find((l) => l.startsWith('BOOT kernel='));
      const report = buildLabReport({
        vports: setup.vports,
        observation: parseGuestLines(guestLines),
        san: sanSummary(setup, status),
        guest: { accel, kernel: boot ? (/kernel=(\S+)/.exec(boot)?.[1] ?? null) : null, exitStatus, kernelProblems },
        timings: { totalSeconds: (Date.now() - session.started) / 1000, steps: [...session.steps] },
        workDir,
        logs: { ...logs },
        failures: extraFailures,
      });
      // A passing run in a temp dir leaves nothing behind: no paths to point at.
      if (ownWorkDir && report.ok) {
        report.workDir = null;
        report.logs = {};
      }
      return report;
    };

    let report: LabReport | null = null;
    if (options.keep) {
      const run = await step('guest (QEMU + Linux, qla2xxx)', async () => {
        reporter.detail(`booting (${accel})`);
        return runInteractiveGuest({
          devices: deviceSockets,
          script,
          timeoutMs: guestTimeoutMs,
          workDir,
          kernelArgs: LAB_KERNEL_ARGS,
          logFile: logs.guest!,
          accel,
          onLine,
          ...(options.cacheDir !== undefined ? { cacheDir: options.cacheDir } : {}),
          ...(options.signal !== undefined ? { signal: options.signal } : {}),
          onResults: async (guestLines, kernelProblems) => {
            reporter.finish();
            report = await finishReport(guestLines, null, kernelProblems, []);
            await options.onReport?.(report);
            process.stderr.write('npiv-hba lab: guest console attached (shell exit or Ctrl-A X ends the lab)\n');
          },
        });
      });
      if (!run.reachedShell) {
        if (run.aborted) throw session.interrupted('guest (QEMU + Linux, qla2xxx)');
        const why = run.timedOut
          ? `no results within ${guestTimeoutMs / 1000} s`
          : `QEMU exited (${run.qemuExitCode}) before the results: ${run.qemuStderr.trim().slice(-500)}`;
        throw new LabStepError('guest (QEMU + Linux, qla2xxx)', why, { ...logs }, workDir);
      }
      reporter.step('shutting down');
    } else {
      const run = await step('guest (QEMU + Linux, qla2xxx)', async () => {
        reporter.detail(`booting (${accel})`);
        return runGuest({
          devices: deviceSockets,
          script,
          timeoutMs: guestTimeoutMs,
          memMiB: LAB_DEFAULTS.guestMemMiB,
          kernelArgs: LAB_KERNEL_ARGS,
          logFile: logs.guest!,
          accel,
          onLine,
          ...(options.cacheDir !== undefined ? { cacheDir: options.cacheDir } : {}),
          ...(options.signal !== undefined ? { signal: options.signal } : {}),
        });
      });
      if (run.aborted) throw session.interrupted('guest (QEMU + Linux, qla2xxx)');
      const extra = guestRunProblems(run, 'guest', guestTimeoutMs);
      report = await finishReport(run.guestLines, run.exitStatus, run.kernelProblems, extra);
      reporter.finish();
      await options.onReport?.(report);
    }
    const final = report as LabReport | null;
    if (final === null) throw new LabStepError(session.current, 'no report was produced', { ...logs }, workDir);
    failed = !final.ok;
    return final;
  } finally {
    await session.close(failed);
  }
}
