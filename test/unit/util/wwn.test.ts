import { describe, expect, it } from 'vitest';
import { formatWwn, formatWwnSysfs, parseWwn, wwnFromBytes, wwnToBytes, WwnError } from '../../../src/util/wwn.js';

describe('WWN parsing', () => {
  it('accepts the three documented forms and they agree', () => {
    const a = parseWwn('0x5001438001234567');
    expect(parseWwn('50:01:43:80:01:23:45:67')).toBe(a);
    expect(parseWwn('5001438001234567')).toBe(a);
    expect(a).toBe(0x5001438001234567n);
  });
  it.each([
    '',
    '0x',
    '500143800123456',
    '50014380012345678',
    '50:01:43:80:01:23:45',
    '50-01-43-80-01-23-45-67',
    'zz01438001234567',
    '0x0000000000000000',
  ])('refuses %j with a message naming it', (bad) => {
    expect(() => parseWwn(bad, 'WWPN')).toThrow(WwnError);
    expect(() => parseWwn(bad, 'WWPN')).toThrow(/WWPN/);
  });
  it('formats and round-trips bytes big-endian', () => {
    const w = 0x20000024ff7a1b2cn;
    expect(formatWwn(w)).toBe('20:00:00:24:ff:7a:1b:2c');
    expect(formatWwnSysfs(w)).toBe('0x20000024ff7a1b2c');
    const b = wwnToBytes(w);
    expect(Array.from(b)).toEqual([0x20, 0, 0, 0x24, 0xff, 0x7a, 0x1b, 0x2c]);
    expect(wwnFromBytes(b)).toBe(w);
    expect(() => wwnFromBytes(b, 1)).toThrow(WwnError);
  });
});
