/**
 * Response-interrupt coalescing of the ISP model (src/isp/events.ts, src/isp/queues.ts), checked
 * against what qla2xxx's handlers do: qla24xx_msix_default / qla24xx_intr_handler read host_status,
 * then qla24xx_process_response_queue reads rsp_q_in once, consumes every entry up to it, writes
 * rsp_q_out, and the handler writes CLR_RISC_INT. No completion may be left without an
 * interrupt that leads to it; no interrupt may be raised whose handler finds nothing.
 */
import { describe, expect, it } from 'vitest';
import { HCCRX, REG } from '../../../src/isp/registers.js';
import type { FcpResult } from '../../../src/isp/fabric-port.js';
import { le32, Rig } from './helpers.js';

const TARGET = { portId: 0x010400, wwpn: 0x500a098012345678n, wwnn: 0x500a098000345678n };
const NPORT = 0x10;
const ICB_INTERRUPT_DELAY_TIMER = 88;
const ICB_FIRMWARE_OPTIONS_2 = 96;

/** A Command Type 7 without data (TEST UNIT READY) to TARGET. */
function tur(handle: number): Uint8Array {
  const b = new Uint8Array(64);
  const dv = new DataView(b.buffer);
  b[0] = 0x18;
  b[1] = 1;
  dv.setUint32(4, handle, true);
  dv.setUint16(8, NPORT, true);
  b[48] = TARGET.portId & 0xff;
  b[49] = (TARGET.portId >> 8) & 0xff;
  b[50] = TARGET.portId >> 16;
  return b;
}

/** Login IOCB (PLOGI + PRLI) for NPORT. */
function logio(handle: number): Uint8Array {
  const b = new Uint8Array(64);
  const dv = new DataView(b.buffer);
  b[0] = 0x52;
  b[1] = 1;
  dv.setUint32(4, handle, true);
  dv.setUint16(10, NPORT, true);
  dv.setUint16(12, 0x10, true);
  b[16] = 0x00;
  b[17] = 0x04;
  b[18] = 0x01;
  return b;
}

const turn = () => new Promise((r) => setImmediate(r));

interface Held {
  rig: Rig;
  /** completes the held command with this handle (GOOD status) */
  release(handle: number): void;
}

/** A logged-in rig on MSI-X whose FCP commands stay outstanding until released. */
async function rigHolding(icb: (dv: DataView) => void = () => {}): Promise<Held> {
  const rig = new Rig([TARGET]);
  await rig.bringUp(icb);
  rig.takeResponses();
  rig.postRequest(logio(1));
  await rig.drainEvents();
  rig.takeResponses();
  rig.host.mode = 'msix';
  const waiting = new Map<number, (r: FcpResult) => void>();
  rig.fabric.fcpHandler = (_p, c) => new Promise((resolve) => waiting.set(c.taskTag, resolve));
  return {
    rig,
    release(handle) {
      const r = waiting.get(handle);
      if (!r) throw new Error(`handle ${handle} is not outstanding`);
      waiting.delete(handle);
      r({ scsiStatus: 0, sense: null, transferred: 0 });
    },
  };
}

/** Issues commands and lets the ring drain (they are then outstanding at the fabric). */
async function issue(rig: Rig, ...handles: number[]): Promise<void> {
  for (const h of handles) rig.postRequest(tur(h));
  rig.sched.runDeferred();
  await turn();
}

/** Completes a command up to "status queued, flush not yet run". */
async function complete(h: Held, handle: number): Promise<void> {
  h.release(handle);
  await turn();
}

/** qla2xxx's vector-0 handler for a 0x13: the handles it consumed, or null if nothing was latched. */
function handler(rig: Rig): number[] | null {
  const hs = rig.r32(REG.HOST_STATUS);
  if (!(hs & 0x8000)) return null;
  expect(hs & 0xff).toBe(0x13);
  const handles = rig.takeResponses().map((e) => le32(e, 4)); // reads rsp_q_in, writes rsp_q_out
  rig.w32(REG.HCCR, HCCRX.CLR_RISC_INT << 28);
  return handles;
}

describe('response coalescing: flush on rsp_q_in read, no redundant trailing 0x13', () => {
  it('a rsp_q_in read publishes completions still waiting for their deferred flush', async () => {
    const h = await rigHolding();
    await issue(h.rig, 0x100);
    await complete(h, 0x100);
    const q = h.rig.isp.queues;
    expect(q.responseBacklog).toBe(1); // status queued, flush deferred
    const before = q.responseIn;
    expect(h.rig.r32(REG.RSP_Q_IN)).toBe(before + 1);
    expect(q.responseBacklog).toBe(0);
  });

  it('drops the 0x13 queued behind a running handler whose rsp_q_in read saw everything', async () => {
    const h = await rigHolding();
    const { rig } = h;
    await issue(rig, 0x101, 0x102);
    await complete(h, 0x101);
    rig.sched.runDeferred(); // flush: 0x13 latched, one message
    expect(rig.host.messages.length).toBe(1);
    await complete(h, 0x102);
    rig.sched.runDeferred(); // flush: another 0x13 queued behind the latched one
    expect(rig.isp.events.pending).toBe(2);
    expect(handler(rig)).toEqual([0x101, 0x102]); // one pass consumed both
    expect(rig.host.messages.length).toBe(1); // no trailing interrupt
    expect(rig.r32(REG.HOST_STATUS) & 0x8000).toBe(0);
    expect(rig.isp.events.suppressedUpdates).toBe(1);
  });

  it('keeps the trailing 0x13 for entries published after the handler read rsp_q_in', async () => {
    const h = await rigHolding();
    const { rig } = h;
    await issue(rig, 0x103, 0x104);
    await complete(h, 0x103);
    rig.sched.runDeferred();
    expect(rig.r32(REG.HOST_STATUS) & 0xff).toBe(0x13);
    expect(rig.takeResponses().map((e) => le32(e, 4))).toEqual([0x103]); // the handler's read
    await complete(h, 0x104);
    rig.sched.runDeferred(); // published after that read
    rig.w32(REG.HCCR, HCCRX.CLR_RISC_INT << 28);
    expect(rig.host.messages.length).toBe(2); // the next 0x13 is raised
    expect(handler(rig)).toEqual([0x104]);
    expect(rig.r32(REG.HOST_STATUS) & 0x8000).toBe(0);
  });

  it('a completion flushed by the handler read itself owes no further interrupt', async () => {
    const h = await rigHolding();
    const { rig } = h;
    await issue(rig, 0x105, 0x106);
    await complete(h, 0x105);
    rig.sched.runDeferred();
    await complete(h, 0x106); // status waits for its flush while the handler runs
    expect(handler(rig)).toEqual([0x105, 0x106]);
    rig.sched.runDeferred(); // the deferred flush finds nothing left
    expect(rig.host.messages.length).toBe(1);
    expect(rig.r32(REG.HOST_STATUS) & 0x8000).toBe(0);
  });

  it('random interleavings of completions, flushes and handler steps: every completion is delivered, no empty interrupt', async () => {
    for (let seed = 1; seed <= 40; seed++) {
      let x = seed;
      const rnd = (n: number) => {
        x = (x * 1103515245 + 12345) & 0x7fffffff;
        return x % n;
      };
      const h = await rigHolding();
      const { rig } = h;
      const handles = Array.from({ length: 12 }, (_, i) => 0x200 + i);
      await issue(rig, ...handles);
      const open = [...handles];
      const delivered: number[] = [];
      let empty = 0;
      let msgSeen = 0;
      // The driver runs its handler once per message; it may also be "running" while things happen.
      for (let step = 0; step < 400 && delivered.length < handles.length; step++) {
        const a = rnd(3);
        if (a === 0 && open.length) await complete(h, open.splice(rnd(open.length), 1)[0]!);
        else if (a === 1) rig.sched.runDeferred();
        else if (rig.host.messages.length > msgSeen) {
          msgSeen++;
          const got = handler(rig);
          if (got === null || got.length === 0) empty++;
          else delivered.push(...got);
        }
      }
      // Quiesce: everything completed, flushed, and handled while messages arrive.
      while (open.length) await complete(h, open.shift()!);
      rig.sched.runDeferred();
      while (rig.host.messages.length > msgSeen) {
        msgSeen++;
        const got = handler(rig);
        if (got === null || got.length === 0) empty++;
        else delivered.push(...got);
      }
      expect(delivered.sort()).toEqual(handles);
      expect(empty).toBe(0);
      expect(rig.r32(REG.HOST_STATUS) & 0x8000).toBe(0);
    }
  });
});

describe('ZIO mode 6 from the ICB: delay the 0x13 only while other commands are outstanding', () => {
  const zio = (timer: number) => (dv: DataView) => {
    dv.setUint32(ICB_FIRMWARE_OPTIONS_2, 6, true);
    dv.setUint16(ICB_INTERRUPT_DELAY_TIMER, timer, true);
  };

  it('a lone command (QD1) is never delayed', async () => {
    const h = await rigHolding(zio(2));
    expect(h.rig.isp.queues.zioActive).toBe(true);
    await issue(h.rig, 0x300);
    await complete(h, 0x300);
    h.rig.sched.runDeferred();
    expect(h.rig.host.messages.length).toBe(1);
  });

  it('with others outstanding the 0x13 waits for the timer (2 × 100 µs), then fires once for all', async () => {
    const h = await rigHolding(zio(2));
    const { rig } = h;
    const base = rig.isp.queues.responseIn;
    await issue(rig, 0x301, 0x302, 0x303);
    await complete(h, 0x301);
    rig.sched.runDeferred();
    await complete(h, 0x302);
    rig.sched.runDeferred();
    expect(rig.host.messages.length).toBe(0); // entries are in the ring, the interrupt waits
    expect(rig.isp.queues.responseIn).toBe(base + 2);
    rig.sched.advance(0.1);
    expect(rig.host.messages.length).toBe(0);
    rig.sched.advance(0.1);
    expect(rig.host.messages.length).toBe(1);
    expect(handler(rig)).toEqual([0x301, 0x302]);
    expect(rig.host.messages.length).toBe(1);
  });

  it('the last outstanding command raises the interrupt at once and cancels the timer', async () => {
    const h = await rigHolding(zio(2));
    const { rig } = h;
    await issue(rig, 0x304, 0x305);
    await complete(h, 0x304);
    rig.sched.runDeferred();
    expect(rig.host.messages.length).toBe(0);
    await complete(h, 0x305);
    rig.sched.runDeferred();
    expect(rig.host.messages.length).toBe(1);
    expect(handler(rig)).toEqual([0x304, 0x305]);
    rig.sched.advance(1);
    expect(rig.host.messages.length).toBe(1);
  });

  it('a delayed 0x13 that a running handler overtook is not raised', async () => {
    const h = await rigHolding(zio(2));
    const { rig } = h;
    await issue(rig, 0x306, 0x307, 0x308);
    await complete(h, 0x306);
    rig.sched.runDeferred(); // delayed
    expect(rig.takeResponses().map((e) => le32(e, 4))).toEqual([0x306]); // e.g. a poll reaps it
    rig.sched.advance(1);
    expect(rig.host.messages.length).toBe(0);
    expect(rig.r32(REG.HOST_STATUS) & 0x8000).toBe(0);
  });

  it('ZIO off (mode 0) or another mode: one interrupt per flush, no delay', async () => {
    for (const mode of [0, 5]) {
      const h = await rigHolding((dv) => dv.setUint32(ICB_FIRMWARE_OPTIONS_2, mode, true));
      expect(h.rig.isp.queues.zioActive).toBe(false);
      await issue(h.rig, 0x309, 0x30a);
      await complete(h, 0x309);
      h.rig.sched.runDeferred();
      expect(h.rig.host.messages.length).toBe(1);
    }
  });
});
