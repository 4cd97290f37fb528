/**
 * The policy pieces of src/util/private-socket.ts: who is allowed, which directories are refused,
 * user/group names and the listener check a client makes.
 */
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { PeerCred } from '../../../src/native/index.js';
import {
  checkListenerCred,
  checkSocketPathLength,
  parseGroup,
  parseUser,
  peerAllowed,
  prepareSocketDirectory,
} from '../../../src/util/private-socket.js';

const SELF = 1000;
const cred = (uid: number, gid = uid, groups: number[] = []): PeerCred => ({ pid: 42, uid, gid, groups });

describe('peerAllowed', () => {
  it('admits this uid and root by default, nobody else', () => {
    expect(peerAllowed(cred(SELF), {}, SELF)).toBe(true);
    expect(peerAllowed(cred(0), {}, SELF)).toBe(true);
    expect(peerAllowed(cred(1001), {}, SELF)).toBe(false);
  });

  it('admits the socket owner, and members of the socket group by primary or supplementary gid', () => {
    expect(peerAllowed(cred(64055), { owner: 64055 }, SELF)).toBe(true);
    expect(peerAllowed(cred(1001), { owner: 64055 }, SELF)).toBe(false);
    expect(peerAllowed(cred(1001, 36), { group: 36 }, SELF)).toBe(true);
    expect(peerAllowed(cred(1001, 1001, [5, 36]), { group: 36 }, SELF)).toBe(true);
    expect(peerAllowed(cred(1001, 1001, [5]), { group: 36 }, SELF)).toBe(false);
  });
});

describe('checkListenerCred', () => {
  it('accepts this uid, root and the allowed uids; names the option for anyone else', () => {
    expect(() => checkListenerCred(cred(SELF), '/run/x', [], '--san-owner', SELF)).not.toThrow();
    expect(() => checkListenerCred(cred(0), '/run/x', [], '--san-owner', SELF)).not.toThrow();
    expect(() => checkListenerCred(cred(77), '/run/x', [77], '--san-owner', SELF)).not.toThrow();
    expect(() => checkListenerCred(cred(1001), '/run/x', [77], '--san-owner', SELF)).toThrow(
      'refusing to use /run/x: it is served by uid 1001 (pid 42), not by uid 1000, uid 77 or root; another user may have put a socket there (if that user is intended, pass --san-owner 1001)',
    );
  });
});

describe('names and paths', () => {
  it('parses users and groups by name or number, and names the option when unknown', () => {
    expect(parseUser('0', '--socket-owner')).toBe(0);
    expect(parseUser('root', '--socket-owner')).toBe(0);
    expect(parseGroup('root', '--socket-group')).toBe(0);
    expect(parseGroup('36', '--socket-group')).toBe(36);
    expect(() => parseUser('no-such-user-npiv', '--san-owner')).toThrow(
      "--san-owner 'no-such-user-npiv': no such user",
    );
    expect(() => parseGroup('no-such-group-npiv', '--socket-group')).toThrow(
      "--socket-group 'no-such-group-npiv': no such group",
    );
    expect(() => parseUser('4294967295', '--socket-owner')).toThrow(/not a valid id/);
  });

  it('checks sun_path length in bytes, naming the option', () => {
    expect(() => checkSocketPathLength('/' + 'a'.repeat(106), '--link')).not.toThrow();
    expect(() => checkSocketPathLength('/' + 'é'.repeat(54), '--link')).toThrow(
      /--link '.*' is 109 bytes long; a Unix socket path holds at most 107/,
    );
  });
});

describe('prepareSocketDirectory', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'npiv-psd-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));
  const self = process.getuid?.() ?? 0;

  it('creates missing directories: parents 0755, the socket directory 0700 (0711 with a socket owner)', () => {
    const old = process.umask(0o077);
    try {
      prepareSocketDirectory(join(dir, 'a', 'b', 's.sock'), {}, self);
      prepareSocketDirectory(join(dir, 'o', 's.sock'), { owner: 65534 }, self);
    } finally {
      process.umask(old);
    }
    expect(statSync(join(dir, 'a')).mode & 0o777).toBe(0o755);
    expect(statSync(join(dir, 'a', 'b')).mode & 0o777).toBe(0o700);
    expect(statSync(join(dir, 'o')).mode & 0o777).toBe(0o711);
  });

  it('refuses a group- or other-writable directory, and a directory below one that is not sticky', () => {
    const g = join(dir, 'g');
    mkdirSync(g);
    chmodSync(g, 0o770);
    expect(() => prepareSocketDirectory(join(g, 's.sock'), {}, self)).toThrow(/writable by other users \(mode 0770\)/);
    const parent = join(dir, 'p');
    mkdirSync(join(parent, 'inner'), { recursive: true });
    chmodSync(parent, 0o777);
    expect(() => prepareSocketDirectory(join(parent, 'inner', 's.sock'), {}, self)).toThrow(
      /ancestor .*\/p is writable by other users \(mode 0777\)/,
    );
    chmodSync(parent, 0o1777); // sticky, like /tmp: others cannot rename what is ours
    expect(() => prepareSocketDirectory(join(parent, 'inner', 's.sock'), {}, self)).not.toThrow();
  });

  it.runIf(self === 0)('refuses a directory, or an ancestor, that another user owns', () => {
    const theirs = join(dir, 't');
    mkdirSync(join(theirs, 'inner'), { recursive: true });
    chownSync(theirs, 65534, 65534);
    expect(() => prepareSocketDirectory(join(theirs, 's.sock'), {}, self)).toThrow(
      /the directory belongs to uid 65534/,
    );
    expect(() => prepareSocketDirectory(join(theirs, 'inner', 's.sock'), {}, self)).toThrow(
      /ancestor .*\/t belongs to uid 65534/,
    );
  });

  it('warns when an existing directory keeps the allowed group out', () => {
    const closed = join(dir, 'c');
    mkdirSync(closed, { mode: 0o700 });
    chmodSync(closed, 0o700);
    expect(prepareSocketDirectory(join(closed, 's.sock'), { group: 36 }, self)).toEqual([
      expect.stringMatching(/members of gid 36 cannot enter .*\/c/),
    ]);
    expect(prepareSocketDirectory(join(closed, 's.sock'), {}, self)).toEqual([]);
  });
});
