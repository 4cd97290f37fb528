/**
 * NVRAM (struct nvram_24xx, 512 bytes) and VPD of an ISP2532 port 0, as validated by
 * qla2xxx 10.02.x qla24xx_nvram_config(): 32-bit LE sum of all 128 dwords == 0, id "ISP ",
 * nvram_version >= 1. The vport's WWPN/WWNN reach the guest only through this block
 * (qla24xx_nvram_config copies them into the init control block). Field offsets from qla_fw.h.
 */
import { wwnToBytes } from '../util/wwn.js';

export const NVRAM_SIZE = 512;
export const VPD_SIZE = 512;

/** struct nvram_24xx offsets used here. */
export const NVRAM = {
  ID: 0, // "ISP "
  NVRAM_VERSION: 4,
  VERSION: 8,
  FRAME_PAYLOAD_SIZE: 12,
  EXECUTION_THROTTLE: 14,
  PORT_NAME: 20,
  NODE_NAME: 28,
  LOGIN_RETRY_COUNT: 36,
  INTERRUPT_DELAY_TIMER: 40,
  LOGIN_TIMEOUT: 42,
  FIRMWARE_OPTIONS_1: 44,
  FIRMWARE_OPTIONS_2: 48,
  FIRMWARE_OPTIONS_3: 52,
  HOST_P: 256,
  RESET_DELAY: 328,
  MAX_LUNS_PER_TARGET: 336,
  PORT_DOWN_RETRY_COUNT: 340,
  LINK_DOWN_TIMEOUT: 342,
  MODEL_NAME: 480,
  MODEL_NAME_LEN: 16,
  SUBSYSTEM_VENDOR_ID: 504,
  SUBSYSTEM_DEVICE_ID: 506,
  CHECKSUM: 508,
} as const;

/** firmware_options_1: BIT14 node name valid, BIT13 full login after LIP, BIT2 full duplex, BIT1 fairness. */
const FW_OPTIONS_1 = (1 << 14) | (1 << 13) | (1 << 2) | (1 << 1);
/**
 * firmware_options_2: connection option 2 (loop preferred, else point-to-point); bits 3:0 ZIO
 * mode, off. The firmware honours ZIO mode 6 when the ICB asks for it (qla24xx_nvram_config
 * selects mode 6 for any non-zero NVRAM mode and passes on the interrupt delay timer), delaying
 * a response interrupt only while other commands are outstanding (queues.ts). Off by default: with Node's 1 ms timer floor it measured slower at
 * 4k QD32 in a TCG guest than interrupting at once (docs/benchmarks.md).
 */
const FW_OPTIONS_2 = 0x20;
/** ZIO timer, 100 µs units: the shortest. */
const INTERRUPT_DELAY_TIMER = 1;
/** firmware_options_3: data rate auto (2 << 13). */
const FW_OPTIONS_3 = 2 << 13;
/** host_p: BIT11 enable target reset, BIT10 enable LIP full login. Never BIT5 (disables the adapter). */
const HOST_P = (1 << 11) | (1 << 10);

export interface NvramOptions {
  wwpn: bigint;
  wwnn: bigint;
  /** Model number shown by the driver (space padded to 16). */
  model: string;
  subsystemVendorId: number;
  subsystemDeviceId: number;
}

export function buildNvram(o: NvramOptions): Uint8Array {
  const nv = new Uint8Array(NVRAM_SIZE);
  const dv = new DataView(nv.buffer);
  nv.set(new TextEncoder().encode('ISP '), NVRAM.ID);
  dv.setUint16(NVRAM.NVRAM_VERSION, 1, true);
  dv.setUint16(NVRAM.VERSION, 1, true);
  dv.setUint16(NVRAM.FRAME_PAYLOAD_SIZE, 2048, true);
  dv.setUint16(NVRAM.EXECUTION_THROTTLE, 0xffff, true);
  nv.set(wwnToBytes(o.wwpn), NVRAM.PORT_NAME);
  nv.set(wwnToBytes(o.wwnn), NVRAM.NODE_NAME);
  dv.setUint16(NVRAM.LOGIN_RETRY_COUNT, 8, true);
  dv.setUint16(NVRAM.LOGIN_TIMEOUT, 0, true);
  dv.setUint32(NVRAM.FIRMWARE_OPTIONS_1, FW_OPTIONS_1, true);
  dv.setUint32(NVRAM.FIRMWARE_OPTIONS_2, FW_OPTIONS_2, true);
  dv.setUint16(NVRAM.INTERRUPT_DELAY_TIMER, INTERRUPT_DELAY_TIMER, true);
  dv.setUint32(NVRAM.FIRMWARE_OPTIONS_3, FW_OPTIONS_3, true);
  dv.setUint32(NVRAM.HOST_P, HOST_P, true);
  nv[NVRAM.RESET_DELAY] = 5;
  dv.setUint16(NVRAM.MAX_LUNS_PER_TARGET, 128, true);
  dv.setUint16(NVRAM.PORT_DOWN_RETRY_COUNT, 30, true);
  dv.setUint16(NVRAM.LINK_DOWN_TIMEOUT, 30, true);
  const model = o.model.slice(0, NVRAM.MODEL_NAME_LEN).padEnd(NVRAM.MODEL_NAME_LEN, ' ');
  nv.set(new TextEncoder().encode(model), NVRAM.MODEL_NAME);
  dv.setUint16(NVRAM.SUBSYSTEM_VENDOR_ID, o.subsystemVendorId, true);
  dv.setUint16(NVRAM.SUBSYSTEM_DEVICE_ID, o.subsystemDeviceId, true);
  dv.setUint32(NVRAM.CHECKSUM, -nvramDwordSum(nv, NVRAM.CHECKSUM) >>> 0, true);
  return nv;
}

/** 32-bit sum of the little-endian dwords of nv[0, end). */
export function nvramDwordSum(nv: Uint8Array, end = NVRAM_SIZE): number {
  const dv = new DataView(nv.buffer, nv.byteOffset, nv.byteLength);
  let sum = 0;
  for (let off = 0; off < end; off += 4) sum = (sum + dv.getUint32(off, true)) >>> 0;
  return sum;
}

/**
 * VPD as qla2xxx_is_vpd_valid()/qla2xxx_get_vpd_field() parse it: an 0x82 identifier string,
 * an 0x90 read-only section of 2-letter keywords, and the 0x78 end tag.
 */
const VPD_TAG_ID_STRING = 0x82;
const VPD_TAG_READ_ONLY = 0x90;
const VPD_TAG_END = 0x78;

export function buildVpd(description: string, fields: Record<string, string>): Uint8Array {
  const enc = new TextEncoder();
  const bytes: number[] = [];
  const id = enc.encode(description);
  bytes.push(VPD_TAG_ID_STRING, id.length & 0xff, id.length >> 8, ...id);
  const ro: number[] = [];
  for (const [key, value] of Object.entries(fields)) {
    const v = enc.encode(value).slice(0, 255);
    const k = enc.encode(key);
    if (k.length !== 2) throw new Error(`VPD keyword '${key}' must be two characters`);
    ro.push(k[0]!, k[1]!, v.length, ...v);
  }
  bytes.push(VPD_TAG_READ_ONLY, ro.length & 0xff, ro.length >> 8, ...ro, VPD_TAG_END);
  if (bytes.length > VPD_SIZE) throw new Error(`VPD of ${bytes.length} bytes exceeds ${VPD_SIZE}`);
  const vpd = new Uint8Array(VPD_SIZE).fill(0xff);
  vpd.set(bytes, 0);
  return vpd;
}
