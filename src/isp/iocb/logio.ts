/**
 * Login/Logout Port IOCB (0x52) of the emulated ISP2532 firmware: PLOGI(+PRLI), PRLI, ADISC/PDISC,
 * LOGO, PRLO carried out as real ELS exchanges through the FabricPort, and the N_Port handle table
 * kept the way qla2xxx 10.02.x qla24xx_logio_entry / qla24xx_login_fabric read it.
 */
import { CompStatus, IocbLimits, Logio } from '../../../assembly/shared/iocb.js';
import {
  LCF_COMMAND_ADISC,
  LCF_COMMAND_LOGO,
  LCF_COMMAND_MASK,
  LCF_COMMAND_PDISC,
  LCF_COMMAND_PLOGI,
  LCF_COMMAND_PRLI,
  LCF_COMMAND_PRLO,
  LCF_COMMAND_TPRLO,
  LCF_COND_PLOGI,
  LCF_IMPL_LOGO,
  LCF_NVME_PRLI,
  LCF_SKIP_PRLI,
  LIO_CLASS3_VALID_INDEX,
  LSC_SCODE_CMD_FAILED,
  LSC_SCODE_CMD_PARAM_ERR,
  LSC_SCODE_ELS_REJECT,
  LSC_SCODE_NOLINK,
  LSC_SCODE_NOT_LOGGED_IN,
  LSC_SCODE_NPORT_USED,
  LSC_SCODE_PORTID_USED,
} from '../../../assembly/shared/iocb-mgmt.js';
import type { ElsFailure, FabricPort } from '../fabric-port.js';
import type { RemoteLogin } from '../login-table.js';
import type { IocbContext } from './context.js';
import { readU24LE, view } from '../../util/bytes.js';
import { echo } from './common.js';

/** PRLI word 3 bits passed to io_parameter[0]: target/initiator function, confirmed completion.
 *  BIT8 (retry, FCP-2) is withheld: FC-tape error recovery is not modelled. */
const PRLI_WORD3_REPORTED = 0x00b3;
/** Class 3 service parameters valid (any non-zero value in io_parameter[9]). */
const CLASS3_VALID = 0x80000000;

function logioResult(request: Uint8Array, comp: number, params: number[] = []): Uint8Array {
  const c = echo(request);
  const dv = view(c);
  dv.setUint16(Logio.COMP_STATUS, comp, true);
  for (let i = 0; i < Logio.IO_PARAMETER_COUNT; i++) {
    dv.setUint32(Logio.IO_PARAMETER + 4 * i, (params[i] ?? 0) >>> 0, true);
  }
  return c;
}

const success = (request: Uint8Array, l: Readonly<RemoteLogin> | null) => {
  const params: number[] = [];
  params[0] = l ? l.prliWord3 & PRLI_WORD3_REPORTED : 0;
  params[LIO_CLASS3_VALID_INDEX] = CLASS3_VALID;
  return logioResult(request, CompStatus.CS_COMPLETE, params);
};
const failure = (request: Uint8Array, subcode: number, detail = 0) =>
  logioResult(request, CompStatus.CS_IOCB_ERROR, [subcode, detail]);

function elsFailure(request: Uint8Array, f: ElsFailure): Uint8Array {
  if (f.kind === 'rejected')
    return failure(request, LSC_SCODE_ELS_REJECT, ((f.reason ?? 0) << 8) | (f.explanation ?? 0));
  return failure(request, LSC_SCODE_CMD_FAILED);
}

export async function handleLoginLogout(ctx: IocbContext, request: Uint8Array): Promise<Uint8Array> {
  const dv = view(request);
  const nportHandle = dv.getUint16(Logio.NPORT_HANDLE, true);
  const flags = dv.getUint16(Logio.CONTROL_FLAGS, true);
  const portId = readU24LE(request, Logio.PORT_ID);
  const command = flags & LCF_COMMAND_MASK;
  if (nportHandle > IocbLimits.MAX_NPORT_HANDLE) {
    ctx.guestError('logio_err_handle', { nportHandle });
    return failure(request, LSC_SCODE_CMD_PARAM_ERR);
  }
  const fabric = ctx.port.fabric;
  if (ctx.port.phase !== 'up' || !fabric) {
    // LOGO/PRLO with the link down still frees the handle, as firmware does.
    if (command === LCF_COMMAND_LOGO) {
      ctx.port.logins.remove(nportHandle);
      return success(request, null);
    }
    return failure(request, LSC_SCODE_NOLINK);
  }
  const gen = ctx.port.generation;
  const stale = () => gen !== ctx.port.generation;

  switch (command) {
    case LCF_COMMAND_PLOGI: {
      const existing = ctx.port.logins.get(nportHandle);
      if (existing && existing.portId !== portId) return failure(request, LSC_SCODE_NPORT_USED, existing.portId);
      const other = ctx.port.logins.byPortId(portId);
      if (other && other.handle !== nportHandle) return failure(request, LSC_SCODE_PORTID_USED, other.handle);
      if (existing && flags & LCF_COND_PLOGI && (existing.prliComplete || flags & LCF_SKIP_PRLI)) {
        return success(request, existing);
      }
      const plogi = await fabric.plogi(portId);
      if (stale()) return failure(request, LSC_SCODE_NOLINK);
      if (!plogi.ok) {
        ctx.port.logins.remove(nportHandle);
        return elsFailure(request, plogi);
      }
      const login = ctx.port.logins.recordPlogi(nportHandle, portId, plogi);
      if (!(flags & LCF_SKIP_PRLI)) await doPrli(ctx, fabric, login);
      if (stale()) return failure(request, LSC_SCODE_NOLINK);
      return success(request, login);
    }
    case LCF_COMMAND_PRLI: {
      const login = ctx.port.logins.get(nportHandle);
      if (!login || login.portId !== portId) return failure(request, LSC_SCODE_NOT_LOGGED_IN);
      if (flags & LCF_NVME_PRLI) return failure(request, LSC_SCODE_CMD_FAILED); // no FC-NVMe
      const f = await doPrli(ctx, fabric, login);
      if (stale()) return failure(request, LSC_SCODE_NOLINK);
      return f ? elsFailure(request, f) : success(request, login);
    }
    case LCF_COMMAND_ADISC:
    case LCF_COMMAND_PDISC: {
      const login = ctx.port.logins.get(nportHandle);
      if (!login || login.portId !== portId) return failure(request, LSC_SCODE_NOT_LOGGED_IN);
      const r = await fabric.adisc(portId);
      if (stale()) return failure(request, LSC_SCODE_NOLINK);
      if (!r.ok) return elsFailure(request, r);
      if (r.wwpn !== login.wwpn) {
        // The port at this address is not the one we logged in with: the login is void.
        ctx.port.logins.remove(nportHandle);
        return failure(request, LSC_SCODE_NOT_LOGGED_IN);
      }
      return success(request, login);
    }
    case LCF_COMMAND_LOGO: {
      const login = ctx.port.logins.get(nportHandle);
      ctx.port.logins.remove(nportHandle);
      if (login && !(flags & LCF_IMPL_LOGO)) await fabric.logo(login.portId).catch(() => {});
      return success(request, null);
    }
    case LCF_COMMAND_PRLO:
    case LCF_COMMAND_TPRLO: {
      const login = ctx.port.logins.get(nportHandle);
      if (!login) return failure(request, LSC_SCODE_NOT_LOGGED_IN);
      ctx.port.logins.prliEnded(login);
      if (!(flags & LCF_IMPL_LOGO)) await fabric.prlo(login.portId).catch(() => {});
      return success(request, login);
    }
    default:
      ctx.guestError('logio_err_command', { command, flags });
      return failure(request, LSC_SCODE_CMD_PARAM_ERR);
  }
}

async function doPrli(ctx: IocbContext, fabric: FabricPort, login: Readonly<RemoteLogin>): Promise<ElsFailure | null> {
  const r = await fabric.prli(login.portId);
  if (!r.ok) {
    ctx.port.logins.prliEnded(login);
    return r;
  }
  ctx.port.logins.prliAccepted(login, r.serviceParamWord3);
  return null;
}
