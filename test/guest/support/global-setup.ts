/**
 * Guest tests drive the real CLI (`bin/npiv-hba.js` → dist/), as a user would. Build it first so a
 * test never runs stale JavaScript.
 */
import { execFileSync } from 'node:child_process';
import { packageRoot } from '../../../src/util/package-root.js';

export default function setup(): void {
  const root = packageRoot();
  execFileSync('npm', ['run', '--silent', 'build'], { cwd: root, stdio: 'inherit' });
}
