/** The storage array consumes the parsed configuration of src/san/config.ts unchanged. */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, expectTypeOf, it } from 'vitest';
import { exampleSanConfig, parseSanConfig, type ArrayConfig as ParsedArrayConfig } from '../../../src/san/config.js';
import { StorageArray, type ArrayConfig } from '../../../src/san/array.js';
import { Cdb, Host, be32, expectGood } from '../scsi/helpers.js';

describe('StorageArray from the SAN configuration', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'npiv-arraycfg-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('the parsed array config type is what StorageArray.create accepts', () => {
    expectTypeOf<ParsedArrayConfig>().toExtend<ArrayConfig>();
  });

  it('builds the example configuration and serves its host group', async () => {
    const cfg = parseSanConfig(JSON.parse(exampleSanConfig()));
    const array = await StorageArray.create(cfg.arrays[0]!, { baseDir: dir });
    try {
      expect(array.ports.map((p) => p.relativePortId)).toEqual([1, 2]);
      expect(array.volume('boot')!.file).toBe(path.join(dir, 'array1-boot.img'));
      const h = new Host(0xc05076ffe5000001n, array.ports[1]!);
      const luns = expectGood(await h.send(Cdb.reportLuns()));
      expect(be32(luns, 0)).toBe(16);
      await h.clearUnitAttentions(1);
      const cap = expectGood(await h.send(Cdb.readCapacity16(), { lun: 1 }));
      expect(new DataView(cap.buffer).getBigUint64(0)).toBe(256n * 2048n - 1n);
    } finally {
      await array.close();
    }
  });
});
