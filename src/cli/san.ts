/**
 * `npiv-hba san`: run the simulated SAN, print an example configuration, or send it run-time
 * changes.
 *
 *   npiv-hba san --config san.json --link /run/npiv-hba/san.sock [--pcap trace.pcap] [--control /run/npiv-hba/san-ctl.sock] [--data-dir DIR]
 *   npiv-hba san --example > san.json
 *   npiv-hba san ctl --control /run/npiv-hba/san-ctl.sock status
 *   npiv-hba san ctl --control PATH add-volume array=array1 name=data size=2GiB file=data.img
 *   npiv-hba san ctl --control PATH zone-create name=z2 'members=["c0:50:76:ff:e5:00:00:02","50:0a:09:81:00:00:00:01"]'
 *
 * `ctl` arguments are key=value; a value starting with [ or { (or null/true/false) is JSON, anything
 * else is text (numbers such as lun=1 are converted by the SAN). The answer is printed as JSON on
 * stdout; a failed command exits 1. Commands and their arguments: src/san/control.ts.
 * `port-down WWPN` takes an array port or any HBA's link down; an array port comes back with
 * `port-up`, an HBA link when the HBA reconnects.
 *
 * Local users: both sockets are 0600 in a directory others cannot write; links are accepted from
 * this uid, root, --socket-owner and --socket-group members (at most --max-links-per-uid each), the
 * control socket from this uid, root and --control-group members (docs/security.md).
 */
import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { Command } from 'commander';
import {
  ControlServer,
  controlRequest,
  DEFAULT_MAX_CONTROL_PER_UID,
  type ControlListenOptions,
} from '../san/control.js';
import { exampleSanConfig, loadSanConfig } from '../san/config.js';
import { DEFAULT_MAX_LINKS_PER_UID } from '../san/link-listener.js';
import { San } from '../san/san.js';
import { logger } from '../util/log.js';
import { sdNotify } from '../util/sd-notify.js';
import { checkSocketPathLength, parseGroup, parseUser, type SocketAccess } from '../util/private-socket.js';
import { probeUnixSocket } from '../vport/probe.js';
import { CliError, EXIT_NOT_RUNNING, UsageError, usage } from './errors.js';

export interface SanCliOptions {
  config?: string;
  link?: string;
  pcap?: string;
  control?: string;
  dataDir?: string;
  socketGroup?: string;
  socketOwner?: string;
  controlGroup?: string;
  maxLinksPerUid?: string;
  maxControlPerUid?: string;
  /** commander's --no-data-path */
  dataPath?: boolean;
  example?: boolean;
}

/** A per-uid connection cap: a whole number 1..65536. */
function parseCap(text: string | undefined, option: string, fallback: number): number {
  if (text === undefined) return fallback;
  const n = /^\d+$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(n) || n < 1 || n > 65536)
    throw new Error(`invalid ${option} '${text}': expected a whole number 1..65536`);
  return n;
}

/** key=value words → request object. */
export function parseCtlArguments(cmd: string, words: readonly string[]): Record<string, unknown> {
  const req: Record<string, unknown> = { cmd };
  for (const w of words) {
    const eq = w.indexOf('=');
    if (eq <= 0) throw new Error(`argument '${w}' is not key=value`);
    const key = w.slice(0, eq);
    const text = w.slice(eq + 1);
    // Lists, objects and null are JSON; everything else stays text (the SAN coerces numbers).
    const json = /^[[{]/.test(text) || text === 'null' || text === 'true' || text === 'false';
    if (json) {
      try {
        req[key] = JSON.parse(text);
      } catch (err) {
        throw new Error(`argument '${key}': ${(err as Error).message}`);
      }
    } else {
      req[key] = text;
    }
  }
  return req;
}

/** The command line's values, checked; throws on the first bad one. */
function sanArguments(opts: SanCliOptions) {
  if (!opts.config) throw new Error('--config <file> is required (or --example)');
  if (!opts.link) throw new Error('--link <path> is required');
  if (opts.dataDir === '') throw new Error('--data-dir: the directory path is empty');
  checkSocketPathLength(opts.link, '--link');
  if (opts.control !== undefined) {
    checkSocketPathLength(opts.control, '--control');
    if (resolve(opts.control) === resolve(opts.link))
      throw new Error(`--link and --control must be different sockets (both are ${opts.link})`);
  }
  const linkAccess: SocketAccess = {
    ...(opts.socketGroup !== undefined ? { group: parseGroup(opts.socketGroup, '--socket-group') } : {}),
    ...(opts.socketOwner !== undefined ? { owner: parseUser(opts.socketOwner, '--socket-owner') } : {}),
  };
  const controlOptions: ControlListenOptions = {
    ...(opts.controlGroup !== undefined ? { access: { group: parseGroup(opts.controlGroup, '--control-group') } } : {}),
    maxPerUid: parseCap(opts.maxControlPerUid, '--max-control-per-uid', DEFAULT_MAX_CONTROL_PER_UID),
  };
  const maxLinksPerUid = parseCap(opts.maxLinksPerUid, '--max-links-per-uid', DEFAULT_MAX_LINKS_PER_UID);
  return { config: opts.config, link: opts.link, linkAccess, controlOptions, maxLinksPerUid };
}

/** Run a SAN until `stop` fires: link socket, optional pcap and control socket. */
export async function runSan(opts: SanCliOptions, stop: AbortSignal): Promise<void> {
  // Every check of the command line first: a bad value is a usage error (exit 2).
  const { config: configPath, link, linkAccess, controlOptions, maxLinksPerUid } = usage(() => sanArguments(opts));
  const config = loadSanConfig(configPath);
  // Starting would unlink a socket file and listen in its place: never do that to a live SAN.
  for (const [option, path] of [
    ['--link', link],
    ['--control', opts.control],
  ] as const) {
    if (path !== undefined && (await probeUnixSocket(path)).state === 'listening') {
      throw new Error(`${option} ${path}: another process is already listening there (a running \`npiv-hba san\`?)`);
    }
  }
  const log = logger('san.cli');
  const running = await San.start(config, {
    linkPath: link,
    linkAccess: { access: linkAccess, maxPerUid: maxLinksPerUid },
    ...(opts.pcap ? { pcapPath: opts.pcap } : {}),
    ...(opts.dataPath === false ? { dataPath: false } : {}),
    // Like any path on the command line, relative to the working directory (the configuration's
    // "dataDir" is relative to the configuration file).
    ...(opts.dataDir !== undefined ? { dataDir: resolve(opts.dataDir) } : {}),
    baseDir: dirname(resolve(configPath)),
  });
  try {
    const control = opts.control ? await ControlServer.listen(running, opts.control, undefined, controlOptions) : null;
    log.info({ link, control: opts.control, pcap: opts.pcap }, 'SAN running; SIGINT/SIGTERM/SIGHUP to stop');
    // Link and control sockets listen now: a Type=notify unit may start the vports that need them.
    sdNotify({ ready: true, status: `SAN running, links on ${link}` });
    if (!stop.aborted) await new Promise<void>((done) => stop.addEventListener('abort', () => done(), { once: true }));
    sdNotify({ stopping: true, status: 'SAN stopping' });
    await control?.close();
  } finally {
    await running.close();
  }
}

export function registerSanCommand(program: Command): void {
  const san = program
    .command('san')
    .description('run the simulated SAN (fabric + storage arrays) that HBAs attach to over a link socket')
    .option('--config <file>', 'SAN configuration (JSON); see --example')
    .option('--link <path>', 'Unix socket path for HBA links')
    .option(
      '--pcap <file>',
      'record every frame through the switch (pcap, LINKTYPE_FC_2); holds disk data, created 0600',
    )
    .option('--control <path>', 'Unix socket for run-time changes (JSON lines; see `san ctl`)')
    .option(
      '--no-data-path',
      'never let HBAs read and write volumes directly (data-path grants); every command then goes as FC frames',
    )
    .option(
      '--data-dir <dir>',
      'data directory for volume files (overrides "dataDir" in --config): every volume file must be inside it, and `san ctl add-volume file=...` may create files only there',
    )
    .option(
      '--socket-group <group>',
      'group (name or gid) whose members may connect links: the link socket becomes 0660 and group-owned',
    )
    .option(
      '--socket-owner <user>',
      'user (name or uid) `serve` runs as, if not this one: may connect links, owns the link socket file',
    )
    .option('--control-group <group>', 'group (name or gid) whose members may use the control socket (0660)')
    .option('--max-links-per-uid <n>', `simultaneous links one uid may hold (default ${DEFAULT_MAX_LINKS_PER_UID})`)
    .option(
      '--max-control-per-uid <n>',
      `simultaneous control connections one uid may hold (default ${DEFAULT_MAX_CONTROL_PER_UID})`,
    )
    .option('--example', 'print a working example configuration and exit')
    .action(async (opts: SanCliOptions) => {
      if (opts.example) {
        process.stdout.write(exampleSanConfig());
        return;
      }
      const stop = new AbortController();
      const onSignal = (): void => stop.abort();
      // SIGHUP too: its default action would end the process and leave both sockets behind.
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
      process.once('SIGHUP', onSignal);
      try {
        await runSan(opts, stop.signal);
      } finally {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
        process.off('SIGHUP', onSignal);
      }
    });

  san
    .command('ctl')
    .description(
      'send one command to a running SAN: status, add-volume, remove-volume, resize-volume, add-host-group, map-lun, unmap-lun, zone-create, zone-delete, zone-add-member, zone-remove-member, zoneset-create, zoneset-activate, zone-default, port-down, port-up, link-down, link-up, fault-add, fault-list, fault-clear (see docs/living-san.md)',
    )
    .option('--control <path>', 'the SAN control socket (required)')
    .argument('<command>', 'control command')
    .argument('[args...]', 'key=value arguments')
    .action(async (command: string, args: string[], opts: { control?: string }, cmd: Command) => {
      // Unless the program enables positional options, `san` itself takes the --control given
      // after `ctl`; look there too.
      const path = opts.control ?? (cmd.parent?.opts() as SanCliOptions | undefined)?.control;
      if (!path) throw new UsageError('san ctl: --control <path> is required');
      const request = usage(() => parseCtlArguments(command, args));
      if (!existsSync(path))
        throw new CliError(`no SAN control socket at ${path}`, {
          exitCode: EXIT_NOT_RUNNING,
          hint: `start \`npiv-hba san --control ${path}\` first, or give the path it uses`,
        });
      const res = await controlRequest(path, request).catch((err: NodeJS.ErrnoException) => {
        const why =
          err.code === 'ECONNREFUSED' ? 'connection refused' : err.code === 'ENOTSOCK' ? 'not a socket' : null;
        // Nothing answers there: the SAN is not running (exit 3, docs/cli.md#exit-status).
        if (why)
          throw new CliError(`cannot reach the SAN control socket ${path}: ${why}`, {
            exitCode: EXIT_NOT_RUNNING,
            hint: `is \`npiv-hba san --control ${path}\` running?`,
          });
        throw err;
      });
      process.stdout.write(JSON.stringify(res.ok ? (res.result ?? { ok: true }) : res, null, 2) + '\n');
      if (!res.ok) throw new Error(res.error ?? 'control command failed');
    });
}
