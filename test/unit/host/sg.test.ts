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
import { NativeError } from '../../../src/native/index.js';
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
