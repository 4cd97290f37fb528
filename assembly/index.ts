/**
 * Ring engine: the hot command-queue path of the emulated QLogic ISP2532 (24xx/25xx firmware
 * interface as driven by Linux qla2xxx 10.02.x), compiled to build/ring.wasm.
 *
 * Build notes (asconfig.json): the engine needs the stub runtime,
 * raw bindings and initialMemory ≥ 2 pages (LAYOUT_END = 0x19400 bytes); it never allocates
 * and never grows memory, so a maximumMemory equal to initialMemory would also be fine. It
 * makes no use of asserts or exceptions: guest input is reported through return codes and
 * records, so `noAssert` in the release target changes nothing. No imports are required
 * beyond the optional env.abort of the stub runtime.
 *
 * Design
 * ------
 * WASM cannot see guest RAM (an mmapped vfio-user DMA window), so the TypeScript side
 * (src/isp/ring/engine.ts) moves bytes and this module does the parsing and encoding on its own
 * fixed linear memory (map in assembly/shared/ring-layout.ts):
 *
 *   guest request ring ──readInto (copy-in, once)──▶ request scratch ──reqConsume──▶ records +
 *                                                                         segment table ──▶ TS
 *   TS status/raw entries ──▶ control block ──rspPostStatus/rspPostRaw──▶ response FIFO
 *   response FIFO ──rspFlushPlan (room in guest ring)──▶ TS write ──rspFlushCommit──▶ FIFO head
 *
 * Only plain i32 values cross the boundary; inputs larger than a scalar go through the control
 * block. Every loop is bounded by the host-given budget or by fixed capacities, and every index
 * or count the guest wrote is range-checked before use: a malformed IOCB becomes an ERROR
 * record plus an error response (entry_status RF_* bits, original handle) the driver completes
 * with DID_ERROR (qla2x00_error_entry); it never causes an out-of-bounds access or a hang.
 *
 * Layouts are numeric offsets shared with TypeScript (assembly/shared/*.ts) rather than
 * @unmanaged classes: AssemblyScript aligns class fields naturally, but cmd_type_7 places a
 * 64-bit DSD address at offset 52, and the TypeScript side needs the same offsets anyway.
 * The ASCII diagrams live next to those offsets.
 */
import { IocbLimits } from './shared/iocb';
import { CONTROL_BASE, CONTROL_SIZE, LAYOUT_BASE, LAYOUT_END, WASM_PAGE_SIZE, Ctl, EngineResult } from './shared/ring-layout';
import { ctlStore32 } from './mem';
import { fifoClear } from './response';

export { reqConsume } from './request';
export { rspPostStatus, rspPostRaw, rspFlushPlan, rspFlushCommit } from './response';

/** Checks that static data and memory size fit the layout and clears the control block. */
export function init(): i32 {
  if (<usize>__heap_base > <usize>LAYOUT_BASE) return EngineResult.ERR_LAYOUT;
  if (<usize>memory.size() * <usize>WASM_PAGE_SIZE < <usize>LAYOUT_END) return EngineResult.ERR_LAYOUT;
  memory.fill(<usize>CONTROL_BASE, 0, <usize>CONTROL_SIZE);
  return EngineResult.OK;
}

/**
 * Sets ring lengths and validation limits (the host validated bases and computed lengths from
 * the init control block). Also empties the response FIFO: (re)configuration happens at
 * firmware initialization, when nothing may be pending.
 *   reqEntries, rspEntries  1..65535
 *   maxHandleIndex          highest outstanding_cmds index accepted in a handle, 1..65535
 *   maxQueueId              highest request-queue id accepted in a handle's upper 16 bits
 *   maxVpIndex              highest vp_index accepted in Command Type 7, 0..255
 *   maxTransfer             largest byte_count accepted in Command Type 7
 */
export function configure(
  reqEntries: i32,
  rspEntries: i32,
  maxHandleIndex: i32,
  maxQueueId: i32,
  maxVpIndex: i32,
  maxTransfer: u32,
): i32 {
  const maxRing = <i32>IocbLimits.MAX_RING_ENTRIES;
  if (reqEntries < 1 || reqEntries > maxRing || rspEntries < 1 || rspEntries > maxRing) return EngineResult.ERR_INVALID;
  if (maxHandleIndex < 1 || maxHandleIndex > <i32>IocbLimits.MAX_HANDLE_INDEX) return EngineResult.ERR_INVALID;
  if (maxQueueId < 0 || maxQueueId > <i32>IocbLimits.MAX_QUEUE_ID) return EngineResult.ERR_INVALID;
  if (maxVpIndex < 0 || maxVpIndex > <i32>IocbLimits.MAX_VP_INDEX) return EngineResult.ERR_INVALID;
  ctlStore32(Ctl.REQ_ENTRIES, <u32>reqEntries);
  ctlStore32(Ctl.RSP_ENTRIES, <u32>rspEntries);
  ctlStore32(Ctl.MAX_HANDLE_INDEX, <u32>maxHandleIndex);
  ctlStore32(Ctl.MAX_QUEUE_ID, <u32>maxQueueId);
  ctlStore32(Ctl.MAX_VP_INDEX, <u32>maxVpIndex);
  ctlStore32(Ctl.MAX_TRANSFER, maxTransfer);
  ctlStore32(Ctl.CONFIGURED, 1);
  fifoClear();
  return EngineResult.OK;
}

/** Drops every queued response entry (chip reset). */
export function resetResponses(): void {
  fifoClear();
}
