/**
 * Random commands from a hostile initiator: whatever the CDB, LUN field, data-out and FCP_DL,
 * every command ends with a well-formed response and the array keeps working.
 */
import { describe, expect, it } from 'vitest';
import { Status } from '../../../src/scsi/sam.js';
import { FIXED_SENSE_LENGTH, parseFixedSense } from '../../../src/scsi/sense.js';
import { MAX_TRANSFER_BYTES } from '../../../src/scsi/block-device.js';
import { Cdb, Host, HOST_1, HOST_2, expectGood, makeArray, pattern } from './helpers.js';
import { rng } from '../../support/rng.js';

const OPCODES = [
  0x00, 0x03, 0x08, 0x0a, 0x12, 0x15, 0x1a, 0x1b, 0x25, 0x28, 0x2a, 0x2f, 0x35, 0x41, 0x42, 0x55, 0x5a, 0x5e, 0x5f,
  0x88, 0x8a, 0x8f, 0x91, 0x93, 0x9e, 0xa0, 0xa3, 0xa8, 0xaa,
];
const STATUSES = new Set<number>([
  Status.GOOD,
  Status.CHECK_CONDITION,
  Status.RESERVATION_CONFLICT,
  Status.TASK_SET_FULL,
  Status.TASK_ABORTED,
]);

describe('hostile input', () => {
  it('3000 random commands all end in well-formed responses', async () => {
    const array = await makeArray();
    try {
      const hosts = [new Host(HOST_1, array.ports[0]!), new Host(HOST_2, array.ports[1]!)];
      const rand = rng(0xc0ffee).float;
      const byte = (): number => Math.floor(rand() * 256);
      for (let i = 0; i < 3000; i++) {
        const cdb = Uint8Array.from({ length: 16 }, byte);
        cdb[0] = rand() < 0.9 ? OPCODES[Math.floor(rand() * OPCODES.length)]! : byte();
        // Keep transfer sizes modest most of the time so the test exercises the paths, not memory.
        if (rand() < 0.7) {
          cdb[2] = 0;
          cdb[3] = 0;
          cdb[6] = 0;
          cdb[10] = 0;
          cdb[11] = 0;
        }
        const lunField =
          rand() < 0.8
            ? Uint8Array.of(0, Math.floor(rand() * 6), 0, 0, 0, 0, 0, 0)
            : Uint8Array.from({ length: Math.floor(rand() * 10) }, byte);
        const dataLength = rand() < 0.5 ? 0 : Math.floor(rand() * 4096);
        const dataOut = dataLength ? Uint8Array.from({ length: dataLength }, byte) : undefined;
        const opts = {
          lunField,
          expectedLength: Math.floor(rand() * 70000),
          taskTag: i,
          ...(dataOut ? { dataOut } : {}),
        };
        const r = await hosts[i % 2]!.send(cdb, opts);
        expect(STATUSES.has(r.status)).toBe(true);
        if (r.status === Status.CHECK_CONDITION) {
          expect(r.sense?.length).toBe(FIXED_SENSE_LENGTH);
          const s = parseFixedSense(r.sense!);
          expect([2, 5, 6]).toContain(s.key);
          expect(r.dataIn).toBeNull();
        } else {
          expect(r.sense).toBeNull();
        }
        expect(r.dataIn?.length ?? 0).toBeLessThanOrEqual(MAX_TRANSFER_BYTES);
      }
      // Still serving normal I/O afterwards.
      const h = hosts[0]!;
      await h.clearUnitAttentions(0);
      await h.send(Cdb.startStop(true));
      // random PERSISTENT RESERVE OUTs may have left a reservation: clear it with a fresh key
      const reg = await h.send(Cdb.prOut(6), {
        dataOut: new Uint8Array([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x12, 0x34, 0, 0, 0, 0, 0, 0, 0, 0]),
      });
      expect(reg.status).toBe(Status.GOOD);
      expectGood(
        await h.send(Cdb.prOut(3), {
          dataOut: new Uint8Array([0, 0, 0, 0, 0, 0, 0x12, 0x34, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
        }),
      );
      const data = pattern(512, 99);
      expectGood(await h.send(Cdb.write10(5, 1), { dataOut: data }));
      expect(expectGood(await h.send(Cdb.read10(5, 1)))).toEqual(data);
    } finally {
      await array.close();
    }
  });
});
