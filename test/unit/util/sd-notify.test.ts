import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { native } from '../../../src/native/index.js';
import { notifyBind, notifyReceive, notifySend } from '../../../src/native/notify.js';
import { formatNotify, resetSdNotifyForTest, sdNotify } from '../../../src/util/sd-notify.js';

const fds: number[] = [];
const dirs: string[] = [];
afterEach(() => {
  for (const fd of fds.splice(0)) native.close(fd);
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  resetSdNotifyForTest();
});

function receiver(path: string): number {
  const fd = notifyBind(path);
  fds.push(fd);
  return fd;
}

function tempSocket(): string {
  const dir = mkdtempSync(join(tmpdir(), 'sd-notify-'));
  dirs.push(dir);
  return join(dir, 'notify');
}

describe('sdNotify', () => {
  it('sends READY=1 and STATUS to a datagram socket bound at a path, and removes NOTIFY_SOCKET', () => {
    const path = tempSocket();
    const fd = receiver(path);
    const env: NodeJS.ProcessEnv = { NOTIFY_SOCKET: path };
    expect(sdNotify({ ready: true, status: 'serving 50:01\non x' }, env)).toBe(true);
    expect(notifyReceive(fd)).toBe('READY=1\nSTATUS=serving 50:01 on x');
    // children must not inherit the socket, but this process keeps using it
    expect(env.NOTIFY_SOCKET).toBeUndefined();
    expect(sdNotify({ stopping: true }, env)).toBe(true);
    expect(notifyReceive(fd)).toBe('STOPPING=1');
    expect(notifyReceive(fd)).toBeNull();
  });

  it('reaches a socket in the abstract namespace (@name), as systemd uses', () => {
    const name = `@npiv-hba-test-${process.pid}-${Date.now()}`;
    const fd = receiver(name);
    expect(sdNotify({ ready: true }, { NOTIFY_SOCKET: name })).toBe(true);
    expect(notifyReceive(fd)).toBe('READY=1');
  });

  it('does nothing without NOTIFY_SOCKET', () => {
    expect(sdNotify({ ready: true }, {})).toBe(false);
  });

  it('reports a socket nobody listens on as not sent, without throwing', () => {
    expect(sdNotify({ ready: true }, { NOTIFY_SOCKET: tempSocket() })).toBe(false);
  });

  it('formats one assignment per line', () => {
    expect(formatNotify({ ready: true, stopping: false, status: 'a\r\nb' })).toBe('READY=1\nSTATUS=a b');
    expect(formatNotify({})).toBe('');
  });

  it('the shim refuses relative names and reports ECONNREFUSED for a dead socket', () => {
    expect(() => notifySend('relative', 'READY=1')).toThrow(/absolute path/);
    const path = tempSocket();
    native.close(notifyBind(path));
    expect(() => notifySend(path, 'READY=1')).toThrow(/ECONNREFUSED/);
  });
});
