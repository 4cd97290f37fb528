/**
 * Host-side parts of the real-guest harness: the newc cpio writer (checked against busybox's
 * cpio from the guest rootfs), the QEMU command line, and the rootfs tshark wrapper.
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { buildCpio, CPIO_HEADER_SIZE, CPIO_NEWC_MAGIC, CPIO_TRAILER_NAME } from '../../src/harness/cpio.js';
import {
  buildOverlayArchive,
  guestArchivePath,
  guestEnvironment,
  haveGuestEnvironment,
  qemuArguments,
  type GuestEnvironment,
} from '../../src/harness/guest.js';

const haveGuest = haveGuestEnvironment();
const scriptsDir = resolve(import.meta.dirname, '../../scripts/guest');

/** Reads the newc header field at index (0 = ino ... 12 = check) of the entry at offset. */
function headerField(archive: Uint8Array, offset: number, index: number): number {
  const start = offset + CPIO_NEWC_MAGIC.length + index * 8;
  return Number.parseInt(new TextDecoder().decode(archive.subarray(start, start + 8)), 16);
}

describe('newc cpio writer', () => {
  it('lays out header, name and data on 4-byte boundaries and ends with the trailer', () => {
    const data = new TextEncoder().encode('abcde');
    const archive = buildCpio([{ type: 'file', path: '/x/y.txt', data, mode: 0o600 }]);
    const text = new TextDecoder().decode(archive);
    expect(text.startsWith(CPIO_NEWC_MAGIC)).toBe(true);
    expect(headerField(archive, 0, 1)).toBe(0o100600); // mode: regular file 0600
    expect(headerField(archive, 0, 6)).toBe(5); // filesize
    expect(headerField(archive, 0, 11)).toBe('x/y.txt'.length + 1); // namesize with NUL
    expect(text.slice(CPIO_HEADER_SIZE, CPIO_HEADER_SIZE + 8)).toBe('x/y.txt\0');
    const dataOffset = CPIO_HEADER_SIZE + 8; // 118 is not 4-aligned: 2 bytes of padding
    expect(text.slice(dataOffset + 2, dataOffset + 7)).toBe('abcde');
    const trailerOffset = dataOffset + 2 + 8; // 5 data bytes padded to 8
    expect(text.slice(trailerOffset, trailerOffset + 6)).toBe(CPIO_NEWC_MAGIC);
    expect(text.slice(trailerOffset + CPIO_HEADER_SIZE, trailerOffset + CPIO_HEADER_SIZE + 10)).toBe(CPIO_TRAILER_NAME);
    expect(archive.length % 4).toBe(0);
  });

  it('rejects paths that escape the archive root', () => {
    expect(() => buildCpio([{ type: 'dir', path: '../etc' }])).toThrow(/'\.\.'/);
    expect(() => buildCpio([{ type: 'dir', path: '/' }])).toThrow(/empty path/);
  });

  it('maps bin/sbin/lib/lib64 into /usr so the overlay never replaces the merged-/usr symlinks', () => {
    expect(guestArchivePath('/lib/firmware/ql2500_fw.bin')).toBe('usr/lib/firmware/ql2500_fw.bin');
    expect(guestArchivePath('bin/tool')).toBe('usr/bin/tool');
    expect(guestArchivePath('/etc/x.conf')).toBe('etc/x.conf');
    expect(() => guestArchivePath('/lib')).toThrow(/symlink/);
  });

  it.skipIf(!haveGuest)('produces archives that busybox cpio extracts byte for byte', async () => {
    const environment = guestEnvironment();
    const dir = await mkdtemp(join(tmpdir(), 'npiv-hba-cpio-'));
    try {
      const binary = new Uint8Array(1027).map((_, index) => (index * 7) & 0xff);
      const archive = buildOverlayArchive('echo hi\nexit 3\n', [
        { path: '/etc/npiv/a.conf', data: 'key=value\n' },
        { path: '/lib/firmware/blob.bin', data: binary, mode: 0o600 },
      ]);
      await writeFile(join(dir, 'overlay.cpio'), archive);
      const out = join(dir, 'out');
      execFileSync('mkdir', ['-p', out]);
      execFileSync(join(environment.rootfs, 'usr/bin/busybox'), ['cpio', '-i', '-d', '-F', join(dir, 'overlay.cpio')], {
        cwd: out,
        stdio: 'pipe',
      });
      expect(await readFile(join(out, 'test.sh'), 'utf8')).toBe('echo hi\nexit 3\n');
      expect((await stat(join(out, 'test.sh'))).mode & 0o777).toBe(0o755);
      expect(await readFile(join(out, 'etc/npiv/a.conf'), 'utf8')).toBe('key=value\n');
      expect(new Uint8Array(await readFile(join(out, 'usr/lib/firmware/blob.bin')))).toEqual(binary);
      expect((await stat(join(out, 'usr/lib/firmware/blob.bin'))).mode & 0o777).toBe(0o600);
      const listing = execFileSync(
        join(environment.rootfs, 'usr/bin/busybox'),
        ['cpio', '-t', '-F', join(dir, 'overlay.cpio')],
        {
          encoding: 'utf8',
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      );
      expect(listing.split('\n').filter(Boolean)).toEqual([
        'test.sh',
        'etc',
        'etc/npiv',
        'etc/npiv/a.conf',
        'usr',
        'usr/lib',
        'usr/lib/firmware',
        'usr/lib/firmware/blob.bin',
      ]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('guest environment lookup', () => {
  it('tells the user to run prepare.sh when the cache is missing or incomplete', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'npiv-hba-env-'));
    try {
      expect(haveGuestEnvironment(dir)).toBe(false);
      expect(() => guestEnvironment(dir)).toThrow(/scripts\/guest\/prepare\.sh/);
      await writeFile(join(dir, 'guest-env.json'), JSON.stringify({ rootfs: join(dir, 'rootfs') }));
      expect(() => guestEnvironment(dir)).toThrow(/missing "vmlinuz".*prepare\.sh/);
      await writeFile(
        join(dir, 'guest-env.json'),
        JSON.stringify({
          rootfs: join(dir, 'rootfs'),
          vmlinuz: join(dir, 'vmlinuz'),
          vmlinux: null,
          kernelRelease: '7.2.12+deb14-amd64',
          initramfs: join(dir, 'initramfs.cpio'),
          initramfsNoFirmware: join(dir, 'initramfs-nofw.cpio'),
        }),
      );
      expect(() => guestEnvironment(dir)).toThrow(/vmlinuz is missing.*prepare\.sh/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('QEMU command line', () => {
  const environment: GuestEnvironment = {
    cacheDir: '/cache',
    rootfs: '/cache/rootfs',
    kernelRelease: '7.2.12+deb14-amd64',
    kernel: '/cache/guest/vmlinux',
    vmlinuz: '/cache/guest/vmlinuz',
    initramfs: '/cache/guest/initramfs.cpio',
    initramfsNoFirmware: '/cache/guest/initramfs-nofw.cpio',
    loader: '/cache/rootfs/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2',
    libraryDir: '/cache/rootfs/usr/lib/x86_64-linux-gnu',
    qemuBinary: '/cache/rootfs/usr/bin/qemu-system-x86_64',
    qemuDataDirs: ['/cache/rootfs/usr/share/qemu'],
    qemuModuleDir: '/cache/rootfs/usr/lib/x86_64-linux-gnu/qemu',
  };
  const valueAfter = (args: string[], flag: string): string[] =>
    args.flatMap((arg, index) => (arg === flag && args[index + 1] !== undefined ? [args[index + 1] as string] : []));

  it('puts each vfio-user device behind its own root port and passes qla2xxx params on the command line', () => {
    const args = qemuArguments(
      environment,
      '/tmp/initrd',
      {
        devices: ['/run/a.sock', { socket: '/run/b.sock', id: 'hba-b', properties: { 'x-msg-timeout': 9000 } }],
        qlaParams: { ql2xextended_error_logging: '0x40000000', ql2xenablemsix: 0, ql2xnvmeenable: false },
        loadQla: false,
        dmesg: true,
        memMiB: 256,
        kernelArgs: ['loglevel=7'],
      },
      'tcg',
    );
    const devices = valueAfter(args, '-device');
    expect(devices[0]).toBe('pcie-root-port,id=rp0,chassis=1,bus=pcie.0');
    expect(JSON.parse(devices[1] as string)).toEqual({
      driver: 'vfio-user-pci',
      id: 'vport0',
      bus: 'rp0',
      socket: { type: 'unix', path: '/run/a.sock' },
    });
    expect(devices[2]).toBe('pcie-root-port,id=rp1,chassis=2,bus=pcie.0');
    expect(JSON.parse(devices[3] as string)).toEqual({
      driver: 'vfio-user-pci',
      id: 'hba-b',
      bus: 'rp1',
      socket: { type: 'unix', path: '/run/b.sock' },
      'x-msg-timeout': 9000,
    });
    const append = valueAfter(args, '-append')[0] ?? '';
    expect(append.split(' ')).toContain(
      'qla_params=ql2xextended_error_logging=0x40000000,ql2xenablemsix=0,ql2xnvmeenable=0',
    );
    expect(append.split(' ')).toContain('qla_skip');
    expect(append.split(' ')).toContain('guest_dmesg');
    // Default console level first (warnings and worse), so a caller's loglevel= later wins.
    expect(append.split(' ')).toContain('loglevel=5');
    expect(append.split(' ').indexOf('loglevel=5')).toBeLessThan(append.split(' ').indexOf('loglevel=7'));
    expect(append.split(' ').at(-1)).toBe('loglevel=7');
    expect(valueAfter(args, '-object')).toEqual(['memory-backend-memfd,id=mem,size=256M,share=on']);
    expect(valueAfter(args, '-accel')).toEqual(['tcg,thread=multi']);
    expect(valueAfter(args, '-initrd')).toEqual(['/tmp/initrd']);
  });

  it('refuses parameters that would break the kernel command line', () => {
    expect(() => qemuArguments(environment, '/i', { qlaParams: { 'a b': 1 } }, 'tcg')).toThrow(/parameter name/);
    expect(() => qemuArguments(environment, '/i', { qlaParams: { logging: '1 init=/bin/sh' } }, 'tcg')).toThrow(
      /command line/,
    );
    expect(() => qemuArguments(environment, '/i', { kernelArgs: ['a b'] }, 'tcg')).toThrow(/one word/);
    expect(() => qemuArguments(environment, '/i', { memMiB: 0 }, 'tcg')).toThrow(/memMiB/);
  });
});

describe.skipIf(!haveGuest)('rootfs wrappers', () => {
  let dir = '';
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'npiv-hba-tshark-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('qemu.sh runs the rootfs QEMU, which has the vfio-user-pci client', () => {
    const devices = execFileSync('bash', [join(scriptsDir, 'qemu.sh'), '-device', 'help'], { encoding: 'utf8' });
    expect(devices).toMatch(/name "vfio-user-pci"/);
  });

  it('tshark.sh runs the rootfs tshark and dissects an FC-2 (linktype 224) FLOGI', async () => {
    const version = execFileSync('bash', [join(scriptsDir, 'tshark.sh'), '-v'], { encoding: 'utf8' });
    expect(version).toMatch(/^TShark \(Wireshark\) \d+\.\d+/m);

    // pcap global header (little-endian) + one record: 24-byte FC header + FLOGI payload.
    const flogiPayload = Buffer.alloc(116);
    flogiPayload[0] = 0x04; // ELS command code FLOGI
    const fcHeader = Buffer.from([
      0x22,
      0xff,
      0xff,
      0xfe, // R_CTL = ELS request, D_ID = fabric login server
      0x00,
      0x00,
      0x00,
      0x00, // CS_CTL, S_ID = 0 (not yet logged in)
      0x01,
      0x29,
      0x00,
      0x00, // TYPE = ELS, F_CTL = first/last sequence, sequence initiative
      0x00,
      0x00,
      0x00,
      0x00, // SEQ_ID, DF_CTL, SEQ_CNT
      0x12,
      0x34,
      0xff,
      0xff, // OX_ID, RX_ID
      0x00,
      0x00,
      0x00,
      0x00, // parameter
    ]);
    const frame = Buffer.concat([fcHeader, flogiPayload]);
    const globalHeader = Buffer.alloc(24);
    globalHeader.writeUInt32LE(0xa1b2c3d4, 0);
    globalHeader.writeUInt16LE(2, 4);
    globalHeader.writeUInt16LE(4, 6);
    globalHeader.writeUInt32LE(65535, 16);
    globalHeader.writeUInt32LE(224, 20); // LINKTYPE_FC_2
    const recordHeader = Buffer.alloc(16);
    recordHeader.writeUInt32LE(frame.length, 8);
    recordHeader.writeUInt32LE(frame.length, 12);
    const pcap = join(dir, 'flogi.pcap');
    await writeFile(pcap, Buffer.concat([globalHeader, recordHeader, frame]));

    const summary = execFileSync('bash', [join(scriptsDir, 'tshark.sh'), '-r', pcap], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    expect(summary).toMatch(/ff\.ff\.fe\s+FC ELS\s+140\s+FLOGI/);
  });
});
