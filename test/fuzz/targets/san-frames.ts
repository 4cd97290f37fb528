/**
 * Fuzz target "san-frames": FC frames from the fuzzer into the simulated SAN's switch (fabric
 * login server, name server, zoning, routing) and through it into an array's FC target port
 * (ELS, FCP, BLS, SCSI on a RAM volume), as an N_Port on its own in-memory link.
 *
 * Input: up to MAX_FRAMES records [u16 big-endian length, frame bytes]; the length is reduced
 * into 24..2136 (header-only up to one full frame). Two placeholders keep mutated traffic
 * routable: S_ID 0xEEEEEE becomes the N_Port ID the fabric assigned this link (known from the
 * first frame the fabric sends back) and D_ID 0xDDDDDD the target port's. A new link per input;
 * the SAN itself (one switch, one array, one target port) lives for the whole run, like a real
 * SAN that sees one misbehaving port after another.
 *
 * Oracles: no exception escapes (the loop catches timer/promise errors too), nothing is logged
 * at error level, and the array's target port is still up and logged in to the fabric.
 */
import { parseSanConfig } from '../../../src/san/config.js';
import { FC_HEADER_SIZE, FC_MAX_FRAME } from '../../../src/fc/frame.js';
import { Initiator } from '../../../src/fc/initiator.js';
import { linkPair, type Link } from '../../../src/fc/link.js';
import { San } from '../../../src/san/san.js';
import { LogCapture } from '../../unit/hostile/support.js';
import { FuzzFinding, be16, u8, type FuzzTarget } from '../engine/target.js';

const MAX_FRAMES = 16;
const SELF = 0xeeeeee;
const TARGET = 0xdddddd;
const TARGET_WWPN = '50:0a:09:81:00:00:00:01';
const SEED_WWPN = 0xc05076ffe5000201n;
const OFF = { D_ID: 1, S_ID: 5 } as const;

const get24 = (b: Uint8Array, at: number): number => (b[at]! << 16) | (b[at + 1]! << 8) | b[at + 2]!;
function put24(b: Uint8Array, at: number, v: number): void {
  b[at] = (v >>> 16) & 0xff;
  b[at + 1] = (v >>> 8) & 0xff;
  b[at + 2] = v & 0xff;
}

export function parseFrames(input: Uint8Array): Uint8Array[] {
  const frames: Uint8Array[] = [];
  let at = 0;
  while (at + 2 <= input.length && frames.length < MAX_FRAMES) {
    const len = FC_HEADER_SIZE + (((input[at]! << 8) | input[at + 1]!) % (FC_MAX_FRAME - FC_HEADER_SIZE + 1));
    at += 2;
    const f = new Uint8Array(len);
    f.set(input.subarray(at, at + len));
    at += len;
    frames.push(f);
  }
  return frames;
}

const turn = (): Promise<void> => new Promise((r) => setImmediate(r));

function config() {
  return parseSanConfig({
    fabric: { name: 'fuzz', domain: 1, zoning: { default: 'allow', zones: [] } },
    arrays: [
      {
        name: 'array1',
        ports: [{ wwpn: TARGET_WWPN, wwnn: '50:0a:09:80:00:00:00:01' }],
        volumes: [{ name: 'ram', size: '1MiB' }],
        hostGroups: [{ name: 'h', initiators: ['c0:50:76:ff:e5:00:02:01'], luns: { '0': 'ram' } }],
      },
    ],
  });
}

/** A well-behaved initiator's traffic (FLOGI, name server, PLOGI, PRLI, I/O), with placeholders for the ids. */
async function captureSeeds(san: San, targetId: number): Promise<Uint8Array[]> {
  const [mine, fabricEnd] = linkPair('fuzz seed initiator');
  san.fabric.attach(fabricEnd);
  const tx: Uint8Array[] = [];
  mine.addTap((direction, frame) => {
    if (direction === 'tx') tx.push(frame.slice());
  });
  const good = await Initiator.overLink(mine, { wwpn: SEED_WWPN, wwnn: SEED_WWPN - 1n, exchangeTimeoutMs: 2000 });
  const myId = good.nportId;
  await good.discoverTargets();
  await good.plogi(targetId);
  await good.prli(targetId);
  const cdb = (op: number): Uint8Array => Uint8Array.of(op, 0, 0, 0, 0, 8, 0, 0, 2, 0);
  await good.scsiCommand(targetId, {
    lun: 0,
    cdb: Uint8Array.of(0x12, 0, 0, 0, 96, 0),
    direction: 'read',
    expectedLength: 96,
  });
  await good.scsiCommand(targetId, {
    lun: 0,
    cdb: cdb(0x2a),
    direction: 'write',
    dataOut: new Uint8Array(1024).fill(0xa5),
  });
  await good.scsiCommand(targetId, { lun: 0, cdb: cdb(0x28), direction: 'read', expectedLength: 1024 });
  good.closeLink();
  await turn();
  for (const f of tx) {
    if (get24(f, OFF.S_ID) === myId) put24(f, OFF.S_ID, SELF);
    if (get24(f, OFF.D_ID) === targetId) put24(f, OFF.D_ID, TARGET);
  }
  const record = (frames: Uint8Array[]): Uint8Array =>
    Uint8Array.from(frames.flatMap((f) => [...be16(f.length - FC_HEADER_SIZE), ...f]));
  const seeds: Uint8Array[] = [];
  for (let from = 0; from < tx.length; from += MAX_FRAMES - 1) {
    // Every seed starts with the FLOGI, so the rest is routable.
    seeds.push(record(from === 0 ? tx.slice(0, MAX_FRAMES) : [tx[0]!, ...tx.slice(from, from + MAX_FRAMES - 1)]));
  }
  return seeds;
}

export async function createSanTarget(): Promise<FuzzTarget> {
  const logs = new LogCapture();
  const san = await San.start(config(), {
    log: logs.logger,
    targetPortOptions: { exchangeTimeoutMs: 100, log: logs.logger },
  });
  const wwpn = 0x500a098100000001n;
  const targetId = san.targetPort(wwpn)!.nportId;
  const seeds = await captureSeeds(san, targetId);
  logs.records.length = 0;
  return {
    name: 'san-frames',
    maxLen: MAX_FRAMES * 300,
    dictionary: [
      u8(0xee, 0xee, 0xee),
      u8(0xdd, 0xdd, 0xdd),
      u8(0xff, 0xff, 0xfc),
      u8(0xff, 0xff, 0xfe),
      u8(0xff, 0xff, 0xfd),
      u8(0x22),
      u8(0x23),
      u8(0x32),
      u8(0x06),
      u8(0x01),
      u8(0x05),
      u8(0x81),
      u8(0x84),
      u8(0x85),
      u8(0x02, 0x01),
      u8(0x03),
      u8(0x04),
      u8(0x20),
      u8(0x21),
      u8(0x01, 0x00, 0x00, 0x00, 0xfc, 0x02),
      u8(0x29, 0x00, 0x00, 0x00),
    ],
    seeds: () => seeds,
    async run(input) {
      const [mine, fabricEnd]: [Link, Link] = linkPair('fuzz n_port');
      let myId = 0;
      mine.on('frame', (f) => {
        myId ||= get24(f, OFF.D_ID);
      });
      san.fabric.attach(fabricEnd);
      try {
        for (const f of parseFrames(input)) {
          if (get24(f, OFF.S_ID) === SELF) put24(f, OFF.S_ID, myId);
          if (get24(f, OFF.D_ID) === TARGET) put24(f, OFF.D_ID, targetId);
          if (!mine.send(f)) break; // the SAN hung up: a legitimate answer
          await turn();
        }
        for (let i = 0; i < 4; i++) await turn();
      } finally {
        mine.close('fuzz input done');
        await turn();
        await turn();
      }
      const failures = logs.failures();
      logs.records.length = 0;
      if (failures.length > 0) throw new FuzzFinding('crash', `error-level log: ${JSON.stringify(failures[0])}`);
      const port = san.targetPort(wwpn);
      if (!port || !san.status().targetPorts.every((p) => p.up))
        throw new FuzzFinding('crash', 'the array target port went down');
      if (!san.fabric.logins().some((l) => l.nportId === targetId))
        throw new FuzzFinding('crash', 'the target port lost its fabric login');
    },
    async close() {
      await san.close();
    },
  };
}
