/**
 * FC wire codecs: round trips, exact encoded sizes, truncated / oversized / garbage input.
 * Decoders must either return or throw FcDecodeError — nothing else — whatever bytes they get.
 */
import { describe, expect, it } from 'vitest';
import { BA_ACC_SIZE, decodeBaAcc, decodeBaRjt, encodeBaAcc, encodeBaRjt } from '../../../src/fc/bls.js';
import { FcDecodeError } from '../../../src/fc/bytes.js';
import * as ct from '../../../src/fc/ct.js';
import * as els from '../../../src/fc/els.js';
import * as fcp from '../../../src/fc/fcp.js';
import {
  FC_HEADER_SIZE,
  FC_MAX_FRAME,
  type FcHeader,
  decodeFrame,
  decodeHeader,
  encodeFrame,
  encodeHeader,
} from '../../../src/fc/frame.js';
import { rng } from '../../support/rng.js';

const header: FcHeader = {
  rCtl: 0x22,
  dId: 0xfffffe,
  csCtl: 0x00,
  sId: 0x010203,
  type: 0x01,
  fCtl: 0x290000,
  seqId: 0x17,
  dfCtl: 0,
  seqCnt: 0x1234,
  oxId: 0xbeef,
  rxId: 0xffff,
  parameter: 0xdeadbeef,
};

function expectOnlyDecodeErrors(decode: (b: Uint8Array) => unknown): void {
  for (let seed = 1; seed <= 300; seed++) {
    const b = rng(seed).bytes(seed % 200);
    try {
      decode(b);
    } catch (err) {
      expect(err, `seed ${seed}`).toBeInstanceOf(FcDecodeError);
    }
  }
}

describe('FC-2 header and frames', () => {
  it('round-trips every field at the FC-FS offsets', () => {
    const b = encodeHeader(header);
    expect(b.length).toBe(FC_HEADER_SIZE);
    expect([...b.subarray(0, 4)]).toEqual([0x22, 0xff, 0xff, 0xfe]);
    expect([...b.subarray(4, 8)]).toEqual([0x00, 0x01, 0x02, 0x03]);
    expect([...b.subarray(8, 12)]).toEqual([0x01, 0x29, 0x00, 0x00]);
    expect([...b.subarray(12, 16)]).toEqual([0x17, 0x00, 0x12, 0x34]);
    expect([...b.subarray(16, 24)]).toEqual([0xbe, 0xef, 0xff, 0xff, 0xde, 0xad, 0xbe, 0xef]);
    expect(decodeHeader(b)).toEqual(header);
    const frame = encodeFrame({ header, payload: Uint8Array.of(1, 2, 3, 4) });
    expect(decodeFrame(frame)).toEqual({ header, payload: Uint8Array.of(1, 2, 3, 4) });
  });
  it('rejects truncated, oversized and optional-header frames', () => {
    expect(() => decodeFrame(new Uint8Array(23))).toThrow(FcDecodeError);
    expect(() => decodeFrame(new Uint8Array(FC_MAX_FRAME + 1))).toThrow(/oversized/);
    const withNh = encodeFrame({ header: { ...header, dfCtl: 0x20 }, payload: new Uint8Array(16) });
    expect(() => decodeFrame(withNh)).toThrow(/DF_CTL/);
    expect(() => encodeFrame({ header, payload: new Uint8Array(2113) })).toThrow(RangeError);
    expectOnlyDecodeErrors(decodeFrame);
  });
});

describe('ELS', () => {
  it('service parameters round-trip and sit at FC-LS offsets', () => {
    const sp = els.defaultServiceParameters(els.ELS.PLOGI, 0x2100001b32000001n, 0x2000001b32000001n, 2048);
    const b = els.encodeServiceParameters(sp);
    expect(b.length).toBe(els.SERVICE_PARAMS_SIZE);
    expect(b[0]).toBe(els.ELS.PLOGI);
    expect([...b.subarray(20, 28)]).toEqual([0x21, 0, 0, 0x1b, 0x32, 0, 0, 1]);
    expect((b[68]! << 8) | b[69]!).toBe(0x8000); // class 3 valid
    const back = els.decodeServiceParameters(b);
    expect(back.wwpn).toBe(sp.wwpn);
    expect(back.wwnn).toBe(sp.wwnn);
    expect(back.class3RxDataFieldSize).toBe(2048);
    expect(back.class3Valid).toBe(true);
    expect(() => els.decodeServiceParameters(b.subarray(0, 115))).toThrow(/truncated/);
    expect(() => els.decodeServiceParameters(new Uint8Array(257).fill(3))).toThrow(/oversized/);
    expect(() => els.decodeServiceParameters(Uint8Array.from(b, (v, i) => (i === 0 ? els.ELS.PRLI : v)))).toThrow(
      FcDecodeError,
    );
  });

  it('PRLI/PRLO pages round-trip; lengths that disagree are refused', () => {
    const prli: els.ProcessLogin = {
      command: els.ELS.PRLI,
      pages: [
        {
          type: 8,
          typeExtension: 0,
          flags: els.PRLI_FLAGS.ESTABLISH_IMAGE_PAIR,
          originatorPa: 0,
          responderPa: 0,
          serviceParams: els.FCP_SPP.INITIATOR_FUNCTION,
        },
      ],
    };
    const b = els.encodeProcessLogin(prli);
    expect([...b.subarray(0, 4)]).toEqual([0x20, 0x10, 0x00, 0x14]);
    expect(els.decodeProcessLogin(b)).toEqual(prli);
    const badLen = b.slice();
    badLen[3] = 0x15;
    expect(() => els.decodeProcessLogin(badLen)).toThrow(/payload length/);
    const longer = b.slice();
    longer[3] = 0x24; // claims two pages, carries one
    expect(() => els.decodeProcessLogin(longer)).toThrow(/exceeds/);
    expect(() => els.encodeProcessLogin({ command: els.ELS.PRLO, pages: [] })).toThrow(RangeError);
  });

  it('LOGO, ADISC, SCR, RSCN, ECHO, RNID, LS_RJT round-trip', () => {
    expect(els.decodeLogo(els.encodeLogo({ nportId: 0x010203, wwpn: 5n }))).toEqual({ nportId: 0x010203, wwpn: 5n });
    const adisc = { command: els.ELS.ADISC, hardAddress: 0, wwpn: 7n, wwnn: 8n, nportId: 0x0a0b0c };
    expect(els.encodeAdisc(adisc).length).toBe(els.ADISC_SIZE);
    expect(els.decodeAdisc(els.encodeAdisc(adisc))).toEqual(adisc);
    expect(els.decodeScr(els.encodeScr(els.SCR_FUNCTION.FULL))).toBe(3);
    const pages = [
      { addressFormat: els.RSCN_ADDRESS_FORMAT.PORT, eventQualifier: 1, affectedId: 0x010100 },
      { addressFormat: els.RSCN_ADDRESS_FORMAT.DOMAIN, eventQualifier: 4, affectedId: 0x010000 },
    ];
    const rscn = els.encodeRscn(pages);
    expect([...rscn.subarray(0, 4)]).toEqual([0x61, 0x04, 0x00, 0x0c]);
    expect(els.decodeRscn(rscn)).toEqual(pages);
    expect(els.rscnPageCovers(pages[1]!, 0x01ff01)).toBe(true);
    expect(els.rscnPageCovers(pages[0]!, 0x010101)).toBe(false);
    expect([...els.decodeEcho(els.encodeEcho(Uint8Array.of(9, 8)))]).toEqual([9, 8]);
    expect(els.decodeRnidRequest(els.encodeRnidRequest(0xdf))).toBe(0xdf);
    expect(
      els.decodeRnidReply(els.encodeRnidReply({ format: 0, wwpn: 1n, wwnn: 2n, specific: new Uint8Array(0) })),
    ).toMatchObject({ wwpn: 1n, wwnn: 2n });
    const rjt = els.encodeLsRjt({
      reason: els.LS_RJT_REASON.LOGICAL_ERROR,
      explanation: els.LS_RJT_EXPLANATION.INVALID_PORT_NAME,
    });
    expect([...rjt]).toEqual([0x01, 0, 0, 0, 0, 0x03, 0x0d, 0]);
    expect(els.decodeLsRjt(rjt)).toEqual({ reason: 3, explanation: 0x0d, vendor: 0 });
  });

  it('RSCN with an inconsistent payload length is refused', () => {
    const r = els.encodeRscn([{ addressFormat: 0, eventQualifier: 0, affectedId: 1 }]);
    r[3] = 0x40;
    expect(() => els.decodeRscn(r)).toThrow(FcDecodeError);
    expect(() => els.decodeRnidReply(Uint8Array.of(2, 0, 0, 0, 0, 16, 0, 0))).toThrow(/truncated/);
  });

  it('every ELS decoder survives garbage', () => {
    for (const d of [
      els.decodeServiceParameters,
      els.decodeProcessLogin,
      els.decodeLogo,
      els.decodeAdisc,
      els.decodeScr,
      els.decodeRscn,
      els.decodeEcho,
      els.decodeRnidRequest,
      els.decodeRnidReply,
      els.decodeLsRjt,
    ]) {
      expectOnlyDecodeErrors(d);
    }
  });
});

describe('CT and name-server payloads', () => {
  it('CT_IU header round-trips and computes the maximum size in words', () => {
    const req = ct.nameServerRequest(
      ct.NS.GPN_FT,
      ct.encodeFtRequest({ domainScope: 0, areaScope: 0, fc4Type: 8 }),
      16 + 4096,
    );
    expect([...req.subarray(0, 12)]).toEqual([1, 0, 0, 0, 0xfc, 0x02, 0, 0, 0x01, 0x72, 0x04, 0x00]);
    const iu = ct.decodeCt(req);
    expect(iu.header.code).toBe(ct.NS.GPN_FT);
    expect(iu.header.maxOrResidualWords).toBe(1024);
    expect(ct.decodeFtRequest(iu.payload)).toEqual({ domainScope: 0, areaScope: 0, fc4Type: 8 });
    const acc = ct.decodeCt(ct.ctAccept(iu.header, new Uint8Array(0), 3));
    expect(acc.header.code).toBe(ct.CT_RESPONSE.FS_ACC);
    expect(acc.header.maxOrResidualWords).toBe(3);
    const rjt = ct.decodeCt(
      ct.ctReject(iu.header, ct.FS_RJT_REASON.UNABLE_TO_PERFORM, ct.NS_EXPLANATION.FC4_TYPES_NOT_REGISTERED),
    );
    expect(rjt.header).toMatchObject({ code: 0x8001, reason: 9, explanation: 7 });
    expect(() => ct.decodeCt(new Uint8Array(15))).toThrow(/truncated/);
    expect(() => ct.decodeCt(Uint8Array.from(req, (v, i) => (i === 0 ? 2 : v)))).toThrow(/revision/);
    expect(() => ct.decodeCt(new Uint8Array(ct.CT_MAX_IU + 1).fill(1))).toThrow(/oversized/);
  });

  it('registrations round-trip', () => {
    expect(ct.decodeRftId(ct.encodeRftId({ nportId: 0x010203, fc4Types: [8, 0x20] }))).toEqual({
      nportId: 0x010203,
      fc4Types: [8, 0x20],
    });
    // FCP (type 8) is bit 8 of word 0: byte 2 bit 0.
    expect(ct.fc4TypesBitmap([8])[2]).toBe(1);
    expect(ct.decodeRffId(ct.encodeRffId({ nportId: 1, features: 2, fc4Type: 8 }))).toEqual({
      nportId: 1,
      features: 2,
      fc4Type: 8,
    });
    expect(ct.decodeRnnId(ct.encodeRnnId({ nportId: 1, wwnn: 0x20n }))).toEqual({ nportId: 1, wwnn: 0x20n });
    expect(ct.decodeRsnnNn(ct.encodeRsnnNn({ wwnn: 3n, name: 'QLE2562 FW:v8.07' }))).toEqual({
      wwnn: 3n,
      name: 'QLE2562 FW:v8.07',
    });
    expect(ct.decodeRspnId(ct.encodeRspnId({ nportId: 4, name: 'vport' }))).toEqual({ nportId: 4, name: 'vport' });
    expect(() => ct.encodeRspnId({ nportId: 4, name: 'x'.repeat(256) })).toThrow(RangeError);
    const sym = ct.encodeRsnnNn({ wwnn: 3n, name: 'abc' });
    expect(() => ct.decodeRsnnNn(sym.subarray(0, sym.length - 1))).toThrow(/truncated/);
  });

  it('query answers round-trip: lists stop at the last-entry mark', () => {
    const ids = ct.encodeIdList([0x010100, 0x010200]);
    expect([...ids]).toEqual([0, 1, 1, 0, 0x80, 1, 2, 0]);
    expect(ct.decodeIdList(Uint8Array.of(...ids, 0, 9, 9, 9))).toEqual([0x010100, 0x010200]);
    const names = ct.encodeNameList([{ nportId: 0x010100, name: 0x50n }]);
    expect(names.length).toBe(16);
    expect(names[0]).toBe(0x80);
    expect(ct.decodeNameList(names)).toEqual([{ nportId: 0x010100, name: 0x50n }]);
    expect(ct.fc4FeaturesOf(ct.encodeFc4Features(new Map([[8, ct.FC4_FEATURE.TARGET]])), 8)).toBe(1);
    expect(ct.encodeFc4Features(new Map([[8, 1]]))[7]).toBe(1); // qla2xxx reads byte 7, low nibble
    const obj: ct.PortObject = {
      portType: 1,
      nportId: 0x010100,
      wwpn: 1n,
      symbolicPortName: 'p',
      wwnn: 2n,
      symbolicNodeName: 'n',
      classOfService: 8,
      fc4Types: [8],
      fabricPortName: 3n,
    };
    const b = ct.encodePortObject(obj);
    expect(b.length).toBe(ct.GA_NXT_SIZE);
    expect(ct.decodePortObject(b)).toEqual(obj);
  });

  it('every CT decoder survives garbage', () => {
    for (const d of [
      ct.decodeCt,
      ct.decodePortIdRequest,
      ct.decodeFtRequest,
      ct.decodePtRequest,
      ct.decodeRftId,
      ct.decodeRffId,
      ct.decodeRnnId,
      ct.decodeRsnnNn,
      ct.decodeRspnId,
      ct.decodeName,
      ct.decodePortObject,
      ct.decodeIdList,
      ct.decodeNameList,
    ]) {
      expectOnlyDecodeErrors(d);
    }
  });
});

describe('FCP', () => {
  it('FCP_CMND round-trips; additional CDBs and odd lengths are refused', () => {
    const cmd: fcp.FcpCmnd = {
      lun: Uint8Array.of(0, 3, 0, 0, 0, 0, 0, 0),
      crn: 0,
      taskAttribute: 0,
      taskManagement: 0,
      read: true,
      write: false,
      cdb: Uint8Array.from({ length: 16 }, (_, i) => (i === 0 ? 0x28 : 0)),
      dataLength: 4096,
    };
    const b = fcp.encodeFcpCmnd(cmd);
    expect(b.length).toBe(32);
    expect(b[11]).toBe(0x02);
    expect([...b.subarray(28)]).toEqual([0, 0, 0x10, 0]);
    expect(fcp.decodeFcpCmnd(b)).toEqual(cmd);
    const addl = b.slice();
    addl[11] = 0x04 | 0x02;
    expect(() => fcp.decodeFcpCmnd(addl)).toThrow(/additional CDB/);
    expect(() => fcp.decodeFcpCmnd(b.subarray(0, 31))).toThrow(/truncated/);
    expect(() => fcp.decodeFcpCmnd(new Uint8Array(36))).toThrow(FcDecodeError);
    expect(() => fcp.encodeFcpCmnd({ ...cmd, cdb: new Uint8Array(17) })).toThrow(RangeError);
  });

  it('FCP_XFER_RDY round-trips', () => {
    expect(fcp.decodeXferRdy(fcp.encodeXferRdy({ relativeOffset: 2048, burstLength: 65536 }))).toEqual({
      relativeOffset: 2048,
      burstLength: 65536,
    });
    expect(() => fcp.decodeXferRdy(new Uint8Array(11))).toThrow(FcDecodeError);
  });

  it('FCP_RSP carries status, residuals, response code and sense', () => {
    const sense = Uint8Array.of(0x70, 0, 5, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x24, 0, 0, 0, 0, 0);
    const rsp: fcp.FcpRsp = {
      status: 2,
      retryDelay: 0,
      residualOver: false,
      residualUnder: true,
      residual: 100,
      responseCode: null,
      sense,
    };
    const b = fcp.encodeFcpRsp(rsp);
    expect(b.length).toBe(24 + 18);
    expect(b[10]).toBe(fcp.FCP_RSP_FLAGS.SNS_LEN_VALID | fcp.FCP_RSP_FLAGS.RESID_UNDER);
    expect(fcp.decodeFcpRsp(b)).toEqual(rsp);
    const tmf = fcp.encodeFcpRsp({
      status: 0,
      retryDelay: 0,
      residualOver: false,
      residualUnder: false,
      residual: 0,
      responseCode: fcp.FCP_RSP_CODE.TMF_REJECTED,
      sense: null,
    });
    expect(tmf.length).toBe(32);
    expect(fcp.decodeFcpRsp(tmf).responseCode).toBe(4);
    // Sense length that runs past the payload, both residual flags, bad RSP_LEN.
    const cut = b.subarray(0, 30);
    expect(() => fcp.decodeFcpRsp(cut)).toThrow(/truncated/);
    const both = b.slice();
    both[10]! |= fcp.FCP_RSP_FLAGS.RESID_OVER;
    expect(() => fcp.decodeFcpRsp(both)).toThrow(/both/);
    const badRsp = tmf.slice();
    badRsp[23] = 7;
    expect(() => fcp.decodeFcpRsp(badRsp)).toThrow(/FCP_RSP_LEN/);
    expect(() => fcp.encodeFcpRsp({ ...rsp, residualOver: true })).toThrow(RangeError);
  });

  it('every FCP decoder survives garbage', () => {
    for (const d of [fcp.decodeFcpCmnd, fcp.decodeXferRdy, fcp.decodeFcpRsp]) expectOnlyDecodeErrors(d);
  });
});

describe('BLS', () => {
  it('BA_ACC and BA_RJT round-trip', () => {
    const acc = { seqIdValid: true, seqId: 3, oxId: 0x1234, rxId: 0x55, lowSeqCnt: 0, highSeqCnt: 0xffff };
    const b = encodeBaAcc(acc);
    expect(b.length).toBe(BA_ACC_SIZE);
    expect(decodeBaAcc(b)).toEqual(acc);
    expect(decodeBaRjt(encodeBaRjt({ reason: 3, explanation: 3, vendor: 0 }))).toEqual({
      reason: 3,
      explanation: 3,
      vendor: 0,
    });
    expect(() => decodeBaAcc(new Uint8Array(11))).toThrow(FcDecodeError);
    expectOnlyDecodeErrors(decodeBaAcc);
    expectOnlyDecodeErrors(decodeBaRjt);
  });
});
