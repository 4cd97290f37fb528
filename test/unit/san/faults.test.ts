/**
 * Fault injection (src/san/faults.ts) and administrative link down/up, driven through the SAN's
 * control socket exactly as `npiv-hba san ctl` does, observed by a real N_Port initiator.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ControlServer, controlRequest } from '../../../src/san/control.js';
import { parseSanConfig } from '../../../src/san/config.js';
import { FC4_FEATURE } from '../../../src/fc/ct.js';
import { cdbBlockRange, FaultInjector } from '../../../src/san/faults.js';
import { ElsRejectError } from '../../../src/fc/nport/errors.js';
import { Initiator, type ScsiResult } from '../../../src/fc/initiator.js';
import { San } from '../../../src/san/san.js';
import { parseWwn } from '../../../src/util/wwn.js';
import { linkPair } from '../../../src/fc/link.js';
import { encodeHeader, FC_HEADER_SIZE } from '../../../src/fc/frame.js';
import { read10, write10 } from './fake-scsi.js';
import { until } from './helpers.js';

const HOST_WWPN = 'c0:50:76:ff:e5:00:00:01';
const HOST = { wwpn: parseWwn(HOST_WWPN), wwnn: 0xc05076ffe5000000n, exchangeTimeoutMs: 1000 };
const P1 = '50:0a:09:81:00:00:00:01';
const SCSI_TIMEOUT_MS = 1500;

function config() {
  return parseSanConfig({
    fabric: { name: 'fab', domain: 2, zoning: { default: 'allow', zones: [] } },
    arrays: [
      {
        name: 'array1',
        ports: [{ wwpn: P1, wwnn: '50:0a:09:80:00:00:00:01' }],
        volumes: [{ name: 'ram', size: '1MiB' }],
        hostGroups: [{ name: 'host', initiators: [HOST_WWPN], luns: { '0': 'ram' } }],
      },
    ],
  });
}

const senseOf = (r: ScsiResult): [number, number, number] => [r.sense![2]! & 0xf, r.sense![12]!, r.sense![13]!];

describe('fault injection through the control socket', () => {
  let dir: string;
  let san: San;
  let control: ControlServer;
  let linkPath: string;
  let ctlPath: string;
  const ctl = async (cmd: string, args: Record<string, unknown> = {}) => {
    const r = await controlRequest(ctlPath, { cmd, ...args });
    if (!r.ok) throw new Error(r.error);
    return r.result as Record<string, unknown>;
  };

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'faults-'));
    linkPath = join(dir, 'link.sock');
    ctlPath = join(dir, 'ctl.sock');
    san = await San.start(config(), { linkPath, targetPortOptions: { exchangeTimeoutMs: 1000 } });
    control = await ControlServer.listen(san, ctlPath);
  });
  afterEach(async () => {
    await control.close();
    await san.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function loggedIn(): Promise<{ host: Initiator; target: number }> {
    const host = await Initiator.connect(linkPath, HOST);
    await host.scr();
    await host.nameServer.register({ fcpFeatures: FC4_FEATURE.INITIATOR });
    const [t] = await host.discoverTargets();
    await host.plogi(t!.nportId);
    await host.prli(t!.nportId);
    // Clear the power-on unit attention.
    await host.scsiCommand(t!.nportId, { lun: 0, cdb: read10(0, 1), direction: 'read', expectedLength: 512 });
    return { host, target: t!.nportId };
  }

  const data = Uint8Array.from({ length: 8 * 512 }, (_, i) => (i * 7 + 3) & 0xff);

  it('scsi-error: MEDIUM ERROR on reads and writes of the LBA range only, until cleared', async () => {
    const { host, target } = await loggedIn();
    expect(
      (await host.scsiCommand(target, { lun: 0, cdb: write10(96, 8), direction: 'write', dataOut: data })).status,
    ).toBe(0);
    const { id } = await ctl('fault-add', { kind: 'scsi-error', wwpn: P1, lun: 0, lba: 100, blocks: 4 });
    const bad = await host.scsiCommand(target, {
      lun: 0,
      cdb: read10(96, 8),
      direction: 'read',
      expectedLength: data.length,
    });
    expect(bad.status).toBe(2);
    expect(senseOf(bad)).toEqual([3, 0x11, 0]);
    const badWrite = await host.scsiCommand(target, {
      lun: 0,
      cdb: write10(103, 1),
      direction: 'write',
      dataOut: data.subarray(0, 512),
    });
    expect(badWrite.status).toBe(2);
    expect(senseOf(badWrite)).toEqual([3, 0x0c, 0]);
    const outside = await host.scsiCommand(target, {
      lun: 0,
      cdb: read10(104, 8),
      direction: 'read',
      expectedLength: 4096,
    });
    expect(outside.status).toBe(0);
    const list = (await ctl('fault-list')) as unknown as { id: number; hits: number }[];
    expect(list.find((f) => f.id === id)?.hits).toBe(2);
    expect(await ctl('fault-clear', { id })).toEqual({ removed: 1 });
    const good = await host.scsiCommand(target, {
      lun: 0,
      cdb: read10(96, 8),
      direction: 'read',
      expectedLength: data.length,
    });
    expect(good.status).toBe(0);
    expect(good.data).toEqual(data); // the failed write never reached the volume
    host.closeLink();
  });

  it('drop: a lost data frame fails the whole exchange (no silently missing data); the retry reads intact data', async () => {
    const { host, target } = await loggedIn();
    expect(
      (await host.scsiCommand(target, { lun: 0, cdb: write10(0, 8), direction: 'write', dataOut: data })).status,
    ).toBe(0);
    await ctl('fault-add', { kind: 'drop', wwpn: HOST_WWPN, direction: 'to', frames: 'fcp-data', count: 1 });
    await expect(
      host.scsiCommand(target, {
        lun: 0,
        cdb: read10(0, 8),
        direction: 'read',
        expectedLength: data.length,
        timeoutMs: SCSI_TIMEOUT_MS,
      }),
    ).rejects.toThrow();
    const again = await host.scsiCommand(target, {
      lun: 0,
      cdb: read10(0, 8),
      direction: 'read',
      expectedLength: data.length,
    });
    expect(again.status).toBe(0);
    expect(again.data).toEqual(data);
    host.closeLink();
  });

  it('corrupt: a garbled FCP_RSP is detected by the initiator; delay and slow-target keep data intact', async () => {
    const { host, target } = await loggedIn();
    await ctl('fault-add', { kind: 'corrupt', frames: 'fcp-rsp', count: 1 });
    await expect(
      host.scsiCommand(target, {
        lun: 0,
        cdb: write10(8, 8),
        direction: 'write',
        dataOut: data,
        timeoutMs: SCSI_TIMEOUT_MS,
      }),
    ).rejects.toThrow(/FCP_RSP|exchange failed/);
    await ctl('fault-clear');
    await ctl('fault-add', { kind: 'slow-target', wwpn: P1, latencyMs: 20 });
    await ctl('fault-add', { kind: 'delay', wwpn: HOST_WWPN, direction: 'from', delayMs: 10, probability: 0.5 });
    expect(
      (await host.scsiCommand(target, { lun: 0, cdb: write10(8, 8), direction: 'write', dataOut: data })).status,
    ).toBe(0);
    const r = await host.scsiCommand(target, {
      lun: 0,
      cdb: read10(8, 8),
      direction: 'read',
      expectedLength: data.length,
    });
    expect(r.status).toBe(0);
    expect(r.data).toEqual(data);
    const list = (await ctl('fault-list')) as unknown as { spec: { kind: string }; hits: number }[];
    expect(list.find((f) => f.spec.kind === 'slow-target')!.hits).toBeGreaterThan(0);
    host.closeLink();
  });

  it('reject-login: PLOGI and FLOGI are answered with LS_RJT while the fault is set', async () => {
    const { host, target } = await loggedIn();
    await ctl('fault-add', { kind: 'reject-login', logins: ['plogi'], wwpn: HOST_WWPN, direction: 'from' });
    await expect(host.plogi(target)).rejects.toBeInstanceOf(ElsRejectError);
    host.closeLink();
    await ctl('fault-clear');
    await ctl('fault-add', { kind: 'reject-login', logins: 'flogi', count: 1 });
    await expect(Initiator.connect(linkPath, HOST)).rejects.toThrow();
    const ok = await Initiator.connect(linkPath, HOST); // count exhausted
    expect(ok.loggedIn).toBe(true);
    ok.closeLink();
  });

  it('link-down holds an HBA port down until link-up', async () => {
    const { host } = await loggedIn();
    const downs: string[] = [];
    host.on('link-down', (r) => downs.push(r));
    await ctl('link-down', { wwpn: HOST_WWPN });
    await until(() => downs.length === 1, 'host link down');
    await expect(Initiator.connect(linkPath, HOST)).rejects.toThrow();
    await ctl('link-up', { wwpn: HOST_WWPN });
    const back = await Initiator.connect(linkPath, HOST);
    expect(back.loggedIn).toBe(true);
    back.closeLink();
    await expect(ctl('link-up', { wwpn: HOST_WWPN })).rejects.toThrow(/not held down/);
  });

  it('rscn-storm and port-flap run to completion; a target flap ends with the port up', async () => {
    const { host } = await loggedIn();
    let rscns = 0;
    host.on('rscn', () => rscns++);
    await ctl('fault-add', { kind: 'rscn-storm', count: 5, intervalMs: 1 });
    await until(() => rscns >= 5, 'five RSCNs');
    const { id } = await ctl('fault-add', { kind: 'port-flap', wwpn: P1, cycles: 2, downMs: 20, upMs: 20 });
    await until(() => san.faults.list().find((f) => f.id === id)?.active === false, 'flap done');
    expect(san.faults.list().find((f) => f.id === id)?.hits).toBe(2);
    expect(san.status().targetPorts[0]!.up).toBe(true);
    host.closeLink();
  });

  it('rejects invalid fault specifications with a message', async () => {
    await expect(ctl('fault-add', { kind: 'scsi-error' })).rejects.toThrow(/lba/);
    await expect(ctl('fault-add', { kind: 'drop', probability: 2 })).rejects.toThrow(/probability/);
    await expect(ctl('fault-add', { kind: 'melt' })).rejects.toThrow(/kind/);
    await expect(ctl('fault-add', { kind: 'slow-target', latencyMs: 5 })).rejects.toThrow(/wwpn/);
    expect(await ctl('fault-list')).toEqual([]);
  });
});

describe('FaultInjector pieces', () => {
  it('decodes the LBA range of READ/WRITE 6/10/12/16 and ignores other commands', () => {
    expect(cdbBlockRange(Uint8Array.of(0x08, 0x01, 0x02, 0x03, 0, 0))).toEqual({
      op: 'read',
      lba: 0x10203,
      blocks: 256,
    });
    expect(cdbBlockRange(write10(0x12345678, 9))).toEqual({ op: 'write', lba: 0x12345678, blocks: 9 });
    const r16 = new Uint8Array(16);
    r16[0] = 0x88;
    new DataView(r16.buffer).setBigUint64(2, 0x1_0000_0000n);
    new DataView(r16.buffer).setUint32(10, 3);
    expect(cdbBlockRange(r16)).toEqual({ op: 'read', lba: 0x1_0000_0000, blocks: 3 });
    expect(cdbBlockRange(Uint8Array.of(0x12, 0, 0, 0, 36, 0))).toBeNull();
  });

  it('caps the number of faults and honours probability with the given random source', () => {
    const inj = new FaultInjector(
      { wwpnOf: () => undefined, rscn: () => {}, portDown: () => {}, portUp: async () => {} },
      () => 0.99,
    );
    for (let i = 0; i < 64; i++) inj.add({ kind: 'drop', probability: 0.5 });
    expect(() => inj.add({ kind: 'drop' })).toThrow(/at most 64/);
    const h = {
      rCtl: 1,
      dId: 1,
      csCtl: 0,
      sId: 2,
      type: 8,
      fCtl: 0,
      seqId: 0,
      dfCtl: 0,
      seqCnt: 0,
      oxId: 1,
      rxId: 0xffff,
      parameter: 0,
    };
    expect(inj.pick(['drop'], h)).toBeNull(); // 0.99 >= 0.5 every time
    expect(inj.clear()).toBe(64);
    inj.add({ kind: 'drop', probability: 1 });
    expect(inj.pick(['drop'], h)).not.toBeNull();
    inj.close();
  });

  it('delayed frames on one link keep their order; a closed wrapper closes the port side', async () => {
    const A = 0x010100;
    const B = 0x010200;
    const inj = new FaultInjector(
      {
        wwpnOf: (id) => (id === A ? 1n : id === B ? 2n : undefined),
        rscn: () => {},
        portDown: () => {},
        portUp: async () => {},
      },
      (() => {
        let i = 0;
        return () => (i++ % 2 === 0 ? 0 : 0.99); // every other frame delayed
      })(),
    );
    inj.add({ kind: 'delay', wwpn: 2n, direction: 'to', delayMs: 15, probability: 0.5 });
    const [switchEnd, portEnd] = linkPair('t');
    const wrapped = inj.wrap(switchEnd);
    const got: number[] = [];
    portEnd.on('frame', (f) => got.push(f[FC_HEADER_SIZE]!));
    for (let n = 0; n < 20; n++) {
      const f = new Uint8Array(FC_HEADER_SIZE + 4);
      encodeHeader(
        {
          rCtl: 1,
          dId: B,
          csCtl: 0,
          sId: A,
          type: 8,
          fCtl: 0,
          seqId: 0,
          dfCtl: 0,
          seqCnt: n,
          oxId: n,
          rxId: 0xffff,
          parameter: 0,
        },
        f,
      );
      f[FC_HEADER_SIZE] = n;
      wrapped.send(f);
    }
    await until(() => got.length === 20, 'all frames delivered');
    expect(got).toEqual([...Array(20).keys()]);
    expect(inj.list()[0]!.hits).toBe(10);
    let down = false;
    portEnd.on('down', () => (down = true));
    wrapped.close('test');
    await until(() => down, 'port side down');
    inj.close();
  });
});
