/**
 * NativeSgLun's data path against a fake sg driver (the native calls are replaced; no sg device
 * exists on the build machine): zero-copy submission of the guest's views within the LUN's
 * limits, the bounce fallback beyond them (counted), and the fd retirement that keeps a zero-copy
 * read released to the guest from ever being collected (the real driver copies the read data
 * into the views during that read(2)).
 */
import { beforeEach, describe, expect, it, vi } from 'vitest';
import type { FcpResult } from '../../../src/isp/fabric-port.js';
import { SG_IO_HDR } from '../../../src/host/sg-io-hdr.js';

interface Submitted {
  fd: number;
  packId: number;
  iovecCount: number;
  dxferLen: number;
  data: readonly Uint8Array[] | Uint8Array | null;
  dataInLength: number;
}

/** A fake sg driver: queued requests per fd, completions made by the test. */
const kernel = vi.hoisted(() => {
  const k = {
    nextFd: 100,
    open: new Set<number>(),
    closed: [] as number[],
    submitted: [] as Submitted[],
    /** completed, not yet collected: fd -> pack ids in completion order */
    done: new Map<number, number[]>(),
    /** read(2) calls: [fd, packId] */
    reads: [] as [number, number][],
    watchers: new Map<number, (events: number, errno: number) => void>(),
    limits: { tablesize: 4, maxBytes: 64 * 1024, reservedBytes: 32 * 1024 },
    /** What the driver writes into a zero-copy read's views when it is collected. */
    fill: 0xc3,
    reset(): void {
      k.nextFd = 100;
      k.open.clear();
      k.closed.length = 0;
      k.submitted.length = 0;
      k.done.clear();
      k.reads.length = 0;
      k.watchers.clear();
    },
  };
  return k;
});

vi.mock('../../../src/native/index.js', () => ({
  POLL_READABLE: 1,
  native: {
    poll: (fd: number, _events: number, cb: (events: number, errno: number) => void) => {
      kernel.watchers.set(fd, cb);
      return { stop: () => kernel.watchers.delete(fd) };
    },
  },
}));

vi.mock('../../../src/native/host.js', () => ({
  hostNative: {
    sgOpen: () => {
      const fd = kernel.nextFd++;
      kernel.open.add(fd);
      return fd;
    },
    sgScsiId: () => ({ host: 5, channel: 0, target: 1, lun: 3, type: 0, queueDepth: 16 }),
    sgLimits: () => kernel.limits,
    sgSubmit: (
      fd: number,
      header: Uint8Array,
      _cdb: Uint8Array,
      data: readonly Uint8Array[] | Uint8Array | null,
      dataInLength: number,
    ) => {
      const v = new DataView(header.buffer, header.byteOffset, header.length);
      kernel.submitted.push({
        fd,
        packId: v.getInt32(SG_IO_HDR.PACK_ID, true),
        iovecCount: v.getUint16(SG_IO_HDR.IOVEC_COUNT, true),
        dxferLen: v.getUint32(SG_IO_HDR.DXFER_LEN, true),
        data,
        dataInLength,
      });
      return true;
    },
    sgRead: (fd: number, packId = -1) => {
      kernel.reads.push([fd, packId]);
      const done = kernel.done.get(fd) ?? [];
      const i = packId === -1 ? 0 : done.indexOf(packId);
      if (i < 0 || i >= done.length) return null;
      const id = done.splice(i, 1)[0]!;
      const s = kernel.submitted.find((x) => x.fd === fd && x.packId === id)!;
      const header = new Uint8Array(88);
      new DataView(header.buffer).setInt32(SG_IO_HDR.PACK_ID, id, true);
      let data = new Uint8Array(0);
      if (Array.isArray(s.data)) {
        // Zero-copy read: the driver copies into the views now, inside read(2).
        for (const view of s.data as Uint8Array[]) view.fill(kernel.fill);
      } else if (s.dataInLength > 0) {
        data = new Uint8Array(s.dataInLength).fill(kernel.fill);
      }
      return { header, sense: new Uint8Array(0), data };
    },
    sgClose: (fd: number) => {
      kernel.open.delete(fd);
      kernel.closed.push(fd);
      return 0;
    },
    sgReset: async () => {},
  },
}));

const { NativeSgLun, sgDataPathStats } = await import('../../../src/host/sg-device.js');

const ADDRESS = { host: 5, channel: 0, target: 1, lun: 3n };

function complete(s: Submitted): void {
  const list = kernel.done.get(s.fd) ?? [];
  list.push(s.packId);
  kernel.done.set(s.fd, list);
  kernel.watchers.get(s.fd)?.(1, 0);
}

function views(...lengths: number[]): Uint8Array[] {
  const buffer = new ArrayBuffer(lengths.reduce((a, b) => a + b, 0) + 64 * lengths.length);
  let at = 0;
  return lengths.map((n) => {
    const v = new Uint8Array(buffer, at, n);
    at += n + 64;
    return v;
  });
}

const CDB = new Uint8Array(10);

describe('NativeSgLun data path (fake sg driver)', () => {
  beforeEach(() => kernel.reset());

  it('a READ within the limits goes to the driver as the guest views themselves; the data lands in them', async () => {
    const lun = new NativeSgLun('/dev/sg9', ADDRESS, { fdCount: 1 });
    const before = { ...sgDataPathStats };
    const data = views(512, 1024, 512);
    const done = lun.submit(1, {
      cdb: CDB,
      direction: 'read',
      expectedLength: 2048,
      data,
      released: new AbortController().signal,
      timeoutMs: 1000,
    });
    const s = kernel.submitted[0]!;
    expect(s.data).toBe(data); // the very same views: no copy in npiv-hba
    expect([s.iovecCount, s.dxferLen, s.dataInLength]).toEqual([3, 2048, 0]);
    complete(s);
    const r = await done;
    expect(r).toEqual({ scsiStatus: 0, sense: null, transferred: 2048 });
    expect(data.every((v) => v.every((b) => b === 0xc3))).toBe(true);
    expect(lun.stats).toEqual({ zeroCopy: 1, bounced: 0, fdsRetired: 0 });
    expect(sgDataPathStats.zeroCopy - before.zeroCopy).toBe(1);
    lun.close();
  });

  it('a WRITE within the limits hands the driver the views (it copies them during write(2))', async () => {
    const lun = new NativeSgLun('/dev/sg9', ADDRESS, { fdCount: 1 });
    const data = views(4096, 4096);
    const done = lun.submit(2, {
      cdb: CDB,
      direction: 'write',
      expectedLength: 8192,
      data,
      released: new AbortController().signal,
      timeoutMs: 1000,
    });
    const s = kernel.submitted[0]!;
    expect(s.data).toBe(data);
    expect([s.iovecCount, s.dxferLen]).toEqual([2, 8192]);
    complete(s);
    expect((await done).transferred).toBe(8192);
    expect(lun.stats.zeroCopy).toBe(1);
    lun.close();
  });

  it('beyond sg_tablesize or max_sectors the command is bounced (counted), never failed', async () => {
    const lun = new NativeSgLun('/dev/sg9', ADDRESS, { fdCount: 1 });
    // 5 views > tablesize 4: the write data is gathered into one buffer.
    const w = views(100, 100, 100, 100, 100);
    for (const [i, v] of w.entries()) v.fill(i + 1);
    const write = lun.submit(1, {
      cdb: CDB,
      direction: 'write',
      expectedLength: 500,
      data: w,
      released: new AbortController().signal,
      timeoutMs: 1000,
    });
    const sw = kernel.submitted[0]!;
    expect(sw.data).toBeInstanceOf(Uint8Array);
    expect(Array.from(sw.data as Uint8Array)).toEqual(w.flatMap((v) => Array.from(v)));
    expect(sw.iovecCount).toBe(0);
    complete(sw);
    expect((await write).transferred).toBe(500);
    // 128 KiB > max_sectors (64 KiB): the read comes back in a native buffer, scattered here.
    const r = views(65536, 65536);
    const read = lun.submit(2, {
      cdb: CDB,
      direction: 'read',
      expectedLength: 131072,
      data: r,
      released: new AbortController().signal,
      timeoutMs: 1000,
    });
    const sr = kernel.submitted[1]!;
    expect([sr.data, sr.dataInLength, sr.iovecCount]).toEqual([null, 131072, 0]);
    complete(sr);
    expect((await read).transferred).toBe(131072);
    expect(r.every((v) => v.every((b) => b === 0xc3))).toBe(true);
    expect(lun.stats).toEqual({ zeroCopy: 0, bounced: 2, fdsRetired: 0 });
    lun.close();
  });

  it('a zero-copy READ released to the guest while outstanding is never collected: its fd is retired', async () => {
    const lun = new NativeSgLun('/dev/sg9', ADDRESS, { fdCount: 1 });
    const released = new AbortController();
    const victim = views(512);
    const p1 = lun.submit(1, {
      cdb: CDB,
      direction: 'read',
      expectedLength: 512,
      data: victim,
      released: released.signal,
      timeoutMs: 1000,
    });
    const other = views(512);
    const p2 = lun.submit(2, {
      cdb: CDB,
      direction: 'read',
      expectedLength: 512,
      data: other,
      released: new AbortController().signal,
      timeoutMs: 1000,
    });
    const [s1, s2] = kernel.submitted;
    const firstFd = s1!.fd;
    released.abort(); // the firmware completed tag 1 to the guest (Abort IO / TMF / reset)
    expect((await p1).transportError).toBe('aborted');
    expect(lun.stats.fdsRetired).toBe(1);
    // New commands go elsewhere: the retiring fd takes none.
    const p3 = lun.submit(3, {
      cdb: CDB,
      direction: 'none',
      expectedLength: 0,
      data: [],
      released: new AbortController().signal,
      timeoutMs: 1000,
    });
    expect(kernel.submitted).toHaveLength(2); // waits: the only fd is retiring
    complete(s1!); // the victim's completion arrives first ...
    complete(s2!); // ... then the other's
    expect((await p2).transferred).toBe(512);
    expect(other[0]![0]).toBe(0xc3);
    // Only the other command was collected, by its pack id; the victim never was.
    expect(kernel.reads.filter(([fd]) => fd === firstFd)).not.toContainEqual([firstFd, -1]);
    expect(kernel.reads).not.toContainEqual([firstFd, s1!.packId]);
    expect(victim[0]![0]).toBe(0);
    // Then the fd was closed (the kernel drops the orphan without copying) and a fresh one opened.
    expect(kernel.closed).toContain(firstFd);
    const s3 = kernel.submitted[2]!;
    expect(s3.fd).not.toBe(firstFd);
    complete(s3);
    expect((await p3).scsiStatus).toBe(0);
    lun.close();
  });

  it('a view detached (DMA_UNMAP) before submission: CS_DMA via transportError "dma", nothing submitted', async () => {
    const lun = new NativeSgLun('/dev/sg9', ADDRESS, { fdCount: 1 });
    const buffer = new ArrayBuffer(1024);
    const data = [new Uint8Array(buffer, 0, 1024)];
    structuredClone(buffer, { transfer: [buffer] });
    const r: FcpResult = await lun.submit(1, {
      cdb: CDB,
      direction: 'write',
      expectedLength: 1024,
      data,
      released: new AbortController().signal,
      timeoutMs: 1000,
    });
    expect(r.transportError).toBe('dma');
    expect(kernel.submitted).toHaveLength(0);
    lun.close();
  });
});
