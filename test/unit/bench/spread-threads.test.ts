/** Bench tooling: spread over repeats, per-thread /proc parsing, ratio and latency charts, per-I/O costs. */
import { describe, expect, it } from 'vitest';
import { formatSpread, spread } from '../../../bench/lib/stats.js';
import {
  diffByRole,
  parseSchedstat,
  parseTaskStat,
  sampleThreads,
  threadRole,
  type ThreadSample,
} from '../../../bench/lib/threads.js';
import { renderRangeChart } from '../../../bench/lib/svg.js';
import { pathSpreads, perIoCosts, type E2eData, type JobSample } from '../../../bench/parts/e2e.js';
import type { FioFigures } from '../../../bench/lib/fio.js';
import { zeroCounters } from '../../../bench/lib/counting-hba.js';

describe('spread over repeats', () => {
  it('median of odd and even counts, min, max; missing values ignored', () => {
    expect(spread([3, 1, 2])).toEqual({ median: 2, min: 1, max: 3, n: 3 });
    expect(spread([4, 1, null, 2, 3])).toEqual({ median: 2.5, min: 1, max: 4, n: 4 });
    expect(spread([null, undefined, Number.NaN])).toBeNull();
    expect(formatSpread(spread([0.25, 0.3, 0.28]), '×')).toBe('0.280× [0.250×–0.300×]');
    expect(formatSpread(spread([5]))).toBe('5.00');
    expect(formatSpread(null)).toBe('—');
  });
});

describe('per-thread /proc sampling', () => {
  it('parses task stat lines whose comm holds spaces and parentheses', () => {
    const fields = Array.from({ length: 50 }, (_, i) => String(i + 3)); // field 3 onwards
    fields[11] = '250'; // utime (field 14)
    fields[12] = '50'; // stime (field 15)
    expect(parseTaskStat(`1234 (CPU 0/TCG) ${fields.join(' ')}`)).toEqual({ comm: 'CPU 0/TCG', cpuMs: 3000 });
    expect(parseTaskStat(`1 (a) b) ${fields.join(' ')}`)?.comm).toBe('a) b');
    expect(parseTaskStat('garbage')).toBeNull();
    expect(parseSchedstat('1000 2000 3\n')).toEqual({ runNs: 1000, waitNs: 2000, slices: 3 });
    expect(parseSchedstat('1 2')).toBeNull();
  });

  it('classifies QEMU threads and sums CPU, wait and timeslices per role', () => {
    const t = (tid: number, comm: string, cpuMs: number, waitNs: number, slices: number): ThreadSample => ({
      tid,
      comm,
      cpuMs,
      runNs: 0,
      waitNs,
      slices,
    });
    expect(threadRole(10, { tid: 10, comm: 'qemu-system-x86' })).toBe('main');
    expect(threadRole(10, { tid: 11, comm: 'CPU 1/TCG' })).toBe('vcpu');
    expect(threadRole(10, { tid: 12, comm: 'IO VFIO user' })).toBe('iothread');
    expect(threadRole(10, { tid: 13, comm: 'worker' })).toBe('other');
    const a = [t(10, 'qemu-system-x86', 100, 1e6, 10), t(11, 'CPU 0/TCG', 50, 0, 5)];
    const b = [
      t(10, 'qemu-system-x86', 130, 3e6, 20),
      t(11, 'CPU 0/TCG', 90, 1e6, 9),
      t(12, 'CPU 1/TCG', 10, 5e5, 1), // started meanwhile: counts from zero
    ];
    const d = diffByRole(10, a, b);
    expect(d.main).toEqual({ cpuMs: 30, waitMs: 2, slices: 10 });
    expect(d.vcpu).toEqual({ cpuMs: 50, waitMs: 1.5, slices: 5 });
    expect(d.iothread.cpuMs).toBe(0);
  });

  it('reads this process: the main thread is there with CPU time', () => {
    const self = sampleThreads(process.pid);
    const main = self.find((x) => x.tid === process.pid);
    expect(main).toBeDefined();
    expect(main!.cpuMs).toBeGreaterThan(0);
    expect(sampleThreads(2 ** 22 + 7)).toEqual([]); // no such process
  });
});

describe('ratio and latency charts', () => {
  it('draws linear bars, min–max error bars and the reference line; missing bars say so', () => {
    const svg = renderRangeChart({
      title: 'R',
      unit: 'IOPS ÷ megasas',
      series: ['npiv-hba', 'virtio-scsi'],
      reference: { value: 1, label: 'megasas' },
      groups: [{ label: 'qd1', bars: [{ value: 0.5, low: 0.4, high: 0.6 }, { value: null }] }],
    });
    expect(svg).toContain('(linear)');
    expect(svg).not.toContain('log scale');
    // max = 1 (the reference): 0.5 is half the span (860 - 250 - 90 - 20 = 500 px)
    expect(svg).toContain('<rect x="250" y="');
    expect(svg).toContain('width="250.0"');
    expect(svg).toMatch(/M450\.0 \d+ H550\.0/); // error bar from 0.4 to 0.6
    expect(svg).toContain('stroke-dasharray'); // the megasas line
    expect(svg).toContain('virtio-scsi: not measured');
  });
});

describe('e2e figures over repeats', () => {
  const fio = (iops: number, p50 = 100, p99 = 900): FioFigures => ({
    iops,
    bandwidthMiBs: 1,
    clatP50Us: p50,
    clatP99Us: p99,
    latMeanUs: p50,
    ios: iops * 10,
    runtimeMs: 10_000,
  });

  it('pairs each repeat with the same repeat of megasas for the ratio', () => {
    const repeatFio = {
      'npiv-hba': { j: [fio(100), fio(200), fio(150)] },
      megasas: { j: [fio(400), fio(400), fio(1000)] },
    };
    const s = pathSpreads('j', repeatFio, {
      'npiv-hba': fio(150),
      megasas: fio(400),
      'virtio-scsi': null,
      host: null,
    });
    expect(s['npiv-hba']!.ratioToMegasas).toEqual({ median: 0.25, min: 0.15, max: 0.5, n: 3 });
    expect(s['npiv-hba']!.iops!.median).toBe(150);
    expect(s['virtio-scsi']).toBeUndefined();
  });

  it('subtracts the idle CPU rate over the job wall time before dividing by the I/Os', () => {
    const sample = (repeat: number, vcpuMs: number): JobSample => ({
      wallSeconds: 10,
      hbaCpuMs: 3000,
      sanCpuMs: 1500,
      qemuCpuMs: null,
      sanFrames: null,
      counters: zeroCounters(),
      repeat,
      qemuThreads: {
        vcpu: { cpuMs: vcpuMs, waitMs: 20, slices: 100 },
        main: { cpuMs: 500, waitMs: 0, slices: 0 },
        iothread: { cpuMs: 0, waitMs: 0, slices: 0 },
        other: { cpuMs: 0, waitMs: 0, slices: 0 },
      },
      hbaMain: { cpuMs: 3000, waitMs: 5, slices: 50 },
      sanMain: null,
    });
    const d = {
      repeats: 2,
      repeatFio: { 'npiv-hba': { j: [fio(100), fio(100)] } }, // 1,000 I/Os each
      repeatSamples: { 'npiv-hba': { j: [sample(1, 6000), sample(2, 8000)] } },
      idle: {
        seconds: 10,
        qemuMsPerSecond: { vcpu: 100, main: 50, iothread: 0, other: 0 },
        hbaMsPerSecond: 10,
        sanMsPerSecond: 0,
      },
    } as unknown as E2eData;
    const c = perIoCosts(d, 'npiv-hba', 'j')!;
    // vCPU: (6000 - 100 × 10) ms / 1000 I/Os = 5,000 µs; (8000 - 1000) → 7,000 µs
    expect(c.qemu.vcpu).toEqual({ median: 6000, min: 5000, max: 7000, n: 2 });
    expect(c.qemu.main!.median).toBe(0); // its whole cost was idle cost
    expect(c.hba!.median).toBe(2900);
    expect(c.san!.median).toBe(1500);
    expect(c.waitPerWakeUs.vcpu!.median).toBe(200); // 20 ms over 100 timeslices
    expect(c.waitPerWakeUs.hba!.median).toBe(100);
    expect(c.waitPerWakeUs.san).toBeNull();
    expect(perIoCosts(d, 'megasas', 'j')).toBeNull();
  });
});
