/**
 * Runs the lab's guest script with the host's sh against a fake sysfs tree and a stand-in fio,
 * then feeds its output through the report: the waits, the inventory lines, the choice of disk
 * and offset per vport and the fio job line must all come out as the real guest's would.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { labGuestScript } from '../../../src/lab/guest-script.js';
import { labVports } from '../../../src/lab/config.js';
import { buildLabReport, parseGuestLines } from '../../../src/lab/report.js';

const MIB = 2 ** 20;
const IO_BYTES = 8 * MIB;
const root = mkdtempSync(join(tmpdir(), 'lab-fake-guest-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

function put(path: string, text: string): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, text + '\n');
}

interface FakeDisk {
  name: string;
  hctl: string;
  bytes: number;
}

/** A sysfs tree with two fc_hosts (the lab's vports 1 and 2), one rport each and the given disks. */
function fakeTree(
  name: string,
  host1State: string,
  disks: FakeDisk[],
  host1Rport = true,
): { sys: string; dev: string; work: string; bin: string } {
  const base = join(root, name);
  const sys = join(base, 'sys');
  const [v1, v2] = labVports(2);
  const hosts = [
    { n: 0, wwpn: v1!.wwpn, state: 'Online', id: '0x010300' },
    { n: 1, wwpn: v2!.wwpn, state: host1State, id: '0x010400' },
  ];
  for (const h of hosts) {
    const dir = join(sys, 'class', 'fc_host', `host${h.n}`);
    put(join(dir, 'port_name'), `0x${h.wwpn.toString(16)}`);
    put(join(dir, 'node_name'), '0xc05076ffe5010001');
    put(join(dir, 'port_id'), h.id);
    put(join(dir, 'port_state'), h.state);
    put(join(dir, 'port_type'), 'NPort (fabric via point-to-point)');
    put(join(dir, 'fabric_name'), '0x100000051e000001');
    put(join(dir, 'speed'), '8 Gbit');
    if (h.n === 1 && !host1Rport) continue;
    const rport = join(sys, 'class', 'fc_remote_ports', `rport-${h.n}:0-0`);
    put(join(rport, 'port_name'), '0x500a098100000001');
    put(join(rport, 'node_name'), '0x500a098000000001');
    put(join(rport, 'port_id'), '0x010100');
    put(join(rport, 'roles'), 'FCP Target');
    put(join(rport, 'port_state'), 'Online');
    put(join(sys, 'class', 'fc_transport', `target${h.n}:0:0`, 'port_name'), '0x500a098100000001');
  }
  for (const d of disks) {
    const [h, c, t] = d.hctl.split(':');
    const device = join(sys, 'devices', `host${h}`, `rport-${h}:${c}-0`, `target${h}:${c}:${t}`, d.hctl);
    put(join(device, 'vendor'), 'NPIVSIM ');
    put(join(device, 'model'), 'VIRTUAL ARRAY   ');
    put(join(device, 'wwid'), `naa.600a0980000000000000000000000${d.name.charCodeAt(2).toString(16)}`);
    const block = join(sys, 'block', d.name);
    put(join(block, 'size'), String(d.bytes / 512));
    put(join(block, 'queue', 'logical_block_size'), '512');
    symlinkSync(relative(block, device), join(block, 'device'));
  }
  const bin = join(base, 'bin');
  mkdirSync(bin, { recursive: true });
  // Stand-in fio: records its arguments, writes a JSON report for the size it was asked for.
  writeFileSync(
    join(bin, 'fio'),
    `#!/bin/sh
out=""; size=0; name=""
for a in "$@"; do
  case "$a" in --output=*) out="\${a#--output=}" ;; --size=*) size="\${a#--size=}" ;; --name=*) name="\${a#--name=}" ;; esac
done
echo "$@" > "${join(base, 'work')}/args-$name"
printf '{\\n "jobs" : [\\n  { "jobname" : "%s", "error" : 0, "total_err" : 0, "job_runtime" : 1000,\\n\\t"write" : { "io_bytes" : %s, "bw_bytes" : 1048576, "iops" : 16.0 },\\n "read" : { "io_bytes" : %s, "bw_bytes" : 2097152, "iops" : 32.0 } } ]\\n}\\n' "$name" "$size" "$size" > "$out"
`,
  );
  chmodSync(join(bin, 'fio'), 0o755);
  mkdirSync(join(base, 'work'), { recursive: true });
  return { sys, dev: join(base, 'dev'), work: join(base, 'work'), bin };
}

function runScript(tree: ReturnType<typeof fakeTree>, waitSeconds: number): string[] {
  const script = labGuestScript({
    vports: 2,
    waitSeconds,
    settleSeconds: 1,
    rportGraceSeconds: 1,
    ioBytes: IO_BYTES,
    ioBlockSize: 65536,
    ioDepth: 16,
    keep: false,
    paths: tree,
  });
  const path = join(tree.work, 'test.sh');
  writeFileSync(path, script);
  const out = execFileSync('sh', [path], {
    env: { ...process.env, PATH: `${tree.bin}:${process.env.PATH ?? ''}` },
    encoding: 'utf8',
    timeout: 60_000,
  });
  return out
    .split('\n')
    .filter((l) => l.startsWith('GUEST:'))
    .map((l) => l.slice('GUEST:'.length));
}

const SAN = {
  source: 'test',
  fabric: 'f',
  domain: 1,
  logins: [],
  targetPorts: ['50:0a:09:81:00:00:00:01'],
  arrays: [],
};
const GUEST = { accel: 'tcg', kernel: null, exitStatus: 0, kernelProblems: [] };

describe('lab guest script on a fake sysfs', () => {
  it('reports both vports, picks a different LUN and region per vport, and the report passes', () => {
    const tree = fakeTree('two', 'Online', [
      { name: 'sda', hctl: '0:0:0:0', bytes: 64 * MIB },
      { name: 'sdb', hctl: '0:0:0:1', bytes: 32 * MIB },
      { name: 'sdc', hctl: '1:0:0:0', bytes: 64 * MIB },
      { name: 'sdd', hctl: '1:0:0:1', bytes: 32 * MIB },
    ]);
    const lines = runScript(tree, 5);
    expect(lines).toContain('LAB WAIT online 2 0');
    expect(lines).toContain('LAB WAIT disks 2 2');
    expect(lines).toContain('LAB ATTR host host1 port_type NPort (fabric via point-to-point)');
    expect(lines).toContain('LAB ATTR disk sdd hctl 1:0:0:1');
    expect(lines).toContain('LAB ATTR disk sdd target_port 0x500a098100000001');
    // vport 1 takes its first disk at offset 0, vport 2 its second disk one I/O size further on.
    expect(lines.filter((l) => l.startsWith('LAB FIO')).map((l) => l.split(' ').slice(0, 6).join(' '))).toEqual([
      'LAB FIO host0 sda 0 0',
      `LAB FIO host1 sdd ${IO_BYTES} 0`,
    ]);
    const args = readFileSync(join(tree.work, 'args-lab-host1'), 'utf8');
    expect(args).toContain(`--filename=${tree.dev}/sdd`);
    expect(args).toContain(`--offset=${IO_BYTES}`);
    expect(args).toContain('--ioengine=libaio');
    const report = buildLabReport({
      vports: labVports(2),
      observation: parseGuestLines(lines),
      san: SAN,
      guest: GUEST,
      timings: { totalSeconds: 1, steps: [] },
      workDir: null,
      logs: {},
    });
    expect(report.failures).toEqual([]);
    expect(report.vports.map((v) => v.io?.device)).toEqual(['/dev/sda', '/dev/sdd']);
    expect(report.vports.map((v) => v.luns.length)).toEqual([2, 2]);
  });

  it('a vport that never comes Online: the script waits its budget, then reports what it has', () => {
    const tree = fakeTree('down', 'Linkdown', [{ name: 'sda', hctl: '0:0:0:0', bytes: 64 * MIB }]);
    const lines = runScript(tree, 2);
    expect(lines).toContain('LAB WAIT online 1 2');
    expect(lines.filter((l) => l.startsWith('LAB FIO')).map((l) => l.split(' ')[2])).toEqual(['host0']);
    const report = buildLabReport({
      vports: labVports(2),
      observation: parseGuestLines(lines),
      san: SAN,
      guest: GUEST,
      timings: { totalSeconds: 1, steps: [] },
      workDir: null,
      logs: {},
    });
    expect(report.ok).toBe(false);
    expect(report.failures).toContain(
      'vport 2 (c0:50:76:ff:e5:00:00:02): fabric login failed (port_state Linkdown, port_id 0x010400)',
    );
    expect(report.vports[0]!.problems).toEqual([]);
  });

  it('an Online vport zoned away from every target is not waited for beyond the grace period', () => {
    const tree = fakeTree('zoned-away', 'Online', [{ name: 'sda', hctl: '0:0:0:0', bytes: 64 * MIB }], false);
    const lines = runScript(tree, 30);
    expect(lines).toContain('LAB WAIT online 2 0');
    // Grace of 1 s, then 2 s for the disk count to hold still: far below the 30 s budget.
    expect(lines).toContain('LAB WAIT disks 1 3');
    const report = buildLabReport({
      vports: labVports(2),
      observation: parseGuestLines(lines),
      san: SAN,
      guest: GUEST,
      timings: { totalSeconds: 1, steps: [] },
      workDir: null,
      logs: {},
    });
    expect(report.failures).toEqual([
      'vport 2 (c0:50:76:ff:e5:00:00:02): no target ports discovered',
      'vport 2 (c0:50:76:ff:e5:00:00:02): the guest sees no LUN',
    ]);
  });

  it('a disk too small for its region falls back to offset 0', () => {
    const tree = fakeTree('small', 'Online', [
      { name: 'sda', hctl: '0:0:0:0', bytes: 64 * MIB },
      { name: 'sdb', hctl: '1:0:0:0', bytes: IO_BYTES },
    ]);
    const lines = runScript(tree, 5);
    expect(
      lines
        .filter((l) => l.startsWith('LAB FIO host1'))[0]!
        .split(' ')
        .slice(0, 5),
    ).toEqual(['LAB', 'FIO', 'host1', 'sdb', '0']);
  });
});
