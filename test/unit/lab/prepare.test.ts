import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ensureGuestEnvironment, prepareBlocker } from '../../../src/lab/prepare.js';
import { silentReporter } from '../../../src/lab/progress.js';

const dir = mkdtempSync(join(tmpdir(), 'lab-prepare-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function fakeBin(names: string[]): string {
  const bin = join(dir, `bin-${names.join('-')}`);
  mkdirSync(bin, { recursive: true });
  for (const n of names) {
    writeFileSync(join(bin, n), '#!/bin/sh\nexit 0\n');
    chmodSync(join(bin, n), 0o755);
  }
  return bin;
}

describe('guest environment preparation', () => {
  it('needs root and apt to build', () => {
    expect(prepareBlocker(1000, fakeBin(['apt-get', 'dpkg-query']))).toMatch(
      /needs root: run `sudo bash scripts\/guest\/prepare.sh`/,
    );
    expect(prepareBlocker(0, join(dir, 'no-such-dir'))).toMatch(/needs a Debian host with apt/);
    expect(prepareBlocker(0, fakeBin(['apt-get']))).toMatch(/needs a Debian host with apt/);
    expect(prepareBlocker(0, fakeBin(['apt-get', 'dpkg-query']))).toBeNull();
  });

  it('fails with the clear message before running anything when it cannot build', async () => {
    const cache = join(dir, 'empty-cache');
    mkdirSync(cache);
    const project = join(dir, 'project');
    await expect(
      ensureGuestEnvironment(
        { projectRoot: project, logFile: join(dir, 'p.log'), timeoutMs: 1000, cacheDir: cache, uid: 1000, path: '' },
        silentReporter,
      ),
    ).rejects.toThrow(/needs root/);
  });

  it('runs prepare.sh, shows its progress lines and reports its failure with the log', async () => {
    const project = join(dir, 'fake-project');
    mkdirSync(join(project, 'scripts', 'guest'), { recursive: true });
    writeFileSync(
      join(project, 'scripts', 'guest', 'prepare.sh'),
      'echo "[guest-prepare] building the rootfs" >&2\necho noise\necho "[guest-prepare] ERROR: no network" >&2\nexit 3\n',
    );
    const details: string[] = [];
    const reporter = { ...silentReporter, detail: (t: string) => details.push(t) };
    const cache = join(dir, 'cache2');
    mkdirSync(cache);
    const log = join(dir, 'prepare.log');
    await expect(
      ensureGuestEnvironment(
        {
          projectRoot: project,
          logFile: log,
          timeoutMs: 10_000,
          cacheDir: cache,
          uid: 0,
          path: fakeBin(['apt-get', 'dpkg-query']),
        },
        reporter,
      ),
    ).rejects.toThrow(
      /building the guest environment failed \(prepare\.sh exit 3\); log .*prepare\.log:\n[\s\S]*ERROR: no network/,
    );
    expect(details).toContain('building the rootfs');
    expect(details).toContain('ERROR: no network');
    expect(details).not.toContain('noise');
  });

  it('a build that finishes but leaves no environment is an error too', async () => {
    const project = join(dir, 'fake-project-ok');
    mkdirSync(join(project, 'scripts', 'guest'), { recursive: true });
    writeFileSync(join(project, 'scripts', 'guest', 'prepare.sh'), 'exit 0\n');
    const cache = join(dir, 'cache3');
    mkdirSync(cache);
    await expect(
      ensureGuestEnvironment(
        {
          projectRoot: project,
          logFile: join(dir, 'p3.log'),
          timeoutMs: 10_000,
          cacheDir: cache,
          uid: 0,
          path: fakeBin(['apt-get', 'dpkg-query']),
        },
        silentReporter,
      ),
    ).rejects.toThrow(/no guest environment in .*cache3/);
  });
});
