/**
 * Regression (found by test/property/fc-codecs.property.test.ts): a symbolic name that is not
 * UTF-8 was decoded with replacement characters, each 3 bytes when encoded again, so a port
 * could register a 255-byte name that no longer fits the 255-byte field. A later GA_NXT for that
 * port then threw a RangeError out of the name server (through the switch's frame handler: an
 * uncaught exception in the SAN), and GSPN_ID answered with a wrong length byte.
 */
import { describe, expect, it } from 'vitest';
import { FcDecodeError } from '../../../src/fc/bytes.js';
import {
  CT_RESPONSE,
  NS,
  decodeCt,
  decodePortObject,
  decodeRspnId,
  decodeRsnnNn,
  encodePortIdRequest,
  nameServerRequest,
} from '../../../src/fc/ct.js';
import { NameServer } from '../../../src/san/fabric/name-server.js';

const A = 0x010100;
const B = 0x010200;

function rspnId(nportId: number, name: Uint8Array): Uint8Array {
  const p = new Uint8Array(5 + name.length);
  p[1] = nportId >> 16;
  p[2] = (nportId >> 8) & 0xff;
  p[3] = nportId & 0xff;
  p[4] = name.length;
  p.set(name, 5);
  return p;
}

describe('symbolic names that are not UTF-8', () => {
  const invalid = new Uint8Array(255).fill(0x80);

  it('are rejected by the decoders as malformed', () => {
    expect(() => decodeRspnId(rspnId(A, invalid))).toThrow(FcDecodeError);
    expect(() => decodeRsnnNn(Uint8Array.of(0, 0, 0, 0, 0, 0, 0, 1, 2, 0xc3, 0x28))).toThrow(FcDecodeError);
    expect(decodeRspnId(rspnId(A, new TextEncoder().encode('qla2xxx FW:v8.08.231 DVR:v10.02.09.400-k'))).name).toBe(
      'qla2xxx FW:v8.08.231 DVR:v10.02.09.400-k',
    );
  });

  it('cannot make the name server fail GA_NXT or GSPN_ID for other ports', () => {
    const ns = new NameServer(() => true);
    ns.add({ nportId: A, wwpn: 0x2100000000000001n, wwnn: 0x2000000000000001n, fabricPortName: 0x2001000000000001n });
    ns.add({ nportId: B, wwpn: 0x2100000000000002n, wwnn: 0x2000000000000002n, fabricPortName: 0x2002000000000001n });
    const reg = decodeCt(ns.handle(A, decodeCt(nameServerRequest(NS.RSPN_ID, rspnId(A, invalid)))).response);
    expect(reg.header.code).toBe(CT_RESPONSE.FS_RJT);

    const next = decodeCt(ns.handle(B, decodeCt(nameServerRequest(NS.GA_NXT, encodePortIdRequest(0)))).response);
    expect(next.header.code).toBe(CT_RESPONSE.FS_ACC);
    expect(decodePortObject(next.payload).nportId).toBe(A);
  });
});
