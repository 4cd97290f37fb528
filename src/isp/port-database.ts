/**
 * GET_PORT_DATABASE (MBC 0x64) and PORT_NODE_NAME_LIST (MBC 0x75, GNL) of the emulated ISP2532
 * firmware, shared by the direct mailbox commands (mailbox.ts) and the Mailbox IOCB (iocb/mbx.ts),
 * through which qla2xxx 10.02.x's async discovery sends them (qla24xx_async_gpdb,
 * qla24xx_async_gnl). Both answer from the addressed port's login table, written by DMA to the
 * buffer address the driver gave.
 */
import { GNL_OPTION_EXTENDED } from '../../assembly/shared/iocb-mgmt.js';
import { MBS } from './fw-constants.js';
import type { IocbContext } from './iocb/context.js';

/** The port database entry of handle, written at address. */
export function writePortDatabase(ctx: IocbContext, handle: number, address: bigint): number {
  const pdb = ctx.port.logins.portDatabase(handle);
  if (!pdb) return MBS.NOT_LOGGED_IN;
  return ctx.dma.write(address, pdb) ? MBS.COMMAND_COMPLETE : MBS.COMMAND_ERROR;
}

/** The extended name list of logged-in ports, at most bufferSize bytes, written at address. */
export function writePortList(
  ctx: IocbContext,
  options: number,
  address: bigint,
  bufferSize: number,
): { status: number; bytes: number } {
  if (!(options & GNL_OPTION_EXTENDED)) {
    ctx.guestError('mbox_err_gnl_format', { options });
    return { status: MBS.COMMAND_PARAMETER_ERROR, bytes: 0 };
  }
  const buf = ctx.reportLoginsInPortList ? ctx.port.logins.nameList(bufferSize) : new Uint8Array(0);
  if (buf.length && !ctx.dma.write(address, buf)) return { status: MBS.COMMAND_ERROR, bytes: 0 };
  return { status: MBS.COMMAND_COMPLETE, bytes: buf.length };
}
