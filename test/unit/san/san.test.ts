/**
 * The assembled SAN with the real storage arrays (src/san/array.ts): an initiator logs in over the
 * link socket, finds the array's ports, reads and writes; run-time changes arrive through the
 * control socket; file-backed data survives a SAN restart.
 */
import net from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ControlServer, controlRequest } from '../../../src/san/control.js';
import { type SanConfig, parseSanConfig } from '../../../src/san/config.js';
import { FC4_FEATURE } from '../../../src/fc/ct.js';
import type { RscnPage } from '../../../src/fc/els.js';
import { Initiator, type ScsiResult } from '../../../src/fc/initiator.js';
import { San } from '../../../src/san/san.js';
import { INQUIRY, REPORT_LUNS, read10, write10 } from './fake-scsi.js';
import { until } from './helpers.js';

const HOST = { wwpn: 0xc05076ffe5000001n, wwnn: 0xc05076ffe5000000n, exchangeTimeoutMs: 1000 };
const OTHER = { wwpn: 0xc05076ffe5000002n, wwnn: 0xc05076ffe5000000n, exchangeTimeoutMs: 1000 };
const P1 = '50:0a:09:81:00:00:00:01';
const P2 = '50:0a:09:82:00:00:00:01';

function config(dir: string): SanConfig {
  return parseSanConfig({
    fabric: {
      name: 'fab',
      domain: 2,
      zoning: { default: 'deny', zones: [{ name: 'z', members: ['c0:50:76:ff:e5:00:00:01', P1, P2] }] },
    },
    arrays: [
      {
        name: 'array1',
        ports: [
          { wwpn: P1, wwnn: '50:0a:09:80:00:00:00:01' },
          { wwpn: P2, wwnn: '50:0a:09:80:00:00:00:01' },
        ],
        volumes: [
          { name: 'disk', size: '4MiB', file: join(dir, 'disk.img') },
          { name: 'ram', size: '1MiB' },
        ],
        hostGroups: [{ name: 'host', initiators: ['c0:50:76:ff:e5:00:00:01'], luns: { '0': 'disk', '1': 'ram' } }],
      },
    ],
  });
}

function lunList(r: ScsiResult): number[] {
  const len = new DataView(r.data.buffer, r.data.byteOffset).getUint32(0);
  const out: number[] = [];
  for (let o = 8; o < 8 + len && o + 8 <= r.data.length; o += 8) out.push(((r.data[o]! & 0x3f) << 8) | r.data[o + 1]!);
  return out;
}

/** Run a command, retrying once past a unit attention (as a host does). */
async function command(i: Initiator, t: number, cmd: Parameters<Initiator['scsiCommand']>[1]): Promise<ScsiResult> {
  for (let tries = 0; tries < 4; tries++) {
    const r = await i.scsiCommand(t, cmd);
    if (r.status === 2 && r.sense && (r.sense[2]! & 0xf) === 6) continue;
    return r;
  }
  throw new Error('unit attention did not clear');
}

async function loginToTargets(i: Initiator): Promise<number[]> {
  await i.scr();
  await i.nameServer.register({ fcpFeatures: FC4_FEATURE.INITIATOR });
  const targets = await i.discoverTargets();
  for (const t of targets) {
    await i.plogi(t.nportId);
    await i.prli(t.nportId);
  }
  return targets.map((t) => t.nportId);
}

describe('SAN with real storage arrays', () => {
  let dir: string;
  let san: San;
  let control: ControlServer;
  let linkPath: string;
  let controlPath: string;
  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'san-'));
    linkPath = join(dir, 'link.sock');
    controlPath = join(dir, 'ctl.sock');
    san = await San.start(config(dir), { linkPath, baseDir: dir, targetPortOptions: { exchangeTimeoutMs: 1000 } });
    control = await ControlServer.listen(san, controlPath);
  });
  afterEach(async () => {
    await control.close();
    await san.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves INQUIRY, REPORT LUNS, WRITE and READ through both array ports', async () => {
    const host = await Initiator.connect(linkPath, HOST);
    const targets = await loginToTargets(host);
    expect(targets).toHaveLength(2);
    for (const t of targets) {
      const inq = await command(host, t, { lun: 0, cdb: INQUIRY, direction: 'read', expectedLength: 36 });
      expect(inq.status).toBe(0);
      expect(inq.data[0]! & 0x1f).toBe(0); // direct-access block device
      const luns = await command(host, t, { lun: 0, cdb: REPORT_LUNS, direction: 'read', expectedLength: 256 });
      expect(lunList(luns)).toEqual([0, 1]);
    }
    const data = Uint8Array.from({ length: 64 * 512 }, (_, i) => (i * 13) & 0xff);
    const w = await command(host, targets[0]!, { lun: 1, cdb: write10(8, 64), direction: 'write', dataOut: data });
    expect(w.status).toBe(0);
    // Read back through the other port: one volume behind both.
    const r = await command(host, targets[1]!, {
      lun: 1,
      cdb: read10(8, 64),
      direction: 'read',
      expectedLength: data.length,
    });
    expect(r.status).toBe(0);
    expect(r.data).toEqual(data);
    host.closeLink();
  });

  it('keeps file-backed data across a SAN restart', async () => {
    const data = Uint8Array.from({ length: 16 * 512 }, (_, i) => (i * 31 + 7) & 0xff);
    let host = await Initiator.connect(linkPath, HOST);
    let [t] = await loginToTargets(host);
    expect((await command(host, t!, { lun: 0, cdb: write10(100, 16), direction: 'write', dataOut: data })).status).toBe(
      0,
    );
    host.closeLink();
    await control.close();
    await san.close();

    san = await San.start(config(dir), { linkPath, baseDir: dir });
    control = await ControlServer.listen(san, controlPath);
    host = await Initiator.connect(linkPath, HOST);
    [t] = await loginToTargets(host);
    const r = await command(host, t!, { lun: 0, cdb: read10(100, 16), direction: 'read', expectedLength: data.length });
    expect(r.status).toBe(0);
    expect(r.data).toEqual(data);
    host.closeLink();
  });

  it('applies run-time changes from the control socket', async () => {
    const host = await Initiator.connect(linkPath, HOST);
    const targets = await loginToTargets(host);
    const t = targets[0]!;
    const rscns: RscnPage[][] = [];
    host.on('rscn', (p) => rscns.push(p));

    const status = await controlRequest(controlPath, { id: 1, cmd: 'status' });
    expect(status).toMatchObject({ id: 1, ok: true });
    const s = status.result as ReturnType<San['status']>;
    expect(s.logins.map((l) => l.wwpn)).toContain('c0:50:76:ff:e5:00:00:01');
    expect(s.targetPorts.every((p) => p.up && p.sessions.some((x) => x.fcp))).toBe(true);

    // New volume mapped as LUN 5: REPORT LUNS shows it (after the unit attention).
    expect(
      await controlRequest(controlPath, { cmd: 'add-volume', array: 'array1', name: 'extra', size: '2MiB' }),
    ).toMatchObject({ ok: true });
    expect(
      await controlRequest(controlPath, {
        cmd: 'map-lun',
        array: 'array1',
        hostGroup: 'host',
        lun: '5',
        volume: 'extra',
      }),
    ).toMatchObject({ ok: true });
    expect(
      lunList(await command(host, t, { lun: 0, cdb: REPORT_LUNS, direction: 'read', expectedLength: 256 })),
    ).toEqual([0, 1, 5]);
    expect(
      await controlRequest(controlPath, { cmd: 'resize-volume', array: 'array1', name: 'extra', size: '3MiB' }),
    ).toMatchObject({ ok: true });
    const cap = await command(host, t, {
      lun: 5,
      cdb: Uint8Array.of(0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0),
      direction: 'read',
      expectedLength: 8,
    });
    expect(new DataView(cap.data.buffer, cap.data.byteOffset).getUint32(0) + 1).toBe((3 * 1024 * 1024) / 512);
    expect(
      await controlRequest(controlPath, { cmd: 'unmap-lun', array: 'array1', hostGroup: 'host', lun: 5 }),
    ).toMatchObject({ ok: true });
    expect(
      lunList(await command(host, t, { lun: 0, cdb: REPORT_LUNS, direction: 'read', expectedLength: 256 })),
    ).toEqual([0, 1]);

    // Target port down: RSCN, the port leaves the name server; up again: back.
    const before = rscns.length;
    expect(await controlRequest(controlPath, { cmd: 'port-down', wwpn: P2 })).toMatchObject({ ok: true });
    await until(() => rscns.length > before, 'RSCN after port-down');
    expect((await host.discoverTargets()).map((x) => x.wwpn)).toEqual([0x500a098100000001n]);
    expect(await controlRequest(controlPath, { cmd: 'port-up', wwpn: P2 })).toMatchObject({ ok: true });
    expect((await host.discoverTargets()).map((x) => x.wwpn).sort()).toEqual([
      0x500a098100000001n,
      0x500a098200000001n,
    ]);

    // Zoning: remove the host from the zone; it is told and loses sight of the array.
    const n = rscns.length;
    expect(
      await controlRequest(controlPath, { cmd: 'zone-remove-member', zone: 'z', wwpn: 'c0:50:76:ff:e5:00:00:01' }),
    ).toMatchObject({ ok: true });
    await until(() => rscns.length > n, 'RSCN after zoning change');
    expect(await host.discoverTargets()).toEqual([]);
    // A second host in a zone created at run time sees the array.
    expect(
      await controlRequest(controlPath, { cmd: 'zone-create', name: 'z2', members: ['c0:50:76:ff:e5:00:00:02', P1] }),
    ).toMatchObject({ ok: true });
    const other = await Initiator.connect(linkPath, OTHER);
    await other.nameServer.register({ fcpFeatures: FC4_FEATURE.INITIATOR });
    expect((await other.discoverTargets()).map((x) => x.wwpn)).toEqual([0x500a098100000001n]);
    other.closeLink();
    host.closeLink();
  });

  it('refuses to bring up a target port whose WWPN an HBA has taken, and keeps running', async () => {
    expect(await controlRequest(controlPath, { cmd: 'port-down', wwpn: P2 })).toMatchObject({ ok: true });
    const squatter = await Initiator.connect(linkPath, { wwpn: 0x500a098200000001n, wwnn: 0x500a098000000001n });
    const up = await controlRequest(controlPath, { cmd: 'port-up', wwpn: P2 });
    expect(up.ok).toBe(false);
    expect(up.error).toMatch(/could not log in/);
    squatter.closeLink();
    await until(() => san.fabric.findByWwpn(0x500a098200000001n) === undefined, 'squatter gone');
    expect(await controlRequest(controlPath, { cmd: 'port-up', wwpn: P2 })).toMatchObject({ ok: true });
    expect(san.status().targetPorts.every((p) => p.up)).toBe(true);
  });

  it('shuts down promptly with HBAs and control clients still connected', async () => {
    const host = await Initiator.connect(linkPath, HOST);
    const down = new Promise<string>((r) => host.once('link-down', r));
    const idle = net.createConnection({ path: controlPath });
    await new Promise((r) => idle.once('connect', r));
    const hungUp = new Promise((r) => idle.once('close', r));
    await control.close();
    await san.close();
    expect(await down).toMatch(/peer closed|socket/);
    await hungUp;
  });

  it('answers bad control requests with errors and survives hostile input', async () => {
    expect(await controlRequest(controlPath, { cmd: 'fly' })).toMatchObject({ ok: false });
    const missing = await controlRequest(controlPath, { cmd: 'add-volume', array: 'array1' });
    expect(missing.ok).toBe(false);
    expect(missing.error).toMatch(/name/);
    expect((await controlRequest(controlPath, { cmd: 'remove-volume', array: 'nope', name: 'x' })).error).toMatch(
      /no array named 'nope'/,
    );
    expect((await controlRequest(controlPath, { cmd: 'port-down', wwpn: 'zz' })).error).toMatch(/wwpn: invalid WWN/);
    // Raw garbage, then an over-long line: the server answers or hangs up, and keeps serving.
    const raw = await new Promise<string>((resolve) => {
      const s = net.createConnection({ path: controlPath });
      let got = '';
      s.setEncoding('utf8');
      s.on('data', (d: string) => (got += d));
      s.on('close', () => resolve(got));
      s.on('connect', () => {
        s.write('this is not json\n');
        s.write('x'.repeat(70 * 1024));
      });
    });
    expect(raw.split('\n')[0]).toContain('not valid JSON');
    expect(raw).toMatch(/longer than/);
    expect((await controlRequest(controlPath, { cmd: 'status' })).ok).toBe(true);
  });
});
