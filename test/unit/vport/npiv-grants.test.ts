/** NPIV name grants: `serve --npiv-wwpn` / `vport define --npiv-wwpn` parsing, storage and serve arguments. */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseWwnPair, WwnError } from '../../../src/util/wwn.js';
import { definitionFromJson } from '../../../src/vport/definition.js';
import { VportError, VportUsageError } from '../../../src/vport/errors.js';
import { defineVport } from '../../../src/vport/manager.js';
import { serveArguments } from '../../../src/vport/runtime.js';
import { VportStore } from '../../../src/vport/store.js';
import { tempDirs, type TempDirs } from './helpers.js';

const PAIR = { wwpn: 0xc050760000000101n, wwnn: 0xc050760000000100n };

describe('WWPN:WWNN pairs', () => {
  it.each([
    'c050760000000101:c050760000000100',
    '0xc050760000000101:0xc050760000000100',
    'c0:50:76:00:00:00:01:01:c0:50:76:00:00:00:01:00',
    '0xc050760000000101:c0:50:76:00:00:00:01:00',
    ' c050760000000101:c050760000000100\n',
  ])('accepts %j', (text) => {
    expect(parseWwnPair(text)).toEqual(PAIR);
  });
  it.each(['', 'c050760000000101', 'c050760000000101:', 'c050760000000101:c05076000000010', 'c0:50:76:00:00:00:01:01'])(
    'refuses %j',
    (text) => {
      expect(() => parseWwnPair(text, '--npiv-wwpn')).toThrow(WwnError);
    },
  );
});

describe('vport definitions with NPIV grants', () => {
  let dirs: TempDirs;
  let store: VportStore;
  beforeEach(() => {
    dirs = tempDirs();
    store = new VportStore(dirs.configDir);
  });
  afterEach(() => dirs.cleanup());
  const ctx = () => ({ store, runDir: dirs.runDir, env: {} });

  it('stores the pairs and passes each to serve --npiv-wwpn', async () => {
    const def = await defineVport(
      {
        wwpn: '50:01:43:80:01:23:45:67',
        backend: { type: 'none' },
        autostart: false,
        npiv: ['c050760000000101:c050760000000100', '0xc050760000000201:0xc050760000000200'],
      },
      ctx(),
    );
    const back = store.get(def.uuid);
    expect(back.npiv).toEqual([PAIR, { wwpn: 0xc050760000000201n, wwnn: 0xc050760000000200n }]);
    const args = serveArguments(back);
    expect(args.filter((_a, i) => args[i - 1] === '--npiv-wwpn')).toEqual([
      'c0:50:76:00:00:00:01:01:c0:50:76:00:00:00:01:00',
      'c0:50:76:00:00:00:02:01:c0:50:76:00:00:00:02:00',
    ]);
    // No grants: no option, no field.
    const plain = await defineVport({ backend: { type: 'none' }, autostart: false }, ctx());
    expect(serveArguments(store.get(plain.uuid))).not.toContain('--npiv-wwpn');
  });

  it('refuses a granted WWPN that any definition already uses, and duplicates', async () => {
    await defineVport(
      {
        wwpn: '50:01:43:80:01:23:45:67',
        backend: { type: 'none' },
        autostart: false,
        npiv: ['c050760000000101:c050760000000100'],
      },
      ctx(),
    );
    await expect(
      defineVport({ backend: { type: 'none' }, autostart: false, npiv: ['c050760000000101:c050760000000999'] }, ctx()),
    ).rejects.toThrow(VportError);
    await expect(
      defineVport({ backend: { type: 'none' }, autostart: false, npiv: ['5001438001234567:c050760000000999'] }, ctx()),
    ).rejects.toThrow(/duplicate NPIV WWPN/);
    await expect(
      defineVport(
        {
          backend: { type: 'none' },
          autostart: false,
          npiv: ['c050760000000301:c0507600000003a0', 'c050760000000301:c0507600000003b0'],
        },
        ctx(),
      ),
    ).rejects.toThrow(VportUsageError);
    await expect(
      defineVport({ backend: { type: 'none' }, autostart: false, npiv: ['nonsense'] }, ctx()),
    ).rejects.toThrow(VportUsageError);
  });

  it('a hand-edited file with a grant equal to the vport WWPN is refused', () => {
    expect(() =>
      definitionFromJson({
        version: 1,
        uuid: '7d3c5e0a-2f4b-4c61-9a8e-0b1c2d3e4f50',
        wwpn: '50:01:43:80:01:23:45:67',
        wwnn: '50:01:43:80:01:23:45:66',
        backend: { type: 'none' },
        socket: '/run/npiv-hba/x.sock',
        autostart: false,
        npiv: [{ wwpn: '50:01:43:80:01:23:45:67', wwnn: 'c0:50:76:00:00:00:01:00' }],
      }),
    ).toThrow(/NPIV WWPN/);
  });
});
