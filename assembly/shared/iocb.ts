/**
 * IOCB layouts of the QLogic ISP24xx/25xx firmware interface (ISP2532 as driven by Linux
 * qla2xxx 10.02.x; structs from drivers/scsi/qla2xxx/qla_fw.h, qla_def.h, qla_dsd.h).
 *
 * Shared by AssemblyScript (assembly/) and TypeScript (src/): this file is written in the
 * subset both compilers accept — only `export const enum` and plain numeric consts, no imports,
 * no types. Every ring entry is 64 bytes, little-endian unless noted. Offsets are bytes from
 * the start of the entry.
 *
 * Byte-order quirks (qla2xxx host_to_fcp_swap() = swab32 over each dword):
 *   - Command Type 7 fcp_cdb[16] and lun[8], Marker/TMF lun[8] are stored dword-swapped:
 *     SAM byte i lives at field offset (i & ~3) + 3 - (i & 3).
 *   - Status Type 0 data[28] and Status Continuation data[60] are swapped the same way by the
 *     driver on receipt, so the firmware stores sense / response-info bytes pre-swapped.
 */

/** Size of every request/response ring entry. */
export const IOCB_SIZE = 64;
/** log2(IOCB_SIZE), for index → byte offset. */
export const IOCB_SHIFT = 6;

/**
 * Common header of every entry (request_t / response_t / sts_entry_24xx ...).
 *
 *   0        1         2          3            4                    8
 *   ├────────┼─────────┼──────────┼────────────┼────────────────────┤
 *   │ type   │ count   │ sys_def  │ entry_stat │ handle (LE u32)    │ ... per-type body
 *   └────────┴─────────┴──────────┴────────────┴────────────────────┘
 *
 * entry_count counts the entry itself plus its continuation entries. Response entries reuse
 * the last dword (60..63) as the driver's "processed" signature.
 */
export const enum IocbHeader {
  ENTRY_TYPE = 0,
  ENTRY_COUNT = 1,
  SYS_DEFINE = 2,
  ENTRY_STATUS = 3,
  HANDLE = 4,
  /** response_t.signature: the driver writes RESPONSE_PROCESSED here after consuming. */
  SIGNATURE = 60,
}

/** response_t.signature value meaning "slot consumed by the driver" (RESPONSE_PROCESSED). */
export const RESPONSE_PROCESSED = 0xdeaddead;

/** Entry type numbers (qla_fw.h / qla_def.h *_TYPE). */
export const enum EntryType {
  /** Status Type 0 (sts_entry_24xx), fw→host. */
  STATUS_TYPE = 0x03,
  /** Marker (mrk_entry_24xx), both directions. */
  MARKER_TYPE = 0x04,
  /** Continuation Type 1 with 64-bit DSDs (cont_a64_entry_t), host→fw. */
  CONTINUE_A64_TYPE = 0x0a,
  /** Status Continuation (sts_cont_entry_t), fw→host. */
  STATUS_CONT_TYPE = 0x10,
  /** Task Management (tsk_mgmt_entry). */
  TSK_MGMT_IOCB_TYPE = 0x14,
  /** Command Type 7 (cmd_type_7): all FCP I/O on 24xx/25xx. */
  COMMAND_TYPE_7 = 0x18,
  /** CT Pass-Through (ct_entry_24xx). */
  CT_IOCB_TYPE = 0x29,
  /** VP Control (vp_ctrl_entry_24xx). */
  VP_CTRL_IOCB_TYPE = 0x30,
  /** VP Config/Modify (vp_config_entry_24xx). */
  VP_CONFIG_IOCB_TYPE = 0x31,
  /** Report ID Acquisition (vp_rpt_id_entry_24xx), fw→host only. */
  VP_RPT_ID_IOCB_TYPE = 0x32,
  /** Abort IO (abort_entry_24xx). */
  ABORT_IOCB_TYPE = 0x33,
  /** Mailbox IOCB (mbx_24xx_entry). */
  MBX_IOCB_TYPE = 0x39,
  /** Login/Logout Port (logio_entry_24xx). */
  LOGINOUT_PORT_IOCB_TYPE = 0x52,
  /** ELS Pass-Through (els_entry_24xx / els_sts_entry_24xx). */
  ELS_IOCB_TYPE = 0x53,
}

/**
 * entry_status bits of a returned entry (qla_def.h RF_*). Any non-zero value makes the driver
 * (qla24xx_process_response_queue → qla2x00_error_entry) complete the srb found through the
 * handle with DID_ERROR (DID_BUS_BUSY for RF_BUSY).
 */
export const enum EntryStatus {
  RF_BUSY = 0x02,
  RF_INV_E_TYPE = 0x04,
  RF_INV_E_PARAM = 0x08,
  RF_INV_E_COUNT = 0x10,
  RF_INV_E_ORDER = 0x20,
  /** RF_MASK_24XX: the bits 24xx firmware reports. */
  RF_MASK_24XX = 0x3c,
}

/**
 * Handle conventions (qla_def.h): handle = (request queue id << 16) | outstanding_cmds index;
 * index 0 is never allocated. QLA_SKIP_HANDLE marks IOCBs that expect no completion.
 */
export const enum Handle {
  QUEUE_SHIFT = 16,
  INDEX_MASK = 0xffff,
  /** QLA_SKIP_HANDLE = 0x0FFFFFFF. */
  QLA_SKIP_HANDLE = 0x0fffffff,
}

/**
 * struct dsd64 (qla_dsd.h): one data segment descriptor, 12 bytes.
 *
 *   0                                8                  12
 *   ├────────────────────────────────┼──────────────────┤
 *   │ address (LE u64)               │ length (LE u32)  │
 *   └────────────────────────────────┴──────────────────┘
 */
export const enum Dsd64 {
  ADDRESS = 0,
  LENGTH = 8,
  SIZE = 12,
}

/**
 * Command Type 7 — 0x18 (cmd_type_7), built by qla24xx_start_scsi / qla24xx_build_scsi_iocbs.
 *
 *   0    1    2    3    4                   8         10        12        14        16
 *   ├────┼────┼────┼────┼───────────────────┼─────────┼─────────┼─────────┼─────────┤
 *   │0x18│cnt │sys │est │ handle            │ nport_h │ timeout │ dseg_cnt│ rsvd    │
 *   ├────┴────┴────┴────┴───────────────────┴─────────┴────┬────┴────┬────┴─────────┤
 *   │16 lun[8] (dword-swapped)                 │24 tmf_fl│26 task│27 crn│             │
 *   ├──────────────────────────────────────────┴─────────┴───────┴──────┘             │
 *   │28 fcp_cdb[16] (dword-swapped, zero padded)                                      │
 *   ├──────────────────────┬───────────────────────────┬────────┬───────────────────────┤
 *   │44 byte_count (FCP_DL)│48 port_id[3] al,area,dom  │51 vp_ix│52 dsd64 (first DSD)   │
 *   └──────────────────────┴───────────────────────────┴────────┴───────────────────────┘
 *
 * entry_count = 1 + ceil((dseg_count - 1) / 5) (qla24xx_calc_iocbs); with dseg_count 0 the
 * inline DSD is unused and byte_count is 0.
 */
export const enum Cmd7 {
  NPORT_HANDLE = 8,
  TIMEOUT = 10,
  DSEG_COUNT = 12,
  RESERVED_1 = 14,
  LUN = 16,
  LUN_SIZE = 8,
  TASK_MGMT_FLAGS = 24,
  TASK = 26,
  CRN = 27,
  FCP_CDB = 28,
  FCP_CDB_SIZE = 16,
  BYTE_COUNT = 44,
  PORT_ID = 48,
  VP_INDEX = 51,
  DSD = 52,
  /** DSDs carried by the command entry itself. */
  INLINE_DSDS = 1,
}

/** cmd_type_7.task_mgmt_flags data-direction bits (qla_fw.h TMF_WRITE_DATA / TMF_READ_DATA). */
export const enum Cmd7Flags {
  TMF_WRITE_DATA = 0x0001,
  TMF_READ_DATA = 0x0002,
  DIRECTION_MASK = 0x0003,
}

/**
 * cmd_type_7.task: bits 2:0 task attribute (TSK_*), bits 6:3 FCP priority (qla24xx_start_scsi
 * ORs fcport->fcp_prio << 3), bit 7 reserved.
 */
export const enum Cmd7Task {
  TSK_SIMPLE = 0,
  TSK_HEAD_OF_QUEUE = 1,
  TSK_ORDERED = 2,
  TSK_ACA = 4,
  TSK_UNTAGGED = 5,
  ATTRIBUTE_MASK = 0x07,
  PRIORITY_SHIFT = 3,
  PRIORITY_MASK = 0x0f,
  RESERVED_MASK = 0x80,
}

/**
 * Continuation Type 1 — 0x0A (cont_a64_entry_t): five more DSDs. qla2x00_prep_cont_type1_iocb
 * writes the type with a 32-bit store (count/sys_define/status = 0) and leaves unused DSD slots
 * of the last continuation stale, so those slots are never read.
 *
 *   0    1    2    3    4          16         28         40         52         64
 *   ├────┼────┼────┼────┼──────────┼──────────┼──────────┼──────────┼──────────┤
 *   │0x0A│ 0  │ 0  │ 0  │ dsd64[0] │ dsd64[1] │ dsd64[2] │ dsd64[3] │ dsd64[4] │
 *   └────┴────┴────┴────┴──────────┴──────────┴──────────┴──────────┴──────────┘
 */
export const enum ContA64 {
  DSD = 4,
  DSDS_PER_ENTRY = 5,
}

/**
 * Status Type 0 — 0x03 (sts_entry_24xx), decoded by qla2x00_status_entry.
 *
 *   0    1    2    3    4                  8          10        12                 16
 *   ├────┼────┼────┼────┼──────────────────┼──────────┼─────────┼──────────────────┤
 *   │0x03│ 1  │ 0  │est │ handle (echo)    │comp_stat │ ox_id   │ residual_len     │
 *   ├────┴────┴────┴────┼─────────┬────────┴──┬───────┴─────────┼──────────────────┤
 *   │16 reserved        │18 state │20 retry_dl│22 scsi_status   │24 rsp_resid_count│
 *   ├───────────────────┴─────────┴───────────┴─────────────────┼──────────────────┤
 *   │28 sense_len            │32 rsp_data_len │36 data[28]: rsp info then sense,   │
 *   │                        │                │   dword-swapped; 60..63 = signature │
 *   └────────────────────────┴────────────────┴──────────────────────────────────────┘
 */
export const enum Sts24 {
  COMP_STATUS = 8,
  OX_ID = 10,
  RESIDUAL_LEN = 12,
  RESERVED_1 = 16,
  STATE_FLAGS = 18,
  RETRY_DELAY = 20,
  SCSI_STATUS = 22,
  RSP_RESIDUAL_COUNT = 24,
  SENSE_LEN = 28,
  RSP_DATA_LEN = 32,
  DATA = 36,
  DATA_SIZE = 28,
}

/** sts_entry_24xx.scsi_status bits above the SCSI status byte (qla_def.h SS_*). */
export const enum ScsiStatusFlags {
  STATUS_BYTE_MASK = 0x00ff,
  SS_RESPONSE_INFO_LEN_VALID = 0x0100,
  SS_SENSE_LEN_VALID = 0x0200,
  SS_RESIDUAL_OVER = 0x0400,
  SS_RESIDUAL_UNDER = 0x0800,
  /** SS_MASK: what qla2x00_status_entry keeps of scsi_status. */
  SS_MASK = 0x0fff,
}

/**
 * Status Continuation — 0x10 (sts_cont_entry_t): 60 more sense bytes, dword-swapped. The driver
 * consumes them only while the preceding status left sense bytes outstanding.
 *
 *   0    1    2    3    4                                                         64
 *   ├────┼────┼────┼────┼──────────────────────────────────────────────────────────┤
 *   │0x10│ 1  │ 0  │ 0  │ data[60] (sense, dword-swapped; 60..63 = signature slot)  │
 *   └────┴────┴────┴────┴──────────────────────────────────────────────────────────┘
 */
export const enum StsCont {
  DATA = 4,
  DATA_SIZE = 60,
}

/**
 * Sense bytes the driver keeps: qla2x00_handle_sense caps at SCSI_SENSE_BUFFERSIZE (96), so the
 * firmware model never reports or sends more (status entry + at most two continuations).
 */
export const MAX_SENSE_BYTES = 96;

/** Completion status codes (qla_def.h / qla_fw.h CS_*), sts_entry_24xx.comp_status. */
export const enum CompStatus {
  CS_COMPLETE = 0x00,
  CS_INCOMPLETE = 0x01,
  CS_DMA = 0x02,
  CS_TRANSPORT = 0x03,
  CS_RESET = 0x04,
  CS_ABORTED = 0x05,
  CS_TIMEOUT = 0x06,
  CS_DATA_OVERRUN = 0x07,
  CS_DIF_ERROR = 0x0c,
  CS_DATA_UNDERRUN = 0x15,
  CS_QUEUE_FULL = 0x1c,
  CS_PORT_UNAVAILABLE = 0x28,
  CS_PORT_LOGGED_OUT = 0x29,
  CS_PORT_CONFIG_CHG = 0x2a,
  CS_PORT_BUSY = 0x2b,
  CS_COMPLETE_CHKCOND = 0x30,
  /** CS_IOCB_ERROR (= CS_LOGIO_ERROR for Login/Logout IOCBs). */
  CS_IOCB_ERROR = 0x31,
  CS_REJECT_RECEIVED = 0x4e,
}

/**
 * Marker — 0x04 (mrk_entry_24xx).
 *
 *   0    1    2    3    4            8          10   11   12   13   14       16          24
 *   ├────┼────┼────┼────┼────────────┼──────────┼────┼────┼────┼────┼────────┼───────────┤
 *   │0x04│cnt │hcnt│est │ handle     │ nport_h  │mod │rsv │rsv │vp  │ rsvd   │ lun[8] sw │ rsvd[40]
 *   └────┴────┴────┴────┴────────────┴──────────┴────┴────┴────┴────┴────────┴───────────┘
 */
export const enum Marker {
  NPORT_HANDLE = 8,
  MODIFIER = 10,
  VP_INDEX = 13,
  LUN = 16,
  /** modifier values: MK_SYNC_ID_LUN, MK_SYNC_ID, MK_SYNC_ALL. */
  MK_SYNC_ID_LUN = 0,
  MK_SYNC_ID = 1,
  MK_SYNC_ALL = 2,
}

/**
 * Task Management — 0x14 (tsk_mgmt_entry). Completion is a Status Type 0 with the same handle.
 *
 *   0..3 hdr │4 handle│8 nport_h│10 rsvd│12 delay│14 timeout│16 lun[8] sw│24 control_flags u32│
 *   28 rsvd[20] │48 port_id[3]│51 vp_index│52 rsvd[12]
 */
export const enum TskMgmt {
  NPORT_HANDLE = 8,
  DELAY = 12,
  TIMEOUT = 14,
  LUN = 16,
  CONTROL_FLAGS = 24,
  PORT_ID = 48,
  VP_INDEX = 51,
  /** control_flags (TCF_*). */
  TCF_CLEAR_ACA = 0x01,
  TCF_TARGET_RESET = 0x02,
  TCF_CLEAR_TASK_SET = 0x04,
  TCF_ABORT_TASK_SET = 0x08,
  TCF_LUN_RESET = 0x10,
}

/**
 * Abort IO — 0x33 (abort_entry_24xx). In the response, offset 8 carries comp_status.
 *
 *   0..3 hdr │4 handle│8 nport_h / comp_status│10 options│12 handle_to_abort│16 req_que_no│
 *   18 rsvd[30] │48 port_id[3]│51 vp_index│52 rsvd│56 abts fields│60 rsvd
 */
export const enum Abort {
  NPORT_HANDLE = 8,
  COMP_STATUS = 8,
  OPTIONS = 10,
  HANDLE_TO_ABORT = 12,
  REQ_QUE_NO = 16,
  PORT_ID = 48,
  VP_INDEX = 51,
}

/**
 * Login/Logout Port — 0x52 (logio_entry_24xx).
 *
 *   0..3 hdr │4 handle│8 comp_status│10 nport_handle│12 control_flags│14 vp_index│15 rsvd│
 *   16 port_id[3]│19 rsp_size│20 io_parameter[11] (u32 each)
 */
export const enum Logio {
  COMP_STATUS = 8,
  NPORT_HANDLE = 10,
  CONTROL_FLAGS = 12,
  VP_INDEX = 14,
  PORT_ID = 16,
  RSP_SIZE = 19,
  IO_PARAMETER = 20,
  IO_PARAMETER_COUNT = 11,
}

/**
 * CT Pass-Through — 0x29 (ct_entry_24xx).
 *
 *   0..3 hdr │4 handle│8 comp_status│10 nport_handle│12 cmd_dsd_count│14 vp_index│15 rsvd│
 *   16 timeout│18 rsvd│20 rsp_dsd_count│22 rsvd[10]│32 rsp_byte_count│36 cmd_byte_count│
 *   40 dsd64 request│52 dsd64 response
 */
export const enum Ct {
  COMP_STATUS = 8,
  NPORT_HANDLE = 10,
  CMD_DSD_COUNT = 12,
  VP_INDEX = 14,
  TIMEOUT = 16,
  RSP_DSD_COUNT = 20,
  RSP_BYTE_COUNT = 32,
  CMD_BYTE_COUNT = 36,
  DSD0 = 40,
  DSD1 = 52,
}

/**
 * ELS Pass-Through — 0x53 (els_entry_24xx request, els_sts_entry_24xx response).
 *
 *   0..3 hdr │4 handle│8 comp_status│10 nport_handle│12 tx_dsd_count│14 vp_index│15 sof│
 *   16 rx_xchg_address│20 rx_dsd_count│22 opcode│24 d_id[3]│27 s_id[3]│30 control_flags│
 *   32 rx_byte_count / total_byte_count│36 tx_byte_count / err1│40 tx_address / err2,err3│
 *   48 tx_len│52 rx_address│60 rx_len
 */
export const enum Els {
  COMP_STATUS = 8,
  NPORT_HANDLE = 10,
  TX_DSD_COUNT = 12,
  VP_INDEX = 14,
  SOF_TYPE = 15,
  RX_XCHG_ADDRESS = 16,
  RX_DSD_COUNT = 20,
  OPCODE = 22,
  D_ID = 24,
  S_ID = 27,
  CONTROL_FLAGS = 30,
  RX_BYTE_COUNT = 32,
  TX_BYTE_COUNT = 36,
  TX_ADDRESS = 40,
  TX_LEN = 48,
  RX_ADDRESS = 52,
  RX_LEN = 60,
  /** els_sts_entry_24xx fields. */
  TOTAL_BYTE_COUNT = 32,
  ERROR_SUBCODE_1 = 36,
  ERROR_SUBCODE_2 = 40,
  ERROR_SUBCODE_3 = 44,
}

/**
 * Mailbox IOCB — 0x39 (mbx_24xx_entry): 0..3 hdr │4 handle│8 mb[28] (u16 each).
 */
export const enum MbxIocb {
  MB = 8,
  MB_COUNT = 28,
}

/**
 * VP Control — 0x30 (vp_ctrl_entry_24xx):
 *   0..3 hdr │4 handle│8 vp_idx_failed│10 comp_status│12 command│14 vp_count│16 vp_idx_map[16]│
 *   32 flags│34 id│36 rsvd│38 hopct│40 rsvd[24]
 */
export const enum VpCtrl {
  VP_IDX_FAILED = 8,
  COMP_STATUS = 10,
  COMMAND = 12,
  VP_COUNT = 14,
  VP_IDX_MAP = 16,
  /** vp_idx_map: 16 bytes, bit (n-1) for VP n. */
  VP_IDX_MAP_SIZE = 16,
}

/**
 * VP Config — 0x31 (vp_config_entry_24xx):
 *   0..3 hdr │4 handle│8 flags│10 comp_status│12 command│13 vp_count│14 vp_index1│15 vp_index2│
 *   16 options_idx1│17 hard_address_idx1│18 rsvd│20 port_name_idx1[8]│28 node_name_idx1[8]│
 *   36 options_idx2│37 hard_address_idx2│38 rsvd│40 port_name_idx2[8]│48 node_name_idx2[8]│56..
 */
export const enum VpConfig {
  FLAGS = 8,
  COMP_STATUS = 10,
  COMMAND = 12,
  VP_COUNT = 13,
  VP_INDEX1 = 14,
  VP_INDEX2 = 15,
  OPTIONS_IDX1 = 16,
  HARD_ADDRESS_IDX1 = 17,
  PORT_NAME_IDX1 = 20,
  NODE_NAME_IDX1 = 28,
  OPTIONS_IDX2 = 36,
  HARD_ADDRESS_IDX2 = 37,
  PORT_NAME_IDX2 = 40,
  NODE_NAME_IDX2 = 48,
}

/**
 * Report ID Acquisition — 0x32 (vp_rpt_id_entry_24xx), fw→host, no handle:
 *   0..3 hdr │4 rsvd│8 vp_acquired│9 vp_setup│10 vp_idx│11 vp_status│12 port_id[3]│15 format│
 *   format 1: 16 vpstat1_subcode│17 flags│18 fip_flags│32 ls_rjt vendor│33 expl│34 reason│
 *   38 flogi_acc_payload_size│40 port_name[8]│48 node_name[8]│56 bbcr
 */
export const enum VpRptId {
  VP_ACQUIRED = 8,
  VP_SETUP = 9,
  VP_IDX = 10,
  VP_STATUS = 11,
  PORT_ID = 12,
  FORMAT = 15,
  F1_VPSTAT1_SUBCODE = 16,
  F1_FLAGS = 17,
  F1_FIP_FLAGS = 18,
  F1_LS_RJT_VENDOR = 32,
  F1_LS_RJT_EXPLANATION = 33,
  F1_LS_RJT_REASON = 34,
  F1_FLOGI_ACC_PAYLOAD_SIZE = 38,
  F1_PORT_NAME = 40,
  F1_NODE_NAME = 48,
  F1_BBCR = 56,
}

/** port_id[3] {al_pa, area, domain} read as a little-endian dword: the low 24 bits. */
export const PORT_ID_MASK = 0x00ffffff;

/** Limits of the 24xx/25xx interface relevant to ring parsing. */
export const enum IocbLimits {
  /** entry_count is a u8. */
  MAX_ENTRY_COUNT = 255,
  /** N_Port handles are 11 bits on 24xx/25xx (0x000..0x7FF, incl. well-known 0x7EF..0x7FE). */
  MAX_NPORT_HANDLE = 0x7ff,
  /** Request/response ring lengths are u16 in the init control block. */
  MAX_RING_ENTRIES = 0xffff,
  /** vp_index is a u8. */
  MAX_VP_INDEX = 0xff,
  /** The outstanding_cmds index is the handle's low 16 bits. */
  MAX_HANDLE_INDEX = 0xffff,
  /** The request-queue id is the handle's high 16 bits. */
  MAX_QUEUE_ID = 0xffff,
}
