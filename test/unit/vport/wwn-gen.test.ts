import { describe, expect, it } from 'vitest';
import { formatWwn, parseWwn } from '../../../src/util/wwn.js';
import { VportError, VportUsageError } from '../../../src/vport/errors.js';
import { deriveWwnn, generateWwnPair, parseNaaPrefix, type RandomBits } from '../../../src/vport/wwn-gen.js';

/** A random source that always answers `value` (forces every random draw to the same candidate). */
const constant =
  (value: bigint): RandomBits =>
  () =>
    value;

describe('NAA prefix', () => {
  it('NAA 5: "5" + OUI, generated bits below it, bit 0 reserved for port/node', () => {
    const p = parseNaaPrefix('50:01:43:8');
    expect(p).toMatchObject({ naa: 5, digits: '5001438', freeBits: 35 });
    expect(p.base).toBe(0x5001438000000000n);
    expect(parseNaaPrefix('0x5001438').digits).toBe('5001438');
  });

  it('NAA 2: "2" + vendor field + OUI, WWNN clears the vendor field', () => {
    const p = parseNaaPrefix('2100001b32');
    expect(p).toMatchObject({ naa: 2, freeBits: 24 });
    expect(p.base).toBe(0x2100001b32000000n);
  });

  it.each([
    ['', 'expected hex digits'],
    ['50014g8', 'expected hex digits'],
    ['500143', 'needs 7 digits'],
    ['210000e08', 'needs 10 digits'],
    ['2000001b32', 'vendor field'],
    ['1000001b32', 'must start with 5'],
    ['5001438001234567', 'at most 15'],
  ])('refuses %j (%s)', (prefix, message) => {
    expect(() => parseNaaPrefix(prefix)).toThrow(VportUsageError);
    expect(() => parseNaaPrefix(prefix)).toThrow(message);
  });
});

describe('WWNN derivation', () => {
  it('NAA 5 flips bit 0 (the README pair)', () => {
    expect(formatWwn(deriveWwnn(parseWwn('50:01:43:80:01:23:45:67')))).toBe('50:01:43:80:01:23:45:66');
  });
  it('NAA 2 with a port vendor field clears it (QLogic 21:00 / 20:00)', () => {
    expect(formatWwn(deriveWwnn(parseWwn('21:00:00:1b:32:aa:bb:cc')))).toBe('20:00:00:1b:32:aa:bb:cc');
  });
  it('NAA 2 with a zero vendor field flips bit 0 instead of returning itself', () => {
    expect(deriveWwnn(0x2000001b32aabbccn)).toBe(0x2000001b32aabbcdn);
  });
});

describe('generateWwnPair', () => {
  it('keeps the prefix and the port/node convention', () => {
    const p = parseNaaPrefix('5001438');
    for (let i = 0; i < 50; i++) {
      const { wwpn, wwnn } = generateWwnPair(p, new Set());
      expect(wwpn >> 36n).toBe(0x5001438n);
      expect(wwpn & 1n).toBe(1n);
      expect(wwnn).toBe(wwpn ^ 1n);
    }
    const p2 = parseNaaPrefix('2100001b32');
    const pair2 = generateWwnPair(p2, new Set());
    expect(pair2.wwpn >> 24n).toBe(0x2100001b32n);
    expect(pair2.wwnn >> 24n).toBe(0x2000001b32n);
    expect(pair2.wwnn & 0xffffffn).toBe(pair2.wwpn & 0xffffffn);
  });

  it('skips a candidate whose WWPN or WWNN is in use, even when every random draw hits it', () => {
    const p = parseNaaPrefix('5001438');
    const taken = p.base | (7n << 1n) | 1n; // candidate 7's WWPN
    const pair = generateWwnPair(p, new Set([taken]), constant(7n));
    expect(pair.wwpn).not.toBe(taken);
    expect(pair.wwpn).toBe(p.base | (8n << 1n) | 1n); // the ordered scan moves on to candidate 8
    const takenNode = p.base | (8n << 1n); // candidate 8's WWNN
    const pair2 = generateWwnPair(p, new Set([taken, takenNode]), constant(7n));
    expect(pair2.wwpn).toBe(p.base | (9n << 1n) | 1n);
  });

  it('never collides: fills a small space completely, then says it is exhausted', () => {
    // 15 prefix digits leave one generated digit: 3 bits of WWPN space (bit 0 is the port/node bit) = 8 pairs.
    const p = parseNaaPrefix('500143800000000');
    const inUse = new Set<bigint>();
    for (let i = 0; i < 8; i++) {
      const { wwpn, wwnn } = generateWwnPair(p, inUse);
      expect(inUse.has(wwpn)).toBe(false);
      expect(inUse.has(wwnn)).toBe(false);
      inUse.add(wwpn).add(wwnn);
    }
    expect(inUse.size).toBe(16);
    expect(() => generateWwnPair(p, inUse)).toThrow(VportError);
    expect(() => generateWwnPair(p, inUse)).toThrow(/no free WWPN left/);
  });

  it('many generations under one prefix are pairwise distinct', () => {
    const p = parseNaaPrefix('5001438000000'); // 13 digits: 11 free bits, 2048 pairs
    const inUse = new Set<bigint>();
    for (let i = 0; i < 1500; i++) {
      const { wwpn, wwnn } = generateWwnPair(p, inUse);
      expect(inUse.has(wwpn) || inUse.has(wwnn)).toBe(false);
      inUse.add(wwpn).add(wwnn);
    }
    expect(inUse.size).toBe(3000);
  });
});
