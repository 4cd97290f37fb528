import { describe, expect, it } from 'vitest';
import { moduleOf, summarizeProfile, type CpuProfile } from '../../../bench/lib/cpu-profile.js';

const frame = (id: number, functionName: string, url: string, lineNumber = 0) => ({
  id,
  callFrame: { functionName, url, lineNumber },
});

/** A profile of 8 samples: 1 ms apart, starting at t = 10 ms. */
function profile(): CpuProfile {
  return {
    nodes: [
      frame(1, '(root)', ''),
      frame(2, '(idle)', ''),
      frame(3, 'handleDoorbell', 'file:///x/bench/.out/src/isp/ring/engine.js', 41),
      frame(4, 'encodeLinkFrame', 'file:///x/bench/.out/src/san/link.js', 9),
      frame(5, '(garbage collector)', ''),
      frame(6, 'onStreamRead', 'node:internal/stream_base_commons', 100),
      { ...frame(7, 'recvmsg', 'file:///x/dist/src/native/index.js', 113), children: [8] },
      { ...frame(8, 'call', 'file:///x/dist/src/native/index.js', 40), children: [9] },
      frame(9, '', 'file:///x/dist/src/native/index.js', 113),
    ],
    startTime: 10_000,
    endTime: 18_000,
    samples: [2, 3, 3, 4, 5, 6, 3, 2, 9],
    timeDeltas: [1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 500],
  };
}

describe('CPU profile summaries', () => {
  it('sums self time per function and module, leaving idle out of the busy time', () => {
    const s = summarizeProfile(profile());
    expect(s.wallUs).toBe(8000);
    expect(s.busyUs).toBe(6500);
    expect(s.functions[0]).toEqual({ name: 'handleDoorbell src/isp/ring/engine.js:42', us: 3000, share: 3000 / 6500 });
    // an anonymous closure is named after its first two named callers
    expect(s.functions.at(-1)).toEqual({
      name: '(anonymous in call ← recvmsg) src/native/index.js:114',
      us: 500,
      share: 500 / 6500,
    });
    expect(s.modules.map((m) => [m.name, m.us])).toEqual([
      ['src/isp/ring', 3000],
      ['src/san', 1000],
      ['garbage collection', 1000],
      ['Node.js internals (streams, net, timers)', 1000],
      ['src/native', 500],
    ]);
  });

  it('counts only the samples inside a window', () => {
    // sample i ends at 10 ms + (i+1) ms: the window [13, 15.5] ms holds samples 2, 3 and 4
    const s = summarizeProfile(profile(), 10, { startUs: 13_000, endUs: 15_500 });
    expect(s.busyUs).toBe(3000);
    expect(s.wallUs).toBe(2500);
    expect(s.functions.map((f) => f.name)).toEqual([
      'handleDoorbell src/isp/ring/engine.js:42',
      'encodeLinkFrame src/san/link.js:10',
      'garbage collection',
    ]);
    expect(() => summarizeProfile(profile(), 10, { startUs: 30_000, endUs: 40_000 })).toThrow(/does not cover/);
  });

  it('names modules by project directory, dependency or pseudo-frame', () => {
    expect(moduleOf('file:///a/dist/src/vfio-user/server.js', 'f')).toBe('src/vfio-user');
    expect(moduleOf('file:///a/dist/src/hba.js', 'f')).toBe('src');
    expect(moduleOf('file:///a/bench/.out/src/san/fabric/switch.js', 'f')).toBe('src/san/fabric');
    expect(moduleOf('file:///a/bench/.out/bench/lib/qla-driver.js', 'f')).toBe('bench/lib');
    expect(moduleOf('file:///a/node_modules/pino/lib/tools.js', 'f')).toBe('dependency pino');
    expect(moduleOf('file:///a/node_modules/@scope/pkg/x.js', 'f')).toBe('dependency @scope/pkg');
    expect(moduleOf('', '(program)')).toMatch(/outside JS/);
    expect(moduleOf('', 'writev')).toBe('native: writev');
  });
});
