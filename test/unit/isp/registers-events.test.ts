import { describe, expect, it } from 'vitest';
import { EventFifo, INTR_TYPE } from '../../../src/isp/events.js';
import { HCCRX, REG } from '../../../src/isp/registers.js';
import { FakeHost, Rig } from './helpers.js';

describe('register file: reset dance of qla24xx_reset_risc', () => {
  it('DMA shutdown, soft reset and RISC reset leave mb0 = 0 and self-clearing bits at 0', () => {
    const rig = new Rig();
    rig.w32(REG.ICTRL, 0);
    rig.w32(REG.CTRL_STATUS, 0x10030);
    expect(rig.r32(REG.CTRL_STATUS) & (1 << 17)).toBe(0); // DMA_ACTIVE
    rig.w32(REG.CTRL_STATUS, 0x10031);
    expect(rig.outMb(0)).toBe(0);
    expect(rig.r32(REG.CTRL_STATUS) & 1).toBe(0); // SOFT_RESET cleared synchronously
    expect(rig.r32(REG.CTRL_STATUS)).toBe(0x10030);
    rig.w32(REG.HCCR, HCCRX.SET_RISC_RESET << 28);
    expect(rig.r32(REG.HCCR) & (1 << 5)).not.toBe(0);
    rig.w32(REG.HCCR, HCCRX.REL_RISC_PAUSE << 28);
    rig.w32(REG.HCCR, HCCRX.CLR_RISC_RESET << 28);
    expect(rig.r32(REG.HCCR) & (1 << 5)).toBe(0);
    expect(rig.outMb(0)).toBe(0);
    expect(rig.outMb(1)).toBe(0x4953); // "IS"
    expect(rig.outMb(2)).toBe(0x5020); // "P "
    expect(rig.r32(REG.HOST_STATUS)).toBe(0);
  });

  it('pause sets host_status BIT8 only until released', () => {
    const rig = new Rig();
    rig.w32(REG.HCCR, HCCRX.SET_RISC_PAUSE << 28);
    expect(rig.r32(REG.HOST_STATUS) & 0x100).toBe(0x100);
    rig.w32(REG.HCCR, HCCRX.REL_RISC_PAUSE << 28);
    expect(rig.r32(REG.HOST_STATUS) & 0x100).toBe(0);
  });

  it('mailboxes: writes go inbound, reads come from outbound; 32-bit access spans two mailboxes', async () => {
    const rig = new Rig();
    rig.isp.mmioWrite(REG.MAILBOX0 + 2, 2, 0xaaaa);
    expect(rig.outMb(1)).toBe(0x4953); // not what was written
    const r = await rig.mbox([0x06, 0xaaaa, 0x5555, 0xaa55, 0x55aa, 0xa5a5, 0x5a5a, 0x2525]);
    expect(r.mb.slice(0, 8)).toEqual([0x4000, 0xaaaa, 0x5555, 0xaa55, 0x55aa, 0xa5a5, 0x5a5a, 0x2525]);
    expect(r.hostStatus & 0xff).toBe(INTR_TYPE.ROM_MB_SUCCESS);
    expect(rig.isp.mmioRead(REG.MAILBOX0 + 4, 4)).toBe(((0xaa55 << 16) | 0x5555) >>> 0); // mb2 low, mb3 high
  });

  it('rejects misaligned and odd-width accesses without side effects', () => {
    const rig = new Rig();
    expect(rig.isp.mmioRead(REG.HOST_STATUS + 1, 2)).toBe(0);
    expect(rig.isp.mmioRead(REG.HOST_STATUS, 3)).toBe(0);
    rig.isp.mmioWrite(REG.CTRL_STATUS + 2, 4, 0xffffffff);
    expect(rig.r32(REG.CTRL_STATUS)).toBe(0);
    expect(rig.isp.mmioRead(0x3ffc, 4)).toBe(0); // unimplemented part of BAR1
    rig.w32(REG.HOST_STATUS, 0x12345678); // read-only
    expect(rig.r32(REG.HOST_STATUS)).toBe(0);
  });

  it('stored registers (GPIO, ATIO pointers) read back; fw-dump windows read 0', () => {
    const rig = new Rig();
    rig.isp.mmioWrite(REG.GPIOD, 2, 0x1234);
    expect(rig.isp.mmioRead(REG.GPIOD, 2)).toBe(0x1234);
    rig.w32(REG.ATIO_Q_IN, 7);
    expect(rig.r32(REG.ATIO_Q_IN)).toBe(7);
    expect(rig.r32(REG.IOBASE_SDATA)).toBe(0);
  });
});

describe('event FIFO: host_status latch and CLR_RISC_INT', () => {
  const mk = () => {
    const host = new FakeHost(null);
    const outbound = new Uint16Array(32);
    const fifo = new EventFifo(host, outbound);
    return { host, outbound, fifo };
  };
  const mb = (...v: number[]) => {
    const a = new Uint16Array(32);
    a.set(v);
    return a;
  };

  it('latches only the head; acknowledge latches the next synchronously', () => {
    const { fifo, outbound } = mk();
    fifo.push({ type: INTR_TYPE.ASYNC_EVENT, mailboxes: mb(0x8011, 4) });
    fifo.push({ type: INTR_TYPE.MB_SUCCESS, mailboxes: mb(0x4000, 9) });
    expect(fifo.hostStatus()).toBe(((0x8011 << 16) | 0x8000 | 0x12) >>> 0);
    expect(outbound[1]).toBe(4);
    fifo.acknowledge();
    expect(fifo.hostStatus()).toBe(((0x4000 << 16) | 0x8000 | 0x10) >>> 0);
    expect(outbound[1]).toBe(9);
    fifo.acknowledge();
    expect(fifo.hostStatus()).toBe(0);
    expect(outbound[1]).toBe(9); // outbound registers keep their last values
  });

  it('latches with interrupts disabled (probe polls) but asserts INTx only when enabled', () => {
    const { fifo, host } = mk();
    fifo.push({ type: INTR_TYPE.MB_SUCCESS, mailboxes: mb(0x4000) });
    expect(fifo.hostStatus() & 0x8000).toBe(0x8000);
    expect(host.intx).toBe(false);
    fifo.setInterruptsEnabled(true);
    expect(host.intx).toBe(true);
    fifo.acknowledge();
    expect(host.intx).toBe(false);
  });

  it('INTx re-asserts after acknowledge while events remain', () => {
    const { fifo, host } = mk();
    fifo.setInterruptsEnabled(true);
    fifo.push({ type: INTR_TYPE.ASYNC_EVENT, mailboxes: mb(0x8011) });
    fifo.push({ type: INTR_TYPE.ASYNC_EVENT, mailboxes: mb(0x8014) });
    const before = host.intxChanges;
    fifo.acknowledge();
    expect(host.intx).toBe(true);
    expect(host.intxChanges).toBe(before + 2); // deassert then assert
  });

  it('MSI-X: one message on vector 0 per latched event', () => {
    const { fifo, host } = mk();
    host.mode = 'msix';
    fifo.setInterruptsEnabled(true);
    fifo.push({ type: INTR_TYPE.ASYNC_EVENT, mailboxes: mb(0x8011) });
    fifo.push({ type: INTR_TYPE.ASYNC_EVENT, mailboxes: mb(0x8014) });
    expect(host.messages).toEqual([0]);
    fifo.acknowledge();
    expect(host.messages).toEqual([0, 0]);
    fifo.acknowledge();
    expect(host.messages).toEqual([0, 0]);
    expect(host.intxChanges).toBe(0);
  });

  it('response-queue updates coalesce only into an unlatched 0x13', () => {
    const { fifo } = mk();
    fifo.responsesPublished();
    fifo.pushResponseUpdate(); // latched immediately
    fifo.pushResponseUpdate(); // latched one is running: queue another
    fifo.pushResponseUpdate(); // merges into the queued one
    expect(fifo.pending).toBe(2);
    expect(fifo.hostStatus()).toBe(0x8013);
  });

  it('clear() drops everything and deasserts', () => {
    const { fifo, host } = mk();
    fifo.setInterruptsEnabled(true);
    fifo.push({ type: INTR_TYPE.ASYNC_EVENT, mailboxes: mb(0x8011) });
    fifo.clear();
    expect(fifo.pending).toBe(0);
    expect(host.intx).toBe(false);
    expect(fifo.hostStatus()).toBe(0);
  });

  it('bounds the FIFO against a driver that never acknowledges', () => {
    const { fifo } = mk();
    for (let i = 0; i < 1000; i++) fifo.push({ type: INTR_TYPE.ASYNC_EVENT, mailboxes: mb(0x8005) });
    expect(fifo.pending).toBeLessThanOrEqual(256);
  });
});
