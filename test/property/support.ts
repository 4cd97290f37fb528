/**
 * Shared pieces of the property tests (fast-check): bounded run counts so the unit suite stays
 * quick, fixed-width integer arbitraries, and the "decodes or throws its own error" check.
 */
import fc from 'fast-check';
import { expect } from 'vitest';

/** Runs per property: enough to shrink real failures, few enough for a few seconds per file. */
export const RUNS = { numRuns: 300 } as const;
export const FEW = { numRuns: 60 } as const;

export const u8 = fc.integer({ min: 0, max: 0xff });
export const u16 = fc.integer({ min: 0, max: 0xffff });
export const u24 = fc.integer({ min: 0, max: 0xffffff });
export const u32 = fc.integer({ min: 0, max: 0xffffffff });
export const u64 = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n });
export const bytes = (maxLength: number, minLength = 0) => fc.uint8Array({ minLength, maxLength });

type ErrorClass = abstract new (...args: never[]) => Error;

/**
 * Calls `decode`; returns its value, or undefined when it threw one of the codec's own error
 * types. Anything else (a TypeError or RangeError from reading past a buffer, ...) fails.
 */
export function decodesOrRejects<T>(decode: () => T, ...allowed: ErrorClass[]): T | undefined {
  try {
    return decode();
  } catch (err) {
    if (allowed.some((c) => err instanceof c)) return undefined;
    expect.fail(`decoder threw ${(err as Error)?.name}: ${(err as Error)?.message}`);
  }
}
