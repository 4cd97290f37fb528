/**
 * The VM scenario of the guest model (src/vm-model/scenario.ts) against the composed HBA and an
 * in-process SAN: attach, probe, discovery, REPORT LUNS, verified I/O, then a SAN-side link flap
 * that the model must see as LOOP DOWN / LOOP UP before I/O resumes on the next range. And the
 * program wrapper's argument errors.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { packageRoot } from '../../../src/util/package-root.js';
import { runVmScenario, type VmEvent } from '../../../src/vm-model/scenario.js';
import { type HbaUnderTest, startHba, startRamSan, type TestSan, VPORT } from '../hostile/support.js';

describe('VM scenario', () => {
  let san: TestSan | null = null;
  let hba: HbaUnderTest | null = null;
  afterEach(async () => {
    await hba?.close();
    await san?.close();
    hba = null;
    san = null;
  });

  it('verifies I/O, follows a SAN-side link flap, rediscovers and verifies I/O again', async () => {
    const s = await startRamSan();
    san = s;
    hba = startHba({ sanLink: s.linkPath });
    const events: VmEvent[] = [];
    const ok = await runVmScenario(
      {
        socket: hba.socketPath,
        wwpn: VPORT.wwpn,
        wwnn: VPORT.wwnn,
        queueDepth: 16,
        blocks: 256,
        blocksPerIo: 8,
        seed: 40,
        flapWaitMs: 20_000,
      },
      (e) => {
        events.push(e);
        if (e.step === 'waiting-for-flap') s.san.linkDown(VPORT.wwpn);
      },
    );
    const steps = events.map((e) => e.step);
    expect(steps, JSON.stringify(events)).toEqual([
      'attached',
      'link-up',
      'discovered',
      'luns',
      'io',
      'waiting-for-flap',
      'link-down',
      'link-up',
      'discovered',
      'io',
      'done',
    ]);
    expect(ok).toBe(true);
    const io = events.filter((e) => e.step === 'io');
    expect(io.map((e) => [e.phase, e.startLba, e.errors, e.mismatches, e.writes, e.reads])).toEqual([
      [0, 0, 0, 0, 32, 32],
      [1, 256, 0, 0, 32, 32],
    ]);
    const volume = s.san.array('array1').volume('ram')!;
    for (const e of io) {
      const stored = await volume.backing.read(e.startLba * 512, e.blocks * 512);
      expect(createHash('sha256').update(stored).digest('hex')).toBe(e.sha256);
    }
  }, 60_000);

  it('a LUN mapped, then unmapped while it runs: UA 3Fh/0Eh, REPORT LUNS with it, verified I/O on it, REPORT LUNS without it', async () => {
    const s = await startRamSan();
    san = s;
    await s.san.addVolume('array1', { name: 'spare', size: '1MiB' });
    hba = startHba({ sanLink: s.linkPath });
    const events: VmEvent[] = [];
    const ok = await runVmScenario(
      {
        socket: hba.socketPath,
        wwpn: VPORT.wwpn,
        wwnn: VPORT.wwnn,
        queueDepth: 8,
        blocks: 64,
        blocksPerIo: 8,
        seed: 41,
        flapWaitMs: 20_000,
        lunChange: { lun: 2, waitMs: 20_000 },
      },
      (e) => {
        events.push(e);
        if (e.step === 'waiting-for-lun-map') s.san.mapLun('array1', 'h', 2, 'spare');
        if (e.step === 'waiting-for-lun-unmap') s.san.unmapLun('array1', 'h', 2);
        if (e.step === 'waiting-for-flap') s.san.linkDown(VPORT.wwpn);
      },
    );
    expect(ok, JSON.stringify(events)).toBe(true);
    expect(events.filter((e) => e.step === 'luns').map((e) => (e.step === 'luns' ? e.luns : []))).toEqual([
      [0],
      [0, 2],
      [0],
    ]);
    const uas = events.filter((e) => e.step === 'lun-ua');
    expect(uas.map((e) => (e.step === 'lun-ua' ? [e.lun, e.codes.at(-1)] : []))).toEqual([
      [0, '3f/e'],
      [0, '3f/e'],
    ]);
    const io = events.find((e) => e.step === 'lun-io');
    if (io?.step !== 'lun-io') throw new Error('no lun-io event');
    expect([io.lun, io.errors, io.mismatches, io.writes]).toEqual([2, 0, 0, 8]);
    const stored = await s.san
      .array('array1')
      .volume('spare')!
      .backing.read(0, 64 * 512);
    expect(createHash('sha256').update(stored).digest('hex')).toBe(io.sha256);
  }, 60_000);

  it('reports a failure as an error event and done ok=false (no server on the socket)', async () => {
    const events: VmEvent[] = [];
    const ok = await runVmScenario(
      {
        socket: '/nonexistent/vm.sock',
        wwpn: VPORT.wwpn,
        wwnn: VPORT.wwnn,
        queueDepth: 1,
        blocks: 8,
        blocksPerIo: 8,
        seed: 1,
        flapWaitMs: 0,
      },
      (e) => events.push(e),
    );
    expect(ok).toBe(false);
    expect(events.map((e) => e.step)).toEqual(['error', 'done']);
  });
});

describe('vm-model program', () => {
  const main = join(packageRoot(), 'dist/src/vm-model/main.js');
  it('exits 2 with the usage for missing or bad arguments', () => {
    for (const args of [[], ['--socket', 's', '--wwpn', '1', '--wwnn', '2', '--queue-depth', '0'], ['--bogus', 'x']]) {
      const r = spawnSync(process.execPath, [main, ...args], { encoding: 'utf8' });
      expect(r.status, r.stderr).toBe(2);
      expect(r.stderr).toMatch(/usage: main\.js --socket PATH/);
    }
  });

  it('tags every event line and exits 1 when the scenario fails', () => {
    const r = spawnSync(
      process.execPath,
      [
        main,
        '--socket',
        '/nonexistent/vm.sock',
        '--wwpn',
        '10:00:00:00:c9:00:00:01',
        '--wwnn',
        '20:00:00:00:c9:00:00:01',
        '--tag',
        'VM:',
      ],
      { encoding: 'utf8' },
    );
    expect(r.status).toBe(1);
    const lines = r.stdout.trim().split('\n');
    expect(lines.every((l) => l.startsWith('VM:{'))).toBe(true);
    expect(JSON.parse(lines.at(-1)!.slice(3))).toEqual({ step: 'done', ok: false });
  });
});
