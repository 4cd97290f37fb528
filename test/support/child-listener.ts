/**
 * A Unix socket listener in another process (plain Node, no project code), optionally as another
 * user: what a local user squatting a socket path looks like. It counts connections and the bytes
 * they send; stop() ends it and returns the counts.
 */
import { spawn } from 'node:child_process';

const SCRIPT = `
const net = require('node:net');
const [path] = process.argv.slice(1);
const seen = { connections: 0, bytes: 0 };
const server = net.createServer((socket) => {
  seen.connections++;
  socket.on('data', (d) => { seen.bytes += d.length; });
  socket.on('error', () => {});
});
server.listen(path, () => process.stdout.write('ready\\n'));
process.on('SIGTERM', () => { process.stdout.write(JSON.stringify(seen) + '\\n'); process.exit(0); });
`;

export interface ChildListener {
  /** Ends the listener; the connections it accepted and the bytes they carried. */
  stop(): Promise<{ connections: number; bytes: number }>;
}

export function startChildListener(path: string, as?: { uid: number; gid: number }): Promise<ChildListener> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', SCRIPT, path], {
      stdio: ['ignore', 'pipe', 'pipe'],
      ...(as ? { uid: as.uid, gid: as.gid } : {}),
    });
    let out = '';
    let err = '';
    const exited = new Promise<void>((done) => child.once('close', () => done()));
    child.stderr.setEncoding('utf8').on('data', (t: string) => (err += t));
    child.once('error', reject);
    child.stdout.setEncoding('utf8').on('data', (t: string) => {
      out += t;
      if (out === 'ready\n') {
        resolve({
          async stop() {
            child.kill('SIGTERM');
            await exited;
            const last = out.trim().split('\n').at(-1) ?? '';
            return JSON.parse(last) as { connections: number; bytes: number };
          },
        });
      }
    });
    void exited.then(() => {
      if (!out.startsWith('ready')) reject(new Error(`child listener exited before listening: ${err}`));
    });
  });
}
