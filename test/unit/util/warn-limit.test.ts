/** WarnLimiter with a burst, and RateLimitedLog: per-key limits, carried and summarised counts. */
import { pino } from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { Logger } from '../../../src/util/log.js';
import { RateLimitedLog, WarnLimiter } from '../../../src/util/warn-limit.js';

afterEach(() => vi.useRealTimers());

function capture() {
  const records: { level: number; msg: string; kind?: string; suppressed?: number; n?: number }[] = [];
  const log = pino({ level: 'warn', base: null }, { write: (line: string) => void records.push(JSON.parse(line)) });
  return { log, records };
}

describe('WarnLimiter', () => {
  it('admits `burst` per window, holds the rest back and reports them with the next admission', () => {
    let t = 0;
    const w = new WarnLimiter(100, () => t, 3);
    expect([w.admit(), w.admit(), w.admit(), w.admit(), w.admit()]).toEqual([0, 0, 0, null, null]);
    t = 99;
    expect(w.admit()).toBeNull();
    t = 100;
    expect(w.admit()).toBe(3);
    expect(w.admit()).toBe(0);
    expect(w.admit()).toBe(0);
    expect(w.admit()).toBeNull();
    expect(w.takeSuppressed()).toBe(1);
    expect(w.takeSuppressed()).toBe(0);
  });
});

describe('RateLimitedLog', () => {
  it('limits each kind on its own; the next admitted line of a kind carries its count', () => {
    vi.useFakeTimers();
    const { log, records } = capture();
    const w = new RateLimitedLog({ log, burst: 2, windowMs: 1000, summaryMessage: 'warnings_suppressed' });
    for (let n = 0; n < 10; n++) w.warn('a', { n });
    for (let n = 0; n < 3; n++) w.error('b', { n });
    expect(records.map((r) => [r.msg, r.n])).toEqual([
      ['a', 0],
      ['a', 1],
      ['b', 0],
      ['b', 1],
    ]);
    expect(records[2]!.level).toBe(50); // error stays error
    records.length = 0;
    vi.setSystemTime(Date.now() + 500);
    w.warn('a', { n: 10 }); // same window: held back
    expect(records).toEqual([]);
    // A window after the first held-back line: one summary per kind.
    vi.advanceTimersByTime(1000);
    expect(records.map((r) => [r.msg, r.kind, r.suppressed])).toEqual([
      ['warnings_suppressed', 'a', 9],
      ['warnings_suppressed', 'b', 1],
    ]);
    records.length = 0;
    w.warn('a', { n: 11 }); // new window, nothing left to carry: reported by the summary
    expect(records).toEqual([expect.objectContaining({ msg: 'a', n: 11 })]);
    expect(records[0]!.suppressed).toBeUndefined();
  });

  it('close() reports what is held back; a flood of 100000 gives burst lines and one summary', () => {
    const { log, records } = capture();
    const w = new RateLimitedLog({ log, burst: 5, windowMs: 60_000, summaryMessage: 'held' });
    for (let n = 0; n < 100_000; n++) w.warn('flood', { n });
    w.close();
    expect(records).toHaveLength(6);
    expect(records[5]).toMatchObject({ msg: 'held', kind: 'flood', suppressed: 100_000 - 5 });
  });

  it('logs a burst per window, then counts what it dropped into the next line', () => {
    const logged: Record<string, unknown>[] = [];
    const log = { warn: (fields: Record<string, unknown>) => logged.push(fields) } as unknown as Logger;
    let now = 0;
    const limited = new RateLimitedLog({ log, burst: 3, windowMs: 1000, now: () => now });
    for (let i = 0; i < 10; i++) limited.warn('refused', { i });
    expect(logged.map((f) => f.i)).toEqual([0, 1, 2]);
    now = 1000;
    limited.warn('refused', { i: 10 });
    expect(logged.at(-1)).toEqual({ i: 10, suppressed: 7 });
    limited.warn('refused', { i: 11 });
    expect(logged.at(-1)).toEqual({ i: 11 });
  });

  it('one key shares its limit across messages; keyField names the key in each record; no summary by default', () => {
    vi.useFakeTimers();
    const { log, records } = capture();
    const w = new RateLimitedLog({ log, burst: 2, windowMs: 1000, keyField: 'event' });
    for (let n = 0; n < 5; n++) w.warn('connection_refused', { n }, { message: `refused ${n}` });
    vi.advanceTimersByTime(5000);
    w.close();
    expect(records).toEqual([
      expect.objectContaining({ msg: 'refused 0', event: 'connection_refused', n: 0 }),
      expect.objectContaining({ msg: 'refused 1', event: 'connection_refused', n: 1 }),
    ]);
    w.warn('connection_refused', { n: 5 });
    expect(records.at(-1)).toMatchObject({
      msg: 'connection_refused',
      event: 'connection_refused',
      n: 5,
      suppressed: 3,
    });
  });
});
