/**
 * `npiv-hba serve` driven as a user drives it: the built CLI (bin/npiv-hba.js → dist/) as a child
 * process. Success: the socket appears, a vfio-user client (QEMU's attach sequence, in-repo model)
 * sees the ISP2532's PCI device info, SIGTERM/SIGINT stop it with exit 0, the socket is removed
 * and the stats file ends with running=false. Errors: bad names, bad --interrupts, --pcap without
 * --san, an unreachable SAN, a socket path a live server holds; a stale socket file is replaced.
 * Argument errors that need no process are also checked through the exported serve().
 *
 * Without dist/ (npm ci builds it; `npm run build:ts` in a dev loop) every test here fails.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, lstatSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { serve, type ServeOptions } from '../../../src/cli/serve.js';
import { native } from '../../../src/native/index.js';
import { runSan } from '../../../src/cli/san.js';
import { exampleSanConfig } from '../../../src/san/config.js';
import { controlRequest } from '../../../src/san/control.js';
import { LINKTYPE_FC_2 } from '../../../src/san/pcap.js';
import { VfioUserClient } from '../../../src/vfio-user/client.js';
import { DEVICE_FLAGS, PCI_NUM_IRQS, PCI_NUM_REGIONS, PCI_REGION } from '../../../src/vfio-user/protocol.js';
import { readVportStats } from '../../../src/vport/stats.js';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const CLI = join(REPO, 'bin', 'npiv-hba.js');
const BUILT = join(REPO, 'dist', 'src', 'cli.js');

const WWPN = '50:01:43:80:01:23:45:67';
const WWNN = '50:01:43:80:01:23:45:66';
const PCI_VENDOR_QLOGIC = 0x1077;
const PCI_DEVICE_ISP2532 = 0x2532;
/** Upper bound for a child process to reach a state; not a speed goal. */
const WAIT_MS = 20_000;

interface CliProcess {
  proc: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** exit code, or the name of the signal that killed it */
  exit: Promise<number | string>;
}

function startCli(args: string[], env: NodeJS.ProcessEnv = {}): CliProcess {
  const proc = spawn(process.execPath, [CLI, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, NPIV_HBA_LOG_LEVEL: 'info', ...env },
  });
  let out = '';
  let err = '';
  proc.stdout!.setEncoding('utf8').on('data', (t: string) => (out += t));
  proc.stderr!.setEncoding('utf8').on('data', (t: string) => (err += t));
  const exit = new Promise<number | string>((done) => proc.once('close', (code, signal) => done(code ?? signal ?? 'unknown')));
  return { proc, stdout: () => out, stderr: () => err, exit };
}

async function runCli(args: string[]): Promise<{ code: number | string; stdout: string; stderr: string }> {
  const p = startCli(args);
  const code = await p.exit;
  return { code, stdout: p.stdout(), stderr: p.stderr() };
}

async function waitFor(cond: () => boolean, what: string, p?: CliProcess): Promise<void> {
  const deadline = Date.now() + WAIT_MS;
  while (!cond()) {
    if (p && p.proc.exitCode !== null) throw new Error(`${what}: the process exited (${p.proc.exitCode}): ${p.stderr()}`);
    if (Date.now() > deadline) throw new Error(`${what}: not within ${WAIT_MS} ms${p ? `; stderr: ${p.stderr()}` : ''}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** The structured (pino JSON) log lines a process wrote to stderr. */
function logLines(p: CliProcess): Record<string, unknown>[] {
  return p
    .stderr()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** A socket file nobody listens on, as a killed server leaves behind. */
function staleSocket(path: string): void {
  const fd = native.unixListen(path, 1);
  native.close(fd);
  expect(lstatSync(path).isSocket()).toBe(true);
}

function serveArgs(socket: string, ...extra: string[]): string[] {
  return ['serve', '--socket', socket, '--wwpn', WWPN, '--wwnn', WWNN, ...extra];
}

beforeAll(() => {
  if (!existsSync(BUILT)) throw new Error(`${BUILT} is missing: build the CLI first (npm run build, or npm run build:ts)`);
});

let dir: string;
const children: CliProcess[] = [];
beforeEach(() => {
  // Short path: Unix socket paths must fit in 107 bytes.
  dir = mkdtempSync(join(tmpdir(), 'srv-'));
});
afterEach(() => {
  for (const c of children.splice(0)) if (c.proc.exitCode === null && c.proc.signalCode === null) c.proc.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

function started(p: CliProcess): CliProcess {
  children.push(p);
  return p;
}

describe('npiv-hba serve: running', () => {
  it('serves the ISP2532 to a vfio-user client; SIGTERM stops it with exit 0, removes the socket, leaves running=false stats', async () => {
    const socket = join(dir, 'v.sock');
    const p = started(startCli(serveArgs(socket)));
    await waitFor(() => existsSync(socket), 'socket appears', p);
    expect(lstatSync(socket).isSocket()).toBe(true);

    // Without --san there is no cable: the published link state becomes 'down'.
    await waitFor(() => readVportStats(socket)?.link === 'down', 'stats say link down', p);
    expect(readVportStats(socket)).toMatchObject({ running: true, pid: p.proc.pid, wwpn: WWPN });

    const client = VfioUserClient.connect(socket);
    try {
      const version = await client.version();
      expect(version).toMatchObject({ major: 0, minor: 0 });
      const info = await client.getDeviceInfo();
      expect(info.flags & DEVICE_FLAGS.PCI).toBe(DEVICE_FLAGS.PCI);
      expect(info.numRegions).toBe(PCI_NUM_REGIONS);
      expect(info.numIrqs).toBe(PCI_NUM_IRQS);
      const ids = await client.regionRead(PCI_REGION.CONFIG, 0, 4);
      const view = new DataView(ids.buffer, ids.byteOffset, ids.byteLength);
      expect(view.getUint16(0, true)).toBe(PCI_VENDOR_QLOGIC);
      expect(view.getUint16(2, true)).toBe(PCI_DEVICE_ISP2532);
    } finally {
      client.close();
    }

    p.proc.kill('SIGTERM');
    expect(await p.exit).toBe(0);
    expect(existsSync(socket)).toBe(false);
    const final = readVportStats(socket);
    expect(final).toMatchObject({ running: false, wwpn: WWPN, pid: p.proc.pid });
    expect(final!.counters.clientConnects).toBe(1);

    // Structured logs carry the vport's context.
    const lines = logLines(p);
    expect(lines.find((l) => l.event === 'listening')).toMatchObject({ component: 'hba', vport: WWPN, socket, wwpn: WWPN, wwnn: WWNN });
    expect(lines.find((l) => l.event === 'stopping')).toMatchObject({ vport: WWPN, signal: 'SIGTERM' });
  });

  it('SIGINT stops it the same way (exit 0, socket removed, running=false)', async () => {
    const socket = join(dir, 'v.sock');
    const p = started(startCli(serveArgs(socket, '--interrupts', 'intx', '--wwpn', '0x5001438001234567', '--wwnn', '5001438001234566')));
    await waitFor(() => existsSync(socket), 'socket appears', p);
    p.proc.kill('SIGINT');
    expect(await p.exit).toBe(0);
    expect(existsSync(socket)).toBe(false);
    expect(readVportStats(socket)).toMatchObject({ running: false, wwpn: WWPN });
    expect(logLines(p).find((l) => l.event === 'stopping')).toMatchObject({ signal: 'SIGINT' });
  });

  it('refuses a socket path a live server holds, and leaves that server serving', async () => {
    const socket = join(dir, 'v.sock');
    const first = started(startCli(serveArgs(socket)));
    await waitFor(() => existsSync(socket), 'first server listening', first);
    const second = await runCli(['serve', '--socket', socket, '--wwpn', '50:01:43:80:01:23:45:69', '--wwnn', WWNN]);
    expect(second.code).toBe(1);
    expect(second.stderr).toContain(`another vfio-user server is already listening on ${socket}`);
    // The live server's published stats are not taken over by the refused one.
    expect(readVportStats(socket)).toMatchObject({ pid: first.proc.pid, running: true });
    // The first one still answers.
    const client = VfioUserClient.connect(socket);
    try {
      await client.version();
      expect((await client.getDeviceInfo()).numRegions).toBe(PCI_NUM_REGIONS);
    } finally {
      client.close();
    }
    first.proc.kill('SIGTERM');
    expect(await first.exit).toBe(0);
  });

  it('replaces a stale socket file nobody listens on', async () => {
    const socket = join(dir, 'v.sock');
    staleSocket(socket);
    const p = started(startCli(serveArgs(socket)));
    await waitFor(() => logLines(p).some((l) => l.event === 'listening'), 'listening', p);
    const client = VfioUserClient.connect(socket);
    try {
      expect((await client.version()).major).toBe(0);
    } finally {
      client.close();
    }
    p.proc.kill('SIGTERM');
    expect(await p.exit).toBe(0);
  });

  it('refuses a socket path that exists and is not a socket (the file is kept)', async () => {
    const socket = join(dir, 'v.sock');
    writeFileSync(socket, 'precious');
    const r = await runCli(serveArgs(socket));
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`refusing to replace ${socket}: it exists and is not a socket`);
    expect(readFileSync(socket, 'utf8')).toBe('precious');
  });
});

describe('npiv-hba serve --san', () => {
  let stopSan: AbortController | undefined;
  let sanDone: Promise<void> | undefined;
  afterEach(async () => {
    stopSan?.abort();
    await sanDone;
    stopSan = undefined;
    sanDone = undefined;
  });

  /** A real SAN (the `san` command's runSan, in this process) on dir/san.sock. */
  async function startSan(): Promise<string> {
    const config = join(dir, 'san.json');
    // The example with RAM volumes only: nothing to write to disk.
    const example = JSON.parse(exampleSanConfig()) as { arrays: { volumes: { file?: string }[] }[] };
    for (const v of example.arrays[0]!.volumes) delete v.file;
    writeFileSync(config, JSON.stringify(example));
    const link = join(dir, 'san.sock');
    const control = join(dir, 'ctl.sock');
    stopSan = new AbortController();
    sanDone = runSan({ config, link, control }, stopSan.signal);
    await waitFor(() => existsSync(control), 'SAN up');
    return link;
  }

  it('with a running SAN: serves, and --pcap starts a pcap file (LINKTYPE_FC_2)', async () => {
    const link = await startSan();
    const socket = join(dir, 'v.sock');
    const pcap = join(dir, 'v.pcap');
    const p = started(startCli(serveArgs(socket, '--san', link, '--pcap', pcap)));
    await waitFor(() => existsSync(socket), 'socket appears', p);
    const header = readFileSync(pcap);
    expect(header.length).toBeGreaterThanOrEqual(24);
    expect(header.readUInt32LE(0)).toBe(0xa1b2c3d4);
    expect(header.readUInt32LE(20)).toBe(LINKTYPE_FC_2);
    // No guest, so no firmware login: the link has not been brought up.
    expect(readVportStats(socket)?.link).not.toBe('up');
    p.proc.kill('SIGTERM');
    expect(await p.exit).toBe(0);
    expect(existsSync(socket)).toBe(false);
    // The SAN is unaffected by the vport's start-up check and stop.
    const status = await controlRequest(join(dir, 'ctl.sock'), { cmd: 'status' });
    expect(status.ok).toBe(true);
  });

  it('a missing SAN link socket: clear error, exit 1, no vfio-user socket', async () => {
    const link = join(dir, 'nosan.sock');
    const socket = join(dir, 'v.sock');
    const r = await runCli(serveArgs(socket, '--san', link));
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`SAN link socket ${link} does not exist`);
    expect(r.stderr).toContain('npiv-hba san');
    expect(existsSync(socket)).toBe(false);
  });

  it('a SAN link path that is a stale socket or not a socket at all is refused up front', async () => {
    const stale = join(dir, 'stale.sock');
    staleSocket(stale);
    await expect(serve({ socket: join(dir, 'v.sock'), wwpn: WWPN, wwnn: WWNN, san: stale })).rejects.toThrow(
      new RegExp(`SAN link socket ${stale}: .*nothing listens`),
    );
    const plain = join(dir, 'plain');
    writeFileSync(plain, '');
    await expect(serve({ socket: join(dir, 'v.sock'), wwpn: WWPN, wwnn: WWNN, san: plain })).rejects.toThrow(
      new RegExp(`SAN link socket ${plain}: .*not a socket`),
    );
    expect(existsSync(join(dir, 'v.sock'))).toBe(false);
  });
});

describe('npiv-hba serve: argument errors', () => {
  it('a bad WWPN exits 1 with a message naming the value (built CLI)', async () => {
    const r = await runCli(['serve', '--socket', join(dir, 'v.sock'), '--wwpn', '50:01:43:80:01:23:45', '--wwnn', WWNN]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("invalid WWPN '50:01:43:80:01:23:45'");
    expect(existsSync(join(dir, 'v.sock'))).toBe(false);
  });

  it('bad WWPN/WWNN forms are refused, naming the field and the value', async () => {
    const socket = join(dir, 'v.sock');
    const bad: [keyof ServeOptions, string][] = [
      ['wwpn', 'zz'],
      ['wwpn', '0x50014380012345'],
      ['wwpn', '50014380012345678'],
      ['wwpn', '50-01-43-80-01-23-45-67'],
      ['wwpn', '0000000000000000'],
      ['wwnn', '50:01:43:80:01:23:45:6g'],
      ['wwnn', ''],
    ];
    for (const [field, value] of bad) {
      const opts: ServeOptions = { socket, wwpn: WWPN, wwnn: WWNN, [field]: value };
      await expect(serve(opts), `${field}=${value}`).rejects.toThrow(`invalid ${field.toUpperCase()} '${value}'`);
    }
    expect(existsSync(socket)).toBe(false);
  });

  it('bad --interrupts exits 1 naming the value and the choices', async () => {
    const r = await runCli(serveArgs(join(dir, 'v.sock'), '--interrupts', 'msi-x'));
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("invalid --interrupts 'msi-x': expected one of msix, msi, intx");
    await expect(serve({ socket: join(dir, 'v.sock'), wwpn: WWPN, wwnn: WWNN, interrupts: 'INTX' })).rejects.toThrow("invalid --interrupts 'INTX'");
  });

  it('--pcap without --san is refused before anything is created', async () => {
    const pcap = join(dir, 'x.pcap');
    const r = await runCli(serveArgs(join(dir, 'v.sock'), '--pcap', pcap));
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('--pcap records the SAN link: it needs --san');
    expect(existsSync(pcap)).toBe(false);
    expect(existsSync(join(dir, 'v.sock'))).toBe(false);
  });

  it('a missing required option exits 1 naming it', async () => {
    const r = await runCli(['serve', '--wwpn', WWPN, '--wwnn', WWNN]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("required option '--socket <path>' not specified");
  });
});
