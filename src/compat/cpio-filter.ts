/**
 * Dropping entries from a prepared initramfs (newc cpio, layout in src/harness/cpio.ts): compat
 * reuses the prepared guest userland with another kernel's modules, so the forky kernel's
 * modules are taken out of the prepared archive. The input may be several archives one after
 * the other (the prepared initramfs is userland + a firmware overlay); the output is one archive
 * with every kept record copied unchanged and a single trailer.
 */
import {
  buildCpio,
  CPIO_ALIGNMENT,
  CPIO_FIELD_DIGITS,
  CPIO_HEADER_SIZE,
  CPIO_NEWC_MAGIC,
  CPIO_TRAILER_NAME,
} from '../harness/cpio.js';

/** Field indices after the magic (see HEADER_FIELDS in src/harness/cpio.ts). */
const FIELD_FILESIZE = 6;
const FIELD_NAMESIZE = 11;

function align(offset: number): number {
  return (offset + CPIO_ALIGNMENT - 1) & ~(CPIO_ALIGNMENT - 1);
}

function field(archive: Buffer, record: number, index: number): number {
  const start = record + CPIO_NEWC_MAGIC.length + index * CPIO_FIELD_DIGITS;
  const text = archive.toString('latin1', start, start + CPIO_FIELD_DIGITS);
  if (!/^[0-9a-fA-F]{8}$/.test(text)) throw new Error(`cpio: bad header field at offset ${start}`);
  return Number.parseInt(text, 16);
}

/**
 * Copies `archive` without the entries whose name (without a leading "./") `drop` accepts.
 * Throws on anything that is not a well-formed newc archive.
 */
export function stripCpioEntries(archive: Buffer, drop: (name: string) => boolean): Buffer {
  const kept: Buffer[] = [];
  let offset = 0;
  let records = 0;
  while (offset < archive.length) {
    // Archives may be padded with NULs (to 512-byte blocks) before the next one starts.
    if (archive[offset] === 0) {
      offset++;
      continue;
    }
    if (offset + CPIO_HEADER_SIZE > archive.length) throw new Error(`cpio: truncated header at offset ${offset}`);
    if (archive.toString('latin1', offset, offset + CPIO_NEWC_MAGIC.length) !== CPIO_NEWC_MAGIC)
      throw new Error(`cpio: no newc header at offset ${offset}`);
    const nameSize = field(archive, offset, FIELD_NAMESIZE);
    const fileSize = field(archive, offset, FIELD_FILESIZE);
    const nameStart = offset + CPIO_HEADER_SIZE;
    const dataStart = align(nameStart + nameSize);
    const end = align(dataStart + fileSize);
    if (nameSize < 1 || end > align(archive.length)) throw new Error(`cpio: record at offset ${offset} overruns`);
    const name = archive.toString('latin1', nameStart, nameStart + nameSize - 1).replace(/^\.\//, '');
    if (name !== CPIO_TRAILER_NAME && !drop(name)) kept.push(archive.subarray(offset, Math.min(end, archive.length)));
    offset = end;
    if (++records > 10_000_000) throw new Error('cpio: too many records');
  }
  // buildCpio([]) is just the trailer.
  return Buffer.concat([...kept, Buffer.from(buildCpio([]))]);
}
