import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { labVports } from '../../../src/lab/config.js';
import {
  buildLabReport,
  formatLabReport,
  formatSize,
  formatTable,
  labReportJson,
  parseFioJson,
  parseGuestLines,
  sysfsWwn,
  type LabReportInput,
  type LabSanSummary,
} from '../../../src/lab/report.js';

/** GUEST: lines (tag removed) captured from a real `npiv-hba lab --vports 2` run. */
const CAPTURED = readFileSync(new URL('./fixtures/guest-lines-2vports.txt', import.meta.url), 'utf8').split('\n');
const SAN: LabSanSummary = {
  source: 'embedded example',
  fabric: 'fabric-a',
  domain: 1,
  logins: [{ nportId: '0x010300', wwpn: 'c0:50:76:ff:e5:00:00:01' }],
  targetPorts: ['50:0a:09:81:00:00:00:01', '50:0a:09:82:00:00:00:01'],
  arrays: [
    {
      name: 'array1',
      volumes: [
        { name: 'boot', bytes: 2 ** 30, file: null },
        { name: 'scratch', bytes: 256 * 2 ** 20, file: null },
      ],
    },
  ],
};

function input(lines: readonly string[], over: Partial<LabReportInput> = {}): LabReportInput {
  return {
    vports: labVports(2),
    observation: parseGuestLines(lines),
    san: SAN,
    guest: { accel: 'tcg', kernel: '7.2', exitStatus: 0, kernelProblems: [] },
    timings: { totalSeconds: 100, steps: [{ step: 'guest', seconds: 90 }] },
    workDir: '/tmp/w',
    logs: { san: '/tmp/w/san.log', guest: '/tmp/w/guest.log' },
    ...over,
  };
}

/** The captured lines with one vport's attribute replaced. */
function withAttr(kind: string, name: string, attr: string, value: string): string[] {
  const prefix = `LAB ATTR ${kind} ${name} ${attr} `;
  return CAPTURED.map((l) => (l.startsWith(prefix) ? prefix + value : l));
}

describe('guest line parsing', () => {
  it('reads hosts, rports, disks, waits and fio runs of the captured run', () => {
    const obs = parseGuestLines(CAPTURED);
    expect([...obs.hosts.keys()]).toEqual(['host0', 'host1']);
    expect(obs.hosts.get('host0')!.get('port_type')).toBe('NPort (fabric via point-to-point)');
    expect(obs.disks.get('sda')!.get('model')).toBe('VIRTUAL ARRAY');
    expect(obs.waits.get('online')).toEqual({ count: 2, seconds: 0 });
    expect(obs.phases).toEqual(['login', 'disks', 'inventory', 'io', 'done']);
    expect(obs.fio).toHaveLength(2);
    const fio = obs.fio[0]!;
    expect(fio).toMatchObject({
      host: 'host0',
      disk: 'sdd',
      offset: 0,
      status: 0,
      error: 0,
      writeBytes: 32 * 2 ** 20,
      parseError: null,
    });
    expect(fio.readBytes).toBe(32 * 2 ** 20);
    expect(fio.writeIops).toBeGreaterThan(0);
  });

  it('skips malformed and foreign lines and bounds what it keeps', () => {
    const hostile = [
      'LAB ATTR host host0',
      'LAB ATTR nonsense x y z',
      'LAB ATTR host ../../etc port_name 0x1',
      'LAB FIO host0 sda notanumber 0 {}',
      'LAB WAIT online many 3',
      `LAB ATTR disk sdz model ${'x'.repeat(10_000)}`,
      ...Array.from({ length: 1000 }, (_, i) => `LAB ATTR rport rport-0:0-${i} port_name 0x1`),
    ];
    const obs = parseGuestLines(hostile);
    expect(obs.hosts.size).toBe(0);
    expect(obs.fio).toHaveLength(0);
    expect(obs.waits.size).toBe(0);
    expect(obs.disks.get('sdz')!.get('model')!.length).toBeLessThanOrEqual(256);
    expect(obs.rports.size).toBe(256);
  });

  it('fio JSON: leading noise is skipped, garbage is reported, missing fields stay null', () => {
    expect(
      parseFioJson('host0', 'sda', 0, 0, 'fio: warning\n{"jobs":[{"error":0,"write":{"io_bytes":4096}}]}').writeBytes,
    ).toBe(4096);
    expect(parseFioJson('host0', 'sda', 0, 0, '').parseError).toMatch(/no JSON/);
    expect(parseFioJson('host0', 'sda', 0, 0, '{"jobs": [').parseError).toMatch(/unreadable/);
    expect(parseFioJson('host0', 'sda', 0, 0, '{"jobs": []}').parseError).toMatch(/no job/);
    const partial = parseFioJson('host0', 'sda', 0, 0, '{"jobs":[{"write":{"io_bytes":"lots"}}]}');
    expect(partial.writeBytes).toBeNull();
  });
});

describe('lab report', () => {
  it('the captured run passes: both vports logged in with distinct N_Port IDs, LUNs sized, verified I/O clean', () => {
    const report = buildLabReport(input(CAPTURED));
    expect(report.failures).toEqual([]);
    expect(report.ok).toBe(true);
    const [a, b] = report.vports;
    expect(a!.host).toBe('host0');
    expect(b!.host).toBe('host1');
    expect(a!.fabricLogin && b!.fabricLogin).toBe(true);
    expect(a!.nportId).toBe('0x010300');
    expect(b!.nportId).toBe('0x010400');
    expect(a!.fabricName).toBe('10:00:00:05:1e:00:00:01');
    expect(new Set(a!.luns.map((l) => l.size))).toEqual(new Set(['1 GiB', '256 MiB']));
    expect(a!.luns[0]).toMatchObject({
      device: '/dev/sdd',
      hctl: '0:0:0:0',
      lun: 0,
      bytes: 2 ** 30,
      naa: 'naa.600a098ccbe7055bd55c05393dd5e208',
      targetPort: '50:0a:09:81:00:00:00:01',
    });
    expect(a!.luns.map((l) => l.hctl)).toEqual([...a!.luns.map((l) => l.hctl)].sort());
    expect(a!.io).toMatchObject({ device: '/dev/sdd', writtenMiB: 32, verifiedMiB: 32, errors: 0, problem: null });
    expect(b!.io!.offsetBytes).toBe(32 * 2 ** 20);
  });

  it('flags discovered targets that are not SAN target ports (the captured run has such rports)', () => {
    const report = buildLabReport(input(CAPTURED));
    const bogus = report.vports[0]!.targets.filter((t) => t.inSan === false);
    expect(bogus.map((t) => t.wwpn)).toEqual(['01:00:00:00:82:09:0a:50']);
    expect(report.warnings.some((w) => w.includes('01:00:00:00:82:09:0a:50'))).toBe(true);
    // Without the SAN's list nothing can be judged.
    const unknown = buildLabReport(input(CAPTURED, { san: { ...SAN, targetPorts: [] } }));
    expect(unknown.warnings).toEqual([]);
    expect(unknown.vports[0]!.targets.every((t) => t.inSan === null)).toBe(true);
  });

  it('names a vport whose fabric login failed', () => {
    const report = buildLabReport(input(withAttr('host', 'host1', 'port_state', 'Linkdown')));
    expect(report.ok).toBe(false);
    expect(report.vports[1]!.fabricLogin).toBe(false);
    expect(report.failures).toContain(
      'vport 2 (c0:50:76:ff:e5:00:00:02): fabric login failed (port_state Linkdown, port_id 0x010400)',
    );
    expect(buildLabReport(input(withAttr('host', 'host0', 'fabric_name', '0x0'))).vports[0]!.fabricLogin).toBe(false);
    expect(buildLabReport(input(withAttr('host', 'host0', 'port_id', '0x000000'))).ok).toBe(false);
  });

  it('fails when a vport is missing from the guest or sees no LUN', () => {
    const noHost = CAPTURED.filter((l) => !l.startsWith('LAB ATTR host host1 '));
    expect(buildLabReport(input(noHost)).failures).toContain(
      'vport 2 (c0:50:76:ff:e5:00:00:02): the guest shows no fc_host with this WWPN',
    );
    const noDisks = CAPTURED.filter((l) => !/^LAB ATTR disk \S+ hctl 1:/.test(l));
    const report = buildLabReport(input(noDisks));
    expect(report.failures.some((f) => f.startsWith('vport 2') && f.includes('the guest sees no LUN'))).toBe(true);
  });

  it('fails on verify errors, a failed fio and a missing I/O run', () => {
    const fioLine = (l: string) => l.startsWith('LAB FIO host0 ');
    const errs = CAPTURED.map((l) => (fioLine(l) ? l.replace('"total_err" : 0', '"total_err" : 3') : l));
    expect(buildLabReport(input(errs)).failures).toContain(
      'vport 1 (c0:50:76:ff:e5:00:00:01): verified I/O: 3 I/O or verify error(s)',
    );
    const status = CAPTURED.map((l) =>
      fioLine(l) ? l.replace('LAB FIO host0 sdd 0 0 ', 'LAB FIO host0 sdd 0 1 ') : l,
    );
    expect(buildLabReport(input(status)).failures).toContain(
      'vport 1 (c0:50:76:ff:e5:00:00:01): verified I/O: fio exited with status 1',
    );
    const none = CAPTURED.filter((l) => !fioLine(l));
    expect(buildLabReport(input(none)).failures).toContain('vport 1 (c0:50:76:ff:e5:00:00:01): no verified I/O run');
  });

  it('fails on duplicate N_Port IDs, kernel problems and outside failures', () => {
    expect(buildLabReport(input(withAttr('host', 'host1', 'port_id', '0x010300'))).failures).toContain(
      'two vports got the same N_Port ID',
    );
    const k = buildLabReport(
      input(CAPTURED, { guest: { accel: 'tcg', kernel: null, exitStatus: 0, kernelProblems: ['Oops: 0000'] } }),
    );
    expect(k.failures).toContain('guest kernel reported a problem: Oops: 0000');
    expect(buildLabReport(input(CAPTURED, { failures: ['guest: script exit status 3'] })).failures[0]).toBe(
      'guest: script exit status 3',
    );
  });
});

describe('report rendering', () => {
  it('text: sections, aligned tables, I/O line and verdict', () => {
    const text = formatLabReport(buildLabReport(input(CAPTURED)));
    expect(text.split('\n')[0]).toBe('npiv-hba lab: PASSED');
    expect(text).toMatch(/^SAN$/m);
    expect(text).toMatch(/^vport 1 \(guest host0\)$/m);
    expect(text).toMatch(/^ {2}N_Port ID: +0x010300$/m);
    expect(text).toMatch(/^ {2}fabric login: +OK \(NPort \(fabric via point-to-point\)\)$/m);
    expect(text).toContain('/dev/sdd @ 0 B: 32 MiB written, 32 MiB verified');
    expect(text).toContain('errors 0');
    expect(text).toContain('not in the SAN!');
    // Table columns line up: every row of the LUN table starts its size column at the same place.
    const lines = text.split('\n');
    const header = lines.findIndex((l) => l.trim().startsWith('device'));
    const col = lines[header]!.indexOf('size');
    expect(lines[header + 1]!.slice(col, col + 5)).toBe('1 GiB');
    expect(text).not.toContain('FAILED');
  });

  it('text of a failing run lists the failures and the logs', () => {
    const text = formatLabReport(buildLabReport(input(withAttr('host', 'host1', 'port_state', 'Linkdown'))));
    expect(text.split('\n')[0]).toBe('npiv-hba lab: FAILED');
    expect(text).toContain('  - vport 2 (c0:50:76:ff:e5:00:00:02): fabric login failed');
    expect(text).toMatch(/^ {2}guest +\/tmp\/w\/guest\.log$/m);
  });

  it('JSON carries the same report', () => {
    const report = buildLabReport(input(CAPTURED));
    const json = JSON.parse(labReportJson(report)) as typeof report;
    expect(json.ok).toBe(true);
    expect(json.vports.map((v) => v.nportId)).toEqual(['0x010300', '0x010400']);
    expect(json.vports[0]!.luns).toHaveLength(report.vports[0]!.luns.length);
  });

  it('sizes, sysfs WWNs and tables', () => {
    expect(formatSize(2 ** 30)).toBe('1 GiB');
    expect(formatSize(256 * 2 ** 20)).toBe('256 MiB');
    expect(formatSize(1.5 * 2 ** 30)).toBe('1.5 GiB');
    expect(formatSize(512)).toBe('512 B');
    expect(sysfsWwn('0x500a098100000001')).toBe('50:0a:09:81:00:00:00:01');
    expect(sysfsWwn('0x100000082090a50')).toBe('01:00:00:00:82:09:0a:50');
    expect(sysfsWwn('unknown')).toBe('unknown');
    expect(formatTable(['a', 'bb'], [['ccc', 'd']], '')).toEqual(['a    bb', 'ccc  d']);
  });
});
