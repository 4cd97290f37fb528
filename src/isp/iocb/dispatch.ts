/**
 * Request-entry dispatcher of the emulated ISP2532 firmware: one handler per
 * IOCB type; unknown types and malformed entries are echoed with entry_status set, which
 * qla2xxx 10.02.x qla2x00_error_entry turns into DID_ERROR for the command with that handle.
 *
 * NPIV: an entry that names an N_Port by its vp_index (Login/Logout, CT and ELS pass-through,
 * Task Management, Abort; mailbox 9 of a Mailbox IOCB) is handled in that VP's context; a
 * vp_index beyond the firmware's VP range is refused with RF_INV_E_PARAM. Markers are chip-wide
 * (qla24xx_configure_vhba sends MK_SYNC_ALL with vp_index 0 for vports too).
 */
import {
  Abort,
  Ct,
  Els,
  EntryStatus,
  EntryType,
  IocbHeader,
  Logio,
  MbxIocb,
  TskMgmt,
} from '../../../assembly/shared/iocb.js';
import type { IocbContext } from './context.js';
import { declined, type IocbPath } from './common.js';
import { handleCtPassThrough } from './ct.js';
import { handleElsPassThrough } from './els.js';
import { handleLoginLogout } from './logio.js';
import { handleMailboxIocb } from './mbx.js';
import { handleAbort, handleMarker, handleTaskManagement } from './task.js';
import { handleVpConfig, handleVpControl } from './vp.js';

/** Where an entry type carries the VP index of the N_Port it addresses (qla_fw.h). */
function vpIndexOf(type: number, entry: Uint8Array): number | null {
  switch (type) {
    case EntryType.LOGINOUT_PORT_IOCB_TYPE:
      return entry[Logio.VP_INDEX]!;
    case EntryType.CT_IOCB_TYPE:
      return entry[Ct.VP_INDEX]!;
    case EntryType.ELS_IOCB_TYPE:
      return entry[Els.VP_INDEX]!;
    case EntryType.TSK_MGMT_IOCB_TYPE:
      return entry[TskMgmt.VP_INDEX]!;
    case EntryType.ABORT_IOCB_TYPE:
      return entry[Abort.VP_INDEX]!;
    case EntryType.MBX_IOCB_TYPE: {
      // mb[9] (qla24xx_async_gnl, qla24xx_async_gpdb: mb[9] = vha->vp_idx).
      const at = MbxIocb.MB + 2 * 9;
      return entry[at]! | (entry[at + 1]! << 8);
    }
    default:
      return null;
  }
}

/**
 * Handles one copied-in request entry; resolves with the completion entry (64 bytes) or null
 * when none is due (skip-handle marker, or a command whose completion is posted later).
 */
export async function handleIocb(base: IocbContext, entry: Uint8Array, path: IocbPath): Promise<Uint8Array | null> {
  let ctx = base;
  const type = entry[IocbHeader.ENTRY_TYPE]!;
  if (entry[IocbHeader.ENTRY_STATUS]! & EntryStatus.RF_INV_E_COUNT) return declined(entry, EntryStatus.RF_INV_E_COUNT);
  if (type !== EntryType.COMMAND_TYPE_7 && entry[IocbHeader.ENTRY_COUNT] !== 1) {
    ctx.guestError('iocb_err_entry_count', { type, count: entry[IocbHeader.ENTRY_COUNT] });
    return declined(entry, EntryStatus.RF_INV_E_COUNT);
  }
  const vpIndex = vpIndexOf(type, entry);
  if (vpIndex !== null && vpIndex !== ctx.port.vpIndex) {
    const port = ctx.portOf(vpIndex);
    if (!port) {
      ctx.guestError('iocb_err_vp_index', { type, vpIndex, max: ctx.vports.maxVpIndex });
      return declined(entry, EntryStatus.RF_INV_E_PARAM);
    }
    ctx = { ...ctx, port };
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
      return handleVpControl(ctx, entry);
    case EntryType.VP_CONFIG_IOCB_TYPE:
      return handleVpConfig(ctx, entry);
    default:
      ctx.guestError('iocb_err_type', { type });
      return declined(entry, EntryStatus.RF_INV_E_TYPE);
  }
}
