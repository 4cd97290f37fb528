/**
 * Test doubles for the vfio-user unit tests that run without the native addon: a fake
 * native shim that records what the dispatcher does with fds, mappings and eventfds, a small
 * device, and message builders.
 */
import { pino } from 'pino';
import type { PollHandle } from '../../../src/native/index.js';
import type { IrqIndex, IrqInfo } from '../../../src/device/interrupts.js';
import type { DeviceContext, RegionInfo } from '../../../src/device/context.js';
import type { VfioUserDevice } from '../../../src/vfio-user/device-api.js';
import {
  HEADER_FLAGS,
  encodeMessage,
  decodeHeader,
  HEADER,
  type MessageHeader,
} from '../../../src/vfio-user/protocol.js';
import type { FramedMessage } from '../../../src/vfio-user/framer.js';
import type { SessionNative } from '../../../src/vfio-user/session.js';
import { F_SEAL_GROW, F_SEAL_SEAL, F_SEAL_SHRINK } from '../../../src/native/index.js';

export const silentLog = pino({ level: 'silent' });

/** Fake fds start high so they never collide with real ones in assertions. */
export class FakeNative implements SessionNative {
  private nextFd = 1000;
  readonly open = new Set<number>();
  readonly closed: number[] = [];
  readonly eventfdWrites: { fd: number; value: bigint }[] = [];
  readonly eventfdCounters = new Map<number, bigint>();
  readonly mmaps: { fd: number; length: number; offset: bigint; prot: number; buffer: ArrayBuffer }[] = [];
  readonly munmapped: ArrayBuffer[] = [];
  /** st_size reported for an fd (default: large enough) */
  readonly sizes = new Map<number, number>();
  /** F_GET_SEALS answer per fd (default: sealed like QEMU's memfd backend); null = cannot carry seals */
  readonly seals = new Map<number, number | null>();
  /** make the next mmap fail with this errno */
  failMmapErrno: number | null = null;

  /** A "received" fd, as if it came with SCM_RIGHTS. */
  fd(size = 1 << 20): number {
    const fd = this.nextFd++;
    this.open.add(fd);
    this.sizes.set(fd, size);
    return fd;
  }

  close(fd: number): void {
    if (!this.open.has(fd)) throw Object.assign(new Error(`EBADF: close(${fd})`), { errno: 9, code: 'EBADF' });
    this.open.delete(fd);
    this.closed.push(fd);
  }

  fdSize(fd: number): number {
    if (!this.open.has(fd)) throw Object.assign(new Error('EBADF'), { errno: 9 });
    return this.sizes.get(fd) ?? 0;
  }

  fdSeals(fd: number): number | null {
    if (!this.open.has(fd)) throw Object.assign(new Error('EBADF'), { errno: 9 });
    const seals = this.seals.get(fd);
    return seals === undefined ? F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL : seals;
  }

  mmap(fd: number, length: number, offset: bigint, prot: number): ArrayBuffer {
    if (!this.open.has(fd)) throw Object.assign(new Error('EBADF'), { errno: 9 });
    if (this.failMmapErrno !== null) {
      const errno = this.failMmapErrno;
      this.failMmapErrno = null;
      throw Object.assign(new Error('mmap failed'), { errno });
    }
    const buffer = new ArrayBuffer(length);
    this.mmaps.push({ fd, length, offset, prot, buffer });
    return buffer;
  }

  munmap(buf: ArrayBuffer): void {
    this.munmapped.push(buf);
    // Detach, as the real munmap does.
    structuredClone(buf, { transfer: [buf] });
  }

  eventfdWrite(fd: number, value: bigint): void {
    if (!this.open.has(fd)) throw Object.assign(new Error('EBADF'), { errno: 9 });
    this.eventfdWrites.push({ fd, value });
    this.eventfdCounters.set(fd, (this.eventfdCounters.get(fd) ?? 0n) + value);
  }

  eventfdRead(fd: number): bigint | null {
    const v = this.eventfdCounters.get(fd) ?? 0n;
    this.eventfdCounters.delete(fd);
    return v === 0n ? null : v;
  }

  writesTo(fd: number): number {
    return this.eventfdWrites.filter((w) => w.fd === fd).length;
  }
}

/** A manual fd watcher: tests fire readability by hand. */
export class FakeWatcher {
  readonly watches = new Map<number, { onReadable: () => void; stopped: boolean }>();
  readonly watch = (fd: number, onReadable: () => void): PollHandle => {
    const entry = { onReadable, stopped: false };
    this.watches.set(fd, entry);
    return {
      stop: () => {
        entry.stopped = true;
      },
    };
  };
  fire(fd: number): void {
    const w = this.watches.get(fd);
    if (!w || w.stopped) throw new Error(`fd ${fd} is not watched`);
    w.onReadable();
  }
  isWatched(fd: number): boolean {
    const w = this.watches.get(fd);
    return w !== undefined && !w.stopped;
  }
}

/**
 * A small PCI-ish device: config space (256 bytes, interrupt pin A), BAR0 of 256 bytes of
 * plain registers, BAR2 read-only 16 bytes, everything else absent. IRQs: INTx (1,
 * automasked), MSI (0), MSI-X (4), ERR (1), REQ (1).
 */
export class RecordingDevice implements VfioUserDevice {
  readonly numRegions = 9;
  readonly numIrqs = 5;
  readonly config = new Uint8Array(256);
  readonly bar0 = new Uint8Array(256);
  readonly bar2 = Uint8Array.from({ length: 16 }, (_, i) => 0xa0 + i);
  ctx: DeviceContext | null = null;
  attaches = 0;
  detaches = 0;
  resets = 0;
  readonly irqsChangedCalls: IrqIndex[] = [];
  readonly writes: { index: number; offset: number; data: number[] }[] = [];
  throwOnRead = false;

  constructor() {
    this.config.set([0xf4, 0x1a, 0x34, 0x12], 0); // vendor/device
    this.config[0x3d] = 1; // interrupt pin A
  }

  regionInfo(index: number): RegionInfo {
    switch (index) {
      case 0:
        return { size: this.bar0.length, readable: true, writable: true };
      case 2:
        return { size: this.bar2.length, readable: true, writable: false };
      case 7:
        return { size: this.config.length, readable: true, writable: true };
      default:
        return { size: 0, readable: false, writable: false };
    }
  }

  irqInfo(index: number): IrqInfo {
    const EVENTFD = 1;
    const MASKABLE = 2;
    const AUTOMASKED = 4;
    const NORESIZE = 8;
    switch (index) {
      case 0:
        return { count: 1, flags: EVENTFD | MASKABLE | AUTOMASKED };
      case 2:
        return { count: 4, flags: EVENTFD | NORESIZE };
      case 3:
      case 4:
        return { count: 1, flags: EVENTFD };
      default:
        return { count: 0, flags: 0 };
    }
  }

  attach(ctx: DeviceContext): void {
    this.ctx = ctx;
    this.attaches++;
  }

  detach(): void {
    this.ctx = null;
    this.detaches++;
  }

  private backing(index: number): Uint8Array {
    if (index === 0) return this.bar0;
    if (index === 2) return this.bar2;
    if (index === 7) return this.config;
    throw new Error(`no region ${index}`);
  }

  regionRead(index: number, offset: number, length: number): Uint8Array {
    if (this.throwOnRead) throw new Error('device bug');
    return this.backing(index).slice(offset, offset + length);
  }

  regionWrite(index: number, offset: number, data: Uint8Array): void {
    this.writes.push({ index, offset, data: [...data] });
    this.backing(index).set(data, offset);
  }

  irqsChanged(index: IrqIndex): void {
    this.irqsChangedCalls.push(index);
  }

  reset(): void {
    this.resets++;
  }
}

/** A framed command as the framer would deliver it. */
export function command(
  id: number,
  cmd: number,
  payload: Uint8Array = new Uint8Array(0),
  fds: number[] = [],
  flags = 0,
): FramedMessage {
  const bytes = encodeMessage({ id, command: cmd, flags: HEADER_FLAGS.TYPE_COMMAND | flags }, payload);
  return { header: decodeHeader(bytes), payload: bytes.slice(HEADER.SIZEOF), fds };
}

export interface DecodedReply {
  header: MessageHeader;
  payload: Uint8Array;
}

export function decodeReply(bytes: Uint8Array | null): DecodedReply {
  if (bytes === null) throw new Error('expected a reply, got none');
  const header = decodeHeader(bytes);
  if (header.size !== bytes.length) throw new Error(`reply size field ${header.size} != ${bytes.length} bytes`);
  return { header, payload: bytes.slice(HEADER.SIZEOF) };
}

export function isErrorReply(r: DecodedReply, errno: number): boolean {
  return (r.header.flags & HEADER_FLAGS.ERROR) !== 0 && r.header.error === errno && r.payload.length === 0;
}
