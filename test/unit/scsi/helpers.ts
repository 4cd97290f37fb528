/** Shared helpers for the SCSI target tests: a small array, request builders, sense decoding. */
import { expect } from 'vitest';
import type { ItNexus, ScsiResponse, ScsiTargetPort } from '../../../src/scsi/api.js';
import { encodeLun } from '../../../src/scsi/cdb.js';
import { type DataDirection, Status } from '../../../src/scsi/sam.js';
import { parseFixedSense, type SenseData } from '../../../src/scsi/sense.js';
import { StorageArray, type ArrayConfig } from '../../../src/san/array.js';

export const PORT_A = 0x50060e8000000001n;
export const PORT_B = 0x50060e8000000002n;
export const ARRAY_WWNN = 0x50060e8000000000n;
export const HOST_1 = 0x5001438001234567n;
export const HOST_2 = 0x5001438001234568n;
export const STRANGER = 0x5001438009999999n;

/** Two ports; HOST_1 sees LUN 0 (vol0) and LUN 1 (shared); HOST_2 sees LUN 1 (shared) and LUN 5 (vol2). */
export function testConfig(overrides: Partial<ArrayConfig> = {}): ArrayConfig {
  return {
    name: 'array1',
    ports: [
      { wwpn: '50:06:0e:80:00:00:00:01', wwnn: '50:06:0e:80:00:00:00:00' },
      { wwpn: '50:06:0e:80:00:00:00:02', wwnn: '50:06:0e:80:00:00:00:00' },
    ],
    volumes: [
      { name: 'vol0', size: '16MiB' },
      { name: 'shared', size: '8MiB' },
      { name: 'vol2', size: '4MiB' },
    ],
    hostGroups: [
      { name: 'host1', initiators: ['50:01:43:80:01:23:45:67'], luns: { '0': 'vol0', '1': 'shared' } },
      { name: 'host2', initiators: ['50:01:43:80:01:23:45:68'], luns: { '1': 'shared', '5': 'vol2' } },
    ],
    ...overrides,
  };
}

export async function makeArray(overrides: Partial<ArrayConfig> = {}): Promise<StorageArray> {
  return StorageArray.create(testConfig(overrides));
}

export function nexus(initiatorWwpn: bigint, port: ScsiTargetPort): ItNexus {
  return { initiatorWwpn, targetWwpn: port.wwpn, relativeTargetPortId: port.relativePortId };
}

export interface SendOptions {
  lun?: number;
  lunField?: Uint8Array;
  dataOut?: Uint8Array;
  expectedLength?: number;
  direction?: DataDirection;
  taskTag?: number;
}

/** One initiator talking through one target port. */
export class Host {
  constructor(
    readonly wwpn: bigint,
    readonly port: ScsiTargetPort,
  ) {}
  get nexus(): ItNexus {
    return nexus(this.wwpn, this.port);
  }

  send(cdbBytes: number[] | Uint8Array, opts: SendOptions = {}): Promise<ScsiResponse> {
    const cdb = new Uint8Array(16);
    cdb.set(cdbBytes instanceof Uint8Array ? cdbBytes : Uint8Array.from(cdbBytes));
    const dataOut = opts.dataOut ?? null;
    return this.port.execute({
      nexus: this.nexus,
      lun: opts.lunField ?? encodeLun(opts.lun ?? 0),
      cdb,
      direction: opts.direction ?? (dataOut ? 'write' : 'read'),
      expectedLength: opts.expectedLength ?? (dataOut ? dataOut.length : 0xffff),
      dataOut,
      taskTag: opts.taskTag ?? 1,
    });
  }

  /** Sends TEST UNIT READY until the pending unit attentions are drained (bounded). */
  async clearUnitAttentions(lun = 0): Promise<SenseData[]> {
    const seen: SenseData[] = [];
    for (let i = 0; i < 20; i++) {
      const r = await this.send([0x00, 0, 0, 0, 0, 0], { lun });
      if (r.status === Status.GOOD) return seen;
      const s = parseFixedSense(r.sense!);
      if (s.key !== 6) throw new Error(`TEST UNIT READY failed with sense key ${s.key}`);
      seen.push(s);
    }
    throw new Error('unit attentions did not drain');
  }
}

export function expectGood(r: ScsiResponse): Uint8Array {
  if (r.status !== Status.GOOD) {
    const s = r.sense ? parseFixedSense(r.sense) : null;
    throw new Error(`expected GOOD, got status 0x${r.status.toString(16)} sense ${JSON.stringify(s)}`);
  }
  return r.dataIn ?? new Uint8Array(0);
}

export function expectCheck(r: ScsiResponse, key: number, asc: number, ascq: number): SenseData {
  expect(r.status).toBe(Status.CHECK_CONDITION);
  expect(r.sense).not.toBeNull();
  const s = parseFixedSense(r.sense!);
  expect({ key: s.key, asc: s.sense.asc, ascq: s.sense.ascq }).toEqual({ key, asc, ascq });
  return s;
}

/** INVALID FIELD IN CDB with the given field pointer. */
export function expectInvalidField(r: ScsiResponse, byte: number, bit?: number): void {
  const s = expectCheck(r, 0x5, 0x24, 0x00);
  expect(s.field).toEqual(bit === undefined ? { inCdb: true, byte } : { inCdb: true, byte, bit });
}

export function be32(b: Uint8Array, off: number): number {
  return new DataView(b.buffer, b.byteOffset).getUint32(off);
}
export function be16(b: Uint8Array, off: number): number {
  return new DataView(b.buffer, b.byteOffset).getUint16(off);
}
export function be64(b: Uint8Array, off: number): bigint {
  return new DataView(b.buffer, b.byteOffset).getBigUint64(off);
}

/** CDB builders for the commands under test. */
export const Cdb = {
  tur: () => [0x00, 0, 0, 0, 0, 0],
  inquiry: (alloc = 255, evpd = false, page = 0) => [0x12, evpd ? 1 : 0, page, alloc >> 8, alloc & 0xff, 0],
  reportLuns: (alloc = 4096, select = 0) => [
    0xa0,
    0,
    select,
    0,
    0,
    0,
    (alloc >>> 24) & 0xff,
    (alloc >> 16) & 0xff,
    (alloc >> 8) & 0xff,
    alloc & 0xff,
    0,
    0,
  ],
  requestSense: (alloc = 18, desc = false) => [0x03, desc ? 1 : 0, 0, 0, alloc, 0],
  readCapacity10: () => [0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0],
  readCapacity16: (alloc = 32) => [
    0x9e,
    0x10,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    (alloc >>> 24) & 0xff,
    (alloc >> 16) & 0xff,
    (alloc >> 8) & 0xff,
    alloc & 0xff,
    0,
    0,
  ],
  read10: (lba: number, blocks: number, flags = 0) => [
    0x28,
    flags,
    (lba >>> 24) & 0xff,
    (lba >> 16) & 0xff,
    (lba >> 8) & 0xff,
    lba & 0xff,
    0,
    blocks >> 8,
    blocks & 0xff,
    0,
  ],
  write10: (lba: number, blocks: number, flags = 0) => [
    0x2a,
    flags,
    (lba >>> 24) & 0xff,
    (lba >> 16) & 0xff,
    (lba >> 8) & 0xff,
    lba & 0xff,
    0,
    blocks >> 8,
    blocks & 0xff,
    0,
  ],
  rw16: (op: number, lba: bigint, blocks: number, flags = 0) => {
    const c = new Uint8Array(16);
    c[0] = op;
    c[1] = flags;
    new DataView(c.buffer).setBigUint64(2, lba);
    new DataView(c.buffer).setUint32(10, blocks);
    return c;
  },
  rw12: (op: number, lba: number, blocks: number, flags = 0) => {
    const c = new Uint8Array(12);
    c[0] = op;
    c[1] = flags;
    new DataView(c.buffer).setUint32(2, lba);
    new DataView(c.buffer).setUint32(6, blocks);
    return c;
  },
  rw6: (op: number, lba: number, blocks: number) => [op, (lba >> 16) & 0x1f, (lba >> 8) & 0xff, lba & 0xff, blocks, 0],
  modeSense6: (page: number, alloc = 255, opts: { dbd?: boolean; pc?: number; subpage?: number } = {}) => [
    0x1a,
    opts.dbd ? 0x08 : 0,
    ((opts.pc ?? 0) << 6) | page,
    opts.subpage ?? 0,
    alloc,
    0,
  ],
  modeSense10: (
    page: number,
    alloc = 1024,
    opts: { dbd?: boolean; llbaa?: boolean; pc?: number; subpage?: number } = {},
  ) => [
    0x5a,
    (opts.dbd ? 0x08 : 0) | (opts.llbaa ? 0x10 : 0),
    ((opts.pc ?? 0) << 6) | page,
    opts.subpage ?? 0,
    0,
    0,
    0,
    alloc >> 8,
    alloc & 0xff,
    0,
  ],
  syncCache10: (lba = 0, blocks = 0) => [
    0x35,
    0,
    (lba >>> 24) & 0xff,
    (lba >> 16) & 0xff,
    (lba >> 8) & 0xff,
    lba & 0xff,
    0,
    blocks >> 8,
    blocks & 0xff,
    0,
  ],
  writeSame16: (lba: bigint, blocks: number, flags = 0) => {
    const c = new Uint8Array(16);
    c[0] = 0x93;
    c[1] = flags;
    new DataView(c.buffer).setBigUint64(2, lba);
    new DataView(c.buffer).setUint32(10, blocks);
    return c;
  },
  unmap: (paramLength: number) => [0x42, 0, 0, 0, 0, 0, 0, paramLength >> 8, paramLength & 0xff, 0],
  startStop: (start: boolean, extra = 0) => [0x1b, 0, 0, 0, (start ? 1 : 0) | extra, 0],
  rtpg: (alloc = 1024, extended = true) => [
    0xa3,
    (extended ? 0x20 : 0) | 0x0a,
    0,
    0,
    0,
    0,
    (alloc >>> 24) & 0xff,
    (alloc >> 16) & 0xff,
    (alloc >> 8) & 0xff,
    alloc & 0xff,
    0,
    0,
  ],
  prIn: (sa: number, alloc = 1024) => [0x5e, sa, 0, 0, 0, 0, 0, alloc >> 8, alloc & 0xff, 0],
  prOut: (sa: number, type = 0, scope = 0, length = 24) => [
    0x5f,
    sa,
    (scope << 4) | type,
    0,
    0,
    (length >>> 24) & 0xff,
    (length >> 16) & 0xff,
    (length >> 8) & 0xff,
    length & 0xff,
    0,
  ],
};

/** PERSISTENT RESERVE OUT parameter list. */
export function prParams(
  key: bigint,
  saKey: bigint,
  opts: { aptpl?: boolean; allTgPts?: boolean; specIPt?: boolean } = {},
): Uint8Array {
  const p = new Uint8Array(24);
  const dv = new DataView(p.buffer);
  dv.setBigUint64(0, key);
  dv.setBigUint64(8, saKey);
  p[20] = (opts.specIPt ? 0x08 : 0) | (opts.allTgPts ? 0x04 : 0) | (opts.aptpl ? 0x01 : 0);
  return p;
}

export function pattern(bytes: number, seed: number): Uint8Array {
  const out = new Uint8Array(bytes);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < bytes; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}
