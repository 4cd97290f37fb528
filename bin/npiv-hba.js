#!/usr/bin/env node
// Launcher: the CLI is compiled from src/cli.ts into dist/ by `npm run build` (run by npm ci).
// Run it directly (`node bin/npiv-hba.js`, or a symlink to it on PATH, docs/cli.md#running-it):
// this process is then the npiv-hba process itself, and `kill $!` reaches it.
//
// Under `npx npiv-hba`, npm runs this file through `sh -c` and does not pass SIGTERM on to it:
// killing npm would leave this process behind, still holding its sockets. So when started by
// `npm exec`, a parent that goes away is taken as SIGTERM (serve, san and lab then shut down
// cleanly). The npm variables are dropped so that processes started from here (the detached
// `serve` of `vport start`) are not tied to this one's parent.
import { main } from '../dist/src/cli.js';

if (process.env.npm_command === 'exec') {
  for (const name of ['npm_command', 'npm_lifecycle_event', 'npm_lifecycle_script']) delete process.env[name];
  const parent = process.ppid;
  setInterval(() => {
    if (process.ppid !== parent) process.kill(process.pid, 'SIGTERM');
  }, 250).unref();
}

await main(process.argv);
