/**
 * Field values and DMA structures of the ISP24xx/25xx management IOCBs that the firmware model
 * handles in TypeScript (qla2xxx 10.02.x qla_def.h / qla_fw.h).
 * The entry layouts themselves (Logio, Ct, Els, MbxIocb, Marker, TskMgmt, Abort, VpRptId, Sts24 …)
 * are in iocb.ts and are not repeated here; this file only adds what they do not define.
 *
 * Plain numeric constants so that both TypeScript and AssemblyScript can import them.
 */

/** logio_entry_24xx.control_flags bits 3:0: the command (qla_fw.h LCF_COMMAND_*). */
export const LCF_COMMAND_MASK = 0x000f;
export const LCF_COMMAND_PLOGI = 0x00;
export const LCF_COMMAND_PRLI = 0x01;
export const LCF_COMMAND_PDISC = 0x02;
export const LCF_COMMAND_ADISC = 0x03;
export const LCF_COMMAND_LOGO = 0x08;
export const LCF_COMMAND_PRLO = 0x09;
export const LCF_COMMAND_TPRLO = 0x0a;
/** Modifiers (meaning depends on the command). */
export const LCF_COND_PLOGI = 0x0010;
export const LCF_IMPL_LOGO = 0x0010;
export const LCF_SKIP_PRLI = 0x0020;
export const LCF_NVME_PRLI = 0x0040;
export const LCF_EXPL_LOGO = 0x0040;
export const LCF_FREE_NPORT = 0x0080;

/** logio io_parameter[0] error sub-codes with comp_status CS_LOGIO_ERROR (qla_def.h LSC_SCODE_*). */
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
/** io_parameter index whose non-zero value tells the driver class 3 is supported ([9]/[10]). */
export const LIO_CLASS3_VALID_INDEX = 9;

/** vp_rpt_id_entry_24xx format 1 (fabric); flags bits 3:1 = topology 3 (F_Port) → 0x06. */
export const RIDA_FORMAT_FABRIC = 1;
export const RIDA_F1_FLAGS_TOPO_F = 0x06;

/** FCP_RSP_INFO length a TMF completion reports (rsp_data_len; RSP_CODE in byte 3). */
export const FCP_RSP_INFO_LEN = 8;

/** ELS opcode the ELS pass-through handler carries out (explicit LOGO). */
export const ELS_OPCODE_LOGO = 0x05;

/**
 * port_database_24xx (64 bytes, DMA'd by MBC 0x64):
 *
 *   0 flags u16 │2 cur_state│3 last_state│4 hard_address[3]│7 rsvd│8 port_id[3] dom,area,al_pa│
 *   11 seq_id│12 port_timer u16│14 nport_handle u16│16 receive_data_size u16│18 rsvd│
 *   20 prli_svc_param_word_0[2]│22 prli_svc_param_word_3[2]│24 port_name[8]│32 node_name[8]│
 *   40 rsvd[8]│48 secure_login│49 rsvd[15]
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
/** current_login_state low nibble (FCP), qla_def.h PDS_*. */
export const PDS_PLOGI_PENDING = 0x03;
export const PDS_PLOGI_COMPLETE = 0x04;
export const PDS_PRLI_PENDING = 0x05;
export const PDS_PRLI_COMPLETE = 0x06;
export const PDS_PORT_UNAVAILABLE = 0x07;

/**
 * get_name_list_extended (40 bytes, MBC 0x75 with BIT2): the first 40 bytes of the port database
 * layout, except that the driver's main path reads port_id[3] at 8 as (al_pa, area, domain).
 */
export const GNL_ENTRY_SIZE = 40;
/** MBC 0x75 mb1 BIT2: extended (40-byte) entries. */
export const GNL_OPTION_EXTENDED = 0x0004;
