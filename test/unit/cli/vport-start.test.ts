/**
 * `npiv-hba vport start|stop|stats` and undefine of a running vport, with real child processes:
 * the real `npiv-hba serve` (from the built CLI, bin/npiv-hba.js -> dist/) where a working HBA is
 * needed, and small stand-in scripts for the failure modes (serve dying, never answering,
 * ignoring SIGTERM). Every process a test starts is killed by pid afterwards.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, readFileSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runCli } from '../../../src/cli/vport.js';
import { native } from '../../../src/native/index.js';
import { LinkListener } from '../../../src/san/link-listener.js';
import { processArgv } from '../../../src/util/proc.js';
import { probeVfioUserServer } from '../../../src/vport/probe.js';
import { STATE_FORMAT_VERSION, statePath, writeRuntimeState } from '../../../src/vport/runtime.js';
import { statsPathFor, VportStatsWriter } from '../../../src/vport/stats.js';
import { BUILT_CLI, capture, haveBuiltCli, tempDirs, type TempDirs } from '../vport/helpers.js';

/** gid of nogroup (Debian) / nobody (Fedora): a group the test user is not in */
const NOGROUP = 65534;

let dirs: TempDirs;
let env: NodeJS.ProcessEnv;
const started = new Set<number>();
const children: ChildProcess[] = [];

beforeEach(() => {
  dirs = tempDirs();
  env = {
    ...process.env,
    NPIV_HBA_CONFIG_DIR: dirs.configDir,
    NPIV_HBA_RUN_DIR: dirs.runDir,
    NPIV_HBA_LOG_LEVEL: 'warn',
  };
});
afterEach(async () => {
  for (const pid of started) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  started.clear();
  for (const c of children.splice(0)) c.kill('SIGKILL');
  dirs.cleanup();
});

async function cli(argv: string[], serveCommand?: string[]) {
  const c = capture(env, serveCommand ? { serveCommand } : {});
  const code = await runCli(argv, c.io);
  const pid = /^started \S+ pid (\d+) /m.exec(c.stdout())?.[1];
  if (pid) started.add(Number(pid));
  return { code, stdout: c.stdout(), stderr: c.stderr() };
}

async function define(...argv: string[]): Promise<string> {
  const r = await cli(['define', ...argv]);
  expect(r.code).toBe(0);
  return r.stdout.trim();
}

/**
 * Not yet reaped. Serve processes started here are children of this test process and node reaps
 * them; a killed one counts as dead only once reaped, because a zombie thread-group leader may
 * still have threads holding its socket.
 */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Waits (bounded) until node has reaped `pid`; true if it has. */
async function reaped(pid: number): Promise<boolean> {
  for (let i = 0; i < 500 && alive(pid); i++) await new Promise((r) => setTimeout(r, 10));
  return !alive(pid);
}

const isSocket = (path: string) => existsSync(path) && lstatSync(path).isSocket();

/** A script standing in for `npiv-hba`: receives the same argv (`serve --socket ...`). */
function script(name: string, body: string): string[] {
  const file = join(dirs.root, name);
  writeFileSync(file, body);
  return [process.execPath, file];
}

/** Runs the real CLI but ignores SIGTERM and never exits by itself: stop must escalate to SIGKILL. */
function stubbornServe(): string[] {
  return script(
    'stubborn.mjs',
    `process.on('SIGTERM', () => {});\nsetInterval(() => {}, 1 << 30);\nconst { main } = await import(${JSON.stringify(pathToFileURL(BUILT_CLI).href)});\nawait main(process.argv);\n`,
  );
}

/** A leftover socket file nobody listens on, as a SIGKILLed server leaves it. */
function staleSocketFile(path: string): void {
  native.close(native.unixListen(path, 1));
}

describe.skipIf(!haveBuiltCli)('start and stop with the real serve', () => {
  it('start serves VERSION on the socket; list/show say running; stop ends it and removes the socket', async () => {
    const uuid = await define();
    const socket = join(dirs.runDir, `${uuid}.sock`);
    const r = await cli(['start', uuid]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const pid = Number(/pid (\d+)/.exec(r.stdout)![1]);
    expect(r.stdout).toBe(`started ${uuid} pid ${pid} socket ${socket}\n`);
    expect(alive(pid)).toBe(true);
    expect(await probeVfioUserServer(socket)).toBe(true);
    expect((await cli(['list', '--running'])).stdout).toContain(`${uuid} `);
    expect((await cli(['list'])).stdout).toContain(`running (pid ${pid})`);
    expect(await cli(['status', uuid])).toMatchObject({ code: 0, stdout: `running (pid ${pid})\n` });
    expect(JSON.parse((await cli(['show', uuid, '--json'])).stdout)).toMatchObject({ status: 'running', pid });

    const again = await cli(['start', uuid]);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain(`vport ${uuid} is already running (pid ${pid})`);

    const busy = await cli(['undefine', uuid]);
    expect(busy.code).toBe(1);
    expect(busy.stderr).toContain('is running');

    const stop = await cli(['stop', uuid]);
    expect(stop).toEqual({ code: 0, stdout: `stopped ${uuid}\n`, stderr: '' });
    expect(await reaped(pid)).toBe(true);
    expect(existsSync(socket)).toBe(false);
    expect(existsSync(statePath(dirs.runDir, uuid))).toBe(false);
    expect((await cli(['list'])).stdout).toContain(' stopped\n');

    const twice = await cli(['stop', uuid]);
    expect(twice.code).toBe(1);
    expect(twice.stderr).toContain(`vport ${uuid} is not running`);
  });

  it('a serve killed with SIGKILL is reported stale; start cleans up state and socket and starts again', async () => {
    const uuid = await define();
    const socket = join(dirs.runDir, `${uuid}.sock`);
    const first = await cli(['start', uuid]);
    const pid = Number(/pid (\d+)/.exec(first.stdout)![1]);
    process.kill(pid, 'SIGKILL');
    expect(await reaped(pid)).toBe(true);
    expect(isSocket(socket)).toBe(true); // SIGKILL leaves the socket file behind
    expect((await cli(['show', uuid])).stdout).toContain(`status:     stale (process ${pid}`);
    const args = await cli(['qemu-args', uuid]);
    expect(args.code).toBe(3);
    expect(args.stderr).toContain(`vport ${uuid} is not running (stale (process ${pid}`);

    const again = await cli(['start', uuid]);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).toContain(`stale state of vport ${uuid} cleaned up: process ${pid}`);
    expect(again.stderr).toContain(`stale socket ${socket} removed`);
    expect(await probeVfioUserServer(socket)).toBe(true);
    expect((await cli(['stop', uuid])).code).toBe(0);
  });

  it('stop of a vport whose serve died cleans up and says so', async () => {
    const uuid = await define();
    const socket = join(dirs.runDir, `${uuid}.sock`);
    const pid = Number(/pid (\d+)/.exec((await cli(['start', uuid])).stdout)![1]);
    process.kill(pid, 'SIGKILL');
    expect(await reaped(pid)).toBe(true);
    const r = await cli(['stop', uuid]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`${uuid} was not running (stale state cleaned up)\n`);
    expect(r.stderr).toContain(`process ${pid} is gone`);
    expect(r.stderr).toContain(`stale socket ${socket} removed`);
    expect(existsSync(socket)).toBe(false);
    expect(existsSync(statePath(dirs.runDir, uuid))).toBe(false);
  });

  it('a socket file left at the path without any recorded process is shown, then removed by start', async () => {
    const uuid = await define();
    const socket = join(dirs.runDir, `${uuid}.sock`);
    mkdirSync(dirs.runDir, { recursive: true });
    staleSocketFile(socket);
    expect((await cli(['show', uuid])).stdout).toContain(
      'status:     stopped (a socket file is left at the socket path)',
    );
    const r = await cli(['start', uuid]);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe(`npiv-hba vport: stale socket ${socket} removed (nothing listened on it)\n`);
    expect(await probeVfioUserServer(socket)).toBe(true);
    expect((await cli(['stop', uuid])).code).toBe(0);
  });

  it('two concurrent starts of one vport: one serve runs, the other start is refused', async () => {
    const uuid = await define();
    const [a, b] = await Promise.all([cli(['start', uuid]), cli(['start', uuid])]);
    expect([a.code, b.code].sort()).toEqual([0, 1]);
    const loser = a.code === 1 ? a : b;
    const winner = a.code === 0 ? a : b;
    const pid = Number(/pid (\d+)/.exec(winner.stdout)![1]);
    expect(loser.stderr).toContain(`vport ${uuid} is already running (pid ${pid})`);
    expect(JSON.parse((await cli(['show', uuid, '--json'])).stdout)).toMatchObject({ status: 'running', pid });
    expect((await cli(['stop', uuid])).code).toBe(0);
    expect(await reaped(pid)).toBe(true);
  });

  it('qemu-args checks that the vport serves: running → arguments; socket gone → refused as missing', async () => {
    const uuid = await define();
    const socket = join(dirs.runDir, `${uuid}.sock`);
    const pid = Number(/pid (\d+)/.exec((await cli(['start', uuid])).stdout)![1]);
    const ok = await cli(['qemu-args', uuid, '--lines', '--devices-only']);
    expect(ok.code).toBe(0);
    expect(JSON.parse(ok.stdout.split('\n')[3]!).socket.path).toBe(socket);
    unlinkSync(socket); // serve still runs, but QEMU could not connect
    const missing = await cli(['qemu-args', uuid]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain(`socket ${socket} of vport ${uuid} is missing although serve (pid ${pid}) runs`);
    expect((await cli(['stop', uuid])).code).toBe(0);
  });

  it('a serve that ignores SIGTERM is killed after the timeout', async () => {
    const uuid = await define();
    const r = await cli(['start', uuid], stubbornServe());
    expect(r.code).toBe(0);
    const pid = Number(/pid (\d+)/.exec(r.stdout)![1]);
    const stop = await cli(['stop', uuid, '--timeout', '300ms']);
    expect(stop.code).toBe(0);
    expect(stop.stderr).toContain(`serve (pid ${pid}) ignored SIGTERM for 300 ms; sent SIGKILL`);
    expect(await reaped(pid)).toBe(true);
  });

  it('undefine --force stops a running vport, then removes it', async () => {
    const uuid = await define();
    const pid = Number(/pid (\d+)/.exec((await cli(['start', uuid])).stdout)![1]);
    const r = await cli(['undefine', uuid, '--force']);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain(`stopped vport ${uuid}`);
    expect(await reaped(pid)).toBe(true);
    expect((await cli(['show', uuid])).code).toBe(1);
    expect(existsSync(join(dirs.runDir, `${uuid}.log`))).toBe(false);
  });

  it('a san backend passes --san LINKPATH to serve once the link socket answers', async () => {
    const link = join(dirs.root, 'san.sock');
    const listener = await LinkListener.listen(link, (l) => l.close('test SAN'));
    try {
      const uuid = await define('--backend', `san:${link}`);
      const r = await cli(['start', uuid]);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      const pid = Number(/pid (\d+)/.exec(r.stdout)![1]);
      const argv = processArgv(pid)!;
      expect(argv[argv.indexOf('--san') + 1]).toBe(link);
      expect((await cli(['stop', uuid])).code).toBe(0);
    } finally {
      await listener.close();
    }
  });

  it('the socket directory is created by serve, privately, not by vport start with the umask mode', async () => {
    const socket = join(dirs.runDir, 'private-sockets', 'vm1.sock');
    const uuid = await define('--socket', socket);
    const r = await cli(['start', uuid]);
    expect([r.code, r.stderr]).toEqual([0, '']);
    expect(statSync(join(dirs.runDir, 'private-sockets')).mode & 0o7777).toBe(0o700);
    expect(statSync(socket).mode & 0o7777).toBe(0o600);
    expect((await cli(['stop', uuid])).code).toBe(0);
  });

  it('a vport defined with --socket-group is served on a 0660 socket (stats file 0640) owned by that group', async () => {
    // root may give a socket to any group; anyone else only to a group of its own
    const gid =
      process.getuid?.() === 0
        ? NOGROUP
        : (process.getgroups?.().find((g) => g !== process.getegid?.()) ?? process.getegid!());
    const uuid = await define('--socket-group', String(gid));
    const socket = join(dirs.runDir, `${uuid}.sock`);
    const r = await cli(['start', uuid]);
    expect([r.code, r.stderr]).toEqual([0, '']);
    const pid = Number(/pid (\d+)/.exec(r.stdout)![1]);
    const argv = processArgv(pid)!;
    expect(argv[argv.indexOf('--socket-group') + 1]).toBe(String(gid));
    expect(statSync(socket).mode & 0o7777).toBe(0o660);
    expect(statSync(socket).gid).toBe(gid);
    // the counters are readable by that group (vport stats), by nobody else
    expect(statSync(`${socket}.stats.json`).mode & 0o7777).toBe(0o640);
    expect(statSync(`${socket}.stats.json`).gid).toBe(gid);
    expect(JSON.parse((await cli(['show', uuid, '--json'])).stdout)).toMatchObject({
      status: 'running',
      socketGroup: String(gid),
    });
    expect((await cli(['stop', uuid])).code).toBe(0);
  });

  it('start --auto starts only autostart vports that are not running', async () => {
    const auto = await define('--autostart');
    const manual = await define();
    const r = await cli(['start', '--auto']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`started ${auto} `);
    expect(r.stdout).not.toContain(manual);
    expect((await cli(['start', '--auto'])).stdout).toBe(''); // already running: nothing to do
    expect((await cli(['stop', auto])).code).toBe(0);
  });
});

describe('start refusals and failures', () => {
  it('unknown UUID exits 1; neither UUID nor --auto, or both, exit 2', async () => {
    const r = await cli(['start', '11111111-2222-4333-8444-555555555555']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('is defined');
    expect((await cli(['start'])).code).toBe(2);
    expect((await cli(['start', '11111111-2222-4333-8444-555555555555', '--auto'])).code).toBe(2);
    expect((await cli(['stop', 'nope'])).code).toBe(2);
  });

  it('unreachable SAN: link socket missing, or nobody listening — refused before serve is spawned', async () => {
    const link = join(dirs.root, 'san.sock');
    const uuid = await define('--backend', `san:${link}`);
    const missing = await cli(['start', uuid]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain(
      `SAN unreachable for vport ${uuid}: link socket ${link}: the socket file does not exist`,
    );
    staleSocketFile(link);
    const refused = await cli(['start', uuid]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('nothing listens on it (connection refused)');
    expect(existsSync(statePath(dirs.runDir, uuid))).toBe(false);
    expect(existsSync(join(dirs.runDir, `${uuid}.log`))).toBe(false); // never got as far as spawning
  });

  it('serve dying at start is reported with its own message and status', async () => {
    const uuid = await define();
    const dies = script(
      'dies.mjs',
      `process.stderr.write("error: unknown option '--frobnicate'\\n");\nprocess.exit(3);\n`,
    );
    const r = await cli(['start', uuid], dies);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`vport ${uuid}: serve exited (status 3) before answering on`);
    expect(r.stderr).toContain("error: unknown option '--frobnicate'");
    expect(existsSync(statePath(dirs.runDir, uuid))).toBe(false);
    expect((await cli(['show', uuid])).stdout).toContain('status:     stopped');
  });

  it('serve that never answers is killed after --timeout', async () => {
    const uuid = await define();
    const silent = script('silent.mjs', `setInterval(() => {}, 1 << 30);\n`);
    const r = await cli(['start', uuid, '--timeout', '300ms'], silent);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/serve \(pid \d+\) did not answer on .* within 300 ms; killed it/);
    const pid = Number(/serve \(pid (\d+)\)/.exec(r.stderr)![1]);
    expect(await reaped(pid)).toBe(true);
  });

  it('refuses when another process serves the socket path, or the path is not a socket', async () => {
    const sock = join(dirs.root, 'taken.sock');
    const uuid = await define('--socket', sock);
    const server = net.createServer((s) => s.destroy());
    await new Promise<void>((res) => server.listen(sock, res));
    try {
      const r = await cli(['start', uuid]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`socket ${sock} of vport ${uuid} is served by a process npiv-hba did not start`);
    } finally {
      await new Promise((res) => server.close(res));
    }
    writeFileSync(sock, 'not a socket');
    const r2 = await cli(['start', uuid]);
    expect(r2.code).toBe(1);
    expect(r2.stderr).toContain('exists and is not a socket');
  });

  it('a recorded pid that now belongs to another program is stale, and is never signalled', async () => {
    const uuid = await define();
    const other = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1 << 30)'], { stdio: 'ignore' });
    children.push(other);
    writeRuntimeState(dirs.runDir, {
      version: STATE_FORMAT_VERSION,
      uuid,
      pid: other.pid!,
      socket: join(dirs.runDir, `${uuid}.sock`),
      startedAt: new Date().toISOString(),
      log: join(dirs.runDir, `${uuid}.log`),
    });
    expect((await cli(['show', uuid])).stdout).toContain('the pid now belongs to another program');
    const r = await cli(['stop', uuid]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('was not running');
    expect(alive(other.pid!)).toBe(true);
  });
});

describe('corrupt runtime state', () => {
  it('with no serve running: list/show say stale; stop and start clean it up and go on', async () => {
    const uuid = await define();
    const state = statePath(dirs.runDir, uuid);
    mkdirSync(dirs.runDir, { recursive: true });
    writeFileSync(state, '{"pid":');
    expect((await cli(['list'])).stdout).toContain(`manual stale (invalid runtime state ${state}`);
    expect(JSON.parse((await cli(['show', uuid, '--json'])).stdout)).toMatchObject({ status: 'stale', pid: null });

    const stop = await cli(['stop', uuid]);
    expect(stop.code).toBe(0);
    expect(stop.stdout).toContain('was not running (stale state cleaned up)');
    expect(stop.stderr).toContain(`stale state of vport ${uuid} cleaned up: invalid runtime state ${state}`);
    expect(existsSync(state)).toBe(false);

    // start is not blocked either: it cleans up and gets as far as running serve (a stand-in that fails).
    writeFileSync(state, '\0\0\0garbage');
    const dies = script('dies.mjs', `process.stderr.write("serve stand-in ran\\n");\nprocess.exit(3);\n`);
    const start = await cli(['start', uuid], dies);
    expect(start.code).toBe(1);
    expect(start.stderr).toContain(`stale state of vport ${uuid} cleaned up`);
    expect(start.stderr).toContain('serve stand-in ran');
  });

  it('with its serve still running: found by its command line, shown running, and stop ends it', async () => {
    const uuid = await define();
    const socket = join(dirs.runDir, `${uuid}.sock`);
    const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1 << 30)', 'serve', '--socket', socket], {
      stdio: 'ignore',
    });
    children.push(child);
    mkdirSync(dirs.runDir, { recursive: true });
    writeFileSync(statePath(dirs.runDir, uuid), '{"version":1,"uuid":"not this one"}');
    await new Promise((r) => setTimeout(r, 100)); // its command line is in /proc once it has exec'd
    expect(JSON.parse((await cli(['show', uuid, '--json'])).stdout)).toMatchObject({
      status: 'running',
      pid: child.pid,
    });
    const again = await cli(['start', uuid]);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain(`already running (pid ${child.pid})`);
    const stop = await cli(['stop', uuid]);
    expect(stop).toMatchObject({ code: 0, stdout: `stopped ${uuid}\n` });
    expect(await reaped(child.pid!)).toBe(true);
    expect(existsSync(statePath(dirs.runDir, uuid))).toBe(false);
  });
});

describe('stats', () => {
  /** A stand-in serve process: its argv says `serve --socket <socket>`, which is what status checks. */
  function fakeRunning(uuid: string): number {
    const socket = join(dirs.runDir, `${uuid}.sock`);
    const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1 << 30)', 'serve', '--socket', socket], {
      stdio: 'ignore',
    });
    children.push(child);
    writeRuntimeState(dirs.runDir, {
      version: STATE_FORMAT_VERSION,
      uuid,
      pid: child.pid!,
      socket,
      startedAt: new Date().toISOString(),
      log: '/dev/null',
    });
    return child.pid!;
  }

  it('not running: exit 3, and `status` says so with exit 3', async () => {
    const uuid = await define();
    const r = await cli(['stats', uuid]);
    expect(r.code).toBe(3);
    expect(r.stderr).toContain(`vport ${uuid} is not running`);
    const status = await cli(['status', uuid]);
    expect(status.code).toBe(3);
    expect(status.stdout).toBe('stopped\n');
  });

  it('running without a stats file: exit 1 naming the file', async () => {
    const uuid = await define();
    const pid = fakeRunning(uuid);
    const r = await cli(['stats', uuid]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(
      `runs (pid ${pid}) but publishes no counters: ${join(dirs.runDir, `${uuid}.sock.stats.json`)} does not exist`,
    );
  });

  it('a stats file from another process is stale: exit 1', async () => {
    const uuid = await define();
    fakeRunning(uuid);
    const w = new VportStatsWriter({ socketPath: join(dirs.runDir, `${uuid}.sock`), wwpn: 1n });
    w.close();
    const r = await cli(['stats', uuid]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`was written by process ${process.pid}, not by the running serve`);
  });

  it('prints the counters the running serve published (text and JSON)', async () => {
    const uuid = await define('--wwpn', '50:01:43:80:01:23:45:67');
    const pid = fakeRunning(uuid);
    const socket = join(dirs.runDir, `${uuid}.sock`);
    const w = new VportStatsWriter({ socketPath: socket, wwpn: 0x5001438001234567n });
    w.count('framesTx', 10);
    w.count('framesRx', 12);
    w.count('iosStarted', 5);
    w.count('iosCompleted', 4);
    w.count('iosFailed', 1);
    w.count('errors', 2);
    w.setLink('up');
    w.flush();
    w.close({ remove: false });
    // as if the running serve had written it
    const file = statsPathFor(socket);
    const snapshot = JSON.parse(readFileSync(file, 'utf8'));
    writeFileSync(file, JSON.stringify({ ...snapshot, pid, running: true }));
    const r = await cli(['stats', uuid]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`vport ${uuid}  wwpn 50:01:43:80:01:23:45:67  pid ${pid}  link up`);
    expect(r.stdout).toContain('frames   tx 10  rx 12');
    expect(r.stdout).toContain('ios      started 5  completed 4  failed 1');
    expect(r.stdout).toContain('errors   2');
    expect(r.stdout).toContain('link     up 1  down 0');
    const json = JSON.parse((await cli(['stats', uuid, '--json'])).stdout);
    expect(json).toMatchObject({ pid, counters: { framesTx: 10, linkUp: 1 } });
  });
});
