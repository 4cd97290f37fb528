/**
 * Byte-level mutations in the style of libFuzzer/AFL: bit flips, random and "interesting" values
 * (boundaries of 8/16/32-bit fields, both byte orders), small arithmetic, inserts, deletes,
 * duplicated and swapped chunks, splices with another corpus entry, and dictionary tokens
 * (each target names the magic values of its format). Deterministic for a given seed.
 */

export class Prng {
  private x: number;
  constructor(seed: number) {
    this.x = seed >>> 0 || 0x9e3779b9;
  }
  u32(): number {
    let x = this.x;
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    this.x = x >>> 0;
    return this.x;
  }
  /** uniform in [0, n) */
  int(n: number): number {
    return n <= 1 ? 0 : this.u32() % n;
  }
  chance(p: number): boolean {
    return this.u32() / 0x1_0000_0000 < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }
}

const INTERESTING_8 = [0, 1, 0x7f, 0x80, 0xff, 0x10, 0x20, 0x40, 0x64, 0xfe, 2, 3, 4, 8, 16, 24];
const INTERESTING_16 = [0, 1, 0x7fff, 0x8000, 0xffff, 0x100, 0x3ff, 0x400, 0x1000, 0xfffe, 0x800, 0x200, 24, 64, 2112];
const INTERESTING_32 = [
  0, 1, 0x7fffffff, 0x80000000, 0xffffffff, 0x10000, 0x100000, 0xfffffffe, 0x1000, 0x40000000, 0xdeaddead,
];

export interface MutatorOptions {
  maxLen: number;
  dictionary: readonly Uint8Array[];
}

export class Mutator {
  constructor(
    private readonly r: Prng,
    private readonly o: MutatorOptions,
  ) {}

  /** A mutant of `base`: 1, 2, 4 ... up to 16 stacked mutations; `other` is a splice partner. */
  mutate(base: Uint8Array, other: Uint8Array | null): Uint8Array {
    let b: Uint8Array = base.slice();
    const stack = 1 << this.r.int(5);
    for (let i = 0; i < stack; i++) b = this.once(b, other);
    if (b.length > this.o.maxLen) b = b.subarray(0, this.o.maxLen);
    return b;
  }

  private once(b: Uint8Array, other: Uint8Array | null): Uint8Array {
    const r = this.r;
    const n = b.length;
    switch (r.int(other ? 14 : 13)) {
      case 0: // bit flip
        if (n) b[r.int(n)]! ^= 1 << r.int(8);
        return b;
      case 1: // random byte
        if (n) b[r.int(n)] = r.int(256);
        return b;
      case 2: // interesting 8
        if (n) b[r.int(n)] = r.pick(INTERESTING_8);
        return b;
      case 3: // interesting 16, either byte order
        if (n >= 2) setU(b, r.int(n - 1), 2, r.pick(INTERESTING_16), r.chance(0.5));
        return b;
      case 4: // interesting 32, either byte order
        if (n >= 4) setU(b, r.int(n - 3), 4, r.pick(INTERESTING_32), r.chance(0.5));
        return b;
      case 5: {
        // small arithmetic on a 1/2/4-byte field
        const width = r.pick([1, 2, 4]);
        if (n < width) return b;
        const at = r.int(n - width + 1);
        const le = r.chance(0.5);
        const delta = (1 + r.int(35)) * (r.chance(0.5) ? 1 : -1);
        setU(b, at, width, getU(b, at, width, le) + delta, le);
        return b;
      }
      case 6: {
        // insert random bytes (or a run of one byte)
        const len = 1 + r.int(Math.min(32, Math.max(1, this.o.maxLen - n)));
        const ins = new Uint8Array(len);
        if (r.chance(0.5)) ins.fill(r.int(256));
        else for (let i = 0; i < len; i++) ins[i] = r.int(256);
        return insert(b, r.int(n + 1), ins);
      }
      case 7: {
        // delete a range
        if (n < 2) return b;
        const at = r.int(n);
        const len = 1 + r.int(Math.min(n - at, 64));
        return concat(b.subarray(0, at), b.subarray(at + len));
      }
      case 8: {
        // duplicate a chunk somewhere else
        if (!n) return b;
        const from = r.int(n);
        const len = 1 + r.int(Math.min(n - from, 128));
        return insert(b, r.int(n + 1), b.slice(from, from + len));
      }
      case 9: {
        // copy a chunk over another place
        if (n < 2) return b;
        const from = r.int(n);
        const to = r.int(n);
        const len = 1 + r.int(Math.min(n - from, n - to, 64));
        b.copyWithin(to, from, from + len);
        return b;
      }
      case 10: {
        // dictionary token, inserted or overwriting
        if (this.o.dictionary.length === 0) return b;
        const t = r.pick(this.o.dictionary);
        if (r.chance(0.5) || n < t.length) return insert(b, r.int(n + 1), t);
        b.set(t, r.int(n - t.length + 1));
        return b;
      }
      case 11: // truncate
        return n ? b.subarray(0, r.int(n)) : b;
      case 12: {
        // random 32-bit value
        if (n >= 4) setU(b, r.int(n - 3), 4, r.u32(), true);
        return b;
      }
      default: {
        // splice: a prefix of this one and a suffix of the other
        const o = other!;
        const cut = r.int(n + 1);
        const from = r.int(o.length + 1);
        return concat(b.subarray(0, cut), o.subarray(from));
      }
    }
  }
}

function getU(b: Uint8Array, at: number, width: number, le: boolean): number {
  let v = 0;
  for (let i = 0; i < width; i++) v = v * 256 + b[at + (le ? width - 1 - i : i)]!;
  return v;
}

function setU(b: Uint8Array, at: number, width: number, value: number, le: boolean): void {
  let v = value >>> 0;
  for (let i = 0; i < width; i++) {
    b[at + (le ? i : width - 1 - i)] = v & 0xff;
    v >>>= 8;
  }
}

function insert(b: Uint8Array, at: number, ins: Uint8Array): Uint8Array {
  const out = new Uint8Array(b.length + ins.length);
  out.set(b.subarray(0, at), 0);
  out.set(ins, at);
  out.set(b.subarray(at), at + ins.length);
  return out;
}

function concat(a: Uint8Array, c: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + c.length);
  out.set(a, 0);
  out.set(c, a.length);
  return out;
}
