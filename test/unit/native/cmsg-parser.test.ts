/**
 * Regression (found by the libFuzzer + ASan harness, test/fuzz/native/cmsg_fuzz.cc): the
 * SCM_RIGHTS parser (native/src/cmsg.h) clamped a cmsg's payload with `data + payload >
 * controlEnd`; a cmsg_len near 2^64 made that pointer sum wrap below the buffer, the clamp did
 * not fire, and the parser read fds far past the control buffer (a heap-buffer-overflow). The
 * harness is compiled here with g++ and AddressSanitizer (g++ is already needed to build the
 * native shim) and run on that input and on well-formed control data.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { packageRoot } from '../../../src/util/package-root.js';

const root = packageRoot();
let dir: string;
let replay: string;

function hex(text: string): Uint8Array {
  return Uint8Array.from(text.match(/../g)!.map((b) => parseInt(b, 16)));
}

function run(name: string, input: Uint8Array): { status: number | null; output: string } {
  const file = join(dir, name);
  writeFileSync(file, input);
  const r = spawnSync(replay, [file], { encoding: 'utf8', env: { ...process.env, ASAN_OPTIONS: 'detect_leaks=0' } });
  return { status: r.status, output: r.stdout + r.stderr };
}

describe('SCM_RIGHTS control-data parser under AddressSanitizer', () => {
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'npiv-cmsg-'));
    replay = join(dir, 'cmsg_replay');
    const src = join(root, 'test', 'fuzz', 'native');
    execFileSync('g++', [
      '-std=c++17',
      '-g',
      '-O1',
      '-fsanitize=address',
      '-I',
      join(root, 'native', 'src'),
      join(src, 'cmsg_fuzz.cc'),
      join(src, 'cmsg_replay.cc'),
      '-o',
      replay,
    ]);
  }, 60_000);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('stays inside the buffer when cmsg_len is near 2^64', () => {
    // cmsghdr { cmsg_len = 0xffffffff00000014, SOL_SOCKET, SCM_RIGHTS } + two fds.
    const r = run('huge-len', hex('14000000ffffffff01000000010000000500000006000000'));
    expect(r.output).not.toMatch(/AddressSanitizer/);
    expect(r.status).toBe(0);
  });

  it('parses well-formed and truncated control data cleanly', () => {
    for (const [name, input] of [
      ['three-fds', hex('1c00000000000000010000000100000003000000040000000500000000000000')],
      ['cut-short', hex('1c000000000000000100000001000000030000')],
      ['tiny', hex('1400')],
    ] as const) {
      const r = run(name, input);
      expect(r.output, name).not.toMatch(/AddressSanitizer/);
      expect(r.status, name).toBe(0);
    }
  });
});
