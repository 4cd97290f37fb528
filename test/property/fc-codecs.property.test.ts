/**
 * FC-2 frame, ELS, CT (name server), FCP and BLS codecs (src/fc/*): each round-trips its
 * values; decodes arbitrary bytes to a value or an FcDecodeError (never a TypeError/RangeError);
 * and what it decoded re-encodes to something that decodes to the same value. Multi-frame
 * sequences reassemble to their payload.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FcDecodeError } from '../../src/fc/bytes.js';
import { decodeBaAcc, decodeBaRjt, encodeBaAcc, encodeBaRjt } from '../../src/fc/bls.js';
import * as ct from '../../src/fc/ct.js';
import * as els from '../../src/fc/els.js';
import {
  decodeFcpCmnd,
  decodeFcpRsp,
  decodeXferRdy,
  encodeFcpCmnd,
  encodeFcpRsp,
  encodeXferRdy,
} from '../../src/fc/fcp.js';
import { FC_MAX_PAYLOAD, F_CTL, decodeFrame, decodeHeader, encodeFrame, encodeHeader } from '../../src/fc/frame.js';
import { SequenceAssembler, buildSequence } from '../../src/fc/sequence.js';
import { RUNS, bytes, decodesOrRejects, u16, u24, u32, u64, u8 } from './support.js';

const { ELS } = els;

interface Codec {
  name: string;
  arb: fc.Arbitrary<unknown>;
  encode(v: unknown): Uint8Array;
  decode(b: Uint8Array): unknown;
  /** arbitrary inputs for the decoder (default: bytes up to 300) */
  noise?: fc.Arbitrary<Uint8Array>;
}

/** Bytes whose first byte is one of `codes` (an ELS command code), so decoders get past it. */
const withCode = (codes: number[], max: number) =>
  fc.tuple(fc.constantFrom(...codes), bytes(max)).map(([c, b]) => Uint8Array.of(c, ...b));
const name12 = fc.integer({ min: 0, max: 0xfff });
const symbolic = fc.string({ maxLength: 60 });
const fc4Types = fc
  .uniqueArray(fc.integer({ min: 0, max: 255 }), { maxLength: 8 })
  .map((t) => [...t].sort((a, b) => a - b));

const header = fc.record({
  rCtl: u8,
  dId: u24,
  csCtl: u8,
  sId: u24,
  type: u8,
  fCtl: u24,
  seqId: u8,
  dfCtl: u8,
  seqCnt: u16,
  oxId: u16,
  rxId: u16,
  parameter: u32,
});

const serviceParameters = fc
  .record({
    command: fc.constantFrom(ELS.FLOGI, ELS.FDISC, ELS.PLOGI, ELS.LS_ACC),
    bbCredit: u16,
    commonFeatures: u16,
    bbRxDataFieldSize: name12,
    raTovOrSeqs: u32,
    edTov: u32,
    wwpn: u64,
    wwnn: u64,
    class3Valid: fc.boolean(),
    class3RxDataFieldSize: name12,
    class3ServiceOptions: u16,
    class3ConcurrentSeqs: u16,
    class3OpenSeqs: u8,
  })
  .map((p) =>
    p.class3Valid
      ? { ...p, class3ServiceOptions: p.class3ServiceOptions | els.CLASS_VALID }
      : { ...p, class3RxDataFieldSize: 0, class3ServiceOptions: 0, class3ConcurrentSeqs: 0, class3OpenSeqs: 0 },
  );

const prliPage = fc.record({
  type: u8,
  typeExtension: u8,
  flags: u8,
  originatorPa: u32,
  responderPa: u32,
  serviceParams: u32,
});

const codecs: Codec[] = [
  { name: 'FC-2 header', arb: header, encode: (h) => encodeHeader(h as never), decode: decodeHeader, noise: bytes(40) },
  {
    name: 'FC frame',
    arb: fc.record({
      header: header.map((h) => ({ ...h, dfCtl: 0 })),
      payload: fc.oneof(bytes(64), bytes(FC_MAX_PAYLOAD)),
    }),
    encode: (f) => encodeFrame(f as never),
    decode: (b) => {
      const f = decodeFrame(b);
      return { header: f.header, payload: f.payload.slice() };
    },
    noise: fc.oneof(bytes(64), bytes(FC_MAX_PAYLOAD + 40, FC_MAX_PAYLOAD)).map((b) => {
      if (b.length > 13 && b[0]! & 1) b[13] = 0;
      return b;
    }),
  },
  {
    name: 'ELS service parameters',
    arb: serviceParameters,
    encode: (p) => els.encodeServiceParameters(p as never),
    decode: els.decodeServiceParameters,
    noise: withCode([ELS.FLOGI, ELS.PLOGI, ELS.LS_ACC, 0x99], 300),
  },
  {
    name: 'ELS PRLI/PRLO',
    arb: fc.record({
      command: fc.constantFrom(ELS.PRLI, ELS.PRLO, ELS.LS_ACC),
      pages: fc.array(prliPage, { minLength: 1, maxLength: 16 }),
    }),
    encode: (p) => els.encodeProcessLogin(p as never),
    decode: els.decodeProcessLogin,
    noise: withCode([ELS.PRLI, ELS.PRLO, ELS.LS_ACC], 300).map((b) => {
      if (b.length > 2 && b[2]! & 1) b[1] = 16;
      return b;
    }),
  },
  {
    name: 'ELS LOGO',
    arb: fc.record({ nportId: u24, wwpn: u64 }),
    encode: (l) => els.encodeLogo(l as never),
    decode: els.decodeLogo,
    noise: withCode([ELS.LOGO], 40),
  },
  {
    name: 'ELS ADISC',
    arb: fc.record({
      command: fc.constantFrom(ELS.ADISC, ELS.LS_ACC),
      hardAddress: u24,
      wwpn: u64,
      wwnn: u64,
      nportId: u24,
    }),
    encode: (a) => els.encodeAdisc(a as never),
    decode: els.decodeAdisc,
    noise: withCode([ELS.ADISC, ELS.LS_ACC], 40),
  },
  {
    name: 'ELS SCR',
    arb: u8,
    encode: (f) => els.encodeScr(f as number),
    decode: els.decodeScr,
    noise: withCode([ELS.SCR], 16),
  },
  {
    name: 'ELS RSCN',
    arb: fc.array(
      fc.record({
        addressFormat: fc.integer({ min: 0, max: 3 }),
        eventQualifier: fc.integer({ min: 0, max: 15 }),
        affectedId: u24,
      }),
      { minLength: 1, maxLength: 40 },
    ),
    encode: (p) => els.encodeRscn(p as never),
    decode: els.decodeRscn,
    noise: withCode([ELS.RSCN], 200).map((b) => {
      if (b.length > 1) b[1] = 4;
      return b;
    }),
  },
  {
    name: 'ELS ECHO',
    arb: bytes(200),
    encode: (d) => els.encodeEcho(d as Uint8Array),
    decode: els.decodeEcho,
    noise: withCode([ELS.ECHO, ELS.LS_ACC, 7], 100),
  },
  {
    name: 'ELS RNID request',
    arb: u8,
    encode: (f) => els.encodeRnidRequest(f as number),
    decode: els.decodeRnidRequest,
    noise: withCode([ELS.RNID], 16),
  },
  {
    name: 'ELS RNID reply',
    arb: fc.record({ format: u8, wwpn: u64, wwnn: u64, specific: bytes(255) }),
    encode: (r) => els.encodeRnidReply(r as never),
    decode: els.decodeRnidReply,
    noise: withCode([ELS.LS_ACC], 300),
  },
  {
    name: 'ELS LS_RJT',
    arb: fc.record({ reason: u8, explanation: u8, vendor: u8 }),
    encode: (r) => els.encodeLsRjt(r as never),
    decode: els.decodeLsRjt,
    noise: withCode([ELS.LS_RJT], 16),
  },
  {
    name: 'CT_IU',
    arb: fc.record({
      header: fc.record({
        gsType: u8,
        gsSubtype: u8,
        options: u8,
        code: u16,
        maxOrResidualWords: u16,
        fragmentId: u8,
        reason: u8,
        explanation: u8,
        vendor: u8,
      }),
      payload: bytes(300),
    }),
    encode: (iu) => ct.encodeCt(iu as never),
    decode: ct.decodeCt,
    noise: withCode([ct.CT_REVISION, 2], 300),
  },
  {
    name: 'CT port ID request',
    arb: u24,
    encode: (id) => ct.encodePortIdRequest(id as number),
    decode: ct.decodePortIdRequest,
  },
  {
    name: 'CT GID_FT request',
    arb: fc.record({ domainScope: u8, areaScope: u8, fc4Type: u8 }),
    encode: (r) => ct.encodeFtRequest(r as never),
    decode: ct.decodeFtRequest,
  },
  {
    name: 'CT GID_PT request',
    arb: fc.record({ portType: u8, domainScope: u8, areaScope: u8 }),
    encode: (r) => ct.encodePtRequest(r as never),
    decode: ct.decodePtRequest,
  },
  {
    name: 'CT RFT_ID',
    arb: fc.record({ nportId: u24, fc4Types }),
    encode: (r) => ct.encodeRftId(r as never),
    decode: ct.decodeRftId,
  },
  {
    name: 'CT RFF_ID',
    arb: fc.record({ nportId: u24, features: u8, fc4Type: u8 }),
    encode: (r) => ct.encodeRffId(r as never),
    decode: ct.decodeRffId,
  },
  {
    name: 'CT RNN_ID',
    arb: fc.record({ nportId: u24, wwnn: u64 }),
    encode: (r) => ct.encodeRnnId(r as never),
    decode: ct.decodeRnnId,
  },
  {
    name: 'CT RSNN_NN',
    arb: fc.record({ wwnn: u64, name: symbolic }),
    encode: (r) => ct.encodeRsnnNn(r as never),
    decode: ct.decodeRsnnNn,
  },
  {
    name: 'CT RSPN_ID',
    arb: fc.record({ nportId: u24, name: symbolic }),
    encode: (r) => ct.encodeRspnId(r as never),
    decode: ct.decodeRspnId,
  },
  {
    name: 'CT ID list',
    arb: fc.array(u24, { minLength: 1, maxLength: 30 }),
    encode: (ids) => ct.encodeIdList(ids as number[]),
    decode: ct.decodeIdList,
  },
  {
    name: 'CT name list',
    arb: fc.array(fc.record({ nportId: u24, name: u64 }), { minLength: 1, maxLength: 20 }),
    encode: (e) => ct.encodeNameList(e as never),
    decode: ct.decodeNameList,
  },
  { name: 'CT name', arb: u64, encode: (n) => ct.encodeName(n as bigint), decode: ct.decodeName },
  {
    name: 'CT GA_NXT port object',
    arb: fc.record({
      portType: u8,
      nportId: u24,
      wwpn: u64,
      symbolicPortName: symbolic,
      wwnn: u64,
      symbolicNodeName: symbolic,
      classOfService: u32,
      fc4Types,
      fabricPortName: u64,
    }),
    encode: (o) => ct.encodePortObject(o as never),
    decode: ct.decodePortObject,
    noise: fc.oneof(bytes(64), bytes(ct.GA_NXT_SIZE + 8, ct.GA_NXT_SIZE - 2)),
  },
  {
    name: 'FCP_CMND',
    arb: fc.record({
      lun: bytes(8, 8),
      crn: u8,
      taskAttribute: fc.integer({ min: 0, max: 7 }),
      taskManagement: u8,
      read: fc.boolean(),
      write: fc.boolean(),
      cdb: bytes(16, 16),
      dataLength: u32,
    }),
    encode: (c) => encodeFcpCmnd(c as never),
    decode: decodeFcpCmnd,
    noise: fc.oneof(bytes(40), bytes(33, 31)),
  },
  {
    name: 'FCP_XFER_RDY',
    arb: fc.record({ relativeOffset: u32, burstLength: u32 }),
    encode: (x) => encodeXferRdy(x as never),
    decode: decodeXferRdy,
    noise: bytes(16),
  },
  {
    name: 'FCP_RSP',
    arb: fc
      .record({
        status: u8,
        retryDelay: u16,
        resid: fc.constantFrom('none', 'over', 'under'),
        residual: u32,
        responseCode: fc.option(u8),
        sense: fc.option(bytes(252, 1)),
      })
      .map(({ resid, residual, ...r }) => ({
        ...r,
        residualOver: resid === 'over',
        residualUnder: resid === 'under',
        residual: resid === 'none' ? 0 : residual,
      })),
    encode: (r) => encodeFcpRsp(r as never),
    decode: decodeFcpRsp,
    noise: fc.tuple(bytes(300, 24), u8, u8, u8).map(([b, flags, sns, rsp]) => {
      b[10] = flags & 0x0f;
      b[16] = b[17] = b[18] = 0;
      b[19] = sns;
      b[20] = b[21] = b[22] = 0;
      b[23] = rsp % 12;
      return b;
    }),
  },
  {
    name: 'BA_ACC',
    arb: fc.record({ seqIdValid: fc.boolean(), seqId: u8, oxId: u16, rxId: u16, lowSeqCnt: u16, highSeqCnt: u16 }),
    encode: (a) => encodeBaAcc(a as never),
    decode: decodeBaAcc,
    noise: bytes(16),
  },
  {
    name: 'BA_RJT',
    arb: fc.record({ reason: u8, explanation: u8, vendor: u8 }),
    encode: (r) => encodeBaRjt(r as never),
    decode: decodeBaRjt,
    noise: bytes(8),
  },
];

describe.each(codecs)('$name', (c) => {
  it('decode(encode(v)) = v', () => {
    fc.assert(
      fc.property(c.arb, (v) => {
        expect(c.decode(c.encode(v))).toEqual(v);
      }),
      RUNS,
    );
  });

  it('decodes any bytes to a value or an FcDecodeError, and re-encodes what it decoded stably', () => {
    fc.assert(
      fc.property(c.noise ?? bytes(300), (b) => {
        const v = decodesOrRejects(() => c.decode(b), FcDecodeError);
        if (v === undefined) return;
        const again = c.encode(v);
        expect(c.decode(again)).toEqual(v);
        // Same bytes where the codec keeps every bit (no reserved or masked fields)...
        if (c.name === 'FCP_XFER_RDY' || c.name === 'FC-2 header') expect(again).toEqual(b.subarray(0, again.length));
      }),
      RUNS,
    );
  });
});

describe('FC-2 sequences', () => {
  const template = fc.record({
    rCtl: u8,
    dId: u24,
    csCtl: u8,
    sId: u24,
    type: u8,
    seqId: u8,
    dfCtl: fc.constant(0),
    oxId: u16,
    rxId: u16,
    firstSeqCnt: u16,
  });

  it('buildSequence → SequenceAssembler gives back the payload, for every frame size', () => {
    fc.assert(
      fc.property(
        template,
        bytes(3000),
        fc.integer({ min: 16, max: 512 }).map((w) => w * 4),
        (t, payload, maxDataField) => {
          const frames = buildSequence(
            { ...t, fCtl: F_CTL.FIRST_SEQ | F_CTL.END_SEQ | F_CTL.SEQ_INIT },
            payload,
            maxDataField,
          );
          expect(frames.length).toBe(Math.max(1, Math.ceil(payload.length / maxDataField)));
          const asm = new SequenceAssembler(8192);
          let done = null;
          for (const [i, f] of frames.entries()) {
            done = asm.push(decodeFrame(f));
            if (i < frames.length - 1) expect(done).toBeNull();
          }
          expect(done).not.toBeNull();
          expect(Buffer.compare(done!.payload, payload)).toBe(0);
          expect(done!.header.oxId).toBe(t.oxId);
        },
      ),
      RUNS,
    );
  });

  it('the assembler takes any frames without throwing and never returns more than its limit', () => {
    const frame = fc.record({
      header: header.map((h) => ({ ...h, sId: h.sId & 3, oxId: h.oxId & 3, seqId: h.seqId & 1, seqCnt: h.seqCnt & 7 })),
      payload: bytes(600),
    });
    fc.assert(
      fc.property(fc.array(frame, { maxLength: 40 }), (frames) => {
        const asm = new SequenceAssembler(1024, 4);
        for (const f of frames) {
          const out = asm.push(f);
          if (out) expect(out.payload.length).toBeLessThanOrEqual(1024);
        }
      }),
      RUNS,
    );
  });
});
