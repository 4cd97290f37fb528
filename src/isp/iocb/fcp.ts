/**
 * FCP command execution of the emulated ISP2532 firmware: a Command Type 7 decoded by the ring
 * codec (CDB/LUN in SAM order, validated data segments) is carried to the target as an FCP
 * exchange through the FabricPort, which moves the data straight to/from the guest's segments
 * (live views into guest memory, src/isp/data-views.ts),
 * and the result becomes a Status Type 0 as qla2xxx 10.02.x qla2x00_status_entry reads it
 * (qla24xx_start_scsi builds the command).
 *
 *   not logged in / PRLI not done   → CS_PORT_LOGGED_OUT (link up) or CS_PORT_UNAVAILABLE (down)
 *   fewer bytes than FCP_DL         → CS_DATA_UNDERRUN + residual (firmware-computed)
 *   CHECK CONDITION                 → scsi status 0x02 + sense (the codec caps/continues sense)
 *   guest data segment unmapped     → CS_DMA (DID_ERROR) — checked before the exchange starts, and
 *                                     again at its end (a DMA_UNMAP while it ran detaches the views)
 *   transport failure               → CS_ABORTED / CS_PORT_UNAVAILABLE / CS_PORT_LOGGED_OUT / CS_TIMEOUT
 * An exchange terminated by Abort IO, a TMF or link loss completes once, with that status.
 */
import { CompStatus } from '../../../assembly/shared/iocb.js';
import { DmaError, type GuestMemory } from '../../device/guest-memory.js';
import { viewsIntact } from '../data-views.js';
import type { FcpResult } from '../fabric-port.js';
import type { IocbContext } from './context.js';
import type { CommandRequest, DataSegment, StatusType0 } from '../ring/types.js';

const SAM_CHECK_CONDITION = 0x02;

function transportStatus(e: NonNullable<FcpResult['transportError']>): number {
  switch (e) {
    case 'aborted':
      return CompStatus.CS_ABORTED;
    case 'port-unavailable':
      return CompStatus.CS_PORT_UNAVAILABLE;
    case 'logged-out':
      return CompStatus.CS_PORT_LOGGED_OUT;
    case 'timeout':
      return CompStatus.CS_TIMEOUT;
    case 'dma':
      return CompStatus.CS_DMA;
  }
}

/**
 * The command's data as live views into guest memory (src/isp/data-views.ts): the segment list
 * the ring codec already copied in is checked once here, for the access the transfer needs (read
 * for a write, write for a read), and cut to FCP_DL. Null if any byte is not mapped: nothing has
 * moved yet, the command completes with CS_DMA.
 */
function dataViews(
  mem: GuestMemory,
  segments: DataSegment[],
  total: number,
  access: 'read' | 'write',
): Uint8Array[] | null {
  const views: Uint8Array[] = [];
  let at = 0;
  try {
    for (const s of segments) {
      const n = Math.min(s.length, total - at);
      if (n <= 0) break;
      for (const v of mem.views(s.address, n, access)) views.push(v);
      at += n;
    }
  } catch (e) {
    if (e instanceof DmaError) return null;
    throw e;
  }
  return at === total ? views : null;
}

/** Runs one command; the completion is posted on the response ring by the caller's queues. */
export function executeCommand(ctx: IocbContext, cmd: CommandRequest): void {
  const status = (compStatus: number, extra: Partial<StatusType0> = {}): StatusType0 => ({
    handle: cmd.handle,
    compStatus,
    scsiStatus: 0,
    ...extra,
  });
  const login = ctx.port.logins.get(cmd.nportHandle);
  const fabric = ctx.port.fabric;
  if (ctx.port.phase !== 'up' || !fabric) {
    ctx.postStatus(status(CompStatus.CS_PORT_UNAVAILABLE));
    return;
  }
  if (!login?.prliComplete || login.portId !== cmd.portId) {
    ctx.postStatus(status(CompStatus.CS_PORT_LOGGED_OUT));
    return;
  }
  const mem = ctx.dma.memory();
  if (!mem) {
    ctx.postStatus(status(CompStatus.CS_DMA));
    return;
  }
  let data: Uint8Array[] = [];
  if (cmd.direction !== 'none' && cmd.totalBytes > 0) {
    const views = dataViews(mem, cmd.segments, cmd.totalBytes, cmd.direction === 'write' ? 'read' : 'write');
    if (!views) {
      ctx.guestError(cmd.direction === 'write' ? 'fcp_err_write_dma' : 'fcp_err_read_dma', { handle: cmd.handle });
      ctx.postStatus(status(CompStatus.CS_DMA));
      return;
    }
    data = views;
  }

  const gen = ctx.port.generation;
  let done = false;
  // Aborted at completion: the data views go back to the guest, the backend must let go.
  const released = new AbortController();
  const complete = (s: StatusType0): boolean => {
    if (done) return false;
    done = true;
    released.abort();
    if (gen !== ctx.port.generation) return false;
    ctx.exchanges.remove(cmd.handle);
    ctx.postStatus(s);
    return true;
  };
  if (
    !ctx.exchanges.add({
      handle: cmd.handle,
      nportHandle: cmd.nportHandle,
      portId: cmd.portId,
      lun: cmd.lun,
      taskTag: cmd.handle,
      vpIndex: ctx.port.vpIndex,
      terminate: (compStatus) => complete(status(compStatus)),
      release: () => {
        done = true;
        released.abort();
      },
    })
  ) {
    // The driver reused a handle that is still outstanding: refuse the newcomer only.
    ctx.guestError('fcp_err_handle_in_use', { handle: cmd.handle });
    return;
  }

  fabric
    .fcp(cmd.portId, {
      lun: cmd.lun,
      cdb: cmd.cdb,
      direction: cmd.direction,
      expectedLength: cmd.totalBytes,
      data,
      released: released.signal,
      taskTag: cmd.handle,
    })
    .then(
      (r) => {
        if (done) return;
        if (gen !== ctx.port.generation) {
          done = true; // orphaned by a reset: the buffer is the guest's again
          released.abort();
          return;
        }
        if (r.transportError) {
          complete(status(transportStatus(r.transportError)));
          return;
        }
        if (!viewsIntact(data)) {
          // Part of the buffer was unmapped while the exchange ran: the data did not (wholly) move.
          ctx.guestError('fcp_err_dma_unmapped', { handle: cmd.handle });
          complete(status(CompStatus.CS_DMA));
          return;
        }
        const t = Number.isInteger(r.transferred) && r.transferred > 0 ? r.transferred : 0;
        const moved = cmd.direction === 'none' ? 0 : Math.min(t, cmd.totalBytes);
        const residual = cmd.totalBytes - moved;
        const sense = r.scsiStatus === SAM_CHECK_CONDITION && r.sense ? r.sense : undefined;
        complete(
          status(residual > 0 ? CompStatus.CS_DATA_UNDERRUN : CompStatus.CS_COMPLETE, {
            scsiStatus: r.scsiStatus & 0xff,
            ...(residual > 0 ? { residual: { kind: 'under' as const, bytes: residual } } : {}),
            ...(sense ? { sense } : {}),
          }),
        );
      },
      (e) => {
        ctx.trace('fcp_err_exchange', { handle: cmd.handle, error: String(e) });
        complete(status(CompStatus.CS_TIMEOUT));
      },
    );
}
