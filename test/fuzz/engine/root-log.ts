/**
 * The project's root logger (src/util/log.ts) writes straight to fd 2, where no test can see it.
 * Components that log through it (fabric, N_Ports, arrays...) must not log errors under fuzzing
 * either, so its stream is replaced by one that keeps error-level records (and anything saying
 * "uncaught" or "crash") for the loop to report, and drops the rest.
 */
import { pino } from 'pino';
import { rootLogger } from '../../../src/util/log.js';

const PINO_ERROR = 50;

export function captureRootLog(): string[] {
  const failures: string[] = [];
  const root = rootLogger() as unknown as Record<symbol, unknown>;
  root[pino.symbols.streamSym] = {
    write(line: string): void {
      const record = JSON.parse(line) as { level: number };
      if (record.level >= PINO_ERROR || /uncaught|crash/i.test(line)) failures.push(line.trim());
    },
  };
  rootLogger().level = 'warn';
  return failures;
}
