/**
 * The compat matrix as text (scenario rows × kernel columns, with each kernel's release and the
 * driver version the guest reported, then every failure with its evidence), as JSON and as JUnit
 * XML for CI systems.
 */
import type { KernelRunResult } from './runner.js';
import { SCENARIOS, type ScenarioResult } from './scenarios.js';

export interface CompatReport {
  ok: boolean;
  model: string;
  kernels: KernelRunResult[];
}

export function compatReport(model: string, kernels: KernelRunResult[]): CompatReport {
  // A panic, Oops, BUG or WARNING on the guest's console fails the kernel even when every
  // scenario's own check passed: the device must never make the driver trip the kernel.
  const ok = kernels.every(
    (k) => k.error === null && k.kernelProblems.length === 0 && k.scenarios.every((s) => s.status !== 'fail'),
  );
  return { ok, model, kernels };
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)}s`;
}

export function cellText(s: ScenarioResult): string {
  return s.status === 'pass' ? `pass ${seconds(s.ms)}` : s.status === 'fail' ? `FAIL ${seconds(s.ms)}` : 'skip';
}

function table(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)));
  return rows.map((r) =>
    r
      .map((cell, c) => cell.padEnd(widths[c]!))
      .join('  ')
      .trimEnd(),
  );
}

export function formatCompatReport(report: CompatReport): string {
  const kernels = report.kernels;
  const names = SCENARIOS.map((s) => s.name).filter((n) => kernels.some((k) => k.scenarios.some((s) => s.name === n)));
  const rows: string[][] = [
    ['scenario', ...kernels.map((k) => k.label)],
    ['kernel', ...kernels.map((k) => k.release ?? '-')],
    ['package', ...kernels.map((k) => k.packageVersion ?? '-')],
    ['qla2xxx', ...kernels.map((k) => k.driverVersion ?? '-')],
    ['', ...kernels.map(() => '')],
  ];
  for (const name of names) {
    rows.push([
      name,
      ...kernels.map((k) => {
        const s = k.scenarios.find((x) => x.name === name);
        return s ? cellText(s) : '-';
      }),
    ]);
  }
  rows.push(['', ...kernels.map(() => '')]);
  rows.push(['boots / total', ...kernels.map((k) => `${k.boots} / ${seconds(k.durationMs)}`)]);
  const lines = [`npiv-hba compat (model ${report.model})`, '', ...table(rows)];

  const problems = kernels.filter((k) => k.kernelProblems.length > 0);
  for (const k of problems) {
    lines.push('', `${k.label}: guest kernel problems on the console:`);
    for (const l of k.kernelProblems.slice(0, 10)) lines.push(`  ${l}`);
  }
  const failures = kernels.flatMap((k) => k.scenarios.filter((s) => s.status === 'fail').map((s) => ({ k, s })));
  if (failures.length > 0) {
    lines.push('', 'failures:');
    for (const { k, s } of failures) {
      lines.push(`  ${k.label} / ${s.name}: ${s.summary}`);
      for (const e of s.evidence) lines.push(`      ${e}`);
    }
  }
  const skips = kernels.flatMap((k) => k.scenarios.filter((s) => s.status === 'skip').map((s) => ({ k, s })));
  if (skips.length > 0) {
    lines.push('', 'skipped:');
    for (const { k, s } of skips) lines.push(`  ${k.label} / ${s.name}: ${s.summary}`);
  }
  lines.push('', report.ok ? 'result: PASS' : 'result: FAIL');
  return `${lines.join('\n')}\n`;
}

export function compatReportJson(report: CompatReport): string {
  return `${JSON.stringify(report, null, 2)}\n`;
}

function xml(text: string): string {
  return (
    text
      // Characters XML 1.0 cannot carry at all (control characters from a guest log).
      // biome-ignore lint/suspicious/noControlCharactersInRegex: removing them is the point
      .replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f]/g, '?')
      .replaceAll('&', '&amp;')
      .replaceAll('<', '&lt;')
      .replaceAll('>', '&gt;')
      .replaceAll('"', '&quot;')
  );
}

export function compatJunit(report: CompatReport): string {
  const out = ['<?xml version="1.0" encoding="UTF-8"?>'];
  const all = report.kernels.flatMap((k) => k.scenarios);
  const count = (list: ScenarioResult[], status: string) => list.filter((s) => s.status === status).length;
  const total = report.kernels.reduce((sum, k) => sum + k.durationMs, 0) / 1000;
  out.push(
    `<testsuites name="npiv-hba compat" tests="${all.length}" failures="${count(all, 'fail')}" skipped="${count(all, 'skip')}" time="${total.toFixed(1)}">`,
  );
  for (const k of report.kernels) {
    const props = [
      ['model', report.model],
      ['kernel', k.release ?? ''],
      ['package', k.packageVersion ?? ''],
      ['qla2xxx', k.driverVersion ?? ''],
    ];
    out.push(
      `  <testsuite name="${xml(k.label)}" tests="${k.scenarios.length}" failures="${count(k.scenarios, 'fail')}" skipped="${count(k.scenarios, 'skip')}" time="${(k.durationMs / 1000).toFixed(1)}">`,
      '    <properties>',
      ...props.map(([n, v]) => `      <property name="${n}" value="${xml(v!)}"/>`),
      '    </properties>',
    );
    for (const s of k.scenarios) {
      const head = `    <testcase classname="compat.${xml(k.label)}" name="${xml(s.name)}" time="${(s.ms / 1000).toFixed(1)}"`;
      if (s.status === 'pass') out.push(`${head}/>`);
      else if (s.status === 'skip')
        out.push(`${head}>`, `      <skipped message="${xml(s.summary)}"/>`, '    </testcase>');
      else
        out.push(
          `${head}>`,
          `      <failure message="${xml(s.summary)}">${xml(s.evidence.join('\n'))}</failure>`,
          '    </testcase>',
        );
    }
    out.push('  </testsuite>');
  }
  out.push('</testsuites>');
  return `${out.join('\n')}\n`;
}
