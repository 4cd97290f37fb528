/**
 * Interrupt signalling between a device model and whatever hosts it. IRQ indices follow
 * linux/vfio.h (VFIO_PCI_INTX_IRQ_INDEX … VFIO_PCI_REQ_IRQ_INDEX), the numbering both kernel
 * vfio-pci and vfio-user use, so the indices are the device's, not the transport's.
 */

export const IRQ_INDEX = { INTX: 0, MSI: 1, MSIX: 2, ERR: 3, REQ: 4 } as const;
export type IrqIndex = (typeof IRQ_INDEX)[keyof typeof IRQ_INDEX];

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
