/**
 * The lab report: parses the guest's structured lines (src/lab/guest-script.ts), joins them with
 * the lab's own facts (vports, SAN status, timings) and renders an aligned text report or JSON.
 * The serial console is outside data: every line is checked, unknown or malformed lines are
 * skipped, and the amount kept is bounded.
 */
import { formatWwn, parseWwn } from '../util/wwn.js';
import type { LabVport } from './config.js';

/** At most this many hosts / rports / disks / fio jobs are taken from the guest. */
const MAX_GUEST_OBJECTS = 256;
const MAX_ATTRIBUTE_CHARS = 256;
const SECTOR_BYTES = 512;
const MIB = 1024 * 1024;
const GIB = 1024 * MIB;
const KIB = 1024;

export interface GuestFioRun {
  host: string;
  disk: string;
  offset: number;
  /** fio's exit status in the guest. */
  status: number;
  /** Parsed from fio's JSON; null when the JSON was missing or unreadable. */
  writeBytes: number | null;
  readBytes: number | null;
  writeBandwidthBytes: number | null;
  writeIops: number | null;
  readBandwidthBytes: number | null;
  readIops: number | null;
  runtimeMs: number | null;
  /** fio's error code (errno) for the job, 0 when none. */
  error: number | null;
  /** Errors fio counted while continuing (verify mismatches), null when not reported. */
  totalErrors: number | null;
  parseError: string | null;
}

export interface GuestObservation {
  hosts: Map<string, Map<string, string>>;
  rports: Map<string, Map<string, string>>;
  disks: Map<string, Map<string, string>>;
  fio: GuestFioRun[];
  waits: Map<string, { count: number; seconds: number }>;
  phases: string[];
  keepShell: boolean;
}

function addAttribute(target: Map<string, Map<string, string>>, name: string, key: string, value: string): void {
  let entry = target.get(name);
  if (!entry) {
    if (target.size >= MAX_GUEST_OBJECTS) return;
    entry = new Map();
    target.set(name, entry);
  }
  if (entry.size >= 32 && !entry.has(key)) return;
  entry.set(key, value.slice(0, MAX_ATTRIBUTE_CHARS).trim());
}

function finiteOrNull(value: unknown): number | null {
  return typeof value === 'number' && Number.isFinite(value) ? value : null;
}

function record(value: unknown): Record<string, unknown> | null {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : null;
}

/** Reads the numbers the report needs out of fio's JSON output (first job). */
export function parseFioJson(host: string, disk: string, offset: number, status: number, text: string): GuestFioRun {
  const run: GuestFioRun = {
    host,
    disk,
    offset,
    status,
    writeBytes: null,
    readBytes: null,
    writeBandwidthBytes: null,
    writeIops: null,
    readBandwidthBytes: null,
    readIops: null,
    runtimeMs: null,
    error: null,
    totalErrors: null,
    parseError: null,
  };
  // fio may print a warning before the document.
  const start = text.indexOf('{');
  if (start < 0) {
    run.parseError = 'no JSON output from fio';
    return run;
  }
  let json: unknown;
  try {
    json = JSON.parse(text.slice(start));
  } catch (err) {
    run.parseError = `fio JSON unreadable: ${(err as Error).message}`;
    return run;
  }
  const jobs = record(json)?.jobs;
  const job = Array.isArray(jobs) ? record(jobs[0]) : null;
  if (!job) {
    run.parseError = 'fio JSON has no job';
    return run;
  }
  const write = record(job.write);
  const read = record(job.read);
  run.writeBytes = finiteOrNull(write?.io_bytes);
  run.readBytes = finiteOrNull(read?.io_bytes);
  run.writeBandwidthBytes = finiteOrNull(write?.bw_bytes);
  run.writeIops = finiteOrNull(write?.iops);
  run.readBandwidthBytes = finiteOrNull(read?.bw_bytes);
  run.readIops = finiteOrNull(read?.iops);
  run.runtimeMs = finiteOrNull(job.job_runtime);
  run.error = finiteOrNull(job.error);
  run.totalErrors = finiteOrNull(job.total_err);
  return run;
}

const ATTR_LINE = /^LAB ATTR (host|rport|disk) ([A-Za-z0-9_:.-]{1,64}) ([a-z_]{1,32})(?: (.*))?$/;
const FIO_LINE = /^LAB FIO (host\d{1,6}) ([a-z0-9]{1,16}) (\d{1,15}) (\d{1,3}) ?(.*)$/;
const WAIT_LINE = /^LAB WAIT ([a-z]{1,16}) (\d{1,6}) (\d{1,6})$/;
const PHASE_LINE = /^LAB PHASE ([a-z]{1,16})$/;

/** Parses the guest's lines (GUEST: tag already removed, as runGuest returns them). */
export function parseGuestLines(lines: readonly string[]): GuestObservation {
  const obs: GuestObservation = {
    hosts: new Map(),
    rports: new Map(),
    disks: new Map(),
    fio: [],
    waits: new Map(),
    phases: [],
    keepShell: false,
  };
  for (const raw of lines) {
    const line = raw.replace(/\r$/, '');
    let m = ATTR_LINE.exec(line);
    if (m) {
      const target = m[1] === 'host' ? obs.hosts : m[1] === 'rport' ? obs.rports : obs.disks;
      addAttribute(target, m[2]!, m[3]!, m[4] ?? '');
      continue;
    }
    m = FIO_LINE.exec(line);
    if (m) {
      if (obs.fio.length < MAX_GUEST_OBJECTS)
        obs.fio.push(parseFioJson(m[1]!, m[2]!, Number(m[3]), Number(m[4]), m[5] ?? ''));
      continue;
    }
    m = WAIT_LINE.exec(line);
    if (m) {
      obs.waits.set(m[1]!, { count: Number(m[2]), seconds: Number(m[3]) });
      continue;
    }
    m = PHASE_LINE.exec(line);
    if (m) {
      if (obs.phases.length < MAX_GUEST_OBJECTS) obs.phases.push(m[1]!);
      continue;
    }
    if (line === 'LAB SHELL') obs.keepShell = true;
  }
  return obs;
}

// ------------------------------------------------------------------------------------ report

export interface LabTarget {
  wwpn: string;
  wwnn: string | null;
  portId: string;
  roles: string;
  state: string;
  /** False when the SAN has no target port of this name (the guest lists a port that does not exist). */
  inSan: boolean | null;
}

export interface LabLun {
  device: string;
  hctl: string;
  lun: number | null;
  bytes: number;
  size: string;
  vendor: string;
  model: string;
  naa: string;
  targetPort: string | null;
}

export interface LabIo {
  device: string;
  offsetBytes: number;
  writtenMiB: number;
  verifiedMiB: number;
  writeMiBps: number;
  writeIops: number;
  verifyMiBps: number | null;
  errors: number;
  fioStatus: number;
  problem: string | null;
}

export interface LabVportReport {
  index: number;
  wwpn: string;
  wwnn: string;
  /** The guest's fc_host for this vport (null: the guest never showed it). */
  host: string | null;
  nportId: string | null;
  portState: string | null;
  portType: string | null;
  fabricName: string | null;
  speed: string | null;
  fabricLogin: boolean;
  targets: LabTarget[];
  luns: LabLun[];
  io: LabIo | null;
  /** Why this vport failed (empty when it passed). */
  problems: string[];
}

export interface LabSanSummary {
  source: string;
  fabric: string | null;
  domain: number | null;
  /** N_Port logins the switch holds (from `san ctl status`), when it could be asked. */
  logins: { nportId: string; wwpn: string }[];
  /** The arrays' target ports (WWPN, colon form), to check the guest's discoveries against. */
  targetPorts: string[];
  arrays: { name: string; volumes: { name: string; bytes: number; file: string | null }[] }[];
}

export interface LabReport {
  ok: boolean;
  /** The failing parts, named (empty when ok). */
  failures: string[];
  /** Oddities that do not fail the run (e.g. a discovered target the SAN does not have). */
  warnings: string[];
  san: LabSanSummary;
  vports: LabVportReport[];
  guest: { accel: string; kernel: string | null; exitStatus: number | null; kernelProblems: string[] };
  timings: { totalSeconds: number; steps: { step: string; seconds: number }[] };
  workDir: string | null;
  logs: Record<string, string>;
}

/** 1 GiB and up in GiB, else MiB, else bytes; at most two decimals. */
export function formatSize(bytes: number): string {
  const trim = (n: number): string =>
    Number.isInteger(n) ? String(n) : n.toFixed(2).replace(/0+$/, '').replace(/\.$/, '');
  if (bytes >= GIB) return `${trim(bytes / GIB)} GiB`;
  if (bytes >= MIB) return `${trim(bytes / MIB)} MiB`;
  if (bytes >= KIB) return `${trim(bytes / KIB)} KiB`;
  return `${bytes} B`;
}

/**
 * sysfs WWN (printed as 0x%llx, so leading zeros are dropped) → canonical colon form; anything
 * else is returned as given.
 */
export function sysfsWwn(text: string | undefined): string | null {
  if (text === undefined || text === '') return null;
  return /^0x[0-9a-f]{1,16}$/i.test(text) ? formatWwn(BigInt(text)) : text;
}

function hostNumber(name: string): string | null {
  const m = /^host(\d+)$/.exec(name);
  return m ? m[1]! : null;
}

function round(value: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

function ioFrom(run: GuestFioRun): LabIo {
  const written = run.writeBytes ?? 0;
  const verified = run.readBytes ?? 0;
  let problem = run.parseError;
  const errors = (run.totalErrors ?? 0) + (run.error !== null && run.error !== 0 ? 1 : 0);
  if (problem === null && run.status !== 0) problem = `fio exited with status ${run.status}`;
  if (problem === null && errors > 0) problem = `${errors} I/O or verify error(s)`;
  if (problem === null && written === 0) problem = 'fio wrote nothing';
  if (problem === null && verified < written)
    problem = `only ${formatSize(verified)} of ${formatSize(written)} verified`;
  return {
    device: `/dev/${run.disk}`,
    offsetBytes: run.offset,
    writtenMiB: round(written / MIB, 2),
    verifiedMiB: round(verified / MIB, 2),
    writeMiBps: round((run.writeBandwidthBytes ?? 0) / MIB, 2),
    writeIops: Math.round(run.writeIops ?? 0),
    verifyMiBps: run.readBandwidthBytes === null ? null : round(run.readBandwidthBytes / MIB, 2),
    errors,
    fioStatus: run.status,
    problem,
  };
}

export interface LabReportInput {
  vports: readonly LabVport[];
  observation: GuestObservation;
  san: LabSanSummary;
  guest: LabReport['guest'];
  timings: LabReport['timings'];
  workDir: string | null;
  logs: Record<string, string>;
  /** A failure outside the guest's view (e.g. a step that timed out), named. */
  failures?: readonly string[];
}

/** Joins the guest's view with the vports; decides pass/fail per vport and overall. */
export function buildLabReport(input: LabReportInput): LabReport {
  const { observation: obs } = input;
  const hostByWwpn = new Map<bigint, string>();
  for (const [name, attrs] of obs.hosts) {
    try {
      hostByWwpn.set(parseWwn(attrs.get('port_name') ?? ''), name);
    } catch {
      /* a host without a readable name matches no vport */
    }
  }
  const sanTargets = new Set(input.san.targetPorts);
  const vports = input.vports.map((vport, index): LabVportReport => {
    const host = hostByWwpn.get(vport.wwpn) ?? null;
    const attrs = host ? obs.hosts.get(host)! : new Map<string, string>();
    const num = host ? hostNumber(host) : null;
    const portId = attrs.get('port_id') ?? null;
    const portState = attrs.get('port_state') ?? null;
    const fabricName = sysfsWwn(attrs.get('fabric_name'));
    const rawFabric = attrs.get('fabric_name') ?? '';
    // Online alone is not a fabric login: a loop or point-to-point link is Online too.
    const fabricLogin =
      portState === 'Online' &&
      portId !== null &&
      /^0x[0-9a-f]{6}$/i.test(portId) &&
      Number(portId) !== 0 &&
      /^0x[0-9a-f]{1,16}$/i.test(rawFabric) &&
      BigInt(rawFabric) !== 0n;
    const targets: LabTarget[] = [];
    for (const [rname, r] of obs.rports) {
      if (num === null || !rname.startsWith(`rport-${num}:`)) continue;
      const wwpn = sysfsWwn(r.get('port_name')) ?? '?';
      targets.push({
        wwpn,
        inSan: sanTargets.size > 0 ? sanTargets.has(wwpn) : null,
        wwnn: sysfsWwn(r.get('node_name')),
        portId: r.get('port_id') ?? '?',
        roles: r.get('roles') ?? '',
        state: r.get('port_state') ?? '?',
      });
    }
    targets.sort((a, b) => a.portId.localeCompare(b.portId));
    const luns: LabLun[] = [];
    for (const [dname, d] of obs.disks) {
      const hctl = d.get('hctl') ?? '';
      if (num === null || hctl.split(':')[0] !== num) continue;
      const sectors = Number(d.get('sectors') ?? Number.NaN);
      const bytes = Number.isSafeInteger(sectors) && sectors >= 0 ? sectors * SECTOR_BYTES : 0;
      const lunText = hctl.split(':')[3];
      luns.push({
        device: `/dev/${dname}`,
        hctl,
        lun: lunText !== undefined && /^\d+$/.test(lunText) ? Number(lunText) : null,
        bytes,
        size: formatSize(bytes),
        vendor: d.get('vendor') ?? '',
        model: d.get('model') ?? '',
        naa: d.get('wwid') ?? '',
        targetPort: sysfsWwn(d.get('target_port')),
      });
    }
    const hctlKey = (h: string): number[] => h.split(':').map((x) => Number(x));
    luns.sort((a, b) => {
      const [x, y] = [hctlKey(a.hctl), hctlKey(b.hctl)];
      for (let i = 0; i < 4; i++) if ((x[i] ?? 0) !== (y[i] ?? 0)) return (x[i] ?? 0) - (y[i] ?? 0);
      return 0;
    });
    const run = host ? obs.fio.find((f) => f.host === host) : undefined;
    const io = run ? ioFrom(run) : null;
    const problems: string[] = [];
    if (!host) problems.push('the guest shows no fc_host with this WWPN');
    else if (!fabricLogin)
      problems.push(`fabric login failed (port_state ${portState ?? '?'}, port_id ${portId ?? '?'})`);
    if (host && targets.length === 0) problems.push('no target ports discovered');
    if (host && luns.length === 0) problems.push('the guest sees no LUN');
    if (host && luns.length > 0 && !io) problems.push('no verified I/O run');
    if (io?.problem) problems.push(`verified I/O: ${io.problem}`);
    return {
      index: index + 1,
      wwpn: formatWwn(vport.wwpn),
      wwnn: formatWwn(vport.wwnn),
      host,
      nportId: portId,
      portState,
      portType: attrs.get('port_type') ?? null,
      fabricName,
      speed: attrs.get('speed') ?? null,
      fabricLogin,
      targets,
      luns,
      io,
      problems,
    };
  });
  const failures = [...(input.failures ?? [])];
  // A guest kernel problem usually explains everything after it: list it first.
  if (input.guest.kernelProblems.length > 0)
    failures.push(`guest kernel reported a problem: ${input.guest.kernelProblems[0]}`);
  for (const v of vports) for (const p of v.problems) failures.push(`vport ${v.index} (${v.wwpn}): ${p}`);
  const ids = vports.filter((v) => v.fabricLogin).map((v) => v.nportId);
  if (new Set(ids).size !== ids.length) failures.push('two vports got the same N_Port ID');
  const warnings: string[] = [];
  for (const v of vports) {
    for (const t of v.targets) {
      if (t.inSan === false)
        warnings.push(
          `vport ${v.index}: the guest lists target ${t.wwpn} (N_Port ID ${t.portId}), which is not a target port of the SAN`,
        );
    }
  }
  return {
    ok: failures.length === 0,
    failures,
    warnings,
    san: input.san,
    vports,
    guest: input.guest,
    timings: input.timings,
    workDir: input.workDir,
    logs: input.logs,
  };
}

// ---------------------------------------------------------------------------------- rendering

/** Left-aligned columns, two spaces apart; the last column is not padded. */
export function formatTable(
  header: readonly string[],
  rows: readonly (readonly string[])[],
  indent = '    ',
): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    indent +
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)];
}

function field(label: string, value: string): string {
  return `  ${(label + ':').padEnd(16)}${value}`;
}

export function formatLabReport(report: LabReport): string {
  const out: string[] = [];
  out.push(`npiv-hba lab: ${report.ok ? 'PASSED' : 'FAILED'}`);
  out.push('');
  out.push('SAN');
  out.push(field('config', report.san.source));
  if (report.san.fabric !== null)
    out.push(field('fabric', `${report.san.fabric} (domain ${report.san.domain ?? '?'})`));
  for (const a of report.san.arrays) {
    const vols = a.volumes
      .map((v) => `${v.name} ${formatSize(v.bytes)}${v.file ? ` (${v.file})` : ' (RAM)'}`)
      .join(', ');
    out.push(field(`array ${a.name}`, vols));
  }
  if (report.san.logins.length > 0) {
    out.push(field('fabric logins', report.san.logins.map((l) => `${l.nportId} ${l.wwpn}`).join(', ')));
  }
  for (const v of report.vports) {
    out.push('');
    out.push(`vport ${v.index}${v.host ? ` (guest ${v.host})` : ''}`);
    out.push(field('WWPN', v.wwpn));
    out.push(field('WWNN', v.wwnn));
    out.push(field('N_Port ID', v.nportId ?? '-'));
    out.push(
      field(
        'fabric login',
        v.fabricLogin ? `OK (${v.portType ?? v.portState ?? ''})` : `FAILED (port_state ${v.portState ?? 'none'})`,
      ),
    );
    out.push(field('fabric name', v.fabricName ?? '-'));
    out.push(field('speed', v.speed ?? '-'));
    out.push(`  targets discovered: ${v.targets.length}`);
    if (v.targets.length > 0) {
      out.push(
        ...formatTable(
          ['WWPN', 'N_Port ID', 'roles', 'state'],
          v.targets.map((t) => [
            t.wwpn,
            t.portId,
            t.roles,
            t.inSan === false ? `${t.state} (not in the SAN!)` : t.state,
          ]),
        ),
      );
    }
    out.push(`  LUNs seen by the guest: ${v.luns.length}`);
    if (v.luns.length > 0) {
      out.push(
        ...formatTable(
          ['device', 'H:C:T:L', 'size', 'vendor/model', 'NAA id', 'target port'],
          v.luns.map((l) => [
            l.device,
            l.hctl,
            l.size,
            `${l.vendor} ${l.model}`.trim(),
            l.naa || '-',
            l.targetPort ?? '-',
          ]),
        ),
      );
    }
    if (v.io) {
      const io = v.io;
      out.push(
        `  verified I/O:   ${io.device} @ ${formatSize(io.offsetBytes)}: ${io.writtenMiB} MiB written, ${io.verifiedMiB} MiB verified, ` +
          `${io.writeMiBps} MiB/s, ${io.writeIops} IOPS (write)${io.verifyMiBps !== null ? `, verify ${io.verifyMiBps} MiB/s` : ''}, errors ${io.errors}`,
      );
    } else {
      out.push('  verified I/O:   none');
    }
    for (const p of v.problems) out.push(`  PROBLEM:        ${p}`);
  }
  out.push('');
  out.push(
    `guest: ${report.guest.kernel ?? 'kernel ?'}, ${report.guest.accel}, exit status ${report.guest.exitStatus ?? 'none'}`,
  );
  out.push(
    `total time: ${report.timings.totalSeconds.toFixed(1)} s (${report.timings.steps.map((s) => `${s.step} ${s.seconds.toFixed(1)} s`).join(', ')})`,
  );
  if (report.warnings.length > 0) {
    out.push('');
    out.push('warnings:');
    for (const w of report.warnings) out.push(`  - ${w}`);
  }
  if (!report.ok) {
    out.push('');
    out.push('FAILED:');
    for (const f of report.failures) out.push(`  - ${f}`);
    const logs = Object.entries(report.logs);
    if (logs.length > 0) {
      out.push('logs:');
      for (const [name, path] of logs) out.push(`  ${name.padEnd(10)} ${path}`);
    }
  }
  return out.join('\n') + '\n';
}

export function labReportJson(report: LabReport): string {
  return JSON.stringify(report, null, 2) + '\n';
}
