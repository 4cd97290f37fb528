/**
 * Writer for the "newc" (SVR4, no CRC) cpio format that the Linux kernel unpacks as an
 * initramfs (Documentation/driver-api/early-userspace/buffer-format.rst). The harness appends
 * one such archive to the cached base initramfs at run time; Linux unpacks concatenated
 * archives in order, so later entries add to (or replace) earlier ones.
 *
 * Entry layout (all numbers are 8 ASCII hex digits, no prefix):
 *
 *   offset  size  field
 *   ------  ----  ---------------------------------------------
 *        0     6  magic "070701"
 *        6     8  c_ino        inode number (unique per archive)
 *       14     8  c_mode       file type and permission bits
 *       22     8  c_uid
 *       30     8  c_gid
 *       38     8  c_nlink
 *       46     8  c_mtime
 *       54     8  c_filesize   bytes of data that follow the name
 *       62     8  c_devmajor
 *       70     8  c_devminor
 *       78     8  c_rdevmajor
 *       86     8  c_rdevminor
 *       94     8  c_namesize   name length including its NUL
 *      102     8  c_check      0 for newc
 *      110        name + NUL, padded to a multiple of 4 (counted from the header start),
 *                 then the data, padded to a multiple of 4
 *
 * The archive ends with an entry named "TRAILER!!!".
 */

export const CPIO_NEWC_MAGIC = '070701';
export const CPIO_HEADER_SIZE = 110;
export const CPIO_FIELD_DIGITS = 8;
export const CPIO_ALIGNMENT = 4;
export const CPIO_TRAILER_NAME = 'TRAILER!!!';

/** File type bits of c_mode (from <sys/stat.h>). */
export const S_IFREG = 0o100000;
export const S_IFDIR = 0o040000;
export const S_IFLNK = 0o120000;

/** Header fields after the magic, in archive order. */
const HEADER_FIELDS = [
  'ino',
  'mode',
  'uid',
  'gid',
  'nlink',
  'mtime',
  'filesize',
  'devmajor',
  'devminor',
  'rdevmajor',
  'rdevminor',
  'namesize',
  'check',
] as const;
type HeaderField = (typeof HEADER_FIELDS)[number];

const MAX_FIELD_VALUE = 0xffff_ffff;

export type CpioEntry =
  | { type: 'file'; path: string; data: Uint8Array; mode?: number }
  | { type: 'dir'; path: string; mode?: number }
  | { type: 'symlink'; path: string; target: string };

/** Normalises an archive path: relative, '/'-separated, no '.', '..' or empty components. */
export function normaliseArchivePath(path: string): string {
  const parts = path.split('/').filter((part) => part !== '' && part !== '.');
  if (parts.length === 0) throw new Error(`cpio: empty path ${JSON.stringify(path)}`);
  if (parts.includes('..')) throw new Error(`cpio: path must not contain '..': ${JSON.stringify(path)}`);
  if (parts.some((part) => part.includes('\0'))) throw new Error('cpio: path contains NUL');
  return parts.join('/');
}

function padLength(length: number): number {
  return (CPIO_ALIGNMENT - (length % CPIO_ALIGNMENT)) % CPIO_ALIGNMENT;
}

function encodeHeader(fields: Record<HeaderField, number>): string {
  let header = CPIO_NEWC_MAGIC;
  for (const name of HEADER_FIELDS) {
    const value = fields[name];
    if (!Number.isInteger(value) || value < 0 || value > MAX_FIELD_VALUE) {
      throw new Error(`cpio: field ${name}=${value} does not fit 32 bits`);
    }
    header += value.toString(16).padStart(CPIO_FIELD_DIGITS, '0');
  }
  return header;
}

/**
 * Builds a newc archive from the entries, in the given order (a directory must come before
 * the files inside it: the kernel does not create missing parent directories).
 */
export function buildCpio(entries: readonly CpioEntry[], mtimeSeconds = 0): Uint8Array {
  const encoder = new TextEncoder();
  const chunks: Uint8Array[] = [];
  let total = 0;
  const push = (chunk: Uint8Array): void => {
    chunks.push(chunk);
    total += chunk.length;
  };
  const pushPadding = (length: number): void => {
    const pad = padLength(length);
    if (pad > 0) push(new Uint8Array(pad));
  };

  const writeEntry = (name: string, mode: number, data: Uint8Array, ino: number, nlink = 1): void => {
    const nameBytes = encoder.encode(`${name}\0`);
    const header = encodeHeader({
      ino,
      mode,
      uid: 0,
      gid: 0,
      nlink,
      mtime: mtimeSeconds,
      filesize: data.length,
      devmajor: 0,
      devminor: 0,
      rdevmajor: 0,
      rdevminor: 0,
      namesize: nameBytes.length,
      check: 0,
    });
    push(encoder.encode(header));
    push(nameBytes);
    pushPadding(CPIO_HEADER_SIZE + nameBytes.length);
    if (data.length > 0) {
      push(data);
      pushPadding(data.length);
    }
  };

  let ino = 1;
  for (const entry of entries) {
    const name = normaliseArchivePath(entry.path);
    switch (entry.type) {
      case 'file':
        writeEntry(name, S_IFREG | ((entry.mode ?? 0o644) & 0o7777), entry.data, ino++);
        break;
      case 'dir':
        writeEntry(name, S_IFDIR | ((entry.mode ?? 0o755) & 0o7777), new Uint8Array(0), ino++, 2);
        break;
      case 'symlink':
        writeEntry(name, S_IFLNK | 0o777, encoder.encode(entry.target), ino++);
        break;
    }
  }
  writeEntry(CPIO_TRAILER_NAME, 0, new Uint8Array(0), 0);

  const archive = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    archive.set(chunk, offset);
    offset += chunk.length;
  }
  return archive;
}
