/**
 * Shared helpers for the native shim tests: fd bookkeeping (so a failing test does not
 * leak fds into the next one) and /proc views of this process.
 */
import { readFileSync } from 'node:fs';

import { native } from '../../../src/native/index.js';
import { fdInfo } from '../../../src/util/proc.js';

/** The `flags:` line of /proc/self/fdinfo/<fd>. */
export function fdFlags(fd: number): number {
  const { flags } = fdInfo(fd);
  if (flags === null) throw new Error(`no flags line in fdinfo of fd ${fd}`);
  return flags;
}

/** Number of mappings of memfd `name` in /proc/self/maps. */
export function memfdMappingCount(name: string): number {
  return readFileSync('/proc/self/maps', 'utf8')
    .split('\n')
    .filter((line) => line.includes(`/memfd:${name} `) || line.endsWith(`/memfd:${name}`)).length;
}

/** Tracks fds a test opens; closes the ones the test left open. */
export class FdTracker {
  private readonly open = new Set<number>();

  add<T extends number | readonly number[]>(fds: T): T {
    const list: readonly number[] = typeof fds === 'number' ? [fds] : (fds as readonly number[]);
    for (const fd of list) this.open.add(fd);
    return fds;
  }

  close(fd: number): void {
    this.open.delete(fd);
    native.close(fd);
  }

  closeAll(): void {
    for (const fd of this.open) native.close(fd);
    this.open.clear();
  }
}
