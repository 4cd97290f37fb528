/**
 * The SAN as its own process, the way it is deployed: `npiv-hba san` from the built CLI
 * (bin/npiv-hba.js → dist/, built by `npm ci`). Data written to a file-backed volume is read back
 * identical after the SAN process is stopped (SIGTERM) and started again; `san ctl` talks to the
 * running process. Without a build the test is skipped locally and fails under CI=true.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { FC4_FEATURE } from '../../../src/fc/ct.js';
import { Initiator, type ScsiResult } from '../../../src/fc/initiator.js';
import { read10, write10 } from './fake-scsi.js';
import { until } from './helpers.js';
import { packageRoot } from '../../../src/util/package-root.js';

const repoRoot = packageRoot();
const cli = join(repoRoot, 'bin', 'npiv-hba.js');
const built = existsSync(join(repoRoot, 'dist', 'src', 'cli', 'san.js'));
const HOST = { wwpn: 0xc05076ffe5000001n, wwnn: 0xc05076ffe5000000n };

function startSan(args: string[]): ChildProcess {
  return spawn(process.execPath, [cli, 'san', ...args], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, NPIV_HBA_LOG_LEVEL: 'warn' },
  });
}
function exited(p: ChildProcess): Promise<number | null> {
  return new Promise((r) => (p.exitCode !== null ? r(p.exitCode) : p.once('exit', (code) => r(code))));
}

async function withUnitAttentionRetry(run: () => Promise<ScsiResult>): Promise<ScsiResult> {
  for (let i = 0; i < 4; i++) {
    const r = await run();
    if (!(r.status === 2 && r.sense && (r.sense[2]! & 0xf) === 6)) return r;
  }
  throw new Error('unit attention did not clear');
}

async function lunZero(link: string): Promise<{ hba: Initiator; target: number }> {
  const hba = await Initiator.connect(link, HOST);
  await hba.nameServer.register({ fcpFeatures: FC4_FEATURE.INITIATOR });
  const [t] = await hba.discoverTargets();
  await hba.plogi(t!.nportId);
  await hba.prli(t!.nportId);
  return { hba, target: t!.nportId };
}

describe('npiv-hba san as a process', () => {
  let dir: string | undefined;
  let proc: ChildProcess | undefined;
  afterEach(() => {
    if (proc && proc.exitCode === null) proc.kill('SIGKILL');
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it.runIf(built || process.env.CI === 'true')(
    'keeps written data across a restart of the SAN process; san ctl reaches it',
    async () => {
      if (!built) throw new Error('dist/ is not built: run npm run build');
      dir = mkdtempSync(join(tmpdir(), 'sanproc-'));
      const cfg = join(dir, 'san.json');
      writeFileSync(
        cfg,
        JSON.stringify({
          fabric: { name: 'f', domain: 3 },
          arrays: [
            {
              name: 'a1',
              ports: [{ wwpn: '50:0a:09:81:00:00:00:07', wwnn: '50:0a:09:80:00:00:00:07' }],
              volumes: [{ name: 'v', size: '8MiB', file: 'v.img' }],
              hostGroups: [{ name: 'h', initiators: ['c0:50:76:ff:e5:00:00:01'], luns: { '0': 'v' } }],
            },
          ],
        }),
      );
      const link = join(dir, 'link.sock');
      const control = join(dir, 'ctl.sock');
      const args = ['--config', cfg, '--link', link, '--control', control];

      proc = startSan(args);
      await until(() => existsSync(control), 'first SAN up', 4000);
      const data = Uint8Array.from({ length: 32 * 512 }, (_, i) => (i * 7 + 1) & 0xff);
      let { hba, target } = await lunZero(link);
      const w = await withUnitAttentionRetry(() =>
        hba.scsiCommand(target, { lun: 0, cdb: write10(1000, 32), direction: 'write', dataOut: data }),
      );
      expect(w.status).toBe(0);
      const { stdout } = await promisify(execFile)(process.execPath, [
        cli,
        'san',
        'ctl',
        '--control',
        control,
        'status',
      ]);
      expect(JSON.parse(stdout).logins.map((l: { wwpn: string }) => l.wwpn)).toContain('c0:50:76:ff:e5:00:00:01');
      hba.closeLink();
      proc.kill('SIGTERM');
      expect(await exited(proc)).toBe(0);
      expect(existsSync(control)).toBe(false); // removed on shutdown, so the wait below means something

      proc = startSan(args);
      await until(() => existsSync(control), 'second SAN up', 4000);
      ({ hba, target } = await lunZero(link));
      const r = await withUnitAttentionRetry(() =>
        hba.scsiCommand(target, { lun: 0, cdb: read10(1000, 32), direction: 'read', expectedLength: data.length }),
      );
      expect(r.status).toBe(0);
      expect(r.data).toEqual(data);
      hba.closeLink();
      proc.kill('SIGTERM');
      expect(await exited(proc)).toBe(0);
    },
  );
});
