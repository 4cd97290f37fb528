/**
 * The one convention for durations on the command line (docs/cli.md#common-conventions): a
 * number of seconds, or a number with a unit — `500ms`, `30s`, `2m`, `1h`. JSON fields that hold
 * a duration name their unit instead (`delayMs`).
 */
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** `text` → milliseconds; refuses what is not a duration or exceeds `maxMs`, naming `option`. */
export function parseDuration(text: string, option: string, maxMs = 24 * 3_600_000): number {
  const m = /^(\d{1,9}(?:\.\d{1,3})?)(ms|s|m|h)?$/.exec(text.trim());
  if (m === null)
    throw new Error(`invalid ${option} '${text}': expected seconds, or a number with a unit: 500ms, 30s, 2m, 1h`);
  const ms = Math.round(Number(m[1]) * UNIT_MS[m[2] ?? 's']!);
  if (ms > maxMs) throw new Error(`invalid ${option} '${text}': at most ${formatDuration(maxMs)}`);
  return ms;
}

/** Milliseconds in the largest unit that divides them: 420000 → "7m", 1500 → "1500ms". */
export function formatDuration(ms: number): string {
  for (const unit of ['h', 'm', 's'] as const)
    if (ms >= UNIT_MS[unit]! && ms % UNIT_MS[unit]! === 0) return `${ms / UNIT_MS[unit]!}${unit}`;
  return `${ms}ms`;
}
