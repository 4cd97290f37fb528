/**
 * Register offsets and bit definitions for a PCI Express type 0 function — PCI Local Bus 3.0,
 * PCI Bus Power Management 1.2, PCI Express Base 2.1 — plus the vfio region/IRQ constants
 * (linux/vfio.h) the device side needs. Names follow linux/include/uapi/linux/pci_regs.h so that
 * the driver code and this model read alike. Every layout used by src/pci/ is defined here once.
 *
 * Type 0 configuration header (offsets in hex, little-endian):
 *
 *   0x00 +---------------+---------------+
 *        | device id     | vendor id     |
 *   0x04 | status        | command       |
 *   0x08 | class code (24 bits)  | rev id|
 *   0x0c | BIST |hdr type|latency|cache ln|
 *   0x10 | BAR0 .. BAR5 (0x10 - 0x27)    |
 *   0x28 | cardbus CIS pointer           |
 *   0x2c | subsystem id  | subsys vendor |
 *   0x30 | expansion ROM base address    |
 *   0x34 | reserved              |cap ptr|
 *   0x38 | reserved                      |
 *   0x3c |max lat|min gnt|int pin|int ln |
 *   0x40 +-------------------------------+ capabilities (0x40 - 0xff)
 *  0x100   PCIe extended capabilities (0x100 - 0xfff)
 */

/** Conventional config space (type 0 header + capabilities). */
export const PCI_CONFIG_SPACE_SIZE = 0x100;
/** PCI Express config space including the extended capabilities area. */
export const PCIE_CONFIG_SPACE_SIZE = 0x1000;
/** First byte after the type 0 header: where capabilities may start. */
export const PCI_STD_HEADER_SIZEOF = 0x40;
export const PCI_EXT_CAP_START = 0x100;

export const PCI_VENDOR_ID = 0x00;
export const PCI_DEVICE_ID = 0x02;
export const PCI_COMMAND = 0x04;
export const PCI_STATUS = 0x06;
export const PCI_REVISION_ID = 0x08;
/** Programming interface byte; the 24-bit class code starts here. */
export const PCI_CLASS_PROG = 0x09;
export const PCI_CACHE_LINE_SIZE = 0x0c;
export const PCI_LATENCY_TIMER = 0x0d;
export const PCI_HEADER_TYPE = 0x0e;
export const PCI_BIST = 0x0f;
export const PCI_BASE_ADDRESS_0 = 0x10;
export const PCI_CARDBUS_CIS = 0x28;
export const PCI_SUBSYSTEM_VENDOR_ID = 0x2c;
export const PCI_SUBSYSTEM_ID = 0x2e;
export const PCI_ROM_ADDRESS = 0x30;
export const PCI_CAPABILITY_LIST = 0x34;
export const PCI_INTERRUPT_LINE = 0x3c;
export const PCI_INTERRUPT_PIN = 0x3d;
export const PCI_MIN_GNT = 0x3e;
export const PCI_MAX_LAT = 0x3f;

export const PCI_HEADER_TYPE_NORMAL = 0x00;
export const PCI_NUM_BARS = 6;
export const PCI_BAR_SIZEOF = 4;

/** Command register bits. */
export const PCI_COMMAND_IO = 0x0001;
export const PCI_COMMAND_MEMORY = 0x0002;
export const PCI_COMMAND_MASTER = 0x0004;
export const PCI_COMMAND_PARITY = 0x0040;
export const PCI_COMMAND_SERR = 0x0100;
export const PCI_COMMAND_INTX_DISABLE = 0x0400;
/**
 * The command bits a PCI Express function implements (PCIe 2.1 §7.5.1.1): special cycles, MWI,
 * VGA palette snoop, IDSEL stepping and fast back-to-back are hardwired to 0 on PCIe.
 */
export const PCI_COMMAND_WRITABLE =
  PCI_COMMAND_IO |
  PCI_COMMAND_MEMORY |
  PCI_COMMAND_MASTER |
  PCI_COMMAND_PARITY |
  PCI_COMMAND_SERR |
  PCI_COMMAND_INTX_DISABLE;

/** Status register bits. */
export const PCI_STATUS_INTERRUPT = 0x0008;
export const PCI_STATUS_CAP_LIST = 0x0010;
export const PCI_STATUS_PARITY = 0x0100;
export const PCI_STATUS_SIG_TARGET_ABORT = 0x0800;
export const PCI_STATUS_REC_TARGET_ABORT = 0x1000;
export const PCI_STATUS_REC_MASTER_ABORT = 0x2000;
export const PCI_STATUS_SIG_SYSTEM_ERROR = 0x4000;
export const PCI_STATUS_DETECTED_PARITY = 0x8000;
/** Error bits the guest clears by writing 1 (RW1C). */
export const PCI_STATUS_W1C =
  PCI_STATUS_PARITY |
  PCI_STATUS_SIG_TARGET_ABORT |
  PCI_STATUS_REC_TARGET_ABORT |
  PCI_STATUS_REC_MASTER_ABORT |
  PCI_STATUS_SIG_SYSTEM_ERROR |
  PCI_STATUS_DETECTED_PARITY;

/** BAR low bits. */
export const PCI_BASE_ADDRESS_SPACE_IO = 0x01;
export const PCI_BASE_ADDRESS_MEM_TYPE_32 = 0x00;
export const PCI_BASE_ADDRESS_MEM_TYPE_64 = 0x04;
export const PCI_BASE_ADDRESS_MEM_PREFETCH = 0x08;
/** Flag bits below the address in a memory BAR / an I/O BAR. */
export const PCI_BASE_ADDRESS_MEM_FLAGS_MASK = 0x0f;
export const PCI_BASE_ADDRESS_IO_FLAGS_MASK = 0x03;
/** Minimum BAR sizes allowed by PCI 3.0 §6.2.5.1; I/O BARs may not exceed 256 bytes. */
export const PCI_MEM_BAR_MIN_SIZE = 16;
export const PCI_IO_BAR_MIN_SIZE = 4;
export const PCI_IO_BAR_MAX_SIZE = 256;
/** A 32-bit memory BAR cannot describe more than 2 GiB. */
export const PCI_MEM32_BAR_MAX_SIZE = 0x8000_0000;

/** Interrupt pin values. */
export const PCI_INTERRUPT_PIN_NONE = 0;
export const PCI_INTERRUPT_PIN_INTA = 1;

/** Capability IDs (PCI 3.0 Appendix H). */
export const PCI_CAP_ID_PM = 0x01;
export const PCI_CAP_ID_MSI = 0x05;
export const PCI_CAP_ID_EXP = 0x10;
export const PCI_CAP_ID_MSIX = 0x11;
/** Generic capability header: id byte, next-pointer byte. */
export const PCI_CAP_LIST_ID = 0;
export const PCI_CAP_LIST_NEXT = 1;
/** Capabilities are dword aligned; the low two bits of every pointer are reserved (read as 0). */
export const PCI_CAP_ALIGN = 4;
export const PCI_CAP_POINTER_MASK = 0xfc;

/**
 * Power Management capability (PCI PM 1.2 §3.2), 8 bytes:
 *   +0 id 0x01 | +1 next | +2 PMC (16) | +4 PMCSR (16) | +6 PMCSR_BSE | +7 data
 */
export const PCI_PM_PMC = 2;
export const PCI_PM_CTRL = 4;
export const PCI_PM_SIZEOF = 8;
export const PCI_PM_CAP_VER_1_2 = 0x0003;
export const PCI_PM_CTRL_STATE_MASK = 0x0003;
export const PCI_PM_CTRL_NO_SOFT_RESET = 0x0008;
export const PCI_PM_STATE_D0 = 0;
export const PCI_PM_STATE_D3HOT = 3;

/**
 * MSI capability, 64-bit without per-vector masking (PCI 3.0 §6.8.1), 14 bytes:
 *   +0 id 0x05 | +1 next | +2 message control | +4 address low | +8 address high | +12 data
 */
export const PCI_MSI_FLAGS = 2;
export const PCI_MSI_ADDRESS_LO = 4;
export const PCI_MSI_ADDRESS_HI = 8;
export const PCI_MSI_DATA_64 = 12;
export const PCI_MSI_64_SIZEOF = 14;
export const PCI_MSI_FLAGS_ENABLE = 0x0001;
/** Multiple Message Capable (log2 of vectors supported), read-only. */
export const PCI_MSI_FLAGS_QMASK = 0x000e;
export const PCI_MSI_FLAGS_QMASK_SHIFT = 1;
/** Multiple Message Enable (log2 of vectors allocated), written by the OS. */
export const PCI_MSI_FLAGS_QSIZE = 0x0070;
export const PCI_MSI_FLAGS_QSIZE_SHIFT = 4;
export const PCI_MSI_FLAGS_64BIT = 0x0080;
export const PCI_MSI_ADDRESS_LO_MASK = 0xfffffffc;

/**
 * MSI-X capability (PCI 3.0 §6.8.2), 12 bytes:
 *   +0 id 0x11 | +1 next | +2 message control | +4 table offset/BIR | +8 PBA offset/BIR
 */
export const PCI_MSIX_FLAGS = 2;
export const PCI_MSIX_TABLE = 4;
export const PCI_MSIX_PBA = 8;
export const PCI_MSIX_SIZEOF = 12;
export const PCI_MSIX_FLAGS_QSIZE = 0x07ff;
export const PCI_MSIX_FLAGS_MASKALL = 0x4000;
export const PCI_MSIX_FLAGS_ENABLE = 0x8000;
export const PCI_MSIX_BIR_MASK = 0x7;
export const PCI_MSIX_OFFSET_MASK = 0xfffffff8;
/** The architectural maximum table size (11-bit N-1 field). */
export const PCI_MSIX_MAX_VECTORS = 2048;

/**
 * MSI-X table entry (PCI 3.0 §6.8.2.6), 16 bytes, in the table BAR:
 *   +0 message address low | +4 message address high | +8 message data | +12 vector control
 */
export const PCI_MSIX_ENTRY_SIZE = 16;
export const PCI_MSIX_ENTRY_LOWER_ADDR = 0;
export const PCI_MSIX_ENTRY_UPPER_ADDR = 4;
export const PCI_MSIX_ENTRY_DATA = 8;
export const PCI_MSIX_ENTRY_VECTOR_CTRL = 12;
export const PCI_MSIX_ENTRY_CTRL_MASKBIT = 0x00000001;
/** The table and PBA must each be qword aligned within their BAR. */
export const PCI_MSIX_STRUCTURE_ALIGN = 8;

/**
 * PCI Express capability, version 2, endpoint layout (PCIe 2.1 §7.8), 0x3c bytes:
 *   +0x00 id 0x10, next      +0x02 PCIe capabilities
 *   +0x04 device caps        +0x08 device control  +0x0a device status
 *   +0x0c link caps          +0x10 link control    +0x12 link status
 *   +0x14 slot caps          +0x18 slot control    +0x1a slot status   (not for endpoints: 0)
 *   +0x1c root control       +0x1e root caps       +0x20 root status   (not for endpoints: 0)
 *   +0x24 device caps 2      +0x28 device control 2 +0x2a device status 2
 *   +0x2c link caps 2        +0x30 link control 2  +0x32 link status 2
 *   +0x34 slot caps 2        +0x38 slot control 2  +0x3a slot status 2 (0)
 */
export const PCI_EXP_FLAGS = 0x02;
export const PCI_EXP_DEVCAP = 0x04;
export const PCI_EXP_DEVCTL = 0x08;
export const PCI_EXP_DEVSTA = 0x0a;
export const PCI_EXP_LNKCAP = 0x0c;
export const PCI_EXP_LNKCTL = 0x10;
export const PCI_EXP_LNKSTA = 0x12;
export const PCI_EXP_DEVCAP2 = 0x24;
export const PCI_EXP_DEVCTL2 = 0x28;
export const PCI_EXP_LNKCAP2 = 0x2c;
export const PCI_EXP_LNKCTL2 = 0x30;
export const PCI_EXP_V2_SIZEOF = 0x3c;

export const PCI_EXP_FLAGS_VERS_2 = 0x0002;
export const PCI_EXP_FLAGS_TYPE_SHIFT = 4;
export const PCI_EXP_TYPE_ENDPOINT = 0x0;

export const PCI_EXP_DEVCAP_PAYLOAD_MASK = 0x00000007;
export const PCI_EXP_DEVCAP_L0S_SHIFT = 6;
export const PCI_EXP_DEVCAP_L1_SHIFT = 9;
export const PCI_EXP_DEVCAP_RBER = 0x00008000;
export const PCI_EXP_DEVCAP_FLR = 0x10000000;

export const PCI_EXP_DEVCTL_CERE = 0x0001;
export const PCI_EXP_DEVCTL_NFERE = 0x0002;
export const PCI_EXP_DEVCTL_FERE = 0x0004;
export const PCI_EXP_DEVCTL_URRE = 0x0008;
export const PCI_EXP_DEVCTL_RELAX_EN = 0x0010;
export const PCI_EXP_DEVCTL_PAYLOAD = 0x00e0;
export const PCI_EXP_DEVCTL_PAYLOAD_SHIFT = 5;
export const PCI_EXP_DEVCTL_NOSNOOP_EN = 0x0800;
export const PCI_EXP_DEVCTL_READRQ = 0x7000;
export const PCI_EXP_DEVCTL_READRQ_SHIFT = 12;
export const PCI_EXP_DEVCTL_BCR_FLR = 0x8000;

/** Device status error bits (RW1C): correctable, non-fatal, fatal, unsupported request. */
export const PCI_EXP_DEVSTA_W1C = 0x000f;

export const PCI_EXP_LNKCAP_SLS = 0x0000000f;
export const PCI_EXP_LNKCAP_MLW = 0x000003f0;
export const PCI_EXP_LNKCAP_MLW_SHIFT = 4;
export const PCI_EXP_LNKCAP_ASPM_L0S = 0x00000400;
export const PCI_EXP_LNKCAP_L0SEL_SHIFT = 12;
export const PCI_EXP_LNKCAP_L1EL_SHIFT = 15;

/** Link speed encodings (Supported Link Speeds vector index). */
export const PCI_EXP_LNK_SPEED_2_5GT = 1;
export const PCI_EXP_LNK_SPEED_5_0GT = 2;

export const PCI_EXP_LNKCTL_ASPMC = 0x0003;
export const PCI_EXP_LNKCTL_RCB = 0x0008;
export const PCI_EXP_LNKCTL_CCC = 0x0040;
export const PCI_EXP_LNKCTL_ES = 0x0080;

export const PCI_EXP_LNKSTA_CLS = 0x000f;
export const PCI_EXP_LNKSTA_NLW_SHIFT = 4;
export const PCI_EXP_LNKSTA_SLC = 0x1000;

export const PCI_EXP_DEVCAP2_COMP_TMOUT_RANGE_B = 0x00000002;
export const PCI_EXP_DEVCTL2_COMP_TIMEOUT = 0x000f;
export const PCI_EXP_LNKCAP2_SLS_SHIFT = 1;
export const PCI_EXP_LNKCTL2_TLS = 0x000f;
/** Link control 2 bits an endpoint implements as RW (everything but selectable de-emphasis, HwInit). */
export const PCI_EXP_LNKCTL2_WRITABLE = 0xffbf;

/** Extended capability header at 0x100: 0 means "no extended capabilities" (PCIe 2.1 §7.9.2). */
export const PCI_EXT_CAP_NONE = 0x00000000;
