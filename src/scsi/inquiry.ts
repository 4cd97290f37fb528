/**
 * INQUIRY (SPC-4 §6.6): standard data and the VPD pages Linux reads while probing a disk —
 * 00h supported pages, 80h unit serial number, 83h device identification (§7.8.6), B0h block
 * limits, B1h block device characteristics, B2h logical block provisioning (SBC-3 §6.6).
 */
import { clampToAllocation } from './cdb.js';
import { readU16BE, writeU16BE, writeU32BE, writeU64BE } from '../util/bytes.js';
import { Peripheral } from './constants.js';
import { invalidFieldInCdb } from './sense.js';
import {
  MAX_TRANSFER_BYTES,
  MAX_UNMAP_BYTES,
  MAX_UNMAP_DESCRIPTORS,
  MAX_WRITE_SAME_BYTES,
  OPTIMAL_GRANULARITY_BYTES,
  blocksFor,
  type BlockDevice,
} from './block-device.js';
import { PROTOCOL_ID_FC } from './persistent-reservations.js';

export interface PortIdentity {
  readonly wwpn: bigint;
  readonly wwnn: bigint;
  readonly relativePortId: number;
}

export interface ProductIdentity {
  vendor: string;
  product: string;
  revision: string;
}

// INQUIRY CDB: byte 1 EVPD(0) CMDDT(1, obsolete); byte 2 PAGE CODE; bytes 3-4 ALLOCATION LENGTH.
const CDB_FLAGS = 1;
const EVPD = 0x01;
const CMDDT = 0x02;
const CDB_PAGE_CODE = 2;
const CDB_ALLOCATION_LENGTH = 3;

// Standard INQUIRY data (SPC-4 Table 142):
//   0 PERIPHERAL QUALIFIER(7..5) DEVICE TYPE(4..0) | 1 RMB(7) | 2 VERSION | 3 NORMACA(5) HISUP(4) RESPONSE DATA FORMAT(3..0)
//   4 ADDITIONAL LENGTH | 5 SCCS ACC TPGS(5..4) 3PC PROTECT | 6 ENCSERV VS MULTIP(4) | 7 CMDQUE(1)
//   8-15 T10 VENDOR | 16-31 PRODUCT | 32-35 REVISION | 36-57 vendor/reserved | 58-73 VERSION DESCRIPTORS (8 x 2)
const STD_LENGTH = 74;
const STD_VERSION_SPC4 = 0x06;
const STD_HISUP = 0x10;
const STD_RESPONSE_FORMAT = 0x02;
const STD_TPGS_IMPLICIT = 0x10;
const STD_MULTIP = 0x10;
const STD_CMDQUE = 0x02;
const STD_VENDOR = 8;
const STD_PRODUCT = 16;
const STD_REVISION = 32;
const STD_VERSION_DESCRIPTORS = 58;
/** SAM-5, SPC-4, SBC-3, FCP-4 (SPC-4 Table 148 version descriptor codes). */
const VERSION_DESCRIPTORS = [0x00a0, 0x0460, 0x04c0, 0x0a40];

export const VpdPage = {
  SUPPORTED_PAGES: 0x00,
  UNIT_SERIAL_NUMBER: 0x80,
  DEVICE_IDENTIFICATION: 0x83,
  BLOCK_LIMITS: 0xb0,
  BLOCK_DEVICE_CHARACTERISTICS: 0xb1,
  LOGICAL_BLOCK_PROVISIONING: 0xb2,
} as const;
const SUPPORTED_VPD = [0x00, 0x80, 0x83, 0xb0, 0xb1, 0xb2];

// Designation descriptor (SPC-4 Table 459): 0 PROTOCOL IDENTIFIER(7..4) CODE SET(3..0)
//   | 1 PIV(7) ASSOCIATION(5..4) DESIGNATOR TYPE(3..0) | 3 DESIGNATOR LENGTH | 4.. designator
const CODE_SET_BINARY = 0x1;
const CODE_SET_ASCII = 0x2;
const PIV = 0x80;
const ASSOC_LU = 0x00;
const ASSOC_TARGET_PORT = 0x10;
const ASSOC_TARGET_DEVICE = 0x20;
const DESIGNATOR_T10_VENDOR = 0x1;
const DESIGNATOR_NAA = 0x3;
const DESIGNATOR_RELATIVE_TARGET_PORT = 0x4;
const DESIGNATOR_TARGET_PORT_GROUP = 0x5;

// Block limits (SBC-3 Table 183), page length 3Ch:
//   4 WSNZ(0) | 6-7 OPTIMAL TRANSFER LENGTH GRANULARITY | 8-11 MAXIMUM TRANSFER LENGTH | 12-15 OPTIMAL TRANSFER LENGTH
//   20-23 MAXIMUM UNMAP LBA COUNT | 24-27 MAXIMUM UNMAP BLOCK DESCRIPTOR COUNT | 28-31 OPTIMAL UNMAP GRANULARITY
//   32-35 UGAVALID(31) UNMAP GRANULARITY ALIGNMENT | 36-43 MAXIMUM WRITE SAME LENGTH
const B0_PAGE_LENGTH = 0x3c;
const B0_WSNZ = 0x01;
// Block device characteristics (SBC-3 Table 186): 4-5 MEDIUM ROTATION RATE (0001h = non-rotating) | 7 NOMINAL FORM FACTOR
const B1_PAGE_LENGTH = 0x3c;
const NON_ROTATING_MEDIUM = 0x0001;
// Logical block provisioning (SBC-3 Table 191): 4 THRESHOLD EXPONENT | 5 LBPU(7) LBPWS(6) LBPWS10(5) LBPRZ(2) ANC_SUP(1) DP(0)
//   | 6 PROVISIONING TYPE(2..0)
const B2_PAGE_LENGTH = 0x04;
const B2_LBPU = 0x80;
const B2_LBPWS = 0x40;
const B2_LBPWS10 = 0x20;
const B2_LBPRZ = 0x04;
const PROVISIONING_THIN = 0x02;

function putAscii(out: Uint8Array, off: number, len: number, text: string): void {
  for (let i = 0; i < len; i++) out[off + i] = i < text.length ? text.charCodeAt(i) & 0x7f : 0x20;
}

/** The logical unit behind a LUN, or null when the LUN is not mapped for this initiator. */
export interface InquiryTarget {
  device: BlockDevice | null;
  /** The LUN addresses the REPORT LUNS well-known logical unit (device is then null). */
  wellKnown?: boolean;
  port: PortIdentity;
  multiPort: boolean;
  product: ProductIdentity;
}

export function inquiry(cdb: Uint8Array, t: InquiryTarget): Uint8Array {
  const flags = cdb[CDB_FLAGS]!;
  const page = cdb[CDB_PAGE_CODE]!;
  const alloc = readU16BE(cdb, CDB_ALLOCATION_LENGTH);
  if (flags & CMDDT) throw invalidFieldInCdb(CDB_FLAGS, 1, 'INQUIRY CMDDT is obsolete');
  if (!(flags & EVPD)) {
    if (page !== 0) throw invalidFieldInCdb(CDB_PAGE_CODE, 7, 'INQUIRY page code set without EVPD');
    return clampToAllocation(standardInquiry(t), alloc);
  }
  return clampToAllocation(vpdPage(page, t), alloc);
}

function standardInquiry(t: InquiryTarget): Uint8Array {
  const out = new Uint8Array(STD_LENGTH);
  out[0] = t.device
    ? Peripheral.DIRECT_ACCESS_BLOCK
    : t.wellKnown
      ? Peripheral.WELL_KNOWN_LU
      : Peripheral.NO_LOGICAL_UNIT;
  out[2] = STD_VERSION_SPC4;
  out[3] = STD_HISUP | STD_RESPONSE_FORMAT;
  out[4] = STD_LENGTH - 5;
  out[5] = STD_TPGS_IMPLICIT;
  out[6] = t.multiPort ? STD_MULTIP : 0;
  out[7] = STD_CMDQUE;
  putAscii(out, STD_VENDOR, 8, t.product.vendor);
  putAscii(out, STD_PRODUCT, 16, t.product.product);
  putAscii(out, STD_REVISION, 4, t.product.revision);
  for (const [i, v] of VERSION_DESCRIPTORS.entries()) writeU16BE(out, STD_VERSION_DESCRIPTORS + 2 * i, v);
  return out;
}

function vpdPage(page: number, t: InquiryTarget): Uint8Array {
  const dev = t.device;
  if (!dev) {
    // No logical unit here: only the supported-pages page, with qualifier 011b (SPC-4 §6.6.1).
    if (page !== VpdPage.SUPPORTED_PAGES)
      throw invalidFieldInCdb(CDB_PAGE_CODE, 7, `VPD page 0x${page.toString(16)} for a LUN with no logical unit`);
    const peripheral = t.wellKnown ? Peripheral.WELL_KNOWN_LU : Peripheral.NO_LOGICAL_UNIT;
    return vpd(peripheral, page, Uint8Array.of(VpdPage.SUPPORTED_PAGES));
  }
  switch (page) {
    case VpdPage.SUPPORTED_PAGES:
      return vpd(0, page, Uint8Array.from(SUPPORTED_VPD));
    case VpdPage.UNIT_SERIAL_NUMBER:
      return vpd(0, page, new TextEncoder().encode(dev.serial));
    case VpdPage.DEVICE_IDENTIFICATION:
      return vpd(0, page, deviceIdentification(dev, t));
    case VpdPage.BLOCK_LIMITS:
      return vpd(0, page, blockLimits(dev));
    case VpdPage.BLOCK_DEVICE_CHARACTERISTICS: {
      const body = new Uint8Array(B1_PAGE_LENGTH);
      writeU16BE(body, 0, NON_ROTATING_MEDIUM);
      return vpd(0, page, body);
    }
    case VpdPage.LOGICAL_BLOCK_PROVISIONING: {
      const body = new Uint8Array(B2_PAGE_LENGTH);
      body[1] = B2_LBPU | B2_LBPWS | B2_LBPWS10 | B2_LBPRZ;
      body[2] = PROVISIONING_THIN;
      return vpd(0, page, body);
    }
    default:
      throw invalidFieldInCdb(CDB_PAGE_CODE, 7, `VPD page 0x${page.toString(16)} not supported`);
  }
}

/** VPD header: 0 PERIPHERAL | 1 PAGE CODE | 2-3 PAGE LENGTH, then the body. */
function vpd(peripheral: number, page: number, body: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + body.length);
  out[0] = peripheral;
  out[1] = page;
  writeU16BE(out, 2, body.length);
  out.set(body, 4);
  return out;
}

function designator(protocolAndCodeSet: number, piAssocType: number, value: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + value.length);
  out[0] = protocolAndCodeSet;
  out[1] = piAssocType;
  out[3] = value.length;
  out.set(value, 4);
  return out;
}

function deviceIdentification(dev: BlockDevice, t: InquiryTarget): Uint8Array {
  const wwn = (v: bigint): Uint8Array => {
    const b = new Uint8Array(8);
    writeU64BE(b, 0, v);
    return b;
  };
  const portNumber = (v: number): Uint8Array => {
    const b = new Uint8Array(4);
    writeU16BE(b, 2, v);
    return b;
  };
  const fc = PROTOCOL_ID_FC << 4;
  const vendorId = new Uint8Array(8 + dev.serial.length);
  putAscii(vendorId, 0, 8, t.product.vendor);
  putAscii(vendorId, 8, dev.serial.length, dev.serial);
  const parts = [
    // The logical unit: NAA-6 (what udev's /dev/disk/by-id/wwn-0x6... is made of) and a T10 vendor id.
    designator(CODE_SET_BINARY, ASSOC_LU | DESIGNATOR_NAA, dev.naa),
    designator(CODE_SET_ASCII, ASSOC_LU | DESIGNATOR_T10_VENDOR, vendorId),
    // The target port the command came in on: its WWPN, relative port and (one per port) port group.
    designator(fc | CODE_SET_BINARY, PIV | ASSOC_TARGET_PORT | DESIGNATOR_NAA, wwn(t.port.wwpn)),
    designator(
      fc | CODE_SET_BINARY,
      PIV | ASSOC_TARGET_PORT | DESIGNATOR_RELATIVE_TARGET_PORT,
      portNumber(t.port.relativePortId),
    ),
    designator(
      CODE_SET_BINARY,
      ASSOC_TARGET_PORT | DESIGNATOR_TARGET_PORT_GROUP,
      portNumber(targetPortGroupOf(t.port)),
    ),
    // The target device: its node name.
    designator(fc | CODE_SET_BINARY, PIV | ASSOC_TARGET_DEVICE | DESIGNATOR_NAA, wwn(t.port.wwnn)),
  ];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

/** ALUA: every target port is its own target port group, numbered like the port. */
export function targetPortGroupOf(port: PortIdentity): number {
  return port.relativePortId;
}

function blockLimits(dev: BlockDevice): Uint8Array {
  const bs = dev.blockSize;
  const body = new Uint8Array(B0_PAGE_LENGTH);
  // Offsets below are page offsets minus the 4-byte header.
  body[0] = B0_WSNZ;
  writeU16BE(body, 2, blocksFor(OPTIMAL_GRANULARITY_BYTES, bs));
  writeU32BE(body, 4, blocksFor(MAX_TRANSFER_BYTES, bs));
  writeU32BE(body, 8, blocksFor(MAX_TRANSFER_BYTES, bs));
  writeU32BE(body, 16, blocksFor(MAX_UNMAP_BYTES, bs));
  writeU32BE(body, 20, MAX_UNMAP_DESCRIPTORS);
  writeU32BE(body, 24, blocksFor(OPTIMAL_GRANULARITY_BYTES, bs));
  writeU64BE(body, 32, BigInt(blocksFor(MAX_WRITE_SAME_BYTES, bs)));
  return body;
}
