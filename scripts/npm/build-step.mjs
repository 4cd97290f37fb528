#!/usr/bin/env node
// One build step of npm's lifecycle (`install`: the native shim, `prepare`: WASM + TypeScript).
//
// `npx npiv-hba` in a checkout makes npm link the checkout into its npx cache and run these
// lifecycle scripts again on the checkout itself: 20-50 s of silent rebuilding before the first
// command runs. Under `npm exec` a step whose outputs already exist is therefore skipped (npm ci
// and npm install always build; `npm run build` rebuilds after a source change).
//   node scripts/npm/build-step.mjs <native|ts> <command> [args...]
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const OUTPUTS = {
  native: ['native/build/Release/npiv_native.node'],
  ts: ['build/ring.wasm', 'dist/src/cli.js'],
};

const [step, command, ...args] = process.argv.slice(2);
const outputs = OUTPUTS[step];
if (outputs === undefined || command === undefined) {
  console.error(`usage: build-step.mjs <${Object.keys(OUTPUTS).join('|')}> <command> [args...]`);
  process.exit(2);
}
if (process.env.npm_command === 'exec' && outputs.every((f) => existsSync(join(root, f)))) process.exit(0);
// `npm` as the npm that runs this lifecycle (npm_execpath), whatever PATH holds.
const [program, programArgs] =
  command === 'npm' && process.env.npm_execpath
    ? [process.execPath, [process.env.npm_execpath, ...args]]
    : [command, args];
const result = spawnSync(program, programArgs, { cwd: root, stdio: 'inherit', shell: false });
if (result.error) {
  console.error(`build-step: ${command}: ${result.error.message}`);
  process.exit(1);
}
process.exit(result.status ?? 1);
