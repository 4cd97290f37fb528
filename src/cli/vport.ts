/**
 * `npiv-hba vport ...`: vport management in the manner of mdevctl — persistent definitions
 * (define/undefine), running instances (start/stop), listing (list/show), the arguments that
 * hand a vport to QEMU or libvirt (qemu-args/libvirt-xml) and the serve process's counters (stats).
 * See docs/vports.md.
 *
 * Exit status: 0 success; 1 the operation was refused or failed; 2 the command line is wrong
 * (unknown option, missing argument, malformed WWN/UUID/size). Messages go to stderr, results
 * to stdout.
 *
 * registerVportCommand(program) adds the group to the main CLI (exit status via process.exitCode);
 * runCli(argv, io) runs one vport command line in-process and returns its exit status (tests).
 */
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { parseDuration } from '../util/duration.js';
import { formatWwn } from '../util/wwn.js';
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import {
  type DefineFileFields,
  defineFieldsFromJson,
  definitionToJson,
  formatBackend,
  MAX_IMPORT_FILE_BYTES,
  parseBackend,
  parseUuid,
  type VportDefinition,
} from '../vport/definition.js';
import { nodedevXml, parseNodedevXml } from '../vport/libvirt-nodedev.js';
import { CliError, formatCliError, isSystemError } from './errors.js';
import { registerServeCommand } from './serve.js';
import {
  EXIT_FAILURE,
  EXIT_NOT_RUNNING,
  EXIT_USAGE,
  VportError,
  VportNotRunningError,
  VportUsageError,
} from '../vport/errors.js';
import { ISP_MODEL_NAMES, type IspModelName } from '../isp/model.js';
import {
  type DefineRequest,
  defineVport,
  type ModifyRequest,
  modifyVport,
  UNSETTABLE_FIELDS,
  type UnsettableField,
  undefineVport,
} from '../vport/manager.js';
import {
  DEFAULT_LIBVIRT_CHASSIS,
  DEFAULT_QEMU_CHASSIS,
  formatShell,
  libvirtXml,
  parseChassis,
  parseMemorySize,
  qemuArguments,
  qmpCommands,
  type QmpAction,
  virshMonitorCommands,
} from '../vport/qemu.js';
import { describeProbe, probeUnixSocket } from '../vport/probe.js';
import {
  describeStatus,
  serveArguments,
  startVport,
  stopVport,
  vportStatus,
  type VportStatus,
} from '../vport/runtime.js';
import { readVportStats, StatsReadError, statsPathFor, type VportStats } from '../vport/stats.js';
import { resolveConfigDir, resolveRunDir, VportStore } from '../vport/store.js';
import type { RandomBits } from '../vport/wwn-gen.js';

export interface TextSink {
  write(text: string): unknown;
}

export interface VportCliIo {
  stdout: TextSink;
  stderr: TextSink;
  env: NodeJS.ProcessEnv;
  /** argv prefix that runs the npiv-hba CLI for `start` (default: this node + bin/npiv-hba.js) */
  serveCommand?: string[];
  /** random source for WWN generation (tests) */
  random?: RandomBits;
}

interface DirOptions {
  configDir?: string;
  runDir?: string;
}

const PROGRAM = 'npiv-hba vport';

interface DefineOptions {
  uuid?: string;
  wwpn?: string;
  wwnn?: string;
  naaPrefix?: string;
  backend: string;
  socket?: string;
  autostart: boolean;
  socketOwner?: string;
  socketGroup?: string;
  sanOwner?: string;
  npivWwpn?: string[];
  model?: IspModelName;
  jsonfile?: string;
  libvirtXml?: string;
}

/** The define options a --jsonfile replaces (commander keys and flags). */
const DEFINE_FIELD_OPTIONS = [
  { key: 'uuid', flag: '--uuid' },
  { key: 'wwpn', flag: '--wwpn' },
  { key: 'wwnn', flag: '--wwnn' },
  { key: 'naaPrefix', flag: '--naa-prefix' },
  { key: 'backend', flag: '--backend' },
  { key: 'socket', flag: '--socket' },
  { key: 'autostart', flag: '--autostart' },
  { key: 'socketOwner', flag: '--socket-owner' },
  { key: 'socketGroup', flag: '--socket-group' },
  { key: 'sanOwner', flag: '--san-owner' },
  { key: 'npivWwpn', flag: '--npiv-wwpn' },
  { key: 'model', flag: '--model' },
];

/** A file given to --jsonfile/--libvirt-xml: a regular file of at most MAX_IMPORT_FILE_BYTES, as UTF-8 text. */
function readImportFile(file: string): string {
  const fd = openSync(file, 'r');
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new VportUsageError(`${file} is not a regular file`);
    if (st.size > MAX_IMPORT_FILE_BYTES)
      throw new VportUsageError(`${file} is ${st.size} bytes long; at most ${MAX_IMPORT_FILE_BYTES} are read`);
    const buf = Buffer.alloc(MAX_IMPORT_FILE_BYTES + 1);
    const n = readSync(fd, buf, 0, buf.length, 0);
    if (n > MAX_IMPORT_FILE_BYTES) throw new VportUsageError(`${file} is longer than ${MAX_IMPORT_FILE_BYTES} bytes`);
    return buf.subarray(0, n).toString('utf8');
  } finally {
    closeSync(fd);
  }
}

/** A define request from the fields of a --jsonfile (names back in the text form define parses). */
function defineRequestFromFields(f: DefineFileFields): DefineRequest {
  return {
    uuid: f.uuid,
    wwpn: f.wwpn === undefined ? undefined : formatWwn(f.wwpn),
    wwnn: f.wwnn === undefined ? undefined : formatWwn(f.wwnn),
    backend: f.backend ?? { type: 'none' },
    socket: f.socket,
    autostart: f.autostart ?? false,
    socketOwner: f.socketOwner,
    socketGroup: f.socketGroup,
    sanOwner: f.sanOwner,
    ...(f.npiv !== undefined ? { npiv: f.npiv.map((g) => `${formatWwn(g.wwpn)}:${formatWwn(g.wwnn)}`) } : {}),
    ...(f.model !== undefined ? { model: f.model } : {}),
  };
}

/** The `show` line for the socket access options, or null when none is set. */
function accessLine(def: VportDefinition): string | null {
  const parts = [
    def.socketOwner !== undefined ? `socket owner ${def.socketOwner}` : null,
    def.socketGroup !== undefined ? `socket group ${def.socketGroup}` : null,
    def.sanOwner !== undefined ? `SAN owner ${def.sanOwner}` : null,
  ].filter((p): p is string => p !== null);
  return parts.length > 0 ? `access:     ${parts.join(', ')}` : null;
}

/** --timeout: a duration (seconds, or with a unit: 500ms, 30s, 2m), in milliseconds. */
function parseTimeout(text: string | undefined, what: string): number | undefined {
  if (text === undefined) return undefined;
  try {
    return parseDuration(text, what, 3_600_000);
  } catch (err) {
    throw new VportUsageError((err as Error).message);
  }
}

function statusJson(status: VportStatus): object {
  switch (status.status) {
    case 'running':
      return { status: 'running', pid: status.pid, startedAt: status.state.startedAt, log: status.state.log };
    case 'stopped':
      return { status: 'stopped', leftoverSocket: status.leftoverSocket };
    case 'stale':
      return { status: 'stale', pid: status.pid, reason: status.reason };
    case 'unknown':
      return { status: 'unknown', reason: status.reason };
  }
}

function vportJson(def: VportDefinition, status: VportStatus): object {
  return {
    uuid: def.uuid,
    wwpn: formatWwn(def.wwpn),
    wwnn: formatWwn(def.wwnn),
    backend: def.backend,
    socket: def.socket,
    autostart: def.autostart,
    // null when unset, so that every entry of `list --json` has the same keys
    socketOwner: def.socketOwner ?? null,
    socketGroup: def.socketGroup ?? null,
    sanOwner: def.sanOwner ?? null,
    npiv: (def.npiv ?? []).map((g) => ({ wwpn: formatWwn(g.wwpn), wwnn: formatWwn(g.wwnn) })),
    ...statusJson(status),
  };
}

function formatStats(def: VportDefinition, s: VportStats): string {
  const c = s.counters;
  return (
    [
      `vport ${def.uuid}  wwpn ${s.wwpn}  pid ${s.pid}  link ${s.link}`,
      `updated ${s.updatedAt} (serving since ${s.startedAt})`,
      `frames   tx ${c.framesTx}  rx ${c.framesRx}`,
      `ios      started ${c.iosStarted}  completed ${c.iosCompleted}  failed ${c.iosFailed}`,
      `bytes    read ${c.bytesRead}  written ${c.bytesWritten}`,
      `errors   ${c.errors}`,
      `link     up ${c.linkUp}  down ${c.linkDown}`,
      `clients  connected ${c.clientConnects}  disconnected ${c.clientDisconnects}`,
    ].join('\n') + '\n'
  );
}

/**
 * A permission or missing-directory error on the definitions or runtime directory, with the
 * option that moves it (a non-root `vport define` on the default /etc/npiv-hba/vports).
 */
function explainDirectoryError(err: unknown, dirs: { configDir: string; runDir: string } | null): unknown {
  if (!isSystemError(err) || err.path === undefined || dirs === null) return err;
  const inside = (dir: string) => err.path === dir || err.path!.startsWith(`${dir}/`);
  const which = inside(dirs.configDir)
    ? {
        what: 'the vport definitions directory',
        dir: dirs.configDir,
        option: '--config-dir',
        env: 'NPIV_HBA_CONFIG_DIR',
      }
    : inside(dirs.runDir)
      ? { what: 'the vport runtime directory', dir: dirs.runDir, option: '--run-dir', env: 'NPIV_HBA_RUN_DIR' }
      : null;
  if (which === null) return err;
  const elsewhere = `pass ${which.option} DIR (or set ${which.env}) for a directory of your own`;
  if (err.code === 'EACCES' || err.code === 'EPERM' || err.code === 'EROFS')
    return new CliError(
      `cannot use ${which.what} ${which.dir}: permission denied (${err.syscall ?? 'access'} ${err.path})`,
      {
        hint: `run it with sudo, or ${elsewhere}`,
        cause: err,
      },
    );
  return err;
}

/** Refuses unless `def` runs and its socket accepts connections (what QEMU needs at startup). */
async function checkServing(def: VportDefinition, runDir: string): Promise<void> {
  const status = vportStatus(def, runDir);
  if (status.status !== 'running') {
    throw new VportNotRunningError(
      `vport ${def.uuid} is not running (${describeStatus(status)})`,
      `start it first (npiv-hba vport start ${def.uuid}), or pass --no-check`,
    );
  }
  const probe = await probeUnixSocket(def.socket);
  if (probe.state === 'missing')
    throw new VportError(
      `socket ${def.socket} of vport ${def.uuid} is missing although serve (pid ${status.pid}) runs`,
    );
  if (probe.state !== 'listening')
    throw new VportError(`socket ${def.socket} of vport ${def.uuid} is stale: ${describeProbe(probe)}`);
}

/** Adds the vport subcommands to `parent`; exit statuses are reported through `setExitCode`. */
function buildVportCommand(
  parent: Command,
  io: VportCliIo,
  setExitCode: (code: number) => void,
  onCommanderExit: (err: CommanderError) => never,
): Command {
  const out = (text: string) => io.stdout.write(text);
  const note = (text: string) => io.stderr.write(`${PROGRAM}: ${text}\n`);
  // The directories of the command being run, for the hint of a permission error.
  let dirs: { configDir: string; runDir: string } | null = null;
  const fail = (err: unknown) => {
    const { text, exitCode } = formatCliError(explainDirectoryError(err, dirs), io.env, PROGRAM);
    io.stderr.write(text);
    setExitCode(exitCode);
  };
  const run =
    <A extends unknown[]>(fn: (...args: A) => Promise<void> | void) =>
    async (...args: A): Promise<void> => {
      try {
        await fn(...args);
      } catch (err) {
        fail(err);
      }
    };
  const context = (opts: DirOptions) => {
    dirs = { configDir: resolveConfigDir(opts.configDir, io.env), runDir: resolveRunDir(opts.runDir, io.env) };
    return { store: new VportStore(dirs.configDir), runDir: dirs.runDir };
  };
  const withDirs = (cmd: Command) =>
    cmd
      .option(
        '--config-dir <dir>',
        'vport definitions directory (env NPIV_HBA_CONFIG_DIR, default /etc/npiv-hba/vports)',
      )
      .option('--run-dir <dir>', 'runtime state directory (env NPIV_HBA_RUN_DIR, default /run/npiv-hba)');

  const vport = parent
    .command('vport')
    .description('manage NPIV vport HBAs: persistent definitions, serve processes, QEMU/libvirt arguments')
    .configureOutput({ writeOut: out, writeErr: (t) => io.stderr.write(t) })
    .exitOverride(onCommanderExit);

  withDirs(vport.command('define'))
    .description('define a vport (prints its UUID); WWPN/WWNN are generated from the NAA prefix when not given')
    .option('--uuid <uuid>', 'UUID (default: random)')
    .option('--wwpn <wwpn>', 'port name, e.g. 50:01:43:80:01:23:45:67 (default: generated)')
    .option('--wwnn <wwnn>', 'node name (default: derived from the WWPN)')
    .option(
      '--naa-prefix <hex>',
      'leading hex digits of generated WWPNs: NAA 5 "5"+OUI (>=7 digits) or NAA 2 (>=10 digits) (env NPIV_HBA_NAA_PREFIX, default 5001a4a: the KVM OUI libvirt uses)',
    )
    .option(
      '--backend <backend>',
      "'none' (no cable), 'san:LINKPATH' (the SAN's link socket) or 'host:PARENT' (an NPIV vport of the host's FC HBA PARENT = hostN or its WWPN; serve runs as root)",
      'none',
    )
    .option('--socket <path>', 'vfio-user socket path (default: <run-dir>/<uuid>.sock)')
    .option('--autostart', 'start with `vport start --auto`', false)
    .option(
      '--socket-owner <user>',
      'serve --socket-owner: user (name or uid) QEMU runs as, if not the one running serve; may connect and owns the socket',
    )
    .option(
      '--socket-group <group>',
      'serve --socket-group: group (name or gid) whose members may connect; the socket becomes 0660',
    )
    .option(
      '--san-owner <user>',
      'serve --san-owner: user (name or uid) the SAN at the san: backend may run as, besides this one and root',
    )
    .option(
      '--npiv-wwpn <wwpn:wwnn>',
      'serve --npiv-wwpn: a name pair the guest may create an NPIV vport with; repeatable',
      (value: string, previous: string[] = []) => [...previous, value],
    )
    .addOption(
      new Option('--model <model>', 'serve --model: the ISP the guest sees (default isp2532)').choices([
        ...ISP_MODEL_NAMES,
      ]),
    )
    .option(
      '--jsonfile <file>',
      'the definition from a JSON file (the definition file format; fields define generates may be left out)',
    )
    .option(
      '--libvirt-xml <file>',
      "the WWPN/WWNN from a libvirt nodedev vHBA XML file (<device> with a 'fc_host' capability)",
    )
    .action(
      run(async (opts: DirOptions & DefineOptions, cmd: Command) => {
        if (opts.jsonfile !== undefined) {
          const others = DEFINE_FIELD_OPTIONS.filter((o) => cmd.getOptionValueSource(o.key) === 'cli');
          if (opts.libvirtXml !== undefined) others.unshift({ key: 'libvirtXml', flag: '--libvirt-xml' });
          if (others.length > 0)
            throw new VportUsageError(
              `--jsonfile gives the whole definition: ${others.map((o) => o.flag).join(', ')} cannot be added to it`,
            );
          const file = opts.jsonfile;
          let json: unknown;
          try {
            json = JSON.parse(readImportFile(file));
          } catch (err) {
            if (err instanceof SyntaxError) throw new VportUsageError(`${file}: not valid JSON: ${err.message}`);
            throw err;
          }
          const fields = defineFieldsFromJson(json, file);
          const { store, runDir } = context(opts);
          const def = await defineVport(defineRequestFromFields(fields), {
            store,
            runDir,
            env: io.env,
            ...(io.random ? { random: io.random } : {}),
          });
          out(def.uuid + '\n');
          return;
        }
        let wwpn = opts.wwpn;
        let wwnn = opts.wwnn;
        if (opts.libvirtXml !== undefined) {
          if (wwpn !== undefined || wwnn !== undefined)
            throw new VportUsageError('--libvirt-xml gives the WWPN and WWNN: --wwpn/--wwnn cannot be added to it');
          const names = parseNodedevXml(readImportFile(opts.libvirtXml), opts.libvirtXml);
          wwpn = formatWwn(names.wwpn);
          wwnn = formatWwn(names.wwnn);
          if (names.parent !== undefined)
            note(
              `${opts.libvirtXml}: <parent>${names.parent}</parent> is not imported (give --backend host:PARENT for a host vport)`,
            );
        }
        const { store, runDir } = context(opts);
        const def = await defineVport(
          {
            uuid: opts.uuid,
            wwpn,
            wwnn,
            naaPrefix: opts.naaPrefix,
            backend: parseBackend(opts.backend),
            socket: opts.socket,
            autostart: opts.autostart,
            socketOwner: opts.socketOwner,
            socketGroup: opts.socketGroup,
            sanOwner: opts.sanOwner,
            ...(opts.npivWwpn ? { npiv: opts.npivWwpn } : {}),
            ...(opts.model ? { model: opts.model } : {}),
          },
          { store, runDir, env: io.env, ...(io.random ? { random: io.random } : {}) },
        );
        out(def.uuid + '\n');
      }),
    );

  withDirs(vport.command('modify'))
    .description(
      'change fields of a defined vport (the options of define); a running vport takes the change at its next start',
    )
    .argument('<uuid>')
    .option('--wwpn <wwpn>', 'port name (refused while the vport runs)')
    .option('--wwnn <wwnn>', 'node name (refused while the vport runs)')
    .option('--backend <backend>', "'none', 'san:LINKPATH' or 'host:PARENT' (as define)")
    .option('--socket <path>', 'vfio-user socket path')
    .option('--auto', 'start with `vport start --auto` (autostart on)')
    .option('--manual', 'do not start with `vport start --auto` (autostart off)')
    .option('--socket-owner <user>', 'serve --socket-owner (as define)')
    .option('--socket-group <group>', 'serve --socket-group (as define)')
    .option('--san-owner <user>', 'serve --san-owner (as define; needs a san: backend)')
    .option(
      '--npiv-wwpn <wwpn:wwnn>',
      'serve --npiv-wwpn: replaces every grant with the pairs given; repeatable',
      (value: string, previous: string[] = []) => [...previous, value],
    )
    .addOption(new Option('--model <model>', 'serve --model: the ISP the guest sees').choices([...ISP_MODEL_NAMES]))
    .addOption(
      new Option('--unset <field>', 'drop an optional field; repeatable')
        .choices([...UNSETTABLE_FIELDS])
        .argParser((value: string, previous: string[] = []) => {
          if (!(UNSETTABLE_FIELDS as readonly string[]).includes(value))
            throw new InvalidArgumentError(`expected one of ${UNSETTABLE_FIELDS.join(', ')}`);
          return [...previous, value];
        }),
    )
    .action(
      run(
        async (
          uuidText: string,
          opts: DirOptions & {
            wwpn?: string;
            wwnn?: string;
            backend?: string;
            socket?: string;
            auto?: boolean;
            manual?: boolean;
            socketOwner?: string;
            socketGroup?: string;
            sanOwner?: string;
            npivWwpn?: string[];
            model?: IspModelName;
            unset?: UnsettableField[];
          },
        ) => {
          const uuid = parseUuid(uuidText);
          if (opts.auto && opts.manual) throw new VportUsageError('--auto and --manual exclude each other');
          const req: ModifyRequest = {
            wwpn: opts.wwpn,
            wwnn: opts.wwnn,
            ...(opts.backend !== undefined ? { backend: parseBackend(opts.backend) } : {}),
            socket: opts.socket,
            ...(opts.auto ? { autostart: true } : opts.manual ? { autostart: false } : {}),
            socketOwner: opts.socketOwner,
            socketGroup: opts.socketGroup,
            sanOwner: opts.sanOwner,
            ...(opts.npivWwpn ? { npiv: opts.npivWwpn } : {}),
            ...(opts.model ? { model: opts.model } : {}),
            ...(opts.unset ? { unset: opts.unset } : {}),
          };
          if (Object.values(req).every((v) => v === undefined))
            throw new VportUsageError('nothing to change: give at least one option (see --help)');
          const { store, runDir } = context(opts);
          const result = await modifyVport(uuid, req, { store, runDir, env: io.env });
          if (result.running)
            note(
              `vport ${uuid} is running: the change takes effect at its next start (npiv-hba vport stop ${uuid}, then start)`,
            );
          out(`modified ${uuid}\n`);
        },
      ),
    );

  withDirs(vport.command('undefine'))
    .description('remove a definition (refused while the vport runs, unless --force stops it)')
    .argument('<uuid>')
    .option('--force', 'stop the vport first if it runs', false)
    .option(
      '--timeout <duration>',
      'with --force: wait this long after SIGTERM before SIGKILL (seconds, or 500ms/30s/2m)',
    )
    .action(
      run(async (uuidText: string, opts: DirOptions & { force: boolean; timeout?: string }) => {
        const uuid = parseUuid(uuidText);
        const timeoutMs = parseTimeout(opts.timeout, '--timeout');
        const { store, runDir } = context(opts);
        const result = await undefineVport(uuid, { store, runDir, force: opts.force, stop: { timeoutMs } });
        for (const n of result.stopped?.notes ?? []) note(n);
        if (result.stopped && result.stopped.outcome !== 'was-stale') note(`stopped vport ${uuid}`);
      }),
    );

  withDirs(vport.command('start'))
    .description('start a defined vport: a detached `npiv-hba serve` on its socket, ready when it answers VERSION')
    .argument('[uuid]')
    .option('--auto', 'start every vport defined with --autostart that is not running', false)
    .option('--timeout <duration>', 'how long to wait for serve to answer on its socket (seconds, or 500ms/30s/2m)')
    .action(
      run(async (uuidText: string | undefined, opts: DirOptions & { auto: boolean; timeout?: string }) => {
        const timeoutMs = parseTimeout(opts.timeout, '--timeout');
        if (opts.auto === (uuidText !== undefined)) throw new VportUsageError('give either a UUID or --auto');
        const { store, runDir } = context(opts);
        const startOne = async (def: VportDefinition) => {
          const result = await startVport(def, runDir, {
            ...(io.serveCommand ? { serveCommand: io.serveCommand } : {}),
            timeoutMs,
            env: io.env,
          });
          for (const n of result.notes) note(n);
          out(`started ${def.uuid} pid ${result.pid} socket ${def.socket}\n`);
        };
        if (uuidText !== undefined) {
          await startOne(store.get(parseUuid(uuidText)));
          return;
        }
        const { definitions, problems } = store.list();
        for (const p of problems) note(`skipping invalid definition ${p.file}: ${p.message}`);
        let failed = problems.length;
        for (const def of definitions) {
          if (!def.autostart || vportStatus(def, runDir).status === 'running') continue;
          try {
            await startOne(def);
          } catch (err) {
            failed++;
            fail(err);
          }
        }
        if (failed > 0) throw new VportError(`${failed} autostart vport(s) could not be started`);
      }),
    );

  withDirs(vport.command('run'))
    .description(
      'serve a defined vport in the foreground until SIGTERM (for a service manager: systemd npiv-hba-vport@UUID.service)',
    )
    .argument('<uuid>')
    .option('--dry-run', 'print the `npiv-hba serve` arguments it would run, one per line, and exit', false)
    .action(
      run(async (uuidText: string, opts: DirOptions & { dryRun: boolean }) => {
        const { store } = context(opts);
        const args = serveArguments(store.get(parseUuid(uuidText)));
        if (opts.dryRun) {
          out(`${args.join('\n')}\n`);
          return;
        }
        // In this process rather than a child: systemd's main PID is then the server itself, which
        // sends READY=1, receives SIGTERM and logs straight to the journal. The same parser as
        // `npiv-hba serve` checks the arguments.
        const serveProgram = new Command('npiv-hba').exitOverride(onCommanderExit);
        registerServeCommand(serveProgram);
        await serveProgram.parseAsync(args, { from: 'user' });
      }),
    );

  withDirs(vport.command('stop'))
    .description('stop a running vport: SIGTERM, then SIGKILL after the timeout; stale state is cleaned up')
    .argument('<uuid>')
    .option('--timeout <duration>', 'wait this long after SIGTERM before SIGKILL (seconds, or 500ms/30s/2m)')
    .action(
      run(async (uuidText: string, opts: DirOptions & { timeout?: string }) => {
        const uuid = parseUuid(uuidText);
        const timeoutMs = parseTimeout(opts.timeout, '--timeout');
        const { store, runDir } = context(opts);
        const result = await stopVport(store.get(uuid), runDir, { timeoutMs });
        for (const n of result.notes) note(n);
        out(
          result.outcome === 'was-stale' ? `${uuid} was not running (stale state cleaned up)\n` : `stopped ${uuid}\n`,
        );
      }),
    );

  withDirs(vport.command('list'))
    .description('list defined vports: <uuid> <wwpn> <backend> auto|manual <status>')
    .option('--defined', 'every defined vport (the default)', false)
    .option('--running', 'only running vports', false)
    .option('--json', 'JSON array instead of text', false)
    .action(
      run((opts: DirOptions & { defined: boolean; running: boolean; json: boolean }) => {
        if (opts.defined && opts.running) throw new VportUsageError('--defined and --running exclude each other');
        const { store, runDir } = context(opts);
        const { definitions, problems } = store.list();
        const rows = definitions
          .map((def) => ({ def, status: vportStatus(def, runDir) }))
          .filter((r) => !opts.running || r.status.status === 'running');
        if (opts.json)
          out(
            JSON.stringify(
              rows.map((r) => vportJson(r.def, r.status)),
              null,
              2,
            ) + '\n',
          );
        else
          for (const { def, status } of rows)
            out(
              `${def.uuid} ${formatWwn(def.wwpn)} ${formatBackend(def.backend)} ${def.autostart ? 'auto' : 'manual'} ${describeStatus(status)}\n`,
            );
        if (problems.length > 0) {
          for (const p of problems) note(`invalid definition ${p.file}: ${p.message}`);
          setExitCode(EXIT_FAILURE);
        }
      }),
    );

  withDirs(vport.command('show'))
    .description('show one vport: its definition and status')
    .argument('<uuid>')
    .option('--json', 'JSON object instead of text', false)
    .action(
      run((uuidText: string, opts: DirOptions & { json: boolean }) => {
        const uuid = parseUuid(uuidText);
        const { store, runDir } = context(opts);
        const def = store.get(uuid);
        const status = vportStatus(def, runDir);
        if (opts.json) {
          out(JSON.stringify(vportJson(def, status), null, 2) + '\n');
          return;
        }
        out(
          [
            `uuid:       ${def.uuid}`,
            `wwpn:       ${formatWwn(def.wwpn)}`,
            `wwnn:       ${formatWwn(def.wwnn)}`,
            `backend:    ${formatBackend(def.backend)}`,
            `socket:     ${def.socket}`,
            accessLine(def),
            def.npiv?.length
              ? `npiv:       ${def.npiv.map((g) => `${formatWwn(g.wwpn)}:${formatWwn(g.wwnn)}`).join(', ')}`
              : null,
            `autostart:  ${def.autostart ? 'yes' : 'no'}`,
            `status:     ${describeStatus(status)}`,
            `definition: ${store.definitionPath(def.uuid)}`,
          ]
            .filter((line): line is string => line !== null)
            .join('\n') + '\n',
        );
      }),
    );

  withDirs(vport.command('status'))
    .description(
      `print whether a vport runs; exit status 0 when it does, ${EXIT_NOT_RUNNING} when not (like systemctl is-active)`,
    )
    .argument('<uuid>')
    .action(
      run((uuidText: string, opts: DirOptions) => {
        const uuid = parseUuid(uuidText);
        const { store, runDir } = context(opts);
        const status = vportStatus(store.get(uuid), runDir);
        out(`${describeStatus(status)}\n`);
        if (status.status !== 'running') setExitCode(EXIT_NOT_RUNNING);
      }),
    );

  withDirs(vport.command('qemu-args'))
    .description(
      'print the QEMU arguments that attach these running vports (shared memfd RAM, a pcie-root-port and a JSON vfio-user-pci device each)',
    )
    .argument('<uuid...>')
    .option('--mem <size>', 'guest RAM size, with unit (K, M, G, T)', '512M')
    .option('--index <n>', 'chassis number of the first root port (1..255)', String(DEFAULT_QEMU_CHASSIS))
    .option('--devices-only', 'only the -device arguments (the VM sets up shared memory itself)', false)
    .option('--lines', 'one raw argument per line instead of shell-quoted text', false)
    .option('--no-check', 'do not require the vports to be running with a live socket (arguments for later use)')
    .addOption(
      new Option(
        '--qmp <action>',
        'instead: QMP commands that hot-plug (add: device_add) or unplug (del: device_del) the vports in a running QEMU, one JSON line each',
      ).choices(['add', 'del']),
    )
    .option('--virsh <domain>', 'with --qmp: as `virsh qemu-monitor-command DOMAIN ...` command lines')
    .action(
      run(
        async (
          uuidTexts: string[],
          opts: DirOptions & {
            mem: string;
            index: string;
            devicesOnly: boolean;
            lines: boolean;
            check: boolean;
            qmp?: QmpAction;
            virsh?: string;
          },
        ) => {
          const uuids = uuidTexts.map(parseUuid);
          const memory = parseMemorySize(opts.mem);
          const firstChassis = parseChassis(opts.index);
          if (opts.virsh !== undefined && opts.qmp === undefined)
            throw new VportUsageError('--virsh prints QMP commands: give --qmp add or --qmp del');
          if (opts.virsh === '') throw new VportUsageError('--virsh: the domain name is empty');
          const { store, runDir } = context(opts);
          const defs = uuids.map((u) => store.get(u));
          // QEMU connects once, at startup (or at device_add), and fails if the socket is missing
          // or dead: refuse now instead. Unplugging needs no live socket.
          if (opts.check && opts.qmp !== 'del') for (const def of defs) await checkServing(def, runDir);
          if (opts.qmp !== undefined) {
            const lines =
              opts.virsh !== undefined ? virshMonitorCommands(defs, opts.qmp, opts.virsh) : qmpCommands(defs, opts.qmp);
            out(lines.map((l) => `${l}\n`).join(''));
            return;
          }
          const args = qemuArguments(defs, { memory, firstChassis, devicesOnly: opts.devicesOnly });
          out(opts.lines ? args.map((a) => a + '\n').join('') : formatShell(args));
        },
      ),
    );

  withDirs(vport.command('libvirt-xml'))
    .description('print a libvirt <domain> fragment (shared memfd memoryBacking + qemu:commandline) for these vports')
    .argument('<uuid...>')
    .option('--index <n>', 'chassis number of the first root port (1..255)', String(DEFAULT_LIBVIRT_CHASSIS))
    .action(
      run((uuidTexts: string[], opts: DirOptions & { index: string }) => {
        const uuids = uuidTexts.map(parseUuid);
        const firstChassis = parseChassis(opts.index);
        const { store } = context(opts);
        out(
          libvirtXml(
            uuids.map((u) => store.get(u)),
            { firstChassis },
          ),
        );
      }),
    );

  withDirs(vport.command('export'))
    .description(
      'print a definition: as the JSON `define --jsonfile` reads (--json), or as a libvirt nodedev vHBA description (--libvirt-xml)',
    )
    .argument('<uuid>')
    .option('--json', 'the definition file format (the default)', false)
    .option('--libvirt-xml', "libvirt nodedev XML: <device> with the 'fc_host' capability's wwnn and wwpn", false)
    .action(
      run((uuidText: string, opts: DirOptions & { json: boolean; libvirtXml: boolean }) => {
        const uuid = parseUuid(uuidText);
        if (opts.json && opts.libvirtXml) throw new VportUsageError('--json and --libvirt-xml exclude each other');
        const { store } = context(opts);
        const def = store.get(uuid);
        out(opts.libvirtXml ? nodedevXml(def) : JSON.stringify(definitionToJson(def), null, 2) + '\n');
      }),
    );

  withDirs(vport.command('stats'))
    .description('print the counters a running vport publishes (frames, I/Os, errors, link events)')
    .argument('<uuid>')
    .option('--json', 'the stats file as JSON', false)
    .action(
      run((uuidText: string, opts: DirOptions & { json: boolean }) => {
        const uuid = parseUuid(uuidText);
        const { store, runDir } = context(opts);
        const def = store.get(uuid);
        const status = vportStatus(def, runDir);
        if (status.status !== 'running')
          throw new VportNotRunningError(`vport ${uuid} is not running (${describeStatus(status)}); no live counters`);
        let stats: VportStats | null;
        try {
          stats = readVportStats(def.socket);
        } catch (err) {
          if (err instanceof StatsReadError) throw new VportError(err.message);
          throw err;
        }
        if (!stats) {
          throw new VportError(
            `vport ${uuid} runs (pid ${status.pid}) but publishes no counters: ${statsPathFor(def.socket)} does not exist (this serve does not write statistics)`,
          );
        }
        if (stats.pid !== status.pid) {
          throw new VportError(
            `${statsPathFor(def.socket)} was written by process ${stats.pid}, not by the running serve (pid ${status.pid}); the counters are stale`,
          );
        }
        out(opts.json ? JSON.stringify(stats, null, 2) + '\n' : formatStats(def, stats));
      }),
    );

  return vport;
}

function usageExitCode(err: CommanderError): number {
  // help and --version were asked for; any other commander exit is a command-line mistake
  if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.exitCode === 0) return 0;
  return EXIT_USAGE;
}

/** Adds `vport` to the main CLI; failures set process.exitCode (1 refused/failed, 2 usage). */
export function registerVportCommand(program: Command, io: Partial<VportCliIo> = {}): Command {
  const fullIo: VportCliIo = { stdout: process.stdout, stderr: process.stderr, env: process.env, ...io };
  return buildVportCommand(
    program,
    fullIo,
    (code) => {
      process.exitCode = code;
    },
    (err) => process.exit(usageExitCode(err)),
  );
}

/**
 * Runs `npiv-hba vport <argv...>` in-process (argv starts at the subcommand, e.g. ['list', '--json'])
 * and resolves with the exit status it would have.
 */
export async function runCli(argv: readonly string[], io: VportCliIo): Promise<number> {
  let exitCode = 0;
  const program = new Command('npiv-hba');
  program.configureOutput({ writeOut: (t) => io.stdout.write(t), writeErr: (t) => io.stderr.write(t) });
  const onExit = (err: CommanderError): never => {
    throw err;
  };
  program.exitOverride(onExit);
  buildVportCommand(
    program,
    io,
    (code) => {
      exitCode = code;
    },
    onExit,
  );
  try {
    await program.parseAsync(['vport', ...argv], { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) return usageExitCode(err);
    throw err;
  }
  return exitCode;
}
