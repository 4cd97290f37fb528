/**
 * Data-path grants end to end over a real link socket (SCM_RIGHTS): an initiator asks for a grant,
 * serves READ/WRITE from the volume's descriptor, and loses the grant on every SAN state change
 * that needs the frame path; I/O in flight at revocation completes; hostile CDBs never leave the
 * granted range; the counters reach the SAN's statistics.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type SanConfig, parseSanConfig } from '../../../src/san/config.js';
import { FC4_FEATURE } from '../../../src/fc/ct.js';
import { DataPathClient, type DataPathResult } from '../../../src/fc/data-path-client.js';
import { Initiator, lunField } from '../../../src/fc/initiator.js';
import { San } from '../../../src/san/san.js';
import { read10, write10 } from './fake-scsi.js';
import { until } from './helpers.js';

const HOST = { wwpn: 0xc05076ffe5000001n, wwnn: 0xc05076ffe5000000n, exchangeTimeoutMs: 1000 };
const OTHER = { wwpn: 0xc05076ffe5000002n, wwnn: 0xc05076ffe5000000n, exchangeTimeoutMs: 1000 };
const P1 = '50:0a:09:81:00:00:00:01';
const BLOCKS_RAM = 2048; // 1 MiB of 512-byte blocks

function config(dir: string): SanConfig {
  return parseSanConfig({
    fabric: { name: 'fab', domain: 2, zoning: { default: 'allow', zones: [] } },
    arrays: [
      {
        name: 'array1',
        ports: [{ wwpn: P1, wwnn: '50:0a:09:80:00:00:00:01' }],
        volumes: [
          { name: 'disk', size: '4MiB', file: join(dir, 'disk.img') },
          { name: 'ram', size: '1MiB' },
        ],
        hostGroups: [
          {
            name: 'host',
            initiators: ['c0:50:76:ff:e5:00:00:01', 'c0:50:76:ff:e5:00:00:02'],
            luns: { '0': 'disk', '1': 'ram' },
          },
        ],
      },
    ],
  });
}

function read16(lba: bigint, blocks: number): Uint8Array {
  const c = new Uint8Array(16);
  c[0] = 0x88;
  new DataView(c.buffer).setBigUint64(2, lba);
  new DataView(c.buffer).setUint32(10, blocks);
  return c;
}

function write16(lba: bigint, blocks: number, flags = 0): Uint8Array {
  const c = read16(lba, blocks);
  c[0] = 0x8a;
  c[1] = flags;
  return c;
}

function pattern(n: number, seed: number): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => (i * 7 + seed * 13 + (i >> 9)) & 0xff);
}

describe('data-path grants', () => {
  let dir: string;
  let san: San;
  let linkPath: string;
  const hosts: Initiator[] = [];

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'san-dp-'));
    linkPath = join(dir, 'link.sock');
    san = await San.start(config(dir), {
      linkPath,
      baseDir: dir,
      dataPath: true,
      targetPortOptions: { exchangeTimeoutMs: 1000 },
    });
  });
  afterEach(async () => {
    for (const h of hosts.splice(0)) h.closeLink();
    await san.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function login(opts = HOST): Promise<{ host: Initiator; target: number }> {
    const host = await Initiator.connect(linkPath, opts);
    hosts.push(host);
    await host.scr();
    await host.nameServer.register({ fcpFeatures: FC4_FEATURE.INITIATOR });
    const [t] = await host.discoverTargets();
    await host.plogi(t!.nportId);
    await host.prli(t!.nportId);
    return { host, target: t!.nportId };
  }

  /** The data path if granted (null: it would go as frames). */
  async function fast(
    host: Initiator,
    target: number,
    lun: number,
    cdb: Uint8Array,
    data: Uint8Array[],
    direction: 'read' | 'write',
  ): Promise<DataPathResult | null> {
    const expectedLength = data.reduce((n, v) => n + v.length, 0);
    const r = host.dataPathCommand(target, { lun: lunField(lun), cdb, direction, expectedLength, data });
    return r instanceof Promise ? await r : r;
  }

  /** A frame-path command, clearing unit attentions first (as a host would). */
  async function frames(host: Initiator, target: number, cmd: Parameters<Initiator['scsiCommand']>[1]) {
    for (let tries = 0; tries < 6; tries++) {
      const r = await host.scsiCommand(target, cmd);
      if (r.status === 2 && r.sense && (r.sense[2]! & 0xf) === 6) continue;
      return r;
    }
    throw new Error('unit attention did not clear');
  }

  /** Clears UAs on a LUN and waits until the data path is granted for it. */
  async function granted(host: Initiator, target: number, lun: number): Promise<void> {
    const client = DataPathClient.existing(host.mux.link);
    const buf = new Uint8Array(512);
    for (let i = 0; i < 400; i++) {
      await frames(host, target, { lun, cdb: read10(0, 1), direction: 'read', expectedLength: 512 });
      if (await fast(host, target, lun, read10(0, 1), [buf], 'read')) return;
      await new Promise((r) => setTimeout(r, 10));
      void client;
    }
    throw new Error(`no grant for LUN ${lun}`);
  }

  it('grants a nexus, serves READ/WRITE from the volume descriptor into and out of the views', async () => {
    const { host, target } = await login();
    await granted(host, target, 1);
    expect(san.dataPath.active).toBe(1);
    // A write split across three views lands contiguously; the frame path reads it back.
    const data = pattern(24 * 512, 3);
    const w = await fast(
      host,
      target,
      1,
      write10(100, 24),
      [data.subarray(0, 1000), data.subarray(1000, 9000), data.subarray(9000)],
      'write',
    );
    expect(w).toEqual({ status: 0, sense: null, transferred: data.length });
    await san.dataPath.setEnabled(false);
    const r = await frames(host, target, {
      lun: 1,
      cdb: read10(100, 24),
      direction: 'read',
      expectedLength: data.length,
    });
    expect(r.status).toBe(0);
    expect(r.data).toEqual(data);
    // Frames write, the data path (re-granted) reads into two views.
    const data2 = pattern(8 * 512, 9);
    expect(
      (await frames(host, target, { lun: 1, cdb: write10(300, 8), direction: 'write', dataOut: data2 })).status,
    ).toBe(0);
    await san.dataPath.setEnabled(true);
    await granted(host, target, 1);
    const a = new Uint8Array(100);
    const b = new Uint8Array(data2.length - 100);
    expect(await fast(host, target, 1, read16(300n, 8), [a, b], 'read')).toEqual({
      status: 0,
      sense: null,
      transferred: data2.length,
    });
    expect([...a, ...b]).toEqual([...data2]);
  });

  it('never serves a CDB outside the granted range or unlike the array would; the frame path answers it', async () => {
    const { host, target } = await login();
    await granted(host, target, 1);
    const buf = (n: number) => [new Uint8Array(n)];
    const hostile: [Uint8Array, Uint8Array[], 'read' | 'write'][] = [
      [read10(BLOCKS_RAM - 1, 2), buf(1024), 'read'], // crosses the end
      [read10(BLOCKS_RAM, 1), buf(512), 'read'], // starts at the end
      [read16(0xffff_ffff_ffff_fff0n, 32), buf(32 * 512), 'read'], // wraps in 64 bits
      [read16(2n ** 53n, 1), buf(512), 'read'], // beyond a double's exact range
      [write16(BigInt(BLOCKS_RAM) - 1n, 2), buf(1024), 'write'],
      [read10(0, 4), buf(512), 'read'], // FCP_DL shorter than the CDB's transfer
      [read10(0, 1), buf(1024), 'read'], // FCP_DL longer
      [read10(0, 1), buf(512), 'write'], // direction unlike the opcode
      [Uint8Array.of(0x28, 0x20, 0, 0, 0, 0, 0, 0, 1, 0), buf(512), 'read'], // RDPROTECT
      [Uint8Array.of(0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0x04), buf(512), 'read'], // NACA
      [read10(0, 0), [], 'read'], // no blocks
      [Uint8Array.of(0x08, 0, 0, 0, 1, 0), buf(512), 'read'], // READ(6): not on the data path
      [Uint8Array.of(0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0), [], 'read'], // SYNCHRONIZE CACHE
      [read10(0, 1), [new Uint8Array(0), new Uint8Array(512)], 'read'], // a detached view
    ];
    for (const [cdb, data, dir] of hostile) expect(await fast(host, target, 1, cdb, data, dir)).toBeNull();
    // The frame path gives the array's answer: LBA OUT OF RANGE (05/21/00).
    const r = await frames(host, target, {
      lun: 1,
      cdb: read10(BLOCKS_RAM - 1, 2),
      direction: 'read',
      expectedLength: 1024,
    });
    expect(r.status).toBe(2);
    expect([r.sense![2]! & 0xf, r.sense![12], r.sense![13]]).toEqual([5, 0x21, 0]);
    // And the grant still serves well-formed I/O.
    expect(await fast(host, target, 1, read10(BLOCKS_RAM - 1, 1), buf(512), 'read')).not.toBeNull();
  });

  describe('each SAN state change that needs the frame path revokes the grant', () => {
    const triggers: [string, (s: San, ctx: { host: Initiator; target: number }) => Promise<unknown>][] = [
      ['an injected fault', async (s) => s.faults.add({ kind: 'delay', delayMs: 1 })],
      ['a zoning change', async (s) => s.changeZoning((z) => z.setDefaultZone('deny'))],
      ['a LUN map change', async (s) => s.unmapLun('array1', 'host', 1)],
      ['a volume resize', async (s) => s.resizeVolume('array1', 'ram', '2MiB')],
      ['the target port going down', async (s) => s.targetPortDown(BigInt(`0x${P1.replaceAll(':', '')}`))],
      ['grants switched off', async (s) => s.dataPath.setEnabled(false)],
      [
        'a unit attention (LUN reset by another initiator)',
        async (_s) => {
          const other = await login(OTHER);
          return other.host.taskManagement(other.target, 1, 'lun-reset');
        },
      ],
      [
        'a persistent reservation',
        async (_s, { host, target }) => {
          // REGISTER key 0x11 (SERVICE ACTION RESERVATION KEY), then RESERVE with it.
          const reg = new Uint8Array(24);
          reg[15] = 0x11;
          const register = Uint8Array.of(0x5f, 0x00, 0, 0, 0, 0, 0, 0, 24, 0);
          expect((await frames(host, target, { lun: 1, cdb: register, direction: 'write', dataOut: reg })).status).toBe(
            0,
          );
          const res = new Uint8Array(24);
          res[7] = 0x11;
          const reserve = Uint8Array.of(0x5f, 0x01, 0x01, 0, 0, 0, 0, 0, 24, 0); // WRITE EXCLUSIVE
          return frames(host, target, { lun: 1, cdb: reserve, direction: 'write', dataOut: res });
        },
      ],
      [
        'START STOP UNIT (stop)',
        async (_s, { host, target }) =>
          frames(host, target, { lun: 1, cdb: Uint8Array.of(0x1b, 0, 0, 0, 0, 0), direction: 'none' }),
      ],
    ];
    for (const [what, trigger] of triggers) {
      it(what, async () => {
        const ctx = await login();
        await granted(ctx.host, ctx.target, 1);
        const client = DataPathClient.existing(ctx.host.mux.link)!;
        expect(client.heldGrants).toBe(1);
        const revokedBefore = san.dataPath.stats.revoked;
        await trigger(san, ctx);
        await until(() => san.dataPath.active === 0, 'the grant is revoked and acknowledged');
        expect(san.dataPath.stats.revoked).toBeGreaterThan(revokedBefore);
        expect(client.heldGrants).toBe(0);
        expect(await fast(ctx.host, ctx.target, 1, read10(0, 1), [new Uint8Array(512)], 'read')).toBeNull();
      });
    }

    it('a write-cache change on a file volume (MODE SELECT from another initiator)', async () => {
      const ctx = await login();
      await granted(ctx.host, ctx.target, 0);
      const other = await login(OTHER);
      // MODE SENSE(10) of the caching page (DBD), then MODE SELECT(10) of it with WCE=0.
      const sense = await frames(other.host, other.target, {
        lun: 0,
        cdb: Uint8Array.of(0x5a, 0x08, 0x08, 0, 0, 0, 0, 0, 0xff, 0),
        direction: 'read',
        expectedLength: 255,
      });
      expect(sense.status).toBe(0);
      const list = sense.data.slice(0, 8 + 2 + sense.data[9]!);
      list[0] = 0;
      list[1] = 0;
      list[3] = 0;
      list[8 + 2]! &= ~0x04;
      const cdb = Uint8Array.of(0x55, 0x10, 0, 0, 0, 0, 0, 0, list.length, 0);
      const r = await frames(other.host, other.target, { lun: 0, cdb, direction: 'write', dataOut: list });
      expect(r.status).toBe(0);
      // The MODE SELECT completed only after the revocation was acknowledged.
      expect(san.dataPath.active).toBe(0);
    });
  });

  it('I/O in flight when the grant is revoked completes; the release waits for it', async () => {
    const { host, target } = await login();
    await granted(host, target, 0); // the file volume: FUA needs fdatasync, which is asynchronous
    const data = pattern(64 * 512, 5);
    const writes = [0, 1, 2, 3].map((i) => fast(host, target, 0, write16(BigInt(i * 64), 64, 0x08), [data], 'write'));
    const revoked = san.dataPath.setEnabled(false);
    const results = await Promise.all(writes);
    for (const r of results) expect(r).toEqual({ status: 0, sense: null, transferred: data.length });
    await revoked;
    expect(san.dataPath.active).toBe(0);
    // Every write is in the volume (read by the frame path) and counted.
    for (let i = 0; i < 4; i++) {
      const r = await frames(host, target, {
        lun: 0,
        cdb: read10(i * 64, 64),
        direction: 'read',
        expectedLength: data.length,
      });
      expect(r.data).toEqual(data);
    }
    const c = san.dataPath.countersFor(san.array('array1').volume('disk')!);
    expect(c.writes).toBe(4);
    expect(c.writeBytes).toBe(4 * data.length);
  });

  it('reports data-path counters to the SAN in batches', async () => {
    const { host, target } = await login();
    await granted(host, target, 1);
    const before = san.dataPath.countersFor(san.array('array1').volume('ram')!);
    for (let i = 0; i < 10; i++)
      expect(await fast(host, target, 1, read10(i, 1), [new Uint8Array(512)], 'read')).not.toBeNull();
    await until(
      () => san.dataPath.countersFor(san.array('array1').volume('ram')!).reads >= before.reads + 10,
      'the STATS batch arrives',
    );
    expect(san.status().dataPath?.volumes.find((v) => v.volume === 'ram')?.readBytes).toBeGreaterThanOrEqual(
      before.readBytes + 10 * 512,
    );
  });

  it('gives no grant while a pcap is recorded, nor when switched off', async () => {
    await san.close();
    san = await San.start(config(dir), { linkPath, baseDir: dir, pcapPath: join(dir, 't.pcap') });
    const { host, target } = await login();
    await frames(host, target, { lun: 1, cdb: read10(0, 1), direction: 'read', expectedLength: 512 });
    // The first READ on the data path asks for a grant (and goes as frames).
    expect(await fast(host, target, 1, read10(0, 1), [new Uint8Array(512)], 'read')).toBeNull();
    await until(() => san.dataPath.stats.denied > 0, 'the request is denied');
    expect(san.dataPath.stats.denied).toBeGreaterThan(0);
    expect(san.dataPath.active).toBe(0);
    expect(await fast(host, target, 1, read10(0, 1), [new Uint8Array(512)], 'read')).toBeNull();
  });
});
