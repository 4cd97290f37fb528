/**
 * The vfio-user server and the in-repo client over a real Unix socket (native shim):
 * QEMU's startup sequence against a small fake device defined here, guest RAM shared as a
 * memfd, a doorbell that makes the device DMA into guest RAM and raise an MSI-X interrupt
 * through an eventfd, DMA_UNMAP, error replies mid-stream, a garbage header, reconnects and
 * socket-file handling.
 */
import { closeSync, existsSync, ftruncateSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { native, POLL_READABLE } from '../../../src/native/index.js';
import { DmaError } from '../../../src/device/guest-memory.js';
import type { IrqIndex, IrqInfo } from '../../../src/device/interrupts.js';
import type { DeviceContext, RegionInfo } from '../../../src/device/context.js';
import type { VfioUserDevice } from '../../../src/vfio-user/device-api.js';
import { VfioUserServer } from '../../../src/vfio-user/server.js';
import { VfioUserClient, VfioUserRequestError } from '../../../src/vfio-user/client.js';
import {
  COMMAND,
  ERRNO,
  HEADER_FLAGS,
  PROTOCOL_MAJOR,
  PROTOCOL_MINOR,
  decodeHeader,
  encodeCommand,
  encodeDmaMap,
  encodeVersion,
} from '../../../src/vfio-user/protocol.js';
import { runChildClient } from '../../support/child-client.js';
import { openFdCount } from '../../../src/util/proc.js';
import {
  VFIO_IRQ_SET_ACTION_TRIGGER,
  VFIO_IRQ_SET_ACTION_UNMASK,
  VFIO_IRQ_SET_DATA_EVENTFD,
  VFIO_IRQ_SET_DATA_NONE,
  VFIO_PCI_BAR0_REGION_INDEX,
  VFIO_PCI_BAR1_REGION_INDEX,
  VFIO_PCI_BAR2_REGION_INDEX,
  VFIO_PCI_CONFIG_REGION_INDEX,
  VFIO_PCI_INTX_IRQ_INDEX,
  VFIO_PCI_MSIX_IRQ_INDEX,
  VFIO_PCI_REQ_IRQ_INDEX,
} from '../../../src/device/linux-vfio.js';

// --- the fake device ------------------------------------------------------------------------

/** BAR1 "scratch" register layout of the fake device. */
const SCRATCH = {
  DOORBELL: 0x00, // write: copy 4 bytes from DMA_ADDR, add the written value, store at DMA_ADDR + 0x100, raise MSI-X 0
  DMA_ADDR_LO: 0x08,
  DMA_ADDR_HI: 0x0c,
  STATUS: 0x10, // 1 = done, 0xdead = DMA failed
  INTX_ACK: 0x14, // write: lower the INTx line
  SIZE: 0x1000,
} as const;
const STATUS_DONE = 1;
const STATUS_DMA_FAILED = 0xdead;

class FakeHba implements VfioUserDevice {
  readonly numRegions = 9;
  readonly numIrqs = 5;
  readonly config = new Uint8Array(256);
  readonly bar0 = new Uint8Array(0x100);
  readonly scratch = new Uint8Array(SCRATCH.SIZE);
  /** BAR2: plain memory, big enough for max_data_xfer_size transfers */
  readonly bulk = new Uint8Array(2 << 20);
  ctx: DeviceContext | null = null;
  detaches = 0;
  resets = 0;
  readonly irqsChangedCalls: IrqIndex[] = [];
  lastDmaError: string | null = null;
  intxLevel = false;

  constructor() {
    const c = new DataView(this.config.buffer);
    c.setUint16(0x00, 0x1077, true); // vendor
    c.setUint16(0x02, 0x2532, true); // device
    c.setUint32(0x10, 0x0000_0000, true); // BAR0, 32-bit memory
    c.setUint32(0x14, 0x0000_0000, true); // BAR1
    this.config[0x3d] = 1; // INTA#
  }

  regionInfo(index: number): RegionInfo {
    if (index === VFIO_PCI_BAR0_REGION_INDEX) return { size: this.bar0.length, readable: true, writable: true };
    if (index === VFIO_PCI_BAR1_REGION_INDEX) return { size: this.scratch.length, readable: true, writable: true };
    if (index === VFIO_PCI_BAR2_REGION_INDEX) return { size: this.bulk.length, readable: true, writable: true };
    if (index === VFIO_PCI_CONFIG_REGION_INDEX) return { size: this.config.length, readable: true, writable: true };
    return { size: 0, readable: false, writable: false };
  }

  irqInfo(index: number): IrqInfo {
    if (index === VFIO_PCI_INTX_IRQ_INDEX) return { count: 1, flags: 1 | 2 | 4 };
    if (index === VFIO_PCI_MSIX_IRQ_INDEX) return { count: 2, flags: 1 | 8 };
    if (index === VFIO_PCI_REQ_IRQ_INDEX) return { count: 1, flags: 1 };
    return { count: 0, flags: 0 };
  }

  attach(ctx: DeviceContext): void {
    this.ctx = ctx;
  }

  detach(): void {
    this.ctx = null;
    this.detaches++;
  }

  private region(index: number): Uint8Array {
    if (index === VFIO_PCI_BAR2_REGION_INDEX) return this.bulk;
    return index === VFIO_PCI_BAR0_REGION_INDEX
      ? this.bar0
      : index === VFIO_PCI_BAR1_REGION_INDEX
        ? this.scratch
        : this.config;
  }

  regionRead(index: number, offset: number, length: number): Uint8Array {
    return this.region(index).slice(offset, offset + length);
  }

  regionWrite(index: number, offset: number, data: Uint8Array): void {
    this.region(index).set(data, offset);
    if (index === VFIO_PCI_BAR1_REGION_INDEX && offset === SCRATCH.DOORBELL && data.length === 4) this.doorbell(data);
    if (index === VFIO_PCI_BAR1_REGION_INDEX && offset === SCRATCH.INTX_ACK) this.intxLevel = false;
  }

  private doorbell(data: Uint8Array): void {
    const regs = new DataView(this.scratch.buffer);
    const add = new DataView(data.buffer, data.byteOffset, 4).getUint32(0, true);
    const address =
      (BigInt(regs.getUint32(SCRATCH.DMA_ADDR_HI, true)) << 32n) | BigInt(regs.getUint32(SCRATCH.DMA_ADDR_LO, true));
    try {
      const memory = this.ctx!.memory;
      const input = memory.read(address, 4); // copy in
      memory.write(
        address + 0x100n,
        input.map((b) => (b + add) & 0xff),
      );
      regs.setUint32(SCRATCH.STATUS, STATUS_DONE, true);
    } catch (err) {
      if (!(err instanceof DmaError)) throw err;
      this.lastDmaError = err.message;
      regs.setUint32(SCRATCH.STATUS, STATUS_DMA_FAILED, true);
    }
    // MSI-X when QEMU bound it, else the level-triggered INTx line.
    if (this.ctx!.irq.activeIndex() === VFIO_PCI_MSIX_IRQ_INDEX) {
      this.ctx!.irq.trigger(VFIO_PCI_MSIX_IRQ_INDEX, 0);
    } else {
      this.intxLevel = true;
      this.ctx!.irq.trigger(VFIO_PCI_INTX_IRQ_INDEX, 0);
    }
  }

  irqsChanged(index: IrqIndex): void {
    this.irqsChangedCalls.push(index);
    // INTx is AUTOMASKED: after the client's unmask (QEMU's EOI) a still-high line fires again.
    if (index === VFIO_PCI_INTX_IRQ_INDEX && this.intxLevel) this.ctx?.irq.trigger(VFIO_PCI_INTX_IRQ_INDEX, 0);
  }

  reset(): void {
    this.resets++;
    this.scratch.fill(0);
  }
}

// --- helpers ----------------------------------------------------------------------------------

const RAM_SIZE = 0x20_0000;
const dir = mkdtempSync(join(tmpdir(), 'npiv-vfio-user-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let socketCounter = 0;

/** QEMU's first message: VERSION 0.0 with no capabilities. */
function versionMessage(): Uint8Array {
  return encodeCommand(
    1,
    COMMAND.VERSION,
    encodeVersion({ major: PROTOCOL_MAJOR, minor: PROTOCOL_MINOR, json: undefined }),
  );
}

function u32le(v: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, v, true);
  return b;
}

function waitReadable(fd: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const h = native.poll(fd, POLL_READABLE, (_events, errno) => {
      h.stop();
      if (errno !== 0) reject(new Error(`poll errno ${errno}`));
      else resolve();
    });
  });
}

function once(server: VfioUserServer, event: 'connect' | 'disconnect'): Promise<unknown> {
  return new Promise((resolve) => server.once(event, resolve));
}

interface Harness {
  path: string;
  device: FakeHba;
  server: VfioUserServer;
  memfd: number;
  ram: Uint8Array;
  ramBuffer: ArrayBuffer;
}

let h: Harness;
const clients: VfioUserClient[] = [];

function newClient(): VfioUserClient {
  const c = VfioUserClient.connect(h.path);
  clients.push(c);
  return c;
}

function guestRamWindow() {
  return { address: 0n, size: BigInt(RAM_SIZE), fd: h.memfd, offset: 0n };
}

beforeEach(() => {
  const path = join(dir, `dev${socketCounter++}.sock`);
  const device = new FakeHba();
  const server = new VfioUserServer({ socketPath: path, device });
  server.start();
  const memfd = native.memfdCreate('guest-ram', RAM_SIZE);
  const ramBuffer = native.mmap(memfd, RAM_SIZE, 0n, 3);
  h = { path, device, server, memfd, ramBuffer, ram: new Uint8Array(ramBuffer) };
});

afterEach(async () => {
  for (const c of clients.splice(0)) if (!c.isClosed) c.close();
  const closing = h.server.clientConnected ? once(h.server, 'disconnect') : Promise.resolve();
  await closing;
  h.server.close();
  native.munmap(h.ramBuffer);
  native.close(h.memfd);
});

// --- tests ------------------------------------------------------------------------------------

describe('vfio-user server ↔ client over a Unix socket', () => {
  it("runs QEMU's startup sequence, DMA into shared guest RAM and an MSI-X interrupt via eventfd", async () => {
    const client = newClient();
    const connected = once(h.server, 'connect');
    const s = await client.startup({
      dma: [guestRamWindow(), { address: 0xfffc_0000n, size: 0x4_0000n, readonly: true }], // RAM + an fd-less ROM window
      msixVectors: 2,
    });
    await connected;
    expect(s.server).toMatchObject({ maxMsgFds: 16, maxDataXferSize: 1 << 20, pgsizes: 4096, writeMultiple: false });
    expect(s.deviceInfo).toMatchObject({ flags: 3, numRegions: 9, numIrqs: 5 });
    expect(s.regions.map((r) => Number(r.size))).toEqual([0x100, 0x1000, 2 << 20, 0, 0, 0, 0, 256, 0]);
    expect(s.regions[VFIO_PCI_CONFIG_REGION_INDEX]!.flags).toBe(3);
    expect(s.irqs.map((i) => i.count)).toEqual([1, 0, 2, 0, 1]);
    expect([...s.config]).toEqual([...h.device.config]);
    expect(s.intxEventfd).not.toBeNull(); // interrupt pin is set
    expect(s.msixEventfds).toHaveLength(2);

    const session = h.server.session!;
    expect(session.memory.windows.map((w) => [w.address, w.mapping !== null])).toEqual([
      [0n, true],
      [0xfffc_0000n, false],
    ]);
    expect(session.irqs.activeIndex()).toBe(VFIO_PCI_MSIX_IRQ_INDEX);
    expect(session.irqs.boundVectors(VFIO_PCI_INTX_IRQ_INDEX)).toBe(1);
    expect(h.device.irqsChangedCalls).toEqual([VFIO_PCI_INTX_IRQ_INDEX, VFIO_PCI_MSIX_IRQ_INDEX]);

    // The "guest" puts a descriptor in RAM; the driver programs the device and rings the doorbell (posted).
    h.ram.set([1, 2, 3, 4], 0x1000);
    await client.regionWrite(VFIO_PCI_BAR1_REGION_INDEX, SCRATCH.DMA_ADDR_LO, u32le(0x1000));
    await client.regionWrite(VFIO_PCI_BAR1_REGION_INDEX, SCRATCH.DMA_ADDR_HI, u32le(0));
    const interrupt = waitReadable(s.msixEventfds[0]!);
    await client.regionWrite(VFIO_PCI_BAR1_REGION_INDEX, SCRATCH.DOORBELL, u32le(0x10), true);
    await interrupt;
    expect(native.eventfdRead(s.msixEventfds[0]!)).toBe(1n);
    expect(native.eventfdRead(s.msixEventfds[1]!)).toBeNull();
    expect([...h.ram.subarray(0x1100, 0x1104)]).toEqual([0x11, 0x12, 0x13, 0x14]);
    // A read after the posted write sees its effect (in-order processing).
    expect([...(await client.regionRead(VFIO_PCI_BAR1_REGION_INDEX, SCRATCH.STATUS, 4))]).toEqual([
      ...u32le(STATUS_DONE),
    ]);

    // After DMA_UNMAP the device's DMA fails cleanly (and says why); the server keeps running.
    const unmapped = await client.dmaUnmap(0n, BigInt(RAM_SIZE));
    expect(unmapped).toMatchObject({ address: 0n, size: BigInt(RAM_SIZE) });
    expect(session.memory.windows).toHaveLength(1);
    const interrupt2 = waitReadable(s.msixEventfds[0]!);
    await client.regionWrite(VFIO_PCI_BAR1_REGION_INDEX, SCRATCH.DOORBELL, u32le(1));
    await interrupt2;
    expect(native.eventfdRead(s.msixEventfds[0]!)).toBe(1n);
    expect([...(await client.regionRead(VFIO_PCI_BAR1_REGION_INDEX, SCRATCH.STATUS, 4))]).toEqual([
      ...u32le(STATUS_DMA_FAILED),
    ]);
    expect(h.device.lastDmaError).toMatch(/not in any DMA window/);

    await client.dmaUnmapAll();
    expect(session.memory.windows).toHaveLength(0);
    await client.reset();
    expect(h.device.resets).toBe(1);
  });

  it('delivers level-triggered INTx through its eventfd, re-raised after unmask while still asserted', async () => {
    const client = newClient();
    const s = await client.startup({ dma: [guestRamWindow()] }); // no MSI-X: INTx routing
    const intx = s.intxEventfd!;
    const unmask = () =>
      client.setIrqs({
        index: VFIO_PCI_INTX_IRQ_INDEX,
        flags: VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_UNMASK,
        start: 0,
        count: 1,
      });
    const raised = waitReadable(intx);
    await client.regionWrite(VFIO_PCI_BAR1_REGION_INDEX, SCRATCH.DOORBELL, u32le(0), true);
    await raised;
    expect(native.eventfdRead(intx)).toBe(1n);
    // Automasked: another doorbell while masked does not signal.
    await client.regionWrite(VFIO_PCI_BAR1_REGION_INDEX, SCRATCH.DOORBELL, u32le(0));
    expect(native.eventfdRead(intx)).toBeNull();
    // EOI unmask with the line still high: signalled again before the reply arrives.
    await unmask();
    expect(native.eventfdRead(intx)).toBe(1n);
    // The driver acknowledges (line low); the next unmask stays quiet.
    await client.regionWrite(VFIO_PCI_BAR1_REGION_INDEX, SCRATCH.INTX_ACK, u32le(1));
    await unmask();
    expect(native.eventfdRead(intx)).toBeNull();
  });

  it('answers malformed messages mid-stream with errors and stays usable', async () => {
    const client = newClient();
    await client.startup({ dma: [guestRamWindow()] });
    // DMA_MAP with a truncated payload, overlapping window, unsupported commands, bad region access.
    await expect(
      client.request(
        COMMAND.DMA_MAP,
        encodeDmaMap({ argsz: 32, flags: 3, offset: 0n, address: 0n, size: 0x1000n }).subarray(0, 20),
      ),
    ).rejects.toMatchObject({ errno: ERRNO.EINVAL });
    await expect(client.dmaMap({ address: 0x1000n, size: 0x1000n, fd: h.memfd })).rejects.toMatchObject({
      errno: ERRNO.EEXIST,
    });
    await expect(client.request(COMMAND.REGION_WRITE_MULTI, new Uint8Array(8))).rejects.toMatchObject({
      errno: ERRNO.ENOTSUP,
    });
    await expect(client.request(77, new Uint8Array(0))).rejects.toMatchObject({ errno: ERRNO.ENOTSUP });
    await expect(client.regionRead(VFIO_PCI_CONFIG_REGION_INDEX, 0xfe, 4)).rejects.toBeInstanceOf(VfioUserRequestError);
    // Unexpected fds (an eventfd on GET_INFO) are refused; the eventfd is still usable on our side.
    const efd = client.createEventfd();
    await expect(client.request(COMMAND.DEVICE_GET_INFO, new Uint8Array(16), [efd])).rejects.toMatchObject({
      errno: ERRNO.EINVAL,
    });
    // SET_IRQS with fewer fds than vectors.
    await expect(
      client.request(
        COMMAND.DEVICE_SET_IRQS,
        new Uint8Array([20, 0, 0, 0, 0x24, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0]),
        [efd],
      ),
    ).rejects.toMatchObject({ errno: ERRNO.EINVAL });
    // A memfd where an eventfd belongs (writing it would scribble into the file): refused, and
    // the INTx eventfd bound by startup() stays bound.
    expect(h.server.session!.irqs.boundVectors(VFIO_PCI_INTX_IRQ_INDEX)).toBe(1);
    await expect(
      client.setIrqs({
        index: VFIO_PCI_INTX_IRQ_INDEX,
        flags: VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
        start: 0,
        count: 1,
        fds: [h.memfd],
      }),
    ).rejects.toMatchObject({ errno: ERRNO.EINVAL });
    expect(h.server.session!.irqs.boundVectors(VFIO_PCI_INTX_IRQ_INDEX)).toBe(1);
    // Still fine.
    expect((await client.getDeviceInfo()).numRegions).toBe(9);
    expect(h.server.clientConnected).toBe(true);
  });

  it('closes the connection on a garbage header without crashing, and accepts the next client', async () => {
    const first = newClient();
    await first.startup({ dma: [guestRamWindow()], msixVectors: 1 });
    expect(h.server.session!.memory.windows).toHaveLength(1);
    const disconnected = once(h.server, 'disconnect');
    first.sendRaw(new Uint8Array(16).fill(0xff));
    await disconnected;
    await first.closed();
    expect(h.device.detaches).toBe(1);
    expect(h.server.clientConnected).toBe(false);

    const second = newClient();
    const s = await second.startup({ dma: [guestRamWindow()] });
    expect(s.deviceInfo.numRegions).toBe(9);
    expect(h.server.session!.memory.windows).toHaveLength(1);
  });

  it('refuses a message size beyond the limit with an EMSGSIZE error reply, then closes', async () => {
    // A raw socket, to see exactly what the server sends back.
    const fd = native.unixConnect(h.path);
    const header = encodeCommand(0x4242, COMMAND.REGION_WRITE);
    new DataView(header.buffer).setUint32(4, 64 << 20, true); // claims 64 MiB
    expect(native.sendmsg(fd, header, [])).toBe(16);
    const buf = new Uint8Array(64);
    const received: number[] = [];
    for (;;) {
      await waitReadable(fd);
      const r = native.recvmsg(fd, buf, 0, buf.length, 0);
      if (r === null) continue;
      if (r.bytes === 0) break; // the server closed the connection
      received.push(...buf.subarray(0, r.bytes));
    }
    native.close(fd);
    const reply = decodeHeader(Uint8Array.from(received));
    expect(received).toHaveLength(16);
    expect(reply).toEqual({
      id: 0x4242,
      command: COMMAND.REGION_WRITE,
      size: 16,
      flags: HEADER_FLAGS.TYPE_REPLY | HEADER_FLAGS.ERROR,
      error: ERRNO.EMSGSIZE,
    });
  });

  it('moves max_data_xfer_size transfers intact through the socket (short writes, EAGAIN)', async () => {
    const client = newClient();
    await client.version();
    const data = Uint8Array.from({ length: 1 << 20 }, (_, i) => (i * 2654435761) >>> 24);
    // Several writes in flight at once, then reads that overlap them.
    await Promise.all([
      client.regionWrite(VFIO_PCI_BAR2_REGION_INDEX, 0, data),
      client.regionWrite(VFIO_PCI_BAR2_REGION_INDEX, 1 << 20, data.subarray(0, 4096), true),
      client.regionWrite(VFIO_PCI_BAR2_REGION_INDEX, (1 << 20) + 4096, data.subarray(4096)),
    ]);
    const [first, second] = await Promise.all([
      client.regionRead(VFIO_PCI_BAR2_REGION_INDEX, 0, 1 << 20),
      client.regionRead(VFIO_PCI_BAR2_REGION_INDEX, 1 << 20, 1 << 20),
    ]);
    expect(Buffer.from(first).equals(Buffer.from(data))).toBe(true);
    expect(Buffer.from(second).equals(Buffer.from(data))).toBe(true);
    await expect(client.regionRead(VFIO_PCI_BAR2_REGION_INDEX, 0, (1 << 20) + 1)).rejects.toMatchObject({
      errno: ERRNO.E2BIG,
    });
  });

  it('requests an unplug through the REQ eventfd QEMU bound', async () => {
    const client = newClient();
    expect(h.server.requestUnplug()).toBe(false); // nobody connected yet
    await client.startup({ dma: [guestRamWindow()] });
    expect(h.server.requestUnplug()).toBe(false); // no REQ eventfd bound
    const req = client.createEventfd();
    await client.setIrqs({
      index: VFIO_PCI_REQ_IRQ_INDEX,
      flags: VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
      start: 0,
      count: 1,
      fds: [req],
    });
    expect(h.server.requestUnplug()).toBe(true);
    expect(native.eventfdRead(req)).toBe(1n);
  });

  it('refuses a second concurrent client and keeps serving the first', async () => {
    const first = newClient();
    await first.version();
    const second = newClient();
    await second.closed();
    expect(second.isClosed).toBe(true);
    expect((await first.getDeviceInfo()).numIrqs).toBe(5);
  });

  it('accepts an immediate reconnect after the client vanished, 300 times in a row (not a "second client")', async () => {
    // Another process, like `vport start` then QEMU: a probe connects and hangs up, and the client
    // dials at once, so both connections can wait in the backlog and be accepted in one wake-up,
    // before the probe's hang-up has been processed.
    const probed = await runChildClient(h.path, versionMessage(), 300, { probeFirst: true });
    expect(probed).toEqual({ replied: 300, hungUp: 0, connectErrors: [], bytes: expect.any(Number) });
    // And a client that drops right after the reply starts, then reconnects.
    const dropped = await runChildClient(h.path, versionMessage(), 300);
    expect(dropped).toEqual({ replied: 300, hungUp: 0, connectErrors: [], bytes: expect.any(Number) });
  });

  it('counts a client as attached only once it negotiated VERSION: a connect-and-hang-up probe is not one', async () => {
    const events: string[] = [];
    for (const e of ['connect', 'disconnect', 'attach', 'detach'] as const) h.server.on(e, () => events.push(e));
    // A probe (what `vport start` and the socket checks do): connects, sends nothing, hangs up.
    const probe = newClient();
    await once(h.server, 'connect');
    const probeGone = once(h.server, 'disconnect');
    probe.close();
    await probeGone;
    expect(events).toEqual(['connect', 'disconnect']);
    // A real client: VERSION, then it goes.
    const client = newClient();
    await client.version();
    expect(events.slice(2)).toEqual(['connect', 'attach']);
    const gone = once(h.server, 'disconnect');
    client.close();
    await gone;
    expect(events.slice(2)).toEqual(['connect', 'attach', 'disconnect', 'detach']);
  });

  it('refuses DMA_MAP of a regular file (it cannot be sealed against shrinking) with EPERM, and keeps serving', async () => {
    const file = join(dir, `ram${socketCounter}.img`);
    writeFileSync(file, Buffer.alloc(RAM_SIZE));
    const fd = openSync(file, 'r+');
    try {
      const client = newClient();
      await client.version();
      await expect(client.dmaMap({ address: 0n, size: BigInt(RAM_SIZE), fd, offset: 0n })).rejects.toMatchObject({
        errno: ERRNO.EPERM,
      });
      // Had it been mapped, this truncation would turn the next DMA into SIGBUS.
      ftruncateSync(fd, 0);
      expect(h.server.session?.memory.windows).toHaveLength(0);
      expect((await client.getDeviceInfo()).numIrqs).toBe(5);
    } finally {
      closeSync(fd);
    }
  });

  it('refuses commands before VERSION and closes', async () => {
    const client = newClient();
    await expect(client.getDeviceInfo()).rejects.toMatchObject({ errno: ERRNO.EINVAL });
    await client.closed();
  });

  it('releases every fd it received when the client goes away', async () => {
    // Warm up lazily opened resources before counting.
    const warm = newClient();
    await warm.startup({ dma: [guestRamWindow()], msixVectors: 2 });
    const gone = once(h.server, 'disconnect');
    warm.close();
    await gone;

    const before = openFdCount();
    const client = newClient();
    await client.startup({ dma: [guestRamWindow()], msixVectors: 2 });
    await client.setIrqs({
      index: VFIO_PCI_INTX_IRQ_INDEX,
      flags: VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_UNMASK,
      start: 0,
      count: 1,
      fds: [client.createEventfd()],
    });
    expect(openFdCount()).toBeGreaterThan(before);
    const disconnected = once(h.server, 'disconnect');
    client.close();
    await disconnected;
    expect(openFdCount()).toBe(before);
  });
});

describe('socket file handling', () => {
  it('refuses to start when another server is live on the path', () => {
    const other = new VfioUserServer({ socketPath: h.path, device: new FakeHba() });
    expect(() => other.start()).toThrow(/already listening/);
    expect(existsSync(h.path)).toBe(true);
  });

  it('replaces a stale socket file nobody listens on, and removes its own on close', async () => {
    const stalePath = join(dir, 'stale.sock');
    native.close(native.unixListen(stalePath, 1)); // leaves the file behind, nobody listening
    expect(existsSync(stalePath)).toBe(true);
    const server = new VfioUserServer({ socketPath: stalePath, device: new FakeHba() });
    server.start();
    const client = VfioUserClient.connect(stalePath);
    expect((await client.version()).major).toBe(0);
    const gone = once(server, 'disconnect');
    client.close();
    await gone;
    server.close();
    expect(existsSync(stalePath)).toBe(false);
  });
});
