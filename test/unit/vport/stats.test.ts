import { lstatSync, readdirSync, readFileSync, statSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { pino } from 'pino';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  COUNTER_NAMES,
  readVportStats,
  StatsReadError,
  statsPathFor,
  VportStatsWriter,
} from '../../../src/vport/stats.js';
import { tempDirs, type TempDirs } from './helpers.js';

let dirs: TempDirs;
let socket: string;
beforeEach(() => {
  dirs = tempDirs();
  socket = join(dirs.root, 'v.sock');
});
afterEach(() => {
  vi.useRealTimers();
  dirs.cleanup();
});

const onDisk = () => JSON.parse(readFileSync(statsPathFor(socket), 'utf8'));

describe('VportStatsWriter', () => {
  it('publishes <socket>.stats.json at once, with every counter at zero', () => {
    const w = new VportStatsWriter({ socketPath: socket, wwpn: 0x5001438001234567n });
    expect(w.path).toBe(socket + '.stats.json');
    const s = readVportStats(socket)!;
    expect(s).toMatchObject({
      version: 1,
      pid: process.pid,
      wwpn: '50:01:43:80:01:23:45:67',
      running: true,
      link: 'unknown',
    });
    expect(Object.keys(s.counters).sort()).toEqual([...COUNTER_NAMES].sort());
    expect(Object.values(s.counters).every((v) => v === 0)).toBe(true);
    w.close();
  });

  it('writes at most once per interval: counts land with the next timer flush, not per increment', () => {
    vi.useFakeTimers();
    const w = new VportStatsWriter({ socketPath: socket, wwpn: 1n, minIntervalMs: 1000 });
    for (let i = 0; i < 100; i++) w.count('framesTx');
    w.count('bytesRead', 4096);
    expect(onDisk().counters.framesTx).toBe(0); // not yet: the interval since the first write has not passed
    vi.advanceTimersByTime(999);
    expect(onDisk().counters.framesTx).toBe(0);
    vi.advanceTimersByTime(1);
    expect(onDisk().counters).toMatchObject({ framesTx: 100, bytesRead: 4096 });
    w.count('framesRx');
    vi.advanceTimersByTime(500);
    expect(onDisk().counters.framesRx).toBe(0);
    vi.advanceTimersByTime(500);
    expect(onDisk().counters.framesRx).toBe(1);
    w.close();
  });

  it('link transitions count as link events; repeating a state does not', () => {
    const w = new VportStatsWriter({ socketPath: socket, wwpn: 1n });
    w.setLink('up');
    w.setLink('up');
    w.setLink('down');
    w.setLink('up');
    w.flush();
    expect(onDisk()).toMatchObject({ link: 'up', counters: { linkUp: 2, linkDown: 1 } });
    w.close();
  });

  it('close() leaves a final snapshot marked not running; close({remove}) deletes it; no temp files remain', () => {
    const w = new VportStatsWriter({ socketPath: socket, wwpn: 1n });
    w.count('errors', 3);
    w.close();
    expect(readVportStats(socket)).toMatchObject({ running: false, counters: { errors: 3 } });
    w.count('errors'); // ignored after close: nothing scheduled
    expect(readVportStats(socket)!.counters.errors).toBe(3);
    expect(readdirSync(dirs.root).filter((f) => f.includes('.tmp'))).toEqual([]);
    const w2 = new VportStatsWriter({ socketPath: socket, wwpn: 1n });
    w2.close({ remove: true });
    expect(readVportStats(socket)).toBeNull();
  });

  it('refuses negative or fractional increments', () => {
    const w = new VportStatsWriter({ socketPath: socket, wwpn: 1n });
    expect(() => w.count('framesTx', -1)).toThrow(RangeError);
    expect(() => w.count('framesTx', 0.5)).toThrow(RangeError);
    w.close({ remove: true });
  });
});

describe('the stats file is private', () => {
  const mode = (path: string) => statSync(path).mode & 0o7777;
  const isRoot = process.getuid?.() === 0;

  it('is 0600 under umask 000, at the first write and after a timer flush', () => {
    vi.useFakeTimers();
    const old = process.umask(0);
    try {
      const w = new VportStatsWriter({ socketPath: socket, wwpn: 1n, minIntervalMs: 10 });
      expect(mode(statsPathFor(socket))).toBe(0o600);
      w.count('framesTx');
      vi.advanceTimersByTime(10);
      expect(onDisk().counters.framesTx).toBe(1);
      expect(mode(statsPathFor(socket))).toBe(0o600);
      w.close();
      expect(mode(statsPathFor(socket))).toBe(0o600);
    } finally {
      process.umask(old);
    }
  });

  it('with the socket group: 0640 and owned by that group', () => {
    // root may give the file to any group (nogroup, 65534); anyone else to its own group
    const gid = isRoot ? 65534 : process.getegid!();
    const old = process.umask(0);
    try {
      const w = new VportStatsWriter({ socketPath: socket, wwpn: 1n, group: gid });
      expect(mode(statsPathFor(socket))).toBe(0o640);
      expect(statSync(statsPathFor(socket)).gid).toBe(gid);
      w.close();
    } finally {
      process.umask(old);
    }
  });

  it('a symlink planted at the stats path is refused at start and never written through', () => {
    const target = join(dirs.root, 'victim');
    writeFileSync(target, 'precious\n');
    symlinkSync(target, statsPathFor(socket));
    expect(() => new VportStatsWriter({ socketPath: socket, wwpn: 1n })).toThrow(
      /refusing to write the statistics file .*: it is a symbolic link/,
    );
    expect(readFileSync(target, 'utf8')).toBe('precious\n');
  });

  it('a symlink planted while serve runs is not followed: the write is skipped with one warning, serve goes on', () => {
    vi.useFakeTimers();
    const lines: { event?: string; reason?: string }[] = [];
    const log = pino({ level: 'warn', base: null }, { write: (line: string) => void lines.push(JSON.parse(line)) });
    const target = join(dirs.root, 'victim');
    writeFileSync(target, 'precious\n');
    const w = new VportStatsWriter({ socketPath: socket, wwpn: 1n, minIntervalMs: 10, log });
    unlinkSync(statsPathFor(socket));
    symlinkSync(target, statsPathFor(socket));
    // and at the temporary name the writer used to use
    symlinkSync(target, `${statsPathFor(socket)}.tmp-${process.pid}`);
    for (let i = 0; i < 3; i++) {
      w.count('framesTx');
      vi.advanceTimersByTime(10);
    }
    expect(readFileSync(target, 'utf8')).toBe('precious\n');
    expect(lstatSync(statsPathFor(socket)).isSymbolicLink()).toBe(true);
    expect(lines.filter((l) => l.event === 'stats_write_failed')).toHaveLength(1);
    expect(lines[0]!.reason).toContain('symbolic link');
    expect(() => w.close()).not.toThrow();
    expect(readFileSync(target, 'utf8')).toBe('precious\n');
  });
});

describe('readVportStats', () => {
  it('null when nothing is published', () => {
    expect(readVportStats(socket)).toBeNull();
  });
  it.each([
    ['not JSON', '{"version":1,'],
    ['wrong version', JSON.stringify({ version: 2 })],
    [
      'negative counter',
      JSON.stringify({
        version: 1,
        pid: 1,
        wwpn: 'x',
        startedAt: '',
        updatedAt: '',
        running: true,
        link: 'up',
        counters: { framesTx: -1 },
      }),
    ],
  ])('refuses a malformed file (%s)', (_what, text) => {
    writeFileSync(statsPathFor(socket), text);
    expect(() => readVportStats(socket)).toThrow(StatsReadError);
  });
});
