/**
 * Backpressure on the control socket (issue 11 point 5): a client that floods requests and does
 * not read the answers makes the SAN stop reading its requests once the unread answers pass the
 * high-water mark, instead of queueing every answer; when it reads again every answer arrives, in
 * order; a client that never reads is dropped.
 */
import net from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ControlServer, controlRequest, setControlLimits, type ControlLimits } from '../../../src/san/control.js';
import { parseSanConfig } from '../../../src/san/config.js';
import { San } from '../../../src/san/san.js';

let dir: string;
let san: San;
let control: ControlServer;
let controlPath: string;
let saved: ControlLimits;
const REQUESTS = 50_000;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ctl-bp-'));
  controlPath = join(dir, 'ctl.sock');
  san = await San.start(parseSanConfig({ fabric: { name: 'f', domain: 1 }, arrays: [] }));
  control = await ControlServer.listen(san, controlPath);
});
afterEach(async () => {
  setControlLimits(saved);
  await control.close();
  await san.close();
  rmSync(dir, { recursive: true, force: true });
});

/** A client that writes `n` requests as fast as the socket takes them and reads nothing yet. */
async function flood(n: number): Promise<net.Socket> {
  const s = net.createConnection({ path: controlPath });
  s.on('error', () => {});
  s.pause();
  await new Promise((r) => s.once('connect', r));
  void (async () => {
    for (let i = 0; i < n && !s.destroyed; i++) {
      if (!s.write(`{"id":${i},"cmd":"fault-list"}\n`)) await new Promise((r) => s.once('drain', r));
    }
  })();
  return s;
}

describe('control socket backpressure', () => {
  it('stops reading a flooding client at the high-water mark; once it reads, every answer arrives in order', async () => {
    saved = setControlLimits({ highWater: 64 * 1024, stallMs: 60_000 });
    const s = await flood(REQUESTS);
    let peak = 0;
    for (let i = 0; i < 40; i++) {
      await sleep(25);
      peak = Math.max(peak, control.queuedOutputBytes());
    }
    // The answers queued for it stop growing at the mark (plus the one answer that crossed it).
    expect(peak).toBeGreaterThan(0);
    expect(peak).toBeLessThanOrEqual(64 * 1024 + 100);
    // Other clients are still served meanwhile.
    expect((await controlRequest(controlPath, { cmd: 'status' })).ok).toBe(true);

    let text = '';
    s.setEncoding('utf8');
    s.on('data', (d: string) => (text += d));
    s.resume();
    for (let i = 0; i < 1000 && text.split('\n').length <= REQUESTS; i++) await sleep(20);
    const ids = text
      .trim()
      .split('\n')
      .map((l) => (JSON.parse(l) as { id: number; ok: boolean }).id);
    expect(ids).toHaveLength(REQUESTS);
    expect(ids.every((id, i) => id === i)).toBe(true);
    s.destroy();
  });

  it('drops a client that never reads its answers', async () => {
    saved = setControlLimits({ highWater: 16 * 1024, stallMs: 200 });
    const s = await flood(REQUESTS);
    const closed = new Promise((r) => s.once('close', r));
    await closed;
    expect(control.queuedOutputBytes()).toBe(0);
    expect((await controlRequest(controlPath, { cmd: 'status' })).ok).toBe(true);
  });
});
