/**
 * Where volume files may come from (issue 11 point 3) and who may hold them (point 7): the control
 * socket is confined to the data directory, never adopts an existing file unless told to, never
 * follows a symlink or '..' out of it; the administrator's configuration is trusted more but obeys
 * the data directory when it names one; every backing file is locked against a second SAN; RAM
 * volumes the host cannot hold are refused on the control socket.
 */
import { spawn } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { totalmem, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { handleControlLine } from '../../../src/san/control.js';
import { parseSanConfig, type SanConfig } from '../../../src/san/config.js';
import { San } from '../../../src/san/san.js';
import { StorageArray } from '../../../src/san/array.js';
import { Volume, memoryVolumesCapacity } from '../../../src/san/volume.js';
import { testConfig } from '../scsi/helpers.js';

const ID = { arrayName: 'a', oui: 0x001438 };

function sanConfig(extra: Record<string, unknown> = {}, volumes: unknown[] = []): SanConfig {
  return parseSanConfig({
    ...extra,
    fabric: { name: 'fab', domain: 1 },
    arrays: [
      {
        name: 'array1',
        ports: [{ wwpn: '50:0a:09:81:00:00:00:01', wwnn: '50:0a:09:80:00:00:00:01' }],
        volumes,
        hostGroups: [],
      },
    ],
  });
}

const ctl = (san: San, req: Record<string, unknown>) => handleControlLine(san, JSON.stringify(req));

let dir: string;
let san: San | null = null;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'san-files-'));
});
afterEach(async () => {
  await san?.close();
  san = null;
  rmSync(dir, { recursive: true, force: true });
});

describe('control socket: volume files', () => {
  it('without a data directory, add-volume file=... is refused and creates nothing', async () => {
    san = await San.start(sanConfig(), { baseDir: dir });
    const target = join(dir, 'root-owned.img');
    const r = await ctl(san, { cmd: 'add-volume', array: 'array1', name: 'x', size: '1MiB', file: target });
    expect(r.ok).toBe(false);
    expect(r.error).toMatch(/no data directory.*"dataDir"/);
    expect(existsSync(target)).toBe(false);
    // A RAM volume is still fine.
    expect((await ctl(san, { cmd: 'add-volume', array: 'array1', name: 'ram', size: '1MiB' })).ok).toBe(true);
  });

  it('with a data directory: new files land inside it; paths out of it are refused', async () => {
    const data = join(dir, 'data');
    const outside = join(dir, 'secret');
    writeFileSync(outside, 'root only\n', { mode: 0o600 });
    san = await San.start(sanConfig({ dataDir: 'data' }), { baseDir: dir });
    expect(san.dataDir).toBe(data);
    expect(statSync(data).mode & 0o777).toBe(0o700);

    expect(
      await ctl(san, { cmd: 'add-volume', array: 'array1', name: 'ok', size: '1MiB', file: 'ok.img' }),
    ).toMatchObject({ ok: true });
    expect(statSync(join(data, 'ok.img')).size).toBe(1 << 20);
    expect(san.array('array1').volume('ok')!.file).toBe(join(data, 'ok.img'));

    symlinkSync(outside, join(data, 'link.img'));
    mkdirSync(join(dir, 'elsewhere'));
    symlinkSync(join(dir, 'elsewhere'), join(data, 'sub'));
    const attempts: [string, RegExp][] = [
      [outside, /outside the data directory/],
      ['../secret', /contains '\.\.'/],
      ['sub/../../secret', /contains '\.\.'/],
      ['link.img', /symbolic link/],
      ['sub/new.img', /outside the data directory/],
      ['missing/new.img', /does not exist/],
      ['ok.img.pr.json', /reserved/],
    ];
    for (const [file, why] of attempts) {
      const r = await ctl(san, { cmd: 'add-volume', array: 'array1', name: 'v', size: '1MiB', file, adopt: true });
      expect(r.ok, file).toBe(false);
      expect(r.error, file).toMatch(why);
    }
    expect(readFileSync(outside, 'utf8')).toBe('root only\n');
    expect(existsSync(join(dir, 'elsewhere', 'new.img'))).toBe(false);
  });

  it('an existing file is adopted (and grown) only with adopt=true', async () => {
    san = await San.start(sanConfig({ dataDir: 'data' }), { baseDir: dir });
    const file = join(dir, 'data', 'old.img');
    writeFileSync(file, Buffer.alloc(4096, 0xab));
    const refused = await ctl(san, { cmd: 'add-volume', array: 'array1', name: 'old', size: '1MiB', file: 'old.img' });
    expect(refused.ok).toBe(false);
    expect(refused.error).toMatch(/already exists.*adopt=true/);
    expect(statSync(file).size).toBe(4096); // not extended either

    expect(
      await ctl(san, { cmd: 'add-volume', array: 'array1', name: 'old', size: '1MiB', file: 'old.img', adopt: true }),
    ).toMatchObject({ ok: true });
    expect(statSync(file).size).toBe(1 << 20);
    const head = await san.array('array1').volume('old')!.readBlocks(0, 8);
    expect(head.every((b) => b === 0xab)).toBe(true);
  });

  it('refuses RAM volumes (and RAM growth) beyond the host memory, with a way out', async () => {
    san = await San.start(sanConfig(), { baseDir: dir });
    const tooBig = Math.ceil((totalmem() * 2) / 512) * 512;
    const before = memoryVolumesCapacity();
    const r = await ctl(san, { cmd: 'add-volume', array: 'array1', name: 'huge', size: tooBig });
    expect(r.ok).toBe(false);
    expect(r.error).toMatch(/more than this host's .* of memory; give the volume a backing file/);
    expect(memoryVolumesCapacity()).toBe(before);

    expect((await ctl(san, { cmd: 'add-volume', array: 'array1', name: 'small', size: '1MiB' })).ok).toBe(true);
    expect(memoryVolumesCapacity()).toBe(before + (1 << 20));
    const grow = await ctl(san, { cmd: 'resize-volume', array: 'array1', name: 'small', size: tooBig });
    expect(grow.ok).toBe(false);
    expect(grow.error).toMatch(/more than this host's/);
    expect(san.array('array1').volume('small')!.sizeBytes).toBe(1 << 20);
    expect((await ctl(san, { cmd: 'remove-volume', array: 'array1', name: 'small' })).ok).toBe(true);
    expect(memoryVolumesCapacity()).toBe(before);
  });
});

describe('configuration file: volume files', () => {
  it('with dataDir, relative files are taken from it and files outside it are refused', async () => {
    const inside = sanConfig({ dataDir: 'data' }, [{ name: 'v', size: '1MiB', file: 'v.img' }]);
    san = await San.start(inside, { baseDir: dir });
    expect(san.array('array1').volume('v')!.file).toBe(join(dir, 'data', 'v.img'));
    await san.close();
    san = null;

    writeFileSync(join(dir, 'outside.img'), '');
    const outside = sanConfig({ dataDir: 'data' }, [{ name: 'v', size: '1MiB', file: join(dir, 'outside.img') }]);
    await expect(San.start(outside, { baseDir: dir })).rejects.toThrow(/outside the data directory/);
    expect(statSync(join(dir, 'outside.img')).size).toBe(0);
  });

  it('adopts existing files by default (a restart finds its data) and refuses them with "existing": "create"', async () => {
    writeFileSync(join(dir, 'old.img'), Buffer.alloc(512, 7));
    san = await San.start(sanConfig({}, [{ name: 'v', size: '1MiB', file: 'old.img' }]), { baseDir: dir });
    expect((await san.array('array1').volume('v')!.readBlocks(0, 1))[0]).toBe(7);
    await san.close();
    san = null;
    await expect(
      San.start(sanConfig({}, [{ name: 'v', size: '1MiB', file: 'old.img', existing: 'create' }]), { baseDir: dir }),
    ).rejects.toThrow(/already exists/);
  });
});

describe('backing file locks', () => {
  it('a second open of an image in use is refused with a clear message, and works once it is closed', async () => {
    const file = join(dir, 'shared.img');
    const first = await Volume.open({ name: 'a', size: '1MiB', file }, ID);
    await expect(Volume.open({ name: 'b', size: '1MiB', file }, ID)).rejects.toThrow(
      /locked by another process .*another `npiv-hba san`/,
    );
    await first.close();
    const again = await Volume.open({ name: 'b', size: '1MiB', file }, ID);
    await again.close();
  });

  it('two SANs on one image: the second is refused while another process holds it', async () => {
    const file = join(dir, 'img');
    writeFileSync(file, '');
    // flock(1) holds LOCK_EX on the file in another process, as a second SAN would.
    // Its own process group, so that flock and the shell under it go together at the end.
    const holder = spawn('flock', ['-x', file, '-c', 'echo locked; exec sleep 30'], {
      stdio: ['ignore', 'pipe', 'inherit'],
      detached: true,
    });
    try {
      await new Promise<void>((resolve, reject) => {
        holder.stdout!.once('data', () => resolve());
        holder.once('error', reject);
      });
      await expect(
        StorageArray.create(testConfig({ volumes: [{ name: 'v', size: '1MiB', file }], hostGroups: [] })),
      ).rejects.toThrow(/locked by another process/);
      expect(statSync(file).size).toBe(0); // refused before touching it
    } finally {
      process.kill(-holder.pid!, 'SIGKILL');
      holder.stdout!.destroy();
    }
  });
});
