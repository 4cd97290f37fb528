/**
 * Native shim: eventfd counters and fd readiness through uv_poll.
 */
import { spawnSync } from 'node:child_process';

import { afterEach, describe, expect, it } from 'vitest';

import {
  native,
  nativeAddonPath,
  NativeError,
  POLL_DISCONNECT,
  POLL_READABLE,
  POLL_WRITABLE,
  type PollHandle,
} from '../../../src/native/index.js';
import { FdTracker, fdFlags } from './helpers.js';
import { O_CLOEXEC, O_NONBLOCK } from '../../../src/util/proc.js';

const fds = new FdTracker();
const handles: PollHandle[] = [];
afterEach(() => {
  for (const handle of handles.splice(0)) handle.stop();
  fds.closeAll();
});

function watch(fd: number, events: number, callback: (events: number, errno: number) => void): PollHandle {
  const handle = native.poll(fd, events, callback);
  handles.push(handle);
  return handle;
}

/** Resolves with the first callback's events and stops the watch from inside the callback. */
function once(fd: number, events: number): Promise<{ events: number; errno: number }> {
  return new Promise((resolve) => {
    const handle = watch(fd, events, (firedEvents, errno) => {
      handle.stop();
      resolve({ events: firedEvents, errno });
    });
  });
}

/** Runs a script in a fresh node process with the addon path as argv[1]. */
function runChild(script: string): { status: number | null; stdout: string; stderr: string } {
  const child = spawnSync(process.execPath, ['-e', script, nativeAddonPath()], {
    encoding: 'utf8',
    timeout: 20_000,
  });
  return { status: child.status, stdout: child.stdout, stderr: child.stderr };
}

describe('eventfd', () => {
  it('is non-blocking and close-on-exec', () => {
    const fd = fds.add(native.eventfd(0));
    expect(fdFlags(fd) & (O_NONBLOCK | O_CLOEXEC)).toBe(O_NONBLOCK | O_CLOEXEC);
  });

  it('adds writes into one counter that a read returns and resets', () => {
    const fd = fds.add(native.eventfd(5));
    native.eventfdWrite(fd, 1n);
    native.eventfdWrite(fd, 2n ** 40n);
    expect(native.eventfdRead(fd)).toBe(6n + 2n ** 40n);
    expect(native.eventfdRead(fd)).toBeNull();
    native.eventfdWrite(fd, 0n); // adds nothing: still not readable
    expect(native.eventfdRead(fd)).toBeNull();
  });

  it('reports counter overflow as EAGAIN and validates values', () => {
    const fd = fds.add(native.eventfd(0));
    native.eventfdWrite(fd, 2n ** 64n - 2n); // the largest counter value
    expect(() => native.eventfdWrite(fd, 1n)).toThrow(expect.objectContaining({ code: 'EAGAIN', syscall: 'write' }));
    expect(() => native.eventfdWrite(fd, 2n ** 64n - 1n)).toThrow(RangeError);
    expect(() => native.eventfdWrite(fd, -1n)).toThrow(RangeError);
    expect(() => native.eventfdWrite(fd, 1 as unknown as bigint)).toThrow(TypeError);
    expect(() => native.eventfd(-1)).toThrow(RangeError);
    expect(() => native.eventfd(2 ** 32)).toThrow(RangeError);
    expect(native.eventfdRead(fd)).toBe(2n ** 64n - 2n);
  });

  it('throws EBADF for a closed fd', () => {
    const fd = native.eventfd(0);
    native.close(fd);
    expect(() => native.eventfdRead(fd)).toThrow(NativeError);
    expect(() => native.eventfdWrite(fd, 1n)).toThrow(expect.objectContaining({ code: 'EBADF' }));
  });
});

describe('close / isOpen / fdSize', () => {
  it('tracks whether an fd is open and reports EBADF on a double close', () => {
    const fd = native.eventfd(0);
    expect(native.isOpen(fd)).toBe(true);
    native.close(fd);
    expect(native.isOpen(fd)).toBe(false);
    expect(() => native.close(fd)).toThrow(expect.objectContaining({ code: 'EBADF', syscall: 'close', errno: 9 }));
    expect(() => native.fdSize(fd)).toThrow(expect.objectContaining({ code: 'EBADF', syscall: 'fstat' }));
    expect(() => native.isOpen(2 ** 31)).toThrow(RangeError);
  });
});

describe('poll', () => {
  it('fires on readability and stops cleanly from inside its callback', async () => {
    const fd = fds.add(native.eventfd(0));
    const fired = once(fd, POLL_READABLE);
    native.eventfdWrite(fd, 3n);
    await expect(fired).resolves.toEqual({ events: POLL_READABLE, errno: 0 });
    expect(native.eventfdRead(fd)).toBe(3n);
  });

  it('stays quiet after stop(), and the fd can be watched again', async () => {
    const fd = fds.add(native.eventfd(1)); // readable from the start, level-triggered
    let firstCalls = 0;
    await new Promise<void>((resolve) => {
      const handle = watch(fd, POLL_READABLE, () => {
        firstCalls += 1;
        handle.stop();
        handle.stop(); // idempotent
        resolve();
      });
    });
    // Still readable: a live first watch would fire again in the same loop turn as this one.
    await expect(once(fd, POLL_READABLE)).resolves.toEqual({ events: POLL_READABLE, errno: 0 });
    expect(firstCalls).toBe(1);
  });

  it('reports writability and peer hang-up', async () => {
    const [a, b] = fds.add(native.socketPair());
    await expect(once(a, POLL_WRITABLE)).resolves.toEqual({ events: POLL_WRITABLE, errno: 0 });

    const hangUp = once(a, POLL_READABLE | POLL_DISCONNECT);
    fds.close(b);
    const { events } = await hangUp;
    expect(events & POLL_DISCONNECT).toBe(POLL_DISCONNECT);
    expect(native.recvmsg(a, new Uint8Array(4), 0, 4, 0)?.bytes).toBe(0);
  });

  it('reports a peer reset as ECONNRESET, not as the EBADF libuv gives for POLLERR', async () => {
    // The peer closes with our data still unread in its queue: our end gets POLLERR with
    // SO_ERROR ECONNRESET (the "poll error 9" a vfio-user client's disconnect used to log).
    const [a, b] = fds.add(native.socketPair());
    expect(native.sendmsg(b, new Uint8Array(64), [])).toBe(64);
    const fired = once(b, POLL_READABLE | POLL_DISCONNECT);
    fds.close(a);
    expect(await fired).toEqual({ events: 0, errno: 104 });
    expect(native.isOpen(b)).toBe(true);
  });

  it('refuses a second watch on the same fd (EEXIST) and unpollable fds (EPERM)', () => {
    const fd = fds.add(native.eventfd(0));
    watch(fd, POLL_READABLE, () => undefined);
    expect(() => native.poll(fd, POLL_READABLE, () => undefined)).toThrow(
      expect.objectContaining({ code: 'EEXIST', syscall: 'uv_poll_init' }),
    );
    const memfd = fds.add(native.memfdCreate('not-pollable', 0));
    expect(() => native.poll(memfd, POLL_READABLE, () => undefined)).toThrow(
      expect.objectContaining({ code: 'EPERM' }),
    );
    const closed = native.eventfd(0);
    native.close(closed);
    expect(() => native.poll(closed, POLL_READABLE, () => undefined)).toThrow(
      expect.objectContaining({ code: 'EBADF' }),
    );
  });

  it('refuses to close a watched fd until the watch is stopped', () => {
    const fd = fds.add(native.eventfd(0));
    const handle = watch(fd, POLL_READABLE, () => undefined);
    expect(() => native.close(fd)).toThrow(expect.objectContaining({ code: 'EBUSY', syscall: 'close' }));
    expect(native.isOpen(fd)).toBe(true);
    handle.stop();
    fds.close(fd);
    expect(native.isOpen(fd)).toBe(false);
  });

  it('validates arguments', () => {
    const fd = fds.add(native.eventfd(0));
    expect(() => native.poll(fd, 0, () => undefined)).toThrow(RangeError);
    expect(() => native.poll(fd, 8, () => undefined)).toThrow(RangeError);
    expect(() => native.poll(fd, POLL_READABLE, null as unknown as () => void)).toThrow(TypeError);
    expect(() => native.poll(-1, POLL_READABLE, () => undefined)).toThrow(RangeError);
  });

  it('keeps the event loop alive only while active', () => {
    // Only the watch holds the loop open (the timer is unref'd): the child prints
    // "fired" only if the active watch kept it alive, and exits only if stop() released it.
    const result = runChild(`
      const shim = require(process.argv[1]);
      const fd = shim.eventfd(0);
      const handle = shim.poll(fd, 1, (events) => {
        console.log('fired', events, String(shim.eventfdRead(fd)));
        handle.stop();
      });
      setTimeout(() => shim.eventfdWrite(fd, 2n), 20).unref();
    `);
    expect(result.stderr).toBe('');
    expect(result.stdout).toBe('fired 1 2\n');
    expect(result.status).toBe(0);

    const idle = runChild(`
      const shim = require(process.argv[1]);
      shim.poll(shim.eventfd(0), 1, () => console.log('unexpected')).stop();
      process.on('exit', () => console.log('exited'));
    `);
    expect(idle.stdout).toBe('exited\n');
    expect(idle.status).toBe(0);
  });

  it('routes an exception thrown by the callback to uncaughtException', () => {
    const result = runChild(`
      const shim = require(process.argv[1]);
      const fd = shim.eventfd(1);
      const handle = shim.poll(fd, 1, () => { throw new Error('from callback'); });
      process.on('uncaughtException', (error) => {
        console.log('caught', error.message);
        handle.stop();
      });
    `);
    expect(result.stdout).toBe('caught from callback\n');
    expect(result.status).toBe(0);
  });
});
