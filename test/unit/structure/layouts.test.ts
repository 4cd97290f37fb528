/**
 * Every fixed binary layout the project declares, checked the way QEMU's BUILD_BUG_ON size checks
 * (nvme _nvme_check_size) do: each field table below lists a struct's fields with the offset the
 * code declares, the offset and width the defining document gives, and the struct size. The test
 * checks that the code's offsets are the document's, that the fields are in increasing order,
 * inside the struct and non-overlapping, and that the struct size is the document's.
 *
 * The widths and spec offsets here are written by hand from the defining documents — qla2xxx
 * qla_fw.h / qla_def.h / qla_dsd.h for the ISP structures, the vfio-user protocol specification
 * for its messages, FC-FS / FC-GS for the frame header and CT preamble — and deliberately not
 * derived from the code they check. The vfio-user messages are declared as field tables
 * (src/util/struct.ts); their test walks each table's own fields as well. Union members (an entry's request and response views) are
 * listed as separate layouts.
 */
import { describe, expect, it } from 'vitest';
import {
  Abort,
  Cmd7,
  ContA64,
  Ct,
  Dsd64,
  Els,
  IOCB_SHIFT,
  IOCB_SIZE,
  IocbHeader,
  Logio,
  Marker,
  MAX_SENSE_BYTES,
  MbxIocb,
  Sts24,
  StsCont,
  TskMgmt,
  VpConfig,
  VpCtrl,
  VpRptId,
} from '../../../assembly/shared/iocb.js';
import {
  GNL_ENTRY_SIZE,
  PDB_CURRENT_LOGIN_STATE,
  PDB_FLAGS,
  PDB_LAST_LOGIN_STATE,
  PDB_NODE_NAME,
  PDB_NPORT_HANDLE,
  PDB_PORT_ID,
  PDB_PORT_NAME,
  PDB_PRLI_WORD_0,
  PDB_PRLI_WORD_3,
  PDB_RECEIVE_DATA_SIZE,
  PDB_SIZE,
} from '../../../assembly/shared/iocb-mgmt.js';
import {
  Capacity,
  CONTROL_BASE,
  CONTROL_SIZE,
  Ctl,
  LAYOUT_BASE,
  LAYOUT_END,
  Rec,
  RECORDS_BASE,
  RSP_FIFO_BASE,
  SCRATCH_BASE,
  Seg,
  SEGMENTS_BASE,
  WASM_PAGE_SIZE,
} from '../../../assembly/shared/ring-layout.js';
import { MAILBOX_COUNT } from '../../../src/isp/events.js';
import { FLASH_LAYOUT, FLASH_SECTOR_SIZE, FLASH_SIZE_2532 } from '../../../src/isp/flash.js';
import { ICB, ICB_SIZE } from '../../../src/isp/init-cb.js';
import { CT_IU } from '../../../src/isp/iocb/ct.js';
import { NVRAM, NVRAM_SIZE, VPD_SIZE } from '../../../src/isp/nvram.js';
import { ISP2532_REGISTER_BAR_SIZE } from '../../../src/isp/pci-identity.js';
import { REG } from '../../../src/isp/registers.js';
import { CT_HEADER_SIZE } from '../../../src/fc/ct.js';
import { encodeHeader, FC_HEADER_SIZE } from '../../../src/fc/frame.js';
import {
  DEVICE_INFO,
  DMA_MAP,
  DMA_UNMAP,
  HEADER,
  INFO_CAP_HEADER,
  IRQ_INFO,
  IRQ_SET,
  LAYOUTS,
  REGION_INFO,
  REGION_RW,
  REGION_WRITE_MULTI,
  REGION_WRITE_MULTI_ENTRY,
  VERSION,
} from '../../../src/vfio-user/protocol.js';
import { defineStruct, type FieldTable, type Struct, u32le, u64le } from '../../../src/util/struct.js';

type AnyStruct = Struct<FieldTable>;

/** [field, offset the code declares, offset in the defining document, width in bytes]. */
type Field = readonly [name: string, declared: number, spec: number, width: number];

interface Layout {
  name: string;
  /** Struct size: the code's constant where it has one, else the document's. */
  size: number;
  /** Size the defining document gives. */
  specSize: number;
  fields: readonly Field[];
}

/** A field whose declared offset is by construction the spec's (the same value written once). */
const f = (name: string, declared: number, width: number, spec = declared): Field => [name, declared, spec, width];

function check(l: Layout): void {
  expect(l.size, `${l.name}: size`).toBe(l.specSize);
  for (const [name, declared, spec] of l.fields) expect(declared, `${l.name}.${name}: offset`).toBe(spec);
  let end = 0;
  let prev = '(start)';
  for (const [name, off, , width] of l.fields) {
    expect(width, `${l.name}.${name}: width`).toBeGreaterThan(0);
    expect(off, `${l.name}.${name} overlaps ${prev} (ends at ${end})`).toBeGreaterThanOrEqual(end);
    expect(off + width, `${l.name}.${name}: past the struct size ${l.size}`).toBeLessThanOrEqual(l.size);
    end = off + width;
    prev = name;
  }
}

/** The 8-byte header every ring entry starts with (request_t / response_t). */
const HDR: readonly Field[] = [
  f('entry_type', IocbHeader.ENTRY_TYPE, 1, 0),
  f('entry_count', IocbHeader.ENTRY_COUNT, 1, 1),
  f('sys_define', IocbHeader.SYS_DEFINE, 1, 2),
  f('entry_status', IocbHeader.ENTRY_STATUS, 1, 3),
  f('handle', IocbHeader.HANDLE, 4, 4),
];
const entry = (name: string, fields: readonly Field[], withHandle = true): Layout => ({
  name,
  size: IOCB_SIZE,
  specSize: 64,
  fields: [...(withHandle ? HDR : HDR.slice(0, 4)), ...fields],
});

describe('ISP24xx/25xx ring entries (qla_fw.h; 64 bytes each)', () => {
  it('entry size and shift', () => {
    expect(IOCB_SIZE).toBe(64);
    expect(1 << IOCB_SHIFT).toBe(IOCB_SIZE);
    check({
      name: 'response_t',
      size: IOCB_SIZE,
      specSize: 64,
      fields: [...HDR, f('signature', IocbHeader.SIGNATURE, 4, 60)],
    });
  });

  it('struct dsd64 (qla_dsd.h): 12 bytes', () => {
    check({
      name: 'dsd64',
      size: Dsd64.SIZE,
      specSize: 12,
      fields: [f('address', Dsd64.ADDRESS, 8, 0), f('length', Dsd64.LENGTH, 4, 8)],
    });
  });

  const layouts: Layout[] = [
    entry('cmd_type_7', [
      f('nport_handle', Cmd7.NPORT_HANDLE, 2, 8),
      f('timeout', Cmd7.TIMEOUT, 2, 10),
      f('dseg_count', Cmd7.DSEG_COUNT, 2, 12),
      f('reserved_1', Cmd7.RESERVED_1, 2, 14),
      f('lun', Cmd7.LUN, Cmd7.LUN_SIZE, 16),
      f('task_mgmt_flags', Cmd7.TASK_MGMT_FLAGS, 2, 24),
      f('task', Cmd7.TASK, 1, 26),
      f('crn', Cmd7.CRN, 1, 27),
      f('fcp_cdb', Cmd7.FCP_CDB, Cmd7.FCP_CDB_SIZE, 28),
      f('byte_count', Cmd7.BYTE_COUNT, 4, 44),
      f('port_id', Cmd7.PORT_ID, 3, 48),
      f('vp_index', Cmd7.VP_INDEX, 1, 51),
      f('dsd', Cmd7.DSD, Dsd64.SIZE * Cmd7.INLINE_DSDS, 52),
    ]),
    entry('cont_a64_entry_t', [f('dsd[5]', ContA64.DSD, Dsd64.SIZE * ContA64.DSDS_PER_ENTRY, 4)], false),
    entry('sts_entry_24xx', [
      f('comp_status', Sts24.COMP_STATUS, 2, 8),
      f('ox_id', Sts24.OX_ID, 2, 10),
      f('residual_len', Sts24.RESIDUAL_LEN, 4, 12),
      f('reserved_1', Sts24.RESERVED_1, 2, 16),
      f('state_flags', Sts24.STATE_FLAGS, 2, 18),
      f('retry_delay', Sts24.RETRY_DELAY, 2, 20),
      f('scsi_status', Sts24.SCSI_STATUS, 2, 22),
      f('rsp_residual_count', Sts24.RSP_RESIDUAL_COUNT, 4, 24),
      f('sense_len', Sts24.SENSE_LEN, 4, 28),
      f('rsp_data_len', Sts24.RSP_DATA_LEN, 4, 32),
      f('data', Sts24.DATA, Sts24.DATA_SIZE, 36),
    ]),
    entry('sts_cont_entry_t', [f('data', StsCont.DATA, StsCont.DATA_SIZE, 4)], false),
    entry('mrk_entry_24xx', [
      f('nport_handle', Marker.NPORT_HANDLE, 2, 8),
      f('modifier', Marker.MODIFIER, 1, 10),
      f('vp_index', Marker.VP_INDEX, 1, 13),
      f('lun', Marker.LUN, 8, 16),
    ]),
    entry('tsk_mgmt_entry', [
      f('nport_handle', TskMgmt.NPORT_HANDLE, 2, 8),
      f('delay', TskMgmt.DELAY, 2, 12),
      f('timeout', TskMgmt.TIMEOUT, 2, 14),
      f('lun', TskMgmt.LUN, 8, 16),
      f('control_flags', TskMgmt.CONTROL_FLAGS, 4, 24),
      f('port_id', TskMgmt.PORT_ID, 3, 48),
      f('vp_index', TskMgmt.VP_INDEX, 1, 51),
    ]),
    entry('abort_entry_24xx (request)', [
      f('nport_handle', Abort.NPORT_HANDLE, 2, 8),
      f('options', Abort.OPTIONS, 2, 10),
      f('handle_to_abort', Abort.HANDLE_TO_ABORT, 4, 12),
      f('req_que_no', Abort.REQ_QUE_NO, 2, 16),
      f('port_id', Abort.PORT_ID, 3, 48),
      f('vp_index', Abort.VP_INDEX, 1, 51),
    ]),
    entry('abort_entry_24xx (completion)', [f('comp_status', Abort.COMP_STATUS, 2, 8)]),
    entry('logio_entry_24xx', [
      f('comp_status', Logio.COMP_STATUS, 2, 8),
      f('nport_handle', Logio.NPORT_HANDLE, 2, 10),
      f('control_flags', Logio.CONTROL_FLAGS, 2, 12),
      f('vp_index', Logio.VP_INDEX, 1, 14),
      f('port_id', Logio.PORT_ID, 3, 16),
      f('rsp_size', Logio.RSP_SIZE, 1, 19),
      f('io_parameter', Logio.IO_PARAMETER, 4 * Logio.IO_PARAMETER_COUNT, 20),
    ]),
    entry('ct_entry_24xx', [
      f('comp_status', Ct.COMP_STATUS, 2, 8),
      f('nport_handle', Ct.NPORT_HANDLE, 2, 10),
      f('cmd_dsd_count', Ct.CMD_DSD_COUNT, 2, 12),
      f('vp_index', Ct.VP_INDEX, 1, 14),
      f('timeout', Ct.TIMEOUT, 2, 16),
      f('rsp_dsd_count', Ct.RSP_DSD_COUNT, 2, 20),
      f('rsp_byte_count', Ct.RSP_BYTE_COUNT, 4, 32),
      f('cmd_byte_count', Ct.CMD_BYTE_COUNT, 4, 36),
      f('dsd[0]', Ct.DSD0, Dsd64.SIZE, 40),
      f('dsd[1]', Ct.DSD1, Dsd64.SIZE, 52),
    ]),
    entry('els_entry_24xx', [
      f('comp_status', Els.COMP_STATUS, 2, 8),
      f('nport_handle', Els.NPORT_HANDLE, 2, 10),
      f('tx_dsd_count', Els.TX_DSD_COUNT, 2, 12),
      f('vp_index', Els.VP_INDEX, 1, 14),
      f('sof_type', Els.SOF_TYPE, 1, 15),
      f('rx_xchg_address', Els.RX_XCHG_ADDRESS, 4, 16),
      f('rx_dsd_count', Els.RX_DSD_COUNT, 2, 20),
      f('opcode', Els.OPCODE, 1, 22),
      f('d_id', Els.D_ID, 3, 24),
      f('s_id', Els.S_ID, 3, 27),
      f('control_flags', Els.CONTROL_FLAGS, 2, 30),
      f('rx_byte_count', Els.RX_BYTE_COUNT, 4, 32),
      f('tx_byte_count', Els.TX_BYTE_COUNT, 4, 36),
      f('tx_address', Els.TX_ADDRESS, 8, 40),
      f('tx_len', Els.TX_LEN, 4, 48),
      f('rx_address', Els.RX_ADDRESS, 8, 52),
      f('rx_len', Els.RX_LEN, 4, 60),
    ]),
    entry('els_sts_entry_24xx', [
      f('comp_status', Els.COMP_STATUS, 2, 8),
      f('total_byte_count', Els.TOTAL_BYTE_COUNT, 4, 32),
      f('error_subcode_1', Els.ERROR_SUBCODE_1, 4, 36),
      f('error_subcode_2', Els.ERROR_SUBCODE_2, 4, 40),
      f('error_subcode_3', Els.ERROR_SUBCODE_3, 4, 44),
    ]),
    entry('mbx_24xx_entry', [f('mb', MbxIocb.MB, 2 * MbxIocb.MB_COUNT, 8)]),
    entry('vp_ctrl_entry_24xx', [
      f('vp_idx_failed', VpCtrl.VP_IDX_FAILED, 2, 8),
      f('comp_status', VpCtrl.COMP_STATUS, 2, 10),
      f('command', VpCtrl.COMMAND, 2, 12),
      f('vp_count', VpCtrl.VP_COUNT, 2, 14),
      f('vp_idx_map', VpCtrl.VP_IDX_MAP, VpCtrl.VP_IDX_MAP_SIZE, 16),
    ]),
    entry('vp_config_entry_24xx', [
      f('flags', VpConfig.FLAGS, 2, 8),
      f('comp_status', VpConfig.COMP_STATUS, 2, 10),
      f('command', VpConfig.COMMAND, 1, 12),
      f('vp_count', VpConfig.VP_COUNT, 1, 13),
      f('vp_index1', VpConfig.VP_INDEX1, 1, 14),
      f('vp_index2', VpConfig.VP_INDEX2, 1, 15),
      f('options_idx1', VpConfig.OPTIONS_IDX1, 1, 16),
      f('hard_address_idx1', VpConfig.HARD_ADDRESS_IDX1, 1, 17),
      f('port_name_idx1', VpConfig.PORT_NAME_IDX1, 8, 20),
      f('node_name_idx1', VpConfig.NODE_NAME_IDX1, 8, 28),
      f('options_idx2', VpConfig.OPTIONS_IDX2, 1, 36),
      f('hard_address_idx2', VpConfig.HARD_ADDRESS_IDX2, 1, 37),
      f('port_name_idx2', VpConfig.PORT_NAME_IDX2, 8, 40),
      f('node_name_idx2', VpConfig.NODE_NAME_IDX2, 8, 48),
    ]),
    entry(
      'vp_rpt_id_entry_24xx (format 1)',
      [
        f('vp_acquired', VpRptId.VP_ACQUIRED, 1, 8),
        f('vp_setup', VpRptId.VP_SETUP, 1, 9),
        f('vp_idx', VpRptId.VP_IDX, 1, 10),
        f('vp_status', VpRptId.VP_STATUS, 1, 11),
        f('port_id', VpRptId.PORT_ID, 3, 12),
        f('format', VpRptId.FORMAT, 1, 15),
        f('vpstat1_subcode', VpRptId.F1_VPSTAT1_SUBCODE, 1, 16),
        f('flags', VpRptId.F1_FLAGS, 1, 17),
        f('fip_flags', VpRptId.F1_FIP_FLAGS, 2, 18),
        f('ls_rjt_vendor', VpRptId.F1_LS_RJT_VENDOR, 1, 32),
        f('ls_rjt_explanation', VpRptId.F1_LS_RJT_EXPLANATION, 1, 33),
        f('ls_rjt_reason', VpRptId.F1_LS_RJT_REASON, 1, 34),
        f('flogi_acc_payload_size', VpRptId.F1_FLOGI_ACC_PAYLOAD_SIZE, 2, 38),
        f('port_name', VpRptId.F1_PORT_NAME, 8, 40),
        f('node_name', VpRptId.F1_NODE_NAME, 8, 48),
        f('bbcr', VpRptId.F1_BBCR, 2, 56),
      ],
      false,
    ),
  ];
  it.each(layouts.map((l) => [l.name, l] as const))('%s', (_, l) => check(l));

  it('sense fits a status entry plus two continuations (qla2x00_handle_sense caps at 96)', () => {
    expect(MAX_SENSE_BYTES).toBe(96);
    expect(Sts24.DATA_SIZE + 2 * StsCont.DATA_SIZE).toBeGreaterThanOrEqual(MAX_SENSE_BYTES);
  });
});

describe('ISP DMA structures and the register file (qla_fw.h, qla_def.h)', () => {
  it('port_database_24xx: 64 bytes; get_name_list_extended: its first 40', () => {
    check({
      name: 'port_database_24xx',
      size: PDB_SIZE,
      specSize: 64,
      fields: [
        f('flags', PDB_FLAGS, 2, 0),
        f('current_login_state', PDB_CURRENT_LOGIN_STATE, 1, 2),
        f('last_login_state', PDB_LAST_LOGIN_STATE, 1, 3),
        f('port_id', PDB_PORT_ID, 3, 8),
        f('nport_handle', PDB_NPORT_HANDLE, 2, 14),
        f('receive_data_size', PDB_RECEIVE_DATA_SIZE, 2, 16),
        f('prli_svc_param_word_0', PDB_PRLI_WORD_0, 2, 20),
        f('prli_svc_param_word_3', PDB_PRLI_WORD_3, 2, 22),
        f('port_name', PDB_PORT_NAME, 8, 24),
        f('node_name', PDB_NODE_NAME, 8, 32),
      ],
    });
    expect(GNL_ENTRY_SIZE).toBe(40);
    expect(PDB_NODE_NAME + 8).toBeLessThanOrEqual(GNL_ENTRY_SIZE);
  });

  it('init_cb_24xx: 128 bytes', () => {
    check({
      name: 'init_cb_24xx',
      size: ICB_SIZE,
      specSize: 128,
      fields: [
        f('version', ICB.VERSION, 2, 0),
        f('frame_payload_size', ICB.FRAME_PAYLOAD_SIZE, 2, 4),
        f('port_name', ICB.PORT_NAME, 8, 12),
        f('node_name', ICB.NODE_NAME, 8, 20),
        f('response_q_length', ICB.RESPONSE_Q_LENGTH, 2, 36),
        f('request_q_length', ICB.REQUEST_Q_LENGTH, 2, 38),
        f('request_q_address', ICB.REQUEST_Q_ADDRESS, 8, 44),
        f('response_q_address', ICB.RESPONSE_Q_ADDRESS, 8, 52),
        f('firmware_options_1', ICB.FIRMWARE_OPTIONS_1, 4, 92),
        f('firmware_options_2', ICB.FIRMWARE_OPTIONS_2, 4, 96),
        f('firmware_options_3', ICB.FIRMWARE_OPTIONS_3, 4, 100),
      ],
    });
  });

  it('nvram_24xx: 512 bytes', () => {
    check({
      name: 'nvram_24xx',
      size: NVRAM_SIZE,
      specSize: 512,
      fields: [
        f('id', NVRAM.ID, 4, 0),
        f('nvram_version', NVRAM.NVRAM_VERSION, 2, 4),
        f('version', NVRAM.VERSION, 2, 8),
        f('frame_payload_size', NVRAM.FRAME_PAYLOAD_SIZE, 2, 12),
        f('execution_throttle', NVRAM.EXECUTION_THROTTLE, 2, 14),
        f('port_name', NVRAM.PORT_NAME, 8, 20),
        f('node_name', NVRAM.NODE_NAME, 8, 28),
        f('login_retry_count', NVRAM.LOGIN_RETRY_COUNT, 2, 36),
        f('login_timeout', NVRAM.LOGIN_TIMEOUT, 2, 42),
        f('firmware_options_1', NVRAM.FIRMWARE_OPTIONS_1, 4, 44),
        f('firmware_options_2', NVRAM.FIRMWARE_OPTIONS_2, 4, 48),
        f('firmware_options_3', NVRAM.FIRMWARE_OPTIONS_3, 4, 52),
        f('host_p', NVRAM.HOST_P, 4, 256),
        f('reset_delay', NVRAM.RESET_DELAY, 1, 328),
        f('max_luns_per_target', NVRAM.MAX_LUNS_PER_TARGET, 2, 336),
        f('port_down_retry_count', NVRAM.PORT_DOWN_RETRY_COUNT, 2, 340),
        f('link_down_timeout', NVRAM.LINK_DOWN_TIMEOUT, 2, 342),
        f('model_name', NVRAM.MODEL_NAME, NVRAM.MODEL_NAME_LEN, 480),
        f('subsystem_vendor_id', NVRAM.SUBSYSTEM_VENDOR_ID, 2, 504),
        f('subsystem_device_id', NVRAM.SUBSYSTEM_DEVICE_ID, 2, 506),
        f('checksum', NVRAM.CHECKSUM, 4, 508),
      ],
    });
    expect(NVRAM.MODEL_NAME_LEN).toBe(16);
  });

  it('flash: VPD and NVRAM of function 0 where the 25xx defaults put them, inside the host-owned sector', () => {
    // qla_sup.c 25xx defaults: flt_region_vpd_nvram 0x48000, vpd 0x48000, nvram 0x48080 (dwords).
    expect(FLASH_LAYOUT.VPD_NVRAM_SECTOR).toBe(0x48000 * 4);
    expect(FLASH_LAYOUT.VPD_FUNC0).toBe(0x48000 * 4);
    expect(FLASH_LAYOUT.NVRAM_FUNC0).toBe(0x48080 * 4);
    expect(FLASH_LAYOUT.NVRAM_FUNC0).toBe(FLASH_LAYOUT.VPD_FUNC0 + VPD_SIZE);
    expect(FLASH_LAYOUT.NVRAM_FUNC0 + NVRAM_SIZE).toBeLessThanOrEqual(
      FLASH_LAYOUT.VPD_NVRAM_SECTOR + FLASH_SECTOR_SIZE,
    );
    expect(FLASH_LAYOUT.VPD_NVRAM_SECTOR % FLASH_SECTOR_SIZE).toBe(0);
    expect(FLASH_LAYOUT.VPD_NVRAM_SECTOR + FLASH_SECTOR_SIZE).toBeLessThanOrEqual(FLASH_SIZE_2532);
  });

  it('device_reg_24xx: 256 bytes at the start of the 16 KiB register BAR', () => {
    const dword = (name: string, declared: number, spec: number) => f(name, declared, 4, spec);
    check({
      name: 'device_reg_24xx',
      size: REG.SIZE,
      specSize: 256,
      fields: [
        dword('flash_addr', REG.FLASH_ADDR, 0x00),
        dword('flash_data', REG.FLASH_DATA, 0x04),
        dword('ctrl_status', REG.CTRL_STATUS, 0x08),
        dword('ictrl', REG.ICTRL, 0x0c),
        dword('istatus', REG.ISTATUS, 0x10),
        dword('req_q_in', REG.REQ_Q_IN, 0x1c),
        dword('req_q_out', REG.REQ_Q_OUT, 0x20),
        dword('rsp_q_in', REG.RSP_Q_IN, 0x24),
        dword('rsp_q_out', REG.RSP_Q_OUT, 0x28),
        dword('preq_q_in', REG.PREQ_Q_IN, 0x2c),
        dword('preq_q_out', REG.PREQ_Q_OUT, 0x30),
        dword('atio_q_in', REG.ATIO_Q_IN, 0x3c),
        dword('atio_q_out', REG.ATIO_Q_OUT, 0x40),
        dword('host_status', REG.HOST_STATUS, 0x44),
        dword('hccr', REG.HCCR, 0x48),
        dword('gpiod', REG.GPIOD, 0x4c),
        dword('gpioe', REG.GPIOE, 0x50),
        dword('iobase_addr', REG.IOBASE_ADDR, 0x54),
        f('mailbox0..31', REG.MAILBOX0, 2 * MAILBOX_COUNT, 0x80),
        dword('iobase_window', REG.IOBASE_WINDOW, 0xc0),
        dword('iobase_c4', REG.IOBASE_C4, 0xc4),
        dword('iobase_c8', REG.IOBASE_C8, 0xc8),
        dword('iobase_q', REG.IOBASE_Q, 0xe4),
        dword('iobase_select', REG.IOBASE_SELECT, 0xf0),
        dword('iobase_sdata', REG.IOBASE_SDATA, 0xfc),
      ],
    });
    expect(MAILBOX_COUNT).toBe(32);
    expect(REG.MAILBOX_END).toBe(REG.MAILBOX0 + 2 * MAILBOX_COUNT);
    expect(ISP2532_REGISTER_BAR_SIZE).toBe(0x4000);
    expect(REG.SIZE).toBeLessThanOrEqual(ISP2532_REGISTER_BAR_SIZE);
  });
});

describe('ring engine linear memory (assembly/shared/ring-layout.ts)', () => {
  it('region bases follow from the control block and the capacities, in order, within the pages', () => {
    expect(CONTROL_BASE).toBe(LAYOUT_BASE);
    expect(SCRATCH_BASE).toBe(CONTROL_BASE + CONTROL_SIZE);
    expect(RECORDS_BASE).toBe(SCRATCH_BASE + Capacity.SCRATCH_ENTRIES * IOCB_SIZE);
    expect(SEGMENTS_BASE).toBe(RECORDS_BASE + Capacity.MAX_RECORDS * Rec.SIZE);
    expect(RSP_FIFO_BASE).toBe(SEGMENTS_BASE + Capacity.MAX_SEGMENTS * Seg.SIZE);
    expect(LAYOUT_END).toBe(RSP_FIFO_BASE + Capacity.RSP_FIFO_ENTRIES * IOCB_SIZE);
    expect(WASM_PAGE_SIZE).toBe(65536);
    expect(LAYOUT_END).toBeLessThanOrEqual(2 * WASM_PAGE_SIZE); // asconfig initialMemory: 2 pages
  });

  it('capacities cover what one consume call can produce', () => {
    // A Command Type 7 carries 1 DSD, each continuation 5: at most 5 per scratch entry.
    expect(Capacity.MAX_SEGMENTS).toBeGreaterThanOrEqual(Capacity.SCRATCH_ENTRIES * ContA64.DSDS_PER_ENTRY);
    expect(Capacity.MAX_RECORDS).toBeGreaterThanOrEqual(Capacity.SCRATCH_ENTRIES);
    expect(Capacity.SENSE_STAGING).toBeGreaterThanOrEqual(MAX_SENSE_BYTES);
  });

  it('control block', () => {
    const u32 = (name: string, off: number) => f(name, off, 4);
    check({
      name: 'control block',
      size: CONTROL_SIZE,
      specSize: 0x400,
      fields: [
        u32('req_entries', Ctl.REQ_ENTRIES),
        u32('rsp_entries', Ctl.RSP_ENTRIES),
        u32('max_handle_index', Ctl.MAX_HANDLE_INDEX),
        u32('max_queue_id', Ctl.MAX_QUEUE_ID),
        u32('max_vp_index', Ctl.MAX_VP_INDEX),
        u32('max_transfer', Ctl.MAX_TRANSFER),
        u32('configured', Ctl.CONFIGURED),
        u32('consumed_entries', Ctl.CONSUMED_ENTRIES),
        u32('stop_reason', Ctl.STOP_REASON),
        u32('segments_used', Ctl.SEGMENTS_USED),
        u32('fifo_head', Ctl.FIFO_HEAD),
        u32('fifo_count', Ctl.FIFO_COUNT),
        u32('st_handle', Ctl.ST_HANDLE),
        u32('st_residual', Ctl.ST_RESIDUAL),
        u32('st_sense_len', Ctl.ST_SENSE_LEN),
        f('st_comp_status', Ctl.ST_COMP_STATUS, 2),
        f('st_ox_id', Ctl.ST_OX_ID, 2),
        f('st_state_flags', Ctl.ST_STATE_FLAGS, 2),
        f('st_retry_delay', Ctl.ST_RETRY_DELAY, 2),
        f('st_scsi_status', Ctl.ST_SCSI_STATUS, 1),
        f('st_residual_kind', Ctl.ST_RESIDUAL_KIND, 1),
        f('st_rsp_info_len', Ctl.ST_RSP_INFO_LEN, 1),
        f('st_rsp_info', Ctl.ST_RSP_INFO, Capacity.RSP_INFO_STAGING),
        f('st_sense', Ctl.ST_SENSE, Capacity.SENSE_STAGING),
        f('raw_staging', Ctl.RAW_STAGING, IOCB_SIZE),
      ],
    });
  });

  it('decoded record (64 bytes) and segment entry (16 bytes)', () => {
    check({
      name: 'record',
      size: Rec.SIZE,
      specSize: 64,
      fields: [
        f('kind', Rec.KIND, 1),
        f('entry_type', Rec.ENTRY_TYPE, 1),
        f('entries', Rec.ENTRIES, 1),
        f('entry_status', Rec.ENTRY_STATUS, 1),
        f('handle', Rec.HANDLE, 4),
        f('nport_handle', Rec.NPORT_HANDLE, 2),
        f('vp_index', Rec.VP_INDEX, 1),
        f('direction', Rec.DIRECTION, 1),
        f('byte_count', Rec.BYTE_COUNT, 4),
        f('lun', Rec.LUN, Cmd7.LUN_SIZE),
        f('cdb', Rec.CDB, Cmd7.FCP_CDB_SIZE),
        f('port_id', Rec.PORT_ID, 4),
        f('task_attribute', Rec.TASK_ATTRIBUTE, 1),
        f('priority', Rec.PRIORITY, 1),
        f('reason', Rec.REASON, 1),
        f('flags', Rec.FLAGS, 1),
        f('seg_start', Rec.SEG_START, 4),
        f('seg_count', Rec.SEG_COUNT, 4),
        f('scratch_index', Rec.SCRATCH_INDEX, 4),
      ],
    });
    check({
      name: 'segment',
      size: Seg.SIZE,
      specSize: 16,
      fields: [f('address', Seg.ADDRESS, 8), f('length', Seg.LENGTH, 4)],
    });
  });
});

describe('vfio-user messages (vfio-user protocol specification; little-endian)', () => {
  /** [spec field name, table field, spec offset, spec width]: written from the spec, not the code. */
  type SpecField = readonly [spec: string, key: string, offset: number, width: number];
  const u32 = (spec: string, key: string, off: number): SpecField => [spec, key, off, 4];
  const u64 = (spec: string, key: string, off: number): SpecField => [spec, key, off, 8];
  const spec: readonly [AnyStruct, number, readonly SpecField[]][] = [
    [
      HEADER,
      16,
      [
        ['message id', 'id', 0, 2],
        ['command', 'command', 2, 2],
        u32('message size', 'size', 4),
        u32('flags', 'flags', 8),
        u32('error', 'error', 12),
      ],
    ],
    [
      VERSION,
      4,
      [
        ['major', 'major', 0, 2],
        ['minor', 'minor', 2, 2],
      ],
    ],
    [
      DMA_MAP,
      32,
      [
        u32('argsz', 'argsz', 0),
        u32('flags', 'flags', 4),
        u64('offset', 'offset', 8),
        u64('address', 'address', 16),
        u64('size', 'size', 24),
      ],
    ],
    [
      DMA_UNMAP,
      24,
      [u32('argsz', 'argsz', 0), u32('flags', 'flags', 4), u64('address', 'address', 8), u64('size', 'size', 16)],
    ],
    [
      DEVICE_INFO,
      16,
      [
        u32('argsz', 'argsz', 0),
        u32('flags', 'flags', 4),
        u32('num_regions', 'numRegions', 8),
        u32('num_irqs', 'numIrqs', 12),
      ],
    ],
    [
      REGION_INFO,
      32,
      [
        u32('argsz', 'argsz', 0),
        u32('flags', 'flags', 4),
        u32('index', 'index', 8),
        u32('cap_offset', 'capOffset', 12),
        u64('size', 'size', 16),
        u64('offset', 'offset', 24),
      ],
    ],
    [
      IRQ_INFO,
      16,
      [u32('argsz', 'argsz', 0), u32('flags', 'flags', 4), u32('index', 'index', 8), u32('count', 'count', 12)],
    ],
    [
      IRQ_SET,
      20,
      [
        u32('argsz', 'argsz', 0),
        u32('flags', 'flags', 4),
        u32('index', 'index', 8),
        u32('start', 'start', 12),
        u32('count', 'count', 16),
      ],
    ],
    [REGION_RW, 16, [u64('offset', 'offset', 0), u32('region', 'region', 8), u32('count', 'count', 12)]],
    [REGION_WRITE_MULTI, 8, [u64('wr_cnt', 'wrCnt', 0)]],
    [
      REGION_WRITE_MULTI_ENTRY,
      24,
      [u64('offset', 'offset', 0), u32('region', 'region', 8), u32('count', 'count', 12), ['data', 'data', 16, 8]],
    ],
    [INFO_CAP_HEADER, 8, [['id', 'id', 0, 2], ['version', 'version', 2, 2], u32('next', 'next', 4)]],
  ];

  it.each(spec.map(([s, size, fields]) => [s.name, s, size, fields] as const))('%s', (_, s, size, fields) => {
    // The table's own fields, as declared, must be in order, inside the struct and disjoint ...
    check({ name: s.name, size: s.SIZEOF, specSize: size, fields: s.fields.map((x) => f(x.name, x.offset, x.width)) });
    // ... and be exactly the spec's fields, at the spec's offsets and widths.
    expect(s.fields.map((x) => x.name)).toEqual(fields.map(([, key]) => key));
    for (const [name, key, off, width] of fields) {
      const x = s.fields.find((y) => y.name === key)!;
      expect([x.offset, x.width], `${s.name}.${name}`).toEqual([off, width]);
      expect((s.OFFSET as Record<string, number>)[key], `${s.name}.${name}: OFFSET`).toBe(off);
    }
  });

  it('every table protocol.ts declares is checked above', () => {
    expect(new Set(LAYOUTS)).toEqual(new Set(spec.map(([s]) => s)));
  });

  it('defineStruct refuses a table whose fields overlap, go backwards or run past the size', () => {
    expect(() => defineStruct('overlap', 8, { a: u32le(0), b: u32le(2) })).toThrow(/overlaps/);
    expect(() => defineStruct('backwards', 8, { a: u32le(4), b: u32le(0) })).toThrow(/overlaps/);
    expect(() => defineStruct('too small', 8, { a: u32le(0), b: u64le(4) })).toThrow(/past the struct size/);
    expect(() => defineStruct('negative', 8, { a: u32le(-1) })).toThrow(/bad offset/);
  });
});

describe('Fibre Channel (FC-FS frame header, FC-GS CT_IU preamble)', () => {
  it('FC-2 frame header: 24 bytes, every field at its FC-FS offset', () => {
    expect(FC_HEADER_SIZE).toBe(24);
    // The offsets are private to frame.ts: encode distinct values and find them at the spec offsets.
    const b = encodeHeader({
      rCtl: 0x11,
      dId: 0x222324,
      csCtl: 0x33,
      sId: 0x444546,
      type: 0x55,
      fCtl: 0x666768,
      seqId: 0x77,
      dfCtl: 0x88,
      seqCnt: 0x999a,
      oxId: 0xaaab,
      rxId: 0xbbbc,
      parameter: 0xcccdcecf,
    });
    expect(b.length).toBe(FC_HEADER_SIZE);
    expect(Buffer.from(b).toString('hex')).toBe(
      '11' + '222324' + '33' + '444546' + '55' + '666768' + '77' + '88' + '999a' + 'aaab' + 'bbbc' + 'cccdcecf',
    );
  });

  it('CT_IU preamble: 16 bytes, one size for the firmware model and the FC stack', () => {
    expect(CT_HEADER_SIZE).toBe(16);
    expect(CT_IU.PREAMBLE_SIZE).toBe(CT_HEADER_SIZE);
    check({
      name: 'CT_IU preamble (as the firmware model writes a reject)',
      size: CT_IU.PREAMBLE_SIZE,
      specSize: 16,
      fields: [
        f('command/response code', CT_IU.COMMAND_RESPONSE, 2, 8),
        f('reason code', CT_IU.REASON_CODE, 1, 13),
        f('explanation', CT_IU.EXPLANATION, 1, 14),
      ],
    });
  });
});
