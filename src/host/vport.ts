/**
 * Lifecycle of a host NPIV vport through the generic FC transport interface
 * (drivers/scsi/scsi_transport_fc.c): `vport_create` / `vport_delete` on the parent fc_host
 * (`store_fc_host_vport_create`, `store_fc_host_vport_delete`: "WWPN:WWNN" as 16 hex digits each,
 * `fc_parse_wwn`), the new fc_vport and the Scsi_Host the LLDD adds below it, and its
 * `vport_state` until Active. Works with any LLDD whose fc_host template has vport_create.
 *
 * Failures are classified (HostNpivError.kind) with messages an administrator can act on:
 * the parent cannot do NPIV, no fabric / the FDISC was refused (the vport stays Initializing: no
 * driver sets an error state for that, so it is a timeout), the WWPN is already in use, the vport
 * limit is reached, or this process may not write the attribute.
 */
import { formatWwn } from '../util/wwn.js';
import type { Logger } from '../util/log.js';
import { type FcHost, type FcVport, listFcHosts, listVports, readFcHost, readVport } from './fc-model.js';
import { type Sysfs, SysfsError } from './sysfs.js';

export type HostNpivErrorKind =
  | 'no-such-parent'
  | 'not-npiv-capable'
  | 'parent-offline'
  | 'no-fabric'
  | 'wwpn-in-use'
  | 'vport-limit'
  | 'permission'
  | 'failed';

export class HostNpivError extends Error {
  constructor(
    readonly kind: HostNpivErrorKind,
    message: string,
  ) {
    super(message);
    this.name = 'HostNpivError';
  }
}

/** "5001438001234567": the 16-digit form fc_parse_wwn accepts (no 0x). */
export function sysfsWwnArg(wwn: bigint): string {
  return wwn.toString(16).padStart(16, '0');
}

const SYS = (wwn: bigint) => `0x${wwn.toString(16)}`;

/** A parent fc_host as given to `serve --backend host:PARENT`: its host number or its port WWPN. */
export type ParentSpec = { hostNo: number } | { wwpn: bigint };

/**
 * The form of a parent: `hostN`, a bare host number, or the port WWPN (1–16 hex digits, colons
 * and `0x` allowed). Checks the form only, not that the fc_host exists. Throws no-such-parent.
 */
export function parseParentSpec(spec: string): ParentSpec {
  const hostMatch = /^(?:host)?([0-9]{1,9})$/.exec(spec.trim());
  if (hostMatch) return { hostNo: Number(hostMatch[1]) };
  const hex = spec.trim().replace(/^0x/i, '').replaceAll(':', '');
  if (!/^[0-9a-fA-F]{1,16}$/.test(hex)) {
    throw new HostNpivError(
      'no-such-parent',
      `invalid parent '${spec}': expected hostN or the parent port's WWPN (e.g. 21:00:00:24:ff:12:34:56)`,
    );
  }
  return { wwpn: BigInt(`0x${hex}`) };
}

/** Canonical text of a parent: `hostN`, or the WWPN as aa:bb:cc:dd:ee:ff:00:11. */
export function formatParentSpec(p: ParentSpec): string {
  return 'hostNo' in p ? `host${p.hostNo}` : formatWwn(p.wwpn);
}

/**
 * The parent fc_host: `hostN`, a bare host number, or the port WWPN in any accepted form.
 * Throws no-such-parent.
 */
export function resolveParent(sys: Sysfs, spec: string): FcHost {
  const parsed = parseParentSpec(spec);
  if ('hostNo' in parsed) {
    try {
      return readFcHost(sys, parsed.hostNo);
    } catch (e) {
      throw new HostNpivError(
        'no-such-parent',
        `no usable fc_host host${parsed.hostNo} under ${sys.path('class/fc_host')}: ${(e as Error).message}`,
      );
    }
  }
  const host = listFcHosts(sys).find((h) => h.portName === parsed.wwpn);
  if (!host) throw new HostNpivError('no-such-parent', `no fc_host has port name ${formatWwn(parsed.wwpn)}`);
  return host;
}

export interface AcquireOptions {
  parent: string;
  wwpn: bigint;
  wwnn: bigint;
  /** How long the vport may take to become Active (default 60 s, libvirt's LINUX_NEW_DEVICE_WAIT_TIME). */
  timeoutMs?: number;
  /** Re-read interval while waiting (vport_state changes send no uevent). */
  pollMs?: number;
  log?: Logger;
}

export interface HostVport {
  parent: FcHost;
  vport: FcVport;
  /** The vport's own Scsi_Host / fc_host number. */
  hostNo: number;
  /** True when a leftover vport with these names (after a crash) was taken over. */
  adopted: boolean;
}

const DEFAULT_TIMEOUT_MS = 60_000;
const DEFAULT_POLL_MS = 200;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function classifyWriteError(e: unknown, parent: FcHost, wwpn: bigint): HostNpivError {
  const code = e instanceof SysfsError ? e.code : undefined;
  const where = `host${parent.hostNo} (port ${formatWwn(parent.portName)})`;
  const detail = (e as Error).message;
  switch (code) {
    case 'EACCES':
    case 'EPERM':
    case 'EROFS':
      return new HostNpivError(
        'permission',
        `permission denied creating or deleting a vport on ${where}: vport_create/vport_delete are writable by root only (${detail})`,
      );
    case 'ENOSPC':
      return new HostNpivError(
        'vport-limit',
        `${where} has no free NPIV vport (npiv_vports_inuse reached max_npiv_vports): ${detail}`,
      );
    case 'ENOTUNIQ':
    case 'EEXIST':
      return new HostNpivError(
        'wwpn-in-use',
        `WWPN ${formatWwn(wwpn)} is already in use on the adapter of ${where}: ${detail}`,
      );
    case 'EOPNOTSUPP':
      return new HostNpivError(
        'no-fabric',
        `${where} cannot create vports now: not attached to a switch with NPIV enabled (${detail})`,
      );
    case 'ENOSYS':
    case 'ENOENT':
      return new HostNpivError('not-npiv-capable', `${where} does not support NPIV vports: ${detail}`);
    default:
      return new HostNpivError('failed', `creating the vport on ${where} failed: ${detail}`);
  }
}

function findVport(sys: Sysfs, wwpn: bigint): FcVport | undefined {
  return listVports(sys).find((v) => v.portName === wwpn);
}

/**
 * Creates (or adopts) the vport for wwpn:wwnn on the parent and waits until it is Active with a
 * Scsi_Host and a port ID. A leftover vport of the same WWPN on the same parent with the same WWNN
 * (a crashed serve) is adopted; one on another parent or with another WWNN is deleted first. A
 * vport this call created is deleted again when it fails.
 */
export async function acquireVport(sys: Sysfs, o: AcquireOptions): Promise<HostVport> {
  const timeoutMs = o.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const pollMs = o.pollMs ?? DEFAULT_POLL_MS;
  const parent = resolveParent(sys, o.parent);
  const where = `host${parent.hostNo} (port ${formatWwn(parent.portName)})`;
  if (!parent.npivCapable)
    throw new HostNpivError(
      'not-npiv-capable',
      `${where} cannot create NPIV vports: it has no vport_create (a vport host itself, or a driver without NPIV)`,
    );
  if (parent.portState !== 'Online')
    throw new HostNpivError('parent-offline', `${where} is ${parent.portState}: its link must be Online`);
  // The WWPN must not be any other port's (a physical port, or another host's vport).
  for (const h of listFcHosts(sys)) {
    if (h.portName !== o.wwpn) continue;
    const own = findVport(sys, o.wwpn);
    if (!own || own.hostNo !== h.hostNo)
      throw new HostNpivError(
        'wwpn-in-use',
        `WWPN ${formatWwn(o.wwpn)} is already the port name of host${h.hostNo}, which is not a vport this backend can take over`,
      );
  }
  const leftover = findVport(sys, o.wwpn);
  let adopted = false;
  if (leftover) {
    if (leftover.parentHostNo === parent.hostNo && leftover.nodeName === o.wwnn) {
      adopted = true;
      o.log?.warn(
        { event: 'host_vport_adopted', vport: leftover.name, state: leftover.state },
        'adopting a leftover vport with this WWPN (after a crash?)',
      );
    } else {
      o.log?.warn(
        { event: 'host_vport_cleaned', vport: leftover.name, state: leftover.state },
        'deleting a leftover vport with this WWPN on another parent or with another WWNN',
      );
      await deleteVport(sys, leftover.parentHostNo, leftover.portName, leftover.nodeName, { timeoutMs, pollMs });
    }
  }
  if (!adopted) {
    const fresh = readFcHost(sys, parent.hostNo);
    if (fresh.maxNpivVports !== null && fresh.npivVportsInuse !== null && fresh.npivVportsInuse >= fresh.maxNpivVports)
      throw new HostNpivError(
        'vport-limit',
        `${where} already uses ${fresh.npivVportsInuse} of ${fresh.maxNpivVports} NPIV vports`,
      );
    try {
      sys.write(`class/fc_host/host${parent.hostNo}/vport_create`, `${sysfsWwnArg(o.wwpn)}:${sysfsWwnArg(o.wwnn)}\n`);
    } catch (e) {
      throw classifyWriteError(e, parent, o.wwpn);
    }
    o.log?.info({ event: 'host_vport_create', parent: `host${parent.hostNo}` }, 'vport_create written');
  }
  try {
    const ready = await waitActive(sys, parent, o.wwpn, timeoutMs, pollMs);
    return { parent, vport: ready.vport, hostNo: ready.hostNo, adopted };
  } catch (e) {
    if (!adopted) {
      await deleteVport(sys, parent.hostNo, o.wwpn, o.wwnn, { timeoutMs: 10_000, pollMs }).catch((d: unknown) =>
        o.log?.error({ event: 'host_vport_cleanup_failed', error: String(d) }, 'could not delete the failed vport'),
      );
    }
    throw e;
  }
}

/** vport_state values after which waiting is pointless. */
const TERMINAL: Partial<Record<FcVport['state'], [HostNpivErrorKind, string]>> = {
  'No Fabric Support': ['no-fabric', 'the fabric does not support NPIV (FDISC not accepted)'],
  'No Fabric Resources': ['no-fabric', 'the fabric has no resources for another N_Port ID'],
  'Fabric Rejected WWN': ['wwpn-in-use', 'the fabric rejected the WWPN (already logged in elsewhere?)'],
  'VPort Failed': ['failed', 'the driver reports VPort Failed'],
  Disabled: ['failed', 'the vport is disabled (vport_disable)'],
};

async function waitActive(
  sys: Sysfs,
  parent: FcHost,
  wwpn: bigint,
  timeoutMs: number,
  pollMs: number,
): Promise<{ vport: FcVport; hostNo: number }> {
  const deadline = Date.now() + timeoutMs;
  let last: FcVport | undefined;
  let lastError: string | null = null;
  for (;;) {
    try {
      last = findVport(sys, wwpn);
      lastError = null;
    } catch (e) {
      lastError = (e as Error).message;
    }
    if (last) {
      const terminal = TERMINAL[last.state];
      if (terminal)
        throw new HostNpivError(
          terminal[0],
          `vport ${last.name} for ${formatWwn(wwpn)}: ${last.state}: ${terminal[1]}`,
        );
      if (last.state === 'Active' && last.hostNo !== null) {
        try {
          const host = readFcHost(sys, last.hostNo);
          if (host.portId !== 0) return { vport: last, hostNo: last.hostNo };
        } catch (e) {
          lastError = (e as Error).message; // the fc_host is still being added
        }
      }
    }
    if (Date.now() >= deadline) break;
    await sleep(pollMs);
  }
  const secs = Math.round(timeoutMs / 1000);
  if (!last)
    throw new HostNpivError(
      'failed',
      `no fc_vport with port name ${SYS(wwpn)} appeared under host${parent.hostNo} within ${secs} s${lastError ? ` (${lastError})` : ''}`,
    );
  if (last.state === 'Initializing' || last.state === 'Unknown')
    throw new HostNpivError(
      'no-fabric',
      `vport ${last.name} stayed ${last.state} for ${secs} s: the fabric did not accept its FDISC ` +
        '(switch without NPIV, the WWPN logged in elsewhere, or no fabric behind the parent)',
    );
  if (last.state === 'Linkdown')
    throw new HostNpivError('no-fabric', `vport ${last.name} is Linkdown: the parent's link is down`);
  throw new HostNpivError(
    'failed',
    `vport ${last.name} is ${last.state} but has no Scsi_Host with a port ID after ${secs} s${lastError ? ` (${lastError})` : ''}`,
  );
}

/**
 * Deletes the vport wwpn:wwnn through the parent's vport_delete and waits until it is gone
 * (`fc_vport_terminate` runs as queued work). A vport that is already gone is not an error.
 */
export async function deleteVport(
  sys: Sysfs,
  parentHostNo: number,
  wwpn: bigint,
  wwnn: bigint,
  o: { timeoutMs?: number; pollMs?: number } = {},
): Promise<void> {
  const timeoutMs = o.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const pollMs = o.pollMs ?? DEFAULT_POLL_MS;
  try {
    sys.write(`class/fc_host/host${parentHostNo}/vport_delete`, `${sysfsWwnArg(wwpn)}:${sysfsWwnArg(wwnn)}\n`);
  } catch (e) {
    // ENODEV: no such vport (store_fc_host_vport_delete), already gone.
    if (!(e instanceof SysfsError && e.code === 'ENODEV')) {
      let parent: FcHost;
      try {
        parent = readFcHost(sys, parentHostNo);
      } catch {
        throw e;
      }
      throw classifyWriteError(e, parent, wwpn);
    }
  }
  const deadline = Date.now() + timeoutMs;
  while (findVport(sys, wwpn)) {
    if (Date.now() >= deadline)
      throw new HostNpivError(
        'failed',
        `vport ${formatWwn(wwpn)} still exists ${Math.round(timeoutMs / 1000)} s after vport_delete`,
      );
    await sleep(pollMs);
  }
}

/** Re-reads the vport (null when it is gone). */
export function refreshVport(sys: Sysfs, name: string): FcVport | null {
  try {
    return readVport(sys, name);
  } catch {
    return null;
  }
}
