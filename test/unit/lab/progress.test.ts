import { describe, expect, it } from 'vitest';
import { ProgressDisplay } from '../../../src/lab/progress.js';

function stream(isTTY: boolean) {
  const writes: string[] = [];
  return { writes, isTTY, columns: 60, write: (t: string) => writes.push(t) };
}

describe('lab progress display', () => {
  it('plain lines with the elapsed time when not a TTY', () => {
    let now = 1_000;
    const out = stream(false);
    const p = new ProgressDisplay(out, () => now);
    p.step('guest environment');
    now += 12_000;
    p.detail('[guest-prepare] ignored prefix stays: building the rootfs');
    p.detail('   ');
    p.finish();
    expect(out.writes).toEqual([
      '[lab    0s] guest environment\n',
      '[lab   12s]   [guest-prepare] ignored prefix stays: building the rootfs\n',
    ]);
  });

  it('one line rewritten in place on a TTY, cut to the terminal width, cleared at the end', () => {
    let now = 0;
    const out = stream(true);
    const p = new ProgressDisplay(out, () => now);
    p.step('starting the SAN');
    now = 3_000;
    p.detail('x'.repeat(200));
    p.finish();
    expect(out.writes[0]).toBe('\r\x1b[K[lab    0s] starting the SAN');
    expect(out.writes[1]!.startsWith('\r\x1b[K[lab    3s] starting the SAN: xxx')).toBe(true);
    expect(out.writes[1]!.length).toBeLessThanOrEqual('\r\x1b[K'.length + 59);
    expect(out.writes[1]!.endsWith('…')).toBe(true);
    expect(out.writes.at(-1)).toBe('\r\x1b[K');
    expect(out.writes.every((w) => !w.includes('\n'))).toBe(true);
  });
});
