/**
 * The SAN configuration file: one JSON document describing the fabric (name, domain, zoning) and
 * the storage arrays (target ports, volumes, host groups with LUN masking). Validated with zod;
 * every error names the field it is about ("arrays[0].ports[1].wwpn: invalid WWPN ...").
 *
 *   {
 *     "dataDir"?: "volumes",
 *     "fabric": { "name": "fabric-a", "domain": 1,
 *                 "zoning": { "default": "deny", "zones": [{ "name": "z1", "members": [wwpn, ...] }],
 *                             "zoneSets"?: [{ "name": "cfg", "zones": ["z1"] }], "activeZoneSet"?: "cfg" } },
 *     "arrays": [{ "name": "array1", "ports": [{ "wwpn": "...", "wwnn": "..." }],
 *                  "volumes": [{ "name": "vol0", "size": "1GiB", "file"?: "vol0.img", "existing"?: "adopt" | "create", "blockSize"?: 512 }],
 *                  "hostGroups": [{ "name": "hosts", "initiators": [wwpn, ...], "luns": { "0": "vol0" } }] }]
 *   }
 *
 * Volume files: with "dataDir" (relative to this file's directory) every volume file must lie in
 * it (relative names are taken from it) and the control socket may add volumes there; without
 * it, files may be named anywhere (relative to this file's directory) but only here, not over the
 * control socket. "existing": "adopt" (the default here) uses a file that exists, "create"
 * refuses one.
 *
 * Zoning: without "zoneSets" every zone listed is active (an implicit zone set "cfg"); with an
 * empty zone list only the default-zone policy applies. WWNs are text as src/util/wwn.ts accepts.
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { parseWwn } from '../util/wwn.js';
import { SUPPORTED_BLOCK_SIZES, parseSize } from './volume.js';

export class ConfigError extends Error {
  constructor(
    message: string,
    readonly issues: string[] = [message],
  ) {
    super(message);
    this.name = 'ConfigError';
  }
}

/** A WWN string, parsed to a bigint; a bad one is reported on its own field. */
const Wwn = z.string().transform((text, ctx) => {
  try {
    return parseWwn(text);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: (err as Error).message });
    return z.NEVER;
  }
});

const Name = z.string().min(1, 'must not be empty').max(64, 'at most 64 characters');

const Size = z.union([z.string(), z.number()]).superRefine((v, ctx) => {
  try {
    if (parseSize(v) === 0) ctx.addIssue({ code: 'custom', message: 'size must be greater than zero' });
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: (err as Error).message });
  }
});

export const ZoningSchema = z
  .object({
    default: z.enum(['deny', 'allow']),
    zones: z.array(z.strictObject({ name: Name, members: z.array(Wwn) })),
    zoneSets: z.array(z.strictObject({ name: Name, zones: z.array(Name) })).optional(),
    activeZoneSet: Name.nullable().optional(),
  })
  .strict();

export const FabricSchema = z.strictObject({
  name: Name,
  domain: z.number().int().min(1).max(239),
  wwnn: Wwn.optional(),
  zoning: ZoningSchema.default({ default: 'allow', zones: [] }),
});

export const VolumeSchema = z.strictObject({
  name: Name,
  size: Size,
  file: z.string().min(1).optional(),
  existing: z.enum(['adopt', 'create']).optional(),
  blockSize: z
    .number()
    .refine((b): b is 512 | 4096 => (SUPPORTED_BLOCK_SIZES as readonly number[]).includes(b), {
      message: `block size must be one of ${SUPPORTED_BLOCK_SIZES.join(', ')}`,
    })
    .optional(),
});

export const HostGroupSchema = z.strictObject({
  name: Name,
  initiators: z.array(Wwn),
  luns: z.record(z.string().regex(/^\d{1,5}$/, 'LUN numbers are decimal integers'), Name),
});

export const ArraySchema = z.strictObject({
  name: Name,
  ports: z.array(z.strictObject({ wwpn: Wwn, wwnn: Wwn })).min(1, 'an array needs at least one target port'),
  volumes: z.array(VolumeSchema),
  hostGroups: z.array(HostGroupSchema),
});

export const SanConfigSchema = z
  .strictObject({
    /** Where volume files live; relative to the configuration file's directory. */
    dataDir: z.string().min(1).optional(),
    fabric: FabricSchema,
    arrays: z.array(ArraySchema),
  })
  .superRefine((cfg, ctx) => {
    const issue = (path: (string | number)[], message: string): void => ctx.addIssue({ code: 'custom', path, message });
    const arrayNames = new Set<string>();
    const portNames = new Map<bigint, string>();
    cfg.arrays.forEach((a, ai) => {
      if (arrayNames.has(a.name)) issue(['arrays', ai, 'name'], `array name '${a.name}' is used twice`);
      arrayNames.add(a.name);
      a.ports.forEach((p, pi) => {
        const where = `arrays[${ai}].ports[${pi}]`;
        const prev = portNames.get(p.wwpn);
        if (prev) issue(['arrays', ai, 'ports', pi, 'wwpn'], `WWPN is already used by ${prev}`);
        portNames.set(p.wwpn, where);
      });
      const volumes = new Set<string>();
      a.volumes.forEach((v, vi) => {
        if (volumes.has(v.name)) issue(['arrays', ai, 'volumes', vi, 'name'], `volume name '${v.name}' is used twice`);
        volumes.add(v.name);
      });
      const groups = new Set<string>();
      const initiators = new Set<bigint>();
      a.hostGroups.forEach((g, gi) => {
        if (groups.has(g.name))
          issue(['arrays', ai, 'hostGroups', gi, 'name'], `host group name '${g.name}' is used twice`);
        groups.add(g.name);
        g.initiators.forEach((w, wi) => {
          if (initiators.has(w))
            issue(
              ['arrays', ai, 'hostGroups', gi, 'initiators', wi],
              'initiator is already in another host group of this array',
            );
          initiators.add(w);
        });
        for (const [lun, vol] of Object.entries(g.luns)) {
          if (!volumes.has(vol))
            issue(['arrays', ai, 'hostGroups', gi, 'luns', lun], `no volume named '${vol}' in array '${a.name}'`);
        }
      });
    });
    const z0 = cfg.fabric.zoning;
    const zoneNames = new Set<string>();
    z0.zones.forEach((zone, zi) => {
      if (zoneNames.has(zone.name))
        issue(['fabric', 'zoning', 'zones', zi, 'name'], `zone name '${zone.name}' is used twice`);
      zoneNames.add(zone.name);
    });
    const setNames = new Set<string>();
    z0.zoneSets?.forEach((s, si) => {
      setNames.add(s.name);
      s.zones.forEach((zn, zi) => {
        if (!zoneNames.has(zn)) issue(['fabric', 'zoning', 'zoneSets', si, 'zones', zi], `no zone named '${zn}'`);
      });
    });
    if (z0.activeZoneSet && !setNames.has(z0.activeZoneSet)) {
      issue(['fabric', 'zoning', 'activeZoneSet'], `no zone set named '${z0.activeZoneSet}'`);
    }
  });

export type SanConfig = z.output<typeof SanConfigSchema>;
export type FabricConfig = z.output<typeof FabricSchema>;
export type ZoningConfig = z.output<typeof ZoningSchema>;
/** The parsed array part, as src/san/array.ts consumes it (WWNs already bigint). */
export type ArrayConfig = z.output<typeof ArraySchema>;
export type VolumeConfig = z.output<typeof VolumeSchema>;

function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : out ? `.${String(p)}` : String(p);
  return out || '(top level)';
}

/** Validate an already-parsed JSON value. Throws ConfigError listing every problem with its field. */
export function parseSanConfig(value: unknown): SanConfig {
  const r = SanConfigSchema.safeParse(value);
  if (r.success) return r.data;
  const issues = r.error.issues.map((i) => `${formatPath(i.path)}: ${i.message}`);
  throw new ConfigError(`invalid SAN configuration:\n  ${issues.join('\n  ')}`, issues);
}

export function loadSanConfig(file: string): SanConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read SAN configuration ${file}: ${(err as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`SAN configuration ${file} is not valid JSON: ${(err as Error).message}`);
  }
  return parseSanConfig(json);
}

/** A working example: one fabric, one dual-port array with two volumes, open zoning for one host. */
export function exampleSanConfig(): string {
  const example = {
    fabric: {
      name: 'fabric-a',
      domain: 1,
      zoning: {
        default: 'deny',
        zones: [
          {
            name: 'host1-array1',
            members: ['c0:50:76:ff:e5:00:00:01', '50:0a:09:81:00:00:00:01', '50:0a:09:82:00:00:00:01'],
          },
        ],
      },
    },
    arrays: [
      {
        name: 'array1',
        ports: [
          { wwpn: '50:0a:09:81:00:00:00:01', wwnn: '50:0a:09:80:00:00:00:01' },
          { wwpn: '50:0a:09:82:00:00:00:01', wwnn: '50:0a:09:80:00:00:00:01' },
        ],
        volumes: [
          { name: 'boot', size: '1GiB', file: 'array1-boot.img' },
          { name: 'scratch', size: '256MiB' },
        ],
        hostGroups: [{ name: 'host1', initiators: ['c0:50:76:ff:e5:00:00:01'], luns: { '0': 'boot', '1': 'scratch' } }],
      },
    ],
  };
  return JSON.stringify(example, null, 2) + '\n';
}
