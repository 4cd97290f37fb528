/**
 * A client looping a bad command: every command gets its error reply, but the server's log gets a
 * bounded number of lines (per kind and window, for all clients together) plus a count of the rest.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { VfioUserClient } from '../../../src/vfio-user/client.js';
import { ERRNO } from '../../../src/vfio-user/protocol.js';
import { VfioUserServer } from '../../../src/vfio-user/server.js';
import { RecordingDevice } from './helpers.js';

/** A command number the protocol does not define: the server answers ENOTSUP. */
const BAD_COMMAND = 77;
const BAD_COMMANDS = 10_000;
/** RateLimitedLog's default: lines per kind per window. */
const BURST = 5;

let dir: string;
let server: VfioUserServer | null = null;
let records: { msg: string; suppressed?: number; kind?: string; cmd?: string }[];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'npiv-wl-'));
  records = [];
});

afterEach(() => {
  server?.close();
  server = null;
  rmSync(dir, { recursive: true, force: true });
});

function startServer(): string {
  const path = join(dir, 'v.sock');
  const log = pino(
    { level: 'info' },
    new Writable({
      write: (chunk: Buffer, _enc, done) => {
        records.push(JSON.parse(chunk.toString()));
        done();
      },
    }),
  );
  server = new VfioUserServer({ socketPath: path, device: new RecordingDevice(), log });
  server.start();
  return path;
}

/** Sends BAD_COMMANDS bad commands on one connection; resolves with the errno of every reply. */
async function loopBadCommand(path: string, count: number): Promise<number[]> {
  const client = VfioUserClient.connect(path, { log: pino({ level: 'silent' }), timeoutMs: 30_000 });
  try {
    await client.version();
    const errnos: number[] = [];
    for (let sent = 0; sent < count; sent += 1000) {
      const batch = Array.from({ length: Math.min(1000, count - sent) }, () =>
        client.request(BAD_COMMAND, new Uint8Array(0)).then(
          () => 0,
          (err: { errno?: number }) => err.errno ?? -1,
        ),
      );
      errnos.push(...(await Promise.all(batch)));
    }
    return errnos;
  } finally {
    client.close();
  }
}

describe('warnings a vfio-user client triggers at will', () => {
  it(`${BAD_COMMANDS} bad commands: each answered with an error, at most ${BURST} log lines, then one count of the rest`, async () => {
    const path = startServer();
    const errnos = await loopBadCommand(path, BAD_COMMANDS);
    expect(errnos).toHaveLength(BAD_COMMANDS);
    expect(errnos.every((e) => e === ERRNO.ENOTSUP)).toBe(true);

    const failed = records.filter((r) => r.msg === 'vfio_user_cmd_failed');
    expect(failed).toHaveLength(BURST);
    server!.close();
    const summaries = records.filter((r) => r.msg === 'vfio_user_warnings_suppressed');
    expect(summaries).toEqual([
      expect.objectContaining({ kind: 'vfio_user_cmd_failed', suppressed: BAD_COMMANDS - BURST }),
    ]);
    // everything else the server logged: listening, connect, version, disconnect
    expect(records.length).toBeLessThan(BURST + 10);
  }, 60_000);

  it('the limit holds across reconnects: a new connection does not get a fresh allowance', async () => {
    const path = startServer();
    for (let i = 0; i < 4; i++)
      expect(await loopBadCommand(path, 3)).toEqual([ERRNO.ENOTSUP, ERRNO.ENOTSUP, ERRNO.ENOTSUP]);
    expect(records.filter((r) => r.msg === 'vfio_user_cmd_failed')).toHaveLength(BURST);
    server!.close();
    expect(records.filter((r) => r.msg === 'vfio_user_warnings_suppressed').map((r) => r.suppressed)).toEqual([
      12 - BURST,
    ]);
  });
});
