/**
 * Kernels for `npiv-hba compat`: which kernel a run boots, fetched and cached once, and the
 * initramfs that boots it with the prepared guest userland (busybox, fio, sg3-utils, multipath
 * tools, QLogic firmware from the forky rootfs) but that kernel's own modules.
 *
 *   debian:SUITE      Debian's `linux-image-amd64` of SUITE (bookworm, trixie, forky, sid, ...):
 *                     the versioned image package it depends on (and, from forky on, the
 *                     linux-binary-* and linux-modules-* packages that one splits into),
 *                     downloaded with apt from the archive the rootfs was built from.
 *   deb:A.deb[,B.deb] local kernel packages forming one kernel (image + modules).
 *   dir:DIR           a local build: a bzImage (DIR/bzImage, DIR/arch/x86/boot/bzImage or
 *                     DIR/boot/vmlinuz-*) and DIR/lib/modules/<release> from
 *                     `make modules_install INSTALL_MOD_PATH=DIR`.
 *
 * Cache (beside the guest environment, $NPIV_HBA_CACHE or /var/cache/npiv-hba):
 *   compat/apt/<suite>/               apt's lists for that suite (private state, no host changes)
 *   compat/debian-<suite>.json        which build of the suite is cached (read before any apt call)
 *   compat/kernels/<id>/              debs/, vmlinuz, modules/<name>.ko (decompressed), kernel.json
 *   compat/kernels/<id>/initramfs-<guest build>.cpio   prepared userland + this kernel's modules
 * A Debian suite is resolved and downloaded once; `refresh` asks the archive again.
 *
 * Modules are resolved from the kernel itself: the `depends=` field of each module's .modinfo
 * gives its dependencies (no depmod output needed, which kernel packages do not ship), and
 * modules.builtin says which are built in.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { gunzipSync } from 'node:zlib';
import { buildCpio, type CpioEntry } from '../harness/cpio.js';
import { guestEnvironment, type GuestEnvironment } from '../harness/guest.js';
import { stripCpioEntries } from './cpio-filter.js';

const run = promisify(execFile);

/**
 * What the guest's /init loads at boot (scripts/guest/init.sh reads usr/lib/modules/order), the
 * same targets as the prepared initramfs (scripts/guest/build-guest.sh), in this order: upper
 * SCSI drivers and device handlers before the HBA driver so they attach as LUNs appear.
 */
export const GUEST_MODULE_TARGETS = [
  'sd_mod',
  'sg',
  'scsi_dh_alua',
  'scsi_dh_emc',
  'scsi_dh_rdac',
  'scsi_dh_hp_sw',
  'dm_mod',
  'dm_multipath',
  'dm_round_robin',
  'dm_service_time',
  'dm_queue_length',
  'qla2xxx',
] as const;
/**
 * Loaded by /init before anything prints (usr/lib/modules/early): the virtio console carries the
 * script's lines apart from the kernel's console (src/harness/guest.ts). Built in from Debian
 * trixie on, a module in bookworm.
 */
export const EARLY_MODULE_TARGETS = ['virtio_pci', 'virtio_console'] as const;
/** Targets without which no scenario can run; the rest only narrow what can be tested. */
const REQUIRED_MODULES = new Set(['sd_mod', 'sg', 'qla2xxx']);
/** The HBA driver: never built in (its parameters are given at insmod time, per scenario). */
const HBA_DRIVER = 'qla2xxx';

const APT_TIMEOUT_MS = 15 * 60_000;
const TOOL_TIMEOUT_MS = 5 * 60_000;
const MAX_TOOL_OUTPUT = 256 * 1024 * 1024;
/** A module's dependency chain longer than this is a corrupt .modinfo, not a real kernel. */
const MAX_MODULE_DEPTH = 64;
/** Bumped when the layout of a cached kernel directory changes. */
const KERNEL_CACHE_VERSION = 3;

export type KernelSpec =
  | { kind: 'debian'; suite: string }
  | { kind: 'deb'; paths: string[] }
  | { kind: 'dir'; path: string };

export class KernelSpecError extends Error {}

/** `debian:SUITE`, `deb:PATH[,PATH...]` or `dir:DIR` (what --kernel-dir DIR becomes). */
export function parseKernelSpec(text: string): KernelSpec {
  const colon = text.indexOf(':');
  const kind = colon < 0 ? '' : text.slice(0, colon);
  const rest = colon < 0 ? '' : text.slice(colon + 1);
  if (kind === 'debian') {
    if (!/^[a-z][a-z0-9-]{1,30}$/.test(rest))
      throw new KernelSpecError(`invalid kernel '${text}': expected debian:SUITE, e.g. debian:bookworm`);
    return { kind: 'debian', suite: rest };
  }
  if (kind === 'deb') {
    const paths = rest.split(',').filter((p) => p !== '');
    if (paths.length === 0 || paths.some((p) => !p.endsWith('.deb')))
      throw new KernelSpecError(`invalid kernel '${text}': expected deb:FILE.deb[,FILE.deb...]`);
    return { kind: 'deb', paths: paths.map((p) => resolve(p)) };
  }
  if (kind === 'dir') {
    if (rest === '') throw new KernelSpecError(`invalid kernel '${text}': expected dir:DIRECTORY`);
    return { kind: 'dir', path: resolve(rest) };
  }
  throw new KernelSpecError(
    `invalid kernel '${text}': expected debian:SUITE (bookworm, trixie, forky, sid), deb:FILE.deb or --kernel-dir DIR`,
  );
}

export function kernelSpecLabel(spec: KernelSpec): string {
  if (spec.kind === 'debian') return `debian:${spec.suite}`;
  if (spec.kind === 'deb') return `deb:${spec.paths.map((p) => basename(p)).join(',')}`;
  return `dir:${spec.path}`;
}

/** A kernel ready to boot. */
export interface CompatKernel {
  /** What the user asked for (debian:bookworm, deb:..., dir:...). */
  label: string;
  /** `uname -r` of the kernel (the modules directory's name). */
  release: string;
  /** Debian package version (debian: and deb: kernels), e.g. 6.1.176-1. */
  packageVersion: string | null;
  /** The packages the kernel came from, name=version (debian: kernels). */
  packages: string[];
  /** Kernel image QEMU boots (bzImage). */
  image: string;
  /** Prepared userland + this kernel's modules. */
  initramfs: string;
  /** Modules /init loads, in order. */
  modules: string[];
  /** Targets this kernel does not have as a module or built in (scenarios needing them skip). */
  missingModules: string[];
  /** Targets built into the kernel. */
  builtinModules: string[];
}

/** Written in a cached kernel directory once everything in it is complete. */
interface KernelRecord {
  version: number;
  release: string;
  /** Loaded before the script port opens (usr/lib/modules/early). */
  earlyModules: string[];
  packageVersion: string | null;
  packages: string[];
  modules: string[];
  missingModules: string[];
  builtinModules: string[];
}

export interface PrepareKernelOptions {
  cacheDir?: string;
  /** Ask the archive again for a debian: suite even when a build is cached. */
  refresh?: boolean;
  /** Progress messages (downloads, extraction). */
  log?: (message: string) => void;
  signal?: AbortSignal;
}

/** Modules are named with '_' or '-' interchangeably; compare them in one form. */
export function moduleKey(name: string): string {
  return name.replaceAll('-', '_');
}

function moduleNameOf(file: string): string | null {
  const m = /^(.+)\.ko(\.xz|\.zst|\.gz)?$/.exec(file);
  return m?.[1] !== undefined ? moduleKey(m[1]) : null;
}

function modinfoValues(ko: Uint8Array, key: string): string[] {
  const text = Buffer.from(ko.buffer, ko.byteOffset, ko.byteLength).toString('latin1');
  const values: string[] = [];
  const tag = `\0${key}=`;
  for (let at = text.indexOf(tag); at >= 0 && values.length < 64; at = text.indexOf(tag, at + 1)) {
    const start = at + tag.length;
    const end = text.indexOf('\0', start);
    values.push(text.slice(start, end < 0 ? start : end));
  }
  return values;
}

/** The `depends=` list of a module's .modinfo (NUL-separated key=value strings). */
export function modinfoDepends(ko: Uint8Array): string[] {
  return (modinfoValues(ko, 'depends')[0] ?? '')
    .split(',')
    .map((d) => d.trim())
    .filter((d) => /^[A-Za-z0-9_-]+$/.test(d))
    .map(moduleKey);
}

/**
 * The `softdep=pre: ...` modules of a module's .modinfo: what modprobe loads first (e.g. the
 * crc-t10dif provider sd_mod's integrity code asks the crypto API for); loaded when present.
 */
export function modinfoSoftPre(ko: Uint8Array): string[] {
  const out: string[] = [];
  for (const value of modinfoValues(ko, 'softdep')) {
    let pre = false;
    for (const word of value.split(/\s+/)) {
      if (word === 'pre:') pre = true;
      else if (word === 'post:') pre = false;
      else if (pre && /^[A-Za-z0-9_-]+$/.test(word)) out.push(moduleKey(word));
    }
  }
  return out;
}

async function decompressModule(path: string): Promise<Buffer> {
  if (path.endsWith('.ko')) return readFile(path);
  if (path.endsWith('.ko.gz')) return gunzipSync(await readFile(path));
  const tool = path.endsWith('.ko.xz') ? 'xz' : path.endsWith('.ko.zst') ? 'zstd' : null;
  if (tool === null) throw new Error(`unsupported module file ${path}`);
  const { stdout } = await run(tool, ['-dc', path], {
    encoding: 'buffer',
    maxBuffer: MAX_TOOL_OUTPUT,
    timeout: TOOL_TIMEOUT_MS,
  });
  return stdout;
}

function walkModules(dir: string, found: Map<string, string>, depth = 0): void {
  if (depth > 16) return;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) walkModules(path, found, depth + 1);
    else if (entry.isFile()) {
      const name = moduleNameOf(entry.name);
      if (name !== null && !found.has(name)) found.set(name, path);
    }
  }
}

function builtinModules(moduleDir: string): Set<string> {
  const file = join(moduleDir, 'modules.builtin');
  const set = new Set<string>();
  if (!existsSync(file)) return set;
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const name = moduleNameOf(basename(line.trim()));
    if (name !== null) set.add(name);
  }
  return set;
}

/**
 * Resolves the targets' dependency closure from a kernel's module tree and writes the modules,
 * decompressed, to `outDir` as <name>.ko. Returns the load order (dependencies first) and the
 * targets that are built in or missing.
 */
export async function resolveModules(
  moduleDir: string,
  outDir: string,
  targets: readonly string[] = GUEST_MODULE_TARGETS,
  already: readonly string[] = [],
): Promise<{ order: string[]; builtin: string[]; missing: string[] }> {
  const files = new Map<string, string>();
  walkModules(join(moduleDir, 'kernel'), files);
  walkModules(moduleDir, files); // out-of-tree directories (extra/, updates/) of a local build
  const builtin = builtinModules(moduleDir);
  if (builtin.has(HBA_DRIVER))
    throw new Error(
      `${moduleDir}: qla2xxx is built into this kernel (CONFIG_SCSI_QLA_FC=y); compat loads it as a module with per-scenario parameters: build it as a module (=m)`,
    );
  const order: string[] = [];
  const builtinTargets: string[] = [];
  const missing: string[] = [];
  const loaded = new Map<string, Buffer>();
  await mkdir(outDir, { recursive: true });

  const visit = async (name: string, depth: number, chain: string[]): Promise<boolean> => {
    if (order.includes(name) || already.includes(name)) return true;
    if (depth > MAX_MODULE_DEPTH || chain.includes(name))
      throw new Error(`module dependency cycle or runaway chain: ${[...chain, name].join(' -> ')}`);
    const path = files.get(name);
    if (path === undefined) return builtin.has(name);
    let ko = loaded.get(name);
    if (ko === undefined) {
      ko = await decompressModule(path);
      loaded.set(name, ko);
    }
    for (const soft of modinfoSoftPre(ko)) {
      if (files.has(soft) && !chain.includes(soft)) await visit(soft, depth + 1, [...chain, name]);
    }
    for (const dep of modinfoDepends(ko)) {
      if (!(await visit(dep, depth + 1, [...chain, name])))
        throw new Error(`module ${name} depends on ${dep}, which this kernel has neither as a module nor built in`);
    }
    await writeFile(join(outDir, `${name}.ko`), ko);
    order.push(name);
    return true;
  };
  for (const target of targets) {
    const name = moduleKey(target);
    if (!files.has(name)) {
      if (builtin.has(name)) builtinTargets.push(name);
      else if (REQUIRED_MODULES.has(name))
        throw new Error(`${moduleDir}: module ${target} is missing (neither a module file nor in modules.builtin)`);
      else missing.push(name);
      continue;
    }
    await visit(name, 0, []);
  }
  return { order, builtin: builtinTargets, missing };
}

/** Finds lib/modules/<release> (or usr/lib/modules/<release>) with a kernel/ tree under root. */
function findModuleDir(root: string): { release: string; dir: string } {
  const candidates: { release: string; dir: string }[] = [];
  for (const base of ['lib/modules', 'usr/lib/modules']) {
    const parent = join(root, base);
    if (!existsSync(parent)) continue;
    for (const release of readdirSync(parent)) {
      const dir = join(parent, release);
      if (existsSync(join(dir, 'kernel'))) candidates.push({ release, dir });
    }
  }
  if (candidates.length === 0) throw new Error(`${root}: no lib/modules/<release>/kernel directory (modules missing)`);
  const releases = new Set(candidates.map((c) => c.release));
  if (releases.size > 1) throw new Error(`${root}: more than one kernel's modules (${[...releases].join(', ')})`);
  return candidates[0]!;
}

/** Finds the kernel image of `release` under root. */
function findImage(root: string, release: string): string {
  const candidates = [
    join(root, 'boot', `vmlinuz-${release}`),
    join(root, 'usr/lib/modules', release, 'vmlinuz'),
    join(root, 'lib/modules', release, 'vmlinuz'),
    join(root, 'bzImage'),
    join(root, 'arch/x86/boot/bzImage'),
    join(root, 'boot', 'bzImage'),
  ];
  for (const path of candidates) if (existsSync(path) && statSync(path).isFile()) return path;
  throw new Error(
    `${root}: no kernel image for ${release} (looked for ${candidates.map((c) => basename(c)).join(', ')})`,
  );
}

/** The archive the rootfs was built from (its apt sources), so no host name is configured here. */
function archiveUrl(environment: GuestEnvironment): string {
  const sources = join(environment.rootfs, 'etc/apt/sources.list');
  if (existsSync(sources)) {
    for (const line of readFileSync(sources, 'utf8').split('\n')) {
      const words = line.trim().split(/\s+/);
      if (words[0] !== 'deb') continue;
      const url = words.find((w, i) => i > 0 && /^https?:\/\//.test(w));
      if (url !== undefined) return url;
    }
  }
  throw new Error(`no Debian archive URL in ${sources}; rebuild the guest environment (scripts/guest/prepare.sh)`);
}

interface AptContext {
  dir: string;
  options: string[];
}

function aptContext(cacheDir: string, suite: string, environment: GuestEnvironment): AptContext {
  const dir = join(cacheDir, 'compat', 'apt', suite);
  // The rootfs's keyring is at least as new as the host's and verifies every current suite.
  const keyring = [
    join(environment.rootfs, 'usr/share/keyrings/debian-archive-keyring.gpg'),
    '/usr/share/keyrings/debian-archive-keyring.gpg',
  ].find((k) => existsSync(k));
  if (keyring === undefined) throw new Error('no debian-archive-keyring.gpg in the rootfs or on the host');
  return {
    dir,
    options: [
      '-o',
      `Dir::State=${join(dir, 'state')}`,
      '-o',
      'Dir::State::status=/dev/null',
      '-o',
      `Dir::Cache=${join(dir, 'cache')}`,
      '-o',
      `Dir::Etc::SourceList=${join(dir, 'sources.list')}`,
      '-o',
      'Dir::Etc::SourceParts=/dev/null',
      '-o',
      `Dir::Etc::Trusted=${keyring}`,
      '-o',
      'Dir::Etc::TrustedParts=/dev/null',
      // A frozen archive snapshot's Release files may be past Valid-Until.
      '-o',
      'Acquire::Check-Valid-Until=false',
      '-o',
      'Acquire::Languages=none',
      '-o',
      'APT::Architecture=amd64',
      '-o',
      'APT::Architectures=amd64',
      // Private state: no lock on the host's dpkg database is needed or taken.
      '-o',
      'Debug::NoLocking=1',
    ],
  };
}

async function apt(
  tool: 'apt-get' | 'apt-cache',
  ctx: AptContext,
  args: string[],
  cwd: string,
  signal?: AbortSignal,
): Promise<string> {
  try {
    const { stdout } = await run(tool, ['-q', ...ctx.options, ...args], {
      cwd,
      timeout: APT_TIMEOUT_MS,
      maxBuffer: MAX_TOOL_OUTPUT,
      ...(signal ? { signal } : {}),
    });
    return stdout;
  } catch (error) {
    const e = error as { stderr?: string; message: string };
    throw new Error(
      `${tool} ${args.join(' ')} failed: ${(e.stderr ?? e.message).trim().split('\n').slice(-5).join('\n')}`,
    );
  }
}

/** Fields of the first record of `apt-cache show` output. */
export function firstRecord(text: string): Map<string, string> {
  const fields = new Map<string, string>();
  let key = '';
  for (const line of text.split('\n')) {
    if (line === '') {
      if (fields.size > 0) break;
      continue;
    }
    if (/^\s/.test(line) && key !== '') {
      fields.set(key, `${fields.get(key) ?? ''}\n${line.trim()}`);
      continue;
    }
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    key = line.slice(0, colon);
    fields.set(key, line.slice(colon + 1).trim());
  }
  return fields;
}

/** Depends entries `name (= version)` whose name matches `pattern`. */
export function exactDepends(depends: string, pattern: RegExp): { name: string; version: string }[] {
  const out: { name: string; version: string }[] = [];
  for (const alternative of depends.split(',')) {
    const m = /^\s*([a-z0-9][a-z0-9.+-]*)\s*\(=\s*([^)\s]+)\s*\)\s*$/.exec(alternative);
    if (m?.[1] !== undefined && m[2] !== undefined && pattern.test(m[1])) out.push({ name: m[1], version: m[2] });
  }
  return out;
}

async function resolveDebianKernel(
  ctx: AptContext,
  suite: string,
  signal: AbortSignal | undefined,
): Promise<{ packages: { name: string; version: string }[]; packageVersion: string }> {
  const meta = firstRecord(await apt('apt-cache', ctx, ['show', 'linux-image-amd64'], ctx.dir, signal));
  const image = exactDepends(meta.get('Depends') ?? '', /^linux-image-.*-amd64$/)[0];
  if (image === undefined)
    throw new Error(`debian:${suite}: linux-image-amd64 ${meta.get('Version') ?? ''} names no versioned image package`);
  const record = firstRecord(await apt('apt-cache', ctx, ['show', `${image.name}=${image.version}`], ctx.dir, signal));
  // From forky on the image package is a meta package over linux-binary-* and linux-modules-*.
  const parts = exactDepends(record.get('Depends') ?? '', /^linux-(binary|modules)-.*-amd64$/);
  return { packages: [image, ...parts], packageVersion: image.version };
}

async function extractDebs(debs: readonly string[], root: string): Promise<void> {
  await mkdir(root, { recursive: true });
  for (const deb of debs) {
    try {
      await run('dpkg-deb', ['-x', deb, root], { timeout: TOOL_TIMEOUT_MS, maxBuffer: MAX_TOOL_OUTPUT });
    } catch (error) {
      const e = error as { stderr?: string; message: string };
      throw new Error(`dpkg-deb -x ${deb} failed: ${(e.stderr ?? e.message).trim()}`);
    }
  }
}

async function debVersion(deb: string): Promise<string> {
  const { stdout } = await run('dpkg-deb', ['-f', deb, 'Package', 'Version'], { timeout: TOOL_TIMEOUT_MS });
  const fields = firstRecord(stdout);
  return `${fields.get('Package') ?? basename(deb)}=${fields.get('Version') ?? '?'}`;
}

/**
 * Builds a kernel directory `out` from an unpacked tree: vmlinuz, modules/, kernel.json. Writes
 * into a sibling temporary directory and renames, so a cached directory is always complete.
 */
async function buildKernelDir(
  tree: string,
  out: string,
  meta: { packageVersion: string | null; packages: string[] },
): Promise<void> {
  const { release, dir } = findModuleDir(tree);
  const image = findImage(tree, release);
  const work = `${out}.build-${process.pid}`;
  await rm(work, { recursive: true, force: true });
  await mkdir(work, { recursive: true });
  await copyFile(image, join(work, 'vmlinuz'));
  // A target built in or absent needs nothing early (an absent console: /init prints to the serial one).
  const early = await resolveModules(dir, join(work, 'modules'), EARLY_MODULE_TARGETS);
  const modules = await resolveModules(dir, join(work, 'modules'), GUEST_MODULE_TARGETS, early.order);
  const record: KernelRecord = {
    version: KERNEL_CACHE_VERSION,
    release,
    earlyModules: early.order,
    packageVersion: meta.packageVersion,
    packages: meta.packages,
    modules: modules.order,
    missingModules: modules.missing,
    builtinModules: modules.builtin,
  };
  await writeFile(join(work, 'kernel.json'), `${JSON.stringify(record, null, 2)}\n`);
  // Keep downloaded packages (debs/) across a rebuild of the directory.
  if (existsSync(join(out, 'debs')) && !existsSync(join(work, 'debs')))
    await rename(join(out, 'debs'), join(work, 'debs'));
  await rm(out, { recursive: true, force: true });
  await rename(work, out);
}

function readRecord(dir: string): KernelRecord | null {
  const file = join(dir, 'kernel.json');
  if (!existsSync(file) || !existsSync(join(dir, 'vmlinuz'))) return null;
  try {
    const record = JSON.parse(readFileSync(file, 'utf8')) as KernelRecord;
    return record.version === KERNEL_CACHE_VERSION ? record : null;
  } catch {
    return null;
  }
}

/**
 * The initramfs for a kernel directory: the prepared initramfs (userland + firmware) without its
 * own kernel's modules, plus this kernel's modules and load order. Cached per prepared guest build.
 */
async function kernelInitramfs(
  kernelDir: string,
  record: KernelRecord,
  environment: GuestEnvironment,
): Promise<string> {
  const guestBuild = basename(dirname(environment.initramfs));
  const path = join(kernelDir, `initramfs-${guestBuild}.cpio`);
  if (existsSync(path)) return path;
  const base = await readFile(environment.initramfs);
  // The prepared archive's modules are the forky kernel's: drop them and the order file.
  const userland = stripCpioEntries(base, (name) => /^usr\/lib\/modules\/[^/]+$/.test(name));
  const entries: CpioEntry[] = [];
  for (const name of [...record.earlyModules, ...record.modules]) {
    entries.push({
      type: 'file',
      path: `usr/lib/modules/${name}.ko`,
      data: await readFile(join(kernelDir, 'modules', `${name}.ko`)),
      mode: 0o644,
    });
  }
  entries.push({
    type: 'file',
    path: 'usr/lib/modules/order',
    data: new TextEncoder().encode(record.modules.map((m) => `${m}\n`).join('')),
    mode: 0o644,
  });
  if (record.earlyModules.length > 0)
    entries.push({
      type: 'file',
      path: 'usr/lib/modules/early',
      data: new TextEncoder().encode(record.earlyModules.map((m) => `${m}\n`).join('')),
      mode: 0o644,
    });
  const tmp = `${path}.tmp-${process.pid}`;
  await writeFile(tmp, Buffer.concat([userland, buildCpio(entries)]));
  await rename(tmp, path);
  return path;
}

function toKernel(label: string, dir: string, record: KernelRecord, initramfs: string): CompatKernel {
  return {
    label,
    release: record.release,
    packageVersion: record.packageVersion,
    packages: record.packages,
    image: join(dir, 'vmlinuz'),
    initramfs,
    modules: record.modules,
    missingModules: record.missingModules,
    builtinModules: record.builtinModules,
  };
}

/** Fetches (once), unpacks and prepares a kernel for the compat runs. */
export async function prepareKernel(spec: KernelSpec, options: PrepareKernelOptions = {}): Promise<CompatKernel> {
  const environment = guestEnvironment(options.cacheDir);
  const cacheDir = environment.cacheDir;
  const log = options.log ?? (() => {});
  const label = kernelSpecLabel(spec);
  const kernelsDir = join(cacheDir, 'compat', 'kernels');
  await mkdir(kernelsDir, { recursive: true });

  if (spec.kind === 'debian') {
    const pointer = join(cacheDir, 'compat', `debian-${spec.suite}.json`);
    if (options.refresh !== true && existsSync(pointer)) {
      const id = (JSON.parse(readFileSync(pointer, 'utf8')) as { id?: string }).id ?? '';
      const dir = join(kernelsDir, id);
      const record = id !== '' ? readRecord(dir) : null;
      if (record !== null) return toKernel(label, dir, record, await kernelInitramfs(dir, record, environment));
    }
    const ctx = aptContext(cacheDir, spec.suite, environment);
    await mkdir(join(ctx.dir, 'state', 'lists', 'partial'), { recursive: true });
    await mkdir(join(ctx.dir, 'cache', 'archives', 'partial'), { recursive: true });
    await writeFile(join(ctx.dir, 'sources.list'), `deb ${archiveUrl(environment)} ${spec.suite} main\n`);
    log(`${label}: reading the ${spec.suite} package index`);
    await apt('apt-get', ctx, ['update'], ctx.dir, options.signal);
    const { packages, packageVersion } = await resolveDebianKernel(ctx, spec.suite, options.signal);
    const id = `debian-${spec.suite}-${packageVersion.replace(/[^A-Za-z0-9.+-]/g, '_')}`;
    const dir = join(kernelsDir, id);
    let record = readRecord(dir);
    if (record === null) {
      const debs = join(dir, 'debs');
      await mkdir(debs, { recursive: true });
      const wanted = packages.map((p) => `${p.name}=${p.version}`);
      const have = readdirSync(debs).filter((f) => f.endsWith('.deb'));
      if (!packages.every((p) => have.some((f) => f.startsWith(`${p.name}_`)))) {
        log(`${label}: downloading ${wanted.join(' ')}`);
        await apt('apt-get', ctx, ['download', ...wanted], debs, options.signal);
      }
      const tree = await mkdtemp(join(kernelsDir, '.unpack-'));
      try {
        log(`${label}: unpacking ${packageVersion} and resolving its modules`);
        await extractDebs(
          readdirSync(debs)
            .filter((f) => f.endsWith('.deb'))
            .map((f) => join(debs, f)),
          tree,
        );
        await buildKernelDir(tree, dir, { packageVersion, packages: wanted });
      } finally {
        await rm(tree, { recursive: true, force: true });
      }
      record = readRecord(dir);
      if (record === null) throw new Error(`${dir}: kernel directory incomplete after the build`);
    }
    await writeFile(pointer, `${JSON.stringify({ id, packageVersion, suite: spec.suite }, null, 2)}\n`);
    return toKernel(label, dir, record, await kernelInitramfs(dir, record, environment));
  }

  // Local kernels: the cache key hashes the inputs' paths, sizes and times, so a rebuilt kernel
  // tree or a new .deb gets a fresh directory.
  const inputs = spec.kind === 'deb' ? spec.paths : [spec.path];
  const hash = createHash('sha256');
  for (const input of inputs) {
    if (!existsSync(input)) throw new Error(`${label}: ${input} does not exist`);
    const st = statSync(input);
    hash.update(`${input}\0${st.size}\0${st.mtimeMs}\0`);
  }
  if (spec.kind === 'dir') {
    const { dir: moduleDir } = findModuleDir(spec.path);
    for (const name of ['modules.builtin', 'modules.order', 'kernel/drivers/scsi/qla2xxx']) {
      const p = join(moduleDir, name);
      if (existsSync(p)) hash.update(`${statSync(p).mtimeMs}\0`);
    }
    hash.update(`${statSync(findImage(spec.path, findModuleDir(spec.path).release)).mtimeMs}`);
  }
  const id = `${spec.kind}-${hash.digest('hex').slice(0, 16)}`;
  const dir = join(kernelsDir, id);
  let record = readRecord(dir);
  if (record === null) {
    if (spec.kind === 'deb') {
      const tree = await mkdtemp(join(kernelsDir, '.unpack-'));
      try {
        log(`${label}: unpacking`);
        await extractDebs(spec.paths, tree);
        const packages = await Promise.all(spec.paths.map(debVersion));
        const image = packages.find((p) => /^linux-image-/.test(p)) ?? packages[0]!;
        await buildKernelDir(tree, dir, { packageVersion: image.split('=')[1] ?? null, packages });
      } finally {
        await rm(tree, { recursive: true, force: true });
      }
    } else {
      log(`${label}: resolving modules`);
      await buildKernelDir(spec.path, dir, { packageVersion: null, packages: [] });
    }
    record = readRecord(dir);
    if (record === null) throw new Error(`${dir}: kernel directory incomplete after the build`);
  }
  return toKernel(label, dir, record, await kernelInitramfs(dir, record, environment));
}
