/**
 * Guest-side NPIV in the ISP2532 firmware, driven the way qla2xxx drives it: VP_CONFIG through
 * MBC 0x54 (qla24xx_modify_vp_config), Report ID Acquisition per VP, per-VP mailboxes (mb9) and
 * IOCBs (vp_index), VP_CTRL disable (qla24xx_control_vp), re-FDISC after a link bounce, VP state
 * lost on an ISP abort — over the real SAN engine and over a fake fabric, plus hostile input.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { InitiatorFabricPort } from '../../../src/isp/initiator-fabric.js';
import { connectLink } from '../../../src/fc/link.js';
import { Zoning } from '../../../src/san/fabric/zoning.js';
import type { Logger } from '../../../src/util/log.js';
import { FakeScsiTarget } from '../san/fake-scsi.js';
import { startTestSan, until, type TestSan } from '../san/helpers.js';
import { writeU24LE } from '../../../src/util/bytes.js';
import { swapDwords } from '../../../src/vm-model/qla-guest.js';
import { FakeFabric, le16, le32, mbWithDma, Rig, SCRATCH, WWPN, entry } from './helpers.js';

const TGT_A = { wwpn: 0x500a098100000001n, wwnn: 0x500a098000000001n };
const TGT_B = { wwpn: 0x500a098100000002n, wwnn: 0x500a098000000002n };
const VP1 = { wwpn: 0xc050760000000101n, wwnn: 0xc050760000000100n };
const VP2 = { wwpn: 0xc050760000000201n, wwnn: 0xc050760000000200n };
const NOT_GRANTED = { wwpn: 0xc0507600000009a1n, wwnn: 0xc0507600000009a0n };

/** vp_config_entry_24xx as qla24xx_modify_vp_config builds it. */
function vpConfig(
  vpIndex: number,
  names: { wwpn: bigint; wwnn: bigint },
  o: { command?: number; count?: number; options?: number } = {},
): Uint8Array {
  return entry(0x31, 0, (dv, b) => {
    b[12] = o.command ?? 1;
    b[13] = o.count ?? 1;
    b[14] = vpIndex;
    b[16] = o.options ?? 0x38;
    dv.setBigUint64(20, names.wwpn, false);
    dv.setBigUint64(28, names.wwnn, false);
  });
}

/** vp_ctrl_entry_24xx as qla25xx_ctrlvp_iocb builds it. */
function vpCtrl(handle: number, vpIndices: number[], o: { command?: number; count?: number } = {}): Uint8Array {
  return entry(0x30, handle, (dv, b) => {
    dv.setUint16(12, o.command ?? 0x0b, true);
    dv.setUint16(14, o.count ?? vpIndices.length, true);
    for (const n of vpIndices) b[16 + ((n - 1) >> 3)]! |= 1 << ((n - 1) & 7);
  });
}

const IN_PLACE = SCRATCH + 0x800n;

/** MBC 0x54 with the entry at IN_PLACE; returns mb0 and the entry written back. */
async function inPlace(rig: Rig, e: Uint8Array): Promise<{ mb0: number; back: Uint8Array }> {
  rig.mem.write(IN_PLACE, e);
  const r = await rig.mbox(mbWithDma(0x54, IN_PLACE));
  return { mb0: r.mb[0]!, back: rig.mem.read(IN_PLACE, 64) };
}

/** Every response entry until `want` of them match (bounded). */
async function responses(rig: Rig, want: (e: Uint8Array) => boolean, count = 1): Promise<Uint8Array[]> {
  const got: Uint8Array[] = [];
  for (let i = 0; i < 300 && got.length < count; i++) {
    await rig.drainEvents();
    got.push(...rig.takeResponses().filter(want));
  }
  return got;
}

const isRida = (vp: number) => (e: Uint8Array) => e[0] === 0x32 && e[10] === vp;
const ridaPortId = (e: Uint8Array) => e[12]! | (e[13]! << 8) | (e[14]! << 16);

async function roundTrip(rig: Rig, e: Uint8Array): Promise<Uint8Array> {
  rig.postRequest(e);
  const handle = le32(e, 4);
  const [c] = await responses(rig, (r) => r[0] !== 0x32 && le32(r, 4) === handle);
  if (!c) throw new Error(`no completion for handle ${handle}`);
  return c;
}

/** A fake fabric whose vports are further fakes (N_Port IDs 0x010201, 0x010202, …). */
class NpivFakeFabric extends FakeFabric {
  readonly vports: FakeFabric[] = [];
  createVport(): FakeFabric {
    const f = new FakeFabric(this.targets);
    const n = this.vports.length + 1;
    f.loginResult = { ...this.loginResult, portId: (this.loginResult.portId & 0xffff00) | n };
    f.isLinkUp = () => this.linkUp;
    this.vports.push(f);
    return f;
  }
}

function captureLog(lines: { event: string; detail: Record<string, unknown> }[]): Logger {
  const log = {
    warn: (obj: Record<string, unknown>) => lines.push({ event: String(obj.event), detail: obj }),
    info: () => {},
    debug: () => {},
    error: () => {},
    trace: () => {},
    child: () => log,
  };
  return log as unknown as Logger;
}

describe('guest NPIV over the SAN engine', () => {
  let san: TestSan;
  let diskA: FakeScsiTarget;
  let diskB: FakeScsiTarget;
  let port: InitiatorFabricPort;
  beforeEach(async () => {
    const zoning = new Zoning('deny');
    zoning.setZone({ name: 'base', members: [WWPN, TGT_A.wwpn] });
    zoning.setZone({ name: 'vp', members: [VP1.wwpn, TGT_B.wwpn] });
    zoning.setZoneSet('cfg', ['base', 'vp']);
    zoning.activate('cfg');
    san = await startTestSan(zoning);
    diskA = new FakeScsiTarget(TGT_A.wwpn, TGT_A.wwnn);
    diskB = new FakeScsiTarget(TGT_B.wwpn, TGT_B.wwnn, 2);
    await san.addTarget(diskA);
    await san.addTarget(diskB);
    port = new InitiatorFabricPort({ connect: () => connectLink(san.linkPath), reconnectMs: 50 });
  });
  afterEach(async () => {
    await port.close();
    await san.close();
  });

  it('VP_CONFIG → FDISC → RIDA; the vport discovers its own zone, logs in and does I/O; link bounce; VP_CTRL', async () => {
    const rig = new Rig([], undefined, port, undefined, undefined, undefined, [VP1, VP2]);
    rig.realTime = true;
    await rig.bringUp();
    rig.takeResponses();
    expect((await rig.mbox([0x42])).mb[11]).toBe(127); // max_npiv_vports
    const base = await rig.mbox([0x20]);
    expect(base.mb[7]! & 0x400).toBe(0x400); // FLOGI_MID_SUPPORT
    const baseId = (base.mb[3]! << 16) | base.mb[2]!;

    const cfg = await inPlace(rig, vpConfig(1, VP1));
    expect([cfg.mb0, cfg.back[0], cfg.back[3], le16(cfg.back, 10)]).toEqual([0x4000, 0x31, 0, 0]);
    const [rida] = await responses(rig, isRida(1));
    expect([rida![3], rida![11], rida![15], rida![17]]).toEqual([0, 0, 1, 0x06]); // ok, format 1, TOPO_F
    const vpId = ridaPortId(rida!);
    expect(vpId).not.toBe(baseId);
    expect(vpId >> 8).toBe(baseId >> 8); // same F_Port: an FDISC on the physical port's link
    expect(san.fabric.findByWwpn(VP1.wwpn)?.nportId).toBe(vpId);

    // Per-VP mailboxes (mb9): the VP's own address, topology and switch capabilities as VP 0's.
    const a = await rig.mbox([0x20, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    expect([a.mb[0], (a.mb[3]! << 16) | a.mb[2]!, a.mb[6], a.mb[7]! & 0x400]).toEqual([0x4000, vpId, 3, 0x400]);
    expect((await rig.mbox([0x70, 3, 0, 0, 0, 0, 0, 0, 0, 1])).mb[0]).toBe(0x4000); // SCR
    const fport = await rig.mbox([0x6a, 0x7fe, 0, 0, 0, 0, 0, 0, 0, 1, 0]);
    expect(fport.mb[0]).toBe(0x4000);

    // SNS login for VP 1 (qla24xx_configure_vhba), then GPN_FT: only the vport's zone.
    const sns = await inPlace(
      rig,
      entry(0x52, 0, (dv, b) => {
        dv.setUint16(10, 0x7fc, true);
        dv.setUint16(12, 0x10 | 0x20, true);
        b[14] = 1;
        writeU24LE(b, 16, 0xfffffc);
      }),
    );
    expect([sns.mb0, le16(sns.back, 8)]).toEqual([0x4000, 0]);
    const req = SCRATCH + 0x1000n;
    const rsp = SCRATCH + 0x2000n;
    const ct = new Uint8Array(20);
    ct.set([1, 0, 0, 0, 0xfc, 0x02, 0, 0, 0x01, 0x72, 0x00, 0xfc]);
    ct[19] = 0x08;
    rig.mem.write(req, ct);
    rig.mem.write(rsp, new Uint8Array(256));
    const c = await roundTrip(
      rig,
      entry(0x29, 3, (dv, b) => {
        dv.setUint16(10, 0x7fc, true);
        dv.setUint16(12, 1, true);
        b[14] = 1;
        dv.setUint16(20, 1, true);
        dv.setUint32(32, 256, true);
        dv.setUint32(36, 20, true);
        dv.setBigUint64(40, req, true);
        dv.setUint32(48, 20, true);
        dv.setBigUint64(52, rsp, true);
        dv.setUint32(60, 256, true);
      }),
    );
    expect(le16(c, 8)).toBe(0);
    const list = rig.mem.read(rsp, 256);
    const seen: bigint[] = [];
    let tgtB = 0;
    for (let o = 16; o + 16 <= 256; o += 16) {
      const wwpn = new DataView(list.buffer, list.byteOffset + o + 8, 8).getBigUint64(0, false);
      if (wwpn === TGT_B.wwpn) tgtB = (list[o + 1]! << 16) | (list[o + 2]! << 8) | list[o + 3]!;
      if (wwpn) seen.push(wwpn);
      if (list[o]! & 0x80) break;
    }
    expect(seen).toEqual([TGT_B.wwpn]);

    // PLOGI+PRLI from VP 1, then INQUIRY with vp_index 1: the target sees the vport's WWPN.
    const l = await roundTrip(
      rig,
      entry(0x52, 4, (dv, b) => {
        dv.setUint16(10, 0x81, true);
        dv.setUint16(12, 0x10, true);
        b[14] = 1;
        writeU24LE(b, 16, tgtB);
      }),
    );
    expect(le16(l, 8)).toBe(0);
    // The base port has no login under that handle: the tables are per VP.
    const pdb = await rig.mbox(mbWithDma(0x64, SCRATCH + 0x3000n, { 1: 0x81, 9: 0 }));
    expect(pdb.mb[0]).not.toBe(0x4000);
    const pdbVp = await rig.mbox(mbWithDma(0x64, SCRATCH + 0x3000n, { 1: 0x81, 9: 1 }));
    expect(pdbVp.mb[0]).toBe(0x4000);
    const data = SCRATCH + 0x10000n;
    const inq = await roundTrip(
      rig,
      entry(0x18, 6, (dv, b) => {
        dv.setUint16(8, 0x81, true);
        dv.setUint16(12, 1, true);
        dv.setUint16(24, 2, true);
        const c16 = new Uint8Array(16);
        c16.set([0x12, 0, 0, 0, 36, 0]);
        b.set(swapDwords(c16), 28);
        dv.setUint32(44, 36, true);
        writeU24LE(b, 48, tgtB);
        b[51] = 1;
        dv.setBigUint64(52, data, true);
        dv.setUint32(60, 36, true);
      }),
    );
    expect([inq[0], le16(inq, 8)]).toEqual([0x03, 0]);
    expect(diskB.requests.map((q) => q.nexus.initiatorWwpn)).toEqual([VP1.wwpn]);

    // Link bounce at the switch: 0x8012, then the physical port and the vport log in again
    // without a new VP_CONFIG (qla2xxx never re-sends it).
    rig.aens.length = 0;
    expect(san.fabric.linkDown(WWPN)).toBe(true);
    const [again] = await responses(rig, isRida(1));
    expect(again![11]).toBe(0);
    expect(rig.aens.map((x) => x[0])).toEqual(expect.arrayContaining([0x8012, 0x8011, 0x8014]));
    expect(san.fabric.findByWwpn(VP1.wwpn)?.nportId).toBe(ridaPortId(again!));

    // A WWPN the host did not grant: VP_CONFIG fails (qla24xx_enable_vp → FC_VPORT_FAILED).
    const bad = await inPlace(rig, vpConfig(2, NOT_GRANTED));
    expect([bad.mb0, le16(bad.back, 10)]).toEqual([0x4000, 0x03]);
    expect(san.fabric.findByWwpn(NOT_GRANTED.wwpn)).toBeUndefined();

    // VP_CTRL disable + LOGO all: the FDISC login is released at the switch.
    const off = await roundTrip(rig, vpCtrl(7, [1]));
    expect([off[0], off[3], le16(off, 10)]).toEqual([0x30, 0, 0]);
    await until(() => !san.fabric.findByWwpn(VP1.wwpn), 'VP1 logged out');
    // The index is free for other granted names.
    expect(le16((await inPlace(rig, vpConfig(1, VP2))).back, 10)).toBe(0);
    const [r2] = await responses(rig, isRida(1));
    expect(san.fabric.findByWwpn(VP2.wwpn)?.nportId).toBe(ridaPortId(r2!));
  });
});

describe('guest NPIV against a fake fabric', () => {
  async function up(grants = [VP1, VP2], fabric: FakeFabric = new NpivFakeFabric()) {
    const lines: { event: string; detail: Record<string, unknown> }[] = [];
    const rig = new Rig([], fabric, undefined, undefined, captureLog(lines), undefined, grants);
    await rig.bringUp();
    rig.takeResponses();
    return { rig, fabric, lines };
  }

  it('eight vports at once, each with its own N_Port ID and RIDA', async () => {
    const grants = Array.from({ length: 8 }, (_, i) => ({
      wwpn: 0xc050760000001001n + BigInt(i << 8),
      wwnn: 0xc050760000001000n + BigInt(i << 8),
    }));
    const { rig, fabric } = await up(grants);
    for (let i = 0; i < 8; i++) expect(le16((await inPlace(rig, vpConfig(i + 1, grants[i]!))).back, 10)).toBe(0);
    const ridas = await responses(rig, (e) => e[0] === 0x32, 8);
    expect(ridas.map((e) => e[10]).sort()).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(new Set(ridas.map(ridaPortId)).size).toBe(8);
    expect((fabric as NpivFakeFabric).vports.map((v) => v.loginNames[0]!.wwpn)).toEqual(grants.map((g) => g.wwpn));
  });

  it('link bounce re-FDISCs enabled VPs; an ISP abort forgets them until VP_CONFIG comes again', async () => {
    const { rig, fabric } = await up();
    const f = fabric as NpivFakeFabric;
    await inPlace(rig, vpConfig(1, VP1));
    expect((await responses(rig, isRida(1))).length).toBe(1);
    rig.aens.length = 0;
    f.linkUp = false;
    f.emit({ type: 'link-down' });
    f.vports[0]!.emit({ type: 'link-down' });
    await rig.drainEvents();
    expect(rig.aens.map((a) => a[0])).toEqual([0x8012]); // once, from the physical port
    expect(rig.isp.firmware.vports.portOf(1)!.phase).toBe('down');
    f.linkUp = true;
    f.emit({ type: 'link-up' });
    const [again] = await responses(rig, isRida(1));
    expect(again![11]).toBe(0);
    expect(rig.aens.map((a) => a[0])).toEqual([0x8012, 0x8011, 0x8014]);
    expect(f.vports[0]!.loginNames.length).toBe(2);

    // RSCN and a lost login on the vport carry its VP index in mb3.
    rig.aens.length = 0;
    f.vports[0]!.emit({ type: 'rscn', format: 0, address: 0x010400 });
    await rig.drainEvents();
    expect(rig.aens).toEqual([[0x8015, 0x0001, 0x0400, 1]]);

    // ISP abort: soft reset and re-initialization; the VP is logged out and forgotten.
    await rig.bringUp();
    expect(f.vports[0]!.calls).toContain('logout');
    expect(rig.isp.firmware.vports.size).toBe(0);
    expect(rig.takeResponses().filter(isRida(1))).toEqual([]);
    await inPlace(rig, vpConfig(1, VP1));
    expect((await responses(rig, isRida(1))).length).toBe(1);
  });

  it('a refused FDISC is reported once with vp_status 1 and retried', async () => {
    const { rig, fabric } = await up();
    const f = fabric as NpivFakeFabric;
    const real = f.createVport.bind(f);
    f.createVport = () => {
      const v = real();
      v.login = async () => {
        const { FabricLoginRejected } = await import('../../../src/isp/fabric-port.js');
        throw new FabricLoginRejected(0x03, 0x2a, 'FDISC rejected');
      };
      return v;
    };
    await inPlace(rig, vpConfig(1, VP1));
    const [fail] = await responses(rig, isRida(1));
    expect([fail![11], fail![34], fail![33]]).toEqual([1, 0x03, 0x2a]);
    rig.sched.advance(2000);
    await rig.drainEvents();
    expect(rig.takeResponses().filter(isRida(1))).toEqual([]); // not reported again
  });

  it('refuses VP creation without an NPIV-capable FabricPort, with a log line', async () => {
    const plain = new FakeFabric();
    const { rig, lines } = await up([VP1], plain);
    const r = await inPlace(rig, vpConfig(1, VP1));
    expect([r.mb0, le16(r.back, 10)]).toEqual([0x4000, 0x03]);
    expect(lines.map((l) => l.event)).toContain('vport_err_no_npiv');
    expect(rig.isp.firmware.vports.size).toBe(0);
  });

  it('no grants by default; a granted WWPN with another WWNN and a duplicate WWPN are refused', async () => {
    const none = await up([]);
    expect(le16((await inPlace(none.rig, vpConfig(1, VP1))).back, 10)).toBe(0x03);
    expect(none.lines.map((l) => l.event)).toContain('vport_err_not_granted');
    const { rig, fabric } = await up();
    expect(le16((await inPlace(rig, vpConfig(1, { wwpn: VP1.wwpn, wwnn: VP2.wwnn }))).back, 10)).toBe(0x03);
    expect(le16((await inPlace(rig, vpConfig(1, VP1))).back, 10)).toBe(0);
    expect(le16((await inPlace(rig, vpConfig(2, VP1))).back, 10)).toBe(0x03);
    await responses(rig, isRida(1));
    expect((fabric as NpivFakeFabric).vports.length).toBe(1);
  });

  it('random VP_CONFIG / VP_CTRL entries: every one completes, only granted names log in', async () => {
    const { rig, fabric } = await up();
    let seed = 0x1234567;
    const rnd = () => {
      seed = (seed * 1103515245 + 12345) >>> 0;
      return seed >>> 8;
    };
    for (let i = 0; i < 150; i++) {
      const e = new Uint8Array(64).map(() => rnd() & 0xff);
      e[0] = 0x31;
      e[1] = 1;
      e[3] = 0;
      if (i % 3 === 0) new DataView(e.buffer).setBigUint64(20, i % 2 ? VP1.wwpn : VP2.wwpn, false);
      const r = await inPlace(rig, e);
      expect(r.mb0).toBe(0x4000);
      const ctl = new Uint8Array(64).map(() => rnd() & 0xff);
      ctl[0] = 0x30;
      ctl[1] = 1;
      ctl[3] = 0;
      new DataView(ctl.buffer).setUint32(4, 100 + i, true);
      expect((await roundTrip(rig, ctl))[0]).toBe(0x30);
    }
    await rig.drainEvents();
    const names = (fabric as NpivFakeFabric).vports.flatMap((v) => v.loginNames.map((n) => n.wwpn));
    expect(names.filter((w) => w !== VP1.wwpn && w !== VP2.wwpn)).toEqual([]);
    expect(rig.isp.firmware.vports.size).toBeLessThanOrEqual(127);
  });

  it("a vport's management-server handle (0x7EF - n) gets a CT reject, not an error", async () => {
    const { rig } = await up();
    await inPlace(rig, vpConfig(2, VP1));
    await responses(rig, isRida(2));
    const req = SCRATCH + 0x1000n;
    const rsp = SCRATCH + 0x2000n;
    const ct = new Uint8Array(16);
    ct.set([1, 0, 0, 0, 0xfa, 0x10, 0, 0, 0x02, 0x11]); // FDMI RPRT
    rig.mem.write(req, ct);
    const c = await roundTrip(
      rig,
      entry(0x29, 21, (dv, b) => {
        dv.setUint16(10, 0x7ef - 2, true);
        dv.setUint16(12, 1, true);
        b[14] = 2;
        dv.setUint16(20, 1, true);
        dv.setUint32(32, 64, true);
        dv.setUint32(36, 16, true);
        dv.setBigUint64(40, req, true);
        dv.setUint32(48, 16, true);
        dv.setBigUint64(52, rsp, true);
        dv.setUint32(60, 64, true);
      }),
    );
    expect([c[3], le16(c, 8)]).toEqual([0, 0]);
    const r = rig.mem.read(rsp, 16);
    expect([r[8], r[9], r[13]]).toEqual([0x80, 0x01, 0x0b]); // CT reject, command not supported
  });

  it('hostile VP_CONFIG / VP_CTRL / vp_index values get statuses the driver sees', async () => {
    const { rig } = await up();
    const comp = async (e: Uint8Array) => le16((await inPlace(rig, e)).back, 10);
    expect(await comp(vpConfig(0, VP1))).toBe(0x02);
    expect(await comp(vpConfig(128, VP1))).toBe(0x02);
    expect(await comp(vpConfig(255, VP1))).toBe(0x02);
    expect(await comp(vpConfig(1, VP1, { count: 0 }))).toBe(0x02);
    expect(await comp(vpConfig(1, VP1, { count: 3 }))).toBe(0x02);
    expect(await comp(vpConfig(1, VP1, { command: 7 }))).toBe(0x03);
    expect(await comp(vpConfig(1, VP1, { options: 0x28 }))).toBe(0x03); // target-only
    expect(await comp(vpConfig(1, { wwpn: 0n, wwnn: 0n }))).toBe(0x03);
    expect(rig.isp.firmware.vports.size).toBe(0);

    const ctl = async (e: Uint8Array) => le16(await roundTrip(rig, e), 10);
    expect(await ctl(vpCtrl(11, [1, 2], { count: 1 }))).toBe(0x01);
    expect(await ctl(vpCtrl(12, [128]))).toBe(0x01);
    expect(await ctl(vpCtrl(13, [1], { command: 0 }))).toBe(0x01);
    expect(await ctl(vpCtrl(14, [], { count: 0 }))).toBe(0x01);
    expect(await ctl(vpCtrl(15, [3]))).toBe(0); // never configured: already disabled

    // An IOCB or mailbox naming a VP beyond the range: entry_status / parameter error.
    const l = await roundTrip(
      rig,
      entry(0x52, 16, (dv, b) => {
        dv.setUint16(10, 0x81, true);
        b[14] = 200;
      }),
    );
    expect(l[3]! & 0x08).toBe(0x08);
    const mbx = await roundTrip(
      rig,
      entry(0x39, 17, (dv) => {
        dv.setUint16(8, 0x64, true);
        dv.setUint16(8 + 18, 0x1234, true);
      }),
    );
    expect(mbx[3]! & 0x08).toBe(0x08);
    expect((await rig.mbox([0x20, 0, 0, 0, 0, 0, 0, 0, 0, 300])).mb[0]).toBe(0x4006);
    // A configured-but-idle VP index answers "loop in transition", which qla2xxx retries.
    const idle = await rig.mbox([0x20, 0, 0, 0, 0, 0, 0, 0, 0, 5]);
    expect([idle.mb[0], idle.mb[1]]).toEqual([0x4005, 7]);
    // FCP on a VP that is not logged in: port unavailable, not a hang.
    const cmd = await roundTrip(
      rig,
      entry(0x18, 18, (dv, b) => {
        dv.setUint16(8, 0x81, true);
        b[51] = 9;
      }),
    );
    expect([cmd[0], le16(cmd, 8)]).toEqual([0x03, 0x28]);
  });
});
