/**
 * The coverage-guided loop for one target, run in a worker thread so that the runner's main
 * thread can watch for hangs (a synchronous infinite loop cannot be interrupted from inside).
 *
 * Before each execution the input is copied into shared memory and a sequence number bumped; the
 * main thread kills the worker when one execution outlives the target's timeout and saves the
 * input it finds there.
 *
 * Coverage is taken once per batch of mutants (a take costs far more than a typical execution);
 * only when a batch reached a block never seen before is each of its inputs run again on its own
 * to find the ones that did, and those join the corpus.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, readdirSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import type { BlockCoverage } from './coverage.js';
import { Mutator, Prng } from './mutate.js';
import { captureRootLog } from './root-log.js';
import { FuzzFinding, type FindingKind, type FuzzTarget } from './target.js';

/** Layout of the shared control block: Int32 words, then the current input. */
export const CTL = { SEQ: 0, LEN: 1, BUSY: 2, WORDS: 4 } as const;
export const SHARED_INPUT_OFFSET = CTL.WORDS * 4;

export interface LoopOptions {
  target: FuzzTarget;
  /** started before the target was built, so that V8 instruments all of its code */
  coverage: BlockCoverage;
  seconds: number;
  seed: number;
  outDir: string;
  shared: SharedArrayBuffer;
  report: (s: LoopStats) => void;
}

export interface LoopStats {
  target: string;
  execs: number;
  elapsedMs: number;
  corpus: number;
  blocksCovered: number;
  blocksKnown: number;
  /** inputs that reached new blocks after the seeds */
  newCoverage: number;
  findings: Record<FindingKind, number>;
  savedFindings: string[];
  done: boolean;
}

const BATCH = 64;
const MAX_SAVED_FINDINGS = 16;
const REPORT_EVERY_MS = 1000;

/** Only the project's own compiled modules count as coverage. */
export function projectCode(url: string): boolean {
  return url.includes('/dist/src/') || url.includes('/dist/assembly/');
}

export function sha1(b: Uint8Array): string {
  return createHash('sha1').update(b).digest('hex');
}

interface Entry {
  data: Uint8Array;
}

export async function fuzzLoop(o: LoopOptions): Promise<LoopStats> {
  const { target } = o;
  const ctl = new Int32Array(o.shared, 0, CTL.WORDS);
  const sharedInput = new Uint8Array(o.shared, SHARED_INPUT_OFFSET);
  const corpusDir = join(o.outDir, 'corpus', target.name);
  const findingsDir = join(o.outDir, 'findings', target.name);
  mkdirSync(corpusDir, { recursive: true });

  const cov = o.coverage;
  const covered = new Set<number>();
  const corpus: Entry[] = [];
  const signatures = new Set<string>();
  const stats: LoopStats = {
    target: target.name,
    execs: 0,
    elapsedMs: 0,
    corpus: 0,
    blocksCovered: 0,
    blocksKnown: 0,
    newCoverage: 0,
    findings: { crash: 0, 'out-of-bounds': 0, hang: 0 },
    savedFindings: [],
    done: false,
  };
  const rng = new Prng(o.seed);
  const mutator = new Mutator(rng, { maxLen: target.maxLen, dictionary: target.dictionary });
  const started = Date.now();
  const deadline = started + o.seconds * 1000;

  const record = (input: Uint8Array, err: unknown): void => {
    const kind: FindingKind = err instanceof FuzzFinding ? err.kind : 'crash';
    stats.findings[kind]++;
    const e = err instanceof Error ? err : new Error(String(err));
    const frame = (e.stack ?? '').split('\n').find((l) => l.includes('/dist/src/')) ?? '';
    const signature = `${kind}|${e.name}|${e.message.split('\n')[0]!.replace(/\d+/g, 'N')}|${frame.trim()}`;
    if (signatures.has(signature) || stats.savedFindings.length >= MAX_SAVED_FINDINGS) return;
    signatures.add(signature);
    mkdirSync(findingsDir, { recursive: true });
    const file = join(findingsDir, `${kind}-${sha1(input)}`);
    writeFileSync(`${file}.bin`, input);
    writeFileSync(`${file}.txt`, `${kind} in target ${target.name}\n${e.stack ?? e.message}\n`);
    stats.savedFindings.push(`${file}.bin`);
  };

  // Errors thrown from callbacks the input scheduled (timers, immediates, rejected promises) are
  // findings too; they are charged to the input running when they surface.
  let escaped: unknown = null;
  const onEscape = (err: unknown): void => {
    escaped ??= err;
  };
  process.on('uncaughtException', onEscape);
  process.on('unhandledRejection', onEscape);
  const rootLogFailures = captureRootLog();

  /** Runs one input; true if it was a finding. */
  const exec = async (input: Uint8Array): Promise<boolean> => {
    sharedInput.set(input.subarray(0, Math.min(input.length, sharedInput.length)));
    Atomics.store(ctl, CTL.LEN, input.length);
    Atomics.add(ctl, CTL.SEQ, 1);
    Atomics.store(ctl, CTL.BUSY, 1);
    stats.execs++;
    try {
      const pending = target.run(input);
      if (pending) await pending;
      if (escaped !== null) throw escaped;
      if (rootLogFailures.length > 0) throw new FuzzFinding('crash', `error-level log: ${rootLogFailures.join('\n')}`);
      return false;
    } catch (err) {
      escaped = null;
      rootLogFailures.length = 0;
      record(input, err);
      return true;
    } finally {
      Atomics.store(ctl, CTL.BUSY, 0);
    }
  };

  const addIfNew = (input: Uint8Array, hit: Set<number>, persist: boolean): boolean => {
    let fresh = false;
    for (const id of hit) {
      if (!covered.has(id)) {
        covered.add(id);
        fresh = true;
      }
    }
    if (fresh) {
      corpus.push({ data: input });
      if (persist) writeFileSync(join(corpusDir, sha1(input)), input);
    }
    return fresh;
  };

  // Seeds: the target's own, then whatever earlier runs kept.
  const initial = [...target.seeds()];
  if (existsSync(corpusDir))
    for (const f of readdirSync(corpusDir).sort()) initial.push(new Uint8Array(readFileSync(join(corpusDir, f))));
  cov.reset();
  for (const s of initial) {
    await exec(s);
    const hit = cov.take();
    if (!addIfNew(s, hit, false) && corpus.length === 0) corpus.push({ data: s });
  }
  if (corpus.length === 0) corpus.push({ data: new Uint8Array(0) });

  let lastReport = Date.now();
  const snapshot = (): LoopStats => ({
    ...stats,
    elapsedMs: Date.now() - started,
    corpus: corpus.length,
    blocksCovered: covered.size,
    blocksKnown: cov.knownBlocks,
  });

  while (Date.now() < deadline) {
    const batch: Uint8Array[] = [];
    for (let i = 0; i < BATCH; i++) {
      // Half the time one of the latest additions: they sit at the frontier.
      const pool = rng.chance(0.5) ? corpus.slice(-16) : corpus;
      const base = rng.pick(pool).data;
      const other = rng.chance(0.2) ? rng.pick(corpus).data : null;
      batch.push(mutator.mutate(base, other));
    }
    for (const input of batch) await exec(input);
    const hit = cov.take();
    let anyNew = false;
    for (const id of hit) if (!covered.has(id)) anyNew = true;
    if (anyNew) {
      for (const input of batch) {
        await exec(input);
        if (addIfNew(input, cov.take(), true)) stats.newCoverage++;
      }
      // Blocks the batch reached that no single rerun did (state left over between inputs).
      for (const id of hit) covered.add(id);
    }
    if (Date.now() - lastReport >= REPORT_EVERY_MS) {
      lastReport = Date.now();
      o.report(snapshot());
    }
  }
  await target.close?.();
  cov.close();
  const final = { ...snapshot(), done: true };
  o.report(final);
  return final;
}

/** Runs one saved input through the target; returns the error text, or null when it passes. */
export async function replay(target: FuzzTarget, input: Uint8Array): Promise<string | null> {
  try {
    const pending = target.run(input);
    if (pending) await pending;
    return null;
  } catch (err) {
    const e = err instanceof Error ? err : new Error(String(err));
    return `${err instanceof FuzzFinding ? err.kind : 'crash'}: ${e.stack ?? e.message}`;
  } finally {
    await target.close?.();
  }
}
