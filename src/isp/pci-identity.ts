/**
 * PCI identity of the emulated QLogic ISP2532 (QLE2562-class 8 Gb FC HBA) as the Linux qla2xxx
 * driver (10.02.x; upstream drivers/scsi/qla2xxx/) probes it, and the factory that builds its
 * PciFunction (qla2xxx_pci_tbl, qla2x00_set_isp_flags, qla2x00_iospace_config,
 * qla2x00_request_irqs).
 *
 * Identity: 1077:2532 rev 0x02, subsystem 1077:015D (QLE2562), class 0x0C0400 (Fibre Channel),
 * interrupt pin A. The pin matters: qla2x00_set_isp_flags() derives port_no = pin - 1 on 25xx,
 * and port_no selects the NVRAM/VPD/FLT regions — pin A gives port 0.
 *
 * BARs (qla2x00_probe_one / qla2x00_iospace_config):
 *  - BAR0: I/O, 256 bytes. 2532 is on the driver's "Mem only adapter" list (that message is
 *    logged for every 24xx+ device ID, whatever BAR0 is): it selects only memory BARs and never
 *    touches BAR0. Real boards have it, so it is kept; like the ISP2xxx PIO window it maps the same
 *    register block as BAR1 (registers 0x00–0xFF aliased), so no second register model exists.
 *  - BAR1 (+BAR2): 64-bit non-prefetchable memory, 16 KiB. The driver requires IORESOURCE_MEM on
 *    BAR1 ("Region #1 not an MMIO resource") and at least MIN_IOBASE_LEN = 0x100 bytes, and
 *    ioremaps exactly 0x100 bytes: struct device_reg_24xx. The BarHandler bound by
 *    bindIsp2532Registers() serves BAR1 except the MSI-X table and PBA, which PciFunction serves.
 *  - No BAR3 (25xx multiqueue registers): the driver maps it only when the firmware reports
 *    fw_attributes BIT_6, still 0 at iospace time; without it the driver stays single-queue with
 *    msix_count = QLA_BASE_VECTORS = 2. No expansion ROM.
 *
 * Capabilities, at the offsets of a real QLE2562: PM at 0x44, PCIe v2 endpoint at 0x4C (Gen2
 * x8: qla24xx_pci_info_str prints "PCIe (5.0GT/s x8)" from LNKCAP), MSI at 0x88 (64-bit, one
 * vector), MSI-X at 0xA0 — the driver's QLA_PCI_MSIX_CONTROL = 0xA2 assumes exactly that offset
 * (read only on the BAR3/MQ path, which is not taken). MSI-X table at BAR1 + 0x2000 and PBA at
 * BAR1 + 0x3000, in the half of BAR1 above the register block. (The table/PBA offsets and the
 * 32-entry table are how lspci shows QLE256x boards; they are not in the reference and are
 * unconfirmed against a board — the driver only needs ≥ 2 entries anywhere in a memory BAR.)
 * No VPD capability: the driver reads VPD from flash.
 *
 * What revision 0x02 implies: the MSI-X revision check in qla2x00_request_irqs() applies to the
 * ISP2432 only (IS_QLA2432 && revision < QLA_MSIX_CHIP_REV_24XX = 3, "MSI-X; Unsupported
 * ISP2432"). For the 2532 the revision is merely recorded (ha->chip_revision), so with the default
 * ql2xenablemsix=1 the driver tries MSI-X first — pci_alloc_irq_vectors(min 2, max 2,
 * PCI_IRQ_MSIX), vector 0 = qla24xx_msix_default, vector 1 = qla24xx_msix_rsp_q — then MSI with
 * one vector, then INTx. Revision 0x02 does NOT disable MSI-X for this device. The subsystem IDs
 * avoid the HP 0x7040/0x7041/0x1705 MSI quirk and the 0x0175/0x0240 RISC-semaphore path.
 * Observed (QEMU 11.1.2 vfio-user-pci, Debian kernel 7.2.12, qla2xxx 10.02.10.100-k, this function
 * with the placeholder register block): "Mem only adapter", "Bars=2", "port=0", "MSIX Count: 2",
 * "Found an ISP2532", "MSI-X: Enabled (0x0, 0x0)", then the expected flash-read timeout.
 */
import type { AccessSize, BarDescription, BarHandler } from '../pci/bar.js';
import type { PciIdentity } from '../pci/config-space.js';
import { PciFunction } from '../pci/pci-function.js';
import {
  PCI_EXP_LNK_SPEED_2_5GT,
  PCI_EXP_LNK_SPEED_5_0GT,
  PCI_INTERRUPT_PIN_INTA,
  PCI_MSIX_ENTRY_SIZE,
} from '../pci/regs.js';
import { logger as makeLogger, type Logger } from '../util/log.js';
import type { IspHost } from './host.js';

export const PCI_VENDOR_ID_QLOGIC = 0x1077;
export const PCI_DEVICE_ID_QLOGIC_ISP2532 = 0x2532;
/** QLE2562 (dual port); the single-port QLE2560 is 0x015C. */
export const QLE2562_SUBSYSTEM_ID = 0x015d;
/** PCI_CLASS_SERIAL_FIBER << 8. */
export const PCI_CLASS_SERIAL_FIBER_CHANNEL = 0x0c0400;
export const ISP2532_REVISION = 0x02;

export const ISP2532_IDENTITY: Readonly<PciIdentity> = Object.freeze({
  vendorId: PCI_VENDOR_ID_QLOGIC,
  deviceId: PCI_DEVICE_ID_QLOGIC_ISP2532,
  revisionId: ISP2532_REVISION,
  classCode: PCI_CLASS_SERIAL_FIBER_CHANNEL,
  subsystemVendorId: PCI_VENDOR_ID_QLOGIC,
  subsystemId: QLE2562_SUBSYSTEM_ID,
  interruptPin: PCI_INTERRUPT_PIN_INTA,
});

/** BAR numbers and sizes. */
export const ISP2532_IO_BAR = 0;
export const ISP2532_IO_BAR_SIZE = 0x100;
export const ISP2532_REGISTER_BAR = 1;
export const ISP2532_REGISTER_BAR_SIZE = 0x4000;
/** MIN_IOBASE_LEN: the driver maps this much of BAR1 (struct device_reg_24xx). */
export const ISP2532_REGISTER_BLOCK_SIZE = 0x100;

/** Capability offsets (see the header). */
export const ISP2532_CAP_PM = 0x44;
export const ISP2532_CAP_PCIE = 0x4c;
export const ISP2532_CAP_MSI = 0x88;
/** QLA_PCI_MSIX_CONTROL - 2. */
export const ISP2532_CAP_MSIX = 0xa0;
export const ISP2532_MSIX_TABLE_OFFSET = 0x2000;
export const ISP2532_MSIX_PBA_OFFSET = 0x3000;
export const ISP2532_MSIX_DEFAULT_VECTORS = 32;
/** QLA_BASE_VECTORS: the driver's minimum (and, without BAR3, its maximum). */
export const QLA_BASE_VECTORS = 2;
/** The table must end before the PBA. */
export const ISP2532_MSIX_MAX_VECTORS = (ISP2532_MSIX_PBA_OFFSET - ISP2532_MSIX_TABLE_OFFSET) / PCI_MSIX_ENTRY_SIZE;

export const ISP2532_MAX_PAYLOAD_BYTES = 2048;
export const ISP2532_LINK_WIDTH = 8;

/**
 * ISP2432 (QLE2462-class 4 Gb HBA). Same BARs, capability offsets and register block as the
 * 2532 (qla2x00_probe_one treats both as "Mem only" 24xx+ devices and maps the same 0x100 bytes
 * of struct device_reg_24xx from BAR1); what differs is the identity and the link:
 *  - 1077:2432, subsystem 1077:0138 (QLE2462; the single-port QLE2460 is 0x0137).
 *  - Revision 0x03: qla2x00_request_irqs() refuses MSI-X on an ISP2432 whose revision is below
 *    QLA_MSIX_CHIP_REV_24XX (3), "MSI-X; Unsupported ISP2432", and falls back to MSI. Revision 3
 *    lets the 24xx MSI-X path (two vectors, qla24xx_enable_msix) run.
 *  - Interrupt pin A: on 24xx qla2x00_set_isp_flags() derives port_no = !(pin & 1), so pin A is
 *    port 0 here too.
 *  - PCIe Gen1 x4 (the QLE246x link): qla24xx_pci_info_str prints "PCIe (2.5GT/s x4)".
 *  - MSI-X table of 2 entries: the driver asks for exactly QLA_BASE_VECTORS on 24xx (no
 *    multiqueue on this family).
 */
export const PCI_DEVICE_ID_QLOGIC_ISP2432 = 0x2432;
/** QLE2462 (dual port). */
export const QLE2462_SUBSYSTEM_ID = 0x0138;
/** QLA_MSIX_CHIP_REV_24XX: the lowest ISP2432 revision qla2xxx drives with MSI-X. */
export const ISP2432_REVISION = 0x03;
export const ISP2432_LINK_WIDTH = 4;
export const ISP2432_MSIX_DEFAULT_VECTORS = 2;

export const ISP2432_IDENTITY: Readonly<PciIdentity> = Object.freeze({
  vendorId: PCI_VENDOR_ID_QLOGIC,
  deviceId: PCI_DEVICE_ID_QLOGIC_ISP2432,
  revisionId: ISP2432_REVISION,
  classCode: PCI_CLASS_SERIAL_FIBER_CHANNEL,
  subsystemVendorId: PCI_VENDOR_ID_QLOGIC,
  subsystemId: QLE2462_SUBSYSTEM_ID,
  interruptPin: PCI_INTERRUPT_PIN_INTA,
});

/** What the PCI function of one ISP model looks like; everything else is shared (see the header). */
export interface IspPciProfile {
  /** Default function name in logs. */
  name: string;
  identity: Readonly<PciIdentity>;
  /** PCI_EXP_LNK_SPEED_* of LNKCAP. */
  linkSpeed: number;
  linkWidth: number;
  maxPayloadBytes: number;
  /** MSI-X table size when the caller does not choose one. */
  msixDefaultVectors: number;
}

export const ISP2532_PCI: Readonly<IspPciProfile> = Object.freeze({
  name: 'isp2532',
  identity: ISP2532_IDENTITY,
  linkSpeed: PCI_EXP_LNK_SPEED_5_0GT,
  linkWidth: ISP2532_LINK_WIDTH,
  maxPayloadBytes: ISP2532_MAX_PAYLOAD_BYTES,
  msixDefaultVectors: ISP2532_MSIX_DEFAULT_VECTORS,
});

export const ISP2432_PCI: Readonly<IspPciProfile> = Object.freeze({
  name: 'isp2432',
  identity: ISP2432_IDENTITY,
  linkSpeed: PCI_EXP_LNK_SPEED_2_5GT,
  linkWidth: ISP2432_LINK_WIDTH,
  maxPayloadBytes: ISP2532_MAX_PAYLOAD_BYTES,
  msixDefaultVectors: ISP2432_MSIX_DEFAULT_VECTORS,
});

export type Isp2532Interrupts = 'msix' | 'msi' | 'intx';

export interface Isp2532FunctionOptions {
  /** Name in logs, e.g. the vport. */
  name?: string;
  /**
   * Which interrupt capabilities to offer: 'msix' = MSI + MSI-X (default, like the board),
   * 'msi' = MSI only, 'intx' = neither (qla2x00_request_irqs then
   * falls back to INTx, the simplest setup).
   */
  interrupts?: Isp2532Interrupts;
  /** MSI-X table size, QLA_BASE_VECTORS..ISP2532_MSIX_MAX_VECTORS; default the model's (32 / 2). */
  msixVectors?: number;
  /** Which ISP's PCI identity and link (default ISP2532_PCI). */
  profile?: Readonly<IspPciProfile>;
  logger?: Logger;
}

export class Isp2532ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'Isp2532ConfigError';
  }
}

/**
 * A BAR1 register block with no registers: reads 0, ignores writes, traces every access. Only
 * for bringing up the PCI function before the ISP register model exists (and for tests); an
 * all-zero register file lets qla2xxx bind and then fail at the first flash read.
 */
export function unimplementedRegisterBlock(log: Logger = makeLogger('isp', { block: 'unimplemented' })): BarHandler {
  return {
    read(offset: number, size: AccessSize): number | bigint {
      log.debug({ event: 'ub_isp_register_read_unimplemented', offset, size }, 'read of an unimplemented ISP register');
      return size === 8 ? 0n : 0;
    },
    write(offset: number, size: AccessSize, value: number | bigint): void {
      log.debug(
        { event: 'ub_isp_register_write_unimplemented', offset, size, value: value.toString(16) },
        'write to an unimplemented ISP register',
      );
    },
  };
}

/**
 * The I/O window: the same register block as BAR1 at the same offsets (the ISP2xxx PIO window
 * maps struct device_reg_* too). It does not forward reset phases — BAR1's handler gets those.
 */
export function ioAliasOf(registers: BarHandler): BarHandler {
  return {
    read: (offset, size) => registers.read(offset, size),
    write: (offset, size, value) => registers.write(offset, size, value),
  };
}

/**
 * Declares the ISP's PCI function (ISP2532 unless opts.profile says otherwise): identity, BAR kinds and sizes, capabilities. The register
 * model is bound afterwards with bindIsp2532Registers() (it needs the function's guest memory and
 * interrupts), then the caller realizes the function.
 */
export function createIsp2532Function(opts: Isp2532FunctionOptions = {}): PciFunction {
  const interrupts = opts.interrupts ?? 'msix';
  const profile = opts.profile ?? ISP2532_PCI;
  const vectors = opts.msixVectors ?? profile.msixDefaultVectors;
  if (!Number.isInteger(vectors) || vectors < QLA_BASE_VECTORS || vectors > ISP2532_MSIX_MAX_VECTORS) {
    throw new Isp2532ConfigError(
      `MSI-X vectors ${vectors}: qla2xxx needs ${QLA_BASE_VECTORS}..${ISP2532_MSIX_MAX_VECTORS}`,
    );
  }
  const name = opts.name ?? profile.name;
  const bars = new Map<number, BarDescription>([
    [ISP2532_IO_BAR, { kind: 'io', size: ISP2532_IO_BAR_SIZE }],
    [ISP2532_REGISTER_BAR, { kind: 'mem64', size: ISP2532_REGISTER_BAR_SIZE }],
  ]);
  return new PciFunction({
    name,
    identity: profile.identity,
    bars,
    capabilities: {
      pm: { at: ISP2532_CAP_PM },
      pcie: {
        at: ISP2532_CAP_PCIE,
        maxPayloadBytes: profile.maxPayloadBytes,
        maxLinkSpeed: profile.linkSpeed,
        maxLinkWidth: profile.linkWidth,
      },
      ...(interrupts !== 'intx' ? { msi: { vectors: 1, at: ISP2532_CAP_MSI } } : {}),
      ...(interrupts === 'msix'
        ? {
            msix: {
              at: ISP2532_CAP_MSIX,
              vectors,
              tableBar: ISP2532_REGISTER_BAR,
              tableOffset: ISP2532_MSIX_TABLE_OFFSET,
              pbaBar: ISP2532_REGISTER_BAR,
              pbaOffset: ISP2532_MSIX_PBA_OFFSET,
            },
          }
        : {}),
    },
    ...(opts.logger ? { logger: opts.logger } : {}),
  });
}

/** Binds the register block: BAR1 (except the MSI-X table and PBA), aliased by the BAR0 I/O window. */
export function bindIsp2532Registers(fn: PciFunction, registers: BarHandler): void {
  fn.bindBar(ISP2532_REGISTER_BAR, registers);
  fn.bindBar(ISP2532_IO_BAR, ioAliasOf(registers));
}

/**
 * The ISP model's view of its PCI function: guest memory, the enabled interrupt mechanism, the
 * INTx line (no message conversion) and MSI/MSI-X messages.
 */
export function ispHostOf(fn: PciFunction): IspHost {
  return {
    memory: () => fn.memory(),
    interruptMode: () => fn.interruptMode(),
    setIntx: (asserted) => fn.setIntxLine(asserted),
    sendMessage: (vector) => fn.notify(vector),
  };
}
