/**
 * Part 2 — emulator only: the QEMU-like driver model (src/vm-model/qla-driver.ts) drives one
 * `npiv-hba serve` over a real vfio-user socket with a memfd "guest RAM"; the SAN runs as its
 * own process with a RAM volume. 4 KiB random read/write at QD1 and QD32: IOPS, p50/p99
 * latency, CPU time per I/O of the serve process (and of the SAN), vfio-user messages and
 * interrupts per I/O.
 */
import { QlaDriverModel } from '../../src/vm-model/qla-driver.js';
import { cpuTimeMs } from '../../src/util/proc.js';
import { startSan, startServe } from '../lib/procs.js';
import { summarizeLatency, type LatencySummary } from '../lib/stats.js';
import { renderBarChart } from '../lib/svg.js';
import { saveChart } from '../lib/results.js';
import type { PartContext, PartOutput } from './context.js';

export const EMU_WWPN = 0xc050_76ff_e500_0001n;
export const EMU_WWNN = 0xc050_76ff_e500_0000n;
export const TARGET_WWPN = 0x500a_0981_0000_0001n;
export const TARGET_WWNN = 0x500a_0980_0000_0001n;
const VOLUME_MIB = 256;
const WARMUP_MS = 1000;

export interface EmulatorWorkload {
  name: string;
  direction: 'read' | 'write';
  queueDepth: number;
  blockSize: number;
}

export const EMULATOR_WORKLOADS: EmulatorWorkload[] = [
  { name: '4k randread QD1', direction: 'read', queueDepth: 1, blockSize: 4096 },
  { name: '4k randwrite QD1', direction: 'write', queueDepth: 1, blockSize: 4096 },
  { name: '4k randread QD32', direction: 'read', queueDepth: 32, blockSize: 4096 },
  { name: '4k randwrite QD32', direction: 'write', queueDepth: 32, blockSize: 4096 },
];

export interface EmulatorCase {
  workload: string;
  ios: number;
  errors: number;
  /** first failed completions as entry type / comp_status / scsi_status (hex) */
  errorSamples: string[];
  seconds: number;
  iops: number;
  latency: LatencySummary;
  /** CPU time (user+sys) of the serve process per I/O, µs */
  serveCpuUsPerIo: number;
  /** CPU time of the SAN process per I/O, µs */
  sanCpuUsPerIo: number;
  /** CPU of the driver-model process (the "QEMU + guest" stand-in) per I/O, µs */
  driverCpuUsPerIo: number;
  roundTripsPerIo: number;
  postedWritesPerIo: number;
  interruptsPerIo: number;
  interruptWakeupsPerIo: number;
}

export interface EmulatorData {
  volumeMiB: number;
  cases: EmulatorCase[];
}

/** The emulator's SAN: one array port, one RAM volume mapped to the emulated vport. */
export function startEmulatorSan(
  workDir: string,
  volume: { name: string; sizeMiB: number },
  nodeArgs?: string[],
): ReturnType<typeof startSan> {
  return startSan({
    workDir,
    initiators: [EMU_WWPN],
    targetWwpn: TARGET_WWPN,
    targetWwnn: TARGET_WWNN,
    volumes: [volume],
    ...(nodeArgs ? { nodeArgs } : {}),
  });
}

export async function runEmulatorPart(ctx: PartContext): Promise<PartOutput<EmulatorData>> {
  const san = await startEmulatorSan(ctx.workDir, { name: 'bench', sizeMiB: VOLUME_MIB });
  const serve = await startServe(ctx.workDir, 'emu-vport', san.link, EMU_WWPN, EMU_WWNN);
  let driver: QlaDriverModel | null = null;
  const cases: EmulatorCase[] = [];
  try {
    driver = await QlaDriverModel.attach(serve.socket);
    await driver.probe(EMU_WWPN, EMU_WWNN);
    const target = await driver.discover();
    ctx.log(`emulator: probed, logged in to target ${target.toString(16)}`);
    const servePid = serve.proc.child.pid!;
    const sanPid = san.proc.child.pid!;
    for (const w of EMULATOR_WORKLOADS) {
      const base = {
        direction: w.direction,
        blockSize: w.blockSize,
        queueDepth: w.queueDepth,
        lbaCount: (VOLUME_MIB * 2 ** 20) / 512,
      };
      await driver.runIo({ ...base, durationMs: ctx.quick ? 200 : WARMUP_MS });
      const serveCpu0 = await cpuTimeMs(servePid);
      const sanCpu0 = await cpuTimeMs(sanPid);
      const self0 = process.cpuUsage();
      const r = await driver.runIo({ ...base, durationMs: ctx.seconds * 1000 });
      const self1 = process.cpuUsage(self0);
      const serveCpu = (await cpuTimeMs(servePid)) - serveCpu0;
      const sanCpu = (await cpuTimeMs(sanPid)) - sanCpu0;
      const n = Math.max(1, r.ios);
      const c: EmulatorCase = {
        workload: w.name,
        ios: r.ios,
        errors: r.errors,
        errorSamples: r.errorSamples,
        seconds: r.elapsedMs / 1000,
        iops: r.ios / (r.elapsedMs / 1000),
        latency: summarizeLatency(r.latenciesUs),
        serveCpuUsPerIo: (serveCpu * 1000) / n,
        sanCpuUsPerIo: (sanCpu * 1000) / n,
        driverCpuUsPerIo: (self1.user + self1.system) / n,
        roundTripsPerIo: r.counters.roundTrips / n,
        postedWritesPerIo: r.counters.postedWrites / n,
        interruptsPerIo: r.counters.interrupts / n,
        interruptWakeupsPerIo: r.counters.interruptWakeups / n,
      };
      ctx.log(
        `emulator: ${w.name}: ${c.iops.toFixed(0)} IOPS, p50 ${c.latency.p50Us.toFixed(0)} µs, p99 ${c.latency.p99Us.toFixed(0)} µs, serve CPU ${c.serveCpuUsPerIo.toFixed(1)} µs/IO, errors ${c.errors}${c.errors ? ` (${c.errorSamples.join(' ')})` : ''}`,
      );
      cases.push(c);
    }
  } finally {
    driver?.close();
    await serve.proc.stop();
    await san.proc.stop();
  }
  saveChart(
    'emulator',
    renderBarChart({
      title: 'Emulator only: QEMU-like driver model → vfio-user → npiv-hba serve → SAN (RAM volume)',
      unit: 'IOPS',
      series: ['IOPS'],
      groups: cases.map((c) => ({ label: c.workload, values: [c.iops] })),
    }),
  );
  saveChart(
    'emulator-cpu',
    renderBarChart({
      title: 'Emulator only: CPU time per I/O by process',
      unit: 'µs of CPU per I/O (shorter is better)',
      series: ['npiv-hba serve', 'SAN process', 'driver model (QEMU stand-in)'],
      groups: cases.map((c) => ({
        label: c.workload,
        values: [c.serveCpuUsPerIo, c.sanCpuUsPerIo, c.driverCpuUsPerIo],
      })),
    }),
  );
  return {
    data: { volumeMiB: VOLUME_MIB, cases },
    commands: [
      'node bench/run.js --only emulator',
      'node bench/.out/bench/lib/cli-launcher.js san --config <work>/san.json --link <work>/san.sock',
      `node bench/.out/bench/lib/cli-launcher.js serve --socket <work>/emu-vport.sock --wwpn ${EMU_WWPN.toString(16)} --wwnn ${EMU_WWNN.toString(16)} --san <work>/san.sock`,
    ],
    bottleneck: emulatorBottleneck(cases),
    notes: [
      'Three processes on two shared cores: the driver model, npiv-hba serve and the SAN compete for CPU; QD32 numbers are CPU-bound.',
      'CPU per I/O is utime+stime from /proc/<pid>/stat (10 ms ticks) over the whole timed run.',
    ],
  };
}

/** Names the process with the largest CPU share per I/O at QD32 (the saturated case). */
export function emulatorBottleneck(cases: readonly EmulatorCase[]): string {
  const saturated = cases.filter((c) => c.workload.includes('QD32'));
  if (saturated.length === 0) return 'not measured';
  const avg = (f: (c: EmulatorCase) => number) => saturated.reduce((a, c) => a + f(c), 0) / saturated.length;
  const shares = [
    { who: 'npiv-hba serve (vfio-user message handling, ISP model, FCP initiator)', us: avg((c) => c.serveCpuUsPerIo) },
    { who: 'the SAN process (switch, FCP target, SCSI, RAM volume)', us: avg((c) => c.sanCpuUsPerIo) },
    { who: 'the driver model (QEMU stand-in)', us: avg((c) => c.driverCpuUsPerIo) },
  ].sort((a, b) => b.us - a.us);
  const total = shares.reduce((a, s) => a + s.us, 0);
  const top = shares[0]!;
  return (
    `CPU: at QD32 ${top.who} spends ${top.us.toFixed(1)} µs of CPU per I/O (${((top.us / total) * 100).toFixed(0)}% of ${total.toFixed(1)} µs across the three processes); ` +
    `with two cores for three busy event loops, IOPS ≈ cores ÷ total CPU per I/O.`
  );
}
