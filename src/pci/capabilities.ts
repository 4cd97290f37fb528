/**
 * Capability-chain builder and the capability register models used by the emulated HBA:
 *  - Power Management (PCI PM 1.2): D0 and D3hot only, No_Soft_Reset set (state survives
 *    D3hot→D0, so the PM transition never resets the function), no PME;
 *  - PCI Express capability version 2, endpoint (PCIe Base 2.1 §7.8), link parameters given by
 *    the caller (e.g. Gen2 x8 for a QLE2562);
 *  - MSI, 64-bit address, no per-vector masking (PCI 3.0 §6.8.1);
 *  - MSI-X (PCI 3.0 §6.8.2) with table and PBA in a memory BAR (served by msix.ts).
 * Guest-writable bits follow the specs: MSI control enable + multiple message enable, MSI-X
 * control enable + function mask, PMCSR power state, PCIe device/link control fields.
 * The chain is linked in ascending offset order from the header's capability pointer, so a walk
 * always terminates; the extended capability list at 0x100 is empty (header 0).
 */
import type { ConfigSpace } from './config-space.js';
import {
  PCI_CAPABILITY_LIST,
  PCI_CAP_ALIGN,
  PCI_CAP_ID_EXP,
  PCI_CAP_ID_MSI,
  PCI_CAP_ID_MSIX,
  PCI_CAP_ID_PM,
  PCI_CAP_LIST_ID,
  PCI_CAP_LIST_NEXT,
  PCI_CAP_POINTER_MASK,
  PCI_CONFIG_SPACE_SIZE,
  PCI_EXP_DEVCAP,
  PCI_EXP_DEVCAP2,
  PCI_EXP_DEVCAP2_COMP_TMOUT_RANGE_B,
  PCI_EXP_DEVCAP_L0S_SHIFT,
  PCI_EXP_DEVCAP_L1_SHIFT,
  PCI_EXP_DEVCAP_PAYLOAD_MASK,
  PCI_EXP_DEVCAP_RBER,
  PCI_EXP_DEVCTL,
  PCI_EXP_DEVCTL2,
  PCI_EXP_DEVCTL2_COMP_TIMEOUT,
  PCI_EXP_DEVCTL_CERE,
  PCI_EXP_DEVCTL_FERE,
  PCI_EXP_DEVCTL_NFERE,
  PCI_EXP_DEVCTL_NOSNOOP_EN,
  PCI_EXP_DEVCTL_PAYLOAD,
  PCI_EXP_DEVCTL_READRQ,
  PCI_EXP_DEVCTL_READRQ_SHIFT,
  PCI_EXP_DEVCTL_RELAX_EN,
  PCI_EXP_DEVCTL_URRE,
  PCI_EXP_DEVSTA,
  PCI_EXP_DEVSTA_W1C,
  PCI_EXP_FLAGS,
  PCI_EXP_FLAGS_TYPE_SHIFT,
  PCI_EXP_FLAGS_VERS_2,
  PCI_EXP_LNKCAP,
  PCI_EXP_LNKCAP2,
  PCI_EXP_LNKCAP2_SLS_SHIFT,
  PCI_EXP_LNKCAP_ASPM_L0S,
  PCI_EXP_LNKCAP_L0SEL_SHIFT,
  PCI_EXP_LNKCAP_L1EL_SHIFT,
  PCI_EXP_LNKCAP_MLW_SHIFT,
  PCI_EXP_LNKCTL,
  PCI_EXP_LNKCTL2,
  PCI_EXP_LNKCTL2_WRITABLE,
  PCI_EXP_LNKCTL_ASPMC,
  PCI_EXP_LNKCTL_CCC,
  PCI_EXP_LNKCTL_ES,
  PCI_EXP_LNKCTL_RCB,
  PCI_EXP_LNKSTA,
  PCI_EXP_LNKSTA_NLW_SHIFT,
  PCI_EXP_LNKSTA_SLC,
  PCI_EXP_TYPE_ENDPOINT,
  PCI_EXP_V2_SIZEOF,
  PCI_EXT_CAP_NONE,
  PCI_EXT_CAP_START,
  PCI_MSIX_BIR_MASK,
  PCI_MSIX_ENTRY_SIZE,
  PCI_MSIX_FLAGS,
  PCI_MSIX_FLAGS_ENABLE,
  PCI_MSIX_FLAGS_MASKALL,
  PCI_MSIX_MAX_VECTORS,
  PCI_MSIX_PBA,
  PCI_MSIX_SIZEOF,
  PCI_MSIX_STRUCTURE_ALIGN,
  PCI_MSIX_TABLE,
  PCI_MSI_64_SIZEOF,
  PCI_MSI_ADDRESS_HI,
  PCI_MSI_ADDRESS_LO,
  PCI_MSI_ADDRESS_LO_MASK,
  PCI_MSI_DATA_64,
  PCI_MSI_FLAGS,
  PCI_MSI_FLAGS_64BIT,
  PCI_MSI_FLAGS_ENABLE,
  PCI_MSI_FLAGS_QMASK_SHIFT,
  PCI_MSI_FLAGS_QSIZE,
  PCI_MSI_FLAGS_QSIZE_SHIFT,
  PCI_PM_CAP_VER_1_2,
  PCI_PM_CTRL,
  PCI_PM_CTRL_NO_SOFT_RESET,
  PCI_PM_CTRL_STATE_MASK,
  PCI_PM_PMC,
  PCI_PM_SIZEOF,
  PCI_PM_STATE_D0,
  PCI_PM_STATE_D3HOT,
  PCI_STATUS,
  PCI_STATUS_CAP_LIST,
  PCI_STD_HEADER_SIZEOF,
} from './regs.js';

export class CapabilityLayoutError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CapabilityLayoutError';
  }
}

// ---------------------------------------------------------------------------------------------
// Capability register models (views over config space at a fixed offset)
// ---------------------------------------------------------------------------------------------

export class PmCapability {
  readonly id = PCI_CAP_ID_PM;
  readonly length = PCI_PM_SIZEOF;
  constructor(
    readonly offset: number,
    private readonly config: ConfigSpace,
  ) {}

  /** 0 = D0 … 3 = D3hot. */
  powerState(): number {
    return this.config.regs.getU16(this.offset + PCI_PM_CTRL) & PCI_PM_CTRL_STATE_MASK;
  }

  /**
   * A write of an unsupported state (D1/D2) "completes normally but the data is discarded"
   * (PCI PM 1.2 §5.4.1): put back the state that held before the write.
   */
  discardUnsupportedState(previous: number): void {
    const now = this.powerState();
    if (now !== PCI_PM_STATE_D0 && now !== PCI_PM_STATE_D3HOT) {
      const ctrl = this.config.regs.getU16(this.offset + PCI_PM_CTRL);
      this.config.regs.setU16(this.offset + PCI_PM_CTRL, (ctrl & ~PCI_PM_CTRL_STATE_MASK) | previous);
    }
  }
}

export interface PcieLinkOptions {
  /** Max payload size supported, bytes (128..4096). */
  maxPayloadBytes: number;
  /** Link speed encoding (1 = 2.5 GT/s, 2 = 5.0 GT/s, …). */
  maxLinkSpeed: number;
  /** Lanes (1, 2, 4, 8, 16, 32). */
  maxLinkWidth: number;
}

export class PcieCapability {
  readonly id = PCI_CAP_ID_EXP;
  readonly length = PCI_EXP_V2_SIZEOF;
  constructor(
    readonly offset: number,
    private readonly config: ConfigSpace,
  ) {}

  deviceControl(): number {
    return this.config.regs.getU16(this.offset + PCI_EXP_DEVCTL);
  }

  /** Max read request size the OS programmed, bytes. */
  maxReadRequestBytes(): number {
    return 128 << ((this.deviceControl() & PCI_EXP_DEVCTL_READRQ) >> PCI_EXP_DEVCTL_READRQ_SHIFT);
  }

  linkCapabilities(): number {
    return this.config.regs.getU32(this.offset + PCI_EXP_LNKCAP);
  }

  /** The device latches detected errors (correctable/non-fatal/fatal/UR) for the OS to clear. */
  raiseDeviceStatus(bits: number): void {
    this.config.regs.updateBits(this.offset + PCI_EXP_DEVSTA, 2, bits & PCI_EXP_DEVSTA_W1C, true);
  }
}

export class MsiCapability {
  readonly id = PCI_CAP_ID_MSI;
  readonly length = PCI_MSI_64_SIZEOF;
  constructor(
    readonly offset: number,
    /** Vectors the function can use (Multiple Message Capable), a power of two 1..32. */
    readonly vectorsSupported: number,
    private readonly config: ConfigSpace,
  ) {}

  control(): number {
    return this.config.regs.getU16(this.offset + PCI_MSI_FLAGS);
  }

  enabled(): boolean {
    return (this.control() & PCI_MSI_FLAGS_ENABLE) !== 0;
  }

  /**
   * Vectors the OS allocated (Multiple Message Enable), never more than supported: the spec
   * leaves a larger MME undefined; clamping is what QEMU's msi.c does.
   */
  vectorsEnabled(): number {
    const mme = (this.control() & PCI_MSI_FLAGS_QSIZE) >> PCI_MSI_FLAGS_QSIZE_SHIFT;
    return Math.min(1 << mme, this.vectorsSupported);
  }

  address(): bigint {
    const lo = BigInt(this.config.regs.getU32(this.offset + PCI_MSI_ADDRESS_LO));
    const hi = BigInt(this.config.regs.getU32(this.offset + PCI_MSI_ADDRESS_HI));
    return (hi << 32n) | lo;
  }

  data(): number {
    return this.config.regs.getU16(this.offset + PCI_MSI_DATA_64);
  }
}

export interface MsixLayout {
  /** Table size N (1..2048). */
  vectors: number;
  tableBar: number;
  tableOffset: number;
  pbaBar: number;
  pbaOffset: number;
}

export class MsixCapability {
  readonly id = PCI_CAP_ID_MSIX;
  readonly length = PCI_MSIX_SIZEOF;
  constructor(
    readonly offset: number,
    readonly layout: Readonly<MsixLayout>,
    private readonly config: ConfigSpace,
  ) {}

  control(): number {
    return this.config.regs.getU16(this.offset + PCI_MSIX_FLAGS);
  }

  enabled(): boolean {
    return (this.control() & PCI_MSIX_FLAGS_ENABLE) !== 0;
  }

  functionMasked(): boolean {
    return (this.control() & PCI_MSIX_FLAGS_MASKALL) !== 0;
  }

  /** Bytes of the PBA: one bit per vector, in qwords. */
  static pbaBytes(vectors: number): number {
    return Math.ceil(vectors / 64) * 8;
  }
}

export type Capability = PmCapability | PcieCapability | MsiCapability | MsixCapability;

/** The capabilities of one function, as built. */
export interface CapabilitySet {
  pm?: PmCapability;
  pcie?: PcieCapability;
  msi?: MsiCapability;
  msix?: MsixCapability;
  /** All of them in chain order. */
  chain: readonly Capability[];
}

// ---------------------------------------------------------------------------------------------
// Builder
// ---------------------------------------------------------------------------------------------

const PAYLOAD_ENCODINGS = [128, 256, 512, 1024, 2048, 4096];
const LINK_WIDTHS = [1, 2, 4, 8, 12, 16, 32];
/** PCIe 2.1 latencies chosen to look like a real Gen2 HBA: L0s acceptable < 4 µs, L1 acceptable < 64 µs. */
const DEVCAP_L0S_ACCEPTABLE_4US = 6;
const DEVCAP_L1_ACCEPTABLE_64US = 6;
/** Link exit latencies: L0s 2–4 µs, L1 32–64 µs. */
const LNKCAP_L0S_EXIT_4US = 6;
const LNKCAP_L1_EXIT_64US = 6;
/** Device control at power-on: relaxed ordering + no snoop enabled, MPS 128 B, MRRS 512 B (PCIe defaults). */
const DEVCTL_POWER_ON = PCI_EXP_DEVCTL_RELAX_EN | PCI_EXP_DEVCTL_NOSNOOP_EN | (2 << PCI_EXP_DEVCTL_READRQ_SHIFT);
/**
 * Device control bits this endpoint implements as RW: error reporting enables, relaxed ordering,
 * MPS, no snoop, MRRS. Extended tag, phantom functions and aux power are not supported (RO 0);
 * Initiate FLR is RO 0 because FLR is not advertised (the real ISP25xx reports FLReset-).
 */
const DEVCTL_WRITABLE =
  PCI_EXP_DEVCTL_CERE |
  PCI_EXP_DEVCTL_NFERE |
  PCI_EXP_DEVCTL_FERE |
  PCI_EXP_DEVCTL_URRE |
  PCI_EXP_DEVCTL_RELAX_EN |
  PCI_EXP_DEVCTL_PAYLOAD |
  PCI_EXP_DEVCTL_NOSNOOP_EN |
  PCI_EXP_DEVCTL_READRQ;
/** Link control bits RW for an endpoint (PCIe 2.1 §7.8.7): ASPM control, RCB, common clock, extended synch. */
const LNKCTL_WRITABLE = PCI_EXP_LNKCTL_ASPMC | PCI_EXP_LNKCTL_RCB | PCI_EXP_LNKCTL_CCC | PCI_EXP_LNKCTL_ES;

interface Placement {
  offset: number;
  length: number;
  cap: Capability;
}

export class CapabilityChainBuilder {
  private readonly placed: Placement[] = [];
  private readonly set: { pm?: PmCapability; pcie?: PcieCapability; msi?: MsiCapability; msix?: MsixCapability } = {};
  private finished = false;

  constructor(private readonly config: ConfigSpace) {
    if (config.sealed) throw new CapabilityLayoutError('config space already sealed');
  }

  private reserve(id: string, length: number, at: number | undefined): number {
    if (this.finished) throw new CapabilityLayoutError('capability chain already finished');
    const offset = at ?? this.nextFree();
    if (!Number.isInteger(offset) || offset % PCI_CAP_ALIGN !== 0)
      throw new CapabilityLayoutError(`${id}: offset ${offset} not dword aligned`);
    if (offset < PCI_STD_HEADER_SIZEOF || offset + length > PCI_CONFIG_SPACE_SIZE) {
      throw new CapabilityLayoutError(`${id}: [0x${offset.toString(16)}, +${length}) outside 0x40..0xff`);
    }
    for (const p of this.placed) {
      if (offset < p.offset + p.length && p.offset < offset + length) {
        throw new CapabilityLayoutError(
          `${id} at 0x${offset.toString(16)} overlaps capability 0x${p.cap.id.toString(16)} at 0x${p.offset.toString(16)}`,
        );
      }
    }
    return offset;
  }

  private nextFree(): number {
    let end = PCI_STD_HEADER_SIZEOF;
    for (const p of this.placed) end = Math.max(end, p.offset + p.length);
    return Math.ceil(end / PCI_CAP_ALIGN) * PCI_CAP_ALIGN;
  }

  private header(offset: number, id: number): void {
    this.config.regs.setU8(offset + PCI_CAP_LIST_ID, id);
    this.config.regs.setU8(offset + PCI_CAP_LIST_NEXT, 0);
  }

  private once(key: 'pm' | 'pcie' | 'msi' | 'msix', name: string): void {
    if (this.set[key] !== undefined) throw new CapabilityLayoutError(`${name} capability added twice`);
  }

  addPowerManagement(at?: number): PmCapability {
    this.once('pm', 'PM');
    const offset = this.reserve('PM', PCI_PM_SIZEOF, at);
    const r = this.config.regs;
    this.header(offset, PCI_CAP_ID_PM);
    r.setU16(offset + PCI_PM_PMC, PCI_PM_CAP_VER_1_2);
    r.setU16(offset + PCI_PM_CTRL, PCI_PM_STATE_D0 | PCI_PM_CTRL_NO_SOFT_RESET);
    r.defineMasks(offset + PCI_PM_CTRL, 2, { writable: PCI_PM_CTRL_STATE_MASK });
    const cap = new PmCapability(offset, this.config);
    this.placed.push({ offset, length: PCI_PM_SIZEOF, cap });
    this.set.pm = cap;
    return cap;
  }

  addPciExpress(link: PcieLinkOptions, at?: number): PcieCapability {
    this.once('pcie', 'PCI Express');
    const payload = PAYLOAD_ENCODINGS.indexOf(link.maxPayloadBytes);
    if (payload < 0) throw new CapabilityLayoutError(`PCIe max payload ${link.maxPayloadBytes} is not 128..4096`);
    if (!LINK_WIDTHS.includes(link.maxLinkWidth))
      throw new CapabilityLayoutError(`PCIe link width x${link.maxLinkWidth} invalid`);
    if (!Number.isInteger(link.maxLinkSpeed) || link.maxLinkSpeed < 1 || link.maxLinkSpeed > 7) {
      throw new CapabilityLayoutError(`PCIe link speed encoding ${link.maxLinkSpeed} invalid`);
    }
    const offset = this.reserve('PCIe', PCI_EXP_V2_SIZEOF, at);
    const r = this.config.regs;
    this.header(offset, PCI_CAP_ID_EXP);
    r.setU16(offset + PCI_EXP_FLAGS, PCI_EXP_FLAGS_VERS_2 | (PCI_EXP_TYPE_ENDPOINT << PCI_EXP_FLAGS_TYPE_SHIFT));
    r.setU32(
      offset + PCI_EXP_DEVCAP,
      (payload & PCI_EXP_DEVCAP_PAYLOAD_MASK) |
        (DEVCAP_L0S_ACCEPTABLE_4US << PCI_EXP_DEVCAP_L0S_SHIFT) |
        (DEVCAP_L1_ACCEPTABLE_64US << PCI_EXP_DEVCAP_L1_SHIFT) |
        PCI_EXP_DEVCAP_RBER,
    );
    r.setU16(offset + PCI_EXP_DEVCTL, DEVCTL_POWER_ON);
    r.defineMasks(offset + PCI_EXP_DEVCTL, 2, { writable: DEVCTL_WRITABLE });
    r.defineMasks(offset + PCI_EXP_DEVSTA, 2, { w1c: PCI_EXP_DEVSTA_W1C });
    r.setU32(
      offset + PCI_EXP_LNKCAP,
      link.maxLinkSpeed |
        (link.maxLinkWidth << PCI_EXP_LNKCAP_MLW_SHIFT) |
        PCI_EXP_LNKCAP_ASPM_L0S |
        (LNKCAP_L0S_EXIT_4US << PCI_EXP_LNKCAP_L0SEL_SHIFT) |
        (LNKCAP_L1_EXIT_64US << PCI_EXP_LNKCAP_L1EL_SHIFT),
    );
    r.defineMasks(offset + PCI_EXP_LNKCTL, 2, { writable: LNKCTL_WRITABLE });
    // The emulated link is always trained at its maximum; link status is RO to the guest.
    r.setU16(
      offset + PCI_EXP_LNKSTA,
      link.maxLinkSpeed | (link.maxLinkWidth << PCI_EXP_LNKSTA_NLW_SHIFT) | PCI_EXP_LNKSTA_SLC,
    );
    r.setU32(offset + PCI_EXP_DEVCAP2, PCI_EXP_DEVCAP2_COMP_TMOUT_RANGE_B);
    r.defineMasks(offset + PCI_EXP_DEVCTL2, 2, { writable: PCI_EXP_DEVCTL2_COMP_TIMEOUT });
    // Supported link speeds vector: every speed up to the maximum.
    r.setU32(offset + PCI_EXP_LNKCAP2, ((1 << link.maxLinkSpeed) - 1) << PCI_EXP_LNKCAP2_SLS_SHIFT);
    r.setU16(offset + PCI_EXP_LNKCTL2, link.maxLinkSpeed);
    r.defineMasks(offset + PCI_EXP_LNKCTL2, 2, { writable: PCI_EXP_LNKCTL2_WRITABLE });
    const cap = new PcieCapability(offset, this.config);
    this.placed.push({ offset, length: PCI_EXP_V2_SIZEOF, cap });
    this.set.pcie = cap;
    return cap;
  }

  /** 64-bit MSI without per-vector masking; `vectors` a power of two 1..32. */
  addMsi(vectors: number, at?: number): MsiCapability {
    this.once('msi', 'MSI');
    const log2 = Math.log2(vectors);
    if (!Number.isInteger(log2) || log2 < 0 || log2 > 5)
      throw new CapabilityLayoutError(`MSI vector count ${vectors} is not 1..32, power of two`);
    const offset = this.reserve('MSI', PCI_MSI_64_SIZEOF, at);
    const r = this.config.regs;
    this.header(offset, PCI_CAP_ID_MSI);
    r.setU16(offset + PCI_MSI_FLAGS, PCI_MSI_FLAGS_64BIT | (log2 << PCI_MSI_FLAGS_QMASK_SHIFT));
    r.defineMasks(offset + PCI_MSI_FLAGS, 2, { writable: PCI_MSI_FLAGS_ENABLE | PCI_MSI_FLAGS_QSIZE });
    r.defineMasks(offset + PCI_MSI_ADDRESS_LO, 4, { writable: PCI_MSI_ADDRESS_LO_MASK });
    r.defineMasks(offset + PCI_MSI_ADDRESS_HI, 4, { writable: 0xffffffff });
    r.defineMasks(offset + PCI_MSI_DATA_64, 2, { writable: 0xffff });
    const cap = new MsiCapability(offset, vectors, this.config);
    this.placed.push({ offset, length: PCI_MSI_64_SIZEOF, cap });
    this.set.msi = cap;
    return cap;
  }

  addMsix(layout: MsixLayout, at?: number): MsixCapability {
    this.once('msix', 'MSI-X');
    this.checkMsixLayout(layout);
    const offset = this.reserve('MSI-X', PCI_MSIX_SIZEOF, at);
    const r = this.config.regs;
    this.header(offset, PCI_CAP_ID_MSIX);
    r.setU16(offset + PCI_MSIX_FLAGS, layout.vectors - 1);
    r.defineMasks(offset + PCI_MSIX_FLAGS, 2, { writable: PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL });
    r.setU32(offset + PCI_MSIX_TABLE, layout.tableOffset | layout.tableBar);
    r.setU32(offset + PCI_MSIX_PBA, layout.pbaOffset | layout.pbaBar);
    const cap = new MsixCapability(offset, { ...layout }, this.config);
    this.placed.push({ offset, length: PCI_MSIX_SIZEOF, cap });
    this.set.msix = cap;
    return cap;
  }

  private checkMsixLayout(l: MsixLayout): void {
    if (!Number.isInteger(l.vectors) || l.vectors < 1 || l.vectors > PCI_MSIX_MAX_VECTORS) {
      throw new CapabilityLayoutError(`MSI-X table size ${l.vectors} not 1..${PCI_MSIX_MAX_VECTORS}`);
    }
    const tableBytes = l.vectors * PCI_MSIX_ENTRY_SIZE;
    const pbaBytes = MsixCapability.pbaBytes(l.vectors);
    for (const [what, bir, off, len] of [
      ['table', l.tableBar, l.tableOffset, tableBytes],
      ['PBA', l.pbaBar, l.pbaOffset, pbaBytes],
    ] as const) {
      const bar = this.config.bars.get(bir);
      if (!Number.isInteger(bir) || bir < 0 || bir > PCI_MSIX_BIR_MASK || bar === undefined) {
        throw new CapabilityLayoutError(`MSI-X ${what} BAR${bir} is not an implemented BAR`);
      }
      if (bar.kind === 'io')
        throw new CapabilityLayoutError(`MSI-X ${what} must live in a memory BAR, BAR${bir} is I/O`);
      if (!Number.isInteger(off) || off < 0 || off % PCI_MSIX_STRUCTURE_ALIGN !== 0) {
        throw new CapabilityLayoutError(`MSI-X ${what} offset ${off} not qword aligned`);
      }
      if (off + len > bar.size)
        throw new CapabilityLayoutError(`MSI-X ${what} [${off}, +${len}) runs past BAR${bir} (${bar.size} bytes)`);
    }
    if (l.tableBar === l.pbaBar && l.tableOffset < l.pbaOffset + pbaBytes && l.pbaOffset < l.tableOffset + tableBytes) {
      throw new CapabilityLayoutError('MSI-X table and PBA overlap');
    }
  }

  /** Links the chain in ascending offset order, sets the capability pointer and status bit. */
  finish(): CapabilitySet {
    if (this.finished) throw new CapabilityLayoutError('capability chain already finished');
    this.finished = true;
    const r = this.config.regs;
    const ordered = [...this.placed].sort((a, b) => a.offset - b.offset);
    r.setU8(PCI_CAPABILITY_LIST, ordered[0]?.offset ?? 0);
    for (let i = 0; i < ordered.length; i++) {
      r.setU8(ordered[i]!.offset + PCI_CAP_LIST_NEXT, ordered[i + 1]?.offset ?? 0);
    }
    r.updateBits(PCI_STATUS, 2, PCI_STATUS_CAP_LIST, ordered.length > 0);
    if (this.config.size > PCI_CONFIG_SPACE_SIZE) r.setU32(PCI_EXT_CAP_START, PCI_EXT_CAP_NONE);
    return { ...this.set, chain: ordered.map((p) => p.cap) };
  }
}

// ---------------------------------------------------------------------------------------------
// Walking a chain (what a guest's pci_find_capability does), bounded
// ---------------------------------------------------------------------------------------------

/** Linux's PCI_FIND_CAP_TTL: at most 48 capabilities fit in 0x40..0xff. */
export const CAPABILITY_WALK_BUDGET = 48;

export interface CapabilityWalkResult {
  found: { id: number; offset: number }[];
  /** Why the walk stopped early, or null if it reached a 0 next pointer. */
  error: string | null;
}

/** Walks the standard capability list of a config image without trusting it. */
export function walkCapabilities(readByte: (offset: number) => number): CapabilityWalkResult {
  const found: { id: number; offset: number }[] = [];
  let pointer = readByte(PCI_CAPABILITY_LIST);
  const seen = new Set<number>();
  for (let ttl = CAPABILITY_WALK_BUDGET; pointer !== 0; ttl--) {
    if (ttl === 0) return { found, error: 'walk budget exhausted' };
    if ((pointer & ~PCI_CAP_POINTER_MASK) !== 0)
      return { found, error: `pointer 0x${pointer.toString(16)} not dword aligned` };
    if (pointer < PCI_STD_HEADER_SIZEOF) return { found, error: `pointer 0x${pointer.toString(16)} into the header` };
    if (seen.has(pointer)) return { found, error: `loop at 0x${pointer.toString(16)}` };
    seen.add(pointer);
    found.push({ id: readByte(pointer + PCI_CAP_LIST_ID), offset: pointer });
    pointer = readByte(pointer + PCI_CAP_LIST_NEXT);
  }
  return { found, error: null };
}
