#!/usr/bin/env node
/**
 * `node dist/src/vm-model/main.js --socket S --wwpn W --wwnn N [...]`: the qla2xxx-like guest
 * model as a program (src/vm-model/scenario.ts), one JSON event per line on stdout, each line
 * prefixed with --tag. Exit status 0 when every I/O phase verified, 1 otherwise, 2 for bad
 * arguments. The two-level host-backend lab runs it inside the level-1 guest as the "VM".
 */
import { parseArgs } from 'node:util';
import { parseWwn } from '../util/wwn.js';
import { runVmScenario } from './scenario.js';

const USAGE = `usage: main.js --socket PATH --wwpn WWPN --wwnn WWNN [--lun N] [--queue-depth 16]
       [--blocks 2048] [--blocks-per-io 16] [--seed 1] [--flap-wait-ms 0] [--tag PREFIX]
       [--new-lun N [--lun-wait-ms 180000]]`;

function integer(value: string | undefined, name: string, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > max)
    throw new RangeError(`--${name} must be an integer in ${min}..${max}`);
  return n;
}

async function main(): Promise<number> {
  let values: Record<string, string | undefined>;
  try {
    values = parseArgs({
      options: Object.fromEntries(
        [
          'socket',
          'wwpn',
          'wwnn',
          'lun',
          'queue-depth',
          'blocks',
          'blocks-per-io',
          'seed',
          'flap-wait-ms',
          'tag',
          'new-lun',
          'lun-wait-ms',
        ].map((name) => [name, { type: 'string' as const }]),
      ),
      strict: true,
      allowPositionals: false,
    }).values as Record<string, string | undefined>;
    if (!values.socket || !values.wwpn || !values.wwnn) throw new Error('--socket, --wwpn and --wwnn are required');
    const tag = values.tag ?? '';
    const lun = values.lun === undefined ? undefined : integer(values.lun, 'lun', 0, 0, 255);
    const newLun = values['new-lun'] === undefined ? undefined : integer(values['new-lun'], 'new-lun', 0, 0, 255);
    const options = {
      socket: values.socket,
      wwpn: parseWwn(values.wwpn),
      wwnn: parseWwn(values.wwnn),
      ...(lun === undefined ? {} : { lun }),
      queueDepth: integer(values['queue-depth'], 'queue-depth', 16, 1, 64),
      blocks: integer(values.blocks, 'blocks', 2048, 1, 1 << 22),
      blocksPerIo: integer(values['blocks-per-io'], 'blocks-per-io', 16, 1, 256),
      seed: integer(values.seed, 'seed', 1, 0, 0x7fffffff),
      flapWaitMs: integer(values['flap-wait-ms'], 'flap-wait-ms', 0, 0, 3_600_000),
      ...(newLun === undefined
        ? {}
        : { lunChange: { lun: newLun, waitMs: integer(values['lun-wait-ms'], 'lun-wait-ms', 180_000, 1, 3_600_000) } }),
    };
    if (options.lunChange && options.flapWaitMs === 0)
      throw new Error('--new-lun needs --flap-wait-ms (it runs between the two phases)');
    const ok = await runVmScenario(options, (e) => process.stdout.write(`${tag}${JSON.stringify(e)}\n`));
    return ok ? 0 : 1;
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n${USAGE}\n`);
    return 2;
  }
}

process.exitCode = await main();
