/**
 * npiv-hba compat without a guest: kernel specs, the module metadata and package fields kernels.ts
 * reads, the prepared initramfs filter, scenario selection, the guest-line parser, the model
 * check, and the text / JSON / JUnit forms of the matrix.
 */
import { describe, expect, it } from 'vitest';
import { stripCpioEntries } from '../../../src/compat/cpio-filter.js';
import {
  exactDepends,
  firstRecord,
  KernelSpecError,
  modinfoDepends,
  modinfoSoftPre,
  parseKernelSpec,
} from '../../../src/compat/kernels.js';
import { compatJunit, compatReport, formatCompatReport } from '../../../src/compat/report.js';
import { CompatUsageError, parseModel, type KernelRunResult } from '../../../src/compat/runner.js';
import { parseBootLines, SCENARIOS, ScenarioSelectionError, selectScenarios } from '../../../src/compat/scenarios.js';
import { buildCpio } from '../../../src/harness/cpio.js';

describe('kernel specs', () => {
  it('accepts debian:SUITE, deb:FILES and dir:DIR', () => {
    expect(parseKernelSpec('debian:bookworm')).toEqual({ kind: 'debian', suite: 'bookworm' });
    expect(parseKernelSpec('deb:/k/a.deb,/k/b.deb')).toEqual({ kind: 'deb', paths: ['/k/a.deb', '/k/b.deb'] });
    expect(parseKernelSpec('dir:/src/linux')).toEqual({ kind: 'dir', path: '/src/linux' });
  });
  it('refuses anything else with a message naming the forms', () => {
    for (const bad of ['bookworm', 'debian:', 'debian:Bad Suite', 'deb:x.tar', 'dir:', 'ubuntu:noble'])
      expect(() => parseKernelSpec(bad), bad).toThrow(KernelSpecError);
  });
});

describe('module and package metadata', () => {
  const modinfo = (...fields: string[]) => new TextEncoder().encode(`\x7fELF\0junk\0${fields.join('\0')}\0tail`);
  it('reads depends= and softdep pre: from .modinfo', () => {
    const ko = modinfo('license=GPL', 'depends=scsi_transport_fc,scsi_mod,nvme-fc', 'softdep=pre: crc32c post: x');
    expect(modinfoDepends(ko)).toEqual(['scsi_transport_fc', 'scsi_mod', 'nvme_fc']);
    expect(modinfoSoftPre(ko)).toEqual(['crc32c']);
    expect(modinfoDepends(modinfo('depends='))).toEqual([]);
    expect(modinfoDepends(modinfo('license=GPL'))).toEqual([]);
  });
  it('reads the versioned image and its parts from apt-cache show', () => {
    const meta = firstRecord(
      'Package: linux-image-amd64\nVersion: 7.2.12-1\nDepends: linux-base-amd64 (= 7.2.12-1), linux-image-7.2.12+deb14-amd64 (= 7.2.12-1)\n\nPackage: other\n',
    );
    expect(meta.get('Version')).toBe('7.2.12-1');
    expect(exactDepends(meta.get('Depends')!, /^linux-image-.*-amd64$/)).toEqual([
      { name: 'linux-image-7.2.12+deb14-amd64', version: '7.2.12-1' },
    ]);
    const image =
      'dracut | initramfs-tools (>= 0.120), linux-binary-7.2.12+deb14-amd64 (= 7.2.12-1), linux-modules-7.2.12+deb14-amd64 (= 7.2.12-1)';
    expect(exactDepends(image, /^linux-(binary|modules)-.*-amd64$/).map((d) => d.name)).toEqual([
      'linux-binary-7.2.12+deb14-amd64',
      'linux-modules-7.2.12+deb14-amd64',
    ]);
  });
});

describe('stripCpioEntries', () => {
  const data = (s: string) => new TextEncoder().encode(s);
  it('drops the named entries across concatenated archives and keeps the rest byte for byte', () => {
    const a = buildCpio([
      { type: 'dir', path: 'usr' },
      { type: 'file', path: 'usr/lib/modules/sd_mod.ko', data: data('old module') },
      { type: 'file', path: 'init', data: data('#!/bin/sh\n') },
    ]);
    const b = buildCpio([{ type: 'file', path: 'usr/lib/firmware/ql2500_fw.bin', data: data('fw') }]);
    const padded = Buffer.concat([Buffer.from(a), Buffer.alloc(512 - (a.length % 512)), Buffer.from(b)]);
    const out = stripCpioEntries(padded, (n) => n.startsWith('usr/lib/modules/'));
    const text = out.toString('latin1');
    expect(text).not.toContain('sd_mod.ko');
    expect(text).toContain('#!/bin/sh');
    expect(text).toContain('ql2500_fw.bin');
    expect(text.match(/TRAILER!!!/g)?.length).toBe(1);
    // Idempotent: the output is itself a well-formed archive.
    expect(stripCpioEntries(out, () => false).equals(out)).toBe(true);
  });
  it('refuses what is not a newc archive', () => {
    expect(() => stripCpioEntries(Buffer.from('not an archive at all'), () => false)).toThrow(/newc|truncated/);
    const a = Buffer.from(buildCpio([{ type: 'file', path: 'x', data: data('0123456789') }]));
    expect(() => stripCpioEntries(a.subarray(0, 120), () => false)).toThrow(/overruns|truncated/);
  });
});

describe('scenario selection and the model', () => {
  it('all, core, or names in suite order', () => {
    expect(selectScenarios(undefined)).toHaveLength(SCENARIOS.length);
    expect(selectScenarios('core').every((s) => s.core)).toBe(true);
    expect(selectScenarios('luns,probe').map((s) => s.name)).toEqual(['probe', 'luns']);
    expect(() => selectScenarios('probe,nope')).toThrow(ScenarioSelectionError);
  });
  it('--model takes the models the device implements and names them when refusing another', () => {
    expect(parseModel(undefined)).toBe('isp2532');
    expect(parseModel('isp2432')).toBe('isp2432');
    expect(() => parseModel('isp9999')).toThrow(CompatUsageError);
    expect(() => parseModel('isp9999')).toThrow(/expected one of isp2532, isp2432/);
  });
});

describe('guest lines and the matrix', () => {
  const lines = [
    'BOOT kernel=6.1.0-50-amd64 cpus=2',
    'DRIVER 10.02.07.900-k',
    'SCBEGIN probe',
    'SC probe pass 300 bound',
    'SCBEGIN flash',
    'SCLOG flash FAIL no serial',
    'SCLOG flash kernel: [ 1.0] qla2xxx [0000:01:00.0]-0001: x',
    'SC flash fail 700 no serial number',
    'SCBEGIN link',
  ];
  it('parses results, evidence, versions and the scenario the guest stopped in', () => {
    const o = parseBootLines(lines);
    expect(o.kernelRelease).toBe('6.1.0-50-amd64');
    expect(o.driverVersion).toBe('10.02.07.900-k');
    expect(o.results.map((r) => [r.name, r.status, r.ms])).toEqual([
      ['probe', 'pass', 300],
      ['flash', 'fail', 700],
    ]);
    expect(o.results[1]!.evidence).toEqual(['FAIL no serial', 'kernel: [ 1.0] qla2xxx [0000:01:00.0]-0001: x']);
    expect(o.unfinished).toBe('link');
  });
  it('prints the matrix, the failure evidence, and JUnit that agrees', () => {
    const o = parseBootLines(lines);
    const k: KernelRunResult = {
      label: 'debian:bookworm',
      release: o.kernelRelease,
      packageVersion: '6.1.176-1',
      driverVersion: o.driverVersion,
      model: 'isp2532',
      scenarios: [...o.results, { name: 'link', status: 'skip', ms: 0, summary: 'needs <probe> & "x"', evidence: [] }],
      boots: 1,
      durationMs: 12_000,
      kernelProblems: [],
      error: null,
    };
    const report = compatReport('isp2532', [k]);
    expect(report.ok).toBe(false);
    const text = formatCompatReport(report);
    expect(text).toMatch(/qla2xxx\s+10\.02\.07\.900-k/);
    expect(text).toMatch(/flash\s+FAIL 0\.7s/);
    expect(text).toContain('debian:bookworm / flash: no serial number');
    expect(text).toContain('kernel: [ 1.0] qla2xxx');
    expect(text).toContain('result: FAIL');
    const xml = compatJunit(report);
    expect(xml).toContain('tests="3" failures="1" skipped="1"');
    expect(xml).toContain('<failure message="no serial number">');
    expect(xml).toContain('message="needs &lt;probe&gt; &amp; &quot;x&quot;"');
    expect(compatReport('isp2532', [{ ...k, scenarios: [o.results[0]!] }]).ok).toBe(true);
    const warned = { ...k, scenarios: [o.results[0]!], kernelProblems: ['WARNING: CPU: 0 PID: 1 at x'] };
    expect(compatReport('isp2532', [warned]).ok).toBe(false);
    expect(formatCompatReport(compatReport('isp2532', [warned]))).toContain('guest kernel problems');
  });
});
