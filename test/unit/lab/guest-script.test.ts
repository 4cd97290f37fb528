import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { labGuestScript, type LabGuestScriptOptions } from '../../../src/lab/guest-script.js';

const BASE: LabGuestScriptOptions = {
  vports: 2,
  waitSeconds: 60,
  settleSeconds: 3,
  rportGraceSeconds: 20,
  ioBytes: 32 * 2 ** 20,
  ioBlockSize: 65536,
  ioDepth: 16,
  keep: false,
};
const dir = mkdtempSync(join(tmpdir(), 'lab-script-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('lab guest script', () => {
  it('is valid POSIX sh for both modes', () => {
    for (const keep of [false, true]) {
      const path = join(dir, `script-${keep}.sh`);
      writeFileSync(path, labGuestScript({ ...BASE, keep }));
      // sh -n parses without running; a syntax error makes it exit non-zero (execFileSync throws).
      expect(() => execFileSync('sh', ['-n', path], { stdio: 'pipe' })).not.toThrow();
    }
  });

  it('carries the parameters and the fio job the report parses', () => {
    const script = labGuestScript(BASE);
    expect(script).toContain('VPORTS=2\n');
    expect(script).toContain(`IO_BYTES=${32 * 2 ** 20}\n`);
    expect(script).toMatch(/fio .*--rw=randwrite/);
    for (const flag of [
      '--ioengine=libaio',
      '--direct=1',
      '--iodepth=$IO_DEPTH',
      '--verify=crc32c',
      '--do_verify=1',
      '--output-format=json',
    ]) {
      expect(script).toContain(flag);
    }
    expect(script).toContain('lab ATTR host');
    expect(script).toContain('KEEP=0');
    expect(labGuestScript({ ...BASE, keep: true })).toContain('KEEP=1');
  });

  it('refuses impossible parameters', () => {
    expect(() => labGuestScript({ ...BASE, vports: 0 })).toThrow(/vports must be a positive integer/);
    expect(() => labGuestScript({ ...BASE, ioBytes: 1000 })).toThrow(/not a multiple of the block size/);
    expect(() => labGuestScript({ ...BASE, waitSeconds: 1.5 })).toThrow(/waitSeconds/);
  });
});
