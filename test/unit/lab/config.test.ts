import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, exampleSanConfig, parseSanConfig } from '../../../src/san/config.js';
import {
  LabUsageError,
  MAX_LAB_VPORTS,
  defaultLabConfig,
  hostGroupInitiators,
  labSanSetup,
  labVports,
  parseVportCount,
  vportsForWwpns,
} from '../../../src/lab/config.js';
import { formatWwn } from '../../../src/util/wwn.js';

const dir = mkdtempSync(join(tmpdir(), 'lab-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function writeConfig(name: string, value: unknown): string {
  const path = join(dir, name);
  writeFileSync(path, typeof value === 'string' ? value : JSON.stringify(value));
  return path;
}

describe('lab vport names', () => {
  it('generates deterministic, distinct WWPN/WWNN pairs', () => {
    const v = labVports(3);
    expect(v.map((x) => formatWwn(x.wwpn))).toEqual([
      'c0:50:76:ff:e5:00:00:01',
      'c0:50:76:ff:e5:00:00:02',
      'c0:50:76:ff:e5:00:00:03',
    ]);
    expect(v.map((x) => formatWwn(x.wwnn))).toEqual([
      'c0:50:76:ff:e5:01:00:01',
      'c0:50:76:ff:e5:01:00:02',
      'c0:50:76:ff:e5:01:00:03',
    ]);
    const all = labVports(MAX_LAB_VPORTS).flatMap((x) => [x.wwpn, x.wwnn]);
    expect(new Set(all).size).toBe(all.length);
  });

  it('refuses bad --vports values', () => {
    for (const bad of ['0', '-1', '1.5', 'two', '', String(MAX_LAB_VPORTS + 1), '1e1']) {
      expect(() => parseVportCount(bad), bad).toThrow(LabUsageError);
    }
    expect(() => parseVportCount('0')).toThrow(/--vports '0'.*1 to 8/);
    expect(parseVportCount('4')).toBe(4);
    expect(parseVportCount(1)).toBe(1);
  });

  it('explicit WWPNs: WWNN derived, bad or colliding names refused', () => {
    const [a] = vportsForWwpns(['50:01:43:80:01:23:45:67']);
    expect(formatWwn(a!.wwnn)).toBe('50:01:43:80:01:23:45:66');
    expect(() => vportsForWwpns(['50:01:43:80:01:23:45'])).toThrow(/--wwpn: invalid WWPN '50:01:43:80:01:23:45'/);
    expect(() => vportsForWwpns(['0x0000000000000000'])).toThrow(LabUsageError);
    // ...66's derived WWNN is ...67, the first vport's WWPN.
    expect(() => vportsForWwpns(['50:01:43:80:01:23:45:67', '50:01:43:80:01:23:45:66'])).toThrow(
      /already used as vport 1's WWNN|already used as vport 1's WWPN/,
    );
    expect(() => vportsForWwpns(['50:01:43:80:01:23:45:67', '5001438001234567'])).toThrow(/already used/);
  });
});

describe('embedded default configuration', () => {
  it('is the SAN example with RAM volumes and the lab vports as initiators and zone members', () => {
    const vports = labVports(2);
    const { config, text } = defaultLabConfig(vports);
    const example = parseSanConfig(JSON.parse(exampleSanConfig()));
    // Same fabric, arrays, ports and volume sizes as the example.
    expect(config.fabric.name).toBe(example.fabric.name);
    expect(config.arrays.map((a) => a.ports)).toEqual(example.arrays.map((a) => a.ports));
    expect(config.arrays[0]!.volumes.map((v) => [v.name, v.size])).toEqual(
      example.arrays[0]!.volumes.map((v) => [v.name, v.size]),
    );
    expect(example.arrays[0]!.volumes.some((v) => v.file !== undefined)).toBe(true);
    expect(config.arrays[0]!.volumes.every((v) => v.file === undefined)).toBe(true);
    expect(config.arrays[0]!.hostGroups[0]!.initiators).toEqual(vports.map((v) => v.wwpn));
    const zone = config.fabric.zoning.zones[0]!;
    for (const v of vports) expect(zone.members).toContain(v.wwpn);
    for (const p of config.arrays[0]!.ports) expect(zone.members).toContain(p.wwpn);
    // The example's own initiator is gone unless it is a lab vport.
    expect(hostGroupInitiators(config)).toEqual(vports.map((v) => v.wwpn));
    // The text written for `npiv-hba san --config` parses to the same configuration.
    expect(parseSanConfig(JSON.parse(text))).toEqual(config);
  });

  it('labSanSetup: default vport count, --vports and --wwpn', () => {
    expect(labSanSetup({}).vports).toHaveLength(2);
    const three = labSanSetup({ vports: 3 });
    expect(three.vports).toHaveLength(3);
    expect(three.configText).not.toBeNull();
    expect(three.configFile).toBeNull();
    const explicit = labSanSetup({ wwpns: ['50:01:43:80:01:23:45:67'] });
    expect(explicit.config.arrays[0]!.hostGroups[0]!.initiators).toEqual([0x5001438001234567n]);
    expect(() => labSanSetup({ vports: 2, wwpns: ['50:01:43:80:01:23:45:67'] })).toThrow(/contradicts/);
  });
});

describe('--config FILE', () => {
  const userConfig = {
    fabric: { name: 'f', domain: 2, zoning: { default: 'allow', zones: [] } },
    arrays: [
      {
        name: 'a',
        ports: [{ wwpn: '50:0a:09:81:00:00:00:09', wwnn: '50:0a:09:80:00:00:00:09' }],
        volumes: [{ name: 'v', size: '64MiB', file: 'v.img' }],
        hostGroups: [
          { name: 'g1', initiators: ['50:01:43:80:00:00:00:11', '50:01:43:80:00:00:00:13'], luns: { '0': 'v' } },
        ],
      },
    ],
  };

  it('takes the vports from the host groups and runs the file as given', () => {
    const path = writeConfig('user.json', userConfig);
    const setup = labSanSetup({ configFile: path });
    expect(setup.configText).toBeNull();
    expect(setup.configFile).toBe(path);
    expect(setup.vports.map((v) => formatWwn(v.wwpn))).toEqual(['50:01:43:80:00:00:00:11', '50:01:43:80:00:00:00:13']);
    expect(setup.config.arrays[0]!.volumes[0]!.file).toBe('v.img');
    expect(labSanSetup({ configFile: path, vports: 1 }).vports).toHaveLength(1);
    expect(() => labSanSetup({ configFile: path, vports: 3 })).toThrow(/names only 2 initiator/);
    expect(labSanSetup({ configFile: path, wwpns: ['50:01:43:80:00:00:00:21'] }).vports.map((v) => v.wwpn)).toEqual([
      0x5001438000000021n,
    ]);
  });

  it('needs --wwpn when the file has no initiators', () => {
    const path = writeConfig('empty.json', { ...userConfig, arrays: [{ ...userConfig.arrays[0], hostGroups: [] }] });
    expect(() => labSanSetup({ configFile: path })).toThrow(/no host-group initiators: give the vports with --wwpn/);
  });

  it('reports a missing file, bad JSON and an invalid configuration clearly', () => {
    expect(() => labSanSetup({ configFile: join(dir, 'missing.json') })).toThrow(
      /cannot read --config .*missing\.json: ENOENT/,
    );
    expect(() => labSanSetup({ configFile: writeConfig('bad.json', '{ nope') })).toThrow(/is not valid JSON/);
    const invalid = writeConfig('invalid.json', { ...userConfig, fabric: { ...userConfig.fabric, domain: 0 } });
    expect(() => labSanSetup({ configFile: invalid })).toThrow(ConfigError);
    expect(() => labSanSetup({ configFile: invalid })).toThrow(/fabric\.domain/);
  });
});
