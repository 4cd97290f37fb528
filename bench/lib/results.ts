/**
 * Where benchmark results go: bench/results/<part>-latest.json (figures + machine + the exact
 * commands that produced them) and bench/results/<chart>.svg, under the project root.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { MachineInfo } from './machine.js';

export const PARTS = ['ring', 'emulator', 'e2e', 'scale', 'profile'] as const;
export type PartName = (typeof PARTS)[number];

export interface PartResult<T = unknown> {
  part: PartName;
  title: string;
  machine: MachineInfo;
  /** how this part was run: the npm command plus every external command line it started */
  commands: string[];
  durationSeconds: number;
  data: T;
  /** the named bottleneck of this path, in one sentence */
  bottleneck: string;
  notes: string[];
}

export function projectRoot(from: string = fileURLToPath(import.meta.url)): string {
  let dir = dirname(from);
  for (;;) {
    const manifest = join(dir, 'package.json');
    if (existsSync(manifest)) {
      try {
        if ((JSON.parse(readFileSync(manifest, 'utf8')) as { name?: unknown }).name === 'npiv-hba') return dir;
      } catch {
        // not ours; keep walking up
      }
    }
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`no npiv-hba package.json above ${from}`);
    dir = parent;
  }
}

export function resultsDir(): string {
  const dir = join(projectRoot(), 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** Machine-specific paths out of saved text: scratch directories and the checkout's location. */
export function sanitizePaths(text: string, root: string = projectRoot()): string {
  return text
    .replaceAll(root + '/', '')
    .replace(/\/tmp\/npiv-hba-guest-[A-Za-z0-9]+/g, '<tmp>')
    .replace(/\/tmp\/npiv-bench-[A-Za-z0-9-]+/g, '<work>');
}

export function savePart<T>(result: PartResult<T>): string {
  const file = join(resultsDir(), `${result.part}-latest.json`);
  const clean = { ...result, commands: result.commands.map((c) => sanitizePaths(c)) };
  writeFileSync(file, JSON.stringify(clean, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v), 2) + '\n');
  return file;
}

export function loadPart<T>(part: PartName): PartResult<T> | null {
  const file = join(resultsDir(), `${part}-latest.json`);
  if (!existsSync(file)) return null;
  return JSON.parse(readFileSync(file, 'utf8')) as PartResult<T>;
}

export function saveChart(name: string, svg: string): string {
  const file = join(resultsDir(), `${name}.svg`);
  writeFileSync(file, svg);
  return file;
}
