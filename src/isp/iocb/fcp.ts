/**
 * FCP command execution of the emulated ISP2532 firmware: a Command Type 7 decoded by the ring
 * codec (CDB/LUN in SAM order, validated data segments) is carried to the target as an FCP
 * exchange through the FabricPort, data is moved between the guest's segments and the exchange,
 * and the result becomes a Status Type 0 as qla2xxx 10.02.x qla2x00_status_entry reads it
 * (qla24xx_start_scsi builds the command).
 *
 *   not logged in / PRLI not done   → CS_PORT_LOGGED_OUT (link up) or CS_PORT_UNAVAILABLE (down)
 *   fewer bytes than FCP_DL         → CS_DATA_UNDERRUN + residual (firmware-computed)
 *   CHECK CONDITION                 → scsi status 0x02 + sense (the codec caps/continues sense)
 *   guest data segment unmapped     → CS_DMA (DID_ERROR) — the exchange's data never half-lands
 *   transport failure               → CS_ABORTED / CS_PORT_UNAVAILABLE / CS_PORT_LOGGED_OUT / CS_TIMEOUT
 * An exchange terminated by Abort IO, a TMF or link loss completes once, with that status.
 */
import { CompStatus } from '../../../assembly/shared/iocb.js';
import type { GuestMemory } from '../../device/guest-memory.js';
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
  }
}

/** Gathers write data from the guest's segments (copy-in). Null on a DMA error. */
function gather(mem: GuestMemory, segments: DataSegment[], total: number): Uint8Array | null {
  const out = new Uint8Array(total);
  let at = 0;
  try {
    for (const s of segments) {
      const n = Math.min(s.length, total - at);
      if (n <= 0) break;
      mem.readInto(s.address, out, at, n);
      at += n;
    }
  } catch {
    return null;
  }
  return out;
}

/**
 * Scatters read data into the guest's segments; false on a DMA error. Every segment is checked
 * before the first byte is written, so a fault in segment k leaves segments below k untouched.
 */
function scatter(mem: GuestMemory, segments: DataSegment[], data: Uint8Array): boolean {
  let at = 0;
  for (const s of segments) {
    if (at >= data.length) break;
    const n = Math.min(s.length, data.length - at);
    if (!mem.isMapped(s.address, n, 'write')) return false;
    at += n;
  }
  at = 0;
  try {
    for (const s of segments) {
      if (at >= data.length) break;
      const n = Math.min(s.length, data.length - at);
      mem.write(s.address, data.subarray(at, at + n));
      at += n;
    }
  } catch {
    return false;
  }
  return true;
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
  let dataOut: Uint8Array | null = null;
  if (cmd.direction === 'write') {
    dataOut = gather(mem, cmd.segments, cmd.totalBytes);
    if (!dataOut) {
      ctx.guestError('fcp_err_write_dma', { handle: cmd.handle });
      ctx.postStatus(status(CompStatus.CS_DMA));
      return;
    }
  }

  const gen = ctx.port.generation;
  let done = false;
  const complete = (s: StatusType0): boolean => {
    if (done || gen !== ctx.port.generation) return false;
    done = true;
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
      dataOut,
      taskTag: cmd.handle,
    })
    .then(
      (r) => {
        if (done || gen !== ctx.port.generation) return;
        if (r.transportError) {
          complete(status(transportStatus(r.transportError)));
          return;
        }
        let moved: number;
        if (cmd.direction === 'read') {
          const data = r.dataIn ? r.dataIn.subarray(0, cmd.totalBytes) : new Uint8Array(0);
          const m = ctx.dma.memory();
          if (!m || !scatter(m, cmd.segments, data)) {
            ctx.guestError('fcp_err_read_dma', { handle: cmd.handle });
            complete(status(CompStatus.CS_DMA));
            return;
          }
          moved = data.length;
        } else if (cmd.direction === 'write') {
          moved = Math.min(r.transferred ?? cmd.totalBytes, cmd.totalBytes);
        } else {
          moved = 0;
        }
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
