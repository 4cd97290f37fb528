import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { cdbLengthForOpcode } from '../../../src/scsi/constants.js';
import { Status } from '../../../src/scsi/sam.js';
import { encodeLun } from '../../../src/scsi/cdb.js';
import { parseFixedSense } from '../../../src/scsi/sense.js';
import type { StorageArray } from '../../../src/san/array.js';
import {
  Cdb,
  Host,
  HOST_1,
  HOST_2,
  PORT_A,
  PORT_B,
  STRANGER,
  be16,
  be32,
  be64,
  expectCheck,
  expectGood,
  expectInvalidField,
  makeArray,
} from './helpers.js';

describe('SPC commands', () => {
  let array: StorageArray;
  let h1: Host;
  let h2: Host;
  beforeEach(async () => {
    array = await makeArray();
    h1 = new Host(HOST_1, array.ports[0]!);
    h2 = new Host(HOST_2, array.ports[0]!);
  });
  afterEach(async () => {
    await array.close();
  });

  describe('INQUIRY', () => {
    it('returns standard data for a mapped LUN: disk, SPC-4, implicit ALUA, multi-port, command queuing', async () => {
      const d = expectGood(await h1.send(Cdb.inquiry(255)));
      expect(d.length).toBe(74);
      expect(d[0]).toBe(0x00);
      expect(d[2]).toBe(0x06);
      expect(d[3]! & 0x0f).toBe(2);
      expect(d[4]).toBe(69);
      expect((d[5]! >> 4) & 3).toBe(1);
      expect(d[6]! & 0x10).toBe(0x10);
      expect(d[7]! & 0x02).toBe(0x02);
      expect(Buffer.from(d.subarray(8, 16)).toString('ascii')).toBe('NPIVSIM ');
      expect(Buffer.from(d.subarray(16, 32)).toString('ascii')).toBe('VIRTUAL ARRAY   ');
    });

    it('truncates to the allocation length (36 bytes as Linux first asks, and 0)', async () => {
      expect(expectGood(await h1.send(Cdb.inquiry(36))).length).toBe(36);
      expect(expectGood(await h1.send(Cdb.inquiry(0))).length).toBe(0);
    });

    it('answers an unmapped LUN 0 with peripheral qualifier 3 / type 1Fh', async () => {
      const d = expectGood(await h2.send(Cdb.inquiry(36), { lun: 0 }));
      expect(d[0]).toBe(0x7f);
      // …and for an initiator in no host group at all
      const s = new Host(STRANGER, array.ports[0]!);
      expect(expectGood(await s.send(Cdb.inquiry(36), { lun: 3 }))[0]).toBe(0x7f);
    });

    it('VPD to an unmapped LUN: only the supported-pages page, with qualifier 3', async () => {
      const d = expectGood(await h2.send(Cdb.inquiry(255, true, 0x00), { lun: 0 }));
      expect([d[0], d[1], be16(d, 2), d[4]]).toEqual([0x7f, 0x00, 1, 0x00]);
      expectInvalidField(await h2.send(Cdb.inquiry(255, true, 0x83), { lun: 0 }), 2, 7);
    });

    it('rejects a page code without EVPD and the obsolete CMDDT bit with field pointers', async () => {
      expectInvalidField(await h1.send([0x12, 0, 0x80, 0, 255, 0]), 2, 7);
      expectInvalidField(await h1.send([0x12, 0x02, 0, 0, 255, 0]), 1, 1);
    });

    it('lists the supported VPD pages', async () => {
      const d = expectGood(await h1.send(Cdb.inquiry(255, true, 0x00)));
      expect(d[1]).toBe(0);
      expect([...d.subarray(4, 4 + be16(d, 2))]).toEqual([0x00, 0x80, 0x83, 0xb0, 0xb1, 0xb2]);
    });

    it('reports an unsupported VPD page as INVALID FIELD IN CDB at byte 2', async () => {
      expectInvalidField(await h1.send(Cdb.inquiry(255, true, 0x89)), 2, 7);
    });

    it('unit serial number is the NAA identifier in hex and differs per volume', async () => {
      const a = expectGood(await h1.send(Cdb.inquiry(255, true, 0x80), { lun: 0 }));
      const b = expectGood(await h1.send(Cdb.inquiry(255, true, 0x80), { lun: 1 }));
      const sa = Buffer.from(a.subarray(4, 4 + be16(a, 2))).toString('ascii');
      const sb = Buffer.from(b.subarray(4, 4 + be16(b, 2))).toString('ascii');
      expect(sa).toMatch(/^6[0-9a-f]{31}$/);
      expect(sa).not.toBe(sb);
      expect(sa).toBe(Buffer.from(array.volume('vol0')!.naa).toString('hex'));
    });

    it('device identification has NAA-6 LU, target port NAA, relative port, port group and device name designators', async () => {
      const viaB = new Host(HOST_1, array.ports[1]!);
      const d = expectGood(await viaB.send(Cdb.inquiry(255, true, 0x83)));
      expect(d[1]).toBe(0x83);
      const end = 4 + be16(d, 2);
      const found: { proto: number; codeSet: number; piv: boolean; assoc: number; type: number; value: Uint8Array }[] =
        [];
      for (let off = 4; off < end; off += 4 + d[off + 3]!) {
        found.push({
          proto: d[off]! >> 4,
          codeSet: d[off]! & 0xf,
          piv: (d[off + 1]! & 0x80) !== 0,
          assoc: (d[off + 1]! >> 4) & 3,
          type: d[off + 1]! & 0xf,
          value: d.subarray(off + 4, off + 4 + d[off + 3]!),
        });
      }
      const lu = found.find((f) => f.assoc === 0 && f.type === 3)!;
      expect(lu.value.length).toBe(16);
      expect(lu.value[0]! >> 4).toBe(6);
      expect([...lu.value]).toEqual([...array.volume('vol0')!.naa]);
      const port = found.find((f) => f.assoc === 1 && f.type === 3)!;
      expect(port.piv).toBe(true);
      expect(port.proto).toBe(0);
      expect(be64(port.value, 0)).toBe(PORT_B);
      const rel = found.find((f) => f.assoc === 1 && f.type === 4)!;
      expect(be16(rel.value, 2)).toBe(2);
      const tpg = found.find((f) => f.assoc === 1 && f.type === 5)!;
      expect(be16(tpg.value, 2)).toBe(2);
      const dev = found.find((f) => f.assoc === 2 && f.type === 3)!;
      expect(be64(dev.value, 0)).toBe(0x50060e8000000000n);
    });

    it('NAA identifier carries the OUI of the array node name and is stable for the same names', async () => {
      const naa = array.volume('vol0')!.naa;
      const oui = ((naa[0]! & 0x0f) << 20) | (naa[1]! << 12) | (naa[2]! << 4) | (naa[3]! >> 4);
      expect(oui).toBe(0x0060e8);
      const again = await makeArray();
      try {
        expect([...again.volume('vol0')!.naa]).toEqual([...naa]);
      } finally {
        await again.close();
      }
    });

    it('block limits, characteristics and provisioning pages advertise what the target enforces', async () => {
      const b0 = expectGood(await h1.send(Cdb.inquiry(255, true, 0xb0)));
      expect(be16(b0, 2)).toBe(0x3c);
      expect(b0[4]! & 1).toBe(1); // WSNZ
      expect(be32(b0, 8)).toBe(16384); // 8 MiB of 512-byte blocks
      expect(be32(b0, 20)).toBe(131072); // max unmap LBA count (64 MiB)
      expect(be32(b0, 24)).toBe(64);
      expect(be64(b0, 36)).toBe(131072n);
      const b1 = expectGood(await h1.send(Cdb.inquiry(255, true, 0xb1)));
      expect(be16(b1, 4)).toBe(1); // non-rotating
      const b2 = expectGood(await h1.send(Cdb.inquiry(255, true, 0xb2)));
      expect(b2[5]! & 0xe4).toBe(0xe4); // LBPU LBPWS LBPWS10 LBPRZ
      expect(b2[6]! & 7).toBe(2); // thin
    });
  });

  describe('REPORT LUNS', () => {
    it('two initiators see only their own masked LUNs, through LUN 0 even when it is unmapped', async () => {
      const a = expectGood(await h1.send(Cdb.reportLuns()));
      expect(be32(a, 0)).toBe(16);
      expect([...a.subarray(8, 16)]).toEqual([...encodeLun(0)]);
      expect([...a.subarray(16, 24)]).toEqual([...encodeLun(1)]);
      const b = expectGood(await h2.send(Cdb.reportLuns(4096, 0), { lun: 0 }));
      expect(be32(b, 0)).toBe(16);
      expect(b[8 + 1]).toBe(1);
      expect(b[16 + 1]).toBe(5);
    });

    it('reports nothing for an initiator outside every host group; SELECT REPORT 1 and 2 add the REPORT LUNS W-LUN', async () => {
      const s = new Host(STRANGER, array.ports[0]!);
      expect(be32(expectGood(await s.send(Cdb.reportLuns())), 0)).toBe(0);
      const wellKnown = expectGood(await h1.send(Cdb.reportLuns(4096, 1)));
      expect(be32(wellKnown, 0)).toBe(8);
      expect([...wellKnown.subarray(8, 16)]).toEqual([0xc1, 0x01, 0, 0, 0, 0, 0, 0]);
      const all = expectGood(await h1.send(Cdb.reportLuns(4096, 2)));
      expect(be32(all, 0)).toBe(24);
      expect([...all.subarray(24, 32)]).toEqual([0xc1, 0x01, 0, 0, 0, 0, 0, 0]);
    });

    it('the REPORT LUNS well-known LU (C101h): INQUIRY type 1Eh, REPORT LUNS, TUR, REQUEST SENSE; nothing else', async () => {
      const wlun = { lunField: Uint8Array.of(0xc1, 0x01, 0, 0, 0, 0, 0, 0) };
      // Even an initiator with no LUN at all may list through it (it sees an empty list).
      const s = new Host(STRANGER, array.ports[0]!);
      for (const host of [h1, s]) {
        const inq = expectGood(await host.send(Cdb.inquiry(), wlun));
        expect(inq[0]).toBe(0x1e);
        expect(new TextDecoder().decode(inq.subarray(8, 16)).trim().length).toBeGreaterThan(0);
        expectGood(await host.send(Cdb.tur(), wlun));
        const sense = parseFixedSense(expectGood(await host.send(Cdb.requestSense(), wlun)));
        expect([sense.key, sense.sense.asc]).toEqual([0, 0]);
      }
      const list = expectGood(await h1.send(Cdb.reportLuns(), wlun));
      expect(be32(list, 0)).toBe(16);
      expect(be32(expectGood(await s.send(Cdb.reportLuns(), wlun)), 0)).toBe(0);
      const bad = expectCheck(await h1.send(Cdb.read10(0, 1), wlun), 5, 0x20, 0);
      expect(bad.field).toEqual({ inCdb: true, byte: 0 });
      expectCheck(await h1.send(Cdb.readCapacity10(), wlun), 5, 0x20, 0);
    });

    it('rejects a bad SELECT REPORT and an allocation length below 16', async () => {
      expectInvalidField(await h1.send(Cdb.reportLuns(4096, 0x05)), 2, 7);
      expectInvalidField(await h1.send(Cdb.reportLuns(8)), 6, 7);
    });

    it('truncates the list to the allocation length while keeping the full LUN LIST LENGTH', async () => {
      const d = expectGood(await h1.send(Cdb.reportLuns(16)));
      expect(d.length).toBe(16);
      expect(be32(d, 0)).toBe(16);
    });

    it('encodes LUNs above 255 with flat space addressing', async () => {
      await array.addVolume({ name: 'high', size: '1MiB' });
      array.mapLun('host1', 300, 'high');
      const d = expectGood(await h1.send(Cdb.reportLuns()));
      expect([...d.subarray(24, 32)]).toEqual([0x41, 0x2c, 0, 0, 0, 0, 0, 0]);
      await h1.clearUnitAttentions(300 as number);
      expect(
        expectGood(await h1.send(Cdb.readCapacity10(), { lunField: Uint8Array.of(0x41, 0x2c, 0, 0, 0, 0, 0, 0) }))
          .length,
      ).toBe(8);
    });
  });

  describe('LUN masking', () => {
    it('commands to an unmapped LUN fail with LOGICAL UNIT NOT SUPPORTED', async () => {
      expectCheck(await h2.send(Cdb.tur(), { lun: 0 }), 5, 0x25, 0);
      expectCheck(await h2.send(Cdb.read10(0, 1), { lun: 0 }), 5, 0x25, 0);
      expectCheck(await h1.send(Cdb.readCapacity10(), { lun: 5 }), 5, 0x25, 0);
    });

    it('an unknown opcode on an unmapped LUN is LOGICAL UNIT NOT SUPPORTED, on a mapped one INVALID COMMAND OPERATION CODE', async () => {
      expectCheck(await h2.send([0xc0, 0, 0, 0, 0, 0], { lun: 0 }), 5, 0x25, 0);
      await h1.clearUnitAttentions();
      const s = expectCheck(await h1.send([0xc0, 0, 0, 0, 0, 0]), 5, 0x20, 0);
      expect(s.field).toEqual({ inCdb: true, byte: 0 });
    });

    it('multi-level LUNs and well-known LUNs other than REPORT LUNS are not supported', async () => {
      expectCheck(await h1.send(Cdb.tur(), { lunField: Uint8Array.of(0, 0, 0, 1, 0, 0, 0, 0) }), 5, 0x25, 0);
      expectCheck(await h1.send(Cdb.tur(), { lunField: Uint8Array.of(0xc1, 0x02, 0, 0, 0, 0, 0, 0) }), 5, 0x25, 0);
    });

    it('REQUEST SENSE to an unmapped LUN returns LOGICAL UNIT NOT SUPPORTED as data with GOOD status', async () => {
      const d = expectGood(await h2.send(Cdb.requestSense(), { lun: 0 }));
      const s = parseFixedSense(d);
      expect([s.key, s.sense.asc]).toEqual([5, 0x25]);
    });
  });

  describe('opcodes and fields', () => {
    beforeEach(async () => {
      await h1.clearUnitAttentions();
    });

    it('unsupported opcodes of every CDB group fail with INVALID COMMAND OPERATION CODE', async () => {
      for (const op of [0x04, 0x16, 0x3b, 0x7f, 0x8e, 0xa3 /* MAINTENANCE IN is per-SA */, 0xbe, 0xe0]) {
        const r = await h1.send([op, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        if (op === 0xa3) {
          expectInvalidField(r, 1, 4);
          continue;
        }
        expectCheck(r, 5, 0x20, 0);
      }
    });

    it('an unknown service action is INVALID FIELD IN CDB at byte 1 bit 4', async () => {
      expectInvalidField(await h1.send([0x9e, 0x11, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0]), 1, 4);
    });

    it('NACA in the control byte is refused (no ACA support)', async () => {
      expectInvalidField(await h1.send([0x00, 0, 0, 0, 0, 0x04]), 5, 2);
      expectInvalidField(await h1.send([0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0x04]), 9, 2);
    });
  });

  describe('READ CAPACITY', () => {
    beforeEach(async () => {
      await h1.clearUnitAttentions();
    });

    it('(10) returns the last LBA and block length', async () => {
      const d = expectGood(await h1.send(Cdb.readCapacity10()));
      expect(be32(d, 0)).toBe(16 * 2048 - 1);
      expect(be32(d, 4)).toBe(512);
    });

    it('(10) rejects a non-zero LBA without PMI', async () => {
      expectInvalidField(await h1.send([0x25, 0, 0, 0, 0, 1, 0, 0, 0, 0]), 2, 7);
    });

    it('(16) reports thin provisioning (LBPME, LBPRZ), 4 KiB physical blocks, and honours the allocation length', async () => {
      const d = expectGood(await h1.send(Cdb.readCapacity16()));
      expect(d.length).toBe(32);
      expect(be64(d, 0)).toBe(BigInt(16 * 2048 - 1));
      expect(be32(d, 8)).toBe(512);
      expect(d[13]! & 0xf).toBe(3);
      expect(d[14]! & 0xc0).toBe(0xc0);
      expect(expectGood(await h1.send(Cdb.readCapacity16(12))).length).toBe(12);
    });

    it('(10) caps the LBA at FFFFFFFFh for volumes past 2 TiB of blocks', async () => {
      await array.addVolume({ name: 'big', size: '4TiB' });
      array.mapLun('host1', 9, 'big');
      await h1.clearUnitAttentions(9);
      expect(be32(expectGood(await h1.send(Cdb.readCapacity10(), { lun: 9 })), 0)).toBe(0xffffffff);
      expect(be64(expectGood(await h1.send(Cdb.readCapacity16(), { lun: 9 })), 0)).toBe((4n * 2n ** 40n) / 512n - 1n);
    });
  });

  describe('MODE SENSE', () => {
    beforeEach(async () => {
      await h1.clearUnitAttentions();
    });

    it('(6) all pages: header, short block descriptor, then 01h 08h 0Ah with DPOFUA set', async () => {
      const d = expectGood(await h1.send(Cdb.modeSense6(0x3f)));
      expect(d[0]).toBe(d.length - 1);
      expect(d[2]).toBe(0x10);
      expect(d[3]).toBe(8);
      expect(be32(d, 4)).toBe(16 * 2048);
      expect((d[9]! << 16) | be16(d, 10)).toBe(512);
      const codes: number[] = [];
      for (let off = 12; off < d.length; off += 2 + d[off + 1]!) codes.push(d[off]! & 0x3f);
      expect(codes).toEqual([0x01, 0x08, 0x0a]);
    });

    it('(6) caching page as sd reads it: WCE set, no block descriptor with DBD', async () => {
      const d = expectGood(await h1.send(Cdb.modeSense6(0x08, 255, { dbd: true })));
      expect(d[3]).toBe(0);
      expect(d[4]! & 0x3f).toBe(0x08);
      expect(d[5]).toBe(0x12);
      expect(d[6]! & 0x04).toBe(0x04);
    });

    it('(6) changeable values: only WCE in the caching page, nothing in the others', async () => {
      const d = expectGood(await h1.send(Cdb.modeSense6(0x08, 255, { dbd: true, pc: 1 })));
      expect([...d.subarray(6)]).toEqual([0x04, ...new Array<number>(d.length - 7).fill(0)]);
      const c = expectGood(await h1.send(Cdb.modeSense6(0x0a, 255, { dbd: true, pc: 1 })));
      expect(c.subarray(6).every((b) => b === 0)).toBe(true);
    });

    it('(10) control page with a long LBA block descriptor: TAS set, fixed sense', async () => {
      const d = expectGood(await h1.send(Cdb.modeSense10(0x0a, 1024, { llbaa: true })));
      expect(be16(d, 0)).toBe(d.length - 2);
      expect(d[4]! & 1).toBe(1);
      expect(be16(d, 6)).toBe(16);
      expect(be64(d, 8)).toBe(BigInt(16 * 2048));
      expect(be32(d, 20)).toBe(512);
      const page = d.subarray(24);
      expect(page[0]! & 0x3f).toBe(0x0a);
      expect(page[2]! & 0x04).toBe(0); // D_SENSE off
      expect(page[5]! & 0x40).toBe(0x40);
    });

    it('rejects unknown pages, subpages and saved values', async () => {
      expectInvalidField(await h1.send(Cdb.modeSense6(0x1c)), 2, 5);
      expectInvalidField(await h1.send(Cdb.modeSense6(0x08, 255, { subpage: 1 })), 3, 7);
      expectCheck(await h1.send(Cdb.modeSense6(0x08, 255, { pc: 3 })), 5, 0x39, 0);
      expect(expectGood(await h1.send(Cdb.modeSense6(0x3f, 255, { subpage: 0xff }))).length).toBeGreaterThan(12);
    });

    it('truncates to the allocation length', async () => {
      expect(expectGood(await h1.send(Cdb.modeSense6(0x3f, 4))).length).toBe(4);
    });
  });

  describe('MODE SELECT', () => {
    beforeEach(async () => {
      await h1.clearUnitAttentions(1);
      await h2.clearUnitAttentions(1);
    });
    const select6 = (list: Uint8Array, flags = 0x10) =>
      h1.send([0x15, flags, 0, 0, list.length, 0], { lun: 1, dataOut: list });
    /** What sd's cache_type store does: read the caching page, edit it, send it back with a zero header. */
    async function cachingPageList(h: Host): Promise<Uint8Array> {
      const d = expectGood(await h.send(Cdb.modeSense6(0x08, 255, { dbd: true }), { lun: 1 }));
      const list = new Uint8Array(d.length);
      list.set(d.subarray(4), 4);
      list[4] = list[4]! & 0x7f;
      return list;
    }

    it('the changeable mask shows WCE; clearing it turns the write cache off and tells the other nexuses (2A/01)', async () => {
      const mask = expectGood(await h1.send(Cdb.modeSense6(0x08, 255, { dbd: true, pc: 1 }), { lun: 1 }));
      expect(mask[6]).toBe(0x04);
      const list = await cachingPageList(h1);
      list[6] = list[6]! & ~0x04;
      const flush = vi.spyOn(array.volume('shared')!.backing, 'flush');
      expectGood(await select6(list));
      expect(array.volume('shared')!.writeCache).toBe(false);
      expect(flush).toHaveBeenCalledTimes(1); // what was cached is made durable first
      expectGood(await h1.send(Cdb.write10(0, 1), { lun: 1, dataOut: new Uint8Array(512) }));
      expect(flush).toHaveBeenCalledTimes(2); // and every write is now written through
      expect(expectGood(await h1.send(Cdb.modeSense6(0x08, 255, { dbd: true }), { lun: 1 }))[6]! & 0x04).toBe(0);
      expectGood(await h1.send(Cdb.tur(), { lun: 1 }));
      expectCheck(await h2.send(Cdb.tur(), { lun: 1 }), 6, 0x2a, 0x01);
      // and back on, through MODE SELECT(10) with a short block descriptor describing the volume as it is
      const on = new Uint8Array(8 + 8 + 20);
      new DataView(on.buffer).setUint16(6, 8);
      new DataView(on.buffer).setUint32(8, 16384);
      new DataView(on.buffer).setUint16(14, 512);
      on.set(list.subarray(4), 16);
      on[18] = on[18]! | 0x04;
      expectGood(await h1.send([0x55, 0x10, 0, 0, 0, 0, 0, 0, on.length, 0], { lun: 1, dataOut: on }));
      expect(array.volume('shared')!.writeCache).toBe(true);
    });

    it('the same values again change nothing and raise no unit attention', async () => {
      expectGood(await select6(await cachingPageList(h1)));
      expectGood(await h2.send(Cdb.tur(), { lun: 1 }));
    });

    it('refuses changes to other bits, unknown pages, bad lengths and descriptors, PF=0 and SP=1', async () => {
      const list = await cachingPageList(h1);
      const rcd = Uint8Array.from(list);
      rcd[6] = rcd[6]! | 0x01;
      let s = expectCheck(await select6(rcd), 5, 0x26, 0);
      expect(s.field).toEqual({ inCdb: false, byte: 6, bit: 7 });
      const badLength = Uint8Array.from(list);
      badLength[5] = 0x10;
      s = expectCheck(await select6(badLength), 5, 0x26, 0);
      expect(s.field).toEqual({ inCdb: false, byte: 5, bit: 7 });
      const unknown = Uint8Array.from(list);
      unknown[4] = 0x1c;
      expectCheck(await select6(unknown), 5, 0x26, 0);
      expectCheck(await select6(list.subarray(0, 12)), 5, 0x1a, 0);
      const withDescriptor = new Uint8Array(4 + 8 + list.length - 4);
      withDescriptor[3] = 8;
      withDescriptor[4 + 6] = 0x10; // block length 4096 instead of 512
      withDescriptor.set(list.subarray(4), 12);
      s = expectCheck(await select6(withDescriptor), 5, 0x26, 0);
      expect(s.field).toEqual({ inCdb: false, byte: 9, bit: 7 });
      expectInvalidField(await select6(list, 0x00), 1, 4);
      expectInvalidField(await select6(list, 0x11), 1, 0);
      expect(array.volume('shared')!.writeCache).toBe(true);
    });
  });

  describe('REQUEST SENSE, TEST UNIT READY, START STOP UNIT', () => {
    it('REQUEST SENSE returns a pending unit attention as data, once, then NO SENSE', async () => {
      const first = parseFixedSense(expectGood(await h1.send(Cdb.requestSense())));
      expect([first.key, first.sense.asc, first.sense.ascq]).toEqual([6, 0x29, 0]);
      const second = parseFixedSense(expectGood(await h1.send(Cdb.requestSense())));
      expect([second.key, second.sense.asc]).toEqual([0, 0]);
      expectGood(await h1.send(Cdb.tur()));
    });

    it('REQUEST SENSE refuses descriptor format and truncates to the allocation length', async () => {
      expectInvalidField(await h1.send(Cdb.requestSense(18, true)), 1, 0);
      expect(expectGood(await h1.send(Cdb.requestSense(8))).length).toBe(8);
    });

    it('STOP makes media access NOT READY (04/02) until START', async () => {
      await h1.clearUnitAttentions();
      expectGood(await h1.send(Cdb.startStop(false)));
      expectCheck(await h1.send(Cdb.tur()), 2, 0x04, 0x02);
      expectCheck(await h1.send(Cdb.read10(0, 1)), 2, 0x04, 0x02);
      expectGood(await h1.send(Cdb.readCapacity10()));
      const s = parseFixedSense(expectGood(await h1.send(Cdb.requestSense())));
      expect([s.key, s.sense.asc, s.sense.ascq]).toEqual([2, 4, 2]);
      expectGood(await h1.send(Cdb.startStop(true)));
      expectGood(await h1.send(Cdb.tur()));
    });

    it('START STOP UNIT rejects power conditions and LOEJ', async () => {
      await h1.clearUnitAttentions();
      expectInvalidField(await h1.send(Cdb.startStop(true, 0x10)), 4, 7);
      expectInvalidField(await h1.send(Cdb.startStop(true, 0x02)), 4, 1);
    });
  });

  describe('REPORT SUPPORTED OPERATION CODES', () => {
    beforeEach(async () => {
      await h1.clearUnitAttentions();
    });
    const rsoc = (options: number, opcode = 0, sa = 0, alloc = 4096) => [
      0xa3,
      0x0c,
      options,
      opcode,
      sa >> 8,
      sa & 0xff,
      (alloc >>> 24) & 0xff,
      (alloc >> 16) & 0xff,
      (alloc >> 8) & 0xff,
      alloc & 0xff,
      0,
      0,
    ];

    it('lists every command with a CDB length that matches its opcode group', async () => {
      const d = expectGood(await h1.send(rsoc(0)));
      const n = be32(d, 0) / 8;
      const ops = Array.from({ length: n }, (_, i) => {
        const o = 4 + 8 * i;
        return { op: d[o]!, sa: d[o + 5]! & 1 ? be16(d, o + 2) : null, len: be16(d, o + 6) };
      });
      for (const o of ops) expect(o.len).toBe(cdbLengthForOpcode(o.op));
      expect(ops).toContainEqual({ op: 0x93, sa: null, len: 16 });
      expect(ops).toContainEqual({ op: 0x9e, sa: 0x10, len: 16 });
      expect(ops).toContainEqual({ op: 0xa3, sa: 0x0a, len: 12 });
      expect(ops.length).toBe(30);
    });

    it('one command: WRITE SAME(16) supported with its usage map, an unknown opcode not supported', async () => {
      const ws = expectGood(await h1.send(rsoc(1, 0x93)));
      expect(ws[1]! & 7).toBe(3);
      expect(be16(ws, 2)).toBe(16);
      expect(ws[4]).toBe(0x93);
      expect(ws.length).toBe(20);
      const rc16 = expectGood(await h1.send(rsoc(2, 0x9e, 0x10)));
      expect([rc16[1]! & 7, rc16[4], rc16[5]! & 0x1f]).toEqual([3, 0x9e, 0x1f]);
      const none = expectGood(await h1.send(rsoc(1, 0xc5)));
      expect([none.length, none[1]! & 7]).toEqual([4, 1]);
      const missingSa = expectGood(await h1.send(rsoc(2, 0x9e, 0x11)));
      expect(missingSa[1]! & 7).toBe(1);
    });

    it('refuses RCTD, opcode-only for a service-action opcode and the reverse', async () => {
      expectInvalidField(await h1.send(rsoc(0x80)), 2, 7);
      expectInvalidField(await h1.send(rsoc(1, 0x9e)), 3, 7);
      expectInvalidField(await h1.send(rsoc(2, 0x28)), 3, 7);
      expectInvalidField(await h1.send(rsoc(5)), 2, 2);
    });
  });

  describe('REPORT TARGET PORT GROUPS', () => {
    beforeEach(async () => {
      await h1.clearUnitAttentions();
    });

    it('extended header, one active/optimized group per target port', async () => {
      const d = expectGood(await h1.send(Cdb.rtpg()));
      expect(be32(d, 0)).toBe(d.length - 4);
      expect((d[4]! >> 4) & 7).toBe(1);
      const groups: { state: number; group: number; ports: number[] }[] = [];
      for (let off = 8; off < d.length; ) {
        const n = d[off + 7]!;
        const ports: number[] = [];
        for (let i = 0; i < n; i++) ports.push(be16(d, off + 8 + 4 * i + 2));
        groups.push({ state: d[off]! & 0xf, group: be16(d, off + 2), ports });
        expect(d[off + 1]! & 1).toBe(1); // AO_SUP
        off += 8 + 4 * n;
      }
      expect(groups).toEqual([
        { state: 0, group: 1, ports: [1] },
        { state: 0, group: 2, ports: [2] },
      ]);
    });

    it('length-only format has a 4-byte header; bad formats are refused; allocation length truncates', async () => {
      const d = expectGood(await h1.send(Cdb.rtpg(1024, false)));
      expect(be16(d, 4 + 2)).toBe(1);
      expectInvalidField(await h1.send([0xa3, 0x4a, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0]), 1, 7);
      expect(expectGood(await h1.send(Cdb.rtpg(6))).length).toBe(6);
    });
  });

  it('task tags and ports: responses never carry sense with GOOD', async () => {
    const r = await h1.send(Cdb.inquiry());
    expect(r.status).toBe(Status.GOOD);
    expect(r.sense).toBeNull();
    expect(array.ports.map((p) => [p.wwpn, p.relativePortId])).toEqual([
      [PORT_A, 1],
      [PORT_B, 2],
    ]);
  });
});
