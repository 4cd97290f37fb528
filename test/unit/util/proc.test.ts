/** fdinfo as src/util/proc.ts reads it: the text Linux writes, and this process's own fds. */
import { describe, expect, it } from 'vitest';
import { native } from '../../../src/native/index.js';
import { fdInfo, O_CLOEXEC, O_NONBLOCK, parseFdInfo } from '../../../src/util/proc.js';

describe('parseFdInfo', () => {
  it('reads the octal flags and tells an eventfd by its eventfd-count line', () => {
    const eventfd =
      'pos:\t0\nflags:\t02004002\nmnt_id:\t16\nino:\t2083\neventfd-count:                0\neventfd-id: 7\n';
    expect(parseFdInfo(eventfd)).toEqual({ flags: 0o2004002, eventfd: true });
    const pipe = 'pos:\t0\nflags:\t00\nmnt_id:\t15\nino:\t123456\n';
    expect(parseFdInfo(pipe)).toEqual({ flags: 0, eventfd: false });
    expect(parseFdInfo('')).toEqual({ flags: null, eventfd: false });
  });
});

describe('fdInfo', () => {
  it("reads one of this process's fds and throws for a closed one", () => {
    const fd = native.eventfd(0);
    try {
      const info = fdInfo(fd);
      expect(info.eventfd).toBe(true);
      expect((info.flags ?? 0) & (O_NONBLOCK | O_CLOEXEC)).toBe(O_NONBLOCK | O_CLOEXEC);
    } finally {
      native.close(fd);
    }
    expect(() => fdInfo(fd)).toThrow();
  });
});
