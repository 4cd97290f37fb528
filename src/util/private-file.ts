/**
 * Files only this user (or one group) may read, created without following anything another user
 * planted: capture files (`--pcap`) hold the FCP data of every I/O, i.e. disk contents; a vport's
 * statistics file (`<socket>.stats.json`) says what a VM is doing with its disks.
 *
 * The file is created under a fresh random name next to the target with
 * O_CREAT|O_EXCL|O_NOFOLLOW and mode 0600 (open(2): O_EXCL never follows a symlink and never
 * opens an existing file), then renamed over the target (rename(2) replaces the directory entry
 * itself, never a symlink's target or another link to the old file). A target that is a symlink
 * is refused outright, with a message saying so.
 */
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  constants,
  fchmodSync,
  fchownSync,
  lstatSync,
  openSync,
  renameSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';

export const PRIVATE_FILE_MODE = 0o600;

/** Mode of a private file shared with one group (read-only for the group). */
export const GROUP_READABLE_FILE_MODE = 0o640;

/** Refuses a target that is a symbolic link or not a regular file. */
function checkTarget(path: string, what: string): void {
  let existing: ReturnType<typeof lstatSync> | null = null;
  try {
    existing = lstatSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  if (existing?.isSymbolicLink()) {
    throw new Error(
      `refusing to write the ${what} ${path}: it is a symbolic link (another user may have planted it); remove it or choose another path`,
    );
  }
  if (existing && !existing.isFile())
    throw new Error(`refusing to write the ${what} ${path}: it exists and is not a regular file`);
}

/** A fresh file next to `full` under a random name: never an existing file, never through a symlink. */
function openTemporary(full: string): { temporary: string; fd: number } {
  const temporary = join(dirname(full), `.${basename(full)}.${randomBytes(8).toString('hex')}.tmp`);
  const fd = openSync(
    temporary,
    constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
    PRIVATE_FILE_MODE,
  );
  return { temporary, fd };
}

/** Creates (or replaces) `path` as an empty 0600 file and returns its fd, open for writing. */
export function createPrivateFile(path: string, what = 'file'): number {
  checkTarget(path, what);
  const full = resolve(path);
  const { temporary, fd } = openTemporary(full);
  try {
    // The umask can only have narrowed the mode; make it exactly 0600 (the owner must read it back).
    fchmodSync(fd, PRIVATE_FILE_MODE);
    renameSync(temporary, full);
  } catch (err) {
    closeSync(fd);
    try {
      unlinkSync(temporary);
    } catch {
      // already gone
    }
    throw new Error(`cannot create the ${what} ${path}: ${(err as Error).message}`, { cause: err });
  }
  return fd;
}

export interface PrivateWriteOptions {
  /** also readable (not writable) by this group: mode 0640 and group-owned; otherwise 0600 */
  group?: number;
  /** what the file is, for messages */
  what?: string;
}

/**
 * Replaces `path` with a file holding exactly `data`, atomically: a reader sees the whole old or
 * the whole new content, never a partial one. The content is written to a fresh temporary file
 * (O_EXCL|O_NOFOLLOW, 0600, or 0640 and group-owned with `group`) that is then renamed over the
 * target; a symlink at the target is refused.
 */
export function writePrivateFileAtomic(
  path: string,
  data: string | Uint8Array,
  options: PrivateWriteOptions = {},
): void {
  const what = options.what ?? 'file';
  checkTarget(path, what);
  const full = resolve(path);
  const { temporary, fd } = openTemporary(full);
  const bytes = typeof data === 'string' ? Buffer.from(data) : data;
  try {
    try {
      // Group first, then the mode: the group never gets to read a file it was not meant to.
      if (options.group !== undefined) fchownSync(fd, -1, options.group);
      fchmodSync(fd, options.group !== undefined ? GROUP_READABLE_FILE_MODE : PRIVATE_FILE_MODE);
      for (let at = 0; at < bytes.length; ) at += writeSync(fd, bytes, at, bytes.length - at);
    } finally {
      closeSync(fd);
    }
    renameSync(temporary, full);
  } catch (err) {
    try {
      unlinkSync(temporary);
    } catch {
      // already gone
    }
    throw new Error(`cannot write the ${what} ${path}: ${(err as Error).message}`, { cause: err });
  }
}
