/**
 * Part 1 — hot path: the AssemblyScript ring engine against its plain-TypeScript twin (benny,
 * same process, same workloads; see bench/ring.bench.ts), saved with a chart.
 */
import { join } from 'node:path';
import { RING_CASES, runRingBench, type RingCaseResult } from '../ring.bench.js';
import { renderBarChart } from '../lib/svg.js';
import { resultsDir, saveChart } from '../lib/results.js';
import type { PartContext, PartOutput } from './context.js';

export interface RingData {
  cases: RingCaseResult[];
  /** per workload: WASM commands/s ÷ TS commands/s */
  speedups: { workload: string; wasmOverTs: number }[];
}

export function ringSpeedups(cases: readonly RingCaseResult[]): RingData['speedups'] {
  const workloads = [...new Set(cases.map((c) => c.workload))];
  const out: RingData['speedups'] = [];
  for (const w of workloads) {
    const wasm = cases.find((c) => c.workload === w && c.implementation === RING_CASES.wasm);
    const ts = cases.find((c) => c.workload === w && c.implementation === RING_CASES.ts);
    if (wasm && ts && ts.commandsPerSecond > 0)
      out.push({ workload: w, wasmOverTs: wasm.commandsPerSecond / ts.commandsPerSecond });
  }
  return out;
}

export async function runRingPart(ctx: PartContext): Promise<PartOutput<RingData>> {
  const cases = await runRingBench({ maxTimeSeconds: ctx.quick ? 1 : 5, rawFolder: join(resultsDir(), 'raw') });
  const speedups = ringSpeedups(cases);
  const workloads = [...new Set(cases.map((c) => c.workload))];
  saveChart(
    'ring',
    renderBarChart({
      title: 'Ring path: consume Command Type 7 batch + produce Status Type 0',
      unit: 'commands per second (one core)',
      series: [RING_CASES.wasm, RING_CASES.ts],
      groups: workloads.map((w) => ({
        label: w,
        values: [RING_CASES.wasm, RING_CASES.ts].map(
          (impl) => cases.find((c) => c.workload === w && c.implementation === impl)?.commandsPerSecond ?? null,
        ),
      })),
    }),
  );
  return {
    data: { cases, speedups },
    commands: ['node bench/run.js --only ring'],
    bottleneck: ringBottleneck({ cases, speedups }),
    notes: ['Guest memory is a plain ArrayBuffer here: codec cost only, no vfio-user, no SAN.'],
  };
}

export function ringBottleneck(d: RingData): string {
  const single = d.speedups[0];
  if (!single || d.cases.length === 0) return 'not measured';
  const best = d.speedups.reduce((a, b) => (b.wasmOverTs > a.wasmOverTs ? b : a), single);
  const worstUs = Math.max(...d.cases.map((c) => 1e6 / c.commandsPerSecond));
  return (
    `Per-entry fixed cost: with 1 DSD per command the JS↔WASM call and the copy-in/copy-out dominate ` +
    `(WASM/TS ${single.wasmOverTs.toFixed(2)}× on ${single.workload}); WASM pulls ahead as DSD lists grow ` +
    `(${best.wasmOverTs.toFixed(2)}× on ${best.workload}). The slowest case costs ${worstUs.toFixed(2)} µs per command, ` +
    `small next to one vfio-user round trip (see the emulator part).`
  );
}
