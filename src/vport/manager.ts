/**
 * define / undefine: the rules that span definitions (unique UUID, WWPN, socket path) and the
 * generation of what was not given (UUID, WWPN/WWNN, socket path).
 */
import { randomUUID } from 'node:crypto';
import { unlinkSync } from 'node:fs';
import { join } from 'node:path';
import type { IspModelName } from '../isp/model.js';
import { parseGroup, parseUser } from '../util/private-socket.js';
import { formatWwn, parseWwn, parseWwnPair, WwnError } from '../util/wwn.js';
import {
  checkAccountName,
  checkSocketPath,
  definitionFromJson,
  definitionToJson,
  MAX_NPIV_GRANTS,
  NPIV_NEEDS_FABRIC,
  parseHostParent,
  parseUuid,
  type VportBackend,
  type VportDefinition,
} from './definition.js';
import { VportError, VportUsageError } from './errors.js';
import { forgetRuntime, stopVport, vportStatus, type StopOptions, type StopResult } from './runtime.js';
import { statsPathFor } from './stats.js';
import type { VportStore } from './store.js';
import {
  cryptoRandomBits,
  DEFAULT_NAA_PREFIX,
  deriveWwnn,
  generateWwnPair,
  parseNaaPrefix,
  type RandomBits,
} from './wwn-gen.js';

export const NAA_PREFIX_ENV = 'NPIV_HBA_NAA_PREFIX';

export interface DefineRequest {
  uuid?: string;
  wwpn?: string;
  wwnn?: string;
  /** default: NPIV_HBA_NAA_PREFIX, else DEFAULT_NAA_PREFIX */
  naaPrefix?: string;
  backend: VportBackend;
  socket?: string;
  autostart: boolean;
  /** serve --socket-owner (user name or uid) */
  socketOwner?: string;
  /** serve --socket-group (group name or gid) */
  socketGroup?: string;
  /** serve --san-owner (user name or uid); only with a san backend */
  sanOwner?: string;
  /** serve --npiv-wwpn: WWPN:WWNN pairs the guest may create NPIV vports with */
  npiv?: string[];
  /** serve --model (isp2532 when absent) */
  model?: IspModelName;
}

export interface DefineContext {
  store: VportStore;
  runDir: string;
  env?: NodeJS.ProcessEnv;
  random?: RandomBits;
}

function parseWwnArg(text: string, what: string): bigint {
  try {
    return parseWwn(text, what);
  } catch (err) {
    if (err instanceof WwnError) throw new VportUsageError(err.message);
    throw err;
  }
}

/**
 * A user or group for a serve access option, checked as serve will check it at start (so a typo
 * fails now, not at the next boot): the name must exist, an id is taken as it is.
 */
function checkAccount(text: string | undefined, option: string, kind: 'user' | 'group'): string | undefined {
  if (text === undefined) return undefined;
  const spec = checkAccountName(text.trim(), option);
  try {
    if (kind === 'user') parseUser(spec, option);
    else parseGroup(spec, option);
  } catch (err) {
    throw new VportUsageError((err as Error).message);
  }
  return spec;
}

/** Validates and stores a new definition; returns it. */
export async function defineVport(req: DefineRequest, ctx: DefineContext): Promise<VportDefinition> {
  // Everything that can be checked without the store is checked first (usage errors, exit 2).
  const givenUuid = req.uuid === undefined ? undefined : parseUuid(req.uuid);
  const givenWwpn = req.wwpn === undefined ? undefined : parseWwnArg(req.wwpn, 'WWPN');
  const givenWwnn = req.wwnn === undefined ? undefined : parseWwnArg(req.wwnn, 'WWNN');
  const prefix = parseNaaPrefix(req.naaPrefix ?? ctx.env?.[NAA_PREFIX_ENV] ?? DEFAULT_NAA_PREFIX);
  const givenSocket = req.socket === undefined ? undefined : checkSocketPath(req.socket, 'socket path');
  if (givenWwpn !== undefined && givenWwpn === givenWwnn)
    throw new VportUsageError('the WWPN and the WWNN must differ');
  if (req.sanOwner !== undefined && req.backend.type !== 'san') {
    throw new VportUsageError(
      '--san-owner names who may run the SAN at the backend link: it needs --backend san:LINKPATH',
    );
  }
  const npiv = (req.npiv ?? []).map((p) => {
    try {
      return parseWwnPair(p, '--npiv-wwpn');
    } catch (err) {
      if (err instanceof WwnError) throw new VportUsageError(err.message);
      throw err;
    }
  });
  if (npiv.length > 0 && req.backend.type === 'host') throw new VportUsageError(`--npiv-wwpn: ${NPIV_NEEDS_FABRIC}`);
  // A host parent in canonical form, whoever built the request (the CLI parses it already).
  const backend: VportBackend =
    req.backend.type === 'host' ? { type: 'host', parent: parseHostParent(req.backend.parent) } : req.backend;
  if (npiv.length > MAX_NPIV_GRANTS) throw new VportUsageError(`at most ${MAX_NPIV_GRANTS} --npiv-wwpn pairs`);
  if (new Set(npiv.map((g) => g.wwpn)).size !== npiv.length)
    throw new VportUsageError('the same --npiv-wwpn WWPN is given twice');
  const access = {
    socketOwner: checkAccount(req.socketOwner, '--socket-owner', 'user'),
    socketGroup: checkAccount(req.socketGroup, '--socket-group', 'group'),
    sanOwner: checkAccount(req.sanOwner, '--san-owner', 'user'),
  };

  return ctx.store.withLock(() => {
    const { definitions, problems } = ctx.store.list();
    if (problems.length > 0) {
      throw new VportError(
        `cannot check the new vport against invalid definitions; fix or remove them first:\n` +
          problems.map((p) => `  ${p.file}: ${p.message}`).join('\n'),
      );
    }
    const uuid = givenUuid ?? freshUuid(definitions);
    const existing = definitions.find((d) => d.uuid === uuid);
    if (existing) throw new VportError(`vport ${uuid} is already defined (${ctx.store.definitionPath(uuid)})`);

    const ownerOf = new Map<bigint, string>();
    for (const d of definitions) {
      ownerOf.set(d.wwpn, `vport ${d.uuid} (its WWPN)`);
      if (!ownerOf.has(d.wwnn)) ownerOf.set(d.wwnn, `vport ${d.uuid} (its WWNN)`);
      for (const g of d.npiv ?? []) ownerOf.set(g.wwpn, `vport ${d.uuid} (an NPIV grant)`);
    }
    // A granted WWPN logs in to the fabric like any vport's: it must be unique on this host.
    for (const g of npiv) {
      const owner = ownerOf.get(g.wwpn);
      if (owner) throw new VportError(`duplicate NPIV WWPN ${formatWwn(g.wwpn)}: already used by ${owner}`);
    }
    const wwpnsInUse = new Map(definitions.map((d) => [d.wwpn, d.uuid]));

    let wwpn: bigint;
    let wwnn: bigint;
    if (givenWwpn !== undefined) {
      const owner = ownerOf.get(givenWwpn);
      if (owner) throw new VportError(`duplicate WWPN ${formatWwn(givenWwpn)}: already used by ${owner}`);
      wwpn = givenWwpn;
      if (givenWwnn !== undefined) {
        wwnn = givenWwnn;
      } else {
        wwnn = deriveWwnn(wwpn);
        const clash = ownerOf.get(wwnn);
        if (clash || wwnn === wwpn) {
          throw new VportError(
            `the WWNN derived from WWPN ${formatWwn(wwpn)} (${formatWwn(wwnn)}) is already used by ${clash}; give --wwnn`,
          );
        }
      }
    } else {
      const inUse = new Set(ownerOf.keys());
      if (givenWwnn !== undefined) inUse.add(givenWwnn);
      const pair = generateWwnPair(prefix, inUse, ctx.random ?? cryptoRandomBits);
      wwpn = pair.wwpn;
      wwnn = givenWwnn ?? pair.wwnn;
    }
    // A WWNN may be shared by several ports of one node, but never be another port's WWPN.
    const wwnnAsPort = wwpnsInUse.get(wwnn);
    if (wwnnAsPort) throw new VportError(`WWNN ${formatWwn(wwnn)} is the WWPN of vport ${wwnnAsPort}`);

    const socket = givenSocket ?? checkSocketPath(join(ctx.runDir, `${uuid}.sock`), 'socket path');
    const socketOwner = definitions.find((d) => d.socket === socket);
    if (socketOwner) throw new VportError(`socket path ${socket} is already used by vport ${socketOwner.uuid}`);
    const linkOwner = definitions.find((d) => d.backend.type === 'san' && d.backend.link === socket);
    if (linkOwner || (req.backend.type === 'san' && req.backend.link === socket)) {
      throw new VportError(`socket path ${socket} is a SAN link socket, not a vfio-user socket`);
    }
    const sanSocketClash =
      req.backend.type === 'san'
        ? definitions.find((d) => d.socket === (req.backend as { link: string }).link)
        : undefined;
    if (sanSocketClash)
      throw new VportError(
        `SAN link path ${(req.backend as { link: string }).link} is the vfio-user socket of vport ${sanSocketClash.uuid}`,
      );

    const def: VportDefinition = {
      uuid,
      wwpn,
      wwnn,
      backend,
      socket,
      autostart: req.autostart,
      ...(access.socketOwner !== undefined ? { socketOwner: access.socketOwner } : {}),
      ...(access.socketGroup !== undefined ? { socketGroup: access.socketGroup } : {}),
      ...(access.sanOwner !== undefined ? { sanOwner: access.sanOwner } : {}),
      ...(npiv.length > 0 ? { npiv } : {}),
      ...(req.model !== undefined ? { model: req.model } : {}),
    };
    if (npiv.some((g) => g.wwpn === wwpn)) throw new VportError(`NPIV WWPN ${formatWwn(wwpn)} is the vport's own WWPN`);
    ctx.store.create(def);
    return def;
  });
}

function freshUuid(definitions: readonly VportDefinition[]): string {
  const taken = new Set(definitions.map((d) => d.uuid));
  for (;;) {
    const uuid = randomUUID();
    if (!taken.has(uuid)) return uuid; // 122 random bits: one draw in practice
  }
}

export interface UndefineResult {
  stopped: StopResult | null;
}

/** Removes a definition; a running vport is refused unless `force`, which stops it first. */
export async function undefineVport(
  uuid: string,
  ctx: { store: VportStore; runDir: string; force: boolean; stop?: StopOptions },
): Promise<UndefineResult> {
  const def = ctx.store.get(uuid);
  const status = vportStatus(def, ctx.runDir);
  let stopped: StopResult | null = null;
  if (status.status === 'unknown') throw new VportError(`cannot tell whether vport ${uuid} runs: ${status.reason}`);
  if (status.status === 'running') {
    if (!ctx.force) throw new VportError(`vport ${uuid} is running (pid ${status.pid}); stop it first or use --force`);
    stopped = await stopVport(def, ctx.runDir, ctx.stop);
  } else if (status.status === 'stale') {
    stopped = await stopVport(def, ctx.runDir, ctx.stop);
  }
  ctx.store.remove(uuid);
  forgetRuntime(ctx.runDir, uuid);
  // A serve that was killed (SIGKILL, crash) leaves its counters behind; the vport is stopped now.
  try {
    unlinkSync(statsPathFor(def.socket));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  return { stopped };
}

/** Fields `modify` can drop from a definition (the optional ones). */
export const UNSETTABLE_FIELDS = ['socketOwner', 'socketGroup', 'sanOwner', 'npiv', 'model'] as const;
export type UnsettableField = (typeof UNSETTABLE_FIELDS)[number];

/** What `vport modify` changes; absent fields keep their value. */
export interface ModifyRequest {
  wwpn?: string;
  wwnn?: string;
  backend?: VportBackend;
  socket?: string;
  autostart?: boolean;
  socketOwner?: string;
  socketGroup?: string;
  sanOwner?: string;
  /** replaces every grant */
  npiv?: string[];
  model?: IspModelName;
  unset?: UnsettableField[];
}

export interface ModifyResult {
  def: VportDefinition;
  /** the vport runs: the serve process keeps the old definition until it is restarted */
  running: boolean;
}

/**
 * The names and paths `def` would share with another definition, as the error define gives for
 * the same clash; null when there is none.
 */
function clashWithOthers(def: VportDefinition, others: readonly VportDefinition[]): string | null {
  for (const o of others) {
    const theirPorts = new Set([o.wwpn, ...(o.npiv ?? []).map((g) => g.wwpn)]);
    if (theirPorts.has(def.wwpn) || o.wwnn === def.wwpn)
      return `duplicate WWPN ${formatWwn(def.wwpn)}: already used by vport ${o.uuid}`;
    for (const g of def.npiv ?? [])
      if (theirPorts.has(g.wwpn) || o.wwnn === g.wwpn)
        return `duplicate NPIV WWPN ${formatWwn(g.wwpn)}: already used by vport ${o.uuid}`;
    if (theirPorts.has(def.wwnn)) return `WWNN ${formatWwn(def.wwnn)} is a WWPN of vport ${o.uuid}`;
    if (o.socket === def.socket) return `socket path ${def.socket} is already used by vport ${o.uuid}`;
    if (o.backend.type === 'san' && o.backend.link === def.socket)
      return `socket path ${def.socket} is a SAN link socket, not a vfio-user socket`;
    if (def.backend.type === 'san' && def.backend.link === o.socket)
      return `SAN link path ${def.backend.link} is the vfio-user socket of vport ${o.uuid}`;
  }
  if (def.backend.type === 'san' && def.backend.link === def.socket)
    return `socket path ${def.socket} is a SAN link socket, not a vfio-user socket`;
  return null;
}

/**
 * Changes fields of a defined vport (mdevctl modify). A running vport keeps serving what it was
 * started with: the change applies at its next start. Its names are what the fabric, zoning and
 * the guest know it by, so they are not changed under a running serve.
 */
export async function modifyVport(uuid: string, req: ModifyRequest, ctx: DefineContext): Promise<ModifyResult> {
  const wwpn = req.wwpn === undefined ? undefined : parseWwnArg(req.wwpn, 'WWPN');
  const wwnn = req.wwnn === undefined ? undefined : parseWwnArg(req.wwnn, 'WWNN');
  const socket = req.socket === undefined ? undefined : checkSocketPath(req.socket, 'socket path');
  const npiv = req.npiv?.map((p) => {
    try {
      return parseWwnPair(p, '--npiv-wwpn');
    } catch (err) {
      if (err instanceof WwnError) throw new VportUsageError(err.message);
      throw err;
    }
  });
  const unset = new Set(req.unset ?? []);
  const setAndUnset = UNSETTABLE_FIELDS.filter((f) => unset.has(f) && req[f] !== undefined);
  if (setAndUnset.length > 0) throw new VportUsageError(`${setAndUnset.join(', ')}: both set and unset`);
  const access = {
    socketOwner: checkAccount(req.socketOwner, '--socket-owner', 'user'),
    socketGroup: checkAccount(req.socketGroup, '--socket-group', 'group'),
    sanOwner: checkAccount(req.sanOwner, '--san-owner', 'user'),
  };
  const backend: VportBackend | undefined =
    req.backend?.type === 'host' ? { type: 'host', parent: parseHostParent(req.backend.parent) } : req.backend;

  return ctx.store.withLock(() => {
    const old = ctx.store.get(uuid);
    const status = vportStatus(old, ctx.runDir);
    const running = status.status === 'running';
    if (running && ((wwpn !== undefined && wwpn !== old.wwpn) || (wwnn !== undefined && wwnn !== old.wwnn)))
      throw new VportError(
        `vport ${uuid} is running (pid ${status.pid}): its WWPN/WWNN are what the fabric and the guest know it by; stop it before changing them`,
      );
    const merged: VportDefinition = {
      ...old,
      ...(wwpn !== undefined ? { wwpn } : {}),
      ...(wwnn !== undefined ? { wwnn } : {}),
      ...(backend !== undefined ? { backend } : {}),
      ...(socket !== undefined ? { socket } : {}),
      ...(req.autostart !== undefined ? { autostart: req.autostart } : {}),
      ...(access.socketOwner !== undefined ? { socketOwner: access.socketOwner } : {}),
      ...(access.socketGroup !== undefined ? { socketGroup: access.socketGroup } : {}),
      ...(access.sanOwner !== undefined ? { sanOwner: access.sanOwner } : {}),
      ...(npiv !== undefined ? { npiv } : {}),
      ...(req.model !== undefined ? { model: req.model } : {}),
    };
    for (const f of unset) delete merged[f];
    // The rules within one definition are the file format's: check the result as a file is checked.
    let def: VportDefinition;
    try {
      def = definitionFromJson(definitionToJson(merged));
    } catch (err) {
      throw new VportUsageError(`the modified definition would be invalid: ${(err as Error).message}`);
    }
    const { definitions, problems } = ctx.store.list();
    if (problems.length > 0) {
      throw new VportError(
        `cannot check the change against invalid definitions; fix or remove them first:\n` +
          problems.map((p) => `  ${p.file}: ${p.message}`).join('\n'),
      );
    }
    const clash = clashWithOthers(
      def,
      definitions.filter((d) => d.uuid !== uuid),
    );
    if (clash) throw new VportError(clash);
    ctx.store.replace(def);
    return { def, running };
  });
}
