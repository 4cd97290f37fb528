import { closeSync, fstatSync, mkdtempSync, openSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { isJournalStream, journalPriority, withJournalPriority } from '../../../src/util/log.js';

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

function openTemp(): number {
  const dir = mkdtempSync(join(tmpdir(), 'log-journal-'));
  const fd = openSync(join(dir, 'stderr'), 'w');
  cleanups.push(() => {
    closeSync(fd);
    rmSync(dir, { recursive: true, force: true });
  });
  return fd;
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
});
