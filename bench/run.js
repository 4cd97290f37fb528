#!/usr/bin/env node
// `npm run bench`: compiles the benchmark tree (bench/**/*.ts with the project's sources) into
// bench/.out with the project's TypeScript, checks the build artefacts the benchmarks load
// (build/ring.wasm, the native shim) and runs bench/main.ts with the given arguments.
// Usage and flags: see bench/main.ts (`npm run bench -- --only ring,emulator`).
// The arguments are checked here first: --help, or a mistake, must not prepare the guest
// environment (which installs packages) or build anything. Past that it needs dist/ (`npm run
// build`, which npm ci runs) for the package-root lookup.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

const PARTS = ['ring', 'emulator', 'e2e', 'scale', 'profile'];
const USAGE = `usage: npm run bench -- [options]   (or: node bench/run.js [options])

Runs the benchmark parts and writes bench/results/ (JSON per part, SVG charts, REPORT.md).
Before running it builds what the benchmarks load and prepares the guest environment
(scripts/guest/prepare.sh --with-bench, which may install packages).

  --only PARTS          a subset, comma-separated: ${PARTS.join(', ')}
  --skip PARTS          all parts but these
  --quick               a few minutes: e2e runs 4k read QD1 and QD32 only, 3 s per job, a
                        5 s idle baseline (before/after comparisons, with --repeats)
  --seconds N           seconds per timed workload (default 10, at most 600)
  --repeats N           e2e: repeats of the job sequence, for the spread (default 3)
  --report-only         rewrite REPORT.md from the saved JSON (nothing is prepared or measured)
  --e2e-paths PATHS     re-run some e2e paths, keep the others: npiv-hba, megasas, virtio-scsi, host
  --e2e-hba MODE        e2e npiv-hba HBA: in-process (default) or process (an \`npiv-hba serve\`)
  -h, --help            this text; nothing else is done
`;

/** Flags and whether each takes a value; bench/lib/args.ts checks the values themselves. */
const FLAGS = {
  '--only': true,
  '--skip': true,
  '--quick': false,
  '--seconds': true,
  '--repeats': true,
  '--report-only': false,
  '--e2e-paths': true,
  '--e2e-hba': true,
};

function usageError(message) {
  process.stderr.write(`bench: ${message}\n\n${USAGE}`);
  process.exit(2);
}

const argv = process.argv.slice(2);
if (argv.includes('--help') || argv.includes('-h')) {
  process.stdout.write(USAGE);
  process.exit(0);
}
let reportOnly = false;
for (let i = 0; i < argv.length; i++) {
  const a = argv[i];
  if (!Object.hasOwn(FLAGS, a)) usageError(`unknown argument ${a}`);
  if (FLAGS[a]) {
    const v = argv[++i];
    if (v === undefined || v.startsWith('--')) usageError(`${a} needs a value`);
    if (a === '--only' || a === '--skip') {
      for (const p of v
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean))
        if (!PARTS.includes(p)) usageError(`${a}: unknown part "${p}" (parts: ${PARTS.join(', ')})`);
    }
  }
  if (a === '--report-only') reportOnly = true;
}

// The package root from the one lookup (src/util/package-root.ts), compiled into dist/ by
// `npm run build` (which npm ci runs), as bin/npiv-hba.js loads the CLI. Loaded only here, so
// --help and a mistaken argument need no build.
let packageRoot;
try {
  ({ packageRoot } = await import('../dist/src/util/package-root.js'));
} catch (err) {
  if (err?.code !== 'ERR_MODULE_NOT_FOUND') throw err;
  console.error('bench: dist/ is not built; run `npm run build` (or `npm ci`) first');
  process.exit(1);
}
const root = packageRoot();
const run = (cmd, args) => {
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) {
    console.error(`bench: \`${[cmd, ...args].join(' ')}\` failed (${r.status ?? r.signal})`);
    process.exit(1);
  }
};

if (!existsSync(join(root, 'build', 'ring.wasm'))) run('npm', ['run', 'build:wasm']);
if (!reportOnly) {
  // The guest environment for the end-to-end part, and host fio for its limit path.
  run('bash', [join(root, 'scripts', 'guest', 'prepare.sh'), '--with-bench']);
  if (!existsSync(join(root, 'native', 'build', 'Release', 'npiv_native.node'))) {
    console.error(
      'bench: the native shim is not built; run `npm ci` (or `npx node-gyp rebuild --directory=native`) first',
    );
    process.exit(1);
  }
}
run(process.execPath, [
  join(root, 'node_modules', 'typescript', 'bin', 'tsc'),
  '-p',
  join(root, 'bench', 'tsconfig.json'),
]);
const main = join(root, 'bench', '.out', 'bench', 'main.js');
const r = spawnSync(process.execPath, [main, ...argv], { cwd: root, stdio: 'inherit' });
process.exit(r.status ?? 1);
