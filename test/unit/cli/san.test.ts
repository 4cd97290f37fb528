/**
 * `npiv-hba san` and `npiv-hba san ctl` driven as a user drives them: the built CLI
 * (bin/npiv-hba.js → dist/) as child processes. `san --example` output is accepted by
 * `san --config`; the running SAN takes ctl commands (status, volumes, host groups, LUN mapping,
 * zoning, faults) and refuses bad ones with exit 1; --pcap writes a valid LINKTYPE_FC_2 capture;
 * bad configurations are refused with the field named. Pure argument errors are also checked
 * through the exported runSan().
 *
 * Without dist/ (npm ci builds it; `npm run build:ts` in a dev loop) every test here fails.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, lstatSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { runSan } from '../../../src/cli/san.js';
import { native } from '../../../src/native/index.js';
import { ConfigError, exampleSanConfig } from '../../../src/san/config.js';
import { LINKTYPE_FC_2 } from '../../../src/san/pcap.js';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const CLI = join(REPO, 'bin', 'npiv-hba.js');
const BUILT = join(REPO, 'dist', 'src', 'cli.js');
/** Upper bound for a child process to reach a state; not a speed goal. */
const WAIT_MS = 20_000;

// pcap classic format (see src/san/pcap.ts): 24-byte global header, 16-byte record headers.
const PCAP_MAGIC_USEC = 0xa1b2c3d4;
const PCAP_GLOBAL_HEADER = 24;
const PCAP_RECORD_HEADER = 16;
// FC-2 frame header (FC-FS-3): R_CTL at 0, D_ID at 1..3; payload after 24 bytes.
const FC_HEADER = 24;
const R_CTL_ELS_REQUEST = 0x22;
const FABRIC_F_PORT_ID = 0xfffffe;
const ELS_FLOGI = 0x04;

interface CliProcess {
  proc: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** exit code, or the name of the signal that killed it */
  exit: Promise<number | string>;
}

function startCli(args: string[], cwd?: string): CliProcess {
  const proc = spawn(process.execPath, [CLI, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, NPIV_HBA_LOG_LEVEL: 'warn' },
    ...(cwd ? { cwd } : {}),
  });
  let out = '';
  let err = '';
  proc.stdout!.setEncoding('utf8').on('data', (t: string) => (out += t));
  proc.stderr!.setEncoding('utf8').on('data', (t: string) => (err += t));
  const exit = new Promise<number | string>((done) => proc.once('close', (code, signal) => done(code ?? signal ?? 'unknown')));
  return { proc, stdout: () => out, stderr: () => err, exit };
}

async function runCli(...args: string[]): Promise<{ code: number | string; stdout: string; stderr: string }> {
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

function staleSocket(path: string): void {
  native.close(native.unixListen(path, 1));
  expect(lstatSync(path).isSocket()).toBe(true);
}

interface PcapRecord {
  frame: Buffer;
}

/** Parses a whole classic pcap file; throws on any inconsistency. */
function readPcap(file: string): { linkType: number; snapLen: number; records: PcapRecord[] } {
  const b = readFileSync(file);
  if (b.length < PCAP_GLOBAL_HEADER) throw new Error(`pcap ${file} is shorter than its header`);
  expect(b.readUInt32LE(0)).toBe(PCAP_MAGIC_USEC);
  expect([b.readUInt16LE(4), b.readUInt16LE(6)]).toEqual([2, 4]);
  const snapLen = b.readUInt32LE(16);
  const records: PcapRecord[] = [];
  let at = PCAP_GLOBAL_HEADER;
  while (at < b.length) {
    if (at + PCAP_RECORD_HEADER > b.length) throw new Error(`truncated record header at ${at}`);
    const incl = b.readUInt32LE(at + 8);
    const orig = b.readUInt32LE(at + 12);
    if (incl !== orig || incl > snapLen || at + PCAP_RECORD_HEADER + incl > b.length) throw new Error(`bad record at ${at}`);
    records.push({ frame: b.subarray(at + PCAP_RECORD_HEADER, at + PCAP_RECORD_HEADER + incl) });
    at += PCAP_RECORD_HEADER + incl;
  }
  return { linkType: b.readUInt32LE(20), snapLen, records };
}

beforeAll(() => {
  if (!existsSync(BUILT)) throw new Error(`${BUILT} is missing: build the CLI first (npm run build, or npm run build:ts)`);
});

let dir: string;
const children: CliProcess[] = [];
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'sanc-'));
});
afterEach(() => {
  for (const c of children.splice(0)) if (c.proc.exitCode === null && c.proc.signalCode === null) c.proc.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

describe('npiv-hba san: a running SAN from the example configuration', () => {
  it('--example is accepted by --config; ctl commands change it; SIGTERM exits 0; --pcap is a valid FC-2 capture', async () => {
    const example = await runCli('san', '--example');
    expect(example.code).toBe(0);
    const cfg = join(dir, 'san.json');
    writeFileSync(cfg, example.stdout);
    const link = join(dir, 'l.sock');
    const control = join(dir, 'c.sock');
    const pcap = join(dir, 'san.pcap');
    const san = startCli(['san', '--config', cfg, '--link', link, '--control', control, '--pcap', pcap]);
    children.push(san);
    await waitFor(() => existsSync(control), 'control socket appears', san);
    expect(lstatSync(link).isSocket()).toBe(true);
    // File-backed volumes are placed next to the configuration file.
    expect(existsSync(join(dir, 'array1-boot.img'))).toBe(true);

    const ctl = (...args: string[]) => runCli('san', 'ctl', '--control', control, ...args);
    const status = await ctl('status');
    expect(status.code).toBe(0);
    const s = JSON.parse(status.stdout);
    expect(s.fabric.name).toBe('fabric-a');
    expect(s.targetPorts.map((t: { wwpn: string; up: boolean }) => [t.wwpn, t.up])).toEqual([
      ['50:0a:09:81:00:00:00:01', true],
      ['50:0a:09:82:00:00:00:01', true],
    ]);

    // A new RAM volume, a new host group (LUN masking) and a mapping. Independent commands run
    // side by side to keep the test short.
    const [addVolume, addGroup] = await Promise.all([
      ctl('add-volume', 'array=array1', 'name=data', 'size=4MiB'),
      ctl('add-host-group', 'array=array1', 'name=host2', 'initiators=["c0:50:76:ff:e5:00:00:02"]'),
    ]);
    expect([addVolume.code, addVolume.stderr]).toEqual([0, '']);
    expect([addGroup.code, addGroup.stderr]).toEqual([0, '']);
    const map = await ctl('map-lun', 'array=array1', 'hostGroup=host2', 'lun=5', 'volume=data');
    expect([map.code, map.stderr]).toEqual([0, '']);
    // The mapping exists: mapping LUN 5 again is refused; unmapped once, it is gone.
    const [after, again] = await Promise.all([ctl('status'), ctl('map-lun', 'array=array1', 'hostGroup=host2', 'lun=5', 'volume=scratch')]);
    const arrays = (JSON.parse(after.stdout) as { arrays: { volumes: { name: string; bytes: number }[] }[] }).arrays;
    expect(arrays[0]!.volumes.find((v) => v.name === 'data')?.bytes).toBe(4 * 1024 * 1024);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain("LUN 5 is already mapped to 'data'");
    expect((await ctl('unmap-lun', 'array=array1', 'hostGroup=host2', 'lun=5')).code).toBe(0);

    const [gone, zone, fault] = await Promise.all([
      ctl('unmap-lun', 'array=array1', 'hostGroup=host2', 'lun=5'),
      ctl('zone-create', 'name=host2-array1', 'members=["c0:50:76:ff:e5:00:00:02","50:0a:09:81:00:00:00:01"]'),
      ctl('fault-add', 'kind=drop', 'wwpn=c0:50:76:ff:e5:00:00:02', 'probability=0.5'),
    ]);
    expect(gone.code).toBe(1);
    expect(gone.stderr).toContain('LUN 5 is not mapped');
    expect([zone.code, zone.stderr]).toEqual([0, '']);
    expect(fault.code).toBe(0);
    const faultId = JSON.parse(fault.stdout).id as number;
    expect(faultId).toBeGreaterThan(0);
    const faults = JSON.parse((await ctl('fault-list')).stdout) as { id: number }[];
    expect(faults.map((f) => f.id)).toEqual([faultId]);

    // Errors: exit 1, the SAN's reason on stderr and the failed answer on stdout. A second SAN on
    // the same link path must not take it over from the live one.
    const [unknown, missing, wrongType, unknownVolume, second] = await Promise.all([
      ctl('frobnicate'),
      ctl('map-lun', 'array=array1', 'lun=1'),
      ctl('zone-default', 'policy=maybe'),
      ctl('map-lun', 'array=array1', 'hostGroup=host2', 'lun=6', 'volume=nope'),
      runCli('san', '--config', cfg, '--link', link),
    ]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/cmd: .*'status'/);
    expect(JSON.parse(unknown.stdout)).toMatchObject({ ok: false });
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('hostGroup:');
    expect(missing.stderr).toContain('volume:');
    expect(wrongType.code).toBe(1);
    expect(wrongType.stderr).toContain('policy:');
    expect(unknownVolume.code).toBe(1);
    expect(unknownVolume.stderr).toContain("no volume 'nope'");
    expect(second.code).toBe(1);
    expect(second.stderr).toContain(`--link ${link}: another process is already listening there`);
    // The first SAN still has its fault (it was not replaced by a fresh one).
    expect(JSON.parse((await ctl('fault-list')).stdout)).toHaveLength(1);

    san.proc.kill('SIGTERM');
    expect(await san.exit).toBe(0);
    expect(existsSync(control)).toBe(false);

    const capture = readPcap(pcap);
    expect(capture.linkType).toBe(LINKTYPE_FC_2);
    // The array's target ports log in to the fabric at start: the first frame is a FLOGI to the F_Port.
    expect(capture.records.length).toBeGreaterThan(0);
    const first = capture.records[0]!.frame;
    expect(first.length).toBeGreaterThan(FC_HEADER);
    expect(first[0]).toBe(R_CTL_ELS_REQUEST);
    expect(first.readUIntBE(1, 3)).toBe(FABRIC_F_PORT_ID);
    expect(first[FC_HEADER]).toBe(ELS_FLOGI);
  }, 120_000);

  it('SIGINT stops it with exit 0 and removes the control socket', async () => {
    const cfg = join(dir, 'san.json');
    writeFileSync(cfg, JSON.stringify({ fabric: { name: 'f', domain: 2 }, arrays: [] }));
    const control = join(dir, 'c.sock');
    const san = startCli(['san', '--config', cfg, '--link', join(dir, 'l.sock'), '--control', control]);
    children.push(san);
    await waitFor(() => existsSync(control), 'control socket appears', san);
    san.proc.kill('SIGINT');
    expect(await san.exit).toBe(0);
    expect(existsSync(control)).toBe(false);
  });
});

describe('npiv-hba san: configuration errors', () => {
  const link = () => join(dir, 'l.sock');
  const run = (config: string) => runSan({ config, link: link() }, AbortSignal.abort());

  it('a missing file exits 1 naming it (built CLI)', async () => {
    const missing = join(dir, 'nope.json');
    const r = await runCli('san', '--config', missing, '--link', link());
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`cannot read SAN configuration ${missing}`);
    expect(existsSync(link())).toBe(false);
  });

  it('a field error exits 1 naming the field and the bad value (built CLI)', async () => {
    const cfg = join(dir, 'san.json');
    const json = JSON.parse(exampleSanConfig());
    json.arrays[0].ports[1].wwpn = '50:0a:09:82:00:00:00';
    writeFileSync(cfg, JSON.stringify(json));
    const r = await runCli('san', '--config', cfg, '--link', link());
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("arrays[0].ports[1].wwpn: invalid WWN '50:0a:09:82:00:00:00'");
    expect(existsSync(link())).toBe(false);
  });

  it('invalid JSON is refused with the file named', async () => {
    const cfg = join(dir, 'bad.json');
    writeFileSync(cfg, '{ "fabric": ');
    await expect(run(cfg)).rejects.toThrow(`SAN configuration ${cfg} is not valid JSON`);
  });

  it('each field error names its field', async () => {
    const cases: [string, (c: any) => void][] = [
      ['fabric.domain', (c) => (c.fabric.domain = 240)],
      ['fabric.zoning.default', (c) => (c.fabric.zoning.default = 'maybe')],
      ['arrays[0].volumes[1].size', (c) => (c.arrays[0].volumes[1].size = 'lots')],
      ['arrays[0].volumes[0].blockSize', (c) => (c.arrays[0].volumes[0].blockSize = 1024)],
      ['arrays[0].hostGroups[0].luns.1', (c) => (c.arrays[0].hostGroups[0].luns['1'] = 'missing-volume')],
      ['arrays[0].hostGroups[0].initiators[0]', (c) => (c.arrays[0].hostGroups[0].initiators[0] = 'host1')],
      ['arrays[0].ports', (c) => (c.arrays[0].ports = [])],
      ['fabric.zoning.zones[0].members[1]', (c) => (c.fabric.zoning.zones[0].members[1] = '0x0')],
    ];
    for (const [field, mutate] of cases) {
      const config = JSON.parse(exampleSanConfig());
      mutate(config);
      const cfg = join(dir, 'case.json');
      writeFileSync(cfg, JSON.stringify(config));
      const err = await run(cfg).then(
        () => null,
        (e: unknown) => e,
      );
      expect(err, field).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).issues.map((i) => i.split(':')[0]), field).toContain(field);
    }
    expect(existsSync(link())).toBe(false);
  });

  it('an unknown field is refused, not ignored', async () => {
    const config = JSON.parse(exampleSanConfig());
    config.arrays[0].volumes[0].sizee = '1GiB';
    const cfg = join(dir, 'typo.json');
    writeFileSync(cfg, JSON.stringify(config));
    await expect(run(cfg)).rejects.toThrow(/arrays\[0\]\.volumes\[0\].*sizee/);
  });

  it('without --config or --link: exit 1 naming the missing option', async () => {
    const none = await runCli('san');
    expect(none.code).toBe(1);
    expect(none.stderr).toContain('--config <file> is required (or --example)');
    await expect(runSan({ config: join(dir, 'x.json') }, AbortSignal.abort())).rejects.toThrow('--link <path> is required');
  });
});

describe('npiv-hba san ctl: errors before a SAN answers', () => {
  it('no --control: exit 1 saying it is required', async () => {
    const r = await runCli('san', 'ctl', 'status');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('--control <path> is required');
  });

  it('an argument that is not key=value, or bad JSON in a list argument: exit 1 naming it', async () => {
    const control = join(dir, 'c.sock');
    const [notKv, badJson] = await Promise.all([
      runCli('san', 'ctl', '--control', control, 'add-volume', 'array1'),
      runCli('san', 'ctl', '--control', control, 'zone-create', 'name=z', 'members=["c0:50:76:ff:e5:00:00:02",'),
    ]);
    expect(notKv.code).toBe(1);
    expect(notKv.stderr).toContain("argument 'array1' is not key=value");
    expect(badJson.code).toBe(1);
    expect(badJson.stderr).toContain("argument 'members'");
  });

  it('an unreachable control socket: missing, or nobody listening — exit 1 naming the path', async () => {
    const missing = join(dir, 'none.sock');
    const stale = join(dir, 'stale.sock');
    staleSocket(stale);
    const [a, b] = await Promise.all([runCli('san', 'ctl', '--control', missing, 'status'), runCli('san', 'ctl', '--control', stale, 'status')]);
    expect(a.code).toBe(1);
    expect(a.stderr).toContain(`no control socket at ${missing}`);
    expect(b.code).toBe(1);
    expect(b.stderr).toContain(stale);
    expect(b.stderr).toMatch(/refused/i);
  });
});
