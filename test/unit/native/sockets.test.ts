/**
 * Native shim: AF_UNIX stream sockets and SCM_RIGHTS fd passing, over real sockets.
 */
import { constants as osConstants } from 'node:os';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, afterEach, describe, expect, it } from 'vitest';

import { native, NativeError, type RecvResult } from '../../../src/native/index.js';
import { FdTracker, fdFlags } from './helpers.js';
import { O_CLOEXEC, O_NONBLOCK } from '../../../src/util/proc.js';

const fds = new FdTracker();
afterEach(() => fds.closeAll());

const dir = mkdtempSync(join(tmpdir(), 'npiv-native-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const PAGE = 4096;
const encoder = new TextEncoder();

function pair(): [number, number] {
  return fds.add(native.socketPair());
}

function recvOrFail(fd: number, buf: Uint8Array, maxFds: number): RecvResult {
  const result = native.recvmsg(fd, buf, 0, buf.length, maxFds);
  if (result === null) throw new Error('expected data, got EAGAIN');
  fds.add(result.fds);
  return result;
}

function expectNativeError(operation: () => unknown, code: string, syscall: string): NativeError {
  let caught: unknown;
  try {
    operation();
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(NativeError);
  const error = caught as NativeError;
  expect(error.code).toBe(code);
  expect(error.errno).toBe((osConstants.errno as Record<string, number>)[code]);
  expect(error.syscall).toBe(syscall);
  return error;
}

describe('socketPair / sendmsg / recvmsg', () => {
  it('creates non-blocking, close-on-exec sockets', () => {
    for (const fd of pair()) {
      expect(fdFlags(fd) & O_NONBLOCK).toBe(O_NONBLOCK);
      expect(fdFlags(fd) & O_CLOEXEC).toBe(O_CLOEXEC);
    }
  });

  it('moves bytes into buf[offset..offset+length)', () => {
    const [a, b] = pair();
    expect(native.sendmsg(a, encoder.encode('hello'), [])).toBe(5);
    const buf = new Uint8Array(16).fill(0xee);
    const result = native.recvmsg(b, buf, 4, 3, 0);
    expect(result).toEqual({ bytes: 3, fds: [], ctrunc: false });
    expect([...buf.subarray(0, 8)]).toEqual([0xee, 0xee, 0xee, 0xee, 0x68, 0x65, 0x6c, 0xee]);
    expect(native.recvmsg(b, buf, 0, 16, 0)?.bytes).toBe(2); // "lo" is still queued
  });

  it('returns null (EAGAIN) when nothing is queued', () => {
    const [, b] = pair();
    expect(native.recvmsg(b, new Uint8Array(8), 0, 8, 4)).toBeNull();
  });

  it('reports peer close as bytes 0', () => {
    const [a, b] = pair();
    fds.close(b);
    expect(native.recvmsg(a, new Uint8Array(8), 0, 8, 4)).toEqual({ bytes: 0, fds: [], ctrunc: false });
  });

  it('throws EPIPE (not SIGPIPE) when sending to a closed peer', () => {
    const [a, b] = pair();
    fds.close(b);
    expectNativeError(() => native.sendmsg(a, encoder.encode('x'), []), 'EPIPE', 'sendmsg');
  });

  it('returns short counts for a partial write and null once the socket is full', () => {
    const [a, b] = pair();
    // Far larger than any default socket buffer (net.core.wmem_default is ~208 KiB).
    const big = new Uint8Array(8 << 20);
    for (let i = 0; i < big.length; i++) big[i] = (i * 7) & 0xff;
    const sent = native.sendmsg(a, big, []);
    expect(sent).not.toBeNull();
    expect(sent!).toBeGreaterThan(0);
    expect(sent!).toBeLessThan(big.length);
    expect(native.sendmsg(a, big.subarray(sent!), [])).toBeNull();

    // Everything written arrives, in order.
    const got = new Uint8Array(sent!);
    let filled = 0;
    for (let reads = 0; filled < sent! && reads < 10_000; reads++) {
      const result = native.recvmsg(b, got, filled, got.length - filled, 0);
      if (result === null) break;
      filled += result.bytes;
    }
    expect(filled).toBe(sent);
    expect(Buffer.compare(got, big.subarray(0, sent!))).toBe(0);
  });

  it('passes one fd that works in the receiver', () => {
    const [a, b] = pair();
    const memfd = fds.add(native.memfdCreate('pass-one', PAGE));
    const original = native.mmap(memfd, PAGE, 0n, 3);

    expect(native.sendmsg(a, encoder.encode('F'), [memfd])).toBe(1);
    const result = recvOrFail(b, new Uint8Array(4), 1);
    expect(result.bytes).toBe(1);
    expect(result.ctrunc).toBe(false);
    expect(result.fds).toHaveLength(1);
    const received = result.fds[0]!;
    expect(received).not.toBe(memfd);
    expect(fdFlags(received) & O_CLOEXEC).toBe(O_CLOEXEC);

    writeSync(received, encoder.encode('via received fd'), 0, 15, 100);
    expect(new TextDecoder().decode(new Uint8Array(original, 100, 15))).toBe('via received fd');
    native.munmap(original);
  });

  it('passes 16 fds in one message, each one the right file', () => {
    const [a, b] = pair();
    const count = 16;
    const memfds = Array.from({ length: count }, (_, i) => fds.add(native.memfdCreate(`pass-${i}`, PAGE)));
    const maps = memfds.map((fd) => native.mmap(fd, PAGE, 0n, 3));

    expect(native.sendmsg(a, encoder.encode('sixteen'), memfds)).toBe(7);
    const buf = new Uint8Array(16);
    const result = recvOrFail(b, buf, count);
    expect(result.bytes).toBe(7);
    expect(result.ctrunc).toBe(false);
    expect(result.fds).toHaveLength(count);
    expect(new Set([...result.fds, ...memfds]).size).toBe(2 * count);

    // fds arrive in the order sent: write i through the i-th received fd, see it in the i-th original.
    result.fds.forEach((fd, i) => {
      expect(native.fdSize(fd)).toBe(PAGE);
      writeSync(fd, Uint8Array.of(0xa0 + i, i), 0, 2, 8);
    });
    maps.forEach((map, i) => {
      expect([...new Uint8Array(map, 8, 2)]).toEqual([0xa0 + i, i]);
      native.munmap(map);
    });
  });

  it('passes the maximum of 253 fds in one message', () => {
    const [a, b] = pair();
    const eventfds = Array.from({ length: 253 }, () => fds.add(native.eventfd(0)));
    expect(native.sendmsg(a, encoder.encode('m'), eventfds)).toBe(1);
    const result = recvOrFail(b, new Uint8Array(1), 253);
    expect(result.ctrunc).toBe(false);
    expect(result.fds).toHaveLength(253);
    native.eventfdWrite(result.fds[252]!, 4n);
    expect(native.eventfdRead(eventfds[252]!)).toBe(4n);
  });

  it('throws EBADF when an fd to pass is not open, and sends nothing', () => {
    const [a, b] = pair();
    const closed = native.eventfd(0);
    native.close(closed);
    expectNativeError(() => native.sendmsg(a, encoder.encode('x'), [closed]), 'EBADF', 'sendmsg');
    expect(native.recvmsg(b, new Uint8Array(4), 0, 4, 1)).toBeNull();
  });

  it('honours the byteOffset of a Uint8Array view', () => {
    const [a, b] = pair();
    native.sendmsg(a, encoder.encode('abcdef').subarray(2, 4), []);
    const backing = new Uint8Array(32);
    const view = backing.subarray(10, 20);
    expect(native.recvmsg(b, view, 1, 4, 0)?.bytes).toBe(2);
    expect([...backing.subarray(10, 14)]).toEqual([0, 0x63, 0x64, 0]);
  });

  it('flags ctrunc when more fds arrive than maxFds and returns those that fit', () => {
    const [a, b] = pair();
    const memfds = [0, 1, 2].map((i) => fds.add(native.memfdCreate(`trunc-${i}`, PAGE)));
    const first = native.mmap(memfds[0]!, PAGE, 0n, 3);

    native.sendmsg(a, encoder.encode('t'), memfds);
    const result = recvOrFail(b, new Uint8Array(4), 1);
    expect(result.ctrunc).toBe(true);
    expect(result.bytes).toBe(1);
    expect(result.fds).toHaveLength(1);
    writeSync(result.fds[0]!, Uint8Array.of(0x5a), 0, 1, 0);
    expect(new Uint8Array(first)[0]).toBe(0x5a);
    native.munmap(first);
  });

  it('flags ctrunc with maxFds 0 (the kernel closes the fds)', () => {
    const [a, b] = pair();
    const memfd = fds.add(native.memfdCreate('trunc-zero', PAGE));
    native.sendmsg(a, encoder.encode('z'), [memfd]);
    expect(native.recvmsg(b, new Uint8Array(4), 0, 4, 0)).toEqual({ bytes: 1, fds: [], ctrunc: true });
  });

  it('validates arguments', () => {
    const [a, b] = pair();
    const buf = new Uint8Array(8);
    expect(() => native.recvmsg(b, buf, 4, 5, 0)).toThrow(RangeError);
    expect(() => native.recvmsg(b, buf, 9, 1, 0)).toThrow(RangeError);
    expect(() => native.recvmsg(b, buf, 0, 0, 0)).toThrow(RangeError);
    expect(() => native.recvmsg(b, buf, 0.5, 1, 0)).toThrow(RangeError);
    expect(() => native.recvmsg(b, buf, 0, 8, 254)).toThrow(/maxFds/);
    expect(() => native.recvmsg(b, buf, 0, 8, -1)).toThrow(RangeError);
    expect(() => native.recvmsg(-1, buf, 0, 8, 0)).toThrow(RangeError);
    expect(() => native.recvmsg(b, new Uint16Array(8) as unknown as Uint8Array, 0, 8, 0)).toThrow(TypeError);
    expect(() => native.recvmsg('3' as unknown as number, buf, 0, 8, 0)).toThrow(TypeError);
    expect(() => native.sendmsg(a, buf, new Array<number>(254).fill(0))).toThrow(RangeError);
    expect(() => native.sendmsg(a, new Uint8Array(0), [0])).toThrow(/at least one byte/);
    expect(() => native.sendmsg(a, buf, [-1])).toThrow(RangeError);
    expect(() => native.sendmsg(a, buf, ['1'] as unknown as number[])).toThrow(TypeError);
    expect(() => native.sendmsg(a, buf, 1 as unknown as number[])).toThrow(TypeError);
    // Nothing was sent by the rejected calls.
    expect(native.recvmsg(b, buf, 0, 8, 0)).toBeNull();
  });

  it('throws EBADF for a closed fd', () => {
    const [a] = pair();
    fds.close(a);
    expectNativeError(() => native.recvmsg(a, new Uint8Array(4), 0, 4, 0), 'EBADF', 'recvmsg');
    expectNativeError(() => native.sendmsg(a, new Uint8Array(4), []), 'EBADF', 'sendmsg');
  });
});

describe('unixListen / unixConnect / unixAccept', () => {
  it('connects, accepts and carries data and fds end to end', () => {
    const path = join(dir, 'e2e.sock');
    const listener = fds.add(native.unixListen(path, 4));
    expect(native.unixAccept(listener)).toBeNull();

    const client = fds.add(native.unixConnect(path));
    const server = native.unixAccept(listener);
    expect(server).not.toBeNull();
    fds.add(server!);
    expect(native.unixAccept(listener)).toBeNull();
    for (const fd of [listener, client, server!]) {
      expect(fdFlags(fd) & (O_NONBLOCK | O_CLOEXEC)).toBe(O_NONBLOCK | O_CLOEXEC);
    }

    const eventfd = fds.add(native.eventfd(0));
    expect(native.sendmsg(client, encoder.encode('ping'), [eventfd])).toBe(4);
    const buf = new Uint8Array(8);
    const result = recvOrFail(server!, buf, 2);
    expect(new TextDecoder().decode(buf.subarray(0, result.bytes))).toBe('ping');
    expect(result.fds).toHaveLength(1);
    // The received fd is the same eventfd: a write through it is read through the original.
    native.eventfdWrite(result.fds[0]!, 9n);
    expect(native.eventfdRead(eventfd)).toBe(9n);

    expect(native.sendmsg(server!, encoder.encode('pong'), [])).toBe(4);
    expect(native.recvmsg(client, buf, 0, 8, 0)?.bytes).toBe(4);
  });

  it('refuses to bind over an existing path (EADDRINUSE)', () => {
    const path = join(dir, 'busy.sock');
    fds.add(native.unixListen(path, 1));
    expectNativeError(() => native.unixListen(path, 1), 'EADDRINUSE', 'bind');
  });

  it('throws ENOENT for a missing path and ECONNREFUSED without a listener', () => {
    const missing = join(dir, 'missing.sock');
    const error = expectNativeError(() => native.unixConnect(missing), 'ENOENT', 'connect');
    expect(error.message).toContain('missing.sock');
    expect(error.name).toBe('NativeError');

    const stale = join(dir, 'stale.sock');
    fds.close(fds.add(native.unixListen(stale, 1)));
    expectNativeError(() => native.unixConnect(stale), 'ECONNREFUSED', 'connect');
  });

  it('validates paths and backlog', () => {
    expect(() => native.unixConnect('')).toThrow(RangeError);
    expect(() => native.unixConnect('x'.repeat(108))).toThrow(RangeError);
    expect(() => native.unixConnect('a\0b')).toThrow(/NUL/);
    expect(() => native.unixConnect(7 as unknown as string)).toThrow(TypeError);
    expect(() => native.unixListen(join(dir, 'b.sock'), -1)).toThrow(RangeError);
    expect(() => native.unixListen(join(dir, 'b.sock'), 1e6)).toThrow(RangeError);
  });

  it('throws for accept on a non-listening socket', () => {
    const [a] = pair();
    expectNativeError(() => native.unixAccept(a), 'EINVAL', 'accept4');
  });
});

describe('unixListenPrivate / peerCred / socketHungUp / lookups', () => {
  it('creates the socket file with the given mode whatever the umask, and refuses an existing path', () => {
    const path = join(dir, 'private.sock');
    const old = process.umask(0);
    let listenFd: number;
    try {
      listenFd = fds.add(native.unixListenPrivate(path, 4, 0o600, -1, -1));
    } finally {
      process.umask(old);
    }
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(fdFlags(listenFd) & O_NONBLOCK).toBe(O_NONBLOCK);
    // Nothing left of the temporary directory it was bound in.
    expect(readdirSync(dir).filter((n) => n.startsWith('.npiv-sock-'))).toEqual([]);
    expectNativeError(() => native.unixListenPrivate(path, 4, 0o600, -1, -1), 'EEXIST', 'renameat2');
    expect(readdirSync(dir).filter((n) => n.startsWith('.npiv-sock-'))).toEqual([]);
    rmSync(path);
  });

  it('binds paths whose directory is too long for a temporary sun_path of its own', () => {
    const deep = join(dir, 'd'.repeat(107 - dir.length - 8));
    mkdirSync(deep);
    const path = join(deep, 'x.sock');
    expect(Buffer.byteLength(path)).toBeLessThanOrEqual(107);
    fds.add(native.unixListenPrivate(path, 4, 0o640, -1, -1));
    expect(statSync(path).mode & 0o777).toBe(0o640);
    fds.add(native.unixConnect(path));
    rmSync(deep, { recursive: true });
  });

  it('peerCred reports this process on both ends of a connection', () => {
    const path = join(dir, 'cred.sock');
    const listenFd = fds.add(native.unixListenPrivate(path, 4, 0o600, -1, -1));
    const client = fds.add(native.unixConnect(path));
    const server = fds.add(native.unixAccept(listenFd)!);
    for (const fd of [client, server]) {
      const cred = native.peerCred(fd);
      expect(cred).toMatchObject({ pid: process.pid, uid: process.getuid!(), gid: process.getgid!() });
      expect(Array.isArray(cred.groups)).toBe(true);
    }
    expectNativeError(() => native.peerCred(fds.add(native.eventfd(0))), 'ENOTSOCK', 'getsockopt');
    rmSync(path);
  });

  it('socketHungUp turns true once the peer closes, without consuming data', () => {
    const [a, b] = pair();
    native.sendmsg(b, encoder.encode('x'), []);
    expect(native.socketHungUp(a)).toBe(false);
    fds.close(b);
    expect(native.socketHungUp(a)).toBe(true);
    expect(native.recvmsg(a, new Uint8Array(4), 0, 4, 0)!.bytes).toBe(1);
  });

  it('lookupUser / lookupGroup resolve names and answer null for unknown ones', () => {
    expect(native.lookupUser('root')).toEqual({ uid: 0, gid: 0 });
    expect(native.lookupGroup('root')).toBe(0);
    expect(native.lookupUser('no-such-user-npiv')).toBeNull();
    expect(native.lookupGroup('no-such-group-npiv')).toBeNull();
  });
});
