/**
 * Hostile QEMU (or anything else on the socket), vfio-user message level, end to end: rounds of
 * random and mutated messages — lying sizes, random commands and flags, truncated and extended
 * payloads, plausible payloads with random fields, random fds (eventfds, memfds) attached in
 * random numbers — sent over a real Unix socket to the real VportHba. In a round whose framing
 * stayed intact, a final request must get a reply or find the connection closed (never silence);
 * nothing is logged at error level; fds sent to the server are released; and afterwards a new
 * client attaches the QEMU way and the driver probe works.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { native } from '../../../src/native/index.js';
import { VfioUserClient, VfioUserRequestError } from '../../../src/vfio-user/client.js';
import {
  COMMAND,
  DEVICE_INFO,
  ERRNO,
  HEADER,
  HEADER_FLAGS,
  encodeDeviceInfo,
  encodeDmaMap,
  encodeDmaUnmap,
  encodeIrqInfo,
  encodeIrqSet,
  encodeMessage,
  encodeRegionAccess,
  encodeRegionInfo,
  encodeVersion,
} from '../../../src/vfio-user/protocol.js';
import {
  MBC,
  MBS_COMMAND_COMPLETE,
  attachWhenFree,
  sleep,
  startHba,
  withSeed,
  type HbaUnderTest,
  type Rng,
} from './support.js';
import { openFdCount } from '../../../src/util/proc.js';

const ROUNDS = 60;
const MAX_MESSAGES_PER_ROUND = 40;
const FINAL_REQUEST_TIMEOUT_MS = 1000;
const MEMFD_SIZE = 64 * 1024;
const PAGE = 4096n;
/** Enough fds to exceed the server's max_msg_fds, few enough for one SCM_RIGHTS message. */
const MAX_FDS_PER_MESSAGE = 20;
/** Slack for fds the test runner itself may open meanwhile. */
const FD_SLACK = 8;

/** A payload for `command` with plausible structure and random fields. */
function plausiblePayload(r: Rng, command: number): Uint8Array {
  const u32 = () => (r.chance(0.5) ? r.int(64) : r.u32());
  switch (command) {
    case COMMAND.VERSION:
      return encodeVersion({
        major: r.chance(0.8) ? 0 : r.int(4),
        minor: r.int(3),
        json: r.chance(0.5) ? '{"capabilities":{"max_msg_fds":' + r.int(1000) + '}}' : '{',
      });
    case COMMAND.DMA_MAP:
      return encodeDmaMap({
        argsz: r.chance(0.8) ? 32 : u32(),
        flags: r.int(8),
        offset: BigInt(r.int(32)) * (r.chance(0.8) ? PAGE : 1n),
        address: r.chance(0.8) ? BigInt(r.int(1 << 16)) * PAGE : r.u64(),
        size: r.chance(0.8) ? BigInt(1 + r.int(32)) * PAGE : r.u64(),
      });
    case COMMAND.DMA_UNMAP:
      return encodeDmaUnmap({
        argsz: r.chance(0.8) ? 24 : u32(),
        flags: r.int(4),
        address: BigInt(r.int(1 << 16)) * PAGE,
        size: BigInt(r.int(32)) * PAGE,
      });
    case COMMAND.DEVICE_GET_INFO:
      return encodeDeviceInfo({
        argsz: r.chance(0.8) ? DEVICE_INFO.SIZEOF : u32(),
        flags: u32(),
        numRegions: u32(),
        numIrqs: u32(),
      });
    case COMMAND.DEVICE_GET_REGION_INFO:
      return encodeRegionInfo({
        argsz: r.chance(0.7) ? 32 : u32(),
        flags: u32(),
        index: r.chance(0.7) ? r.int(12) : r.u32(),
        capOffset: u32(),
        size: r.u64(),
        offset: r.u64(),
      });
    case COMMAND.DEVICE_GET_IRQ_INFO:
      return encodeIrqInfo({
        argsz: r.chance(0.8) ? 16 : u32(),
        flags: u32(),
        index: r.chance(0.8) ? r.int(8) : r.u32(),
        count: u32(),
      });
    case COMMAND.DEVICE_SET_IRQS: {
      const count = r.chance(0.8) ? r.int(8) : r.u32();
      const data = r.bytes(r.chance(0.5) ? Math.min(count, 64) : r.int(16));
      return encodeIrqSet({
        argsz: 20 + data.length + (r.chance(0.8) ? 0 : r.int(100)),
        flags: r.int(1 << 6),
        index: r.int(6),
        start: r.chance(0.8) ? r.int(8) : r.u32(),
        count,
        data,
      });
    }
    case COMMAND.REGION_READ:
    case COMMAND.REGION_WRITE: {
      const count = r.chance(0.8) ? r.pick([1, 2, 4, 8]) : r.int(5000);
      const data = command === COMMAND.REGION_WRITE ? r.bytes(r.chance(0.8) ? count : r.int(64)) : new Uint8Array(0);
      return encodeRegionAccess({
        offset: r.chance(0.8) ? BigInt(r.int(0x4000)) : r.u64(),
        region: r.chance(0.8) ? r.int(9) : r.u32(),
        count,
        data,
      });
    }
    default:
      return r.bytes(r.int(64));
  }
}

interface RandomMessage {
  bytes: Uint8Array;
  /** the header's size field equals the bytes sent and the type is a command: the stream stays in step */
  framed: boolean;
}

function randomMessage(r: Rng, id: number): RandomMessage {
  const commands = Object.values(COMMAND) as number[];
  const command = r.chance(0.85) ? r.pick(commands) : r.pick([0, 19, 100, 0xffff, r.int(0x10000)]);
  if (r.chance(0.08)) return { bytes: r.bytes(1 + r.int(200)), framed: false }; // pure noise
  let payload = plausiblePayload(r, command);
  if (r.chance(0.2)) payload = payload.subarray(0, r.int(payload.length + 1)); // truncated
  if (r.chance(0.1)) payload = new Uint8Array([...payload, ...r.bytes(1 + r.int(64))]); // extended
  if (r.chance(0.05)) {
    const b = payload.slice();
    for (let k = 0; k < 1 + r.int(4) && b.length; k++) b[r.int(b.length)] = r.u32() & 0xff;
    payload = b;
  }
  const noReply = r.chance(0.2);
  let flags = HEADER_FLAGS.TYPE_COMMAND | (noReply ? HEADER_FLAGS.NO_REPLY : 0);
  let framed = true;
  if (r.chance(0.05)) {
    flags = r.u32(); // reply type, error flag, unknown bits...
    framed =
      (flags & HEADER_FLAGS.TYPE_MASK) === HEADER_FLAGS.TYPE_COMMAND &&
      (flags & ~(HEADER_FLAGS.TYPE_MASK | HEADER_FLAGS.NO_REPLY)) === 0;
  }
  const bytes = encodeMessage({ id, command, flags }, payload);
  if (r.chance(0.07)) {
    // Lying size: smaller than the header, a bit off, or huge.
    const size = r.pick([
      0,
      1,
      HEADER.SIZEOF - 1,
      bytes.length - 1,
      bytes.length + 1 + r.int(100),
      0xffffffff,
      1 << 30,
    ]);
    new DataView(bytes.buffer, bytes.byteOffset).setUint32(HEADER.OFFSET.size, size >>> 0, true);
    framed = false;
  }
  return { bytes, framed };
}

/** 0..MAX_FDS_PER_MESSAGE fresh fds of mixed kinds (the caller closes its copies after sending). */
function randomFds(r: Rng): number[] {
  if (r.chance(0.7)) return [];
  const n = r.chance(0.7) ? 1 + r.int(2) : r.int(MAX_FDS_PER_MESSAGE + 1);
  const fds: number[] = [];
  for (let i = 0; i < n; i++)
    fds.push(r.chance(0.6) ? native.eventfd(0) : native.memfdCreate('hostile-fd', MEMFD_SIZE));
  return fds;
}

describe('hostile vfio-user peer', () => {
  let hut: HbaUnderTest;
  beforeEach(() => {
    hut = startHba();
  });
  afterEach(async () => {
    await hut.close();
  });

  it(`survives ${ROUNDS} rounds of random and mutated messages, then serves a QEMU-like attach`, async () => {
    await withSeed(0x5eed0004, async (r) => {
      const fdsBefore = openFdCount();
      let silentRounds = 0;
      let answeredRounds = 0;
      let closedRounds = 0;
      for (let round = 0; round < ROUNDS; round++) {
        const client = VfioUserClient.connect(hut.socketPath, { timeoutMs: FINAL_REQUEST_TIMEOUT_MS });
        try {
          if (r.chance(0.8)) await client.version();
          let framingIntact = true;
          const n = 1 + r.int(MAX_MESSAGES_PER_ROUND);
          for (let i = 0; i < n && !client.isClosed; i++) {
            const m = randomMessage(r, 0x8000 + i);
            framingIntact &&= m.framed;
            const fds = randomFds(r);
            try {
              client.sendRaw(m.bytes, fds);
            } finally {
              for (const fd of fds) native.close(fd);
            }
            if (r.chance(0.3)) await sleep(0);
          }
          // The last word: a well-formed request. It must be answered (reply or error) or find the socket closed.
          try {
            await client.request(
              COMMAND.DEVICE_GET_INFO,
              encodeDeviceInfo({ argsz: DEVICE_INFO.SIZEOF, flags: 0, numRegions: 0, numIrqs: 0 }),
            );
            answeredRounds++;
          } catch (err) {
            if (!(err instanceof VfioUserRequestError)) throw err;
            if (err.errno === ERRNO.ENOTCONN) closedRounds++;
            else if (err.errno === ERRNO.ETIMEDOUT) {
              if (framingIntact)
                throw new Error(`round ${round}: a well-framed stream went unanswered: ${err.message}`);
              silentRounds++;
            } else answeredRounds++;
          }
        } finally {
          client.close();
        }
        // One client at a time: let the server notice the hang-up before the next round connects.
        for (let i = 0; i < 200 && hut.hba.server.clientConnected; i++) await sleep(2);
        expect(hut.hba.server.clientConnected).toBe(false);
      }
      expect(answeredRounds).toBeGreaterThan(0);
      expect(closedRounds + silentRounds).toBeGreaterThan(0);
      expect(hut.logs.failures()).toEqual([]);

      // A new client attaches the way QEMU does and the driver probe works.
      const guest = await attachWhenFree(hut.socketPath);
      try {
        await guest.probe({ expectLink: false });
        expect((await guest.mailbox([MBC.GET_FIRMWARE_STATE])).mb[0]).toBe(MBS_COMMAND_COMPLETE);
      } finally {
        guest.close();
      }
      // Every fd the server received (DMA windows, eventfds, stray ones) was released with its session.
      let fdsAfter = openFdCount();
      for (let i = 0; i < 50 && fdsAfter > fdsBefore + FD_SLACK; i++) {
        await sleep(10);
        fdsAfter = openFdCount();
      }
      expect(fdsAfter).toBeLessThanOrEqual(fdsBefore + FD_SLACK);
      expect(hut.logs.failures()).toEqual([]);
    });
  });

  it('answers a well-framed unknown command with an error reply and keeps the session', async () => {
    const client = VfioUserClient.connect(hut.socketPath, { timeoutMs: 2000 });
    try {
      await client.version();
      await expect(client.request(0x7777, new Uint8Array(8))).rejects.toMatchObject({ errno: ERRNO.ENOTSUP });
      const info = await client.getDeviceInfo();
      expect(info.numRegions).toBeGreaterThan(7);
    } finally {
      client.close();
    }
  });
});
