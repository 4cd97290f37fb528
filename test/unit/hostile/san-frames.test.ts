/**
 * Hostile SAN peer, FC frame level: an N_Port logs in to the in-process SAN over a real link
 * socket like any HBA, then sends random frames and mutations of real traffic (captured from a
 * well-behaved initiator: PLOGI, PRLI, name-server CT, FCP_CMND/DATA, ABTS...) — random R_CTL,
 * TYPE, F_CTL, exchange ids colliding with the good initiator's, spoofed S_IDs, payloads flipped,
 * truncated or extended — plus raw garbage on another link socket. Checked: no error-level log,
 * the fabric and the array's target port stay up, the well-behaved initiator's session keeps
 * working (READ/WRITE with correct data) during and after the storm, and a new port can still
 * log in and discover the target.
 */
import net from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseSanConfig } from '../../../src/san/config.js';
import { FC_HEADER_SIZE, FC_MAX_FRAME, FC_TYPE, F_CTL, R_CTL, WELL_KNOWN } from '../../../src/fc/frame.js';
import { Initiator } from '../../../src/fc/initiator.js';
import { LINK_LENGTH_PREFIX } from '../../../src/fc/link.js';
import { San } from '../../../src/san/san.js';
import { LogCapture, sleep, withSeed, type Rng } from './support.js';

const TARGET = { wwpn: '50:0a:09:81:00:00:00:01', wwnn: '50:0a:09:80:00:00:00:01' };
const GOOD = { wwpn: 0xc05076ffe5000201n, wwnn: 0xc05076ffe5000200n };
const EVIL = { wwpn: 0xc05076ffe5000666n, wwnn: 0xc05076ffe5000600n };
const LATECOMER = { wwpn: 0xc05076ffe5000301n, wwnn: 0xc05076ffe5000300n };
const FRAMES = 5000;
const IO_EVERY = 500;
const BLOCK = 512;

/** FC-2 header field offsets (FC-FS-3 Table 33), for in-place mutation of captured frames. */
const HDR = {
  R_CTL: 0,
  D_ID: 1,
  CS_CTL: 4,
  S_ID: 5,
  TYPE: 8,
  F_CTL: 9,
  SEQ_ID: 12,
  DF_CTL: 13,
  SEQ_CNT: 14,
  OX_ID: 16,
  RX_ID: 18,
  PARAMETER: 20,
} as const;

function config() {
  return parseSanConfig({
    fabric: { name: 'hostile', domain: 3, zoning: { default: 'allow', zones: [] } },
    arrays: [
      {
        name: 'array1',
        ports: [TARGET],
        volumes: [{ name: 'ram', size: '1MiB' }],
        hostGroups: [
          {
            name: 'h',
            initiators: ['c0:50:76:ff:e5:00:02:01', 'c0:50:76:ff:e5:00:06:66', 'c0:50:76:ff:e5:00:03:01'],
            luns: { '0': 'ram' },
          },
        ],
      },
    ],
  });
}

function put24(b: Uint8Array, at: number, v: number): void {
  b[at] = (v >>> 16) & 0xff;
  b[at + 1] = (v >>> 8) & 0xff;
  b[at + 2] = v & 0xff;
}
function put16(b: Uint8Array, at: number, v: number): void {
  b[at] = (v >>> 8) & 0xff;
  b[at + 1] = v & 0xff;
}

function cdb10(op: number, lba: number, blocks: number): Uint8Array {
  const c = new Uint8Array(10);
  c[0] = op;
  new DataView(c.buffer).setUint32(2, lba);
  new DataView(c.buffer).setUint16(7, blocks);
  return c;
}

/** A command through the well-behaved initiator, retried past unit attentions (a host does the same). */
async function scsi(i: Initiator, t: number, cmd: Parameters<Initiator['scsiCommand']>[1]) {
  for (let tries = 0; tries < 4; tries++) {
    const r = await i.scsiCommand(t, cmd);
    if (r.status === 2 && r.sense && (r.sense[2]! & 0xf) === 6) continue;
    return r;
  }
  throw new Error('unit attention did not clear');
}

async function writeThenRead(i: Initiator, t: number, lba: number, blocks: number, seed: number): Promise<void> {
  const data = new Uint8Array(blocks * BLOCK).map((_, k) => (k * 31 + seed) & 0xff);
  const w = await scsi(i, t, { lun: 0, cdb: cdb10(0x2a, lba, blocks), direction: 'write', dataOut: data });
  expect(w.status).toBe(0);
  const r = await scsi(i, t, { lun: 0, cdb: cdb10(0x28, lba, blocks), direction: 'read', expectedLength: data.length });
  expect(r.status).toBe(0);
  expect(r.data).toEqual(data);
}

interface Ids {
  evil: number;
  good: number;
  target: number;
}

/** A mutation of a captured frame, or pure noise; S_ID mostly the hostile port's own (else the switch drops it). */
function hostileFrame(r: Rng, templates: Uint8Array[], ids: Ids): Uint8Array {
  let f: Uint8Array;
  if (templates.length === 0 || r.chance(0.15)) {
    f = r.bytes(FC_HEADER_SIZE + r.int(FC_MAX_FRAME - FC_HEADER_SIZE + 1));
  } else {
    f = r.pick(templates).slice();
  }
  put24(f, HDR.S_ID, r.chance(0.9) ? ids.evil : r.chance(0.5) ? ids.good : r.u32() & 0xffffff);
  if (r.chance(0.5))
    put24(
      f,
      HDR.D_ID,
      r.pick([
        ids.target,
        ids.target,
        ids.good,
        ids.evil,
        WELL_KNOWN.DIRECTORY_SERVER,
        WELL_KNOWN.FABRIC_CONTROLLER,
        WELL_KNOWN.F_PORT,
        WELL_KNOWN.MANAGEMENT_SERVER,
        WELL_KNOWN.BROADCAST,
        r.u32() & 0xffffff,
      ]),
    );
  if (r.chance(0.3)) f[HDR.R_CTL] = r.pick([...Object.values(R_CTL), r.u32() & 0xff]);
  if (r.chance(0.2)) f[HDR.TYPE] = r.pick([...Object.values(FC_TYPE), r.u32() & 0xff]);
  if (r.chance(0.3))
    put24(f, HDR.F_CTL, r.chance(0.5) ? r.u32() & 0xffffff : r.pick(Object.values(F_CTL)) | (r.u32() & F_CTL.SEQ_INIT));
  // Exchange ids: small values collide with the good initiator's own exchanges.
  if (r.chance(0.4)) put16(f, HDR.OX_ID, r.chance(0.7) ? r.int(64) : r.u32() & 0xffff);
  if (r.chance(0.4)) put16(f, HDR.RX_ID, r.chance(0.7) ? r.int(64) : r.u32() & 0xffff);
  if (r.chance(0.2)) put16(f, HDR.SEQ_CNT, r.u32() & 0xffff);
  if (r.chance(0.2)) new DataView(f.buffer).setUint32(HDR.PARAMETER, r.u32());
  if (r.chance(0.1)) f[HDR.DF_CTL] = r.u32() & 0xff;
  for (let k = r.int(6); k > 0; k--) f[r.int(f.length)] = r.u32() & 0xff;
  if (r.chance(0.15)) f = f.subarray(0, FC_HEADER_SIZE + r.int(f.length - FC_HEADER_SIZE + 1));
  else if (r.chance(0.1)) {
    const longer = new Uint8Array(Math.min(FC_MAX_FRAME, f.length + 1 + r.int(512)));
    longer.set(f);
    longer.set(r.bytes(longer.length - f.length), f.length);
    f = longer;
  }
  return f;
}

/** Raw bytes on a fresh link socket: bad length prefixes, short frames, noise. Resolves when the SAN hangs up (or after a while). */
async function garbageLink(r: Rng, linkPath: string): Promise<boolean> {
  const sock = net.createConnection(linkPath);
  await new Promise<void>((resolve, reject) => {
    sock.once('connect', resolve);
    sock.once('error', reject);
  });
  const closed = new Promise<boolean>((resolve) => sock.once('close', () => resolve(true)));
  sock.on('error', () => {});
  const prefix = Buffer.alloc(LINK_LENGTH_PREFIX);
  prefix.writeUInt32BE(r.pick([0, 1, FC_HEADER_SIZE - 1, FC_MAX_FRAME + 1, 0xffffffff, r.u32()]) >>> 0);
  sock.write(Buffer.concat([Buffer.from(r.bytes(r.int(64))), prefix, Buffer.from(r.bytes(r.int(256)))]));
  return Promise.race([closed, sleep(3000).then(() => false)]).finally(() => sock.destroy());
}

describe('hostile N_Port on a SAN link', () => {
  let dir: string;
  let linkPath: string;
  let san: San;
  let logs: LogCapture;
  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'npiv-hostile-fc-'));
    linkPath = join(dir, 'link.sock');
    logs = new LogCapture();
    san = await San.start(config(), { linkPath, log: logs.logger, targetPortOptions: { exchangeTimeoutMs: 1000 } });
  });
  afterEach(async () => {
    await san.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it(`keeps the fabric, the target and another initiator's session working through ${FRAMES} hostile frames`, async () => {
    await withSeed(0x5eed0005, async (r) => {
      const good = await Initiator.connect(linkPath, { ...GOOD, exchangeTimeoutMs: 2000, log: logs.logger });
      const templates: Uint8Array[] = [];
      good.mux.link.addTap((direction, frame) => {
        if (direction === 'tx' && templates.length < 400) templates.push(frame.slice());
      });
      const [tgt] = await good.discoverTargets();
      expect(tgt).toBeTruthy();
      const t = tgt!.nportId;
      await good.plogi(t);
      await good.prli(t);
      await writeThenRead(good, t, 10, 8, 1);

      const evil = await Initiator.connect(linkPath, { ...EVIL, exchangeTimeoutMs: 500, log: logs.logger });
      await evil.plogi(t);
      await evil.prli(t);
      const ids: Ids = { evil: evil.nportId, good: good.nportId, target: t };
      expect(templates.length).toBeGreaterThan(5);

      let sent = 0;
      for (let i = 0; i < FRAMES; i++) {
        if (!evil.mux.link.isUp) break; // the SAN may hang up on it: that is a legitimate answer
        evil.mux.link.send(hostileFrame(r, templates, ids));
        sent++;
        if (i % 50 === 0) await sleep(0);
        if (i % IO_EVERY === IO_EVERY - 1) {
          const lba = 100 + r.int(1000);
          await writeThenRead(good, t, lba, 1 + r.int(8), i);
        }
      }
      if (process.env.HOSTILE_DEBUG) console.log('san fuzz', { sent, evilUp: evil.mux.link.isUp });
      expect(sent).toBeGreaterThan(100);
      let hungUp = 0;
      for (let k = 0; k < 6; k++) if (await garbageLink(r, linkPath)) hungUp++;
      expect(hungUp).toBe(6);
      await sleep(50);

      // The fabric, the target port and the good session survived.
      const status = san.status();
      expect(status.targetPorts.every((p) => p.up)).toBe(true);
      expect(san.fabric.logins().some((l) => l.wwpn === GOOD.wwpn && l.nportId === good.nportId)).toBe(true);
      await writeThenRead(good, t, 1500, 16, 99);

      // A newcomer can still log in, find the target and do I/O.
      const late = await Initiator.connect(linkPath, { ...LATECOMER, exchangeTimeoutMs: 2000, log: logs.logger });
      const found = await late.discoverTargets();
      expect(found.map((x) => x.nportId)).toContain(t);
      await late.plogi(t);
      await late.prli(t);
      await writeThenRead(late, t, 1700, 4, 5);
      expect(logs.failures()).toEqual([]);
      late.closeLink();
      evil.closeLink();
      good.closeLink();
    });
  });
});
