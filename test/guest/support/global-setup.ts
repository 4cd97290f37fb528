/**
 * Guest tests drive the real CLI (`bin/npiv-hba.js` → dist/), as a user would. Build it first so a
 * test never runs stale JavaScript.
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export default function setup(): void {
  const root = fileURLToPath(new URL('../../..', import.meta.url));
  execFileSync('npm', ['run', '--silent', 'build'], { cwd: root, stdio: 'inherit' });
}
