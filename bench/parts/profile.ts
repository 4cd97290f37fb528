/**
 * Part 5 — where the time goes. Built from the counters the emulator and end-to-end parts
 * sampled (so it needs their latest results; run them first or in the same invocation):
 * vfio-user messages and round trips per I/O, interrupts per I/O, DMA accesses and bytes per I/O,
 * FC frames through the SAN switch per I/O, and CPU per I/O of each process on the path. The
 * data copies are those of the code path (listed with their source), checked against the DMA
 * byte counts.
 */
import { loadPart } from '../lib/results.js';
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
  emulator: { job: string; roundTripsPerIo: number; postedWritesPerIo: number; interruptsPerIo: number; serveCpuUsPerIo: number; sanCpuUsPerIo: number; driverCpuUsPerIo: number }[];
  copies: { direction: string; steps: string[] }[];
}

/** Data copies of one 4 KiB FCP I/O on the npiv-hba path, from the code (not measured). */
export const DATA_COPIES: ProfileData['copies'] = [
  {
    direction: 'write (guest → volume)',
    steps: [
      'guest RAM → HBA buffer: gather() readInto per DSD (src/isp/iocb/fcp.ts)',
      'FCP_DATA frame → link buffer with length prefix: encodeLinkFrame (src/san/link.ts)',
      'kernel: Unix socket send + receive (HBA process → SAN process)',
      'SAN link reassembly: frame copied out of the receive buffer (LinkFramer.push, src/san/link.ts)',
      'switch → in-process target port: MemoryLinkEnd.transmit frame.slice() (src/san/link.ts)',
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

export function profileBottleneck(rows: readonly PathProfileRow[], emulator: ProfileData['emulator'] = []): string {
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
    qemu: 'fewer guest exits per I/O: each register access is a vfio-user message plus a TCG/KVM exit, so answer the hot reads (HOST_STATUS) from state the guest can see without a round trip, or coalesce interrupts',
    hba: 'less work per I/O in the HBA process: fewer event-loop wake-ups and syscalls per I/O (batch doorbell handling, write frames in one sendmsg)',
    san: 'less work per I/O in the SAN process (frame handling, SCSI target)',
  };
  return (
    `${qd1.job}: ${qd1.vfioUserMessagesPerIo.toFixed(1)} vfio-user messages (${qd1.roundTripsPerIo.toFixed(1)} synchronous reads), ` +
    `${qd1.interruptsPerIo.toFixed(2)} interrupts, ${qd1.dmaAccessesPerIo.toFixed(1)} DMA accesses and ${qd1.sanFramesPerIo === null ? '?' : qd1.sanFramesPerIo.toFixed(1)} switched FC frames per I/O; ` +
    `the largest CPU cost per I/O is ${top.who} (${top.us.toFixed(0)} µs). Next optimisation: ${next[top.key]}.`
  );
}

export async function runProfilePart(_ctx: PartContext): Promise<PartOutput<ProfileData>> {
  const e2e = loadPart<E2eData>('e2e');
  const emu = loadPart<EmulatorData>('emulator');
  if (!e2e && !emu) throw new Error('profile: needs bench/results/e2e-latest.json or emulator-latest.json (run those parts first)');
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
  return {
    data: { e2e: rows, emulator, copies: DATA_COPIES },
    commands: ['node bench/run.js --only profile   (reads e2e-latest.json and emulator-latest.json)'],
    bottleneck: profileBottleneck(rows, emulator),
    notes: [
      `Sources: e2e run of ${e2e?.machine.date ?? 'n/a'}, emulator run of ${emu?.machine.date ?? 'n/a'}.`,
      'vfio-user messages and DMA are counted at the device boundary of the production VportHba; SAN frames from the switch counters (fabric.stats.forwarded) over the SAN control socket; CPU from /proc.',
    ],
  };
}
