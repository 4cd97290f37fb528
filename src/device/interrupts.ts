/**
 * Interrupt signalling between a device model and whatever hosts it. IRQ indices follow
 * linux/vfio.h (VFIO_PCI_INTX_IRQ_INDEX … VFIO_PCI_REQ_IRQ_INDEX), the numbering both kernel
 * vfio-pci and vfio-user use, so the indices are the device's, not the transport's.
 */

import type {
  VFIO_PCI_ERR_IRQ_INDEX,
  VFIO_PCI_INTX_IRQ_INDEX,
  VFIO_PCI_MSI_IRQ_INDEX,
  VFIO_PCI_MSIX_IRQ_INDEX,
  VFIO_PCI_REQ_IRQ_INDEX,
} from './linux-vfio.js';

/** One of the vfio-pci IRQ indices (linux-vfio.ts). */
export type IrqIndex =
  | typeof VFIO_PCI_INTX_IRQ_INDEX
  | typeof VFIO_PCI_MSI_IRQ_INDEX
  | typeof VFIO_PCI_MSIX_IRQ_INDEX
  | typeof VFIO_PCI_ERR_IRQ_INDEX
  | typeof VFIO_PCI_REQ_IRQ_INDEX;

/** How the guest enabled interrupts on a PCI function (MSI-X wins over MSI over INTx). */
export type InterruptMode = 'msix' | 'msi' | 'intx' | 'none';

/** What a device declares about one IRQ index (VFIO_DEVICE_GET_IRQ_INFO). */
export interface IrqInfo {
  /** Number of vectors; 0 for an unsupported IRQ type. */
  count: number;
  /** VFIO_IRQ_INFO_* flags (EVENTFD, MASKABLE, AUTOMASKED, NORESIZE). */
  flags: number;
}

/** How a device raises an interrupt; the host delivers it (vfio-user: writes 1 to the bound eventfd). */
export interface IrqSignaller {
  /** Signals vector `vector` of IRQ index `index`; returns false if nothing is bound (or it is masked). */
  trigger(index: IrqIndex, vector: number): boolean;
  /** Which of INTx/MSI/MSI-X the host currently has bound (MSI-X wins over MSI over INTx). */
  activeIndex(): IrqIndex | null;
  /** Number of vectors bound for this index. */
  boundVectors(index: IrqIndex): number;
}
