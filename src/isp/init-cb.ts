/**
 * Initialization control block (struct init_cb_24xx, 128 bytes) as INITIALIZE_FIRMWARE (0x60)
 * and MID_INITIALIZE_FIRMWARE (0x48) pass it by DMA (qla2xxx 10.02.x qla_fw.h,
 * filled by qla24xx_config_rings / qla24xx_nvram_config).
 *
 *   0 version u16 | 4 frame_payload_size u16 | 12 port_name[8] | 20 node_name[8]
 *   36 response_q_length u16 | 38 request_q_length u16
 *   44 request_q_address u64 | 52 response_q_address u64 | 88 interrupt_delay_timer u16
 *   92 firmware_options_1 u32 | 96 firmware_options_2 u32 | 100 firmware_options_3 u32
 */
import { wwnFromBytes } from '../util/wwn.js';

export const ICB_SIZE = 128;
export const ICB = {
  VERSION: 0,
  FRAME_PAYLOAD_SIZE: 4,
  PORT_NAME: 12,
  NODE_NAME: 20,
  RESPONSE_Q_LENGTH: 36,
  REQUEST_Q_LENGTH: 38,
  REQUEST_Q_ADDRESS: 44,
  RESPONSE_Q_ADDRESS: 52,
  INTERRUPT_DELAY_TIMER: 88,
  FIRMWARE_OPTIONS_1: 92,
  FIRMWARE_OPTIONS_2: 96,
  FIRMWARE_OPTIONS_3: 100,
} as const;

/** firmware_options_1 bits the emulated firmware refuses: target mode, initiator disable. */
const FO1_TARGET_MODE = 1 << 4;
const FO1_INITIATOR_DISABLE = 1 << 5;

/** Ring sizes the firmware accepts (the driver uses 2048 / 512; real firmware caps at 0x8000). */
export const RING_MIN_ENTRIES = 2;
export const RING_MAX_ENTRIES = 0x8000;

export interface InitControlBlock {
  version: number;
  framePayloadSize: number;
  portName: bigint;
  nodeName: bigint;
  requestQueueLength: number;
  responseQueueLength: number;
  requestQueueAddress: bigint;
  responseQueueAddress: bigint;
  firmwareOptions1: number;
  firmwareOptions2: number;
  firmwareOptions3: number;
  /** ZIO timer, 100 µs units. */
  interruptDelayTimer: number;
}

/** Parses a copied-in ICB; returns a reason string for a block the firmware must refuse. */
export function parseInitControlBlock(b: Uint8Array): InitControlBlock | string {
  if (b.length < ICB_SIZE) return `short ICB (${b.length} bytes)`;
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const icb: InitControlBlock = {
    version: dv.getUint16(ICB.VERSION, true),
    framePayloadSize: dv.getUint16(ICB.FRAME_PAYLOAD_SIZE, true),
    portName: wwnFromBytes(b, ICB.PORT_NAME),
    nodeName: wwnFromBytes(b, ICB.NODE_NAME),
    requestQueueLength: dv.getUint16(ICB.REQUEST_Q_LENGTH, true),
    responseQueueLength: dv.getUint16(ICB.RESPONSE_Q_LENGTH, true),
    requestQueueAddress: dv.getBigUint64(ICB.REQUEST_Q_ADDRESS, true),
    responseQueueAddress: dv.getBigUint64(ICB.RESPONSE_Q_ADDRESS, true),
    firmwareOptions1: dv.getUint32(ICB.FIRMWARE_OPTIONS_1, true),
    firmwareOptions2: dv.getUint32(ICB.FIRMWARE_OPTIONS_2, true),
    firmwareOptions3: dv.getUint32(ICB.FIRMWARE_OPTIONS_3, true),
    interruptDelayTimer: dv.getUint16(ICB.INTERRUPT_DELAY_TIMER, true),
  };
  for (const [what, len] of [
    ['request', icb.requestQueueLength],
    ['response', icb.responseQueueLength],
  ] as const) {
    if (len < RING_MIN_ENTRIES || len > RING_MAX_ENTRIES) return `${what} queue length ${len} out of range`;
  }
  if (icb.requestQueueAddress % 64n !== 0n || icb.responseQueueAddress % 64n !== 0n) {
    return 'queue address not 64-byte aligned';
  }
  if (icb.portName === 0n) return 'zero port name';
  if (icb.firmwareOptions1 & (FO1_TARGET_MODE | FO1_INITIATOR_DISABLE)) {
    return `unsupported firmware_options_1 0x${icb.firmwareOptions1.toString(16)} (target mode)`;
  }
  return icb;
}
