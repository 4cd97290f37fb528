import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Status } from '../../../src/scsi/sam.js';
import type { StorageArray } from '../../../src/san/array.js';
import {
  Cdb,
  Host,
  HOST_1,
  HOST_2,
  PORT_A,
  be16,
  be32,
  be64,
  expectCheck,
  expectGood,
  makeArray,
  prParams,
  pattern,
} from './helpers.js';

const LUN = 1; // 'shared': visible to both hosts
const K1 = 0x1111n;
const K2 = 0x2222n;
const SA = {
  REGISTER: 0,
  RESERVE: 1,
  RELEASE: 2,
  CLEAR: 3,
  PREEMPT: 4,
  PREEMPT_AND_ABORT: 5,
  REGISTER_IGNORE: 6,
  REGISTER_AND_MOVE: 7,
};
const IN = { READ_KEYS: 0, READ_RESERVATION: 1, REPORT_CAPABILITIES: 2, READ_FULL_STATUS: 3 };
const TYPE = { WE: 1, EA: 3, WE_RO: 5, EA_RO: 6, WE_AR: 7, EA_AR: 8 };

describe('persistent reservations (two initiators)', () => {
  let array: StorageArray;
  let h1: Host;
  let h2: Host;
  let h1b: Host; // HOST_1 through the other port: a separate, unregistered I_T nexus

  const out = (h: Host, sa: number, key: bigint, saKey: bigint, type = 0, opts: Parameters<typeof prParams>[2] = {}) =>
    h.send(Cdb.prOut(sa, type), { lun: LUN, dataOut: prParams(key, saKey, opts) });
  const inData = async (h: Host, sa: number, alloc = 1024) =>
    expectGood(await h.send(Cdb.prIn(sa, alloc), { lun: LUN }));
  const keys = async (h: Host): Promise<bigint[]> => {
    const d = await inData(h, IN.READ_KEYS);
    return Array.from({ length: be32(d, 4) / 8 }, (_, i) => be64(d, 8 + 8 * i));
  };
  const canRead = async (h: Host) => (await h.send(Cdb.read10(0, 1), { lun: LUN })).status;
  const canWrite = async (h: Host) =>
    (await h.send(Cdb.write10(0, 1), { lun: LUN, dataOut: new Uint8Array(512) })).status;

  beforeEach(async () => {
    array = await makeArray();
    h1 = new Host(HOST_1, array.ports[0]!);
    h2 = new Host(HOST_2, array.ports[0]!);
    h1b = new Host(HOST_1, array.ports[1]!);
    for (const h of [h1, h2, h1b]) await h.clearUnitAttentions(LUN);
  });
  afterEach(async () => {
    await array.close();
  });

  describe('REGISTER', () => {
    it('registers, changes and removes a key; each change bumps the generation', async () => {
      expectGood(await out(h1, SA.REGISTER, 0n, K1));
      expect(await keys(h2)).toEqual([K1]);
      expectGood(await out(h1, SA.REGISTER, K1, 0x9999n));
      expect(await keys(h1)).toEqual([0x9999n]);
      expectGood(await out(h1, SA.REGISTER, 0x9999n, 0n));
      expect(await keys(h1)).toEqual([]);
      expect(be32(await inData(h1, IN.READ_KEYS), 0)).toBe(3);
    });

    it('an unregistered nexus sending a non-zero key, or a wrong key, gets RESERVATION CONFLICT', async () => {
      expect((await out(h1, SA.REGISTER, 0x5n, K1)).status).toBe(Status.RESERVATION_CONFLICT);
      expectGood(await out(h1, SA.REGISTER, 0n, K1));
      expect((await out(h1, SA.REGISTER, 0x5n, K2)).status).toBe(Status.RESERVATION_CONFLICT);
      expect(await keys(h1)).toEqual([K1]);
    });

    it('registering key 0 while unregistered is a no-op that does not bump the generation', async () => {
      expectGood(await out(h1, SA.REGISTER, 0n, 0n));
      expect(be32(await inData(h1, IN.READ_KEYS), 0)).toBe(0);
    });

    it('REGISTER AND IGNORE EXISTING KEY replaces the key whatever was sent', async () => {
      expectGood(await out(h1, SA.REGISTER, 0n, K1));
      expectGood(await out(h1, SA.REGISTER_IGNORE, 0xdeadn, K2));
      expect(await keys(h1)).toEqual([K2]);
      expectGood(await out(h2, SA.REGISTER_IGNORE, 0xbeefn, K1));
      expect((await keys(h1)).sort()).toEqual([K1, K2].sort());
    });

    it('registrations are per I_T nexus: the same initiator through another port is unregistered', async () => {
      expectGood(await out(h1, SA.REGISTER, 0n, K1));
      expect((await out(h1b, SA.RESERVE, K1, 0n, TYPE.WE)).status).toBe(Status.RESERVATION_CONFLICT);
    });

    it('ALL_TG_PTS registers the initiator through every target port of the array', async () => {
      expect((await inData(h1, IN.REPORT_CAPABILITIES))[2]! & 0x04).toBe(0x04); // ATP_C
      expectGood(await out(h1, SA.REGISTER, 0n, K1, 0, { allTgPts: true }));
      expect(await keys(h1)).toEqual([K1, K1]);
      expectGood(await out(h1b, SA.RESERVE, K1, 0n, TYPE.EA)); // the other port's nexus is registered too
      expect(await canWrite(h1)).toBe(Status.RESERVATION_CONFLICT); // but only h1b holds the reservation
      const d = await inData(h1, IN.READ_FULL_STATUS);
      expect([be16(d, 8 + 18), be16(d, 8 + 48 + 18)]).toEqual([1, 2]);
      // unregistering is per nexus
      expectGood(await out(h1, SA.REGISTER, K1, 0n));
      expect(await keys(h1b)).toEqual([K1]);
    });

    it('registrations survive a nexus loss (logout / link flap)', async () => {
      expectGood(await out(h1, SA.REGISTER, 0n, K1));
      expectGood(await out(h1, SA.RESERVE, K1, 0n, TYPE.EA));
      h1.port.nexusLost(h1.nexus);
      await h1.clearUnitAttentions(LUN);
      expect(await keys(h1)).toEqual([K1]);
      expect(await canWrite(h1)).toBe(Status.GOOD);
      expect(await canRead(h2)).toBe(Status.RESERVATION_CONFLICT);
    });
  });

  describe('access under each reservation type (SPC-4 §5.12.1)', () => {
    // [type, registered non-holder read/write, unregistered read/write]
    const table: [string, number, [boolean, boolean], [boolean, boolean]][] = [
      ['Write Exclusive', TYPE.WE, [true, false], [true, false]],
      ['Exclusive Access', TYPE.EA, [false, false], [false, false]],
      ['Write Exclusive - Registrants Only', TYPE.WE_RO, [true, true], [true, false]],
      ['Exclusive Access - Registrants Only', TYPE.EA_RO, [true, true], [false, false]],
      ['Write Exclusive - All Registrants', TYPE.WE_AR, [true, true], [true, false]],
      ['Exclusive Access - All Registrants', TYPE.EA_AR, [true, true], [false, false]],
    ];
    const expected = (ok: boolean): number => (ok ? Status.GOOD : Status.RESERVATION_CONFLICT);
    for (const [name, type, registered, unregistered] of table) {
      it(name, async () => {
        expectGood(await out(h1, SA.REGISTER, 0n, K1));
        expectGood(await out(h2, SA.REGISTER, 0n, K2));
        expectGood(await out(h1, SA.RESERVE, K1, 0n, type));
        expect(await canRead(h1)).toBe(Status.GOOD);
        expect(await canWrite(h1)).toBe(Status.GOOD);
        expect(await canRead(h2)).toBe(expected(registered[0]));
        expect(await canWrite(h2)).toBe(expected(registered[1]));
        expect(await canRead(h1b)).toBe(expected(unregistered[0]));
        expect(await canWrite(h1b)).toBe(expected(unregistered[1]));
        // Commands outside the data path stay allowed for everyone.
        for (const h of [h2, h1b]) {
          expectGood(await h.send(Cdb.tur(), { lun: LUN }));
          expectGood(await h.send(Cdb.inquiry(), { lun: LUN }));
          expectGood(await h.send(Cdb.readCapacity16(), { lun: LUN }));
          expectGood(await h.send(Cdb.prIn(IN.READ_RESERVATION), { lun: LUN }));
        }
        const res = await inData(h2, IN.READ_RESERVATION);
        expect(be32(res, 4)).toBe(16);
        expect(res[21]! & 0xf).toBe(type);
        // All-registrants reservations report key 0; others the holder's key.
        expect(be64(res, 8)).toBe(type === TYPE.WE_AR || type === TYPE.EA_AR ? 0n : K1);
      });
    }

    it('START UNIT is allowed to anyone, STOP UNIT conflicts; MODE SENSE conflicts only under exclusive access', async () => {
      expectGood(await out(h1, SA.REGISTER, 0n, K1));
      expectGood(await out(h1, SA.RESERVE, K1, 0n, TYPE.WE));
      expectGood(await h2.send(Cdb.startStop(true), { lun: LUN }));
      expect((await h2.send(Cdb.startStop(false), { lun: LUN })).status).toBe(Status.RESERVATION_CONFLICT);
      expectGood(await h2.send(Cdb.modeSense6(0x08), { lun: LUN }));
      expect((await h2.send(Cdb.syncCache10(), { lun: LUN })).status).toBe(Status.RESERVATION_CONFLICT);
      expectGood(await out(h1, SA.RELEASE, K1, 0n, TYPE.WE));
      expectGood(await out(h1, SA.RESERVE, K1, 0n, TYPE.EA));
      expect((await h2.send(Cdb.modeSense6(0x08), { lun: LUN })).status).toBe(Status.RESERVATION_CONFLICT);
      expectGood(await h2.send(Cdb.startStop(true), { lun: LUN }));
    });

    it('a conflicting command does not consume a pending unit attention', async () => {
      expectGood(await out(h1, SA.REGISTER, 0n, K1));
      expectGood(await out(h1, SA.RESERVE, K1, 0n, TYPE.EA));
      await array.resizeVolume('shared', '9MiB');
      expectCheck(await h2.send(Cdb.read10(0, 1), { lun: LUN }), 6, 0x2a, 0x09);
      expect(await canRead(h2)).toBe(Status.RESERVATION_CONFLICT);
    });
  });

  describe('RESERVE and RELEASE', () => {
    it('RESERVE needs a registration and the right key; a second reservation conflicts', async () => {
      expect((await out(h1, SA.RESERVE, K1, 0n, TYPE.WE)).status).toBe(Status.RESERVATION_CONFLICT);
      expectGood(await out(h1, SA.REGISTER, 0n, K1));
      expect((await out(h1, SA.RESERVE, K2, 0n, TYPE.WE)).status).toBe(Status.RESERVATION_CONFLICT);
      expectGood(await out(h1, SA.RESERVE, K1, 0n, TYPE.WE));
      expectGood(await out(h1, SA.RESERVE, K1, 0n, TYPE.WE)); // same holder, same type: no-op
      expect((await out(h1, SA.RESERVE, K1, 0n, TYPE.EA)).status).toBe(Status.RESERVATION_CONFLICT);
      expectGood(await out(h2, SA.REGISTER, 0n, K2));
      expect((await out(h2, SA.RESERVE, K2, 0n, TYPE.WE)).status).toBe(Status.RESERVATION_CONFLICT);
    });

    it('RESERVE and RELEASE do not change the generation', async () => {
      expectGood(await out(h1, SA.REGISTER, 0n, K1));
      expectGood(await out(h1, SA.RESERVE, K1, 0n, TYPE.WE));
      expectGood(await out(h1, SA.RELEASE, K1, 0n, TYPE.WE));
      expect(be32(await inData(h1, IN.READ_RESERVATION), 0)).toBe(1);
    });

    it('RELEASE by a non-holder is a no-op; with the wrong type is INVALID RELEASE OF PERSISTENT RESERVATION', async () => {
      expectGood(await out(h1, SA.REGISTER, 0n, K1));
      expectGood(await out(h2, SA.REGISTER, 0n, K2));
      expectGood(await out(h1, SA.RESERVE, K1, 0n, TYPE.EA));
      expectGood(await out(h2, SA.RELEASE, K2, 0n, TYPE.EA));
      expect(be32(await inData(h1, IN.READ_RESERVATION), 4)).toBe(16);
      expectCheck(await out(h1, SA.RELEASE, K1, 0n, TYPE.WE), 5, 0x26, 0x04);
      expectGood(await out(h1, SA.RELEASE, K1, 0n, TYPE.EA));
      expect(be32(await inData(h1, IN.READ_RESERVATION), 4)).toBe(0);
      expect(await canWrite(h2)).toBe(Status.GOOD);
    });

    it('releasing a registrants-only reservation tells the other registrants RESERVATIONS RELEASED (2A/04)', async () => {
      expectGood(await out(h1, SA.REGISTER, 0n, K1));
      expectGood(await out(h2, SA.REGISTER, 0n, K2));
      expectGood(await out(h1, SA.RESERVE, K1, 0n, TYPE.WE_RO));
      expectGood(await out(h1, SA.RELEASE, K1, 0n, TYPE.WE_RO));
      expectCheck(await h2.send(Cdb.tur(), { lun: LUN }), 6, 0x2a, 0x04);
      expectGood(await h1.send(Cdb.tur(), { lun: LUN }));
    });

    it('the registrants-only holder unregistering releases the reservation (2A/04 to the others)', async () => {
      expectGood(await out(h1, SA.REGISTER, 0n, K1));
      expectGood(await out(h2, SA.REGISTER, 0n, K2));
      expectGood(await out(h1, SA.RESERVE, K1, 0n, TYPE.EA_RO));
      expectGood(await out(h1, SA.REGISTER, K1, 0n));
      // PERSISTENT RESERVE IN reports unit attentions like any command but INQUIRY/REPORT LUNS/REQUEST SENSE.
      expectCheck(await h2.send(Cdb.prIn(IN.READ_RESERVATION), { lun: LUN }), 6, 0x2a, 0x04);
      expect(be32(await inData(h2, IN.READ_RESERVATION), 4)).toBe(0);
    });

    it('an all-registrants reservation lasts until the last registrant goes', async () => {
      expectGood(await out(h1, SA.REGISTER, 0n, K1));
      expectGood(await out(h2, SA.REGISTER, 0n, K2));
      expectGood(await out(h1, SA.RESERVE, K1, 0n, TYPE.EA_AR));
      expectGood(await out(h2, SA.RESERVE, K2, 0n, TYPE.EA_AR)); // every registrant holds it
      expectGood(await out(h1, SA.REGISTER, K1, 0n));
      expect(be32(await inData(h2, IN.READ_RESERVATION), 4)).toBe(16);
      expect(await canRead(h1)).toBe(Status.RESERVATION_CONFLICT);
      expectGood(await out(h2, SA.REGISTER, K2, 0n));
      expect(be32(await inData(h2, IN.READ_RESERVATION), 4)).toBe(0);
      expect(await canRead(h1)).toBe(Status.GOOD);
    });
  });

  describe('CLEAR and PREEMPT', () => {
    it('CLEAR drops every registration and the reservation; the others get RESERVATIONS PREEMPTED (2A/03)', async () => {
      expectGood(await out(h1, SA.REGISTER, 0n, K1));
      expectGood(await out(h2, SA.REGISTER, 0n, K2));
      expectGood(await out(h1, SA.RESERVE, K1, 0n, TYPE.EA));
      expect((await out(h2, SA.CLEAR, K1, 0n)).status).toBe(Status.RESERVATION_CONFLICT); // wrong key
      expectGood(await out(h2, SA.CLEAR, K2, 0n));
      expect(await keys(h2)).toEqual([]);
      expect(be32(await inData(h2, IN.READ_KEYS), 0)).toBe(3);
      expectCheck(await h1.send(Cdb.tur(), { lun: LUN }), 6, 0x2a, 0x03);
      expectGood(await h2.send(Cdb.tur(), { lun: LUN }));
      expect(await canWrite(h1b)).toBe(Status.GOOD);
    });

    it('PREEMPT of the holder moves the reservation; the preempted nexus gets REGISTRATIONS PREEMPTED (2A/05)', async () => {
      expectGood(await out(h1, SA.REGISTER, 0n, K1));
      expectGood(await out(h2, SA.REGISTER, 0n, K2));
      expectGood(await out(h1, SA.RESERVE, K1, 0n, TYPE.WE));
      expectGood(await out(h2, SA.PREEMPT, K2, K1, TYPE.EA));
      expect(await keys(h2)).toEqual([K2]);
      const res = await inData(h2, IN.READ_RESERVATION);
      expect([be64(res, 8), res[21]! & 0xf]).toEqual([K2, TYPE.EA]);
      expectCheck(await h1.send(Cdb.read10(0, 1), { lun: LUN }), 6, 0x2a, 0x05);
      expect(await canRead(h1)).toBe(Status.RESERVATION_CONFLICT);
      expect(await canWrite(h2)).toBe(Status.GOOD);
    });

    it('PREEMPT that changes the type tells the registrants that stay RESERVATIONS RELEASED; same type does not', async () => {
      const h2b = new Host(HOST_2, array.ports[1]!);
      await h2b.clearUnitAttentions(LUN);
      expectGood(await out(h1, SA.REGISTER, 0n, K1));
      expectGood(await out(h2, SA.REGISTER, 0n, K2));
      expectGood(await out(h2b, SA.REGISTER, 0n, 0x3333n));
      expectGood(await out(h1, SA.RESERVE, K1, 0n, TYPE.WE_RO));
      expectGood(await out(h2, SA.PREEMPT, K2, K1, TYPE.WE_RO));
      expectGood(await h2b.send(Cdb.tur(), { lun: LUN }));
      expectGood(await out(h2b, SA.PREEMPT, 0x3333n, K2, TYPE.EA_RO));
      expectCheck(await h1.send(Cdb.tur(), { lun: LUN }), 6, 0x2a, 0x05);
      expectCheck(await h2.send(Cdb.tur(), { lun: LUN }), 6, 0x2a, 0x05);
      expect(await keys(h2b)).toEqual([0x3333n]);
    });

    it('PREEMPT to a new type keeps other registrants, who get RESERVATIONS RELEASED', async () => {
      const h2b = new Host(HOST_2, array.ports[1]!);
      await h2b.clearUnitAttentions(LUN);
      expectGood(await out(h1, SA.REGISTER, 0n, K1));
      expectGood(await out(h2, SA.REGISTER, 0n, K2));
      expectGood(await out(h2b, SA.REGISTER, 0n, 0x3333n));
      expectGood(await out(h1, SA.RESERVE, K1, 0n, TYPE.WE_RO));
      expectGood(await out(h2, SA.PREEMPT, K2, K1, TYPE.EA_RO));
      expectCheck(await h2b.send(Cdb.tur(), { lun: LUN }), 6, 0x2a, 0x04);
      expectGood(await h2.send(Cdb.tur(), { lun: LUN }));
    });

    it('PREEMPT of a non-holder key only removes those registrations', async () => {
      expectGood(await out(h1, SA.REGISTER, 0n, K1));
      expectGood(await out(h2, SA.REGISTER, 0n, K2));
      expectGood(await out(h1, SA.RESERVE, K1, 0n, TYPE.WE_RO));
      expectGood(await out(h1, SA.PREEMPT, K1, K2, TYPE.WE_RO));
      expect(await keys(h1)).toEqual([K1]);
      expect(be64(await inData(h1, IN.READ_RESERVATION), 8)).toBe(K1);
      expectCheck(await h2.send(Cdb.tur(), { lun: LUN }), 6, 0x2a, 0x05);
      expect(await canWrite(h2)).toBe(Status.RESERVATION_CONFLICT);
    });

    it('PREEMPT errors: unknown key conflicts, zero key without all-registrants is an invalid parameter', async () => {
      expectGood(await out(h1, SA.REGISTER, 0n, K1));
      expectGood(await out(h2, SA.REGISTER, 0n, K2));
      expectGood(await out(h1, SA.RESERVE, K1, 0n, TYPE.WE));
      expect((await out(h2, SA.PREEMPT, K2, 0x777n, TYPE.WE)).status).toBe(Status.RESERVATION_CONFLICT);
      const s = expectCheck(await out(h2, SA.PREEMPT, K2, 0n, TYPE.WE), 5, 0x26, 0x00);
      expect(s.field).toEqual({ inCdb: false, byte: 8 });
      expect((await out(h1b, SA.PREEMPT, K1, K1, TYPE.WE)).status).toBe(Status.RESERVATION_CONFLICT); // unregistered
    });

    it('PREEMPT with key 0 under an all-registrants reservation takes it over alone', async () => {
      expectGood(await out(h1, SA.REGISTER, 0n, K1));
      expectGood(await out(h2, SA.REGISTER, 0n, K2));
      expectGood(await out(h1, SA.RESERVE, K1, 0n, TYPE.WE_AR));
      expectGood(await out(h2, SA.PREEMPT, K2, 0n, TYPE.EA));
      expect(await keys(h2)).toEqual([K2]);
      expect(be64(await inData(h2, IN.READ_RESERVATION), 8)).toBe(K2);
      expectCheck(await h1.send(Cdb.tur(), { lun: LUN }), 6, 0x2a, 0x05);
      expect(await canRead(h1)).toBe(Status.RESERVATION_CONFLICT);
    });

    it("PREEMPT AND ABORT also aborts the preempted nexus's commands in flight", async () => {
      expectGood(await out(h1, SA.REGISTER, 0n, K1));
      expectGood(await out(h2, SA.REGISTER, 0n, K2));
      expectGood(await out(h1, SA.RESERVE, K1, 0n, TYPE.WE));
      // h1's large write holds the range; its second write queues behind and must be aborted.
      const first = h1.send(Cdb.write10(0, 64), { lun: LUN, dataOut: pattern(64 * 512, 1), taskTag: 10 });
      const queued = h1.send(Cdb.write10(0, 64), { lun: LUN, dataOut: pattern(64 * 512, 2), taskTag: 11 });
      expectGood(await out(h2, SA.PREEMPT_AND_ABORT, K2, K1, TYPE.WE));
      const results = [(await first).status, (await queued).status];
      expect(results[1]).toBe(Status.TASK_ABORTED);
      expect(
        Buffer.from(expectGood(await h2.send(Cdb.read10(0, 64), { lun: LUN }))).equals(
          Buffer.from(pattern(64 * 512, 2)),
        ),
      ).toBe(false);
    });
  });

  describe('PERSISTENT RESERVE IN data', () => {
    it('REPORT CAPABILITIES of a memory volume: ATP_C, TMV, all six types, no PTPL_C/SIP_C; APTPL refused', async () => {
      const d = await inData(h1, IN.REPORT_CAPABILITIES);
      expect(be16(d, 0)).toBe(8);
      expect(d[2]).toBe(0x04);
      expect(d[3]! & 0x81).toBe(0x80);
      expect([d[4], d[5]]).toEqual([0xea, 0x01]);
      const s = expectCheck(await out(h1, SA.REGISTER, 0n, K1, 0, { aptpl: true }), 5, 0x26, 0);
      expect(s.field).toEqual({ inCdb: false, byte: 20, bit: 0 });
      expect(await keys(h1)).toEqual([]);
    });

    it('READ FULL STATUS lists each registration with its FC TransportID, relative port and R_HOLDER', async () => {
      expectGood(await out(h1, SA.REGISTER, 0n, K1));
      expectGood(await out(h2, SA.REGISTER, 0n, K2));
      const h2b = new Host(HOST_2, array.ports[1]!);
      await h2b.clearUnitAttentions(LUN);
      expectGood(await out(h2b, SA.REGISTER, 0n, K2));
      expectGood(await out(h1, SA.RESERVE, K1, 0n, TYPE.WE_RO));
      const d = await inData(h2, IN.READ_FULL_STATUS);
      expect(be32(d, 0)).toBe(3);
      const n = be32(d, 4) / 48;
      expect(n).toBe(3);
      const descs = Array.from({ length: n }, (_, i) => {
        const o = 8 + 48 * i;
        return {
          key: be64(d, o),
          holder: (d[o + 12]! & 1) === 1,
          scopeType: d[o + 13],
          relPort: be16(d, o + 18),
          tidLength: be32(d, o + 20),
          tidProtocol: d[o + 24]! & 0xf,
          tidFormat: d[o + 24]! >> 6,
          portName: be64(d, o + 24 + 8),
        };
      });
      expect(descs).toEqual([
        {
          key: K1,
          holder: true,
          scopeType: TYPE.WE_RO,
          relPort: 1,
          tidLength: 24,
          tidProtocol: 0,
          tidFormat: 0,
          portName: HOST_1,
        },
        {
          key: K2,
          holder: false,
          scopeType: 0,
          relPort: 1,
          tidLength: 24,
          tidProtocol: 0,
          tidFormat: 0,
          portName: HOST_2,
        },
        {
          key: K2,
          holder: false,
          scopeType: 0,
          relPort: 2,
          tidLength: 24,
          tidProtocol: 0,
          tidFormat: 0,
          portName: HOST_2,
        },
      ]);
    });

    it('READ KEYS honours the allocation length and keeps the full ADDITIONAL LENGTH', async () => {
      expectGood(await out(h1, SA.REGISTER, 0n, K1));
      expectGood(await out(h2, SA.REGISTER, 0n, K2));
      const d = await inData(h1, IN.READ_KEYS, 12);
      expect(d.length).toBe(12);
      expect(be32(d, 4)).toBe(16);
    });

    it('READ RESERVATION without a reservation has no descriptor', async () => {
      const d = await inData(h1, IN.READ_RESERVATION);
      expect(d.length).toBe(8);
      expect(be32(d, 4)).toBe(0);
    });
  });

  describe('field errors', () => {
    it('parameter list length other than 24 is PARAMETER LIST LENGTH ERROR', async () => {
      expectCheck(await h1.send(Cdb.prOut(SA.REGISTER, 0, 0, 20), { lun: LUN, dataOut: prParams(0n, K1) }), 5, 0x1a, 0);
      expectCheck(
        await h1.send(Cdb.prOut(SA.REGISTER, 0, 0, 24), { lun: LUN, dataOut: new Uint8Array(10) }),
        5,
        0x1a,
        0,
      );
    });

    it('unsupported SPEC_I_PT is INVALID FIELD IN PARAMETER LIST at byte 20 bit 3', async () => {
      const s = expectCheck(await out(h1, SA.REGISTER, 0n, K1, 0, { specIPt: true }), 5, 0x26, 0);
      expect(s.field).toEqual({ inCdb: false, byte: 20, bit: 3 });
    });

    it('bad type, scope and service actions point at the CDB field', async () => {
      expectGood(await out(h1, SA.REGISTER, 0n, K1));
      let s = expectCheck(await out(h1, SA.RESERVE, K1, 0n, 2), 5, 0x24, 0);
      expect(s.field).toEqual({ inCdb: true, byte: 2, bit: 3 });
      s = expectCheck(
        await h1.send(Cdb.prOut(SA.RESERVE, TYPE.WE, 2), { lun: LUN, dataOut: prParams(K1, 0n) }),
        5,
        0x24,
        0,
      );
      expect(s.field).toEqual({ inCdb: true, byte: 2, bit: 7 });
      s = expectCheck(await out(h1, SA.REGISTER_AND_MOVE, K1, K2), 5, 0x24, 0);
      expect(s.field).toEqual({ inCdb: true, byte: 1, bit: 4 });
      s = expectCheck(await h1.send(Cdb.prIn(4), { lun: LUN }), 5, 0x24, 0);
      expect(s.field).toEqual({ inCdb: true, byte: 1, bit: 4 });
    });
  });

  it('initiator port names in READ FULL STATUS come from the nexus, not from a port of the array', async () => {
    expectGood(await out(h1, SA.REGISTER, 0n, K1));
    const d = await inData(h1, IN.READ_FULL_STATUS);
    expect(be64(d, 8 + 24 + 8)).not.toBe(PORT_A);
  });
});
