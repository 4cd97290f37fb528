/**
 * Small statistics for the benchmark report: percentiles over latency samples, rates, ratios.
 * Pure functions (unit-tested in test/unit/bench/).
 */

/** Nearest-rank percentile (p in 0..100) of unsorted samples; NaN for no samples. */
export function percentile(samples: readonly number[], p: number): number {
  if (!(p >= 0 && p <= 100)) throw new RangeError(`percentile ${p} outside 0..100`);
  if (samples.length === 0) return Number.NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[rank - 1]!;
}

export interface LatencySummary {
  count: number;
  meanUs: number;
  p50Us: number;
  p99Us: number;
  maxUs: number;
}

/** Summary of latency samples given in microseconds. */
export function summarizeLatency(samplesUs: readonly number[]): LatencySummary {
  const count = samplesUs.length;
  const sum = samplesUs.reduce((a, b) => a + b, 0);
  return {
    count,
    meanUs: count ? sum / count : Number.NaN,
    p50Us: percentile(samplesUs, 50),
    p99Us: percentile(samplesUs, 99),
    maxUs: count ? Math.max(...samplesUs) : Number.NaN,
  };
}

/** value / reference, or null when either is missing or the reference is zero. */
export function ratio(value: number | null | undefined, reference: number | null | undefined): number | null {
  if (value === null || value === undefined || reference === null || reference === undefined) return null;
  if (!Number.isFinite(value) || !Number.isFinite(reference) || reference === 0) return null;
  return value / reference;
}

/** A number for a table cell: 3 significant digits, thousands kept whole; '—' for missing. */
export function formatNumber(value: number | null | undefined): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return '—';
  const abs = Math.abs(value);
  if (abs >= 1000) return Math.round(value).toLocaleString('en-US');
  if (abs >= 100) return value.toFixed(0);
  if (abs >= 10) return value.toFixed(1);
  if (abs >= 1) return value.toFixed(2);
  return value.toPrecision(3);
}

/** Ratio cell: "0.42×"; '—' for missing. */
export function formatRatio(value: number | null): string {
  return value === null ? '—' : `${formatNumber(value)}×`;
}

export interface Spread {
  median: number;
  min: number;
  max: number;
  n: number;
}

/** Median, min and max of the finite values; null when there are none. */
export function spread(values: readonly (number | null | undefined)[]): Spread | null {
  const v = values.filter((x): x is number => typeof x === 'number' && Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return null;
  const mid = v.length >> 1;
  const median = v.length % 2 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2;
  return { median, min: v[0]!, max: v[v.length - 1]!, n: v.length };
}

/** "1.23× [1.10–1.31]" style cell; '—' for missing. */
export function formatSpread(s: Spread | null, suffix = ''): string {
  if (!s) return '—';
  const f = (x: number) => `${formatNumber(x)}${suffix}`;
  return s.n > 1 ? `${f(s.median)} [${f(s.min)}–${f(s.max)}]` : f(s.median);
}
