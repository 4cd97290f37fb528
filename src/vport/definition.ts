/**
 * A vport definition: the persistent description of one NPIV vport HBA, in the manner of an
 * mdevctl device configuration (one JSON file per device, named by its UUID). The file format:
 *
 *   {
 *     "version": 1,
 *     "uuid": "7d3c5e0a-2f4b-4c61-9a8e-0b1c2d3e4f50",
 *     "wwpn": "50:01:43:80:01:23:45:67",
 *     "wwnn": "50:01:43:80:01:23:45:66",
 *     "backend": { "type": "san", "link": "/run/npiv-hba/san.sock" }   // or { "type": "none" },
 *                                   // or { "type": "host", "parent": "host5" } (serve --backend host:PARENT)
 *     "socket": "/run/npiv-hba/7d3c5e0a-2f4b-4c61-9a8e-0b1c2d3e4f50.sock",
 *     "autostart": false,
 *     "socketOwner": "libvirt-qemu",   // optional: serve --socket-owner
 *     "socketGroup": "kvm",            // optional: serve --socket-group
 *     "sanOwner": "npiv-san",          // optional: serve --san-owner (san backend only)
 *     "npiv": [{ "wwpn": "c0:50:…", "wwnn": "c0:50:…" }],  // optional: serve --npiv-wwpn, each pair
 *     "model": "isp2432"               // optional: serve --model (isp2532 when absent)
 *   }
 *
 * The three access fields hold a user or group as given (a name, or a numeric id): a name is
 * resolved by serve each time the vport starts. Files written before they existed stay valid.
 *
 * Files are written by this tool but may be edited by hand, so every read is validated (zod) and
 * a bad file is reported by name, never half-trusted.
 */
import { isAbsolute, resolve } from 'node:path';
import { z } from 'zod';
import { formatParentSpec, parseParentSpec } from '../host/vport.js';
import { ISP_MODEL_NAMES, type IspModelName } from '../isp/model.js';
import { formatWwn, parseWwn } from '../util/wwn.js';
import { describeIssue } from '../util/zod-message.js';
import { VportUsageError } from './errors.js';

export const DEFINITION_FORMAT_VERSION = 1;

/** NPIV name pairs one definition may grant (the firmware offers 127 VP indices). */
export const MAX_NPIV_GRANTS = 127;

/** sun_path is 108 bytes including the terminating NUL (linux/un.h). */
export const UNIX_SOCKET_PATH_MAX = 107;

/**
 * Why grants and a host backend exclude each other: the host backend's FabricPort has no
 * newNpivPort (one host vport per serve), so the firmware would refuse every VP_CONFIG
 * (vport_err_no_npiv) and the guest's vports would all be Failed.
 */
export const NPIV_NEEDS_FABRIC =
  'NPIV grants need the simulated SAN: a host backend serves exactly one host vport, the guest cannot create further ones';

const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/**
 * The vport's fabric: none (no cable), the simulated SAN at a link socket, or the real fabric
 * through an NPIV vport of the host's FC HBA `parent` (`hostN` or its port WWPN, stored in the
 * canonical form of formatParentSpec; docs/host-backend.md).
 */
export type VportBackend = { type: 'none' } | { type: 'san'; link: string } | { type: 'host'; parent: string };

export interface VportDefinition {
  uuid: string;
  wwpn: bigint;
  wwnn: bigint;
  backend: VportBackend;
  /** vfio-user socket QEMU connects to (absolute path) */
  socket: string;
  /** start when `npiv-hba vport start --auto` runs (at boot) */
  autostart: boolean;
  /** serve --socket-owner: the user (name or uid) QEMU runs as, if not the one running serve */
  socketOwner?: string;
  /** serve --socket-group: the group (name or gid) whose members may connect to the socket */
  socketGroup?: string;
  /** serve --san-owner: the user (name or uid) the SAN at the backend's link may run as */
  sanOwner?: string;
  /** serve --npiv-wwpn: name pairs the guest may create NPIV vports with (none when absent) */
  npiv?: { wwpn: bigint; wwnn: bigint }[];
  /** serve --model: the ISP the guest sees (serve's default, isp2532, when absent) */
  model?: IspModelName;
}

/** The definition fields that become serve options, with the option each one is passed as. */
export const ACCESS_OPTIONS = [
  { field: 'socketOwner', option: '--socket-owner' },
  { field: 'socketGroup', option: '--socket-group' },
  { field: 'sanOwner', option: '--san-owner' },
] as const;

/**
 * A user or group name, or a numeric id, as passed to serve: it becomes one argv word, so nothing
 * that commander could read as an option (a leading '-') and no whitespace or control characters.
 */
const ACCOUNT_PATTERN = /^[A-Za-z0-9_.][A-Za-z0-9_.@-]{0,255}\$?$/;

/** Checks the form of a user or group given for `option`; whether it exists is checked by the caller. */
export function checkAccountName(text: string, option: string): string {
  if (!ACCOUNT_PATTERN.test(text)) {
    throw new VportUsageError(`invalid ${option} '${text}': expected a user or group name, or a numeric id`);
  }
  return text;
}

/** Canonical (lower-case) UUID, or a usage error naming the input. */
export function parseUuid(text: string): string {
  const uuid = text.trim().toLowerCase();
  if (!UUID_PATTERN.test(uuid)) {
    throw new VportUsageError(
      `invalid UUID '${text}': expected 8-4-4-4-12 hex digits, e.g. 7d3c5e0a-2f4b-4c61-9a8e-0b1c2d3e4f50`,
    );
  }
  return uuid;
}

export function isUuid(text: string): boolean {
  return UUID_PATTERN.test(text);
}

/** Checks a Unix socket path: absolute, fits sun_path, no control characters (they would break line-oriented output). */
export function checkSocketPath(path: string, what: string): string {
  if (!isAbsolute(path)) throw new VportUsageError(`${what} '${path}' must be an absolute path`);
  // biome-ignore lint/suspicious/noControlCharactersInRegex: the pattern exists to refuse control characters
  if (/[\u0000-\u001f\u007f]/.test(path)) throw new VportUsageError(`${what} must not contain control characters`);
  const bytes = Buffer.byteLength(path);
  if (bytes > UNIX_SOCKET_PATH_MAX) {
    throw new VportUsageError(
      `${what} '${path}' is ${bytes} bytes long; a Unix socket path holds at most ${UNIX_SOCKET_PATH_MAX}`,
    );
  }
  return path;
}

/** The parent of a host backend in canonical form (`hostN` or a WWPN), or a usage error. */
export function parseHostParent(text: string): string {
  try {
    return formatParentSpec(parseParentSpec(text));
  } catch (err) {
    throw new VportUsageError(`invalid backend 'host:${text}': ${(err as Error).message}`);
  }
}

/**
 * `none`, `san:LINKPATH` (a relative LINKPATH is taken from cwd and stored absolute) or
 * `host:PARENT` (PARENT = hostN or the parent port's WWPN, as `serve --backend` accepts it).
 */
export function parseBackend(text: string, cwd: string = process.cwd()): VportBackend {
  if (text === 'none') return { type: 'none' };
  if (text.startsWith('san:') && text.length > 'san:'.length) {
    return { type: 'san', link: checkSocketPath(resolve(cwd, text.slice('san:'.length)), 'SAN link path') };
  }
  if (text.startsWith('host:') && text.length > 'host:'.length) {
    return { type: 'host', parent: parseHostParent(text.slice('host:'.length)) };
  }
  throw new VportUsageError(
    `invalid backend '${text}': expected 'none', 'san:LINKPATH' (the SAN's link socket) or 'host:PARENT' (the host's FC HBA: hostN or its WWPN)`,
  );
}

export function formatBackend(backend: VportBackend): string {
  switch (backend.type) {
    case 'none':
      return 'none';
    case 'san':
      return `san:${backend.link}`;
    case 'host':
      return `host:${backend.parent}`;
  }
}

const WwnText = (what: string) =>
  z.string().transform((text, ctx) => {
    try {
      return parseWwn(text, what);
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: (err as Error).message });
      return z.NEVER;
    }
  });

const SocketPathText = (what: string) =>
  z.string().transform((text, ctx) => {
    try {
      return checkSocketPath(text, what);
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: (err as Error).message });
      return z.NEVER;
    }
  });

const HostParentText = z.string().transform((text, ctx) => {
  try {
    return parseHostParent(text);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: (err as Error).message });
    return z.NEVER;
  }
});

const AccountText = (option: string) =>
  z.string().refine((text) => ACCOUNT_PATTERN.test(text), {
    message: `expected a user or group name, or a numeric id (serve ${option})`,
  });

/** The fields of a definition file, before the rules that span fields. */
const DefinitionFields = z
  .object({
    version: z.literal(DEFINITION_FORMAT_VERSION),
    uuid: z.string().regex(UUID_PATTERN, 'uuid must be a lower-case 8-4-4-4-12 UUID'),
    wwpn: WwnText('WWPN'),
    wwnn: WwnText('WWNN'),
    backend: z.discriminatedUnion('type', [
      z.object({ type: z.literal('none') }).strict(),
      z.object({ type: z.literal('san'), link: SocketPathText('SAN link path') }).strict(),
      z.object({ type: z.literal('host'), parent: HostParentText }).strict(),
    ]),
    socket: SocketPathText('socket path'),
    autostart: z.boolean(),
    socketOwner: AccountText('--socket-owner').optional(),
    socketGroup: AccountText('--socket-group').optional(),
    sanOwner: AccountText('--san-owner').optional(),
    npiv: z
      .array(z.object({ wwpn: WwnText('NPIV WWPN'), wwnn: WwnText('NPIV WWNN') }).strict())
      .max(MAX_NPIV_GRANTS)
      .optional(),
    model: z.enum(ISP_MODEL_NAMES).optional(),
  })
  .strict();

export const VportDefinitionFileSchema = DefinitionFields.refine(
  (d) => new Set([d.wwpn, ...(d.npiv ?? []).map((g) => g.wwpn)]).size === 1 + (d.npiv?.length ?? 0),
  {
    message: 'every NPIV WWPN must differ from the others and from the vport WWPN',
    path: ['npiv'],
  },
)
  .refine((d) => d.wwpn !== d.wwnn, { message: 'wwpn and wwnn must differ' })
  .refine((d) => d.sanOwner === undefined || d.backend.type === 'san', {
    message: 'sanOwner needs a san backend',
    path: ['sanOwner'],
  })
  .refine((d) => d.backend.type !== 'host' || d.npiv === undefined || d.npiv.length === 0, {
    message: NPIV_NEEDS_FABRIC,
    path: ['npiv'],
  });

function backendToJson(backend: VportBackend): object {
  switch (backend.type) {
    case 'none':
      return { type: 'none' };
    case 'san':
      return { type: 'san', link: backend.link };
    case 'host':
      return { type: 'host', parent: backend.parent };
  }
}

export function definitionToJson(def: VportDefinition): object {
  return {
    version: DEFINITION_FORMAT_VERSION,
    uuid: def.uuid,
    wwpn: formatWwn(def.wwpn),
    wwnn: formatWwn(def.wwnn),
    backend: backendToJson(def.backend),
    socket: def.socket,
    autostart: def.autostart,
    // Written only when set: a definition without them reads the same as before they existed.
    ...(def.socketOwner !== undefined ? { socketOwner: def.socketOwner } : {}),
    ...(def.socketGroup !== undefined ? { socketGroup: def.socketGroup } : {}),
    ...(def.sanOwner !== undefined ? { sanOwner: def.sanOwner } : {}),
    ...(def.npiv !== undefined && def.npiv.length > 0
      ? { npiv: def.npiv.map((g) => ({ wwpn: formatWwn(g.wwpn), wwnn: formatWwn(g.wwnn) })) }
      : {}),
    ...(def.model !== undefined ? { model: def.model } : {}),
  };
}

/** Validates parsed JSON; throws an Error listing every problem (the caller adds the file name). */
export function definitionFromJson(json: unknown): VportDefinition {
  const result = VportDefinitionFileSchema.safeParse(json);
  if (!result.success) {
    const problems = result.error.issues.map((i) => (i.path.length ? `${i.path.join('.')}: ${i.message}` : i.message));
    throw new Error(problems.join('; '));
  }
  const d = result.data;
  return {
    uuid: d.uuid,
    wwpn: d.wwpn,
    wwnn: d.wwnn,
    backend: d.backend,
    socket: d.socket,
    autostart: d.autostart,
    ...(d.socketOwner !== undefined ? { socketOwner: d.socketOwner } : {}),
    ...(d.socketGroup !== undefined ? { socketGroup: d.socketGroup } : {}),
    ...(d.sanOwner !== undefined ? { sanOwner: d.sanOwner } : {}),
    ...(d.npiv !== undefined && d.npiv.length > 0 ? { npiv: d.npiv } : {}),
    ...(d.model !== undefined ? { model: d.model } : {}),
  };
}

/**
 * What `vport define --jsonfile FILE` reads (mdevctl's `define --jsonfile`): a definition file
 * in the format above in which everything define would otherwise generate or default may be left
 * out — version, uuid, wwpn, wwnn, socket, autostart and backend (none). A full definition file,
 * e.g. one copied from another host, is accepted as it is.
 */
export const DefineFileSchema = DefinitionFields.partial({
  version: true,
  uuid: true,
  wwpn: true,
  wwnn: true,
  socket: true,
  autostart: true,
  backend: true,
});

export type DefineFileFields = z.output<typeof DefineFileSchema>;

/** The largest --jsonfile / --libvirt-xml file read (a definition is well under 1 KiB; 127 grants ~12 KiB). */
export const MAX_IMPORT_FILE_BYTES = 64 * 1024;

/** Validates a parsed --jsonfile; a usage error names each offending field. */
export function defineFieldsFromJson(json: unknown, file: string): DefineFileFields {
  const result = DefineFileSchema.safeParse(json);
  if (!result.success) {
    const problems = result.error.issues.map((i) => describeIssue(i, json));
    throw new VportUsageError(`${file}: ${problems.join('; ')}`);
  }
  return result.data;
}
