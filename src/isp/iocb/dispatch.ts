/**
 * Request-entry dispatcher of the emulated ISP2532 firmware: one handler per
 * IOCB type; unknown types and malformed entries are echoed with entry_status set, which
 * qla2xxx 10.02.x qla2x00_error_entry turns into DID_ERROR for the command with that handle.
 */
import { EntryStatus, EntryType, IocbHeader } from '../../../assembly/shared/iocb.js';
import type { IocbContext } from './context.js';
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
export async function handleIocb(ctx: IocbContext, entry: Uint8Array, path: IocbPath): Promise<Uint8Array | null> {
  const type = entry[IocbHeader.ENTRY_TYPE]!;
  if (entry[IocbHeader.ENTRY_STATUS]! & EntryStatus.RF_INV_E_COUNT) return declined(entry, EntryStatus.RF_INV_E_COUNT);
  if (type !== EntryType.COMMAND_TYPE_7 && entry[IocbHeader.ENTRY_COUNT] !== 1) {
    ctx.guestError('iocb_err_entry_count', { type, count: entry[IocbHeader.ENTRY_COUNT] });
    return declined(entry, EntryStatus.RF_INV_E_COUNT);
  }
  switch (type) {
    case EntryType.COMMAND_TYPE_7:
      // On the ring the codec decodes commands (see fcp.ts); through MBC 0x54 they are invalid.
      ctx.guestError('iocb_err_command_in_mailbox', { path });
      return declined(entry, EntryStatus.RF_INV_E_TYPE);
    case EntryType.MARKER_TYPE:
      return handleMarker(entry);
    case EntryType.LOGINOUT_PORT_IOCB_TYPE:
      return handleLoginLogout(ctx, entry);
    case EntryType.CT_IOCB_TYPE:
      return handleCtPassThrough(ctx, entry);
    case EntryType.MBX_IOCB_TYPE:
      return handleMailboxIocb(ctx, entry);
    case EntryType.ABORT_IOCB_TYPE:
      return handleAbort(ctx, entry);
    case EntryType.TSK_MGMT_IOCB_TYPE:
      return handleTaskManagement(ctx, entry);
    case EntryType.ELS_IOCB_TYPE:
      return handleElsPassThrough(ctx, entry);
    case EntryType.VP_CTRL_IOCB_TYPE:
    case EntryType.VP_CONFIG_IOCB_TYPE:
      // No VP is configurable yet: fw_attributes BIT2 is set, but MBC 0x20 reports no
      // FLOGI_MID_SUPPORT, so guest vport creation fails cleanly (mailbox.ts FW_ATTRIBUTES).
      return declined(entry, EntryStatus.RF_INV_E_TYPE);
    default:
      ctx.guestError('iocb_err_type', { type });
      return declined(entry, EntryStatus.RF_INV_E_TYPE);
  }
}
