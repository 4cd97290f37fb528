/**
 * Real-guest harness: boots the Debian forky kernel (7.2, stock qla2xxx 10.02.x) under the
 * rootfs's QEMU 11.1 (which has the vfio-user-pci client), attaches the project's emulated
 * HBAs over vfio-user sockets, runs a shell script in a busybox initramfs and returns the
 * serial log. Environment built once by `bash scripts/guest/prepare.sh` (cache directory
 * $NPIV_HBA_CACHE, default /var/cache/npiv-hba).
 *
 * Typical use in a test under test/guest/:
 *
 *   import { runGuest, haveGuestEnvironment } from '../../src/harness/guest.js';
 *   // start the device server first; QEMU connects once, at startup, and never reconnects
 *   const run = await runGuest({
 *     devices: ['/tmp/x/vport0.sock'],
 *     qlaParams: { ql2xextended_error_logging: '0x40000000' },
 *     script: 'wait_for /sys/class/fc_host/host0 30 || exit 3\ncat /sys/class/fc_host/host0/port_name\nexit 0',
 *     timeoutMs: 180_000,
 *   });
 *   expect(run.timedOut).toBe(false);
 *   expect(run.exitStatus).toBe(0);
 *
 * What the guest does (scripts/guest/init.sh): mounts proc/sys/devtmpfs/devpts and tmpfs on
 * /run, /tmp; insmods sd_mod, sg, scsi_dh_*, dm-mod, dm-multipath (+ path selectors), the
 * FC/NVMe-FC transport and qla2xxx (with `qlaParams`); prints one `GUEST:PCI <bdf>
 * <vendor>:<device> subsys=.. class=.. irq=.. driver=..` line per PCI function; then runs the
 * script with busybox sh (`/test.sh`) and prints `GUEST:EXIT=<its status>` and powers off.
 * The script runs as root with stdout/stderr on a virtio console (hvc0, read from a file), which
 * carries nothing else: kernel messages go to the console (ttyS0), so a printk can never land
 * inside a script line. `output` holds both streams, line by line, in arrival order. Available in the guest:
 * busybox, all sg3-utils tools (sg_inq, sg_readcap, sg_luns, sg_turs, ...), lsscsi, lspci,
 * fio, multipath/multipathd/kpartx/mpathpersist (DM_DISABLE_UDEV=1; there is no udev daemon,
 * so multipathd sees no uevents: run `multipath` or `multipathd reconfigure` after LUNs appear),
 * modules as /lib/modules/<name>.ko, and shell helpers from /lib/guest-functions.sh:
 *   load_qla [param=value ...]   insmod qla2xxx (use with `loadQla: false`)
 *   wait_for PATH [SECONDS]      poll for a file (every 0.2 s), status 1 on timeout (default 30 s)
 *   wait_until SECONDS CMD...    poll until CMD succeeds, status 1 on timeout
 *   fc_host [N]                  print the Nth FC host's sysfs directory (default 0)
 *   wait_fc_online [N] [SECONDS] wait for that host's port_state to be Online
 *   enter_rootfs / in_rootfs CMD  mount the 9p-shared forky rootfs (`shareRootfs: true`) and
 *                                run a program of it by chroot, e.g. `in_rootfs node -v`
 * Lines the script wants the test to see structurally should start with `GUEST:`; they are
 * returned (tag removed) in `guestLines`; `dmesg: true` adds the whole kernel log there as
 * `DMESG <line>` entries, and `kernelProblems` lists console lines showing a panic, Oops, BUG or
 * WARNING (a hostile device must never cause one). The console (`output`) carries kernel
 * messages of KERN_WARNING and worse, which includes qla2xxx's debug lines when enabled with
 * ql2xextended_error_logging. Use `shellQuote()` to embed host strings in scripts. With
 * `firmware: false` the initramfs carries no ql2400/ql2500 firmware files, so qla2xxx loads
 * firmware from the adapter's flash. All options: RunGuestOptions below.
 *
 * Every run is wrapped in a hard timeout that kills QEMU (SIGTERM, then SIGKILL); a run never
 * throws because of what the guest does — inspect the result. Each device sits behind its own
 * pcie-root-port, so the first HBA appears in the guest at 0000:01:00.0, the second at
 * 0000:02:00.0, and so on. Guest RAM is a shared memfd so that DMA_MAP carries fds.
 * Accelerator: KVM only when kvm_intel or kvm_amd is loaded (a /dev/kvm from kvm_pvm cannot run
 * this kernel), otherwise multi-threaded TCG.
 */
import { closeSync, existsSync, openSync, readFileSync, readSync } from 'node:fs';
import { appendFile, copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import { buildCpio, normaliseArchivePath, type CpioEntry } from './cpio.js';
import { isKernelProblem } from './kernel-problems.js';
import { launchQemu } from './qemu-process.js';

/** Default cache directory, shared with scripts/guest/prepare.sh. */
export const DEFAULT_CACHE_DIR = '/var/cache/npiv-hba';
/** Name of the file prepare.sh writes last, describing the built environment. */
export const GUEST_ENV_FILE = 'guest-env.json';
/** 9p tag of the shared forky rootfs (RunGuestOptions.shareRootfs; enter_rootfs mounts it). */
const ROOTFS_SHARE_TAG = 'rootfs';
/** Tag that marks harness lines in the serial log. */
export const GUEST_TAG = 'GUEST:';

const DEFAULT_MEM_MIB = 512;
const DEFAULT_SMP = 2;
const DEFAULT_TIMEOUT_MS = 180_000;
const DEFAULT_SOCKET_WAIT_MS = 5_000;
const SOCKET_POLL_MS = 50;
/** Serial output kept in memory per run; the rest is counted but dropped. */
const MAX_OUTPUT_CHARS = 64 * 1024 * 1024;
const EXIT_LINE = /^GUEST:EXIT=(\d+)\s*$/;
/** Kernel command-line words the guest's /init understands (scripts/guest/init.sh). */
const CMDLINE_QLA_PARAMS = 'qla_params=';
const CMDLINE_QLA_SKIP = 'qla_skip';
const CMDLINE_DMESG = 'guest_dmesg';
/** Kernel command-line word naming the tty init and the script print to (scripts/guest/init.sh). */
const CMDLINE_SCRIPT_OUTPUT = 'guest_out';
/** A virtio console: init's and the script's output, kept apart from the kernel's console. */
const SCRIPT_TTY = '/dev/hvc0';
const SCRIPT_CHARDEV = 'guestout';
/** How often the harness reads what QEMU appended to the script port's file. */
const SCRIPT_POLL_MS = 25;
/** Console messages with a level below this reach the serial log (5 = up to KERN_WARNING). */
const CONSOLE_LOGLEVEL = 5;
/** Top-level initramfs names that are symlinks into /usr (merged /usr); see guestArchivePath. */
const MERGED_USR_LINKS = ['bin', 'sbin', 'lib', 'lib64'];

export interface GuestEnvironment {
  cacheDir: string;
  /** Extracted Debian forky rootfs (QEMU, kernel modules, tools). */
  rootfs: string;
  kernelRelease: string;
  /** Kernel image QEMU boots: the uncompressed vmlinux (PVH) when available, else vmlinuz. */
  kernel: string;
  vmlinuz: string;
  initramfs: string;
  initramfsNoFirmware: string;
  /** The rootfs's dynamic loader and library directory (QEMU runs through them). */
  loader: string;
  libraryDir: string;
  qemuBinary: string;
  /** Firmware/BIOS directories for QEMU's -L. */
  qemuDataDirs: string[];
  qemuModuleDir: string;
}

const SETUP_HINT = 'run `bash scripts/guest/prepare.sh` (as root) to build the guest environment';

function cacheDirectory(cacheDir?: string): string {
  return cacheDir ?? process.env.NPIV_HBA_CACHE ?? DEFAULT_CACHE_DIR;
}

function requireString(record: Record<string, unknown>, key: string, file: string): string {
  const value = record[key];
  if (typeof value !== 'string' || value === '') {
    throw new Error(`${file}: missing "${key}"; ${SETUP_HINT}`);
  }
  return value;
}

/**
 * Locates the cached rootfs, kernel and initramfs built by scripts/guest/prepare.sh.
 * Throws an Error that tells the user to run prepare.sh when anything is missing.
 */
export function guestEnvironment(cacheDir?: string): GuestEnvironment {
  const dir = cacheDirectory(cacheDir);
  const envFile = join(dir, GUEST_ENV_FILE);
  if (!existsSync(envFile)) {
    throw new Error(`no guest environment in ${dir} (${GUEST_ENV_FILE} not found); ${SETUP_HINT}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(envFile, 'utf8'));
  } catch (error) {
    throw new Error(`${envFile} is not valid JSON (${(error as Error).message}); ${SETUP_HINT}`);
  }
  if (typeof parsed !== 'object' || parsed === null) throw new Error(`${envFile}: not an object; ${SETUP_HINT}`);
  const record = parsed as Record<string, unknown>;
  const rootfs = requireString(record, 'rootfs', envFile);
  const vmlinuz = requireString(record, 'vmlinuz', envFile);
  const vmlinux = typeof record.vmlinux === 'string' ? record.vmlinux : null;
  const libraryDir = join(rootfs, 'usr/lib/x86_64-linux-gnu');
  const environment: GuestEnvironment = {
    cacheDir: dir,
    rootfs,
    kernelRelease: requireString(record, 'kernelRelease', envFile),
    kernel: vmlinux !== null && existsSync(vmlinux) ? vmlinux : vmlinuz,
    vmlinuz,
    initramfs: requireString(record, 'initramfs', envFile),
    initramfsNoFirmware: requireString(record, 'initramfsNoFirmware', envFile),
    loader: join(libraryDir, 'ld-linux-x86-64.so.2'),
    libraryDir,
    qemuBinary: join(rootfs, 'usr/bin/qemu-system-x86_64'),
    qemuDataDirs: [join(rootfs, 'usr/share/qemu'), join(rootfs, 'usr/share/seabios')],
    qemuModuleDir: join(libraryDir, 'qemu'),
  };
  for (const path of [
    environment.kernel,
    environment.initramfs,
    environment.initramfsNoFirmware,
    environment.loader,
    environment.qemuBinary,
  ]) {
    if (!existsSync(path)) throw new Error(`guest environment incomplete: ${path} is missing; ${SETUP_HINT}`);
  }
  return environment;
}

/** True when guestEnvironment() would succeed (use to skip real-guest tests). */
export function haveGuestEnvironment(cacheDir?: string): boolean {
  try {
    guestEnvironment(cacheDir);
    return true;
  } catch {
    return false;
  }
}

export type Accelerator = 'kvm' | 'tcg';

/**
 * KVM only on hosts with real VMX/SVM (kvm_intel / kvm_amd loaded): a /dev/kvm provided by
 * kvm_pvm emulates guest kernel code instruction by instruction and fails on this kernel.
 * NPIV_HBA_ACCEL=tcg|kvm overrides.
 */
export function chooseAccelerator(): Accelerator {
  const forced = process.env.NPIV_HBA_ACCEL;
  if (forced === 'kvm' || forced === 'tcg') return forced;
  const hardwareKvm = existsSync('/sys/module/kvm_intel') || existsSync('/sys/module/kvm_amd');
  return hardwareKvm && existsSync('/dev/kvm') ? 'kvm' : 'tcg';
}

/** One emulated HBA: the vfio-user socket of a running device server. */
export interface GuestDevice {
  socket: string;
  /** QEMU device id (default vport<N>). */
  id?: string;
  /** Extra vfio-user-pci properties merged into the JSON -device object. */
  properties?: Record<string, unknown>;
}

export interface GuestFile {
  /** Path inside the guest, e.g. "/etc/foo.conf" (bin/, sbin/, lib/ map into /usr). */
  path: string;
  data: string | Uint8Array;
  /** Permission bits, default 0o644. */
  mode?: number;
}

export interface RunGuestOptions {
  /** vfio-user sockets, one -device (behind its own pcie-root-port) each. Default none. */
  devices?: readonly (string | GuestDevice)[];
  /** Guest shell script (busybox sh), run as /test.sh; its exit status becomes exitStatus. */
  script?: string;
  /** More files to put into the guest's initramfs. */
  extraFiles?: readonly GuestFile[];
  /** qla2xxx module parameters for the load at boot. */
  qlaParams?: Readonly<Record<string, string | number | boolean>>;
  /** Load qla2xxx at boot (default true); false leaves it to the script (`load_qla ...`). */
  loadQla?: boolean;
  /** Include ql2400/ql2500 firmware files in the initramfs (default true). */
  firmware?: boolean;
  /** Print the whole kernel log as "GUEST:DMESG <line>" after the script (default false). */
  dmesg?: boolean;
  /** Guest RAM in MiB (default 512), always a shared memfd backend. */
  memMiB?: number;
  /** Virtual CPUs (default 2). */
  smp?: number;
  /** Hard limit for the whole run; QEMU is killed when it expires (default 180 s). */
  timeoutMs?: number;
  /** Extra kernel command-line words (e.g. ['loglevel=7']). */
  kernelArgs?: readonly string[];
  /** Extra QEMU arguments, appended last. */
  qemuArgs?: readonly string[];
  /**
   * Share the forky rootfs read-only over virtio-9p (tag "rootfs"), so the script can run the full
   * Debian system, Node.js included, with `enter_rootfs` and `in_rootfs CMD...`
   * (scripts/guest/guest-functions.sh). Default false.
   */
  shareRootfs?: boolean;
  /** Host directories shared over virtio-9p; `enter_rootfs` mounts each at /rootfs/run/share/<tag>. */
  shares?: readonly GuestShare[];
  /** Called with every serial line as it arrives (without the line terminator). */
  onLine?: (line: string) => void;
  /** Override the accelerator choice (chooseAccelerator()). */
  accel?: Accelerator;
  /** How long to wait for each device socket to appear before starting QEMU (default 5 s). */
  socketWaitMs?: number;
  /** Aborting kills QEMU like the timeout does (result.aborted = true). */
  signal?: AbortSignal;
  /** Cache directory override (default $NPIV_HBA_CACHE or /var/cache/npiv-hba). */
  cacheDir?: string;
  /**
   * Boot another kernel with its own initramfs (npiv-hba compat, src/compat/kernels.ts) instead of
   * the prepared environment's; QEMU and the rootfs stay the prepared ones. `firmware` is then
   * up to whoever built that initramfs.
   */
  kernel?: { image: string; initramfs: string };
  /**
   * Write the serial log, QEMU's stderr and command line to this file after the run. Without
   * it, $NPIV_HBA_GUEST_LOG_DIR (if set) gets one guest-<time>-<pid>-<n>.log per run.
   */
  logFile?: string;
}

export interface GuestShare {
  /** 9p mount tag: letters, digits, '-' and '_', at most 31 characters; "rootfs" is reserved. */
  tag: string;
  /** Host directory (no comma: QEMU's option syntax). */
  path: string;
  /** Default true: the guest cannot write to the host directory. */
  readOnly?: boolean;
}

export interface GuestRunResult {
  /** Status printed as GUEST:EXIT=<n> (the script's exit status); null if the guest never got there. */
  exitStatus: number | null;
  /** The whole serial log (kernel messages + script output), '\n'-separated. */
  output: string;
  /** Lines that started with GUEST:, with the tag removed (e.g. "EXIT=0", "PCI 0000:01:00.0 ..."). */
  guestLines: string[];
  qemuStderr: string;
  /** QEMU's exit code; null when it was killed by a signal. */
  qemuExitCode: number | null;
  qemuSignal: NodeJS.Signals | null;
  /**
   * Console lines showing a guest kernel panic, BUG, Oops, WARNING, lockup or stall (the
   * console gets KERN_WARNING and worse; `dmesg: true` puts the whole log into guestLines).
   */
  kernelProblems: string[];
  /** True when the hard timeout killed QEMU. */
  timedOut: boolean;
  aborted: boolean;
  /** True when output exceeded the in-memory limit and later lines were dropped. */
  outputTruncated: boolean;
  /** The QEMU command line that ran (loader, binary and arguments), for failure messages. */
  command: string[];
  accel: Accelerator;
}

/**
 * Maps a guest path to its archive name. bin, sbin, lib and lib64 are symlinks in the base
 * initramfs (merged /usr); an appended archive that created them as directories would make
 * the kernel replace the symlink and cut the guest off from its libraries.
 */
export function guestArchivePath(path: string): string {
  const normalised = normaliseArchivePath(path);
  const [first, ...rest] = normalised.split('/');
  if (first !== undefined && MERGED_USR_LINKS.includes(first)) {
    if (rest.length === 0) throw new Error(`cannot replace the guest's /${first} symlink`);
    return ['usr', first, ...rest].join('/');
  }
  return normalised;
}

/** Quotes a string for busybox sh: `echo ${shellQuote(text)}` prints text verbatim. */
/** A kernel console timestamp, "[   36.661339] ". */
const KERNEL_TIMESTAMP = /\[\s*\d+\.\d{6}\] /;

/**
 * When the guest script and the kernel share the serial console (lab --keep's guest, which has
 * no script port), a printk can land inside a line the script is writing: "GUEST:ISP_RESET1 0[   36.661339] qla2xxx …" or "[ 3.1] sd …GUEST:X 1".
 * Splits such a line back into its parts: a tagged line ends where a kernel timestamp starts
 * (except the one a "GUEST:DMESG" line quotes first), and a tag inside a line starts a new one.
 */
export function splitSerialLine(line: string): string[] {
  const tagAt = line.indexOf(GUEST_TAG, 1);
  if (tagAt > 0) return [line.slice(0, tagAt), ...splitSerialLine(line.slice(tagAt))].filter((p) => p.length > 0);
  if (!line.startsWith(GUEST_TAG)) return [line];
  const bodyStart = line.startsWith(`${GUEST_TAG}DMESG `)
    ? line.indexOf(']', GUEST_TAG.length) + 1 || GUEST_TAG.length
    : GUEST_TAG.length;
  const m = KERNEL_TIMESTAMP.exec(line.slice(bodyStart));
  if (!m) return [line];
  const at = bodyStart + m.index;
  return [line.slice(0, at), line.slice(at)];
}

export function shellQuote(text: string): string {
  return `'${text.replaceAll("'", `'\\''`)}'`;
}

/** Builds the run-time archive: /test.sh and extra files plus their parent directories. */
export function buildOverlayArchive(script: string | undefined, extraFiles: readonly GuestFile[]): Uint8Array {
  const encoder = new TextEncoder();
  const entries: CpioEntry[] = [];
  const directories = new Set<string>();
  const addFile = (path: string, data: Uint8Array, mode: number): void => {
    const name = guestArchivePath(path);
    const parts = name.split('/');
    for (let depth = 1; depth < parts.length; depth++) {
      const parent = parts.slice(0, depth).join('/');
      if (!directories.has(parent)) {
        directories.add(parent);
        entries.push({ type: 'dir', path: parent });
      }
    }
    entries.push({ type: 'file', path: name, data, mode });
  };
  if (script !== undefined) addFile('test.sh', encoder.encode(script), 0o755);
  for (const file of extraFiles) {
    const data = typeof file.data === 'string' ? encoder.encode(file.data) : file.data;
    addFile(file.path, data, file.mode ?? 0o644);
  }
  return buildCpio(entries);
}

function qlaParamWord(params: Readonly<Record<string, string | number | boolean>>): string | null {
  const words: string[] = [];
  for (const [name, value] of Object.entries(params)) {
    const text = typeof value === 'boolean' ? (value ? '1' : '0') : String(value);
    if (!/^[A-Za-z0-9_]+$/.test(name)) throw new Error(`invalid qla2xxx parameter name ${JSON.stringify(name)}`);
    if (!/^[A-Za-z0-9_.:+-]+$/.test(text)) {
      throw new Error(`qla2xxx parameter ${name}: value ${JSON.stringify(text)} cannot go on the kernel command line`);
    }
    words.push(`${name}=${text}`);
  }
  return words.length > 0 ? `${CMDLINE_QLA_PARAMS}${words.join(',')}` : null;
}

function positiveInteger(value: number, name: string): number {
  if (!Number.isInteger(value) || value <= 0)
    throw new Error(`runGuest: ${name} must be a positive integer, got ${value}`);
  return value;
}

async function waitForSockets(paths: readonly string[], waitMs: number): Promise<void> {
  const deadline = Date.now() + waitMs;
  for (const path of paths) {
    while (!existsSync(path) && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, SOCKET_POLL_MS));
    }
    // A missing socket is left for QEMU to report ("Failed to connect to ...") in qemuStderr.
  }
}

/**
 * Where the guest's output goes. runGuest: the console on stdio and init's and the script's
 * output on a virtio console written to `scriptOutputFile`. lab --keep: the console on stdio
 * multiplexed with the monitor (`consoleMonitor`: Ctrl-A X quits, Ctrl-A C reaches the monitor)
 * for the user's terminal, and the results on a second serial port written to
 * `resultsSerialFile`.
 */
export interface GuestOutputPorts {
  scriptOutputFile?: string;
  consoleMonitor?: boolean;
  resultsSerialFile?: string;
}

/** Builds the QEMU argument list (without the loader prefix). Exported for inspection in tests. */
export function qemuArguments(
  environment: GuestEnvironment,
  initrd: string,
  options: RunGuestOptions,
  accel: Accelerator,
  ports: GuestOutputPorts = {},
): string[] {
  const { scriptOutputFile, resultsSerialFile } = ports;
  const memMiB = positiveInteger(options.memMiB ?? DEFAULT_MEM_MIB, 'memMiB');
  const smp = positiveInteger(options.smp ?? DEFAULT_SMP, 'smp');
  // loglevel=5: the console shows KERN_WARNING and worse. That keeps boot quiet but includes
  // WARNING splats (for kernelProblems) and qla2xxx's ql_dbg output, which it prints at warning
  // level when enabled through ql2xextended_error_logging.
  // no_timer_check: under TCG on a loaded host the IO-APIC timer check can time out and panic the
  // guest ("IO-APIC + timer doesn't work"); VMs usually skip it.
  const cmdline = ['console=ttyS0', 'panic=-1', `loglevel=${CONSOLE_LOGLEVEL}`, 'no_timer_check'];
  const qlaWord = qlaParamWord(options.qlaParams ?? {});
  if (qlaWord !== null) cmdline.push(qlaWord);
  if (options.loadQla === false) cmdline.push(CMDLINE_QLA_SKIP);
  if (options.dmesg === true) cmdline.push(CMDLINE_DMESG);
  if (scriptOutputFile !== undefined) cmdline.push(`${CMDLINE_SCRIPT_OUTPUT}=${SCRIPT_TTY}`);
  for (const word of options.kernelArgs ?? []) {
    if (/\s/.test(word) || word === '') throw new Error(`kernel argument ${JSON.stringify(word)} must be one word`);
    cmdline.push(word);
  }

  const args: string[] = [];
  for (const dir of environment.qemuDataDirs) args.push('-L', dir);
  if (accel === 'kvm') args.push('-accel', 'kvm', '-cpu', 'host');
  else args.push('-accel', 'tcg,thread=multi');
  args.push(
    '-smp',
    String(smp),
    '-m',
    String(memMiB),
    '-object',
    `memory-backend-memfd,id=mem,size=${memMiB}M,share=on`,
    '-machine',
    'q35,memory-backend=mem',
    '-display',
    'none',
    '-nodefaults',
    '-no-reboot',
    '-serial',
    ports.consoleMonitor === true ? 'mon:stdio' : 'stdio',
    '-kernel',
    environment.kernel,
    '-initrd',
    initrd,
    '-append',
    cmdline.join(' '),
  );
  (options.devices ?? []).forEach((device, index) => {
    const spec: GuestDevice = typeof device === 'string' ? { socket: device } : device;
    const port = `rp${index}`;
    args.push('-device', `pcie-root-port,id=${port},chassis=${index + 1},bus=pcie.0`);
    args.push(
      '-device',
      JSON.stringify({
        driver: 'vfio-user-pci',
        id: spec.id ?? `vport${index}`,
        bus: port,
        socket: { type: 'unix', path: spec.socket },
        ...spec.properties,
      }),
    );
  });
  if (scriptOutputFile !== undefined) {
    if (scriptOutputFile.includes(','))
      throw new Error(`script output file ${scriptOutputFile} contains a comma, which QEMU's -chardev cannot take`);
    // A virtio console (hvc0) carries only what init and the script print, so no printk can
    // land inside one of their lines. Not a second UART: under a console flood the guest lost
    // characters of its lines (test/guest/harness.test.ts), while virtio-serial is flow
    // controlled end to end. It sits on the root bus after the HBAs' root ports, so their
    // slots and bus numbers stay as they were.
    args.push(
      '-device',
      'virtio-serial-pci,id=guestserial,bus=pcie.0',
      '-chardev',
      `file,id=${SCRIPT_CHARDEV},path=${scriptOutputFile}`,
      '-device',
      `virtconsole,chardev=${SCRIPT_CHARDEV},bus=guestserial.0`,
    );
  }
  const shares: GuestShare[] = [];
  if (options.shareRootfs === true) shares.push({ tag: ROOTFS_SHARE_TAG, path: environment.rootfs, readOnly: true });
  for (const share of options.shares ?? []) {
    if (!/^[A-Za-z0-9_-]{1,31}$/.test(share.tag) || share.tag === ROOTFS_SHARE_TAG)
      throw new Error(`share tag ${JSON.stringify(share.tag)}: 1-31 letters, digits, '-' or '_', not "rootfs"`);
    shares.push(share);
  }
  shares.forEach((share, index) => {
    if (share.path.includes(',')) throw new Error(`shared directory ${share.path} contains a comma`);
    if (shares.findIndex((s) => s.tag === share.tag) !== index) throw new Error(`share tag ${share.tag} used twice`);
    // security_model=none: the guest sees the files with the host's owners and modes and cannot
    // change either; readonly=on refuses every write at the server.
    const readOnly = share.readOnly !== false ? ',readonly=on' : '';
    args.push(
      '-fsdev',
      `local,id=share${index},path=${share.path},security_model=none${readOnly}`,
      '-device',
      `virtio-9p-pci,fsdev=share${index},mount_tag=${share.tag},bus=pcie.0`,
    );
  });
  if (resultsSerialFile !== undefined) {
    // QEMU's option syntax treats a comma as a separator.
    if (resultsSerialFile.includes(','))
      throw new Error(`results file ${resultsSerialFile} contains a comma, which QEMU's -serial file: cannot take`);
    args.push('-serial', `file:${resultsSerialFile}`);
  }
  args.push(...(options.qemuArgs ?? []));
  return args;
}

/**
 * Boots the guest, runs `options.script`, and resolves when QEMU has exited (normally by the
 * guest's poweroff, or killed by the timeout / abort signal). Rejects only for harness
 * problems (environment missing, bad options, QEMU could not be started).
 */
export async function runGuest(options: RunGuestOptions = {}): Promise<GuestRunResult> {
  const prepared = guestEnvironment(options.cacheDir);
  const environment = options.kernel ? { ...prepared, kernel: options.kernel.image } : prepared;
  const accel = options.accel ?? chooseAccelerator();
  const timeoutMs = positiveInteger(options.timeoutMs ?? DEFAULT_TIMEOUT_MS, 'timeoutMs');
  const started = Date.now();

  const workDir = await mkdtemp(join(tmpdir(), 'npiv-hba-guest-'));
  try {
    // Base archive + run-time overlay in one file: QEMU's -initrd takes a single file and
    // Linux unpacks concatenated cpio archives in order.
    const initrd = join(workDir, 'initrd.cpio');
    const base =
      options.kernel?.initramfs ??
      (options.firmware === false ? environment.initramfsNoFirmware : environment.initramfs);
    await copyFile(base, initrd);
    await appendFile(initrd, buildOverlayArchive(options.script, options.extraFiles ?? []));

    const scriptOutput = join(workDir, 'script.out');
    await writeFile(scriptOutput, '', { mode: 0o600 });
    const args = qemuArguments(environment, initrd, options, accel, { scriptOutputFile: scriptOutput });
    const sockets = (options.devices ?? []).map((device) => (typeof device === 'string' ? device : device.socket));
    await waitForSockets(sockets, Math.min(options.socketWaitMs ?? DEFAULT_SOCKET_WAIT_MS, timeoutMs));

    const remainingMs = Math.max(1, timeoutMs - (Date.now() - started));
    const result = await runQemu(environment, args, accel, remainingMs, options, scriptOutput);
    await writeRunLog(result, options.logFile);
    return result;
  } finally {
    await rm(workDir, { recursive: true, force: true });
  }
}

let runLogCounter = 0;

async function writeRunLog(result: GuestRunResult, logFile: string | undefined): Promise<void> {
  const logDir = process.env.NPIV_HBA_GUEST_LOG_DIR;
  let path = logFile;
  if (path === undefined && logDir !== undefined && logDir !== '') {
    await mkdir(logDir, { recursive: true });
    path = join(logDir, `guest-${Date.now()}-${process.pid}-${++runLogCounter}.log`);
  }
  if (path === undefined) return;
  const summary = {
    exitStatus: result.exitStatus,
    qemuExitCode: result.qemuExitCode,
    qemuSignal: result.qemuSignal,
    timedOut: result.timedOut,
    aborted: result.aborted,
    kernelProblems: result.kernelProblems.length,
  };
  await writeFile(
    path,
    [
      `# command: ${result.command.map((arg) => shellQuote(arg)).join(' ')}`,
      `# result: ${JSON.stringify(summary)}`,
      '# ---- serial log ----',
      result.output,
      '# ---- qemu stderr ----',
      result.qemuStderr,
    ].join('\n'),
  );
}

function runQemu(
  environment: GuestEnvironment,
  args: string[],
  accel: Accelerator,
  timeoutMs: number,
  options: RunGuestOptions,
  scriptOutputFile: string,
): Promise<GuestRunResult> {
  // The process guard: QEMU dies even if this Node process does (e.g. a killed test worker).
  const qemu = launchQemu(environment, {
    args,
    timeoutMs,
    processGuard: true,
    stdin: 'ignore',
    maxStderrChars: MAX_OUTPUT_CHARS,
    ...(options.signal ? { signal: options.signal } : {}),
  });
  const { child, command } = qemu;
  return new Promise((resolve, reject) => {
    const lines: string[] = [];
    const consoleLines: string[] = [];
    const guestLines: string[] = [];
    let outputChars = 0;
    let outputTruncated = false;

    // Console lines (ttyS0) may still hold a script line when init printed to the console
    // (lab --keep's guest, or an init without the script port), so they are split; lines from
    // the script port are whole by construction.
    const takeLine = (raw: string, fromConsole: boolean): void => {
      const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
      if (outputChars + line.length + 1 > MAX_OUTPUT_CHARS) {
        outputTruncated = true;
        return;
      }
      outputChars += line.length + 1;
      lines.push(line);
      if (fromConsole) consoleLines.push(line);
      for (const piece of fromConsole ? splitSerialLine(line) : [line]) {
        if (piece.startsWith(GUEST_TAG)) guestLines.push(piece.slice(GUEST_TAG.length));
        options.onLine?.(piece);
      }
    };
    const lineReader = (fromConsole: boolean) => {
      let partial = '';
      return {
        data: (chunk: string): void => {
          const pieces = (partial + chunk).split('\n');
          partial = pieces.pop() ?? '';
          for (const piece of pieces) takeLine(piece, fromConsole);
          // A line without a terminator that keeps growing is still bounded by the output limit.
          if (partial.length > MAX_OUTPUT_CHARS) {
            takeLine(partial, fromConsole);
            partial = '';
          }
        },
        flush: (): void => {
          if (partial !== '') takeLine(partial, fromConsole);
          partial = '';
        },
      };
    };
    const consoleReader = lineReader(true);
    const scriptReader = lineReader(false);
    // The script port's file, read as it grows (and once more when QEMU has exited).
    const scriptFd = openSync(scriptOutputFile, 'r');
    const scriptDecoder = new StringDecoder('utf8');
    const scriptChunk = Buffer.alloc(64 * 1024);
    const readScriptOutput = (): void => {
      for (;;) {
        const n = readSync(scriptFd, scriptChunk, 0, scriptChunk.length, null);
        if (n <= 0) return;
        scriptReader.data(scriptDecoder.write(scriptChunk.subarray(0, n)));
      }
    };
    const scriptPoll = setInterval(readScriptOutput, SCRIPT_POLL_MS);

    child.stdout.setEncoding('utf8');
    child.stdout.on('data', consoleReader.data);

    qemu.exited.then(
      ({ code, signal, timedOut, aborted, stderr }) => {
        clearInterval(scriptPoll);
        readScriptOutput();
        closeSync(scriptFd);
        consoleReader.flush();
        scriptReader.flush();
        let exitStatus: number | null = null;
        for (const line of lines) {
          const match = EXIT_LINE.exec(line);
          if (match?.[1] !== undefined) exitStatus = Number.parseInt(match[1], 10);
        }
        resolve({
          exitStatus,
          kernelProblems: consoleLines
            .flatMap(splitSerialLine)
            .filter((line) => !line.startsWith(GUEST_TAG) && isKernelProblem(line)),
          output: lines.join('\n'),
          guestLines,
          qemuStderr: stderr,
          qemuExitCode: code,
          qemuSignal: signal,
          timedOut,
          aborted,
          outputTruncated,
          command,
          accel,
        });
      },
      (error: unknown) => {
        clearInterval(scriptPoll);
        closeSync(scriptFd);
        reject(error);
      },
    );
  });
}
