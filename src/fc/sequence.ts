/**
 * FC-2 sequences (FC-FS-3 §10): splitting an information unit into frames and putting received
 * frames back together.
 *
 * Sending: frames carry consecutive SEQ_CNT from 0, the relative offset of their data in the
 * parameter field (F_CTL REL_OFF), and END_SEQ — plus the caller's end-of-sequence bits such as
 * SEQ_INIT or LAST_SEQ — on the last frame only. Receiving: frames of one sequence are collected
 * under a byte budget; a frame out of order or over budget discards the sequence (class 3 gives no
 * retransmission, so the exchange then times out or is aborted, as on a real link).
 */
import { F_CTL, FC_HEADER_SIZE, type FcFrame, type FcHeader, encodeHeader } from './frame.js';

/** Bits that belong on the last frame of a sequence only. */
export const END_OF_SEQUENCE_BITS = F_CTL.END_SEQ | F_CTL.SEQ_INIT | F_CTL.LAST_SEQ;

export interface SequenceTemplate extends Omit<FcHeader, 'seqCnt' | 'parameter'> {
  /** Parameter value for a single-frame sequence without relative offset (e.g. 0). */
  parameter?: number;
  /** First SEQ_CNT (continues across sequences of one exchange when streaming data). */
  firstSeqCnt?: number;
  /** Relative offset of the first byte; when given, every frame carries REL_OFF. */
  relativeOffset?: number;
}

/** Encode `payload` as frames of at most `maxDataField` bytes. An empty payload is one empty frame. */
export function buildSequence(t: SequenceTemplate, payload: Uint8Array, maxDataField: number): Uint8Array[] {
  if (maxDataField < 4 || maxDataField % 4 !== 0)
    throw new RangeError(`data field size ${maxDataField} must be a positive multiple of 4`);
  const frames: Uint8Array[] = [];
  const count = Math.max(1, Math.ceil(payload.length / maxDataField));
  const useRelOff = t.relativeOffset !== undefined || count > 1;
  const baseOffset = t.relativeOffset ?? 0;
  for (let i = 0; i < count; i++) {
    const chunk = payload.subarray(i * maxDataField, Math.min(payload.length, (i + 1) * maxDataField));
    const last = i === count - 1;
    let fCtl = t.fCtl & ~END_OF_SEQUENCE_BITS;
    if (last) fCtl |= t.fCtl & END_OF_SEQUENCE_BITS;
    if (useRelOff) fCtl |= F_CTL.REL_OFF;
    const out = new Uint8Array(FC_HEADER_SIZE + chunk.length);
    encodeHeader(
      {
        ...t,
        fCtl,
        seqCnt: ((t.firstSeqCnt ?? 0) + i) & 0xffff,
        parameter: useRelOff ? baseOffset + i * maxDataField : (t.parameter ?? 0),
      },
      out,
    );
    out.set(chunk, FC_HEADER_SIZE);
    frames.push(out);
  }
  return frames;
}

interface PartialSequence {
  header: FcHeader;
  parts: Uint8Array[];
  bytes: number;
  nextSeqCnt: number;
}

/**
 * Collects multi-frame sequences. Keyed by the sender's address, OX_ID and SEQ_ID; at most
 * `maxSequences` may be open at once (the oldest is discarded past that), each at most `maxBytes`.
 */
export class SequenceAssembler {
  private readonly open = new Map<string, PartialSequence>();

  constructor(
    private readonly maxBytes: number,
    private readonly maxSequences = 64,
  ) {}

  /**
   * Offer a frame. Returns the complete information unit (header of the first frame, END_SEQ
   * frame's F_CTL) when this frame ends its sequence, null while it is still open or discarded.
   */
  push(frame: FcFrame): FcFrame | null {
    const h = frame.header;
    const key = `${h.sId}:${h.oxId}:${h.seqId}`;
    let seq = this.open.get(key);
    if (!seq) {
      if (frame.payload.length > this.maxBytes) return null;
      if (h.fCtl & F_CTL.END_SEQ) return frame;
      seq = { header: h, parts: [], bytes: 0, nextSeqCnt: h.seqCnt };
      if (this.open.size >= this.maxSequences) {
        const oldest = this.open.keys().next().value;
        if (oldest !== undefined) this.open.delete(oldest);
      }
      this.open.set(key, seq);
    }
    if (h.seqCnt !== seq.nextSeqCnt || seq.bytes + frame.payload.length > this.maxBytes) {
      this.open.delete(key);
      return null;
    }
    seq.parts.push(frame.payload);
    seq.bytes += frame.payload.length;
    seq.nextSeqCnt = (seq.nextSeqCnt + 1) & 0xffff;
    if (!(h.fCtl & F_CTL.END_SEQ)) return null;
    this.open.delete(key);
    const payload = new Uint8Array(seq.bytes);
    let at = 0;
    for (const p of seq.parts) {
      payload.set(p, at);
      at += p.length;
    }
    return { header: { ...seq.header, fCtl: h.fCtl }, payload };
  }

  /** Forget open sequences of one exchange (abort, completion). */
  dropExchange(sId: number, oxId: number): void {
    for (const key of this.open.keys()) if (key.startsWith(`${sId}:${oxId}:`)) this.open.delete(key);
  }

  get openCount(): number {
    return this.open.size;
  }
}
