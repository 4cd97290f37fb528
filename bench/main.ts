/**
 * `npm run bench`: runs the benchmark parts in one go and writes bench/results/ (JSON per part,
 * SVG charts, REPORT.md). Started by bench/run.js after it compiled this tree.
 *
 *   npm run bench                          all five parts
 *   npm run bench -- --only ring,emulator  a subset (ring, emulator, e2e, scale, profile)
 *   npm run bench -- --skip e2e            all but some
 *   npm run bench -- --quick               short runs to check the tooling (not for publication)
 *   npm run bench -- --seconds 10          seconds per timed workload (default 10)
 *   npm run bench -- --repeats 3           e2e repeats of the job sequence (spread; default 3)
 *   npm run bench -- --report-only         rewrite REPORT.md from the saved JSON
 *   npm run bench -- --only e2e --e2e-paths npiv-hba   re-run some e2e paths, keep the others
 *   npm run bench -- --e2e-hba process     e2e npiv-hba HBA as an `npiv-hba serve` process
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { machineInfo } from './lib/machine.js';
import { setLogLevel } from '../src/util/log.js';
import { savePart, type PartName } from './lib/results.js';
import { parseBenchArgs } from './lib/args.js';
import { writeReport } from './lib/report.js';
import type { PartContext, PartOutput } from './parts/context.js';
import { runRingPart } from './parts/ring.js';
import { runEmulatorPart } from './parts/emulator.js';
import { runScalePart } from './parts/scale.js';
import { runE2ePart } from './parts/e2e.js';
import { runProfilePart } from './parts/profile.js';

const TITLES: Record<PartName, string> = {
  ring: 'Hot path: AssemblyScript ring engine vs TypeScript twin',
  emulator: 'Emulator only: QEMU-like driver model over vfio-user',
  e2e: 'End to end: fio in a real guest, npiv-hba vs megasas vs virtio-scsi vs host',
  scale: 'Scale: 255 vports on one fabric, idle HBA memory, name server with 2,048 ports',
  profile: 'Where the time goes: per-I/O costs of the end-to-end path',
};

const RUNNERS: Record<PartName, (ctx: PartContext) => Promise<PartOutput<unknown>>> = {
  ring: runRingPart,
  emulator: runEmulatorPart,
  e2e: runE2ePart,
  scale: runScalePart,
  profile: runProfilePart,
};

async function main(): Promise<void> {
  const args = parseBenchArgs(process.argv.slice(2));
  // The in-process HBA and SAN initiators log through pino: keep the benchmark output readable.
  setLogLevel(process.env.NPIV_HBA_LOG_LEVEL ?? 'warn');
  const log = (m: string) => console.log(`[bench ${new Date().toISOString().slice(11, 19)}] ${m}`);
  const failures: string[] = [];
  if (!args.reportOnly) {
    for (const part of args.parts) {
      const workDir = mkdtempSync(join(tmpdir(), `npiv-bench-${part}-`));
      const started = Date.now();
      log(`part ${part}: ${TITLES[part]}`);
      try {
        const machine = machineInfo();
        const out = await RUNNERS[part]({
          quick: args.quick,
          seconds: args.seconds,
          repeats: args.repeats,
          workDir,
          log,
          e2eHba: args.e2eHba,
          ...(args.e2ePaths ? { e2ePaths: args.e2ePaths } : {}),
        });
        const file = savePart({
          part,
          title: TITLES[part],
          machine,
          commands: [
            process.argv.length > 2 ? `npm run bench -- ${process.argv.slice(2).join(' ')}` : 'npm run bench',
            ...out.commands,
          ],
          durationSeconds: Math.round((Date.now() - started) / 100) / 10,
          data: out.data,
          bottleneck: out.bottleneck,
          notes: args.quick ? ['--quick run: tooling check only, not comparable figures', ...out.notes] : out.notes,
        });
        log(`part ${part}: done in ${((Date.now() - started) / 1000).toFixed(0)} s → ${file}`);
      } catch (err) {
        const message = err instanceof Error ? (err.stack ?? err.message) : String(err);
        failures.push(`${part}: ${message}`);
        log(`part ${part} FAILED: ${message}`);
      } finally {
        rmSync(workDir, { recursive: true, force: true });
      }
    }
  }
  const report = writeReport();
  log(`report → ${report}`);
  if (failures.length > 0) {
    console.error(`${failures.length} part(s) failed:\n${failures.join('\n')}`);
    process.exitCode = 1;
  }
}

await main();
