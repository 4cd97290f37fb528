import { afterEach, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readSync, writeSync } from 'node:fs';
import {
  CONTROL_FLAG,
  CONTROL_WITH_FD,
  FrameStreamDecoder,
  MAX_CONTROL_LENGTH,
  connectLink,
  linkPair,
  type Link,
  type SocketLink,
} from '../../../src/fc/link.js';
import { native } from '../../../src/native/index.js';
import { LinkListener } from '../../../src/san/link-listener.js';
import { FC_HEADER_SIZE } from '../../../src/fc/frame.js';
import { until } from './helpers.js';

/** A frame of `size` bytes whose every byte is `tag` (the link does not parse headers). */
const frame = (tag: number, size = FC_HEADER_SIZE + 8) => new Uint8Array(size).fill(tag);

function collect(link: Link): Uint8Array[] {
  const got: Uint8Array[] = [];
  link.on('frame', (f) => got.push(f));
  return got;
}

describe("socket links send a turn's frames together", () => {
  let dir = '';
  let listener: LinkListener | null = null;
  afterEach(async () => {
    await listener?.close();
    listener = null;
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  async function pair(): Promise<[Link, SocketLink]> {
    dir = mkdtempSync(join(tmpdir(), 'link-test-'));
    const path = join(dir, 'link.sock');
    let accepted: SocketLink | null = null;
    listener = await LinkListener.listen(path, (l) => (accepted = l));
    const client = await connectLink(path);
    await until(() => accepted !== null, 'the listener accepts');
    return [client, accepted!];
  }

  it('delivers every frame of a turn, in order, intact', async () => {
    const [a, b] = await pair();
    const got = collect(b);
    for (let i = 1; i <= 40; i++) a.send(frame(i, FC_HEADER_SIZE + 4 * i));
    await until(() => got.length === 40, '40 frames');
    for (const [i, f] of got.entries()) expect(f).toEqual(frame(i + 1, FC_HEADER_SIZE + 4 * (i + 1)));
    a.close();
    b.close();
  });

  it('frames sent just before close() in the same turn still reach the peer', async () => {
    const [a, b] = await pair();
    const got = collect(b);
    a.send(frame(7));
    a.send(frame(8));
    a.close('done');
    await until(() => got.length === 2, 'two frames');
    expect(got.map((f) => f[0])).toEqual([7, 8]);
    b.close();
  });
});

describe('in-process links', () => {
  it("deliver a turn's frames on a later turn, in order, as copies", async () => {
    const [a, b] = linkPair('test');
    const got = collect(b);
    const f = frame(1);
    a.send(f);
    a.send(frame(2));
    f.fill(9); // the sender may reuse its buffer at once
    expect(got).toHaveLength(0);
    await until(() => got.length === 2, 'two frames');
    expect(got.map((x) => x[0])).toEqual([1, 2]);
  });
});

describe('control messages beside frames', () => {
  let dir = '';
  let listener: LinkListener | null = null;
  afterEach(async () => {
    await listener?.close();
    listener = null;
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  async function pair(): Promise<[Link, SocketLink]> {
    dir = mkdtempSync(join(tmpdir(), 'link-ctl-'));
    const path = join(dir, 'link.sock');
    let accepted: SocketLink | null = null;
    listener = await LinkListener.listen(path, (l) => (accepted = l));
    const client = await connectLink(path);
    await until(() => accepted !== null, 'the listener accepts');
    return [client, accepted!];
  }

  it('carry a descriptor from the SAN side to the HBA side (SCM_RIGHTS), in order with frames', async () => {
    const [hba, san] = await pair();
    const frames = collect(hba);
    const controls: [Uint8Array, number[]][] = [];
    hba.on('control', (m, fds) => controls.push([m, fds]));
    const got: Uint8Array[] = [];
    san.on('control', (m) => got.push(m));
    const memfd = native.memfdCreate('link-test', 4096, true);
    writeSync(memfd, Uint8Array.of(1, 2, 3, 4), 0, 4, 100);
    for (let i = 0; i < 20; i++) san.send(frame(i + 1));
    // A grant-type message (first byte CONTROL_WITH_FD) with the descriptor; one without.
    expect(san.sendControl(Uint8Array.of(CONTROL_WITH_FD, 9, 9), [memfd])).toBe(true);
    expect(san.sendControl(Uint8Array.of(0x04, 7))).toBe(true);
    native.close(memfd); // the link sent a duplicate: the caller keeps (and closes) its own
    hba.sendControl(Uint8Array.of(0x01, 5));
    await until(() => controls.length === 2 && frames.length === 20 && got.length === 1, 'everything arrives');
    expect([...controls[0]![0]]).toEqual([CONTROL_WITH_FD, 9, 9]);
    expect(controls[0]![1]).toHaveLength(1);
    const fd = controls[0]![1][0]!;
    const b = new Uint8Array(4);
    readSync(fd, b, 0, 4, 100);
    expect([...b]).toEqual([1, 2, 3, 4]);
    native.close(fd);
    expect(controls[1]![1]).toEqual([]);
    expect([...got[0]!]).toEqual([0x01, 5]);
    expect(frames.map((f) => f[0])).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    hba.close();
    san.close();
  });

  it('a peer that sends descriptors no message claims loses its link', async () => {
    const [hba, san] = await pair();
    const down = new Promise<string>((r) => hba.once('down', r));
    const memfd = native.memfdCreate('link-test', 4096, true);
    // Five messages of a type that claims none, each with a descriptor: more than the link holds.
    for (let i = 0; i < 5; i++) san.sendControl(Uint8Array.of(0x04, i), [memfd]);
    native.close(memfd);
    expect(await down).toMatch(/descriptors no control message claims/);
    san.close();
  });

  it('an oversized control length is a protocol error', async () => {
    const [hba, san] = await pair();
    expect(() => san.sendControl(new Uint8Array(MAX_CONTROL_LENGTH + 1))).toThrow(RangeError);
    const d = new FrameStreamDecoder(() => {});
    const bad = new Uint8Array(4);
    new DataView(bad.buffer).setUint32(0, (CONTROL_FLAG | (MAX_CONTROL_LENGTH + 1)) >>> 0);
    expect(() => d.push(bad)).toThrow(/control message length/);
    // Without a control handler (an old peer), the flag is just a bad frame length.
    expect(() => new FrameStreamDecoder().push(bad)).toThrow(/frame length/);
    hba.close();
    san.close();
  });
});
