/**
 * Property tests with a seeded generator (deterministic): hostile message streams never make
 * the framer or the dispatcher throw, every reply is well formed, No_reply is honoured, and
 * every fd a client sent is eventually stored or closed — none leak after disconnect.
 */
import { describe, expect, it } from 'vitest';
import { MessageFramer } from '../../../src/vfio-user/framer.js';
import { VfioUserSession } from '../../../src/vfio-user/session.js';
import {
  COMMAND,
  HEADER,
  HEADER_FLAGS,
  decodeHeader,
  encodeCommand,
  encodeDmaMap,
  encodeDmaUnmap,
  encodeIrqSet,
  encodeRegionAccess,
  encodeVersion,
} from '../../../src/vfio-user/protocol.js';
import { FakeNative, FakeWatcher, RecordingDevice, command, silentLog } from './helpers.js';
import { mulberry32 } from '../../support/rng.js';

describe('dispatcher under random hostile messages', () => {
  it.each([1, 2, 3, 4, 5])('seed %i: never throws, replies are well formed, no fd leaks', (seed) => {
    const rand = mulberry32(seed);
    const int = (n: number) => Math.floor(rand() * n);
    const bytes = (n: number) => Uint8Array.from({ length: n }, () => int(256));
    const native = new FakeNative();
    const device = new RecordingDevice();
    const session = new VfioUserSession({ device, native, watch: new FakeWatcher().watch, log: silentLog });
    session.handle(command(0, COMMAND.VERSION, encodeVersion({ major: 0, minor: 0, json: '{}' })));

    // Plausible-looking payloads get deeper into the handlers than pure noise does.
    const maps: { address: bigint; size: bigint }[] = [];
    const structured = (cmd: number): Uint8Array => {
      switch (cmd) {
        case COMMAND.DMA_MAP: {
          const m = { address: BigInt(int(64)) * 0x1000n, size: BigInt(int(8)) * 0x1000n };
          maps.push(m);
          return encodeDmaMap({
            argsz: rand() < 0.8 ? 32 : int(64),
            flags: int(8),
            offset: BigInt(int(4)) * 0x1000n,
            ...m,
          });
        }
        case COMMAND.DMA_UNMAP: {
          const m = maps[int(maps.length)] ?? { address: 0n, size: 0n };
          const all = rand() < 0.1;
          return encodeDmaUnmap({
            argsz: 24,
            flags: all ? 2 : int(4) === 0 ? int(4) : 0,
            address: all ? 0n : m.address,
            size: all ? 0n : m.size,
          });
        }
        case COMMAND.DEVICE_SET_IRQS: {
          const count = int(6);
          const flags = (1 << int(3)) | (8 << int(3)) | (rand() < 0.1 ? 0x40 : 0);
          const data = flags & 2 ? bytes(count) : new Uint8Array(0);
          return encodeIrqSet({ argsz: 20 + data.length, flags, index: int(6), start: int(5), count, data });
        }
        case COMMAND.REGION_READ:
        case COMMAND.REGION_WRITE: {
          const count = int(300);
          return encodeRegionAccess({
            offset: BigInt(int(300)),
            region: int(10),
            count,
            data: cmd === COMMAND.REGION_WRITE ? bytes(rand() < 0.9 ? count : int(300)) : new Uint8Array(0),
          });
        }
        default:
          return bytes(int(48));
      }
    };

    const succeeded = new Map<number, number>();
    for (let i = 0; i < 3000; i++) {
      const cmd = rand() < 0.9 ? 1 + int(18) : int(0x10000);
      const payload = rand() < 0.7 ? structured(cmd) : bytes(int(64));
      const fds = Array.from({ length: rand() < 0.5 ? 0 : int(4) }, () => native.fd(0x10000));
      const flags = rand() < 0.2 ? HEADER_FLAGS.NO_REPLY : rand() < 0.05 ? int(0x100) & ~HEADER_FLAGS.TYPE_MASK : 0;
      const id = int(0x10000);
      const result = session.handle(command(id, cmd, payload, fds, flags));
      if (flags & HEADER_FLAGS.NO_REPLY) {
        expect(result.reply).toBeNull();
        continue;
      }
      const reply = result.reply!;
      const h = decodeHeader(reply);
      expect(h.size).toBe(reply.length);
      expect(h.id).toBe(id);
      expect(h.command).toBe(cmd);
      expect(h.flags & HEADER_FLAGS.TYPE_MASK).toBe(HEADER_FLAGS.TYPE_REPLY);
      if (h.flags & HEADER_FLAGS.ERROR) {
        expect(reply.length).toBe(HEADER.SIZEOF);
        expect(h.error).toBeGreaterThan(0);
      } else {
        succeeded.set(cmd, (succeeded.get(cmd) ?? 0) + 1);
      }
      // Interrupts the device might raise meanwhile never throw either.
      session.irqs.trigger(int(5) as 0, int(6));
    }
    // The generator must reach the handlers' success paths, not just their first checks.
    for (const cmd of [
      COMMAND.DMA_MAP,
      COMMAND.DMA_UNMAP,
      COMMAND.DEVICE_SET_IRQS,
      COMMAND.REGION_READ,
      COMMAND.REGION_WRITE,
    ]) {
      expect(succeeded.get(cmd) ?? 0, `successful ${cmd}`).toBeGreaterThan(0);
    }
    expect(native.mmaps.length).toBeGreaterThan(0);
    session.end();
    expect(native.open.size).toBe(0);
    expect(native.munmapped).toHaveLength(native.mmaps.length);
  });
});

describe('framer under random streams', () => {
  it.each([11, 12, 13])('seed %i: never throws; stops at the first bad header; no fd lost', (seed) => {
    const rand = mulberry32(seed);
    const int = (n: number) => Math.floor(rand() * n);
    let totalDelivered = 0;
    for (let round = 0; round < 200; round++) {
      const framer = new MessageFramer({ maxMessageSize: 256, maxFdsPerMessage: 4, accept: 'command' });
      // Valid messages, then (usually) garbage somewhere among them.
      const parts: Uint8Array[] = [];
      for (let k = int(8); k > 0; k--)
        parts.push(
          encodeCommand(
            int(0x10000),
            int(20),
            Uint8Array.from({ length: int(240) }, () => int(256)),
          ),
        );
      if (rand() < 0.8)
        parts.splice(
          int(parts.length + 1),
          0,
          Uint8Array.from({ length: 1 + int(64) }, () => int(256)),
        );
      const stream = Uint8Array.from(parts.flatMap((p) => [...p]));
      let delivered = 0;
      let fdsIn = 0;
      let fdsOut = 0;
      let nextFd = 0;
      for (let at = 0; at < stream.length; ) {
        const n = 1 + int(40);
        const fds = rand() < 0.2 ? [nextFd++] : [];
        fdsIn += fds.length;
        const out = framer.push(stream.subarray(at, at + n), fds);
        at += n;
        for (const m of out.messages) {
          expect(m.header.size).toBeGreaterThanOrEqual(16);
          expect(m.header.size).toBeLessThanOrEqual(256);
          expect(m.payload.length).toBe(m.header.size - 16);
          fdsOut += m.fds.length;
          delivered++;
        }
        if (out.error) expect(framer.push(new Uint8Array(4)).error?.kind).toBe('dead');
      }
      fdsOut += framer.takePendingFds().length;
      expect(fdsOut).toBe(fdsIn);
      totalDelivered += delivered;
    }
    // Random headers occasionally frame valid-sized messages; make sure that path ran.
    expect(totalDelivered).toBeGreaterThan(0);
  });
});
