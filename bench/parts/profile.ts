/**
 * Part 5 — where the time goes. Built from the counters the emulator and end-to-end parts
 * sampled (so it needs their latest results; run them first or in the same invocation):
 * vfio-user messages and round trips per I/O, interrupts per I/O, DMA accesses and bytes per I/O,
 * FC frames through the SAN switch per I/O, and CPU per I/O of each process on the path. The
 * data copies are those of the code path (listed with their source), checked against the DMA
 * byte counts.
 * It then measures where the CPU goes inside the two Node.js processes of the path: the
 * emulator set-up (driver model → `npiv-hba serve` → `npiv-hba san`) runs again with both
 * processes under V8's sampling profiler (--cpu-prof), and the samples of each timed workload
 * are summed into self time per project module and per function.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { loadPart } from '../lib/results.js';
import { QlaDriverModel } from '../../src/vm-model/qla-driver.js';
import { startServe } from '../lib/procs.js';
import { loadProfileFrom, summarizeProfile, type SelfTime } from '../lib/cpu-profile.js';
import { EMU_WWNN, EMU_WWPN, startEmulatorSan } from './emulator.js';
import type { E2eData } from './e2e.js';
import type { EmulatorData } from './emulator.js';
import type { PartContext, PartOutput } from './context.js';

export interface PathProfileRow {
  job: string;
  ios: number;
  vfioUserMessagesPerIo: number;
  /** region reads: QEMU waits for each reply (the vCPU is stalled in MMIO exit) */
  roundTripsPerIo: number;
  registerWritesPerIo: number;
  interruptsPerIo: number;
  dmaAccessesPerIo: number;
  dmaBytesPerIo: number;
  sanFramesPerIo: number | null;
  hbaCpuUsPerIo: number;
  sanCpuUsPerIo: number;
  qemuCpuUsPerIo: number | null;
}

export interface ProfileData {
  e2e: PathProfileRow[];
  emulator: {
    job: string;
    roundTripsPerIo: number;
    postedWritesPerIo: number;
    interruptsPerIo: number;
    serveCpuUsPerIo: number;
    sanCpuUsPerIo: number;
    driverCpuUsPerIo: number;
  }[];
  copies: { direction: string; steps: string[] }[];
  /** sampled CPU profiles of serve and the SAN per workload (absent in results made before them) */
  hotspots?: Hotspot[];
}

export interface Hotspot {
  workload: string;
  process: 'npiv-hba serve' | 'npiv-hba san';
  ios: number;
  iops: number;
  /** sampled non-idle time per I/O, µs */
  busyUsPerIo: number;
  modules: SelfTime[];
  functions: SelfTime[];
}

const HOTSPOT_VOLUME_MIB = 64;
const HOTSPOT_WARMUP_MS = 1000;
const HOTSPOT_WORKLOADS = [
  { name: '4k randread QD1', direction: 'read' as const, queueDepth: 1 },
  { name: '4k randwrite QD32', direction: 'write' as const, queueDepth: 32 },
];

/** The emulator set-up under --cpu-prof: one summary per process and workload. */
async function measureHotspots(ctx: PartContext): Promise<Hotspot[]> {
  const dirs = { serve: join(ctx.workDir, 'prof-serve'), san: join(ctx.workDir, 'prof-san') };
  for (const d of Object.values(dirs)) mkdirSync(d, { recursive: true });
  const prof = (dir: string) => ['--cpu-prof', `--cpu-prof-dir=${dir}`];
  const san = await startEmulatorSan(ctx.workDir, { name: 'profiled', sizeMiB: HOTSPOT_VOLUME_MIB }, prof(dirs.san));
  const windows: { workload: string; startUs: number; endUs: number; ios: number; iops: number }[] = [];
  let driver: QlaDriverModel | null = null;
  let serveExit: number | null = 0;
  let serveLog = '';
  try {
    const serve = await startServe(ctx.workDir, 'profiled-vport', san.link, EMU_WWPN, EMU_WWNN, prof(dirs.serve));
    try {
      driver = await QlaDriverModel.attach(serve.socket);
      await driver.probe(EMU_WWPN, EMU_WWNN);
      await driver.discover();
      for (const w of HOTSPOT_WORKLOADS) {
        const base = {
          direction: w.direction,
          blockSize: 4096,
          queueDepth: w.queueDepth,
          lbaCount: (HOTSPOT_VOLUME_MIB * 2 ** 20) / 512,
        };
        await driver.runIo({ ...base, durationMs: ctx.quick ? 200 : HOTSPOT_WARMUP_MS });
        const startUs = Number(process.hrtime.bigint() / 1000n);
        const r = await driver.runIo({ ...base, durationMs: ctx.seconds * 1000 });
        const endUs = Number(process.hrtime.bigint() / 1000n);
        if (r.errors) throw new Error(`profiled ${w.name}: ${r.errors} failed I/Os (${r.errorSamples.join(' ')})`);
        windows.push({ workload: w.name, startUs, endUs, ios: r.ios, iops: r.ios / (r.elapsedMs / 1000) });
        ctx.log(`profile: ${w.name} under --cpu-prof: ${windows.at(-1)!.iops.toFixed(0)} IOPS`);
      }
    } finally {
      driver?.close();
      // A clean exit (SIGTERM → graceful stop) is what makes Node write the .cpuprofile.
      serveExit = await serve.proc.stop();
      if (serveExit !== 0) serveLog = serve.proc.logTail();
    }
  } finally {
    await san.proc.stop();
  }
  // Checked after the cleanup so a failure inside the run is not masked by this one.
  if (serveExit !== 0) throw new Error(`profiled serve exited with ${serveExit}: ${serveLog}`);
  const out: Hotspot[] = [];
  for (const [process, dir] of [
    ['npiv-hba serve', dirs.serve],
    ['npiv-hba san', dirs.san],
  ] as const) {
    const profile = loadProfileFrom(dir);
    for (const w of windows) {
      const s = summarizeProfile(profile, 10, { startUs: w.startUs, endUs: w.endUs });
      out.push({
        workload: w.workload,
        process,
        ios: w.ios,
        iops: w.iops,
        busyUsPerIo: s.busyUs / Math.max(1, w.ios),
        modules: s.modules,
        functions: s.functions,
      });
    }
  }
  return out;
}

/** Data copies of one 4 KiB FCP I/O on the npiv-hba path, from the code (not measured). */
export const DATA_COPIES: ProfileData['copies'] = [
  {
    direction: 'write (guest → volume)',
    steps: [
      'guest RAM → HBA buffer: gather() readInto per DSD (src/isp/iocb/fcp.ts)',
      'FCP_DATA frame → link buffer with length prefix: encodeLinkFrame (src/fc/link.ts)',
      'kernel: Unix socket send + receive (HBA process → SAN process)',
      'SAN link reassembly: frame copied out of the receive buffer (LinkFramer.push, src/fc/link.ts)',
      'switch → in-process target port: MemoryLinkEnd.transmit frame.slice() (src/fc/link.ts)',
      'target: payload into the RAM volume chunk (MemoryBacking.write, src/san/volume.ts)',
    ],
  },
  {
    direction: 'read (volume → guest)',
    steps: [
      'RAM volume chunk → read buffer (MemoryBacking.read)',
      'FCP_DATA frame into the target port link: frame.slice() (MemoryLinkEnd)',
      'switch → HBA link: encodeLinkFrame + kernel socket send/receive + LinkFramer.push',
      'HBA: frame payload reassembled into the exchange buffer (initiator)',
      'HBA buffer → guest RAM: scatter() write per DSD (src/isp/iocb/fcp.ts)',
    ],
  },
];

export function profileRows(e2e: E2eData): PathProfileRow[] {
  const samples = e2e.samples['npiv-hba'] ?? {};
  const rows: PathProfileRow[] = [];
  for (const row of e2e.rows) {
    const s = samples[row.job];
    const f = row.results['npiv-hba'];
    if (!s || !f || f.ios <= 0) continue;
    const n = f.ios;
    const c = s.counters;
    const messages = c.bar1Reads + c.bar1Writes + c.configReads + c.configWrites + c.otherRegionAccesses;
    rows.push({
      job: row.job,
      ios: n,
      vfioUserMessagesPerIo: messages / n,
      roundTripsPerIo: (c.bar1Reads + c.configReads) / n,
      registerWritesPerIo: (c.bar1Writes + c.configWrites) / n,
      interruptsPerIo: c.interrupts / n,
      dmaAccessesPerIo: (c.dmaReads + c.dmaWrites + c.dmaViews) / n,
      dmaBytesPerIo: (c.dmaReadBytes + c.dmaWriteBytes + c.dmaViewBytes) / n,
      sanFramesPerIo: s.sanFrames === null ? null : s.sanFrames / n,
      hbaCpuUsPerIo: (s.hbaCpuMs * 1000) / n,
      sanCpuUsPerIo: (s.sanCpuMs * 1000) / n,
      qemuCpuUsPerIo: s.qemuCpuMs === null ? null : (s.qemuCpuMs * 1000) / n,
    });
  }
  return rows;
}

/** One sentence on the hottest module and function of each process at 4k QD1 (the latency case). */
export function hotspotSentence(hotspots: readonly Hotspot[]): string {
  const qd1 = hotspots.filter((h) => h.workload.includes('QD1'));
  if (qd1.length === 0) return '';
  const parts = qd1.map((h) => {
    const m = h.modules[0];
    const f = h.functions[0];
    return `${h.process} ${m ? `${m.name} ${(m.share * 100).toFixed(0)}%` : '?'}${f ? ` (hottest function ${f.name}, ${(f.share * 100).toFixed(0)}%)` : ''}`;
  });
  return ` Sampled profiles at ${qd1[0]!.workload}, largest self-time share per process: ${parts.join('; ')}.`;
}

export function profileBottleneck(
  rows: readonly PathProfileRow[],
  emulator: ProfileData['emulator'] = [],
  hotspots: readonly Hotspot[] = [],
): string {
  return pathBottleneck(rows, emulator) + hotspotSentence(hotspots);
}

function pathBottleneck(rows: readonly PathProfileRow[], emulator: ProfileData['emulator']): string {
  const qd1 = rows.find((r) => r.job === 'randread-4k-qd1') ?? rows[0];
  if (!qd1) {
    const e = emulator.find((r) => r.job.includes('QD1'));
    if (!e) return 'not measured (no end-to-end samples of the npiv-hba path)';
    return (
      `No real-guest samples of the npiv-hba path (see the e2e problems). From the driver model at ${e.job}: ${e.roundTripsPerIo.toFixed(1)} synchronous vfio-user reads, ` +
      `${e.postedWritesPerIo.toFixed(1)} posted register writes and ${e.interruptsPerIo.toFixed(2)} interrupts per I/O, and CPU per I/O of ${e.serveCpuUsPerIo.toFixed(0)} µs in serve, ` +
      `${e.sanCpuUsPerIo.toFixed(0)} µs in the SAN, ${e.driverCpuUsPerIo.toFixed(0)} µs in the QEMU stand-in: at QD1 the HBA process's fixed per-I/O cost (event-loop wake-ups and syscalls: socket messages, eventfd, link frames) is the next thing to cut.`
    );
  }
  const parts = [
    { key: 'qemu', who: 'QEMU + the TCG guest (qla2xxx, block layer, fio)', us: qd1.qemuCpuUsPerIo ?? 0 },
    { key: 'hba', who: 'the HBA', us: qd1.hbaCpuUsPerIo },
    { key: 'san', who: 'the SAN process', us: qd1.sanCpuUsPerIo },
  ].sort((a, b) => b.us - a.us);
  const top = parts[0]!;
  const next: Record<string, string> = {
    qemu: 'fewer vfio-user messages per I/O: each register access is a guest exit plus a socket round trip through QEMU, so serve the read-mostly registers (HOST_STATUS) from a shared-memory (sparse mmap) part of BAR1 that QEMU maps without trapping, and coalesce interrupts at queue depth',
    hba: 'less work per I/O in the HBA process: fewer event-loop wake-ups and syscalls per I/O (batch doorbell handling, write frames in one sendmsg)',
    san: 'less work per I/O in the SAN process (frame handling, SCSI target)',
  };
  return (
    `${qd1.job}: ${qd1.vfioUserMessagesPerIo.toFixed(1)} vfio-user messages (${qd1.roundTripsPerIo.toFixed(1)} synchronous reads), ` +
    `${qd1.interruptsPerIo.toFixed(2)} interrupts, ${qd1.dmaAccessesPerIo.toFixed(1)} DMA accesses and ${qd1.sanFramesPerIo === null ? '?' : qd1.sanFramesPerIo.toFixed(1)} switched FC frames per I/O; ` +
    `the largest CPU cost per I/O is ${top.who} (${top.us.toFixed(0)} µs). Next optimisation: ${next[top.key]}.`
  );
}

export async function runProfilePart(ctx: PartContext): Promise<PartOutput<ProfileData>> {
  const e2e = loadPart<E2eData>('e2e');
  const emu = loadPart<EmulatorData>('emulator');
  if (!e2e && !emu)
    throw new Error('profile: needs bench/results/e2e-latest.json or emulator-latest.json (run those parts first)');
  const rows = e2e ? profileRows(e2e.data) : [];
  const emulator = (emu?.data.cases ?? []).map((c) => ({
    job: c.workload,
    roundTripsPerIo: c.roundTripsPerIo,
    postedWritesPerIo: c.postedWritesPerIo,
    interruptsPerIo: c.interruptsPerIo,
    serveCpuUsPerIo: c.serveCpuUsPerIo,
    sanCpuUsPerIo: c.sanCpuUsPerIo,
    driverCpuUsPerIo: c.driverCpuUsPerIo,
  }));
  ctx.log('profile: the emulator set-up again, serve and SAN under the V8 sampling profiler');
  const hotspots = await measureHotspots(ctx);
  return {
    data: { e2e: rows, emulator, copies: DATA_COPIES, hotspots },
    commands: [
      'node bench/run.js --only profile   (reads e2e-latest.json and emulator-latest.json)',
      'node --cpu-prof --cpu-prof-dir=<work>/prof-san bench/.out/bench/lib/cli-launcher.js san --config <work>/san.json --link <work>/san.sock --control <work>/san-control.sock',
      `node --cpu-prof --cpu-prof-dir=<work>/prof-serve bench/.out/bench/lib/cli-launcher.js serve --socket <work>/profiled-vport.sock --wwpn ${EMU_WWPN.toString(16)} --wwnn ${EMU_WWNN.toString(16)} --san <work>/san.sock`,
    ],
    bottleneck: profileBottleneck(rows, emulator, hotspots),
    notes: [
      `Sources: e2e run of ${e2e?.machine.date ?? 'n/a'}, emulator run of ${emu?.machine.date ?? 'n/a'}.`,
      'vfio-user messages and DMA are counted at the device boundary of the production VportHba; SAN frames from the switch counters (fabric.stats.forwarded) over the SAN control socket; CPU from /proc.',
      'Hotspots: V8 samples (--cpu-prof, about one per millisecond of CPU) inside each timed workload only; the profiler itself slows the processes, so compare shares, not absolute IOPS.',
    ],
  };
}
