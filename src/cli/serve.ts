/**
 * `npiv-hba serve`: serve one vport HBA (an emulated ISP2532, or ISP2432 with --model) on a vfio-user socket until SIGTERM,
 * SIGINT or SIGHUP, then stop cleanly and remove the socket.
 *
 * Local users: the socket is 0600 (0660 with --socket-group) in a directory others cannot write,
 * and only this uid, root, --socket-owner and --socket-group members may connect; the SAN at --san
 * must be run by this uid, root or --san-owner before a frame is sent to it
 * (docs/security.md).
 */
import type { Command } from 'commander';
import { VportHba } from '../hba.js';
import { InitiatorFabricPort } from '../isp/initiator-fabric.js';
import { connectLink } from '../fc/link.js';
import { PcapWriter } from '../fc/pcap.js';
import { HostFabricPort } from '../host/host-fabric.js';
import { Sysfs } from '../host/sysfs.js';
import { parseParentSpec } from '../host/vport.js';
import type { FabricPort } from '../isp/fabric-port.js';
import { countingFabricPort } from '../vport/counting-fabric.js';
import { describeProbe, probeUnixSocket } from '../vport/probe.js';
import { VportStatsWriter } from '../vport/stats.js';
import { checkLogLevel, logger, setLogLevel } from '../util/log.js';
import { sdNotify } from '../util/sd-notify.js';
import { usage } from './errors.js';
import {
  checkSocketPathLength,
  parseGroup,
  parseUser,
  prepareSocketDirectory,
  verifySocketServer,
  type SocketAccess,
} from '../util/private-socket.js';
import { formatWwn, parseWwn, parseWwnPair } from '../util/wwn.js';
import { IdentityPolicy } from '../isp/identity.js';
import { DEFAULT_ISP_MODEL, ISP_MODEL_NAMES, isIspModelName, ispModel, maxSpeedGbps } from '../isp/model.js';

export interface ServeOptions {
  socket: string;
  wwpn: string;
  wwnn: string;
  interrupts?: string;
  /** --model: which ISP the guest sees (isp2532 | isp2432). */
  model?: string;
  san?: string;
  backend?: string;
  pcap?: string;
  socketGroup?: string;
  socketOwner?: string;
  sanOwner?: string;
  logLevel?: string;
  /** --npiv-wwpn, repeatable: WWPN:WWNN pairs the guest may create NPIV vports with. */
  npivWwpn?: string[];
}

const INTERRUPT_CHOICES = ['msix', 'msi', 'intx'] as const;

export function registerServeCommand(program: Command): void {
  program
    .command('serve')
    .description('serve one emulated QLogic HBA (ISP2532 or ISP2432; one NPIV vport) to QEMU over vfio-user')
    .requiredOption('--socket <path>', 'Unix socket path QEMU connects to')
    .requiredOption('--wwpn <wwpn>', 'vport port name, e.g. 50:01:43:80:01:23:45:67')
    .requiredOption('--wwnn <wwnn>', 'vport node name')
    .option(
      '--interrupts <kind>',
      `interrupt capabilities offered to the guest: ${INTERRUPT_CHOICES.join(', ')}`,
      'msix',
    )
    .option(
      '--model <model>',
      `the HBA the guest sees: ${ISP_MODEL_NAMES.map((n) => `${n} (${ispModel(n).board}, ${maxSpeedGbps(ispModel(n))} Gb)`).join(', ')}`,
      DEFAULT_ISP_MODEL,
    )
    .option(
      '--san <path>',
      "link socket of a running `npiv-hba san`: the vport's cable to the fabric (without it the link stays down)",
    )
    .option(
      '--backend <backend>',
      "the vport's fabric: 'san' (the simulated SAN at --san, default) or host:PARENT (a real NPIV vport of the host's FC HBA PARENT = hostN or its WWPN; root; docs/host-backend.md)",
    )
    .option(
      '--pcap <file>',
      "record every frame on the vport's link (pcap, LINKTYPE_FC_2; needs --san); holds disk data, created 0600",
    )
    .option(
      '--socket-group <group>',
      'group (name or gid) whose members may connect: the socket becomes 0660 and group-owned',
    )
    .option(
      '--socket-owner <user>',
      'user (name or uid) QEMU runs as, if not this one (e.g. libvirt-qemu): may connect, owns the socket file',
    )
    .option('--san-owner <user>', 'user (name or uid) the SAN at --san may run as besides this one and root')
    .option(
      '--npiv-wwpn <wwpn:wwnn>',
      'grant the guest one NPIV vport name pair (fc_host vport_create); repeatable; none by default',
      (value: string, previous: string[] = []) => [...previous, value],
    )
    .option('--log-level <level>', 'pino log level (trace, debug, info, warn, error)')
    .action(async (opts: ServeOptions) => {
      await serve(opts);
    });
}

/** Prefixes a value's error with the option it came from. */
function named<T>(option: string, parse: () => T): T {
  try {
    return parse();
  } catch (err) {
    throw new Error(`${option}: ${(err as Error).message}`, { cause: err });
  }
}

/** The command line's values, checked; throws on the first bad one. */
function serveArguments(opts: ServeOptions) {
  if (opts.logLevel) checkLogLevel(opts.logLevel, '--log-level');
  const wwpn = named('--wwpn', () => parseWwn(opts.wwpn, 'WWPN'));
  const wwnn = named('--wwnn', () => parseWwn(opts.wwnn, 'WWNN'));
  const npivGrants = (opts.npivWwpn ?? []).map((p) => parseWwnPair(p, '--npiv-wwpn'));
  // Refuses duplicates and the base WWPN now, before anything is served.
  new IdentityPolicy({ wwpn, wwnn }, npivGrants);
  const interrupts = opts.interrupts ?? 'msix';
  if (!(INTERRUPT_CHOICES as readonly string[]).includes(interrupts)) {
    throw new Error(`invalid --interrupts '${interrupts}': expected one of ${INTERRUPT_CHOICES.join(', ')}`);
  }
  const modelName = opts.model ?? DEFAULT_ISP_MODEL;
  if (!isIspModelName(modelName)) {
    throw new Error(`invalid --model '${modelName}': expected one of ${ISP_MODEL_NAMES.join(', ')}`);
  }
  const model = ispModel(modelName);
  if (opts.pcap && !opts.san) throw new Error('--pcap records the SAN link: it needs --san');
  const backend = opts.backend ?? 'san';
  const hostParent = backend.startsWith('host:') ? backend.slice('host:'.length) : null;
  if (backend !== 'san' && (hostParent === null || hostParent === ''))
    throw new Error(`invalid --backend '${backend}': expected san or host:PARENT (PARENT = hostN or the port WWPN)`);
  if (hostParent !== null && opts.san !== undefined)
    throw new Error('--backend host:PARENT and --san exclude each other');
  // The parent's form now (hostN or a WWPN); whether that fc_host exists is checked at start.
  if (hostParent !== null) parseParentSpec(hostParent);
  checkSocketPathLength(opts.socket, '--socket');
  if (opts.san !== undefined) checkSocketPathLength(opts.san, '--san');
  const access: SocketAccess = {
    ...(opts.socketGroup !== undefined ? { group: parseGroup(opts.socketGroup, '--socket-group') } : {}),
    ...(opts.socketOwner !== undefined ? { owner: parseUser(opts.socketOwner, '--socket-owner') } : {}),
  };
  const sanOwners = opts.sanOwner !== undefined ? [parseUser(opts.sanOwner, '--san-owner')] : [];
  return {
    wwpn,
    wwnn,
    npivGrants,
    interrupts: interrupts as (typeof INTERRUPT_CHOICES)[number],
    model,
    hostParent,
    access,
    sanOwners,
  };
}

export async function serve(opts: ServeOptions): Promise<void> {
  // Every check of the command line first: a bad value is a usage error (exit 2).
  const { wwpn, wwnn, npivGrants, interrupts, model, hostParent, access, sanOwners } = usage(() =>
    serveArguments(opts),
  );
  if (opts.logLevel) setLogLevel(opts.logLevel);
  const log = logger('hba', { vport: formatWwn(wwpn) });
  const sanPath = opts.san;
  if (sanPath !== undefined) {
    // Checked up front: links are otherwise only opened when the guest's firmware logs in, and a
    // SAN that is not there would then show up as nothing but a link that never comes up.
    const probe = await probeUnixSocket(sanPath);
    if (probe.state === 'missing') {
      throw new Error(`SAN link socket ${sanPath} does not exist: start \`npiv-hba san --link ${sanPath}\` first`);
    }
    if (probe.state !== 'listening') {
      throw new Error(
        `SAN link socket ${sanPath}: ${describeProbe(probe)}; is \`npiv-hba san --link ${sanPath}\` running?`,
      );
    }
    // A socket another local user put at that path would get the vport's FLOGI and answer it:
    // who listens is checked now (nothing is sent) and again on every link (connectLink).
    verifySocketServer(sanPath, sanOwners, '--san-owner');
  }
  // Before anything is written next to it: a live server's stats file and capture are left alone
  // (VfioUserServer.start() checks again when it binds).
  if ((await probeUnixSocket(opts.socket)).state === 'listening') {
    throw new Error(`another vfio-user server is already listening on ${opts.socket}`);
  }
  // The socket's directory first (created private, or refused when others can write it): the stats
  // file is written next to the socket before the socket exists.
  prepareSocketDirectory(opts.socket, access);
  const pcap = opts.pcap ? new PcapWriter(opts.pcap) : null;
  // Counters for `npiv-hba vport stats`, in <socket>.stats.json (at most one write a second):
  // private, readable by the socket group too.
  const stats = new VportStatsWriter({
    socketPath: opts.socket,
    wwpn,
    log,
    ...(access.group !== undefined ? { group: access.group } : {}),
  });
  const initiator =
    sanPath === undefined
      ? null
      : new InitiatorFabricPort({
          // One link per fabric login: the vport's own cable, FLOGI on it. Re-probed after a loss.
          connect: async () => {
            const link = await connectLink(sanPath, { allowedUids: sanOwners, ownerOption: '--san-owner' });
            pcap?.recordLink(link);
            link.addTap((direction) => stats.count(direction === 'tx' ? 'framesTx' : 'framesRx'));
            return link;
          },
          // A capture of the vport's link must see every command: no data path then.
          dataPath: pcap === null,
          log: log.child({ layer: 'fabric' }),
        });
  // Host backend: the real fabric through an NPIV vport of the host's HBA, created (or adopted)
  // before the socket appears, and deleted when serve stops.
  const hostFabric =
    hostParent === null
      ? null
      : new HostFabricPort({
          sys: new Sysfs(),
          parent: hostParent,
          wwpn,
          wwnn,
          log: log.child({ layer: 'host-fabric' }),
        });
  if (hostFabric) {
    try {
      await hostFabric.start();
    } catch (e) {
      stats.close({ remove: true });
      throw e;
    }
  }
  const port: FabricPort | null = hostFabric ?? initiator;
  if (port === null) stats.setLink('down');
  const fabric = port === null ? null : countingFabricPort(port, stats);
  const hba = new VportHba({
    socketPath: opts.socket,
    wwpn,
    wwnn,
    npivGrants,
    fabric,
    model,
    interrupts,
    socketAccess: access,
    log,
  });
  // Clients that negotiated VERSION only: the tool's own connect-and-hang-up probes are not clients.
  hba.server.on('attach', () => stats.count('clientConnects'));
  hba.server.on('detach', () => stats.count('clientDisconnects'));
  await new Promise<void>((resolve, reject) => {
    const stop = (signal: string) => {
      log.info({ event: 'stopping', signal }, 'stopping');
      sdNotify({ stopping: true, status: `stopping (${signal})` });
      process.off('SIGTERM', onTerm);
      process.off('SIGINT', onInt);
      process.off('SIGHUP', onHup);
      hba.close();
      void Promise.all([initiator?.close(), hostFabric?.close()])
        .catch((e: unknown) => log.warn({ event: 'fabric_close_failed', error: String(e) }, 'fabric close failed'))
        .finally(() => {
          pcap?.close();
          stats.close();
          resolve();
        });
    };
    const onTerm = () => stop('SIGTERM');
    const onInt = () => stop('SIGINT');
    // SIGHUP (a closed terminal or session) would otherwise end the process without removing the socket.
    const onHup = () => stop('SIGHUP');
    // Handlers go in before the socket appears: whoever waits for the socket may signal at once.
    process.on('SIGTERM', onTerm);
    process.on('SIGINT', onInt);
    process.on('SIGHUP', onHup);
    try {
      hba.start();
    } catch (err) {
      process.off('SIGTERM', onTerm);
      process.off('SIGINT', onInt);
      process.off('SIGHUP', onHup);
      pcap?.close();
      stats.close({ remove: true });
      void initiator?.close().catch(() => {});
      void hostFabric?.close().catch(() => {});
      reject(err);
      return;
    }
    log.info(
      {
        event: 'listening',
        socket: opts.socket,
        wwpn: formatWwn(wwpn),
        wwnn: formatWwn(wwnn),
        model: model.name,
        npivGrants: npivGrants.map((g) => `${formatWwn(g.wwpn)}/${formatWwn(g.wwnn)}`),
      },
      'vfio-user server listening',
    );
    // The vfio-user socket accepts connections now: a Type=notify unit (and QEMU ordered after it) may go on.
    sdNotify({ ready: true, status: `serving ${formatWwn(wwpn)} on ${opts.socket}` });
  });
}
