/** Shared fixtures for the vport tests: temporary config/run directories and captured CLI output. */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { VportCliIo } from '../../../src/cli/vport.js';
import { packageRoot } from '../../../src/util/package-root.js';

export const PACKAGE_ROOT = packageRoot();
/** `start` runs the built CLI (bin/npiv-hba.js imports dist/src/cli.js). */
export const BUILT_CLI = join(PACKAGE_ROOT, 'dist', 'src', 'cli.js');
export const haveBuiltCli = existsSync(BUILT_CLI);

export interface TempDirs {
  root: string;
  configDir: string;
  runDir: string;
  cleanup(): void;
}

export function tempDirs(): TempDirs {
  // Short paths: Unix socket paths must fit in 107 bytes.
  const root = mkdtempSync(join(tmpdir(), 'vp-'));
  return {
    root,
    configDir: join(root, 'conf'),
    runDir: join(root, 'run'),
    cleanup: () => rmSync(root, { recursive: true, force: true }),
  };
}

export interface CapturedIo {
  io: VportCliIo;
  stdout(): string;
  stderr(): string;
  reset(): void;
}

export function capture(env: NodeJS.ProcessEnv, extra: Partial<VportCliIo> = {}): CapturedIo {
  let out = '';
  let err = '';
  return {
    io: {
      stdout: { write: (t: string) => (out += t) },
      stderr: { write: (t: string) => (err += t) },
      env,
      ...extra,
    },
    stdout: () => out,
    stderr: () => err,
    reset: () => {
      out = '';
      err = '';
    },
  };
}
