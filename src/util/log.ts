/**
 * Structured logging (pino). One root logger per process; modules take a child with their
 * own context (`component`, `vport`, ...) so every line says where it came from.
 * Logs go to stderr so that stdout stays free for command output (reports, JSON).
 */
import { pino, type Logger } from 'pino';

export type { Logger } from 'pino';

let root: Logger | undefined;

export function rootLogger(): Logger {
  root ??= pino(
    {
      level: process.env.NPIV_HBA_LOG_LEVEL ?? (process.env.VITEST ? 'silent' : 'info'),
      base: { pid: process.pid },
    },
    pino.destination({ fd: 2, sync: true }),
  );
  return root;
}

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;

/** Refuses a level pino does not know, listing the ones it does. */
export function checkLogLevel(level: string, source: string): void {
  if (!(LOG_LEVELS as readonly string[]).includes(level))
    throw new Error(`invalid ${source} '${level}': expected one of ${LOG_LEVELS.join(', ')}`);
}

export function setLogLevel(level: string): void {
  rootLogger().level = level;
}

export function logger(component: string, context: Record<string, unknown> = {}): Logger {
  return rootLogger().child({ component, ...context });
}
