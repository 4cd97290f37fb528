/** Test doubles for the PCI function tests: a recording IrqSignaller, a recording logger, a BAR handler. */
import type { Logger } from '../../../src/util/log.js';
import type { AccessSize, BarHandler } from '../../../src/pci/bar.js';
import type { ResetType } from '../../../src/pci/reset.js';
import type { GuestMemory } from '../../../src/device/guest-memory.js';
import type { IrqIndex, IrqSignaller } from '../../../src/device/interrupts.js';
import type { DeviceContext } from '../../../src/device/context.js';
import {
  VFIO_PCI_INTX_IRQ_INDEX,
  VFIO_PCI_MSIX_IRQ_INDEX,
  VFIO_PCI_MSI_IRQ_INDEX,
} from '../../../src/device/linux-vfio.js';

/** Records triggers; vectors are "bound" per index as a test sets them (like SET_IRQS would). */
export class FakeIrq implements IrqSignaller {
  readonly fired: { index: IrqIndex; vector: number }[] = [];
  private readonly bound = new Map<IrqIndex, number>();

  bind(index: IrqIndex, vectors: number): void {
    this.bound.set(index, vectors);
  }

  unbindAll(): void {
    this.bound.clear();
  }

  trigger(index: IrqIndex, vector: number): boolean {
    if (vector >= (this.bound.get(index) ?? 0)) return false;
    this.fired.push({ index, vector });
    return true;
  }

  activeIndex(): IrqIndex | null {
    for (const i of [VFIO_PCI_MSIX_IRQ_INDEX, VFIO_PCI_MSI_IRQ_INDEX, VFIO_PCI_INTX_IRQ_INDEX] as const)
      if ((this.bound.get(i) ?? 0) > 0) return i;
    return null;
  }

  boundVectors(index: IrqIndex): number {
    return this.bound.get(index) ?? 0;
  }

  count(index: IrqIndex, vector = 0): number {
    return this.fired.filter((f) => f.index === index && f.vector === vector).length;
  }

  take(): { index: IrqIndex; vector: number }[] {
    return this.fired.splice(0);
  }
}

export function fakeContext(irq: IrqSignaller): DeviceContext {
  const memory = {} as GuestMemory;
  return { memory, irq };
}

export interface LogRecord {
  level: string;
  event?: string;
  fields: Record<string, unknown>;
}

/** A pino-shaped logger that keeps what was logged. */
export function recordingLogger(): { log: Logger; records: LogRecord[]; events: () => string[] } {
  const records: LogRecord[] = [];
  const make = (): Record<string, unknown> => {
    const at = (level: string) => (obj: unknown) => {
      const fields = typeof obj === 'object' && obj !== null ? (obj as Record<string, unknown>) : { msg: obj };
      records.push({ level, event: fields.event as string | undefined, fields });
    };
    const l: Record<string, unknown> = {
      trace: at('trace'),
      debug: at('debug'),
      info: at('info'),
      warn: at('warn'),
      error: at('error'),
      fatal: at('fatal'),
      isLevelEnabled: () => true,
    };
    l.child = () => l;
    return l;
  };
  return { log: make() as unknown as Logger, records, events: () => records.map((r) => r.event ?? '') };
}

/** A BAR handler over a byte array that records every call, for dispatch tests. */
export class RecordingBar implements BarHandler {
  readonly calls: { op: 'read' | 'write'; offset: number; size: AccessSize; value?: number | bigint }[] = [];
  readonly resets: string[] = [];
  readonly mem: Uint8Array;

  constructor(size: number) {
    this.mem = new Uint8Array(size);
  }

  read(offset: number, size: AccessSize): number | bigint {
    this.calls.push({ op: 'read', offset, size });
    let v = 0n;
    for (let i = size - 1; i >= 0; i--) v = (v << 8n) | BigInt(this.mem[offset + i]!);
    return size === 8 ? v : Number(v);
  }

  write(offset: number, size: AccessSize, value: number | bigint): void {
    this.calls.push({ op: 'write', offset, size, value });
    let v = BigInt(value);
    for (let i = 0; i < size; i++) {
      this.mem[offset + i] = Number(v & 0xffn);
      v >>= 8n;
    }
  }

  resetEnter(type: ResetType): void {
    this.resets.push(`enter:${type}`);
  }

  resetHold(type: ResetType): void {
    this.resets.push(`hold:${type}`);
  }

  resetExit(type: ResetType): void {
    this.resets.push(`exit:${type}`);
  }
}

export function le(value: number, size: number): Uint8Array {
  const out = new Uint8Array(size);
  for (let i = 0; i < size; i++) out[i] = Math.floor(value / 2 ** (8 * i)) & 0xff;
  return out;
}

export function u16(b: Uint8Array, at = 0): number {
  return b[at]! | (b[at + 1]! << 8);
}

export function u32(b: Uint8Array, at = 0): number {
  return (b[at]! | (b[at + 1]! << 8) | (b[at + 2]! << 16) | (b[at + 3]! << 24)) >>> 0;
}
