/**
 * The directory name server (FC-GS-7 §5.2) answered locally for a host vport, from the remote
 * ports the host's FC transport knows (fc_remote_ports of the vport's host) plus the vport itself.
 * Requests and answers are full CT IUs built with the codecs of src/fc/ct.ts. Registrations the
 * guest sends (RFT_ID, RFF_ID, RNN_ID, RSNN_NN, RSPN_ID) are accepted and not forwarded: the host
 * driver already registered the vport's FC-4 type and features with the real fabric.
 *
 * What the host cannot know is refused the way a name server refuses an unregistered object:
 * symbolic names (GSPN_ID) and F_Port names (GFPN_ID).
 */
import {
  CT_HEADER_SIZE,
  CT_RESPONSE,
  ctAccept,
  ctReject,
  decodeCt,
  decodeFtRequest,
  decodePortIdRequest,
  decodePtRequest,
  encodeFc4Features,
  encodeIdList,
  encodeName,
  encodeNameList,
  encodePortIdRequest,
  encodePortObject,
  fc4TypesBitmap,
  FC4_FEATURE,
  FC4_TYPE_FCP,
  FS_RJT_REASON,
  GS_SUBTYPE,
  GS_TYPE,
  ID_ENTRY_SIZE,
  NAME_ENTRY_SIZE,
  NS,
  NS_EXPLANATION,
  CLASS_OF_SERVICE_3,
  PORT_TYPE,
  type CtHeader,
} from '../fc/ct.js';
import { getU64 } from '../fc/bytes.js';
import type { FcRport } from './fc-model.js';

/** GID_PN (FC-GS-7 Table 137); not among the codes src/fc/ct.ts names. */
export const NS_GID_PN = 0x0121;

export interface NsPort {
  portId: number;
  wwpn: bigint;
  wwnn: bigint;
  target: boolean;
  initiator: boolean;
}

export interface NsView {
  /** The vport itself. */
  self: NsPort;
  rports: readonly FcRport[];
}

/** Ports the name server lists: the vport and every Online remote port with a valid N_Port ID. */
export function nsPorts(v: NsView): NsPort[] {
  const out: NsPort[] = [v.self];
  for (const r of v.rports) {
    if (r.state !== 'Online' || r.portId === 0 || r.portId >= 0xfffff0 || r.portId === v.self.portId) continue;
    out.push({
      portId: r.portId,
      wwpn: r.portName,
      wwnn: r.nodeName,
      target: r.roles.includes('FCP Target'),
      initiator: r.roles.includes('FCP Initiator'),
    });
  }
  return out.sort((a, b) => a.portId - b.portId);
}

const isFcp = (p: NsPort) => p.target || p.initiator;

function fitting(count: number, entrySize: number, limitBytes: number): number {
  return Math.max(0, Math.min(count, Math.floor((limitBytes - CT_HEADER_SIZE) / entrySize)));
}

/** Answers one CT IU; maxResponse caps the answer (the guest's response buffer). */
export function answerNameServer(request: Uint8Array, view: NsView, maxResponse: number): Uint8Array {
  let header: CtHeader;
  let payload: Uint8Array;
  try {
    ({ header, payload } = decodeCt(request));
  } catch {
    return ctReject({ gsType: request[4] ?? 0, gsSubtype: request[5] ?? 0, options: 0 }, FS_RJT_REASON.INVALID_IU_SIZE);
  }
  const reject = (reason: number, explanation = 0) => ctReject(header, reason, explanation);
  if (header.gsType !== GS_TYPE.DIRECTORY || header.gsSubtype !== GS_SUBTYPE.NAME_SERVER)
    return reject(FS_RJT_REASON.COMMAND_NOT_SUPPORTED);
  if (header.code === CT_RESPONSE.FS_ACC || header.code === CT_RESPONSE.FS_RJT)
    return reject(FS_RJT_REASON.INVALID_COMMAND);
  const limit = Math.min(
    Math.max(maxResponse, CT_HEADER_SIZE),
    header.maxOrResidualWords === 0 ? Number.MAX_SAFE_INTEGER : CT_HEADER_SIZE + header.maxOrResidualWords * 4,
  );
  const ports = nsPorts(view);
  const byId = (id: number) => ports.find((p) => p.portId === id);
  try {
    switch (header.code) {
      case NS.GID_FT:
      case NS.GPN_FT:
      case NS.GNN_FT: {
        const ft = decodeFtRequest(payload);
        const list = ft.fc4Type === FC4_TYPE_FCP ? ports.filter(isFcp) : [];
        if (list.length === 0) return reject(FS_RJT_REASON.UNABLE_TO_PERFORM, NS_EXPLANATION.FC4_TYPES_NOT_REGISTERED);
        const size = header.code === NS.GID_FT ? ID_ENTRY_SIZE : NAME_ENTRY_SIZE;
        const n = fitting(list.length, size, limit);
        const shown = list.slice(0, n);
        const residual = Math.min(0xffff, ((list.length - n) * size) / 4);
        const body =
          header.code === NS.GID_FT
            ? encodeIdList(
                shown.map((p) => p.portId),
                n === list.length,
              )
            : encodeNameList(
                shown.map((p) => ({ nportId: p.portId, name: header.code === NS.GPN_FT ? p.wwpn : p.wwnn })),
                n === list.length,
              );
        return ctAccept(header, body, residual);
      }
      case NS.GID_PT: {
        const pt = decodePtRequest(payload);
        if (pt.portType !== PORT_TYPE.N_PORT && pt.portType !== PORT_TYPE.NX_PORT)
          return reject(FS_RJT_REASON.UNABLE_TO_PERFORM, NS_EXPLANATION.PORT_TYPE_NOT_REGISTERED);
        const n = fitting(ports.length, ID_ENTRY_SIZE, limit);
        return ctAccept(
          header,
          encodeIdList(
            ports.slice(0, n).map((p) => p.portId),
            n === ports.length,
          ),
          Math.min(0xffff, ports.length - n),
        );
      }
      case NS_GID_PN: {
        if (payload.length < 8) return reject(FS_RJT_REASON.INVALID_IU_SIZE);
        const wwpn = getU64(payload, 0);
        const p = ports.find((x) => x.wwpn === wwpn);
        if (!p) return reject(FS_RJT_REASON.UNABLE_TO_PERFORM, NS_EXPLANATION.PORT_NAME_NOT_REGISTERED);
        return ctAccept(header, encodePortIdRequest(p.portId));
      }
      case NS.GPN_ID:
      case NS.GNN_ID:
      case NS.GFT_ID:
      case NS.GFF_ID:
      case NS.GSPN_ID:
      case NS.GFPN_ID: {
        const p = byId(decodePortIdRequest(payload));
        if (!p) return reject(FS_RJT_REASON.UNABLE_TO_PERFORM, NS_EXPLANATION.PORT_ID_NOT_REGISTERED);
        switch (header.code) {
          case NS.GPN_ID:
            return ctAccept(header, encodeName(p.wwpn));
          case NS.GNN_ID:
            return ctAccept(header, encodeName(p.wwnn));
          case NS.GFT_ID:
            if (!isFcp(p)) return reject(FS_RJT_REASON.UNABLE_TO_PERFORM, NS_EXPLANATION.FC4_TYPES_NOT_REGISTERED);
            return ctAccept(header, fc4TypesBitmap([FC4_TYPE_FCP]));
          case NS.GFF_ID: {
            const bits = (p.target ? FC4_FEATURE.TARGET : 0) | (p.initiator ? FC4_FEATURE.INITIATOR : 0);
            if (bits === 0) return reject(FS_RJT_REASON.UNABLE_TO_PERFORM, NS_EXPLANATION.FC4_FEATURES_NOT_REGISTERED);
            return ctAccept(header, encodeFc4Features(new Map([[FC4_TYPE_FCP, bits]])));
          }
          case NS.GSPN_ID:
            return reject(FS_RJT_REASON.UNABLE_TO_PERFORM, NS_EXPLANATION.SYMBOLIC_PORT_NAME_NOT_REGISTERED);
          default:
            return reject(FS_RJT_REASON.UNABLE_TO_PERFORM, NS_EXPLANATION.FABRIC_PORT_NAME_NOT_REGISTERED);
        }
      }
      case NS.GA_NXT: {
        const after = decodePortIdRequest(payload);
        const p = ports.find((x) => x.portId > after) ?? ports[0]!;
        return ctAccept(
          header,
          encodePortObject({
            portType: PORT_TYPE.N_PORT,
            nportId: p.portId,
            wwpn: p.wwpn,
            symbolicPortName: '',
            wwnn: p.wwnn,
            symbolicNodeName: '',
            classOfService: CLASS_OF_SERVICE_3,
            fc4Types: isFcp(p) ? [FC4_TYPE_FCP] : [],
            fabricPortName: 0n,
          }),
        );
      }
      case NS.RFT_ID:
      case NS.RFF_ID:
      case NS.RNN_ID:
      case NS.RSNN_NN:
      case NS.RSPN_ID:
        return ctAccept(header, new Uint8Array(0));
      default:
        return reject(FS_RJT_REASON.COMMAND_NOT_SUPPORTED);
    }
  } catch {
    // A payload too short for its command (FcDecodeError from the codecs).
    return reject(FS_RJT_REASON.INVALID_IU_SIZE);
  }
}
