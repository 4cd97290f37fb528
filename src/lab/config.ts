/**
 * The lab's SAN configuration and vport names. Two sources:
 *
 *  - the embedded default: the `npiv-hba san --example` document (same function), with every
 *    volume RAM-backed (its `file` dropped, so a run leaves nothing behind) and the example's
 *    initiator replaced by the lab's vport WWPNs in the first host group of each array and in
 *    every zone that named it;
 *  - a user's file (`--config`): used as it is (volume files included); the vports are the
 *    `--wwpn`s given, or else the initiators of its host groups.
 *
 * Lab vport names are deterministic so that a report can be compared run to run:
 * WWPN i = c0:50:76:ff:e5:00:00:0i, WWNN i = c0:50:76:ff:e5:01:00:0i (i = 1..N).
 */
import { readFileSync } from 'node:fs';
import { exampleSanConfig, parseSanConfig, type SanConfig } from '../san/config.js';
import { deriveWwnn } from '../vport/wwn-gen.js';
import { formatWwn, parseWwn } from '../util/wwn.js';
import { UsageError } from '../cli/errors.js';

/** Base of the generated lab WWPNs (vport i gets base + i). */
export const LAB_WWPN_BASE = 0xc05076ffe5000000n;
/** Generated WWNNs sit this far above their WWPN: never equal to any generated WWPN. */
export const LAB_WWNN_OFFSET = 0x10000n;
/** Each vport is one PCI function behind its own root port; keep the guest small and quick. */
export const MAX_LAB_VPORTS = 8;
export const DEFAULT_LAB_VPORTS = 2;

/** A bad lab option value: exit status 2 like every usage error (src/cli/errors.ts). */
export class LabUsageError extends UsageError {
  constructor(message: string) {
    super(message);
    this.name = 'LabUsageError';
  }
}

export interface LabVport {
  wwpn: bigint;
  wwnn: bigint;
}

export interface LabSanSetup {
  /** The configuration the SAN runs with (already validated). */
  config: SanConfig;
  /** JSON text to write for `npiv-hba san --config` (null: run the user's file as given). */
  configText: string | null;
  /** The user's file, when one was given. */
  configFile: string | null;
  vports: LabVport[];
  /** Where the configuration came from, for the report. */
  source: string;
}

export interface LabConfigOptions {
  /** User SAN configuration file (JSON). */
  configFile?: string;
  /** Number of vports (default 2 for the embedded config; with a file, all of its initiators). */
  vports?: number;
  /** Explicit vport WWPNs (text as src/util/wwn.ts accepts). */
  wwpns?: readonly string[];
}

/** Checks a --vports value: an integer 1..MAX_LAB_VPORTS. */
export function parseVportCount(text: string | number): number {
  const value = typeof text === 'number' ? text : /^\s*\d+\s*$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isInteger(value) || value < 1 || value > MAX_LAB_VPORTS) {
    throw new LabUsageError(`invalid --vports '${String(text)}': expected a whole number from 1 to ${MAX_LAB_VPORTS}`);
  }
  return value;
}

/** The deterministic lab names for vports 1..count. */
export function labVports(count: number): LabVport[] {
  const n = parseVportCount(count);
  return Array.from({ length: n }, (_, i) => {
    const wwpn = LAB_WWPN_BASE + BigInt(i + 1);
    return { wwpn, wwnn: wwpn + LAB_WWNN_OFFSET };
  });
}

/** Vports for explicit WWPNs: WWNN by the vport manager's rule; names must not collide. */
export function vportsForWwpns(wwpns: readonly string[]): LabVport[] {
  const vports = wwpns.map((text) => {
    let wwpn: bigint;
    try {
      wwpn = parseWwn(text, 'WWPN');
    } catch (err) {
      throw new LabUsageError(`--wwpn: ${(err as Error).message}`);
    }
    return { wwpn, wwnn: deriveWwnn(wwpn) };
  });
  if (vports.length > MAX_LAB_VPORTS)
    throw new LabUsageError(`at most ${MAX_LAB_VPORTS} vports (got ${vports.length} --wwpn)`);
  const names = new Map<bigint, string>();
  for (const [i, v] of vports.entries()) {
    for (const [what, name] of [
      ['WWPN', v.wwpn],
      ['WWNN', v.wwnn],
    ] as const) {
      const other = names.get(name);
      if (other !== undefined) {
        throw new LabUsageError(
          `--wwpn ${formatWwn(v.wwpn)}: its ${what} ${formatWwn(name)} is already used as ${other}`,
        );
      }
      names.set(name, `vport ${i + 1}'s ${what}`);
    }
  }
  return vports;
}

/** The initiators of every host group of every array, in file order, without repeats. */
export function hostGroupInitiators(config: SanConfig): bigint[] {
  const seen = new Set<bigint>();
  for (const array of config.arrays)
    for (const group of array.hostGroups) for (const w of group.initiators) seen.add(w);
  return [...seen];
}

interface RawZone {
  name: string;
  members: string[];
}
interface RawVolume {
  name: string;
  size: string | number;
  file?: string;
}
interface RawArray {
  volumes: RawVolume[];
  hostGroups: { initiators: string[] }[];
}
interface RawSanConfig {
  fabric: { zoning: { zones: RawZone[] } };
  arrays: RawArray[];
}

/**
 * The embedded default: the SAN example with RAM-backed volumes and the lab's vports as the
 * initiators (host groups and zones) in place of the example's own.
 */
export function defaultLabConfig(vports: readonly LabVport[]): { config: SanConfig; text: string } {
  if (vports.length === 0) throw new LabUsageError('the lab needs at least one vport');
  const raw = JSON.parse(exampleSanConfig()) as RawSanConfig;
  const exampleInitiators = new Set<bigint>();
  for (const array of raw.arrays)
    for (const g of array.hostGroups) for (const w of g.initiators) exampleInitiators.add(parseWwn(w));
  const lab = vports.map((v) => formatWwn(v.wwpn));
  for (const array of raw.arrays) {
    for (const volume of array.volumes) delete volume.file;
    array.hostGroups.forEach((group, index) => {
      // An initiator may sit in one host group per array: the lab's go into the first.
      group.initiators = index === 0 ? [...lab] : group.initiators.filter((w) => !exampleInitiators.has(parseWwn(w)));
    });
  }
  for (const zone of raw.fabric.zoning.zones) {
    const kept = zone.members.filter((w) => !exampleInitiators.has(parseWwn(w)));
    if (kept.length !== zone.members.length) zone.members = [...lab, ...kept];
  }
  const text = JSON.stringify(raw, null, 2) + '\n';
  return { config: parseSanConfig(raw), text };
}

/** Works out the SAN configuration and vports of a lab run; LabUsageError/ConfigError on bad input. */
export function labSanSetup(options: LabConfigOptions): LabSanSetup {
  const explicit = options.wwpns && options.wwpns.length > 0 ? vportsForWwpns(options.wwpns) : null;
  if (explicit && options.vports !== undefined && options.vports !== explicit.length) {
    throw new LabUsageError(`--vports ${options.vports} contradicts the ${explicit.length} --wwpn given`);
  }
  if (options.configFile === undefined) {
    const vports = explicit ?? labVports(options.vports ?? DEFAULT_LAB_VPORTS);
    const { config, text } = defaultLabConfig(vports);
    return {
      config,
      configText: text,
      configFile: null,
      vports,
      source: 'embedded example (npiv-hba san --example), RAM-backed volumes',
    };
  }
  // Reads and validates the user's file; loadSanConfig's errors name the file and each field.
  let text: string;
  try {
    text = readFileSync(options.configFile, 'utf8');
  } catch (err) {
    throw new LabUsageError(
      `cannot read --config ${options.configFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new LabUsageError(`--config ${options.configFile} is not valid JSON: ${(err as Error).message}`);
  }
  const config = parseSanConfig(json);
  let vports: LabVport[];
  if (explicit) {
    vports = explicit;
  } else {
    const initiators = hostGroupInitiators(config);
    if (initiators.length === 0) {
      throw new LabUsageError(
        `--config ${options.configFile} has no host-group initiators: give the vports with --wwpn`,
      );
    }
    const count = options.vports ?? Math.min(initiators.length, MAX_LAB_VPORTS);
    if (count > initiators.length) {
      throw new LabUsageError(
        `--vports ${count}: --config ${options.configFile} names only ${initiators.length} initiator(s); add --wwpn`,
      );
    }
    vports = vportsForWwpns(initiators.slice(0, count).map(formatWwn));
  }
  return { config, configText: null, configFile: options.configFile, vports, source: options.configFile };
}
