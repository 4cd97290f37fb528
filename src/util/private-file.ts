/**
 * Files only this user may read, created without following anything another user planted:
 * capture files (`--pcap`) hold the FCP data of every I/O, i.e. disk contents.
 *
 * The file is created under a fresh random name next to the target with
 * O_CREAT|O_EXCL|O_NOFOLLOW and mode 0600 (open(2): O_EXCL never follows a symlink and never
 * opens an existing file), then renamed over the target (rename(2) replaces the directory entry
 * itself, never a symlink's target or another link to the old file). A target that is a symlink
 * is refused outright, with a message saying so.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, constants, fchmodSync, lstatSync, openSync, renameSync, unlinkSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';

export const PRIVATE_FILE_MODE = 0o600;

/** Creates (or replaces) `path` as an empty 0600 file and returns its fd, open for writing. */
export function createPrivateFile(path: string, what = 'file'): number {
  let existing: ReturnType<typeof lstatSync> | null = null;
  try {
    existing = lstatSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  if (existing?.isSymbolicLink()) {
    throw new Error(`refusing to write the ${what} ${path}: it is a symbolic link (another user may have planted it); remove it or choose another path`);
  }
  if (existing && !existing.isFile()) throw new Error(`refusing to write the ${what} ${path}: it exists and is not a regular file`);
  const full = resolve(path);
  const temporary = join(dirname(full), `.${basename(full)}.${randomBytes(8).toString('hex')}.tmp`);
  const fd = openSync(temporary, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, PRIVATE_FILE_MODE);
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
