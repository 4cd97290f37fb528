/**
 * The guest model's verified I/O, end to end over a real vfio-user socket: the composed HBA cabled
 * to an in-process SAN, the model attached as QEMU attaches, the qla2xxx probe, discovery, REPORT
 * LUNS, and the pattern written at queue depth 16, read back and found in the SAN's volume.
 */
import { createHash } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { QlaDriverModel } from '../../../src/vm-model/qla-driver.js';
import { patternBlock, patternSha256, runVerifiedIo } from '../../../src/vm-model/verified-io.js';
import {
  type HbaUnderTest,
  SAN_VOLUME_BLOCKS,
  startHba,
  startRamSan,
  type TestSan,
  VPORT,
} from '../hostile/support.js';

describe('patternBlock', () => {
  it('is a pure function of (seed, LBA) that differs between blocks and seeds', () => {
    expect(Buffer.from(patternBlock(7, 100)).equals(patternBlock(7, 100))).toBe(true);
    expect(Buffer.from(patternBlock(7, 100)).equals(patternBlock(7, 101))).toBe(false);
    expect(Buffer.from(patternBlock(7, 100)).equals(patternBlock(8, 100))).toBe(false);
    expect(new TextDecoder().decode(patternBlock(1, 2).subarray(0, 8))).toBe('NPIVHBA!');
  });
});

describe('verified I/O through the emulated HBA', () => {
  let san: TestSan | null = null;
  let hba: HbaUnderTest | null = null;
  let model: QlaDriverModel | null = null;
  afterEach(async () => {
    model?.close();
    await hba?.close();
    await san?.close();
    model = null;
    hba = null;
    san = null;
  });

  it('writes the pattern at QD16, reads it back, and the SAN volume holds exactly those bytes', async () => {
    san = await startRamSan();
    hba = startHba({ sanLink: san.linkPath });
    model = await QlaDriverModel.attach(hba.socketPath);
    await model.probe(VPORT.wwpn, VPORT.wwnn);
    await model.discover();
    expect(await model.reportLuns()).toEqual([0]);

    const range = { startLba: 64, blocks: 1024 };
    const r = await runVerifiedIo(model, { lun: 0, ...range, blocksPerIo: 16, queueDepth: 16, seed: 0x1234 });
    expect(r.errorSamples).toEqual([]);
    expect(r).toMatchObject({ writes: 64, reads: 64, errors: 0, mismatches: 0 });

    const volume = san.san.array('array1').volume('ram')!;
    const stored = await volume.backing.read(range.startLba * 512, range.blocks * 512);
    expect(createHash('sha256').update(stored).digest('hex')).toBe(r.sha256);
    expect(r.sha256).toBe(patternSha256(0x1234, range.startLba, range.blocks));
    // Outside the range the volume is untouched (RAM volumes start zeroed).
    const before = await volume.backing.read(0, range.startLba * 512);
    expect(before.every((b) => b === 0)).toBe(true);
  });

  it('counts a command the target refuses as an error (beyond the end of the LUN), never as data', async () => {
    san = await startRamSan();
    hba = startHba({ sanLink: san.linkPath });
    model = await QlaDriverModel.attach(hba.socketPath);
    await model.probe(VPORT.wwpn, VPORT.wwnn);
    await model.discover();
    const r = await runVerifiedIo(model, {
      lun: 0,
      startLba: SAN_VOLUME_BLOCKS - 8,
      blocks: 16,
      blocksPerIo: 8,
      queueDepth: 2,
      seed: 1,
    });
    expect(r.writes).toBe(2);
    expect(r.errors).toBe(2); // the second WRITE and the second READ run past the last LBA
    expect(r.errorSamples.join('\n')).toMatch(/WRITE\(10\) lba 2048: .*scsi_status 0x2 sense 70/);
    expect(r.mismatches).toBe(0);
  });
});
