import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Status } from '../../../src/scsi/sam.js';
import { encodeLun } from '../../../src/scsi/cdb.js';
import { parseFixedSense } from '../../../src/scsi/sense.js';
import { TmfResponse } from '../../../src/scsi/device-server.js';
import type { StorageArray } from '../../../src/san/array.js';
import { Cdb, Host, HOST_1, HOST_2, expectCheck, expectGood, makeArray, pattern } from './helpers.js';

describe('unit attentions', () => {
  let array: StorageArray;
  let h1: Host;
  let h1b: Host; // same initiator, other target port: a different I_T nexus
  let h2: Host;
  beforeEach(async () => {
    array = await makeArray();
    h1 = new Host(HOST_1, array.ports[0]!);
    h1b = new Host(HOST_1, array.ports[1]!);
    h2 = new Host(HOST_2, array.ports[0]!);
  });
  afterEach(async () => {
    await array.close();
  });

  it('power on (29/00) is reported once per I_T nexus and per logical unit', async () => {
    expectCheck(await h1.send(Cdb.tur()), 6, 0x29, 0x00);
    expectGood(await h1.send(Cdb.tur()));
    expectCheck(await h1b.send(Cdb.tur()), 6, 0x29, 0x00);
    expectGood(await h1b.send(Cdb.tur()));
    expectCheck(await h1.send(Cdb.tur(), { lun: 1 }), 6, 0x29, 0x00);
    expectGood(await h1.send(Cdb.tur(), { lun: 1 }));
  });

  it('INQUIRY, REPORT LUNS do not report or clear a unit attention; the next TUR still sees it', async () => {
    expectGood(await h1.send(Cdb.inquiry()));
    expectGood(await h1.send(Cdb.reportLuns()));
    expectGood(await h1.send(Cdb.inquiry(255, true, 0x83)));
    expectCheck(await h1.send(Cdb.tur()), 6, 0x29, 0x00);
  });

  it('a unit attention ends a READ before any data moves', async () => {
    const r = await h1.send(Cdb.read10(0, 1));
    expect(r.dataIn).toBeNull();
    expectCheck(r, 6, 0x29, 0x00);
  });

  it('mapping a LUN raises REPORTED LUNS DATA HAS CHANGED (3F/0E) only for that host group, on every nexus', async () => {
    await h1.clearUnitAttentions(0);
    await h1b.clearUnitAttentions(0);
    await h2.clearUnitAttentions(1);
    await array.addVolume({ name: 'extra', size: '1MiB' });
    array.mapLun('host1', 7, 'extra');
    expectCheck(await h1.send(Cdb.tur()), 6, 0x3f, 0x0e);
    expectGood(await h1.send(Cdb.tur()));
    expectCheck(await h1b.send(Cdb.tur()), 6, 0x3f, 0x0e);
    expectGood(await h2.send(Cdb.tur(), { lun: 1 }));
    const luns = expectGood(await h1.send(Cdb.reportLuns()));
    expect(new DataView(luns.buffer).getUint32(0)).toBe(24);
  });

  it('unmapping a LUN raises 3F/0E on the remaining LUNs and the LUN becomes LOGICAL UNIT NOT SUPPORTED', async () => {
    await h1.clearUnitAttentions(0);
    await h1.clearUnitAttentions(1);
    array.unmapLun('host1', 1);
    expectCheck(await h1.send(Cdb.tur(), { lun: 1 }), 5, 0x25, 0x00);
    expectCheck(await h1.send(Cdb.tur(), { lun: 0 }), 6, 0x3f, 0x0e);
    expectGood(await h1.send(Cdb.tur(), { lun: 0 }));
  });

  it('resizing raises CAPACITY DATA HAS CHANGED (2A/09) for every nexus that knows the volume, once', async () => {
    await h1.clearUnitAttentions(1);
    await h2.clearUnitAttentions(1);
    await array.resizeVolume('shared', '16MiB');
    expectCheck(await h1.send(Cdb.readCapacity10(), { lun: 1 }), 6, 0x2a, 0x09);
    const cap = expectGood(await h1.send(Cdb.readCapacity10(), { lun: 1 }));
    expect(new DataView(cap.buffer).getUint32(0)).toBe(16 * 2048 - 1);
    expectCheck(await h2.send(Cdb.tur(), { lun: 1 }), 6, 0x2a, 0x09);
    expectGood(await h2.send(Cdb.tur(), { lun: 1 }));
    // a nexus that never talked to it gets the power-on condition instead, then nothing
    expectCheck(await h1b.send(Cdb.tur(), { lun: 1 }), 6, 0x29, 0x00);
    expectGood(await h1b.send(Cdb.tur(), { lun: 1 }));
  });

  it('queued conditions are reported one per command, in order', async () => {
    await h1.clearUnitAttentions(1);
    await array.resizeVolume('shared', '12MiB');
    await array.addVolume({ name: 'x', size: '1MiB' });
    array.mapLun('host1', 2, 'x');
    expectCheck(await h1.send(Cdb.tur(), { lun: 1 }), 6, 0x2a, 0x09);
    expectCheck(await h1.send(Cdb.tur(), { lun: 1 }), 6, 0x3f, 0x0e);
    expectGood(await h1.send(Cdb.tur(), { lun: 1 }));
  });

  it('LUN RESET raises 29/03 for every nexus of that LU and leaves data and other LUs alone', async () => {
    await h1.clearUnitAttentions(0);
    await h1.clearUnitAttentions(1);
    await h2.clearUnitAttentions(1);
    const data = pattern(512, 1);
    expectGood(await h1.send(Cdb.write10(3, 1), { lun: 1, dataOut: data }));
    expect(await h1.port.taskManagement(h1.nexus, encodeLun(1), 'lun-reset')).toBe(TmfResponse.COMPLETE);
    expectCheck(await h2.send(Cdb.tur(), { lun: 1 }), 6, 0x29, 0x03);
    expectCheck(await h1.send(Cdb.read10(3, 1), { lun: 1 }), 6, 0x29, 0x03);
    expect(expectGood(await h1.send(Cdb.read10(3, 1), { lun: 1 }))).toEqual(data);
    expectGood(await h1.send(Cdb.tur(), { lun: 0 }));
  });

  it('TARGET RESET raises 29/03 on every LU', async () => {
    await h1.clearUnitAttentions(0);
    await h2.clearUnitAttentions(5);
    expect(await h1.port.taskManagement(h1.nexus, encodeLun(0), 'target-reset')).toBe(TmfResponse.COMPLETE);
    expectCheck(await h1.send(Cdb.tur(), { lun: 0 }), 6, 0x29, 0x03);
    expectCheck(await h2.send(Cdb.tur(), { lun: 5 }), 6, 0x29, 0x03);
  });

  it('nexus loss gives only that nexus I_T NEXUS LOSS OCCURRED (29/07)', async () => {
    await h1.clearUnitAttentions(0);
    await h1b.clearUnitAttentions(0);
    h1.port.nexusLost(h1.nexus);
    expectCheck(await h1.send(Cdb.tur()), 6, 0x29, 0x07);
    expectGood(await h1.send(Cdb.tur()));
    expectGood(await h1b.send(Cdb.tur()));
  });

  describe('task management', () => {
    it('rejects CLEAR ACA, and LU functions on an unmapped LUN', async () => {
      expect(await h1.port.taskManagement(h1.nexus, encodeLun(0), 'clear-aca')).toBe(TmfResponse.NOT_SUPPORTED);
      expect(await h2.port.taskManagement(h2.nexus, encodeLun(0), 'lun-reset')).toBe(TmfResponse.INCORRECT_LUN);
      expect(await h1.port.taskManagement(h1.nexus, encodeLun(0), 'abort-task')).toBe(TmfResponse.FAILED);
    });

    it('ABORT TASK ends the addressed in-flight command with TASK ABORTED; others complete', async () => {
      await h1.clearUnitAttentions(0);
      const victim = h1.send(Cdb.read10(0, 2048), { taskTag: 77 });
      const bystander = h1.send(Cdb.read10(0, 8), { taskTag: 78 });
      expect(await h1.port.taskManagement(h1.nexus, encodeLun(0), 'abort-task', 77)).toBe(TmfResponse.COMPLETE);
      expect((await victim).status).toBe(Status.TASK_ABORTED);
      expect((await bystander).status).toBe(Status.GOOD);
    });

    it("ABORT TASK SET aborts only the nexus's own tasks; CLEAR TASK SET aborts everyone's on the LU", async () => {
      await h1.clearUnitAttentions(1);
      await h2.clearUnitAttentions(1);
      let mine = h1.send(Cdb.read10(0, 64), { lun: 1, taskTag: 1 });
      let theirs = h2.send(Cdb.read10(0, 64), { lun: 1, taskTag: 1 });
      await h1.port.taskManagement(h1.nexus, encodeLun(1), 'abort-task-set');
      expect((await mine).status).toBe(Status.TASK_ABORTED);
      expect((await theirs).status).toBe(Status.GOOD);
      mine = h1.send(Cdb.read10(0, 64), { lun: 1, taskTag: 2 });
      theirs = h2.send(Cdb.read10(0, 64), { lun: 1, taskTag: 2 });
      await h1.port.taskManagement(h1.nexus, encodeLun(1), 'clear-task-set');
      expect((await mine).status).toBe(Status.TASK_ABORTED);
      expect((await theirs).status).toBe(Status.TASK_ABORTED);
    });

    it('an aborted WRITE that had not started leaves the blocks untouched', async () => {
      await h1.clearUnitAttentions(0);
      // The first write holds the range; the second queues behind it and is aborted before it starts.
      const first = h1.send(Cdb.write10(0, 8), { dataOut: pattern(4096, 2), taskTag: 1 });
      const second = h1.send(Cdb.write10(0, 8), { dataOut: pattern(4096, 3), taskTag: 2 });
      await h1.port.taskManagement(h1.nexus, encodeLun(0), 'abort-task', 2);
      expect((await first).status).toBe(Status.GOOD);
      expect((await second).status).toBe(Status.TASK_ABORTED);
      expect(expectGood(await h1.send(Cdb.read10(0, 8)))).toEqual(pattern(4096, 2));
    });
  });

  it('REQUEST SENSE after a unit attention was reported by TUR returns NO SENSE', async () => {
    expectCheck(await h1.send(Cdb.tur()), 6, 0x29, 0);
    const s = parseFixedSense(expectGood(await h1.send(Cdb.requestSense())));
    expect(s.key).toBe(0);
  });
});

describe('queue limits', () => {
  it('commands beyond the per-nexus limit end with TASK SET FULL; other nexuses are unaffected', async () => {
    const { MAX_TASKS_PER_NEXUS } = await import('../../../src/scsi/device-server.js');
    const array = await makeArray();
    try {
      const h1 = new Host(HOST_1, array.ports[0]!);
      const h2 = new Host(HOST_2, array.ports[0]!);
      await h1.clearUnitAttentions(0);
      await h2.clearUnitAttentions(1);
      const flood = Array.from({ length: MAX_TASKS_PER_NEXUS + 3 }, (_, i) =>
        h1.send(Cdb.read10(0, 1), { taskTag: i }),
      );
      const other = h2.send(Cdb.read10(0, 1), { lun: 1 });
      const statuses = (await Promise.all(flood)).map((r) => r.status);
      expect(statuses.filter((s) => s === Status.GOOD).length).toBe(MAX_TASKS_PER_NEXUS);
      expect(statuses.filter((s) => s === Status.TASK_SET_FULL).length).toBe(3);
      expect((await other).status).toBe(Status.GOOD);
      expectGood(await h1.send(Cdb.read10(0, 1)));
    } finally {
      await array.close();
    }
  });
});
