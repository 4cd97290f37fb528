/**
 * Marker (0x04), Abort IO (0x33) and Task Management (0x14) IOCBs of the emulated ISP2532
 * firmware (qla2xxx 10.02.x qla_marker_iocb_entry, qla24xx_abort_iocb_entry,
 * qla24xx_tm_iocb_entry).
 *
 * Abort: the victim completes first with CompStatus.CS_ABORTED (0x05), then the Abort entry with comp 0;
 * an unknown or already completed victim gives comp 0x31. TMF: every affected outstanding command
 * completes with CompStatus.CS_ABORTED before the TMF's own Status Type 0 completion.
 */
import {
  Abort,
  IocbHeader,
  CompStatus,
  EntryStatus,
  EntryType,
  Handle,
  ScsiStatusFlags,
  Sts24,
  TskMgmt,
} from '../../../assembly/shared/iocb.js';
import { FCP_RSP_INFO_LEN } from '../../../assembly/shared/iocb-mgmt.js';
import type { TaskManagementFunction } from '../../scsi/sam.js';
import type { IocbContext } from './context.js';
import { view } from '../../util/bytes.js';
import { declined, echo, fcpSwap, handleOf } from './common.js';

/** FCP_RSP_INFO RSP_CODE "task management function failed". */
const RSP_CODE_TMF_FAILED = 5;

export function handleMarker(request: Uint8Array): Uint8Array | null {
  // Markers only resynchronise firmware after resets; recent drivers wait for an echo when the
  // handle is a real one (qla26xx_marker).
  return handleOf(request) === Handle.QLA_SKIP_HANDLE ? null : echo(request);
}

export async function handleAbort(ctx: IocbContext, request: Uint8Array): Promise<Uint8Array> {
  const victimHandle = view(request).getUint32(Abort.HANDLE_TO_ABORT, true);
  const victim = ctx.exchanges.get(victimHandle);
  let comp = CompStatus.CS_IOCB_ERROR;
  if (victim) {
    if (ctx.port.fabric) await ctx.port.fabric.abort(victim.portId, victim.taskTag).catch(() => false);
    if (victim.terminate(CompStatus.CS_ABORTED)) comp = CompStatus.CS_COMPLETE;
    ctx.exchanges.remove(victimHandle);
  }
  const c = echo(request);
  view(c).setUint16(Abort.COMP_STATUS, comp, true);
  return c;
}

function tmfFunction(flags: number): TaskManagementFunction | null {
  switch (flags) {
    case TskMgmt.TCF_LUN_RESET:
      return 'lun-reset';
    case TskMgmt.TCF_TARGET_RESET:
      return 'target-reset';
    case TskMgmt.TCF_ABORT_TASK_SET:
      return 'abort-task-set';
    case TskMgmt.TCF_CLEAR_TASK_SET:
      return 'clear-task-set';
    case TskMgmt.TCF_CLEAR_ACA:
      return 'clear-aca';
    default:
      return null;
  }
}

/** The TMF completion: a Status Type 0 entry with the same handle. */
function tmfStatus(request: Uint8Array, comp: number, rspCode: number | null): Uint8Array {
  const c = new Uint8Array(64);
  c.set(request.subarray(0, 8));
  c[IocbHeader.ENTRY_TYPE] = EntryType.STATUS_TYPE;
  c[IocbHeader.ENTRY_COUNT] = 1;
  c[IocbHeader.ENTRY_STATUS] = 0;
  const dv = view(c);
  dv.setUint16(Sts24.COMP_STATUS, comp, true);
  if (rspCode !== null) {
    dv.setUint16(Sts24.SCSI_STATUS, ScsiStatusFlags.SS_RESPONSE_INFO_LEN_VALID, true);
    dv.setUint32(Sts24.RSP_DATA_LEN, FCP_RSP_INFO_LEN, true);
    const info = new Uint8Array(FCP_RSP_INFO_LEN);
    info[3] = rspCode;
    c.set(fcpSwap(info), Sts24.DATA);
  }
  return c;
}

export async function handleTaskManagement(ctx: IocbContext, request: Uint8Array): Promise<Uint8Array> {
  const dv = view(request);
  const nportHandle = dv.getUint16(TskMgmt.NPORT_HANDLE, true);
  const flags = dv.getUint32(TskMgmt.CONTROL_FLAGS, true);
  const fn = tmfFunction(flags);
  if (!fn) {
    ctx.guestError('tmf_err_flags', { flags });
    return declined(request, EntryStatus.RF_INV_E_PARAM);
  }
  const login = ctx.port.logins.get(nportHandle);
  if (!login?.prliComplete || !ctx.port.fabric || ctx.port.phase !== 'up') {
    return tmfStatus(request, CompStatus.CS_PORT_LOGGED_OUT, null);
  }
  const lun = fcpSwap(request.subarray(TskMgmt.LUN, TskMgmt.LUN + 8));
  const lunScoped = fn !== 'target-reset';
  const gen = ctx.port.generation;
  let rspCode: number;
  try {
    rspCode = await ctx.port.fabric.taskManagement(login.portId, lun, fn);
  } catch (e) {
    ctx.trace('tmf_err_fabric', { error: String(e) });
    rspCode = RSP_CODE_TMF_FAILED;
  }
  if (gen !== ctx.port.generation) return tmfStatus(request, CompStatus.CS_PORT_LOGGED_OUT, null);
  if (rspCode === 0 && fn !== 'clear-aca') {
    // The target dropped the affected tasks: complete them before the TMF itself.
    for (const x of ctx.exchanges.matching(login.portId, lunScoped ? lun : null)) {
      x.terminate(CompStatus.CS_ABORTED);
      ctx.exchanges.remove(x.handle);
    }
  }
  return tmfStatus(request, CompStatus.CS_COMPLETE, rspCode);
}
