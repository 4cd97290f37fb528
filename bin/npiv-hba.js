#!/usr/bin/env node
// Thin launcher: the CLI is compiled from src/cli.ts into dist/ by `npm run build` (run by npm ci).
import { main } from '../dist/src/cli.js';

main(process.argv).catch((err) => {
  console.error(`npiv-hba: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
