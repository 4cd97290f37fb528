/**
 * Directory Service name server (FC-GS-7 §5.2) at 0xFFFFFC: a database of the logged-in N_Ports,
 * filled implicitly by FLOGI/FDISC (port ID, names, class of service, port type) and explicitly by
 * the registrations RFT_ID, RFF_ID, RNN_ID, RSNN_NN, RSPN_ID; queried with GA_NXT, GPN_ID,
 * GNN_ID, GFPN_ID, GFF_ID, GFT_ID, GSPN_ID, GID_FT, GPN_FT, GNN_FT, GID_PT — the set
 * drivers/scsi/qla2xxx/qla_gs.c uses. Answers are filtered by zoning through `visible`.
 *
 * An N_Port may register only objects of its own port (its N_Port ID, its node name); anything else
 * is answered with FS_RJT "logical error / access denied".
 */
import { FcDecodeError } from '../../fc/bytes.js';
import {
  CLASS_OF_SERVICE_3,
  type CtIu,
  FS_RJT_REASON,
  GS_SUBTYPE,
  GS_TYPE,
  ID_ENTRY_SIZE,
  NAME_ENTRY_SIZE,
  NS,
  NS_EXPLANATION,
  PORT_TYPE,
  ctAccept,
  ctReject,
  decodeFtRequest,
  decodePortIdRequest,
  decodePtRequest,
  decodeRffId,
  decodeRftId,
  decodeRnnId,
  decodeRsnnNn,
  decodeRspnId,
  encodeFc4Features,
  encodeIdList,
  encodeName,
  encodeNameList,
  encodePortObject,
  fc4TypesBitmap,
} from '../../fc/ct.js';

export interface NameServerEntry {
  nportId: number;
  wwpn: bigint;
  wwnn: bigint;
  portType: number;
  classOfService: number;
  fabricPortName: bigint;
  fc4Types: Set<number>;
  fc4Features: Map<number, number>;
  symbolicPortName: string;
  symbolicNodeName: string;
}

/** What a request changed, so the switch can announce it with an RSCN. */
export interface NameServerReply {
  response: Uint8Array;
  changedPort: number | null;
}

class NsReject extends Error {
  constructor(
    readonly reason: number,
    readonly explanation: number,
  ) {
    super(`FS_RJT 0x${reason.toString(16)}/0x${explanation.toString(16)}`);
  }
}

export class NameServer {
  private readonly entries = new Map<number, NameServerEntry>();

  /**
   * @param visible may `from` see `to`? (zoning)
   */
  constructor(private readonly visible: (from: number, to: number) => boolean) {}

  /** Implicit registration at FLOGI/FDISC. */
  add(
    entry: Omit<
      NameServerEntry,
      'fc4Types' | 'fc4Features' | 'symbolicPortName' | 'symbolicNodeName' | 'portType' | 'classOfService'
    >,
  ): void {
    this.entries.set(entry.nportId, {
      ...entry,
      portType: PORT_TYPE.N_PORT,
      classOfService: CLASS_OF_SERVICE_3,
      fc4Types: new Set(),
      fc4Features: new Map(),
      symbolicPortName: '',
      symbolicNodeName: '',
    });
  }

  remove(nportId: number): boolean {
    return this.entries.delete(nportId);
  }

  get(nportId: number): NameServerEntry | undefined {
    return this.entries.get(nportId);
  }

  all(): NameServerEntry[] {
    return [...this.entries.values()].sort((a, b) => a.nportId - b.nportId);
  }

  /** Handle one name-server CT_IU from `from` and return the response CT_IU. */
  handle(from: number, request: CtIu): NameServerReply {
    const h = request.header;
    if (h.gsType !== GS_TYPE.DIRECTORY || h.gsSubtype !== GS_SUBTYPE.NAME_SERVER) {
      return { response: ctReject(h, FS_RJT_REASON.INVALID_COMMAND), changedPort: null };
    }
    if (!this.entries.has(from)) {
      return {
        response: ctReject(h, FS_RJT_REASON.UNABLE_TO_PERFORM, NS_EXPLANATION.ACCESS_DENIED),
        changedPort: null,
      };
    }
    const maxBytes = h.maxOrResidualWords === 0 ? Infinity : h.maxOrResidualWords * 4;
    try {
      return this.dispatch(from, request, maxBytes);
    } catch (err) {
      if (err instanceof NsReject) return { response: ctReject(h, err.reason, err.explanation), changedPort: null };
      if (err instanceof FcDecodeError)
        return { response: ctReject(h, FS_RJT_REASON.INVALID_IU_SIZE), changedPort: null };
      throw err;
    }
  }

  private dispatch(from: number, req: CtIu, maxBytes: number): NameServerReply {
    const h = req.header;
    const p = req.payload;
    const accept = (payload: Uint8Array, changedPort: number | null = null): NameServerReply => ({
      response: ctAccept(h, payload),
      changedPort,
    });
    switch (h.code) {
      case NS.GA_NXT: {
        const after = decodePortIdRequest(p);
        const next = this.all().find((e) => e.nportId > after && this.visible(from, e.nportId));
        if (!next) throw new NsReject(FS_RJT_REASON.UNABLE_TO_PERFORM, NS_EXPLANATION.NO_OBJECT_IN_SCOPE);
        return accept(
          encodePortObject({
            portType: next.portType,
            nportId: next.nportId,
            wwpn: next.wwpn,
            symbolicPortName: next.symbolicPortName,
            wwnn: next.wwnn,
            symbolicNodeName: next.symbolicNodeName,
            classOfService: next.classOfService,
            fc4Types: [...next.fc4Types],
            fabricPortName: next.fabricPortName,
          }),
        );
      }
      case NS.GPN_ID:
        return accept(encodeName(this.lookup(from, decodePortIdRequest(p)).wwpn));
      case NS.GNN_ID:
        return accept(encodeName(this.lookup(from, decodePortIdRequest(p)).wwnn));
      case NS.GFPN_ID:
        return accept(encodeName(this.lookup(from, decodePortIdRequest(p)).fabricPortName));
      case NS.GFT_ID: {
        const e = this.lookup(from, decodePortIdRequest(p));
        if (e.fc4Types.size === 0)
          throw new NsReject(FS_RJT_REASON.UNABLE_TO_PERFORM, NS_EXPLANATION.FC4_TYPES_NOT_REGISTERED);
        return accept(fc4TypesBitmap(e.fc4Types));
      }
      case NS.GFF_ID: {
        const e = this.lookup(from, decodePortIdRequest(p));
        if (e.fc4Features.size === 0)
          throw new NsReject(FS_RJT_REASON.UNABLE_TO_PERFORM, NS_EXPLANATION.FC4_FEATURES_NOT_REGISTERED);
        return accept(encodeFc4Features(e.fc4Features));
      }
      case NS.GSPN_ID: {
        const e = this.lookup(from, decodePortIdRequest(p));
        if (!e.symbolicPortName)
          throw new NsReject(FS_RJT_REASON.UNABLE_TO_PERFORM, NS_EXPLANATION.SYMBOLIC_PORT_NAME_NOT_REGISTERED);
        const name = new TextEncoder().encode(e.symbolicPortName);
        const out = new Uint8Array(1 + name.length);
        out[0] = name.length;
        out.set(name, 1);
        return accept(out);
      }
      case NS.GID_FT:
      case NS.GPN_FT:
      case NS.GNN_FT: {
        const r = decodeFtRequest(p);
        const matches = this.all().filter(
          (e) =>
            e.fc4Types.has(r.fc4Type) &&
            inScope(e.nportId, r.domainScope, r.areaScope) &&
            this.visible(from, e.nportId),
        );
        if (matches.length === 0)
          throw new NsReject(FS_RJT_REASON.UNABLE_TO_PERFORM, NS_EXPLANATION.FC4_TYPES_NOT_REGISTERED);
        if (h.code === NS.GID_FT) return this.idList(h, matches, maxBytes);
        const entrySize = NAME_ENTRY_SIZE;
        const fit = fitEntries(matches.length, entrySize, maxBytes);
        const list = matches
          .slice(0, fit)
          .map((e) => ({ nportId: e.nportId, name: h.code === NS.GPN_FT ? e.wwpn : e.wwnn }));
        return {
          response: ctAccept(h, encodeNameList(list, fit === matches.length), ((matches.length - fit) * entrySize) / 4),
          changedPort: null,
        };
      }
      case NS.GID_PT: {
        const r = decodePtRequest(p);
        const matches = this.all().filter(
          (e) =>
            (r.portType === PORT_TYPE.NX_PORT || e.portType === r.portType) &&
            inScope(e.nportId, r.domainScope, r.areaScope) &&
            this.visible(from, e.nportId),
        );
        if (matches.length === 0)
          throw new NsReject(FS_RJT_REASON.UNABLE_TO_PERFORM, NS_EXPLANATION.PORT_TYPE_NOT_REGISTERED);
        return this.idList(h, matches, maxBytes);
      }
      case NS.RFT_ID: {
        const r = decodeRftId(p);
        const e = this.own(from, r.nportId);
        e.fc4Types = new Set(r.fc4Types);
        return accept(new Uint8Array(0), e.nportId);
      }
      case NS.RFF_ID: {
        const r = decodeRffId(p);
        const e = this.own(from, r.nportId);
        e.fc4Features.set(r.fc4Type, r.features & 0xf);
        return accept(new Uint8Array(0), e.nportId);
      }
      case NS.RNN_ID: {
        const r = decodeRnnId(p);
        const e = this.own(from, r.nportId);
        if (r.wwnn !== e.wwnn) throw new NsReject(FS_RJT_REASON.LOGICAL_ERROR, NS_EXPLANATION.ACCESS_DENIED);
        return accept(new Uint8Array(0));
      }
      case NS.RSNN_NN: {
        const r = decodeRsnnNn(p);
        const self = this.entries.get(from)!;
        if (r.wwnn !== self.wwnn) throw new NsReject(FS_RJT_REASON.LOGICAL_ERROR, NS_EXPLANATION.ACCESS_DENIED);
        // The symbolic node name belongs to the node: every port of that node shows it.
        for (const e of this.entries.values()) if (e.wwnn === r.wwnn) e.symbolicNodeName = r.name;
        return accept(new Uint8Array(0));
      }
      case NS.RSPN_ID: {
        const r = decodeRspnId(p);
        this.own(from, r.nportId).symbolicPortName = r.name;
        return accept(new Uint8Array(0));
      }
      default:
        throw new NsReject(FS_RJT_REASON.COMMAND_NOT_SUPPORTED, NS_EXPLANATION.NONE);
    }
  }

  private idList(h: CtIu['header'], matches: NameServerEntry[], maxBytes: number): NameServerReply {
    const fit = fitEntries(matches.length, ID_ENTRY_SIZE, maxBytes);
    return {
      response: ctAccept(
        h,
        encodeIdList(
          matches.slice(0, fit).map((e) => e.nportId),
          fit === matches.length,
        ),
        ((matches.length - fit) * ID_ENTRY_SIZE) / 4,
      ),
      changedPort: null,
    };
  }

  private lookup(from: number, id: number): NameServerEntry {
    const e = this.entries.get(id);
    if (!e || !this.visible(from, id))
      throw new NsReject(FS_RJT_REASON.LOGICAL_ERROR, NS_EXPLANATION.PORT_ID_NOT_REGISTERED);
    return e;
  }

  private own(from: number, id: number): NameServerEntry {
    if (id !== from) throw new NsReject(FS_RJT_REASON.LOGICAL_ERROR, NS_EXPLANATION.ACCESS_DENIED);
    return this.entries.get(from)!;
  }
}

function inScope(id: number, domain: number, area: number): boolean {
  if (domain !== 0 && id >> 16 !== domain) return false;
  if (area !== 0 && ((id >> 8) & 0xff) !== area) return false;
  return true;
}

/** How many whole entries fit the requester's maximum response size. */
function fitEntries(count: number, entrySize: number, maxBytes: number): number {
  return Math.min(count, Math.floor(maxBytes / entrySize));
}
