import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, exampleSanConfig, loadSanConfig, parseSanConfig } from '../../../src/san/config.js';
import { zoningFromConfig } from '../../../src/san/san.js';

// biome-ignore lint/suspicious/noExplicitAny: the tests edit the raw JSON of the example configuration
function base(): any {
  return JSON.parse(exampleSanConfig());
}
function issuesOf(value: unknown): string[] {
  try {
    parseSanConfig(value);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).issues;
  }
  throw new Error('configuration was accepted');
}

describe('SAN configuration', () => {
  it('accepts the example and parses WWNs to bigints', () => {
    const cfg = parseSanConfig(base());
    expect(cfg.fabric.domain).toBe(1);
    expect(cfg.arrays[0]!.ports[0]!.wwpn).toBe(0x500a098100000001n);
    expect(cfg.fabric.zoning.zones[0]!.members).toContain(0xc05076ffe5000001n);
    // Zones without zone sets are all active.
    const zoning = zoningFromConfig(cfg.fabric.zoning);
    expect(zoning.activeZoneSet).toBe('cfg');
    expect(zoning.canCommunicate(0xc05076ffe5000001n, 0x500a098100000001n)).toBe(true);
    expect(zoning.canCommunicate(0xc05076ffe5000002n, 0x500a098100000001n)).toBe(false);
  });

  it('defaults zoning to open when absent', () => {
    const c = base();
    delete c.fabric.zoning;
    const cfg = parseSanConfig(c);
    expect(cfg.fabric.zoning).toEqual({ default: 'allow', zones: [] });
    expect(zoningFromConfig(cfg.fabric.zoning).canCommunicate(1n, 2n)).toBe(true);
  });

  it('names the bad field in every error', () => {
    const c = base();
    c.arrays[0].ports[1].wwpn = 'not-a-wwn';
    c.arrays[0].volumes[1].size = '12 parsecs';
    c.arrays[0].hostGroups[0].luns['2'] = 'missing';
    c.fabric.domain = 300;
    c.fabric.zoning.zones[0].members.push('01:02');
    const issues = issuesOf(c);
    expect(issues.some((i) => i.startsWith("arrays[0].ports[1].wwpn: invalid WWN 'not-a-wwn'"))).toBe(true);
    expect(issues.some((i) => i.startsWith('arrays[0].volumes[1].size: invalid size'))).toBe(true);
    expect(issues.some((i) => i.startsWith('fabric.domain:'))).toBe(true);
    expect(issues.some((i) => i.startsWith('fabric.zoning.zones[0].members[3]:'))).toBe(true);
    // Cross-field checks run once the shape is right.
    const d = base();
    d.arrays[0].hostGroups[0].luns['2'] = 'missing';
    d.arrays[0].ports[1].wwpn = d.arrays[0].ports[0].wwpn;
    d.fabric.zoning.zoneSets = [{ name: 's', zones: ['nope'] }];
    d.fabric.zoning.activeZoneSet = 'other';
    expect(issuesOf(d).sort()).toEqual([
      "arrays[0].hostGroups[0].luns.2: no volume named 'missing' in array 'array1'",
      'arrays[0].ports[1].wwpn: WWPN is already used by arrays[0].ports[0]',
      "fabric.zoning.activeZoneSet: no zone set named 'other'",
      "fabric.zoning.zoneSets[0].zones[0]: no zone named 'nope'",
    ]);
  });

  it('refuses unknown keys and missing sections', () => {
    const c = base();
    c.arrays[0].colour = 'blue';
    expect(issuesOf(c).join('\n')).toMatch(/arrays\[0\]: .*colour/);
    expect(issuesOf({ arrays: [] })[0]).toMatch(/^fabric:/);
    const e = base();
    e.arrays[0].ports = [];
    expect(issuesOf(e)).toContain('arrays[0].ports: an array needs at least one target port');
  });

  it('reports unreadable files and bad JSON with the file name', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sancfg-'));
    const f = join(dir, 'san.json');
    writeFileSync(f, '{ "fabric": ');
    expect(() => loadSanConfig(f)).toThrow(/san\.json is not valid JSON/);
    expect(() => loadSanConfig(join(dir, 'absent.json'))).toThrow(/cannot read/);
    writeFileSync(f, exampleSanConfig());
    expect(loadSanConfig(f).arrays).toHaveLength(1);
    rmSync(dir, { recursive: true });
  });
});
