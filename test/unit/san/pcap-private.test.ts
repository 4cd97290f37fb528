/**
 * Capture files hold disk data: created 0600 whatever the umask, and never written through a
 * symlink another user planted at the path (it used to overwrite the symlink's target).
 */
import {
  chmodSync,
  lstatSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LINKTYPE_FC_2, PcapWriter } from '../../../src/fc/pcap.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'npiv-pcap-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('PcapWriter file creation', () => {
  it('creates the capture 0600 even under umask 000', () => {
    const old = process.umask(0);
    try {
      const path = join(dir, 'trace.pcap');
      new PcapWriter(path).close();
      expect(statSync(path).mode & 0o777).toBe(0o600);
      expect(readFileSync(path).readUInt32LE(20)).toBe(LINKTYPE_FC_2);
    } finally {
      process.umask(old);
    }
  });

  it('refuses a symlink planted at the path and leaves its target untouched', () => {
    const victim = join(dir, 'root-only');
    writeFileSync(victim, 'secret\n', { mode: 0o600 });
    const path = join(dir, 'trace.pcap');
    symlinkSync(victim, path);
    expect(() => new PcapWriter(path)).toThrow(/symbolic link/);
    expect(readFileSync(victim, 'utf8')).toBe('secret\n');
    expect(lstatSync(path).isSymbolicLink()).toBe(true);
    // No temporary file left behind.
    expect(readdirSync(dir).sort()).toEqual(['root-only', 'trace.pcap']);
  });

  it('replaces an existing capture with a new private file rather than writing into the old one', () => {
    const path = join(dir, 'trace.pcap');
    writeFileSync(path, 'old capture');
    chmodSync(path, 0o644);
    const before = statSync(path).ino;
    const w = new PcapWriter(path);
    w.write(new Uint8Array(24));
    w.close();
    expect(statSync(path).ino).not.toBe(before);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(readFileSync(path).length).toBe(24 + 16 + 24);
  });

  it('refuses a path that is not a regular file', () => {
    expect(() => new PcapWriter(dir)).toThrow(/not a regular file/);
  });
});
