/**
 * A hostile guest: random register traffic, random mailbox commands with random operands and
 * random request-ring contents never throw out of the model, never hang it, and leave a device
 * that a soft reset brings back to a working state.
 */
import { describe, expect, it } from 'vitest';
import { REG, HCCRX } from '../../../src/isp/registers.js';
import { MAILBOX_COMMANDS } from '../../../src/isp/mailbox.js';
import { MEM_BASE, MEM_SIZE, REQ_RING, REQ_LEN, Rig } from './helpers.js';
import { rng } from '../../support/rng.js';

describe('hostile guest input', () => {
  it('survives 20000 random BAR1 accesses, then recovers with a soft reset', async () => {
    const rig = new Rig();
    await rig.bringUp();
    const r = rng(0x1234).u32;
    const sizes = [1, 2, 4, 3, 8];
    for (let i = 0; i < 20000; i++) {
      const size = sizes[r() % sizes.length]!;
      const offset = r() % 0x4000;
      if (r() & 1) rig.isp.mmioRead(offset, size);
      else rig.isp.mmioWrite(offset, size, r());
      if (i % 1000 === 0) await rig.settle();
    }
    await rig.settle();
    rig.w32(REG.ICTRL, 0);
    rig.w32(REG.CTRL_STATUS, 0x10031);
    expect(rig.outMb(0)).toBe(0);
    expect(rig.r32(REG.HOST_STATUS)).toBe(0);
    rig.rspOut = 0;
    rig.aens.length = 0;
    await rig.bringUp();
    expect(rig.aens.map((a) => a[0])).toEqual([0x8011, 0x8014]);
  });

  it('answers every mailbox command with random operands (no throw, no hang)', async () => {
    const rig = new Rig();
    await rig.bringUp();
    const r = rng(0xbeef).u32;
    const opcodes = [...MAILBOX_COMMANDS.map((c) => c.opcode), 0x7f, 0xffff, 0x4000];
    for (const op of opcodes) {
      if (op === 0x14 || op === 0x60 || op === 0x48) continue; // these legitimately change state; covered elsewhere
      for (let k = 0; k < 5; k++) {
        const mb = [op, ...Array.from({ length: 31 }, () => r() & 0xffff)];
        if (k & 1) {
          // Aim the DMA address at guest memory sometimes, so the handlers get past the address check.
          const a = MEM_BASE + BigInt(r() % (MEM_SIZE - 0x10000));
          mb[2] = Number((a >> 16n) & 0xffffn);
          mb[3] = Number(a & 0xffffn);
          mb[6] = 0;
          mb[7] = 0;
        }
        const res = await rig.mbox(mb);
        expect(res.mb[0]! & 0xf000).toBe(0x4000);
      }
    }
  });

  it('consumes a request ring full of random entries and keeps answering', async () => {
    const rig = new Rig();
    await rig.bringUp();
    rig.takeResponses();
    const r = rng(0xfeed).u32;
    const junk = new Uint8Array(REQ_LEN * 64).map(() => r() & 0xff);
    for (let i = 0; i < REQ_LEN; i++) {
      // Mostly plausible types so the handlers, not just the type check, see garbage.
      const types = [0x52, 0x29, 0x39, 0x33, 0x14, 0x04, 0x18, 0x0a, 0x53, 0x30, r() & 0xff];
      junk[i * 64] = types[r() % types.length]!;
    }
    rig.mem.write(REQ_RING, junk);
    rig.w32(REG.REQ_Q_IN, REQ_LEN - 1);
    for (let i = 0; i < 20; i++) {
      await rig.drainEvents();
      rig.takeResponses();
    }
    expect(rig.r32(REG.REQ_Q_OUT)).toBe(REQ_LEN - 1);
    // Still a working firmware.
    const v = await rig.mbox([0x08]);
    expect(v.mb[0]).toBe(0x4000);
    rig.w32(REG.HCCR, HCCRX.CLR_RISC_INT << 28);
  });
});
