/**
 * The in-repo client against a scripted server on a socketpair: QEMU's argsz re-query for
 * region info, SET_IRQS eventfd chunking, id matching of out-of-order replies, QEMU's checks
 * on the VERSION reply, error replies, timeouts and disconnects.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { native } from '../../../src/native/index.js';
import { VfioUserClient, VfioUserRequestError } from '../../../src/vfio-user/client.js';
import { MessageChannel } from '../../../src/vfio-user/transport.js';
import type { FramedMessage } from '../../../src/vfio-user/framer.js';
import {
  COMMAND,
  ERRNO,
  decodeIrqSet,
  decodeRegionInfo,
  encodeErrorReply,
  encodeRegionInfo,
  encodeReply,
  encodeVersion,
} from '../../../src/vfio-user/protocol.js';
import { silentLog } from './helpers.js';
import {
  VFIO_IRQ_SET_ACTION_TRIGGER,
  VFIO_IRQ_SET_DATA_EVENTFD,
  VFIO_REGION_INFO_FLAG_CAPS,
  VFIO_REGION_INFO_FLAG_READ,
} from '../../../src/device/linux-vfio.js';

type Responder = (msg: FramedMessage, server: MessageChannel) => void;

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0).reverse()) c();
});

/** A client connected to a scripted server; `received` lists what the server got. */
function pair(respond: Responder, timeoutMs = 5000) {
  const [a, b] = native.socketPair();
  const received: FramedMessage[] = [];
  const ownedFds: number[] = [];
  const server: MessageChannel = new MessageChannel({
    fd: b,
    native,
    framer: { maxMessageSize: 1 << 21, maxFdsPerMessage: 16, accept: 'command' },
    log: silentLog,
    onMessage: (msg) => {
      received.push(msg);
      ownedFds.push(...msg.fds);
      respond(msg, server);
    },
    onClose: () => undefined,
  });
  const client = new VfioUserClient(a, { timeoutMs, log: silentLog });
  cleanups.push(() => {
    client.close();
    server.close('test over');
    for (const fd of ownedFds) native.close(fd);
  });
  return { client, server, received };
}

function versionReply(json: string | undefined, minor = 0): Uint8Array {
  return encodeVersion({ major: 0, minor, json });
}

/** Answers VERSION with the given JSON and everything else with an empty reply. */
function basicResponder(json = '{"capabilities":{"max_msg_fds":4}}'): Responder {
  return (msg, server) => {
    if (msg.header.command === COMMAND.VERSION)
      server.send(encodeReply(msg.header.id, msg.header.command, versionReply(json)));
    else server.send(encodeReply(msg.header.id, msg.header.command));
  };
}

describe('VfioUserClient', () => {
  it("re-queries region info with the argsz the server asked for (QEMU's convention)", async () => {
    const caps = Uint8Array.from({ length: 16 }, (_, i) => i + 1);
    const { client, received } = pair((msg, server) => {
      const req = decodeRegionInfo(msg.payload);
      const info = encodeRegionInfo({
        argsz: 48,
        flags: VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_CAPS,
        index: req.index,
        capOffset: 32,
        size: 0x1000n,
        offset: 0n,
      });
      const payload = req.argsz >= 48 ? Uint8Array.of(...info, ...caps) : info;
      server.send(encodeReply(msg.header.id, msg.header.command, payload));
    });
    const info = await client.getRegionInfo(3);
    expect(received.map((m) => decodeRegionInfo(m.payload).argsz)).toEqual([32, 48]);
    expect(info).toMatchObject({ index: 3, argsz: 48, capOffset: 32, size: 0x1000n, fd: null });
    expect([...info.caps]).toEqual([...caps]);
  });

  it("chunks SET_IRQS eventfds to the server's max_msg_fds, splitting runs of valid and -1 fds", async () => {
    const { client, received } = pair(basicResponder('{"capabilities":{"max_msg_fds":4}}'));
    await client.version();
    const efds = Array.from({ length: 6 }, () => client.createEventfd());
    const fds = [efds[0]!, efds[1]!, efds[2]!, efds[3]!, efds[4]!, -1, -1, efds[5]!];
    await client.setIrqs({
      index: 2,
      flags: VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
      start: 0,
      count: 8,
      fds,
    });
    const sets = received.filter((m) => m.header.command === COMMAND.DEVICE_SET_IRQS);
    expect(
      sets.map((m) => [
        decodeIrqSet(m.payload).start,
        decodeIrqSet(m.payload).count,
        m.fds.length,
        decodeIrqSet(m.payload).argsz,
      ]),
    ).toEqual([
      [0, 4, 4, 20],
      [4, 1, 1, 20],
      [5, 2, 0, 20],
      [7, 1, 1, 20],
    ]);
  });

  it('matches replies to requests by id, whatever the order they come back in', async () => {
    const held: FramedMessage[] = [];
    const { client } = pair((msg, server) => {
      if (msg.header.command === COMMAND.VERSION) {
        server.send(encodeReply(msg.header.id, msg.header.command, versionReply('{}')));
        return;
      }
      held.push(msg);
      if (held.length === 2) {
        for (const m of held.reverse()) {
          const region = m.payload[8]!;
          server.send(
            encodeReply(
              m.header.id,
              m.header.command,
              Uint8Array.of(...m.payload.subarray(0, 12), 1, 0, 0, 0, region * 10),
            ),
          );
        }
      }
    });
    await client.version();
    const [a, b] = await Promise.all([client.regionRead(1, 0, 1), client.regionRead(2, 0, 1)]);
    expect([a[0], b[0]]).toEqual([10, 20]);
  });

  it('turns an error reply into VfioUserRequestError with the errno', async () => {
    const { client } = pair((msg, server) =>
      server.send(encodeErrorReply(msg.header.id, msg.header.command, ERRNO.EEXIST)),
    );
    const err = await client.dmaMap({ address: 0n, size: 0x1000n }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(VfioUserRequestError);
    expect(err).toMatchObject({ errno: ERRNO.EEXIST, command: COMMAND.DMA_MAP });
  });

  it('rejects a reply carrying another command', async () => {
    const { client } = pair((msg, server) => server.send(encodeReply(msg.header.id, COMMAND.DMA_UNMAP)));
    await expect(client.reset()).rejects.toMatchObject({ errno: ERRNO.EINVAL });
  });

  it.each([
    ['a minor above 0', versionReply('{}', 1), /incompatible server version/],
    ['JSON without its NUL', versionReply('{}').subarray(0, 6), /NUL/],
    ['max_msg_fds above 16', versionReply('{"capabilities":{"max_msg_fds":17}}'), /exceed/],
    ['max_data_xfer_size above 64 MiB', versionReply('{"capabilities":{"max_data_xfer_size":67108865}}'), /exceed/],
  ])("applies QEMU's checks to the VERSION reply: %s", async (_what, payload, message) => {
    const { client } = pair((msg, server) => server.send(encodeReply(msg.header.id, msg.header.command, payload)));
    await expect(client.version()).rejects.toThrow(message);
  });

  it.each([
    ['no JSON', undefined, 8],
    ['JSON without max_msg_fds', '{"capabilities":{}}', 8],
    ['max_msg_fds 2', '{"capabilities":{"max_msg_fds":2}}', 2],
  ])("takes the server's max_msg_fds like QEMU (%s)", async (_what, json, expected) => {
    const { client } = pair((msg, server) =>
      server.send(encodeReply(msg.header.id, msg.header.command, versionReply(json))),
    );
    expect((await client.version()).server.maxMsgFds).toBe(expected);
  });

  it('times out a request the server never answers', async () => {
    const { client } = pair(() => undefined, 50);
    await expect(client.reset()).rejects.toMatchObject({ errno: ERRNO.ETIMEDOUT });
  });

  it('fails pending and later requests with ENOTCONN when the server goes away', async () => {
    const { client, server } = pair(() => server.close('gone'));
    await expect(client.reset()).rejects.toMatchObject({ errno: ERRNO.ENOTCONN });
    await client.closed();
    await expect(client.getDeviceInfo()).rejects.toMatchObject({ errno: ERRNO.ENOTCONN });
  });
});
