/**
 * Volumes of the simulated storage array: block devices backed by a sparse file (positional I/O
 * through fs.promises FileHandle) or by sparse memory (a memfd). SBC-3 semantics live in src/scsi;
 * this module only guarantees the storage contract the device server relies on:
 *  - a write resolves only after the data is in the backing store (the file, via pwrite);
 *  - flush() resolves only after fdatasync(2) returned;
 *  - overlapping in-flight operations are ordered by arrival (an LBA range lock), reads share;
 *  - unmapped ranges read back as zeros. Node has no fallocate(PUNCH_HOLE), so a file-backed
 *    unmap writes zeros — but only over chunks that are not already zero, so never-written holes
 *    stay holes and a discard of an empty volume allocates nothing.
 * Identity: a NAA-6 (IEEE Registered Extended) identifier derived from the array's OUI and the
 * array + volume names, so it is stable across restarts.
 *
 * Backing files are hostile ground: whoever names one (the control socket) may not be the host's
 * administrator. With a data directory, a file must lie inside it (real path, no '..', the last
 * component opened with O_NOFOLLOW); an existing file is used only when the caller says 'adopt';
 * and every open file is locked (flock LOCK_EX|LOCK_NB) so two SANs never write one image.
 * Next to a file volume live its saved state: `<file>.pr.json` (reservations with APTPL) and
 * `<file>.settings.json` (saved mode parameters: the write cache setting).
 */
import { createHash } from 'node:crypto';
import {
  constants as fsc,
  ftruncateSync,
  mkdirSync,
  promises as fsp,
  readSync,
  realpathSync,
  statSync,
  writeSync,
} from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { native } from '../native/index.js';
import { tryLockExclusive } from '../native/lock.js';
import { isAllZero } from '../scsi/zero.js';
import { TaskAbortedError, type IoOptions } from '../scsi/block-device.js';

export type BlockSize = 512 | 4096;
export const SUPPORTED_BLOCK_SIZES: readonly BlockSize[] = [512, 4096];

// ---- sizes ------------------------------------------------------------------------------------
const SIZE_UNITS: Record<string, number> = {
  '': 1,
  B: 1,
  K: 2 ** 10,
  KB: 2 ** 10,
  KIB: 2 ** 10,
  M: 2 ** 20,
  MB: 2 ** 20,
  MIB: 2 ** 20,
  G: 2 ** 30,
  GB: 2 ** 30,
  GIB: 2 ** 30,
  T: 2 ** 40,
  TB: 2 ** 40,
  TIB: 2 ** 40,
};

/** "1GiB", "512MiB", "4096", 4096 → bytes (binary units; KB/MB/GB are taken as KiB/MiB/GiB). */
export function parseSize(size: string | number): number {
  if (typeof size === 'number') {
    if (!Number.isSafeInteger(size) || size < 0)
      throw new Error(`invalid size ${size}: expected a non-negative integer byte count`);
    return size;
  }
  const m = /^\s*(\d+)\s*([a-zA-Z]*)\s*$/.exec(size);
  const unit = m ? SIZE_UNITS[m[2]!.toUpperCase()] : undefined;
  if (!m || unit === undefined) throw new Error(`invalid size '${size}': expected e.g. 1GiB, 512MiB or 4096`);
  const bytes = Number(m[1]) * unit;
  if (!Number.isSafeInteger(bytes)) throw new Error(`invalid size '${size}': too large`);
  return bytes;
}

// ---- NAA-6 identifier -------------------------------------------------------------------------
//   NAA(4 bits)=6 | IEEE COMPANY_ID (24) | VENDOR SPECIFIC IDENTIFIER (36) | VENDOR SPECIFIC ID EXTENSION (64)
export const NAA6_LENGTH = 16;
/** Used when no OUI can be taken from the array's node name. */
export const FALLBACK_OUI = 0x001438;

/** The IEEE OUI inside a WWN: NAA 5 carries it in bits 59..36, NAA 1/2 in bits 47..24. */
export function ouiFromWwn(wwn: bigint): number | null {
  const naa = Number(wwn >> 60n);
  if (naa === 5 || naa === 6) return Number((wwn >> 36n) & 0xffffffn);
  if (naa === 1 || naa === 2) return Number((wwn >> 24n) & 0xffffffn);
  return null;
}

export function deriveNaa6(oui: number, arrayName: string, volumeName: string): Uint8Array {
  const digest = createHash('sha256').update(`npiv-hba volume\0${arrayName}\0${volumeName}`).digest();
  const out = new Uint8Array(NAA6_LENGTH);
  out[0] = 0x60 | ((oui >> 20) & 0x0f);
  out[1] = (oui >> 12) & 0xff;
  out[2] = (oui >> 4) & 0xff;
  out[3] = ((oui & 0x0f) << 4) | (digest[0]! & 0x0f);
  out.set(digest.subarray(1, 13), 4);
  return out;
}

// ---- LBA range lock ---------------------------------------------------------------------------
interface RangeHold {
  start: number;
  end: number;
  exclusive: boolean;
  done: Promise<void>;
  release: () => void;
}

/**
 * Orders overlapping operations by arrival: an operation waits for every earlier one whose range
 * overlaps and of which at least one is exclusive. Non-overlapping operations run concurrently.
 */
export class RangeLock {
  private readonly holds = new Set<RangeHold>();

  async acquire(start: number, end: number, exclusive: boolean): Promise<() => void> {
    const waitFor: Promise<void>[] = [];
    for (const h of this.holds) {
      if (h.start < end && start < h.end && (exclusive || h.exclusive)) waitFor.push(h.done);
    }
    let release!: () => void;
    const done = new Promise<void>((resolve) => {
      release = resolve;
    });
    const hold: RangeHold = { start, end, exclusive, done, release };
    this.holds.add(hold);
    await Promise.all(waitFor);
    return () => {
      this.holds.delete(hold);
      hold.release();
    };
  }
}

// ---- backing stores ---------------------------------------------------------------------------
export interface BackingStore {
  readonly kind: 'file' | 'memory';
  /** The open descriptor of the store (for data-path grants); throws once closed. */
  readonly fd: number;
  /** Reads exactly length bytes (zeros beyond what was ever written). */
  read(offset: number, length: number): Promise<Uint8Array>;
  /** Resolves once every byte is in the backing store. */
  write(offset: number, data: Uint8Array): Promise<void>;
  /** Makes [offset, offset+length) read as zeros, deallocating where the store can. */
  zero(offset: number, length: number): Promise<void>;
  /** Resolves once all completed writes are durable. */
  flush(): Promise<void>;
  resize(bytes: number): Promise<void>;
  close(): Promise<void>;
}

/** Capacity of every open memory volume in this process (what initiators could make it allocate). */
let memoryCapacity = 0;
export function memoryVolumesCapacity(): number {
  return memoryCapacity;
}

/**
 * Checks that memory volumes of `extraBytes` more capacity fit this host: beyond os.totalmem()
 * initiators writing them would exhaust it. Returns a warning (more than free memory now) or null;
 * throws when refusing, or — with policy 'warn' — returns the warning instead.
 */
export function checkMemoryCapacity(volume: string, extraBytes: number, policy: 'refuse' | 'warn'): string | null {
  const total = memoryCapacity + extraBytes;
  const hostTotal = os.totalmem();
  if (total > hostTotal) {
    const msg =
      `RAM volume '${volume}': memory volumes would total ${formatBytes(total)}, more than this host's ${formatBytes(hostTotal)} of memory; ` +
      'give the volume a backing file (file=... in the data directory) or a smaller size';
    if (policy === 'refuse') throw new Error(msg);
    return msg;
  }
  const free = os.freemem();
  if (total > free)
    return `RAM volume '${volume}': memory volumes total ${formatBytes(total)}, more than the ${formatBytes(free)} free now; filling them may exhaust the host's memory`;
  return null;
}

function formatBytes(n: number): string {
  const units = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${n} bytes` : `${v.toFixed(v < 10 ? 1 : 0)} ${units[u]!}`;
}

/**
 * Sparse in-memory store: a memfd (anonymous shared memory) accessed with positional I/O. Pages
 * appear on first write and go again when a range is zeroed (hole punching), so an untouched
 * volume costs nothing. Being a file descriptor, it can be handed to an HBA for a data-path grant
 * (src/san/data-path.ts) the same way a file volume's descriptor is.
 */
export class MemoryBacking implements BackingStore {
  readonly kind = 'memory' as const;
  /** Granularity of the sparseness that callers may rely on (a multiple of the page size). */
  static readonly CHUNK = 64 * 1024;
  private fdOrNull: number | null;
  private size: number;

  constructor(bytes: number, name = 'npiv-hba volume') {
    this.fdOrNull = native.memfdCreate(name, bytes, true);
    this.size = bytes;
    memoryCapacity += bytes;
  }

  /** The memfd (for data-path grants); throws once closed. */
  get fd(): number {
    if (this.fdOrNull === null) throw new Error('memory volume is closed');
    return this.fdOrNull;
  }

  /** Bytes of memory the volume really holds (to show that unmap deallocates). */
  get allocatedBytes(): number {
    return native.fdAllocatedBytes(this.fd);
  }

  async read(offset: number, length: number): Promise<Uint8Array> {
    const out = new Uint8Array(length);
    let done = 0;
    while (done < length) {
      const n = readSync(this.fd, out, done, length - done, offset + done);
      if (n === 0) break; // past the end (a resize raced): the rest stays zero
      done += n;
    }
    return out;
  }

  async write(offset: number, data: Uint8Array): Promise<void> {
    let done = 0;
    while (done < data.length) {
      const n = writeSync(this.fd, data, done, data.length - done, offset + done);
      if (n <= 0) throw new Error(`short write to a memory volume at offset ${offset + done}`);
      done += n;
    }
  }

  async zero(offset: number, length: number): Promise<void> {
    native.punchHole(this.fd, offset, length);
  }

  async flush(): Promise<void> {
    /* memory is the store */
  }

  async resize(bytes: number): Promise<void> {
    ftruncateSync(this.fd, bytes);
    if (this.fdOrNull !== null) memoryCapacity += bytes - this.size;
    this.size = bytes;
  }

  async close(): Promise<void> {
    const fd = this.fdOrNull;
    if (fd === null) return;
    this.fdOrNull = null;
    memoryCapacity -= this.size;
    native.close(fd);
  }
}

/** Sparse file accessed with positional reads/writes; flush is fdatasync(2). */
export class FileBacking implements BackingStore {
  readonly kind = 'file' as const;
  /** Granularity of the zero-check done by zero(): large enough to be cheap, small enough to keep holes. */
  static readonly ZERO_CHUNK = 1024 * 1024;

  private constructor(
    readonly file: string,
    private fh: import('node:fs/promises').FileHandle | null,
  ) {}

  /**
   * Opens a backing file of exactly `bytes` bytes, locked (flock LOCK_EX|LOCK_NB) for as long as it
   * is open. A missing file is created (mode 0600, sparse). An existing one is used only with
   * existing 'adopt' — and then extended sparsely if smaller; a larger one is refused, since
   * shrinking would destroy data. With noFollow the last path component must not be a symlink.
   */
  static async open(
    file: string,
    bytes: number,
    opts: { existing?: ExistingFilePolicy; noFollow?: boolean } = {},
  ): Promise<FileBacking> {
    const existing = opts.existing ?? 'adopt';
    const nofollow = opts.noFollow ? fsc.O_NOFOLLOW : 0;
    let fh: import('node:fs/promises').FileHandle;
    let created = false;
    const createNew = async (): Promise<import('node:fs/promises').FileHandle> => {
      const h = await fsp.open(file, fsc.O_RDWR | fsc.O_CREAT | fsc.O_EXCL | nofollow, 0o600);
      created = true;
      return h;
    };
    try {
      if (existing === 'create') {
        fh = await createNew();
      } else {
        try {
          fh = await fsp.open(file, fsc.O_RDWR | nofollow);
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
          fh = await createNew();
        }
      }
    } catch (e) {
      throw backingOpenError(file, e as NodeJS.ErrnoException);
    }
    try {
      const st = await fh.stat();
      if (!st.isFile())
        throw new Error(
          `backing file '${file}' is not a regular file; a volume needs a regular file (or no file: a RAM volume)`,
        );
      if (!tryLockExclusive(fh.fd)) {
        throw new Error(
          `backing file '${file}' is locked by another process (another \`npiv-hba san\` using this image?); stop it, or give this volume another file`,
        );
      }
      if (st.size > bytes) {
        throw new Error(
          `backing file '${file}' holds ${st.size} bytes, more than the configured ${bytes}; refusing to shrink it (data would be lost)`,
        );
      }
      if (st.size < bytes) await fh.truncate(bytes);
    } catch (e) {
      await fh.close();
      if (created) await fsp.rm(file, { force: true });
      throw e;
    }
    return new FileBacking(file, fh);
  }

  get fd(): number {
    return this.handle().fd;
  }

  private handle(): import('node:fs/promises').FileHandle {
    if (!this.fh) throw new Error(`backing file '${this.file}' is closed`);
    return this.fh;
  }

  async read(offset: number, length: number): Promise<Uint8Array> {
    const fh = this.handle();
    const out = new Uint8Array(length);
    let done = 0;
    while (done < length) {
      const { bytesRead } = await fh.read(out, done, length - done, offset + done);
      if (bytesRead === 0) break; // past EOF: the rest stays zero
      done += bytesRead;
    }
    return out;
  }

  async write(offset: number, data: Uint8Array): Promise<void> {
    const fh = this.handle();
    let done = 0;
    while (done < data.length) {
      const { bytesWritten } = await fh.write(data, done, data.length - done, offset + done);
      if (bytesWritten <= 0) throw new Error(`short write to '${this.file}' at offset ${offset + done}`);
      done += bytesWritten;
    }
  }

  async zero(offset: number, length: number): Promise<void> {
    // Node cannot punch holes (no fallocate); write zeros only where data is not already zero.
    let zeros: Uint8Array | null = null;
    for (let pos = 0; pos < length; pos += FileBacking.ZERO_CHUNK) {
      const n = Math.min(FileBacking.ZERO_CHUNK, length - pos);
      const current = await this.read(offset + pos, n);
      if (isAllZero(current)) continue;
      zeros ??= new Uint8Array(FileBacking.ZERO_CHUNK);
      await this.write(offset + pos, zeros.subarray(0, n));
    }
  }

  async flush(): Promise<void> {
    await this.handle().datasync();
  }

  async resize(bytes: number): Promise<void> {
    const fh = this.handle();
    await fh.truncate(bytes);
    await fh.sync();
  }

  async close(): Promise<void> {
    const fh = this.fh;
    if (!fh) return;
    this.fh = null;
    try {
      await fh.datasync();
    } finally {
      await fh.close();
    }
  }
}

function backingOpenError(file: string, e: NodeJS.ErrnoException): Error {
  switch (e.code) {
    case 'EEXIST':
      return new Error(
        `backing file '${file}' already exists; to use its contents as this volume say so explicitly (adopt=true on the control socket, "existing": "adopt" in the configuration), or choose a new file name`,
      );
    case 'ELOOP':
      return new Error(
        `backing file '${file}' is a symbolic link; volume files in the data directory must be regular files named directly`,
      );
    case 'ENOENT':
      return new Error(`backing file '${file}': its directory does not exist; create it first`);
    case 'EACCES':
    case 'EPERM':
      return new Error(
        `backing file '${file}': permission denied (${e.code}); the SAN's user must be able to read and write it`,
      );
    default:
      return new Error(`backing file '${file}': ${e.message}`);
  }
}

// ---- where backing files may live -----------------------------------------------------------
/** 'adopt': an existing file is used as the volume (grown to its size); 'create': it must be new. */
export type ExistingFilePolicy = 'adopt' | 'create';

/** Names of the files kept next to a volume file; no volume may use one as its own file. */
const SIDECAR_SUFFIXES = ['.pr.json', '.settings.json', '.tmp'];

/**
 * The data directory: created (0700) if absent, returned as its real path (symlinks resolved once,
 * here, by the administrator's choice).
 */
export function prepareDataDir(dir: string): string {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const real = realpathSync(dir);
  if (!statSync(real).isDirectory()) throw new Error(`data directory ${dir} is not a directory`);
  return real;
}

/**
 * Where the volume file `file` is inside the data directory `dataDir` (a real path, see
 * prepareDataDir): relative names are taken from it; absolute ones must already point into it.
 * Refused: '..' components, and any path whose directory resolves (through symlinks) outside it.
 * The last component is checked by O_NOFOLLOW when the file is opened.
 */
export function resolveInDataDir(dataDir: string, file: string): string {
  const hint = `volume files must be inside the data directory ${dataDir} (a name such as 'data.img' or 'sub/data.img')`;
  if (file.includes('\0')) throw new Error(`backing file name contains a NUL byte; ${hint}`);
  if (file.split(/[\\/]+/).includes('..')) throw new Error(`backing file '${file}' contains '..'; ${hint}`);
  const candidate = path.resolve(dataDir, file);
  const base = path.basename(candidate);
  if (base === '' || candidate === dataDir)
    throw new Error(`backing file '${file}' names the data directory itself; ${hint}`);
  if (SIDECAR_SUFFIXES.some((sfx) => base.endsWith(sfx))) {
    throw new Error(
      `backing file '${file}': names ending in ${SIDECAR_SUFFIXES.join(', ')} are reserved for the files kept next to volumes`,
    );
  }
  let parent: string;
  try {
    parent = realpathSync(path.dirname(candidate));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT')
      throw new Error(`backing file '${file}': directory ${path.dirname(candidate)} does not exist; ${hint}`);
    throw new Error(`backing file '${file}': ${(e as Error).message}`);
  }
  if (parent !== dataDir && !parent.startsWith(dataDir + path.sep))
    throw new Error(`backing file '${file}' is outside the data directory; ${hint}`);
  return path.join(parent, base);
}

/** Durable replacement of a small file next to a volume: temporary file, fdatasync, rename, directory fsync; never through a symlink. */
async function replaceFileDurably(file: string, text: string): Promise<void> {
  const tmp = `${file}.tmp`;
  await fsp.rm(tmp, { force: true });
  const fh = await fsp.open(tmp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, 0o600);
  try {
    await fh.writeFile(text);
    await fh.datasync();
  } finally {
    await fh.close();
  }
  await fsp.rename(tmp, file);
  await syncDirectory(path.dirname(file));
}

/** The contents of a small file next to a volume, or null when absent; never through a symlink. */
async function readSidecar(file: string): Promise<string | null> {
  let fh: import('node:fs/promises').FileHandle;
  try {
    fh = await fsp.open(file, fsc.O_RDONLY | fsc.O_NOFOLLOW);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
  try {
    // These files are a few hundred bytes; a huge one is not ours.
    if ((await fh.stat()).size > SIDECAR_MAX_BYTES)
      throw new Error(`${file} is larger than ${SIDECAR_MAX_BYTES} bytes; it is not a file this SAN wrote`);
    return await fh.readFile('utf8');
  } finally {
    await fh.close();
  }
}

const SIDECAR_MAX_BYTES = 1024 * 1024;

// ---- volume -----------------------------------------------------------------------------------
export interface VolumeSpec {
  name: string;
  /** Bytes or a size string ("1GiB"); must be a multiple of the block size. */
  size: string | number;
  /** Backing file; absent → memory backing. */
  file?: string;
  blockSize?: BlockSize;
  /**
   * Write cache at open when the volume has no saved setting (`<file>.settings.json`): reported in
   * the caching mode page; false → every write is followed by fdatasync.
   */
  writeCache?: boolean;
}

export interface VolumeOpenOptions {
  /** What to do when the backing file exists (default 'adopt'). */
  existing?: ExistingFilePolicy;
  /** Refuse a symlink as the backing file (set for files in a data directory). */
  noFollow?: boolean;
}

/** Saved mode parameters of a file volume, in `<file>.settings.json`. */
const SettingsSchemaVersion = 1;
interface SavedSettings {
  version: typeof SettingsSchemaVersion;
  writeCache: boolean;
}

export interface VolumeIdentity {
  arrayName: string;
  oui: number;
}

export class Volume {
  readonly naa: Uint8Array;
  readonly blockSize: BlockSize;
  private wce: boolean;
  private savedWce: boolean;
  private bytes: number;
  private readonly lock = new RangeLock();
  private closed = false;

  private constructor(
    readonly name: string,
    readonly backing: BackingStore,
    bytes: number,
    blockSize: BlockSize,
    writeCache: boolean,
    identity: VolumeIdentity,
    readonly file: string | null,
  ) {
    this.bytes = bytes;
    this.blockSize = blockSize;
    this.wce = writeCache;
    this.savedWce = writeCache;
    this.naa = deriveNaa6(identity.oui, identity.arrayName, name);
  }

  static async open(spec: VolumeSpec, identity: VolumeIdentity, opts: VolumeOpenOptions = {}): Promise<Volume> {
    // biome-ignore lint/suspicious/noControlCharactersInRegex: the pattern exists to refuse control characters
    if (!/^[^\x00-\x1f\x7f]{1,64}$/.test(spec.name))
      throw new Error(`invalid volume name ${JSON.stringify(spec.name)}: 1-64 characters, no control characters`);
    const blockSize = spec.blockSize ?? 512;
    if (!SUPPORTED_BLOCK_SIZES.includes(blockSize))
      throw new Error(`volume '${spec.name}': block size ${String(blockSize)} not supported (512 or 4096)`);
    const bytes = parseSize(spec.size);
    checkVolumeBytes(spec.name, bytes, blockSize);
    const file = spec.file === undefined ? null : path.resolve(spec.file);
    const backing =
      file === null
        ? new MemoryBacking(bytes, `npiv-hba volume ${spec.name}`)
        : await FileBacking.open(file, bytes, opts);
    let writeCache = spec.writeCache ?? true;
    try {
      // Power-on: the current mode parameters are the saved ones (SPC-4 §7.5.1).
      if (file !== null) writeCache = (await loadSettings(settingsFile(file)))?.writeCache ?? writeCache;
    } catch (e) {
      await backing.close();
      throw e;
    }
    return new Volume(spec.name, backing, bytes, blockSize, writeCache, identity, file);
  }

  get sizeBytes(): number {
    return this.bytes;
  }
  get writeCache(): boolean {
    return this.wce;
  }
  /** The write cache setting a restart comes back with (MODE SENSE saved values). */
  get savedWriteCache(): boolean {
    return this.savedWce;
  }
  /** Only file volumes can keep mode parameters across a restart (memory volumes keep nothing). */
  get savesModePages(): boolean {
    return this.file !== null;
  }

  /**
   * Turning the write cache off: later writes flush before completing (the flag is read after each
   * write lands, so writes already in flight flush too) and one flush covers everything before.
   * With save, the setting is also written durably next to the file, so a restart keeps it.
   */
  async setWriteCache(enabled: boolean, save = false): Promise<void> {
    this.checkOpen();
    if (save && this.file === null)
      throw new Error(`volume '${this.name}' is in memory and cannot save mode parameters`);
    const wasOn = this.wce;
    this.wce = enabled;
    if (wasOn && !enabled) await this.backing.flush();
    if (save && this.file !== null && this.savedWce !== enabled) {
      const settings: SavedSettings = { version: SettingsSchemaVersion, writeCache: enabled };
      await replaceFileDurably(settingsFile(this.file), JSON.stringify(settings) + '\n');
      this.savedWce = enabled;
    }
  }
  get blockCount(): number {
    return this.bytes / this.blockSize;
  }
  /** 32 hex digits of the NAA identifier: the unit serial number (VPD 80h). */
  get serial(): string {
    return Buffer.from(this.naa).toString('hex');
  }
  /** Memory volumes cannot keep reservations across a restart (they keep no data either). */
  get persistsReservations(): boolean {
    return this.file !== null;
  }
  /** Where persistent reservation state is kept when APTPL is set; null for memory volumes. */
  get prStateFile(): string | null {
    return this.file === null ? null : `${this.file}.pr.json`;
  }

  async readBlocks(lba: number, count: number, opts: IoOptions = {}): Promise<Uint8Array> {
    const [off, len] = this.range(lba, count);
    const release = await this.lock.acquire(off, off + len, false);
    try {
      checkNotAborted(opts);
      this.recheck(off, len);
      return await this.backing.read(off, len);
    } finally {
      release();
    }
  }

  /** Resolves after the data is in the backing store; with fua (or no write cache) after fdatasync too. */
  async writeBlocks(lba: number, data: Uint8Array, opts: IoOptions = {}): Promise<void> {
    if (data.length % this.blockSize !== 0)
      throw new Error(`write of ${data.length} bytes is not a whole number of ${this.blockSize}-byte blocks`);
    const [off, len] = this.range(lba, data.length / this.blockSize);
    const release = await this.lock.acquire(off, off + len, true);
    try {
      checkNotAborted(opts);
      this.recheck(off, len);
      await this.backing.write(off, data);
      if (opts.fua || !this.writeCache) await this.backing.flush();
    } finally {
      release();
    }
  }

  /** Deallocates (reads back zeros afterwards). */
  async unmapBlocks(lba: number, count: number, opts: IoOptions = {}): Promise<void> {
    const [off, len] = this.range(lba, count);
    const release = await this.lock.acquire(off, off + len, true);
    try {
      checkNotAborted(opts);
      this.recheck(off, len);
      await this.backing.zero(off, len);
      if (opts.fua || !this.writeCache) await this.backing.flush();
    } finally {
      release();
    }
  }

  /** Writes one block's pattern to count blocks, in bounded pieces. */
  async writeSameBlocks(lba: number, count: number, pattern: Uint8Array, opts: IoOptions = {}): Promise<void> {
    if (pattern.length !== this.blockSize)
      throw new Error(`WRITE SAME pattern must be one ${this.blockSize}-byte block`);
    const [off, len] = this.range(lba, count);
    const release = await this.lock.acquire(off, off + len, true);
    try {
      checkNotAborted(opts);
      this.recheck(off, len);
      const piece = Math.max(1, Math.floor(WRITE_SAME_PIECE_BYTES / this.blockSize)) * this.blockSize;
      const buf = new Uint8Array(Math.min(piece, len));
      for (let p = 0; p < buf.length; p += this.blockSize) buf.set(pattern, p);
      for (let done = 0; done < len; done += buf.length) {
        await this.backing.write(off + done, buf.subarray(0, Math.min(buf.length, len - done)));
      }
      if (opts.fua || !this.writeCache) await this.backing.flush();
    } finally {
      release();
    }
  }

  async flush(): Promise<void> {
    this.checkOpen();
    await this.backing.flush();
  }

  /** Changes the capacity. Shrinking destroys data past the new end and needs allowShrink. */
  async resize(size: string | number, opts: { allowShrink?: boolean } = {}): Promise<void> {
    this.checkOpen();
    const bytes = parseSize(size);
    checkVolumeBytes(this.name, bytes, this.blockSize);
    if (bytes < this.bytes && !opts.allowShrink) {
      throw new Error(
        `volume '${this.name}': shrinking from ${this.bytes} to ${bytes} bytes destroys data; pass allowShrink`,
      );
    }
    const release = await this.lock.acquire(0, Number.MAX_SAFE_INTEGER, true);
    try {
      await this.backing.resize(bytes);
      this.bytes = bytes;
    } finally {
      release();
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    const release = await this.lock.acquire(0, Number.MAX_SAFE_INTEGER, true);
    try {
      this.closed = true;
      await this.backing.close();
    } finally {
      release();
    }
  }

  /** Durable replacement of the persistent-reservation state file (null removes it). */
  async savePrState(json: string | null): Promise<void> {
    const file = this.prStateFile;
    if (file === null) return;
    if (json === null) {
      await fsp.rm(file, { force: true });
      await syncDirectory(path.dirname(file));
      return;
    }
    await replaceFileDurably(file, json);
  }

  async loadPrState(): Promise<string | null> {
    const file = this.prStateFile;
    if (file === null) return null;
    return readSidecar(file);
  }

  /** After waiting for the range: a resize or close may have happened meanwhile. */
  private recheck(off: number, len: number): void {
    this.checkOpen();
    if (off + len > this.bytes)
      throw new RangeError(`volume '${this.name}': bytes ${off}+${len} are past the end after a resize`);
  }

  private checkOpen(): void {
    if (this.closed) throw new Error(`volume '${this.name}' is closed`);
  }

  /** Byte range for an LBA range; callers (the SCSI layer) have range-checked, this is the last guard. */
  private range(lba: number, count: number): [number, number] {
    this.checkOpen();
    if (
      !Number.isSafeInteger(lba) ||
      !Number.isSafeInteger(count) ||
      lba < 0 ||
      count < 0 ||
      lba + count > this.blockCount
    ) {
      throw new RangeError(`volume '${this.name}': blocks ${lba}+${count} outside 0..${this.blockCount}`);
    }
    return [lba * this.blockSize, count * this.blockSize];
  }
}

function checkNotAborted(opts: IoOptions): void {
  if (opts.aborted?.()) throw new TaskAbortedError();
}

const WRITE_SAME_PIECE_BYTES = 1024 * 1024;

function checkVolumeBytes(name: string, bytes: number, blockSize: number): void {
  if (bytes <= 0 || bytes % blockSize !== 0) {
    throw new Error(`volume '${name}': size ${bytes} must be a positive multiple of the ${blockSize}-byte block size`);
  }
}

function settingsFile(file: string): string {
  return `${file}.settings.json`;
}

/** The saved settings of a file volume; null when none were saved. A damaged file is an error, not a silent default. */
async function loadSettings(file: string): Promise<SavedSettings | null> {
  const text = await readSidecar(file);
  if (text === null) return null;
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new Error(
      `saved volume settings ${file} are not valid JSON (${(e as Error).message}); fix or remove the file (the write cache then starts enabled)`,
    );
  }
  const o = v as Partial<SavedSettings> | null;
  if (typeof o !== 'object' || o === null || o.version !== SettingsSchemaVersion || typeof o.writeCache !== 'boolean') {
    throw new Error(
      `saved volume settings ${file} are not in the expected form {"version":1,"writeCache":true|false}; fix or remove the file (the write cache then starts enabled)`,
    );
  }
  return { version: o.version, writeCache: o.writeCache };
}

async function syncDirectory(dir: string): Promise<void> {
  const fh = await fsp.open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
