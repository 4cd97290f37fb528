import { describe, expect, it } from 'vitest';
import { DmaError } from '../../../src/device/guest-memory.js';
import { DmaWindowSet, type DmaWindow } from '../../../src/vfio-user/dma.js';
import { ERRNO, ProtocolError } from '../../../src/vfio-user/protocol.js';

const PAGE = 0x1000n;

function win(address: bigint, size: bigint, opts: Partial<Omit<DmaWindow, 'address' | 'size'>> = {}): DmaWindow {
  return {
    address,
    size,
    readable: opts.readable ?? true,
    writable: opts.writable ?? true,
    mapping: opts.mapping === undefined ? new ArrayBuffer(Number(size)) : opts.mapping,
  };
}

function errnoOf(fn: () => unknown): number {
  try {
    fn();
  } catch (err) {
    if (err instanceof ProtocolError) return err.errno;
    throw err;
  }
  throw new Error('expected a ProtocolError');
}

/** Two contiguous RAM windows [0x10000, 0x12000) and [0x12000, 0x13000), a hole, then one at 0x20000. */
function layout(): { set: DmaWindowSet; a: DmaWindow; b: DmaWindow; c: DmaWindow } {
  const set = new DmaWindowSet(16);
  const a = win(0x10000n, 2n * PAGE);
  const b = win(0x12000n, PAGE);
  const c = win(0x20000n, PAGE);
  set.insert(c);
  set.insert(a);
  set.insert(b);
  return { set, a, b, c };
}

describe('DmaWindowSet bookkeeping', () => {
  it('keeps windows sorted and finds the one holding an address (binary search edges)', () => {
    const { set, a, b, c } = layout();
    expect(set.windows.map((w) => w.address)).toEqual([0x10000n, 0x12000n, 0x20000n]);
    expect(set.find(0x10000n)).toBe(a);
    expect(set.find(0x11fffn)).toBe(a);
    expect(set.find(0x12000n)).toBe(b);
    expect(set.find(0x12fffn)).toBe(b);
    expect(set.find(0x13000n)).toBeUndefined();
    expect(set.find(0xffffn)).toBeUndefined();
    expect(set.find(0x20fffn)).toBe(c);
    expect(set.find(0x21000n)).toBeUndefined();
  });

  it('refuses overlaps with EEXIST, including exact duplicates and straddles', () => {
    const { set } = layout();
    expect(errnoOf(() => set.insert(win(0x10000n, PAGE)))).toBe(ERRNO.EEXIST);
    expect(errnoOf(() => set.insert(win(0x12fffn - 0xfffn, 2n * PAGE)))).toBe(ERRNO.EEXIST);
    expect(errnoOf(() => set.insert(win(0xf000n, 2n * PAGE)))).toBe(ERRNO.EEXIST);
    expect(errnoOf(() => set.insert(win(0x0n, 0x100000n)))).toBe(ERRNO.EEXIST);
    set.insert(win(0x13000n, PAGE)); // touching is fine
    set.insert(win(0xf000n, PAGE));
    expect(set.windows).toHaveLength(5);
  });

  it('refuses empty and 2^64-wrapping windows and enforces the window limit', () => {
    const set = new DmaWindowSet(2);
    expect(errnoOf(() => set.insert(win(0x1000n, 0n, { mapping: null })))).toBe(ERRNO.EINVAL);
    expect(errnoOf(() => set.insert(win(0xffff_ffff_ffff_f000n, 0x2000n, { mapping: null })))).toBe(ERRNO.EINVAL);
    set.insert(win(0xffff_ffff_ffff_f000n, 0x1000n, { mapping: null })); // ends exactly at 2^64
    set.insert(win(0n, PAGE));
    expect(errnoOf(() => set.insert(win(0x5000n, PAGE)))).toBe(ERRNO.ENOSPC);
  });

  it('removes only an exact match (ENOENT otherwise); removeAll empties', () => {
    const { set, b } = layout();
    expect(errnoOf(() => set.remove(0x12000n, 2n * PAGE))).toBe(ERRNO.ENOENT);
    expect(errnoOf(() => set.remove(0x12800n, PAGE))).toBe(ERRNO.ENOENT);
    expect(errnoOf(() => set.remove(0x30000n, PAGE))).toBe(ERRNO.ENOENT);
    expect(set.remove(0x12000n, PAGE)).toBe(b);
    expect(set.find(0x12000n)).toBeUndefined();
    expect(set.removeAll()).toHaveLength(2);
    expect(set.windows).toHaveLength(0);
  });
});

describe('DmaWindowSet as GuestMemory', () => {
  it('reads and writes inside one window at its edges', () => {
    const { set, a } = layout();
    set.write(0x10000n, Uint8Array.from([1, 2, 3]));
    set.write(0x11ffcn, Uint8Array.from([4, 5, 6, 7]));
    const bytes = new Uint8Array(a.mapping!);
    expect([...bytes.subarray(0, 3)]).toEqual([1, 2, 3]);
    expect([...bytes.subarray(0x1ffc)]).toEqual([4, 5, 6, 7]);
    expect([...set.read(0x11ffcn, 4)]).toEqual([4, 5, 6, 7]);
    const dst = new Uint8Array(8);
    set.readInto(0x10000n, dst, 2, 3);
    expect([...dst]).toEqual([0, 0, 1, 2, 3, 0, 0, 0]);
  });

  it('copies piecewise across contiguous windows; view() refuses to straddle', () => {
    const { set, a, b } = layout();
    const data = Uint8Array.from({ length: 16 }, (_, i) => i + 1);
    set.write(0x11ff8n, data);
    expect([...new Uint8Array(a.mapping!).subarray(0x1ff8)]).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect([...new Uint8Array(b.mapping!).subarray(0, 8)]).toEqual([9, 10, 11, 12, 13, 14, 15, 16]);
    expect([...set.read(0x11ff8n, 16)]).toEqual([...data]);
    expect(set.isMapped(0x10000n, 3 * 0x1000, 'write')).toBe(true);
    expect(() => set.view(0x11ff8n, 16, 'read')).toThrow(DmaError);
    const v = set.view(0x12000n, 8, 'write');
    v[0] = 0xee;
    expect(new Uint8Array(b.mapping!)[0]).toBe(0xee);
  });

  it('views() splits a range at window boundaries into live views, all checked first; a release detaches them', () => {
    const { set, a, b } = layout();
    const vs = set.views(0x11ff8n, 16, 'write');
    expect(vs.map((v) => v.byteLength)).toEqual([8, 8]);
    expect(vs[0]!.buffer).toBe(a.mapping);
    expect(vs[1]!.buffer).toBe(b.mapping);
    vs[1]![0] = 0x42;
    expect(new Uint8Array(b.mapping!)[0]).toBe(0x42);
    expect(set.views(0x10000n, 0, 'read')).toEqual([]);
    expect(() => set.views(0x12ff8n, 16, 'read')).toThrow(DmaError); // runs into the hole
    const ro = new DmaWindowSet(4);
    ro.insert(win(0x1000n, PAGE, { writable: false }));
    expect(() => ro.views(0x1000n, 16, 'write')).toThrow(/not writable/);
    expect(ro.views(0x1000n, 16, 'read')).toHaveLength(1);
    // munmap detaches the mapping's buffer; a view kept by an I/O in flight reads as empty.
    structuredClone(b.mapping, { transfer: [b.mapping!] });
    expect(vs.map((v) => v.byteLength)).toEqual([8, 0]);
  });

  it('refuses holes without touching any byte (no partial access)', () => {
    const { set, b } = layout();
    // [0x12ff8, 0x13008) runs off the end of b into the hole.
    expect(() => set.write(0x12ff8n, new Uint8Array(16).fill(0x55))).toThrow(/not in any DMA window/);
    expect(new Uint8Array(b.mapping!).subarray(0xff8).every((x) => x === 0)).toBe(true);
    expect(() => set.read(0x13000n, 1)).toThrow(DmaError);
    expect(() => set.read(0x0n, 1)).toThrow(DmaError);
    expect(set.isMapped(0x12ff8n, 16, 'read')).toBe(false);
    expect(set.isMapped(0x12ff8n, 8, 'read')).toBe(true);
  });

  it('checks permissions per window, across the whole range', () => {
    const set = new DmaWindowSet(4);
    const ro = win(0n, PAGE, { writable: false });
    const rw = win(PAGE, PAGE);
    const wo = win(0x10000n, PAGE, { readable: false });
    set.insert(ro);
    set.insert(rw);
    set.insert(wo);
    expect(() => set.write(0x10n, Uint8Array.of(1))).toThrow(/not writable/);
    expect(() => set.write(0xff8n, new Uint8Array(16).fill(0x77))).toThrow(/not writable/); // starts in ro
    expect(new Uint8Array(rw.mapping!)[0]).toBe(0); // nothing written into the rw part either
    expect(() => set.read(0x10000n, 4)).toThrow(/not readable/);
    expect(() => set.view(0x10n, 4, 'write')).toThrow(DmaError);
    set.write(0x10000n, Uint8Array.of(9));
    expect(set.read(0xff0n, 0x20)).toHaveLength(0x20);
  });

  it('refuses address overflow, bad lengths and non-u64 addresses', () => {
    const set = new DmaWindowSet(4);
    set.insert(win(0xffff_ffff_ffff_f000n, PAGE));
    expect(set.read(0xffff_ffff_ffff_fff0n, 16)).toHaveLength(16);
    expect(() => set.read(0xffff_ffff_ffff_fff0n, 17)).toThrow(/wraps past 2\^64/);
    expect(() => set.read(1n << 64n, 1)).toThrow(DmaError);
    expect(() => set.read(-1n, 1)).toThrow(DmaError);
    expect(() => set.read(0xffff_ffff_ffff_f000n, -1)).toThrow(DmaError);
    expect(() => set.read(0xffff_ffff_ffff_f000n, 1.5)).toThrow(DmaError);
    expect(() => set.read(0xffff_ffff_ffff_f000n, 2 ** 31 + 1)).toThrow(DmaError);
    expect(() => set.readInto(0xffff_ffff_ffff_f000n, new Uint8Array(4), 2, 4)).toThrow(RangeError);
  });

  it('explains fd-less windows (guest RAM not shared) in the error', () => {
    const set = new DmaWindowSet(4);
    set.insert(win(0n, 0x100000n, { mapping: null }));
    expect(() => set.read(0x1000n, 4)).toThrow(/without a file descriptor.*share=on/);
    expect(set.isMapped(0x1000n, 4, 'read')).toBe(false);
  });

  it('fails cleanly once a mapping is released (munmap detaches the buffer)', () => {
    const set = new DmaWindowSet(4);
    const w = win(0n, PAGE);
    set.insert(w);
    structuredClone(w.mapping, { transfer: [w.mapping!] });
    expect(() => set.read(0n, 4)).toThrow(/mapping is gone/);
  });

  it('treats zero-length accesses as empty no-ops', () => {
    const set = new DmaWindowSet(4);
    expect(set.read(0x1234n, 0)).toHaveLength(0);
    expect(set.view(0x1234n, 0, 'write')).toHaveLength(0);
    expect(set.isMapped(0x1234n, 0, 'write')).toBe(true);
  });
});
