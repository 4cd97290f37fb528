import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { StorageArray } from '../../../src/san/array.js';
import type { MemoryBacking } from '../../../src/san/volume.js';
import { Cdb, Host, HOST_1, expectCheck, expectGood, expectInvalidField, makeArray, pattern } from './helpers.js';

const BLOCKS = 16 * 2048; // vol0: 16 MiB of 512-byte blocks

describe('block I/O', () => {
  let array: StorageArray;
  let h: Host;
  beforeEach(async () => {
    array = await makeArray();
    h = new Host(HOST_1, array.ports[0]!);
    await h.clearUnitAttentions();
  });
  afterEach(async () => {
    await array.close();
  });

  it('WRITE(10) then READ(10) returns the same bytes; unwritten blocks read as zeros', async () => {
    const data = pattern(4 * 512, 1);
    expectGood(await h.send(Cdb.write10(100, 4), { dataOut: data }));
    expect(expectGood(await h.send(Cdb.read10(100, 4)))).toEqual(data);
    expect(expectGood(await h.send(Cdb.read10(200, 2))).every((b) => b === 0)).toBe(true);
  });

  it('all READ/WRITE CDB sizes address the same blocks', async () => {
    const a = pattern(512, 2);
    const b = pattern(1024, 3);
    const c = pattern(512, 4);
    expectGood(await h.send(Cdb.rw6(0x0a, 7, 1), { dataOut: a }));
    expectGood(await h.send(Cdb.rw12(0xaa, 8, 2), { dataOut: b }));
    expectGood(await h.send(Cdb.rw16(0x8a, BigInt(BLOCKS - 1), 1), { dataOut: c }));
    expect(expectGood(await h.send(Cdb.rw16(0x88, 7n, 3)))).toEqual(Uint8Array.from([...a, ...b]));
    expect(expectGood(await h.send(Cdb.rw12(0xa8, BLOCKS - 1, 1)))).toEqual(c);
    expect(expectGood(await h.send(Cdb.rw6(0x08, 8, 2)))).toEqual(b);
  });

  it('READ(6) with a transfer length of 0 reads 256 blocks', async () => {
    expect(expectGood(await h.send(Cdb.rw6(0x08, 0, 0))).length).toBe(256 * 512);
  });

  it('a zero-length READ/WRITE(10) is GOOD and moves no data', async () => {
    expect(expectGood(await h.send(Cdb.read10(5, 0))).length).toBe(0);
    expectGood(await h.send(Cdb.write10(5, 0), { expectedLength: 0, direction: 'none' }));
  });

  it('LBA OUT OF RANGE past the end, for the last block + 1 and for a range that crosses the end', async () => {
    expectCheck(await h.send(Cdb.read10(BLOCKS, 1)), 5, 0x21, 0);
    expectCheck(await h.send(Cdb.read10(BLOCKS - 1, 2)), 5, 0x21, 0);
    expectCheck(await h.send(Cdb.write10(BLOCKS - 1, 2), { dataOut: new Uint8Array(1024) }), 5, 0x21, 0);
    expectCheck(await h.send(Cdb.rw16(0x88, 0xffffffffffffffffn, 1)), 5, 0x21, 0);
    expectGood(await h.send(Cdb.read10(BLOCKS - 1, 1)));
  });

  it('a transfer above the maximum transfer length is INVALID FIELD IN CDB at the length field', async () => {
    expectInvalidField(await h.send(Cdb.rw16(0x88, 0n, 16385)), 10, 7);
    expectInvalidField(await h.send(Cdb.rw12(0xa8, 0, 16385)), 6, 7);
  });

  it('protection information requests are refused at byte 1', async () => {
    expectInvalidField(await h.send(Cdb.read10(0, 1, 0x20)), 1, 7);
  });

  it('a WRITE whose FCP_DL or data-out does not match the CDB is refused and writes nothing', async () => {
    const data = pattern(1024, 5);
    expectInvalidField(await h.send(Cdb.write10(10, 2), { dataOut: data.subarray(0, 512), expectedLength: 512 }), 7, 7);
    expectInvalidField(await h.send(Cdb.write10(10, 2), { dataOut: data, expectedLength: 2048 }), 7, 7);
    expectInvalidField(
      await h.send(Cdb.write10(10, 2), { dataOut: data.subarray(0, 512), expectedLength: 1024 }),
      7,
      7,
    );
    expect(expectGood(await h.send(Cdb.read10(10, 2))).every((b) => b === 0)).toBe(true);
  });

  it('a READ with a short FCP_DL returns the whole transfer for the transport to cut (overrun residual)', async () => {
    expect(expectGood(await h.send(Cdb.read10(0, 4), { expectedLength: 512 })).length).toBe(2048);
  });

  it('FUA writes and SYNCHRONIZE CACHE succeed; SYNCHRONIZE CACHE range-checks', async () => {
    expectGood(await h.send(Cdb.write10(0, 1, 0x08), { dataOut: pattern(512, 6) }));
    expectGood(await h.send(Cdb.syncCache10()));
    expectGood(await h.send(Cdb.syncCache10(BLOCKS - 10, 10)));
    expectCheck(await h.send(Cdb.syncCache10(BLOCKS - 10, 11)), 5, 0x21, 0);
    expectGood(await h.send([0x91, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]));
  });

  describe('VERIFY', () => {
    const verify10 = (lba: number, blocks: number, bytchk = 0) => [
      0x2f,
      bytchk << 1,
      (lba >>> 24) & 0xff,
      (lba >> 16) & 0xff,
      (lba >> 8) & 0xff,
      lba & 0xff,
      0,
      blocks >> 8,
      blocks & 0xff,
      0,
    ];

    it('BYTCHK 0 verifies the medium is readable, with range checks', async () => {
      expectGood(await h.send(verify10(0, 100), { direction: 'none', expectedLength: 0 }));
      expectCheck(await h.send(verify10(BLOCKS - 1, 2), { direction: 'none', expectedLength: 0 }), 5, 0x21, 0);
      const v16 = Cdb.rw16(0x8f, BigInt(BLOCKS - 4), 4);
      expectGood(await h.send(v16, { direction: 'none', expectedLength: 0 }));
    });

    it('BYTCHK 1 compares data-out with the medium; a difference is MISCOMPARE with its offset', async () => {
      const data = pattern(2048, 21);
      expectGood(await h.send(Cdb.write10(40, 4), { dataOut: data }));
      expectGood(await h.send(verify10(40, 4, 1), { dataOut: data }));
      const changed = Uint8Array.from(data);
      changed[1500] = changed[1500]! ^ 0xff;
      const s = expectCheck(await h.send(verify10(40, 4, 1), { dataOut: changed }), 0xe, 0x1d, 0);
      expect(s.information).toBe(1500);
    });

    it('refuses other BYTCHK values and a data-out that does not match the length', async () => {
      expectInvalidField(await h.send(verify10(0, 1, 2), { dataOut: new Uint8Array(512) }), 1, 2);
      expectInvalidField(await h.send(verify10(0, 2, 1), { dataOut: new Uint8Array(512) }), 7, 7);
    });
  });

  describe('WRITE SAME and UNMAP', () => {
    it('WRITE SAME(16) replicates one block', async () => {
      const block = pattern(512, 7);
      expectGood(await h.send(Cdb.writeSame16(50n, 3), { dataOut: block }));
      const d = expectGood(await h.send(Cdb.read10(50, 3)));
      for (let i = 0; i < 3; i++) expect(d.subarray(i * 512, (i + 1) * 512)).toEqual(block);
    });

    it('WRITE SAME(16) with UNMAP and a zero block deallocates; NDOB needs no data', async () => {
      const backing = array.volume('vol0')!.backing as MemoryBacking;
      expectGood(await h.send(Cdb.write10(0, 256), { dataOut: pattern(256 * 512, 8) }));
      expect(backing.allocatedBytes).toBe(256 * 512);
      expectGood(await h.send(Cdb.writeSame16(0n, 128, 0x08), { dataOut: new Uint8Array(512) }));
      expect(backing.allocatedBytes).toBe(128 * 512);
      expectGood(await h.send(Cdb.writeSame16(128n, 128, 0x09), { direction: 'none', expectedLength: 0 }));
      expect(backing.allocatedBytes).toBe(0);
      expect(expectGood(await h.send(Cdb.read10(0, 256))).every((b) => b === 0)).toBe(true);
    });

    it('WRITE SAME(16) with UNMAP but non-zero data writes the data', async () => {
      const block = pattern(512, 9);
      expectGood(await h.send(Cdb.writeSame16(10n, 2, 0x08), { dataOut: block }));
      expect(expectGood(await h.send(Cdb.read10(11, 1)))).toEqual(block);
    });

    it('WRITE SAME(10) works too', async () => {
      const block = pattern(512, 10);
      expectGood(await h.send([0x41, 0, 0, 0, 0, 20, 0, 0, 2, 0], { dataOut: block }));
      expect(expectGood(await h.send(Cdb.read10(21, 1)))).toEqual(block);
    });

    it('WRITE SAME field errors: zero blocks (WSNZ), ANCHOR, too long, wrong data length, out of range', async () => {
      const block = new Uint8Array(512);
      expectInvalidField(await h.send(Cdb.writeSame16(0n, 0), { dataOut: block }), 10, 7);
      expectInvalidField(await h.send(Cdb.writeSame16(0n, 1, 0x10), { dataOut: block }), 1, 4);
      expectInvalidField(await h.send(Cdb.writeSame16(0n, 131073), { dataOut: block }), 10, 7);
      expectInvalidField(await h.send(Cdb.writeSame16(0n, 1), { dataOut: new Uint8Array(1024) }), 10, 7);
      expectCheck(await h.send(Cdb.writeSame16(BigInt(BLOCKS - 1), 2), { dataOut: block }), 5, 0x21, 0);
    });

    function unmapList(ranges: [bigint, number][]): Uint8Array {
      const p = new Uint8Array(8 + 16 * ranges.length);
      const dv = new DataView(p.buffer);
      dv.setUint16(0, p.length - 2);
      dv.setUint16(2, 16 * ranges.length);
      ranges.forEach(([lba, n], i) => {
        dv.setBigUint64(8 + 16 * i, lba);
        dv.setUint32(16 + 16 * i, n);
      });
      return p;
    }

    it('UNMAP zeroes the listed ranges only', async () => {
      expectGood(await h.send(Cdb.write10(0, 16), { dataOut: pattern(16 * 512, 11) }));
      const list = unmapList([
        [2n, 2],
        [10n, 1],
      ]);
      expectGood(await h.send(Cdb.unmap(list.length), { dataOut: list }));
      const d = expectGood(await h.send(Cdb.read10(0, 16)));
      const zeroBlock = (i: number): boolean => d.subarray(i * 512, (i + 1) * 512).every((b) => b === 0);
      expect([...Array(16).keys()].filter(zeroBlock)).toEqual([2, 3, 10]);
    });

    it('UNMAP parameter errors', async () => {
      expectGood(await h.send(Cdb.unmap(0), { direction: 'none', expectedLength: 0 }));
      expectCheck(await h.send(Cdb.unmap(4), { dataOut: new Uint8Array(4) }), 5, 0x1a, 0);
      const list = unmapList([[0n, 1]]);
      expectCheck(await h.send(Cdb.unmap(list.length + 8), { dataOut: list }), 5, 0x1a, 0);
      const out = unmapList([[BigInt(BLOCKS), 1]]);
      expectCheck(await h.send(Cdb.unmap(out.length), { dataOut: out }), 5, 0x21, 0);
      const tooMany = unmapList(Array.from({ length: 65 }, (_, i): [bigint, number] => [BigInt(i), 1]));
      const r = await h.send(Cdb.unmap(tooMany.length), { dataOut: tooMany });
      const s = expectCheck(r, 5, 0x26, 0);
      expect(s.field).toEqual({ inCdb: false, byte: 2, bit: 7 });
      const bad = unmapList([[0n, 1]]);
      new DataView(bad.buffer).setUint16(2, 15);
      expectCheck(await h.send(Cdb.unmap(bad.length), { dataOut: bad }), 5, 0x26, 0);
      expectInvalidField(await h.send([0x42, 1, 0, 0, 0, 0, 0, 0, 24, 0], { dataOut: list }), 1, 0);
    });
  });

  it('overlapping concurrent writes land in arrival order; reads see whole writes', async () => {
    const a = pattern(64 * 512, 12);
    const b = pattern(64 * 512, 13);
    const first = h.send(Cdb.write10(0, 64), { dataOut: a, taskTag: 1 });
    const second = h.send(Cdb.write10(32, 64), { dataOut: b, taskTag: 2 });
    const read = h.send(Cdb.read10(0, 96), { taskTag: 3 });
    expectGood(await first);
    expectGood(await second);
    const d = expectGood(await read);
    expect(Buffer.from(d.subarray(0, 32 * 512)).equals(Buffer.from(a.subarray(0, 32 * 512)))).toBe(true);
    expect(Buffer.from(d.subarray(32 * 512)).equals(Buffer.from(b))).toBe(true);
  });

  it('a 4096-byte-block volume reports and enforces its block size', async () => {
    await array.addVolume({ name: 'v4k', size: '4MiB', blockSize: 4096 });
    array.mapLun('host1', 4, 'v4k');
    await h.clearUnitAttentions(4);
    const cap = expectGood(await h.send(Cdb.readCapacity16(), { lun: 4 }));
    expect(new DataView(cap.buffer).getUint32(8)).toBe(4096);
    expect(cap[13]! & 0xf).toBe(0);
    const data = pattern(4096, 14);
    expectGood(await h.send(Cdb.write10(1023, 1), { lun: 4, dataOut: data }));
    expect(expectGood(await h.send(Cdb.read10(1023, 1), { lun: 4 }))).toEqual(data);
    expectCheck(await h.send(Cdb.read10(1024, 1), { lun: 4 }), 5, 0x21, 0);
  });
});
