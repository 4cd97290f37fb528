import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { VportError } from '../../../src/vport/errors.js';
import { defineVport } from '../../../src/vport/manager.js';
import { withLockFile } from '../../../src/vport/lock.js';
import { VportStore } from '../../../src/vport/store.js';
import { tempDirs, type TempDirs } from './helpers.js';

let dirs: TempDirs;
let store: VportStore;
beforeEach(() => {
  dirs = tempDirs();
  store = new VportStore(dirs.configDir);
});
afterEach(() => dirs.cleanup());

const ctx = () => ({ store, runDir: dirs.runDir, env: {} });

describe('VportStore and defineVport', () => {
  it('concurrent defines of the same WWPN: exactly one wins', async () => {
    const results = await Promise.allSettled(
      Array.from({ length: 8 }, () =>
        defineVport({ wwpn: '50:01:43:80:01:23:45:67', backend: { type: 'none' }, autostart: false }, ctx()),
      ),
    );
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    for (const r of results.filter((r) => r.status === 'rejected')) {
      expect((r as PromiseRejectedResult).reason).toBeInstanceOf(VportError);
      expect(String((r as PromiseRejectedResult).reason.message)).toContain('duplicate WWPN');
    }
    expect(store.list().definitions).toHaveLength(1);
    // The lock file stays (flock), free: the next define takes it at once.
    expect(existsSync(join(dirs.configDir, '.lock'))).toBe(true);
    expect(await withLockFile(join(dirs.configDir, '.lock'), 'store', () => 'free', 0)).toBe('free');
  });

  it('concurrent generated defines get pairwise distinct names', async () => {
    const defs = await Promise.all(
      Array.from({ length: 12 }, () =>
        defineVport({ naaPrefix: '500143800000', backend: { type: 'none' }, autostart: false }, ctx()),
      ),
    );
    const names = new Set(defs.flatMap((d) => [d.wwpn, d.wwnn]));
    expect(names.size).toBe(24);
    expect(store.list().definitions).toHaveLength(12);
  });

  it('a lock file left by a dead process (or a reused pid) does not block', async () => {
    await defineVport({ backend: { type: 'none' }, autostart: false }, ctx());
    writeFileSync(join(dirs.configDir, '.lock'), String(process.pid)); // a live pid: flock, not the pid, decides
    const def = await defineVport({ backend: { type: 'none' }, autostart: false }, ctx());
    expect(store.get(def.uuid).wwpn).toBe(def.wwpn);
  });

  it('create is exclusive and leaves no temporary files', async () => {
    const def = await defineVport({ backend: { type: 'none' }, autostart: false }, ctx());
    expect(() => store.create(def)).toThrow(/already defined/);
    expect(readdirSync(dirs.configDir).sort()).toEqual(['.lock', `${def.uuid}.json`]);
  });

  it('remove of an unknown UUID and get of an unknown UUID are errors', () => {
    expect(() => store.remove('11111111-2222-4333-8444-555555555555')).toThrow(VportError);
    expect(() => store.get('11111111-2222-4333-8444-555555555555')).toThrow(/no vport .* is defined/);
    expect(store.find('11111111-2222-4333-8444-555555555555')).toBeNull();
  });
});
