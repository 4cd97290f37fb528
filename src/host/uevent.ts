/**
 * Kernel uevents (lib/kobject_uevent.c, NETLINK_KOBJECT_UEVENT group 1): "ACTION@DEVPATH\0" then
 * "KEY=VALUE\0" pairs. The parser is defensive: bounded size and number of keys, printable ASCII
 * only, a known ACTION, and DEVPATH/SUBSYSTEM required; anything else is dropped (and counted).
 *
 * UeventSource is where events come from: NetlinkUeventSource reads the kernel's socket when libuv
 * reports it readable (native/src/uevent.cc; only messages whose sender is the kernel are used),
 * and tests inject raw messages through InjectedUeventSource.
 */
import { POLL_READABLE, native, type PollHandle } from '../native/index.js';
import { hostNative } from '../native/host.js';

export const UEVENT_MAX = 8192; // UEVENT_BUFFER_SIZE (include/linux/kobject.h) is 2048; leave room
export const UEVENT_MAX_KEYS = 64; // UEVENT_NUM_ENVP

export const UEVENT_ACTIONS = ['add', 'remove', 'change', 'move', 'online', 'offline', 'bind', 'unbind'] as const;
export type UeventAction = (typeof UEVENT_ACTIONS)[number];

export interface Uevent {
  action: UeventAction;
  devpath: string;
  subsystem: string;
  devtype: string | null;
  env: ReadonlyMap<string, string>;
}

/** Parses one kernel uevent message; null when it is not a well-formed kernel uevent. */
export function parseUevent(buf: Uint8Array): Uevent | null {
  if (buf.length === 0 || buf.length > UEVENT_MAX) return null;
  for (const b of buf) if (b !== 0 && (b < 0x20 || b > 0x7e)) return null;
  const parts = Buffer.from(buf.buffer, buf.byteOffset, buf.length).toString('latin1').split('\0');
  const head = parts[0]!;
  const at = head.indexOf('@');
  if (at <= 0) return null; // libudev messages start with "libudev\0": never at group 1, refused anyway
  const env = new Map<string, string>();
  const pairs = parts.slice(1).filter((kv) => kv !== '');
  if (pairs.length > UEVENT_MAX_KEYS) return null;
  for (const kv of pairs) {
    const eq = kv.indexOf('=');
    if (eq <= 0) return null;
    const key = kv.slice(0, eq);
    if (!/^[A-Z0-9_]{1,64}$/.test(key) || env.has(key)) return null;
    env.set(key, kv.slice(eq + 1));
  }
  const action = env.get('ACTION');
  const devpath = env.get('DEVPATH');
  const subsystem = env.get('SUBSYSTEM');
  if (!action || !devpath || !subsystem) return null;
  if (!(UEVENT_ACTIONS as readonly string[]).includes(action)) return null;
  if (head.slice(0, at) !== action || head.slice(at + 1) !== devpath) return null;
  if (!devpath.startsWith('/') || devpath.includes('/../') || devpath.length > 1024) return null;
  return { action: action as UeventAction, devpath, subsystem, devtype: env.get('DEVTYPE') ?? null, env };
}

/** Where uevents come from. `onOverflow`: events were lost; re-read everything from sysfs. */
export interface UeventSource {
  start(onEvent: (e: Uevent) => void, onOverflow: () => void): void;
  close(): void;
}

/**
 * A kernel netlink datagram socket read on libuv readiness, shared by the uevent source and the FC
 * event source (fc-event.ts). At most 256 datagrams per wake-up (libuv calls again while more is
 * queued); one not from the kernel or truncated is counted in `dropped`; an overflow (the kernel
 * dropped messages) or a poll error is reported so the caller re-reads its state from sysfs.
 */
export class NetlinkDatagramReader {
  private fd = -1;
  private watch: PollHandle | null = null;
  private readonly buf: Uint8Array;
  /** Datagrams and messages refused (not from the kernel, truncated, malformed). */
  dropped = 0;

  constructor(maxBytes: number) {
    this.buf = new Uint8Array(maxBytes);
  }

  /** `onDatagram` gets each kernel datagram and returns how many of its messages it refused. */
  start(fd: number, onDatagram: (bytes: Uint8Array) => number, onOverflow: () => void): void {
    this.fd = fd;
    this.watch = native.poll(fd, POLL_READABLE, (_events, errno) => {
      if (errno !== 0) return onOverflow();
      for (let i = 0; i < 256; i++) {
        const r = hostNative.ueventRecv(fd, this.buf);
        if (r === null) return;
        if (r.overflow) {
          onOverflow();
          continue;
        }
        if (!r.fromKernel || r.truncated) {
          this.dropped++;
          continue;
        }
        this.dropped += onDatagram(this.buf.subarray(0, r.bytes));
      }
    });
  }

  close(): void {
    this.watch?.stop();
    this.watch = null;
    if (this.fd >= 0) native.close(this.fd);
    this.fd = -1;
  }
}

export class NetlinkUeventSource implements UeventSource {
  private readonly reader = new NetlinkDatagramReader(UEVENT_MAX);

  /** Messages refused (not from the kernel, truncated, malformed). */
  get dropped(): number {
    return this.reader.dropped;
  }

  start(onEvent: (e: Uevent) => void, onOverflow: () => void): void {
    this.reader.start(
      hostNative.ueventOpen(),
      (bytes) => {
        const e = parseUevent(bytes);
        if (!e) return 1;
        onEvent(e);
        return 0;
      },
      onOverflow,
    );
  }

  close(): void {
    this.reader.close();
  }
}

/** Test source: inject raw uevent messages (parsed exactly like the kernel's) and overflows. */
export class InjectedUeventSource implements UeventSource {
  private onEvent: ((e: Uevent) => void) | null = null;
  private onOverflow: (() => void) | null = null;
  dropped = 0;
  start(onEvent: (e: Uevent) => void, onOverflow: () => void): void {
    this.onEvent = onEvent;
    this.onOverflow = onOverflow;
  }
  inject(raw: Uint8Array | string): void {
    const bytes = typeof raw === 'string' ? new Uint8Array(Buffer.from(raw, 'latin1')) : raw;
    const e = parseUevent(bytes);
    if (e) this.onEvent?.(e);
    else this.dropped++;
  }
  overflow(): void {
    this.onOverflow?.();
  }
  close(): void {
    this.onEvent = null;
  }
}

/** Builds a raw uevent message (tests, and documentation of the format). */
export function formatUevent(action: string, devpath: string, env: Record<string, string>): string {
  const pairs = { ACTION: action, DEVPATH: devpath, ...env };
  return `${action}@${devpath}\0${Object.entries(pairs)
    .map(([k, v]) => `${k}=${v}`)
    .join('\0')}\0`;
}
