/**
 * Fixed binary layouts declared once, as field tables, with the codec derived from the table:
 *
 *   const DMA_UNMAP = defineStruct('DMA_UNMAP', 24, {
 *     argsz: u32le(0), flags: u32le(4), address: u64le(8), size: u64le(16),
 *   });
 *   DMA_UNMAP.decode(bytes)   // { argsz, flags, address, size }
 *   DMA_UNMAP.encode(value)   // 24 new bytes
 *   DMA_UNMAP.OFFSET.address  // 8
 *   DMA_UNMAP.SIZEOF          // 24
 *
 * A table is checked when it is defined (the analogue of QEMU's QEMU_BUILD_BUG_ON size checks):
 * fields are listed in increasing offset order, none overlaps the one before, and each lies
 * inside the struct size; a bad table throws at module load. test/unit/structure/layouts.test.ts
 * checks each table again against the offsets of its defining document.
 *
 * Integers are read and written with the endianness their type names; `bytes` fields decode to
 * a view (not a copy) of the input. decode() and encodeInto() throw RangeError when the struct
 * does not fit; protocol decoders check lengths first and raise their own error.
 */
import { view } from './bytes.js';

export type IntType = 'u8' | 'u16le' | 'u32le' | 'u64le';
export interface IntField {
  readonly offset: number;
  readonly type: IntType;
}
export interface BytesField {
  readonly offset: number;
  readonly type: 'bytes';
  readonly length: number;
}
export type FieldSpec = IntField | BytesField;
export type FieldTable = Readonly<Record<string, FieldSpec>>;

type ValueOf<F extends FieldSpec> = F extends BytesField ? Uint8Array : F extends { type: 'u64le' } ? bigint : number;

/** The decoded form of a struct: one property per field. */
export type StructValue<T extends FieldTable> = { -readonly [K in keyof T]: ValueOf<T[K]> };

/** The decoded form of a struct declared with defineStruct: `Decoded<typeof DMA_MAP>`. */
export type Decoded<S> = S extends Struct<infer T> ? StructValue<T> : never;

export const u8 = (offset: number) => ({ offset, type: 'u8' }) as const;
export const u16le = (offset: number) => ({ offset, type: 'u16le' }) as const;
export const u32le = (offset: number) => ({ offset, type: 'u32le' }) as const;
export const u64le = (offset: number) => ({ offset, type: 'u64le' }) as const;
export const bytes = (offset: number, length: number) => ({ offset, type: 'bytes', length }) as const;

const INT_WIDTH: Readonly<Record<IntType, number>> = { u8: 1, u16le: 2, u32le: 4, u64le: 8 };

/** Width in bytes of a field. */
export function fieldWidth(f: FieldSpec): number {
  return f.type === 'bytes' ? f.length : INT_WIDTH[f.type];
}

/** One row of a table, with its name and width, in declaration (= offset) order. */
export interface StructField {
  readonly name: string;
  readonly offset: number;
  readonly width: number;
  readonly type: FieldSpec['type'];
}

export interface Struct<T extends FieldTable> {
  readonly name: string;
  /** Size of the fixed part in bytes. */
  readonly SIZEOF: number;
  /** Byte offset of each field. */
  readonly OFFSET: { readonly [K in keyof T]: number };
  readonly fields: readonly StructField[];
  /** Reads the struct at `offset` (RangeError if it does not fit). */
  decode(bytes: Uint8Array, offset?: number): StructValue<T>;
  /** Writes every field at `offset` (RangeError if it does not fit); bytes outside fields are left alone. */
  encodeInto(bytes: Uint8Array, value: StructValue<T>, offset?: number): void;
  /** A new buffer of SIZEOF + `trailing` bytes with the struct at 0 and the rest zero. */
  encode(value: StructValue<T>, trailing?: number): Uint8Array;
}

/** Declares a struct of `size` bytes; throws if a field is out of order, overlaps or lies outside. */
export function defineStruct<const T extends FieldTable>(name: string, size: number, table: T): Struct<T> {
  if (!Number.isInteger(size) || size <= 0) throw new Error(`${name}: size ${size} is not a positive integer`);
  const fields: StructField[] = [];
  let end = 0;
  let prev = '(start)';
  for (const [field, spec] of Object.entries(table)) {
    const width = fieldWidth(spec);
    if (!Number.isInteger(spec.offset) || spec.offset < 0 || !Number.isInteger(width) || width <= 0) {
      throw new Error(`${name}.${field}: bad offset ${spec.offset} or width ${width}`);
    }
    if (spec.offset < end) throw new Error(`${name}.${field} at ${spec.offset} overlaps ${prev} (ends at ${end})`);
    if (spec.offset + width > size) throw new Error(`${name}.${field} runs past the struct size ${size}`);
    fields.push({ name: field, offset: spec.offset, width, type: spec.type });
    end = spec.offset + width;
    prev = field;
  }
  const OFFSET = Object.fromEntries(fields.map((f) => [f.name, f.offset])) as { [K in keyof T]: number };

  const fits = (b: Uint8Array, offset: number): void => {
    if (!(offset >= 0 && offset + size <= b.length)) {
      throw new RangeError(`${name}: ${size} bytes at ${offset} run past ${b.length}`);
    }
  };

  function decode(b: Uint8Array, offset = 0): StructValue<T> {
    fits(b, offset);
    const v = view(b, offset, size);
    const out: Record<string, number | bigint | Uint8Array> = {};
    for (const f of fields) {
      switch (f.type) {
        case 'u8':
          out[f.name] = v.getUint8(f.offset);
          break;
        case 'u16le':
          out[f.name] = v.getUint16(f.offset, true);
          break;
        case 'u32le':
          out[f.name] = v.getUint32(f.offset, true);
          break;
        case 'u64le':
          out[f.name] = v.getBigUint64(f.offset, true);
          break;
        case 'bytes':
          out[f.name] = b.subarray(offset + f.offset, offset + f.offset + f.width);
          break;
      }
    }
    return out as StructValue<T>;
  }

  function encodeInto(b: Uint8Array, value: StructValue<T>, offset = 0): void {
    fits(b, offset);
    const v = view(b, offset, size);
    const values = value as Record<string, number | bigint | Uint8Array>;
    for (const f of fields) {
      const x = values[f.name];
      switch (f.type) {
        case 'u8':
          v.setUint8(f.offset, x as number);
          break;
        case 'u16le':
          v.setUint16(f.offset, x as number, true);
          break;
        case 'u32le':
          v.setUint32(f.offset, x as number, true);
          break;
        case 'u64le':
          v.setBigUint64(f.offset, x as bigint, true);
          break;
        case 'bytes': {
          const src = x as Uint8Array;
          if (src.length !== f.width) throw new RangeError(`${name}.${f.name}: ${src.length} bytes, need ${f.width}`);
          b.set(src, offset + f.offset);
          break;
        }
      }
    }
  }

  function encode(value: StructValue<T>, trailing = 0): Uint8Array {
    const out = new Uint8Array(size + trailing);
    encodeInto(out, value);
    return out;
  }

  return Object.freeze({ name, SIZEOF: size, OFFSET: Object.freeze(OFFSET), fields, decode, encodeInto, encode });
}
