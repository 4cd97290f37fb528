/**
 * Small memory helpers for the ring engine of the emulated QLogic ISP2532 (24xx/25xx firmware
 * interface, Linux qla2xxx 10.02.x): control-block access and the dword byte swap
 * qla2xxx applies to CDB, LUN and sense bytes (host_to_fcp_swap). All addresses are fixed
 * by assembly/shared/ring-layout.ts; nothing here allocates.
 */
import { CONTROL_BASE } from './shared/ring-layout';

// @ts-ignore: decorator
@inline export function ctlLoad32(field: i32): u32 {
  return load<u32>(<usize>(CONTROL_BASE + field));
}

// @ts-ignore: decorator
@inline export function ctlStore32(field: i32, value: u32): void {
  store<u32>(<usize>(CONTROL_BASE + field), value);
}

// @ts-ignore: decorator
@inline export function ctlLoad16(field: i32): u32 {
  return <u32>load<u16>(<usize>(CONTROL_BASE + field));
}

// @ts-ignore: decorator
@inline export function ctlLoad8(field: i32): u32 {
  return <u32>load<u8>(<usize>(CONTROL_BASE + field));
}

/** Position of linear byte i inside a dword-swapped field: (i & ~3) + 3 - (i & 3). */
// @ts-ignore: decorator
@inline export function swappedIndex(i: u32): u32 {
  return (i & ~3) | (3 - (i & 3));
}

/**
 * Copies `dwords` dwords from src to dst reversing the bytes of each: undoes (or applies)
 * host_to_fcp_swap. Used for LUN and CDB, whose lengths are whole dwords.
 */
// @ts-ignore: decorator
@inline export function copySwapped(dst: usize, src: usize, dwords: u32): void {
  for (let i: u32 = 0; i < dwords; i++) {
    const off = <usize>(i << 2);
    store<u32>(dst + off, bswap<u32>(load<u32>(src + off)));
  }
}

/**
 * Writes `length` linear bytes from src into a dword-swapped area starting at dst, beginning at
 * linear position `start` of that area. Used for sense/response-info data of status entries.
 */
export function storeSwapped(dst: usize, start: u32, src: usize, length: u32): void {
  for (let i: u32 = 0; i < length; i++) {
    store<u8>(dst + <usize>swappedIndex(start + i), load<u8>(src + <usize>i));
  }
}
