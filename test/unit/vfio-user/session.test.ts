/**
 * The dispatcher, message by message, with buffers and a fake native shim (no sockets):
 * exact errno values, fd ownership (every received fd stored or closed), DMA windows, IRQ
 * wiring and the No_reply rule.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import { DmaError } from '../../../src/device/guest-memory.js';
import { VfioUserSession } from '../../../src/vfio-user/session.js';
import { F_SEAL_SEAL } from '../../../src/native/index.js';
import {
  COMMAND,
  ERRNO,
  HEADER_FLAGS,
  decodeDeviceInfo,
  decodeDmaUnmap,
  decodeIrqInfo,
  decodeRegionAccess,
  decodeRegionInfo,
  decodeVersion,
  encodeDeviceInfo,
  encodeDmaMap,
  encodeDmaUnmap,
  encodeIrqInfo,
  encodeIrqSet,
  encodeRegionAccess,
  encodeRegionInfo,
  encodeVersion,
} from '../../../src/vfio-user/protocol.js';
import { FakeNative, FakeWatcher, RecordingDevice, command, decodeReply, isErrorReply, silentLog } from './helpers.js';
import {
  VFIO_DEVICE_FLAGS_PCI,
  VFIO_DEVICE_FLAGS_RESET,
  VFIO_DMA_UNMAP_FLAG_ALL,
  VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP,
  VFIO_IRQ_SET_ACTION_MASK,
  VFIO_IRQ_SET_ACTION_TRIGGER,
  VFIO_IRQ_SET_ACTION_UNMASK,
  VFIO_IRQ_SET_DATA_BOOL,
  VFIO_IRQ_SET_DATA_EVENTFD,
  VFIO_IRQ_SET_DATA_NONE,
  VFIO_REGION_INFO_FLAG_READ,
  VFIO_REGION_INFO_FLAG_WRITE,
} from '../../../src/device/linux-vfio.js';

const DATA_NONE = VFIO_IRQ_SET_DATA_NONE;
const DATA_BOOL = VFIO_IRQ_SET_DATA_BOOL;
const DATA_EVENTFD = VFIO_IRQ_SET_DATA_EVENTFD;
const ACTION_MASK = VFIO_IRQ_SET_ACTION_MASK;
const ACTION_UNMASK = VFIO_IRQ_SET_ACTION_UNMASK;
const ACTION_TRIGGER = VFIO_IRQ_SET_ACTION_TRIGGER;
const INTX = 0;
const MSIX = 2;

let native: FakeNative;
let watcher: FakeWatcher;
let device: RecordingDevice;
let session: VfioUserSession;
let nextId: number;

function send(cmd: number, payload?: Uint8Array, fds: number[] = [], flags = 0) {
  return session.handle(command(nextId++, cmd, payload, fds, flags));
}

/** Sends and expects a successful reply; returns its payload. */
function ok(cmd: number, payload?: Uint8Array, fds: number[] = []): Uint8Array {
  const result = send(cmd, payload, fds);
  const r = decodeReply(result.reply);
  if (r.header.flags & HEADER_FLAGS.ERROR) throw new Error(`command ${cmd} failed with errno ${r.header.error}`);
  expect(r.header.flags & HEADER_FLAGS.TYPE_MASK).toBe(HEADER_FLAGS.TYPE_REPLY);
  expect(r.header.command).toBe(cmd);
  expect(result.close).toBe(false);
  return r.payload;
}

/** Sends and expects an error reply with exactly this errno (connection kept). */
function fails(errno: number, cmd: number, payload?: Uint8Array, fds: number[] = []): void {
  const result = send(cmd, payload, fds);
  const r = decodeReply(result.reply);
  expect({ errno: r.header.error, isError: isErrorReply(r, errno) }).toEqual({ errno, isError: true });
  expect(result.close).toBe(false);
}

function negotiate(): void {
  ok(COMMAND.VERSION, encodeVersion({ major: 0, minor: 0, json: '{"capabilities":{"max_msg_fds":16}}' }));
}

function dmaMap(address: bigint, size: bigint, flags = 3, offset = 0n) {
  return encodeDmaMap({ argsz: 32, flags, offset, address, size });
}

function setIrqs(index: number, flags: number, start: number, count: number, data = new Uint8Array(0)) {
  return encodeIrqSet({ argsz: 20 + data.length, flags, index, start, count, data });
}

function rw(region: number, offset: bigint, count: number, data = new Uint8Array(0)) {
  return encodeRegionAccess({ offset, region, count, data });
}

beforeEach(() => {
  native = new FakeNative();
  watcher = new FakeWatcher();
  device = new RecordingDevice();
  session = new VfioUserSession({ device, native, watch: watcher.watch, log: silentLog });
  nextId = 0;
});

describe('VERSION negotiation', () => {
  it('answers 0.0 with NUL-terminated JSON capabilities and attaches the device', () => {
    const p = ok(
      COMMAND.VERSION,
      encodeVersion({ major: 0, minor: 0, json: '{"capabilities":{"max_msg_fds":16,"write_multiple":true}}' }),
    );
    expect(p[p.length - 1]).toBe(0);
    const v = decodeVersion(p);
    expect([v.major, v.minor]).toEqual([0, 0]);
    const caps = JSON.parse(v.json!).capabilities;
    expect(caps).toEqual({ max_msg_fds: 16, max_data_xfer_size: 1048576, pgsizes: 4096, max_dma_maps: 1024 });
    expect(caps.write_multiple).toBeUndefined();
    expect(device.attaches).toBe(1);
    expect(device.ctx?.memory).toBe(session.memory);
    expect(session.peerCapabilities?.writeMultiple).toBe(true);
  });

  it('answers minor 0 to a client proposing a higher minor', () => {
    const v = decodeVersion(ok(COMMAND.VERSION, encodeVersion({ major: 0, minor: 7, json: undefined })));
    expect(v.minor).toBe(0);
  });

  it('refuses any other command first, and closes', () => {
    const result = send(COMMAND.DEVICE_GET_INFO, new Uint8Array(16));
    expect(isErrorReply(decodeReply(result.reply), ERRNO.EINVAL)).toBe(true);
    expect(result.close).toBe(true);
    expect(device.attaches).toBe(0);
  });

  it.each([
    ['major 1', encodeVersion({ major: 1, minor: 0, json: undefined }), ERRNO.ENOTSUP],
    ['invalid JSON', encodeVersion({ major: 0, minor: 0, json: '{"capabilities":' }), ERRNO.EINVAL],
    [
      'wrongly typed capability',
      encodeVersion({ major: 0, minor: 0, json: '{"capabilities":{"max_msg_fds":"x"}}' }),
      ERRNO.EINVAL,
    ],
    ['missing NUL', encodeVersion({ major: 0, minor: 0, json: '{}' }).subarray(0, 6), ERRNO.EINVAL],
  ])('a failed negotiation (%s) is answered with an error and closes', (_what, payload, errno) => {
    const result = send(COMMAND.VERSION, payload);
    expect(isErrorReply(decodeReply(result.reply), errno)).toBe(true);
    expect(result.close).toBe(true);
    expect(session.isNegotiated).toBe(false);
  });

  it('a second VERSION is EINVAL but keeps the connection', () => {
    negotiate();
    fails(ERRNO.EINVAL, COMMAND.VERSION, encodeVersion({ major: 0, minor: 0, json: undefined }));
    expect(device.attaches).toBe(1);
  });
});

describe('header and command validation', () => {
  beforeEach(negotiate);

  it.each([
    ['GET_REGION_IO_FDS', COMMAND.DEVICE_GET_REGION_IO_FDS],
    ['REGION_WRITE_MULTI (write_multiple not offered)', COMMAND.REGION_WRITE_MULTI],
    ['DMA_READ (server-to-client only)', COMMAND.DMA_READ],
    ['DEVICE_FEATURE', COMMAND.DEVICE_FEATURE],
    ['MIG_DATA_READ', COMMAND.MIG_DATA_READ],
    ['unknown 99', 99],
  ])('%s → ENOTSUP, connection stays usable', (_what, cmd) => {
    fails(ERRNO.ENOTSUP, cmd, new Uint8Array(8));
    expect(
      decodeDeviceInfo(
        ok(
          COMMAND.DEVICE_GET_INFO,
          new Uint8Array(16).fill(0).map((_, i) => (i === 0 ? 16 : 0)),
        ),
      ).numRegions,
    ).toBe(9);
  });

  it('unknown header flag bits → EINVAL', () => {
    const r = decodeReply(send(COMMAND.DEVICE_RESET, undefined, [], 0x100).reply);
    expect(isErrorReply(r, ERRNO.EINVAL)).toBe(true);
    expect(device.resets).toBe(0);
  });

  it('unexpected fds are closed and the command fails with EINVAL', () => {
    const fd1 = native.fd();
    const fd2 = native.fd();
    fails(ERRNO.EINVAL, COMMAND.DEVICE_GET_INFO, encodeDeviceInfo({ argsz: 16, flags: 0, numRegions: 0, numIrqs: 0 }), [
      fd1,
      fd2,
    ]);
    expect(native.closed).toEqual([fd1, fd2]);
  });

  it('an exception from the device becomes EIO', () => {
    device.throwOnRead = true;
    fails(ERRNO.EIO, COMMAND.REGION_READ, rw(7, 0n, 4));
  });
});

describe('DEVICE_GET_INFO / GET_REGION_INFO / GET_IRQ_INFO', () => {
  beforeEach(negotiate);

  it('reports a PCI device with reset, 9 regions and 5 IRQ types', () => {
    const info = decodeDeviceInfo(
      ok(COMMAND.DEVICE_GET_INFO, encodeDeviceInfo({ argsz: 16, flags: 0, numRegions: 0, numIrqs: 0 })),
    );
    expect(info).toEqual({
      argsz: 16,
      flags: VFIO_DEVICE_FLAGS_PCI | VFIO_DEVICE_FLAGS_RESET,
      numRegions: 9,
      numIrqs: 5,
    });
    fails(ERRNO.EINVAL, COMMAND.DEVICE_GET_INFO, encodeDeviceInfo({ argsz: 8, flags: 0, numRegions: 0, numIrqs: 0 }));
    fails(ERRNO.EINVAL, COMMAND.DEVICE_GET_INFO, new Uint8Array(8));
  });

  it('describes every region 0..8; absent ones have size 0 and no flags', () => {
    const q = (index: number, argsz = 32) =>
      decodeRegionInfo(
        ok(
          COMMAND.DEVICE_GET_REGION_INFO,
          encodeRegionInfo({ argsz, flags: 0, index, capOffset: 0, size: 0n, offset: 0n }),
        ),
      );
    expect(q(0)).toEqual({
      argsz: 32,
      flags: VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE,
      index: 0,
      capOffset: 0,
      size: 256n,
      offset: 0n,
    });
    expect(q(2).flags).toBe(VFIO_REGION_INFO_FLAG_READ);
    expect(q(7).size).toBe(256n);
    for (const absent of [1, 3, 4, 5, 6, 8]) expect(q(absent)).toMatchObject({ size: 0n, flags: 0 });
    // A bigger argsz still gets the 32 bytes actually needed, with argsz = 32.
    const big = ok(
      COMMAND.DEVICE_GET_REGION_INFO,
      encodeRegionInfo({ argsz: 64, flags: 0, index: 0, capOffset: 0, size: 0n, offset: 0n }),
    );
    expect(big.length).toBe(32);
    expect(decodeRegionInfo(big).argsz).toBe(32);
  });

  it('refuses a small argsz, a short request and an index past num_regions', () => {
    const req = (argsz: number, index: number) =>
      encodeRegionInfo({ argsz, flags: 0, index, capOffset: 0, size: 0n, offset: 0n });
    fails(ERRNO.EINVAL, COMMAND.DEVICE_GET_REGION_INFO, req(16, 0));
    fails(ERRNO.EINVAL, COMMAND.DEVICE_GET_REGION_INFO, req(32, 9));
    fails(ERRNO.EINVAL, COMMAND.DEVICE_GET_REGION_INFO, req(32, 0xffffffff));
    fails(ERRNO.EINVAL, COMMAND.DEVICE_GET_REGION_INFO, req(32, 0).subarray(0, 16));
  });

  it('describes IRQ types 0..4 and refuses index 5', () => {
    const q = (index: number) =>
      decodeIrqInfo(ok(COMMAND.DEVICE_GET_IRQ_INFO, encodeIrqInfo({ argsz: 16, flags: 0, index, count: 0 })));
    expect(q(0)).toEqual({ argsz: 16, flags: 1 | 2 | 4, index: 0, count: 1 });
    expect(q(1).count).toBe(0);
    expect(q(2)).toEqual({ argsz: 16, flags: 1 | 8, index: 2, count: 4 });
    expect(q(4).count).toBe(1);
    fails(ERRNO.EINVAL, COMMAND.DEVICE_GET_IRQ_INFO, encodeIrqInfo({ argsz: 16, flags: 0, index: 5, count: 0 }));
    fails(ERRNO.EINVAL, COMMAND.DEVICE_GET_IRQ_INFO, encodeIrqInfo({ argsz: 4, flags: 0, index: 0, count: 0 }));
  });
});

describe('DMA_MAP / DMA_UNMAP', () => {
  beforeEach(negotiate);

  function unsealedFd(seals: number): number {
    const fd = native.fd();
    native.seals.set(fd, seals);
    return fd;
  }

  function unsealableFd(): number {
    const fd = native.fd();
    native.seals.set(fd, null);
    return fd;
  }

  it('mmaps the fd at its offset with the window permissions, then closes the fd', () => {
    const fd = native.fd(0x40000);
    ok(COMMAND.DMA_MAP, dmaMap(0x100000n, 0x20000n, 3, 0x10000n), [fd]);
    expect(native.mmaps).toHaveLength(1);
    expect(native.mmaps[0]).toMatchObject({ fd, length: 0x20000, offset: 0x10000n, prot: 3 });
    expect(native.closed).toEqual([fd]);
    const w = session.memory.find(0x100000n)!;
    expect(w).toMatchObject({ address: 0x100000n, size: 0x20000n, readable: true, writable: true });
    // The device sees the mapping through its GuestMemory.
    device.ctx!.memory.write(0x100010n, Uint8Array.of(0xab));
    expect(new Uint8Array(native.mmaps[0]!.buffer)[0x10]).toBe(0xab);
  });

  it('maps read-only windows without PROT_WRITE', () => {
    const fd = native.fd();
    ok(COMMAND.DMA_MAP, dmaMap(0n, 0x1000n, 1), [fd]);
    expect(native.mmaps[0]!.prot).toBe(1);
    expect(() => device.ctx!.memory.write(0n, Uint8Array.of(1))).toThrow(DmaError);
  });

  it('accepts a window without an fd, but device DMA into it fails with a clear DmaError', () => {
    ok(COMMAND.DMA_MAP, dmaMap(0n, 0x100000n), []);
    expect(native.mmaps).toHaveLength(0);
    expect(() => device.ctx!.memory.read(0x1000n, 4)).toThrow(/share=on/);
  });

  it('refuses an overlapping window with EEXIST before mapping anything', () => {
    ok(COMMAND.DMA_MAP, dmaMap(0x10000n, 0x10000n), [native.fd()]);
    const fd = native.fd();
    fails(ERRNO.EEXIST, COMMAND.DMA_MAP, dmaMap(0x18000n, 0x10000n), [fd]);
    expect(native.mmaps).toHaveLength(1);
    expect(native.closed).toContain(fd);
  });

  it.each([
    ['two fds', () => [dmaMap(0n, 0x1000n), [native.fd(), native.fd()]] as const, ERRNO.EINVAL],
    ['unaligned address', () => [dmaMap(0x800n, 0x1000n), [native.fd()]] as const, ERRNO.EINVAL],
    ['unaligned size', () => [dmaMap(0n, 0x1800n), [native.fd()]] as const, ERRNO.EINVAL],
    ['zero size', () => [dmaMap(0n, 0n), []] as const, ERRNO.EINVAL],
    ['wrapping 2^64', () => [dmaMap(0xffff_ffff_ffff_f000n, 0x2000n), []] as const, ERRNO.EINVAL],
    [
      'unknown flag bits (libvfio-user extensions)',
      () => [dmaMap(0n, 0x1000n, 3 | 4), [native.fd()]] as const,
      ERRNO.EINVAL,
    ],
    ['unaligned file offset', () => [dmaMap(0n, 0x1000n, 3, 0x10n), [native.fd()]] as const, ERRNO.EINVAL],
    [
      'range past the end of the file (would SIGBUS)',
      () => [dmaMap(0n, 0x2000n, 3, 0x1000n), [native.fd(0x2000)]] as const,
      ERRNO.EINVAL,
    ],
    [
      'an unsealed memfd (could shrink under the mapping)',
      () => [dmaMap(0n, 0x1000n), [unsealedFd(F_SEAL_SEAL)]] as const,
      ERRNO.EPERM,
    ],
    [
      'a file that cannot carry seals (a regular file: its owner could truncate it)',
      () => [dmaMap(0n, 0x1000n), [unsealableFd()]] as const,
      ERRNO.EPERM,
    ],
    ['short payload', () => [dmaMap(0n, 0x1000n).subarray(0, 24), [native.fd()]] as const, ERRNO.EINVAL],
    [
      'wrong argsz',
      () => [encodeDmaMap({ argsz: 8, flags: 3, offset: 0n, address: 0n, size: 0x1000n }), [native.fd()]] as const,
      ERRNO.EINVAL,
    ],
  ])('refuses %s and closes every fd', (_what, make, errno) => {
    const [payload, fds] = make();
    fails(errno, COMMAND.DMA_MAP, payload, [...fds]);
    expect(native.mmaps).toHaveLength(0);
    expect(native.open.size).toBe(0);
    expect(session.memory.windows).toHaveLength(0);
  });

  it('passes the mmap errno through', () => {
    native.failMmapErrno = ERRNO.ENOMEM;
    fails(ERRNO.ENOMEM, COMMAND.DMA_MAP, dmaMap(0n, 0x1000n), [native.fd()]);
    expect(native.open.size).toBe(0);
  });

  it('enforces max_dma_maps with ENOSPC', () => {
    session = new VfioUserSession({
      device,
      native,
      watch: null,
      log: silentLog,
      limits: { maxMsgFds: 16, maxDataXferSize: 1 << 20, maxDmaMaps: 2, pgsizes: 4096 },
    });
    negotiate();
    ok(COMMAND.DMA_MAP, dmaMap(0n, 0x1000n), []);
    ok(COMMAND.DMA_MAP, dmaMap(0x1000n, 0x1000n), []);
    fails(ERRNO.ENOSPC, COMMAND.DMA_MAP, dmaMap(0x2000n, 0x1000n), [native.fd()]);
    expect(native.mmaps).toHaveLength(0);
  });

  it('unmaps an exact match, releasing the mapping before replying with the entry', () => {
    ok(COMMAND.DMA_MAP, dmaMap(0x10000n, 0x2000n), [native.fd()]);
    ok(COMMAND.DMA_MAP, dmaMap(0x20000n, 0x1000n), [native.fd()]);
    const buf = native.mmaps[0]!.buffer;
    fails(ERRNO.ENOENT, COMMAND.DMA_UNMAP, encodeDmaUnmap({ argsz: 24, flags: 0, address: 0x10000n, size: 0x1000n }));
    const reply = decodeDmaUnmap(
      ok(COMMAND.DMA_UNMAP, encodeDmaUnmap({ argsz: 24, flags: 0, address: 0x10000n, size: 0x2000n })),
    );
    expect(reply).toEqual({ argsz: 24, flags: 0, address: 0x10000n, size: 0x2000n });
    expect(native.munmapped).toEqual([buf]);
    expect(buf.byteLength).toBe(0);
    expect(session.memory.windows.map((w) => w.address)).toEqual([0x20000n]);
  });

  it('unmaps everything with FLAG_ALL (address = size = 0 only); dirty bitmaps are ENOTSUP', () => {
    ok(COMMAND.DMA_MAP, dmaMap(0x10000n, 0x2000n), [native.fd()]);
    ok(COMMAND.DMA_MAP, dmaMap(0x20000n, 0x1000n), []);
    fails(
      ERRNO.EINVAL,
      COMMAND.DMA_UNMAP,
      encodeDmaUnmap({ argsz: 24, flags: VFIO_DMA_UNMAP_FLAG_ALL, address: 0x10000n, size: 0x2000n }),
    );
    fails(
      ERRNO.ENOTSUP,
      COMMAND.DMA_UNMAP,
      encodeDmaUnmap({ argsz: 24, flags: VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP, address: 0x10000n, size: 0x2000n }),
    );
    fails(ERRNO.EINVAL, COMMAND.DMA_UNMAP, encodeDmaUnmap({ argsz: 24, flags: 0x8, address: 0x10000n, size: 0x2000n }));
    fails(ERRNO.EINVAL, COMMAND.DMA_UNMAP, encodeDmaUnmap({ argsz: 16, flags: 0, address: 0x10000n, size: 0x2000n }));
    ok(COMMAND.DMA_UNMAP, encodeDmaUnmap({ argsz: 24, flags: VFIO_DMA_UNMAP_FLAG_ALL, address: 0n, size: 0n }));
    expect(session.memory.windows).toHaveLength(0);
    expect(native.munmapped).toHaveLength(1); // the fd-less window had nothing to unmap
  });
});

describe('DEVICE_SET_IRQS', () => {
  beforeEach(negotiate);

  it('binds the INTx trigger eventfd, signals it, and calls irqsChanged after every SET_IRQS', () => {
    const fd = native.fd();
    ok(COMMAND.DEVICE_SET_IRQS, setIrqs(INTX, DATA_EVENTFD | ACTION_TRIGGER, 0, 1), [fd]);
    expect(native.closed).toEqual([]);
    expect(device.irqsChangedCalls).toEqual([INTX]);
    expect(session.irqs.activeIndex()).toBe(INTX);
    expect(session.irqs.trigger(INTX, 0)).toBe(true);
    expect(native.eventfdWrites).toEqual([{ fd, value: 1n }]);
    // AUTOMASKED: masked until the client unmasks (QEMU: DATA_NONE|UNMASK at EOI).
    expect(session.irqs.trigger(INTX, 0)).toBe(false);
    ok(COMMAND.DEVICE_SET_IRQS, setIrqs(INTX, DATA_NONE | ACTION_UNMASK, 0, 1));
    expect(device.irqsChangedCalls).toEqual([INTX, INTX]);
    expect(session.irqs.trigger(INTX, 0)).toBe(true);
    expect(native.writesTo(fd)).toBe(2);
  });

  it('binds, swaps and de-assigns MSI-X vectors, closing replaced fds', () => {
    const fds = [native.fd(), native.fd(), native.fd(), native.fd()];
    ok(COMMAND.DEVICE_SET_IRQS, setIrqs(MSIX, DATA_EVENTFD | ACTION_TRIGGER, 0, 4), fds);
    expect(session.irqs.boundVectors(MSIX)).toBe(4);
    expect(session.irqs.activeIndex()).toBe(MSIX);
    const swapped = native.fd();
    ok(COMMAND.DEVICE_SET_IRQS, setIrqs(MSIX, DATA_EVENTFD | ACTION_TRIGGER, 1, 1), [swapped]);
    expect(native.closed).toEqual([fds[1]]);
    expect(session.irqs.trigger(MSIX, 1)).toBe(true);
    expect(native.writesTo(swapped)).toBe(1);
    expect(native.writesTo(fds[1]!)).toBe(0);
    // QEMU's de-assign: DATA_EVENTFD with zero fds.
    ok(COMMAND.DEVICE_SET_IRQS, setIrqs(MSIX, DATA_EVENTFD | ACTION_TRIGGER, 2, 2));
    expect(native.closed).toEqual([fds[1], fds[2], fds[3]]);
    expect(session.irqs.boundVectors(MSIX)).toBe(2);
    expect(session.irqs.trigger(MSIX, 3)).toBe(false);
    expect(device.irqsChangedCalls).toEqual([MSIX, MSIX, MSIX]);
  });

  it('count 0 with DATA_NONE|TRIGGER disables the whole index', () => {
    const fds = [native.fd(), native.fd()];
    ok(COMMAND.DEVICE_SET_IRQS, setIrqs(MSIX, DATA_EVENTFD | ACTION_TRIGGER, 0, 2), fds);
    ok(COMMAND.DEVICE_SET_IRQS, setIrqs(MSIX, DATA_NONE | ACTION_TRIGGER, 0, 0));
    expect(native.closed.sort()).toEqual([...fds].sort());
    expect(session.irqs.boundVectors(MSIX)).toBe(0);
    expect(session.irqs.activeIndex()).toBeNull();
  });

  it('masks and unmasks with DATA_BOOL, and triggers on the client’s request', () => {
    const fds = [native.fd(), native.fd(), native.fd(), native.fd()];
    ok(COMMAND.DEVICE_SET_IRQS, setIrqs(MSIX, DATA_EVENTFD | ACTION_TRIGGER, 0, 4), fds);
    ok(COMMAND.DEVICE_SET_IRQS, setIrqs(MSIX, DATA_BOOL | ACTION_MASK, 0, 4, Uint8Array.of(0, 1, 0, 1)));
    expect([0, 1, 2, 3].map((v) => session.irqs.trigger(MSIX, v))).toEqual([true, false, true, false]);
    ok(COMMAND.DEVICE_SET_IRQS, setIrqs(MSIX, DATA_NONE | ACTION_UNMASK, 1, 1));
    expect(session.irqs.isMasked(MSIX, 1)).toBe(false);
    expect(session.irqs.isMasked(MSIX, 3)).toBe(true);
    ok(COMMAND.DEVICE_SET_IRQS, setIrqs(MSIX, DATA_NONE | ACTION_TRIGGER, 1, 1)); // loopback
    expect(native.writesTo(fds[1]!)).toBe(1); // the masked trigger above wrote nothing
  });

  it('binds an UNMASK eventfd (KVM resample) and unmasks INTx when the client signals it', () => {
    const trigger = native.fd();
    const resample = native.fd();
    ok(COMMAND.DEVICE_SET_IRQS, setIrqs(INTX, DATA_EVENTFD | ACTION_TRIGGER, 0, 1), [trigger]);
    ok(COMMAND.DEVICE_SET_IRQS, setIrqs(INTX, DATA_EVENTFD | ACTION_UNMASK, 0, 1), [resample]);
    expect(watcher.isWatched(resample)).toBe(true);
    expect(session.irqs.trigger(INTX, 0)).toBe(true);
    expect(session.irqs.isMasked(INTX, 0)).toBe(true);
    const before = device.irqsChangedCalls.length;
    native.eventfdCounters.set(resample, 1n); // KVM signals the guest's EOI
    watcher.fire(resample);
    expect(session.irqs.isMasked(INTX, 0)).toBe(false);
    expect(device.irqsChangedCalls.length).toBe(before + 1);
    // Replacing it stops the watch and closes the old fd.
    const resample2 = native.fd();
    ok(COMMAND.DEVICE_SET_IRQS, setIrqs(INTX, DATA_EVENTFD | ACTION_UNMASK, 0, 1), [resample2]);
    expect(watcher.isWatched(resample)).toBe(false);
    expect(native.closed).toContain(resample);
  });

  it('refuses fds that are not usable eventfds (pipe, file, blocking) before binding any', () => {
    const good = native.fd();
    const bad = native.fd();
    session = new VfioUserSession({
      device,
      native,
      watch: null,
      log: silentLog,
      checkEventfd: (fd) => (fd === bad ? `fd ${fd} is not an eventfd` : null),
    });
    negotiate();
    fails(ERRNO.EINVAL, COMMAND.DEVICE_SET_IRQS, setIrqs(MSIX, DATA_EVENTFD | ACTION_TRIGGER, 0, 2), [good, bad]);
    expect(native.open.size).toBe(0);
    expect(session.irqs.boundVectors(MSIX)).toBe(0);
  });

  it.each([
    ['index past num_irqs', () => [setIrqs(5, DATA_EVENTFD | ACTION_TRIGGER, 0, 1), [native.fd()]] as const],
    [
      'start+count past the vector count',
      () => [setIrqs(MSIX, DATA_EVENTFD | ACTION_TRIGGER, 3, 2), [native.fd(), native.fd()]] as const,
    ],
    ['huge start (overflow)', () => [setIrqs(MSIX, DATA_NONE | ACTION_MASK, 0xffffffff, 2), []] as const],
    ['fd count ≠ count', () => [setIrqs(MSIX, DATA_EVENTFD | ACTION_TRIGGER, 0, 2), [native.fd()]] as const],
    ['fds without DATA_EVENTFD', () => [setIrqs(MSIX, DATA_NONE | ACTION_TRIGGER, 0, 1), [native.fd()]] as const],
    ['two data types', () => [setIrqs(MSIX, DATA_NONE | DATA_BOOL | ACTION_TRIGGER, 0, 1), []] as const],
    ['two actions', () => [setIrqs(MSIX, DATA_NONE | ACTION_MASK | ACTION_UNMASK, 0, 1), []] as const],
    ['unknown flag bits', () => [setIrqs(MSIX, DATA_NONE | ACTION_MASK | 0x40, 0, 1), []] as const],
    ['count 0 other than disable-all', () => [setIrqs(MSIX, DATA_EVENTFD | ACTION_TRIGGER, 0, 0), []] as const],
    [
      'DATA_BOOL with missing bytes',
      () => [setIrqs(MSIX, DATA_BOOL | ACTION_MASK, 0, 4, Uint8Array.of(1, 1)), []] as const,
    ],
    [
      'argsz not matching the payload',
      () =>
        [
          encodeIrqSet({
            argsz: 40,
            flags: DATA_NONE | ACTION_MASK,
            index: MSIX,
            start: 0,
            count: 1,
            data: new Uint8Array(0),
          }),
          [],
        ] as const,
    ],
    ['truncated struct', () => [setIrqs(MSIX, DATA_NONE | ACTION_MASK, 0, 1).subarray(0, 12), [native.fd()]] as const],
  ])('%s → EINVAL, fds closed, nothing bound, no irqsChanged', (_what, make) => {
    const [payload, fds] = make();
    fails(ERRNO.EINVAL, COMMAND.DEVICE_SET_IRQS, payload, [...fds]);
    expect(native.open.size).toBe(0);
    expect(session.irqs.boundVectors(MSIX)).toBe(0);
    expect(device.irqsChangedCalls).toEqual([]);
  });
});

describe('REGION_READ / REGION_WRITE / DEVICE_RESET', () => {
  beforeEach(negotiate);

  it('reads config space and echoes offset/region/count', () => {
    const a = decodeRegionAccess(ok(COMMAND.REGION_READ, rw(7, 0n, 4)), 'r');
    expect(a).toMatchObject({ offset: 0n, region: 7, count: 4 });
    expect([...a.data]).toEqual([0xf4, 0x1a, 0x34, 0x12]);
    expect(decodeRegionAccess(ok(COMMAND.REGION_READ, rw(7, 252n, 4)), 'r').data).toHaveLength(4);
  });

  it('writes and replies with the 16-byte echo only', () => {
    const reply = ok(COMMAND.REGION_WRITE, rw(0, 8n, 4, Uint8Array.of(1, 2, 3, 4)));
    expect(reply.length).toBe(16);
    expect(decodeRegionAccess(reply, 'w')).toMatchObject({ offset: 8n, region: 0, count: 4 });
    expect(device.writes).toEqual([{ index: 0, offset: 8, data: [1, 2, 3, 4] }]);
  });

  it('applies posted writes in order and never answers them, not even errors', () => {
    expect(send(COMMAND.REGION_WRITE, rw(0, 0n, 1, Uint8Array.of(1)), [], HEADER_FLAGS.NO_REPLY)).toEqual({
      reply: null,
      close: false,
    });
    expect(send(COMMAND.REGION_WRITE, rw(0, 999n, 1, Uint8Array.of(9)), [], HEADER_FLAGS.NO_REPLY)).toEqual({
      reply: null,
      close: false,
    });
    expect(send(COMMAND.REGION_WRITE, rw(0, 0n, 1, Uint8Array.of(2)), [], HEADER_FLAGS.NO_REPLY)).toEqual({
      reply: null,
      close: false,
    });
    expect(device.writes.map((w) => w.data[0])).toEqual([1, 2]);
    // A following read sees the last posted write.
    expect(decodeRegionAccess(ok(COMMAND.REGION_READ, rw(0, 0n, 1)), 'r').data[0]).toBe(2);
  });

  it.each([
    ['past the region end', () => rw(7, 253n, 4), ERRNO.EINVAL],
    ['offset near 2^64', () => rw(7, 0xffff_ffff_ffff_fffcn, 8), ERRNO.EINVAL],
    ['an absent region', () => rw(1, 0n, 4), ERRNO.EINVAL],
    ['a region index past num_regions', () => rw(9, 0n, 4), ERRNO.EINVAL],
    ['zero bytes', () => rw(7, 0n, 0), ERRNO.EINVAL],
    ['more than max_data_xfer_size', () => rw(7, 0n, (1 << 20) + 1), ERRNO.E2BIG],
    ['a read request carrying data', () => rw(7, 0n, 4, Uint8Array.of(1)), ERRNO.EINVAL],
  ])('a read of %s fails', (_what, make, errno) => {
    fails(errno, COMMAND.REGION_READ, make());
  });

  it.each([
    ['count ≠ data length', () => rw(0, 0n, 4, Uint8Array.of(1, 2)), ERRNO.EINVAL],
    ['a read-only region', () => rw(2, 0n, 1, Uint8Array.of(1)), ERRNO.EPERM],
    ['past the region end', () => rw(0, 255n, 2, Uint8Array.of(1, 2)), ERRNO.EINVAL],
  ])('a write with %s fails and changes nothing', (_what, make, errno) => {
    fails(errno, COMMAND.REGION_WRITE, make());
    expect(device.writes).toEqual([]);
  });

  it('resets the device; a reset with a payload is EINVAL', () => {
    expect(ok(COMMAND.DEVICE_RESET).length).toBe(0);
    expect(device.resets).toBe(1);
    fails(ERRNO.EINVAL, COMMAND.DEVICE_RESET, new Uint8Array(4));
    expect(device.resets).toBe(1);
  });
});

describe('client disconnect', () => {
  it('detaches the device, unmaps everything, closes every irq fd, keeps device state', () => {
    negotiate();
    ok(COMMAND.DMA_MAP, dmaMap(0n, 0x1000n), [native.fd()]);
    ok(COMMAND.DMA_MAP, dmaMap(0x1000n, 0x1000n), [native.fd()]);
    ok(COMMAND.DEVICE_SET_IRQS, setIrqs(MSIX, DATA_EVENTFD | ACTION_TRIGGER, 0, 4), [
      native.fd(),
      native.fd(),
      native.fd(),
      native.fd(),
    ]);
    const resample = native.fd();
    ok(COMMAND.DEVICE_SET_IRQS, setIrqs(INTX, DATA_EVENTFD | ACTION_UNMASK, 0, 1), [resample]);
    ok(COMMAND.REGION_WRITE, rw(0, 0n, 1, Uint8Array.of(0x5a)));
    session.end();
    expect(device.detaches).toBe(1);
    expect(native.munmapped).toHaveLength(2);
    expect(native.open.size).toBe(0); // no fd leaked
    expect(watcher.isWatched(resample)).toBe(false);
    expect(device.bar0[0]).toBe(0x5a);
    session.end(); // idempotent
    expect(device.detaches).toBe(1);
    const after = session.handle(command(50, COMMAND.DEVICE_RESET));
    expect(isErrorReply(decodeReply(after.reply), ERRNO.ENOTCONN)).toBe(true);
  });
});
