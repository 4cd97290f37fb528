/**
 * A vfio-user client in another process (plain Node, no project code): connects to a socket, sends
 * one message and waits for a reply header, `rounds` times in a row, each connection dropped as
 * soon as the reply starts (or the server hangs up); optionally each preceded by a connection that
 * hangs up at once, as a readiness probe does. Optionally as another user (uid/gid), to show
 * what the server does with a local user who is not allowed. Prints one JSON line:
 * { replied, hungUp, connectErrors, bytes }.
 */
import { spawn } from 'node:child_process';

const SCRIPT = `
const net = require('node:net');
const [path, hex, rounds, probeFirst] = process.argv.slice(1);
const message = Buffer.from(hex, 'hex');
const result = { replied: 0, hungUp: 0, connectErrors: [], bytes: 0 };
// A probe: connect and hang up at once, as a readiness check does; the real client dials right after.
function probe() {
  return new Promise((resolve) => {
    const socket = net.connect(path);
    socket.on('connect', () => { socket.destroy(); resolve(); });
    socket.on('error', () => resolve());
  });
}
async function once() {
  if (probeFirst === '1') await probe();
  await new Promise((resolve) => {
    const socket = net.connect(path);
    let got = 0;
    let done = false;
    const finish = (outcome) => {
      if (done) return;
      done = true;
      socket.destroy();
      result[outcome]++;
      resolve();
    };
    socket.on('connect', () => socket.write(message));
    socket.on('data', (d) => { got += d.length; result.bytes += d.length; if (got >= 16) finish('replied'); });
    socket.on('close', () => finish('hungUp'));
    socket.on('error', (e) => { if (!done && e.code !== 'ECONNRESET' && e.code !== 'EPIPE') { result.connectErrors.push(e.code); done = true; resolve(); } });
  });
}
(async () => {
  for (let i = 0; i < Number(rounds); i++) await once();
  process.stdout.write(JSON.stringify(result) + '\\n');
})();
`;

export interface ChildClientResult {
  replied: number;
  hungUp: number;
  connectErrors: string[];
  bytes: number;
}

export interface ChildClientOptions {
  /** before each connection, one that hangs up at once (a readiness probe) */
  probeFirst?: boolean;
  /** run as this user (spawn uid/gid: supplementary groups are dropped) */
  as?: { uid: number; gid: number };
}

export function runChildClient(
  path: string,
  message: Uint8Array,
  rounds: number,
  options: ChildClientOptions = {},
): Promise<ChildClientResult> {
  const as = options.as;
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ['-e', SCRIPT, path, Buffer.from(message).toString('hex'), String(rounds), options.probeFirst ? '1' : '0'],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
        ...(as ? { uid: as.uid, gid: as.gid } : {}),
      },
    );
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (t: string) => (out += t));
    child.stderr.setEncoding('utf8').on('data', (t: string) => (err += t));
    child.once('error', reject);
    child.once('close', (code) => {
      if (code !== 0) reject(new Error(`child client exited ${code}: ${err}`));
      else resolve(JSON.parse(out) as ChildClientResult);
    });
  });
}
