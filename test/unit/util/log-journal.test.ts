import { spawn } from 'node:child_process';
import { closeSync, existsSync, fstatSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { isJournalStream, journalPriority, withJournalPriority } from '../../../src/util/log.js';
import { CLI, WAIT_MS } from '../cli/support.js';

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'log-journal-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function openTemp(dir = tempDir(), name = 'stderr'): number {
  const fd = openSync(join(dir, name), 'w');
  cleanups.push(() => closeSync(fd));
  return fd;
}

/** Runs `serve` with stderr on a file until its socket appears, stops it, and returns its log. */
async function serveLog(journal: boolean): Promise<string> {
  const dir = tempDir();
  const fd = openTemp(dir);
  const st = fstatSync(fd, { bigint: true });
  const socket = join(dir, 'hba.sock');
  const env = {
    ...process.env,
    NPIV_HBA_LOG_LEVEL: 'info',
    NOTIFY_SOCKET: '',
    JOURNAL_STREAM: journal ? `${st.dev}:${st.ino}` : '',
  };
  const proc = spawn(
    process.execPath,
    [CLI, 'serve', '--socket', socket, '--wwpn', '50:01:43:80:01:23:45:67', '--wwnn', '50:01:43:80:01:23:45:66'],
    { stdio: ['ignore', 'ignore', fd], env },
  );
  const exit = new Promise<number | null>((done) => proc.once('close', (code) => done(code)));
  const deadline = Date.now() + WAIT_MS;
  while (!existsSync(socket) && proc.exitCode === null && Date.now() < deadline)
    await new Promise((r) => setTimeout(r, 20));
  proc.kill('SIGTERM');
  expect(await exit).toBe(0);
  return readFileSync(join(dir, 'stderr'), 'utf8');
}

describe('journald priorities', () => {
  it('maps pino levels to syslog priorities', () => {
    expect([10, 20, 30, 40, 50, 60].map(journalPriority)).toEqual([7, 7, 6, 4, 3, 2]);
  });

  it('prefixes each JSON line with its priority', () => {
    expect(withJournalPriority('{"level":50,"msg":"x"}\n')).toBe('<3>{"level":50,"msg":"x"}\n');
    expect(withJournalPriority('{"level":40,"msg":"y"}\n')).toBe('<4>{"level":40,"msg":"y"}\n');
    expect(withJournalPriority('{"level":30}\n')).toBe('<6>{"level":30}\n');
    expect(withJournalPriority('no level\n')).toBe('<6>no level\n');
  });

  it('recognises the journal only when JOURNAL_STREAM matches the fd', () => {
    const fd = openTemp();
    const st = fstatSync(fd, { bigint: true });
    expect(isJournalStream({ JOURNAL_STREAM: `${st.dev}:${st.ino}` }, fd)).toBe(true);
    // inherited from a parent whose stderr was the journal, but ours is redirected elsewhere
    expect(isJournalStream({ JOURNAL_STREAM: `${st.dev}:${st.ino + 1n}` }, fd)).toBe(false);
    expect(isJournalStream({}, fd)).toBe(false);
    expect(isJournalStream({ JOURNAL_STREAM: 'garbage' }, fd)).toBe(false);
  });

  it('serve writes <N>-prefixed lines when stderr is the journal, plain JSON otherwise', async () => {
    const journal = (await serveLog(true)).trim().split('\n');
    expect(journal.find((l) => l.includes('vfio-user server listening'))).toMatch(/^<6>\{"level":30,/);
    for (const line of journal) expect(line).toMatch(/^<[2-7]>\{"level":\d+,/);
    const plain = (await serveLog(false)).trim().split('\n');
    expect(plain.find((l) => l.includes('vfio-user server listening'))).toMatch(/^\{"level":30,/);
  }, 30_000);
});
