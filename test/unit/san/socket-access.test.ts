/**
 * Who may use the SAN's sockets (docs/security.md): a link or control connection from a
 * uid that is not allowed is closed before a byte is read (shown with a client running as `nobody`
 * in another process, the file mode loosened so that only the SO_PEERCRED check stands in the
 * way), one uid cannot hold more than its cap of connections, and a port or `san ctl` never sends
 * a byte to a socket another user put at the path.
 */
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseSanConfig } from '../../../src/san/config.js';
import { ControlServer, controlRequest } from '../../../src/san/control.js';
import { encodeLinkFrame, connectLink, type SocketLink } from '../../../src/fc/link.js';
import { LinkListener } from '../../../src/san/link-listener.js';
import { San } from '../../../src/san/san.js';
import { runChildClient } from '../../support/child-client.js';
import { startChildListener } from '../../support/child-listener.js';
import { until } from './helpers.js';

const NOBODY = { uid: 65534, gid: 65534 };
const isRoot = process.getuid?.() === 0;
/** Any well-formed link frame (a 24-byte header and a 4-byte payload): what a FLOGI would be. */
const FRAME = encodeLinkFrame(new Uint8Array(28).fill(0x22, 0, 1));

let dir: string;
let lines: string[];
const closers: (() => Promise<void> | void)[] = [];

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

const refusals = (uid: number) =>
  lines.filter((l) => l.includes('"event":"connection_refused"') && l.includes(`"uid":${uid}`));

function connect(path: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect(path);
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}

function closed(s: net.Socket): Promise<void> {
  return new Promise((resolve) => (s.destroyed ? resolve() : s.once('close', () => resolve())));
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'npiv-sanacc-'));
  chmodSync(dir, 0o755);
});

afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
  rmSync(dir, { recursive: true, force: true });
});

describe('the SAN link listener', () => {
  it('creates its socket 0600 under umask 000', async () => {
    const old = process.umask(0);
    try {
      const path = join(dir, 'run', 'l.sock');
      const listener = await LinkListener.listen(path, (l) => l.close());
      closers.push(() => listener.close());
      expect(statSync(path).mode & 0o777).toBe(0o600);
      expect(statSync(join(dir, 'run')).mode & 0o777).toBe(0o700);
    } finally {
      process.umask(old);
    }
  });

  it.runIf(isRoot)('closes a link from a uid that is not allowed before reading a frame', async () => {
    const path = join(dir, 'l.sock');
    const links: SocketLink[] = [];
    const listener = await LinkListener.listen(path, (l) => links.push(l), { log: capturingLog() });
    closers.push(() => listener.close());
    chmodSync(path, 0o666); // only the peer check stands in the way
    const result = await runChildClient(path, FRAME, 3, { as: NOBODY });
    expect(result).toEqual({ replied: 0, hungUp: 3, connectErrors: [], bytes: 0 });
    expect(links).toHaveLength(0);
    expect(refusals(NOBODY.uid)).toHaveLength(3);
  });

  it.runIf(isRoot)('admits members of the socket group', async () => {
    const path = join(dir, 'l.sock');
    const links: SocketLink[] = [];
    const admit = (l: SocketLink): void => {
      links.push(l);
      l.close('test fabric hangs up'); // the child client then stops waiting
    };
    const listener = await LinkListener.listen(path, admit, { access: { group: NOBODY.gid }, log: capturingLog() });
    closers.push(() => listener.close());
    expect(statSync(path).mode & 0o777).toBe(0o660);
    expect(statSync(path).gid).toBe(NOBODY.gid);
    await runChildClient(path, FRAME, 1, { as: NOBODY });
    expect(links).toHaveLength(1);
    expect(refusals(NOBODY.uid)).toHaveLength(0);
  });

  it('caps the links one uid holds; a slot frees when a link closes', async () => {
    const path = join(dir, 'l.sock');
    const links: SocketLink[] = [];
    const listener = await LinkListener.listen(path, (l) => links.push(l), { maxPerUid: 2, log: capturingLog() });
    closers.push(() => listener.close());
    const a = await connect(path);
    const b = await connect(path);
    await until(() => links.length === 2, 'two links');
    const c = await connect(path);
    await closed(c);
    expect(links).toHaveLength(2);
    expect(lines.some((l) => l.includes('"limit":2'))).toBe(true);
    a.destroy();
    await until(() => !links[0]!.isUp, 'first link down');
    const d = await connect(path);
    await until(() => links.length === 3, 'a third link after one closed');
    b.destroy();
    d.destroy();
  });
});

describe.runIf(isRoot)('a link socket squatted by another user', () => {
  it('gets no frame: connectLink refuses it before handing out the link', async () => {
    const shared = join(dir, 'shared');
    mkdirSync(shared, { mode: 0o755 });
    chownSync(shared, NOBODY.uid, NOBODY.gid);
    const path = join(shared, 'l.sock');
    const squatter = await startChildListener(path, NOBODY);
    await expect(connectLink(path)).rejects.toThrow(/served by uid 65534 .*--san-owner 65534/);
    const seen = await squatter.stop();
    expect(seen.connections).toBe(1);
    expect(seen.bytes).toBe(0);
  });

  it('is used when its owner is allowed explicitly', async () => {
    const shared = join(dir, 'shared');
    mkdirSync(shared, { mode: 0o755 });
    chownSync(shared, NOBODY.uid, NOBODY.gid);
    const path = join(shared, 'l.sock');
    const squatter = await startChildListener(path, NOBODY);
    const link = await connectLink(path, { allowedUids: [NOBODY.uid] });
    link.send(new Uint8Array(28));
    await new Promise((r) => setTimeout(r, 50));
    link.close();
    expect((await squatter.stop()).bytes).toBe(4 + 28);
  });
});

describe('the SAN control socket', () => {
  async function startControl(options: Parameters<typeof ControlServer.listen>[3] = {}): Promise<string> {
    const san = await San.start(parseSanConfig({ fabric: { name: 'f', domain: 2 }, arrays: [] }));
    closers.push(() => san.close());
    const path = join(dir, 'c.sock');
    const control = await ControlServer.listen(san, path, capturingLog(), options);
    closers.push(() => control.close());
    return path;
  }

  it.runIf(isRoot)('closes a connection from a uid that is not allowed without running its command', async () => {
    const path = await startControl();
    expect(statSync(path).mode & 0o777).toBe(0o600);
    chmodSync(path, 0o666);
    const result = await runChildClient(path, Buffer.from('{"cmd":"status"}\n'), 2, { as: NOBODY });
    expect(result).toEqual({ replied: 0, hungUp: 2, connectErrors: [], bytes: 0 });
    expect(refusals(NOBODY.uid)).toHaveLength(2);
    // This user is still served.
    expect((await controlRequest(path, { cmd: 'status' })).ok).toBe(true);
  });

  it('caps the connections one uid holds', async () => {
    const path = await startControl({ maxPerUid: 1 });
    const held = await connect(path);
    const refused = await connect(path);
    await closed(refused);
    expect(lines.some((l) => l.includes('"limit":1'))).toBe(true);
    held.destroy();
    await closed(held);
    // The server sees the hang-up on a later turn; then the slot is free again.
    await new Promise((r) => setTimeout(r, 50));
    expect((await controlRequest(path, { cmd: 'status' })).ok).toBe(true);
  });

  it.runIf(isRoot)('san ctl sends nothing to a control socket another user put in place', async () => {
    const shared = join(dir, 'shared');
    mkdirSync(shared, { mode: 0o755 });
    chownSync(shared, NOBODY.uid, NOBODY.gid);
    const path = join(shared, 'c.sock');
    const squatter = await startChildListener(path, NOBODY);
    await expect(controlRequest(path, { cmd: 'status' })).rejects.toThrow(/served by uid 65534/);
    expect((await squatter.stop()).bytes).toBe(0);
  });
});
