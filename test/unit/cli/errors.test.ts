/**
 * One way of reporting failures (src/cli/errors.ts, docs/cli.md#exit-status): expected failures
 * without stack traces, system errors in words, hints, the exit statuses 1/2/3, durations with
 * units; and, through the built CLI, the non-root `vport define` that used to print a stack.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  CliError,
  describeSystemError,
  EXIT_FAILURE,
  EXIT_NOT_RUNNING,
  EXIT_USAGE,
  formatCliError,
  UsageError,
  usage,
} from '../../../src/cli/errors.js';
import { formatDuration, parseDuration } from '../../../src/util/duration.js';
import { VportNotRunningError, VportUsageError } from '../../../src/vport/errors.js';
import { CLI, cliSandbox } from './support.js';

const env = {};

function sysError(fn: () => unknown): Error {
  try {
    fn();
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a system error');
}

describe('formatCliError', () => {
  it('prints an expected failure as one line and its hint, no stack', () => {
    const { text, exitCode } = formatCliError(new CliError('socket in use', { hint: 'stop the other one' }), env);
    expect(text).toBe('npiv-hba: socket in use\nnpiv-hba: hint: stop the other one\n');
    expect(exitCode).toBe(EXIT_FAILURE);
  });

  it('carries the exit status of usage and not-running errors', () => {
    expect(formatCliError(new UsageError('bad'), env).exitCode).toBe(EXIT_USAGE);
    expect(formatCliError(new VportUsageError('bad'), env).exitCode).toBe(EXIT_USAGE);
    expect(formatCliError(new VportNotRunningError('down'), env).exitCode).toBe(EXIT_NOT_RUNNING);
    expect(() => usage(() => JSON.parse('{'))).toThrow(UsageError);
  });

  it('a plain Error is an expected failure too: its message only', () => {
    const { text } = formatCliError(new Error('SAN link socket /x does not exist'), env);
    expect(text).toBe('npiv-hba: SAN link socket /x does not exist\n');
  });

  it('a programming error keeps its stack, marked internal', () => {
    const { text } = formatCliError(new TypeError('x is undefined'), env);
    expect(text).toMatch(/^npiv-hba: internal error: TypeError: x is undefined\n\s+at /);
  });

  it('puts system errors into words: a missing directory, permission denied', () => {
    const missingDir = sysError(() => readFileSync('/nonexistent-npiv/dir/file.json'));
    expect(formatCliError(missingDir, env).text).toBe(
      'npiv-hba: cannot open /nonexistent-npiv/dir/file.json: directory /nonexistent-npiv/dir does not exist\n',
    );
    const missingFile = sysError(() => readFileSync('/etc/npiv-hba-no-such-file'));
    expect(describeSystemError(missingFile)?.message).toBe(
      'cannot open /etc/npiv-hba-no-such-file: /etc/npiv-hba-no-such-file does not exist',
    );
    const denied = Object.assign(new Error("EACCES: permission denied, mkdir '/run/npiv-hba'"), {
      code: 'EACCES',
      syscall: 'mkdir',
      path: '/run/npiv-hba',
    });
    expect(formatCliError(denied, env).text).toBe(
      'npiv-hba: cannot create the directory /run/npiv-hba: permission denied\n' +
        'npiv-hba: hint: run it as a user who may (e.g. with sudo), or choose a path in a directory you own\n',
    );
  });

  it('adds the stack with NPIV_HBA_LOG_LEVEL=debug', () => {
    const { text } = formatCliError(new CliError('x'), { NPIV_HBA_LOG_LEVEL: 'debug' });
    expect(text).toMatch(/^npiv-hba: x\nCliError: x\n\s+at /);
  });
});

describe('durations', () => {
  it('a bare number is seconds; ms, s, m, h units', () => {
    expect(parseDuration('5', '--timeout')).toBe(5000);
    expect(parseDuration('500ms', '--timeout')).toBe(500);
    expect(parseDuration('1.5s', '--timeout')).toBe(1500);
    expect(parseDuration('2m', '--timeout')).toBe(120_000);
    expect(parseDuration('1h', '--timeout')).toBe(3_600_000);
  });

  it('refuses other forms and values above the maximum, naming the option', () => {
    for (const bad of ['', '-1', '5x', 's', '1e3', '5 min'])
      expect(() => parseDuration(bad, '--timeout'), bad).toThrow(`invalid --timeout '${bad}': expected seconds`);
    expect(() => parseDuration('2h', '--timeout', 3_600_000)).toThrow("invalid --timeout '2h': at most 1h");
    expect(formatDuration(420_000)).toBe('7m');
    expect(formatDuration(1500)).toBe('1500ms');
  });
});

describe('the built CLI as a user other than root', () => {
  const box = cliSandbox('npiv-err-');
  const asNobody = (args: string[], extraEnv: NodeJS.ProcessEnv = {}) =>
    spawnSync(process.execPath, [CLI, ...args], {
      uid: 65534,
      gid: 65534,
      encoding: 'utf8',
      env: { ...process.env, NPIV_HBA_LOG_LEVEL: 'warn', ...extraEnv },
    });

  it.runIf(process.geteuid?.() === 0)(
    'vport define on a root-owned definitions directory says sudo or --config-dir',
    () => {
      const configDir = join(box.dir, 'etc', 'vports');
      mkdirSync(join(box.dir, 'etc'), { mode: 0o755 });
      spawnSync('chmod', ['0755', box.dir]);
      const r = asNobody(['vport', 'define', '--config-dir', configDir, '--run-dir', join(box.dir, 'run')]);
      expect(r.status).toBe(1);
      expect(r.stderr).toBe(
        `npiv-hba vport: cannot use the vport definitions directory ${configDir}: permission denied (mkdir ${configDir})\n` +
          'npiv-hba vport: hint: run it with sudo, or pass --config-dir DIR (or set NPIV_HBA_CONFIG_DIR) for a directory of your own\n',
      );
    },
  );

  it('a bad NPIV_HBA_LOG_LEVEL is a usage error listing the levels', () => {
    const r = spawnSync(process.execPath, [CLI, 'host', 'list', '--sysfs-root', box.dir], {
      encoding: 'utf8',
      env: { ...process.env, NPIV_HBA_LOG_LEVEL: 'loud' },
    });
    expect(r.status).toBe(2);
    expect(r.stderr).toBe(
      "npiv-hba: invalid NPIV_HBA_LOG_LEVEL 'loud': expected one of trace, debug, info, warn, error, fatal, silent\n",
    );
  });
});
