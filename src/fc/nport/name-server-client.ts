/**
 * The name-server client of an N_Port (FC-GS-7 §5.2, directory server at FFFFFCh): registration
 * after fabric login, and the queries an initiator discovers targets with. Each request is one CT
 * exchange of the port it belongs to; the client keeps no state of its own.
 */
import {
  FC4_TYPE_FCP,
  FS_RJT_REASON,
  NS,
  PORT_TYPE,
  type CtIu,
  type PortNameEntry,
  type PortObject,
  decodeIdList,
  decodeName,
  decodeNameList,
  decodePortObject,
  encodeFtRequest,
  encodePortIdRequest,
  encodePtRequest,
  encodeRffId,
  encodeRftId,
  encodeRnnId,
  encodeRsnnNn,
  encodeRspnId,
  fc4FeaturesOf,
  nameServerRequest,
} from '../ct.js';
import { WELL_KNOWN } from '../frame.js';
import { CtRejectError } from './errors.js';

/** What the client needs of its N_Port: its identity, a PLOGI session with the server, CT exchanges. */
export interface NameServerPort {
  readonly nportId: number;
  readonly wwnn: bigint;
  readonly sessions: { has(nportId: number): boolean };
  plogi(dId: number): Promise<unknown>;
  /** A CT request answered FS_ACC; FS_RJT raises CtRejectError. */
  ct(dId: number, request: Uint8Array): Promise<CtIu>;
}

export class NameServerClient {
  constructor(private readonly port: NameServerPort) {}

  /**
   * Log in to the directory server and register as qla2xxx does: RFT_ID (FCP), RFF_ID (the FCP
   * features: initiator and/or target), RNN_ID, RSNN_NN and RSPN_ID.
   */
  async register(opts: { fcpFeatures: number; symbolicNodeName?: string; symbolicPortName?: string }): Promise<void> {
    if (!this.port.sessions.has(WELL_KNOWN.DIRECTORY_SERVER)) await this.port.plogi(WELL_KNOWN.DIRECTORY_SERVER);
    const ns = WELL_KNOWN.DIRECTORY_SERVER;
    await this.port.ct(
      ns,
      nameServerRequest(NS.RFT_ID, encodeRftId({ nportId: this.port.nportId, fc4Types: [FC4_TYPE_FCP] })),
    );
    await this.port.ct(
      ns,
      nameServerRequest(
        NS.RFF_ID,
        encodeRffId({ nportId: this.port.nportId, features: opts.fcpFeatures, fc4Type: FC4_TYPE_FCP }),
      ),
    );
    await this.port.ct(
      ns,
      nameServerRequest(NS.RNN_ID, encodeRnnId({ nportId: this.port.nportId, wwnn: this.port.wwnn })),
    );
    if (opts.symbolicNodeName)
      await this.port.ct(
        ns,
        nameServerRequest(NS.RSNN_NN, encodeRsnnNn({ wwnn: this.port.wwnn, name: opts.symbolicNodeName })),
      );
    if (opts.symbolicPortName)
      await this.port.ct(
        ns,
        nameServerRequest(NS.RSPN_ID, encodeRspnId({ nportId: this.port.nportId, name: opts.symbolicPortName })),
      );
  }

  /** GID_FT: N_Port IDs registered for an FC-4 type (FCP by default). */
  async gidFt(fc4Type: number = FC4_TYPE_FCP): Promise<number[]> {
    return this.listQuery(NS.GID_FT, encodeFtRequest({ domainScope: 0, areaScope: 0, fc4Type }), decodeIdList);
  }
  async gpnFt(fc4Type: number = FC4_TYPE_FCP): Promise<PortNameEntry[]> {
    return this.listQuery(NS.GPN_FT, encodeFtRequest({ domainScope: 0, areaScope: 0, fc4Type }), decodeNameList);
  }
  async gnnFt(fc4Type: number = FC4_TYPE_FCP): Promise<PortNameEntry[]> {
    return this.listQuery(NS.GNN_FT, encodeFtRequest({ domainScope: 0, areaScope: 0, fc4Type }), decodeNameList);
  }
  async gidPt(portType: number = PORT_TYPE.NX_PORT): Promise<number[]> {
    return this.listQuery(NS.GID_PT, encodePtRequest({ portType, domainScope: 0, areaScope: 0 }), decodeIdList);
  }
  async gpnId(id: number): Promise<bigint> {
    return decodeName(
      (await this.port.ct(WELL_KNOWN.DIRECTORY_SERVER, nameServerRequest(NS.GPN_ID, encodePortIdRequest(id)))).payload,
    );
  }
  async gnnId(id: number): Promise<bigint> {
    return decodeName(
      (await this.port.ct(WELL_KNOWN.DIRECTORY_SERVER, nameServerRequest(NS.GNN_ID, encodePortIdRequest(id)))).payload,
    );
  }
  async gfpnId(id: number): Promise<bigint> {
    return decodeName(
      (await this.port.ct(WELL_KNOWN.DIRECTORY_SERVER, nameServerRequest(NS.GFPN_ID, encodePortIdRequest(id)))).payload,
    );
  }
  /** GFF_ID: the FCP feature bits of a port (FC4_FEATURE.TARGET / INITIATOR). */
  async gffIdFcp(id: number): Promise<number> {
    const iu = await this.port.ct(WELL_KNOWN.DIRECTORY_SERVER, nameServerRequest(NS.GFF_ID, encodePortIdRequest(id)));
    return fc4FeaturesOf(iu.payload, FC4_TYPE_FCP);
  }
  async gaNxt(after: number): Promise<PortObject> {
    return decodePortObject(
      (await this.port.ct(WELL_KNOWN.DIRECTORY_SERVER, nameServerRequest(NS.GA_NXT, encodePortIdRequest(after))))
        .payload,
    );
  }

  /** List queries: an FS_RJT "nothing registered" is an empty list, as qla2xxx treats it. */
  private async listQuery<T>(code: number, payload: Uint8Array, decode: (p: Uint8Array) => T[]): Promise<T[]> {
    try {
      return decode((await this.port.ct(WELL_KNOWN.DIRECTORY_SERVER, nameServerRequest(code, payload, 8192))).payload);
    } catch (err) {
      if (err instanceof CtRejectError && err.reason === FS_RJT_REASON.UNABLE_TO_PERFORM) return [];
      throw err;
    }
  }
}
