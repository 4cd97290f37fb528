import { describe, expect, it } from 'vitest';
import { BarConfigError } from '../../../src/pci/bar.js';
import { PciFunction } from '../../../src/pci/pci-function.js';
import * as R from '../../../src/pci/regs.js';

import {
  IO_BAR,
  makeFunction,
  MEM32_BAR,
  TEST_IDENTITY,
  MEM64_BAR,
  MSIX_BAR,
  MSIX_PBA_OFFSET,
  MSIX_VECTORS,
} from './fixture.js';
import { FakeIrq, fakeContext, le, RecordingBar, recordingLogger, u16, u32 } from './helpers.js';
import { mulberry32 } from '../../support/rng.js';
import {
  VFIO_IRQ_INFO_AUTOMASKED,
  VFIO_IRQ_INFO_EVENTFD,
  VFIO_IRQ_INFO_MASKABLE,
  VFIO_IRQ_INFO_NORESIZE,
  VFIO_PCI_CONFIG_REGION_INDEX,
  VFIO_PCI_ERR_IRQ_INDEX,
  VFIO_PCI_INTX_IRQ_INDEX,
  VFIO_PCI_MSIX_IRQ_INDEX,
  VFIO_PCI_MSI_IRQ_INDEX,
  VFIO_PCI_REQ_IRQ_INDEX,
  VFIO_PCI_ROM_REGION_INDEX,
  VFIO_PCI_VGA_REGION_INDEX,
} from '../../../src/device/linux-vfio.js';

const CFG = VFIO_PCI_CONFIG_REGION_INDEX;

function setup() {
  const t = makeFunction();
  const irq = new FakeIrq();
  t.fn.attach(fakeContext(irq));
  const wr = (off: number, value: number, len: number) => t.fn.regionWrite(CFG, off, le(value, len));
  const rd16 = (off: number) => u16(t.fn.regionRead(CFG, off, 2));
  const setCommand = (bits: number) => wr(R.PCI_COMMAND, bits, 2);
  const msiCtl = (v: number) => wr(t.fn.caps.msi!.offset + R.PCI_MSI_FLAGS, v, 2);
  const msixCtl = (v: number) => wr(t.fn.caps.msix!.offset + R.PCI_MSIX_FLAGS, v, 2);
  return { ...t, irq, wr, rd16, setCommand, msiCtl, msixCtl };
}

describe('region and IRQ info', () => {
  it('describes BARs, ROM, config and VGA as vfio regions', () => {
    const { fn } = setup();
    expect(fn.numRegions).toBe(9);
    expect(fn.regionInfo(IO_BAR)).toEqual({ size: 32, readable: true, writable: true });
    expect(fn.regionInfo(MEM32_BAR).size).toBe(4096);
    expect(fn.regionInfo(MEM64_BAR).size).toBe(65536);
    expect(fn.regionInfo(MEM64_BAR + 1).size).toBe(0);
    expect(fn.regionInfo(5).size).toBe(0);
    expect(fn.regionInfo(VFIO_PCI_ROM_REGION_INDEX)).toEqual({ size: 0, readable: false, writable: false });
    expect(fn.regionInfo(CFG)).toEqual({ size: 4096, readable: true, writable: true });
    expect(fn.regionInfo(VFIO_PCI_VGA_REGION_INDEX).size).toBe(0);
    expect(fn.regionInfo(99).size).toBe(0);
  });

  it('reports INTx, MSI, MSI-X, ERR and REQ', () => {
    const { fn } = setup();
    const E = VFIO_IRQ_INFO_EVENTFD;
    expect(fn.numIrqs).toBe(5);
    expect(fn.irqInfo(VFIO_PCI_INTX_IRQ_INDEX)).toEqual({
      count: 1,
      flags: E | VFIO_IRQ_INFO_MASKABLE | VFIO_IRQ_INFO_AUTOMASKED,
    });
    expect(fn.irqInfo(VFIO_PCI_MSI_IRQ_INDEX)).toEqual({ count: 1, flags: E | VFIO_IRQ_INFO_NORESIZE });
    expect(fn.irqInfo(VFIO_PCI_MSIX_IRQ_INDEX)).toEqual({ count: MSIX_VECTORS, flags: E | VFIO_IRQ_INFO_NORESIZE });
    expect(fn.irqInfo(VFIO_PCI_ERR_IRQ_INDEX)).toEqual({ count: 1, flags: E | VFIO_IRQ_INFO_NORESIZE });
    expect(fn.irqInfo(VFIO_PCI_REQ_IRQ_INDEX).count).toBe(1);
    expect(fn.irqInfo(7).count).toBe(0);
  });

  it('a conventional (non-PCIe) function reports no ERR vector', () => {
    const { fn } = makeFunction({}, { withAllCaps: false });
    expect(fn.irqInfo(VFIO_PCI_ERR_IRQ_INDEX).count).toBe(0);
    expect(fn.irqInfo(VFIO_PCI_MSI_IRQ_INDEX).count).toBe(0);
    expect(fn.irqInfo(VFIO_PCI_MSIX_IRQ_INDEX).count).toBe(0);
  });
});

describe('declare, bind, realize', () => {
  /** BAR0 declared with its model, BAR1 declared without: bound later. */
  function declared() {
    const rec = recordingLogger();
    const bar0 = new RecordingBar(32);
    const bar1 = new RecordingBar(4096);
    const fn = new PciFunction({
      name: 'phased',
      identity: TEST_IDENTITY,
      bars: new Map([
        [0, { kind: 'io' as const, size: 32, handler: bar0 }],
        [1, { kind: 'mem32' as const, size: 4096 }],
      ]),
      capabilities: {},
      logger: rec.log,
    });
    return { fn, bar0, bar1, rec };
  }

  it('realize() refuses a BAR declared but never bound; bindBar() completes it', () => {
    const { fn, bar1 } = declared();
    expect(() => fn.realize()).toThrow(BarConfigError);
    expect(fn.isRealized()).toBe(false);
    fn.bindBar(1, bar1);
    fn.realize();
    expect(fn.isRealized()).toBe(true);
    fn.attach(fakeContext(new FakeIrq()));
    fn.regionWrite(1, 8, le(0x1234, 4));
    expect(bar1.calls).toEqual([{ op: 'write', offset: 8, size: 4, value: 0x1234 }]);
  });

  it('bindBar() refuses an undeclared BAR, a second binding and a binding after realize()', () => {
    const { fn, bar1 } = declared();
    expect(() => fn.bindBar(2, bar1)).toThrow(BarConfigError);
    expect(() => fn.bindBar(0, bar1)).toThrow(BarConfigError);
    fn.bindBar(1, bar1);
    fn.realize();
    expect(() => fn.realize()).toThrow(BarConfigError);
    expect(() => fn.bindBar(1, bar1)).toThrow(BarConfigError);
  });

  it('before realize() no transport attaches and no region access reaches a model', () => {
    const { fn, bar0, rec } = declared();
    expect(() => fn.attach(fakeContext(new FakeIrq()))).toThrow(BarConfigError);
    expect([...fn.regionRead(0, 0, 4)]).toEqual([0xff, 0xff, 0xff, 0xff]);
    expect([...fn.regionRead(CFG, 0, 2)]).toEqual([0xff, 0xff]);
    fn.regionWrite(0, 0, le(1, 4));
    fn.regionWrite(CFG, R.PCI_COMMAND, le(R.PCI_COMMAND_MASTER, 2));
    expect(bar0.calls).toEqual([]);
    expect(rec.events()).toEqual([
      'err_region_read_unrealized',
      'err_region_read_unrealized',
      'err_region_write_unrealized',
      'err_region_write_unrealized',
    ]);
  });
});

describe('BAR dispatch', () => {
  it('passes aligned 1/2/4/8-byte accesses to the handler with offset, size and value', () => {
    const { fn, mem64, io } = setup();
    fn.regionWrite(MEM64_BAR, 0x10, le(0x11223344, 4));
    fn.regionWrite(MEM64_BAR, 0x18, new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]));
    fn.regionWrite(MEM64_BAR, 0x22, le(0xbeef, 2));
    fn.regionWrite(MEM64_BAR, 0x25, le(0x7a, 1));
    expect(mem64.calls).toEqual([
      { op: 'write', offset: 0x10, size: 4, value: 0x11223344 },
      { op: 'write', offset: 0x18, size: 8, value: 0x0807060504030201n },
      { op: 'write', offset: 0x22, size: 2, value: 0xbeef },
      { op: 'write', offset: 0x25, size: 1, value: 0x7a },
    ]);
    expect(u32(fn.regionRead(MEM64_BAR, 0x10, 4))).toBe(0x11223344);
    expect([...fn.regionRead(MEM64_BAR, 0x18, 8)]).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    fn.regionWrite(IO_BAR, 4, le(0xcafe, 2));
    expect(u16(fn.regionRead(IO_BAR, 4, 2))).toBe(0xcafe);
    expect(io.calls.length).toBe(2);
  });

  it('wrong width or misalignment never reaches the handler: reads all-ones, writes dropped, traced', () => {
    const { fn, mem32, io, rec } = setup();
    expect([...fn.regionRead(MEM32_BAR, 2, 4)]).toEqual([0xff, 0xff, 0xff, 0xff]);
    expect([...fn.regionRead(MEM32_BAR, 0, 3)]).toEqual([0xff, 0xff, 0xff]);
    expect(fn.regionRead(MEM32_BAR, 0, 16).every((b) => b === 0xff)).toBe(true);
    fn.regionWrite(MEM32_BAR, 1, le(1, 2));
    fn.regionWrite(MEM32_BAR, 0, new Uint8Array(0));
    fn.regionWrite(IO_BAR, 0, new Uint8Array(8)); // no 8-byte I/O transactions
    expect(mem32.calls).toEqual([]);
    expect(io.calls).toEqual([]);
    expect(rec.events()).toEqual(expect.arrayContaining(['ub_bar_read_width', 'ub_bar_write_width']));
  });

  it('absent regions answer all-ones and swallow writes', () => {
    const { fn, rec } = setup();
    expect([...fn.regionRead(5, 0, 4)]).toEqual([0xff, 0xff, 0xff, 0xff]);
    expect([...fn.regionRead(VFIO_PCI_ROM_REGION_INDEX, 0, 2)]).toEqual([0xff, 0xff]);
    expect(() => fn.regionWrite(VFIO_PCI_VGA_REGION_INDEX, 0, new Uint8Array(4))).not.toThrow();
    expect(rec.events()).toContain('ub_region_absent_read');
    expect(rec.events()).toContain('ub_region_absent_write');
  });

  it('a throwing handler is contained', () => {
    const { fn, mem32, rec } = setup();
    mem32.read = () => {
      throw new Error('model bug');
    };
    mem32.write = () => {
      throw new Error('model bug');
    };
    expect([...fn.regionRead(MEM32_BAR, 0, 4)]).toEqual([0xff, 0xff, 0xff, 0xff]);
    expect(() => fn.regionWrite(MEM32_BAR, 0, le(1, 4))).not.toThrow();
    expect(rec.records.filter((r) => r.event === 'err_bar_handler_threw').length).toBe(2);
  });

  it('in D3hot only config space answers', () => {
    const { fn, mem32, wr, rec } = setup();
    wr(fn.caps.pm!.offset + R.PCI_PM_CTRL, R.PCI_PM_STATE_D3HOT, 2);
    expect([...fn.regionRead(MEM32_BAR, 0, 4)]).toEqual([0xff, 0xff, 0xff, 0xff]);
    fn.regionWrite(MEM32_BAR, 0, le(5, 4));
    expect(mem32.calls).toEqual([]);
    expect(rec.events()).toContain('ub_bar_read_d3hot');
    wr(fn.caps.pm!.offset + R.PCI_PM_CTRL, R.PCI_PM_STATE_D0, 2);
    fn.regionWrite(MEM32_BAR, 0, le(5, 4));
    expect(mem32.calls.length).toBe(1);
  });

  it('handler results are truncated to the access width', () => {
    const { fn, mem32, mem64 } = setup();
    mem32.read = () => 0x1_2345_6789;
    expect([...fn.regionRead(MEM32_BAR, 0, 2)]).toEqual([0x89, 0x67]);
    mem32.read = () => 0xaabbccddn;
    expect(u32(fn.regionRead(MEM32_BAR, 0, 4))).toBe(0xaabbccdd);
    mem32.read = () => Number.NaN;
    expect([...fn.regionRead(MEM32_BAR, 0, 1)]).toEqual([0xff]);
    mem64.read = () => 0x1234;
    expect([...fn.regionRead(MEM64_BAR, 8, 8)]).toEqual([0x34, 0x12, 0, 0, 0, 0, 0, 0]);
    mem64.read = () => -1;
    expect(fn.regionRead(MEM64_BAR, 8, 8).every((b) => b === 0xff)).toBe(true);
  });

  it('random region accesses of any shape never throw', () => {
    const { fn } = setup();
    const rnd = mulberry32(42);
    for (let i = 0; i < 5000; i++) {
      const region = Math.floor(rnd() * 10);
      const size = fn.regionInfo(region).size || 64;
      const len = Math.floor(rnd() * 10);
      const off = Math.floor(rnd() * (size + 8)) - 4;
      if (rnd() < 0.5) {
        const out = fn.regionRead(region, off, len);
        expect(out).toBeInstanceOf(Uint8Array);
      } else {
        fn.regionWrite(
          region,
          off,
          new Uint8Array(len).map(() => Math.floor(rnd() * 256)),
        );
      }
    }
  });
});

describe('MSI-X table and PBA through the BAR', () => {
  it('table entries are stored, reserved bits read 0, mask bit set at reset', () => {
    const { fn, msixBar } = setup();
    const ctrl = R.PCI_MSIX_ENTRY_VECTOR_CTRL;
    expect(u32(fn.regionRead(MSIX_BAR, ctrl, 4))).toBe(1);
    fn.regionWrite(MSIX_BAR, 16 + R.PCI_MSIX_ENTRY_LOWER_ADDR, le(0xfee0_0003, 4));
    fn.regionWrite(MSIX_BAR, 16 + R.PCI_MSIX_ENTRY_UPPER_ADDR, le(0x2, 4));
    fn.regionWrite(MSIX_BAR, 16 + R.PCI_MSIX_ENTRY_DATA, le(0x4055, 4));
    fn.regionWrite(MSIX_BAR, 16 + ctrl, le(0xfffffffe, 4));
    expect(u32(fn.regionRead(MSIX_BAR, 16, 4))).toBe(0xfee00000);
    expect(u32(fn.regionRead(MSIX_BAR, 16 + ctrl, 4))).toBe(0);
    expect(fn.msixTable!.entry(1)).toEqual({ address: 0x2_fee0_0000n, data: 0x4055, masked: false });
    // qword access to address low+high
    const q = fn.regionRead(MSIX_BAR, 16, 8);
    expect(new DataView(q.buffer).getBigUint64(0, true)).toBe(0x2_fee0_0000n);
    fn.regionWrite(MSIX_BAR, 32, new Uint8Array([0x04, 0, 0xe0, 0xfe, 1, 0, 0, 0]));
    expect(fn.msixTable!.entry(2).address).toBe(0x1_fee0_0004n);
    // The device's own handler never sees table traffic.
    expect(msixBar.calls).toEqual([]);
  });

  it('table/PBA accept dword and qword only', () => {
    const { fn, rec } = setup();
    expect([...fn.regionRead(MSIX_BAR, 0, 2)]).toEqual([0xff, 0xff]);
    fn.regionWrite(MSIX_BAR, R.PCI_MSIX_ENTRY_VECTOR_CTRL, le(0, 1));
    expect(fn.msixTable!.vectorMasked(0)).toBe(true);
    expect(rec.events()).toEqual(expect.arrayContaining(['ub_msix_read_width', 'ub_msix_write_width']));
  });

  it('the PBA shows undeliverable vectors and is read-only', () => {
    const { fn, irq, setCommand, msixCtl, rec } = setup();
    setCommand(R.PCI_COMMAND_MASTER | R.PCI_COMMAND_MEMORY);
    msixCtl(R.PCI_MSIX_FLAGS_ENABLE | R.PCI_MSIX_FLAGS_MASKALL);
    irq.bind(VFIO_PCI_MSIX_IRQ_INDEX, MSIX_VECTORS);
    fn.notify(3);
    fn.notify(1);
    expect(irq.fired).toEqual([]);
    expect(u32(fn.regionRead(MSIX_BAR, MSIX_PBA_OFFSET, 4))).toBe(0b1010);
    expect(new DataView(fn.regionRead(MSIX_BAR, MSIX_PBA_OFFSET, 8).buffer).getBigUint64(0, true)).toBe(0b1010n);
    fn.regionWrite(MSIX_BAR, MSIX_PBA_OFFSET, le(0, 4));
    expect(u32(fn.regionRead(MSIX_BAR, MSIX_PBA_OFFSET, 4))).toBe(0b1010);
    expect(rec.events()).toContain('ub_msix_pba_write');
    // Clearing the function mask sends both, in vector order, and clears the PBA.
    msixCtl(R.PCI_MSIX_FLAGS_ENABLE);
    expect(irq.take()).toEqual([
      { index: VFIO_PCI_MSIX_IRQ_INDEX, vector: 1 },
      { index: VFIO_PCI_MSIX_IRQ_INDEX, vector: 3 },
    ]);
    expect(u32(fn.regionRead(MSIX_BAR, MSIX_PBA_OFFSET, 4))).toBe(0);
  });

  it('a vector out of the table range from the model is refused, not thrown', () => {
    const { fn, irq, setCommand, msixCtl, rec } = setup();
    setCommand(R.PCI_COMMAND_MASTER);
    msixCtl(R.PCI_MSIX_FLAGS_ENABLE);
    irq.bind(VFIO_PCI_MSIX_IRQ_INDEX, MSIX_VECTORS);
    fn.notify(MSIX_VECTORS);
    fn.notify(-1);
    expect(irq.fired).toEqual([]);
    expect(rec.events()).toContain('err_msix_vector_range');
  });
});

describe('interrupt routing', () => {
  it('INTx: rising edge triggers once; irqsChanged re-triggers while asserted; status bit follows the line', () => {
    const { fn, irq, rd16 } = setup();
    irq.bind(VFIO_PCI_INTX_IRQ_INDEX, 1);
    expect(fn.interruptMode()).toBe('intx');
    fn.setIrqLevel(true);
    fn.setIrqLevel(true);
    expect(irq.count(VFIO_PCI_INTX_IRQ_INDEX)).toBe(1);
    expect(rd16(R.PCI_STATUS) & R.PCI_STATUS_INTERRUPT).toBe(R.PCI_STATUS_INTERRUPT);
    fn.irqsChanged(VFIO_PCI_INTX_IRQ_INDEX); // QEMU's UNMASK after a BAR access
    expect(irq.count(VFIO_PCI_INTX_IRQ_INDEX)).toBe(2);
    fn.setIrqLevel(false);
    expect(rd16(R.PCI_STATUS) & R.PCI_STATUS_INTERRUPT).toBe(0);
    fn.irqsChanged(VFIO_PCI_INTX_IRQ_INDEX);
    expect(irq.count(VFIO_PCI_INTX_IRQ_INDEX)).toBe(2);
    fn.setIrqLevel(true);
    expect(irq.count(VFIO_PCI_INTX_IRQ_INDEX)).toBe(3);
  });

  it('INTx disable gates the output but not the status bit; clearing it with the line up fires', () => {
    const { fn, irq, setCommand, rd16 } = setup();
    irq.bind(VFIO_PCI_INTX_IRQ_INDEX, 1);
    setCommand(R.PCI_COMMAND_INTX_DISABLE);
    fn.setIrqLevel(true);
    fn.irqsChanged(VFIO_PCI_INTX_IRQ_INDEX);
    expect(irq.count(VFIO_PCI_INTX_IRQ_INDEX)).toBe(0);
    expect(rd16(R.PCI_STATUS) & R.PCI_STATUS_INTERRUPT).toBe(R.PCI_STATUS_INTERRUPT);
    setCommand(0);
    expect(irq.count(VFIO_PCI_INTX_IRQ_INDEX)).toBe(1);
  });

  it('MSI needs bus mastering; a message held back is sent when mastering is enabled', () => {
    const { fn, irq, setCommand, msiCtl } = setup();
    irq.bind(VFIO_PCI_MSI_IRQ_INDEX, 1);
    msiCtl(R.PCI_MSI_FLAGS_ENABLE);
    expect(fn.interruptMode()).toBe('msi');
    fn.setIrqLevel(true);
    expect(irq.fired).toEqual([]);
    setCommand(R.PCI_COMMAND_MASTER);
    expect(irq.take()).toEqual([{ index: VFIO_PCI_MSI_IRQ_INDEX, vector: 0 }]);
    // level stays up: no new edge, no new message; INTx is not used in MSI mode
    fn.irqsChanged(VFIO_PCI_INTX_IRQ_INDEX);
    fn.setIrqLevel(true);
    expect(irq.fired).toEqual([]);
    fn.setIrqLevel(false);
    fn.setIrqLevel(true);
    expect(irq.take()).toEqual([{ index: VFIO_PCI_MSI_IRQ_INDEX, vector: 0 }]);
  });

  it('an MSI message held back is dropped when the OS disables MSI', () => {
    const { fn, irq, setCommand, msiCtl } = setup();
    irq.bind(VFIO_PCI_MSI_IRQ_INDEX, 1);
    msiCtl(R.PCI_MSI_FLAGS_ENABLE);
    fn.notify(0); // no bus mastering: held
    msiCtl(0);
    msiCtl(R.PCI_MSI_FLAGS_ENABLE);
    setCommand(R.PCI_COMMAND_MASTER);
    expect(irq.fired).toEqual([]);
  });

  it('MSI-X wins over MSI, MSI over INTx', () => {
    const { fn, irq, setCommand, msiCtl, msixCtl } = setup();
    irq.bind(VFIO_PCI_INTX_IRQ_INDEX, 1);
    irq.bind(VFIO_PCI_MSI_IRQ_INDEX, 1);
    irq.bind(VFIO_PCI_MSIX_IRQ_INDEX, MSIX_VECTORS);
    setCommand(R.PCI_COMMAND_MASTER);
    msiCtl(R.PCI_MSI_FLAGS_ENABLE);
    msixCtl(R.PCI_MSIX_FLAGS_ENABLE);
    expect(fn.interruptMode()).toBe('msix');
    fn.notify(2);
    msixCtl(0);
    expect(fn.interruptMode()).toBe('msi');
    fn.notify(0);
    msiCtl(0);
    expect(fn.interruptMode()).toBe('intx');
    fn.notify(0);
    expect(irq.take()).toEqual([
      { index: VFIO_PCI_MSIX_IRQ_INDEX, vector: 2 },
      { index: VFIO_PCI_MSI_IRQ_INDEX, vector: 0 },
      { index: VFIO_PCI_INTX_IRQ_INDEX, vector: 0 },
    ]);
  });

  it('a message before QEMU binds the eventfd stays pending and goes out on irqsChanged', () => {
    const { fn, irq, setCommand, msixCtl } = setup();
    setCommand(R.PCI_COMMAND_MASTER);
    msixCtl(R.PCI_MSIX_FLAGS_ENABLE); // QEMU writes config first, then SET_IRQS
    fn.setIrqLevel(true);
    expect(irq.fired).toEqual([]);
    expect(fn.msixTable!.isPending(0)).toBe(true);
    irq.bind(VFIO_PCI_MSIX_IRQ_INDEX, 1);
    fn.irqsChanged(VFIO_PCI_MSIX_IRQ_INDEX);
    expect(irq.take()).toEqual([{ index: VFIO_PCI_MSIX_IRQ_INDEX, vector: 0 }]);
    expect(fn.msixTable!.isPending(0)).toBe(false);
    fn.irqsChanged(VFIO_PCI_MSIX_IRQ_INDEX);
    expect(irq.fired).toEqual([]);
  });

  it('switching to MSI-X while the line is up does not lose the edge', () => {
    const { fn, irq, setCommand, msixCtl } = setup();
    irq.bind(VFIO_PCI_MSIX_IRQ_INDEX, 1);
    setCommand(R.PCI_COMMAND_MASTER);
    fn.setIrqLevel(true); // INTx, nothing bound for it
    msixCtl(R.PCI_MSIX_FLAGS_ENABLE);
    expect(irq.take()).toEqual([{ index: VFIO_PCI_MSIX_IRQ_INDEX, vector: 0 }]);
  });

  it('tells listeners when the guest switches the interrupt mechanism, and contains their errors', () => {
    const { fn, msiCtl, msixCtl, setCommand } = setup();
    const seen: string[] = [];
    fn.onInterruptModeChange((m) => seen.push(m));
    fn.onInterruptModeChange(() => {
      throw new Error('listener bug');
    });
    setCommand(R.PCI_COMMAND_MASTER);
    msiCtl(R.PCI_MSI_FLAGS_ENABLE);
    msiCtl(R.PCI_MSI_FLAGS_ENABLE); // no change, no call
    msixCtl(R.PCI_MSIX_FLAGS_ENABLE);
    msixCtl(0);
    msiCtl(0);
    expect(seen).toEqual(['msi', 'msix', 'msi', 'intx']);
  });

  it('setIntxLine drives INTx only, never a message', () => {
    const { fn, irq, setCommand, msixCtl } = setup();
    irq.bind(VFIO_PCI_MSIX_IRQ_INDEX, 1);
    setCommand(R.PCI_COMMAND_MASTER);
    msixCtl(R.PCI_MSIX_FLAGS_ENABLE);
    fn.setIntxLine(true);
    expect(irq.fired).toEqual([]);
  });

  it('in D3hot nothing is signalled; back in D0 the held INTx and messages go out', () => {
    const { fn, irq, wr, setCommand, msiCtl } = setup();
    const pmctl = fn.caps.pm!.offset + R.PCI_PM_CTRL;
    irq.bind(VFIO_PCI_INTX_IRQ_INDEX, 1);
    wr(pmctl, R.PCI_PM_STATE_D3HOT, 2);
    fn.setIrqLevel(true);
    fn.irqsChanged(VFIO_PCI_INTX_IRQ_INDEX);
    expect(irq.fired).toEqual([]);
    wr(pmctl, R.PCI_PM_STATE_D0, 2);
    expect(irq.take()).toEqual([{ index: VFIO_PCI_INTX_IRQ_INDEX, vector: 0 }]);
    fn.setIrqLevel(false);
    irq.bind(VFIO_PCI_MSI_IRQ_INDEX, 1);
    setCommand(R.PCI_COMMAND_MASTER);
    msiCtl(R.PCI_MSI_FLAGS_ENABLE);
    wr(pmctl, R.PCI_PM_STATE_D3HOT, 2);
    fn.notify(0);
    expect(irq.fired).toEqual([]);
    wr(pmctl, R.PCI_PM_STATE_D0, 2);
    expect(irq.take()).toEqual([{ index: VFIO_PCI_MSI_IRQ_INDEX, vector: 0 }]);
  });

  it('no interrupts without an attached client, and none are lost for INTx when it comes back', () => {
    const { fn, irq } = setup();
    fn.detach();
    expect(() => fn.setIrqLevel(true)).not.toThrow();
    fn.attach(fakeContext(irq));
    irq.bind(VFIO_PCI_INTX_IRQ_INDEX, 1);
    fn.irqsChanged(VFIO_PCI_INTX_IRQ_INDEX);
    expect(irq.count(VFIO_PCI_INTX_IRQ_INDEX)).toBe(1);
    expect(fn.memory()).not.toBeNull();
    fn.detach();
    expect(fn.memory()).toBeNull();
  });
});

describe('function-level reset', () => {
  it('restores power-on config, clears interrupt state and runs the handlers through enter/hold/exit', () => {
    const { fn, irq, wr, setCommand, msixCtl, mem32, mem64 } = setup();
    const powerOn = fn.regionRead(CFG, 0, 4096);
    setCommand(R.PCI_COMMAND_MASTER | R.PCI_COMMAND_MEMORY | R.PCI_COMMAND_INTX_DISABLE);
    wr(R.PCI_BASE_ADDRESS_0 + 4 * MEM32_BAR, 0xfebf0000, 4);
    wr(R.PCI_INTERRUPT_LINE, 11, 1);
    msixCtl(R.PCI_MSIX_FLAGS_ENABLE | R.PCI_MSIX_FLAGS_MASKALL);
    fn.notify(2);
    fn.regionWrite(MSIX_BAR, R.PCI_MSIX_ENTRY_VECTOR_CTRL, le(0, 4));
    fn.setIrqLevel(true);
    fn.reset();
    expect([...fn.regionRead(CFG, 0, 4096)]).toEqual([...powerOn]);
    expect(fn.interruptMode()).toBe('intx');
    expect(fn.msixTable!.pendingVectors()).toEqual([]);
    expect(fn.msixTable!.vectorMasked(0)).toBe(true);
    expect(mem32.resets).toEqual(['enter:function', 'hold:function', 'exit:function']);
    expect(mem64.resets).toEqual(['enter:function', 'hold:function', 'exit:function']);
    // The line is low after reset: an unmask does not re-fire.
    irq.bind(VFIO_PCI_INTX_IRQ_INDEX, 1);
    fn.irqsChanged(VFIO_PCI_INTX_IRQ_INDEX);
    expect(irq.fired).toEqual([]);
  });

  it('every handler sees enter before any sees hold', () => {
    const { fn, mem32, mem64 } = setup();
    const order: string[] = [];
    mem32.resetEnter = () => order.push('a-enter');
    mem32.resetHold = () => order.push('a-hold');
    mem64.resetEnter = () => order.push('b-enter');
    mem64.resetHold = () => order.push('b-hold');
    fn.reset();
    expect(order.indexOf('a-hold')).toBeGreaterThan(order.indexOf('b-enter'));
    expect(order.indexOf('b-hold')).toBeGreaterThan(order.indexOf('a-enter'));
  });
});
