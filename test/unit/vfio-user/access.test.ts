/**
 * Who may use the vfio-user socket (docs/security.md): the socket file's mode does not
 * follow the umask, its directory is created private and refused when others can write to it, and
 * a connection from a uid that is not allowed is closed before anything it sent is read — shown
 * with a client running as `nobody` in another process.
 */
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { VfioUserServer } from '../../../src/vfio-user/server.js';
import {
  COMMAND,
  PROTOCOL_MAJOR,
  PROTOCOL_MINOR,
  encodeCommand,
  encodeVersion,
} from '../../../src/vfio-user/protocol.js';
import type { SocketAccess } from '../../../src/util/private-socket.js';
import { RecordingDevice } from './helpers.js';
import { runChildClient } from '../../support/child-client.js';

const NOBODY = { uid: 65534, gid: 65534 };
const isRoot = process.getuid?.() === 0;

const version = encodeCommand(
  1,
  COMMAND.VERSION,
  encodeVersion({ major: PROTOCOL_MAJOR, minor: PROTOCOL_MINOR, json: undefined }),
);

let dir: string;
let server: VfioUserServer | null = null;
let lines: string[];

function capturingLog() {
  lines = [];
  return pino(
    { level: 'info' },
    new Writable({
      write: (chunk: Buffer, _enc, done) => {
        lines.push(chunk.toString());
        done();
      },
    }),
  );
}

function startServer(path: string, access?: SocketAccess): { server: VfioUserServer; connects: () => number } {
  let connects = 0;
  const s = new VfioUserServer({
    socketPath: path,
    device: new RecordingDevice(),
    log: capturingLog(),
    ...(access ? { access } : {}),
  });
  s.on('connect', () => connects++);
  s.start();
  server = s;
  return { server: s, connects: () => connects };
}

const mode = (path: string): number => statSync(path).mode & 0o7777;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'npiv-acc-'));
  // Others may enter (not write): the socket file's own mode and the peer check are what is tested.
  chmodSync(dir, 0o755);
});

afterEach(() => {
  server?.close();
  server = null;
  rmSync(dir, { recursive: true, force: true });
});

describe('the vfio-user socket file', () => {
  it('is 0600 even under umask 000, in a directory it creates 0700', () => {
    const old = process.umask(0);
    try {
      const path = join(dir, 'run', 'v.sock');
      startServer(path);
      expect(mode(path)).toBe(0o600);
      expect(mode(join(dir, 'run'))).toBe(0o700);
    } finally {
      process.umask(old);
    }
  });

  it('is 0660 and group-owned with a socket group; its new directory 0750 and group-owned', () => {
    const old = process.umask(0);
    try {
      const path = join(dir, 'run', 'v.sock');
      startServer(path, { group: NOBODY.gid });
      expect(mode(path)).toBe(0o660);
      expect(statSync(path).gid).toBe(NOBODY.gid);
      expect(mode(join(dir, 'run'))).toBe(0o750);
      expect(statSync(join(dir, 'run')).gid).toBe(NOBODY.gid);
    } finally {
      process.umask(old);
    }
  });

  it('is refused in a directory other users can write to, or one another user owns', () => {
    const open = join(dir, 'open');
    mkdirSync(open);
    chmodSync(open, 0o777);
    expect(() => startServer(join(open, 'v.sock'))).toThrow(/writable by other users \(mode 0777\)/);
    if (isRoot) {
      const theirs = join(dir, 'theirs');
      mkdirSync(theirs, { mode: 0o755 });
      chownSync(theirs, NOBODY.uid, NOBODY.gid);
      expect(() => startServer(join(theirs, 'v.sock'))).toThrow(/belongs to uid 65534/);
    }
  });
});

describe.runIf(isRoot)('a local user who is not allowed (a client running as nobody)', () => {
  it('cannot connect through the file mode (EACCES)', async () => {
    const path = join(dir, 'v.sock');
    const { connects } = startServer(path);
    const result = await runChildClient(path, version, 1, { as: NOBODY });
    expect(result.connectErrors).toEqual(['EACCES']);
    expect(connects()).toBe(0);
  });

  it('is closed without an answer when the file mode lets it in: SO_PEERCRED is checked on accept', async () => {
    const path = join(dir, 'v.sock');
    const { server: s, connects } = startServer(path);
    chmodSync(path, 0o666); // as if someone loosened the mode
    const result = await runChildClient(path, version, 3, { as: NOBODY });
    expect(result).toEqual({ replied: 0, hungUp: 3, connectErrors: [], bytes: 0 });
    expect(connects()).toBe(0);
    expect(s.clientConnected).toBe(false);
    expect(lines.filter((l) => l.includes('"event":"connection_refused"') && l.includes('"uid":65534'))).toHaveLength(
      3,
    );
    // The owner is still served afterwards.
    expect((await runChildClient(path, version, 1)).replied).toBe(1);
  });

  it('is served when it is the configured socket owner, or in the configured socket group', async () => {
    const owned = join(dir, 'o.sock');
    startServer(owned, { owner: NOBODY.uid });
    expect(statSync(owned).uid).toBe(NOBODY.uid);
    expect(mode(owned)).toBe(0o600);
    expect((await runChildClient(owned, version, 2, { as: NOBODY })).replied).toBe(2);
    server!.close();

    const grouped = join(dir, 'g.sock');
    startServer(grouped, { group: NOBODY.gid });
    expect((await runChildClient(grouped, version, 2, { as: NOBODY })).replied).toBe(2);
  });
});
