/**
 * How every npiv-hba command reports a failure: one line `npiv-hba: <message>` on stderr, an
 * optional `npiv-hba: hint: <what to do>` line, and one exit status convention (docs/cli.md):
 *
 *   0  success
 *   1  the command failed or was refused (bad state, socket in use, SAN refused a change, ...)
 *   2  the command line is wrong (unknown command or option, missing or malformed value)
 *   3  the thing asked about is not running (e.g. `vport stats` of a stopped vport), as LSB
 *      init scripts and `systemctl is-active` use it
 *
 * Expected failures carry no stack trace: a CliError (or any Error thrown on purpose) prints its
 * message; a system error (ENOENT, EACCES, ...) is put into words with the path it concerns.
 * Only programming errors (TypeError, ReferenceError, ...) print a stack, because they are bugs.
 */
import { existsSync } from 'node:fs';
import { dirname } from 'node:path';

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;
export const EXIT_NOT_RUNNING = 3;

export type ExitCode = typeof EXIT_OK | typeof EXIT_FAILURE | typeof EXIT_USAGE | typeof EXIT_NOT_RUNNING;

export interface CliErrorOptions {
  exitCode?: ExitCode;
  /** what the user can do about it, printed on its own line */
  hint?: string;
  cause?: unknown;
}

/** An expected failure: printed as `npiv-hba: <message>` (plus the hint), no stack. */
export class CliError extends Error {
  readonly exitCode: ExitCode;
  readonly hint: string | undefined;

  constructor(message: string, options: CliErrorOptions = {}) {
    super(message, options.cause !== undefined ? { cause: options.cause } : undefined);
    this.name = 'CliError';
    this.exitCode = options.exitCode ?? EXIT_FAILURE;
    this.hint = options.hint;
  }
}

/** A wrong command line (bad option value, conflicting options): exit status 2. */
export class UsageError extends CliError {
  constructor(message: string, options: Omit<CliErrorOptions, 'exitCode'> = {}) {
    super(message, { ...options, exitCode: EXIT_USAGE });
    this.name = 'UsageError';
  }
}

/** Runs an option-value parser; whatever it throws becomes a UsageError (exit 2). */
export function usage<T>(parse: () => T): T {
  try {
    return parse();
  } catch (err) {
    if (err instanceof CliError) throw err;
    throw new UsageError(err instanceof Error ? err.message : String(err), { cause: err });
  }
}

const PROGRAMMING_ERRORS = [TypeError, ReferenceError, SyntaxError, EvalError, URIError];

/** A Node system error (fs, net, child_process), with the fields it carries. */
export interface SystemError extends Error {
  code: string;
  syscall?: string;
  path?: string;
  dest?: string;
}

export function isSystemError(err: unknown): err is SystemError {
  const code = (err as { code?: unknown } | null)?.code;
  return err instanceof Error && typeof code === 'string' && /^E[A-Z]+$/.test(code);
}

const VERBS: Record<string, string> = {
  mkdir: 'create the directory',
  open: 'open',
  rename: 'rename',
  unlink: 'remove',
  rmdir: 'remove the directory',
  scandir: 'list the directory',
  opendir: 'list the directory',
  chmod: 'change the mode of',
  chown: 'change the owner of',
  connect: 'connect to',
  bind: 'create the socket',
  listen: 'listen on',
  stat: 'read',
  lstat: 'read',
  access: 'access',
  symlink: 'create',
  link: 'create',
  realpath: 'resolve',
  read: 'read',
  write: 'write',
};

/**
 * A system error in words, without the errno prefix Node puts first ("EACCES: permission
 * denied, mkdir '/run/npiv-hba'"): "cannot create the directory /run/npiv-hba: permission
 * denied"; a missing parent directory is named as such. Null for anything else.
 */
export function describeSystemError(err: unknown): { message: string; hint?: string } | null {
  if (!isSystemError(err)) return null;
  const path = err.path;
  const verb = err.syscall ? (VERBS[err.syscall] ?? err.syscall) : 'use';
  const target = path !== undefined ? `${verb} ${path}` : verb;
  switch (err.code) {
    case 'ENOENT': {
      if (path === undefined) return { message: `cannot ${target}: no such file or directory` };
      const parent = dirname(path);
      if (parent !== path && !existsSync(parent))
        return { message: `cannot ${target}: directory ${parent} does not exist` };
      return { message: `cannot ${target}: ${path} does not exist` };
    }
    case 'EACCES':
    case 'EPERM':
      return {
        message: `cannot ${target}: permission denied`,
        hint: 'run it as a user who may (e.g. with sudo), or choose a path in a directory you own',
      };
    case 'EEXIST':
      return { message: `cannot ${target}: it already exists` };
    case 'ENOTDIR':
      return { message: `cannot ${target}: a part of the path is not a directory` };
    case 'EISDIR':
      return { message: `cannot ${target}: it is a directory` };
    case 'EROFS':
      return { message: `cannot ${target}: read-only file system` };
    case 'ENOSPC':
      return { message: `cannot ${target}: no space left on the device` };
    case 'ECONNREFUSED':
      return { message: `cannot ${target}: nothing listens there (connection refused)` };
    case 'EADDRINUSE':
      return { message: `cannot ${target}: the address is in use` };
    case 'ENAMETOOLONG':
      return { message: `cannot ${target}: the path is too long` };
    default:
      return null;
  }
}

/** The lines to print for a failure, and its exit status. */
export function formatCliError(
  err: unknown,
  env: NodeJS.ProcessEnv = process.env,
  program = 'npiv-hba',
): { text: string; exitCode: ExitCode } {
  const lines: string[] = [];
  let exitCode: ExitCode = EXIT_FAILURE;
  let hint: string | undefined;
  if (err instanceof CliError) {
    lines.push(err.message);
    hint = err.hint;
    exitCode = err.exitCode;
    const sys = describeSystemError(err.cause);
    // A CliError that wraps a system error keeps its own words; the hint may come from either.
    if (hint === undefined && sys?.hint !== undefined) hint = sys.hint;
  } else if (isSystemError(err) && describeSystemError(err) !== null) {
    const sys = describeSystemError(err)!;
    lines.push(sys.message);
    hint = sys.hint;
  } else if (err instanceof Error) {
    const bug = PROGRAMMING_ERRORS.some((E) => err instanceof E);
    lines.push(bug ? `internal error: ${err.stack ?? err.message}` : err.message);
  } else {
    lines.push(String(err));
  }
  const debug = env.NPIV_HBA_LOG_LEVEL === 'debug' || env.NPIV_HBA_LOG_LEVEL === 'trace';
  let text = lines.map((l) => `${program}: ${l}\n`).join('');
  if (hint !== undefined) text += `${program}: hint: ${hint}\n`;
  if (debug && err instanceof Error && err.stack && !text.includes(err.stack)) text += `${err.stack}\n`;
  return { text, exitCode };
}
