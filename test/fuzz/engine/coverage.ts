/**
 * Block coverage of the code under test from V8's precise coverage (the same data
 * NODE_V8_COVERAGE and c8 use), read in-process through node:inspector. With callCount on, every
 * Profiler.takePreciseCoverage reports the counts since the previous take and resets them, and an
 * in-process Session answers synchronously, so one take after an input (or a batch of inputs)
 * tells which blocks that input (batch) executed.
 *
 * V8 reports a function as its own range plus the nested block ranges whose count differs from
 * the enclosing range; a block whose count equals its parent's is left out. So a block's count in
 * one report is the count of the innermost reported range that contains it. Every range ever
 * reported gets a stable id here; `take()` returns the ids with a non-zero count in that report.
 */
import { Session } from 'node:inspector';

interface Range {
  startOffset: number;
  endOffset: number;
  count: number;
}
interface FunctionCoverage {
  functionName: string;
  ranges: Range[];
}
interface ScriptCoverage {
  url: string;
  functions: FunctionCoverage[];
}

interface KnownRange {
  start: number;
  end: number;
  id: number;
}

export class BlockCoverage {
  private readonly session = new Session();
  /** per function (url + start offset): every range seen so far, with its id */
  private readonly known = new Map<string, KnownRange[]>();
  private readonly ids = new Map<string, number>();
  private nextId = 0;

  /** Only scripts whose URL passes `include` count (the project's own modules, not node: or vendored code). */
  constructor(private readonly include: (url: string) => boolean) {
    this.session.connect();
    this.post('Profiler.enable');
    this.post('Profiler.startPreciseCoverage', { callCount: true, detailed: true, allowTriggeredUpdates: false });
  }

  /** Number of distinct block ranges V8 has reported so far (covered or not). */
  get knownBlocks(): number {
    return this.nextId;
  }

  /** Ids of the blocks executed since the previous take. */
  take(): Set<number> {
    const { result } = this.post('Profiler.takePreciseCoverage') as { result: ScriptCoverage[] };
    const hit = new Set<number>();
    for (const script of result) {
      if (!this.include(script.url)) continue;
      for (const fn of script.functions) {
        const ranges = fn.ranges;
        if (ranges.length === 0 || ranges[0]!.count === 0) continue;
        const fnKey = `${script.url}:${ranges[0]!.startOffset}`;
        let known = this.known.get(fnKey);
        if (!known) {
          known = [];
          this.known.set(fnKey, known);
        }
        for (const r of ranges) this.register(fnKey, known, r);
        for (const k of known) {
          if (innermostCount(ranges, k) > 0) hit.add(k.id);
        }
      }
    }
    return hit;
  }

  /** Discards the counts gathered so far (after setup, between phases). */
  reset(): void {
    this.post('Profiler.takePreciseCoverage');
  }

  close(): void {
    this.post('Profiler.stopPreciseCoverage');
    this.session.disconnect();
  }

  private register(fnKey: string, known: KnownRange[], r: Range): void {
    const key = `${fnKey}:${r.startOffset}:${r.endOffset}`;
    if (this.ids.has(key)) return;
    const id = this.nextId++;
    this.ids.set(key, id);
    known.push({ start: r.startOffset, end: r.endOffset, id });
  }

  private post(method: string, params?: object): unknown {
    let error: Error | null = null;
    let answer: unknown;
    let answered = false;
    this.session.post(method, params ?? {}, (err, res) => {
      error = err;
      answer = res;
      answered = true;
    });
    if (!answered) throw new Error(`inspector ${method} did not answer synchronously`);
    if (error) throw error;
    return answer;
  }
}

/** Count of the innermost range of this report containing `k` (ranges are sorted, parents first). */
function innermostCount(ranges: Range[], k: KnownRange): number {
  let count = 0;
  for (const r of ranges) {
    if (r.startOffset > k.start) break;
    if (r.startOffset <= k.start && k.end <= r.endOffset) count = r.count;
  }
  return count;
}
