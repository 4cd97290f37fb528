/**
 * FC transport netlink events (struct nlmsghdr + struct fc_nl_event) parsed from hostile bytes:
 * every truncation and split of a datagram, each header field wrong, lengths that point outside
 * the datagram; and which events concern a vport.
 */
import { endianness } from 'node:os';
import { describe, expect, it } from 'vitest';
import {
  FC_EVENT_MAX,
  FC_EVENT_MAX_PER_DATAGRAM,
  FC_NL_EVENT,
  FCH_EVT,
  fcEventKind,
  formatFcEvent,
  InjectedFcEventSource,
  NLMSG,
  parseFcEventDatagram,
  type FcHostEvent,
} from '../../../src/host/fc-event.js';

const LE = endianness() === 'LE';
const P = NLMSG.SIZE; // fc_nl_event starts after the netlink header

function mutate(
  f: (dv: DataView, msg: Uint8Array) => void,
  e: { hostNo: number; code: number } = { hostNo: 3, code: FCH_EVT.LINKDOWN },
): Uint8Array {
  const msg = formatFcEvent(e);
  f(new DataView(msg.buffer), msg);
  return msg;
}

describe('parseFcEventDatagram', () => {
  it('reads the event fc_host_post_event sends, in host byte order', () => {
    const r = parseFcEventDatagram(formatFcEvent({ hostNo: 7, code: FCH_EVT.RSCN, eventNum: 42, data: 0x010203 }));
    expect(r).toEqual({
      events: [{ hostNo: 7, code: 5, name: 'RSCN', eventNum: 42, data: 0x010203, dataLength: 4 }],
      refused: [],
    });
    expect(formatFcEvent({ hostNo: 1, code: 2 }).length).toBe(NLMSG.SIZE + 40);
    expect(FC_NL_EVENT.SIZE).toBe(40); // sizeof(struct fc_nl_event), 8-byte aligned
  });

  it('refuses every truncation of a message without throwing', () => {
    const full = formatFcEvent({ hostNo: 3, code: FCH_EVT.LINKUP });
    for (let n = 0; n < full.length; n++) {
      const r = parseFcEventDatagram(full.subarray(0, n));
      expect(r.events, `length ${n}`).toEqual([]);
      expect(r.refused.length, `length ${n}`).toBe(n === 0 ? 0 : 1);
    }
  });

  it('reads two messages in one datagram, and refuses every split of the second', () => {
    const a = formatFcEvent({ hostNo: 3, code: FCH_EVT.LINKDOWN, eventNum: 1 });
    const b = formatFcEvent({ hostNo: 3, code: FCH_EVT.LINKUP, eventNum: 2 });
    const both = new Uint8Array(a.length + b.length);
    both.set(a);
    both.set(b, a.length);
    expect(parseFcEventDatagram(both).events.map((e) => e.name)).toEqual(['LINKDOWN', 'LINKUP']);
    for (let cut = a.length + 1; cut < both.length; cut++) {
      const r = parseFcEventDatagram(both.subarray(0, cut));
      expect(
        r.events.map((e) => e.name),
        `cut ${cut}`,
      ).toEqual(['LINKDOWN']);
      expect(r.refused, `cut ${cut}`).toHaveLength(1);
    }
  });

  it('refuses wrong header fields and lengths that point outside the message', () => {
    const cases: [string, Uint8Array, RegExp][] = [
      ['nlmsg_len too small', mutate((dv) => dv.setUint32(NLMSG.LEN, 8, LE)), /netlink length 8/],
      ['nlmsg_len too large', mutate((dv) => dv.setUint32(NLMSG.LEN, 4096, LE)), /netlink length 4096/],
      ['nlmsg_len huge', mutate((dv) => dv.setUint32(NLMSG.LEN, 0xffffffff, LE)), /netlink length/],
      ['netlink type', mutate((dv) => dv.setUint16(NLMSG.TYPE, 0x10, LE)), /not SCSI_TRANSPORT_MSG/],
      ['version', mutate((_dv, m) => (m[P + FC_NL_EVENT.VERSION] = 2)), /version 2/],
      ['transport', mutate((_dv, m) => (m[P + FC_NL_EVENT.TRANSPORT] = 0)), /transport 0/],
      ['magic', mutate((dv) => dv.setUint16(P + FC_NL_EVENT.MAGIC, 0xb2a1, LE)), /magic 0xb2a1/],
      ['msgtype', mutate((dv) => dv.setUint16(P + FC_NL_EVENT.MSGTYPE, 0x200, LE)), /msgtype 0x200/],
      ['msglen short', mutate((dv) => dv.setUint16(P + FC_NL_EVENT.MSGLEN, 36, LE)), /msglen 36/],
      ['msglen past the message', mutate((dv) => dv.setUint16(P + FC_NL_EVENT.MSGLEN, 48, LE)), /msglen 48/],
      ['event_datalen', mutate((dv) => dv.setUint16(P + FC_NL_EVENT.EVENT_DATALEN, 5, LE)), /event_datalen 5/],
    ];
    for (const [what, bytes, why] of cases) {
      const r = parseFcEventDatagram(bytes);
      expect(r.events, what).toEqual([]);
      expect(r.refused.join(), what).toMatch(why);
    }
  });

  it('keeps unknown codes and payloads other than 4 bytes without guessing', () => {
    const unknown = parseFcEventDatagram(
      mutate((dv) => dv.setUint32(P + FC_NL_EVENT.EVENT_CODE, 0x777, LE), { hostNo: 1, code: 0 }),
    );
    expect(unknown.events[0]).toMatchObject({ code: 0x777, name: '0x777' });
    const vendor = parseFcEventDatagram(
      mutate((dv) => dv.setUint16(P + FC_NL_EVENT.EVENT_DATALEN, 0, LE), { hostNo: 1, code: FCH_EVT.VENDOR_UNIQUE }),
    );
    expect(vendor.events[0]).toMatchObject({ name: 'VENDOR_UNIQUE', data: null, dataLength: 0 });
  });

  it('skips netlink NOOP/DONE, caps the messages per datagram and the datagram size', () => {
    const noop = mutate((dv) => dv.setUint16(NLMSG.TYPE, 1, LE));
    expect(parseFcEventDatagram(noop)).toEqual({ events: [], refused: [] });
    const one = formatFcEvent({ hostNo: 3, code: FCH_EVT.LIP });
    const many = new Uint8Array(one.length * (FC_EVENT_MAX_PER_DATAGRAM + 1));
    for (let i = 0; i <= FC_EVENT_MAX_PER_DATAGRAM; i++) many.set(one, i * one.length);
    const r = parseFcEventDatagram(many);
    expect(r.events).toHaveLength(FC_EVENT_MAX_PER_DATAGRAM);
    expect(r.refused).toEqual([`more than ${FC_EVENT_MAX_PER_DATAGRAM} messages in one datagram`]);
    expect(parseFcEventDatagram(new Uint8Array(FC_EVENT_MAX + 1)).refused).toHaveLength(1);
  });

  it('an injected source counts what it refuses', () => {
    const src = new InjectedFcEventSource();
    const got: FcHostEvent[] = [];
    src.start(
      (e) => got.push(e),
      () => {},
    );
    src.inject(formatFcEvent({ hostNo: 3, code: FCH_EVT.LINKUP }).subarray(0, 30));
    src.inject(formatFcEvent({ hostNo: 3, code: FCH_EVT.LINKUP }));
    expect([got.length, src.dropped]).toEqual([1, 1]);
  });
});

describe('fcEventKind', () => {
  const ev = (hostNo: number, code: number): FcHostEvent => ({
    hostNo,
    code,
    name: '',
    eventNum: 1,
    data: 0,
    dataLength: 4,
  });
  const hosts = { vport: 12, parent: 3 };
  it('link and RSCN events of the vport host or its parent concern the vport; other hosts do not', () => {
    for (const code of [FCH_EVT.LINKUP, FCH_EVT.LINKDOWN, FCH_EVT.LIP, FCH_EVT.LIPRESET, FCH_EVT.PORT_OFFLINE])
      expect(fcEventKind(ev(3, code), hosts)).toBe('link');
    expect(fcEventKind(ev(12, FCH_EVT.LINKDOWN), hosts)).toBe('link');
    expect(fcEventKind(ev(3, FCH_EVT.RSCN), hosts)).toBe('rscn');
    expect(fcEventKind(ev(3, FCH_EVT.LINK_FPIN), hosts)).toBe('other');
    expect(fcEventKind(ev(3, 0x4242), hosts)).toBe('other');
    expect(fcEventKind(ev(4, FCH_EVT.LINKDOWN), hosts)).toBe(null);
  });
});
