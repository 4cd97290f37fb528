import { afterEach, describe, expect, it } from 'vitest';
import { native } from '../../../src/native/index.js';
import { eventfdProblem } from '../../../src/vfio-user/fdinfo.js';

const opened: number[] = [];
afterEach(() => {
  for (const fd of opened.splice(0)) native.close(fd);
});

describe('eventfdProblem', () => {
  it('accepts a non-blocking eventfd', () => {
    const fd = native.eventfd(0);
    opened.push(fd);
    expect(eventfdProblem(fd)).toBeNull();
  });

  it('refuses a memfd and a socket', () => {
    const memfd = native.memfdCreate('not-an-eventfd', 4096);
    const [a, b] = native.socketPair();
    opened.push(memfd, a, b);
    expect(eventfdProblem(memfd)).toMatch(/not an eventfd/);
    expect(eventfdProblem(a)).toMatch(/not an eventfd/);
  });

  it('refuses a closed fd', () => {
    const fd = native.eventfd(0);
    native.close(fd);
    expect(eventfdProblem(fd)).toMatch(/cannot be inspected/);
  });
});
