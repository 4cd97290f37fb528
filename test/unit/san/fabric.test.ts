/**
 * Fabric behaviour driven by initiators speaking frames over real socket links: fabric login and
 * addressing, NPIV, duplicate WWPNs, zoning of name-server answers and of frames, RSCN, cleanup
 * on logout and link loss, well-known addresses, and hostile link input.
 */
import net from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  FC4_FEATURE,
  FC4_TYPE_FCP,
  FS_RJT_REASON,
  NS,
  encodePortIdRequest,
  encodeRftId,
  nameServerRequest,
} from '../../../src/fc/ct.js';
import {
  ELS,
  LS_RJT_EXPLANATION,
  LS_RJT_REASON,
  type RscnPage,
  encodeEcho,
  encodeRnidRequest,
  decodeRnidReply,
  decodeEcho,
  encodeLogo,
} from '../../../src/fc/els.js';
import { FC_TYPE, F_CTL_REQUEST, R_CTL, WELL_KNOWN, decodeFrame, encodeFrame } from '../../../src/fc/frame.js';
import * as els from '../../../src/fc/els.js';
import { CtRejectError, ElsRejectError, ExchangeTimeoutError } from '../../../src/fc/nport/errors.js';
import { NPortLink } from '../../../src/fc/nport/exchange-manager.js';
import { NPort } from '../../../src/fc/nport/port.js';
import { Fabric } from '../../../src/san/fabric/switch.js';
import { Zoning } from '../../../src/san/fabric/zoning.js';
import { Initiator } from '../../../src/fc/initiator.js';
import { FrameStreamDecoder, connectLink, encodeLinkFrame, linkPair } from '../../../src/fc/link.js';
import { FakeScsiTarget } from './fake-scsi.js';
import { type TestSan, startTestSan, until } from './helpers.js';

const I1 = { wwpn: 0x2100000000000001n, wwnn: 0x2000000000000001n, exchangeTimeoutMs: 1000 };
const I2 = { wwpn: 0x2100000000000002n, wwnn: 0x2000000000000002n, exchangeTimeoutMs: 1000 };
const V1 = { wwpn: 0xc000000000000001n, wwnn: 0xc000000000000000n };
const T1 = { wwpn: 0x5000000000000001n, wwnn: 0x5000000000000000n };

describe('fabric login and addressing', () => {
  let san: TestSan;
  beforeEach(async () => {
    san = await startTestSan();
  });
  afterEach(async () => san.close());

  it('gives each link its own area and each FDISC its own AL_PA; the name server lists them', async () => {
    const a = await Initiator.connect(san.linkPath, I1);
    const b = await Initiator.connect(san.linkPath, I2);
    const v = await a.createVport(V1);
    expect(a.nportId).toBe(0x010100);
    expect(b.nportId).toBe(0x010200);
    expect(v.nportId).toBe(0x010101);
    expect(a.fabric?.fabricName).toBe(san.fabric.wwnn);
    expect(san.fabric.logins().map((l) => [l.nportId, l.wwpn, l.physical])).toEqual([
      [0x010100, I1.wwpn, true],
      [0x010101, V1.wwpn, false],
      [0x010200, I2.wwpn, true],
    ]);
    // Implicit registration: every login is in the name server with its names.
    expect(await b.nameServer.gpnId(v.nportId)).toBe(V1.wwpn);
    expect(await b.nameServer.gnnId(v.nportId)).toBe(V1.wwnn);
    expect(await b.nameServer.gfpnId(v.nportId)).toBe(await b.nameServer.gfpnId(a.nportId)); // same F_Port
    expect((await b.nameServer.gidPt()).sort()).toEqual([0x010100, 0x010101, 0x010200]);
    a.closeLink();
    b.closeLink();
  });

  it('rejects a second login with a WWPN that is already logged in (FLOGI and FDISC)', async () => {
    const a = await Initiator.connect(san.linkPath, I1);
    const err = await Initiator.connect(san.linkPath, { ...I1, wwnn: 0x2000000000000009n }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ElsRejectError);
    expect((err as ElsRejectError).rjt.reason).toBe(LS_RJT_REASON.LOGICAL_ERROR);
    expect((err as ElsRejectError).rjt.explanation).toBe(LS_RJT_EXPLANATION.INVALID_PORT_NAME);
    await a.createVport(V1);
    await expect(a.createVport(V1)).rejects.toBeInstanceOf(ElsRejectError);
    await expect(a.createVport({ wwpn: I1.wwpn, wwnn: 0x1n })).rejects.toBeInstanceOf(ElsRejectError);
    expect(san.fabric.logins()).toHaveLength(2);
    a.closeLink();
  });

  it('refuses FDISC on a link without FLOGI', async () => {
    const link = await connectLink(san.linkPath);
    const port = new NPort(new NPortLink(link), { ...V1, exchangeTimeoutMs: 1000 });
    const err = await port.fabricLogin('fdisc').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ElsRejectError);
    expect(san.fabric.logins()).toHaveLength(0);
    link.close();
  });

  it('LOGO of the physical port ends its vports; link loss ends everything on the link', async () => {
    const a = await Initiator.connect(san.linkPath, I1);
    const v = await a.createVport(V1);
    const w = await a.createVport({ wwpn: 0xc000000000000002n, wwnn: 0xc000000000000000n });
    await v.fabricLogout();
    expect(san.fabric.logins().map((l) => l.wwpn)).toEqual([I1.wwpn, w.wwpn]);
    const ended = new Promise<string>((r) => w.once('fabric-logout', r));
    await a.fabricLogout();
    expect(san.fabric.logins()).toEqual([]);
    expect(await ended).toMatch(/physical port logged out/);
    expect(w.loggedIn).toBe(false);
    // Log in again on the same link, then drop the link.
    await a.fabricLogin('flogi');
    await (await Initiator.overLink(await connectLink(san.linkPath), I2)).createVport(V1);
    expect(san.fabric.logins()).toHaveLength(3);
    const down = new Promise<string>((r) => a.once('link-down', r));
    a.closeLink();
    await down;
    await until(() => san.fabric.logins().length === 2, 'logins of the closed link removed');
    expect(san.fabric.nameServer.get(0x010100)).toBeUndefined();
  });

  it('answers the well-known addresses: ECHO, RNID, a clean reject from the management server', async () => {
    const a = await Initiator.connect(san.linkPath, I1);
    const echoed = decodeEcho(await a.els(WELL_KNOWN.F_PORT, encodeEcho(Uint8Array.of(1, 2, 3, 4))));
    expect([...echoed]).toEqual([1, 2, 3, 4]);
    const rnid = decodeRnidReply(await a.els(WELL_KNOWN.FABRIC_CONTROLLER, encodeRnidRequest(0xdf)));
    expect(rnid.format).toBe(0);
    expect(rnid.wwnn).toBe(san.fabric.wwnn);
    await expect(a.plogi(WELL_KNOWN.MANAGEMENT_SERVER)).rejects.toBeInstanceOf(ElsRejectError);
    const ct = await a
      .ct(WELL_KNOWN.MANAGEMENT_SERVER, nameServerRequest(0x0127, new Uint8Array(8)))
      .catch((e: unknown) => e);
    expect(ct).toBeInstanceOf(CtRejectError);
    expect((ct as CtRejectError).reason).toBe(FS_RJT_REASON.COMMAND_NOT_SUPPORTED);
    // An ELS the fabric does not serve is rejected, not ignored.
    const rjt = await a.els(WELL_KNOWN.DIRECTORY_SERVER, Uint8Array.of(0x7a, 0, 0, 0)).catch((e: unknown) => e);
    expect(rjt).toBeInstanceOf(ElsRejectError);
    expect((rjt as ElsRejectError).rjt.reason).toBe(LS_RJT_REASON.COMMAND_NOT_SUPPORTED);
    a.closeLink();
  });
});

describe('zoning', () => {
  let san: TestSan;
  let zoning: Zoning;
  beforeEach(async () => {
    zoning = new Zoning('deny');
    zoning.setZone({ name: 'z1', members: [I1.wwpn, T1.wwpn] });
    zoning.setZoneSet('cfg', ['z1']);
    zoning.activate('cfg');
    san = await startTestSan(zoning);
    await san.addTarget(new FakeScsiTarget(T1.wwpn, T1.wwnn));
  });
  afterEach(async () => san.close());

  it('limits name-server answers and frame forwarding to zone members, and RSCNs a zoning change', async () => {
    const a = await Initiator.connect(san.linkPath, I1);
    const b = await Initiator.connect(san.linkPath, I2);
    await b.scr();
    await a.nameServer.register({ fcpFeatures: FC4_FEATURE.INITIATOR });
    await b.nameServer.register({ fcpFeatures: FC4_FEATURE.INITIATOR });
    const target = san.fabric.findByWwpn(T1.wwpn)!.nportId;

    expect((await a.discoverTargets()).map((t) => t.wwpn)).toEqual([T1.wwpn]);
    expect(await b.discoverTargets()).toEqual([]);
    // b sees only itself; a (zoned with the target only) is hidden from b.
    expect(await b.nameServer.gidFt()).toEqual([b.nportId]);
    const hidden = await b.nameServer.gpnId(target).catch((e: unknown) => e);
    expect(hidden).toBeInstanceOf(CtRejectError);
    // Frames from b to the target are discarded by the switch (hard zoning): PLOGI times out.
    const before = san.fabric.stats.droppedZoning;
    await expect(b.plogi(target)).rejects.toBeInstanceOf(ExchangeTimeoutError);
    expect(san.fabric.stats.droppedZoning).toBeGreaterThan(before);

    const rscn = new Promise<RscnPage[]>((r) => b.once('rscn', r));
    zoning.addZoneMember('z1', I2.wwpn);
    san.fabric.zoningChanged();
    const pages = await rscn;
    expect(pages[0]!.affectedId >> 16).toBe(san.fabric.domain);
    expect((await b.discoverTargets()).map((t) => t.wwpn)).toEqual([T1.wwpn]);
    const session = await b.plogi(target);
    expect(session.wwpn).toBe(T1.wwpn);
    a.closeLink();
    b.closeLink();
  });
});

describe('RSCN', () => {
  let san: TestSan;
  beforeEach(async () => {
    san = await startTestSan();
  });
  afterEach(async () => san.close());

  it('tells SCR-registered ports when ports log in, register FC-4 types and leave', async () => {
    const watcher = await Initiator.connect(san.linkPath, I1);
    const quiet = await Initiator.connect(san.linkPath, I2); // no SCR: must get nothing
    let quietGot = 0;
    quiet.on('rscn', () => quietGot++);
    await watcher.scr();
    const events: RscnPage[][] = [];
    watcher.on('rscn', (p) => events.push(p));

    await san.addTarget(new FakeScsiTarget(T1.wwpn, T1.wwnn));
    const target = san.fabric.findByWwpn(T1.wwpn)!.nportId;
    await until(() => events.some((p) => p.some((pg) => pg.affectedId === target)), 'RSCN for the new target');
    const count = events.length;
    expect(san.fabric.linkDown(T1.wwpn)).toBe(true);
    await until(() => events.length > count, 'RSCN for the target leaving');
    expect(events.at(-1)!.map((p) => p.affectedId)).toEqual([target]);
    await expect(watcher.nameServer.gpnId(target)).rejects.toBeInstanceOf(CtRejectError);
    expect(quietGot).toBe(0);
    watcher.closeLink();
    quiet.closeLink();
  });
});

describe('hostile link input', () => {
  let san: TestSan;
  beforeEach(async () => {
    san = await startTestSan();
  });
  afterEach(async () => san.close());

  function rawSocket(): Promise<net.Socket> {
    return new Promise((resolve, reject) => {
      const s = net.createConnection({ path: san.linkPath });
      s.once('connect', () => resolve(s));
      s.once('error', reject);
    });
  }
  const closed = (s: net.Socket): Promise<void> => new Promise((r) => s.once('close', () => r()));

  it.each([
    ['too short for a header', 5],
    ['longer than a frame can be', 24 + 2112 + 1],
    ['absurdly long', 0xffffffff],
  ])('closes a link whose length prefix is %s, and keeps serving others', async (_what, length) => {
    const good = await Initiator.connect(san.linkPath, I1);
    const s = await rawSocket();
    const done = closed(s);
    const prefix = Buffer.alloc(4);
    prefix.writeUInt32BE(length >>> 0);
    s.write(prefix);
    s.write(Buffer.alloc(32));
    await done;
    expect(await good.nameServer.gpnId(good.nportId)).toBe(I1.wwpn);
    good.closeLink();
  });

  it('takes down the link of a peer that sends requests but never reads the replies', async () => {
    const s = await rawSocket();
    const decoder = new FrameStreamDecoder();
    const login = new Promise<number>((resolve) =>
      s.on('data', (d: Buffer) => {
        for (const f of decoder.push(d)) resolve(decodeFrame(f).header.dId);
      }),
    );
    const flogi = els.encodeServiceParameters(els.defaultServiceParameters(ELS.FLOGI, I1.wwpn, I1.wwnn, 2048));
    const frame = (sId: number, oxId: number, payload: Uint8Array): Buffer =>
      encodeLinkFrame(
        encodeFrame({
          header: {
            rCtl: R_CTL.ELS_REQUEST,
            dId: WELL_KNOWN.F_PORT,
            csCtl: 0,
            sId,
            type: FC_TYPE.ELS,
            fCtl: F_CTL_REQUEST,
            seqId: 1,
            dfCtl: 0,
            seqCnt: 0,
            oxId,
            rxId: 0xffff,
            parameter: 0,
          },
          payload,
        }),
      );
    s.write(frame(0, 1, flogi));
    const me = await login;
    const fabricSide = san.fabric.findByWwpn(I1.wwpn)!.port.link;
    const reason = new Promise<string>((r) => fabricSide.once('down', r));
    s.removeAllListeners('data');
    s.pause();
    const done = closed(s);
    const echo = encodeEcho(new Uint8Array(2000));
    // About 20 MiB of ECHO replies that nobody reads.
    for (let i = 0; i < 10_000 && !s.destroyed; i++) {
      if (!s.write(frame(me, 2 + (i % 60000), echo))) await new Promise((r) => setTimeout(r, 0));
    }
    expect(await reason).toMatch(/not reading/);
    expect(san.fabric.findByWwpn(I1.wwpn)).toBeUndefined();
    s.destroy();
    await done;
  });

  it('drops garbage frames and frames whose S_ID is not logged in on that link', async () => {
    const victim = await Initiator.connect(san.linkPath, I1);
    const s = await rawSocket();
    // Garbage: DF_CTL announcing optional headers, then random bytes of a valid length.
    const bad = new Uint8Array(40).fill(0xa5);
    s.write(encodeLinkFrame(bad));
    // Spoofed LOGO to the F_Port claiming to be the victim.
    const spoof = encodeFrame({
      header: {
        rCtl: R_CTL.ELS_REQUEST,
        dId: WELL_KNOWN.F_PORT,
        csCtl: 0,
        sId: victim.nportId,
        type: FC_TYPE.ELS,
        fCtl: F_CTL_REQUEST,
        seqId: 1,
        dfCtl: 0,
        seqCnt: 0,
        oxId: 9,
        rxId: 0xffff,
        parameter: 0,
      },
      payload: encodeLogo({ nportId: victim.nportId, wwpn: I1.wwpn }),
    });
    s.write(encodeLinkFrame(spoof));
    await until(() => san.fabric.stats.droppedSpoofed + san.fabric.stats.droppedMalformed >= 2, 'both frames dropped');
    expect(san.fabric.findByWwpn(I1.wwpn)?.nportId).toBe(victim.nportId);
    s.destroy();
    victim.closeLink();
  });

  it('gives F_Ports at FLOGI: idle links take none, and a FLOGI beyond the last free one is rejected', async () => {
    // 300 links that never log in: more than the switch has F_Ports.
    const idle = Array.from({ length: 300 }, () => linkPair());
    for (const [fabricEnd] of idle) san.fabric.attach(fabricEnd);
    const hbas: Initiator[] = [];
    for (let i = 0; i < 239; i++) {
      const [fabricEnd, end] = linkPair();
      san.fabric.attach(fabricEnd);
      hbas.push(await Initiator.overLink(end, { wwpn: 0x2100000000001000n + BigInt(i), wwnn: I1.wwnn }));
    }
    expect(new Set(hbas.map((h) => h.nportId >> 8)).size).toBe(239);
    const [fabricEnd, end] = linkPair();
    san.fabric.attach(fabricEnd);
    const err = await Initiator.overLink(end, { ...I2, exchangeTimeoutMs: 1000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ElsRejectError);
    expect((err as ElsRejectError).rjt.reason).toBe(LS_RJT_REASON.UNABLE_TO_PERFORM);
    // One HBA logs out: its F_Port is free for the next FLOGI.
    const freed = hbas[0]!.nportId >> 8;
    await hbas[0]!.fabricLogout();
    const [fabricEnd2, end2] = linkPair();
    san.fabric.attach(fabricEnd2);
    const late = await Initiator.overLink(end2, I2);
    expect(late.nportId >> 8).toBe(freed);
    for (const h of [...hbas, late]) h.closeLink();
    for (const [, other] of idle) other.close();
  });

  it('answers a truncated FLOGI with LS_RJT instead of logging it in', async () => {
    const link = await connectLink(san.linkPath);
    const port = new NPort(new NPortLink(link), { ...I1, exchangeTimeoutMs: 1000 });
    const reply = new Promise<Uint8Array>((resolve) => link.on('frame', (f) => resolve(f)));
    link.send(
      encodeFrame({
        header: {
          rCtl: R_CTL.ELS_REQUEST,
          dId: WELL_KNOWN.F_PORT,
          csCtl: 0,
          sId: 0,
          type: FC_TYPE.ELS,
          fCtl: F_CTL_REQUEST,
          seqId: 1,
          dfCtl: 0,
          seqCnt: 0,
          oxId: 1,
          rxId: 0xffff,
          parameter: 0,
        },
        payload: Uint8Array.of(ELS.FLOGI, 0, 0, 0, 0x20, 0x20),
      }),
    );
    const f = await reply;
    expect(f[24]).toBe(ELS.LS_RJT);
    expect(san.fabric.logins()).toEqual([]);
    expect(port.loggedIn).toBe(false);
    link.close();
  });
});

describe('name server edge cases', () => {
  let san: TestSan;
  beforeEach(async () => {
    san = await startTestSan();
  });
  afterEach(async () => san.close());

  it('refuses registrations for another port and truncated requests', async () => {
    const a = await Initiator.connect(san.linkPath, I1);
    const b = await Initiator.connect(san.linkPath, I2);
    const other = await a
      .ct(
        WELL_KNOWN.DIRECTORY_SERVER,
        nameServerRequest(NS.RFT_ID, encodeRftId({ nportId: b.nportId, fc4Types: [FC4_TYPE_FCP] })),
      )
      .catch((e: unknown) => e);
    expect(other).toBeInstanceOf(CtRejectError);
    expect((other as CtRejectError).explanation).toBe(0x10); // access denied
    const short = await a
      .ct(WELL_KNOWN.DIRECTORY_SERVER, nameServerRequest(NS.GPN_ID, Uint8Array.of(0, 1)))
      .catch((e: unknown) => e);
    expect(short).toBeInstanceOf(CtRejectError);
    expect((short as CtRejectError).reason).toBe(FS_RJT_REASON.INVALID_IU_SIZE);
    const unknown = await a
      .ct(WELL_KNOWN.DIRECTORY_SERVER, nameServerRequest(0x0999, encodePortIdRequest(0)))
      .catch((e: unknown) => e);
    expect((unknown as CtRejectError).reason).toBe(FS_RJT_REASON.COMMAND_NOT_SUPPORTED);
    a.closeLink();
    b.closeLink();
  });

  it('answers a name-server query longer than one frame with a multi-frame sequence', async () => {
    const a = await Initiator.connect(san.linkPath, I1);
    const frames: number[] = [];
    a.mux.link.on('frame', (f) => {
      const h = decodeFrame(f).header;
      if (h.sId === WELL_KNOWN.DIRECTORY_SERVER && h.type === FC_TYPE.CT) frames.push(h.seqCnt);
    });
    const vports: Initiator[] = [];
    for (let i = 0; i < 150; i++) {
      const v = await a.createVport({ wwpn: 0xc000000000001000n + BigInt(i), wwnn: 0xc000000000000000n });
      await v.ct(
        WELL_KNOWN.DIRECTORY_SERVER,
        nameServerRequest(NS.RFT_ID, encodeRftId({ nportId: v.nportId, fc4Types: [FC4_TYPE_FCP] })),
      );
      vports.push(v);
    }
    frames.length = 0;
    const list = await a.nameServer.gpnFt(); // 150 × 16 bytes + CT header: two frames
    expect(list.map((e) => e.name)).toEqual(vports.map((v) => v.wwpn));
    expect(frames).toEqual([0, 1]);
    a.closeLink();
  });

  it('truncates list answers to the requested maximum size and reports the residual', async () => {
    const a = await Initiator.connect(san.linkPath, I1);
    for (let i = 0; i < 3; i++)
      await a.createVport({ wwpn: 0xc000000000000010n + BigInt(i), wwnn: 0xc000000000000000n });
    // Room for 2 four-byte entries: 16-byte CT header + 8 bytes.
    const iu = await a.ct(
      WELL_KNOWN.DIRECTORY_SERVER,
      nameServerRequest(NS.GID_PT, Uint8Array.of(0x7f, 0, 0, 0), 16 + 8),
    );
    expect(iu.payload.length).toBe(8);
    expect(iu.header.maxOrResidualWords).toBe(2);
    expect(iu.payload[4]! & 0x80).toBe(0); // the list is incomplete: no last-entry mark
    a.closeLink();
  });
});

describe('links that never log in', () => {
  it('are closed after the login timeout, while a link that logs in stays', async () => {
    const fabric = new Fabric({ name: 't', domain: 1, loginTimeoutMs: 100 });
    try {
      const [idleFabric, idle] = linkPair();
      const idleDown = new Promise<string>((r) => idle.once('down', r));
      fabric.attach(idleFabric);
      const [hbaFabric, hbaEnd] = linkPair();
      fabric.attach(hbaFabric);
      const hba = await Initiator.overLink(hbaEnd, I1);
      expect(fabric.pendingLinks).toBe(1);
      expect(await idleDown).toMatch(/peer closed/);
      expect(fabric.stats.loginTimeouts).toBe(1);
      expect(fabric.pendingLinks).toBe(0);
      // A physical LOGO gives the F_Port back and the link must log in again in time.
      await new Promise((r) => setTimeout(r, 150));
      expect(hbaEnd.isUp).toBe(true);
      const hbaDown = new Promise<string>((r) => hbaEnd.once('down', r));
      await hba.fabricLogout();
      expect(await hbaDown).toMatch(/peer closed/);
      expect(fabric.stats.loginTimeouts).toBe(2);
    } finally {
      fabric.close();
    }
  });

  it('are bounded in number: beyond the limit the oldest waiting link is closed', async () => {
    const fabric = new Fabric({ name: 't', domain: 1, maxPendingLinks: 4 });
    try {
      const ends = Array.from({ length: 6 }, () => linkPair());
      const downs = ends.map(([, e]) => new Promise<string>((r) => e.once('down', r)));
      for (const [f] of ends) fabric.attach(f);
      await Promise.all(downs.slice(0, 2));
      expect(fabric.pendingLinks).toBe(4);
      expect(fabric.stats.pendingEvicted).toBe(2);
      expect(ends.slice(2).every(([, e]) => e.isUp)).toBe(true);
      for (const [, e] of ends) e.close();
    } finally {
      fabric.close();
    }
  });

  it('over the real socket: 300 idle connections do not lock an HBA out', async () => {
    const san = await startTestSan();
    const idle: net.Socket[] = [];
    try {
      for (let i = 0; i < 300; i++) {
        const s = net.createConnection({ path: san.linkPath });
        s.on('error', () => {});
        idle.push(s);
        await new Promise((r) => s.once('connect', r));
      }
      const hba = await Initiator.connect(san.linkPath, I1);
      expect(hba.loggedIn).toBe(true);
      hba.closeLink();
    } finally {
      for (const s of idle) s.destroy();
      await san.close();
    }
  });
});
