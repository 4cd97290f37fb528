/**
 * bench/results/REPORT.md from the saved <part>-latest.json files: machine, commands, tables
 * with ratios, links to the SVG charts, and the named bottleneck of each path.
 */
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadPart, resultsDir, savePart, type PartResult } from './results.js';
import { formatNumber as n, formatRatio, formatSpread } from './stats.js';
import { ringBottleneck, type RingData } from '../parts/ring.js';
import { emulatorBottleneck, type EmulatorData } from '../parts/emulator.js';
import { e2eBottleneck, perIoCosts, type E2eData, type PathName } from '../parts/e2e.js';
import { scaleBottleneck, type ScaleData } from '../parts/scale.js';
import { profileBottleneck, type Hotspot, type ProfileData } from '../parts/profile.js';

export function markdownTable(header: string[], rows: string[][]): string {
  const line = (cells: string[]) => `| ${cells.map((c) => c.replaceAll('|', '\\|')).join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}

function machineLine(p: PartResult): string {
  const m = p.machine;
  return `${m.date} — ${m.cpuModel}, ${m.cores} cores, ${m.memoryMiB} MiB RAM, ${m.os}, kernel ${m.kernel}, Node.js ${m.node}, QEMU accelerator ${m.accelerator.toUpperCase()}, load average at start ${m.loadAverage.join(' / ')}`;
}

function chart(name: string): string {
  return existsSync(join(resultsDir(), `${name}.svg`)) ? `![${name}](${name}.svg)\n` : '';
}

function partHeader(p: PartResult): string[] {
  return [
    `## ${p.title}`,
    '',
    `Ran: ${machineLine(p)}; took ${p.durationSeconds} s.`,
    '',
    `**Bottleneck:** ${p.bottleneck}`,
    '',
  ];
}

function partFooter(p: PartResult): string[] {
  return [
    '',
    ...p.notes.map((x) => `- ${x}`),
    '',
    '<details><summary>Commands</summary>',
    '',
    ...p.commands.map((c) => `    ${c}`),
    '',
    '</details>',
    '',
  ];
}

function ringSection(p: PartResult<RingData>): string[] {
  const workloads = [...new Set(p.data.cases.map((c) => c.workload))];
  const rows = workloads.map((w) => {
    const cs = p.data.cases.filter((c) => c.workload === w);
    const wasm = cs.find((c) => c.implementation.startsWith('AssemblyScript'));
    const ts = cs.find((c) => c.implementation.startsWith('TypeScript'));
    const s = p.data.speedups.find((x) => x.workload === w);
    return [
      w,
      n(wasm?.commandsPerSecond),
      n(ts?.commandsPerSecond),
      s ? `${s.wasmOverTs.toFixed(2)}×` : '—',
      `±${n(wasm?.marginPercent)}% / ±${n(ts?.marginPercent)}%`,
    ];
  });
  return [
    ...partHeader(p),
    markdownTable(
      ['workload (one doorbell batch)', 'AssemblyScript cmds/s', 'TypeScript cmds/s', 'WASM ÷ TS', 'margin'],
      rows,
    ),
    '',
    chart('ring'),
    ...partFooter(p),
  ];
}

function emulatorSection(p: PartResult<EmulatorData>): string[] {
  const rows = p.data.cases.map((c) => [
    c.workload,
    n(c.iops),
    n(c.latency.p50Us),
    n(c.latency.p99Us),
    n(c.serveCpuUsPerIo),
    n(c.sanCpuUsPerIo),
    n(c.driverCpuUsPerIo),
    n(c.roundTripsPerIo),
    n(c.postedWritesPerIo),
    n(c.interruptsPerIo),
    String(c.errors),
  ]);
  return [
    ...partHeader(p),
    markdownTable(
      [
        'workload',
        'IOPS',
        'p50 µs',
        'p99 µs',
        'serve CPU µs/IO',
        'SAN CPU µs/IO',
        'driver CPU µs/IO',
        'round trips/IO',
        'posted writes/IO',
        'interrupts/IO',
        'errors',
      ],
      rows,
    ),
    '',
    chart('emulator'),
    chart('emulator-cpu'),
    ...partFooter(p),
  ];
}

const PATH_LABEL: Record<PathName, string> = {
  'npiv-hba': '(a) npiv-hba',
  megasas: '(b) megasas',
  'virtio-scsi': '(c) virtio-scsi',
  host: '(d) host fio (limit)',
};

/** Tables over the repeats: ratios to megasas, per-thread CPU per I/O, wait per wake-up. */
function e2eSpreadTables(d: E2eData): string[] {
  if (!d.repeats || !d.rows.some((r) => r.spread)) return [];
  const paths = Object.keys(PATH_LABEL) as PathName[];
  const ratioRows = d.rows.map((r) => [
    r.job,
    ...paths.map(
      (x) =>
        `${formatSpread(r.spread?.[x]?.iops ?? null)} (${formatSpread(r.spread?.[x]?.ratioToMegasas ?? null, '×')})`,
    ),
  ]);
  const guestPaths: PathName[] = ['npiv-hba', 'megasas', 'virtio-scsi'];
  const cpuRows: string[][] = [];
  const waitRows: string[][] = [];
  for (const r of d.rows) {
    for (const x of guestPaths) {
      const c = perIoCosts(d, x, r.job);
      if (!c) continue;
      cpuRows.push([
        r.job,
        PATH_LABEL[x],
        formatSpread(c.qemu.vcpu ?? null),
        formatSpread(c.qemu.main ?? null),
        formatSpread(c.qemu.iothread ?? null),
        formatSpread(c.qemu.other ?? null),
        formatSpread(c.qemu.total ?? null),
        formatSpread(c.hba),
        formatSpread(c.san),
      ]);
      waitRows.push([
        r.job,
        PATH_LABEL[x],
        formatSpread(c.waitPerWakeUs.vcpu ?? null),
        formatSpread(c.waitPerWakeUs.main ?? null),
        formatSpread(c.waitPerWakeUs.iothread ?? null),
        formatSpread(c.waitPerWakeUs.hba ?? null),
        formatSpread(c.waitPerWakeUs.san ?? null),
      ]);
    }
  }
  const idle = d.idle;
  return [
    `Over ${d.repeats} repeats of the whole job sequence (median [min–max]): IOPS, and in brackets the ratio to (b) megasas taken repeat by repeat:`,
    '',
    markdownTable(['fio job', ...paths.map((x) => PATH_LABEL[x])], ratioRows),
    '',
    idle
      ? `CPU per I/O (µs, median [min–max] over repeats) with the idle baseline subtracted: the guest idled ${idle.seconds.toFixed(1)} s first, costing QEMU ${
          idle.qemuMsPerSecond
            ? Object.entries(idle.qemuMsPerSecond)
                .map(([k, v]) => `${k} ${n(v)}`)
                .join(', ')
            : '?'
        } ms of CPU per second, the HBA ${n(idle.hbaMsPerSecond)} and the SAN ${n(idle.sanMsPerSecond)}. QEMU threads: vCPUs (TCG: the guest itself), the main loop (device models, interrupt relay), the IOThreads (the vfio-user proxy's), other (block workers, RCU):`
      : 'CPU per I/O (µs, median [min–max] over repeats; no idle baseline was measured):',
    '',
    markdownTable(
      ['fio job', 'path', 'QEMU vCPUs', 'QEMU main loop', 'QEMU IOThreads', 'QEMU other', 'QEMU total', 'HBA', 'SAN'],
      cpuRows,
    ),
    '',
    'Run-queue wait per timeslice (µs; schedstat run_delay ÷ timeslices): what one wake-up of that thread waited for a CPU — each hand-off on the I/O path pays about this:',
    '',
    markdownTable(
      ['fio job', 'path', 'QEMU vCPUs', 'QEMU main loop', 'QEMU IOThreads', 'HBA main thread', 'SAN main thread'],
      waitRows,
    ),
    '',
    chart('e2e-latency'),
  ];
}

function e2eSection(p: PartResult<E2eData>): string[] {
  const paths = Object.keys(PATH_LABEL) as PathName[];
  const iopsRows = p.data.rows.map((r) => [
    r.job,
    ...paths.map((x) =>
      x === 'npiv-hba' ? n(r.results[x]?.iops) : `${n(r.results[x]?.iops)} (${formatRatio(r.iopsRatioToNpiv[x])})`,
    ),
  ]);
  const latRows = p.data.rows.map((r) => [
    r.job,
    ...paths.map((x) => `${n(r.results[x]?.clatP50Us)} / ${n(r.results[x]?.clatP99Us)}`),
  ]);
  const bwRows = p.data.rows.map((r) => [r.job, ...paths.map((x) => n(r.results[x]?.bandwidthMiBs))]);
  return [
    ...partHeader(p),
    `IOPS, and in brackets the ratio to (a) npiv-hba (guest accelerator ${p.data.accelerator.toUpperCase()}, ${p.data.runtimeSeconds} s per job, ${p.data.volumeMiB} MiB RAM-backed volumes):`,
    '',
    markdownTable(['fio job', ...paths.map((x) => PATH_LABEL[x])], iopsRows),
    '',
    'Completion latency p50 / p99 (µs):',
    '',
    markdownTable(['fio job', ...paths.map((x) => PATH_LABEL[x])], latRows),
    '',
    'Bandwidth (MiB/s):',
    '',
    markdownTable(['fio job', ...paths.map((x) => PATH_LABEL[x])], bwRows),
    '',
    ...e2eSpreadTables(p.data),
    chart('e2e'),
    ...partFooter(p),
  ];
}

function scaleSection(p: PartResult<ScaleData>): string[] {
  const d = p.data;
  const rows = [
    [`${d.vports} vports FDISC'd through one physical port: all logged in`, `${n(d.allLoggedInMs)} ms`],
    [
      `… all registered, discovered the target, PLOGI+PRLI done (${d.vportsThatFoundTheTarget}/${d.vports} found it)`,
      `${n(d.allDiscoveredMs)} ms`,
    ],
    [
      `idle \`npiv-hba serve\` process, cabled, no guest (mean of ${d.idleHba.processes})`,
      `${n(d.idleHba.meanRssMiB)} MiB RSS, ${n(d.idleHba.meanPssMiB)} MiB PSS`,
    ],
    [
      `name server GPN_FT (FCP) with ${n(d.nameServer.registeredPorts)} registered ports (${n(d.nameServer.entriesReturned)} entries returned), ${d.nameServer.queries} queries`,
      `p50 ${n(d.nameServer.gpnFt.p50Us)} µs, p99 ${n(d.nameServer.gpnFt.p99Us)} µs`,
    ],
  ];
  return [...partHeader(p), markdownTable(['measure', 'result'], rows), '', chart('scale'), ...partFooter(p)];
}

function profileSection(p: PartResult<ProfileData>): string[] {
  const rows = p.data.e2e.map((r) => [
    r.job,
    n(r.vfioUserMessagesPerIo),
    n(r.roundTripsPerIo),
    n(r.registerWritesPerIo),
    n(r.interruptsPerIo),
    n(r.dmaAccessesPerIo),
    n(r.dmaBytesPerIo),
    n(r.sanFramesPerIo),
    n(r.qemuCpuUsPerIo),
    n(r.hbaCpuUsPerIo),
    n(r.sanCpuUsPerIo),
  ]);
  const emu = p.data.emulator.map((r) => [
    r.job,
    n(r.roundTripsPerIo),
    n(r.postedWritesPerIo),
    n(r.interruptsPerIo),
    n(r.driverCpuUsPerIo),
    n(r.serveCpuUsPerIo),
    n(r.sanCpuUsPerIo),
  ]);
  return [
    ...partHeader(p),
    'Real guest (qla2xxx under QEMU), per I/O on the npiv-hba path:',
    '',
    markdownTable(
      [
        'fio job',
        'vfio-user msgs',
        'sync reads (round trips)',
        'register writes',
        'interrupts',
        'DMA accesses',
        'DMA bytes',
        'SAN frames switched',
        'QEMU+guest CPU µs',
        'HBA CPU µs',
        'SAN CPU µs',
      ],
      rows,
    ),
    '',
    'QEMU-like driver model (emulator part), per I/O:',
    '',
    markdownTable(
      ['workload', 'round trips', 'posted writes', 'interrupts', 'driver CPU µs', 'serve CPU µs', 'SAN CPU µs'],
      emu,
    ),
    '',
    'Data copies of the payload on the npiv-hba path (from the code):',
    '',
    ...p.data.copies.flatMap((c) => [`- ${c.direction}:`, ...c.steps.map((s, i) => `  ${i + 1}. ${s}`)]),
    ...hotspotLines(p.data.hotspots ?? []),
    ...partFooter(p),
  ];
}

const pct = (share: number): string => `${(share * 100).toFixed(1)}%`;

/** Sampled CPU profiles: per workload, self time by module and the hottest functions of each process. */
function hotspotLines(hotspots: readonly Hotspot[]): string[] {
  if (hotspots.length === 0) return [];
  const lines = [
    '',
    'Sampled CPU profiles (V8 --cpu-prof) of the two Node.js processes, self time of each timed workload:',
    '',
  ];
  for (const workload of [...new Set(hotspots.map((h) => h.workload))]) {
    for (const h of hotspots.filter((x) => x.workload === workload)) {
      lines.push(
        `**${h.process}, ${workload}** (${n(h.iops)} IOPS under the profiler, ${n(h.busyUsPerIo)} µs sampled CPU per I/O):`,
        '',
        markdownTable(
          ['module', 'share', 'µs/IO'],
          h.modules.slice(0, 8).map((m) => [m.name, pct(m.share), n(m.us / Math.max(1, h.ios))]),
        ),
        '',
        markdownTable(
          ['function (self time)', 'share'],
          h.functions.slice(0, 8).map((f) => [f.name, pct(f.share)]),
        ),
        '',
      );
    }
  }
  return lines;
}

/** Re-derives a part's bottleneck sentence from its data (so wording fixes reach old results) and saves it. */
function refreshed<T>(p: PartResult<T> | null, derive: (data: T) => string): PartResult<T> | null {
  if (!p) return null;
  const bottleneck = derive(p.data);
  savePart({ ...p, bottleneck });
  return loadPart<T>(p.part);
}

export function writeReport(): string {
  const ring = refreshed(loadPart<RingData>('ring'), ringBottleneck);
  const emulator = refreshed(loadPart<EmulatorData>('emulator'), (d) => emulatorBottleneck(d.cases));
  const e2e = refreshed(loadPart<E2eData>('e2e'), e2eBottleneck);
  const scale = refreshed(loadPart<ScaleData>('scale'), scaleBottleneck);
  const profile = refreshed(loadPart<ProfileData>('profile'), (d) => profileBottleneck(d.e2e, d.emulator, d.hotspots));
  const present = [ring, emulator, e2e, scale, profile].filter((x): x is PartResult<never> => x !== null);
  const lines: string[] = [
    '# npiv-hba benchmark report',
    '',
    'Generated by `npm run bench` (bench/run.js → bench/main.ts) from the JSON files next to this report; re-create it with',
    '`npm run bench -- --report-only`. Every part records the machine it ran on and the exact commands.',
    '',
    '**Caveat:** these numbers come from a shared 2-core development machine (each part records the load average at its start),',
    'and the guest runs under TCG (no hardware KVM). Absolute figures are noisy and low; compare the paths side by side within',
    'one part (each part measures its contenders in the same run), not across machines.',
    '',
    '## Bottlenecks by path',
    '',
    ...present.map((p) => `- **${p.title}** — ${p.bottleneck}`),
    '',
  ];
  if (ring) lines.push(...ringSection(ring));
  if (emulator) lines.push(...emulatorSection(emulator));
  if (e2e) lines.push(...e2eSection(e2e));
  if (scale) lines.push(...scaleSection(scale));
  if (profile) lines.push(...profileSection(profile));
  const missing = (['ring', 'emulator', 'e2e', 'scale', 'profile'] as const).filter(
    (k) => !{ ring, emulator, e2e, scale, profile }[k],
  );
  if (missing.length)
    lines.push(`_Not yet measured: ${missing.join(', ')} (run \`npm run bench -- --only ${missing.join(',')}\`)._`, '');
  const file = join(resultsDir(), 'REPORT.md');
  writeFileSync(file, lines.join('\n'));
  return file;
}
