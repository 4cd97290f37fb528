/**
 * Mailbox IOCB (0x39): a mailbox command carried on the request ring (qla2xxx 10.02.x
 * qla2x00_mb_iocb / qla24xx_mbx_iocb_entry). The async discovery path sends
 * PORT_NODE_NAME_LIST (0x75, GNL) and GET_PORT_DATABASE (0x64, GPDB) this way; other commands
 * answer 0x4001 in mb[0].
 */
import { MbxIocb } from '../../../assembly/shared/iocb.js';
import type { IocbContext } from './context.js';
import { MBC, MBS } from '../fw-constants.js';
import { mailboxDmaAddress } from '../mailbox.js';
import { writePortDatabase, writePortList } from '../port-database.js';
import { view } from '../../util/bytes.js';
import { echo } from './common.js';

export function handleMailboxIocb(ctx: IocbContext, request: Uint8Array): Uint8Array {
  const dv = view(request);
  const mb = new Uint16Array(MbxIocb.MB_COUNT);
  for (let i = 0; i < MbxIocb.MB_COUNT; i++) mb[i] = dv.getUint16(MbxIocb.MB + 2 * i, true);
  const out = new Uint16Array(MbxIocb.MB_COUNT);
  switch (mb[0]) {
    case MBC.PORT_NODE_NAME_LIST: {
      const r = writePortList(ctx, mb[1]!, mailboxDmaAddress(mb), mb[8]!);
      out[0] = r.status;
      out[1] = r.bytes;
      break;
    }
    case MBC.GET_PORT_DATABASE:
      out[0] = writePortDatabase(ctx, mb[1]!, mailboxDmaAddress(mb));
      break;
    default:
      ctx.trace('mbx_iocb_unhandled', { opcode: mb[0] });
      out[0] = MBS.INVALID_COMMAND;
  }
  const c = echo(request);
  const cv = view(c);
  for (let i = 0; i < MbxIocb.MB_COUNT; i++) cv.setUint16(MbxIocb.MB + 2 * i, out[i]!, true);
  return c;
}
