/**
 * Defensive access to a sysfs tree (default `/sys`; tests use a fake tree in a temporary
 * directory). Everything read from sysfs is treated as untrusted text: attribute reads are
 * bounded, must be printable ASCII, and every value is parsed by a strict parser that names the
 * attribute when it refuses. Attribute writes are one write(2) of the whole value, and a short
 * write counts as a failure: fc_host `vport_create` can return the positive FC_VPORT_FAILED (9)
 * from the LLDD, which reaches user space as a short write (`store_fc_host_vport_create` →
 * `fc_vport_create`, drivers/scsi/scsi_transport_fc.c).
 */
import { closeSync, constants, openSync, readdirSync, readSync, writeSync, type Dirent } from 'node:fs';
import { join } from 'node:path';

/** sysfs attributes are at most one page (PAGE_SIZE, fs/sysfs/file.c `sysfs_kf_seq_show`). */
export const SYSFS_ATTR_MAX = 4096;
/** Directory listings are bounded too: a host with more entries than this is refused, not walked. */
export const SYSFS_DIR_MAX = 65536;

export class SysfsError extends Error {
  constructor(
    message: string,
    readonly path: string,
    readonly code?: string,
  ) {
    super(message);
    this.name = 'SysfsError';
  }
}

export interface SysfsOptions {
  /** Root of the sysfs tree (default `/sys`). */
  root?: string;
  /** Root of the proc tree (default `/proc`): `/proc/scsi/device_info`. */
  procRoot?: string;
  /** Root of the device nodes (default `/dev`): `/dev/sgN`. */
  devRoot?: string;
}

/** A sysfs tree. Paths given to its methods are relative to the root (`class/fc_host`). */
export class Sysfs {
  readonly root: string;
  readonly procRoot: string;
  readonly devRoot: string;

  constructor(o: SysfsOptions = {}) {
    this.root = o.root ?? '/sys';
    this.procRoot = o.procRoot ?? '/proc';
    this.devRoot = o.devRoot ?? '/dev';
  }

  path(rel: string): string {
    return join(this.root, rel);
  }

  /** Reads an attribute; null when it does not exist (ENOENT/ENODEV: the object went away). */
  read(rel: string): string | null {
    return readBounded(this.path(rel));
  }

  /** Reads an attribute that must exist. */
  require(rel: string): string {
    const v = this.read(rel);
    if (v === null) throw new SysfsError(`${this.path(rel)} does not exist`, this.path(rel), 'ENOENT');
    return v;
  }

  exists(rel: string): boolean {
    try {
      closeSync(openSync(this.path(rel), constants.O_RDONLY | constants.O_NONBLOCK));
      return true;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      // EACCES: the attribute exists (e.g. a write-only vport_create); EISDIR cannot happen with O_RDONLY.
      return code === 'EACCES' || code === 'EPERM';
    }
  }

  /** Entries of a directory whose names match `pattern`; [] when the directory does not exist. */
  list(rel: string, pattern: RegExp): string[] {
    let entries: Dirent[];
    try {
      entries = readdirSync(this.path(rel), { withFileTypes: true });
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'ENODEV') return [];
      throw new SysfsError(`cannot list ${this.path(rel)}: ${(e as Error).message}`, this.path(rel), code);
    }
    if (entries.length > SYSFS_DIR_MAX)
      throw new SysfsError(`${this.path(rel)} has ${entries.length} entries (more than ${SYSFS_DIR_MAX})`, rel);
    return entries
      .map((d) => d.name)
      .filter((n) => pattern.test(n))
      .sort(naturalCompare);
  }

  /**
   * Writes `value` to an attribute with one write(2); throws a SysfsError carrying the errno code
   * (EACCES, ENOSPC, ...) or code 'SHORT_WRITE' when the kernel took fewer bytes.
   */
  write(rel: string, value: string): void {
    writeAttribute(this.path(rel), value);
  }

  /** A file under the proc root (`scsi/device_info`). */
  readProc(rel: string, max = 1 << 20): string | null {
    return readBounded(join(this.procRoot, rel), max, true);
  }

  writeProc(rel: string, value: string): void {
    writeAttribute(join(this.procRoot, rel), value);
  }
}

function readBounded(path: string, max = SYSFS_ATTR_MAX, multiline = false): string | null {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENODEV' || code === 'ENOTDIR') return null;
    throw new SysfsError(`cannot read ${path}: ${(e as Error).message}`, path, code);
  }
  try {
    const buf = Buffer.alloc(max + 1);
    let at = 0;
    for (;;) {
      let n: number;
      try {
        n = readSync(fd, buf, at, buf.length - at, null);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        // ENODEV: the device was removed between open and read.
        if (code === 'ENODEV' || code === 'ENOENT') return null;
        throw new SysfsError(`cannot read ${path}: ${(e as Error).message}`, path, code);
      }
      if (n === 0) break;
      at += n;
      if (at > max) throw new SysfsError(`${path}: longer than ${max} bytes`, path, 'E2BIG');
    }
    const text = buf.subarray(0, at).toString('latin1');
    const allowed = multiline ? /^[\x20-\x7e\t\n]*$/ : /^[\x20-\x7e\t]*\n?$/;
    if (!allowed.test(text)) throw new SysfsError(`${path}: unexpected characters in the value`, path, 'EBADMSG');
    return multiline ? text : text.replace(/\n$/, '').trim();
  } finally {
    closeSync(fd);
  }
}

function writeAttribute(path: string, value: string): void {
  const data = Buffer.from(value, 'latin1');
  let fd: number;
  try {
    // O_WRONLY without O_CREAT: an attribute that is not there is an error, never a new file.
    fd = openSync(path, constants.O_WRONLY | constants.O_TRUNC | constants.O_NOFOLLOW);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new SysfsError(`cannot open ${path} for writing: ${(e as Error).message}`, path, code);
  }
  try {
    let n: number;
    try {
      n = writeSync(fd, data, 0, data.length, null);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw new SysfsError(`writing '${value.trim()}' to ${path} failed: ${(e as Error).message}`, path, code);
    }
    if (n !== data.length)
      throw new SysfsError(
        `writing '${value.trim()}' to ${path} failed: the kernel took ${n} of ${data.length} bytes (a driver error)`,
        path,
        'SHORT_WRITE',
      );
  } finally {
    closeSync(fd);
  }
}

/** host2 < host10; rport-3:0-2 < rport-3:0-10. */
export function naturalCompare(a: string, b: string): number {
  return a.localeCompare(b, 'en', { numeric: true });
}

// ---------------------------------------------------------------------------------------------
// Strict parsers for the formats of drivers/scsi/scsi_transport_fc.c.
// ---------------------------------------------------------------------------------------------

function bad(what: string, text: string, expected: string): SysfsError {
  const shown = text.length > 40 ? `${text.slice(0, 40)}...` : text;
  return new SysfsError(`${what}: '${shown}' is not ${expected}`, what, 'EBADMSG');
}

/** `"0x%llx"` (no zero padding): port_name, node_name, fabric_name. */
export function parseSysfsWwn(text: string, what: string): bigint {
  if (!/^0x[0-9a-fA-F]{1,16}$/.test(text)) throw bad(what, text, 'a 64-bit name (0x%llx)');
  return BigInt(text);
}

/** `"0x%06x"`: port_id. */
export function parseSysfsPortId(text: string, what: string): number {
  if (!/^0x[0-9a-fA-F]{1,6}$/.test(text)) throw bad(what, text, 'a 24-bit port ID (0x%06x)');
  return Number.parseInt(text.slice(2), 16);
}

/** `"%u"` / `"%d"` within [min, max]. */
export function parseSysfsInt(text: string, what: string, min = 0, max = 0x7fffffff): number {
  if (!/^-?[0-9]{1,10}$/.test(text)) throw bad(what, text, 'an integer');
  const n = Number.parseInt(text, 10);
  if (n < min || n > max) throw bad(what, text, `in [${min}, ${max}]`);
  return n;
}

/** fc_host `speed`: "8 Gbit", "10 Gbit", "unknown" (fc_port_speed_names). null when unknown. */
export function parseSysfsSpeed(text: string, what: string): number | null {
  if (text === 'unknown' || text === '') return null;
  const m = /^([0-9]{1,4}) Gbit$/.exec(text);
  if (!m) throw bad(what, text, 'a speed ("8 Gbit")');
  return Number(m[1]);
}

/** `"%u bytes"`: maxframe_size. */
export function parseSysfsBytes(text: string, what: string): number {
  const m = /^([0-9]{1,6}) bytes$/.exec(text);
  if (!m) throw bad(what, text, 'a size ("2048 bytes")');
  return Number(m[1]);
}

/** fc_port_state_names (get_fc_port_state_name). */
export const PORT_STATES = [
  'Unknown',
  'Not Present',
  'Online',
  'Offline',
  'Blocked',
  'Bypassed',
  'Diagnostics',
  'Linkdown',
  'Error',
  'Loopback',
  'Deleted',
  'Marginal',
] as const;
export type PortState = (typeof PORT_STATES)[number];

/** fc_vport_state_names (get_fc_vport_state_name). */
export const VPORT_STATES = [
  'Unknown',
  'Active',
  'Disabled',
  'Linkdown',
  'Initializing',
  'No Fabric Support',
  'No Fabric Resources',
  'Fabric Logout',
  'Fabric Rejected WWN',
  'VPort Failed',
] as const;
export type VportState = (typeof VPORT_STATES)[number];

export function parseEnum<T extends string>(text: string, values: readonly T[], what: string): T {
  if (!(values as readonly string[]).includes(text)) throw bad(what, text, `one of ${values.join(', ')}`);
  return text as T;
}

/** fc_remote_ports `roles`: comma-separated fc_remote_port_role_names, or "unknown". */
export function parseRoles(text: string, what: string): string[] {
  if (text === 'unknown' || text === '') return [];
  const roles = text.split(',').map((r) => r.trim());
  for (const r of roles) if (!/^[A-Za-z][A-Za-z ]{0,30}$/.test(r)) throw bad(what, text, 'a list of port roles');
  return roles;
}
