/** Command-line flags of `npm run bench` (see bench/main.ts). */
import { PARTS, type PartName } from './results.js';

export interface BenchArgs {
  parts: PartName[];
  quick: boolean;
  seconds: number;
  /** e2e repeats of the job sequence */
  repeats: number;
  reportOnly: boolean;
  e2ePaths?: ('npiv-hba' | 'megasas' | 'virtio-scsi' | 'host')[];
  e2eHba: 'in-process' | 'process';
}

const E2E_PATHS = ['npiv-hba', 'megasas', 'virtio-scsi', 'host'] as const;

function partList(text: string, flag: string): PartName[] {
  const names = text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  for (const n of names)
    if (!(PARTS as readonly string[]).includes(n))
      throw new Error(`${flag}: unknown part "${n}" (parts: ${PARTS.join(', ')})`);
  return names as PartName[];
}

export function parseBenchArgs(argv: readonly string[]): BenchArgs {
  let parts: PartName[] = [...PARTS];
  let quick = false;
  let seconds = 10;
  let repeats = 3;
  let reportOnly = false;
  let e2ePaths: BenchArgs['e2ePaths'];
  let e2eHba: BenchArgs['e2eHba'] = 'in-process';
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === '--only') parts = partList(value(), a);
    else if (a === '--skip') {
      const skip = partList(value(), a);
      parts = parts.filter((p) => !skip.includes(p));
    } else if (a === '--quick') quick = true;
    else if (a === '--seconds') {
      seconds = Number(value());
      if (!Number.isFinite(seconds) || seconds <= 0 || seconds > 600)
        throw new Error('--seconds must be a number in (0, 600]');
    } else if (a === '--repeats') {
      repeats = Number(value());
      if (!Number.isInteger(repeats) || repeats < 1 || repeats > 20)
        throw new Error('--repeats must be an integer in 1..20');
    } else if (a === '--report-only') reportOnly = true;
    else if (a === '--e2e-paths') {
      const names = value()
        .split(',')
        .map((x) => x.trim())
        .filter(Boolean);
      for (const n of names)
        if (!(E2E_PATHS as readonly string[]).includes(n))
          throw new Error(`--e2e-paths: unknown path "${n}" (${E2E_PATHS.join(', ')})`);
      e2ePaths = names as (typeof E2E_PATHS)[number][];
    } else if (a === '--e2e-hba') {
      const v = value();
      if (v !== 'in-process' && v !== 'process') throw new Error('--e2e-hba must be in-process or process');
      e2eHba = v;
    } else throw new Error(`unknown argument ${a} (see bench/main.ts)`);
  }
  // The profile reads the emulator's and e2e results: run it after them.
  parts.sort((x, y) => PARTS.indexOf(x) - PARTS.indexOf(y));
  return {
    parts,
    quick,
    seconds: quick ? Math.min(seconds, 3) : seconds,
    repeats,
    reportOnly,
    e2eHba,
    ...(e2ePaths ? { e2ePaths } : {}),
  };
}
