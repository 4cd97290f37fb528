/**
 * What the IOCB handlers (src/isp/iocb/*) and the mailbox commands (src/isp/mailbox.ts) of the
 * emulated ISP2532 firmware may touch: the seam between them and the firmware object, so that
 * each can be driven by a fake context in a test.
 *
 * Split along the ISP24xx/25xx multi-ID firmware model: what the HBA has once (DMA engine, the
 * exchange table of the request/response queue pair, the response ring) and what each N_Port has
 * — its N_Port ID from the fabric login, its N_Port handle table, its link/fabric session and,
 * through the name-server login in that table, its directory registration. qla2xxx addresses an
 * N_Port by the vp_index of an IOCB or mailbox 9 (VP index 0 is the physical port). The firmware
 * offers only VP 0 so far (fw_attributes BIT2 is set but no VP is ever configured), so `port` is
 * always the physical port; with NPIV the dispatcher will hand each handler the PortSession of
 * the entry's vp_index.
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

export interface IocbContext {
  readonly dma: IspDma;
  /** Outstanding FCP commands by IOCB handle (Abort IO, TMF, link loss find them here). */
  readonly exchanges: ExchangeTable;
  /** The N_Port the entry addresses. */
  readonly port: PortSession;
  /** Whether PORT_NODE_NAME_LIST answers list the logins (IspFirmwareOptions.reportLoginsInPortList). */
  readonly reportLoginsInPortList: boolean;
  /** Queues a Status Type 0 (FCP command completion) on the response ring. */
  postStatus(status: StatusType0): void;
  /** Something the guest wrote was refused: logged as a guest error. */
  guestError(event: string, detail: Record<string, unknown>): void;
  trace(event: string, detail: Record<string, unknown>): void;
}
