/**
 * Instructions per I/O of the FCP micro-benchmark (fcp-path.ts) under valgrind's callgrind: two
 * runs with different I/O counts, the difference divided by the difference in I/Os, so start-up,
 * JIT warm-up and the SAN's set-up cancel out. Robust on a shared, noisy machine where CPU time
 * is not (docs/benchmarks.md, "Before/after on a noisy machine").
 *
 *   node bench/.out/bench/micro/callgrind.js [compiled fcp-path.js] [qd=32] [rw=read]
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const SMALL = 2000;
const LARGE = 5000;

function instructions(script: string, ios: number, qd: number, rw: string, dir: string): number {
  const out = join(dir, `cg-${ios}.out`);
  const r = spawnSync(
    'valgrind',
    ['--tool=callgrind', `--callgrind-out-file=${out}`, process.execPath, script, String(ios), String(qd), rw],
    { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 },
  );
  if (r.status !== 0) throw new Error(`valgrind ${ios}: status ${r.status}: ${r.stderr.slice(-800)}`);
  const m = /Collected : (\d+)/.exec(r.stderr);
  if (!m) throw new Error(`valgrind ${ios}: no instruction count in its output`);
  return Number(m[1]);
}

export function instructionsPerIo(script: string, qd: number, rw: string): number {
  const dir = mkdtempSync(join(tmpdir(), 'npiv-callgrind-'));
  try {
    const small = instructions(script, SMALL, qd, rw, dir);
    const large = instructions(script, LARGE, qd, rw, dir);
    return (large - small) / (LARGE - SMALL);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1]?.endsWith('callgrind.js')) {
  const script = process.argv[2] ?? join(dirname(fileURLToPath(import.meta.url)), 'fcp-path.js');
  const qd = Number(process.argv[3] ?? 32);
  const rw = process.argv[4] === 'write' ? 'write' : 'read';
  console.log(JSON.stringify({ script, qd, rw, instructionsPerIo: Math.round(instructionsPerIo(script, qd, rw)) }));
}
