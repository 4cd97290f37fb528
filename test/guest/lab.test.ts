/**
 * Issue 6, item 1, end to end: `npiv-hba lab --vports 2 --json` through the built CLI, as a user
 * runs it (the SAN, two `serve` processes and a real QEMU guest with the stock qla2xxx), and the
 * report it prints: both vports logged in to the fabric with distinct N_Port IDs, the example's
 * LUNs with their sizes, a verified fio run with zero errors; afterwards no socket is left.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LabReport } from '../../src/lab/report.js';
import { PROJECT_ROOT } from './support/processes.js';

const CLI = join(PROJECT_ROOT, 'bin', 'npiv-hba.js');
const GIB = 2 ** 30;
const MIB = 2 ** 20;

interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

function runCli(args: string[], timeoutMs: number): Promise<CliRun> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { cwd: PROJECT_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGTERM'), timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

describe('npiv-hba lab --vports 2 --json (real guest)', () => {
  const workDir = mkdtempSync(join(tmpdir(), 'npiv-lab-test-'));
  let run: CliRun;
  let report: LabReport;

  beforeAll(async () => {
    run = await runCli(['lab', '--vports', '2', '--json', '--work-dir', workDir], 600_000);
    report = JSON.parse(run.stdout) as LabReport;
  });
  afterAll(() => rmSync(workDir, { recursive: true, force: true }));

  it('passes and exits 0', () => {
    expect(report.failures, run.stderr.slice(-4000)).toEqual([]);
    expect(report.ok).toBe(true);
    expect(run.code).toBe(0);
  });

  it('both vports logged in to the fabric with distinct N_Port IDs', () => {
    expect(report.vports.map((v) => v.wwpn)).toEqual(['c0:50:76:ff:e5:00:00:01', 'c0:50:76:ff:e5:00:00:02']);
    for (const v of report.vports) {
      expect(v.fabricLogin).toBe(true);
      expect(v.portState).toBe('Online');
      expect(v.nportId).toMatch(/^0x01[0-9a-f]{4}$/);
      expect(v.speed).toBe('8 Gbit');
    }
    expect(report.vports[0]!.nportId).not.toBe(report.vports[1]!.nportId);
    // The switch saw the same logins while the guest was up.
    const logins = new Map(report.san.logins.map((l) => [l.wwpn, l.nportId]));
    for (const v of report.vports) expect(logins.get(v.wwpn)).toBe(v.nportId);
  });

  it('each vport discovered both array ports as FCP targets', () => {
    for (const v of report.vports) {
      for (const wwpn of ['50:0a:09:81:00:00:00:01', '50:0a:09:82:00:00:00:01']) {
        expect(v.targets.some((t) => t.wwpn === wwpn && /FCP Target/.test(t.roles))).toBe(true);
      }
    }
  });

  it('the guest sees the example LUNs with their sizes (1 GiB boot, 256 MiB scratch) on every vport', () => {
    for (const v of report.vports) {
      const byLun = new Map<number, Set<number>>();
      for (const l of v.luns) byLun.set(l.lun ?? -1, (byLun.get(l.lun ?? -1) ?? new Set()).add(l.bytes));
      expect([...byLun.keys()].sort()).toEqual([0, 1]);
      expect([...byLun.get(0)!]).toEqual([GIB]);
      expect([...byLun.get(1)!]).toEqual([256 * MIB]);
      for (const l of v.luns) expect(l.naa).toMatch(/^naa\.6[0-9a-f]{31}$/);
    }
  });

  it('verified I/O on every vport: all written data read back and checked, zero errors', () => {
    for (const v of report.vports) {
      expect(v.io).not.toBeNull();
      expect(v.io!.errors).toBe(0);
      expect(v.io!.fioStatus).toBe(0);
      expect(v.io!.writtenMiB).toBe(32);
      expect(v.io!.verifiedMiB).toBe(32);
      expect(v.io!.writeMiBps).toBeGreaterThan(0);
    }
  });

  it('shuts everything down: sockets removed, child logs kept in the work dir', () => {
    const left = readdirSync(workDir);
    expect(left.filter((f) => f.endsWith('.sock'))).toEqual([]);
    for (const f of ['san.log', 'vport1.log', 'vport2.log', 'guest.log', 'san.json'])
      expect(existsSync(join(workDir, f)), f).toBe(true);
  });
});
