/**
 * `serve` and `san` (built CLI, child processes) against other local users
 * (docs/security.md): sockets and the stats file 0600 in private directories whatever the umask, SIGHUP
 * stopping both without leaving a socket behind, a `--san` path squatted by another user refused
 * before any frame is sent, and socket path options checked up front.
 *
 * Without dist/ (npm ci builds it; `npm run build:ts` in a dev loop) these tests fail.
 */
import { chmodSync, chownSync, existsSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { startChildListener } from '../../support/child-listener.js';
import { cliSandbox, waitFor } from './support.js';

const WWPN = '50:01:43:80:01:23:45:67';
const WWNN = '50:01:43:80:01:23:45:66';
const NOBODY = { uid: 65534, gid: 65534 };
const isRoot = process.getuid?.() === 0;

const sandbox = cliSandbox('hsec-', 'info');
const mode = (path: string): number => statSync(path).mode & 0o7777;

function sanConfig(): string {
  const cfg = join(sandbox.dir, 'san.json');
  writeFileSync(cfg, JSON.stringify({ fabric: { name: 'f', domain: 2 }, arrays: [] }));
  return cfg;
}

describe('sockets of serve and san', () => {
  it('are 0600 in directories created 0700 under umask 000; SIGHUP stops both and removes them', async () => {
    const link = join(sandbox.dir, 'run', 'l.sock');
    const control = join(sandbox.dir, 'run', 'c.sock');
    const socket = join(sandbox.dir, 'vm', 'v.sock');
    const old = process.umask(0); // inherited by the children started now
    let san: ReturnType<typeof sandbox.start>;
    let serve: ReturnType<typeof sandbox.start>;
    try {
      san = sandbox.start(['san', '--config', sanConfig(), '--link', link, '--control', control]);
    } finally {
      process.umask(old);
    }
    await waitFor(() => existsSync(control), 'SAN sockets', san);
    process.umask(0);
    try {
      serve = sandbox.start(['serve', '--socket', socket, '--wwpn', WWPN, '--wwnn', WWNN, '--san', link]);
    } finally {
      process.umask(old);
    }
    await waitFor(() => existsSync(socket), 'vfio-user socket', serve);
    expect([mode(link), mode(control), mode(socket)]).toEqual([0o600, 0o600, 0o600]);
    expect([mode(join(sandbox.dir, 'run')), mode(join(sandbox.dir, 'vm'))]).toEqual([0o700, 0o700]);
    expect(mode(`${socket}.stats.json`)).toBe(0o600); // the counters are private too

    serve.proc.kill('SIGHUP');
    san.proc.kill('SIGHUP');
    expect(await serve.exit).toBe(0);
    expect(await san.exit).toBe(0);
    expect([existsSync(socket), existsSync(link), existsSync(control)]).toEqual([false, false, false]);
  });

  it('a socket directory others can write to is refused with a clear message', async () => {
    const open = join(sandbox.dir, 'open');
    mkdirSync(open);
    chmodSync(open, 0o777);
    const r = await sandbox.run(['serve', '--socket', join(open, 'v.sock'), '--wwpn', WWPN, '--wwnn', WWNN]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/directory is writable by other users \(mode 0777\)/);
    expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
  });
});

describe.runIf(isRoot)('serve --san at a path another user squats', () => {
  it('exits 1 naming the uid, and the squatter receives no byte', async () => {
    chmodSync(sandbox.dir, 0o711); // nobody may reach its own directory below
    const shared = join(sandbox.dir, 'shared');
    mkdirSync(shared, { mode: 0o755 });
    chownSync(shared, NOBODY.uid, NOBODY.gid);
    const link = join(shared, 'l.sock');
    const squatter = await startChildListener(link, NOBODY);
    const socket = join(sandbox.dir, 'v.sock');
    const r = await sandbox.run(['serve', '--socket', socket, '--wwpn', WWPN, '--wwnn', WWNN, '--san', link]);
    const seen = await squatter.stop();
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/served by uid 65534 .*--san-owner 65534/);
    expect(existsSync(socket)).toBe(false);
    expect(seen.bytes).toBe(0);
  });

  it('--san-owner allows that user', async () => {
    chmodSync(sandbox.dir, 0o711);
    const shared = join(sandbox.dir, 'shared');
    mkdirSync(shared, { mode: 0o755 });
    chownSync(shared, NOBODY.uid, NOBODY.gid);
    const link = join(shared, 'l.sock');
    const squatter = await startChildListener(link, NOBODY);
    const socket = join(sandbox.dir, 'v.sock');
    const serve = sandbox.start([
      'serve',
      '--socket',
      socket,
      '--wwpn',
      WWPN,
      '--wwnn',
      WWNN,
      '--san',
      link,
      '--san-owner',
      'nobody',
    ]);
    await waitFor(() => existsSync(socket), 'vfio-user socket', serve);
    serve.proc.kill('SIGTERM');
    expect(await serve.exit).toBe(0);
    await squatter.stop();
  });
});

describe('socket path options', () => {
  const long = (name: string) => join(sandbox.dir, 'x'.repeat(100), name);

  it('san: a --link or --control longer than sun_path is refused naming the option', async () => {
    const cfg = sanConfig();
    const a = await sandbox.run(['san', '--config', cfg, '--link', long('l.sock')]);
    expect(a.code).toBe(2);
    expect(a.stderr).toMatch(/--link '.*' is \d+ bytes long; a Unix socket path holds at most 107/);
    const b = await sandbox.run([
      'san',
      '--config',
      cfg,
      '--link',
      join(sandbox.dir, 'l.sock'),
      '--control',
      long('c.sock'),
    ]);
    expect(b.code).toBe(2);
    expect(b.stderr).toMatch(/--control '.*' is \d+ bytes long/);
  });

  it('san: --link equal to --control is refused', async () => {
    const path = join(sandbox.dir, 's.sock');
    const r = await sandbox.run(['san', '--config', sanConfig(), '--link', path, '--control', path]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--link and --control must be different sockets/);
    expect(existsSync(path)).toBe(false);
  });

  it('serve: a --socket longer than sun_path, or an unknown --socket-group, is refused', async () => {
    const a = await sandbox.run(['serve', '--socket', long('v.sock'), '--wwpn', WWPN, '--wwnn', WWNN]);
    expect(a.code).toBe(2);
    expect(a.stderr).toMatch(/--socket '.*' is \d+ bytes long/);
    const b = await sandbox.run([
      'serve',
      '--socket',
      join(sandbox.dir, 'v.sock'),
      '--wwpn',
      WWPN,
      '--wwnn',
      WWNN,
      '--socket-group',
      'no-such-group-x',
    ]);
    expect(b.code).toBe(2);
    expect(b.stderr).toMatch(/--socket-group 'no-such-group-x': no such group/);
  });
});
