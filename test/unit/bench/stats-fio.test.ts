import { describe, expect, it } from 'vitest';
import { formatNumber, formatRatio, percentile, ratio, summarizeLatency } from '../../../bench/lib/stats.js';
import { parseFioJson } from '../../../bench/lib/fio.js';
import { sanConfig } from '../../../bench/lib/procs.js';
import { parseProcStatCpuMs, parseProcStatusRssKiB } from '../../../src/util/proc.js';
import { parseSanConfig } from '../../../src/san/config.js';

describe('bench statistics', () => {
  it('nearest-rank percentiles of unsorted samples', () => {
    const s = [9, 1, 8, 2, 7, 3, 6, 4, 5, 10];
    expect(percentile(s, 50)).toBe(5);
    expect(percentile(s, 99)).toBe(10);
    expect(percentile(s, 0)).toBe(1);
    expect(percentile(s, 10)).toBe(1);
    expect(percentile(s, 11)).toBe(2);
    expect(percentile([], 50)).toBeNaN();
    expect(() => percentile(s, 101)).toThrow(RangeError);
    expect(s[0]).toBe(9); // input left unsorted
  });

  it('summarizes latency and computes ratios only when both sides exist', () => {
    const sum = summarizeLatency(Array.from({ length: 100 }, (_, i) => i + 1));
    expect(sum).toEqual({ count: 100, meanUs: 50.5, p50Us: 50, p99Us: 99, maxUs: 100 });
    expect(ratio(50, 200)).toBe(0.25);
    expect(ratio(null, 3)).toBeNull();
    expect(ratio(3, 0)).toBeNull();
    expect(ratio(Number.NaN, 3)).toBeNull();
    expect(formatNumber(12345.6)).toBe('12,346');
    expect(formatNumber(2.34567)).toBe('2.35');
    expect(formatNumber(0.012345)).toBe('0.0123');
    expect(formatNumber(null)).toBe('—');
    expect(formatRatio(0.5)).toBe('0.500×');
    expect(formatRatio(null)).toBe('—');
  });
});

const FIO = {
  'fio version': 'fio-3.33',
  jobs: [
    {
      jobname: 'randread-4k-qd1',
      error: 0,
      usr_cpu: 12.5,
      sys_cpu: 8.125,
      read: {
        iops: 412.5,
        bw: 1650,
        total_ios: 4125,
        runtime: 10000,
        clat_ns: { percentile: { '50.000000': 2_000_000, '99.000000': 9_500_000 } },
        lat_ns: { mean: 2_400_000 },
      },
      write: {
        iops: 0,
        bw: 0,
        total_ios: 0,
        runtime: 0,
        clat_ns: { percentile: { '50.000000': 0, '99.000000': 0 } },
        lat_ns: { mean: 0 },
      },
    },
  ],
};

describe('fio JSON', () => {
  it('takes the side the job ran, in µs and MiB/s, skipping text before the object', () => {
    const f = parseFioJson(`note: both iodepth >= 1 and synchronous I/O engine\n${JSON.stringify(FIO)}`, 'randread');
    // 20.625% of one CPU over 10 s = 2.0625 s for 4125 I/Os = 500 µs each
    expect(f).toEqual({
      iops: 412.5,
      bandwidthMiBs: 1650 / 1024,
      clatP50Us: 2000,
      clatP99Us: 9500,
      latMeanUs: 2400,
      ios: 4125,
      runtimeMs: 10000,
      cpuUsPerIo: 500,
    });
    expect(parseFioJson(JSON.stringify(FIO), 'randwrite').iops).toBe(0);
  });

  it('rejects output without the figures', () => {
    expect(() => parseFioJson('fio: failed to open /dev/sdb', 'read')).toThrow(/no object/);
    expect(() => parseFioJson('{"jobs":[]}', 'read')).toThrow(/no jobs/);
    expect(() => parseFioJson('{"jobs":[{"error":5}]}', 'read')).toThrow(/error 5/);
    const broken = structuredClone(FIO);
    delete (broken.jobs[0]!.read.clat_ns.percentile as Record<string, number>)['99.000000'];
    expect(() => parseFioJson(JSON.stringify(broken), 'read')).toThrow(/p99/);
    const noCpu = structuredClone(FIO) as { jobs: Record<string, unknown>[] };
    delete noCpu.jobs[0]!.usr_cpu;
    expect(() => parseFioJson(JSON.stringify(noCpu), 'read')).toThrow(/usr_cpu/);
    expect(() => parseFioJson('{"jobs":[{"read":', 'read')).toThrow(/fio JSON/);
  });
});

describe('/proc readings', () => {
  it('utime+stime of a stat line whose comm has spaces and parentheses', () => {
    const fields = [
      'S',
      '1',
      '2',
      '3',
      '0',
      '-1',
      '4194560',
      '100',
      '0',
      '0',
      '0',
      '250',
      '37',
      '0',
      '0',
      '20',
      '0',
      '1',
    ];
    expect(parseProcStatCpuMs(`1234 (node (x) y) ${fields.join(' ')}`)).toBe(2870);
    expect(() => parseProcStatCpuMs('garbage')).toThrow();
    expect(parseProcStatusRssKiB('Name:\tnode\nVmRSS:\t   51234 kB\nThreads: 7\n')).toBe(51234);
    expect(() => parseProcStatusRssKiB('Name: x\n')).toThrow(/VmRSS/);
  });
});

describe('bench SAN configuration', () => {
  it('is a valid SAN config mapping every initiator to every volume', () => {
    const cfg = parseSanConfig(
      sanConfig({
        workDir: '/nonexistent',
        initiators: [0xc05076ffe5000001n, 0xc05076ffe5000002n],
        targetWwpn: 0x500a098100000001n,
        targetWwnn: 0x500a098000000001n,
        volumes: [
          { name: 'a', sizeMiB: 64 },
          { name: 'b', sizeMiB: 8 },
        ],
      }),
    );
    expect(cfg.arrays[0]!.hostGroups[0]!.initiators).toHaveLength(2);
    expect(cfg.arrays[0]!.hostGroups[0]!.luns).toEqual({ '0': 'a', '1': 'b' });
    expect(cfg.arrays[0]!.volumes.every((v) => v.file === undefined)).toBe(true);
    expect(cfg.fabric.zoning.default).toBe('allow');
  });
});

describe('saved commands', () => {
  it('carry no machine-specific paths', async () => {
    const { sanitizePaths } = await import('../../../bench/lib/results.js');
    expect(
      sanitizePaths(
        'node /srv/x/bench/run.js -initrd /tmp/npiv-hba-guest-AbC123/initrd.cpio --socket /tmp/npiv-bench-e2e-Xy9/vport0.sock',
        '/srv/x',
      ),
    ).toBe('node bench/run.js -initrd <tmp>/initrd.cpio --socket <work>/vport0.sock');
  });
});
