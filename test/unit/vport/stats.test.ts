import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { COUNTER_NAMES, readVportStats, StatsReadError, statsPathFor, VportStatsWriter } from '../../../src/vport/stats.js';
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
    expect(s).toMatchObject({ version: 1, pid: process.pid, wwpn: '50:01:43:80:01:23:45:67', running: true, link: 'unknown' });
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
    expect(readdirSync(dirs.root).filter((f) => f.includes('.tmp-'))).toEqual([]);
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

describe('readVportStats', () => {
  it('null when nothing is published', () => {
    expect(readVportStats(socket)).toBeNull();
  });
  it.each([
    ['not JSON', '{"version":1,'],
    ['wrong version', JSON.stringify({ version: 2 })],
    ['negative counter', JSON.stringify({ version: 1, pid: 1, wwpn: 'x', startedAt: '', updatedAt: '', running: true, link: 'up', counters: { framesTx: -1 } })],
  ])('refuses a malformed file (%s)', (_what, text) => {
    writeFileSync(statsPathFor(socket), text);
    expect(() => readVportStats(socket)).toThrow(StatsReadError);
  });
});
