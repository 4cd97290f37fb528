/**
 * ELS Pass-Through IOCB (0x53) of the emulated ISP2532 firmware (qla2xxx 10.02.x
 * qla24xx_els_logo_iocb / qla24xx_els_iocb). On the initiator path the driver
 * only sends an explicit LOGO this way; it is carried out on the link. Other ELS pass-through
 * uses (bsg, N2N PLOGI, EDC/RDF) are declined with entry_status EntryStatus.RF_INV_E_TYPE.
 */
import { CompStatus, Els, EntryStatus } from '../../../assembly/shared/iocb.js';
import { ELS_OPCODE_LOGO } from '../../../assembly/shared/iocb-mgmt.js';
import type { IocbContext } from './context.js';
import { readU24LE, view } from '../../util/bytes.js';
import { declined, echo } from './common.js';

export async function handleElsPassThrough(ctx: IocbContext, request: Uint8Array): Promise<Uint8Array> {
  const opcode = request[Els.OPCODE]!;
  if (opcode !== ELS_OPCODE_LOGO) {
    ctx.trace('els_unsupported', { opcode });
    return declined(request, EntryStatus.RF_INV_E_TYPE);
  }
  const dv = view(request);
  const nportHandle = dv.getUint16(Els.NPORT_HANDLE, true);
  const dId = readU24LE(request, Els.D_ID);
  ctx.port.logins.remove(nportHandle);
  if (ctx.port.fabric && ctx.port.phase === 'up') await ctx.port.fabric.logo(dId).catch(() => {});
  const c = echo(request);
  const cv = view(c);
  cv.setUint16(Els.COMP_STATUS, CompStatus.CS_COMPLETE, true);
  cv.setUint32(Els.TOTAL_BYTE_COUNT, 0, true);
  return c;
}
