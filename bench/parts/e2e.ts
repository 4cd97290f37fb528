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
 *
 * Every job runs `repeats` times (the whole job × path sequence again), so each figure has a
 * spread, and ratios to megasas are taken per repeat (side by side, same machine load). Before
 * the jobs the guest idles for a measured window: QEMU's per-thread CPU in that window (vCPUs,
 * main loop, the vfio-user IOThread, others; /proc task stats) is subtracted from each job's, so
 * the CPU per I/O is the cost of I/O and not of a guest that merely runs. schedstat's run-queue
 * wait per timeslice of each thread is the price of one hand-off on this host.
 */
import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, rmSync, writeSync, mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { randomFillSync } from 'node:crypto';
import { guestEnvironment, runGuest } from '../../src/harness/guest.js';
import { Initiator } from '../../src/fc/initiator.js';
import { cpuTimeMs, listPids, parentPid, processArgv } from '../../src/util/proc.js';
import { startSan, startServe } from '../lib/procs.js';
import { startCountingHba, diffCounters, zeroCounters, type HbaCounters } from '../lib/counting-hba.js';
import { framesForwarded } from '../lib/san-control.js';
import { parseFioJson, type FioFigures } from '../lib/fio.js';
import { ratio, spread, type Spread } from '../lib/stats.js';
import { renderRangeChart } from '../lib/svg.js';
import { diffByRole, sampleThreads, totalUsage, type RoleUsage, type ThreadRole } from '../lib/threads.js';
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
/** Repeats of the whole job sequence (spread) and the measured idle window before it. */
export const DEFAULT_REPEATS = 3;
const IDLE_SECONDS = 10;
const QUICK_IDLE_SECONDS = 5;
/** --quick: the latency job and the throughput job only. */
const QUICK_JOBS = ['randread-4k-qd1', 'randread-4k-qd32'];

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
  /** 1-based repeat this sample belongs to */
  repeat?: number;
  /** QEMU per thread role over the job (CPU, run-queue wait, timeslices) */
  qemuThreads?: Record<ThreadRole, RoleUsage> | null;
  /** the HBA's and the SAN's main (event-loop) thread */
  hbaMain?: RoleUsage | null;
  sanMain?: RoleUsage | null;
}

/** CPU per second of the guest idling, to subtract from each job (ms of CPU per s of wall time). */
export interface IdleBaseline {
  seconds: number;
  qemuMsPerSecond: Record<ThreadRole, number> | null;
  hbaMsPerSecond: number;
  sanMsPerSecond: number;
}

/** One path at one job over the repeats. */
export interface PathSpread {
  iops: Spread | null;
  p50Us: Spread | null;
  p99Us: Spread | null;
  /** IOPS ÷ megasas IOPS of the same repeat */
  ratioToMegasas: Spread | null;
}

export interface E2eRow {
  job: string;
  results: Record<PathName, FioFigures | null>;
  /** IOPS ratio of each path to npiv-hba (path ÷ npiv-hba) */
  iopsRatioToNpiv: Record<PathName, number | null>;
  /** over the repeats (absent in results saved before repeats existed) */
  spread?: Partial<Record<PathName, PathSpread>>;
}

export interface E2eData {
  volumeMiB: number;
  runtimeSeconds: number;
  accelerator: string;
  rows: E2eRow[];
  /** per guest path and job: what the processes did while it ran (the median-IOPS repeat) */
  samples: Record<string, Record<string, JobSample>>;
  /** repeats of the job sequence */
  repeats?: number;
  /** per path and job, every repeat: fio figures and samples */
  repeatFio?: Record<string, Record<string, (FioFigures | null)[]>>;
  repeatSamples?: Record<string, Record<string, JobSample[]>>;
  idle?: IdleBaseline | null;
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
export function guestScript(
  runtimeSeconds: number,
  jobs: readonly FioJob[],
  paths: readonly GuestPath[],
  repeats = 1,
  idleSeconds = 0,
): string {
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
  const jobLines = Array.from({ length: repeats }, (_, r) =>
    jobs.flatMap((j) =>
      paths.map((p) => `run_job ${p} "$${diskVar(p)}" ${j.name} ${j.rw} ${j.bs} ${j.iodepth} ${r + 1}`),
    ),
  )
    .flat()
    .join('\n');
  const idle =
    idleSeconds > 0 ? `echo "GUEST:IDLE-START"\nsleep ${idleSeconds}\necho "GUEST:IDLE-END"` : '# no idle window';
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
  echo "GUEST:FIO-START $1 $3 $7"
  fio --name=$3 --filename=/dev/$2 --rw=$4 --bs=$5 --iodepth=$6 --ioengine=libaio --direct=1 \\
      --time_based --runtime=${runtimeSeconds} --norandommap --randrepeat=0 --group_reporting \\
      --output-format=json --output=/tmp/fio.json > /tmp/fio.log 2>&1
  st=$?
  echo "GUEST:FIO-END $1 $3 $7 $st"
  echo "GUEST:FIO-JSON $1 $3 $7 $(tr -d '\\n\\t' < /tmp/fio.json)"
  [ $st -eq 0 ] || { echo "GUEST:PROBLEM fio $1 $3 status $st: $(tr '\\n' ' ' < /tmp/fio.log | cut -c1-300)"; }
}
${waits}
${idle}
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
  const jobs = ctx.quick ? FIO_JOBS.filter((j) => QUICK_JOBS.includes(j.name)) : FIO_JOBS;
  const repeats = ctx.repeats ?? DEFAULT_REPEATS;
  const idleSeconds = ctx.quick ? QUICK_IDLE_SECONDS : IDLE_SECONDS;
  const repeatFio: Record<string, Record<string, (FioFigures | null)[]>> = {};
  const repeatSamples: Record<string, Record<string, JobSample[]>> = {};
  let idle: IdleBaseline | null = null;
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
      qemuThreads: ReturnType<typeof sampleThreads>;
      hbaThreads: ReturnType<typeof sampleThreads>;
      sanThreads: ReturnType<typeof sampleThreads>;
    }
    const hbaPid = (): number => (serve ? serve.proc.child.pid! : process.pid);
    let idleStart: Mark | null = null;
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
      qemuThreads: qemuPid === null ? [] : sampleThreads(qemuPid),
      hbaThreads: sampleThreads(hbaPid()),
      sanThreads: sampleThreads(sanPid),
    });
    /** The main (event-loop) thread's usage of a process between two samples. */
    const mainOf = (pid: number, a: Mark['sanThreads'], b: Mark['sanThreads']): RoleUsage | null =>
      b.length ? diffByRole(pid, a, b).main : null;
    const onLine = (line: string): void => {
      if (line.includes('GUEST:IDLE-START')) {
        qemuPid ??= findQemuPid(qemuMarker);
        idleStart = mark();
        ctx.log(`e2e: idle baseline (${idleSeconds} s) …`);
        return;
      }
      if (line.includes('GUEST:IDLE-END') && idleStart) {
        const s0 = idleStart;
        const e = mark();
        pending.push(
          (async () => {
            const [h0, h1, n0, n1] = await Promise.all([s0.cpu, e.cpu, s0.san, e.san]);
            const secs = (e.at - s0.at) / 1000;
            const q =
              qemuPid !== null && e.qemuThreads.length ? diffByRole(qemuPid, s0.qemuThreads, e.qemuThreads) : null;
            idle = {
              seconds: secs,
              qemuMsPerSecond: q
                ? (Object.fromEntries(Object.entries(q).map(([k, v]) => [k, v.cpuMs / secs])) as Record<
                    ThreadRole,
                    number
                  >)
                : null,
              hbaMsPerSecond: (h1 - h0) / secs,
              sanMsPerSecond: (n1 - n0) / secs,
            };
          })().catch((err: unknown) => void problems.push(`idle baseline: ${String(err)}`)),
        );
        return;
      }
      const m = /GUEST:FIO-(START|END|JSON) (\S+) (\S+) (\d+)(?: (.*))?$/.exec(line);
      if (!m) {
        if (line.includes('GUEST:STAGE') || line.includes('GUEST:PROBLEM') || line.includes('GUEST:DISK'))
          ctx.log(`e2e: ${line.slice(line.indexOf('GUEST:') + 6)}`);
        return;
      }
      const [, kind, path, job, repText, rest] = m as unknown as [
        string,
        string,
        string,
        string,
        string,
        string | undefined,
      ];
      const repeat = Number(repText);
      const key = `${path} ${job} ${repeat}`;
      if (kind === 'START') {
        qemuPid ??= findQemuPid(qemuMarker);
        starts.set(key, mark());
        ctx.log(`e2e: ${path} ${job} (repeat ${repeat}/${repeats}) …`);
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
            const sample: JobSample = {
              wallSeconds: (e.at - s.at) / 1000,
              hbaCpuMs: c1 - c0,
              sanCpuMs: s1 - s0,
              qemuCpuMs: q0 !== null && q1 !== null ? q1 - q0 : null,
              sanFrames: f0 !== null && f1 !== null ? f1 - f0 : null,
              counters: diffCounters(e.counters, s.counters),
              repeat,
              qemuThreads:
                qemuPid !== null && e.qemuThreads.length ? diffByRole(qemuPid, s.qemuThreads, e.qemuThreads) : null,
              hbaMain: mainOf(hbaPid(), s.hbaThreads, e.hbaThreads),
              sanMain: mainOf(sanPid, s.sanThreads, e.sanThreads),
            };
            rowOf(repeatSamples, path)[job] = [...(repeatSamples[path]?.[job] ?? []), sample];
          })().catch((err: unknown) => void problems.push(`sampling ${key}: ${String(err)}`)),
        );
      } else if (kind === 'JSON') {
        const rw = FIO_JOBS.find((j) => j.name === job)?.rw ?? 'read';
        const byJob = rowOf(repeatFio, path);
        const list = byJob[job] ?? [];
        byJob[job] = list;
        try {
          const f = parseFioJson(rest ?? '', rw);
          list[repeat - 1] = f;
          ctx.log(
            `e2e: ${path} ${job} (repeat ${repeat}): ${f.iops.toFixed(0)} IOPS, p50 ${f.clatP50Us.toFixed(0)} µs, p99 ${f.clatP99Us.toFixed(0)} µs`,
          );
        } catch (err) {
          list[repeat - 1] = null;
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
      // bench/results/raw/ is not committed: a fresh checkout has none.
      mkdirSync(join(resultsDir(), 'raw'), { recursive: true });
      const run = await runGuest({
        devices: paths.includes('npiv-hba') ? [socket] : [],
        script: guestScript(runtime, jobs, paths, repeats, idleSeconds),
        extraFiles: chosen.flatMap((g) => (g.path === 'npiv-hba' ? [] : peerModule(g.path))),
        // Thread names (vCPUs "CPU n/TCG", IOThreads "IO <name>") for the per-thread CPU split.
        qemuArgs: ['-name', 'npiv-bench,debug-threads=on', ...chosen.flatMap((g) => g.qemuArgs)],
        loadQla: paths.includes('npiv-hba'),
        memMiB: GUEST_MEM_MIB,
        timeoutMs,
        onLine,
        // Kept after the run (bench/results/raw is not committed) for post-mortems.
        logFile: join(resultsDir(), 'raw', 'e2e-guest.log'),
      });
      await Promise.all(pending);
      // Per path and job: the figures of the median-IOPS repeat stand for the job (profile part).
      for (const [path, byJob] of Object.entries(repeatFio)) {
        for (const [job, list] of Object.entries(byJob)) {
          const ok = list
            .map((f, i) => ({ f, i }))
            .filter((x): x is { f: FioFigures; i: number } => !!x.f)
            .sort((a, b) => a.f.iops - b.f.iops);
          const mid = ok[(ok.length - 1) >> 1];
          rowOf(fio, path)[job] = mid ? mid.f : null;
          const sample = mid ? repeatSamples[path]?.[job]?.find((x) => x.repeat === mid.i + 1) : undefined;
          if (sample) rowOf(samples, path)[job] = sample;
        }
      }
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
      if (previous.data.repeatFio?.[p]) repeatFio[p] = previous.data.repeatFio[p]!;
      if (previous.data.repeatSamples?.[p]) repeatSamples[p] = previous.data.repeatSamples[p]!;
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
    return { job: j.name, results, iopsRatioToNpiv, spread: pathSpreads(j.name, repeatFio, results) };
  });
  saveE2eCharts(rows);
  const data: E2eData = {
    measuredAt,
    volumeMiB: E2E_VOLUME_MIB,
    runtimeSeconds: runtime,
    accelerator: guestCommands.some((c) => c.includes('-accel kvm')) ? 'kvm' : 'tcg',
    rows,
    samples,
    repeats,
    repeatFio,
    repeatSamples,
    idle,
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

/** Spread over repeats per path; ratios to megasas pair repeat r of a path with repeat r of megasas. */
export function pathSpreads(
  job: string,
  repeatFio: Record<string, Record<string, (FioFigures | null)[]>>,
  results: Record<PathName, FioFigures | null>,
): Partial<Record<PathName, PathSpread>> {
  const out: Partial<Record<PathName, PathSpread>> = {};
  const meg = repeatFio.megasas?.[job] ?? [];
  for (const p of PATHS) {
    // The host path runs once per job (outside the guest): its single figure is its spread.
    const list = repeatFio[p]?.[job] ?? (results[p] ? [results[p]] : []);
    if (list.length === 0) continue;
    out[p] = {
      iops: spread(list.map((f) => f?.iops)),
      p50Us: spread(list.map((f) => f?.clatP50Us)),
      p99Us: spread(list.map((f) => f?.clatP99Us)),
      ratioToMegasas: spread(list.map((f, i) => ratio(f?.iops, meg[i]?.iops))),
    };
  }
  return out;
}

/** The guest paths compared to megasas, and the latency panel. */
const RATIO_PATHS: PathName[] = ['npiv-hba', 'virtio-scsi'];
const LATENCY_PATHS: PathName[] = ['npiv-hba', 'megasas', 'virtio-scsi'];

export function saveE2eCharts(rows: readonly E2eRow[]): void {
  saveChart(
    'e2e',
    renderRangeChart({
      title: 'End to end: IOPS relative to megasas in the same guest (1.0 = megasas)',
      unit: 'IOPS ÷ megasas IOPS, per repeat',
      series: RATIO_PATHS.map((p) => `${p} ÷ megasas`),
      reference: { value: 1, label: 'megasas' },
      groups: rows.map((r) => ({
        label: r.job,
        bars: RATIO_PATHS.map((p) => {
          const sp = r.spread?.[p]?.ratioToMegasas ?? null;
          return sp
            ? { value: sp.median, low: sp.min, high: sp.max }
            : { value: ratio(r.results[p]?.iops, r.results.megasas?.iops) };
        }),
      })),
    }),
  );
  saveChart(
    'e2e-latency',
    renderRangeChart({
      title: 'End to end: completion latency p50 and p99 (µs)',
      unit: 'µs, median over repeats',
      errorLabel: 'from p50 (end of the bar) to p99',
      perGroupScale: true,
      series: LATENCY_PATHS,
      groups: rows.map((r) => ({
        label: r.job,
        bars: LATENCY_PATHS.map((p) => {
          const sp = r.spread?.[p];
          const p50 = sp?.p50Us?.median ?? r.results[p]?.clatP50Us ?? null;
          const p99 = sp?.p99Us?.median ?? r.results[p]?.clatP99Us ?? null;
          return { value: p50, low: p50, high: p99 };
        }),
      })),
    }),
  );
}

export interface PerIoCosts {
  /** QEMU CPU µs per I/O per thread role and in total, idle baseline subtracted */
  qemu: Partial<Record<ThreadRole | 'total', Spread | null>>;
  hba: Spread | null;
  san: Spread | null;
  /** run-queue wait per timeslice (µs): the price of one wake-up */
  waitPerWakeUs: Partial<Record<'vcpu' | 'main' | 'iothread' | 'hba' | 'san', Spread | null>>;
}

/** CPU per I/O of each process (and QEMU thread role) with the idle rate subtracted, over the repeats. */
export function perIoCosts(d: E2eData, path: string, job: string): PerIoCosts | null {
  const fios = d.repeatFio?.[path]?.[job];
  const samples = d.repeatSamples?.[path]?.[job];
  if (!fios || !samples || samples.length === 0) return null;
  const idle = d.idle ?? null;
  const rows = samples
    .map((s) => ({ s, f: fios[(s.repeat ?? 1) - 1] }))
    .filter((x): x is { s: JobSample; f: FioFigures } => !!x.f && x.f.ios > 0);
  const perIo = (ms: number, idleRate: number | undefined, s: JobSample, f: FioFigures) =>
    ((ms - (idleRate ?? 0) * s.wallSeconds) * 1000) / f.ios;
  const roles: ThreadRole[] = ['vcpu', 'main', 'iothread', 'other'];
  const qemu: PerIoCosts['qemu'] = {};
  for (const role of roles)
    qemu[role] = spread(
      rows.map(({ s, f }) =>
        s.qemuThreads ? perIo(s.qemuThreads[role].cpuMs, idle?.qemuMsPerSecond?.[role], s, f) : null,
      ),
    );
  qemu.total = spread(
    rows.map(({ s, f }) =>
      s.qemuThreads
        ? perIo(
            totalUsage(s.qemuThreads).cpuMs,
            idle?.qemuMsPerSecond ? Object.values(idle.qemuMsPerSecond).reduce((a, b) => a + b, 0) : undefined,
            s,
            f,
          )
        : null,
    ),
  );
  const wake = (u: RoleUsage | null | undefined) => (u && u.slices > 0 ? (u.waitMs * 1000) / u.slices : null);
  return {
    qemu,
    hba: path === 'npiv-hba' ? spread(rows.map(({ s, f }) => perIo(s.hbaCpuMs, idle?.hbaMsPerSecond, s, f))) : null,
    san: path === 'npiv-hba' ? spread(rows.map(({ s, f }) => perIo(s.sanCpuMs, idle?.sanMsPerSecond, s, f))) : null,
    waitPerWakeUs: {
      vcpu: spread(rows.map(({ s }) => wake(s.qemuThreads?.vcpu))),
      main: spread(rows.map(({ s }) => wake(s.qemuThreads?.main))),
      iothread: spread(rows.map(({ s }) => wake(s.qemuThreads?.iothread))),
      ...(path === 'npiv-hba'
        ? { hba: spread(rows.map(({ s }) => wake(s.hbaMain))), san: spread(rows.map(({ s }) => wake(s.sanMain))) }
        : {}),
    },
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
