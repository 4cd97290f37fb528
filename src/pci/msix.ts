/**
 * MSI-X table and Pending Bit Array (PCI 3.0 §6.8.2.6–6.8.2.7) as served from a memory BAR.
 *
 * With QEMU's vfio-user client the guest never reaches this table: QEMU emulates the MSI-X table
 * itself (hw/vfio/pci.c overlays it on the BAR) and composes the messages behind the per-vector
 * eventfds; only PBA reads are forwarded to the server (vfio_user_pba_read; PBA writes dropped).
 * So this table is plain storage that answers reads with what was written (reset: all entries
 * zero with the mask bit set), and it does NOT gate delivery — if it did, QEMU-driven MSI-X would
 * never fire, since QEMU leaves it at its reset (masked) value. Masking is QEMU's job (it moves a
 * masked vector to its own eventfd); the device still honours the function mask and enable bits
 * it sees in config space.
 *
 * The PBA is computed: bit v is set while the device has a message for vector v that it could
 * not send (function masked, bus mastering off, D3hot, or no eventfd bound) and clears when the
 * message goes out. The PBA is read-only; writes are ignored by the caller with a trace.
 * Accesses must be naturally aligned dwords or qwords (PCI 3.0 §6.8.2: "DWORD or QWORD").
 */
import type { AccessSize } from './bar.js';
import { MaskedRegisterFile } from './masked-registers.js';
import {
  PCI_MSIX_ENTRY_CTRL_MASKBIT,
  PCI_MSIX_ENTRY_DATA,
  PCI_MSIX_ENTRY_LOWER_ADDR,
  PCI_MSIX_ENTRY_SIZE,
  PCI_MSIX_ENTRY_UPPER_ADDR,
  PCI_MSIX_ENTRY_VECTOR_CTRL,
} from './regs.js';
import { MsixCapability, type MsixLayout } from './capabilities.js';

/** Message address bits 1:0 are reserved for dword alignment (read as 0). */
const ENTRY_ADDR_LO_WRITABLE = 0xfffffffc;

export class MsixTable {
  private readonly table: MaskedRegisterFile;
  /** One bit per vector, 64 per word, as the PBA lays them out. */
  private readonly pending: BigUint64Array;

  constructor(readonly layout: Readonly<MsixLayout>) {
    this.table = new MaskedRegisterFile(layout.vectors * PCI_MSIX_ENTRY_SIZE);
    this.pending = new BigUint64Array(MsixCapability.pbaBytes(layout.vectors) / 8);
    for (let v = 0; v < layout.vectors; v++) {
      const e = v * PCI_MSIX_ENTRY_SIZE;
      this.table.defineMasks(e + PCI_MSIX_ENTRY_LOWER_ADDR, 4, { writable: ENTRY_ADDR_LO_WRITABLE });
      this.table.defineMasks(e + PCI_MSIX_ENTRY_UPPER_ADDR, 4, { writable: 0xffffffff });
      this.table.defineMasks(e + PCI_MSIX_ENTRY_DATA, 4, { writable: 0xffffffff });
      this.table.defineMasks(e + PCI_MSIX_ENTRY_VECTOR_CTRL, 4, { writable: PCI_MSIX_ENTRY_CTRL_MASKBIT });
    }
    this.reset();
  }

  get vectors(): number {
    return this.layout.vectors;
  }

  get tableBytes(): number {
    return this.layout.vectors * PCI_MSIX_ENTRY_SIZE;
  }

  get pbaBytes(): number {
    return this.pending.length * 8;
  }

  /** Reset values: every entry zero and masked, nothing pending (PCI 3.0 §6.8.2.9). */
  reset(): void {
    this.table.bytes.fill(0);
    for (let v = 0; v < this.layout.vectors; v++) {
      this.table.setU32(v * PCI_MSIX_ENTRY_SIZE + PCI_MSIX_ENTRY_VECTOR_CTRL, PCI_MSIX_ENTRY_CTRL_MASKBIT);
    }
    this.pending.fill(0n);
  }

  /** True if the BAR access [offset, +length) in `bar` lies wholly in the table. */
  inTable(bar: number, offset: number, length: number): boolean {
    return (
      bar === this.layout.tableBar &&
      offset >= this.layout.tableOffset &&
      offset + length <= this.layout.tableOffset + this.tableBytes
    );
  }

  inPba(bar: number, offset: number, length: number): boolean {
    return (
      bar === this.layout.pbaBar &&
      offset >= this.layout.pbaOffset &&
      offset + length <= this.layout.pbaOffset + this.pbaBytes
    );
  }

  /** True if the access overlaps the table or PBA at all (a straddling access is refused by the caller). */
  overlaps(bar: number, offset: number, length: number): boolean {
    const l = this.layout;
    const end = offset + length;
    if (bar === l.tableBar && offset < l.tableOffset + this.tableBytes && l.tableOffset < end) return true;
    return bar === l.pbaBar && offset < l.pbaOffset + this.pbaBytes && l.pbaOffset < end;
  }

  /** Table and PBA accept naturally aligned 4- and 8-byte accesses only. */
  static acceptsWidth(offset: number, size: AccessSize): boolean {
    return (size === 4 || size === 8) && offset % size === 0;
  }

  readTable(barOffset: number, size: 4 | 8): number | bigint {
    const at = barOffset - this.layout.tableOffset;
    if (size === 4) return this.table.getU32(at);
    return (BigInt(this.table.getU32(at + 4)) << 32n) | BigInt(this.table.getU32(at));
  }

  /** Stores a guest write through the entry masks (reserved bits stay 0). */
  writeTable(barOffset: number, size: 4 | 8, value: number | bigint): void {
    const bytes = new Uint8Array(size);
    let v = BigInt.asUintN(size * 8, typeof value === 'bigint' ? value : BigInt(value));
    for (let i = 0; i < size; i++) {
      bytes[i] = Number(v & 0xffn);
      v >>= 8n;
    }
    this.table.write(barOffset - this.layout.tableOffset, bytes);
  }

  readPba(barOffset: number, size: 4 | 8): number | bigint {
    const at = barOffset - this.layout.pbaOffset;
    const word = this.pending[Math.floor(at / 8)]!;
    if (size === 8) return word;
    return Number((at % 8 === 0 ? word : word >> 32n) & 0xffffffffn);
  }

  /** The table entry's own mask bit (informational; see the header for why it does not gate delivery). */
  vectorMasked(vector: number): boolean {
    return (
      (this.table.getU32(vector * PCI_MSIX_ENTRY_SIZE + PCI_MSIX_ENTRY_VECTOR_CTRL) & PCI_MSIX_ENTRY_CTRL_MASKBIT) !== 0
    );
  }

  entry(vector: number): { address: bigint; data: number; masked: boolean } {
    const e = vector * PCI_MSIX_ENTRY_SIZE;
    return {
      address:
        (BigInt(this.table.getU32(e + PCI_MSIX_ENTRY_UPPER_ADDR)) << 32n) |
        BigInt(this.table.getU32(e + PCI_MSIX_ENTRY_LOWER_ADDR)),
      data: this.table.getU32(e + PCI_MSIX_ENTRY_DATA),
      masked: this.vectorMasked(vector),
    };
  }

  setPending(vector: number, on: boolean): void {
    const word = Math.floor(vector / 64);
    const bit = 1n << BigInt(vector % 64);
    this.pending[word] = on ? this.pending[word]! | bit : this.pending[word]! & ~bit;
  }

  isPending(vector: number): boolean {
    return ((this.pending[Math.floor(vector / 64)]! >> BigInt(vector % 64)) & 1n) === 1n;
  }

  /** Pending vectors in ascending order (bounded by the table size). */
  pendingVectors(): number[] {
    const out: number[] = [];
    for (let w = 0; w < this.pending.length; w++) {
      if (this.pending[w] === 0n) continue;
      for (let b = 0; b < 64; b++) {
        const v = w * 64 + b;
        if (v < this.layout.vectors && this.isPending(v)) out.push(v);
      }
    }
    return out;
  }
}
