/** One request on a running SAN's control socket (JSON lines; src/san/control.ts). */
import net from 'node:net';

const CONTROL_TIMEOUT_MS = 5000;

export function sanControl(path: string, request: Record<string, unknown>): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ path });
    let buffer = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`SAN control ${String(request.cmd)}: no answer in ${CONTROL_TIMEOUT_MS} ms`));
    }, CONTROL_TIMEOUT_MS);
    socket.setEncoding('utf8');
    socket.on('connect', () => socket.write(JSON.stringify(request) + '\n'));
    socket.on('data', (chunk: string) => {
      buffer += chunk;
      const nl = buffer.indexOf('\n');
      if (nl < 0) return;
      clearTimeout(timer);
      socket.end();
      try {
        const answer = JSON.parse(buffer.slice(0, nl)) as { ok?: boolean; result?: unknown; error?: string };
        if (answer.ok) resolve(answer.result);
        else reject(new Error(`SAN control ${String(request.cmd)}: ${answer.error ?? 'failed'}`));
      } catch (err) {
        reject(err as Error);
      }
    });
    socket.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

/** Frames the fabric switch has forwarded so far. */
export async function framesForwarded(path: string): Promise<number> {
  const status = (await sanControl(path, { cmd: 'status' })) as { fabric?: { stats?: { forwarded?: unknown } } };
  const n = status.fabric?.stats?.forwarded;
  if (typeof n !== 'number') throw new Error('SAN status without fabric.stats.forwarded');
  return n;
}
