/**
 * What the IOCB handlers (src/isp/iocb/*) and the mailbox commands (src/isp/mailbox.ts) of the
 * emulated ISP2532 firmware may touch: the seam between them and the firmware object, so that
 * each can be driven by a fake context in a test.
 *
 * Split along the ISP24xx/25xx multi-ID firmware model: what the HBA has once (DMA engine, the
 * exchange table of the request/response queue pair, the response ring) and what each N_Port has
 * — its N_Port ID from the fabric login, its N_Port handle table, its link/fabric session and,
 * through the name-server login in that table, its directory registration. qla2xxx addresses an
 * N_Port by the vp_index of an IOCB or mailbox 9 (VP index 0 is the physical port, 1..N the
 * guest's NPIV vports configured by VP_CONFIG): the dispatcher (dispatch.ts) and the firmware's
 * mailbox execution hand each handler the context of that VP, whose `port` is that N_Port.
 */
import type { FabricLoginResult, FabricPort } from '../fabric-port.js';
import type { IspDma } from '../guest-dma.js';
import type { LoginTable } from '../login-table.js';
import type { StatusType0 } from '../ring/types.js';
import type { ExchangeTable } from './exchanges.js';

/** Link and fabric-login state of one N_Port (fabric-session.ts drives it). */
export type LinkPhase = 'down' | 'armed' | 'logging-in' | 'up' | 'failed';

/** One N_Port of the HBA (one VP index), as the handlers see it. */
export interface PortSession {
  readonly vpIndex: number;
  /** The port's way to the fabric (FLOGI on its own link, or FDISC through the physical port). */
  readonly fabric: FabricPort | null;
  /** The port's N_Port handle table; its entries change only through the table's API. */
  readonly logins: LoginTable;
  readonly phase: LinkPhase;
  /** The fabric login (assigned N_Port ID, F_Port names, speed) while the link is up. */
  readonly fabricLogin: FabricLoginResult | null;
  /**
   * Bumped whenever the session ends or the firmware resets: async work that started under an
   * older value must not touch the new state.
   */
  readonly generation: number;
  /** MBC 0x5D / AEN 0x8011 speed code of the fabric login. */
  speedCode(): number;
  /** The name a handle stands for (MBC 0x6A): F_Port from the fabric login, else the login table. */
  portNameOf(handle: number, nodeName: boolean): bigint | null;
}

/** One VP of a VP_CONFIG entry (vp_config_entry_24xx, qla24xx_modify_vp_config). */
export interface VpConfigRequest {
  vpIndex: number;
  /** options_idx*: BIT_3 enable VP, BIT_4 initiator mode, BIT_5 target mode disabled. */
  options: number;
  wwpn: bigint;
  wwnn: bigint;
  /** VCT_COMMAND_MOD_ENABLE_VPS (enable now) rather than modify only. */
  enable: boolean;
}

/** The firmware's NPIV VP table as the VP_CONFIG / VP_CTRL handlers see it (vports.ts). */
export interface VportControl {
  /** Highest VP index a guest may configure (MBC 0x42 mb11, max_npiv_vports). */
  readonly maxVpIndex: number;
  /** Configures (and with enable, FDISCs) one VP; returns the VP_CONFIG comp_status (0 = done). */
  configure(request: VpConfigRequest): number;
  /** VP_CTRL disable of the listed VPs; resolves with the comp_status (0 = done). */
  disable(vpIndices: readonly number[], logoAll: boolean): Promise<number>;
}

export interface IocbContext {
  readonly dma: IspDma;
  /** Outstanding FCP commands by IOCB handle (Abort IO, TMF, link loss find them here). */
  readonly exchanges: ExchangeTable;
  /** The N_Port the entry addresses. */
  readonly port: PortSession;
  /**
   * The N_Port of a VP index: 0 the physical port, 1..maxVpIndex a guest vport (one that is not
   * configured is an idle N_Port with no link); null outside that range.
   */
  portOf(vpIndex: number): PortSession | null;
  /** The NPIV VP table (VP_CONFIG / VP_CTRL). */
  readonly vports: VportControl;
  /** Whether PORT_NODE_NAME_LIST answers list the logins (IspFirmwareOptions.reportLoginsInPortList). */
  readonly reportLoginsInPortList: boolean;
  /** Queues a Status Type 0 (FCP command completion) on the response ring. */
  postStatus(status: StatusType0): void;
  /** Something the guest wrote was refused: logged as a guest error. */
  guestError(event: string, detail: Record<string, unknown>): void;
  trace(event: string, detail: Record<string, unknown>): void;
}
