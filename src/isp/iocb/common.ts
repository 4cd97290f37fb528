/**
 * Helpers shared by the management IOCB handlers (qla2xxx 10.02.x, ISP24xx/25xx entry formats
 * in assembly/shared/iocb-mgmt.ts).
 */
import { EntryType, IOCB_SIZE, IocbHeader } from '../../../assembly/shared/iocb.js';
import { view } from '../../util/bytes.js';

export type IocbPath = 'ring' | 'mailbox';

/** A completion entry that starts as a copy of the request's first 64 bytes. */
export function echo(request: Uint8Array): Uint8Array {
  const c = request.slice(0, IOCB_SIZE);
  c[IocbHeader.ENTRY_COUNT] = 1;
  return c;
}

/**
 * The generic way to decline: return the entry with entry_status bits set, which
 * qla2x00_error_entry turns into DID_ERROR for the srb behind the handle. Types every driver
 * version routes by handle (LOGIO, CT, ELS, Abort, MBX) are echoed; anything else comes back as
 * a Status Type 0 with the original handle, as the ring engine does for entries it rejects.
 */
export function declined(request: Uint8Array, entryStatus: number): Uint8Array {
  const type = request[IocbHeader.ENTRY_TYPE]!;
  let c: Uint8Array;
  if (ECHOED_ON_ERROR.has(type)) {
    c = echo(request);
  } else {
    c = new Uint8Array(IOCB_SIZE);
    c[IocbHeader.ENTRY_TYPE] = EntryType.STATUS_TYPE;
    c[IocbHeader.ENTRY_COUNT] = 1;
    c.set(request.subarray(IocbHeader.HANDLE, IocbHeader.HANDLE + 4), IocbHeader.HANDLE);
  }
  c[IocbHeader.ENTRY_STATUS] = c[IocbHeader.ENTRY_STATUS]! | entryStatus;
  return c;
}

const ECHOED_ON_ERROR = new Set<number>([
  EntryType.LOGINOUT_PORT_IOCB_TYPE,
  EntryType.CT_IOCB_TYPE,
  EntryType.ELS_IOCB_TYPE,
  EntryType.ABORT_IOCB_TYPE,
  EntryType.MBX_IOCB_TYPE,
]);

export function handleOf(entry: Uint8Array): number {
  return view(entry).getUint32(IocbHeader.HANDLE, true);
}

/** host_to_fcp_swap(): byte i of an FCP field stored at (i & ~3) + 3 − (i & 3). */
export function fcpSwap(src: Uint8Array): Uint8Array {
  const out = new Uint8Array(src.length);
  for (let i = 0; i < src.length; i++) out[(i & ~3) + 3 - (i & 3)] = src[i]!;
  return out;
}
