/**
 * FabricPort: the narrow seam between the emulated ISP2532 firmware (firmware.ts; the behaviour
 * qla2xxx 10.02.x expects of 24xx/25xx firmware: fabric-session.ts) and the SAN
 * side (src/fc/initiator.ts, an N_Port initiator engine over a link). The firmware turns the
 * guest's mailbox commands and IOCBs into these calls; every ELS/CT/FCP exchange named here is
 * carried out on the vport's link by the implementation. Port IDs are 24-bit N_Port IDs
 * (domain << 16 | area << 8 | al_pa); names are 64-bit WWNs.
 */
import type { DataDirection, TaskManagementFunction } from '../scsi/sam.js';

export interface FabricLoginResult {
  /** N_Port ID the fabric assigned (FLOGI/FDISC LS_ACC D_ID). */
  portId: number;
  /** F_Port name from the FLOGI/FDISC LS_ACC (what MBC 0x6A returns for handle 0x7FE). */
  fabricPortName: bigint;
  /** Fabric name (F_Port's node name in the LS_ACC): fc_host fabric_name. */
  fabricName: bigint;
  /** Negotiated link speed in Gbit/s (1, 2, 4, 8, 16). */
  speedGbps: number;
  /**
   * The fabric accepted NPIV on this link (FLOGI LS_ACC common service parameters, FC-LS-3
   * "NPIV supported"). Optional: absent means unknown, taken as supported when the port can
   * create vports (createVport).
   */
  npivSupported?: boolean;
}

/**
 * A fabric login (FLOGI/FDISC) the fabric refused with LS_RJT: login() rejects with this so the
 * firmware can report the reason (Report ID Acquisition ls_rjt fields for a vport).
 */
export class FabricLoginRejected extends Error {
  constructor(
    readonly reason: number,
    readonly explanation: number,
    message: string,
  ) {
    super(message);
    this.name = 'FabricLoginRejected';
  }
}

/** An ELS that the remote port answered with LS_RJT, or that could not be delivered. */
export interface ElsFailure {
  ok: false;
  /** 'rejected': LS_RJT (reason/explanation valid); 'no-response': timeout / no such port / link down. */
  kind: 'rejected' | 'no-response';
  reason?: number;
  explanation?: number;
}

export type PlogiResult = { ok: true; wwpn: bigint; wwnn: bigint; receiveDataSize: number } | ElsFailure;

/** PRLI accept for FC-4 type 8 (FCP): word 3 of the accepted service parameter page. */
export type PrliResult = { ok: true; serviceParamWord3: number } | ElsFailure;

export type AdiscResult = { ok: true; wwpn: bigint; wwnn: bigint; portId: number } | ElsFailure;

export type FabricEvent =
  | { type: 'link-down' }
  | { type: 'link-up' }
  /** RSCN payload page: format 0 port, 1 area, 2 domain, 3 fabric; address = affected 24-bit ID. */
  | { type: 'rscn'; format: number; address: number }
  /** A remote port ended our session (LOGO/PRLO received, or it vanished). */
  | { type: 'session-lost'; portId: number };

export interface FcpCommand {
  /** 8-byte FCP LUN as sent (SAM LUN structure). */
  lun: Uint8Array;
  /** 16-byte CDB. */
  cdb: Uint8Array;
  direction: DataDirection;
  /** FCP_DL. */
  expectedLength: number;
  /**
   * The guest's data buffer (src/isp/data-views.ts): live views into mapped guest memory, one per
   * DMA segment piece in order, each checked as readable (write) or writable (read) when the
   * command was built, together exactly expectedLength bytes; empty for 'none'. A write's data is
   * read from them and a read's data written into them directly — no copy in the firmware. A
   * view that has become zero-length was unmapped (DMA_UNMAP): move nothing through it or past
   * it, and answer transportError 'dma' if the data cannot move.
   */
  data: readonly Uint8Array[];
  /**
   * Aborted when the firmware has completed the command to the guest (on its own: Abort IO, a
   * TMF, link loss, logout, reset — or after this result). From then on the views are the
   * guest's again: the backend must not move another byte through them (a late read must not
   * land in a buffer the guest already reused).
   */
  released: AbortSignal;
  /** Exchange tag for aborts (the firmware uses the IOCB handle). */
  taskTag: number;
}

export interface FcpResult {
  /** SAM status byte. */
  scsiStatus: number;
  /** Fixed-format sense data with CHECK CONDITION. */
  sense: Uint8Array | null;
  /**
   * Bytes moved: read data written into the command's views (from the start), or write data the
   * target took. Fewer than FCP_DL is an underrun (the firmware reports the residual); 0 for a
   * command without data and for a transport error.
   */
  transferred: number;
  /**
   * The exchange failed at the transport level (ABTS, link loss, logged out), or 'dma': the data
   * could not move because part of the guest's buffer was unmapped meanwhile.
   */
  transportError?: 'aborted' | 'port-unavailable' | 'logged-out' | 'timeout' | 'dma';
}

export interface FabricPort {
  /** True while the vport's link is up (light on the wire). */
  isLinkUp(): boolean;
  /** FLOGI (physical port) or FDISC (NPIV vport) with the vport's names. */
  login(wwpn: bigint, wwnn: bigint): Promise<FabricLoginResult>;
  /** Fabric LOGO; the firmware calls this on reset/stop. */
  logout(): Promise<void>;
  plogi(portId: number): Promise<PlogiResult>;
  /** PRLI for FCP (type 8) as initiator. */
  prli(portId: number): Promise<PrliResult>;
  adisc(portId: number): Promise<AdiscResult>;
  logo(portId: number): Promise<void>;
  prlo(portId: number): Promise<void>;
  /**
   * CT request (full CT IU: preamble + command + payload) to a well-known server (0xFFFFFC name
   * server); resolves with the full CT IU response (accept or reject). maxResponse caps its size.
   */
  ct(serverPortId: number, request: Uint8Array, maxResponse: number): Promise<Uint8Array>;
  fcp(portId: number, command: FcpCommand): Promise<FcpResult>;
  /** Resolves with the FCP_RSP_INFO response code (0 = complete). */
  taskManagement(portId: number, lun: Uint8Array, fn: TaskManagementFunction): Promise<number>;
  /** ABTS for an outstanding exchange (by taskTag); resolves true if the exchange was found. */
  abort(portId: number, taskTag: number): Promise<boolean>;
  /** Link and fabric notifications; returns an unsubscribe function. */
  onEvent(listener: (event: FabricEvent) => void): () => void;
  /**
   * Optional (guest NPIV): a further N_Port on this port's link. The returned FabricPort's
   * login() is an FDISC through this port's current fabric login (which must be up), its
   * logout() a LOGO of that N_Port only; its ELS/CT/FCP exchanges leave from the N_Port ID the
   * FDISC assigned. It reports 'link-down' when that login ends (link loss, or the physical
   * port logged out or logged in again), never 'link-up': the firmware re-FDISCs it after the
   * physical port is up again. An implementation without this member has no NPIV: the firmware
   * then refuses every guest VP_CONFIG (qla2xxx fails vport_create) and says so in its log.
   */
  createVport?(): FabricPort;
}
