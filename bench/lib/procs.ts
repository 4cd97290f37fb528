/**
 * The processes a benchmark measures: the SAN and `npiv-hba serve`, started through the CLI of
 * the compiled benchmark tree (cli-launcher); their CPU time and memory are read with
 * src/util/proc.ts.
 */
import { writeFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startCliProcess, waitForSocket, type LabProcess } from '../../src/lab/processes.js';
import { formatWwn } from '../../src/util/wwn.js';

const START_TIMEOUT_MS = 20_000;

export const CLI_LAUNCHER = join(dirname(fileURLToPath(import.meta.url)), 'cli-launcher.js');

export interface BenchVolume {
  name: string;
  sizeMiB: number;
}

export interface SanSetup {
  workDir: string;
  initiators: bigint[];
  targetWwpn: bigint;
  targetWwnn: bigint;
  volumes: BenchVolume[];
  /** Node.js options for the SAN process (e.g. --cpu-prof). */
  nodeArgs?: string[];
}

/** A SAN configuration: one array, RAM volumes (no file), every initiator mapped to every LUN, zoning open. */
export function sanConfig(s: SanSetup): unknown {
  const luns: Record<string, string> = {};
  for (const [i, v] of s.volumes.entries()) luns[String(i)] = v.name;
  return {
    fabric: { name: 'bench', domain: 1, zoning: { default: 'allow', zones: [] } },
    arrays: [
      {
        name: 'array1',
        ports: [{ wwpn: formatWwn(s.targetWwpn), wwnn: formatWwn(s.targetWwnn) }],
        volumes: s.volumes.map((v) => ({ name: v.name, size: `${v.sizeMiB}MiB` })),
        hostGroups: [{ name: 'hosts', initiators: s.initiators.map((w) => formatWwn(w)), luns }],
      },
    ],
  };
}

export async function startSan(s: SanSetup): Promise<{ proc: LabProcess; link: string; control: string }> {
  const config = join(s.workDir, 'san.json');
  writeFileSync(config, JSON.stringify(sanConfig(s), null, 2));
  const link = join(s.workDir, 'san.sock');
  const control = join(s.workDir, 'san-control.sock');
  const proc = startCliProcess({
    name: 'san',
    cli: CLI_LAUNCHER,
    args: ['san', '--config', config, '--link', link, '--control', control],
    logFile: join(s.workDir, 'san.log'),
    cwd: s.workDir,
    env: { NPIV_HBA_LOG_LEVEL: 'warn' },
    ...(s.nodeArgs ? { nodeArgs: s.nodeArgs } : {}),
  });
  await waitForSocket(proc, link, START_TIMEOUT_MS);
  await waitForSocket(proc, control, START_TIMEOUT_MS);
  return { proc, link, control };
}

export async function startServe(
  workDir: string,
  name: string,
  sanLink: string | null,
  wwpn: bigint,
  wwnn: bigint,
  nodeArgs?: string[],
): Promise<{ proc: LabProcess; socket: string }> {
  const socket = join(workDir, `${name}.sock`);
  const args = ['serve', '--socket', socket, '--wwpn', formatWwn(wwpn), '--wwnn', formatWwn(wwnn)];
  if (sanLink) args.push('--san', sanLink);
  const proc = startCliProcess({
    name,
    cli: CLI_LAUNCHER,
    args,
    logFile: join(workDir, `${name}.log`),
    cwd: workDir,
    env: { NPIV_HBA_LOG_LEVEL: 'warn' },
    ...(nodeArgs ? { nodeArgs } : {}),
  });
  await waitForSocket(proc, socket, START_TIMEOUT_MS);
  return { proc, socket };
}
