/**
 * Output to peers that do not read is bounded (issue 11 point 5): all socket links together stay
 * within one budget (the link with the most unread output is dropped past it), and a link whose
 * output makes no progress is dropped after the stall time, freeing what it held.
 */
import net from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FC_MAX_FRAME } from '../../../src/fc/frame.js';
import { linkOutputQueued, setLinkOutputLimits, type LinkOutputLimits, type SocketLink } from '../../../src/fc/link.js';
import { LinkListener } from '../../../src/san/link-listener.js';

const FRAME = new Uint8Array(FC_MAX_FRAME).fill(0x5a);

let dir: string;
let listener: LinkListener;
let accepted: SocketLink[];
let clients: net.Socket[];
let saved: LinkOutputLimits;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'link-budget-'));
  accepted = [];
  clients = [];
  listener = await LinkListener.listen(join(dir, 'link.sock'), (l) => accepted.push(l));
});
afterEach(async () => {
  setLinkOutputLimits(saved);
  for (const l of accepted) l.close();
  for (const c of clients) c.destroy();
  await listener.close();
  rmSync(dir, { recursive: true, force: true });
});

/** A peer that connects and never reads. */
async function deafPeer(): Promise<SocketLink> {
  const before = accepted.length;
  const c = net.createConnection({ path: listener.path });
  c.on('error', () => {});
  c.pause();
  clients.push(c);
  await new Promise((r) => c.once('connect', r));
  for (let i = 0; accepted.length === before && i < 400; i++) await new Promise((r) => setTimeout(r, 5));
  return accepted[accepted.length - 1]!;
}

const turn = () => new Promise((r) => setImmediate(r));

describe('socket link output bounds', () => {
  it('20 peers that never read: the total queued stays within the budget and the hoarders are dropped', async () => {
    saved = setLinkOutputLimits({ perLinkBytes: 4 << 20, totalBytes: 2 << 20, stallMs: 60_000 });
    const links: SocketLink[] = [];
    for (let i = 0; i < 20; i++) links.push(await deafPeer());
    const reasons = new Map<SocketLink, string>();
    for (const l of links) l.once('down', (r) => reasons.set(l, r));
    let peak = 0;
    // 768 KiB to each in turns of 64 KiB: 15 MiB in all, several times the budget.
    for (let round = 0; round < 12; round++) {
      for (const l of links) {
        for (let k = 0; k < 31; k++) l.send(FRAME);
        await turn();
        peak = Math.max(peak, linkOutputQueued());
      }
    }
    await turn();
    // One turn of one link may overshoot before the eviction that follows it.
    expect(peak).toBeLessThanOrEqual((2 << 20) + 31 * (FRAME.length + 4));
    expect(linkOutputQueued()).toBeLessThanOrEqual(2 << 20);
    expect(reasons.size).toBeGreaterThan(0);
    for (const r of reasons.values()) expect(r).toMatch(/peer is not reading/);
  });

  it('a peer that reads keeps its link with more than 16 MiB outstanding (two 8 MiB READs and more)', async () => {
    // A sequential read in a guest had two 8 MiB READs in flight; the SAN queued their data faster
    // than serve took it and dropped the link at 16 MiB ("peer is not reading"), so the guest's
    // read failed. The peer here reads steadily, only slower than the SAN sends.
    saved = setLinkOutputLimits({});
    const before = accepted.length;
    const c = net.createConnection({ path: listener.path });
    clients.push(c);
    await new Promise((r) => c.once('connect', r));
    for (let i = 0; accepted.length === before && i < 400; i++) await new Promise((r) => setTimeout(r, 5));
    const link = accepted[accepted.length - 1]!;
    let down: string | null = null;
    link.once('down', (r) => (down = r));
    let received = 0;
    c.on('data', (d: Buffer) => {
      received += d.length;
      c.pause();
      setTimeout(() => c.resume(), 1);
    });
    const frames = Math.ceil((24 << 20) / FRAME.length); // 24 MiB of data frames in one burst
    for (let k = 0; k < frames; k++) link.send(FRAME);
    await turn();
    expect(link.queuedBytes).toBeGreaterThan(16 << 20);
    for (let i = 0; received < frames * (FRAME.length + 4) && i < 3000; i++) await new Promise((r) => setTimeout(r, 5));
    expect(down).toBeNull();
    expect(received).toBe(frames * (FRAME.length + 4));
  });

  it('a peer that stops reading is dropped after the stall time even when nothing more is sent', async () => {
    saved = setLinkOutputLimits({ stallMs: 150 });
    const deaf = await deafPeer();
    const down = new Promise<string>((r) => deaf.once('down', r));
    for (let k = 0; k < 512; k++) deaf.send(FRAME); // about 1 MiB: more than the kernel holds
    await turn();
    expect(deaf.queuedBytes).toBeGreaterThan(0);
    expect(await down).toMatch(/bytes unread for 150 ms/);
    expect(deaf.queuedBytes).toBe(0);
  });

  it('a reading peer keeps its link when this process, not the peer, was blocked past the stall time', async () => {
    saved = setLinkOutputLimits({ stallMs: 100 });
    const link = await deafPeer();
    const client = clients[clients.length - 1]!;
    let got = 0;
    client.on('data', (d: Buffer) => (got += d.length));
    for (let k = 0; k < 512; k++) link.send(FRAME); // more than the kernel holds: a backlog
    await turn();
    expect(link.queuedBytes).toBeGreaterThan(0);
    // The event loop is blocked for 2.5 stall periods right away: the peer could not read (it
    // runs in this process), and on wake-up the stall timer is due before any I/O is seen.
    const until = Date.now() + 250;
    while (Date.now() < until) {
      /* busy: a blocked or CPU-starved process */
    }
    client.resume();
    const sent = 512 * (FRAME.length + 4);
    for (let i = 0; got < sent && i < 500 && link.isUp; i++) await new Promise((r) => setTimeout(r, 10));
    expect(link.isUp).toBe(true);
    expect(got).toBe(sent);
  });

  it('a peer that keeps reading keeps its link, though output waits for it across many stall periods', async () => {
    saved = setLinkOutputLimits({ stallMs: 100 });
    const link = await deafPeer();
    const client = clients[clients.length - 1]!;
    // Reads a chunk, then looks away for 5 ms, over and over.
    let got = 0;
    client.on('data', (d: Buffer) => {
      got += d.length;
      client.pause();
      setTimeout(() => client.resume(), 5);
    });
    client.resume();
    // 256 frames (more than the kernel buffers) every 60 ms for about a second: a backlog comes and goes all along.
    let sawBacklog = 0;
    const t0 = Date.now();
    let sent = 0;
    while (Date.now() - t0 < 1000 && link.isUp) {
      for (let k = 0; k < 256; k++) link.send(FRAME);
      sent += 256 * (FRAME.length + 4);
      await turn();
      if (link.queuedBytes > 0) sawBacklog++;
      await new Promise((r) => setTimeout(r, 60));
    }
    for (let i = 0; got < sent && i < 500; i++) await new Promise((r) => setTimeout(r, 10));
    expect(sawBacklog).toBeGreaterThan(0);
    expect(got).toBe(sent);
    expect(link.isUp).toBe(true);
  });
});
