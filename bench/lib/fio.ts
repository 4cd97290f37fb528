/**
 * fio JSON output (fio 3.x, --output-format=json) reduced to the figures the report uses.
 * The guest prints it on one line over the serial console, so text before the first '{' (fio
 * notes) is skipped and every field is checked.
 */

export interface FioFigures {
  iops: number;
  bandwidthMiBs: number;
  /** completion latency percentiles, µs */
  clatP50Us: number;
  clatP99Us: number;
  /** total latency mean, µs */
  latMeanUs: number;
  ios: number;
  runtimeMs: number;
  /** fio's own CPU (usr+sys) per I/O, µs (absent in results saved before it was recorded) */
  cpuUsPerIo?: number;
}

const P50 = '50.000000';
const P99 = '99.000000';

function num(value: unknown, what: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value))
    throw new Error(`fio JSON: ${what} missing or not a number`);
  return value;
}

function obj(value: unknown, what: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error(`fio JSON: ${what} missing`);
  return value as Record<string, unknown>;
}

/** Figures of the first job's read or write side (randread/read → read, randwrite/write → write). */
export function parseFioJson(text: string, rw: string): FioFigures {
  const start = text.indexOf('{');
  if (start < 0) throw new Error('fio JSON: no object in the output');
  let parsed: unknown;
  try {
    parsed = JSON.parse(text.slice(start));
  } catch (err) {
    throw new Error(`fio JSON: ${(err as Error).message}`);
  }
  const jobs = obj(parsed, 'top level').jobs;
  if (!Array.isArray(jobs) || jobs.length === 0) throw new Error('fio JSON: no jobs');
  const job = obj(jobs[0], 'jobs[0]');
  const errorCode = job.error;
  if (typeof errorCode === 'number' && errorCode !== 0) throw new Error(`fio job error ${errorCode}`);
  const side = obj(job[rw.includes('write') ? 'write' : 'read'], 'read/write section');
  const clat = obj(side.clat_ns, 'clat_ns');
  const pct = obj(clat.percentile, 'clat_ns.percentile');
  const lat = obj(side.lat_ns, 'lat_ns');
  const figures = {
    iops: num(side.iops, 'iops'),
    bandwidthMiBs: num(side.bw, 'bw') / 1024,
    clatP50Us: num(pct[P50], 'p50') / 1000,
    clatP99Us: num(pct[P99], 'p99') / 1000,
    latMeanUs: num(lat.mean, 'lat_ns.mean') / 1000,
  };
  const ios = num(side.total_ios, 'total_ios');
  const runtimeMs = num(side.runtime, 'runtime');
  // usr_cpu / sys_cpu: percent of one CPU over the job's run time
  const cpuPercent = num(job.usr_cpu, 'usr_cpu') + num(job.sys_cpu, 'sys_cpu');
  return {
    ...figures,
    ios,
    runtimeMs,
    cpuUsPerIo: ios > 0 ? ((cpuPercent / 100) * runtimeMs * 1000) / ios : 0,
  };
}
