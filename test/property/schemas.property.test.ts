/**
 * The JSON schemas (zod): the SAN configuration (src/san/config.ts), SAN control requests
 * (src/san/control.ts) and vport definitions (src/vport/definition.ts) accept what valid values
 * look like, and answer any other JSON with their own error (ConfigError, a zod error, an Error
 * listing the problems) — never a crash.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ZodError } from 'zod';
import { ConfigError, parseSanConfig } from '../../src/san/config.js';
import { ControlRequestSchema } from '../../src/san/control.js';
import { definitionFromJson, definitionToJson, type VportDefinition } from '../../src/vport/definition.js';
import { formatWwn } from '../../src/util/wwn.js';
import { FEW, RUNS } from './support.js';

const wwn = fc.bigInt({ min: 1n, max: (1n << 64n) - 1n });
const name = fc.stringMatching(/^[a-z][a-z0-9-]{0,15}$/);
const size = fc.oneof(
  fc.integer({ min: 1, max: 1 << 30 }),
  fc.tuple(fc.integer({ min: 1, max: 4096 }), fc.constantFrom('KiB', 'MiB', 'GiB', '')).map(([n, u]) => `${n}${u}`),
);
/** JSON-ish values, including the shapes the schemas expect with wrong contents. */
const junk = fc.oneof(
  fc.jsonValue(),
  fc.anything({ maxDepth: 3 }),
  fc.record({ fabric: fc.jsonValue(), arrays: fc.jsonValue() }),
  fc.record({ cmd: fc.string(), wwpn: fc.jsonValue() }),
);

const sanConfig = fc
  .record({
    domain: fc.integer({ min: 1, max: 239 }),
    arrays: fc.uniqueArray(
      fc.record({
        name,
        ports: fc.array(fc.record({ wwpn: wwn, wwnn: wwn }), { minLength: 1, maxLength: 3 }),
        volumes: fc.uniqueArray(fc.record({ name, size, blockSize: fc.constantFrom(undefined, 512, 4096) }), {
          selector: (v) => v.name,
          maxLength: 3,
        }),
        initiators: fc.uniqueArray(wwn, { maxLength: 3 }),
      }),
      { selector: (a) => a.name, maxLength: 3 },
    ),
  })
  .filter((c) => {
    const ports = c.arrays.flatMap((a) => a.ports.map((p) => p.wwpn));
    return new Set(ports).size === ports.length;
  })
  .map((c) => ({
    fabric: { name: 'f', domain: c.domain, zoning: { default: 'allow', zones: [] } },
    arrays: c.arrays.map((a) => ({
      name: a.name,
      ports: a.ports.map((p) => ({ wwpn: formatWwn(p.wwpn), wwnn: formatWwn(p.wwnn) })),
      volumes: a.volumes.map((v) => ({
        name: v.name,
        size: v.size,
        ...(v.blockSize ? { blockSize: v.blockSize } : {}),
      })),
      hostGroups: [
        {
          name: 'g',
          initiators: a.initiators.map(formatWwn),
          luns: Object.fromEntries(a.volumes.map((v, i) => [String(i), v.name])),
        },
      ],
    })),
  }));

describe('SAN configuration schema', () => {
  it('accepts generated valid configurations and keeps their names and WWNs', () => {
    fc.assert(
      fc.property(sanConfig, (c) => {
        const parsed = parseSanConfig(c);
        expect(parsed.fabric.domain).toBe(c.fabric.domain);
        expect(parsed.arrays.map((a) => a.name)).toEqual(c.arrays.map((a) => a.name));
        expect(parsed.arrays.flatMap((a) => a.ports.map((p) => formatWwn(p.wwpn)))).toEqual(
          c.arrays.flatMap((a) => a.ports.map((p) => p.wwpn)),
        );
      }),
      RUNS,
    );
  });
  it('rejects anything else with a ConfigError, never a crash', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          junk,
          sanConfig.map((c) => ({ ...c, arrays: [...c.arrays, c.arrays[0] ?? { name: 7 }] })),
        ),
        (value) => {
          try {
            parseSanConfig(value);
          } catch (err) {
            expect(err).toBeInstanceOf(ConfigError);
            expect((err as ConfigError).issues.length).toBeGreaterThan(0);
          }
        },
      ),
      RUNS,
    );
  });
});

const control = fc.oneof(
  fc.constant({ cmd: 'status' }),
  fc.record({ cmd: fc.constant('add-volume'), array: name, name, size, blockSize: fc.constantFrom(512, 4096, '512') }),
  fc.record({
    cmd: fc.constant('map-lun'),
    array: name,
    hostGroup: name,
    lun: fc.oneof(fc.integer({ min: 0, max: 16383 }), fc.integer({ min: 0, max: 16383 }).map(String)),
    volume: name,
  }),
  fc.record({ cmd: fc.constant('zone-create'), name, members: fc.array(wwn.map(formatWwn), { maxLength: 4 }) }),
  fc.record({ cmd: fc.constantFrom('port-down', 'port-up', 'link-down', 'link-up'), wwpn: wwn.map(formatWwn) }),
  fc.record({ cmd: fc.constant('zoneset-activate'), name: fc.option(name) }),
  fc.record({
    cmd: fc.constant('fault-add'),
    kind: fc.constant('drop'),
    probability: fc.double({ min: 0, max: 1, noNaN: true }),
    count: fc.integer({ min: 1, max: 100 }),
  }),
);

describe('SAN control request schema', () => {
  it('accepts generated valid requests', () => {
    fc.assert(
      fc.property(control, (req) => {
        const r = ControlRequestSchema.safeParse(req);
        expect(r.success).toBe(true);
        expect(r.data?.cmd).toBe(req.cmd);
      }),
      RUNS,
    );
  });
  it('answers any other JSON with a zod error, never a crash', () => {
    fc.assert(
      fc.property(junk, (value) => {
        const r = ControlRequestSchema.safeParse(value);
        if (!r.success) expect(r.error).toBeInstanceOf(ZodError);
        else expect(typeof r.data.cmd).toBe('string');
      }),
      RUNS,
    );
  });
});

const uuid = fc.uuid().map((u) => u.toLowerCase());
const absPath = fc.stringMatching(/^\/[a-z0-9/_.-]{1,60}$/);
const definition: fc.Arbitrary<VportDefinition> = fc
  .record({ uuid, wwpn: wwn, wwnn: wwn, link: fc.option(absPath), socket: absPath, autostart: fc.boolean() })
  .filter((d) => d.wwpn !== d.wwnn)
  .map((d) => ({
    uuid: d.uuid,
    wwpn: d.wwpn,
    wwnn: d.wwnn,
    backend: d.link ? { type: 'san', link: d.link } : { type: 'none' },
    socket: d.socket,
    autostart: d.autostart,
  }));

describe('vport definition schema', () => {
  it('definitionFromJson(definitionToJson(d)) = d', () => {
    fc.assert(
      fc.property(definition, (d) => {
        expect(definitionFromJson(JSON.parse(JSON.stringify(definitionToJson(d))))).toEqual(d);
      }),
      RUNS,
    );
  });
  it('rejects anything else with an Error naming the problem, never a TypeError', () => {
    const mutated = definition.chain((d) => {
      const json = definitionToJson(d) as Record<string, unknown>;
      return fc.tuple(fc.constantFrom(...Object.keys(json)), fc.jsonValue()).map(([k, v]) => ({ ...json, [k]: v }));
    });
    fc.assert(
      fc.property(fc.oneof(junk, mutated), (value) => {
        try {
          definitionFromJson(value);
        } catch (err) {
          expect((err as Error).constructor).toBe(Error);
          expect((err as Error).message.length).toBeGreaterThan(0);
        }
      }),
      FEW,
    );
  });
});
