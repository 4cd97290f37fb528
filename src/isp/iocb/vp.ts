/**
 * VP Config (0x31) and VP Control (0x30) IOCBs of the emulated ISP2532 firmware: how qla2xxx
 * enables and disables its NPIV vports (qla24xx_modify_vp_config sends VP_CONFIG through MBC
 * 0x54 and reads comp_status back from the same buffer; qla24xx_control_vp /
 * qla25xx_ctrlvp_iocb send VP_CTRL on the request ring and qla_ctrlvp_completed reads
 * comp_status and vp_idx_failed). Every count, index and option the guest wrote is checked here;
 * what a VP may do (names granted by the host, an NPIV-capable backend) is the VP table's
 * decision (vports.ts).
 */
import { VpConfig, VpCtrl } from '../../../assembly/shared/iocb.js';
import { VCE, VCT } from '../fw-constants.js';
import type { IocbContext, VpConfigRequest } from './context.js';
import { echo } from './common.js';
import { view } from '../../util/bytes.js';

function configCompletion(request: Uint8Array, comp: number): Uint8Array {
  const c = echo(request);
  view(c).setUint16(VpConfig.COMP_STATUS, comp, true);
  return c;
}

export function handleVpConfig(ctx: IocbContext, request: Uint8Array): Uint8Array {
  const dv = view(request);
  const command = request[VpConfig.COMMAND]!;
  const count = request[VpConfig.VP_COUNT]!;
  if (command !== VCT.COMMAND_MOD_VPS && command !== VCT.COMMAND_MOD_ENABLE_VPS) {
    ctx.guestError('vp_config_err_command', { command });
    return configCompletion(request, VCT.CS_ERROR);
  }
  // The entry has room for two VPs (vp_index1/2); qla2xxx sends one.
  if (count < 1 || count > 2) {
    ctx.guestError('vp_config_err_count', { count });
    return configCompletion(request, VCT.CS_CNT_ERROR);
  }
  const requests: VpConfigRequest[] = [];
  for (let k = 0; k < count; k++) {
    const vpIndex = request[k === 0 ? VpConfig.VP_INDEX1 : VpConfig.VP_INDEX2]!;
    const options = request[k === 0 ? VpConfig.OPTIONS_IDX1 : VpConfig.OPTIONS_IDX2]!;
    const wwpn = dv.getBigUint64(k === 0 ? VpConfig.PORT_NAME_IDX1 : VpConfig.PORT_NAME_IDX2, false);
    const wwnn = dv.getBigUint64(k === 0 ? VpConfig.NODE_NAME_IDX1 : VpConfig.NODE_NAME_IDX2, false);
    if (vpIndex < 1 || vpIndex > ctx.vports.maxVpIndex || requests.some((r) => r.vpIndex === vpIndex)) {
      ctx.guestError('vp_config_err_index', { vpIndex, max: ctx.vports.maxVpIndex });
      return configCompletion(request, VCT.CS_IDX_ERROR);
    }
    if (wwpn === 0n || wwnn === 0n) {
      ctx.guestError('vp_config_err_names', { vpIndex });
      return configCompletion(request, VCT.CS_ERROR);
    }
    requests.push({ vpIndex, options, wwpn, wwnn, enable: command === VCT.COMMAND_MOD_ENABLE_VPS });
  }
  for (const r of requests) {
    const comp = ctx.vports.configure(r);
    if (comp !== VCT.CS_COMPLETE) return configCompletion(request, comp);
  }
  return configCompletion(request, VCT.CS_COMPLETE);
}

function controlCompletion(request: Uint8Array, comp: number, failedIndex = 0): Uint8Array {
  const c = echo(request);
  const cv = view(c);
  cv.setUint16(VpCtrl.COMP_STATUS, comp, true);
  cv.setUint16(VpCtrl.VP_IDX_FAILED, failedIndex, true);
  return c;
}

export async function handleVpControl(ctx: IocbContext, request: Uint8Array): Promise<Uint8Array> {
  const dv = view(request);
  const command = dv.getUint16(VpCtrl.COMMAND, true);
  const count = dv.getUint16(VpCtrl.VP_COUNT, true);
  const indices: number[] = [];
  for (let byte = 0; byte < VpCtrl.VP_IDX_MAP_SIZE; byte++) {
    const bits = request[VpCtrl.VP_IDX_MAP + byte]!;
    for (let bit = 0; bit < 8; bit++) if (bits & (1 << bit)) indices.push(byte * 8 + bit + 1);
  }
  if (count < 1 || indices.length !== count) {
    ctx.guestError('vp_ctrl_err_count', { count, mapped: indices.length });
    return controlCompletion(request, VCE.CS_IOCB_ERROR);
  }
  ctx.trace('vp_ctrl', { command, vpIndices: indices });
  const beyond = indices.find((i) => i > ctx.vports.maxVpIndex);
  if (beyond !== undefined) {
    ctx.guestError('vp_ctrl_err_index', { vpIndex: beyond, max: ctx.vports.maxVpIndex });
    return controlCompletion(request, VCE.CS_IOCB_ERROR, beyond);
  }
  switch (command) {
    case VCE.COMMAND_DISABLE_VPS:
    case VCE.COMMAND_DISABLE_VPS_LOGO:
    case VCE.COMMAND_DISABLE_VPS_LOGO_ALL: {
      const comp = await ctx.vports.disable(indices, command !== VCE.COMMAND_DISABLE_VPS);
      return controlCompletion(request, comp);
    }
    default:
      // Enable (0x00) and disable-with-link-reinit (0x09) are not sent by qla2xxx; VPs are
      // enabled by VP_CONFIG.
      ctx.guestError('vp_ctrl_err_command', { command });
      return controlCompletion(request, VCE.CS_IOCB_ERROR);
  }
}
