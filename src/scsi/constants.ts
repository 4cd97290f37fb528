/**
 * SCSI numbers used by the simulated storage array's device server: SPC-4 / SBC-3 operation codes,
 * sense keys and additional sense codes. Every number the target emits or checks is named here
 * once; the SAM-5 status codes both ends share are in sam.ts.
 */

/** SPC-4 §4.5.6 sense keys. */
export const SenseKey = {
  NO_SENSE: 0x0,
  NOT_READY: 0x2,
  MEDIUM_ERROR: 0x3,
  HARDWARE_ERROR: 0x4,
  ILLEGAL_REQUEST: 0x5,
  UNIT_ATTENTION: 0x6,
  DATA_PROTECT: 0x7,
  ABORTED_COMMAND: 0xb,
  MISCOMPARE: 0xe,
} as const;

/** An additional sense code with its qualifier (SPC-4 Annex D). */
export interface AdditionalSense {
  readonly asc: number;
  readonly ascq: number;
}
const as = (asc: number, ascq: number): AdditionalSense => ({ asc, ascq });

export const Asc = {
  NO_ADDITIONAL_SENSE: as(0x00, 0x00),
  LU_NOT_READY_INIT_REQUIRED: as(0x04, 0x02),
  WRITE_ERROR: as(0x0c, 0x00),
  UNRECOVERED_READ_ERROR: as(0x11, 0x00),
  PARAMETER_LIST_LENGTH_ERROR: as(0x1a, 0x00),
  INVALID_COMMAND_OPERATION_CODE: as(0x20, 0x00),
  MISCOMPARE_DURING_VERIFY: as(0x1d, 0x00),
  LBA_OUT_OF_RANGE: as(0x21, 0x00),
  INVALID_FIELD_IN_CDB: as(0x24, 0x00),
  LOGICAL_UNIT_NOT_SUPPORTED: as(0x25, 0x00),
  INVALID_FIELD_IN_PARAMETER_LIST: as(0x26, 0x00),
  INVALID_RELEASE_OF_PERSISTENT_RESERVATION: as(0x26, 0x04),
  POWER_ON_RESET: as(0x29, 0x00),
  BUS_DEVICE_RESET_FUNCTION_OCCURRED: as(0x29, 0x03),
  I_T_NEXUS_LOSS_OCCURRED: as(0x29, 0x07),
  MODE_PARAMETERS_CHANGED: as(0x2a, 0x01),
  RESERVATIONS_PREEMPTED: as(0x2a, 0x03),
  RESERVATIONS_RELEASED: as(0x2a, 0x04),
  REGISTRATIONS_PREEMPTED: as(0x2a, 0x05),
  CAPACITY_DATA_HAS_CHANGED: as(0x2a, 0x09),
  SAVING_PARAMETERS_NOT_SUPPORTED: as(0x39, 0x00),
  REPORTED_LUNS_DATA_HAS_CHANGED: as(0x3f, 0x0e),
  INTERNAL_TARGET_FAILURE: as(0x44, 0x00),
} as const;

/** Operation codes (SPC-4 Annex E / SBC-3 §5). */
export const Opcode = {
  TEST_UNIT_READY: 0x00,
  REQUEST_SENSE: 0x03,
  READ_6: 0x08,
  WRITE_6: 0x0a,
  INQUIRY: 0x12,
  MODE_SELECT_6: 0x15,
  MODE_SENSE_6: 0x1a,
  START_STOP_UNIT: 0x1b,
  READ_CAPACITY_10: 0x25,
  READ_10: 0x28,
  WRITE_10: 0x2a,
  VERIFY_10: 0x2f,
  SYNCHRONIZE_CACHE_10: 0x35,
  WRITE_SAME_10: 0x41,
  UNMAP: 0x42,
  MODE_SELECT_10: 0x55,
  MODE_SENSE_10: 0x5a,
  PERSISTENT_RESERVE_IN: 0x5e,
  PERSISTENT_RESERVE_OUT: 0x5f,
  READ_16: 0x88,
  WRITE_16: 0x8a,
  VERIFY_16: 0x8f,
  SYNCHRONIZE_CACHE_16: 0x91,
  WRITE_SAME_16: 0x93,
  SERVICE_ACTION_IN_16: 0x9e,
  REPORT_LUNS: 0xa0,
  MAINTENANCE_IN: 0xa3,
  READ_12: 0xa8,
  WRITE_12: 0xaa,
} as const;

/** Service actions carried in byte 1 bits 4..0. */
export const ServiceAction = {
  READ_CAPACITY_16: 0x10, // under SERVICE ACTION IN(16)
  REPORT_TARGET_PORT_GROUPS: 0x0a, // under MAINTENANCE IN
  REPORT_SUPPORTED_OPERATION_CODES: 0x0c, // under MAINTENANCE IN
} as const;

/** SPC-4 §4.3.4.1: the CDB length follows from the operation code's group (bits 7..5). */
export function cdbLengthForOpcode(opcode: number): number | null {
  switch (opcode >> 5) {
    case 0:
      return 6;
    case 1:
    case 2:
      return 10;
    case 4:
      return 16;
    case 5:
      return 12;
    default:
      return null; // group 3 (variable length / reserved), groups 6-7 vendor specific
  }
}

/** SPC-4 §6.4.2 peripheral qualifier / device type values used in INQUIRY byte 0. */
export const Peripheral = {
  DIRECT_ACCESS_BLOCK: 0x00,
  /** Qualifier 000b + type 1Eh: a well-known logical unit (SPC-4 §8.1). */
  WELL_KNOWN_LU: 0x1e,
  /** Qualifier 011b + type 1Fh: no logical unit can be supported at this LUN. */
  NO_LOGICAL_UNIT: 0x7f,
} as const;
