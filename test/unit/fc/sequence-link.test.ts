/** Sequences (split/reassemble), link stream framing at every split point, the pcap file format, zoning rules. */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { F_CTL, F_CTL_REQUEST, type FcHeader, decodeFrame } from '../../../src/fc/frame.js';
import { SequenceAssembler, buildSequence } from '../../../src/fc/sequence.js';
import { Zoning, ZoningError } from '../../../src/san/fabric/zoning.js';
import { FrameStreamDecoder, encodeLinkFrame, linkPair } from '../../../src/fc/link.js';
import { LINKTYPE_FC_2, PcapWriter } from '../../../src/fc/pcap.js';

const t: Omit<FcHeader, 'seqCnt' | 'parameter'> = {
  rCtl: 0x02,
  dId: 0xfffffc,
  csCtl: 0,
  sId: 0x010100,
  type: 0x20,
  fCtl: F_CTL_REQUEST,
  seqId: 5,
  dfCtl: 0,
  oxId: 7,
  rxId: 0xffff,
};

describe('sequences', () => {
  it('splits into frames with consecutive SEQ_CNT, relative offsets and end bits on the last frame only', () => {
    const payload = Uint8Array.from({ length: 5000 }, (_, i) => i & 0xff);
    const frames = buildSequence(t, payload, 2048).map(decodeFrame);
    expect(frames.map((f) => f.payload.length)).toEqual([2048, 2048, 904]);
    expect(frames.map((f) => f.header.seqCnt)).toEqual([0, 1, 2]);
    expect(frames.map((f) => f.header.parameter)).toEqual([0, 2048, 4096]);
    expect(frames.map((f) => (f.header.fCtl & F_CTL.END_SEQ) !== 0)).toEqual([false, false, true]);
    expect(frames.map((f) => (f.header.fCtl & F_CTL.SEQ_INIT) !== 0)).toEqual([false, false, true]);
    expect(frames.every((f) => (f.header.fCtl & F_CTL.FIRST_SEQ) !== 0 && (f.header.fCtl & F_CTL.REL_OFF) !== 0)).toBe(
      true,
    );
    const asm = new SequenceAssembler(8192);
    expect(asm.push(frames[0]!)).toBeNull();
    expect(asm.push(frames[1]!)).toBeNull();
    const whole = asm.push(frames[2]!);
    expect(whole?.payload).toEqual(payload);
    expect(asm.openCount).toBe(0);
  });

  it('discards a sequence with a gap or over its budget', () => {
    const frames = buildSequence(t, new Uint8Array(6000), 2048).map(decodeFrame);
    const gap = new SequenceAssembler(8192);
    gap.push(frames[0]!);
    expect(gap.push(frames[2]!)).toBeNull();
    expect(gap.openCount).toBe(0);
    const small = new SequenceAssembler(4096);
    small.push(frames[0]!);
    small.push(frames[1]!);
    expect(small.push(frames[2]!)).toBeNull();
    expect(small.openCount).toBe(0);
  });

  it('bounds the number of open sequences', () => {
    const asm = new SequenceAssembler(8192, 4);
    for (let ox = 0; ox < 10; ox++)
      asm.push(decodeFrame(buildSequence({ ...t, oxId: ox }, new Uint8Array(4096), 2048)[0]!));
    expect(asm.openCount).toBe(4);
  });
});

describe('link stream framing', () => {
  const frames = [new Uint8Array(24).fill(1), new Uint8Array(100).fill(2), new Uint8Array(2136).fill(3)];
  const stream = Buffer.concat(frames.map(encodeLinkFrame));

  it('reassembles frames split at every byte offset', () => {
    for (let cut = 0; cut <= stream.length; cut++) {
      const d = new FrameStreamDecoder();
      const got = [...d.push(stream.subarray(0, cut)), ...d.push(stream.subarray(cut))];
      expect(got.map((f) => f.length)).toEqual([24, 100, 2136]);
      expect(d.bufferedBytes).toBe(0);
    }
  });

  it('refuses lengths outside one FC frame before buffering them', () => {
    for (const bad of [0, 23, 2137, 0x7fffffff]) {
      const d = new FrameStreamDecoder();
      const b = Buffer.alloc(8);
      b.writeUInt32BE(bad >>> 0);
      expect(() => d.push(b)).toThrow(RangeError);
    }
  });

  it('an in-process pair delivers in order, taps see both directions, closing reaches the peer', async () => {
    const [a, b] = linkPair();
    const got: number[] = [];
    const tapped: string[] = [];
    a.addTap((dir, f) => tapped.push(`${dir}${f[0]}`));
    b.on('frame', (f) => got.push(f[0]!));
    for (let i = 0; i < 5; i++) a.send(new Uint8Array(24).fill(i));
    await new Promise((r) => setTimeout(r, 10));
    expect(got).toEqual([0, 1, 2, 3, 4]);
    b.send(new Uint8Array(24).fill(9));
    await new Promise((r) => setTimeout(r, 10));
    expect(tapped).toEqual(['tx0', 'tx1', 'tx2', 'tx3', 'tx4', 'rx9']);
    const down = new Promise<string>((r) => b.once('down', r));
    a.close();
    expect(await down).toMatch(/peer/);
    expect(a.send(new Uint8Array(24))).toBe(false);
  });
});

describe('pcap writer', () => {
  it('writes a classic pcap with LINKTYPE_FC_2 and one record per frame', () => {
    const dir = mkdtempSync(join(tmpdir(), 'pcap-'));
    const file = join(dir, 'x.pcap');
    const w = new PcapWriter(file);
    w.write(new Uint8Array(24).fill(0xab), 1_700_000_000_123);
    w.write(new Uint8Array(40), 1_700_000_001_000);
    w.close();
    const b = readFileSync(file);
    rmSync(dir, { recursive: true });
    expect(b.readUInt32LE(0)).toBe(0xa1b2c3d4);
    expect([b.readUInt16LE(4), b.readUInt16LE(6)]).toEqual([2, 4]);
    expect(b.readUInt32LE(20)).toBe(LINKTYPE_FC_2);
    expect(b.readUInt32LE(24)).toBe(1_700_000_000);
    expect(b.readUInt32LE(28)).toBe(123_000);
    expect(b.readUInt32LE(32)).toBe(24);
    expect(b[40]).toBe(0xab);
    expect(b.length).toBe(24 + 16 + 24 + 16 + 40);
  });
});

describe('zoning rules', () => {
  const a = 1n,
    b = 2n,
    c = 3n,
    d = 4n;
  it('without an active zone set the default-zone policy decides', () => {
    expect(new Zoning('allow').canCommunicate(a, b)).toBe(true);
    expect(new Zoning('deny').canCommunicate(a, b)).toBe(false);
    expect(new Zoning('deny').canCommunicate(a, a)).toBe(true);
  });
  it('with an active zone set, ports see each other only through a shared zone; unzoned ports follow the default zone', () => {
    const z = new Zoning('allow');
    z.setZone({ name: 'ab', members: [a, b] });
    z.setZone({ name: 'bc', members: [b, c] });
    z.setZoneSet('cfg', ['ab']);
    z.activate('cfg');
    expect(z.canCommunicate(a, b)).toBe(true);
    expect(z.canCommunicate(b, c)).toBe(false); // bc is not in the active set
    expect(z.canCommunicate(c, d)).toBe(true); // both unzoned, default allow
    expect(z.canCommunicate(a, d)).toBe(false); // a is zoned
    z.setDefaultZone('deny');
    expect(z.canCommunicate(c, d)).toBe(false);
    z.setZoneSet('cfg', ['ab', 'bc']);
    expect(z.canCommunicate(b, c)).toBe(true);
    z.removeZone('ab');
    expect(z.canCommunicate(a, b)).toBe(false);
    expect(z.snapshot().zoneSets).toEqual([{ name: 'cfg', zones: ['bc'] }]);
  });
  it('names unknown zones and zone sets in its errors', () => {
    const z = new Zoning();
    expect(() => z.activate('nope')).toThrow(ZoningError);
    expect(() => z.setZoneSet('s', ['missing'])).toThrow(/missing/);
    expect(() => z.removeZoneMember('x', 1n)).toThrow(/no zone named 'x'/);
  });
});
