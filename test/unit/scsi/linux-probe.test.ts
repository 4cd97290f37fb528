/**
 * The command sequence Linux sends when it finds a target (scsi_scan.c) and attaches sd (sd.c),
 * replayed against the array: every step must succeed the way the midlayer expects.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Status } from '../../../src/scsi/sam.js';
import { decodeLun } from '../../../src/scsi/cdb.js';
import { parseFixedSense } from '../../../src/scsi/sense.js';
import type { StorageArray } from '../../../src/san/array.js';
import { Cdb, Host, HOST_1, HOST_2, be16, be32, be64, expectGood, makeArray } from './helpers.js';

/** scsi_probe_lun: INQUIRY 36, then again with the full length if the device has more. */
async function probeLun(h: Host, lun: number): Promise<Uint8Array> {
  const first = expectGood(await h.send(Cdb.inquiry(36), { lun }));
  expect(first.length).toBe(36);
  const full = first[4]! + 5;
  if (full <= 36) return first;
  const again = expectGood(await h.send(Cdb.inquiry(full), { lun }));
  expect(again.length).toBe(full);
  expect([...again.subarray(0, 36)]).toEqual([...first]);
  return again;
}

/** scsi_report_lun_scan (SELECT REPORT 0); with 2, a well-known LUN shows as 'wlun'. */
async function reportLuns(h: Host, select: number): Promise<(number | 'wlun')[]> {
  const d = expectGood(await h.send(Cdb.reportLuns(512 * 8 + 8, select), { lun: 0 }));
  const n = be32(d, 0) / 8;
  return Array.from({ length: n }, (_, i) => decodeLun(d.subarray(8 + 8 * i, 16 + 8 * i)) ?? 'wlun');
}

/** sd_spinup_disk: TEST UNIT READY, retrying through unit attentions, START UNIT if NOT READY. */
async function spinup(h: Host, lun: number): Promise<void> {
  for (let tries = 0; tries < 5; tries++) {
    const r = await h.send(Cdb.tur(), { lun });
    if (r.status === Status.GOOD) return;
    const s = parseFixedSense(r.sense!);
    if (s.key === 6) continue;
    if (s.key === 2 && s.sense.asc === 4 && s.sense.ascq === 2) {
      expectGood(await h.send(Cdb.startStop(true), { lun }));
      continue;
    }
    throw new Error(`TEST UNIT READY failed: ${JSON.stringify(s)}`);
  }
  throw new Error('disk did not become ready');
}

async function attachSd(
  h: Host,
  lun: number,
): Promise<{ blocks: bigint; blockSize: number; wce: boolean; wwid: string }> {
  // scsi_attach_vpd
  const pages = expectGood(await h.send(Cdb.inquiry(255, true, 0x00), { lun }));
  const supported = [...pages.subarray(4, 4 + be16(pages, 2))];
  for (const p of [0x80, 0x83, 0xb0, 0xb1, 0xb2]) expect(supported).toContain(p);
  const serial = expectGood(await h.send(Cdb.inquiry(255, true, 0x80), { lun }));
  expect(be16(serial, 2)).toBeGreaterThan(0);
  const id = expectGood(await h.send(Cdb.inquiry(255, true, 0x83), { lun }));
  // scsi_vpd_lun_id prefers an NAA designator of LU association: the first descriptor here.
  expect(id[5]! & 0x3f).toBe(0x03);
  const wwid = 'naa.' + Buffer.from(id.subarray(8, 8 + id[7]!)).toString('hex');
  await spinup(h, lun);
  // sd_read_capacity → READ CAPACITY(16) first for SPC-3+ devices
  const cap = expectGood(await h.send(Cdb.readCapacity16(32), { lun }));
  for (const p of [0xb0, 0xb1, 0xb2]) expectGood(await h.send(Cdb.inquiry(64, true, p), { lun }));
  // sd_read_write_protect_flag: 4-byte header of all pages
  const hdr = expectGood(await h.send(Cdb.modeSense6(0x3f, 4), { lun }));
  expect(hdr.length).toBe(4);
  expect(hdr[2]! & 0x80).toBe(0); // not write protected
  // sd_read_cache_type: header first, then the caching page with DBD
  const cacheHdr = expectGood(await h.send(Cdb.modeSense6(0x08, 4, { dbd: true }), { lun }));
  const cache = expectGood(await h.send(Cdb.modeSense6(0x08, cacheHdr[0]! + 1, { dbd: true }), { lun }));
  const off = 4 + cache[3]!;
  expect(cache[off]! & 0x3f).toBe(0x08);
  expect(cache[off + 1]).toBeGreaterThanOrEqual(18);
  // the partition scan reads the first blocks
  expectGood(await h.send(Cdb.read10(0, 8), { lun }));
  return { blocks: be64(cap, 0) + 1n, blockSize: be32(cap, 8), wce: (cache[off + 2]! & 0x04) !== 0, wwid };
}

describe('Linux scan and sd attach sequence', () => {
  let array: StorageArray;
  beforeEach(async () => {
    array = await makeArray();
  });
  afterEach(async () => {
    await array.close();
  });

  it('host 1 (LUN 0 mapped): finds LUNs 0 and 1 and attaches both', async () => {
    const h = new Host(HOST_1, array.ports[0]!);
    const lun0 = await probeLun(h, 0);
    expect(lun0[0]).toBe(0x00);
    expect(await reportLuns(h, 0)).toEqual([0, 1]);
    expect(await reportLuns(h, 2)).toEqual([0, 1, 'wlun']);
    const d0 = await attachSd(h, 0);
    expect(d0).toMatchObject({ blocks: 32768n, blockSize: 512, wce: true });
    expect(d0.wwid).toMatch(/^naa\.6[0-9a-f]{31}$/);
    await probeLun(h, 1);
    const d1 = await attachSd(h, 1);
    expect(d1.blocks).toBe(16384n);
    expect(d1.wwid).not.toBe(d0.wwid);
  });

  it('host 2 (LUN 0 not mapped): LUN 0 answers qualifier 3, REPORT LUNS via LUN 0 finds 1 and 5', async () => {
    const h = new Host(HOST_2, array.ports[1]!);
    const lun0 = await probeLun(h, 0);
    expect(lun0[0]! >> 5).toBe(3);
    expect(lun0[0]! & 0x1f).toBe(0x1f);
    expect(await reportLuns(h, 0)).toEqual([1, 5]);
    for (const lun of [1, 5]) {
      expect((await probeLun(h, lun))[0]).toBe(0);
      await attachSd(h, lun);
    }
  });

  it('the same volume seen by both hosts has the same WWID through both ports', async () => {
    const a = await attachSd(new Host(HOST_1, array.ports[0]!), 1);
    const b = await attachSd(new Host(HOST_2, array.ports[1]!), 1);
    expect(a.wwid).toBe(b.wwid);
  });

  it('a stopped unit is started by the spin-up logic', async () => {
    const h = new Host(HOST_1, array.ports[0]!);
    await h.clearUnitAttentions(0);
    expectGood(await h.send(Cdb.startStop(false)));
    await spinup(h, 0);
    expectGood(await h.send(Cdb.read10(0, 1)));
  });
});
