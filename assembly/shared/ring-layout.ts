/**
 * Memory map of the ring engine's WebAssembly linear memory (build/ring.wasm), shared by the
 * AssemblyScript engine (assembly/) and its TypeScript driver (src/isp/ring/engine.ts).
 * Written in the subset both compilers accept: `export const enum` and numeric consts only.
 *
 * The memory is fixed-size (asconfig initialMemory, never grown), so the host keeps one
 * Uint8Array/DataView over it for the process lifetime. All multi-byte fields little-endian.
 *
 *   0x00000 ┌──────────────────────────────────────────┐
 *           │ AssemblyScript static data (must end     │  checked by init()
 *           │ below LAYOUT_BASE)                       │
 *   0x04000 ├──────────────────────────────────────────┤
 *           │ control block (1 KiB): configuration,    │  Ctl.*
 *           │ call results, response-FIFO state,       │
 *           │ status-encode input, raw-entry staging   │
 *   0x04400 ├──────────────────────────────────────────┤
 *           │ request scratch: SCRATCH_ENTRIES × 64 B  │  copy-in of guest ring entries,
 *           │ (contiguous, ring wrap already undone)   │  written by the host only
 *   0x08400 ├──────────────────────────────────────────┤
 *           │ decoded records: MAX_RECORDS × 64 B      │  Rec.*, one per consumed item
 *   0x0C400 ├──────────────────────────────────────────┤
 *           │ segment table: MAX_SEGMENTS × 16 B       │  Seg.*, DSDs of decoded commands
 *   0x11400 ├──────────────────────────────────────────┤
 *           │ response FIFO: RSP_FIFO_ENTRIES × 64 B   │  encoded response entries waiting
 *           │ (circular, head/count in control block)  │  for room in the guest ring
 *   0x19400 └──────────────────────────────────────────┘  LAYOUT_END (≤ 2 pages)
 */

export const LAYOUT_BASE = 0x4000;
export const CONTROL_BASE = 0x4000;
export const CONTROL_SIZE = 0x400;
export const SCRATCH_BASE = 0x4400;
export const RECORDS_BASE = 0x8400;
export const SEGMENTS_BASE = 0xc400;
export const RSP_FIFO_BASE = 0x11400;
export const LAYOUT_END = 0x19400;
/** WebAssembly page size; the module's memory must hold LAYOUT_END. */
export const WASM_PAGE_SIZE = 0x10000;

export const enum Capacity {
  /** Request entries one consume call can see (ring entries copied in). */
  SCRATCH_ENTRIES = 256,
  /** Items (commands, raw entries, errors) one consume call can decode. */
  MAX_RECORDS = 256,
  /** DSDs one consume call can decode: 5 per scratch entry covers every possible batch. */
  MAX_SEGMENTS = 1280,
  /** Response entries that can wait for room in the guest's response ring. */
  RSP_FIFO_ENTRIES = 512,
  /** Sense bytes the host may stage for one status (capped to MAX_SENSE_BYTES on encode). */
  SENSE_STAGING = 256,
  /** Response-info bytes (FCP_RSP_INFO) that fit: the driver only knows 4 or 8. */
  RSP_INFO_STAGING = 8,
}

/**
 * Control block, at CONTROL_BASE.
 *
 *   0   req_entries      4   rsp_entries      8   max_handle_index   12  max_queue_id
 *   16  max_vp_index     20  max_transfer     24  configured (u32 bool)
 *   32  consumed_entries 36  stop_reason      40  segments_used
 *   48  fifo_head        52  fifo_count
 *   64  status input: 64 handle │68 residual │72 sense_len │76 comp_status u16 │78 ox_id u16 │
 *       80 state_flags u16 │82 retry_delay u16 │84 scsi_status u8 │85 residual_kind u8 │
 *       86 rsp_info_len u8 │88 rsp_info[8] │96 sense[256]
 *   384 raw staging [64]: a complete response entry built by the host (postRaw)
 */
export const enum Ctl {
  REQ_ENTRIES = 0,
  RSP_ENTRIES = 4,
  MAX_HANDLE_INDEX = 8,
  MAX_QUEUE_ID = 12,
  MAX_VP_INDEX = 16,
  MAX_TRANSFER = 20,
  CONFIGURED = 24,

  CONSUMED_ENTRIES = 32,
  STOP_REASON = 36,
  SEGMENTS_USED = 40,

  FIFO_HEAD = 48,
  FIFO_COUNT = 52,

  ST_HANDLE = 64,
  ST_RESIDUAL = 68,
  ST_SENSE_LEN = 72,
  ST_COMP_STATUS = 76,
  ST_OX_ID = 78,
  ST_STATE_FLAGS = 80,
  ST_RETRY_DELAY = 82,
  ST_SCSI_STATUS = 84,
  ST_RESIDUAL_KIND = 85,
  ST_RSP_INFO_LEN = 86,
  ST_RSP_INFO = 88,
  ST_SENSE = 96,

  RAW_STAGING = 384,
}

/** Status input residual_kind. */
export const enum ResidualKind {
  NONE = 0,
  /** Fewer bytes moved than FCP_DL: SS_RESIDUAL_UNDER. */
  UNDER = 1,
  /** Target wanted more than FCP_DL: SS_RESIDUAL_OVER. */
  OVER = 2,
}

/**
 * Decoded record (64 bytes each, at RECORDS_BASE + i * 64), one per consumed item.
 *
 *   0 kind u8 │1 entry_type u8 │2 entries u8 (ring entries consumed; 1..255) │3 entry_status u8
 *   4 handle u32 │8 nport_handle u16 │10 vp_index u8 │11 direction u8 │12 byte_count u32
 *   16 lun[8] SAM order │24 cdb[16] SAM order │40 port_id u32 (domain<<16|area<<8|al_pa)
 *   44 task_attribute u8 │45 priority u8 │46 reason u8 │47 flags u8
 *   48 seg_start u32 │52 seg_count u32 │56 scratch_index u32 (head entry) │60 reserved
 */
export const enum Rec {
  SIZE = 64,
  KIND = 0,
  ENTRY_TYPE = 1,
  ENTRIES = 2,
  ENTRY_STATUS = 3,
  HANDLE = 4,
  NPORT_HANDLE = 8,
  VP_INDEX = 10,
  DIRECTION = 11,
  BYTE_COUNT = 12,
  LUN = 16,
  CDB = 24,
  PORT_ID = 40,
  TASK_ATTRIBUTE = 44,
  PRIORITY = 45,
  REASON = 46,
  FLAGS = 47,
  SEG_START = 48,
  SEG_COUNT = 52,
  SCRATCH_INDEX = 56,
}

export const enum RecKind {
  /** A valid Command Type 7 with its DSDs. */
  COMMAND = 1,
  /** A valid single-entry IOCB of another known type; bytes stay in the scratch area. */
  RAW = 2,
  /** A rejected entry; entry_status says why, an error response may have been queued. */
  ERROR = 3,
}

/** Rec.FLAGS bits. */
export const enum RecFlags {
  /** An error response entry (entry_status set, original handle) was queued for the driver. */
  RESPONSE_POSTED = 0x01,
}

/** Rec.DIRECTION: same values as cmd_type_7 TMF_WRITE_DATA / TMF_READ_DATA. */
export const enum Direction {
  NONE = 0,
  WRITE = 1,
  READ = 2,
}

/** Segment table entry (16 bytes): 0 address u64 │8 length u32 │12 reserved. */
export const enum Seg {
  SIZE = 16,
  ADDRESS = 0,
  LENGTH = 8,
}

/** Why a consume call stopped (Ctl.STOP_REASON). */
export const enum StopReason {
  /** Every copied entry was consumed. */
  DRAINED = 0,
  /** The entry budget is used up. */
  BUDGET = 1,
  /** An error response is needed but the response FIFO is full (back-pressure). */
  RESPONSE_FULL = 2,
  /** The next command extends past the copied entries; copy more and call again. */
  NEED_COPY = 3,
  /** The decoded-record area is full. */
  RECORDS_FULL = 4,
}

/** Diagnostic reason of an ERROR record (Rec.REASON); entry_status carries the RF_* bit. */
export const enum Reason {
  NONE = 0,
  /** entry_count is 0 (RF_INV_E_COUNT). */
  ENTRY_COUNT_ZERO = 1,
  /** entry_count runs past the producer index / ring size (RF_INV_E_COUNT). */
  ENTRY_COUNT_BEYOND_PRODUCER = 2,
  /** entry_count ≠ 1 on a single-entry IOCB type (RF_INV_E_COUNT). */
  ENTRY_COUNT_SINGLE = 3,
  /** Unknown or unsupported entry type (RF_INV_E_TYPE). */
  BAD_ENTRY_TYPE = 4,
  /** A continuation entry not preceded by its command (RF_INV_E_ORDER). */
  STRAY_CONTINUATION = 5,
  /** A command's continuation slot holds another entry type (RF_INV_E_ORDER). */
  CONTINUATION_TYPE = 6,
  /** Handle index 0 or above the configured outstanding-command limit (RF_INV_E_PARAM). */
  HANDLE_INDEX = 7,
  /** Handle names a request queue that does not exist (RF_INV_E_PARAM). */
  HANDLE_QUEUE = 8,
  /** dseg_count does not match entry_count (RF_INV_E_PARAM). */
  DSEG_COUNT = 9,
  /** A DSD with length 0 (RF_INV_E_PARAM). */
  SEGMENT_ZERO_LENGTH = 10,
  /** A DSD whose address + length passes 2^64 (RF_INV_E_PARAM). */
  SEGMENT_ADDRESS_OVERFLOW = 11,
  /** Sum of DSD lengths ≠ byte_count (RF_INV_E_PARAM). */
  TOTAL_LENGTH_MISMATCH = 12,
  /** Data-direction bits invalid for the byte count, or unknown task_mgmt_flags bits (RF_INV_E_PARAM). */
  DIRECTION = 13,
  /** byte_count above the configured maximum transfer (RF_INV_E_PARAM). */
  TRANSFER_TOO_LARGE = 14,
  /** Reserved task attribute value or reserved task bit (RF_INV_E_PARAM). */
  TASK_ATTRIBUTE = 15,
  /** vp_index above the configured maximum (RF_INV_E_PARAM). */
  VP_INDEX = 16,
  /** nport_handle above 0x7FF (RF_INV_E_PARAM). */
  NPORT_HANDLE = 17,
}

/** Return codes of the engine's exported functions (negative = error). */
export const enum EngineResult {
  OK = 0,
  /** Response FIFO has no room for the entries; nothing was queued. */
  ERR_FIFO_FULL = -1,
  /** An input field is out of range; nothing was done. */
  ERR_INVALID = -2,
  /** A ring index is out of range. */
  ERR_INDEX = -3,
  /** The module's memory or static data does not fit the layout. */
  ERR_LAYOUT = -4,
  /** configure() has not succeeded yet. */
  ERR_NOT_CONFIGURED = -5,
}
