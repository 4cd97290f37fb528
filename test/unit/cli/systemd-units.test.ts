/**
 * The systemd units in scripts/systemd/: their key settings, and that their ExecStart command
 * lines are accepted by the CLI as it is now (so the files cannot drift from the CLI). Then
 * `vport run` and `san` under a notify socket bound here: READY=1 once their sockets listen,
 * STOPPING=1 on SIGTERM.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { buildProgram } from '../../../src/cli.js';
import { runCli } from '../../../src/cli/vport.js';
import { native } from '../../../src/native/index.js';
import { notifyBind, notifyReceive } from '../../../src/native/notify.js';
import { capture, tempDirs, type TempDirs } from '../vport/helpers.js';
import { CLI, REPO, WAIT_MS } from './support.js';

type Unit = Map<string, Map<string, string[]>>;

/** systemd.syntax(7) subset: [Section] headers, Key=Value lines (repeatable), # and ; comments. */
function parseUnit(text: string): Unit {
  const unit: Unit = new Map();
  let section: Map<string, string[]> | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const header = /^\[([A-Za-z]+)\]$/.exec(line);
    if (header) {
      section = new Map();
      unit.set(header[1] as string, section);
      continue;
    }
    const eq = line.indexOf('=');
    if (!section || eq <= 0) throw new Error(`not a unit file line: ${raw}`);
    const key = line.slice(0, eq);
    section.set(key, [...(section.get(key) ?? []), line.slice(eq + 1)]);
  }
  return unit;
}

function value(unit: Unit, section: string, key: string): string | undefined {
  return unit.get(section)?.get(key)?.at(-1);
}

function readUnit(name: string): Unit {
  return parseUnit(readFileSync(join(REPO, 'scripts', 'systemd', name), 'utf8'));
}

/** ExecStart split on blanks (the units use no quoting); the binary must be the installed CLI. */
function execArgs(unit: Unit): string[] {
  const [binary, ...args] = (value(unit, 'Service', 'ExecStart') ?? '').split(/\s+/);
  expect(binary).toMatch(/^\/.*\/npiv-hba$/);
  return args;
}

const SAN = readUnit('npiv-hba-san.service');
const VPORT = readUnit('npiv-hba-vport@.service');

describe.each([
  ['npiv-hba-san.service', SAN],
  ['npiv-hba-vport@.service', VPORT],
])('%s', (_name, unit) => {
  it('is a notify service restarted on failure that keeps the shared runtime directory', () => {
    expect(value(unit, 'Service', 'Type')).toBe('notify');
    expect(value(unit, 'Service', 'Restart')).toBe('on-failure');
    expect(value(unit, 'Service', 'RuntimeDirectory')).toBe('npiv-hba');
    expect(value(unit, 'Service', 'RuntimeDirectoryPreserve')).toBe('yes');
    expect(value(unit, 'Install', 'WantedBy')).toBe('multi-user.target');
  });
});

describe('ExecStart against the CLI', () => {
  let dirs: TempDirs;
  beforeEach(() => {
    dirs = tempDirs();
  });
  afterEach(() => dirs.cleanup());

  it('san: the command line parses, with its sockets in the runtime directory', async () => {
    const program = buildProgram();
    const san = program.commands.find((c) => c.name() === 'san');
    let seen: Record<string, unknown> | undefined;
    san!.action((opts: Record<string, unknown>) => {
      seen = opts;
    });
    await program.parseAsync(execArgs(SAN), { from: 'user' });
    expect(seen).toMatchObject({ config: '/etc/npiv-hba/san.json' });
    expect(seen?.link).toMatch(/^\/run\/npiv-hba\/[^/]+\.sock$/);
    expect(seen?.control).toMatch(/^\/run\/npiv-hba\/[^/]+\.sock$/);
  });

  it('vport@: `vport run %i` resolves a defined vport to serve arguments that serve accepts', async () => {
    const env = { NPIV_HBA_CONFIG_DIR: dirs.configDir, NPIV_HBA_RUN_DIR: dirs.runDir };
    const args = execArgs(VPORT);
    expect(args.slice(0, 2)).toEqual(['vport', 'run']);
    expect(args.slice(2)).toEqual(['%i']);
    expect(value(VPORT, 'Unit', 'After')?.split(/\s+/)).toContain('npiv-hba-san.service');

    const def = capture(env);
    const link = join(dirs.root, 'san.sock');
    expect(await runCli(['define', '--backend', `san:${link}`], def.io)).toBe(0);
    const uuid = def.stdout().trim();

    const dry = capture(env);
    expect(await runCli([...args.slice(1, 2), uuid, '--dry-run'], dry.io)).toBe(0);
    const serveArgs = dry.stdout().trim().split('\n');
    expect(serveArgs[0]).toBe('serve');

    const program = buildProgram();
    let seen: Record<string, unknown> | undefined;
    program.commands
      .find((c) => c.name() === 'serve')!
      .action((opts: Record<string, unknown>) => {
        seen = opts;
      });
    await program.parseAsync(serveArgs, { from: 'user' });
    expect(seen).toMatchObject({ socket: join(dirs.runDir, `${uuid}.sock`), san: link });

    // An unknown vport is refused, not served with defaults.
    const unknown = capture(env);
    expect(await runCli(['run', '0badc0de-0000-4000-8000-000000000001', '--dry-run'], unknown.io)).toBe(1);
    expect(unknown.stderr()).toMatch(/0badc0de-0000-4000-8000-000000000001/);
  });
});

describe('vport run under a notify socket', () => {
  let dirs: TempDirs;
  const fds: number[] = [];
  beforeEach(() => {
    dirs = tempDirs();
  });
  afterEach(() => {
    for (const fd of fds.splice(0)) native.close(fd);
    dirs.cleanup();
  });

  async function nextDatagram(fd: number, what: string): Promise<string> {
    const deadline = Date.now() + WAIT_MS;
    for (;;) {
      const text = notifyReceive(fd);
      if (text !== null) return text;
      if (Date.now() > deadline) throw new Error(`no ${what} within ${WAIT_MS} ms`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  it('sends READY=1 once the vfio-user socket exists, and STOPPING=1 on SIGTERM', async () => {
    const env = { NPIV_HBA_CONFIG_DIR: dirs.configDir, NPIV_HBA_RUN_DIR: dirs.runDir };
    const def = capture(env);
    expect(await runCli(['define', '--backend', 'none'], def.io)).toBe(0);
    const uuid = def.stdout().trim();
    const notifyPath = join(dirs.root, 'notify');
    const fd = notifyBind(notifyPath);
    fds.push(fd);

    const proc = spawn(process.execPath, [CLI, 'vport', 'run', uuid], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, ...env, NOTIFY_SOCKET: notifyPath, NPIV_HBA_LOG_LEVEL: 'warn' },
    });
    let stderr = '';
    proc.stderr!.setEncoding('utf8').on('data', (t: string) => (stderr += t));
    const exit = new Promise<number | null>((done) => proc.once('close', (code) => done(code)));
    try {
      const ready = await nextDatagram(fd, 'READY=1');
      expect(ready.split('\n')).toContain('READY=1');
      expect(ready).toMatch(/^STATUS=serving .* on .*\.sock$/m);
      expect(existsSync(join(dirs.runDir, `${uuid}.sock`))).toBe(true);
    } catch (err) {
      throw new Error(`${(err as Error).message}; stderr: ${stderr}`);
    } finally {
      proc.kill('SIGTERM');
    }
    expect(await exit).toBe(0);
    expect((await nextDatagram(fd, 'STOPPING=1')).split('\n')).toContain('STOPPING=1');
    expect(existsSync(join(dirs.runDir, `${uuid}.sock`))).toBe(false);
  }, 30_000);
});

describe('san under a notify socket', () => {
  let dirs: TempDirs;
  let fd = -1;
  beforeEach(() => {
    dirs = tempDirs();
  });
  afterEach(() => {
    if (fd >= 0) native.close(fd);
    fd = -1;
    dirs.cleanup();
  });

  it('sends READY=1 once the link socket exists, and STOPPING=1 on SIGTERM', async () => {
    const example = spawn(process.execPath, [CLI, 'san', '--example'], { stdio: ['ignore', 'pipe', 'ignore'] });
    let config = '';
    example.stdout!.setEncoding('utf8').on('data', (t: string) => (config += t));
    await new Promise((done) => example.once('close', done));
    const configPath = join(dirs.root, 'san.json');
    writeFileSync(configPath, config);
    const link = join(dirs.root, 'san.sock');
    const notifyPath = join(dirs.root, 'notify');
    fd = notifyBind(notifyPath);
    const proc = spawn(process.execPath, [CLI, 'san', '--config', configPath, '--link', link], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, NOTIFY_SOCKET: notifyPath, NPIV_HBA_LOG_LEVEL: 'warn' },
    });
    let stderr = '';
    proc.stderr!.setEncoding('utf8').on('data', (t: string) => (stderr += t));
    const exit = new Promise<number | null>((done) => proc.once('close', (code) => done(code)));
    const deadline = Date.now() + WAIT_MS;
    let ready: string | null = null;
    try {
      for (ready = notifyReceive(fd); ready === null; ready = notifyReceive(fd)) {
        if (proc.exitCode !== null || Date.now() > deadline) throw new Error(`no READY=1 from san; stderr: ${stderr}`);
        await new Promise((r) => setTimeout(r, 20));
      }
      expect(ready.split('\n')).toContain('READY=1');
      expect(existsSync(link)).toBe(true);
    } finally {
      proc.kill('SIGTERM');
    }
    expect(await exit).toBe(0);
    expect(notifyReceive(fd)?.split('\n')).toContain('STOPPING=1');
  }, 30_000);
});
