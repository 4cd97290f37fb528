/**
 * Structured logging (pino). One root logger per process; modules take a child with their
 * own context (`component`, `vport`, ...) so every line says where it came from.
 * Logs go to stderr so that stdout stays free for command output (reports, JSON).
 * When stderr is the systemd journal (a service started by systemd), each line starts with a
 * `<N>` syslog priority (sd-daemon(3)) so that journald records PRIORITY and `journalctl -p err`
 * finds the errors; elsewhere the lines are plain pino JSON.
 */
import { fstatSync } from 'node:fs';
import { pino, type Logger } from 'pino';

export type { Logger } from 'pino';

let root: Logger | undefined;

/** syslog priority (0 emerg .. 7 debug) of a pino numeric level. */
export function journalPriority(level: number): number {
  if (level >= 60) return 2; // fatal -> crit
  if (level >= 50) return 3; // error -> err
  if (level >= 40) return 4; // warn -> warning
  if (level >= 30) return 6; // info -> info
  return 7; // debug, trace -> debug
}

const LEVEL_FIELD = /"level":(\d+)/;

/** Prefixes one pino JSON line with its `<N>` journald priority (info when the level is unreadable). */
export function withJournalPriority(line: string): string {
  const match = LEVEL_FIELD.exec(line);
  return `<${journalPriority(match ? Number(match[1]) : 30)}>${line}`;
}

/**
 * True when fd is connected to the journal: systemd sets $JOURNAL_STREAM to the `device:inode` of
 * the stream it gave the service; a redirected or inherited fd (a pipe, a file) has another inode.
 */
export function isJournalStream(env: NodeJS.ProcessEnv, fd = 2): boolean {
  const value = env.JOURNAL_STREAM;
  const match = value === undefined ? null : /^(\d+):(\d+)$/.exec(value);
  if (!match) return false;
  try {
    const st = fstatSync(fd, { bigint: true });
    return st.dev === BigInt(match[1] as string) && st.ino === BigInt(match[2] as string);
  } catch {
    return false;
  }
}

export function rootLogger(): Logger {
  if (root) return root;
  const journal = isJournalStream(process.env);
  root = pino(
    {
      level: process.env.NPIV_HBA_LOG_LEVEL ?? (process.env.VITEST ? 'silent' : 'info'),
      base: { pid: process.pid },
      ...(journal ? { hooks: { streamWrite: withJournalPriority } } : {}),
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
