/**
 * The host NPIV backend proven without FC hardware: a two-level lab.
 *
 *   level 0 (this test)   npiv-hba san (zoning + masking) ── npiv-hba serve --npiv-wwpn VM ─┐
 *                                                                                           │ vfio-user
 *   level 1 (QEMU guest)  qla2xxx on the emulated ISP2532 = "the host's physical FC HBA"  ◄─┘
 *                         npiv-hba serve --backend host:hostN --wwpn VM   (Node.js from the
 *                         9p-shared rootfs, this checkout read-only over 9p)
 *                              ▲ vfio-user (inside level 1)
 *   level 2               the qla2xxx-like guest model (src/vm-model/main.js) = "the VM"
 *
 * About 140 s under TCG on two shared cores (the runtime LUN phase included). The serve in level 1 creates a real NPIV vport on level 1's qla2xxx (vport_create), so the
 * emulated ISP2532 FDISCs the VM's WWPN on level 1's link; the VM model then logs in, discovers,
 * and verifies I/O at queue depth 16 through level 1's sg node. Asserted: the SAN sees the FDISC
 * on level 1's F_Port; zoning and masking apply to the VM's WWPN (only its target, only its LUN);
 * level 1 has no block device at all; the written bytes are in the SAN's volume file; a LUN
 * mapped to the VM's host group while it runs reaches it as REPORTED LUNS DATA HAS CHANGED and in
 * REPORT LUNS, level 1 scans it with no block device and the VM verifies I/O on it, and once
 * unmapped it leaves REPORT LUNS and level 1 deletes its SCSI device (sg node); a SAN-side link
 * flap reaches serve as FC transport netlink events and the VM as LOOP DOWN / LOOP UP, and I/O
 * resumes; stopping serve deletes the host vport.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type GuestRunResult, haveGuestEnvironment, runGuest } from '../../src/harness/guest.js';
import type { HostLabReport } from '../../src/lab/host-lab.js';
import {
  FLAP_REQUEST_LINE,
  LUN_MAP_REQUEST_LINE,
  LUN_UNMAP_REQUEST_LINE,
  PROJECT_SHARE_TAG,
  TWO_LEVEL_NAMES,
  TWO_LEVEL_VM_LUN,
  twoLevelGuestScript,
  twoLevelSanConfig,
  vmEvents as twoLevelVmEvents,
} from '../../src/lab/two-level.js';
import { controlRequest } from '../../src/san/control.js';
import type { SanStatus } from '../../src/san/san.js';
import type { VmEvent } from '../../src/vm-model/scenario.js';
import { PROJECT_ROOT, type ProjectProcess, startCli, waitForPath } from './support/processes.js';

// The SAN configuration and the level-1 script are the lab's own (src/lab/two-level.ts), so that
// `npiv-hba lab --backend host` and this test run the same thing.
const { level1: L1, vm: VM, targetVm: TARGET_VM } = TWO_LEVEL_NAMES;
const VM_LUN = TWO_LEVEL_VM_LUN;
const BLOCKS = 1024;
const SEED = 0x2026;

/** The LUN mapped to the VM at runtime, and its volume (on the VM's array, unmapped at start). */
const NEW_LUN = 5;
const SPARE = { name: 'vm-spare', size: '16MiB', file: 'vm-spare.img' };

const SAN_CONFIG = twoLevelSanConfig({
  vmLun: VM_LUN,
  vmVolumeSize: '32MiB',
  vmVolumeFile: 'vm-lun.img',
  spareVolume: SPARE,
});

function guestScript(): string {
  return twoLevelGuestScript({
    vm: VM,
    blocks: BLOCKS,
    seed: SEED,
    flapWaitMs: 180_000,
    lunChange: { lun: NEW_LUN, waitMs: 180_000 },
  });
}

/** serve's log records the level-1 script printed (SERVE-EVENT lines). */
function serveEvents(run: GuestRunResult): { event: string; reason?: string; code?: string; [k: string]: unknown }[] {
  const out = [];
  for (const line of run.guestLines) {
    if (!line.startsWith('SERVE-EVENT ')) continue;
    try {
      out.push(JSON.parse(line.slice('SERVE-EVENT '.length)));
    } catch {
      // a line cut by the console
    }
  }
  return out;
}

const listed = (run: GuestRunResult, key: string): string[] | undefined =>
  run.guestLines
    .find((l) => l.startsWith(`${key} `) || l === key)
    ?.slice(key.length)
    .trim()
    .split(/\s+/)
    .filter((w) => w !== '');

const vmEvents = (run: GuestRunResult): VmEvent[] => twoLevelVmEvents(run.guestLines);

describe.skipIf(!haveGuestEnvironment())('two-level lab: host NPIV backend inside a guest', () => {
  const dir = mkdtempSync(join(tmpdir(), 'npiv-two-level-'));
  const link = join(dir, 'san.sock');
  const control = join(dir, 'san-ctl.sock');
  const procs: ProjectProcess[] = [];
  let run: GuestRunResult;
  let before: SanStatus;
  let during: SanStatus | null = null;
  let flapError: unknown = null;
  let lunError: unknown = null;
  const lunRequests: string[] = [];

  beforeAll(async () => {
    writeFileSync(join(dir, 'san.json'), JSON.stringify(SAN_CONFIG));
    const san = startCli(['san', '--config', join(dir, 'san.json'), '--link', link, '--control', control]);
    procs.push(san);
    await waitForPath(link, san);
    await waitForPath(control, san);
    const socket = join(dir, 'level1.sock');
    const serve = startCli([
      'serve',
      '--socket',
      socket,
      '--san',
      link,
      '--wwpn',
      L1.wwpn,
      '--wwnn',
      L1.wwnn,
      '--npiv-wwpn',
      `${VM.wwpn}:${VM.wwnn}`,
    ]);
    procs.push(serve);
    await waitForPath(socket, serve);
    before = (await controlRequest(control, { cmd: 'status' })).result as SanStatus;
    // The VM model says when its first I/O phase is verified; then the SAN drops level 1's link
    // for a moment (as a switch port bounce would), which takes the host vport down with it.
    const flap = async (): Promise<void> => {
      try {
        during = (await controlRequest(control, { cmd: 'status' })).result as SanStatus;
        await controlRequest(control, { cmd: 'link-down', wwpn: L1.wwpn });
        await new Promise((r) => setTimeout(r, 3000));
        await controlRequest(control, { cmd: 'link-up', wwpn: L1.wwpn });
      } catch (err) {
        flapError = err;
      }
    };
    const lunRequest = async (cmd: 'map-lun' | 'unmap-lun'): Promise<void> => {
      try {
        lunRequests.push(cmd);
        const req =
          cmd === 'map-lun'
            ? { cmd, array: 'array-vm', hostGroup: 'vm', lun: NEW_LUN, volume: SPARE.name }
            : { cmd, array: 'array-vm', hostGroup: 'vm', lun: NEW_LUN };
        const r = await controlRequest(control, req);
        if (!r.ok) throw new Error(`${cmd}: ${r.error}`);
      } catch (err) {
        lunError = err;
      }
    };
    run = await runGuest({
      devices: [socket],
      script: guestScript(),
      shareRootfs: true,
      shares: [{ tag: PROJECT_SHARE_TAG, path: PROJECT_ROOT }],
      memMiB: 1536,
      loadQla: false,
      timeoutMs: 1_500_000,
      onLine: (line) => {
        if (line.includes(FLAP_REQUEST_LINE)) void flap();
        else if (line.includes(LUN_MAP_REQUEST_LINE)) void lunRequest('map-lun');
        else if (line.includes(LUN_UNMAP_REQUEST_LINE)) void lunRequest('unmap-lun');
      },
    });
  }, 1_600_000);

  afterAll(async () => {
    for (const p of procs.reverse()) await p.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const context = (): string =>
    `guest lines:\n${run.guestLines.join('\n')}\n--- console tail:\n${run.output.slice(-6000)}\n--- level-0 serve:\n${procs[1]?.log().slice(-4000)}`;

  it('level 1 boots with qla2xxx on the emulated HBA, NPIV-capable, and runs npiv-hba', () => {
    expect(run.timedOut, context()).toBe(false);
    expect(run.exitStatus, context()).toBe(0);
    const l1 = run.guestLines.find((l) => l.startsWith('L1 '))?.split(' ');
    expect(l1?.[2], context()).toBe(`0x${L1.wwpn.replaceAll(':', '')}`);
    expect(Number(l1?.[3])).toBeGreaterThan(0);
    expect(
      run.guestLines.some((l) => l.startsWith('HOSTLIST ') && l.includes(L1.wwpn)),
      context(),
    ).toBe(true);
  });

  it('the VM logs in through a host vport that FDISCs its WWPN on level 1 link, and sees only its zoned target and masked LUN', () => {
    expect(run.guestLines, context()).toContain('VPORTS 1');
    const events = vmEvents(run);
    expect(
      events.filter((e) => e.step === 'error'),
      context(),
    ).toEqual([]);
    const l1Login = during?.logins.find((l) => l.wwpn === L1.wwpn);
    const vmLogin = during?.logins.find((l) => l.wwpn === VM.wwpn);
    expect(l1Login?.physical, context()).toBe(true);
    expect(vmLogin?.physical).toBe(false); // FDISC
    expect(vmLogin?.fPortArea).toBe(l1Login?.fPortArea); // on level 1's F_Port
    const vmTarget = during?.targetPorts.find((t) => t.wwpn === TARGET_VM.wwpn);
    const discovered = events.filter((e) => e.step === 'discovered');
    expect(discovered.length).toBeGreaterThan(0);
    for (const d of discovered) expect(`0x${d.step === 'discovered' ? d.targetPortId : ''}`).toBe(vmTarget?.nportId);
    expect(events.find((e) => e.step === 'luns')).toEqual({ step: 'luns', luns: [VM_LUN] });
    expect(events.filter((e) => e.step === 'luns').map((e) => (e.step === 'luns' ? e.luns : []))).toEqual([
      [VM_LUN],
      [VM_LUN, NEW_LUN],
      [VM_LUN],
    ]);
    expect(before.logins.some((l) => l.wwpn === VM.wwpn)).toBe(false);
  });

  it('writes and reads verified at QD16, and the bytes are in the SAN volume file', () => {
    const io = vmEvents(run).filter((e) => e.step === 'io');
    expect(io.length, context()).toBe(2);
    const file = join(dir, 'vm-lun.img');
    const image = readFileSync(file);
    for (const e of io) {
      if (e.step !== 'io') continue;
      expect([e.errors, e.mismatches, e.errorSamples], context()).toEqual([0, 0, []]);
      const stored = image.subarray(e.startLba * 512, (e.startLba + e.blocks) * 512);
      expect(createHash('sha256').update(stored).digest('hex')).toBe(e.sha256);
    }
    expect(run.guestLines).toContain('VM-EXIT 0');
  });

  it('a LUN mapped at runtime reaches the VM (UA 3Fh/0Eh, REPORT LUNS), verified I/O on it; level 1 scans it without a block device', () => {
    expect([lunError, lunRequests], context()).toEqual([null, ['map-lun', 'unmap-lun']]);
    const events = vmEvents(run);
    const uas = events.filter((e) => e.step === 'lun-ua');
    expect(uas, context()).toHaveLength(2);
    for (const e of uas) if (e.step === 'lun-ua') expect([e.lun, e.codes.includes('3f/e')]).toEqual([VM_LUN, true]);
    const io = events.find((e) => e.step === 'lun-io');
    expect(io, context()).toBeDefined();
    if (io?.step !== 'lun-io') return;
    expect([io.lun, io.errors, io.mismatches, io.errorSamples], context()).toEqual([NEW_LUN, 0, 0, []]);
    expect(io.writes).toBeGreaterThan(0);
    const stored = readFileSync(join(dir, SPARE.file)).subarray(0, io.blocks * 512);
    expect(createHash('sha256').update(stored).digest('hex')).toBe(io.sha256);
    // Level 1 at that moment: a SCSI device (sg) for the new LUN on the vport's host, no block device.
    const vportHost = run.guestLines
      .find((l) => l.startsWith('L1VPORT '))
      ?.split(' ')[5]
      ?.replace('host', '');
    const mapped = listed(run, 'MAPPED-SCSIDEV') ?? [];
    expect(
      mapped.filter((d) => d.startsWith(`${vportHost}:`) && d.endsWith(`:${NEW_LUN}`)),
      context(),
    ).toHaveLength(1);
    expect(listed(run, 'MAPPED-BLOCK'), context()).toEqual([]);
    // serve re-read the inventory and scanned the new LUN itself.
    const changes = serveEvents(run).filter((e) => e.event === 'host_luns_changed');
    expect(
      changes.some((e) => (e.added as string[]).includes(String(NEW_LUN))),
      context(),
    ).toBe(true);
  });

  it('the unmapped LUN leaves REPORT LUNS and level 1 deletes its SCSI device and sg node', () => {
    const changes = serveEvents(run).filter((e) => e.event === 'host_luns_changed');
    expect(
      changes.some((e) => (e.removed as string[]).includes(String(NEW_LUN))),
      context(),
    ).toBe(true);
    const vportHost = run.guestLines
      .find((l) => l.startsWith('L1VPORT '))
      ?.split(' ')[5]
      ?.replace('host', '');
    const after = listed(run, 'SCSIDEV') ?? [];
    expect(
      after.filter((d) => d.startsWith(`${vportHost}:`) && d.endsWith(`:${NEW_LUN}`)),
      context(),
    ).toEqual([]);
    expect(
      after.filter((d) => d.startsWith(`${vportHost}:`) && d.endsWith(`:${VM_LUN}`)),
      context(),
    ).toHaveLength(1);
  });

  it('a SAN-side link flap reaches serve as FC netlink events and the VM as link down / link up; I/O resumes', () => {
    expect(flapError).toBe(null);
    const steps = vmEvents(run).map((e) => e.step);
    expect(steps, context()).toEqual([
      'attached',
      'link-up',
      'discovered',
      'luns',
      'io',
      'waiting-for-lun-map',
      'lun-ua',
      'luns',
      'lun-io',
      'waiting-for-lun-unmap',
      'lun-ua',
      'luns',
      'waiting-for-flap',
      'link-down',
      'link-up',
      'discovered',
      'io',
      'done',
    ]);
    // The event path: serve got FC transport events from level 1's qla2xxx (on the physical
    // host), and the vport's down and up were found by the re-reads those events started.
    const served = serveEvents(run);
    expect(
      served.filter((e) => e.event === 'host_fc_events_unavailable'),
      context(),
    ).toEqual([]);
    const codes = served.filter((e) => e.event === 'host_fc_event').map((e) => e.code);
    expect(codes, context()).toContain('LINKDOWN');
    expect(codes, context()).toContain('LINKUP');
    const down = served.find((e) => e.event === 'host_vport_down');
    const up = served.find((e) => e.event === 'host_vport_up');
    expect(down?.reason, context()).toMatch(/^FC /);
    expect(up?.reason, context()).toMatch(/^FC /);
  });

  it('the VM data moved zero-copy between guest memory and the sg node, none bounced', () => {
    // serve logs its data path counters when it stops (src/host/sg-device.ts sgDataPathStats).
    const line = run.guestLines.filter((l) => l.startsWith('SERVE-LOG ') && l.includes('host_sg_datapath')).pop();
    expect(line, context()).toBeDefined();
    const count = (name: string): number => Number(new RegExp(`"${name}":(\\d+)`).exec(line ?? '')?.[1] ?? NaN);
    // Two verified phases, each writing then reading BLOCKS blocks 16 at a time.
    expect(count('zeroCopy'), line).toBeGreaterThanOrEqual((2 * 2 * BLOCKS) / 16);
    expect(count('bounced'), line).toBe(0);
  });

  it('level 1 has no block device; the VM LUN is reached through an sg node only', () => {
    const block = run.guestLines.find((l) => l.startsWith('BLOCK'));
    expect(block?.trim(), context()).toBe('BLOCK');
    const sg = Number(run.guestLines.find((l) => l.startsWith('SG '))?.split(' ')[1]);
    expect(sg).toBeGreaterThan(0);
  });

  it('stopping serve deletes the host vport', () => {
    expect(run.guestLines, context()).toContain('SERVE-EXIT 0');
    expect(run.guestLines, context()).toContain('VPORTS-AFTER 0');
  });
});

/**
 * The same two levels as a user runs them: `npiv-hba lab --backend host --json` through the built
 * CLI (its own SAN, level-1 HBA and guest, from src/lab/two-level.ts), and the report it prints.
 */
describe.skipIf(!haveGuestEnvironment())('npiv-hba lab --backend host --json (real guest)', () => {
  const workDir = mkdtempSync(join(tmpdir(), 'npiv-lab-host-'));
  let code: number | null = null;
  let stdout = '';
  let stderr = '';
  let report: HostLabReport;

  beforeAll(async () => {
    await new Promise<void>((resolve) => {
      const child = spawn(
        process.execPath,
        [join(PROJECT_ROOT, 'bin', 'npiv-hba.js'), 'lab', '--backend', 'host', '--json', '--work-dir', workDir],
        { cwd: PROJECT_ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
      );
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const timer = setTimeout(() => child.kill('SIGTERM'), 900_000);
      child.on('close', (c) => {
        clearTimeout(timer);
        code = c;
        resolve();
      });
    });
    report = JSON.parse(stdout) as HostLabReport;
  }, 960_000);
  afterAll(() => rmSync(workDir, { recursive: true, force: true }));

  it('passes, exits 0, and leaves no socket behind', () => {
    expect(report.failures, `${stderr.slice(-4000)}\n${stdout.slice(-4000)}`).toEqual([]);
    expect([report.ok, report.backend, code]).toEqual([true, 'host', 0]);
    expect(readdirSync(workDir).filter((f) => f.endsWith('.sock'))).toEqual([]);
  });

  it("reports level 1's host vport, and the SAN saw the VM's FDISC on level 1's F_Port", () => {
    expect(report.level1).toMatchObject({ wwpn: L1.wwpn, portState: 'Online', serveExit: 0, vportsAfter: 0 });
    expect(report.level1.vport).toMatchObject({ wwpn: VM.wwpn, wwnn: VM.wwnn, state: 'Active' });
    expect(report.fdisc).toMatchObject({ wwpn: VM.wwpn, physical: false, onLevel1FPort: true });
    expect(report.level1.vport?.nportId).toBe(report.fdisc?.nportId);
  });

  it('the VM found only its zoned target and masked LUN, and verified its I/O; level 1 had no block device', () => {
    expect(report.vm.targets.map((t) => t.wwpn)).toEqual([TARGET_VM.wwpn]);
    expect(report.vm.luns).toEqual([VM_LUN]);
    expect(report.vm.io).toHaveLength(1);
    expect(report.vm.io[0]).toMatchObject({ lun: VM_LUN, bytes: 4 * 2 ** 20, errors: 0, mismatches: 0 });
    expect(report.vm.io[0]!.mibPerSecond).toBeGreaterThan(0);
    expect(report.level1.blockDevices).toEqual([]);
    expect(report.level1.sgNodes).toBeGreaterThan(0);
  });
});
