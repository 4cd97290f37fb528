/**
 * The tests' seeded PRNGs (xorshift32, and mulberry32 for older fixed seeds), so a failure
 * reproduces from its seed, and `withSeed` puts that seed into the failure message.
 */

export interface Rng {
  readonly seed: number;
  /** uniform u32 */
  u32(): number;
  /** uniform in [0, 1) */
  float(): number;
  /** uniform integer in [0, n) */
  int(n: number): number;
  pick<T>(items: readonly T[]): T;
  chance(p: number): boolean;
  bytes(n: number): Uint8Array;
  /** a random u64 as bigint */
  u64(): bigint;
}

/** xorshift32 (Marsaglia); seed 0, a fixed point, is replaced by 1. */
export function rng(seed: number): Rng {
  let x = seed >>> 0 || 1;
  const u32 = (): number => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
  return {
    seed,
    u32,
    float: () => u32() / 0x1_0000_0000,
    int: (n) => (n <= 1 ? 0 : u32() % n),
    pick: (items) => items[u32() % items.length]!,
    chance: (p) => u32() / 0x1_0000_0000 < p,
    bytes: (n) => {
      const b = new Uint8Array(n);
      for (let i = 0; i < n; i++) b[i] = u32() & 0xff;
      return b;
    },
    u64: () => (BigInt(u32()) << 32n) | BigInt(u32()),
  };
}

/**
 * Runs `body` with a PRNG; on failure re-throws with the seed in the message so the case can be
 * replayed (HOSTILE_SEED=0x... in the environment overrides every test's default seed).
 */
export async function withSeed<T>(defaultSeed: number, body: (r: Rng) => Promise<T>): Promise<T> {
  const seed = process.env.HOSTILE_SEED ? Number(process.env.HOSTILE_SEED) >>> 0 : defaultSeed;
  try {
    return await body(rng(seed));
  } catch (err) {
    const e = err as Error;
    e.message = `[seed 0x${seed.toString(16)}] ${e.message}`;
    throw e;
  }
}

/**
 * mulberry32, uniform in [0, 1). Kept beside xorshift32 for the tests whose fixed seeds were
 * chosen with it (the vfio-user dispatcher fuzz checks that its seeds reach every handler's
 * success path; another generator would need new seeds).
 */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
