/**
 * Offline SVG charts for the benchmark report (no CDN, no dependencies): grouped horizontal bar
 * charts, one group per workload, one bar per series (implementation under test, peers, limit).
 */

export interface BarGroup {
  label: string;
  /** One value per series, in the chart's series order; null = not measured. */
  values: (number | null)[];
}

export interface BarChart {
  title: string;
  /** Axis label, e.g. "IOPS" or "batches/s". */
  unit: string;
  series: string[];
  groups: BarGroup[];
  /** Logarithmic value axis (for values spanning orders of magnitude). */
  log?: boolean;
}

const PALETTE = ['#1f77b4', '#ff7f0e', '#2ca02c', '#9467bd', '#d62728', '#8c564b'];
const WIDTH = 860;
const LABEL_WIDTH = 250;
const VALUE_WIDTH = 90;
const BAR_HEIGHT = 16;
const BAR_GAP = 3;
const GROUP_GAP = 14;
const TOP = 56;
const LEGEND_ROW = 20;

export function escapeXml(text: string): string {
  return text.replace(
    /[<>&"']/g,
    (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' })[c]!,
  );
}

function short(value: number): string {
  const abs = Math.abs(value);
  if (abs >= 1e6) return `${(value / 1e6).toPrecision(3)}M`;
  if (abs >= 1e4) return `${(value / 1e3).toPrecision(3)}k`;
  if (abs >= 100) return value.toFixed(0);
  return value.toPrecision(3);
}

/** Bar length in pixels for a value, on a linear or log10 scale whose top is `max`. */
export function barLength(value: number, max: number, span: number, log = false): number {
  if (!(value > 0) || !(max > 0)) return 0;
  if (!log) return (value / max) * span;
  const floor = Math.log10(max) - 4; // four decades shown
  const v = Math.max(Math.log10(value), floor);
  return ((v - floor) / (Math.log10(max) - floor)) * span;
}

export function renderBarChart(chart: BarChart): string {
  const span = WIDTH - LABEL_WIDTH - VALUE_WIDTH - 20;
  const values = chart.groups.flatMap((g) => g.values).filter((v): v is number => v !== null && Number.isFinite(v));
  const max = values.length ? Math.max(...values) : 1;
  const groupHeight = (n: number) => n * (BAR_HEIGHT + BAR_GAP) + GROUP_GAP;
  const legendHeight = LEGEND_ROW * Math.ceil(chart.series.length / 3);
  const height = TOP + legendHeight + chart.groups.reduce((h, g) => h + groupHeight(g.values.length), 0) + 20;
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="sans-serif" font-size="12">`,
  );
  out.push(`<rect width="100%" height="100%" fill="#ffffff"/>`);
  out.push(`<text x="10" y="22" font-size="16" font-weight="bold">${escapeXml(chart.title)}</text>`);
  out.push(
    `<text x="10" y="42" fill="#555">${escapeXml(chart.unit)}${chart.log ? ' (log scale)' : ''}; longer is better unless the unit says otherwise</text>`,
  );
  chart.series.forEach((name, i) => {
    const x = 10 + (i % 3) * 280;
    const y = TOP + Math.floor(i / 3) * LEGEND_ROW;
    out.push(`<rect x="${x}" y="${y}" width="12" height="12" fill="${PALETTE[i % PALETTE.length]}"/>`);
    out.push(`<text x="${x + 18}" y="${y + 11}">${escapeXml(name)}</text>`);
  });
  let y = TOP + legendHeight + 6;
  for (const group of chart.groups) {
    out.push(`<text x="10" y="${y + BAR_HEIGHT - 3}" font-weight="bold">${escapeXml(group.label)}</text>`);
    group.values.forEach((value, i) => {
      const by = y + i * (BAR_HEIGHT + BAR_GAP);
      if (value === null || !Number.isFinite(value)) {
        out.push(
          `<text x="${LABEL_WIDTH}" y="${by + BAR_HEIGHT - 4}" fill="#999">${escapeXml(chart.series[i] ?? '')}: not measured</text>`,
        );
        return;
      }
      const w = Math.max(1, barLength(value, max, span, chart.log));
      out.push(
        `<rect x="${LABEL_WIDTH}" y="${by}" width="${w.toFixed(1)}" height="${BAR_HEIGHT}" fill="${PALETTE[i % PALETTE.length]}"><title>${escapeXml(`${chart.series[i] ?? ''}: ${value}`)}</title></rect>`,
      );
      out.push(`<text x="${(LABEL_WIDTH + w + 6).toFixed(1)}" y="${by + BAR_HEIGHT - 4}">${short(value)}</text>`);
    });
    y += groupHeight(group.values.length);
  }
  out.push('</svg>');
  return out.join('\n') + '\n';
}

export interface RangeBar {
  /** the bar (e.g. the median over repeats) */
  value: number | null;
  /** error bar ends (min and max over repeats); omitted when equal to value */
  low?: number | null;
  high?: number | null;
}

export interface RangeGroup {
  label: string;
  /** One per series, in the chart's series order. */
  bars: RangeBar[];
}

export interface RangeChart {
  title: string;
  /** Axis label. */
  unit: string;
  series: string[];
  groups: RangeGroup[];
  /** A vertical reference line (e.g. 1.0 for a ratio) with its label. */
  reference?: { value: number; label: string };
  /** Scale each group to its own maximum (values of different magnitude per group). */
  perGroupScale?: boolean;
  /** What the error bars show (default: min–max over repeats). */
  errorLabel?: string;
  /** Below-the-title note. */
  note?: string;
}

/**
 * Horizontal bars on a linear axis with error bars (min–max) and an optional reference line:
 * ratios to a baseline read honestly (a log axis makes a 4× gap look small), and a latency panel
 * (bar = p50, error bar up to p99) with each job on its own scale.
 */
export function renderRangeChart(chart: RangeChart): string {
  const span = WIDTH - LABEL_WIDTH - VALUE_WIDTH - 20;
  const top = (b: RangeBar) => Math.max(b.value ?? 0, b.high ?? 0, b.low ?? 0);
  const globalMax = Math.max(
    chart.reference?.value ?? 0,
    ...chart.groups.flatMap((g) => g.bars.map(top)).filter((v) => Number.isFinite(v)),
    1e-9,
  );
  const groupHeight = (n: number) => n * (BAR_HEIGHT + BAR_GAP) + GROUP_GAP;
  const legendHeight = LEGEND_ROW * Math.ceil(chart.series.length / 3);
  const noteRows = chart.note ? 1 : 0;
  const head = TOP + noteRows * 16;
  const height = head + legendHeight + chart.groups.reduce((h, g) => h + groupHeight(g.bars.length), 0) + 36;
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="sans-serif" font-size="12">`,
  );
  out.push(`<rect width="100%" height="100%" fill="#ffffff"/>`);
  out.push(`<text x="10" y="22" font-size="16" font-weight="bold">${escapeXml(chart.title)}</text>`);
  out.push(
    `<text x="10" y="42" fill="#555">${escapeXml(chart.unit)} (linear${chart.perGroupScale ? ', each group on its own scale' : ''}); error bars: ${escapeXml(chart.errorLabel ?? 'min–max over repeats')}</text>`,
  );
  if (chart.note) out.push(`<text x="10" y="58" fill="#555">${escapeXml(chart.note)}</text>`);
  chart.series.forEach((name, i) => {
    const x = 10 + (i % 3) * 280;
    const y = head + Math.floor(i / 3) * LEGEND_ROW;
    out.push(`<rect x="${x}" y="${y}" width="12" height="12" fill="${PALETTE[i % PALETTE.length]}"/>`);
    out.push(`<text x="${x + 18}" y="${y + 11}">${escapeXml(name)}</text>`);
  });
  let y = head + legendHeight + 6;
  const firstY = y;
  for (const group of chart.groups) {
    const max = chart.perGroupScale ? Math.max(...group.bars.map(top).filter(Number.isFinite), 1e-9) : globalMax;
    const px = (v: number) => LABEL_WIDTH + (Math.max(0, v) / max) * span;
    out.push(`<text x="10" y="${y + BAR_HEIGHT - 3}" font-weight="bold">${escapeXml(group.label)}</text>`);
    group.bars.forEach((bar, i) => {
      const by = y + i * (BAR_HEIGHT + BAR_GAP);
      if (bar.value === null || !Number.isFinite(bar.value)) {
        out.push(
          `<text x="${LABEL_WIDTH}" y="${by + BAR_HEIGHT - 4}" fill="#999">${escapeXml(chart.series[i] ?? '')}: not measured</text>`,
        );
        return;
      }
      const w = Math.max(1, px(bar.value) - LABEL_WIDTH);
      const tip = `${chart.series[i] ?? ''}: ${short(bar.value)}${bar.low != null && bar.high != null ? ` [${short(bar.low)}–${short(bar.high)}]` : ''}`;
      out.push(
        `<rect x="${LABEL_WIDTH}" y="${by}" width="${w.toFixed(1)}" height="${BAR_HEIGHT}" fill="${PALETTE[i % PALETTE.length]}" fill-opacity="0.85"><title>${escapeXml(tip)}</title></rect>`,
      );
      let textX = LABEL_WIDTH + w;
      if (bar.low != null && bar.high != null && Number.isFinite(bar.low) && Number.isFinite(bar.high)) {
        const x1 = px(bar.low);
        const x2 = px(bar.high);
        const cy = by + BAR_HEIGHT / 2;
        out.push(
          `<path d="M${x1.toFixed(1)} ${cy} H${x2.toFixed(1)} M${x1.toFixed(1)} ${by + 3} V${by + BAR_HEIGHT - 3} M${x2.toFixed(1)} ${by + 3} V${by + BAR_HEIGHT - 3}" stroke="#222" stroke-width="1.5" fill="none"/>`,
        );
        textX = Math.max(textX, x2);
      }
      out.push(
        `<text x="${(textX + 6).toFixed(1)}" y="${by + BAR_HEIGHT - 4}">${escapeXml(tip.slice(tip.indexOf(': ') + 2))}</text>`,
      );
    });
    y += groupHeight(group.bars.length);
  }
  if (chart.reference && !chart.perGroupScale) {
    const x = LABEL_WIDTH + (chart.reference.value / globalMax) * span;
    out.push(
      `<line x1="${x.toFixed(1)}" y1="${firstY - 4}" x2="${x.toFixed(1)}" y2="${y - 6}" stroke="#d62728" stroke-dasharray="4 3"/>`,
    );
    out.push(
      `<text x="${x.toFixed(1)}" y="${y + 8}" fill="#d62728" text-anchor="middle">${escapeXml(chart.reference.label)}</text>`,
    );
  }
  out.push('</svg>');
  return out.join('\n') + '\n';
}
