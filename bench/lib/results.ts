/**
 * Where benchmark results go: bench/results/<part>-latest.json (figures + machine + the exact
 * commands that produced them) and bench/results/<chart>.svg, under the project root.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../../src/util/package-root.js';
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

export function resultsDir(): string {
  const dir = join(packageRoot(), 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** Machine-specific paths out of saved text: scratch directories and the checkout's location. */
export function sanitizePaths(text: string, root: string = packageRoot()): string {
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
