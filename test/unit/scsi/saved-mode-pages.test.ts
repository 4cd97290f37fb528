/**
 * The write cache setting survives a restart of the array (issue 11 point 7): a file volume's
 * caching page is saveable (PS=1), so sd's cache_type change arrives with SP=1 and is kept in
 * `<file>.settings.json`; after a restart WCE is what the initiator chose and writes are flushed
 * before GOOD. SP=0 stays a current-only change, as SPC-4 requires.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { StorageArray } from '../../../src/san/array.js';
import { Cdb, Host, HOST_1, expectCheck, expectGood, expectInvalidField, pattern, testConfig } from './helpers.js';

let dir: string;
let array: StorageArray | null = null;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'scsi-saved-'));
});
afterEach(async () => {
  await array?.close();
  array = null;
  rmSync(dir, { recursive: true, force: true });
});

/** One file volume (LUN 0) and one RAM volume (LUN 1) for HOST_1; a fresh array over the same files is a SAN restart. */
async function start(): Promise<Host> {
  array = await StorageArray.create(
    testConfig({
      volumes: [
        { name: 'disk', size: '1MiB', file: 'disk.img' },
        { name: 'ram', size: '1MiB' },
      ],
      hostGroups: [{ name: 'h', initiators: ['50:01:43:80:01:23:45:67'], luns: { '0': 'disk', '1': 'ram' } }],
    }),
    { baseDir: dir },
  );
  const h = new Host(HOST_1, array.ports[0]!);
  await h.clearUnitAttentions(0);
  await h.clearUnitAttentions(1);
  return h;
}

async function restart(): Promise<Host> {
  await array!.close();
  array = null;
  return start();
}

/** Exactly what Linux sd_cache_type_store does: MODE SENSE the caching page, SP = its PS bit, clear PS, MODE SELECT. */
async function sdSetCacheType(h: Host, lun: number, wce: boolean): Promise<ReturnType<typeof expectGood>> {
  const d = expectGood(await h.send(Cdb.modeSense6(0x08, 255, { dbd: true }), { lun }));
  const list = new Uint8Array(d.length);
  list.set(d.subarray(4), 4);
  const sp = (list[4]! & 0x80) !== 0;
  list[4] = list[4]! & 0x7f;
  list[6] = wce ? list[6]! | 0x04 : list[6]! & ~0x04;
  return expectGood(await h.send([0x15, 0x10 | (sp ? 1 : 0), 0, 0, list.length, 0], { lun, dataOut: list }));
}

const wceOf = async (h: Host, lun: number, pc = 0): Promise<boolean> =>
  (expectGood(await h.send(Cdb.modeSense6(0x08, 255, { dbd: true, pc }), { lun }))[6]! & 0x04) !== 0;

describe('saved write cache setting', () => {
  it('write-through chosen by the initiator survives a restart, and writes flush before GOOD afterwards', async () => {
    let h = await start();
    const page = expectGood(await h.send(Cdb.modeSense6(0x08, 255, { dbd: true }), { lun: 0 }));
    expect(page[4]! & 0x80).toBe(0x80); // PS: the caching page can be saved
    await sdSetCacheType(h, 0, false);
    expect(JSON.parse(readFileSync(join(dir, 'disk.img.settings.json'), 'utf8'))).toEqual({
      version: 1,
      writeCache: false,
    });

    h = await restart();
    expect(array!.volume('disk')!.writeCache).toBe(false);
    expect(await wceOf(h, 0)).toBe(false);
    expect(await wceOf(h, 0, 3)).toBe(false); // saved values
    const flush = vi.spyOn(array!.volume('disk')!.backing, 'flush');
    expectGood(await h.send(Cdb.write10(0, 1), { lun: 0, dataOut: pattern(512, 1) }));
    expect(flush).toHaveBeenCalledTimes(1);

    // And back to write-back, which also persists.
    await sdSetCacheType(h, 0, true);
    h = await restart();
    expect(array!.volume('disk')!.writeCache).toBe(true);
  });

  it('SP=0 changes only the current value; a later SP=1 with the same value still saves it', async () => {
    let h = await start();
    const d = expectGood(await h.send(Cdb.modeSense6(0x08, 255, { dbd: true }), { lun: 0 }));
    const list = new Uint8Array(d.length);
    list.set(d.subarray(4), 4);
    list[4] = list[4]! & 0x7f;
    list[6] = list[6]! & ~0x04;
    expectGood(await h.send([0x15, 0x10, 0, 0, list.length, 0], { lun: 0, dataOut: list }));
    expect(await wceOf(h, 0)).toBe(false);
    expect(await wceOf(h, 0, 3)).toBe(true); // saved: still on
    expect(await wceOf(h, 0, 2)).toBe(true); // default: on
    h = await restart();
    expect(await wceOf(h, 0)).toBe(true);

    expectGood(await h.send([0x15, 0x10, 0, 0, list.length, 0], { lun: 0, dataOut: list }));
    expectGood(await h.send([0x15, 0x11, 0, 0, list.length, 0], { lun: 0, dataOut: list }));
    h = await restart();
    expect(await wceOf(h, 0)).toBe(false);
  });

  it('a RAM volume keeps nothing: PS=0, SP=1 and saved values are refused', async () => {
    const h = await start();
    const page = expectGood(await h.send(Cdb.modeSense6(0x08, 255, { dbd: true }), { lun: 1 }));
    expect(page[4]! & 0x80).toBe(0);
    expectCheck(await h.send(Cdb.modeSense6(0x08, 255, { pc: 3 }), { lun: 1 }), 5, 0x39, 0);
    const list = new Uint8Array(page.length);
    list.set(page.subarray(4), 4);
    expectInvalidField(await h.send([0x15, 0x11, 0, 0, list.length, 0], { lun: 1, dataOut: list }), 1, 0);
    await sdSetCacheType(h, 1, false); // sd then uses SP=0: a current-only change works
    expect(array!.volume('ram')!.writeCache).toBe(false);
  });

  it('a damaged settings file stops the volume from opening with a message saying what to do', async () => {
    writeFileSync(join(dir, 'disk.img.settings.json'), '{"writeCache": "off"');
    await expect(start()).rejects.toThrow(/disk\.img\.settings\.json are not valid JSON.*fix or remove the file/);
  });
});
