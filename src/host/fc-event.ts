/**
 * FC transport netlink events: what `fc_host_post_event` (drivers/scsi/scsi_transport_fc.c)
 * multicasts on NETLINK_SCSITRANSPORT, group SCSI_NL_GRP_FC_EVENTS (used as group number 4,
 * not as the bit mask its definition suggests: native/src/uevent.cc), when an FC driver reports a
 * link up/down, LIP, RSCN, port or adapter change. Each datagram holds netlink messages
 * (struct nlmsghdr) of type SCSI_TRANSPORT_MSG whose payload is a struct fc_nl_event
 * (include/uapi/scsi/scsi_netlink.h, scsi_netlink_fc.h). Integers are in the host's byte order.
 *
 * The parser trusts nothing: every length is checked against the bytes received, the header's
 * version/magic/transport/msgtype must match, and a datagram is cut off after a bounded number of
 * messages. FcEventSource is where events come from: NetlinkFcEventSource reads the kernel socket
 * on libuv readiness (native/src/uevent.cc), tests inject raw datagrams.
 */
import { endianness } from 'node:os';
import { hostNative } from '../native/host.js';
import { NetlinkDatagramReader } from './uevent.js';

/** struct nlmsghdr (include/uapi/linux/netlink.h). */
export const NLMSG = { LEN: 0, TYPE: 4, FLAGS: 6, SEQ: 8, PID: 12, SIZE: 16 } as const;
/** NLMSG_ALIGN: messages in one datagram start on 4-byte boundaries. */
const NLMSG_ALIGNTO = 4;
/** nlmsg_type of a SCSI transport message: SCSI_TRANSPORT_MSG = NLMSG_MIN_TYPE + 1. */
export const SCSI_TRANSPORT_MSG = 0x11;
const NLMSG_NOOP = 0x1;
const NLMSG_DONE = 0x3;

/**
 * struct fc_nl_event, its first 8 bytes being struct scsi_nl_hdr (version u8, transport u8,
 * magic u16, msgtype u16, msglen u16); the struct is 8-byte aligned, 40 bytes.
 */
export const FC_NL_EVENT = {
  VERSION: 0,
  TRANSPORT: 1,
  MAGIC: 2,
  MSGTYPE: 4,
  MSGLEN: 6,
  SECONDS: 8,
  VENDOR_ID: 16,
  HOST_NO: 24,
  EVENT_DATALEN: 26,
  EVENT_NUM: 28,
  EVENT_CODE: 32,
  EVENT_DATA: 36,
  SIZE: 40,
} as const;
export const SCSI_NL_VERSION = 1;
export const SCSI_NL_MAGIC = 0xa1b2;
export const SCSI_NL_TRANSPORT_FC = 1;
export const FC_NL_ASYNC_EVENT = 0x0100;

/** enum fc_host_event_code (include/scsi/scsi_transport_fc.h). */
export const FCH_EVT = {
  LIP: 0x1,
  LINKUP: 0x2,
  LINKDOWN: 0x3,
  LIPRESET: 0x4,
  RSCN: 0x5,
  ADAPTER_CHANGE: 0x103,
  PORT_UNKNOWN: 0x200,
  PORT_OFFLINE: 0x201,
  PORT_ONLINE: 0x202,
  PORT_FABRIC: 0x204,
  LINK_UNKNOWN: 0x500,
  LINK_FPIN: 0x501,
  LINK_FPIN_ACK: 0x502,
  VENDOR_UNIQUE: 0xffff,
} as const;
const EVENT_NAMES = new Map<number, string>(Object.entries(FCH_EVT).map(([name, code]) => [code, name]));

/** Largest datagram read (fc_host_fpin_rcv posts an FPIN ELS of up to a frame's payload). */
export const FC_EVENT_MAX = 8192;
/** Messages taken from one datagram at most (the kernel sends one). */
export const FC_EVENT_MAX_PER_DATAGRAM = 16;

export interface FcHostEvent {
  hostNo: number;
  code: number;
  /** FCH_EVT_* name without the prefix ("LINKDOWN"), or "0x..." for a code this parser does not know. */
  name: string;
  eventNum: number;
  /** The 32-bit event_data when event_datalen is 4 (link speed, RSCN entry, ...); null otherwise. */
  data: number | null;
  /** event_datalen bytes (vendor-unique payloads, FPIN ELS). */
  dataLength: number;
}

export interface FcEventParse {
  events: FcHostEvent[];
  /** Messages refused (bad length, header, type), with why. */
  refused: string[];
}

const littleEndian = endianness() === 'LE';

/** Parses one datagram from the FC event socket; malformed messages are refused, never thrown. */
export function parseFcEventDatagram(buf: Uint8Array): FcEventParse {
  const out: FcEventParse = { events: [], refused: [] };
  if (buf.length > FC_EVENT_MAX) {
    out.refused.push(`datagram of ${buf.length} bytes exceeds ${FC_EVENT_MAX}`);
    return out;
  }
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let at = 0;
  for (let n = 0; at < buf.length; n++) {
    if (n >= FC_EVENT_MAX_PER_DATAGRAM) {
      out.refused.push(`more than ${FC_EVENT_MAX_PER_DATAGRAM} messages in one datagram`);
      break;
    }
    if (buf.length - at < NLMSG.SIZE) {
      out.refused.push(`${buf.length - at} trailing bytes, shorter than a netlink header`);
      break;
    }
    const len = dv.getUint32(at + NLMSG.LEN, littleEndian);
    const type = dv.getUint16(at + NLMSG.TYPE, littleEndian);
    if (len < NLMSG.SIZE || len > buf.length - at) {
      out.refused.push(`netlink length ${len} outside ${NLMSG.SIZE}..${buf.length - at}`);
      break; // the next message's position is unknown
    }
    if (type !== NLMSG_NOOP && type !== NLMSG_DONE) {
      const r = parseFcNlEvent(buf.subarray(at + NLMSG.SIZE, at + len), type);
      if (typeof r === 'string') out.refused.push(r);
      else out.events.push(r);
    }
    at += Math.ceil(len / NLMSG_ALIGNTO) * NLMSG_ALIGNTO;
  }
  return out;
}

/** One fc_nl_event payload (after its nlmsghdr); a string says why it was refused. */
export function parseFcNlEvent(p: Uint8Array, nlmsgType = SCSI_TRANSPORT_MSG): FcHostEvent | string {
  if (nlmsgType !== SCSI_TRANSPORT_MSG) return `netlink type 0x${nlmsgType.toString(16)} is not SCSI_TRANSPORT_MSG`;
  if (p.length < FC_NL_EVENT.SIZE) return `fc_nl_event of ${p.length} bytes, shorter than ${FC_NL_EVENT.SIZE}`;
  const dv = new DataView(p.buffer, p.byteOffset, p.byteLength);
  const version = p[FC_NL_EVENT.VERSION]!;
  const transport = p[FC_NL_EVENT.TRANSPORT]!;
  const magic = dv.getUint16(FC_NL_EVENT.MAGIC, littleEndian);
  const msgtype = dv.getUint16(FC_NL_EVENT.MSGTYPE, littleEndian);
  const msglen = dv.getUint16(FC_NL_EVENT.MSGLEN, littleEndian);
  if (version !== SCSI_NL_VERSION) return `scsi_nl_hdr version ${version}`;
  if (magic !== SCSI_NL_MAGIC) return `scsi_nl_hdr magic 0x${magic.toString(16)}`;
  if (transport !== SCSI_NL_TRANSPORT_FC) return `scsi_nl_hdr transport ${transport} is not FC`;
  if (msgtype !== FC_NL_ASYNC_EVENT) return `scsi_nl_hdr msgtype 0x${msgtype.toString(16)}`;
  if (msglen < FC_NL_EVENT.SIZE || msglen > p.length) return `scsi_nl_hdr msglen ${msglen} outside 40..${p.length}`;
  const dataLength = dv.getUint16(FC_NL_EVENT.EVENT_DATALEN, littleEndian);
  if (dataLength > msglen - FC_NL_EVENT.EVENT_DATA)
    return `event_datalen ${dataLength} exceeds the ${msglen - FC_NL_EVENT.EVENT_DATA} bytes after the header`;
  const code = dv.getUint32(FC_NL_EVENT.EVENT_CODE, littleEndian);
  return {
    hostNo: dv.getUint16(FC_NL_EVENT.HOST_NO, littleEndian),
    code,
    name: EVENT_NAMES.get(code) ?? `0x${code.toString(16)}`,
    eventNum: dv.getUint32(FC_NL_EVENT.EVENT_NUM, littleEndian),
    data: dataLength === 4 ? dv.getUint32(FC_NL_EVENT.EVENT_DATA, littleEndian) : null,
    dataLength,
  };
}

/** Builds one datagram as fc_host_post_event sends it (tests, and documentation of the format). */
export function formatFcEvent(e: { hostNo: number; code: number; eventNum?: number; data?: number }): Uint8Array {
  const msg = new Uint8Array(NLMSG.SIZE + FC_NL_EVENT.SIZE);
  const dv = new DataView(msg.buffer);
  dv.setUint32(NLMSG.LEN, msg.length, littleEndian);
  dv.setUint16(NLMSG.TYPE, SCSI_TRANSPORT_MSG, littleEndian);
  const p = NLMSG.SIZE;
  msg[p + FC_NL_EVENT.VERSION] = SCSI_NL_VERSION;
  msg[p + FC_NL_EVENT.TRANSPORT] = SCSI_NL_TRANSPORT_FC;
  dv.setUint16(p + FC_NL_EVENT.MAGIC, SCSI_NL_MAGIC, littleEndian);
  dv.setUint16(p + FC_NL_EVENT.MSGTYPE, FC_NL_ASYNC_EVENT, littleEndian);
  dv.setUint16(p + FC_NL_EVENT.MSGLEN, FC_NL_EVENT.SIZE, littleEndian);
  dv.setUint16(p + FC_NL_EVENT.HOST_NO, e.hostNo, littleEndian);
  dv.setUint16(p + FC_NL_EVENT.EVENT_DATALEN, 4, littleEndian);
  dv.setUint32(p + FC_NL_EVENT.EVENT_NUM, e.eventNum ?? 1, littleEndian);
  dv.setUint32(p + FC_NL_EVENT.EVENT_CODE, e.code, littleEndian);
  dv.setUint32(p + FC_NL_EVENT.EVENT_DATA, e.data ?? 0, littleEndian);
  return msg;
}

/**
 * What an FC event means for a vport's state, for the hosts that concern it (the vport's own
 * Scsi_Host and its parent's: qla2xxx posts link and RSCN events on the physical port's host).
 *   link   link up/down, LIP, LIP reset, port online/offline/fabric: vport_state and every
 *          remote port may change
 *   rscn   the fabric announced changed ports: remote ports may change
 *   other  adapter change, FPIN, vendor-unique, unknown: re-read too (cheap), nothing assumed
 * Null: another host's event.
 */
export type FcEventKind = 'link' | 'rscn' | 'other';
export function fcEventKind(e: FcHostEvent, hosts: { vport: number; parent: number }): FcEventKind | null {
  if (e.hostNo !== hosts.vport && e.hostNo !== hosts.parent) return null;
  switch (e.code) {
    case FCH_EVT.LINKUP:
    case FCH_EVT.LINKDOWN:
    case FCH_EVT.LIP:
    case FCH_EVT.LIPRESET:
    case FCH_EVT.PORT_ONLINE:
    case FCH_EVT.PORT_OFFLINE:
    case FCH_EVT.PORT_FABRIC:
    case FCH_EVT.PORT_UNKNOWN:
    case FCH_EVT.LINK_UNKNOWN:
      return 'link';
    case FCH_EVT.RSCN:
      return 'rscn';
    default:
      return 'other';
  }
}

/** Where FC events come from. `onOverflow`: events were lost; re-read everything from sysfs. */
export interface FcEventSource {
  /** Throws when the kernel offers no FC event socket here (see NetlinkFcEventSource). */
  start(onEvent: (e: FcHostEvent) => void, onOverflow: () => void): void;
  close(): void;
}

/**
 * The kernel's FC event socket. Opening it fails without CAP_NET_ADMIN (EPERM), outside the
 * initial network namespace or without the FC transport's netlink support (EPROTONOSUPPORT).
 */
export class NetlinkFcEventSource implements FcEventSource {
  private readonly reader = new NetlinkDatagramReader(FC_EVENT_MAX);

  /** Datagrams and messages refused (not from the kernel, truncated, malformed). */
  get dropped(): number {
    return this.reader.dropped;
  }

  start(onEvent: (e: FcHostEvent) => void, onOverflow: () => void): void {
    this.reader.start(
      hostNative.fcEventOpen(),
      (bytes) => {
        const parsed = parseFcEventDatagram(bytes);
        for (const e of parsed.events) onEvent(e);
        return parsed.refused.length;
      },
      onOverflow,
    );
  }

  close(): void {
    this.reader.close();
  }
}

/** Test source: inject raw datagrams (parsed exactly like the kernel's) and overflows. */
export class InjectedFcEventSource implements FcEventSource {
  private onEvent: ((e: FcHostEvent) => void) | null = null;
  private onOverflow: (() => void) | null = null;
  dropped = 0;
  /** When set, start() throws it (a kernel without the socket). */
  failStart: Error | null = null;
  start(onEvent: (e: FcHostEvent) => void, onOverflow: () => void): void {
    if (this.failStart) throw this.failStart;
    this.onEvent = onEvent;
    this.onOverflow = onOverflow;
  }
  inject(datagram: Uint8Array): void {
    const r = parseFcEventDatagram(datagram);
    this.dropped += r.refused.length;
    for (const e of r.events) this.onEvent?.(e);
  }
  overflow(): void {
    this.onOverflow?.();
  }
  close(): void {
    this.onEvent = null;
  }
}
