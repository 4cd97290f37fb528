/**
 * Runs the project's CLI from the benchmark's compiled tree (bench/.out), so the SAN and serve
 * processes the benchmarks start run exactly the code that was just compiled, like bin/npiv-hba.js
 * runs dist/.
 */
import { main } from '../../src/cli.js';

main(process.argv).catch((err: unknown) => {
  console.error(`npiv-hba: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
