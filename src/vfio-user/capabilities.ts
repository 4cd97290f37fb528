/**
 * VERSION capability negotiation (vfio-user spec "Version" section; QEMU hw/vfio-user/proxy.c
 * caps_json()/version checks). The client's JSON is untrusted: it is parsed strictly (types,
 * ranges), unknown keys are tolerated and reported so that newer clients still connect.
 */
import { z } from 'zod';
import { ERRNO, ProtocolError } from './protocol.js';

/** Spec defaults for keys a peer leaves out. */
export const CAPABILITY_DEFAULTS = {
  maxMsgFds: 1,
  maxDataXferSize: 1 << 20,
  maxDmaMaps: 65535,
  pgsizes: 4096,
} as const;

/** QEMU's own limits on what a server may announce (VFIO_USER_MAX_MAX_FDS / _MAX_XFER). */
export const QEMU_LIMITS = { maxMsgFds: 16, maxDataXferSize: 64 << 20, maxDmaMaps: 65535 } as const;

export interface PeerCapabilities {
  /** fds the peer can receive in one message */
  maxMsgFds: number;
  /** largest count the peer accepts in REGION/DMA READ/WRITE */
  maxDataXferSize: number;
  maxDmaMaps: number;
  /** OR of supported DMA page sizes */
  pgsizes: number;
  writeMultiple: boolean;
  /** the peer offered twin-socket mode (not used by this server) */
  twinSocket: boolean;
  /** the peer sent a (v1-era) migration object; this server offers no migration */
  migration: boolean;
  /** keys this implementation does not know, reported for the log */
  unknownKeys: string[];
}

const u32 = z.number().int().min(0).max(0xffff_ffff);
const capabilitiesSchema = z
  .object({
    max_msg_fds: z.number().int().min(0).max(1024).optional(),
    max_data_xfer_size: u32.min(1).optional(),
    max_dma_maps: u32.min(1).optional(),
    pgsizes: z
      .number()
      .int()
      .min(4096)
      .max(Number.MAX_SAFE_INTEGER)
      .refine((n) => n % 4096 === 0, 'pgsizes must be a multiple of 4096')
      .optional(),
    write_multiple: z.boolean().optional(),
    twin_socket: z.object({ supported: z.boolean().optional(), fd_index: u32.optional() }).loose().optional(),
    migration: z.object({}).loose().optional(),
  })
  .loose();
const versionJsonSchema = z.object({ capabilities: capabilitiesSchema.optional() }).loose();

const KNOWN_TOP = new Set(['capabilities']);
const KNOWN_CAPS = new Set(Object.keys(capabilitiesSchema.shape));

/** Parses and validates a peer's VERSION JSON (undefined = no JSON = all defaults). */
export function parseCapabilities(json: string | undefined): PeerCapabilities {
  const caps: PeerCapabilities = {
    ...CAPABILITY_DEFAULTS,
    writeMultiple: false,
    twinSocket: false,
    migration: false,
    unknownKeys: [],
  };
  if (json === undefined) return caps;
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch (err) {
    throw new ProtocolError(ERRNO.EINVAL, `VERSION JSON does not parse: ${(err as Error).message}`);
  }
  const parsed = versionJsonSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue ? issue.path.join('.') || '(top level)' : '?';
    throw new ProtocolError(ERRNO.EINVAL, `VERSION JSON invalid at ${where}: ${issue?.message ?? 'bad value'}`);
  }
  const top = parsed.data;
  for (const k of Object.keys(top)) if (!KNOWN_TOP.has(k)) caps.unknownKeys.push(k);
  const c = top.capabilities;
  if (c === undefined) return caps;
  for (const k of Object.keys(c)) if (!KNOWN_CAPS.has(k)) caps.unknownKeys.push(`capabilities.${k}`);
  if (c.max_msg_fds !== undefined) caps.maxMsgFds = c.max_msg_fds;
  if (c.max_data_xfer_size !== undefined) caps.maxDataXferSize = c.max_data_xfer_size;
  if (c.max_dma_maps !== undefined) caps.maxDmaMaps = c.max_dma_maps;
  if (c.pgsizes !== undefined) caps.pgsizes = c.pgsizes;
  caps.writeMultiple = c.write_multiple ?? false;
  caps.twinSocket = c.twin_socket?.supported ?? false;
  caps.migration = c.migration !== undefined;
  return caps;
}

/** What this server announces; values must respect QEMU_LIMITS or QEMU refuses the reply. */
export interface ServerCapabilities {
  maxMsgFds: number;
  maxDataXferSize: number;
  maxDmaMaps: number;
  pgsizes: number;
}

/** The VERSION reply JSON (without the NUL, which encodeVersion appends). */
export function formatCapabilities(c: ServerCapabilities): string {
  if (c.maxMsgFds > QEMU_LIMITS.maxMsgFds || c.maxDataXferSize > QEMU_LIMITS.maxDataXferSize) {
    throw new Error('server capabilities exceed what QEMU accepts');
  }
  if (c.maxDmaMaps > QEMU_LIMITS.maxDmaMaps || c.pgsizes % 4096 !== 0) {
    throw new Error('server capabilities exceed what QEMU accepts');
  }
  // write_multiple is deliberately absent: REGION_WRITE_MULTI is not offered. No migration.
  return JSON.stringify({
    capabilities: {
      max_msg_fds: c.maxMsgFds,
      max_data_xfer_size: c.maxDataXferSize,
      pgsizes: c.pgsizes,
      max_dma_maps: c.maxDmaMaps,
    },
  });
}
