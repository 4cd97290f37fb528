#!/usr/bin/env node
// `npm run bench`: compiles the benchmark tree (bench/**/*.ts with the project's sources) into
// bench/.out with the project's TypeScript, checks the build artefacts the benchmarks load
// (build/ring.wasm, the native shim) and runs bench/main.ts with the given arguments.
// Usage and flags: see bench/main.ts (`npm run bench -- --only ring,emulator`).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const run = (cmd, args) => {
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) {
    console.error(`bench: \`${[cmd, ...args].join(' ')}\` failed (${r.status ?? r.signal})`);
    process.exit(1);
  }
};

if (!existsSync(join(root, 'build', 'ring.wasm'))) run('npm', ['run', 'build:wasm']);
// The guest environment for the end-to-end part, and host fio for its limit path.
run('bash', [join(root, 'scripts', 'guest', 'prepare.sh'), '--with-bench']);
if (!existsSync(join(root, 'native', 'build', 'Release', 'npiv_native.node'))) {
  console.error('bench: the native shim is not built; run `npm ci` (or `npx node-gyp rebuild --directory=native`) first');
  process.exit(1);
}
run(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(root, 'bench', 'tsconfig.json')]);
const main = join(root, 'bench', '.out', 'bench', 'main.js');
const r = spawnSync(process.execPath, [main, ...process.argv.slice(2)], { cwd: root, stdio: 'inherit' });
process.exit(r.status ?? 1);
