/**
 * Control interface of a running SAN: JSON lines over a Unix stream socket (`--control PATH`).
 * Each request is one line `{"id"?: any, "cmd": "<command>", ...arguments}`; each answer is one
 * line `{"id", "ok": true, "result": ...}` or `{"id", "ok": false, "error": "..."}`. Requests on
 * one connection are answered in order, one at a time. Lines longer than 64 KiB close the connection.
 * A client that does not read its answers is not served further: while more than
 * CONTROL_OUTPUT_HIGH_WATER bytes of answers wait for it, its requests are not read (backpressure);
 * past CONTROL_OUTPUT_HARD_LIMIT, or with answers waiting and none taken for CONTROL_STALL_MS, the
 * connection is closed.
 *
 * Commands (arguments; WWNs as text):
 *   status
 *   add-volume        array, name, size, file?, adopt?, blockSize?
 *                     (file: inside the SAN's data directory only; an existing file only with adopt=true)
 *   remove-volume     array, name
 *   resize-volume     array, name, size
 *   add-host-group    array, name, initiators[]
 *   map-lun           array, hostGroup, lun, volume
 *   unmap-lun         array, hostGroup, lun
 *   zone-create       name, members[]            (replaces a zone of that name)
 *   zone-delete       name
 *   zone-add-member   zone, wwpn
 *   zone-remove-member zone, wwpn
 *   zoneset-create    name, zones[]
 *   zoneset-activate  name (null deactivates zoning)
 *   zone-default      policy: "allow" | "deny"
 *   port-down         wwpn   (array target port, or any logged-in port's link)
 *   port-up           wwpn   (array target port)
 *   link-down         wwpn   (HBA port: link dropped and held down until link-up; target port: port-down)
 *   link-up           wwpn
 *   fault-add         kind, ...FaultSpec fields (src/san/faults.ts; docs/living-san.md) → { id }
 *   fault-list        → FaultInfo[]
 *   fault-clear       id? (all when absent) → { removed }
 * Every zoning command, when it succeeds, sends RSCNs to SCR-registered ports. Zones created at
 * run time join the active zone set (an implicit "cfg" set is created and activated if none is).
 */
import { existsSync } from 'node:fs';
import net from 'node:net';
import { z } from 'zod';
import { native } from '../native/index.js';
import { parseWwn } from '../util/wwn.js';
import { describeRequestError } from '../util/zod-message.js';
import { type Logger, logger } from '../util/log.js';
import {
  checkListenerCred,
  listenGated,
  netSocketFd,
  type PrivateSocket,
  type SocketAccess,
} from '../util/private-socket.js';
import { FAULT_KINDS, FRAME_CLASSES, type FaultSpec } from './faults.js';
import type { San } from './san.js';

export const CONTROL_MAX_LINE = 64 * 1024;
/** Unread answer bytes above which a connection's requests are no longer read. */
export const CONTROL_OUTPUT_HIGH_WATER = 1024 * 1024;
/** Unread answer bytes past which the connection is closed. */
export const CONTROL_OUTPUT_HARD_LIMIT = 16 * 1024 * 1024;
/** A connection with answers waiting that takes none of them for this long is closed. */
export const CONTROL_STALL_MS = 30_000;

export interface ControlLimits {
  highWater: number;
  hardLimit: number;
  stallMs: number;
}
const controlLimits: ControlLimits = {
  highWater: CONTROL_OUTPUT_HIGH_WATER,
  hardLimit: CONTROL_OUTPUT_HARD_LIMIT,
  stallMs: CONTROL_STALL_MS,
};

/** Change the control connections' output bounds (tests); returns the previous ones. */
export function setControlLimits(next: Partial<ControlLimits>): ControlLimits {
  const prev = { ...controlLimits };
  Object.assign(controlLimits, next);
  return prev;
}

const Wwn = z.string().transform((t, ctx) => {
  try {
    return parseWwn(t);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: (err as Error).message });
    return z.NEVER;
  }
});
const Name = z.string().min(1);
const Size = z.union([z.string().min(1), z.number().int().nonnegative()]);
const Lun = z.coerce.number().int().min(0).max(16383);

export const ControlRequestSchema = z.discriminatedUnion('cmd', [
  z.object({ cmd: z.literal('status') }),
  z.object({
    cmd: z.literal('add-volume'),
    array: Name,
    name: Name,
    size: Size,
    file: z.string().min(1).optional(),
    adopt: z.boolean().optional(),
    blockSize: z.coerce
      .number()
      .pipe(z.union([z.literal(512), z.literal(4096)]))
      .optional(),
  }),
  z.object({ cmd: z.literal('remove-volume'), array: Name, name: Name }),
  z.object({ cmd: z.literal('resize-volume'), array: Name, name: Name, size: Size }),
  z.object({ cmd: z.literal('add-host-group'), array: Name, name: Name, initiators: z.array(Wwn) }),
  z.object({ cmd: z.literal('map-lun'), array: Name, hostGroup: Name, lun: Lun, volume: Name }),
  z.object({ cmd: z.literal('unmap-lun'), array: Name, hostGroup: Name, lun: Lun }),
  z.object({ cmd: z.literal('zone-create'), name: Name, members: z.array(Wwn) }),
  z.object({ cmd: z.literal('zone-delete'), name: Name }),
  z.object({ cmd: z.literal('zone-add-member'), zone: Name, wwpn: Wwn }),
  z.object({ cmd: z.literal('zone-remove-member'), zone: Name, wwpn: Wwn }),
  z.object({ cmd: z.literal('zoneset-create'), name: Name, zones: z.array(Name) }),
  z.object({ cmd: z.literal('zoneset-activate'), name: Name.nullable() }),
  z.object({ cmd: z.literal('zone-default'), policy: z.enum(['allow', 'deny']) }),
  z.object({ cmd: z.literal('port-down'), wwpn: Wwn }),
  z.object({ cmd: z.literal('port-up'), wwpn: Wwn }),
  z.object({ cmd: z.literal('link-down'), wwpn: Wwn }),
  z.object({ cmd: z.literal('link-up'), wwpn: Wwn }),
  z.object({
    cmd: z.literal('fault-add'),
    kind: z.enum(FAULT_KINDS),
    wwpn: Wwn.optional(),
    direction: z.enum(['from', 'to', 'both']).optional(),
    frames: z.enum(FRAME_CLASSES).optional(),
    probability: z.coerce.number().min(0).max(1).optional(),
    count: z.coerce.number().int().positive().optional(),
    delayMs: z.coerce.number().int().nonnegative().optional(),
    latencyMs: z.coerce.number().int().nonnegative().optional(),
    logins: z
      .union([z.array(z.enum(['flogi', 'fdisc', 'plogi'])), z.enum(['flogi', 'fdisc', 'plogi']).transform((l) => [l])])
      .optional(),
    lun: Lun.optional(),
    lba: z.coerce.number().int().nonnegative().optional(),
    blocks: z.coerce.number().int().positive().optional(),
    op: z.enum(['read', 'write', 'both']).optional(),
    intervalMs: z.coerce.number().int().nonnegative().optional(),
    cycles: z.coerce.number().int().positive().optional(),
    downMs: z.coerce.number().int().nonnegative().optional(),
    upMs: z.coerce.number().int().nonnegative().optional(),
  }),
  z.object({ cmd: z.literal('fault-list') }),
  z.object({ cmd: z.literal('fault-clear'), id: z.coerce.number().int().positive().optional() }),
]);
export type ControlRequest = z.output<typeof ControlRequestSchema>;
export type ControlCommand = ControlRequest['cmd'];

export interface ControlResponse {
  id?: unknown;
  ok: boolean;
  result?: unknown;
  error?: string;
}

/** Carry out one validated request against a SAN. */
export async function executeControl(san: San, req: ControlRequest): Promise<unknown> {
  switch (req.cmd) {
    case 'status':
      return san.status();
    case 'add-volume': {
      const spec: Parameters<San['addVolume']>[1] = { name: req.name, size: req.size };
      if (req.file !== undefined) spec.file = req.file;
      if (req.blockSize !== undefined) spec.blockSize = req.blockSize;
      await san.addVolume(req.array, spec, { origin: 'control', existing: req.adopt ? 'adopt' : 'create' });
      return null;
    }
    case 'remove-volume':
      await san.removeVolume(req.array, req.name);
      return null;
    case 'resize-volume':
      await san.resizeVolume(req.array, req.name, req.size, 'control');
      return null;
    case 'add-host-group':
      san.addHostGroup(req.array, req.name, req.initiators);
      return null;
    case 'map-lun':
      san.mapLun(req.array, req.hostGroup, req.lun, req.volume);
      return null;
    case 'unmap-lun':
      san.unmapLun(req.array, req.hostGroup, req.lun);
      return null;
    case 'zone-create':
      san.changeZoning((zn) => {
        zn.setZone({ name: req.name, members: req.members });
        const active = zn.activeZoneSet ?? 'cfg';
        const current = zn.snapshot().zoneSets.find((s) => s.name === active)?.zones ?? [];
        if (!current.includes(req.name)) zn.setZoneSet(active, [...current, req.name]);
        if (zn.activeZoneSet === null) zn.activate(active);
      });
      return null;
    case 'zone-delete':
      san.changeZoning((zn) => zn.removeZone(req.name));
      return null;
    case 'zone-add-member':
      san.changeZoning((zn) => zn.addZoneMember(req.zone, req.wwpn));
      return null;
    case 'zone-remove-member':
      san.changeZoning((zn) => zn.removeZoneMember(req.zone, req.wwpn));
      return null;
    case 'zoneset-create':
      san.changeZoning((zn) => zn.setZoneSet(req.name, req.zones));
      return null;
    case 'zoneset-activate':
      san.changeZoning((zn) => zn.activate(req.name));
      return null;
    case 'zone-default':
      san.changeZoning((zn) => zn.setDefaultZone(req.policy));
      return null;
    case 'port-down':
      san.linkDown(req.wwpn);
      return null;
    case 'port-up':
      await san.targetPortUp(req.wwpn);
      return null;
    case 'link-down':
      san.holdLinkDown(req.wwpn);
      return null;
    case 'link-up':
      await san.linkUp(req.wwpn);
      return null;
    case 'fault-add': {
      const { cmd: _cmd, ...fields } = req;
      const spec = Object.fromEntries(
        Object.entries(fields).filter(([, v]) => v !== undefined),
      ) as unknown as FaultSpec;
      return { id: san.faults.add(spec) };
    }
    case 'fault-list':
      return san.faults.list();
    case 'fault-clear':
      return { removed: san.faults.clear(req.id) };
  }
}

/** Parse and run one request line; never throws (errors become `ok: false`). */
export async function handleControlLine(san: San, line: string): Promise<ControlResponse> {
  let raw: unknown;
  try {
    raw = JSON.parse(line);
  } catch {
    return { ok: false, error: 'request is not valid JSON' };
  }
  const id = typeof raw === 'object' && raw !== null && 'id' in raw ? (raw as { id: unknown }).id : undefined;
  const parsed = ControlRequestSchema.safeParse(raw);
  if (!parsed.success) {
    return { id, ok: false, error: describeRequestError(ControlRequestSchema, 'cmd', raw, parsed.error.issues) };
  }
  try {
    return { id, ok: true, result: await executeControl(san, parsed.data) };
  } catch (err) {
    return { id, ok: false, error: (err as Error).message };
  }
}

/** JSON replacer: bigints (if any slip through) as decimal strings. */
function jsonLine(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)) + '\n';
}

/** Simultaneous control connections one uid may hold by default (`san ctl` opens one per command). */
export const DEFAULT_MAX_CONTROL_PER_UID = 8;

export interface ControlListenOptions {
  /** who besides this uid and root may connect (san --control-group); default: nobody else */
  access?: SocketAccess;
  /** simultaneous connections per uid (default DEFAULT_MAX_CONTROL_PER_UID) */
  maxPerUid?: number;
}

export class ControlServer {
  private readonly sockets = new Set<net.Socket>();

  private constructor(
    private readonly server: net.Server,
    private readonly socketFile: PrivateSocket,
    readonly path: string,
  ) {
    server.on('connection', (socket) => {
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
    });
  }

  static listen(
    san: San,
    path: string,
    log: Logger = logger('san.control'),
    options: ControlListenOptions = {},
  ): Promise<ControlServer> {
    // Private socket, peer check and per-uid cap: src/util/private-socket.ts.
    return listenGated(
      path,
      {
        ...(options.access ? { access: options.access } : {}),
        maxPerUid: options.maxPerUid ?? DEFAULT_MAX_CONTROL_PER_UID,
        what: 'SAN control',
        log,
      },
      (socket) => serveControlConnection(san, socket, log),
    ).then(({ server, socketFile }) => new ControlServer(server, socketFile, path));
  }

  /** Answer bytes queued for all connected clients (what backpressure bounds). */
  queuedOutputBytes(): number {
    let n = 0;
    for (const s of this.sockets) n += s.destroyed ? 0 : s.writableLength;
    return n;
  }

  /** Stop listening, remove the socket file and hang up on clients still connected. */
  close(): Promise<void> {
    this.socketFile.unlink();
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const s of this.sockets) s.destroy();
    return closed;
  }
}

/**
 * One control connection: requests are taken one line at a time and answered in order. Input is
 * read only while the answers already queued stay under the high-water mark and at most one
 * line's worth of unprocessed input is held, so neither a flood of requests nor a client that
 * does not read can make this process buffer without bound.
 */
export function serveControlConnection(san: San, socket: net.Socket, log: Logger): void {
  let buffered = '';
  let busy = false;
  let stallTimer: NodeJS.Timeout | null = null;
  /** socket.bytesWritten minus what is still queued: bytes the client has taken. */
  const taken = (): number => socket.bytesWritten - socket.writableLength;
  socket.setEncoding('utf8');
  socket.on('error', () => socket.destroy());
  socket.on('close', () => {
    if (stallTimer) clearTimeout(stallTimer);
    stallTimer = null;
  });
  socket.on('drain', () => pump());

  const fail = (message: string): void => {
    socket.end(jsonLine({ ok: false, error: message }));
    socket.destroy();
  };

  /** Closes a client whose answers pile up without it taking any. */
  const watchStall = (): void => {
    if (stallTimer || socket.destroyed || socket.writableLength === 0) return;
    const before = taken();
    stallTimer = setTimeout(() => {
      stallTimer = null;
      if (socket.destroyed || socket.writableLength === 0) return;
      if (taken() === before) {
        log.warn(
          { unread: socket.writableLength, ms: controlLimits.stallMs },
          'control client is not reading its answers; connection closed',
        );
        socket.destroy();
        return;
      }
      watchStall();
    }, controlLimits.stallMs);
    stallTimer.unref?.();
  };

  const readable = (): boolean =>
    socket.writableLength <= controlLimits.highWater && buffered.length <= CONTROL_MAX_LINE;

  const pump = (): void => {
    // One request at a time; the loop is bounded by the complete lines buffered (at most 64 KiB).
    while (!busy && !socket.destroyed && socket.writableLength <= controlLimits.highWater) {
      const nl = buffered.indexOf('\n');
      if (nl < 0) break;
      const line = buffered.slice(0, nl).trim();
      buffered = buffered.slice(nl + 1);
      if (line.length > CONTROL_MAX_LINE) return fail(`request line longer than ${CONTROL_MAX_LINE} bytes`);
      if (!line) continue;
      busy = true;
      void handleControlLine(san, line).then((res) => {
        busy = false;
        if (!res.ok) log.warn({ error: res.error }, 'control request failed');
        if (socket.destroyed) return;
        socket.write(jsonLine(res));
        if (socket.writableLength > controlLimits.hardLimit) {
          log.warn({ unread: socket.writableLength }, 'control client is not reading its answers; connection closed');
          socket.destroy();
          return;
        }
        watchStall();
        pump();
      });
    }
    if (socket.destroyed) return;
    if (readable()) socket.resume();
    else {
      socket.pause();
      watchStall();
    }
  };

  socket.on('data', (chunk: string) => {
    buffered += chunk;
    const partial = buffered.length - (buffered.lastIndexOf('\n') + 1);
    if (partial > CONTROL_MAX_LINE) return fail(`request line longer than ${CONTROL_MAX_LINE} bytes`);
    pump();
  });
}

/** Send one request to a control socket and wait for its answer (bounded by timeoutMs). */
export function controlRequest(
  path: string,
  request: Record<string, unknown>,
  timeoutMs = 30_000,
): Promise<ControlResponse> {
  if (!existsSync(path)) return Promise.reject(new Error(`no control socket at ${path}`));
  return new Promise((resolve, reject) => {
    const socket = net.createConnection({ path });
    let buffered = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no answer from ${path} within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.setEncoding('utf8');
    socket.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    socket.on('connect', () => {
      // Nothing is sent to a control socket another local user put in place.
      try {
        const fd = netSocketFd(socket);
        if (fd === null) throw new Error(`${path}: the socket's fd is not available to check who listens`);
        checkListenerCred(native.peerCred(fd), path, []);
      } catch (err) {
        clearTimeout(timer);
        socket.destroy();
        reject(err as Error);
        return;
      }
      socket.write(jsonLine(request));
    });
    socket.on('data', (chunk: string) => {
      buffered += chunk;
      const nl = buffered.indexOf('\n');
      if (nl < 0) {
        if (buffered.length > 16 * 1024 * 1024) socket.destroy(new Error('control answer too long'));
        return;
      }
      clearTimeout(timer);
      socket.end();
      try {
        resolve(JSON.parse(buffered.slice(0, nl)) as ControlResponse);
      } catch {
        reject(new Error('control answer is not valid JSON'));
      }
    });
  });
}
