import { afterEach, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connectLink, linkPair, type Link, type SocketLink } from '../../../src/fc/link.js';
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
