/**
 * The npiv-hba package root: the nearest directory above this module whose package.json names
 * npiv-hba. One lookup for every module that needs a path inside the package (bin/, build/,
 * native/, scripts/), so it works alike from src/ (vitest, tsx) and dist/src/ (after tsc).
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const PACKAGE_NAME = 'npiv-hba';

/**
 * Walks up from `from` (default: this module) to our package.json. Throws when there is none,
 * which means the package is installed broken.
 */
export function packageRoot(from: string = fileURLToPath(import.meta.url)): string {
  const start = dirname(from);
  for (let dir = start; ; dir = dirname(dir)) {
    try {
      const manifest = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: unknown };
      if (manifest.name === PACKAGE_NAME) return dir;
    } catch {
      // no, unreadable or not-JSON package.json here: not our root, keep walking up
    }
    if (dirname(dir) === dir)
      throw new Error(`cannot find the ${PACKAGE_NAME} package root (its package.json) above ${start}`);
  }
}
