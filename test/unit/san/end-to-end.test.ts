import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  FC4_FEATURE,
  NS,
  decodeNameList,
  encodeFtRequest,
  encodePortIdRequest,
  nameServerRequest,
} from '../../../src/fc/ct.js';
import { LinkDownError } from '../../../src/fc/nport/errors.js';
import { Initiator } from '../../../src/fc/initiator.js';
import { FakeScsiTarget, INQUIRY, REPORT_LUNS, read10, write10 } from './fake-scsi.js';
import { type TestSan, startTestSan, until } from './helpers.js';

const HBA = { wwpn: 0x21000024ff000001n, wwnn: 0x20000024ff000001n };
const VPORT = { wwpn: 0xc05076ffe5000001n, wwnn: 0xc05076ffe5000000n };
const TGT = { wwpn: 0x500a098100000001n, wwnn: 0x500a098000000001n };

describe('FCP transport: initiator ↔ fabric ↔ target (fake SCSI port) over real links', () => {
  let san: TestSan;
  let disk: FakeScsiTarget;
  beforeEach(async () => {
    san = await startTestSan();
    disk = new FakeScsiTarget(TGT.wwpn, TGT.wwnn);
    await san.addTarget(disk);
  });
  afterEach(async () => san.close());

  it('logs in, discovers the target, and runs INQUIRY, REPORT LUNS, WRITE and READ', async () => {
    const hba = await Initiator.connect(san.linkPath, { ...HBA, exchangeTimeoutMs: 2000 });
    expect(hba.nportId >> 16).toBe(1);
    expect(hba.fabric?.npivSupported).toBe(true);
    const vport = await hba.createVport(VPORT);
    expect(vport.nportId).not.toBe(hba.nportId);
    expect(vport.nportId >> 8).toBe(hba.nportId >> 8); // same F_Port area, next AL_PA
    await vport.scr();
    await vport.nameServer.register({ fcpFeatures: FC4_FEATURE.INITIATOR, symbolicNodeName: 'test host' });

    const targets = await vport.discoverTargets();
    expect(targets.map((t) => t.wwpn)).toEqual([TGT.wwpn]);
    expect(targets[0]!.wwnn).toBe(TGT.wwnn);
    const t = targets[0]!.nportId;
    await vport.plogi(t);
    const spp = await vport.prli(t);
    expect(spp & 0x10).toBe(0x10); // target function

    const inq = await vport.scsiCommand(t, { lun: 0, cdb: INQUIRY, direction: 'read', expectedLength: 36 });
    expect(inq.status).toBe(0);
    expect(new TextDecoder().decode(inq.data.subarray(8, 16))).toBe('NPIVHBA ');

    const luns = await vport.scsiCommand(t, { lun: 0, cdb: REPORT_LUNS, direction: 'read', expectedLength: 64 });
    expect(luns.status).toBe(0);
    expect(luns.residualUnder).toBe(true);
    expect(luns.residual).toBe(64 - 16);
    expect(luns.data.length).toBe(16);

    // 40 blocks = 20 KiB: several XFER_RDY-less frames each way (2048-byte data fields).
    const data = new Uint8Array(40 * 512).map((_, i) => (i * 7 + 3) & 0xff);
    const w = await vport.scsiCommand(t, { lun: 0, cdb: write10(100, 40), direction: 'write', dataOut: data });
    expect(w.status).toBe(0);
    expect(disk.disk.subarray(100 * 512, 140 * 512)).toEqual(data);
    const r = await vport.scsiCommand(t, {
      lun: 0,
      cdb: read10(100, 40),
      direction: 'read',
      expectedLength: data.length,
    });
    expect(r.status).toBe(0);
    expect(r.residualUnder).toBe(false);
    expect(r.data).toEqual(data);
    expect(r.transferred).toBe(data.length);
    expect(w.transferred).toBe(data.length);

    // The SCSI layer saw the vport's WWPN as the initiator of the nexus.
    expect(disk.requests.every((q) => q.nexus.initiatorWwpn === VPORT.wwpn && q.nexus.targetWwpn === TGT.wwpn)).toBe(
      true,
    );
    hba.closeLink();
  });

  it('reports sense data and over-run residuals', async () => {
    const hba = await Initiator.connect(san.linkPath, HBA);
    const [t] = await hba.discoverTargets();
    await hba.plogi(t!.nportId);
    await hba.prli(t!.nportId);
    const bad = await hba.scsiCommand(t!.nportId, {
      lun: 0,
      cdb: read10(5000, 1),
      direction: 'read',
      expectedLength: 512,
    });
    expect(bad.status).toBe(2);
    expect(bad.sense?.[2]).toBe(5);
    expect(bad.sense?.[12]).toBe(0x21);
    // Ask for fewer bytes than the command returns: the target sends FCP_DL bytes and reports over-run.
    const over = await hba.scsiCommand(t!.nportId, { lun: 0, cdb: INQUIRY, direction: 'read', expectedLength: 20 });
    expect(over.residualOver).toBe(true);
    expect(over.residual).toBe(16);
    expect(over.data.length).toBe(20);
    hba.closeLink();
  });

  it('aborts a command the target never completes (ABTS → BA_ACC) and tells the SCSI layer', async () => {
    const hba = await Initiator.connect(san.linkPath, HBA);
    const [t] = await hba.discoverTargets();
    await hba.plogi(t!.nportId);
    await hba.prli(t!.nportId);
    disk.hang = true;
    await expect(
      hba.scsiCommand(t!.nportId, {
        lun: 0,
        cdb: read10(0, 1),
        direction: 'read',
        expectedLength: 512,
        timeoutMs: 200,
      }),
    ).rejects.toThrow(/no reply within/);
    expect(disk.tmfs.some((x) => x.fn === 'abort-task')).toBe(true);
    disk.hang = false;
    const ok = await hba.scsiCommand(t!.nportId, { lun: 0, cdb: INQUIRY, direction: 'read', expectedLength: 36 });
    expect(ok.status).toBe(0);
    hba.closeLink();
  });

  it('passes raw ELS and CT through for a guest (replies as received, rejects included)', async () => {
    const hba = await Initiator.connect(san.linkPath, HBA);
    const ct = await hba.ctRaw(
      0xfffffc,
      nameServerRequest(NS.GPN_FT, encodeFtRequest({ domainScope: 0, areaScope: 0, fc4Type: 8 })),
    );
    expect((ct[8]! << 8) | ct[9]!).toBe(0x8002);
    expect(decodeNameList(ct.subarray(16)).map((e) => e.name)).toEqual([TGT.wwpn]);
    const rej = await hba.ctRaw(0xfffffc, nameServerRequest(NS.GPN_ID, encodePortIdRequest(0x01ee00)));
    expect((rej[8]! << 8) | rej[9]!).toBe(0x8001);
    const els = await hba.elsRaw(0xfffffc, Uint8Array.of(0x7a, 0, 0, 0));
    expect(els[0]).toBe(0x01); // LS_RJT, returned rather than thrown
    hba.closeLink();
  });

  it('task management: LUN reset reaches the SCSI layer and completes', async () => {
    const hba = await Initiator.connect(san.linkPath, HBA);
    const [t] = await hba.discoverTargets();
    await hba.plogi(t!.nportId);
    await hba.prli(t!.nportId);
    expect(await hba.taskManagement(t!.nportId, 0, 'lun-reset')).toBe(0);
    expect(disk.tmfs.map((x) => x.fn)).toContain('lun-reset');
    hba.closeLink();
  });

  it('refuses SCSI commands without PRLI and tells the target on LOGO', async () => {
    const hba = await Initiator.connect(san.linkPath, HBA);
    const [t] = await hba.discoverTargets();
    await hba.plogi(t!.nportId);
    await expect(
      hba.scsiCommand(t!.nportId, { lun: 0, cdb: INQUIRY, direction: 'read', expectedLength: 36 }),
    ).rejects.toThrow(/image pair/);
    await hba.prli(t!.nportId);
    await hba.logo(t!.nportId);
    expect(disk.lost.map((n) => n.initiatorWwpn)).toEqual([HBA.wwpn]);
    hba.closeLink();
  });
});

describe('link loss and logout as the target sees them', () => {
  let san: TestSan;
  let disk: FakeScsiTarget;
  beforeEach(async () => {
    san = await startTestSan();
    disk = new FakeScsiTarget(TGT.wwpn, TGT.wwnn);
    await san.addTarget(disk);
  });
  afterEach(async () => san.close());

  it('an initiator whose link drops loses its nexus at the target (RSCN, then GPN_ID fails)', async () => {
    const hba = await Initiator.connect(san.linkPath, HBA);
    const [t] = await hba.discoverTargets();
    await hba.plogi(t!.nportId);
    await hba.prli(t!.nportId);
    hba.closeLink();
    await until(() => disk.lost.length === 1, 'nexus lost at the target');
    expect(disk.lost[0]).toMatchObject({ initiatorWwpn: HBA.wwpn, targetWwpn: TGT.wwpn });
  });

  it("the fabric taking a link down fails the initiator's open exchanges and reports link down", async () => {
    const hba = await Initiator.connect(san.linkPath, HBA);
    const [t] = await hba.discoverTargets();
    await hba.plogi(t!.nportId);
    await hba.prli(t!.nportId);
    disk.hang = true;
    const pending = hba.scsiCommand(t!.nportId, { lun: 0, cdb: read10(0, 1), direction: 'read', expectedLength: 512 });
    const down = new Promise<string>((r) => hba.once('link-down', r));
    await until(() => disk.requests.length > 0, 'command reached the target');
    expect(san.fabric.linkDown(HBA.wwpn)).toBe(true);
    expect(await down).toMatch(/peer closed|socket/);
    await expect(pending).rejects.toBeInstanceOf(LinkDownError);
    expect(hba.loggedIn).toBe(false);
    expect(hba.sessions.size).toBe(0);
  });
});
