/**
 * A small in-test ScsiTargetPort: one RAM LUN answering INQUIRY, REPORT LUNS, TEST UNIT READY,
 * READ CAPACITY(10), READ(10) and WRITE(10); anything else is CHECK CONDITION / ILLEGAL REQUEST.
 * It records nexus losses and task management calls so tests can assert on them.
 */
import type { ItNexus, ScsiRequest, ScsiResponse, ScsiTargetPort } from '../../../src/scsi/api.js';
import type { TaskManagementFunction } from '../../../src/scsi/sam.js';

const BLOCK = 512;

function sense(key: number, asc: number): Uint8Array {
  const s = new Uint8Array(18);
  s[0] = 0x70;
  s[2] = key;
  s[7] = 10;
  s[12] = asc;
  return s;
}

export class FakeScsiTarget implements ScsiTargetPort {
  readonly disk: Uint8Array;
  readonly lost: ItNexus[] = [];
  readonly tmfs: { fn: TaskManagementFunction; taskTag?: number }[] = [];
  readonly requests: ScsiRequest[] = [];
  /** When set, commands never complete (to exercise timeouts and ABTS). */
  hang = false;

  constructor(
    readonly wwpn: bigint,
    readonly wwnn: bigint,
    readonly relativePortId = 1,
    blocks = 2048,
  ) {
    this.disk = new Uint8Array(blocks * BLOCK);
  }

  async execute(req: ScsiRequest): Promise<ScsiResponse> {
    this.requests.push(req);
    if (this.hang) return new Promise(() => undefined);
    const lun = req.lun[1]!;
    const op = req.cdb[0]!;
    if (op === 0xa0) {
      const d = new Uint8Array(16);
      d[3] = 8; // list length: one LUN (LUN 0)
      return { status: 0, sense: null, dataIn: d };
    }
    if (lun !== 0) {
      if (op === 0x12)
        return { status: 0, sense: null, dataIn: Uint8Array.of(0x7f, 0, 5, 2, 31, ...new Array(31).fill(0)) };
      return { status: 2, sense: sense(5, 0x25), dataIn: null };
    }
    const view = new DataView(req.cdb.buffer, req.cdb.byteOffset, 16);
    switch (op) {
      case 0x00:
        return { status: 0, sense: null, dataIn: null };
      case 0x12: {
        const d = new Uint8Array(36);
        d[2] = 5;
        d[3] = 2;
        d[4] = 31;
        d.set(new TextEncoder().encode('NPIVHBA FAKE DISK       0001'), 8);
        return { status: 0, sense: null, dataIn: d };
      }
      case 0x25: {
        const d = new Uint8Array(8);
        new DataView(d.buffer).setUint32(0, this.disk.length / BLOCK - 1);
        new DataView(d.buffer).setUint32(4, BLOCK);
        return { status: 0, sense: null, dataIn: d };
      }
      case 0x28: {
        const lba = view.getUint32(2);
        const n = view.getUint16(7);
        if ((lba + n) * BLOCK > this.disk.length) return { status: 2, sense: sense(5, 0x21), dataIn: null };
        return { status: 0, sense: null, dataIn: this.disk.slice(lba * BLOCK, (lba + n) * BLOCK) };
      }
      case 0x2a: {
        const lba = view.getUint32(2);
        const n = view.getUint16(7);
        if ((lba + n) * BLOCK > this.disk.length) return { status: 2, sense: sense(5, 0x21), dataIn: null };
        if (!req.dataOut || req.dataOut.length < n * BLOCK) return { status: 2, sense: sense(5, 0x24), dataIn: null };
        this.disk.set(req.dataOut.subarray(0, n * BLOCK), lba * BLOCK);
        return { status: 0, sense: null, dataIn: null };
      }
      default:
        return { status: 2, sense: sense(5, 0x20), dataIn: null };
    }
  }

  async taskManagement(
    _nexus: ItNexus,
    _lun: Uint8Array,
    fn: TaskManagementFunction,
    taskTag?: number,
  ): Promise<number> {
    this.tmfs.push({ fn, taskTag });
    return 0;
  }

  nexusLost(nexus: ItNexus): void {
    this.lost.push(nexus);
  }
}

export function read10(lba: number, blocks: number): Uint8Array {
  const c = new Uint8Array(10);
  c[0] = 0x28;
  new DataView(c.buffer).setUint32(2, lba);
  new DataView(c.buffer).setUint16(7, blocks);
  return c;
}

export function write10(lba: number, blocks: number): Uint8Array {
  const c = read10(lba, blocks);
  c[0] = 0x2a;
  return c;
}

export const INQUIRY = Uint8Array.of(0x12, 0, 0, 0, 36, 0);
export const REPORT_LUNS = Uint8Array.of(0xa0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0);
