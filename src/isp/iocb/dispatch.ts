/**
 * Request-entry dispatcher of the emulated ISP2532 firmware (isp25xx.md §9.5): one handler per
 * IOCB type; unknown types and malformed entries are echoed with entry_status set, which
 * qla2xxx 10.02.x qla2x00_error_entry turns into DID_ERROR for the command with that handle.
 */
import {
  IOCB_ENTRY_COUNT,
  IOCB_ENTRY_STATUS,
  IOCB_ENTRY_TYPE,
  IOCB_TYPE_ABORT,
  IOCB_TYPE_CMD_TYPE_7,
  IOCB_TYPE_CT,
  IOCB_TYPE_ELS,
  IOCB_TYPE_LOGINOUT,
  IOCB_TYPE_MARKER,
  IOCB_TYPE_MBX,
  IOCB_TYPE_TSK_MGMT,
  IOCB_TYPE_VP_CONFIG,
  IOCB_TYPE_VP_CTRL,
  RF_INV_E_COUNT,
  RF_INV_E_TYPE,
} from '../../../assembly/shared/iocb-mgmt.js';
import type { IspFirmware } from '../firmware.js';
import { declined, type IocbPath } from './common.js';
import { handleCtPassThrough } from './ct.js';
import { handleElsPassThrough } from './els.js';
import { handleLoginLogout } from './logio.js';
import { handleMailboxIocb } from './mbx.js';
import { handleAbort, handleMarker, handleTaskManagement } from './task.js';

/**
 * Handles one copied-in request entry; resolves with the completion entry (64 bytes) or null
 * when none is due (skip-handle marker, or a command whose completion is posted later).
 */
export async function handleIocb(fw: IspFirmware, entry: Uint8Array, path: IocbPath): Promise<Uint8Array | null> {
  const type = entry[IOCB_ENTRY_TYPE]!;
  if (entry[IOCB_ENTRY_STATUS]! & RF_INV_E_COUNT) return declined(entry, RF_INV_E_COUNT);
  if (type !== IOCB_TYPE_CMD_TYPE_7 && entry[IOCB_ENTRY_COUNT] !== 1) {
    fw.guestError('iocb_err_entry_count', { type, count: entry[IOCB_ENTRY_COUNT] });
    return declined(entry, RF_INV_E_COUNT);
  }
  switch (type) {
    case IOCB_TYPE_CMD_TYPE_7:
      if (path === 'ring' && fw.commandHandler) {
        fw.commandHandler(entry);
        return null;
      }
      fw.traceEvent('fcp_err_no_command_engine', { path });
      return declined(entry, RF_INV_E_TYPE);
    case IOCB_TYPE_MARKER:
      return handleMarker(entry);
    case IOCB_TYPE_LOGINOUT:
      return handleLoginLogout(fw, entry);
    case IOCB_TYPE_CT:
      return handleCtPassThrough(fw, entry);
    case IOCB_TYPE_MBX:
      return handleMailboxIocb(fw, entry);
    case IOCB_TYPE_ABORT:
      return handleAbort(fw, entry);
    case IOCB_TYPE_TSK_MGMT:
      return handleTaskManagement(fw, entry);
    case IOCB_TYPE_ELS:
      return handleElsPassThrough(fw, entry);
    case IOCB_TYPE_VP_CTRL:
    case IOCB_TYPE_VP_CONFIG:
      // NPIV inside the guest is not offered (fw_attributes BIT2 clear).
      return declined(entry, RF_INV_E_TYPE);
    default:
      fw.guestError('iocb_err_type', { type });
      return declined(entry, RF_INV_E_TYPE);
  }
}
