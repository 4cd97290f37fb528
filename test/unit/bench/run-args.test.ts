/**
 * `node bench/run.js --help` prints the usage and does nothing else (issue 11 point 7): it used to
 * run scripts/guest/prepare.sh, which installs packages. A mistaken argument is refused the same
 * way, before anything runs. bash and npm are replaced on PATH by stand-ins that record a call.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

const RUN = resolve('bench/run.js');
let dir: string;
let marker: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'bench-run-'));
  marker = join(dir, 'called');
  for (const tool of ['bash', 'npm', 'apt-get', 'sudo']) {
    const file = join(dir, tool);
    writeFileSync(file, `#!/bin/sh\necho "${tool} $*" >> '${marker}'\nexit 0\n`);
    chmodSync(file, 0o755);
  }
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const runBench = (...args: string[]) => runScript(RUN, ...args);
const runScript = (script: string, ...args: string[]) =>
  spawnSync(process.execPath, [script, ...args], {
    encoding: 'utf8',
    env: { ...process.env, PATH: dir },
    timeout: 20_000,
  });

describe('bench/run.js arguments', () => {
  it('--help and -h print the usage, exit 0, and run nothing', () => {
    for (const flag of ['--help', '-h']) {
      const r = runBench('--only', 'ring', flag);
      expect(r.status).toBe(0);
      expect(r.stdout).toContain('usage: npm run bench');
      expect(r.stdout).toContain('--report-only');
      expect(existsSync(marker)).toBe(false);
    }
  });

  it('an unknown argument, a missing value or an unknown part: exit 2 with the usage, nothing run', () => {
    for (const [args, message] of [
      [['--frobnicate'], 'unknown argument --frobnicate'],
      [['--seconds'], '--seconds needs a value'],
      [['--only', 'ring,warp'], '--only: unknown part "warp"'],
    ] as const) {
      const r = runBench(...args);
      expect(r.status).toBe(2);
      expect(r.stderr).toContain(message);
      expect(r.stderr).toContain('usage: npm run bench');
    }
    expect(existsSync(marker)).toBe(false);
  });

  it('without dist/ (where the package-root lookup comes from) it says to build, and runs nothing', () => {
    const tree = join(dir, 'tree');
    mkdirSync(join(tree, 'bench'), { recursive: true });
    copyFileSync(RUN, join(tree, 'bench', 'run.js'));
    const r = runScript(join(tree, 'bench', 'run.js'), '--only', 'ring');
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('dist/ is not built');
    expect(existsSync(marker)).toBe(false);
  });
});
