/**
 * Unit-project global setup: the CLI tests spawn `bin/npiv-hba.js`, which runs the compiled
 * dist/, and so does `vport start` (its serve command). Rebuild dist/ with `tsc -p
 * tsconfig.json` when any compiled source is newer than its output (or has none), so those
 * tests always run the current source; a failed build stops the run with tsc's errors.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { packageRoot } from '../../src/util/package-root.js';

/** The directories tsconfig.json compiles (its "include"). */
const SOURCE_DIRS = ['src', join('assembly', 'shared')];

function tsFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...tsFiles(path));
    else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) out.push(path);
  }
  return out;
}

function mtimeMs(path: string): number | null {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return null;
  }
}

/** The first source whose dist/ output is missing or older, or null when dist/ is current. */
export function staleSource(root: string): string | null {
  const config = mtimeMs(join(root, 'tsconfig.json')) ?? 0;
  for (const dir of SOURCE_DIRS) {
    for (const source of tsFiles(join(root, dir))) {
      const output = join(root, 'dist', relative(root, source)).replace(/\.ts$/, '.js');
      const built = mtimeMs(output);
      if (built === null || built < (mtimeMs(source) ?? 0) || built < config) return relative(root, source);
    }
  }
  return null;
}

export default function setup(): void {
  const root = packageRoot();
  const stale = staleSource(root);
  if (stale === null) return;
  process.stderr.write(`test setup: dist/ is older than ${stale}; rebuilding it (tsc -p tsconfig.json)\n`);
  try {
    execFileSync(
      process.execPath,
      [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(root, 'tsconfig.json')],
      {
        cwd: root,
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
  } catch (error) {
    const e = error as { stdout?: string; stderr?: string; message: string };
    const output = `${e.stdout ?? ''}${e.stderr ?? ''}`.trim() || e.message;
    throw new Error(`dist/ could not be rebuilt, so the CLI tests would run stale code:\n${output}`);
  }
}
