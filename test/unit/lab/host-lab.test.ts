/**
 * `npiv-hba lab --backend host`: argument handling (refusals before anything starts), the
 * two-level module's SAN configuration and script, and the report built from captured level-1
 * lines (fixtures/guest-lines-two-level.txt, from a real run) with the SAN's status — pass, and
 * each failure the report must name.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { afterAll, describe, expect, it } from 'vitest';
import { hostLabOptionsFromCli, labOptionsFromCli, parseLabBackend, registerLabCommand } from '../../../src/cli/lab.js';
import {
  buildHostLabReport,
  formatHostLabReport,
  type HostLabReportInput,
  hostLabNames,
} from '../../../src/lab/host-lab.js';
import {
  FLAP_REQUEST_LINE,
  parseTwoLevelLines,
  TWO_LEVEL_NAMES,
  twoLevelGuestScript,
  twoLevelSanConfig,
  vmEvents,
} from '../../../src/lab/two-level.js';
import { parseSanConfig } from '../../../src/san/config.js';
import type { SanStatus } from '../../../src/san/san.js';

const dir = mkdtempSync(join(tmpdir(), 'lab-host-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function runLabCommand(args: string[]): Promise<void> {
  const program = new Command()
    .exitOverride()
    .configureOutput({ writeErr: () => undefined, writeOut: () => undefined });
  registerLabCommand(program);
  await program.parseAsync(['node', 'npiv-hba', 'lab', ...args]);
}

describe('lab --backend: argument handling', () => {
  it('san is the default and maps exactly as before; host and san are the only backends', () => {
    expect(parseLabBackend(undefined)).toBe('san');
    expect(parseLabBackend('san')).toBe('san');
    expect(parseLabBackend('host')).toBe('host');
    expect(() => parseLabBackend('fc')).toThrow(/invalid --backend 'fc': expected san \(default\) or host/);
    expect(labOptionsFromCli({ backend: 'san', vports: '1' })).toEqual({ vports: 1 });
  });

  it('maps --wwpn (the VM), --io-size, --timeout and --work-dir for --backend host', () => {
    expect(hostLabOptionsFromCli({ backend: 'host', wwpn: [] })).toEqual({});
    expect(
      hostLabOptionsFromCli({
        backend: 'host',
        wwpn: ['c0:50:76:00:00:00:09:01'],
        ioSize: '8',
        timeout: '300',
        workDir: 'w',
        json: true,
        quiet: true,
      }),
    ).toEqual({ wwpn: 'c0:50:76:00:00:00:09:01', ioMiB: 8, guestTimeoutMs: 300_000, workDir: 'w' });
  });

  it('refuses what the two-level lab cannot do, before anything starts', async () => {
    await expect(runLabCommand(['--backend', 'host', '--config', join(dir, 'x.json')])).rejects.toThrow(
      /--config cannot be used with --backend host/,
    );
    await expect(runLabCommand(['--backend', 'host', '--vports', '2'])).rejects.toThrow(
      /--vports cannot be used with --backend host/,
    );
    await expect(runLabCommand(['--backend', 'host', '--keep'])).rejects.toThrow(/--keep cannot be used/);
    await expect(
      runLabCommand(['--backend', 'host', '--wwpn', 'c050760000000901', '--wwpn', 'c050760000000902']),
    ).rejects.toThrow(/takes one --wwpn/);
    await expect(runLabCommand(['--backend', 'host', '--wwpn', 'c0:50'])).rejects.toThrow(/--wwpn: invalid WWPN/);
    await expect(runLabCommand(['--backend', 'host', '--wwpn', TWO_LEVEL_NAMES.level1.wwpn])).rejects.toThrow(
      /is a name of the lab's level 1 or arrays/,
    );
    await expect(runLabCommand(['--backend', 'host', '--io-size', '65'])).rejects.toThrow(/invalid --io-size '65'/);
    await expect(runLabCommand(['--backend', 'vm'])).rejects.toThrow(/invalid --backend 'vm'/);
  });

  it('a given VM WWPN gets its WWNN as vport define derives it', () => {
    expect(hostLabNames('c0:50:76:00:00:00:09:01').vm).toEqual({
      wwpn: 'c0:50:76:00:00:00:09:01',
      wwnn: 'c0:50:76:00:00:00:09:00',
    });
    expect(hostLabNames()).toBe(TWO_LEVEL_NAMES);
  });
});

describe('two-level module', () => {
  it('its SAN configuration is valid: level 1 and the VM zoned and masked apart', () => {
    const cfg = parseSanConfig(twoLevelSanConfig({ vmLun: 3, vmVolumeSize: '32MiB' }));
    expect(cfg.arrays.map((a) => a.name)).toEqual(['array-host', 'array-vm']);
    expect(cfg.arrays[1]!.volumes[0]!.file).toBeUndefined(); // RAM-backed unless a file is given
    const withFile = twoLevelSanConfig({ vmVolumeFile: 'vm-lun.img' }) as { arrays: { volumes: object[] }[] };
    expect(withFile.arrays[1]!.volumes[0]).toMatchObject({ file: 'vm-lun.img' });
  });

  it('its level-1 script is valid sh and runs serve --backend host and the VM model with the given figures', () => {
    for (const flapWaitMs of [0, 180_000]) {
      const script = twoLevelGuestScript({ vm: TWO_LEVEL_NAMES.vm, blocks: 8192, seed: 7, flapWaitMs });
      const path = join(dir, `two-level-${flapWaitMs}.sh`);
      writeFileSync(path, script);
      expect(() => execFileSync('sh', ['-n', path], { stdio: 'pipe' })).not.toThrow();
      expect(script).toContain(`serve --backend "host:$H" --wwpn ${TWO_LEVEL_NAMES.vm.wwpn}`);
      expect(script).toContain(`--blocks 8192 --blocks-per-io 16 --seed 7 --flap-wait-ms ${flapWaitMs} --tag GUEST:VM`);
      // biome-ignore lint/suspicious/noTemplateCurlyInString: a shell expansion in the script, not a template hole
      expect(script).toContain('${vh:-none}');
    }
    expect(() => twoLevelGuestScript({ vm: TWO_LEVEL_NAMES.vm, blocks: 0, seed: 1, flapWaitMs: 0 })).toThrow(
      RangeError,
    );
    expect(FLAP_REQUEST_LINE).toBe('GUEST:VM{"step":"waiting-for-flap"}');
  });

  it('VM events: malformed or foreign lines are skipped', () => {
    expect(vmEvents(['VM{"step":"attached"}', 'VM{"step":"nonsense"}', 'VM{"step":"lu', 'VMX', 'L1 host0'])).toEqual([
      { step: 'attached' },
    ]);
  });
});

// ------------------------------------------------------------------------------------ report

const CAPTURED = readFileSync(new URL('./fixtures/guest-lines-two-level.txt', import.meta.url), 'utf8')
  .split('\n')
  .filter((l) => l !== '');

/** What `san ctl status` says while the VM runs (the N_Port IDs of the captured run). */
function status(over: Partial<{ vmPhysical: boolean; vmArea: number }> = {}): SanStatus {
  return {
    fabric: {
      name: 'fabric-two-level',
      domain: 3,
      wwnn: '10:00:00:05:1e:00:00:03',
      stats: {} as SanStatus['fabric']['stats'],
    },
    logins: [
      {
        nportId: '0x030100',
        wwpn: TWO_LEVEL_NAMES.targetHost.wwpn,
        wwnn: TWO_LEVEL_NAMES.targetHost.wwnn,
        physical: true,
        fPortArea: 1,
        rscn: false,
      },
      {
        nportId: '0x030200',
        wwpn: TWO_LEVEL_NAMES.targetVm.wwpn,
        wwnn: TWO_LEVEL_NAMES.targetVm.wwnn,
        physical: true,
        fPortArea: 2,
        rscn: false,
      },
      {
        nportId: '0x030300',
        wwpn: TWO_LEVEL_NAMES.level1.wwpn,
        wwnn: TWO_LEVEL_NAMES.level1.wwnn,
        physical: true,
        fPortArea: 3,
        rscn: true,
      },
      {
        nportId: '0x030301',
        wwpn: TWO_LEVEL_NAMES.vm.wwpn,
        wwnn: TWO_LEVEL_NAMES.vm.wwnn,
        physical: over.vmPhysical ?? false,
        fPortArea: over.vmArea ?? 3,
        rscn: true,
      },
    ],
    targetPorts: [
      { array: 'array-host', wwpn: TWO_LEVEL_NAMES.targetHost.wwpn, up: true, nportId: '0x030100', sessions: [] },
      { array: 'array-vm', wwpn: TWO_LEVEL_NAMES.targetVm.wwpn, up: true, nportId: '0x030200', sessions: [] },
    ],
    arrays: [
      { name: 'array-host', volumes: [{ name: 'host-lun', bytes: 16 << 20, file: null, naa: '' }] },
      { name: 'array-vm', volumes: [{ name: 'vm-lun', bytes: 32 << 20, file: null, naa: '' }] },
    ],
    zoning: {} as SanStatus['zoning'],
  };
}

function input(lines: readonly string[], san: SanStatus | null = status()): HostLabReportInput {
  return {
    names: TWO_LEVEL_NAMES,
    observation: parseTwoLevelLines(lines),
    status: san,
    guest: { accel: 'tcg', kernel: '7.2.12+deb14-amd64', exitStatus: 0, kernelProblems: [] },
    timings: { totalSeconds: 61.2, steps: [{ step: 'starting the SAN', seconds: 1.1 }] },
    workDir: null,
    logs: {},
  };
}

describe('lab --backend host: report', () => {
  it('a captured passing run: level 1, its vport, the FDISC on its F_Port, the VM target, LUN and I/O', () => {
    const r = buildHostLabReport(input(CAPTURED));
    expect(r.failures).toEqual([]);
    expect(r.ok).toBe(true);
    expect(r.level1).toMatchObject({
      host: 'host0',
      nportId: '0x030300',
      portState: 'Online',
      maxNpivVports: 127,
      blockDevices: [],
      serveExit: 0,
      vportsAfter: 0,
    });
    expect(r.level1.sgNodes).toBeGreaterThan(0);
    expect(r.level1.vport).toMatchObject({
      name: 'vport-0:0-0',
      wwpn: TWO_LEVEL_NAMES.vm.wwpn,
      wwnn: TWO_LEVEL_NAMES.vm.wwnn,
      state: 'Active',
      host: 'host1',
      nportId: '0x030301',
    });
    expect(r.fdisc).toEqual({
      wwpn: TWO_LEVEL_NAMES.vm.wwpn,
      nportId: '0x030301',
      physical: false,
      fPortArea: 3,
      level1FPortArea: 3,
      onLevel1FPort: true,
    });
    expect(r.vm.targets).toEqual([{ nportId: '0x030200', wwpn: TWO_LEVEL_NAMES.targetVm.wwpn }]);
    expect(r.vm.luns).toEqual([3]);
    expect(r.vm.io).toHaveLength(1);
    const io = r.vm.io[0]!;
    expect(io).toMatchObject({ lun: 3, errors: 0, mismatches: 0 });
    expect(io.bytes).toBe(io.blocks * 512);
    expect(io.mibPerSecond).toBe(Math.round(((2 * io.bytes) / 2 ** 20 / (io.elapsedMs / 1000)) * 100) / 100);

    const text = formatHostLabReport(r);
    expect(text).toMatch(/^npiv-hba lab --backend host: PASSED\n/);
    expect(text).toContain(`host0, WWPN ${TWO_LEVEL_NAMES.level1.wwpn}, N_Port ID 0x030300, Online`);
    expect(text).toContain(
      `vport-0:0-0, WWPN ${TWO_LEVEL_NAMES.vm.wwpn}, WWNN ${TWO_LEVEL_NAMES.vm.wwnn}, Active, host1`,
    );
    expect(text).toContain(`0x030301 ${TWO_LEVEL_NAMES.vm.wwpn}, FDISC, F_Port area 3 = level 1's`);
    expect(text).toMatch(/block devices: +none \(sg nodes: \d+\)/);
    expect(text).toContain(`targets:          0x030200 ${TWO_LEVEL_NAMES.targetVm.wwpn}`);
    expect(text).toMatch(/verified I\/O: +LUN 3 @ LBA 0: .* errors 0, mismatches 0, [\d.]+ MiB\/s/);
    expect(text).toMatch(/FDISC \(NPIV\) +3/);
    expect(text).not.toContain('FAILED');
  });

  it('names each failure: block devices in level 1, an FLOGI or a foreign F_Port, bad I/O, no SAN view', () => {
    const withBlock = CAPTURED.map((l) => (l.startsWith('BLOCK') ? 'BLOCK sda ' : l));
    expect(buildHostLabReport(input(withBlock)).failures).toEqual([
      'level 1 has block devices (sda): the host must not',
    ]);
    expect(buildHostLabReport(input(CAPTURED, status({ vmPhysical: true, vmArea: 4 }))).failures).toEqual([
      'the VM logged in with FLOGI on a port of its own, not FDISC through level 1',
      "the VM's FDISC is not on level 1's F_Port",
    ]);
    const badIo = CAPTURED.map((l) => l.replace('"mismatches":0', '"mismatches":2'));
    const r = buildHostLabReport(input(badIo));
    expect(r.ok).toBe(false);
    expect(r.failures).toEqual(['VM: verified I/O on LUN 3: 0 error(s), 2 mismatched block(s)']);
    expect(formatHostLabReport(r)).toContain('FAILED:\n  - VM: verified I/O on LUN 3');
    expect(buildHostLabReport(input(CAPTURED, null)).failures).toEqual([
      'the SAN could not be asked for its logins while the VM ran',
    ]);
  });

  it('a level 1 that stopped early says where', () => {
    const early = CAPTURED.filter((l) => !/^(VPORTS|L1VPORT|VM|BLOCK|SG|SERVE)/.test(l)).concat(['NO-SOCKET']);
    const r = buildHostLabReport(input(early, status()));
    expect(r.failures).toContain('level-1 script stopped: NO-SOCKET');
    expect(r.failures).toContain(
      `level 1: no fc_vport with the VM's WWPN ${TWO_LEVEL_NAMES.vm.wwpn} (serve --backend host)`,
    );
    expect(formatHostLabReport(r)).toContain('host vport:       none');
    expect(buildHostLabReport(input(early, null)).failures).toContain(
      "the SAN's logins were not read: level 1 never had the VM's vport",
    );
  });
});
