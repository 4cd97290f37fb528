/**
 * Mailbox command dispatcher of the emulated ISP2532 firmware: one table row per command
 * {opcode, name, handler}, everything else → 0x4001 MBS_INVALID_COMMAND (logged). Commands,
 * inputs and minimum outputs follow qla2xxx 10.02.x qla_mbx.c as summarized in isp25xx.md §3.6/§9.4.
 *
 * DMA addresses arrive in mb2 (bits 31:16), mb3 (15:0), mb6 (63:48), mb7 (47:32).
 */
import { EMULATED_FW_VERSION, FLASH_WINDOW } from './flash.js';
import { MAILBOX_COUNT } from './events.js';
import type { IspFirmware } from './firmware.js';

/** Mailbox status codes (qla_def.h MBS_*). */
export const MBS = {
  COMMAND_COMPLETE: 0x4000,
  INVALID_COMMAND: 0x4001,
  HOST_INTERFACE_ERROR: 0x4002,
  TEST_FAILED: 0x4003,
  COMMAND_ERROR: 0x4005,
  COMMAND_PARAMETER_ERROR: 0x4006,
  PORT_ID_USED: 0x4007,
  LOOP_ID_USED: 0x4008,
  ALL_IDS_IN_USE: 0x4009,
  NOT_LOGGED_IN: 0x400a,
  LINK_DOWN_ERROR: 0x400b,
} as const;

/** Mailbox command codes (qla_def.h MBC_*). */
export const MBC = {
  NOP: 0x00,
  EXECUTE_FIRMWARE: 0x02,
  MAILBOX_REGISTER_TEST: 0x06,
  VERIFY_CHECKSUM: 0x07,
  GET_FIRMWARE_VERSION: 0x08,
  LOAD_RISC_RAM_EXTENDED: 0x0b,
  DUMP_RISC_RAM_EXTENDED: 0x0c,
  SERDES_PARAMS: 0x10,
  STOP_FIRMWARE: 0x14,
  PORT_PARAMS: 0x1a,
  GET_ADAPTER_LOOP_ID: 0x20,
  GET_RETRY_COUNT: 0x22,
  TRACE_CONTROL: 0x27,
  READ_SFP: 0x31,
  SET_FIRMWARE_OPTION: 0x38,
  LED_CONFIG: 0x3b,
  GET_RESOURCE_COUNTS: 0x42,
  MID_INITIALIZE_FIRMWARE: 0x48,
  IOCB_COMMAND_A64: 0x54,
  SET_RNID_PARAMS: 0x59,
  GET_RNID_PARAMS: 0x5a,
  DATA_RATE: 0x5d,
  INITIALIZE_FIRMWARE: 0x60,
  INITIATE_LIP: 0x62,
  GET_PORT_DATABASE: 0x64,
  GET_FIRMWARE_STATE: 0x69,
  GET_PORT_NAME: 0x6a,
  GET_LINK_STATUS: 0x6b,
  LIP_RESET: 0x6c,
  GET_STATISTICS: 0x6d,
  LINK_INITIALIZATION: 0x72,
  PORT_NODE_NAME_LIST: 0x75,
  GET_ID_LIST: 0x7c,
} as const;

/** Firmware states reported by MBC 0x69 mb1 (qla_def.h FSTATE_*). */
export const FSTATE = {
  CONFIG_WAIT: 0,
  WAIT_LOGIN: 2,
  READY: 3,
  LOSS_OF_SYNC: 4,
} as const;

export type MailboxReply = Uint16Array;
export type MailboxHandler = (fw: IspFirmware, mb: Uint16Array) => MailboxReply | Promise<MailboxReply>;

export interface MailboxCommand {
  opcode: number;
  name: string;
  handler: MailboxHandler;
  /** Accepted while the RISC runs only its ROM code (before EXECUTE_FIRMWARE). */
  inRom?: boolean;
}

/** Builds an outbound mailbox set: mb0 = status, then the listed registers. */
export function mailboxReply(status: number, values: Record<number, number> = {}): MailboxReply {
  const out = new Uint16Array(MAILBOX_COUNT);
  out[0] = status;
  for (const [k, v] of Object.entries(values)) {
    const i = Number(k);
    if (i > 0 && i < MAILBOX_COUNT) out[i] = v & 0xffff;
  }
  return out;
}

export function mailboxDmaAddress(mb: Uint16Array, hi = 6, hi2 = 7, lo = 2, lo2 = 3): bigint {
  return (
    (BigInt(mb[hi]!) << 48n) | (BigInt(mb[hi2]!) << 32n) | (BigInt(mb[lo]!) << 16n) | BigInt(mb[lo2]!)
  );
}

const ok = (values: Record<number, number> = {}) => mailboxReply(MBS.COMMAND_COMPLETE, values);

/** OPTROM_BURST_DWORDS × 4: the driver never asks for more in one 0x0C; cap hostile lengths. */
const DUMP_RAM_MAX_DWORDS = 0x10000;
/** Firmware memory size reported by 0x08 (mb4 LSW, mb5 MSW): ≥ 0x100000 keeps fw-dump allocation sane. */
const FW_MEMORY_SIZE = 0x0013ffff;
/**
 * MBC 0x08 mb6 firmware attributes. BIT2 (multi-ID / NPIV capable) is set as on real 25xx
 * firmware: it makes qla2xxx initialize with MID_INITIALIZE_FIRMWARE (0x48), which — unlike 0x60
 * — is on the driver's list of commands allowed while an ISP abort is active (qla_mbx.c
 * rom_cmds); with 0x60 every ISP-abort re-init fails ("aborted with timeout since ISP Abort is
 * pending"). Guest-side vport creation still fails cleanly: MBC 0x20 reports a switch without
 * FLOGI_MID_SUPPORT. BIT4 (T10 PI) and BIT6 (multiqueue) stay clear.
 */
const FW_ATTRIBUTES = 1 << 2;
/** Exchange / IOCB resource counts reported by 0x42 (non-zero, else the driver throttles to 0). */
export const RESOURCE_COUNT = 2048;
/** 2 × R_A_TOV in 100 ms units (R_A_TOV = 10 s). */
const RETRY_R_A_TOV = 200;
const RETRY_COUNT = 8;
/** MBC 0x20 mb7: switch capabilities (in-order delivery). */
const SWITCH_CAPABILITIES = 0x0100;
/** MBC 0x20 mb6: topology codes. */
export const TOPOLOGY_F_PORT = 3;
/** MBC 0x31 failure sub-code "no SFP data". */
const SFP_NOT_PRESENT = 0x22;
/** MBC 0x20 failure sub-code: loop transition in progress (driver retries). */
const ADAPTER_ID_LOOP_TRANSITION = 0x07;

function mailboxRegisterTest(_fw: IspFirmware, mb: Uint16Array): MailboxReply {
  const values: Record<number, number> = {};
  for (let i = 1; i <= 7; i++) values[i] = mb[i]!;
  return ok(values);
}

function dumpRiscRamExtended(fw: IspFirmware, mb: Uint16Array): MailboxReply {
  const riscAddress = ((mb[8]! << 16) | mb[1]!) >>> 0;
  const dwords = ((mb[4]! << 16) | mb[5]!) >>> 0;
  const dma = mailboxDmaAddress(mb);
  if (dwords === 0 || dwords > DUMP_RAM_MAX_DWORDS) {
    fw.guestError('mbox_err_dump_ram_length', { dwords });
    return mailboxReply(MBS.COMMAND_PARAMETER_ERROR);
  }
  let data: Uint8Array | null;
  const flashDword = riscAddress - FLASH_WINDOW.DATA;
  if (riscAddress >= FLASH_WINDOW.DATA && riscAddress < FLASH_WINDOW.CONF) {
    // qla25xx_read_optrom_data: RISC address 0x7FF00000 + dword reads flash.
    data = fw.flash.readBytes(flashDword * 4, dwords * 4);
    if (!data) {
      fw.guestError('mbox_err_dump_ram_flash_range', { riscAddress, dwords });
      return mailboxReply(MBS.COMMAND_PARAMETER_ERROR);
    }
  } else {
    // RISC RAM is not modelled: firmware-dump reads return zeros.
    data = new Uint8Array(dwords * 4);
  }
  if (!fw.dmaWrite(dma, data)) return mailboxReply(MBS.COMMAND_ERROR);
  return ok();
}

function loadRiscRamExtended(fw: IspFirmware, mb: Uint16Array): MailboxReply {
  const dwords = ((mb[4]! << 16) | mb[5]!) >>> 0;
  const dma = mailboxDmaAddress(mb);
  // The payload is vendor firmware code we neither need nor run: check it is readable, discard it.
  if (dwords === 0 || !fw.dmaReadable(dma, dwords * 4)) {
    fw.guestError('mbox_err_load_ram', { dwords, dma: dma.toString(16) });
    return mailboxReply(MBS.COMMAND_ERROR);
  }
  fw.firmwareLoaded = true;
  return ok();
}

function executeFirmware(fw: IspFirmware): MailboxReply {
  fw.startFirmware();
  return ok({ 1: RESOURCE_COUNT });
}

function getFirmwareVersion(): MailboxReply {
  const v = EMULATED_FW_VERSION;
  return ok({
    1: v.major,
    2: v.minor,
    3: v.subminor,
    4: FW_MEMORY_SIZE & 0xffff,
    5: FW_MEMORY_SIZE >>> 16,
    6: FW_ATTRIBUTES,
  });
}

function getResourceCounts(): MailboxReply {
  return ok({ 1: 0, 2: 0, 3: RESOURCE_COUNT, 6: RESOURCE_COUNT, 7: RESOURCE_COUNT, 10: RESOURCE_COUNT, 11: 0, 12: 0 });
}

function readSfp(): MailboxReply {
  return mailboxReply(MBS.COMMAND_ERROR, { 1: SFP_NOT_PRESENT });
}

function initializeFirmware(fw: IspFirmware, mb: Uint16Array): MailboxReply {
  const status = fw.initializeFirmware(mailboxDmaAddress(mb), mb[0] === MBC.MID_INITIALIZE_FIRMWARE);
  return mailboxReply(status);
}

function getFirmwareState(fw: IspFirmware): MailboxReply {
  return ok({ 1: fw.firmwareState() });
}

function getRetryCount(): MailboxReply {
  return ok({ 1: RETRY_COUNT, 3: RETRY_R_A_TOV });
}

function getAdapterId(fw: IspFirmware, mb: Uint16Array): MailboxReply {
  const link = fw.fabricLogin;
  if (!link) return mailboxReply(MBS.COMMAND_ERROR, { 1: ADAPTER_ID_LOOP_TRANSITION });
  const id = link.portId;
  return ok({
    1: 0,
    2: id & 0xffff,
    3: id >>> 16,
    6: TOPOLOGY_F_PORT,
    7: SWITCH_CAPABILITIES,
    9: mb[9]!,
  });
}

function dataRate(fw: IspFirmware, mb: Uint16Array): MailboxReply {
  if (mb[1] !== 0) return ok(); // set-speed requests are accepted: the link speed is the SAN's.
  return ok({ 1: fw.speedCode() });
}

function getPortName(fw: IspFirmware, mb: Uint16Array): MailboxReply {
  const wantNodeName = (mb[10]! & 1) !== 0;
  const name = fw.portNameOf(mb[1]!, wantNodeName);
  if (name === null) return mailboxReply(MBS.COMMAND_ERROR);
  const w = (shift: bigint) => Number((name >> shift) & 0xffffn);
  return ok({ 2: w(48n), 3: w(32n), 6: w(16n), 7: w(0n) });
}

async function iocbCommand(fw: IspFirmware, mb: Uint16Array): Promise<MailboxReply> {
  return mailboxReply(await fw.executeIocbInPlace(mailboxDmaAddress(mb)));
}

function getPortDatabase(fw: IspFirmware, mb: Uint16Array): MailboxReply {
  return mailboxReply(fw.writePortDatabase(mb[1]!, mailboxDmaAddress(mb)));
}

function portNodeNameList(fw: IspFirmware, mb: Uint16Array): MailboxReply {
  const r = fw.writePortList(mb[1]!, mailboxDmaAddress(mb), mb[8]!);
  return mailboxReply(r.status, { 1: r.bytes });
}

function getIdList(): MailboxReply {
  return ok({ 1: 0 });
}

function stopFirmware(fw: IspFirmware): MailboxReply {
  fw.stopFirmware();
  return ok();
}

function relink(fw: IspFirmware): MailboxReply {
  fw.restartLink();
  return ok();
}

function statistics(fw: IspFirmware, mb: Uint16Array): MailboxReply {
  // Link statistics: a zeroed buffer (no errors on an emulated link). mb8: dword count (FWI2).
  const dwords = Math.min(mb[8]! || 0x40, 0x100);
  return fw.dmaWrite(mailboxDmaAddress(mb), new Uint8Array(dwords * 4)) ? ok() : mailboxReply(MBS.COMMAND_ERROR);
}

const accept: MailboxHandler = () => ok();

export const MAILBOX_COMMANDS: readonly MailboxCommand[] = [
  { opcode: MBC.NOP, name: 'NOP', handler: accept, inRom: true },
  { opcode: MBC.EXECUTE_FIRMWARE, name: 'EXECUTE_FIRMWARE', handler: executeFirmware, inRom: true },
  { opcode: MBC.MAILBOX_REGISTER_TEST, name: 'MAILBOX_REGISTER_TEST', handler: mailboxRegisterTest, inRom: true },
  { opcode: MBC.VERIFY_CHECKSUM, name: 'VERIFY_CHECKSUM', handler: accept, inRom: true },
  { opcode: MBC.GET_FIRMWARE_VERSION, name: 'GET_FIRMWARE_VERSION', handler: getFirmwareVersion, inRom: true },
  { opcode: MBC.LOAD_RISC_RAM_EXTENDED, name: 'LOAD_RISC_RAM_EXTENDED', handler: loadRiscRamExtended, inRom: true },
  { opcode: MBC.DUMP_RISC_RAM_EXTENDED, name: 'DUMP_RISC_RAM_EXTENDED', handler: dumpRiscRamExtended, inRom: true },
  { opcode: MBC.SERDES_PARAMS, name: 'SERDES_PARAMS', handler: accept },
  { opcode: MBC.STOP_FIRMWARE, name: 'STOP_FIRMWARE', handler: stopFirmware },
  { opcode: MBC.PORT_PARAMS, name: 'PORT_PARAMS', handler: accept },
  { opcode: MBC.GET_ADAPTER_LOOP_ID, name: 'GET_ADAPTER_LOOP_ID', handler: getAdapterId },
  { opcode: MBC.GET_RETRY_COUNT, name: 'GET_RETRY_COUNT', handler: getRetryCount },
  { opcode: MBC.TRACE_CONTROL, name: 'TRACE_CONTROL', handler: accept },
  { opcode: MBC.READ_SFP, name: 'READ_SFP', handler: readSfp },
  { opcode: MBC.SET_FIRMWARE_OPTION, name: 'SET_FIRMWARE_OPTION', handler: accept },
  { opcode: MBC.LED_CONFIG, name: 'LED_CONFIG', handler: accept },
  { opcode: MBC.GET_RESOURCE_COUNTS, name: 'GET_RESOURCE_COUNTS', handler: getResourceCounts },
  { opcode: MBC.MID_INITIALIZE_FIRMWARE, name: 'MID_INITIALIZE_FIRMWARE', handler: initializeFirmware },
  { opcode: MBC.IOCB_COMMAND_A64, name: 'IOCB_COMMAND_A64', handler: iocbCommand },
  { opcode: MBC.SET_RNID_PARAMS, name: 'SET_RNID_PARAMS', handler: accept },
  { opcode: MBC.DATA_RATE, name: 'DATA_RATE', handler: dataRate },
  { opcode: MBC.INITIALIZE_FIRMWARE, name: 'INITIALIZE_FIRMWARE', handler: initializeFirmware },
  { opcode: MBC.INITIATE_LIP, name: 'INITIATE_LIP', handler: relink },
  { opcode: MBC.GET_PORT_DATABASE, name: 'GET_PORT_DATABASE', handler: getPortDatabase },
  { opcode: MBC.GET_FIRMWARE_STATE, name: 'GET_FIRMWARE_STATE', handler: getFirmwareState },
  { opcode: MBC.GET_PORT_NAME, name: 'GET_PORT_NAME', handler: getPortName },
  { opcode: MBC.GET_LINK_STATUS, name: 'GET_LINK_STATUS', handler: statistics },
  { opcode: MBC.LIP_RESET, name: 'LIP_RESET', handler: relink },
  { opcode: MBC.GET_STATISTICS, name: 'GET_STATISTICS', handler: statistics },
  { opcode: MBC.LINK_INITIALIZATION, name: 'LINK_INITIALIZATION', handler: relink },
  { opcode: MBC.PORT_NODE_NAME_LIST, name: 'PORT_NODE_NAME_LIST', handler: portNodeNameList },
  { opcode: MBC.GET_ID_LIST, name: 'GET_ID_LIST', handler: getIdList },
];

const BY_OPCODE = new Map(MAILBOX_COMMANDS.map((c) => [c.opcode, c]));

export function mailboxCommand(opcode: number): MailboxCommand | undefined {
  return BY_OPCODE.get(opcode);
}
