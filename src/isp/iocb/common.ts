/**
 * Helpers shared by the management IOCB handlers (qla2xxx 10.02.x, ISP24xx/25xx entry formats
 * in assembly/shared/iocb-mgmt.ts).
 */
import { IOCB_SIZE, IocbHeader } from '../../../assembly/shared/iocb.js';

export type IocbPath = 'ring' | 'mailbox';

export function view(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

/** A completion entry that starts as a copy of the request's first 64 bytes. */
export function echo(request: Uint8Array): Uint8Array {
  const c = request.slice(0, IOCB_SIZE);
  c[IocbHeader.ENTRY_COUNT] = 1;
  return c;
}

/** The generic way to decline: echo with entry_status bits set (qla2x00_error_entry → DID_ERROR). */
export function declined(request: Uint8Array, entryStatus: number): Uint8Array {
  const c = echo(request);
  c[IocbHeader.ENTRY_STATUS] = c[IocbHeader.ENTRY_STATUS]! | entryStatus;
  return c;
}

export function handleOf(entry: Uint8Array): number {
  return view(entry).getUint32(IocbHeader.HANDLE, true);
}

/** port_id[3] in request IOCBs: al_pa, area, domain. */
export function readPortIdLe(b: Uint8Array, off: number): number {
  return b[off]! | (b[off + 1]! << 8) | (b[off + 2]! << 16);
}

export function writePortIdLe(b: Uint8Array, off: number, id: number): void {
  b[off] = id & 0xff;
  b[off + 1] = (id >>> 8) & 0xff;
  b[off + 2] = (id >>> 16) & 0xff;
}

/** host_to_fcp_swap(): byte i of an FCP field stored at (i & ~3) + 3 − (i & 3). */
export function fcpSwap(src: Uint8Array): Uint8Array {
  const out = new Uint8Array(src.length);
  for (let i = 0; i < src.length; i++) out[(i & ~3) + 3 - (i & 3)] = src[i]!;
  return out;
}
