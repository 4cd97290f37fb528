/**
 * SAM-5 vocabulary that both ends of an I_T nexus speak: the initiator (src/fc/initiator.ts and
 * the HBA in src/isp) and the target (src/san/target-port.ts and the device server in src/scsi).
 * What each side does with it lives with that side; only the names are shared.
 */

/** Which way a command's data moves, seen from the initiator: Data-In is 'read', Data-Out 'write'. */
export type DataDirection = 'none' | 'read' | 'write';

/**
 * SAM-5 §7 task management functions. FCP-4 carries all but ABORT TASK in FCP_CMND's task
 * management flags; ABORT TASK is an ABTS of the command's exchange.
 */
export type TaskManagementFunction =
  | 'abort-task'
  | 'abort-task-set'
  | 'clear-task-set'
  | 'lun-reset'
  | 'target-reset'
  | 'clear-aca';

/** SAM-5 §5.3 status codes. */
export const Status = {
  GOOD: 0x00,
  CHECK_CONDITION: 0x02,
  BUSY: 0x08,
  RESERVATION_CONFLICT: 0x18,
  TASK_SET_FULL: 0x28,
  TASK_ABORTED: 0x40,
} as const;
