/**
 * `npiv-hba lab --backend host`: the host NPIV backend shown without FC hardware, as the
 * two-level lab of src/lab/two-level.ts. Level 0 runs the simulated SAN and one emulated ISP2532
 * (`serve --npiv-wwpn VM`) for a QEMU guest; in that guest (level 1, the "host") the stock
 * qla2xxx drives the HBA, `npiv-hba serve --backend host:hostN` creates a real NPIV vport with the
 * VM's WWPN on it, and the guest model (src/vm-model) plays the VM on serve's socket: fabric
 * login, discovery, REPORT LUNS and a verified write/read run through level 1's sg node.
 *
 * The report: level 1's fc_host and its vport (WWPN, state), the FDISC the SAN saw (an NPIV login
 * on level 1's F_Port), the VM's target and LUNs, the verified I/O figures, and whether level 1
 * had any block device (it must not: docs/host-backend.md). Steps, timeouts and cleanup are those
 * of runLab (src/lab/lab.ts).
 */
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type Accelerator, chooseAccelerator, guestEnvironment, runGuest } from '../harness/guest.js';
import type { SanStatus } from '../san/san.js';
import { packageRoot } from '../util/package-root.js';
import { formatWwn, parseWwn } from '../util/wwn.js';
import { deriveWwnn } from '../vport/wwn-gen.js';
import { LabUsageError } from './config.js';
import { LAB_DEFAULTS } from './lab.js';
import { guestRunProblems, LabSession, readSanStatus } from './session.js';
import { claimSocketPath, startCliProcess, waitForSocket } from './processes.js';
import type { LabReporter } from './progress.js';
import { formatSize, formatTable } from './report.js';
import {
  PROJECT_SHARE_TAG,
  parseTwoLevelLines,
  TWO_LEVEL_NAMES,
  TWO_LEVEL_VM_LUN,
  type TwoLevelNames,
  type TwoLevelObservation,
  twoLevelGuestScript,
  twoLevelSanConfig,
} from './two-level.js';

export const HOST_LAB_DEFAULTS = {
  /** MiB the VM writes and verifies (through two levels of emulation under TCG: kept small). */
  ioMiB: 4,
  /** Boot, qla2xxx, Node.js from 9p twice (serve, the VM model), the I/O. */
  guestTimeoutMs: 600_000,
  /** Level 1 runs two Node.js processes. */
  guestMemMiB: 1536,
  seed: 0x2026,
} as const;

const BLOCK = 512;
const MIB = 1024 * 1024;
const LAB_KERNEL_ARGS = ['no_timer_check'];
const GUEST_STEP = 'level-1 guest (qla2xxx, serve --backend host, the VM)';

export interface HostLabOptions {
  /** The VM's WWPN (its WWNN derived as `vport define` does); default TWO_LEVEL_NAMES.vm. */
  wwpn?: string;
  /** MiB the VM writes and verifies (1..64). */
  ioMiB?: number;
  workDir?: string;
  guestTimeoutMs?: number;
  cacheDir?: string;
  accel?: Accelerator;
  signal?: AbortSignal;
  /** bin/npiv-hba.js for the level-0 san/serve (default: this project's). */
  cliPath?: string;
}

/** The names the lab runs with: the defaults, with the VM's WWPN (and derived WWNN) when given. */
export function hostLabNames(wwpn?: string): TwoLevelNames {
  if (wwpn === undefined) return TWO_LEVEL_NAMES;
  let vmWwpn: bigint;
  try {
    vmWwpn = parseWwn(wwpn, 'WWPN');
  } catch (err) {
    throw new LabUsageError(`--wwpn: ${(err as Error).message}`);
  }
  const vm = { wwpn: formatWwn(vmWwpn), wwnn: formatWwn(deriveWwnn(vmWwpn)) };
  const taken = [TWO_LEVEL_NAMES.level1, TWO_LEVEL_NAMES.targetHost, TWO_LEVEL_NAMES.targetVm].flatMap((p) => [
    p.wwpn,
    p.wwnn,
  ]);
  if (taken.includes(vm.wwpn) || taken.includes(vm.wwnn))
    throw new LabUsageError(`--wwpn ${vm.wwpn}: it or its WWNN ${vm.wwnn} is a name of the lab's level 1 or arrays`);
  return { ...TWO_LEVEL_NAMES, vm };
}

export function checkHostLabIoMiB(ioMiB: number): number {
  if (!Number.isInteger(ioMiB) || ioMiB < 1 || ioMiB > 64)
    throw new LabUsageError(`invalid --io-size ${ioMiB} with --backend host: expected 1..64 MiB`);
  return ioMiB;
}

// ------------------------------------------------------------------------------------ report

export interface HostLabIo {
  phase: number;
  lun: number;
  startLba: number;
  blocks: number;
  bytes: number;
  writes: number;
  reads: number;
  errors: number;
  mismatches: number;
  errorSamples: string[];
  elapsedMs: number;
  /** bytes written plus bytes read back, per second of elapsedMs, in MiB/s */
  mibPerSecond: number | null;
}

export interface HostLabReport {
  ok: boolean;
  backend: 'host';
  failures: string[];
  warnings: string[];
  san: {
    fabric: string | null;
    domain: number | null;
    logins: { nportId: string; wwpn: string; physical: boolean; fPortArea: number }[];
    arrays: { name: string; volumes: { name: string; bytes: number; file: string | null }[] }[];
  };
  level1: {
    wwpn: string;
    wwnn: string;
    host: string | null;
    nportId: string | null;
    portState: string | null;
    maxNpivVports: number | null;
    /** the host vport serve created for the VM (null: level 1 never showed one) */
    vport: {
      name: string;
      wwpn: string;
      wwnn: string;
      state: string;
      host: string | null;
      nportId: string | null;
    } | null;
    blockDevices: string[] | null;
    sgNodes: number | null;
    serveExit: number | null;
    vportsAfter: number | null;
  };
  /** the VM's login as the SAN saw it while the VM ran */
  fdisc: {
    wwpn: string;
    nportId: string;
    physical: boolean;
    fPortArea: number;
    level1FPortArea: number | null;
    onLevel1FPort: boolean;
  } | null;
  vm: {
    wwpn: string;
    wwnn: string;
    exitStatus: number | null;
    linkUpMs: number | null;
    targets: { nportId: string; wwpn: string | null }[];
    luns: number[];
    io: HostLabIo[];
    errors: string[];
  };
  guest: { accel: string; kernel: string | null; exitStatus: number | null; kernelProblems: string[] };
  timings: { totalSeconds: number; steps: { step: string; seconds: number }[] };
  workDir: string | null;
  logs: Record<string, string>;
}

export interface HostLabReportInput {
  names: TwoLevelNames;
  observation: TwoLevelObservation;
  /** `san ctl status` taken while the host vport existed (null: not asked, or no answer) */
  status: SanStatus | null;
  guest: HostLabReport['guest'];
  timings: HostLabReport['timings'];
  workDir: string | null;
  logs: Record<string, string>;
  failures?: readonly string[];
}

const sysfsWwn = (text: string | null): string | null =>
  text !== null && /^0x[0-9a-f]{1,16}$/i.test(text) ? formatWwn(BigInt(text)) : text;

function round(value: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

/** Joins level 1's lines with the SAN's view; names every failing part. */
export function buildHostLabReport(input: HostLabReportInput): HostLabReport {
  const { names, observation: obs, status } = input;
  const failures = [...(input.failures ?? [])];
  const warnings: string[] = [];
  if (input.guest.kernelProblems.length > 0)
    failures.push(`level-1 kernel reported a problem: ${input.guest.kernelProblems[0]}`);
  for (const stop of obs.stops) failures.push(`level-1 script stopped: ${stop}`);

  // Level 1 and the host vport.
  const l1Wwpn = sysfsWwn(obs.level1.portName);
  if (obs.level1.host === null) failures.push('level 1: no fc_host came Online (qla2xxx on the emulated HBA)');
  else {
    if (l1Wwpn !== names.level1.wwpn)
      failures.push(`level 1: ${obs.level1.host} has port name ${l1Wwpn ?? '?'}, expected ${names.level1.wwpn}`);
    if (obs.level1.portState !== 'Online')
      failures.push(`level 1: ${obs.level1.host} is ${obs.level1.portState ?? '?'}`);
  }
  const raw = obs.vports.find((v) => sysfsWwn(v.portName) === names.vm.wwpn) ?? null;
  const vport = raw
    ? {
        name: raw.name,
        wwpn: sysfsWwn(raw.portName) ?? raw.portName,
        wwnn: sysfsWwn(raw.nodeName) ?? raw.nodeName,
        state: raw.state,
        host: raw.host,
        nportId: raw.portId,
      }
    : null;
  if (obs.level1.host !== null) {
    if (!vport) failures.push(`level 1: no fc_vport with the VM's WWPN ${names.vm.wwpn} (serve --backend host)`);
    else if (vport.state !== 'Active') failures.push(`level 1: host vport ${vport.name} is ${vport.state}, not Active`);
  }
  if (obs.blockDevices !== null && obs.blockDevices.length > 0)
    failures.push(`level 1 has block devices (${obs.blockDevices.join(', ')}): the host must not`);
  if (obs.serveExit !== null && obs.serveExit !== 0)
    failures.push(`level 1: serve --backend host exited with status ${obs.serveExit} on SIGTERM`);
  if (obs.vportsAfter !== null && obs.vportsAfter !== 0)
    failures.push(`level 1: ${obs.vportsAfter} fc_vport(s) left after serve stopped`);

  // The SAN's view of the VM's login.
  const l1Login = status?.logins.find((l) => l.wwpn === names.level1.wwpn) ?? null;
  const vmLogin = status?.logins.find((l) => l.wwpn === names.vm.wwpn) ?? null;
  const fdisc = vmLogin
    ? {
        wwpn: vmLogin.wwpn,
        nportId: vmLogin.nportId,
        physical: vmLogin.physical,
        fPortArea: vmLogin.fPortArea,
        level1FPortArea: l1Login?.fPortArea ?? null,
        onLevel1FPort: l1Login?.physical === true && l1Login.fPortArea === vmLogin.fPortArea,
      }
    : null;
  if (status === null)
    failures.push(
      vport === null
        ? "the SAN's logins were not read: level 1 never had the VM's vport"
        : 'the SAN could not be asked for its logins while the VM ran',
    );
  else if (!fdisc) failures.push(`the SAN saw no login of the VM's WWPN ${names.vm.wwpn}`);
  else {
    if (fdisc.physical) failures.push('the VM logged in with FLOGI on a port of its own, not FDISC through level 1');
    if (!fdisc.onLevel1FPort) failures.push("the VM's FDISC is not on level 1's F_Port");
    if (vport?.nportId && vport.nportId !== fdisc.nportId)
      warnings.push(`level 1 shows the vport as ${vport.nportId}, the SAN as ${fdisc.nportId}`);
  }

  // The VM.
  const events = obs.vmEvents;
  const targetByPortId = new Map((status?.targetPorts ?? []).map((t) => [t.nportId, t.wwpn]));
  const targets: HostLabReport['vm']['targets'] = [];
  for (const e of events) {
    if (e.step !== 'discovered') continue;
    const nportId = `0x${e.targetPortId}`;
    if (!targets.some((t) => t.nportId === nportId))
      targets.push({ nportId, wwpn: status ? (targetByPortId.get(nportId) ?? null) : null });
  }
  for (const t of targets)
    if (status && t.wwpn === null) warnings.push(`the VM discovered ${t.nportId}, which is no target port of the SAN`);
  const luns = events.find((e) => e.step === 'luns')?.luns ?? [];
  const io: HostLabIo[] = events.flatMap((e) =>
    e.step === 'io'
      ? [
          {
            phase: e.phase,
            lun: e.lun,
            startLba: e.startLba,
            blocks: e.blocks,
            bytes: e.blocks * BLOCK,
            writes: e.writes,
            reads: e.reads,
            errors: e.errors,
            mismatches: e.mismatches,
            errorSamples: e.errorSamples,
            elapsedMs: e.elapsedMs,
            mibPerSecond: e.elapsedMs > 0 ? round((2 * e.blocks * BLOCK) / MIB / (e.elapsedMs / 1000), 2) : null,
          },
        ]
      : [],
  );
  const vmErrors = events.flatMap((e) => (e.step === 'error' ? [e.message] : []));
  for (const m of vmErrors) failures.push(`VM: ${m}`);
  if (obs.level1.host !== null && vport) {
    if (!events.some((e) => e.step === 'link-up')) failures.push('VM: the link never came up');
    if (targets.length === 0) failures.push('VM: no target discovered');
    if (luns.length === 0) failures.push('VM: no LUN reported');
    if (io.length === 0) failures.push('VM: no verified I/O run');
  }
  for (const r of io) {
    if (r.errors > 0 || r.mismatches > 0)
      failures.push(`VM: verified I/O on LUN ${r.lun}: ${r.errors} error(s), ${r.mismatches} mismatched block(s)`);
  }
  if (obs.vmExit !== null && obs.vmExit !== 0) failures.push(`VM: the guest model exited with status ${obs.vmExit}`);
  const linkUp = events.find((e) => e.step === 'link-up');

  return {
    ok: failures.length === 0,
    backend: 'host',
    failures,
    warnings,
    san: {
      fabric: status?.fabric.name ?? null,
      domain: status?.fabric.domain ?? null,
      logins: (status?.logins ?? []).map((l) => ({
        nportId: l.nportId,
        wwpn: l.wwpn,
        physical: l.physical,
        fPortArea: l.fPortArea,
      })),
      arrays: (status?.arrays ?? []).map((a) => ({
        name: a.name,
        volumes: a.volumes.map((v) => ({ name: v.name, bytes: v.bytes, file: v.file })),
      })),
    },
    level1: {
      wwpn: names.level1.wwpn,
      wwnn: names.level1.wwnn,
      host: obs.level1.host,
      nportId: obs.level1.portId,
      portState: obs.level1.portState,
      maxNpivVports: obs.level1.maxNpivVports,
      vport,
      blockDevices: obs.blockDevices,
      sgNodes: obs.sgNodes,
      serveExit: obs.serveExit,
      vportsAfter: obs.vportsAfter,
    },
    fdisc,
    vm: {
      wwpn: names.vm.wwpn,
      wwnn: names.vm.wwnn,
      exitStatus: obs.vmExit,
      linkUpMs: linkUp?.step === 'link-up' ? linkUp.ms : null,
      targets,
      luns,
      io,
      errors: vmErrors,
    },
    guest: input.guest,
    timings: input.timings,
    workDir: input.workDir,
    logs: input.logs,
  };
}

function field(label: string, value: string): string {
  return `  ${(label + ':').padEnd(18)}${value}`;
}

export function formatHostLabReport(r: HostLabReport): string {
  const out: string[] = [];
  out.push(`npiv-hba lab --backend host: ${r.ok ? 'PASSED' : 'FAILED'}`);
  out.push('');
  out.push('SAN (level 0)');
  out.push(field('config', 'two-level lab (embedded), RAM-backed volumes'));
  if (r.san.fabric !== null) out.push(field('fabric', `${r.san.fabric} (domain ${r.san.domain ?? '?'})`));
  for (const a of r.san.arrays)
    out.push(
      field(
        `array ${a.name}`,
        a.volumes.map((v) => `${v.name} ${formatSize(v.bytes)}${v.file ? ` (${v.file})` : ' (RAM)'}`).join(', '),
      ),
    );
  if (r.san.logins.length > 0) {
    out.push('  fabric logins (while the VM ran):');
    out.push(
      ...formatTable(
        ['N_Port ID', 'WWPN', 'login', 'F_Port area'],
        r.san.logins.map((l) => [l.nportId, l.wwpn, l.physical ? 'FLOGI' : 'FDISC (NPIV)', String(l.fPortArea)]),
      ),
    );
  }
  out.push('');
  out.push('level 1 (QEMU guest: qla2xxx on the emulated ISP2532 plays the host FC HBA)');
  out.push(
    field(
      'fc_host',
      r.level1.host === null
        ? 'none'
        : `${r.level1.host}, WWPN ${r.level1.wwpn}, N_Port ID ${r.level1.nportId ?? '?'}, ${r.level1.portState ?? '?'}, max_npiv_vports ${r.level1.maxNpivVports ?? '?'}`,
    ),
  );
  const v = r.level1.vport;
  out.push(
    field(
      'host vport',
      v === null
        ? 'none'
        : `${v.name}, WWPN ${v.wwpn}, WWNN ${v.wwnn}, ${v.state}, ${v.host ?? 'no Scsi_Host'}, N_Port ID ${v.nportId ?? '?'}`,
    ),
  );
  out.push(
    field(
      'FDISC at the SAN',
      r.fdisc === null
        ? 'none seen'
        : `${r.fdisc.nportId} ${r.fdisc.wwpn}, ${r.fdisc.physical ? 'FLOGI (not NPIV!)' : 'FDISC'}, F_Port area ${r.fdisc.fPortArea}${r.fdisc.onLevel1FPort ? " = level 1's" : ` (level 1: ${r.fdisc.level1FPortArea ?? '?'})`}`,
    ),
  );
  out.push(
    field(
      'block devices',
      r.level1.blockDevices === null
        ? 'unknown'
        : `${r.level1.blockDevices.length === 0 ? 'none' : r.level1.blockDevices.join(' ')} (sg nodes: ${r.level1.sgNodes ?? '?'})`,
    ),
  );
  out.push(
    field(
      'serve stopped',
      r.level1.serveExit === null
        ? 'unknown'
        : `exit status ${r.level1.serveExit}, fc_vports left: ${r.level1.vportsAfter ?? '?'}`,
    ),
  );
  out.push('');
  out.push(`VM (the guest model on serve --backend host:${r.level1.host ?? '?'} in level 1)`);
  out.push(field('WWPN', r.vm.wwpn));
  out.push(field('WWNN', r.vm.wwnn));
  out.push(field('link up', r.vm.linkUpMs === null ? 'never' : `after ${r.vm.linkUpMs} ms`));
  out.push(
    field(
      'targets',
      r.vm.targets.length === 0
        ? 'none'
        : r.vm.targets.map((t) => `${t.nportId} ${t.wwpn ?? '(not in the SAN!)'}`).join(', '),
    ),
  );
  out.push(field('LUNs', r.vm.luns.length === 0 ? 'none' : r.vm.luns.join(', ')));
  if (r.vm.io.length === 0) out.push(field('verified I/O', 'none'));
  for (const io of r.vm.io) {
    out.push(
      field(
        'verified I/O',
        `LUN ${io.lun} @ LBA ${io.startLba}: ${formatSize(io.bytes)} written and read back, ${io.writes} writes, ${io.reads} reads, ` +
          `errors ${io.errors}, mismatches ${io.mismatches}, ${io.mibPerSecond ?? '?'} MiB/s (${formatSize(2 * io.bytes)} in ${io.elapsedMs} ms)`,
      ),
    );
    for (const s of io.errorSamples) out.push(`    ${s}`);
  }
  out.push(field('exit status', r.vm.exitStatus === null ? 'none' : String(r.vm.exitStatus)));
  out.push('');
  out.push(`guest: ${r.guest.kernel ?? 'kernel ?'}, ${r.guest.accel}, exit status ${r.guest.exitStatus ?? 'none'}`);
  out.push(
    `total time: ${r.timings.totalSeconds.toFixed(1)} s (${r.timings.steps.map((s) => `${s.step} ${s.seconds.toFixed(1)} s`).join(', ')})`,
  );
  if (r.warnings.length > 0) {
    out.push('');
    out.push('warnings:');
    for (const w of r.warnings) out.push(`  - ${w}`);
  }
  if (!r.ok) {
    out.push('');
    out.push('FAILED:');
    for (const f of r.failures) out.push(`  - ${f}`);
    const logs = Object.entries(r.logs);
    if (logs.length > 0) {
      out.push('logs:');
      for (const [name, path] of logs) out.push(`  ${name.padEnd(10)} ${path}`);
    }
  }
  return out.join('\n') + '\n';
}

// ------------------------------------------------------------------------------------ run

/** Runs the two-level lab; throws LabUsageError for bad input and LabStepError for a failed step. */
export async function runHostLab(options: HostLabOptions, reporter: LabReporter): Promise<HostLabReport> {
  const names = hostLabNames(options.wwpn);
  const ioMiB = checkHostLabIoMiB(options.ioMiB ?? HOST_LAB_DEFAULTS.ioMiB);
  const blocks = (ioMiB * MIB) / BLOCK;
  const root = packageRoot();
  const cli = options.cliPath ?? join(root, 'bin', 'npiv-hba.js');
  const session = await LabSession.open(options.workDir, reporter, options.signal);
  const { workDir, ownWorkDir, logs, processes, sockets } = session;
  const step = <T>(name: string, work: () => Promise<T>): Promise<T> => session.step(name, work);
  const checkSocketPath = (path: string): void => session.checkSocketPath(path);
  let failed = true;

  try {
    await step('guest environment', async () => {
      await session.prepareGuest({
        projectRoot: root,
        cacheDir: options.cacheDir,
        timeoutMs: LAB_DEFAULTS.prepareTimeoutMs,
      });
      // Level 1 runs npiv-hba with the rootfs's Node.js (prepare.sh installs nodejs).
      const rootfs = guestEnvironment(options.cacheDir).rootfs;
      if (!existsSync(join(rootfs, 'usr/bin/node')))
        throw new Error(
          `the guest environment's rootfs ${rootfs} has no Node.js (usr/bin/node), which level 1 needs to run npiv-hba: rebuild it with scripts/guest/prepare.sh`,
        );
      if (!existsSync(join(root, 'dist', 'src', 'vm-model', 'main.js')))
        throw new Error(`${join(root, 'dist')} has no build of the VM model: run \`npm run build\``);
    });

    const { link, control } = await step('starting the SAN', async () => {
      const configPath = join(workDir, 'san.json');
      const vmVolumeMiB = Math.max(32, ioMiB);
      await writeFile(
        configPath,
        `${JSON.stringify(twoLevelSanConfig({ names, vmLun: TWO_LEVEL_VM_LUN, vmVolumeSize: `${vmVolumeMiB}MiB` }), null, 2)}\n`,
      );
      return session.startSan({ cli, configPath, timeoutMs: LAB_DEFAULTS.sanStartTimeoutMs });
    });

    const socket = join(workDir, 'level1.sock');
    await step('starting the level-1 HBA', async () => {
      checkSocketPath(socket);
      logs.level1 = join(workDir, 'level1.log');
      await claimSocketPath(socket);
      sockets.push(socket);
      reporter.detail(`level 1: ${names.level1.wwpn}, NPIV grant for the VM ${names.vm.wwpn}`);
      const serve = startCliProcess({
        name: 'npiv-hba serve (level 1)',
        cli,
        args: [
          'serve',
          '--socket',
          socket,
          '--wwpn',
          names.level1.wwpn,
          '--wwnn',
          names.level1.wwnn,
          '--san',
          link,
          '--npiv-wwpn',
          `${names.vm.wwpn}:${names.vm.wwnn}`,
        ],
        logFile: logs.level1,
        cwd: workDir,
      });
      processes.push(serve);
      await waitForSocket(serve, socket, LAB_DEFAULTS.serveStartTimeoutMs, options.signal);
    });

    const sanStatus = (): Promise<SanStatus | null> => readSanStatus(control, LAB_DEFAULTS.statusTimeoutMs);
    // The VM's FDISC exists only while serve runs in level 1: the switch is asked once the host
    // vport is Active (serve's socket is there), and again when the VM has its LUNs (its I/O
    // follows, then the script stops serve); the later answer is reported.
    let statusAtVport: Promise<SanStatus | null> | null = null;
    let statusAtLuns: Promise<SanStatus | null> | null = null;
    const onLine = (line: string): void => {
      if (line.startsWith('GUEST:BOOT ')) reporter.detail('level-1 kernel booted; loading qla2xxx');
      else if (line.startsWith('GUEST:L1 ')) reporter.detail('level 1 Online; starting serve --backend host');
      else if (line.startsWith('GUEST:VPORTS ')) {
        reporter.detail('host vport created; starting the VM');
        statusAtVport ??= sanStatus();
      } else if (line.startsWith('GUEST:VM{"step":"luns"')) {
        reporter.detail(`VM: verified I/O (${ioMiB} MiB)`);
        statusAtLuns ??= sanStatus();
      } else if (line.startsWith('GUEST:VM-EXIT ')) reporter.detail('stopping serve (vport_delete)');
    };
    const accel = options.accel ?? chooseAccelerator();
    const guestTimeoutMs = options.guestTimeoutMs ?? HOST_LAB_DEFAULTS.guestTimeoutMs;
    logs.guest = join(workDir, 'guest.log');
    const run = await step(GUEST_STEP, async () => {
      reporter.detail(`booting (${accel})`);
      return runGuest({
        devices: [socket],
        script: twoLevelGuestScript({ vm: names.vm, blocks, seed: HOST_LAB_DEFAULTS.seed, flapWaitMs: 0 }),
        shareRootfs: true,
        shares: [{ tag: PROJECT_SHARE_TAG, path: root }],
        memMiB: HOST_LAB_DEFAULTS.guestMemMiB,
        loadQla: false,
        timeoutMs: guestTimeoutMs,
        kernelArgs: LAB_KERNEL_ARGS,
        logFile: logs.guest!,
        accel,
        onLine,
        ...(options.cacheDir !== undefined ? { cacheDir: options.cacheDir } : {}),
        ...(options.signal !== undefined ? { signal: options.signal } : {}),
      });
    });
    if (run.aborted) throw session.interrupted(GUEST_STEP);
    const extra = guestRunProblems(run, 'level-1 guest', guestTimeoutMs);
    const status = (await (statusAtLuns ?? Promise.resolve(null))) ?? (await (statusAtVport ?? Promise.resolve(null)));
    const boot = run.guestLines.find((l) => l.startsWith('BOOT kernel='));
    const report = buildHostLabReport({
      names,
      observation: parseTwoLevelLines(run.guestLines),
      status,
      guest: {
        accel,
        kernel: boot ? (/kernel=(\S+)/.exec(boot)?.[1] ?? null) : null,
        exitStatus: run.exitStatus,
        kernelProblems: run.kernelProblems,
      },
      timings: { totalSeconds: (Date.now() - session.started) / 1000, steps: [...session.steps] },
      workDir,
      logs: { ...logs },
      failures: extra,
    });
    if (ownWorkDir && report.ok) {
      report.workDir = null;
      report.logs = {};
    }
    reporter.finish();
    failed = !report.ok;
    return report;
  } finally {
    await session.close(failed);
  }
}
