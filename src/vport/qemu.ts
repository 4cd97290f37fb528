/**
 * How a defined vport is handed to QEMU (>= 10.1, `vfio-user-pci`) and to libvirt.
 *
 * QEMU facts this follows (QEMU 11.1.2 observed):
 *  - only the JSON form of `-device` works for vfio-user-pci (`socket` is a QAPI SocketAddress,
 *    UNIX only); the key=value forms fail at realize;
 *  - guest RAM must be fd-backed and shared (memory-backend-memfd, share=on) or DMA_MAP carries no
 *    fds and the server cannot reach guest memory;
 *  - one pcie-root-port per device lets the guest hot-plug and unplug it.
 * libvirt has no vfio-user element: shared memfd memory via <memoryBacking>, the devices via
 * <qemu:commandline> pass-through.
 */
import type { VportDefinition } from './definition.js';
import { VportUsageError } from './errors.js';

export const DEFAULT_GUEST_MEMORY = '512M';
/** first pcie-root-port chassis number for `qemu-args` */
export const DEFAULT_QEMU_CHASSIS = 1;
/**
 * first chassis number for `libvirt-xml`: libvirt numbers the chassis of its own root ports after
 * their controller index (small numbers), so ours start well above them.
 */
export const DEFAULT_LIBVIRT_CHASSIS = 100;
/** pcie-root-port `chassis` is a uint8 */
const CHASSIS_MAX = 255;
export const MEMORY_BACKEND_ID = 'mem';
export const LIBVIRT_QEMU_NAMESPACE = 'http://libvirt.org/schemas/domain/qemu/1.0';

/** QEMU size with an explicit unit; a bare number means bytes to `size=` but MiB to `-m`, so it is refused. */
export function parseMemorySize(text: string): string {
  const m = /^([1-9][0-9]{0,15})([KMGT])$/i.exec(text.trim());
  if (!m)
    throw new VportUsageError(
      `invalid memory size '${text}': expected a number with a unit K, M, G or T, e.g. 512M or 4G`,
    );
  return m[1]! + m[2]!.toUpperCase();
}

export function parseChassis(text: string): number {
  if (!/^[0-9]{1,3}$/.test(text.trim()))
    throw new VportUsageError(`invalid --index '${text}': expected an integer 1..${CHASSIS_MAX}`);
  const n = Number(text);
  if (n < 1 || n > CHASSIS_MAX)
    throw new VportUsageError(`invalid --index '${text}': expected an integer 1..${CHASSIS_MAX}`);
  return n;
}

/** Short id used in QEMU ids: the UUID's first group (QEMU ids: letter first, then [A-Za-z0-9._-]). */
export function shortId(uuid: string): string {
  return uuid.slice(0, 8);
}

export interface DeviceArgs {
  rootPortId: string;
  deviceId: string;
  /** `pcie-root-port,...` */
  rootPort: string;
  /** the JSON `-device` value */
  device: string;
}

export function deviceArgs(def: VportDefinition, chassis: number): DeviceArgs {
  const short = shortId(def.uuid);
  const rootPortId = `rp-npiv-${short}`;
  const deviceId = `npiv-${short}`;
  // Property order as in QEMU's own documentation: driver first.
  const device = JSON.stringify({
    driver: 'vfio-user-pci',
    id: deviceId,
    bus: rootPortId,
    socket: { type: 'unix', path: def.socket },
  });
  return { rootPortId, deviceId, rootPort: `pcie-root-port,id=${rootPortId},chassis=${chassis},slot=0`, device };
}

function checkChassisRange(first: number, count: number): void {
  if (first + count - 1 > CHASSIS_MAX) {
    throw new VportUsageError(
      `--index ${first} leaves no room for ${count} root ports (chassis numbers end at ${CHASSIS_MAX})`,
    );
  }
}

export interface QemuArgsOptions {
  memory?: string;
  firstChassis?: number;
  /** leave out -m/-object/-machine (the VM's memory is set up elsewhere) */
  devicesOnly?: boolean;
}

/** The exact QEMU arguments (an argv fragment) for these vports, in order. */
export function qemuArguments(defs: readonly VportDefinition[], options: QemuArgsOptions = {}): string[] {
  const memory = options.memory ?? DEFAULT_GUEST_MEMORY;
  const first = options.firstChassis ?? DEFAULT_QEMU_CHASSIS;
  checkChassisRange(first, defs.length);
  const args: string[] = [];
  if (!options.devicesOnly) {
    args.push(
      '-m',
      memory,
      '-object',
      `memory-backend-memfd,id=${MEMORY_BACKEND_ID},size=${memory},share=on`,
      '-machine',
      `q35,memory-backend=${MEMORY_BACKEND_ID}`,
    );
  }
  defs.forEach((def, i) => {
    const d = deviceArgs(def, first + i);
    args.push('-device', d.rootPort, '-device', d.device);
  });
  return args;
}

/** POSIX shell quoting: bare when only safe characters, else single quotes ('\'' for a quote). */
export function shellQuote(word: string): string {
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(word)) return word;
  return `'${word.replaceAll("'", `'\\''`)}'`;
}

/** Options on one line each, values beside their option, continued with ` \`. */
export function formatShell(args: readonly string[]): string {
  const lines: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const word = args[i]!;
    const next = args[i + 1];
    if (word.startsWith('-') && next !== undefined && !next.startsWith('-')) {
      lines.push(`${shellQuote(word)} ${shellQuote(next)}`);
      i++;
    } else {
      lines.push(shellQuote(word));
    }
  }
  return lines.join(' \\\n') + '\n';
}

/** Escaping for single-quoted attribute values (double quotes stay readable). */
export function xmlEscape(text: string): string {
  return text.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;').replaceAll("'", '&apos;');
}

/**
 * A <domain> element holding only what these vports need; merge its children into the VM's
 * definition (`virsh edit`). The qemu namespace must be declared on the real <domain> too.
 */
export function libvirtXml(defs: readonly VportDefinition[], options: { firstChassis?: number } = {}): string {
  const first = options.firstChassis ?? DEFAULT_LIBVIRT_CHASSIS;
  checkChassisRange(first, defs.length);
  const lines = [
    `<domain type='kvm' xmlns:qemu='${LIBVIRT_QEMU_NAMESPACE}'>`,
    `  <!-- npiv-hba vports ${defs.map((d) => d.uuid).join(', ')}: merge these elements into the domain. -->`,
    `  <!-- Guest RAM must be memfd-backed and shared, or vfio-user DMA gets no memory fds. -->`,
    `  <memoryBacking>`,
    `    <source type='memfd'/>`,
    `    <access mode='shared'/>`,
    `  </memoryBacking>`,
    `  <!-- libvirt has no vfio-user device element: the devices go to QEMU directly (JSON -device form). -->`,
    `  <qemu:commandline>`,
  ];
  defs.forEach((def, i) => {
    const d = deviceArgs(def, first + i);
    lines.push(
      `    <qemu:arg value='-device'/>`,
      `    <qemu:arg value='${xmlEscape(d.rootPort)}'/>`,
      `    <qemu:arg value='-device'/>`,
      `    <qemu:arg value='${xmlEscape(d.device)}'/>`,
    );
  });
  lines.push(`  </qemu:commandline>`, `</domain>`);
  return lines.join('\n') + '\n';
}

export type QmpAction = 'add' | 'del';

/**
 * QMP commands that hot-plug (device_add) or unplug (device_del) these vports in a running QEMU
 * (QEMU 11.1 accepts vfio-user-pci in device_add). The device goes on the vport's own root port,
 * which must exist from boot: a pcie-root-port cannot itself be hot-plugged on q35, so start the
 * VM with `qemu-args --devices-only`'s root ports, or any empty hot-pluggable port passed as `bus`.
 * One JSON command per line, in QMP's `{"execute","arguments"}` form.
 */
export function qmpCommands(defs: readonly VportDefinition[], action: QmpAction): string[] {
  return defs.map((def) => {
    const short = shortId(def.uuid);
    const command =
      action === 'add'
        ? {
            execute: 'device_add',
            arguments: {
              driver: 'vfio-user-pci',
              id: `npiv-${short}`,
              bus: `rp-npiv-${short}`,
              socket: { type: 'unix', path: def.socket },
            },
          }
        : { execute: 'device_del', arguments: { id: `npiv-${short}` } };
    return JSON.stringify(command);
  });
}

/** The same commands through libvirt: `virsh qemu-monitor-command DOMAIN '<json>'`, one per line. */
export function virshMonitorCommands(defs: readonly VportDefinition[], action: QmpAction, domain: string): string[] {
  return qmpCommands(defs, action).map(
    (json) => `virsh qemu-monitor-command ${shellQuote(domain)} ${shellQuote(json)}`,
  );
}
