/**
 * Mailbox command dispatcher of the emulated ISP2532 firmware: one table row per command
 * {opcode, name, handler}, everything else → 0x4001 MBS_INVALID_COMMAND (logged). Commands,
 * inputs and minimum outputs follow what qla2xxx 10.02.x qla_mbx.c sends and reads back
 * (qla2x00_mailbox_command and its per-command wrappers: qla2x00_execute_fw,
 * qla2x00_get_fw_version, qla2x00_init_firmware, qla2x00_get_firmware_state, …).
 *
 * DMA addresses arrive in mb2 (bits 31:16), mb3 (15:0), mb6 (63:48), mb7 (47:32).
 *
 * Handlers see a MailboxContext — the IOCB handlers' context (iocb/context.ts) plus flash and the
 * RISC controls — not the firmware object, so each can be run against a fake.
 */
import { EMULATED_FW_VERSION, FLASH_WINDOW, type FlashStore } from './flash.js';
import { MAILBOX_COUNT } from './events.js';
import { MAX_NPIV_VPORTS, MBC, MBS } from './fw-constants.js';
import type { IocbContext } from './iocb/context.js';
import { writePortDatabase, writePortList } from './port-database.js';

// The codes live in fw-constants.ts (shared with the IOCB handlers); mailbox users import them here too.
export { FSTATE, MBC, MBS } from './fw-constants.js';

/** The RISC controls a mailbox command may use; IspFirmware implements them. */
export interface FirmwareControl {
  /** LOAD_RISC_RAM_EXTENDED delivered an image (checked readable, then discarded). */
  firmwareImageLoaded(): void;
  startFirmware(): void;
  stopFirmware(): void;
  /** INITIALIZE_FIRMWARE / MID_INITIALIZE_FIRMWARE with the ICB at icbAddress; returns an MBS code. */
  initializeFirmware(icbAddress: bigint, midInit: boolean): number;
  /** MBC 0x69 mb1 (FSTATE_*). */
  firmwareState(): number;
  /** LIP / LINK_INITIALIZATION. */
  restartLink(): void;
  /** MBC 0x54: run the IOCB at address, completion written back in place; returns an MBS code. */
  executeIocbInPlace(address: bigint): Promise<number>;
}

/** What a mailbox command sees: the IOCB handlers' context plus flash and the RISC controls. */
export interface MailboxContext extends IocbContext {
  readonly flash: Pick<FlashStore, 'readBytes'>;
  readonly firmware: FirmwareControl;
}

export type MailboxReply = Uint16Array;
export type MailboxHandler = (ctx: MailboxContext, mb: Uint16Array) => MailboxReply | Promise<MailboxReply>;

export interface MailboxCommand {
  opcode: number;
  name: string;
  handler: MailboxHandler;
  /** Accepted while the RISC runs only its ROM code (before EXECUTE_FIRMWARE). */
  inRom?: boolean;
  /**
   * qla2xxx sends the VP index in mailbox 9 (out_mb includes MBX_9): the handler runs against
   * that VP's N_Port. Other commands leave mb9 stale, so it is read only for these.
   */
  perVp?: boolean;
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
  return (BigInt(mb[hi]!) << 48n) | (BigInt(mb[hi2]!) << 32n) | (BigInt(mb[lo]!) << 16n) | BigInt(mb[lo2]!);
}

const ok = (values: Record<number, number> = {}) => mailboxReply(MBS.COMMAND_COMPLETE, values);

/** OPTROM_BURST_DWORDS × 4: the driver never asks for more in one 0x0C; cap hostile lengths. */
const DUMP_RAM_MAX_DWORDS = 0x10000;
/** Firmware memory size reported by 0x08 (mb4 LSW, mb5 MSW): ≥ 0x100000 keeps fw-dump allocation sane. */
const FW_MEMORY_SIZE = 0x0013ffff;
/**
 * MBC 0x08 mb6 firmware attributes. BIT2 (multi-ID / NPIV capable) is set as on real 25xx
 * firmware: qla2x00_setup_chip then sets npiv_supported, reads max_npiv_vports from mb11 of
 * 0x42, and initializes with MID_INITIALIZE_FIRMWARE (0x48), which — unlike 0x60 — is on the
 * driver's list of commands allowed while an ISP abort is active (qla_mbx.c rom_cmds). BIT4
 * (T10 PI) and BIT6 (multiqueue) stay clear.
 */
const FW_ATTRIBUTES = 1 << 2;
/** Exchange / IOCB resource counts reported by 0x42 (non-zero, else the driver throttles to 0). */
export const RESOURCE_COUNT = 2048;
/** 2 × R_A_TOV in 100 ms units (R_A_TOV = 10 s). */
const RETRY_R_A_TOV = 200;
const RETRY_COUNT = 8;
/** MBC 0x20 mb7: switch capabilities (in-order delivery). */
const SWITCH_CAPABILITIES = 0x0100;
/**
 * MBC 0x20 mb7 BIT_10 FLOGI_MID_SUPPORT: the switch accepts FDISC (NPIV). Without it
 * qla24xx_vport_create_req_sanity_check refuses every vport (VPCERR_NO_FABRIC_SUPP).
 */
const FLOGI_MID_SUPPORT = 1 << 10;
/** MBC 0x20 mb6: topology codes. */
export const TOPOLOGY_F_PORT = 3;
/** MBC 0x31 failure sub-code "no SFP data". */
const SFP_NOT_PRESENT = 0x22;
/** MBC 0x20 failure sub-code: loop transition in progress (driver retries). */
const ADAPTER_ID_LOOP_TRANSITION = 0x07;

function mailboxRegisterTest(_ctx: MailboxContext, mb: Uint16Array): MailboxReply {
  const values: Record<number, number> = {};
  for (let i = 1; i <= 7; i++) values[i] = mb[i]!;
  return ok(values);
}

function dumpRiscRamExtended(ctx: MailboxContext, mb: Uint16Array): MailboxReply {
  const riscAddress = ((mb[8]! << 16) | mb[1]!) >>> 0;
  const dwords = ((mb[4]! << 16) | mb[5]!) >>> 0;
  const dma = mailboxDmaAddress(mb);
  if (dwords === 0 || dwords > DUMP_RAM_MAX_DWORDS) {
    ctx.guestError('mbox_err_dump_ram_length', { dwords });
    return mailboxReply(MBS.COMMAND_PARAMETER_ERROR);
  }
  let data: Uint8Array | null;
  const flashDword = riscAddress - FLASH_WINDOW.DATA;
  if (riscAddress >= FLASH_WINDOW.DATA && riscAddress < FLASH_WINDOW.CONF) {
    // qla25xx_read_optrom_data: RISC address 0x7FF00000 + dword reads flash.
    data = ctx.flash.readBytes(flashDword * 4, dwords * 4);
    if (!data) {
      ctx.guestError('mbox_err_dump_ram_flash_range', { riscAddress, dwords });
      return mailboxReply(MBS.COMMAND_PARAMETER_ERROR);
    }
  } else {
    // RISC RAM is not modelled: firmware-dump reads return zeros.
    data = new Uint8Array(dwords * 4);
  }
  if (!ctx.dma.write(dma, data)) return mailboxReply(MBS.COMMAND_ERROR);
  return ok();
}

function loadRiscRamExtended(ctx: MailboxContext, mb: Uint16Array): MailboxReply {
  const dwords = ((mb[4]! << 16) | mb[5]!) >>> 0;
  const dma = mailboxDmaAddress(mb);
  // The payload is vendor firmware code we neither need nor run: check it is readable, discard it.
  if (dwords === 0 || !ctx.dma.readable(dma, dwords * 4)) {
    ctx.guestError('mbox_err_load_ram', { dwords, dma: dma.toString(16) });
    return mailboxReply(MBS.COMMAND_ERROR);
  }
  ctx.firmware.firmwareImageLoaded();
  return ok();
}

function executeFirmware(ctx: MailboxContext): MailboxReply {
  ctx.firmware.startFirmware();
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

/** MBC 0x42 (qla2x00_get_resource_cnts): mb11 becomes max_npiv_vports (fc_host max_npiv_vports). */
function getResourceCounts(): MailboxReply {
  return ok({
    1: 0,
    2: 0,
    3: RESOURCE_COUNT,
    6: RESOURCE_COUNT,
    7: RESOURCE_COUNT,
    10: RESOURCE_COUNT,
    11: MAX_NPIV_VPORTS,
    12: 0,
  });
}

function readSfp(): MailboxReply {
  return mailboxReply(MBS.COMMAND_ERROR, { 1: SFP_NOT_PRESENT });
}

function initializeFirmware(ctx: MailboxContext, mb: Uint16Array): MailboxReply {
  const status = ctx.firmware.initializeFirmware(mailboxDmaAddress(mb), mb[0] === MBC.MID_INITIALIZE_FIRMWARE);
  return mailboxReply(status);
}

function getFirmwareState(ctx: MailboxContext): MailboxReply {
  return ok({ 1: ctx.firmware.firmwareState() });
}

function getRetryCount(): MailboxReply {
  return ok({ 1: RETRY_COUNT, 3: RETRY_R_A_TOV });
}

/**
 * MBC 0x20 for the VP in mb9 (qla2x00_get_adapter_id): its own N_Port ID in mb2/mb3. Topology and
 * switch capabilities are the physical link's and the same for every VP: qla2x00_configure_hba
 * stores them chip-wide (ha->current_topology, ha->switch_cap), so a VP must not turn NPIV off.
 */
function getAdapterId(ctx: MailboxContext, mb: Uint16Array): MailboxReply {
  const link = ctx.port.fabricLogin;
  if (!link) return mailboxReply(MBS.COMMAND_ERROR, { 1: ADAPTER_ID_LOOP_TRANSITION });
  const id = link.portId;
  const physical = ctx.portOf(0)?.fabricLogin ?? link;
  const npiv = physical.npivSupported !== false;
  return ok({
    1: ctx.port.vpIndex,
    2: id & 0xffff,
    3: id >>> 16,
    6: TOPOLOGY_F_PORT,
    7: SWITCH_CAPABILITIES | (npiv ? FLOGI_MID_SUPPORT : 0),
    9: mb[9]!,
  });
}

/**
 * MBC 0x70 for the VP in mb9 (qla2x00_send_change_request, from qla24xx_configure_vp): RSCN
 * registration. The FabricPort registers every fabric login it makes (SCR to 0xFFFFFD), so this
 * succeeds while the VP is logged in; without that the driver logs "Failed to enable receiving
 * of RSCN requests" and retries on the next Report ID Acquisition.
 */
function sendChangeRequest(ctx: MailboxContext): MailboxReply {
  return ctx.port.phase === 'up' ? ok() : mailboxReply(MBS.COMMAND_ERROR);
}

function dataRate(ctx: MailboxContext, mb: Uint16Array): MailboxReply {
  if (mb[1] !== 0) return ok(); // set-speed requests are accepted: the link speed is the SAN's.
  return ok({ 1: ctx.port.speedCode() });
}

function getPortName(ctx: MailboxContext, mb: Uint16Array): MailboxReply {
  const wantNodeName = (mb[10]! & 1) !== 0;
  const name = ctx.port.portNameOf(mb[1]!, wantNodeName);
  if (name === null) return mailboxReply(MBS.COMMAND_ERROR);
  const w = (shift: bigint) => Number((name >> shift) & 0xffffn);
  return ok({ 2: w(48n), 3: w(32n), 6: w(16n), 7: w(0n) });
}

async function iocbCommand(ctx: MailboxContext, mb: Uint16Array): Promise<MailboxReply> {
  return mailboxReply(await ctx.firmware.executeIocbInPlace(mailboxDmaAddress(mb)));
}

function getPortDatabase(ctx: MailboxContext, mb: Uint16Array): MailboxReply {
  return mailboxReply(writePortDatabase(ctx, mb[1]!, mailboxDmaAddress(mb)));
}

function portNodeNameList(ctx: MailboxContext, mb: Uint16Array): MailboxReply {
  const r = writePortList(ctx, mb[1]!, mailboxDmaAddress(mb), mb[8]!);
  return mailboxReply(r.status, { 1: r.bytes });
}

function getIdList(): MailboxReply {
  return ok({ 1: 0 });
}

function stopFirmware(ctx: MailboxContext): MailboxReply {
  ctx.firmware.stopFirmware();
  return ok();
}

function relink(ctx: MailboxContext): MailboxReply {
  ctx.firmware.restartLink();
  return ok();
}

function statistics(ctx: MailboxContext, mb: Uint16Array): MailboxReply {
  // Link statistics: a zeroed buffer (no errors on an emulated link). mb8: dword count (FWI2).
  const dwords = Math.min(mb[8]! || 0x40, 0x100);
  return ctx.dma.write(mailboxDmaAddress(mb), new Uint8Array(dwords * 4)) ? ok() : mailboxReply(MBS.COMMAND_ERROR);
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
  { opcode: MBC.GET_ADAPTER_LOOP_ID, name: 'GET_ADAPTER_LOOP_ID', handler: getAdapterId, perVp: true },
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
  { opcode: MBC.GET_PORT_DATABASE, name: 'GET_PORT_DATABASE', handler: getPortDatabase, perVp: true },
  { opcode: MBC.GET_FIRMWARE_STATE, name: 'GET_FIRMWARE_STATE', handler: getFirmwareState },
  { opcode: MBC.GET_PORT_NAME, name: 'GET_PORT_NAME', handler: getPortName, perVp: true },
  { opcode: MBC.SEND_CHANGE_REQUEST, name: 'SEND_CHANGE_REQUEST', handler: sendChangeRequest, perVp: true },
  { opcode: MBC.GET_LINK_STATUS, name: 'GET_LINK_STATUS', handler: statistics },
  { opcode: MBC.LIP_RESET, name: 'LIP_RESET', handler: relink },
  { opcode: MBC.GET_STATISTICS, name: 'GET_STATISTICS', handler: statistics },
  { opcode: MBC.LINK_INITIALIZATION, name: 'LINK_INITIALIZATION', handler: relink },
  { opcode: MBC.PORT_NODE_NAME_LIST, name: 'PORT_NODE_NAME_LIST', handler: portNodeNameList },
  { opcode: MBC.GET_ID_LIST, name: 'GET_ID_LIST', handler: getIdList, perVp: true },
];

const BY_OPCODE = new Map(MAILBOX_COMMANDS.map((c) => [c.opcode, c]));

export function mailboxCommand(opcode: number): MailboxCommand | undefined {
  return BY_OPCODE.get(opcode);
}
