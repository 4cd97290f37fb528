/**
 * The ways a user starts the CLI (docs/cli.md#running-it): bin/npiv-hba.js directly or through a
 * symlink on PATH, `--version`, the `npm exec` case (a launcher whose parent goes away shuts down
 * like on SIGTERM, so `kill $!` of `npx npiv-hba serve &` leaves no process holding the socket),
 * and the lifecycle step that keeps `npx npiv-hba` from rebuilding a built checkout.
 */
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, readFileSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CLI, REPO, cliSandbox, waitFor } from './support.js';

const VERSION = (JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { version: string }).version;
const BUILD_STEP = join(REPO, 'scripts', 'npm', 'build-step.mjs');

describe('starting the CLI', () => {
  const box = cliSandbox('npiv-launch-');

  it('--version and -V print the package version and exit 0', async () => {
    for (const flag of ['--version', '-V']) {
      const r = await box.run([flag]);
      expect(r.code, flag).toBe(0);
      expect(r.stdout).toBe(`${VERSION}\n`);
    }
  });

  it('runs through a symlink on PATH (the one-time install)', () => {
    const binDir = join(box.dir, 'bin');
    spawnSync('mkdir', [binDir]);
    symlinkSync(CLI, join(binDir, 'npiv-hba'));
    const r = spawnSync('npiv-hba', ['--version'], {
      env: { ...process.env, PATH: `${binDir}:${process.env.PATH ?? ''}` },
      encoding: 'utf8',
    });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toBe(`${VERSION}\n`);
  });

  it('under npm exec, serve stops cleanly when its parent shell is killed', async () => {
    const socket = join(box.dir, 'v.sock');
    // `; :` keeps sh from exec'ing node: the shape npm exec gives (npm → sh -c → node).
    const shell = spawn(
      'sh',
      [
        '-c',
        `"${process.execPath}" "${CLI}" serve --socket "${socket}" --wwpn 5001438001234567 --wwnn 5001438001234566; :`,
      ],
      { stdio: 'ignore', env: { ...process.env, npm_command: 'exec', NPIV_HBA_LOG_LEVEL: 'warn' } },
    );
    try {
      await waitFor(() => existsSync(socket), 'serve listening');
      const pid = Number(
        spawnSync('pgrep', ['-P', String(shell.pid)], { encoding: 'utf8' })
          .stdout.trim()
          .split('\n')[0],
      );
      expect(pid).toBeGreaterThan(0);
      shell.kill('SIGKILL');
      await waitFor(() => !existsSync(socket), 'socket removed after the parent went away');
      await waitFor(() => {
        try {
          process.kill(pid, 0);
          return false;
        } catch {
          return true;
        }
      }, 'serve exited');
    } finally {
      shell.kill('SIGKILL');
    }
  });

  it('without npm exec, serve keeps running when its parent goes away', async () => {
    const socket = join(box.dir, 'v.sock');
    const env: NodeJS.ProcessEnv = { ...process.env, NPIV_HBA_LOG_LEVEL: 'warn' };
    delete env.npm_command;
    const shell = spawn(
      'sh',
      [
        '-c',
        `"${process.execPath}" "${CLI}" serve --socket "${socket}" --wwpn 5001438001234567 --wwnn 5001438001234566; :`,
      ],
      { stdio: 'ignore', env },
    );
    let pid = 0;
    try {
      await waitFor(() => existsSync(socket), 'serve listening');
      pid = Number(
        spawnSync('pgrep', ['-P', String(shell.pid)], { encoding: 'utf8' })
          .stdout.trim()
          .split('\n')[0],
      );
      shell.kill('SIGKILL');
      await new Promise((r) => setTimeout(r, 1000));
      expect(existsSync(socket)).toBe(true);
      process.kill(pid, 0);
    } finally {
      shell.kill('SIGKILL');
      if (pid > 0) process.kill(pid, 'SIGTERM');
    }
    await waitFor(() => !existsSync(socket), 'serve stopped by SIGTERM');
  });
});

describe('npm lifecycle build step', () => {
  const step = (env: NodeJS.ProcessEnv, ...args: string[]) =>
    spawnSync(process.execPath, [BUILD_STEP, ...args], { env, encoding: 'utf8' });
  const base = { ...process.env };
  delete base.npm_command;

  it('runs its command under npm ci/install and passes on its status', () => {
    expect(step({ ...base, npm_command: 'ci' }, 'ts', 'false').status).toBe(1);
    expect(step(base, 'ts', 'true').status).toBe(0);
  });

  it('skips a step whose outputs exist under npm exec (npx), and runs one whose outputs are missing', () => {
    expect(existsSync(join(REPO, 'dist', 'src', 'cli.js'))).toBe(true);
    expect(step({ ...base, npm_command: 'exec' }, 'ts', 'false').status).toBe(0);
    expect(step({ ...base, npm_command: 'exec' }, 'native', 'false').status).toBe(
      existsSync(join(REPO, 'native', 'build', 'Release', 'npiv_native.node')) ? 0 : 1,
    );
  });

  it('runs `npm` as the npm of the lifecycle (npm_execpath), not whatever PATH holds', () => {
    const fakeNpm = join(REPO, 'test', 'unit', 'cli', 'fixtures', 'fake-npm.cjs');
    const r = step({ ...base, npm_execpath: fakeNpm, PATH: '/nonexistent' }, 'ts', 'npm', 'run', 'build');
    expect(r.stdout).toBe('fake npm: run build\n');
    expect(r.status).toBe(7);
  });

  it('refuses an unknown step with status 2', () => {
    const r = step(base, 'wasm', 'true');
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('usage: build-step.mjs');
  });
});

describe('a fresh host, as a user other than root', () => {
  const box = cliSandbox('npiv-fresh-');

  it.runIf(process.geteuid?.() === 0)(
    'serve says how to get a socket directory it may not create, not `mkdir EACCES`',
    () => {
      // Root's 0755 directory: uid 65534 may enter it but not create anything in it, as on /run.
      chmodSync(box.dir, 0o755);
      const socket = join(box.dir, 'npiv-hba', 'v.sock');
      const r = spawnSync(
        process.execPath,
        [CLI, 'serve', '--socket', socket, '--wwpn', '5001438001234567', '--wwnn', '5001438001234566'],
        { uid: 65534, gid: 65534, encoding: 'utf8', env: { ...process.env, NPIV_HBA_LOG_LEVEL: 'warn' } },
      );
      expect(r.status).toBe(1);
      expect(r.stderr).toContain(
        `npiv-hba: cannot create the socket directory ${join(box.dir, 'npiv-hba')}: permission denied`,
      );
      expect(r.stderr).toContain('run as root (sudo), or put the socket in a directory you own');
      expect(r.stderr).not.toMatch(/\n\s+at /);
    },
  );
});
