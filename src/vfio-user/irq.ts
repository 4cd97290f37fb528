/**
 * Interrupt wiring for one vfio-user connection: DEVICE_SET_IRQS semantics from linux/vfio.h
 * (struct vfio_irq_set) as the vfio-user spec uses them, and the IrqSignaller handed to the
 * device.
 *
 * Per IRQ index (INTx, MSI, MSI-X, ERR, REQ) and vector the table holds:
 *  - the TRIGGER eventfd the server writes 1 to when the device raises the vector
 *    (with KVM this is an irqfd, so the interrupt bypasses QEMU);
 *  - optional MASK / UNMASK eventfds the *client* signals; for INTx QEMU binds KVM's resample
 *    fd as the UNMASK eventfd, so the guest's EOI unmasks the line without a message;
 *  - a masked flag (DATA_NONE/DATA_BOOL MASK/UNMASK, or set automatically after a trigger when
 *    the device reports VFIO_IRQ_INFO_AUTOMASKED — INTx level semantics).
 * Masking suppresses triggers; nothing is latched as pending here: on every unmask the owner
 * is told (onChanged) and the device re-evaluates its interrupt state (irqsChanged).
 *
 * Ownership: every fd passed to setIrqs() is either stored or closed before it returns, and
 * a stored fd is closed when it is replaced, de-assigned, or on release().
 */
import type { NativeShim, PollHandle } from '../native/index.js';
import type { IrqIndex, IrqInfo, IrqSignaller } from '../device/interrupts.js';
import { ERRNO, IRQ_SET, ProtocolError, type IrqSetPayload } from './protocol.js';
import type { Logger } from '../util/log.js';
import {
  VFIO_IRQ_INFO_AUTOMASKED,
  VFIO_IRQ_SET_ACTION_MASK,
  VFIO_IRQ_SET_ACTION_TRIGGER,
  VFIO_IRQ_SET_ACTION_TYPE_MASK,
  VFIO_IRQ_SET_DATA_BOOL,
  VFIO_IRQ_SET_DATA_EVENTFD,
  VFIO_IRQ_SET_DATA_NONE,
  VFIO_IRQ_SET_DATA_TYPE_MASK,
  VFIO_PCI_INTX_IRQ_INDEX,
  VFIO_PCI_MSIX_IRQ_INDEX,
  VFIO_PCI_MSI_IRQ_INDEX,
} from '../device/linux-vfio.js';

export type IrqNative = Pick<NativeShim, 'eventfdWrite' | 'eventfdRead' | 'close'>;
/** Watches an fd for readability (the server uses native.poll); absent → client eventfds for MASK/UNMASK are refused. */
export type FdWatcher = (fd: number, onReadable: () => void, onError: (errno: number) => void) => PollHandle;

/** PCI allows at most 2048 MSI-X vectors; a device claiming more is a bug. */
const MAX_VECTORS = 2048;

interface WatchedFd {
  fd: number;
  handle: PollHandle;
}

interface IrqLine {
  readonly info: IrqInfo;
  readonly trigger: (number | null)[];
  readonly maskFd: (WatchedFd | null)[];
  readonly unmaskFd: (WatchedFd | null)[];
  readonly masked: boolean[];
  /** number of non-null trigger entries (activeIndex() runs on every interrupt) */
  bound: number;
}

export interface IrqTableOptions {
  numIrqs: number;
  irqInfo(index: number): IrqInfo;
  native: IrqNative;
  watch: FdWatcher | null;
  /** a client eventfd masked/unmasked a vector (not called for setIrqs itself) */
  onChanged(index: IrqIndex): void;
  /** why an fd is not usable as an eventfd (see fdinfo.ts), or null; absent = no check */
  checkEventfd?: ((fd: number) => string | null) | null;
  log: Logger;
}

type Action = 'mask' | 'unmask' | 'trigger';

export class IrqTable implements IrqSignaller {
  private readonly lines = new Map<number, IrqLine>();

  constructor(private readonly options: IrqTableOptions) {}

  /**
   * Applies one DEVICE_SET_IRQS. Throws ProtocolError (EINVAL/ENOTSUP) for a request that
   * cannot be honoured; in every case each fd in `fds` ends up stored or closed.
   */
  setIrqs(req: IrqSetPayload, payloadLength: number, fds: number[]): void {
    let consumed = false;
    try {
      this.apply(req, payloadLength, fds);
      consumed = true;
    } finally {
      if (!consumed) this.closeAll(fds);
    }
  }

  trigger(index: IrqIndex, vector: number): boolean {
    const line = this.lines.get(index);
    if (!line || !Number.isInteger(vector) || vector < 0 || vector >= line.trigger.length) return false;
    const fd = line.trigger[vector];
    if (fd === null || fd === undefined || line.masked[vector]) return false;
    try {
      this.options.native.eventfdWrite(fd, 1n);
    } catch (err) {
      this.options.log.warn({ index, vector, fd, err }, 'irq_trigger_failed');
      return false;
    }
    if (line.info.flags & VFIO_IRQ_INFO_AUTOMASKED) line.masked[vector] = true;
    return true;
  }

  activeIndex(): IrqIndex | null {
    for (const index of [VFIO_PCI_MSIX_IRQ_INDEX, VFIO_PCI_MSI_IRQ_INDEX, VFIO_PCI_INTX_IRQ_INDEX] as const) {
      if (this.boundVectors(index) > 0) return index;
    }
    return null;
  }

  boundVectors(index: IrqIndex): number {
    const line = this.lines.get(index);
    return line ? line.bound : 0;
  }

  /** True if the vector is masked (for tests and diagnostics). */
  isMasked(index: IrqIndex, vector: number): boolean {
    return this.lines.get(index)?.masked[vector] ?? false;
  }

  /** Closes every stored fd and stops every watch (client disconnect). */
  release(): void {
    for (const index of this.lines.keys()) this.disableIndex(index);
    this.lines.clear();
  }

  // --- internals ------------------------------------------------------------------------

  private apply(req: IrqSetPayload, payloadLength: number, fds: number[]): void {
    const { index, start, count, flags } = req;
    if (!Number.isInteger(index) || index >= this.options.numIrqs) {
      throw new ProtocolError(
        ERRNO.EINVAL,
        `SET_IRQS: IRQ index ${index} out of range (device has ${this.options.numIrqs})`,
      );
    }
    const dataType = flags & VFIO_IRQ_SET_DATA_TYPE_MASK;
    const actionType = flags & VFIO_IRQ_SET_ACTION_TYPE_MASK;
    if ((flags & ~(VFIO_IRQ_SET_DATA_TYPE_MASK | VFIO_IRQ_SET_ACTION_TYPE_MASK)) !== 0) {
      throw new ProtocolError(ERRNO.EINVAL, `SET_IRQS: unknown flag bits 0x${flags.toString(16)}`);
    }
    if (!isOneBit(dataType) || !isOneBit(actionType)) {
      throw new ProtocolError(
        ERRNO.EINVAL,
        `SET_IRQS: flags 0x${flags.toString(16)} must name exactly one data type and one action`,
      );
    }
    const dataBytes = dataType === VFIO_IRQ_SET_DATA_BOOL ? count : 0;
    if (payloadLength !== IRQ_SET.SIZEOF + dataBytes || req.argsz !== payloadLength) {
      throw new ProtocolError(
        ERRNO.EINVAL,
        `SET_IRQS: argsz ${req.argsz} / payload ${payloadLength} bytes do not match ${IRQ_SET.SIZEOF}+${dataBytes}`,
      );
    }
    if (dataType !== VFIO_IRQ_SET_DATA_EVENTFD && fds.length > 0) {
      throw new ProtocolError(ERRNO.EINVAL, `SET_IRQS: ${fds.length} fds sent without DATA_EVENTFD`);
    }
    const action: Action =
      actionType === VFIO_IRQ_SET_ACTION_TRIGGER
        ? 'trigger'
        : actionType === VFIO_IRQ_SET_ACTION_MASK
          ? 'mask'
          : 'unmask';

    if (count === 0) {
      // linux/vfio.h: DATA_NONE|ACTION_TRIGGER with count 0 disables the whole index.
      if (dataType === VFIO_IRQ_SET_DATA_NONE && action === 'trigger' && start === 0) {
        this.disableIndex(index);
        return;
      }
      throw new ProtocolError(ERRNO.EINVAL, 'SET_IRQS: count 0 is only valid as DATA_NONE|ACTION_TRIGGER with start 0');
    }
    const line = this.line(index);
    if (start >= line.trigger.length || count > line.trigger.length - start) {
      throw new ProtocolError(
        ERRNO.EINVAL,
        `SET_IRQS: vectors [${start}, ${start + count}) exceed the ${line.trigger.length} of IRQ index ${index}`,
      );
    }

    switch (dataType) {
      case VFIO_IRQ_SET_DATA_EVENTFD:
        if (fds.length !== 0 && fds.length !== count) {
          throw new ProtocolError(
            ERRNO.EINVAL,
            `SET_IRQS: ${fds.length} fds for ${count} vectors (must be equal, or 0 to de-assign)`,
          );
        }
        for (const fd of fds) {
          const problem = this.options.checkEventfd?.(fd) ?? null;
          if (problem !== null) throw new ProtocolError(ERRNO.EINVAL, `SET_IRQS: ${problem}`);
        }
        this.bindEventfds(index, line, action, start, count, fds);
        return;
      case VFIO_IRQ_SET_DATA_NONE:
        for (let v = start; v < start + count; v++) this.act(index, line, action, v);
        return;
      case VFIO_IRQ_SET_DATA_BOOL:
        for (let i = 0; i < count; i++) if (req.data[i] !== 0) this.act(index, line, action, start + i);
        return;
    }
  }

  private bindEventfds(
    index: number,
    line: IrqLine,
    action: Action,
    start: number,
    count: number,
    fds: number[],
  ): void {
    if (action !== 'trigger' && fds.length > 0 && this.options.watch === null) {
      throw new ProtocolError(ERRNO.ENOTSUP, 'SET_IRQS: mask/unmask eventfds are not supported here');
    }
    for (let i = 0; i < count; i++) {
      const vector = start + i;
      const fd = fds.length > 0 ? fds[i]! : null;
      if (action === 'trigger') {
        const old = line.trigger[vector] ?? null;
        line.trigger[vector] = fd;
        line.bound += (fd !== null ? 1 : 0) - (old !== null ? 1 : 0);
        if (old !== null && old !== fd) this.closeFd(old);
      } else {
        const table = action === 'mask' ? line.maskFd : line.unmaskFd;
        const old = table[vector];
        if (old) this.unwatch(old);
        table[vector] = null;
        if (fd !== null) {
          try {
            table[vector] = this.watchClientFd(index, line, action, vector, fd);
          } catch (err) {
            // Validation is over and earlier vectors are bound: drop just this one, loudly.
            this.options.log.error({ index, vector, fd, err }, 'irq_client_eventfd_watch_failed');
            this.closeFd(fd);
          }
        }
      }
    }
  }

  private watchClientFd(index: number, line: IrqLine, action: Action, vector: number, fd: number): WatchedFd {
    const watch = this.options.watch!;
    const handle = watch(
      fd,
      () => {
        // Reset the counter; a null read means a spurious wake-up.
        let value: bigint | null;
        try {
          value = this.options.native.eventfdRead(fd);
        } catch (err) {
          this.options.log.warn({ index, vector, fd, err }, 'irq_client_eventfd_read_failed');
          return;
        }
        if (value === null) return;
        line.masked[vector] = action === 'mask';
        this.options.onChanged(index as IrqIndex);
      },
      (errno) => this.options.log.warn({ index, vector, fd, errno }, 'irq_client_eventfd_poll_error'),
    );
    return { fd, handle };
  }

  private act(index: number, line: IrqLine, action: Action, vector: number): void {
    if (action === 'mask') line.masked[vector] = true;
    else if (action === 'unmask') line.masked[vector] = false;
    else {
      // Client-initiated trigger (loopback): signal the bound eventfd as the device would.
      const fd = line.trigger[vector];
      if (fd !== null && fd !== undefined && !line.masked[vector]) {
        try {
          this.options.native.eventfdWrite(fd, 1n);
        } catch (err) {
          this.options.log.warn({ index, vector, fd, err }, 'irq_loopback_trigger_failed');
        }
      }
    }
  }

  private line(index: number): IrqLine {
    let line = this.lines.get(index);
    if (!line) {
      const info = this.options.irqInfo(index);
      const count = Math.min(Math.max(0, Math.trunc(info.count)), MAX_VECTORS);
      line = {
        info,
        trigger: new Array<number | null>(count).fill(null),
        maskFd: new Array<WatchedFd | null>(count).fill(null),
        unmaskFd: new Array<WatchedFd | null>(count).fill(null),
        masked: new Array<boolean>(count).fill(false),
        bound: 0,
      };
      this.lines.set(index, line);
    }
    return line;
  }

  private disableIndex(index: number): void {
    const line = this.lines.get(index);
    if (!line) return;
    for (let v = 0; v < line.trigger.length; v++) {
      const fd = line.trigger[v];
      if (fd !== null && fd !== undefined) this.closeFd(fd);
      line.trigger[v] = null;
      const m = line.maskFd[v];
      if (m) this.unwatch(m);
      line.maskFd[v] = null;
      const u = line.unmaskFd[v];
      if (u) this.unwatch(u);
      line.unmaskFd[v] = null;
      line.masked[v] = false;
    }
    line.bound = 0;
  }

  private unwatch(w: WatchedFd): void {
    w.handle.stop();
    this.closeFd(w.fd);
  }

  private closeAll(fds: readonly number[]): void {
    for (const fd of fds) this.closeFd(fd);
  }

  private closeFd(fd: number): void {
    try {
      this.options.native.close(fd);
    } catch (err) {
      this.options.log.warn({ fd, err }, 'irq_fd_close_failed');
    }
  }
}

function isOneBit(x: number): boolean {
  return x !== 0 && (x & (x - 1)) === 0;
}
