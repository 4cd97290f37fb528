/**
 * pcap (libpcap classic format, microsecond timestamps) writer for FC-2 frames:
 * LINKTYPE_FC_2 = 224, "Fibre Channel FC-2 frames, beginning with a Frame_Header" — exactly what
 * a link carries, so Wireshark/tshark dissect the records as FC (ELS, FC-CT, FCP, BLS).
 *
 * Global header (24 bytes, little-endian): magic 0xa1b2c3d4 | version 2.4 | thiszone 0 |
 * sigfigs 0 | snaplen | network. Record header (16 bytes): ts_sec | ts_usec | incl_len | orig_len.
 *
 * A capture holds the data of every I/O (disk contents): the file is created 0600 and never
 * through a symlink (src/util/private-file.ts).
 */
import { closeSync, writeSync } from 'node:fs';
import { createPrivateFile } from '../util/private-file.js';
import { FC_MAX_FRAME } from './frame.js';
import type { Link } from './link.js';

export const LINKTYPE_FC_2 = 224;
const PCAP_MAGIC = 0xa1b2c3d4;
const PCAP_GLOBAL_HEADER = 24;
const PCAP_RECORD_HEADER = 16;

export class PcapWriter {
  private fd: number | null;

  constructor(readonly path: string) {
    this.fd = createPrivateFile(path, 'capture file');
    const h = Buffer.alloc(PCAP_GLOBAL_HEADER);
    h.writeUInt32LE(PCAP_MAGIC, 0);
    h.writeUInt16LE(2, 4);
    h.writeUInt16LE(4, 6);
    h.writeInt32LE(0, 8);
    h.writeUInt32LE(0, 12);
    h.writeUInt32LE(FC_MAX_FRAME, 16);
    h.writeUInt32LE(LINKTYPE_FC_2, 20);
    writeSync(this.fd, h);
  }

  /** Append one frame (synchronously, so a crash loses nothing already written). */
  write(frame: Uint8Array, when = Date.now()): void {
    if (this.fd === null) return;
    const r = Buffer.alloc(PCAP_RECORD_HEADER + frame.length);
    r.writeUInt32LE(Math.floor(when / 1000), 0);
    r.writeUInt32LE((when % 1000) * 1000, 4);
    r.writeUInt32LE(frame.length, 8);
    r.writeUInt32LE(frame.length, 12);
    r.set(frame, PCAP_RECORD_HEADER);
    writeSync(this.fd, r);
  }

  /** Record every frame a link sends and receives (seen from this end). Returns the detach function. */
  recordLink(link: Link): () => void {
    return link.addTap((_dir, frame) => this.write(frame));
  }

  close(): void {
    if (this.fd === null) return;
    closeSync(this.fd);
    this.fd = null;
  }
}
