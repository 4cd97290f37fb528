/** Worker-thread entry: builds one target and runs the loop (or one replay) for the runner (run.ts). */
import { parentPort, workerData } from 'node:worker_threads';
import { readFileSync } from 'node:fs';
import { BlockCoverage } from './engine/coverage.js';
import { fuzzLoop, projectCode, replay } from './engine/loop.js';
import { targetInfo } from './targets/index.js';

interface Job {
  target: string;
  seconds: number;
  seed: number;
  outDir: string;
  shared: SharedArrayBuffer;
  replayFile?: string;
}

const job = workerData as Job;
const coverage = job.replayFile ? null : new BlockCoverage(projectCode);
const target = await targetInfo(job.target).create();
if (job.replayFile) {
  const result = await replay(target, new Uint8Array(readFileSync(job.replayFile)));
  parentPort!.postMessage({ replay: result });
} else {
  await fuzzLoop({
    target,
    coverage: coverage!,
    seconds: job.seconds,
    seed: job.seed,
    outDir: job.outDir,
    shared: job.shared,
    report: (s) => parentPort!.postMessage({ stats: s }),
  });
}
