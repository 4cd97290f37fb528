/**
 * Codes of the ISP24xx/25xx firmware interface that the emulated ISP2532 firmware, its mailbox
 * commands and its IOCB handlers share, with the names qla2xxx 10.02.x gives them in qla_def.h:
 * mailbox command and status codes (MBC_*, MBS_*), firmware states (FSTATE_*), async event codes
 * (MBA_*), the well-known N_Port handles (NPH_*) and the fabric addresses behind them (FC-FS
 * well-known addresses). A leaf module: it imports nothing, so any ISP module may use it.
 */

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
  SEND_CHANGE_REQUEST: 0x70,
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

/** Async event codes (qla_def.h MBA_*). */
export const MBA = {
  REQ_TRANSFER_ERR: 0x8003,
  RSP_TRANSFER_ERR: 0x8004,
  LOOP_UP: 0x8011,
  LOOP_DOWN: 0x8012,
  PORT_UPDATE: 0x8014,
  RSCN_UPDATE: 0x8015,
} as const;

/**
 * Well-known N_Port handles (qla_def.h NPH_*, the generation where the management server is
 * 0x7ef: handles the driver may give remote ports end at NPH_LAST_HANDLE 0x7ee, below it).
 */
export const NPH = {
  MGMT_SERVER: 0x7ef,
  SNS: 0x7fc,
  F_PORT: 0x7fe,
  LAST_HANDLE: 0x7ee,
} as const;

/** The fabric addresses behind those handles (FC-FS well-known addresses). */
export const WELL_KNOWN = {
  MGMT_SERVER: 0xfffffa,
  NAME_SERVER: 0xfffffc,
  F_PORT: 0xfffffe,
} as const;

/** VP_CONFIG (vp_config_entry_24xx) commands and comp_status codes (qla_fw.h VCT_*, CS_VCT_*). */
export const VCT = {
  COMMAND_MOD_VPS: 0x00,
  COMMAND_MOD_ENABLE_VPS: 0x01,
  CS_COMPLETE: 0x00,
  CS_STS_ERROR: 0x01,
  CS_CNT_ERROR: 0x02,
  CS_IDX_ERROR: 0x02,
  CS_ERROR: 0x03,
  CS_BUSY: 0x05,
} as const;

/** VP_CTRL (vp_ctrl_entry_24xx) commands and comp_status codes (qla_fw.h VCE_*, CS_VCE_*). */
export const VCE = {
  COMMAND_ENABLE_VPS: 0x00,
  COMMAND_DISABLE_VPS: 0x08,
  COMMAND_DISABLE_VPS_REINIT: 0x09,
  COMMAND_DISABLE_VPS_LOGO: 0x0a,
  COMMAND_DISABLE_VPS_LOGO_ALL: 0x0b,
  CS_COMPLETE: 0x00,
  CS_IOCB_ERROR: 0x01,
  CS_ACQ_ID_ERROR: 0x02,
  CS_BUSY: 0x05,
} as const;

/** vp_config_entry_24xx options_idx bits (qla24xx_modify_vp_config: 0x38). */
export const VP_OPTION = {
  ENABLE: 1 << 3,
  INITIATOR: 1 << 4,
  TARGET_DISABLED: 1 << 5,
} as const;

/**
 * VP indices a guest may configure: MBC 0x42 mb11, which qla2x00_get_resource_cnts takes as
 * max_npiv_vports (fc_host max_npiv_vports). 127 is what QLogic 4/8 Gb firmware reports; it is
 * also the highest index VP_CTRL's 16-byte vp_idx_map can name below qla24xx_control_vp's
 * limits.
 */
export const MAX_NPIV_VPORTS = 127;
