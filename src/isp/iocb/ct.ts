/**
 * CT Pass-Through IOCB (0x29) of the emulated ISP2532 firmware (qla2xxx 10.02.x qla24xx_ct_iocb /
 * qla24xx_prep_ms_iocb; FC-GS-7 CT_IU). Name-server requests (handle 0x7FC) are carried to the
 * fabric's directory server over the link; the management server (0x7EF for the physical port,
 * 0x7EF − n for NPIV vport n: qla2x00_reserve_mgmt_server_loop_id; FDMI, GPSC) gets a clean CT
 * reject built here ("command not supported"), which makes the driver drop FDMI and GPSC.
 * Request and response buffers may be the same DMA buffer: the request is read whole first.
 */
import { CompStatus, Ct, Dsd64, EntryStatus } from '../../../assembly/shared/iocb.js';
import { NPH, WELL_KNOWN } from '../fw-constants.js';
import type { IocbContext } from './context.js';
import { view } from '../../util/bytes.js';
import { declined, echo } from './common.js';

/** CT IU preamble (FC-GS): 16 bytes; response code at 8 (BE), reason 13, explanation 14. */
export const CT_IU = {
  PREAMBLE_SIZE: 16,
  COMMAND_RESPONSE: 8,
  REASON_CODE: 13,
  EXPLANATION: 14,
} as const;
export const CT_REJECT = 0x8001;
/** CT reject reason "command not supported" (the driver disables GPSC on 0x0B). */
export const CT_REASON_NOT_SUPPORTED = 0x0b;

/** CT payloads larger than this are refused (GPN_FT for 2048 ports is 32 KiB). */
const CT_MAX_BYTES = 0x10000;

function completion(request: Uint8Array, comp: number, responseBytes: number): Uint8Array {
  const c = echo(request);
  const dv = view(c);
  dv.setUint16(Ct.COMP_STATUS, comp, true);
  dv.setUint32(Ct.RSP_BYTE_COUNT, responseBytes >>> 0, true);
  return c;
}

/** A CT reject IU answering request. */
export function ctReject(request: Uint8Array, reason: number, explanation = 0): Uint8Array {
  const r = new Uint8Array(CT_IU.PREAMBLE_SIZE);
  r.set(request.subarray(0, 8));
  new DataView(r.buffer).setUint16(CT_IU.COMMAND_RESPONSE, CT_REJECT, false);
  r[CT_IU.REASON_CODE] = reason;
  r[CT_IU.EXPLANATION] = explanation;
  return r;
}

/** The VP's management-server handle, or a handle it logged in to 0xFFFFFA with. */
function isManagementServer(ctx: IocbContext, handle: number): boolean {
  if (handle === NPH.MGMT_SERVER || handle === NPH.MGMT_SERVER - ctx.port.vpIndex) return true;
  return ctx.port.logins.get(handle)?.portId === WELL_KNOWN.MGMT_SERVER;
}

export async function handleCtPassThrough(ctx: IocbContext, request: Uint8Array): Promise<Uint8Array> {
  const dv = view(request);
  const handle = dv.getUint16(Ct.NPORT_HANDLE, true);
  const cmdDsds = dv.getUint16(Ct.CMD_DSD_COUNT, true);
  const rspDsds = dv.getUint16(Ct.RSP_DSD_COUNT, true);
  const cmdBytes = dv.getUint32(Ct.CMD_BYTE_COUNT, true);
  const rspBytes = dv.getUint32(Ct.RSP_BYTE_COUNT, true);
  const reqAddr = dv.getBigUint64(Ct.DSD0 + Dsd64.ADDRESS, true);
  const reqLen = dv.getUint32(Ct.DSD0 + Dsd64.LENGTH, true);
  const rspAddr = dv.getBigUint64(Ct.DSD1 + Dsd64.ADDRESS, true);
  const rspLen = dv.getUint32(Ct.DSD1 + Dsd64.LENGTH, true);
  if (
    cmdDsds !== 1 ||
    rspDsds !== 1 ||
    cmdBytes < CT_IU.PREAMBLE_SIZE ||
    cmdBytes > CT_MAX_BYTES ||
    cmdBytes > reqLen ||
    rspBytes < CT_IU.PREAMBLE_SIZE ||
    rspBytes > CT_MAX_BYTES ||
    rspBytes > rspLen
  ) {
    ctx.guestError('ct_err_descriptor', { cmdDsds, rspDsds, cmdBytes, reqLen, rspBytes, rspLen });
    return declined(request, EntryStatus.RF_INV_E_PARAM);
  }
  const ct = ctx.dma.read(reqAddr, cmdBytes);
  if (!ct) return declined(request, EntryStatus.RF_INV_E_PARAM);
  if (!ctx.dma.readable(rspAddr, rspBytes)) {
    ctx.guestError('ct_err_response_unmapped', { rspAddr: rspAddr.toString(16), rspBytes });
    return declined(request, EntryStatus.RF_INV_E_PARAM);
  }

  let response: Uint8Array;
  if (handle === NPH.SNS) {
    const ns = ctx.port.logins.get(NPH.SNS);
    if (!ns || !ctx.port.fabric || ctx.port.phase !== 'up')
      return completion(request, CompStatus.CS_PORT_LOGGED_OUT, 0);
    const gen = ctx.port.generation;
    try {
      response = await ctx.port.fabric.ct(WELL_KNOWN.NAME_SERVER, ct, rspBytes);
    } catch (e) {
      ctx.trace('ct_err_fabric', { error: String(e) });
      return completion(request, CompStatus.CS_PORT_LOGGED_OUT, 0);
    }
    if (gen !== ctx.port.generation) return completion(request, CompStatus.CS_PORT_LOGGED_OUT, 0);
  } else if (isManagementServer(ctx, handle)) {
    response = ctReject(ct, CT_REASON_NOT_SUPPORTED);
  } else {
    ctx.guestError('ct_err_handle', { handle });
    return completion(request, CompStatus.CS_PORT_LOGGED_OUT, 0);
  }
  const out = response.subarray(0, Math.min(response.length, rspBytes));
  if (!ctx.dma.write(rspAddr, out)) return declined(request, EntryStatus.RF_INV_E_PARAM);
  return completion(request, CompStatus.CS_COMPLETE, out.length);
}
