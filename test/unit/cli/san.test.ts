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
import { existsSync, lstatSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runSan } from '../../../src/cli/san.js';
import { ConfigError, exampleSanConfig } from '../../../src/san/config.js';
import { LINKTYPE_FC_2 } from '../../../src/fc/pcap.js';
import { FC2, PCAP, cliSandbox, staleSocket, waitFor } from './support.js';

interface PcapRecord {
  frame: Buffer;
}

/** Parses a whole classic pcap file; throws on any inconsistency. */
function readPcap(file: string): { linkType: number; snapLen: number; records: PcapRecord[] } {
  const b = readFileSync(file);
  if (b.length < PCAP.GLOBAL_HEADER) throw new Error(`pcap ${file} is shorter than its header`);
  expect(b.readUInt32LE(0)).toBe(PCAP.MAGIC_USEC);
  expect([b.readUInt16LE(4), b.readUInt16LE(6)]).toEqual([2, 4]);
  const snapLen = b.readUInt32LE(16);
  const records: PcapRecord[] = [];
  let at = PCAP.GLOBAL_HEADER;
  while (at < b.length) {
    if (at + PCAP.RECORD_HEADER > b.length) throw new Error(`truncated record header at ${at}`);
    const incl = b.readUInt32LE(at + 8);
    const orig = b.readUInt32LE(at + 12);
    if (incl !== orig || incl > snapLen || at + PCAP.RECORD_HEADER + incl > b.length)
      throw new Error(`bad record at ${at}`);
    records.push({ frame: b.subarray(at + PCAP.RECORD_HEADER, at + PCAP.RECORD_HEADER + incl) });
    at += PCAP.RECORD_HEADER + incl;
  }
  return { linkType: b.readUInt32LE(20), snapLen, records };
}

const sandbox = cliSandbox('sanc-');

describe('npiv-hba san: a running SAN from the example configuration', () => {
  it('--example is accepted by --config; ctl commands change it; SIGTERM exits 0; --pcap is a valid FC-2 capture', async () => {
    const example = await sandbox.run(['san', '--example']);
    expect(example.code).toBe(0);
    const cfg = join(sandbox.dir, 'san.json');
    writeFileSync(cfg, example.stdout);
    const link = join(sandbox.dir, 'l.sock');
    const control = join(sandbox.dir, 'c.sock');
    const pcap = join(sandbox.dir, 'san.pcap');
    const san = sandbox.start(['san', '--config', cfg, '--link', link, '--control', control, '--pcap', pcap]);
    await waitFor(() => existsSync(control), 'control socket appears', san);
    expect(lstatSync(link).isSocket()).toBe(true);
    // File-backed volumes are placed next to the configuration file.
    expect(existsSync(join(sandbox.dir, 'array1-boot.img'))).toBe(true);

    const ctl = (...args: string[]) => sandbox.run(['san', 'ctl', '--control', control, ...args]);
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
    const [after, again] = await Promise.all([
      ctl('status'),
      ctl('map-lun', 'array=array1', 'hostGroup=host2', 'lun=5', 'volume=scratch'),
    ]);
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
      sandbox.run(['san', '--config', cfg, '--link', link]),
    ]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/unknown command 'frobnicate'; valid commands: status, /);
    expect(JSON.parse(unknown.stdout)).toMatchObject({ ok: false });
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('map-lun needs array, hostGroup, lun, volume (missing: hostGroup, volume)');
    expect(wrongType.code).toBe(1);
    expect(wrongType.stderr).toContain("policy: 'maybe' is not one of allow, deny");
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
    expect(first.length).toBeGreaterThan(FC2.HEADER);
    expect(first[0]).toBe(FC2.R_CTL_ELS_REQUEST);
    expect(first.readUIntBE(1, 3)).toBe(FC2.FABRIC_F_PORT_ID);
    expect(first[FC2.HEADER]).toBe(FC2.ELS_FLOGI);
  }, 120_000);

  it('SIGINT stops it with exit 0 and removes the control socket', async () => {
    const cfg = join(sandbox.dir, 'san.json');
    writeFileSync(cfg, JSON.stringify({ fabric: { name: 'f', domain: 2 }, arrays: [] }));
    const control = join(sandbox.dir, 'c.sock');
    const san = sandbox.start(['san', '--config', cfg, '--link', join(sandbox.dir, 'l.sock'), '--control', control]);
    await waitFor(() => existsSync(control), 'control socket appears', san);
    san.proc.kill('SIGINT');
    expect(await san.exit).toBe(0);
    expect(existsSync(control)).toBe(false);
  });
});

describe('npiv-hba san --data-dir', () => {
  /** One array with a port and no volumes; "dataDir" in the file when `configDataDir` is given. */
  function config(configDataDir?: string): string {
    const cfg = join(sandbox.dir, 'san.json');
    const array = {
      name: 'array1',
      ports: [{ wwpn: '50:0a:09:81:00:00:00:01', wwnn: '50:0a:09:80:00:00:00:01' }],
      volumes: [],
      hostGroups: [],
    };
    writeFileSync(
      cfg,
      JSON.stringify({
        ...(configDataDir ? { dataDir: configDataDir } : {}),
        fabric: { name: 'f', domain: 2 },
        arrays: [array],
      }),
    );
    return cfg;
  }

  it('confines ctl add-volume file= to the directory, overriding "dataDir" in the configuration', async () => {
    const data = join(sandbox.dir, 'vols');
    const control = join(sandbox.dir, 'c.sock');
    const san = sandbox.start([
      'san',
      '--config',
      config('from-config'),
      '--link',
      join(sandbox.dir, 'l.sock'),
      '--control',
      control,
      '--data-dir',
      data,
    ]);
    await waitFor(() => existsSync(control), 'control socket appears', san);
    expect(statSync(data).mode & 0o7777).toBe(0o700); // created private
    const ctl = (...args: string[]) =>
      sandbox.run(['san', 'ctl', '--control', control, 'add-volume', 'array=array1', 'size=1MiB', ...args]);

    const inside = await ctl('name=a', 'file=a.img');
    expect([inside.code, inside.stderr]).toEqual([0, '']);
    expect(statSync(join(data, 'a.img')).size).toBe(1024 * 1024);
    expect(existsSync(join(sandbox.dir, 'from-config'))).toBe(false); // the flag won over the file

    const outside = join(sandbox.dir, 'outside.img');
    const [absolute, dotdot] = await Promise.all([
      ctl('name=b', `file=${outside}`),
      ctl('name=c', 'file=../escape.img'),
    ]);
    expect(absolute.code).toBe(1);
    expect(absolute.stderr).toContain(`backing file '${outside}' is outside the data directory`);
    expect(dotdot.code).toBe(1);
    expect(dotdot.stderr).toContain("backing file '../escape.img' contains '..'");
    expect([existsSync(outside), existsSync(join(sandbox.dir, 'escape.img'))]).toEqual([false, false]);

    san.proc.kill('SIGTERM');
    expect(await san.exit).toBe(0);
  });

  it('without it (and without "dataDir") ctl add-volume file= is refused, saying how to allow it', async () => {
    const control = join(sandbox.dir, 'c.sock');
    const san = sandbox.start([
      'san',
      '--config',
      config(),
      '--link',
      join(sandbox.dir, 'l.sock'),
      '--control',
      control,
    ]);
    await waitFor(() => existsSync(control), 'control socket appears', san);
    const r = await sandbox.run([
      'san',
      'ctl',
      '--control',
      control,
      'add-volume',
      'array=array1',
      'name=a',
      'size=1MiB',
      'file=a.img',
    ]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('restart the SAN with --data-dir DIR');
    expect(existsSync(join(sandbox.dir, 'a.img'))).toBe(false);
    san.proc.kill('SIGTERM');
    expect(await san.exit).toBe(0);
  });
});

describe('npiv-hba san: configuration errors', () => {
  const link = () => join(sandbox.dir, 'l.sock');
  const run = (config: string) => runSan({ config, link: link() }, AbortSignal.abort());

  it('a missing file exits 1 naming it (built CLI)', async () => {
    const missing = join(sandbox.dir, 'nope.json');
    const r = await sandbox.run(['san', '--config', missing, '--link', link()]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`cannot read SAN configuration ${missing}`);
    expect(existsSync(link())).toBe(false);
  });

  it('a field error exits 1 naming the field and the bad value (built CLI)', async () => {
    const cfg = join(sandbox.dir, 'san.json');
    const json = JSON.parse(exampleSanConfig());
    json.arrays[0].ports[1].wwpn = '50:0a:09:82:00:00:00';
    writeFileSync(cfg, JSON.stringify(json));
    const r = await sandbox.run(['san', '--config', cfg, '--link', link()]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("arrays[0].ports[1].wwpn: invalid WWN '50:0a:09:82:00:00:00'");
    expect(existsSync(link())).toBe(false);
  });

  it('invalid JSON is refused with the file named', async () => {
    const cfg = join(sandbox.dir, 'bad.json');
    writeFileSync(cfg, '{ "fabric": ');
    await expect(run(cfg)).rejects.toThrow(`SAN configuration ${cfg} is not valid JSON`);
  });

  it('each field error names its field', async () => {
    // biome-ignore lint/suspicious/noExplicitAny: each case edits the raw JSON of the example configuration
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
      const cfg = join(sandbox.dir, 'case.json');
      writeFileSync(cfg, JSON.stringify(config));
      const err = await run(cfg).then(
        () => null,
        (e: unknown) => e,
      );
      expect(err, field).toBeInstanceOf(ConfigError);
      expect(
        (err as ConfigError).issues.map((i) => i.split(':')[0]),
        field,
      ).toContain(field);
    }
    expect(existsSync(link())).toBe(false);
  });

  it('an unknown field is refused, not ignored', async () => {
    const config = JSON.parse(exampleSanConfig());
    config.arrays[0].volumes[0].sizee = '1GiB';
    const cfg = join(sandbox.dir, 'typo.json');
    writeFileSync(cfg, JSON.stringify(config));
    await expect(run(cfg)).rejects.toThrow(/arrays\[0\]\.volumes\[0\].*sizee/);
  });

  it('without --config or --link: exit 2 naming the missing option', async () => {
    const none = await sandbox.run(['san']);
    expect(none.code).toBe(2);
    expect(none.stderr).toContain('--config <file> is required (or --example)');
    await expect(runSan({ config: join(sandbox.dir, 'x.json') }, AbortSignal.abort())).rejects.toThrow(
      '--link <path> is required',
    );
  });
});

describe('npiv-hba san ctl: errors before a SAN answers', () => {
  it('no --control: exit 2 saying it is required', async () => {
    const r = await sandbox.run(['san', 'ctl', 'status']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--control <path> is required');
  });

  it('an argument that is not key=value, or bad JSON in a list argument: exit 2 naming it', async () => {
    const control = join(sandbox.dir, 'c.sock');
    const [notKv, badJson] = await Promise.all([
      sandbox.run(['san', 'ctl', '--control', control, 'add-volume', 'array1']),
      sandbox.run(['san', 'ctl', '--control', control, 'zone-create', 'name=z', 'members=["c0:50:76:ff:e5:00:00:02",']),
    ]);
    expect(notKv.code).toBe(2);
    expect(notKv.stderr).toContain("argument 'array1' is not key=value");
    expect(badJson.code).toBe(2);
    expect(badJson.stderr).toContain("argument 'members'");
  });

  it('an unreachable control socket: missing, or nobody listening — exit 3 (not running) naming the path', async () => {
    const missing = join(sandbox.dir, 'none.sock');
    const stale = join(sandbox.dir, 'stale.sock');
    staleSocket(stale);
    const [a, b] = await Promise.all([
      sandbox.run(['san', 'ctl', '--control', missing, 'status']),
      sandbox.run(['san', 'ctl', '--control', stale, 'status']),
    ]);
    expect(a.code).toBe(3);
    expect(a.stderr).toContain(`no SAN control socket at ${missing}`);
    expect(b.code).toBe(3);
    expect(b.stderr).toContain(stale);
    expect(b.stderr).toMatch(/refused/i);
  });
});
