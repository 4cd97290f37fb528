/**
 * Issue 15, end to end: `npiv-hba compat` through the built CLI, as CI runs it — Debian
 * bookworm's, trixie's and forky's own qla2xxx (kernel packages fetched once into the cache on
 * first use) against the emulated ISP2532, the core scenarios each, and forky's against the
 * ISP2432. Every scenario passes on every kernel, the matrix names each kernel's release and the
 * driver version its guest reported, and the JUnit file agrees with the JSON.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CompatReport } from '../../src/compat/report.js';
import { SCENARIOS } from '../../src/compat/scenarios.js';
import { PROJECT_ROOT } from './support/processes.js';

const CLI = join(PROJECT_ROOT, 'bin', 'npiv-hba.js');
const KERNELS = [
  { label: 'debian:bookworm', release: /^6\.1\.\d+-\d+-amd64$/ },
  { label: 'debian:trixie', release: /^6\.12\.\d+\+deb13-amd64$/ },
  { label: 'debian:forky', release: /^7\.\d+\.\d+\+deb14-amd64$/ },
];
const CORE = SCENARIOS.filter((s) => s.core).map((s) => s.name);

interface CompatRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the built CLI's `compat` to its end (14 minutes at most). */
function runCompat(args: string[]): Promise<CompatRun> {
  return new Promise((resolve) => {
    const run: CompatRun = { code: null, stdout: '', stderr: '' };
    const child = spawn(process.execPath, [CLI, 'compat', ...args], {
      cwd: PROJECT_ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout.on('data', (d: Buffer) => (run.stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (run.stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGTERM'), 840_000);
    child.on('close', (c) => {
      clearTimeout(timer);
      run.code = c;
      resolve(run);
    });
  });
}

describe('npiv-hba compat: bookworm, trixie and forky qla2xxx on the emulated ISP2532 (real guests)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'npiv-compat-test-'));
  const junit = join(dir, 'compat.xml');
  let code: number | null = null;
  let stdout = '';
  let stderr = '';
  let report: CompatReport;

  beforeAll(async () => {
    const args = KERNELS.flatMap((k) => ['--kernel', k.label]);
    args.push('--scenarios', 'core', '--json', '--junit', junit, '--log-dir', join(dir, 'logs'));
    ({ code, stdout, stderr } = await runCompat(args));
    report = JSON.parse(stdout) as CompatReport;
  });

  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('exits 0 with a passing report and a progress line per kernel and scenario', () => {
    expect(code, stderr.slice(-8000)).toBe(0);
    expect(report.ok).toBe(true);
    for (const k of KERNELS)
      for (const s of CORE) expect(stderr).toMatch(new RegExp(`\\[compat\\] ${k.label}: ${s} pass \\(`));
  });

  it('every core scenario passes on every kernel, with each kernel and driver version recorded', () => {
    expect(report.kernels.map((k) => k.label)).toEqual(KERNELS.map((k) => k.label));
    for (const [i, k] of report.kernels.entries()) {
      expect(k.release).toMatch(KERNELS[i]!.release);
      expect(k.packageVersion).toMatch(/^\d+\.\d+/);
      expect(k.driverVersion).toMatch(/^10\.\d\d\.\d\d\.\d+-k$/);
      expect(k.error).toBeNull();
      expect(k.kernelProblems).toEqual([]);
      expect(k.scenarios.map((s) => s.name)).toEqual(CORE);
      const failed = k.scenarios.filter((s) => s.status !== 'pass');
      expect(failed, JSON.stringify(failed, null, 2)).toEqual([]);
    }
  });

  it('the JUnit file has one passing test case per kernel and scenario', () => {
    const xml = readFileSync(junit, 'utf8');
    expect(xml).toContain(`tests="${KERNELS.length * CORE.length}" failures="0" skipped="0"`);
    expect(xml.match(/<testcase /g)?.length).toBe(KERNELS.length * CORE.length);
    for (const k of report.kernels) expect(xml).toContain(`<property name="qla2xxx" value="${k.driverVersion}"/>`);
  });
});

describe('npiv-hba compat: forky qla2xxx on the emulated ISP2432 (its 24xx paths, real guest)', () => {
  let run: CompatRun;
  let report: CompatReport;

  beforeAll(async () => {
    run = await runCompat(['--kernel', 'debian:forky', '--model', 'isp2432', '--scenarios', 'core', '--json']);
    report = JSON.parse(run.stdout) as CompatReport;
  });

  it('every core scenario passes on the QLE2462, at 4 Gb', () => {
    expect(run.code, run.stderr.slice(-8000)).toBe(0);
    expect(report.ok).toBe(true);
    expect(report.model).toBe('isp2432');
    const [k] = report.kernels;
    expect(k!.scenarios.map((s) => s.name)).toEqual(CORE);
    const failed = k!.scenarios.filter((s) => s.status !== 'pass');
    expect(failed, JSON.stringify(failed, null, 2)).toEqual([]);
    expect(k!.kernelProblems).toEqual([]);
    // The 24xx identity reached the driver: the board name from its NVRAM and the 4 Gb link.
    expect(k!.scenarios.find((s) => s.name === 'flash')?.summary).toContain('QLE2462');
    expect(k!.scenarios.find((s) => s.name === 'link')?.summary).toContain('4 Gbit');
  });
});
