import { mkdtemp, rm, stat, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { StorageArray, type ArrayConfig } from '../../../src/san/array.js';
import {
  FileBacking,
  MemoryBacking,
  RangeLock,
  Volume,
  deriveNaa6,
  ouiFromWwn,
  parseSize,
} from '../../../src/san/volume.js';
import { Cdb, Host, HOST_1, HOST_2, expectGood, pattern, prParams, testConfig, be32, be64 } from '../scsi/helpers.js';

const ID = { arrayName: 'a', oui: 0x001438 };

describe('sizes and identifiers', () => {
  it('parses binary size strings and byte counts, refusing anything else', () => {
    expect(parseSize('1GiB')).toBe(2 ** 30);
    expect(parseSize('512MiB')).toBe(512 * 2 ** 20);
    expect(parseSize('4096')).toBe(4096);
    expect(parseSize(' 2 tib ')).toBe(2 * 2 ** 40);
    expect(parseSize(8192)).toBe(8192);
    for (const bad of ['', '1.5GiB', '-1', '10 parsecs', 'GiB']) expect(() => parseSize(bad)).toThrow(/invalid size/);
    expect(() => parseSize(-5)).toThrow(/invalid size/);
  });

  it('takes the OUI from NAA 5 and NAA 2 world wide names', () => {
    expect(ouiFromWwn(0x5001438001234567n)).toBe(0x001438);
    expect(ouiFromWwn(0x2000001b32123456n)).toBe(0x001b32);
    expect(ouiFromWwn(0x3000000000000001n)).toBeNull();
  });

  it('NAA-6 identifiers are deterministic and differ by array and by volume', () => {
    const a = deriveNaa6(0x001438, 'arr', 'v');
    expect(a[0]! >> 4).toBe(6);
    expect([...deriveNaa6(0x001438, 'arr', 'v')]).toEqual([...a]);
    expect([...deriveNaa6(0x001438, 'arr', 'w')]).not.toEqual([...a]);
    expect([...deriveNaa6(0x001438, 'arr2', 'v')]).not.toEqual([...a]);
  });
});

describe('RangeLock', () => {
  it('orders overlapping exclusive holders by arrival and lets disjoint or shared ones run together', async () => {
    const lock = new RangeLock();
    const order: string[] = [];
    const r1 = await lock.acquire(0, 100, true);
    const p2 = lock.acquire(50, 150, true).then((rel) => {
      order.push('w2');
      return rel;
    });
    const p3 = lock.acquire(200, 300, true).then((rel) => {
      order.push('disjoint');
      return rel;
    });
    const p4 = lock.acquire(120, 130, false).then((rel) => {
      order.push('r4');
      return rel;
    });
    (await p3)();
    expect(order).toEqual(['disjoint']);
    r1();
    (await p2)();
    (await p4)();
    expect(order).toEqual(['disjoint', 'w2', 'r4']);
    const s1 = await lock.acquire(0, 10, false);
    const s2 = await lock.acquire(0, 10, false); // readers share
    s1();
    s2();
  });
});

describe('memory backing', () => {
  it('is sparse: pages appear on write and go on zeroing, resize drops the tail', async () => {
    const m = new MemoryBacking(1 << 20);
    const page = 4096;
    expect(m.allocatedBytes).toBe(0);
    await m.write(MemoryBacking.CHUNK - 2, Uint8Array.of(1, 2, 3, 4));
    expect(m.allocatedBytes).toBe(2 * page);
    expect([...(await m.read(MemoryBacking.CHUNK - 3, 6))]).toEqual([0, 1, 2, 3, 4, 0]);
    await m.zero(0, MemoryBacking.CHUNK);
    expect(m.allocatedBytes).toBe(page);
    expect([...(await m.read(MemoryBacking.CHUNK - 3, 6))]).toEqual([0, 0, 0, 3, 4, 0]);
    await m.resize(MemoryBacking.CHUNK + 1);
    await m.resize(1 << 20);
    expect([...(await m.read(MemoryBacking.CHUNK - 3, 6))]).toEqual([0, 0, 0, 3, 0, 0]);
    await m.close();
  });
});

describe('file-backed volumes', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'npiv-vol-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('creates a sparse file of the configured size', async () => {
    const file = path.join(dir, 'v.img');
    const v = await Volume.open({ name: 'v', size: '1GiB', file }, ID);
    const st = await stat(file);
    expect(st.size).toBe(2 ** 30);
    expect(st.blocks * 512).toBeLessThan(1 << 20);
    expect(v.blockCount).toBe(2 ** 21);
    await v.close();
  });

  it('data written is durable: close, reopen, read back byte-identical', async () => {
    const file = path.join(dir, 'v.img');
    const data = pattern(64 * 512, 42);
    let v = await Volume.open({ name: 'v', size: '8MiB', file }, ID);
    await v.writeBlocks(1000, data, { fua: true });
    await v.writeBlocks(16383, pattern(512, 43));
    await v.flush();
    await v.close();
    v = await Volume.open({ name: 'v', size: '8MiB', file }, ID);
    expect(Buffer.from(await v.readBlocks(1000, 64)).equals(Buffer.from(data))).toBe(true);
    expect(Buffer.from(await v.readBlocks(16383, 1)).equals(Buffer.from(pattern(512, 43)))).toBe(true);
    await v.close();
    // and the bytes are at the right offsets of the plain file
    const raw = await readFile(file);
    expect(raw.subarray(1000 * 512, 1064 * 512).equals(Buffer.from(data))).toBe(true);
  });

  it('refuses to shrink an existing larger file, and extends a smaller one without touching its data', async () => {
    const file = path.join(dir, 'v.img');
    await writeFile(file, Buffer.alloc(4 << 20, 7));
    await expect(Volume.open({ name: 'v', size: '1MiB', file }, ID)).rejects.toThrow(/refusing to shrink/);
    const v = await Volume.open({ name: 'v', size: '8MiB', file }, ID);
    expect((await stat(file)).size).toBe(8 << 20);
    expect((await v.readBlocks(0, 1))[0]).toBe(7);
    expect((await v.readBlocks(8192, 1))[0]).toBe(0);
    await v.close();
  });

  it('unmap zeroes data (Node cannot punch holes) but leaves never-written regions unallocated', async () => {
    const file = path.join(dir, 'v.img');
    const v = await Volume.open({ name: 'v', size: '64MiB', file }, ID);
    await v.writeBlocks(0, pattern(4096, 1));
    await v.unmapBlocks(0, 131072);
    await v.flush();
    expect((await v.readBlocks(0, 8)).every((b) => b === 0)).toBe(true);
    expect((await stat(file)).blocks * 512).toBeLessThan(2 << 20);
    await v.close();
  });

  it('resize grows the file; shrinking needs allowShrink; block size and size are validated', async () => {
    const file = path.join(dir, 'v.img');
    const v = await Volume.open({ name: 'v', size: '1MiB', file, blockSize: 4096 }, ID);
    await v.resize('2MiB');
    expect((await stat(file)).size).toBe(2 << 20);
    expect(v.blockCount).toBe(512);
    await expect(v.resize('1MiB')).rejects.toThrow(/allowShrink/);
    await v.resize('1MiB', { allowShrink: true });
    expect(v.blockCount).toBe(256);
    await expect(v.resize(1000)).rejects.toThrow(/multiple/);
    await v.close();
    await expect(Volume.open({ name: 'x', size: '1MiB', blockSize: 1024 as 512 }, ID)).rejects.toThrow(/block size/);
    await expect(Volume.open({ name: 'bad\nname', size: '1MiB' }, ID)).rejects.toThrow(/invalid volume name/);
    await expect(Volume.open({ name: '', size: '1MiB' }, ID)).rejects.toThrow(/invalid volume name/);
    await expect(v.readBlocks(0, 1)).rejects.toThrow(/closed/);
  });

  it('concurrent overlapping writes to a file never interleave within a command', async () => {
    const file = path.join(dir, 'v.img');
    const v = await Volume.open({ name: 'v', size: '16MiB', file }, ID);
    const a = pattern(4096 * 512, 1);
    const b = pattern(4096 * 512, 2);
    await Promise.all([v.writeBlocks(0, a), v.writeBlocks(0, b), v.writeBlocks(2048, a)]);
    const d = Buffer.from(await v.readBlocks(0, 6144));
    expect(d.subarray(0, 2048 * 512).equals(Buffer.from(b.subarray(0, 2048 * 512)))).toBe(true);
    expect(d.subarray(2048 * 512).equals(Buffer.from(a))).toBe(true);
    await v.close();
  });

  it('FileBacking reads past the end of a truncated file as zeros', async () => {
    const file = path.join(dir, 'f.img');
    const f = await FileBacking.open(file, 4096);
    await f.write(0, Uint8Array.of(9));
    expect([...(await f.read(4094, 2))]).toEqual([0, 0]);
    await f.close();
    await expect(f.read(0, 1)).rejects.toThrow(/closed/);
  });
});

describe('StorageArray', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'npiv-array-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const fileConfig = (): ArrayConfig =>
    testConfig({
      volumes: [
        { name: 'vol0', size: '16MiB', file: 'vol0.img' },
        { name: 'shared', size: '8MiB', file: 'shared.img' },
        { name: 'vol2', size: '4MiB' },
      ],
    });

  it('writes through SCSI survive closing and reopening the array', async () => {
    let array = await StorageArray.create(fileConfig(), { baseDir: dir });
    let h = new Host(HOST_1, array.ports[0]!);
    await h.clearUnitAttentions(0);
    const data = pattern(32 * 512, 5);
    expectGood(await h.send(Cdb.write10(77, 32), { dataOut: data }));
    await array.close();
    array = await StorageArray.create(fileConfig(), { baseDir: dir });
    h = new Host(HOST_1, array.ports[0]!);
    await h.clearUnitAttentions(0);
    expect(Buffer.from(expectGood(await h.send(Cdb.read10(77, 32)))).equals(Buffer.from(data))).toBe(true);
    await array.close();
  });

  it('SYNCHRONIZE CACHE and FUA writes reach the disk (fdatasync); plain writes do not wait for it', async () => {
    const array = await StorageArray.create(fileConfig(), { baseDir: dir });
    try {
      const h = new Host(HOST_1, array.ports[0]!);
      await h.clearUnitAttentions(0);
      const backing = array.volume('vol0')!.backing;
      const flush = vi.spyOn(backing, 'flush');
      expectGood(await h.send(Cdb.write10(0, 1), { dataOut: pattern(512, 1) }));
      expect(flush).toHaveBeenCalledTimes(0);
      expectGood(await h.send(Cdb.write10(1, 1, 0x08), { dataOut: pattern(512, 2) }));
      expect(flush).toHaveBeenCalledTimes(1);
      expectGood(await h.send(Cdb.syncCache10()));
      expect(flush).toHaveBeenCalledTimes(2);
      expectGood(await h.send(Cdb.rw16(0x8a, 2n, 1, 0x08), { dataOut: pattern(512, 3) }));
      expect(flush).toHaveBeenCalledTimes(3);
    } finally {
      await array.close();
    }
  });

  it('a volume without write cache flushes every write and reports WCE=0', async () => {
    const array = await StorageArray.create(testConfig({ volumes: [], hostGroups: [] }), { baseDir: dir });
    try {
      await array.addVolume({ name: 'wt', size: '1MiB', file: 'wt.img', writeCache: false });
      array.addHostGroup('h', [HOST_1]);
      array.mapLun('h', 0, 'wt');
      const h = new Host(HOST_1, array.ports[0]!);
      await h.clearUnitAttentions(0);
      const flush = vi.spyOn(array.volume('wt')!.backing, 'flush');
      expectGood(await h.send(Cdb.write10(0, 1), { dataOut: pattern(512, 1) }));
      expect(flush).toHaveBeenCalledTimes(1);
      const ms = expectGood(await h.send(Cdb.modeSense6(0x08, 255, { dbd: true })));
      expect(ms[6]! & 0x04).toBe(0);
    } finally {
      await array.close();
    }
  });

  it('a backing store failure ends the command with MEDIUM ERROR, and the array keeps serving', async () => {
    const array = await StorageArray.create(fileConfig(), { baseDir: dir });
    try {
      const h = new Host(HOST_1, array.ports[0]!);
      await h.clearUnitAttentions(0);
      const backing = array.volume('vol0')!.backing;
      vi.spyOn(backing, 'write').mockRejectedValueOnce(
        Object.assign(new Error('EIO: i/o error, write'), { code: 'EIO' }),
      );
      vi.spyOn(backing, 'read').mockRejectedValueOnce(
        Object.assign(new Error('EIO: i/o error, read'), { code: 'EIO' }),
      );
      const w = await h.send(Cdb.write10(0, 1), { dataOut: pattern(512, 1) });
      expect(w.status).toBe(2);
      expect([w.sense![2]! & 0xf, w.sense![12], w.sense![13]]).toEqual([3, 0x0c, 0x00]);
      const r = await h.send(Cdb.read10(0, 1));
      expect([r.sense![2]! & 0xf, r.sense![12], r.sense![13]]).toEqual([3, 0x11, 0x00]);
      expectGood(await h.send(Cdb.write10(0, 1), { dataOut: pattern(512, 2) }));
      expect(Buffer.from(expectGood(await h.send(Cdb.read10(0, 1)))).equals(Buffer.from(pattern(512, 2)))).toBe(true);
    } finally {
      await array.close();
    }
  });

  it('persistent reservations with APTPL survive a restart; without APTPL they do not', async () => {
    let array = await StorageArray.create(fileConfig(), { baseDir: dir });
    let h1 = new Host(HOST_1, array.ports[0]!);
    let h2 = new Host(HOST_2, array.ports[1]!);
    await h1.clearUnitAttentions(1);
    await h2.clearUnitAttentions(1);
    expectGood(await h1.send(Cdb.prOut(0), { lun: 1, dataOut: prParams(0n, 0xabcn, { aptpl: true }) }));
    expectGood(await h2.send(Cdb.prOut(0), { lun: 1, dataOut: prParams(0n, 0xdefn, { aptpl: true }) }));
    expectGood(await h1.send(Cdb.prOut(1, 3), { lun: 1, dataOut: prParams(0xabcn, 0n) }));
    const caps = expectGood(await h1.send(Cdb.prIn(2), { lun: 1 }));
    expect([caps[2]! & 1, caps[3]! & 1]).toEqual([1, 1]); // PTPL_C, PTPL_A
    await array.close();
    array = await StorageArray.create(fileConfig(), { baseDir: dir });
    h1 = new Host(HOST_1, array.ports[0]!);
    h2 = new Host(HOST_2, array.ports[1]!);
    await h2.clearUnitAttentions(1);
    expect((await h2.send(Cdb.read10(0, 1), { lun: 1 })).status).toBe(0x18);
    const full = expectGood(await h2.send(Cdb.prIn(3), { lun: 1 }));
    expect(be32(full, 4)).toBe(96);
    expect(be64(full, 8)).toBe(0xabcn);
    expect(full[8 + 12]! & 1).toBe(1);
    expect(be64(full, 8 + 48 + 24 + 8)).toBe(HOST_2);
    expect(full[8 + 48 + 19]).toBe(2);
    // Registering again without APTPL turns persistence off: the state file goes.
    expectGood(await h2.send(Cdb.prOut(0), { lun: 1, dataOut: prParams(0xdefn, 0xdefn) }));
    await expect(stat(path.join(dir, 'shared.img.pr.json'))).rejects.toThrow();
    await array.close();
    array = await StorageArray.create(fileConfig(), { baseDir: dir });
    h2 = new Host(HOST_2, array.ports[1]!);
    await h2.clearUnitAttentions(1);
    expect(be32(expectGood(await h2.send(Cdb.prIn(0), { lun: 1 })), 4)).toBe(0);
    await array.close();
  });

  it('a corrupt reservation state file stops the array from starting, with the volume named', async () => {
    await writeFile(path.join(dir, 'shared.img.pr.json'), '{"version":1,"generation":-1,"registrations":[]}');
    await expect(StorageArray.create(fileConfig(), { baseDir: dir })).rejects.toThrow(/shared.*generation/);
  });

  it('rejects configuration errors with clear messages', async () => {
    await expect(StorageArray.create(testConfig({ ports: [] }))).rejects.toThrow(/no target ports/);
    await expect(
      StorageArray.create(
        testConfig({
          hostGroups: [
            { name: 'a', initiators: ['50:01:43:80:01:23:45:67'], luns: {} },
            { name: 'b', initiators: ['50:01:43:80:01:23:45:67'], luns: {} },
          ],
        }),
      ),
    ).rejects.toThrow(/host groups 'a' and 'b'/);
    await expect(
      StorageArray.create(
        testConfig({
          hostGroups: [{ name: 'a', initiators: [], luns: { '0': 'nope' } }],
        }),
      ),
    ).rejects.toThrow(/no volume 'nope'/);
    await expect(
      StorageArray.create(
        testConfig({
          hostGroups: [{ name: 'a', initiators: [], luns: { x: 'vol0' } }],
        }),
      ),
    ).rejects.toThrow(/LUN 'x'/);
    await expect(
      StorageArray.create(
        testConfig({
          hostGroups: [{ name: 'a', initiators: [], luns: { '0': 'vol0', '1': 'vol0' } }],
        }),
      ),
    ).rejects.toThrow(/already LUN 0/);
    await expect(
      StorageArray.create(
        testConfig({
          ports: [{ wwpn: 'zz', wwnn: '50:06:0e:80:00:00:00:00' }],
        }),
      ),
    ).rejects.toThrow(/invalid .*WWPN/);
    await expect(
      StorageArray.create(
        testConfig({
          volumes: [
            { name: 'v', size: '1MiB' },
            { name: 'v', size: '1MiB' },
          ],
          hostGroups: [],
        }),
      ),
    ).rejects.toThrow(/already exists/);
  });

  it('run-time changes: add, map, resize, unmap, remove; masking follows', async () => {
    const array = await StorageArray.create(testConfig());
    try {
      await array.addVolume({ name: 'new', size: '2MiB' });
      array.mapLun('host2', 0, 'new');
      expect([...array.lunMapFor(HOST_2)]).toEqual([
        [1, 'shared'],
        [5, 'vol2'],
        [0, 'new'],
      ]);
      expect(() => array.mapLun('host2', 0, 'vol0')).toThrow(/already mapped/);
      expect(() => array.mapLun('nogroup', 3, 'vol0')).toThrow(/no host group/);
      expect(() => array.unmapLun('host2', 9)).toThrow(/not mapped/);
      await array.resizeVolume('new', '3MiB');
      expect(array.volume('new')!.sizeBytes).toBe(3 << 20);
      await array.removeVolume('new');
      expect([...array.lunMapFor(HOST_2).keys()]).toEqual([1, 5]);
      expect(array.volumeNames()).toEqual(['vol0', 'shared', 'vol2']);
      await expect(array.removeVolume('new')).rejects.toThrow(/no volume/);
    } finally {
      await array.close();
    }
    await expect(array.addVolume({ name: 'late', size: '1MiB' })).rejects.toThrow(/closed/);
  });

  it('two volumes may not share one backing file', async () => {
    await expect(
      StorageArray.create(
        testConfig({
          volumes: [
            { name: 'a', size: '1MiB', file: 'x.img' },
            { name: 'b', size: '1MiB', file: 'x.img' },
          ],
          hostGroups: [],
        }),
        { baseDir: dir },
      ),
    ).rejects.toThrow(/share backing file/);
  });
});

describe('volume resize races', () => {
  it('a write queued behind a shrink that removes its blocks fails instead of re-growing the volume', async () => {
    const v = await Volume.open({ name: 'v', size: '1MiB' }, ID);
    const hold = v.writeBlocks(0, new Uint8Array(512)); // runs first
    const shrink = v.resize('512KiB', { allowShrink: true });
    const late = v.writeBlocks(2000, new Uint8Array(512));
    await hold;
    await shrink;
    await expect(late).rejects.toThrow(/past the end/);
    expect(v.sizeBytes).toBe(512 * 1024);
    await v.close();
  });
});
