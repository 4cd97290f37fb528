/**
 * Part 3 — end to end, in one real-guest run (QEMU 11 + the Debian guest kernel of scripts/guest/,
 * TCG unless hardware KVM is loaded): one guest carries all three controllers, and fio runs 4 KiB
 * random read/write at QD1 and QD32 and 128 KiB sequential read, each time-based, job by job on
 * every path in turn, against equal RAM-backed volumes through
 *   (a) npiv-hba: vfio-user-pci → the production VportHba (run in this process with counters,
 *       see bench/lib/counting-hba.ts) → `npiv-hba san` (RAM volume), driver qla2xxx;
 *   (b) QEMU's megasas (emulated LSI MegaRAID SAS 1078) + scsi-hd on a /dev/shm file, megaraid_sas;
 *   (c) QEMU's virtio-scsi-pci + scsi-hd on a /dev/shm file, virtio_scsi;
 * then (d) fio on the host against a /dev/shm backing file of the same size (the limit).
 * While each guest job runs, the counters of the npiv-hba path (vfio-user accesses, interrupts,
 * DMA, SAN frames, CPU of the HBA / SAN / QEMU processes) are sampled at its start and end
 * markers for the profile part.
 */
import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, openSync, rmSync, writeSync, mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { randomFillSync } from 'node:crypto';
import { guestEnvironment, runGuest } from '../../src/harness/guest.js';
import { Initiator } from '../../src/fc/initiator.js';
import { cpuTimeMs, listPids, parentPid, processArgv } from '../../src/util/proc.js';
import { startSan, startServe } from '../lib/procs.js';
import { startCountingHba, diffCounters, zeroCounters, type HbaCounters } from '../lib/counting-hba.js';
import { framesForwarded } from '../lib/san-control.js';
import { parseFioJson, type FioFigures } from '../lib/fio.js';
import { ratio } from '../lib/stats.js';
import { renderBarChart } from '../lib/svg.js';
import { loadPart, resultsDir, saveChart } from '../lib/results.js';
import { EMU_WWNN, EMU_WWPN, TARGET_WWNN, TARGET_WWPN } from './emulator.js';
import type { PartContext, PartOutput } from './context.js';

export const E2E_VOLUME_MIB = 128;
const PRECONDITION_WWPN = 0xc050_76ff_e500_00ffn;
const PRECONDITION_CHUNK = 1024 * 1024;
const UNIT_ATTENTION_RETRIES = 4;
const RAM_DIR = '/dev/shm';
/** Boot, module loads and disk discovery; generous because the TCG guest shares 2 cores with everything else. */
const BOOT_BUDGET_MS = 420_000;
const PER_JOB_OVERHEAD_MS = 15_000;
/** Guest RAM: the harness default, as in the project's guest tests. */
const GUEST_MEM_MIB = 512;

export interface FioJob {
  name: string;
  rw: 'randread' | 'randwrite' | 'read';
  bs: string;
  iodepth: number;
}

export const FIO_JOBS: FioJob[] = [
  { name: 'randread-4k-qd1', rw: 'randread', bs: '4k', iodepth: 1 },
  { name: 'randwrite-4k-qd1', rw: 'randwrite', bs: '4k', iodepth: 1 },
  { name: 'randread-4k-qd32', rw: 'randread', bs: '4k', iodepth: 32 },
  { name: 'randwrite-4k-qd32', rw: 'randwrite', bs: '4k', iodepth: 32 },
  { name: 'seqread-128k-qd8', rw: 'read', bs: '128k', iodepth: 8 },
];

export const PATHS = ['npiv-hba', 'megasas', 'virtio-scsi', 'host'] as const;
export type PathName = (typeof PATHS)[number];
/** The guest driver bound to the device under each guest path's SCSI host. */
const GUEST_DRIVER: Record<Exclude<PathName, 'host'>, string> = {
  'npiv-hba': 'qla2xxx',
  megasas: 'megaraid_sas',
  'virtio-scsi': 'virtio_scsi',
};
/** Modules of the peers' guest drivers (the base initramfs carries the FC stack only). */
const PEER_MODULES: Record<Exclude<GuestPath, 'npiv-hba'>, string> = {
  megasas: 'kernel/drivers/scsi/megaraid/megaraid_sas.ko.xz',
  'virtio-scsi': 'kernel/drivers/scsi/virtio_scsi.ko.xz',
};

export interface JobSample {
  /** seconds between the guest's start and end markers */
  wallSeconds: number;
  hbaCpuMs: number;
  sanCpuMs: number;
  qemuCpuMs: number | null;
  sanFrames: number | null;
  counters: HbaCounters;
}

export interface E2eRow {
  job: string;
  results: Record<PathName, FioFigures | null>;
  /** IOPS ratio of each path to npiv-hba (path ÷ npiv-hba) */
  iopsRatioToNpiv: Record<PathName, number | null>;
}

export interface E2eData {
  volumeMiB: number;
  runtimeSeconds: number;
  accelerator: string;
  rows: E2eRow[];
  /** per guest path and job: what the processes did while it ran */
  samples: Record<string, Record<string, JobSample>>;
  /** per path: when its figures were measured (paths carried over by --e2e-paths keep their date) */
  measuredAt?: Record<string, string>;
  /** per guest path: the script's exit status (null: it never finished) */
  guestExitStatus: Record<string, number | null>;
  problems: string[];
}

export type GuestPath = Exclude<PathName, 'host'>;

/** The shell variable holding a path's disk name in the guest script. */
const diskVar = (path: GuestPath): string => `disk_${path.replace(/-/g, '_')}`;

/**
 * The script of the benchmark guest: load the peers' drivers, find every path's disk, then run
 * each fio job on every path in turn (job by job, so the paths are measured side by side under
 * the same machine load).
 */
export function guestScript(runtimeSeconds: number, jobs: readonly FioJob[], paths: readonly GuestPath[]): string {
  // qla2xxx is loaded at boot by the harness; the peers' modules ride in the initramfs.
  const loads = paths
    .filter((p) => p !== 'npiv-hba')
    .map(
      (p) =>
        `echo "GUEST:STAGE insmod ${GUEST_DRIVER[p]}"\ninsmod /lib/modules/bench-${GUEST_DRIVER[p]}.ko || echo "GUEST:PROBLEM insmod ${GUEST_DRIVER[p]} failed"`,
    )
    .join('\n');
  const waits = paths
    .map(
      (p) => `echo "GUEST:STAGE waiting for the ${p} disk"
wait_until 120 find_disk ${GUEST_DRIVER[p]} >/dev/null || {
  echo "GUEST:PROBLEM no disk behind ${GUEST_DRIVER[p]}; sd disks: $(for b in /sys/block/sd*; do echo "$b=$(readlink -f $b/device)"; done | tr '\\n' ' ')"
  exit 1
}
${diskVar(p)}=$(find_disk ${GUEST_DRIVER[p]})
echo "GUEST:DISK ${p} $${diskVar(p)} $(cat /sys/block/$${diskVar(p)}/size)"`,
    )
    .join('\n');
  const jobLines = jobs
    .flatMap((j) => paths.map((p) => `run_job ${p} "$${diskVar(p)}" ${j.name} ${j.rw} ${j.bs} ${j.iodepth}`))
    .join('\n');
  return `
${loads}
# find_disk DRIVER: the first sd disk whose SCSI host sits on a device bound to DRIVER (the
# host's parent: the PCI function, or the virtio device). Not the host's proc_name: qla2xxx
# leaves it unset.
find_disk() {
  for b in \${SYSFS:-/sys}/block/sd*; do
    [ -e "$b/device" ] || continue
    parent=$(readlink -f "$b/device" | sed -n 's#^\\(.*\\)/host[0-9]*/.*#\\1#p')
    [ -n "$parent" ] || continue
    if [ "$(basename "$(readlink -f "$parent/driver")")" = "$1" ]; then echo "\${b##*/}"; return 0; fi
  done
  return 1
}
run_job() {
  echo "GUEST:FIO-START $1 $3"
  fio --name=$3 --filename=/dev/$2 --rw=$4 --bs=$5 --iodepth=$6 --ioengine=libaio --direct=1 \\
      --time_based --runtime=${runtimeSeconds} --norandommap --randrepeat=0 --group_reporting \\
      --output-format=json --output=/tmp/fio.json > /tmp/fio.log 2>&1
  st=$?
  echo "GUEST:FIO-END $1 $3 $st"
  echo "GUEST:FIO-JSON $1 $3 $(tr -d '\\n\\t' < /tmp/fio.json)"
  [ $st -eq 0 ] || { echo "GUEST:PROBLEM fio $1 $3 status $st: $(tr '\\n' ' ' < /tmp/fio.log | cut -c1-300)"; }
}
${waits}
${jobLines}
exit 0
`;
}

function fillFile(path: string, mib: number): void {
  const fd = openSync(path, 'w');
  try {
    const chunk = new Uint8Array(PRECONDITION_CHUNK);
    for (let i = 0; i < mib; i++) {
      randomFillSync(chunk);
      writeSync(fd, chunk);
    }
  } finally {
    closeSync(fd);
  }
}

/** Writes the whole SAN volume once (non-zero data), so reads hit allocated memory like the peers' files. */
async function preconditionSanVolume(link: string): Promise<void> {
  const host = await Initiator.connect(link, {
    wwpn: PRECONDITION_WWPN,
    wwnn: PRECONDITION_WWPN - 1n,
    exchangeTimeoutMs: 30_000,
  });
  try {
    const [t] = await host.discoverTargets();
    if (!t) throw new Error('precondition: the SAN lists no target');
    await host.plogi(t.nportId);
    await host.prli(t.nportId);
    // The first commands of a new I_T nexus get UNIT ATTENTION (power on / reset): consume them.
    for (let i = 0; i < UNIT_ATTENTION_RETRIES; i++) {
      const tur = await host.scsiCommand(t.nportId, { lun: 0, cdb: new Uint8Array(6), direction: 'none' });
      if (tur.status === 0) break;
    }
    const data = new Uint8Array(PRECONDITION_CHUNK);
    const blocks = PRECONDITION_CHUNK / 512;
    for (let i = 0; i < E2E_VOLUME_MIB; i++) {
      randomFillSync(data);
      const cdb = new Uint8Array(10);
      cdb[0] = 0x2a;
      new DataView(cdb.buffer).setUint32(2, i * blocks, false);
      new DataView(cdb.buffer).setUint16(7, blocks, false);
      const r = await host.scsiCommand(t.nportId, { lun: 0, cdb, direction: 'write', dataOut: data });
      if (r.status !== 0) throw new Error(`precondition WRITE status ${r.status}`);
    }
  } finally {
    host.closeLink('precondition done');
  }
}

/**
 * The QEMU process whose command line names `marker` (our socket or a peer's backing file). The
 * harness starts QEMU under `timeout`, whose command line names the marker too: of the matches,
 * take the one whose parent is also a match (QEMU itself), else the only one.
 */
function findQemuPid(marker: string): number | null {
  const matches = new Map<number, number>(); // pid → parent pid
  for (const pid of listPids() ?? []) {
    const cmd = processArgv(pid)?.join('\0');
    if (cmd === undefined || !cmd.includes('qemu-system') || !cmd.includes(marker)) continue;
    const ppid = parentPid(pid);
    if (ppid !== null) matches.set(pid, ppid); // else gone meanwhile
  }
  for (const [pid, ppid] of matches) if (matches.has(ppid)) return pid;
  return matches.size === 1 ? [...matches.keys()][0]! : null;
}

function hostFio(
  file: string,
  job: FioJob,
  runtimeSeconds: number,
): { command: string[]; figures: FioFigures | null; error: string | null } {
  // tmpfs has no O_DIRECT: the host limit is buffered I/O on RAM (page cache = the backing store).
  const command = [
    'fio',
    `--name=${job.name}`,
    `--filename=${file}`,
    `--rw=${job.rw}`,
    `--bs=${job.bs}`,
    `--iodepth=${job.iodepth}`,
    '--ioengine=libaio',
    '--direct=0',
    '--time_based',
    `--runtime=${runtimeSeconds}`,
    '--norandommap',
    '--randrepeat=0',
    '--group_reporting',
    '--output-format=json',
  ];
  const r = spawnSync(command[0]!, command.slice(1), { encoding: 'utf8', timeout: (runtimeSeconds + 30) * 1000 });
  if (r.status !== 0)
    return { command, figures: null, error: `host fio ${job.name}: ${r.error?.message ?? r.stderr.slice(0, 300)}` };
  try {
    return { command, figures: parseFioJson(r.stdout, job.rw), error: null };
  } catch (err) {
    return { command, figures: null, error: `host fio ${job.name}: ${(err as Error).message}` };
  }
}

export async function runE2ePart(ctx: PartContext): Promise<PartOutput<E2eData>> {
  const env = guestEnvironment();
  const runtime = ctx.seconds;
  const jobs = ctx.quick ? FIO_JOBS.slice(0, 1) : FIO_JOBS;
  const problems: string[] = [];
  const shm = mkdtempSync(join(existsSync(RAM_DIR) ? RAM_DIR : ctx.workDir, 'npiv-bench-'));
  const files = {
    megasas: join(shm, 'megasas.img'),
    virtio: join(shm, 'virtio-scsi.img'),
    host: join(shm, 'host.img'),
  };
  for (const f of Object.values(files)) fillFile(f, E2E_VOLUME_MIB);

  // Guest modules for the peers (the base initramfs loads only the FC stack).
  const modulesDir = join(env.rootfs, 'usr/lib/modules', env.kernelRelease);
  const peerModule = (path: Exclude<GuestPath, 'npiv-hba'>) => {
    const rel = PEER_MODULES[path];
    const xz = spawnSync('xz', ['-dc', join(modulesDir, rel)], { maxBuffer: 64 * 1024 * 1024 });
    if (xz.status !== 0) throw new Error(`cannot decompress ${rel}: ${xz.stderr.toString()}`);
    return [{ path: `/lib/modules/bench-${GUEST_DRIVER[path]}.ko`, data: new Uint8Array(xz.stdout) }];
  };

  const san = await startSan({
    workDir: ctx.workDir,
    initiators: [EMU_WWPN, PRECONDITION_WWPN],
    targetWwpn: TARGET_WWPN,
    targetWwnn: TARGET_WWNN,
    volumes: [{ name: 'e2e', sizeMiB: E2E_VOLUME_MIB }],
  });
  const socket = join(ctx.workDir, 'vport0.sock');
  let hba: ReturnType<typeof startCountingHba> | null = null;
  let serve: Awaited<ReturnType<typeof startServe>> | null = null;
  const selected = new Set<PathName>(ctx.e2ePaths ?? PATHS);
  const samples: Record<string, Record<string, JobSample>> = {};
  const fio: Record<string, Record<string, FioFigures | null>> = {};
  const guests: { path: GuestPath; marker: string; qemuArgs: string[] }[] = [
    { path: 'npiv-hba', marker: socket, qemuArgs: [] },
    {
      path: 'megasas',
      marker: files.megasas,
      qemuArgs: [
        '-drive',
        `file=${files.megasas},format=raw,if=none,id=dmeg,cache=writeback`,
        '-device',
        'megasas,id=meg0',
        '-device',
        'scsi-hd,drive=dmeg,bus=meg0.0',
      ],
    },
    {
      path: 'virtio-scsi',
      marker: files.virtio,
      qemuArgs: [
        '-drive',
        `file=${files.virtio},format=raw,if=none,id=dvio,cache=writeback`,
        '-device',
        'virtio-scsi-pci,id=vscsi0',
        '-device',
        'scsi-hd,drive=dvio,bus=vscsi0.0',
      ],
    },
  ];
  const guestExitStatus: Record<string, number | null> = {};
  const guestCommands: string[] = [];
  try {
    // NPIV_BENCH_PRECONDITION=0 skips it (the SAN volume then reads never-written chunks as zeros).
    if (process.env.NPIV_BENCH_PRECONDITION !== '0') {
      ctx.log('e2e: preconditioning the SAN volume');
      await preconditionSanVolume(san.link);
    } else
      problems.push(
        'the SAN volume was not preconditioned (NPIV_BENCH_PRECONDITION=0): npiv-hba reads of never-written blocks are served as zeros',
      );
    if (ctx.e2eHba === 'process') serve = await startServe(ctx.workDir, 'vport0', san.link, EMU_WWPN, EMU_WWNN);
    else hba = startCountingHba(socket, san.link, EMU_WWPN, EMU_WWNN);
    const sanPid = san.proc.child.pid!;
    const hbaCpuMs = async (): Promise<number> => {
      if (serve) return cpuTimeMs(serve.proc.child.pid!);
      const u = process.cpuUsage();
      return (u.user + u.system) / 1000;
    };
    let qemuPid: number | null = null;
    let qemuMarker = socket;
    interface Mark {
      at: number;
      cpu: Promise<number>;
      counters: HbaCounters;
      san: Promise<number>;
      frames: Promise<number | null>;
      qemu: Promise<number | null>;
    }
    const starts = new Map<string, Mark>();
    const pending: Promise<void>[] = [];
    const mark = (): Mark => ({
      at: performance.now(),
      cpu: hbaCpuMs(),
      // Device-boundary counters exist only for the in-process HBA (zeros with a serve process).
      counters: hba ? { ...hba.counters } : zeroCounters(),
      san: cpuTimeMs(sanPid),
      frames: framesForwarded(san.control).catch(() => null),
      qemu: qemuPid === null ? Promise.resolve(null) : cpuTimeMs(qemuPid).catch(() => null),
    });
    const onLine = (line: string): void => {
      const m = /GUEST:FIO-(START|END|JSON) (\S+) (\S+)(?: (.*))?$/.exec(line);
      if (!m) {
        if (line.includes('GUEST:STAGE') || line.includes('GUEST:PROBLEM') || line.includes('GUEST:DISK'))
          ctx.log(`e2e: ${line.slice(line.indexOf('GUEST:') + 6)}`);
        return;
      }
      const [, kind, path, job, rest] = m as unknown as [string, string, string, string, string | undefined];
      const key = `${path} ${job}`;
      if (kind === 'START') {
        qemuPid ??= findQemuPid(qemuMarker);
        starts.set(key, mark());
        ctx.log(`e2e: ${path} ${job} …`);
      } else if (kind === 'END') {
        const s = starts.get(key);
        if (!s) return;
        const e = mark();
        pending.push(
          (async () => {
            const [s0, s1, f0, f1, q0, q1, c0, c1] = await Promise.all([
              s.san,
              e.san,
              s.frames,
              e.frames,
              s.qemu,
              e.qemu,
              s.cpu,
              e.cpu,
            ]);
            rowOf(samples, path)[job] = {
              wallSeconds: (e.at - s.at) / 1000,
              hbaCpuMs: c1 - c0,
              sanCpuMs: s1 - s0,
              qemuCpuMs: q0 !== null && q1 !== null ? q1 - q0 : null,
              sanFrames: f0 !== null && f1 !== null ? f1 - f0 : null,
              counters: diffCounters(e.counters, s.counters),
            };
          })().catch((err: unknown) => void problems.push(`sampling ${key}: ${String(err)}`)),
        );
      } else if (kind === 'JSON') {
        const rw = FIO_JOBS.find((j) => j.name === job)?.rw ?? 'read';
        try {
          rowOf(fio, path)[job] = parseFioJson(rest ?? '', rw);
          const f = fio[path]![job]!;
          ctx.log(
            `e2e: ${path} ${job}: ${f.iops.toFixed(0)} IOPS, p50 ${f.clatP50Us.toFixed(0)} µs, p99 ${f.clatP99Us.toFixed(0)} µs`,
          );
        } catch (err) {
          rowOf(fio, path)[job] = null;
          problems.push(`fio JSON of ${key}: ${(err as Error).message}`);
        }
      }
    };
    // One guest carries every selected controller: the paths run job by job in the same boot.
    const chosen = guests.filter((x) => selected.has(x.path));
    if (chosen.length > 0) {
      const paths = chosen.map((g) => g.path);
      qemuPid = null;
      qemuMarker = chosen[0]!.marker;
      const timeoutMs = BOOT_BUDGET_MS + paths.length * jobs.length * (runtime * 1000 + PER_JOB_OVERHEAD_MS);
      ctx.log(`e2e: booting one guest with ${paths.join(', ')} (timeout ${(timeoutMs / 1000).toFixed(0)} s)`);
      const run = await runGuest({
        devices: paths.includes('npiv-hba') ? [socket] : [],
        script: guestScript(runtime, jobs, paths),
        extraFiles: chosen.flatMap((g) => (g.path === 'npiv-hba' ? [] : peerModule(g.path))),
        qemuArgs: chosen.flatMap((g) => g.qemuArgs),
        loadQla: paths.includes('npiv-hba'),
        memMiB: GUEST_MEM_MIB,
        timeoutMs,
        onLine,
        // Kept after the run (bench/results/raw is not committed) for post-mortems.
        logFile: join(resultsDir(), 'raw', 'e2e-guest.log'),
      });
      await Promise.all(pending);
      guestCommands.push(run.command.join(' '));
      for (const l of run.guestLines) if (l.startsWith('PROBLEM')) problems.push(l);
      if (run.timedOut) problems.push('the guest run timed out');
      for (const p of paths) {
        guestExitStatus[p] = run.exitStatus;
        if (!fio[p] || Object.keys(fio[p]!).length === 0) {
          problems.push(
            `${p}: no fio result (guest exit status ${run.exitStatus ?? 'none'}; serial log in bench/results/raw/e2e-guest.log)`,
          );
        }
      }
      if (run.kernelProblems.length) problems.push(...run.kernelProblems.slice(0, 5).map((p) => `guest kernel: ${p}`));
    }
  } finally {
    await hba?.close();
    await serve?.proc.stop();
    await san.proc.stop();
  }

  ctx.log('e2e: host fio on the backing file (the limit)');
  const hostCommands: string[] = [];
  for (const job of selected.has('host') ? jobs : []) {
    const r = hostFio(files.host, job, runtime);
    hostCommands.push(r.command.join(' ').replace(shm, '/dev/shm/<dir>'));
    rowOf(fio, 'host')[job.name] = r.figures;
    if (r.error) problems.push(r.error);
  }
  rmSync(shm, { recursive: true, force: true });

  // A subset run (--e2e-paths) keeps the other paths' figures from the previous e2e result.
  const previous = selected.size < PATHS.length ? loadPart<E2eData>('e2e') : null;
  const carried: string[] = [];
  const now = new Date().toISOString();
  const measuredAt: Record<string, string> = Object.fromEntries([...selected].map((p) => [p, now]));
  if (previous) {
    for (const p of PATHS) {
      if (selected.has(p)) continue;
      for (const r of previous.data.rows) rowOf(fio, p)[r.job] = r.results[p];
      if (previous.data.samples[p]) samples[p] = previous.data.samples[p]!;
      if (previous.data.guestExitStatus[p] !== undefined) guestExitStatus[p] = previous.data.guestExitStatus[p]!;
      carried.push(p);
      measuredAt[p] = previous.data.measuredAt?.[p] ?? previous.machine.date;
    }
  }
  const rows: E2eRow[] = jobs.map((j) => {
    const results = Object.fromEntries(PATHS.map((p) => [p, fio[p]?.[j.name] ?? null])) as Record<
      PathName,
      FioFigures | null
    >;
    const npiv = results['npiv-hba']?.iops ?? null;
    const iopsRatioToNpiv = Object.fromEntries(PATHS.map((p) => [p, ratio(results[p]?.iops, npiv)])) as Record<
      PathName,
      number | null
    >;
    return { job: j.name, results, iopsRatioToNpiv };
  });
  saveChart(
    'e2e',
    renderBarChart({
      title: 'End to end: fio in the guest per path (host fio = the limit)',
      unit: 'IOPS',
      series: [...PATHS],
      groups: rows.map((r) => ({ label: r.job, values: PATHS.map((p) => r.results[p]?.iops ?? null) })),
      log: true,
    }),
  );
  const data: E2eData = {
    measuredAt,
    volumeMiB: E2E_VOLUME_MIB,
    runtimeSeconds: runtime,
    accelerator: guestCommands.some((c) => c.includes('-accel kvm')) ? 'kvm' : 'tcg',
    rows,
    samples,
    guestExitStatus,
    problems,
  };
  return {
    data,
    commands: [
      'node bench/run.js --only e2e',
      ...guestCommands.map(
        (c) =>
          `QEMU (via src/harness/guest.ts runGuest): ${c.replaceAll(ctx.workDir, '<work>').replaceAll(shm, '/dev/shm/<dir>')}`,
      ),
      `guest, per path and job: fio --name=<job> --filename=/dev/<disk> --rw=<rw> --bs=<bs> --iodepth=<qd> --ioengine=libaio --direct=1 --time_based --runtime=${runtime} --norandommap --randrepeat=0 --group_reporting --output-format=json`,
      ...hostCommands,
    ],
    bottleneck: e2eBottleneck(data),
    notes: [
      `Volumes: ${E2E_VOLUME_MIB} MiB each, written once with random data before the run (SAN RAM volume over FCP; megasas/virtio-scsi/host files in /dev/shm).`,
      ctx.e2eHba === 'process'
        ? 'The npiv-hba HBA ran as its own `npiv-hba serve` process (--e2e-hba process): CPU from /proc, no device-boundary counters.'
        : 'The npiv-hba HBA runs inside the benchmark process (production VportHba with counters) instead of a separate `npiv-hba serve`, so the profile can count its vfio-user accesses, interrupts and DMA.',
      ...(previous
        ? [
            `Paths ${carried.map((p) => `${p} (measured ${measuredAt[p]})`).join(', ')} carried over from earlier e2e runs (this run: ${[...selected].join(', ')}).`,
          ]
        : []),
      'Host fio uses buffered I/O (tmpfs has no O_DIRECT): it measures the memory path the peers end in.',
      ...problems.map((p) => `problem: ${p}`),
    ],
  };
}

/**
 * The bottleneck of each path at 4k QD1 read (the latency case), from the CPU each process spent
 * per I/O while that path's job ran: npiv-hba has three processes on its path (QEMU + guest, the
 * HBA, the SAN), the peers one (QEMU, whose TCG vCPUs run the guest and whose main loop runs the
 * device model), the host path fio itself.
 */
export function e2eBottleneck(d: E2eData): string {
  const job = 'randread-4k-qd1';
  const row = d.rows.find((r) => r.job === job);
  const fio = row?.results['npiv-hba'];
  const sample = d.samples['npiv-hba']?.[job];
  if (!row || !sample || !fio || fio.ios <= 0) return 'not measured (the npiv-hba 4k QD1 read job did not run)';
  const perIo = (ms: number | null | undefined, ios: number) =>
    ms === null || ms === undefined ? null : (ms * 1000) / ios;
  const shares = [
    { who: 'QEMU + the TCG guest (qla2xxx, block layer, fio)', us: perIo(sample.qemuCpuMs, fio.ios) },
    { who: 'the HBA (vfio-user server, ISP model, FCP initiator)', us: perIo(sample.hbaCpuMs, fio.ios) },
    { who: 'the SAN process', us: perIo(sample.sanCpuMs, fio.ios) },
  ]
    .filter((s): s is { who: string; us: number } => s.us !== null)
    .sort((a, b) => b.us - a.us);
  const top = shares[0]!;
  const fmt = (r: number | null | undefined) => (r === null || r === undefined ? '?' : `${r.toFixed(2)}×`);
  const clauses = [
    `(a) npiv-hba at 4k QD1 read (${fio.clatP50Us.toFixed(0)} µs p50): ${top.who} uses the most CPU per I/O (${top.us.toFixed(0)} µs; ` +
      shares
        .slice(1)
        .map((s) => `${s.who} ${s.us.toFixed(0)} µs`)
        .join(', ') +
      '): every I/O crosses three processes (QEMU → vfio-user → HBA → FC link → SAN and back), each an event-loop wake-up on a shared CPU',
  ];
  // Large transfers: the payload travels as 2 KiB FC frames, each handled by the HBA and the SAN.
  const seq = d.rows.find((r) => r.job === 'seqread-128k-qd8');
  const seqFio = seq?.results['npiv-hba'];
  const seqSample = d.samples['npiv-hba']?.['seqread-128k-qd8'];
  if (seq && seqFio && seqFio.ios > 0 && seqSample?.sanFrames) {
    const framesPerIo = seqSample.sanFrames / seqFio.ios;
    const usPerFrame = ((seqSample.hbaCpuMs + seqSample.sanCpuMs) * 1000) / seqSample.sanFrames;
    clauses[0] +=
      `; at 128k sequential read (${fmt(seq.iopsRatioToNpiv.megasas)} behind megasas) the cost is per FC frame: ` +
      `${framesPerIo.toFixed(1)} frames per I/O at ${usPerFrame.toFixed(0)} µs of HBA+SAN CPU each`;
  }
  for (const [path, label] of [
    ['megasas', '(b) megasas'],
    ['virtio-scsi', '(c) virtio-scsi'],
  ] as const) {
    const f = row.results[path];
    const q = f && f.ios > 0 ? perIo(d.samples[path]?.[job]?.qemuCpuMs, f.ios) : null;
    if (!f) continue;
    clauses.push(
      `${label} (${fmt(row.iopsRatioToNpiv[path])} the IOPS, ${f.clatP50Us.toFixed(0)} µs p50): one process, QEMU` +
        (q === null ? '' : `, ${q.toFixed(0)} µs of CPU per I/O`) +
        (path === 'megasas'
          ? ' — the TCG vCPUs emulating the guest and its MMIO exits into the megasas model'
          : ' — the TCG vCPUs emulating the guest; a virtqueue kick is one exit per request batch'),
    );
  }
  const host = row.results.host;
  if (host) {
    clauses.push(
      `(d) host fio (${fmt(row.iopsRatioToNpiv.host)}): fio's own CPU` +
        (host.cpuUsPerIo === undefined ? '' : ` (${host.cpuUsPerIo.toFixed(2)} µs per I/O)`) +
        ' copying from the page cache — no device, no guest',
    );
  }
  return clauses.join('; ') + '.';
}

/** The inner map of a two-level table, created on first use. */
function rowOf<T>(table: Record<string, Record<string, T>>, key: string): Record<string, T> {
  let row = table[key];
  if (!row) {
    row = {};
    table[key] = row;
  }
  return row;
}
