/**
 * One PCI Express function served over vfio-user: config space (config-space.ts), capabilities
 * (capabilities.ts), BARs whose registers a device model provides through `BarHandler`s, the
 * MSI-X table/PBA (msix.ts), interrupt routing and phased function-level reset (reset.ts).
 *
 * Regions (linux/vfio.h): BAR0..5 = 0..5 (a 64-bit BAR's upper slot has size 0), ROM = 6 (absent,
 * size 0), CONFIG = 7 (4096 bytes), VGA = 8 (absent). IRQs: INTx (count 1 if the pin is set,
 * EVENTFD|MASKABLE|AUTOMASKED), MSI (count = vectors of the MSI capability), MSI-X (count = table
 * size), ERR (1 for a PCIe function unless turned off — nothing signals it yet: no AER), REQ (1).
 *
 * Interrupt routing follows the enable bits the guest wrote to config space: MSI-X if enabled,
 * else MSI if enabled, else INTx. QEMU writes those bits through to the server *before* it
 * rebinds eventfds (hw/vfio/pci.c vfio_pci_write_config), so in the short window in between a
 * message finds no eventfd: it stays pending (PBA bit / MSI pending flag) and is sent when
 * irqsChanged() reports the new binding. irq.activeIndex() is cross-checked and a disagreement
 * traced. Messages need bus mastering (PCI_COMMAND_MASTER) and D0; MSI-X also an unmasked
 * function. INTx is level-triggered: the eventfd fires on a rising edge of the effective output
 * (line asserted ∧ INTx routing ∧ INTx-disable clear ∧ D0) and again on every irqsChanged(INTX)
 * while the output is still high — QEMU unmasks INTx after each BAR access as its EOI heuristic,
 * and the AUTOMASKED contract requires the re-trigger. The status register's interrupt bit
 * mirrors the line.
 *
 * Construction has two phases, as libvfio-user's vfu_setup_region() … vfu_realize_ctx(): the
 * constructor declares regions and IRQs (BAR kinds and sizes, capabilities); bindBar() attaches
 * the register model of each BAR that was declared without one; realize() checks that every BAR
 * has its model and opens the function to a transport. Before realize() attach() throws (a host
 * configuration error) and region accesses are refused (logged err_*, answered like an absent
 * region), so no access can reach a BAR whose model does not exist yet.
 *
 * Guest-controlled input never throws: bad widths/alignments, accesses to absent regions, and
 * accesses while in D3hot are traced (pino debug, event names ub_*) and ignored, reads answering
 * all-ones as an unclaimed PCI read would. A throwing BarHandler is logged as err_* and treated
 * the same way.
 */
import {
  allOnes,
  BarConfigError,
  barAcceptsWidth,
  decodeLe,
  encodeLe,
  type AccessSize,
  type BarDescription,
  type BarHandler,
} from './bar.js';
import {
  CapabilityChainBuilder,
  CapabilityLayoutError,
  walkCapabilities,
  type CapabilitySet,
  type MsixLayout,
  type PcieLinkOptions,
} from './capabilities.js';
import { ConfigSpace, type PciIdentity } from './config-space.js';
import { MsixTable } from './msix.js';
import { runResetPhases, type Resettable, type ResetType } from './reset.js';
import {
  PCIE_CONFIG_SPACE_SIZE,
  PCI_COMMAND_INTX_DISABLE,
  PCI_COMMAND_MASTER,
  PCI_PM_STATE_D0,
  PCI_PM_STATE_D3HOT,
} from './regs.js';
import { logger as makeLogger, type Logger } from '../util/log.js';
import type { GuestMemory } from '../device/guest-memory.js';
import type { InterruptMode, IrqIndex, IrqInfo } from '../device/interrupts.js';
import type { DeviceContext, RegionInfo } from '../device/context.js';
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
  VFIO_PCI_NUM_IRQS,
  VFIO_PCI_NUM_REGIONS,
  VFIO_PCI_REQ_IRQ_INDEX,
} from '../device/linux-vfio.js';

export interface PciCapabilityOptions {
  /** Power Management capability (D0/D3hot). */
  pm?: { at?: number };
  /** PCI Express endpoint capability v2. */
  pcie?: PcieLinkOptions & { at?: number };
  /** 64-bit MSI with `vectors` (power of two, 1..32). */
  msi?: { vectors: number; at?: number };
  /** MSI-X with table and PBA in memory BARs. */
  msix?: MsixLayout & { at?: number };
}

export interface PciFunctionDescription {
  /** Used in logs. */
  name: string;
  identity: PciIdentity;
  /** BAR index (0..5) → description. A mem64 BAR also occupies index + 1. */
  bars: ReadonlyMap<number, BarDescription>;
  capabilities: PciCapabilityOptions;
  /**
   * Offer the ERR IRQ (count 1). Default: yes for a PCI Express function, as kernel vfio-pci does
   * (vfio_pci_get_irq_count); QEMU warns "Could not enable error recovery for the device" when a
   * function reports no ERR vector.
   */
  errIrq?: boolean;
  logger?: Logger;
}

/** How many INTx re-triggers / message attempts one event may cause is bounded by the table size. */
const MSI_MAX_VECTORS = 32;

/**
 * Shaped as the region/IRQ device a transport serves (src/vfio-user/device-api.ts VfioUserDevice);
 * the compiler checks that where the server is given one, so this module never imports a transport.
 */
export class PciFunction implements Resettable {
  readonly numRegions = VFIO_PCI_NUM_REGIONS;
  readonly numIrqs = VFIO_PCI_NUM_IRQS;
  readonly name: string;
  readonly config: ConfigSpace;
  readonly caps: CapabilitySet;
  readonly msixTable: MsixTable | null;

  private readonly log: Logger;
  private readonly errIrq: boolean;
  private ctx: DeviceContext | null = null;
  /** The device model's INTx line (before INTx-disable / routing). */
  private line = false;
  /** True when the line came from setIrqLevel (edges become messages in MSI/MSI-X mode). */
  private lineDrivesMessages = false;
  /** The INTx output after gating; the eventfd fires on its rising edge. */
  private intxOutput = false;
  /** MSI vectors with a message waiting (bit per vector). */
  private msiPending = 0;
  private readonly modeListeners: ((mode: InterruptMode) => void)[] = [];
  /** Register model per BAR index: from the description, or bound with bindBar(). */
  private readonly handlers = new Map<number, BarHandler>();
  private realized = false;

  constructor(desc: PciFunctionDescription) {
    this.name = desc.name;
    this.log = desc.logger ?? makeLogger('pci', { fn: desc.name });
    this.errIrq = desc.errIrq ?? desc.capabilities.pcie !== undefined;
    this.config = new ConfigSpace(desc.identity, desc.bars, PCIE_CONFIG_SPACE_SIZE);
    const b = new CapabilityChainBuilder(this.config);
    const c = desc.capabilities;
    if (c.pm) b.addPowerManagement(c.pm.at);
    if (c.pcie) b.addPciExpress(c.pcie, c.pcie.at);
    if (c.msi) b.addMsi(c.msi.vectors, c.msi.at);
    if (c.msix) b.addMsix(c.msix, c.msix.at);
    this.caps = b.finish();
    this.msixTable = this.caps.msix ? new MsixTable(this.caps.msix.layout) : null;
    const walk = walkCapabilities((o) => this.config.regs.getU8(o));
    if (walk.error !== null || walk.found.length !== this.caps.chain.length) {
      throw new CapabilityLayoutError(`capability chain self-check failed: ${walk.error ?? 'count mismatch'}`);
    }
    this.config.sealPowerOnImage();
    for (const [index, bar] of desc.bars) if (bar.handler) this.handlers.set(index, bar.handler);
  }

  // ---------------------------------------------------------------------------------------
  // Binding and realize (host configuration: errors throw)
  // ---------------------------------------------------------------------------------------

  /** Binds the register model of a BAR declared without one. */
  bindBar(index: number, handler: BarHandler): void {
    if (this.realized) throw new BarConfigError(`${this.name}: BAR${index} bound after realize()`);
    if (!this.config.bars.has(index)) throw new BarConfigError(`${this.name}: BAR${index} is not declared`);
    if (this.handlers.has(index)) throw new BarConfigError(`${this.name}: BAR${index} is already bound`);
    this.handlers.set(index, handler);
  }

  /** Ends construction: every declared BAR must have its register model. */
  realize(): void {
    if (this.realized) throw new BarConfigError(`${this.name}: realize() called twice`);
    const unbound = [...this.config.bars.keys()].filter((i) => !this.handlers.has(i));
    if (unbound.length) throw new BarConfigError(`${this.name}: BAR${unbound.join(', BAR')} declared but never bound`);
    this.realized = true;
  }

  isRealized(): boolean {
    return this.realized;
  }

  // ---------------------------------------------------------------------------------------
  // Regions and IRQs, as a transport serves them
  // ---------------------------------------------------------------------------------------

  regionInfo(index: number): RegionInfo {
    if (index === VFIO_PCI_CONFIG_REGION_INDEX) return { size: this.config.size, readable: true, writable: true };
    const bar = this.config.bars.get(index);
    if (bar !== undefined) return { size: bar.size, readable: true, writable: true };
    // ROM, VGA, unimplemented BARs and the upper half of a 64-bit BAR.
    return { size: 0, readable: false, writable: false };
  }

  irqInfo(index: number): IrqInfo {
    const messageFlags = VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_NORESIZE;
    switch (index) {
      case VFIO_PCI_INTX_IRQ_INDEX:
        return this.config.interruptPin() !== 0
          ? { count: 1, flags: VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_MASKABLE | VFIO_IRQ_INFO_AUTOMASKED }
          : { count: 0, flags: 0 };
      case VFIO_PCI_MSI_IRQ_INDEX:
        return this.caps.msi ? { count: this.caps.msi.vectorsSupported, flags: messageFlags } : { count: 0, flags: 0 };
      case VFIO_PCI_MSIX_IRQ_INDEX:
        return this.msixTable ? { count: this.msixTable.vectors, flags: messageFlags } : { count: 0, flags: 0 };
      case VFIO_PCI_ERR_IRQ_INDEX:
        return this.errIrq ? { count: 1, flags: messageFlags } : { count: 0, flags: 0 };
      case VFIO_PCI_REQ_IRQ_INDEX:
        return { count: 1, flags: messageFlags };
      default:
        return { count: 0, flags: 0 };
    }
  }

  attach(ctx: DeviceContext): void {
    if (!this.realized) throw new BarConfigError(`${this.name}: attached before realize()`);
    this.ctx = ctx;
  }

  detach(): void {
    this.ctx = null;
  }

  regionRead(index: number, offset: number, length: number): Uint8Array {
    if (!Number.isInteger(length) || length < 0 || !Number.isInteger(offset) || offset < 0) {
      this.trace('ub_region_read_args', { region: index, offset, length });
      return new Uint8Array(0);
    }
    if (!this.realized) {
      this.log.error(
        { event: 'err_region_read_unrealized', region: index, offset, length },
        'region read before realize()',
      );
      return allOnes(length);
    }
    if (index === VFIO_PCI_CONFIG_REGION_INDEX) {
      if (!this.config.regs.contains(offset, length)) {
        this.trace('ub_config_read_range', { offset, length });
        return allOnes(length);
      }
      return this.config.read(offset, length);
    }
    const bar = this.config.bars.get(index);
    if (bar === undefined) {
      this.trace('ub_region_absent_read', { region: index, offset, length });
      return allOnes(length);
    }
    if (!this.barAccessValid(index, bar, offset, length, 'read')) return allOnes(length);
    const size = length as AccessSize;
    const msix = this.msixTable;
    if (msix?.overlaps(index, offset, size)) return this.msixRead(msix, index, offset, size);
    try {
      return encodeLe(this.handlers.get(index)!.read(offset, size), size);
    } catch (err) {
      this.log.error({ event: 'err_bar_handler_threw', region: index, offset, length, err }, 'BAR read handler threw');
      return allOnes(length);
    }
  }

  regionWrite(index: number, offset: number, data: Uint8Array): void {
    const length = data.length;
    if (!Number.isInteger(offset) || offset < 0) {
      this.trace('ub_region_write_args', { region: index, offset, length });
      return;
    }
    if (!this.realized) {
      this.log.error(
        { event: 'err_region_write_unrealized', region: index, offset, length },
        'region write before realize()',
      );
      return;
    }
    if (index === VFIO_PCI_CONFIG_REGION_INDEX) {
      if (!this.config.regs.contains(offset, length)) {
        this.trace('ub_config_write_range', { offset, length });
        return;
      }
      this.configWrite(offset, data);
      return;
    }
    const bar = this.config.bars.get(index);
    if (bar === undefined) {
      this.trace('ub_region_absent_write', { region: index, offset, length });
      return;
    }
    if (!this.barAccessValid(index, bar, offset, length, 'write')) return;
    const size = length as AccessSize;
    const value = decodeLe(data, size);
    const msix = this.msixTable;
    if (msix?.overlaps(index, offset, size)) {
      this.msixWrite(msix, index, offset, size, value);
      return;
    }
    try {
      this.handlers.get(index)!.write(offset, size, size === 8 ? value : Number(value));
    } catch (err) {
      this.log.error({ event: 'err_bar_handler_threw', region: index, offset, length, err }, 'BAR write handler threw');
    }
  }

  irqsChanged(index: IrqIndex): void {
    switch (index) {
      case VFIO_PCI_INTX_IRQ_INDEX:
        // QEMU's EOI / resample path: if the line is still up, the guest must see it again.
        if (this.intxOutput) this.fire(VFIO_PCI_INTX_IRQ_INDEX, 0);
        break;
      case VFIO_PCI_MSI_IRQ_INDEX:
      case VFIO_PCI_MSIX_IRQ_INDEX:
        this.deliverPendingMessages();
        break;
      default:
        break;
    }
  }

  /** DEVICE_RESET: a function-level reset, phased (enter on all parts, then hold, then exit). */
  reset(): void {
    this.runReset('function');
  }

  private runReset(type: ResetType): void {
    // A set: one model may serve several BARs (an I/O alias) and must reset once.
    runResetPhases([this, ...new Set(this.handlers.values())], type);
  }

  // ---- Resettable (the function's own state) ----

  resetEnter(_type: ResetType): void {
    this.config.resetToPowerOn();
    this.msixTable?.reset();
    this.line = false;
    this.lineDrivesMessages = false;
    this.intxOutput = false;
    this.msiPending = 0;
  }

  resetHold(_type: ResetType): void {
    // Nothing to lower: eventfds carry edges only, and INTx output is already low.
  }

  resetExit(_type: ResetType): void {
    this.log.debug({ event: 'pci_reset_done' }, 'function reset');
  }

  // ---------------------------------------------------------------------------------------
  // Device-model side
  // ---------------------------------------------------------------------------------------

  /** Guest memory while a client is attached, else null. */
  memory(): GuestMemory | null {
    return this.ctx?.memory ?? null;
  }

  busMasterEnabled(): boolean {
    return (this.config.command() & PCI_COMMAND_MASTER) !== 0;
  }

  powerState(): number {
    return this.caps.pm?.powerState() ?? PCI_PM_STATE_D0;
  }

  /** The mechanism the guest enabled in config space: MSI-X over MSI over INTx. */
  interruptMode(): InterruptMode {
    if (this.caps.msix?.enabled()) return 'msix';
    if (this.caps.msi?.enabled()) return 'msi';
    return this.config.interruptPin() !== 0 ? 'intx' : 'none';
  }

  /**
   * Calls `listener` after a guest config write changed interruptMode() (MSI/MSI-X enabled or
   * disabled), once this function has re-routed its own pending interrupts. Device models that
   * send messages themselves re-evaluate their interrupt state here.
   */
  onInterruptModeChange(listener: (mode: InterruptMode) => void): void {
    this.modeListeners.push(listener);
  }

  /**
   * The device's level interrupt (e.g. the ISP's RISC interrupt). In INTx mode it drives INTx;
   * in MSI/MSI-X mode a rising edge sends one message on vector 0.
   */
  setIrqLevel(asserted: boolean): void {
    const rising = asserted && !this.line;
    this.lineDrivesMessages = true;
    this.driveLine(asserted);
    const mode = this.interruptMode();
    if (rising && (mode === 'msi' || mode === 'msix')) this.notify(0);
  }

  /**
   * The INTx line only, for device models that send their MSI/MSI-X messages themselves with
   * notify(): no level-to-message conversion happens.
   */
  setIntxLine(asserted: boolean): void {
    this.lineDrivesMessages = false;
    this.driveLine(asserted);
  }

  private driveLine(asserted: boolean): void {
    this.line = asserted;
    this.config.setInterruptStatus(asserted);
    this.updateIntxOutput();
  }

  /**
   * One message on `vector`: MSI-X vector, MSI vector (folded to 0 beyond what the OS enabled),
   * or — in INTx mode — a single INTx pulse (trigger once without holding the line).
   */
  notify(vector: number): void {
    const mode = this.interruptMode();
    switch (mode) {
      case 'msix': {
        const table = this.msixTable!;
        if (!Number.isInteger(vector) || vector < 0 || vector >= table.vectors) {
          this.log.warn(
            { event: 'err_msix_vector_range', vector, vectors: table.vectors },
            'MSI-X vector out of range',
          );
          return;
        }
        table.setPending(vector, true);
        this.deliverPendingMessages();
        return;
      }
      case 'msi': {
        const msi = this.caps.msi!;
        const enabled = msi.vectorsEnabled();
        const v = Number.isInteger(vector) && vector >= 0 && vector < enabled ? vector : 0;
        if (v !== vector) this.trace('ub_msi_vector_folded', { vector, enabled });
        this.msiPending |= 1 << v;
        this.deliverPendingMessages();
        return;
      }
      case 'intx':
        if (this.intxAllowed()) this.fire(VFIO_PCI_INTX_IRQ_INDEX, 0);
        return;
      case 'none':
        this.trace('ub_notify_no_interrupt', { vector });
        return;
    }
  }

  // ---------------------------------------------------------------------------------------
  // internals
  // ---------------------------------------------------------------------------------------

  private trace(event: string, fields: Record<string, unknown>): void {
    this.log.debug({ event, ...fields }, event);
  }

  private barAccessValid(
    index: number,
    bar: BarDescription,
    offset: number,
    length: number,
    dir: 'read' | 'write',
  ): boolean {
    if (!barAcceptsWidth(bar.kind, length) || offset % length !== 0 || offset + length > bar.size) {
      this.trace(`ub_bar_${dir}_width`, { region: index, offset, length });
      return false;
    }
    if (this.powerState() === PCI_PM_STATE_D3HOT) {
      // PCI PM 1.2 §5.3.1.4: in D3hot only config space is accessible.
      this.trace(`ub_bar_${dir}_d3hot`, { region: index, offset, length });
      return false;
    }
    return true;
  }

  private msixRead(msix: MsixTable, index: number, offset: number, size: AccessSize): Uint8Array {
    if (!MsixTable.acceptsWidth(offset, size)) {
      this.trace('ub_msix_read_width', { region: index, offset, length: size });
      return allOnes(size);
    }
    const wide = size as 4 | 8;
    if (msix.inTable(index, offset, size)) return encodeLe(msix.readTable(offset, wide), size);
    if (msix.inPba(index, offset, size)) return encodeLe(msix.readPba(offset, wide), size);
    this.trace('ub_msix_read_straddle', { region: index, offset, length: size });
    return allOnes(size);
  }

  private msixWrite(msix: MsixTable, index: number, offset: number, size: AccessSize, value: number | bigint): void {
    if (!MsixTable.acceptsWidth(offset, size)) {
      this.trace('ub_msix_write_width', { region: index, offset, length: size });
      return;
    }
    if (msix.inTable(index, offset, size)) {
      msix.writeTable(offset, size as 4 | 8, value);
      return;
    }
    // The PBA is read-only (PCI 3.0 §6.8.2.7); QEMU drops PBA writes before they get here anyway.
    this.trace('ub_msix_pba_write', { region: index, offset, length: size });
  }

  /** Config write plus the side effects of the registers it touched. */
  private configWrite(offset: number, data: Uint8Array): void {
    const pm = this.caps.pm;
    const pmBefore = pm?.powerState() ?? PCI_PM_STATE_D0;
    const modeBefore = this.interruptMode();
    const changed = this.config.write(offset, data);
    if (!changed && !this.config.regs.hasGuestWritableBits(offset, data.length)) {
      this.trace('ub_config_write_readonly', { offset, length: data.length });
      return;
    }
    pm?.discardUnsupportedState(pmBefore);
    const pmAfter = pm?.powerState() ?? PCI_PM_STATE_D0;
    if (pmAfter !== pmBefore)
      this.log.debug({ event: 'pci_power_state', from: pmBefore, to: pmAfter }, 'power state change');
    const modeAfter = this.interruptMode();
    // A disabled MSI capability has nothing to deliver later (PCI 3.0 §6.8.1.3).
    if (modeAfter !== 'msi') this.msiPending = 0;
    // An edge that happened while routed elsewhere must not be lost when the guest switches to messages.
    if (
      modeAfter !== modeBefore &&
      this.line &&
      this.lineDrivesMessages &&
      (modeAfter === 'msi' || modeAfter === 'msix')
    ) {
      this.notify(0);
    }
    this.updateIntxOutput();
    this.deliverPendingMessages();
    if (modeAfter !== modeBefore) {
      this.log.debug({ event: 'pci_interrupt_mode', from: modeBefore, to: modeAfter }, 'interrupt mode change');
      for (const listener of this.modeListeners) {
        try {
          listener(modeAfter);
        } catch (err) {
          this.log.error({ event: 'err_mode_listener_threw', err }, 'interrupt mode listener threw');
        }
      }
    }
  }

  private intxAllowed(): boolean {
    return (
      this.interruptMode() === 'intx' &&
      (this.config.command() & PCI_COMMAND_INTX_DISABLE) === 0 &&
      this.powerState() === PCI_PM_STATE_D0
    );
  }

  private updateIntxOutput(): void {
    const output = this.line && this.intxAllowed();
    const rising = output && !this.intxOutput;
    this.intxOutput = output;
    if (rising) this.fire(VFIO_PCI_INTX_IRQ_INDEX, 0);
  }

  private messagesAllowed(): boolean {
    return this.busMasterEnabled() && this.powerState() === PCI_PM_STATE_D0;
  }

  /** Sends every pending MSI / MSI-X message the current state allows. */
  private deliverPendingMessages(): void {
    if (!this.messagesAllowed()) return;
    const mode = this.interruptMode();
    if (mode === 'msix') {
      const table = this.msixTable!;
      if (this.caps.msix!.functionMasked()) return;
      for (const v of table.pendingVectors()) {
        if (this.fire(VFIO_PCI_MSIX_IRQ_INDEX, v)) table.setPending(v, false);
      }
    } else if (mode === 'msi') {
      for (let v = 0; v < MSI_MAX_VECTORS && this.msiPending !== 0; v++) {
        const bit = 1 << v;
        if ((this.msiPending & bit) !== 0 && this.fire(VFIO_PCI_MSI_IRQ_INDEX, v)) this.msiPending &= ~bit;
      }
    }
  }

  /** Writes the eventfd; false if none is bound (or it is masked) or no client is attached. */
  private fire(index: IrqIndex, vector: number): boolean {
    const irq = this.ctx?.irq;
    if (irq === undefined) {
      this.trace('irq_no_client', { index, vector });
      return false;
    }
    const active = irq.activeIndex();
    if (active !== null && active !== index) this.trace('irq_route_mismatch', { index, active, vector });
    const ok = irq.trigger(index, vector);
    if (!ok) this.trace('irq_not_bound', { index, vector });
    return ok;
  }
}
