/**
 * The sg v3 marshalling and the native sg module's error paths. There is no SCSI generic device
 * on the build machine (/sys/class/scsi_generic is absent), so the device-level path (submit,
 * poll, read, SG_SCSI_RESET on a real /dev/sgN) is NOT exercised here: it belongs to the
 * two-level lab (an L1 guest whose qla2xxx runs on the emulated ISP2532 plays the host).
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { hostNative } from '../../../src/native/host.js';
import { NativeError, native } from '../../../src/native/index.js';
import { decodeSgHeader, DID, encodeSgHeader, fcpResultOf, SG_IO_HDR } from '../../../src/host/sg-io-hdr.js';

const SNAKE: Record<string, string> = {
  size: 'SIZE',
  interface_id: 'INTERFACE_ID',
  dxfer_direction: 'DXFER_DIRECTION',
  cmd_len: 'CMD_LEN',
  mx_sb_len: 'MX_SB_LEN',
  iovec_count: 'IOVEC_COUNT',
  dxfer_len: 'DXFER_LEN',
  dxferp: 'DXFERP',
  cmdp: 'CMDP',
  sbp: 'SBP',
  timeout: 'TIMEOUT',
  flags: 'FLAGS',
  pack_id: 'PACK_ID',
  usr_ptr: 'USR_PTR',
  status: 'STATUS',
  masked_status: 'MASKED_STATUS',
  msg_status: 'MSG_STATUS',
  sb_len_wr: 'SB_LEN_WR',
  host_status: 'HOST_STATUS',
  driver_status: 'DRIVER_STATUS',
  resid: 'RESID',
  duration: 'DURATION',
  info: 'INFO',
};

describe('struct sg_io_hdr marshalling', () => {
  it('src/host/sg-io-hdr.ts matches the offsets of <scsi/sg.h> as compiled into the shim', () => {
    const real = hostNative.sgIoHdrLayout();
    expect(Object.keys(real).sort()).toEqual(Object.keys(SNAKE).sort());
    for (const [field, offset] of Object.entries(real))
      expect([field, SG_IO_HDR[SNAKE[field] as keyof typeof SG_IO_HDR]]).toEqual([field, offset]);
  });

  it('encodes a submission and decodes a completion', () => {
    const h = encodeSgHeader({ direction: 'read', cdbLength: 10, dataLength: 4096, timeoutMs: 120000, packId: 77 });
    const v = new DataView(h.buffer);
    expect(v.getInt32(SG_IO_HDR.INTERFACE_ID, true)).toBe(0x53);
    expect(v.getInt32(SG_IO_HDR.DXFER_DIRECTION, true)).toBe(-3);
    expect(h[SG_IO_HDR.CMD_LEN]).toBe(10);
    expect(h[SG_IO_HDR.MX_SB_LEN]).toBe(96);
    expect(v.getUint32(SG_IO_HDR.DXFER_LEN, true)).toBe(4096);
    expect(v.getUint32(SG_IO_HDR.TIMEOUT, true)).toBe(120000);
    expect(v.getInt32(SG_IO_HDR.PACK_ID, true)).toBe(77);
    h[SG_IO_HDR.STATUS] = 0x02;
    v.setUint16(SG_IO_HDR.HOST_STATUS, 0, true);
    v.setUint16(SG_IO_HDR.DRIVER_STATUS, 0x08, true);
    v.setInt32(SG_IO_HDR.RESID, 512, true);
    const c = decodeSgHeader(h, Uint8Array.of(0x70, 0, 6));
    expect(c).toMatchObject({ packId: 77, status: 2, hostStatus: 0, driverStatus: 8, resid: 512 });
    const r = fcpResultOf(c, 'read', 4096);
    expect(r.scsiStatus).toBe(2);
    expect(r.sense?.[0]).toBe(0x70);
    expect(r.transferred).toBe(3584);
  });

  it('maps host bytes to transport errors and clamps a hostile residual', () => {
    const base = decodeSgHeader(new Uint8Array(88), new Uint8Array(0));
    const err = (host: number) => fcpResultOf({ ...base, hostStatus: host }, 'read', 10).transportError;
    expect(err(DID.NO_CONNECT)).toBe('port-unavailable');
    expect(err(DID.TRANSPORT_DISRUPTED)).toBe('port-unavailable');
    expect(err(DID.TIME_OUT)).toBe('timeout');
    expect(err(DID.ABORT)).toBe('aborted');
    expect(err(DID.ERROR)).toBe('aborted');
    expect(err(DID.IMM_RETRY)).toBe('aborted');
    expect(fcpResultOf({ ...base, resid: -5 }, 'read', 10).transferred).toBe(10);
    expect(fcpResultOf({ ...base, resid: 1 << 30 }, 'read', 10).transferred).toBe(0);
    expect(fcpResultOf({ ...base, resid: 4 }, 'write', 10).transferred).toBe(6);
    expect(fcpResultOf({ ...base, resid: 0 }, 'write', 10).transferred).toBe(10);
    expect(fcpResultOf({ ...base, resid: 3 }, 'none', 0).transferred).toBe(0);
    expect(() => decodeSgHeader(new Uint8Array(87), new Uint8Array(0))).toThrow(RangeError);
  });
});

describe('native sg module error paths (no sg device here)', () => {
  it('the build machine has no SCSI generic device: device-level I/O is left to the two-level lab', () => {
    expect(existsSync('/sys/class/scsi_generic')).toBe(false);
  });

  it('sgOpen refuses what is not a sg character device', () => {
    const dir = mkdtempSync(join(tmpdir(), 'npiv-sg-'));
    try {
      writeFileSync(join(dir, 'sg0'), 'x');
      expect(() => hostNative.sgOpen(join(dir, 'sg0'))).toThrow(/not a SCSI generic/);
      expect(() => hostNative.sgOpen('/dev/null')).toThrow(/not a SCSI generic/);
      const e = (() => {
        try {
          hostNative.sgOpen(join(dir, 'missing'));
        } catch (x) {
          return x;
        }
      })();
      expect(e).toBeInstanceOf(NativeError);
      expect((e as NativeError).code).toBe('ENOENT');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('submit/read/reset/close refuse fds sgOpen did not open', async () => {
    const h = encodeSgHeader({ direction: 'none', cdbLength: 6, dataLength: 0, timeoutMs: 1000, packId: 1 });
    expect(() => hostNative.sgSubmit(0, h, new Uint8Array(6), null, 0)).toThrow(/not opened by sgOpen/);
    expect(() => hostNative.sgRead(0)).toThrow(/not opened by sgOpen/);
    expect(() => hostNative.sgClose(0)).toThrow(/not opened by sgOpen/);
    expect(() => hostNative.sgReset(0, 1)).toThrow(/not opened by sgOpen/);
    expect(hostNative.sgOutstanding(0)).toBe(0);
  });

  it("zero-copy iovecs: the bases are the views' own addresses (byte offset included), nothing copied", () => {
    const buffer = new ArrayBuffer(8192);
    const a = new Uint8Array(buffer, 0, 512);
    const b = new Uint8Array(buffer, 4096 + 100, 1000);
    const c = new Uint8Array(buffer, 8000, 192);
    const iov = hostNative.sgIovecs([a, b, c]);
    expect(iov.map((v) => v.length)).toEqual([512, 1000, 192]);
    expect(iov[1]!.address - iov[0]!.address).toBe(4196n);
    expect(iov[2]!.address - iov[0]!.address).toBe(8000n);
    // A subarray of a view is the same memory at its offset, not a copy.
    expect(hostNative.sgIovecs([b.subarray(10)])[0]!.address).toBe(iov[1]!.address + 10n);
    // A mapped guest window (memfd, as DMA_MAP gives it) is addressed the same way.
    const fd = native.memfdCreate('npiv-sg-iovec', 4096);
    const window = native.mmap(fd, 4096, 0n, 3);
    try {
      const [w0, w1] = hostNative.sgIovecs([new Uint8Array(window, 0, 8), new Uint8Array(window, 2048, 8)]);
      expect(w1!.address - w0!.address).toBe(2048n);
    } finally {
      native.munmap(window);
      native.close(fd);
    }
  });

  it('zero-copy iovecs refuse an empty (detached: unmapped) view, non-views, and more than 1024', () => {
    const buffer = new ArrayBuffer(64);
    const kept = new Uint8Array(buffer, 0, 64);
    structuredClone(buffer, { transfer: [buffer] });
    expect(() => hostNative.sgIovecs([kept])).toThrow(/detached/);
    expect(() => hostNative.sgIovecs([])).toThrow(RangeError);
    expect(() => hostNative.sgIovecs([new Uint16Array(4) as unknown as Uint8Array])).toThrow(TypeError);
    const many = Array.from({ length: 1025 }, () => new Uint8Array(1));
    expect(() => hostNative.sgIovecs(many)).toThrow(RangeError);
    expect(hostNative.sgIovecs(many.slice(0, 1024))).toHaveLength(1024);
    expect(() => hostNative.sgIovecs([new Uint8Array(33 * 1024 * 1024)])).toThrow(/32 MiB/);
  });

  it('the header carries the iovec count for zero-copy submissions', () => {
    const h = encodeSgHeader({
      direction: 'read',
      cdbLength: 10,
      dataLength: 4096,
      iovecCount: 3,
      timeoutMs: 1,
      packId: 1,
    });
    expect(new DataView(h.buffer).getUint16(SG_IO_HDR.IOVEC_COUNT, true)).toBe(3);
    const bounce = encodeSgHeader({ direction: 'read', cdbLength: 10, dataLength: 4096, timeoutMs: 1, packId: 1 });
    expect(new DataView(bounce.buffer).getUint16(SG_IO_HDR.IOVEC_COUNT, true)).toBe(0);
  });

  it('uevent socket opens and reads nothing without events', () => {
    const fd = hostNative.ueventOpen();
    try {
      expect(hostNative.ueventRecv(fd, new Uint8Array(8192))).toBeNull();
      expect(() => hostNative.ueventRecv(fd, new Uint8Array(0))).toThrow(RangeError);
    } finally {
      // plain close through the main facade
      import('../../../src/native/index.js').then(({ native }) => native.close(fd));
    }
  });
});
