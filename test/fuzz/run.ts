/**
 * `npm run fuzz -- [--seconds N] [--target NAME]... [--seed N] [--out DIR] [--replay FILE]`
 *
 * Runs each target's coverage-guided loop (engine/loop.ts) in a worker thread for N seconds
 * (default 60), one target after another, and prints executions, coverage and findings. The main
 * thread is the hang watchdog: an execution that outlives its target's timeout is saved as a hang
 * and the worker is replaced for the rest of the time. Findings go to DIR/findings/TARGET/ (input
 * .bin + .txt with the error); the growing corpus to DIR/corpus/TARGET/ (DIR defaults to fuzz-out/,
 * which git ignores). Exits 1 when anything was found, 2 on bad usage.
 */
import { spawnSync } from 'node:child_process';
import { Worker } from 'node:worker_threads';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CTL, SHARED_INPUT_OFFSET, sha1, type LoopStats } from './engine/loop.js';
import { TARGETS, targetInfo } from './targets/index.js';

/** Targets outside this process: libFuzzer binaries built and run by a script. */
const NATIVE = ['native-cmsg'] as const;
const ALL = [...TARGETS.map((t) => t.name), ...NATIVE];

interface Args {
  seconds: number;
  targets: string[];
  seed: number;
  outDir: string;
  replay: string | null;
}

function usage(message: string): never {
  console.error(
    `${message}\nusage: npm run fuzz -- [--seconds N] [--target NAME]... [--seed N] [--out DIR] [--replay FILE]\ntargets: ${ALL.join(', ')}`,
  );
  process.exit(2);
}

function parseArgs(argv: string[]): Args {
  const a: Args = { seconds: 60, targets: [], seed: Date.now() >>> 0, outDir: 'fuzz-out', replay: null };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    const value = (): string => argv[++i] ?? usage(`${flag} needs a value`);
    if (flag === '--seconds') a.seconds = Number(value());
    else if (flag === '--target') a.targets.push(...value().split(','));
    else if (flag === '--seed') a.seed = Number(value()) >>> 0;
    else if (flag === '--out') a.outDir = value();
    else if (flag === '--replay') a.replay = value();
    else usage(`unknown argument ${flag}`);
  }
  if (!(a.seconds > 0)) usage('--seconds must be positive');
  for (const t of a.targets) if (!ALL.includes(t)) usage(`unknown target ${t}`);
  if (a.targets.length === 0) a.targets = [...ALL];
  if (a.replay && a.targets.some((t) => (NATIVE as readonly string[]).includes(t)))
    usage('--replay is for the JS targets (native: build/fuzz/cmsg_fuzz FILE)');
  if (a.replay && a.targets.length !== 1) usage('--replay needs exactly one --target');
  return a;
}

const SHARED_BYTES = SHARED_INPUT_OFFSET + (1 << 20);
const PROGRESS_EVERY_MS = 15_000;
const WATCH_EVERY_MS = 50;

interface Outcome {
  stats: LoopStats | null;
  hang: string | null;
  error: string | null;
  replay?: string | null;
}

/** One worker for up to `seconds`; resolves when it finishes, hangs or dies. */
function runWorker(
  target: string,
  seconds: number,
  seed: number,
  outDir: string,
  replayFile: string | null,
): Promise<Outcome> {
  const shared = new SharedArrayBuffer(SHARED_BYTES);
  const ctl = new Int32Array(shared, 0, CTL.WORDS);
  const worker = new Worker(new URL('./worker.js', import.meta.url), {
    workerData: { target, seconds, seed, outDir, shared, ...(replayFile ? { replayFile } : {}) },
  });
  const timeoutMs = targetInfo(target).timeoutMs;
  return new Promise((done) => {
    const outcome: Outcome = { stats: null, hang: null, error: null };
    let lastSeq = -1;
    let since = Date.now();
    const watchdog = setInterval(() => {
      const seq = Atomics.load(ctl, CTL.SEQ);
      if (seq !== lastSeq || Atomics.load(ctl, CTL.BUSY) === 0) {
        lastSeq = seq;
        since = Date.now();
        return;
      }
      if (Date.now() - since < timeoutMs) return;
      const len = Math.min(Atomics.load(ctl, CTL.LEN), SHARED_BYTES - SHARED_INPUT_OFFSET);
      const input = new Uint8Array(shared, SHARED_INPUT_OFFSET, len).slice();
      const dir = join(outDir, 'findings', target);
      mkdirSync(dir, { recursive: true });
      const file = join(dir, `hang-${sha1(input)}`);
      writeFileSync(`${file}.bin`, input);
      writeFileSync(`${file}.txt`, `hang in target ${target}: one execution ran longer than ${timeoutMs} ms\n`);
      outcome.hang = `${file}.bin`;
      clearInterval(watchdog);
      void worker.terminate();
    }, WATCH_EVERY_MS);
    let lastProgress = Date.now();
    worker.on('message', (m: { stats?: LoopStats; replay?: string | null }) => {
      if (m.stats) outcome.stats = m.stats;
      if (m.stats && !m.stats.done && Date.now() - lastProgress >= PROGRESS_EVERY_MS) {
        lastProgress = Date.now();
        console.log(`  ... ${line(m.stats, 0)}`);
      }
      if ('replay' in m) outcome.replay = m.replay ?? null;
    });
    worker.on('error', (err) => {
      outcome.error = err.stack ?? String(err);
    });
    worker.on('exit', () => {
      clearInterval(watchdog);
      done(outcome);
    });
  });
}

function line(s: LoopStats, hangs: number): string {
  const rate = s.elapsedMs > 0 ? Math.round((s.execs * 1000) / s.elapsedMs) : 0;
  const f = s.findings;
  return (
    `${s.target}: ${s.execs} execs in ${(s.elapsedMs / 1000).toFixed(1)} s (${rate}/s), ` +
    `blocks covered ${s.blocksCovered} of ${s.blocksKnown} seen, corpus ${s.corpus}, new-coverage inputs ${s.newCoverage}, ` +
    `crashes ${f.crash}, out-of-bounds ${f['out-of-bounds']}, hangs ${f.hang + hangs}`
  );
}

/** test/fuzz/native/run.sh: libFuzzer's own statistics, and its exit status (3: clang missing, skipped). */
function runNative(seconds: number, outDir: string): { line: string; failed: boolean } {
  const script = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'test', 'fuzz', 'native', 'run.sh');
  const r = spawnSync('bash', [script, String(Math.round(seconds)), outDir], {
    encoding: 'utf8',
    maxBuffer: 256 << 20,
  });
  const text = r.stdout + r.stderr;
  if (r.status === 3) {
    console.log(text.trim());
    return { line: 'native-cmsg: skipped (clang++ not installed)', failed: false };
  }
  const stat = (name: string): string => new RegExp(`stat::${name}:\\s+(\\d+)`).exec(text)?.[1] ?? '?';
  const cov = [...text.matchAll(/cov: (\d+) ft: (\d+) corp: (\d+)/g)].pop();
  const crashed = r.status !== 0;
  const line =
    `native-cmsg: ${stat('number_of_executed_units')} execs in ${seconds} s (${stat('average_exec_per_sec')}/s), ` +
    `edges covered ${cov?.[1] ?? '?'}, features ${cov?.[2] ?? '?'}, corpus ${cov?.[3] ?? '?'}, new-coverage inputs ${stat('new_units_added')}, ` +
    (crashed
      ? `FINDING (libFuzzer exit ${r.status}):\n${text
          .split('\n')
          .filter((l) => /ERROR|SUMMARY|runtime error|artifact_prefix|Test unit written/.test(l))
          .join('\n')}`
      : 'crashes 0, out-of-bounds 0, hangs 0');
  console.log(line);
  return { line: line.split('\n')[0]!, failed: crashed };
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const outDir = resolve(args.outDir);
  if (args.replay) {
    const target = args.targets[0]!;
    const o = await runWorker(target, 0, 0, outDir, resolve(args.replay));
    if (o.hang) console.log(`${target}: replay hangs (input saved as ${o.hang})`);
    else if (o.error) console.log(`${target}: replay failed to run: ${o.error}`);
    else console.log(o.replay ? `${target}: replay fails\n${o.replay}` : `${target}: replay passes`);
    process.exit(o.hang || o.error || o.replay ? 1 : 0);
  }
  let failed = false;
  const summary: string[] = [];
  for (const [k, target] of args.targets.entries()) {
    if (target === 'native-cmsg') {
      const text = runNative(args.seconds, outDir);
      summary.push(text.line);
      failed ||= text.failed;
      continue;
    }
    const end = Date.now() + args.seconds * 1000;
    const total: LoopStats = {
      target,
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
    let hangs = 0;
    // A hang kills the worker; a new one (resuming from the saved corpus) gets the rest of the time.
    for (let round = 0; Date.now() < end - 1000; round++) {
      const seconds = (end - Date.now()) / 1000;
      const o = await runWorker(target, seconds, (args.seed + k * 7919 + round) >>> 0, outDir, null);
      if (o.stats) {
        total.execs += o.stats.execs;
        total.elapsedMs += o.stats.elapsedMs;
        total.corpus = o.stats.corpus;
        total.blocksCovered = Math.max(total.blocksCovered, o.stats.blocksCovered);
        total.blocksKnown = Math.max(total.blocksKnown, o.stats.blocksKnown);
        total.newCoverage += o.stats.newCoverage;
        for (const key of ['crash', 'out-of-bounds', 'hang'] as const) total.findings[key] += o.stats.findings[key];
        total.savedFindings.push(...o.stats.savedFindings);
      }
      if (o.hang) {
        hangs++;
        total.savedFindings.push(o.hang);
        console.log(`${target}: HANG, input saved as ${o.hang}`);
        continue;
      }
      if (o.error) {
        failed = true;
        console.log(`${target}: worker died: ${o.error}`);
      }
      break;
    }
    const text = line(total, hangs);
    console.log(text);
    for (const f of total.savedFindings) console.log(`  finding: ${f}`);
    summary.push(text);
    if (hangs > 0 || total.findings.crash > 0 || total.findings['out-of-bounds'] > 0) failed = true;
  }
  console.log(`\nfuzz summary (seed ${args.seed}):\n  ${summary.join('\n  ')}`);
  process.exit(failed ? 1 : 0);
}

await main();
