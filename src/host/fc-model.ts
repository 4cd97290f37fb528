/**
 * The host's Fibre Channel objects as the FC transport class shows them in sysfs
 * (drivers/scsi/scsi_transport_fc.c): fc_host (`/sys/class/fc_host/hostN`), fc_vport
 * (`/sys/class/fc_vports/vport-H:C-K`), fc_remote_ports (`/sys/class/fc_remote_ports/rport-H:C-N`),
 * and the SCSI devices below a remote port (`/sys/bus/scsi/devices/H:C:T:L`, drivers/scsi/scsi_sysfs.c).
 * Only generic transport attributes are used, so any LLDD with an NPIV-capable fc_host works
 * (qla2xxx, lpfc, ...). A value that does not parse makes that object unusable (it is skipped with
 * the reason) rather than guessed at.
 */
import {
  PORT_STATES,
  parseEnum,
  parseRoles,
  parseSysfsBytes,
  parseSysfsInt,
  parseSysfsPortId,
  parseSysfsSpeed,
  parseSysfsWwn,
  type PortState,
  type Sysfs,
  VPORT_STATES,
  type VportState,
} from './sysfs.js';

const HOST_DIR = /^host([0-9]{1,9})$/;
const VPORT_DIR = /^vport-([0-9]{1,9}):([0-9]{1,9})-([0-9]{1,9})$/;
const RPORT_DIR = /^rport-([0-9]{1,9}):([0-9]{1,9})-([0-9]{1,9})$/;
const SDEV_DIR = /^([0-9]{1,9}):([0-9]{1,9}):([0-9]{1,9}):([0-9]{1,20})$/;
const SG_DIR = /^sg([0-9]{1,9})$/;

export interface FcHost {
  hostNo: number;
  portName: bigint;
  nodeName: bigint;
  portId: number;
  portType: string;
  portState: PortState;
  /** 0xffffffffffffffff when no switch (fc_host fabric_name). */
  fabricName: bigint | null;
  /** Gbit/s, null when unknown. */
  speedGbps: number | null;
  /** Has `vport_create`: the template of this host can create NPIV vports. */
  npivCapable: boolean;
  maxNpivVports: number | null;
  npivVportsInuse: number | null;
}

export interface FcVport {
  /** vport-H:C-K */
  name: string;
  parentHostNo: number;
  channel: number;
  number: number;
  portName: bigint;
  nodeName: bigint;
  state: VportState;
  lastState: VportState | null;
  /** The Scsi_Host the LLDD created for this vport (a child of the vport device), once it exists. */
  hostNo: number | null;
}

export interface FcRport {
  /** rport-H:C-N */
  name: string;
  hostNo: number;
  channel: number;
  number: number;
  portName: bigint;
  nodeName: bigint;
  portId: number;
  roles: string[];
  state: PortState;
  /** -1 when the port is not an FCP target. */
  scsiTargetId: number;
  maxFrameSize: number | null;
}

export interface ScsiDevice {
  hostNo: number;
  channel: number;
  target: number;
  /** Linux 64-bit LUN (scsilun_to_int form). */
  lun: bigint;
  /** sgN, when the sg class interface is attached. */
  sg: string | null;
  /** A block device (an upper-level driver such as sd) is bound. */
  hasBlock: boolean;
  vendor: string | null;
  model: string | null;
  type: number | null;
}

/** Problems found while reading the tree (objects skipped), for logs and `host list`. */
export type Skipped = { object: string; reason: string }[];

function attr<T>(sys: Sysfs, dir: string, name: string, parse: (t: string, what: string) => T): T {
  const path = `${dir}/${name}`;
  return parse(sys.require(path), sys.path(path));
}

function optionalAttr<T>(sys: Sysfs, dir: string, name: string, parse: (t: string, what: string) => T): T | null {
  const path = `${dir}/${name}`;
  const text = sys.read(path);
  return text === null ? null : parse(text, sys.path(path));
}

export function readFcHost(sys: Sysfs, hostNo: number): FcHost {
  const dir = `class/fc_host/host${hostNo}`;
  const fabric = optionalAttr(sys, dir, 'fabric_name', parseSysfsWwn);
  return {
    hostNo,
    portName: attr(sys, dir, 'port_name', parseSysfsWwn),
    nodeName: attr(sys, dir, 'node_name', parseSysfsWwn),
    portId: optionalAttr(sys, dir, 'port_id', parseSysfsPortId) ?? 0,
    portType: optionalAttr(sys, dir, 'port_type', (t) => t.slice(0, 64)) ?? 'Unknown',
    portState: optionalAttr(sys, dir, 'port_state', (t, w) => parseEnum(t, PORT_STATES, w)) ?? 'Unknown',
    fabricName: fabric === null || fabric === 0xffffffffffffffffn || fabric === 0n ? null : fabric,
    speedGbps: optionalAttr(sys, dir, 'speed', parseSysfsSpeed),
    npivCapable: sys.exists(`${dir}/vport_create`),
    maxNpivVports: optionalAttr(sys, dir, 'max_npiv_vports', (t, w) => parseSysfsInt(t, w, 0, 65535)),
    npivVportsInuse: optionalAttr(sys, dir, 'npiv_vports_inuse', (t, w) => parseSysfsInt(t, w, 0, 65535)),
  };
}

/** Every fc_host; hosts whose attributes do not parse are reported in `skipped`. */
export function listFcHosts(sys: Sysfs, skipped: Skipped = []): FcHost[] {
  return readEach(
    sys.list('class/fc_host', HOST_DIR),
    (name) => readFcHost(sys, Number(HOST_DIR.exec(name)![1])),
    skipped,
  );
}

/** `read` of each named object; one that does not parse is reported in `skipped`, never guessed. */
function readEach<T>(names: readonly string[], read: (name: string) => T, skipped: Skipped): T[] {
  const out: T[] = [];
  for (const name of names) {
    try {
      out.push(read(name));
    } catch (e) {
      skipped.push({ object: name, reason: (e as Error).message });
    }
  }
  return out;
}

export function readVport(sys: Sysfs, name: string): FcVport {
  const m = VPORT_DIR.exec(name);
  if (!m) throw new Error(`'${name}' is not a vport name (vport-H:C-K)`);
  const dir = `class/fc_vports/${name}`;
  // The LLDD adds the vport's Scsi_Host with the vport device as parent
  // (scsi_add_host_with_dma(shost, &fc_vport->dev, ...) in qla24xx_vport_create, lpfc_vport_create).
  const hosts = sys.list(`${dir}/device`, HOST_DIR);
  const vstate = (t: string, w: string) => parseEnum(t, VPORT_STATES, w);
  return {
    name,
    parentHostNo: Number(m[1]),
    channel: Number(m[2]),
    number: Number(m[3]),
    portName: attr(sys, dir, 'port_name', parseSysfsWwn),
    nodeName: attr(sys, dir, 'node_name', parseSysfsWwn),
    state: attr(sys, dir, 'vport_state', vstate),
    lastState: optionalAttr(sys, dir, 'vport_last_state', vstate),
    hostNo: hosts.length > 0 ? Number(HOST_DIR.exec(hosts[0]!)![1]) : null,
  };
}

export function listVports(sys: Sysfs, skipped: Skipped = []): FcVport[] {
  return readEach(sys.list('class/fc_vports', VPORT_DIR), (name) => readVport(sys, name), skipped);
}

export function readRport(sys: Sysfs, name: string): FcRport {
  const m = RPORT_DIR.exec(name);
  if (!m) throw new Error(`'${name}' is not a remote port name (rport-H:C-N)`);
  const dir = `class/fc_remote_ports/${name}`;
  return {
    name,
    hostNo: Number(m[1]),
    channel: Number(m[2]),
    number: Number(m[3]),
    portName: attr(sys, dir, 'port_name', parseSysfsWwn),
    nodeName: attr(sys, dir, 'node_name', parseSysfsWwn),
    portId: attr(sys, dir, 'port_id', parseSysfsPortId),
    roles: attr(sys, dir, 'roles', parseRoles),
    state: attr(sys, dir, 'port_state', (t, w) => parseEnum(t, PORT_STATES, w)),
    scsiTargetId: optionalAttr(sys, dir, 'scsi_target_id', (t, w) => parseSysfsInt(t, w, -1, 0x7fffffff)) ?? -1,
    maxFrameSize: optionalAttr(sys, dir, 'maxframe_size', parseSysfsBytes),
  };
}

/** The remote ports of one host (fc_remote_ports rport-H:*). */
export function listRports(sys: Sysfs, hostNo: number, skipped: Skipped = []): FcRport[] {
  const prefix = `rport-${hostNo}:`;
  const names = sys.list('class/fc_remote_ports', RPORT_DIR).filter((name) => name.startsWith(prefix));
  return readEach(names, (name) => readRport(sys, name), skipped);
}

export function readScsiDevice(sys: Sysfs, name: string): ScsiDevice | null {
  const m = SDEV_DIR.exec(name);
  if (!m) return null;
  const dir = `bus/scsi/devices/${name}`;
  if (!sys.exists(dir)) return null;
  const sgs = sys.list(`${dir}/scsi_generic`, SG_DIR);
  const text = (t: string) => t.slice(0, 64);
  return {
    hostNo: Number(m[1]),
    channel: Number(m[2]),
    target: Number(m[3]),
    lun: BigInt(m[4]!),
    sg: sgs[0] ?? null,
    hasBlock: sys.list(`${dir}/block`, /^[^.]/).length > 0,
    vendor: optionalAttr(sys, dir, 'vendor', text),
    model: optionalAttr(sys, dir, 'model', text),
    type: optionalAttr(sys, dir, 'type', (t, w) => parseSysfsInt(t, w, 0, 0x1f)),
  };
}

/** SCSI devices (LUNs) of host H, channel C, target T. */
export function listScsiDevices(sys: Sysfs, hostNo: number, channel: number, target: number): ScsiDevice[] {
  const prefix = `${hostNo}:${channel}:${target}:`;
  const out: ScsiDevice[] = [];
  for (const name of sys.list('bus/scsi/devices', SDEV_DIR)) {
    if (!name.startsWith(prefix)) continue;
    const d = readScsiDevice(sys, name);
    if (d) out.push(d);
  }
  return out;
}

/**
 * The Linux 64-bit LUN of an 8-byte FCP/SAM LUN: `scsilun_to_int` (drivers/scsi/scsi_common.c),
 * two bytes at a time, each pair shifted by (i * 8).
 */
export function scsilunToInt(lun: Uint8Array): bigint {
  if (lun.length !== 8) throw new RangeError('an FCP LUN is 8 bytes');
  let v = 0n;
  for (let i = 0; i < 8; i += 2) v |= BigInt((lun[i]! << 8) | lun[i + 1]!) << BigInt(i * 8);
  return v;
}

/** Inverse of scsilunToInt (`int_to_scsilun`). */
export function intToScsilun(v: bigint): Uint8Array {
  const out = new Uint8Array(8);
  for (let i = 0; i < 8; i += 2) {
    const pair = Number((v >> BigInt(i * 8)) & 0xffffn);
    out[i] = pair >> 8;
    out[i + 1] = pair & 0xff;
  }
  return out;
}
