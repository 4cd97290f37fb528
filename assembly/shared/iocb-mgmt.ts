/**
 * Byte layouts of the ISP24xx/25xx management IOCBs (64-byte entries, little-endian) that the
 * firmware model handles in TypeScript: Login/Logout 0x52, CT pass-through 0x29, ELS 0x53,
 * Mailbox IOCB 0x39, Marker 0x04, Abort 0x33, Task Management 0x14, VP Control/Config 0x30/0x31,
 * Report ID Acquisition 0x32; plus the DMA structures those commands read or write
 * (port_database_24xx, get_name_list_extended). Offsets from qla2xxx 10.02.x qla_fw.h
 * (isp25xx.md Appendix B). Command Type 7 / Status Type 0 / Continuation layouts belong to the
 * ring engine's files and are not repeated here.
 *
 * Plain numeric constants so that both TypeScript and AssemblyScript can import them.
 *
 * Common entry header of every IOCB:
 *   0        1            2            3             4 .. 7
 *   +--------+------------+------------+-------------+-----------------+
 *   | type   | entry_count| sys_define | entry_status| handle (LE u32) |
 *   +--------+------------+------------+-------------+-----------------+
 */
export const IOCB_SIZE = 64;
export const IOCB_ENTRY_TYPE = 0;
export const IOCB_ENTRY_COUNT = 1;
export const IOCB_SYS_DEFINE = 2;
export const IOCB_ENTRY_STATUS = 3;
export const IOCB_HANDLE = 4;

/** Entry type numbers (qla_fw.h *_TYPE). */
export const IOCB_TYPE_STATUS = 0x03;
export const IOCB_TYPE_MARKER = 0x04;
export const IOCB_TYPE_CONT_A64 = 0x0a;
export const IOCB_TYPE_STATUS_CONT = 0x10;
export const IOCB_TYPE_TSK_MGMT = 0x14;
export const IOCB_TYPE_CMD_TYPE_7 = 0x18;
export const IOCB_TYPE_CT = 0x29;
export const IOCB_TYPE_VP_CTRL = 0x30;
export const IOCB_TYPE_VP_CONFIG = 0x31;
export const IOCB_TYPE_VP_RPT_ID = 0x32;
export const IOCB_TYPE_ABORT = 0x33;
export const IOCB_TYPE_MBX = 0x39;
export const IOCB_TYPE_LOGINOUT = 0x52;
export const IOCB_TYPE_ELS = 0x53;

/** entry_status bits (qla_def.h RF_*). */
export const RF_BUSY = 0x02;
export const RF_INV_E_TYPE = 0x04;
export const RF_INV_E_PARAM = 0x08;
export const RF_INV_E_COUNT = 0x10;
export const RF_INV_E_ORDER = 0x20;

/** Handle meaning "no completion expected" (QLA_SKIP_HANDLE). */
export const QLA_SKIP_HANDLE = 0x0fffffff;

/** Completion status codes used by the management IOCBs (qla_def.h CS_*). */
export const CS_COMPLETE = 0x00;
export const CS_ABORTED = 0x05;
export const CS_PORT_UNAVAILABLE = 0x28;
export const CS_PORT_LOGGED_OUT = 0x29;
export const CS_IOCB_ERROR = 0x31;

/**
 * logio_entry_24xx (0x52):
 *   8 comp_status u16 | 10 nport_handle u16 | 12 control_flags u16 | 14 vp_index u8 | 15 rsvd
 *   16 port_id[3] (al_pa, area, domain) | 19 rsp_size u8 | 20 io_parameter[11] u32
 */
export const LOGIO_COMP_STATUS = 8;
export const LOGIO_NPORT_HANDLE = 10;
export const LOGIO_CONTROL_FLAGS = 12;
export const LOGIO_VP_INDEX = 14;
export const LOGIO_PORT_ID = 16;
export const LOGIO_RSP_SIZE = 19;
export const LOGIO_IO_PARAMETER = 20;
export const LOGIO_IO_PARAMETER_COUNT = 11;
/** control_flags bits 3:0. */
export const LCF_COMMAND_MASK = 0x000f;
export const LCF_COMMAND_PLOGI = 0x00;
export const LCF_COMMAND_PRLI = 0x01;
export const LCF_COMMAND_PDISC = 0x02;
export const LCF_COMMAND_ADISC = 0x03;
export const LCF_COMMAND_LOGO = 0x08;
export const LCF_COMMAND_PRLO = 0x09;
export const LCF_COMMAND_TPRLO = 0x0a;
export const LCF_COND_PLOGI = 0x0010;
export const LCF_IMPL_LOGO = 0x0010;
export const LCF_SKIP_PRLI = 0x0020;
export const LCF_NVME_PRLI = 0x0040;
export const LCF_EXPL_LOGO = 0x0040;
export const LCF_FREE_NPORT = 0x0080;
/** io_parameter[0] error sub-codes (qla_def.h LSC_SCODE_*). */
export const LSC_SCODE_NOLINK = 0x01;
export const LSC_SCODE_NOIOCB = 0x02;
export const LSC_SCODE_NOXCB = 0x03;
export const LSC_SCODE_CMD_FAILED = 0x04;
export const LSC_SCODE_NOFABRIC = 0x05;
export const LSC_SCODE_FW_NOT_READY = 0x07;
export const LSC_SCODE_NOT_LOGGED_IN = 0x09;
export const LSC_SCODE_NOPCB = 0x0a;
export const LSC_SCODE_ELS_REJECT = 0x18;
export const LSC_SCODE_CMD_PARAM_ERR = 0x19;
export const LSC_SCODE_PORTID_USED = 0x1a;
export const LSC_SCODE_NPORT_USED = 0x1b;
export const LSC_SCODE_NONPORT = 0x1c;
export const LSC_SCODE_LOGGED_IN = 0x1d;
export const LSC_SCODE_NOFLOGI_ACC = 0x1f;
/** io_parameter[0] on PLOGI/PRLI success: PRLI accept word 3 bits. */
export const LIO_PRLI_TARGET_FUNCTION = 0x10;
export const LIO_PRLI_INITIATOR_FUNCTION = 0x20;
/** io_parameter[9]/[10]: class 3 service parameters valid (non-zero). */
export const LIO_CLASS3_VALID_INDEX = 9;

/**
 * ct_entry_24xx (0x29):
 *   8 comp_status u16 | 10 nport_handle u16 | 12 cmd_dsd_count u16 | 14 vp_index u8
 *   16 timeout u16 | 20 rsp_dsd_count u16 | 32 rsp_byte_count u32 | 36 cmd_byte_count u32
 *   40 dsd[0] {u64 address, u32 length} (request) | 52 dsd[1] (response)
 */
export const CT_COMP_STATUS = 8;
export const CT_NPORT_HANDLE = 10;
export const CT_CMD_DSD_COUNT = 12;
export const CT_VP_INDEX = 14;
export const CT_TIMEOUT = 16;
export const CT_RSP_DSD_COUNT = 20;
export const CT_RSP_BYTE_COUNT = 32;
export const CT_CMD_BYTE_COUNT = 36;
export const CT_DSD_REQUEST = 40;
export const CT_DSD_RESPONSE = 52;
/** struct dsd64 within an IOCB. */
export const DSD64_ADDRESS = 0;
export const DSD64_LENGTH = 8;
export const DSD64_SIZE = 12;

/**
 * els_entry_24xx (0x53): 8 comp_status | 10 nport_handle | 12 tx_dsd_count | 14 vp_index
 *   22 opcode | 24 d_id[3] | 27 s_id[3] | 30 control_flags | 32 rx_byte_count | 36 tx_byte_count
 *   40 tx_address u64 | 48 tx_len | 52 rx_address u64 | 60 rx_len. Status: 32 total_byte_count,
 *   36/40/44 error_subcode_1..3.
 */
export const ELS_COMP_STATUS = 8;
export const ELS_NPORT_HANDLE = 10;
export const ELS_OPCODE = 22;
export const ELS_D_ID = 24;
export const ELS_CONTROL_FLAGS = 30;
export const ELS_TOTAL_BYTE_COUNT = 32;
export const ELS_ERROR_SUBCODE_1 = 36;
export const ELS_ERROR_SUBCODE_2 = 40;

/** mbx_24xx_entry (0x39): 8 mb[28] u16. */
export const MBX_IOCB_MB = 8;
export const MBX_IOCB_MB_COUNT = 28;

/** mrk_entry_24xx (0x04): 8 nport_handle | 10 modifier | 13 vp_index | 16 lun[8]. */
export const MARKER_NPORT_HANDLE = 8;
export const MARKER_MODIFIER = 10;
export const MARKER_VP_INDEX = 13;
export const MARKER_LUN = 16;

/**
 * tsk_mgmt_entry (0x14): 8 nport_handle | 12 delay | 14 timeout | 16 lun[8] (dword-swapped)
 *   24 control_flags u32 | 48 port_id[3] | 51 vp_index
 */
export const TMF_NPORT_HANDLE = 8;
export const TMF_DELAY = 12;
export const TMF_TIMEOUT = 14;
export const TMF_LUN = 16;
export const TMF_CONTROL_FLAGS = 24;
export const TMF_PORT_ID = 48;
export const TMF_VP_INDEX = 51;
export const TCF_CLEAR_ACA = 0x01;
export const TCF_TARGET_RESET = 0x02;
export const TCF_CLEAR_TASK_SET = 0x04;
export const TCF_ABORT_TASK_SET = 0x08;
export const TCF_LUN_RESET = 0x10;

/**
 * abort_entry_24xx (0x33): 8 nport_handle (request) / comp_status (response) | 10 options
 *   12 handle_to_abort u32 | 16 req_que_no u16 | 48 port_id[3] | 51 vp_index
 */
export const ABORT_NPORT_HANDLE = 8;
export const ABORT_COMP_STATUS = 8;
export const ABORT_OPTIONS = 10;
export const ABORT_HANDLE_TO_ABORT = 12;
export const ABORT_REQ_QUE_NO = 16;
export const ABORT_PORT_ID = 48;
export const ABORT_VP_INDEX = 51;

/**
 * Status Type 0 fields a TMF completion needs (sts_entry_24xx): 8 comp_status u16 |
 * 22 scsi_status u16 | 32 rsp_data_len u32 | 36 data[28]. The full layout is the ring engine's.
 */
export const TMF_STS_COMP_STATUS = 8;

/**
 * vp_rpt_id_entry_24xx (0x32), format 1 (fabric):
 *   8 vp_acquired | 9 vp_setup | 10 vp_idx | 11 vp_status | 12 port_id[3] (al_pa, area, domain)
 *   15 format | 16 vpstat1_subcode | 17 flags (topology << 1) | 18 fip_flags u16
 *   40 port_name[8] (F_Port) | 48 node_name[8] (fabric) | 56 bbcr u16
 */
export const RIDA_VP_ACQUIRED = 8;
export const RIDA_VP_SETUP = 9;
export const RIDA_VP_IDX = 10;
export const RIDA_VP_STATUS = 11;
export const RIDA_PORT_ID = 12;
export const RIDA_FORMAT = 15;
export const RIDA_F1_FLAGS = 17;
export const RIDA_F1_PORT_NAME = 40;
export const RIDA_F1_NODE_NAME = 48;
export const RIDA_F1_BBCR = 56;
export const RIDA_FORMAT_FABRIC = 1;
/** flags bits 3:1 = topology 3 (F_Port). */
export const RIDA_F1_FLAGS_TOPO_F = 0x06;

/** vp_ctrl_entry_24xx (0x30) / vp_config_entry_24xx (0x31): comp_status offsets. */
export const VP_CTRL_COMP_STATUS = 10;
export const VP_CONFIG_COMP_STATUS = 10;

/**
 * port_database_24xx (64 bytes, DMA'd by MBC 0x64):
 *   0 flags u16 | 2 current_login_state | 3 last_login_state | 4 hard_address[3]
 *   8 port_id[3] (domain, area, al_pa) | 11 sequence_id | 12 port_timer u16 | 14 nport_handle u16
 *   16 receive_data_size u16 | 20 prli_svc_param_word_0[2] | 22 prli_svc_param_word_3[2]
 *   24 port_name[8] | 32 node_name[8] | 48 secure_login
 */
export const PDB_SIZE = 64;
export const PDB_FLAGS = 0;
export const PDB_CURRENT_LOGIN_STATE = 2;
export const PDB_LAST_LOGIN_STATE = 3;
export const PDB_PORT_ID = 8;
export const PDB_NPORT_HANDLE = 14;
export const PDB_RECEIVE_DATA_SIZE = 16;
export const PDB_PRLI_WORD_0 = 20;
export const PDB_PRLI_WORD_3 = 22;
export const PDB_PORT_NAME = 24;
export const PDB_NODE_NAME = 32;
/** current_login_state low nibble (FCP): PDS_*. */
export const PDS_PLOGI_PENDING = 0x03;
export const PDS_PLOGI_COMPLETE = 0x04;
export const PDS_PRLI_PENDING = 0x05;
export const PDS_PRLI_COMPLETE = 0x06;
export const PDS_PORT_UNAVAILABLE = 0x07;

/** get_name_list_extended (40 bytes): same first 40 bytes as port_database_24xx, except
 *  port_id[3] at 8 is read by the driver's main path as (al_pa, area, domain). */
export const GNL_ENTRY_SIZE = 40;

/**
 * The Status Type 0 fields a Task Management completion fills (sts_entry_24xx; the full layout
 * belongs to the ring engine): 22 scsi_status u16 (BIT8 = response info valid),
 * 32 rsp_data_len u32, 36 data[28] (FCP_RSP_INFO, dword-swapped as the driver un-swaps it).
 */
export const TMF_STS_SCSI_STATUS = 22;
export const TMF_STS_RSP_DATA_LEN = 32;
export const TMF_STS_DATA = 36;
export const SS_RESPONSE_INFO_LEN_VALID = 0x0100;
export const FCP_RSP_INFO_LEN = 8;

/** ELS opcodes the ELS pass-through handler carries out. */
export const ELS_OPCODE_LOGO = 0x05;
