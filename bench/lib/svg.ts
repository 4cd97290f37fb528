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
