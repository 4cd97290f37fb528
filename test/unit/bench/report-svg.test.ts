import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { barLength, escapeXml, renderBarChart } from '../../../bench/lib/svg.js';
import { markdownTable } from '../../../bench/lib/report.js';
import { parseBenchArgs } from '../../../bench/lib/args.js';
import { ringSpeedups } from '../../../bench/parts/ring.js';
import { profileRows } from '../../../bench/parts/profile.js';
import { emulatorBottleneck, type EmulatorCase } from '../../../bench/parts/emulator.js';
import { e2eBottleneck, guestScript, FIO_JOBS, type E2eData } from '../../../bench/parts/e2e.js';
import { zeroCounters } from '../../../bench/lib/counting-hba.js';

describe('SVG bar charts', () => {
  it('scales bars linearly or by decades and escapes labels', () => {
    expect(barLength(50, 100, 400)).toBe(200);
    expect(barLength(0, 100, 400)).toBe(0);
    expect(barLength(100, 100, 400, true)).toBe(400);
    expect(barLength(1, 10_000, 400, true)).toBe(0); // four decades below the top sits at the axis
    expect(barLength(100, 10_000, 400, true)).toBe(200);
    expect(escapeXml('a<b & "c"')).toBe('a&lt;b &amp; &quot;c&quot;');
    const svg = renderBarChart({
      title: 'T <1>',
      unit: 'IOPS',
      series: ['x', 'y'],
      groups: [
        { label: 'g', values: [10, null] },
        { label: 'h', values: [5, 20] },
      ],
    });
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(svg).toContain('T &lt;1&gt;');
    expect(svg.match(/<rect x="250"/g)).toHaveLength(3); // three measured bars
    expect(svg).toContain('y: not measured');
    expect(svg).not.toMatch(/https?:\/\/(?!www\.w3\.org)/); // nothing fetched from elsewhere
  });
});

describe('report pieces', () => {
  it('markdown tables escape pipes', () => {
    expect(markdownTable(['a', 'b'], [['1', 'x|y']])).toBe('| a | b |\n| --- | --- |\n| 1 | x\\|y |');
  });

  it('parses the runner flags', () => {
    expect(parseBenchArgs([]).parts).toEqual(['ring', 'emulator', 'e2e', 'scale', 'profile']);
    expect(parseBenchArgs(['--only', 'profile,ring']).parts).toEqual(['ring', 'profile']);
    expect(parseBenchArgs(['--skip', 'e2e', '--seconds', '15'])).toMatchObject({
      parts: ['ring', 'emulator', 'scale', 'profile'],
      seconds: 15,
    });
    expect(parseBenchArgs(['--quick', '--seconds', '15']).seconds).toBe(3);
    expect(parseBenchArgs([]).repeats).toBe(3);
    expect(parseBenchArgs(['--repeats', '5']).repeats).toBe(5);
    expect(() => parseBenchArgs(['--repeats', '0'])).toThrow(/1\.\.20/);
    expect(() => parseBenchArgs(['--only', 'disk'])).toThrow(/unknown part "disk"/);
    expect(() => parseBenchArgs(['--seconds'])).toThrow(/needs a value/);
    expect(() => parseBenchArgs(['--seconds', '-1'])).toThrow();
    expect(() => parseBenchArgs(['--fast'])).toThrow(/unknown argument/);
    expect(parseBenchArgs([]).e2eHba).toBe('in-process');
    expect(parseBenchArgs(['--e2e-paths', 'npiv-hba,host', '--e2e-hba', 'process'])).toMatchObject({
      e2ePaths: ['npiv-hba', 'host'],
      e2eHba: 'process',
    });
    expect(() => parseBenchArgs(['--e2e-paths', 'nvme'])).toThrow(/unknown path "nvme"/);
    expect(() => parseBenchArgs(['--e2e-hba', 'thread'])).toThrow(/in-process or process/);
  });

  it('ring speed-ups pair the two implementations per workload', () => {
    const c = (workload: string, implementation: string, commandsPerSecond: number) => ({
      workload,
      implementation,
      commandsPerSecond,
      commands: 1,
      dsds: 1,
      batchesPerSecond: commandsPerSecond,
      marginPercent: 1,
      samples: 5,
    });
    const s = ringSpeedups([
      c('w1', 'AssemblyScript RingEngine', 300),
      c('w1', 'TypeScript baseline', 100),
      c('w2', 'AssemblyScript RingEngine', 50),
    ]);
    expect(s).toEqual([{ workload: 'w1', wasmOverTs: 3 }]);
  });

  it('names the process with the most CPU per I/O at QD32', () => {
    const base = {
      ios: 1,
      errors: 0,
      errorSamples: [],
      seconds: 1,
      iops: 1,
      latency: { count: 1, meanUs: 1, p50Us: 1, p99Us: 1, maxUs: 1 },
      roundTripsPerIo: 1,
      postedWritesPerIo: 1,
      interruptsPerIo: 1,
      interruptWakeupsPerIo: 1,
    };
    const cases: EmulatorCase[] = [
      { ...base, workload: '4k randread QD1', serveCpuUsPerIo: 1, sanCpuUsPerIo: 900, driverCpuUsPerIo: 1 },
      { ...base, workload: '4k randread QD32', serveCpuUsPerIo: 30, sanCpuUsPerIo: 10, driverCpuUsPerIo: 20 },
    ];
    expect(emulatorBottleneck(cases)).toMatch(/npiv-hba serve .* 30\.0 µs .* \(50% of 60\.0 µs/);
    expect(emulatorBottleneck(cases.slice(0, 1))).toBe('not measured');
  });

  it('the e2e bottleneck names, per path, where the CPU of a 4k QD1 read goes', () => {
    const fio = (iops: number, p50: number, cpuUsPerIo?: number) => ({
      iops,
      bandwidthMiBs: 1,
      clatP50Us: p50,
      clatP99Us: 2 * p50,
      latMeanUs: p50,
      ios: iops * 10,
      runtimeMs: 10_000,
      ...(cpuUsPerIo === undefined ? {} : { cpuUsPerIo }),
    });
    const sample = (qemuCpuMs: number, hbaCpuMs = 0, sanCpuMs = 0) => ({
      wallSeconds: 10,
      hbaCpuMs,
      sanCpuMs,
      qemuCpuMs,
      sanFrames: null,
      counters: zeroCounters(),
    });
    const data: E2eData = {
      volumeMiB: 1,
      runtimeSeconds: 10,
      accelerator: 'tcg',
      guestExitStatus: {},
      problems: [],
      rows: [
        {
          job: 'randread-4k-qd1',
          results: {
            'npiv-hba': fio(500, 1100),
            megasas: fio(2000, 170),
            'virtio-scsi': fio(1500, 180),
            host: fio(250_000, 0.7, 1.5),
          },
          iopsRatioToNpiv: { 'npiv-hba': 1, megasas: 4, 'virtio-scsi': 3, host: 500 },
        },
      ],
      // npiv-hba: 5000 I/Os; QEMU 2000 ms → 400 µs, HBA 3500 ms → 700 µs, SAN 2000 ms → 400 µs
      samples: {
        'npiv-hba': { 'randread-4k-qd1': sample(2000, 3500, 2000) },
        megasas: { 'randread-4k-qd1': sample(6000) },
      },
    };
    const text = e2eBottleneck(data);
    expect(text).toMatch(
      /^\(a\) npiv-hba at 4k QD1 read \(1100 µs p50\): the HBA .* \(700 µs; QEMU \+ the TCG guest .* 400 µs, the SAN process 400 µs\)/,
    );
    expect(text).toContain('(b) megasas (4.00× the IOPS, 170 µs p50): one process, QEMU, 300 µs of CPU per I/O');
    expect(text).toContain('(c) virtio-scsi (3.00× the IOPS, 180 µs p50): one process, QEMU —'); // no sample: no CPU figure
    expect(text).toContain("(d) host fio (500.00×): fio's own CPU (1.50 µs per I/O)");
    // 128k: 10 I/Os, 660 frames, HBA 33 ms + SAN 33 ms → 66 frames per I/O at 100 µs each
    data.rows.push({
      job: 'seqread-128k-qd8',
      results: { 'npiv-hba': fio(1, 60_000), megasas: fio(12, 14_000), 'virtio-scsi': null, host: null },
      iopsRatioToNpiv: { 'npiv-hba': 1, megasas: 12, 'virtio-scsi': null, host: null },
    });
    data.samples['npiv-hba']!['seqread-128k-qd8'] = { ...sample(0, 33, 33), sanFrames: 660 };
    expect(e2eBottleneck(data)).toContain(
      'at 128k sequential read (12.00× behind megasas) the cost is per FC frame: 66.0 frames per I/O at 100 µs of HBA+SAN CPU each',
    );
    data.samples = {};
    expect(e2eBottleneck(data)).toMatch(/^not measured/);
  });

  it('profile rows divide the sampled counters by the I/Os fio reported', () => {
    const counters = {
      ...zeroCounters(),
      bar1Reads: 300,
      bar1Writes: 500,
      interrupts: 100,
      dmaReads: 200,
      dmaReadBytes: 409_600,
    };
    const fio = {
      iops: 10,
      bandwidthMiBs: 0.04,
      clatP50Us: 1,
      clatP99Us: 2,
      latMeanUs: 1,
      ios: 100,
      runtimeMs: 10_000,
    };
    const data: E2eData = {
      volumeMiB: 1,
      runtimeSeconds: 10,
      accelerator: 'tcg',
      guestExitStatus: { 'npiv-hba': 0 },
      problems: [],
      rows: [
        {
          job: 'randread-4k-qd1',
          results: { 'npiv-hba': fio, megasas: null, 'virtio-scsi': null, host: null },
          iopsRatioToNpiv: { 'npiv-hba': 1, megasas: null, 'virtio-scsi': null, host: null },
        },
      ],
      samples: {
        'npiv-hba': {
          'randread-4k-qd1': { wallSeconds: 10, hbaCpuMs: 50, sanCpuMs: 20, qemuCpuMs: null, sanFrames: 400, counters },
        },
      },
    };
    const [r] = profileRows(data);
    expect(r).toMatchObject({
      ios: 100,
      vfioUserMessagesPerIo: 8,
      roundTripsPerIo: 3,
      registerWritesPerIo: 5,
      interruptsPerIo: 1,
      dmaAccessesPerIo: 2,
      dmaBytesPerIo: 4096,
      sanFramesPerIo: 4,
      hbaCpuUsPerIo: 500,
      sanCpuUsPerIo: 200,
      qemuCpuUsPerIo: null,
    });
    data.rows[0]!.results['npiv-hba'] = null;
    expect(profileRows(data)).toEqual([]);
  });

  it("the guest script loads the peers' drivers, finds every disk and runs each job on every path in turn", () => {
    const script = guestScript(7, FIO_JOBS, ['npiv-hba', 'megasas', 'virtio-scsi']);
    expect(script).toContain('--runtime=7');
    expect(script).toContain('insmod /lib/modules/bench-megaraid_sas.ko');
    expect(script).toContain('insmod /lib/modules/bench-virtio_scsi.ko');
    expect(script).not.toContain('bench-qla2xxx'); // qla2xxx is loaded at boot by the harness
    for (const d of ['qla2xxx', 'megaraid_sas', 'virtio_scsi'])
      expect(script).toContain(`wait_until 120 find_disk ${d}`);
    expect(script).toContain('disk_virtio_scsi=$(find_disk virtio_scsi)');
    const runs = script.split('\n').filter((l) => l.startsWith('run_job '));
    // job by job, every path in turn
    expect(runs.slice(0, 3)).toEqual([
      `run_job npiv-hba "$disk_npiv_hba" randread-4k-qd1 randread 4k 1 1`,
      `run_job megasas "$disk_megasas" randread-4k-qd1 randread 4k 1 1`,
      `run_job virtio-scsi "$disk_virtio_scsi" randread-4k-qd1 randread 4k 1 1`,
    ]);
    expect(runs).toHaveLength(FIO_JOBS.length * 3);
    // repeats run the whole sequence again, after a measured idle window
    const rep = guestScript(7, FIO_JOBS.slice(0, 2), ['npiv-hba', 'megasas'], 3, 5);
    const repRuns = rep.split('\n').filter((l) => l.startsWith('run_job '));
    expect(repRuns).toHaveLength(2 * 2 * 3);
    expect(repRuns[4]).toBe(`run_job npiv-hba "$disk_npiv_hba" randread-4k-qd1 randread 4k 1 2`);
    expect(rep.indexOf('GUEST:IDLE-END')).toBeLessThan(rep.indexOf('\nrun_job '));
    expect(rep).toContain('sleep 5');
    expect(script).toMatch(/GUEST:FIO-START .*GUEST:FIO-END .*GUEST:FIO-JSON/s);
    const npiv = guestScript(7, FIO_JOBS.slice(0, 1), ['npiv-hba']);
    expect(npiv).not.toContain('insmod');
    expect(npiv).toContain('find_disk qla2xxx');
  });

  it('find_disk picks the disk by the driver bound under its SCSI host (qla2xxx has no proc_name)', () => {
    const script = guestScript(7, FIO_JOBS.slice(0, 1), ['npiv-hba']);
    const fn = /^find_disk\(\) \{\n[\s\S]*?\n\}\n/m.exec(script)?.[0];
    expect(fn).toBeDefined();
    const sys = mkdtempSync(join(tmpdir(), 'find-disk-'));
    try {
      // sda behind a virtio-scsi host (parent virtio0), sdb behind a qla2xxx host (parent the PCI function).
      const disk = (name: string, hostParent: string, driver: string, bus: string) => {
        const dev = join(sys, 'devices', hostParent, 'host3', 'rport-3:0-0', 'target3:0:0', '3:0:0:0');
        mkdirSync(dev, { recursive: true });
        mkdirSync(join(sys, 'bus', bus, 'drivers', driver), { recursive: true });
        symlinkSync(join(sys, 'bus', bus, 'drivers', driver), join(sys, 'devices', hostParent, 'driver'));
        mkdirSync(join(sys, 'block', name), { recursive: true });
        symlinkSync(dev, join(sys, 'block', name, 'device'));
      };
      disk('sda', 'pci0000:00/0000:00:02.0/virtio0', 'virtio_scsi', 'virtio');
      disk('sdb', 'pci0000:00/0000:00:01.0/0000:01:00.0', 'qla2xxx', 'pci');
      const run = (driver: string) => {
        try {
          return execFileSync('sh', ['-c', `${fn}\nfind_disk ${driver}`], {
            env: { ...process.env, SYSFS: sys },
            encoding: 'utf8',
          }).trim();
        } catch {
          return null;
        }
      };
      expect(run('qla2xxx')).toBe('sdb');
      expect(run('virtio_scsi')).toBe('sda');
      expect(run('megaraid_sas')).toBeNull();
    } finally {
      rmSync(sys, { recursive: true, force: true });
    }
  });
});
