/**
 * Native shim: memfd_create, mmap(MAP_SHARED) as a zero-copy ArrayBuffer, munmap, fdSize.
 */
import { spawnSync } from 'node:child_process';
import { closeSync, ftruncateSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterEach, describe, expect, it } from 'vitest';

import {
  F_SEAL_GROW,
  F_SEAL_SEAL,
  F_SEAL_SHRINK,
  native,
  nativeAddonPath,
  NativeError,
} from '../../../src/native/index.js';
import { FdTracker, fdFlags, memfdMappingCount } from './helpers.js';
import { O_CLOEXEC } from '../../../src/util/proc.js';

const fds = new FdTracker();
afterEach(() => fds.closeAll());

const PAGE = 4096;
const PROT_READ = 1;
const PROT_READ_WRITE = 3;

describe('memfdCreate / fdSize', () => {
  it('creates a close-on-exec memfd of the requested size', () => {
    const fd = fds.add(native.memfdCreate('size', 3 * PAGE + 5));
    expect(native.fdSize(fd)).toBe(3 * PAGE + 5);
    expect(fdFlags(fd) & O_CLOEXEC).toBe(O_CLOEXEC);
    expect(native.fdSize(fds.add(native.memfdCreate('empty', 0)))).toBe(0);
  });

  it('validates name and size', () => {
    expect(() => native.memfdCreate('', PAGE)).toThrow(RangeError);
    expect(() => native.memfdCreate('n'.repeat(250), PAGE)).toThrow(RangeError);
    expect(() => native.memfdCreate('a\0b', PAGE)).toThrow(RangeError);
    expect(() => native.memfdCreate('ok', -1)).toThrow(RangeError);
    expect(() => native.memfdCreate('ok', 2 ** 53)).toThrow(RangeError);
    expect(() => native.memfdCreate('ok', '1' as unknown as number)).toThrow(TypeError);
  });
});

describe('mmap / munmap', () => {
  it('is zero-copy: a write through one mapping is seen through another', () => {
    const fd = fds.add(native.memfdCreate('zero-copy', 2 * PAGE));
    const first = native.mmap(fd, 2 * PAGE, 0n, PROT_READ_WRITE);
    const second = native.mmap(fd, PAGE, BigInt(PAGE), PROT_READ);
    expect(first.byteLength).toBe(2 * PAGE);
    expect(second.byteLength).toBe(PAGE);

    new Uint8Array(first).set([1, 2, 3], PAGE + 10);
    expect([...new Uint8Array(second, 10, 3)]).toEqual([1, 2, 3]);
    new DataView(first).setUint32(PAGE + 100, 0xdeadbeef, true);
    expect(new DataView(second).getUint32(100, true)).toBe(0xdeadbeef);

    // Writes through the file reach the mapping as well (same pages, no copy).
    writeSync(fd, Uint8Array.of(0x77), 0, 1, PAGE + 200);
    expect(new Uint8Array(second)[200]).toBe(0x77);
    native.munmap(first);
    native.munmap(second);
  });

  it('munmap detaches the buffer and removes the mapping; a second munmap is a no-op', () => {
    const fd = fds.add(native.memfdCreate('detach', PAGE));
    const buffer = native.mmap(fd, PAGE, 0n, PROT_READ_WRITE);
    const view = new Uint8Array(buffer);
    view[0] = 1;
    expect(memfdMappingCount('detach')).toBe(1);

    native.munmap(buffer);
    expect(buffer.byteLength).toBe(0);
    expect(view.length).toBe(0);
    expect(view[0]).toBeUndefined(); // out of bounds now, not a read of unmapped memory
    expect(memfdMappingCount('detach')).toBe(0);
    expect(() => native.munmap(buffer)).not.toThrow();
    // The data stays in the file.
    const again = native.mmap(fd, PAGE, 0n, PROT_READ);
    expect(new Uint8Array(again)[0]).toBe(1);
    native.munmap(again);
  });

  it('munmap accepts only buffers made by mmap', () => {
    expect(() => native.munmap(new ArrayBuffer(PAGE))).toThrow(TypeError);
    expect(() => native.munmap(new Uint8Array(4) as unknown as ArrayBuffer)).toThrow(TypeError);
  });

  it('validates length, offset and prot', () => {
    const fd = fds.add(native.memfdCreate('validate', 4 * PAGE));
    expect(() => native.mmap(fd, 0, 0n, PROT_READ)).toThrow(RangeError);
    expect(() => native.mmap(fd, -PAGE, 0n, PROT_READ)).toThrow(RangeError);
    expect(() => native.mmap(fd, PAGE, 1n, PROT_READ)).toThrow(/page size/);
    expect(() => native.mmap(fd, PAGE, -BigInt(PAGE), PROT_READ)).toThrow(RangeError);
    expect(() => native.mmap(fd, PAGE, 2n ** 64n, PROT_READ)).toThrow(RangeError);
    expect(() => native.mmap(fd, PAGE, 0 as unknown as bigint, PROT_READ)).toThrow(TypeError);
    expect(() => native.mmap(fd, PAGE, 0n, 0)).toThrow(RangeError);
    expect(() => native.mmap(fd, PAGE, 0n, 4)).toThrow(RangeError);
    expect(memfdMappingCount('validate')).toBe(0);
  });

  it('refuses a range past the end of a file (EINVAL) instead of risking SIGBUS', () => {
    const fd = fds.add(native.memfdCreate('short', 2 * PAGE));
    let caught: unknown;
    try {
      native.mmap(fd, 2 * PAGE, BigInt(PAGE), PROT_READ);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(NativeError);
    expect((caught as NativeError).code).toBe('EINVAL');
    expect((caught as NativeError).syscall).toBe('mmap');
    expect(memfdMappingCount('short')).toBe(0);
  });

  it('reports kernel errors: EBADF for a closed fd, EACCES for a writable map of a read-only fd', () => {
    const fd = native.memfdCreate('closed', PAGE);
    native.close(fd);
    expect(() => native.mmap(fd, PAGE, 0n, PROT_READ)).toThrow(expect.objectContaining({ code: 'EBADF' }));

    const writable = fds.add(native.memfdCreate('readonly', PAGE));
    const readOnly = fds.add(openSync(`/proc/self/fd/${writable}`, 'r'));
    expect(() => native.mmap(readOnly, PAGE, 0n, PROT_READ_WRITE)).toThrow(
      expect.objectContaining({ code: 'EACCES', syscall: 'mmap' }),
    );
    const mapping = native.mmap(readOnly, PAGE, 0n, PROT_READ);
    expect(new Uint8Array(mapping)[0]).toBe(0);
    native.munmap(mapping);
  });

  it('unmaps a dropped buffer when it is garbage-collected', () => {
    // A child process with --expose-gc: the test runner's heap cannot be collected on demand.
    const script = `
      const fs = require('node:fs');
      const shim = require(process.argv[1]);
      const count = () => fs.readFileSync('/proc/self/maps', 'utf8').split('\\n')
        .filter((l) => l.includes('/memfd:gc-probe')).length;
      const fd = shim.memfdCreate('gc-probe', 4096);
      (() => { new Uint8Array(shim.mmap(fd, 4096, 0n, 3))[0] = 1; })();
      const before = count();
      const settle = (rounds) => {
        globalThis.gc();
        if (count() === 0 || rounds === 0) { console.log(JSON.stringify({ before, after: count() })); return; }
        setImmediate(() => settle(rounds - 1));
      };
      settle(50);
    `;
    const child = spawnSync(process.execPath, ['--expose-gc', '-e', script, nativeAddonPath()], {
      encoding: 'utf8',
      timeout: 20_000,
    });
    expect(child.stderr).toBe('');
    expect(child.status).toBe(0);
    expect(JSON.parse(child.stdout)).toEqual({ before: 1, after: 0 });
  });
});

describe('memfd seals', () => {
  it('memfdCreate seals the size like QEMU (F_SEAL_SHRINK|GROW|SEAL) and fdSeals reports it', () => {
    const fd = native.memfdCreate('sealed', 8192);
    try {
      expect(native.fdSeals(fd)).toBe(F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
      expect(() => ftruncateSync(fd, 4096)).toThrow(/EPERM/);
      expect(native.fdSize(fd)).toBe(8192);
    } finally {
      native.close(fd);
    }
  });

  it('fdSeals is null for a file that cannot carry seals', () => {
    const dir = mkdtempSync(join(tmpdir(), 'seals-'));
    const fd = openSync(join(dir, 'f'), 'w+');
    try {
      expect(native.fdSeals(fd)).toBeNull();
    } finally {
      closeSync(fd);
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
