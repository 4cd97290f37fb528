/**
 * HostFabricPort on a fake sysfs tree: the kernel is played by FakeKernel, LUN I/O by a fake
 * LunChannel (the sg device path needs a real sg node: exercised by the two-level lab, not here),
 * and uevents are injected as raw kernel messages.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  CT_RESPONSE,
  decodeCt,
  decodeIdList,
  decodeName,
  decodeNameList,
  encodeFtRequest,
  encodePortIdRequest,
  fc4FeaturesOf,
  FC4_TYPE_FCP,
  NS,
  NS_EXPLANATION,
  nameServerRequest,
} from '../../../src/fc/ct.js';
import { HostFabricPort } from '../../../src/host/host-fabric.js';
import type { LunChannel, LunCommand } from '../../../src/host/sg-device.js';
import { formatUevent, InjectedUeventSource, parseUevent } from '../../../src/host/uevent.js';
import type { FabricEvent, FcpResult } from '../../../src/isp/fabric-port.js';
import { FakeKernel } from './fake-sysfs.js';

const WWPN = 0xc0507600000000a1n;
const WWNN = 0xc0507600000000a0n;
const T1 = { wwpn: 0x500a0981000000a1n, wwnn: 0x500a0980000000a0n, portId: 0x020100 };
const T2 = { wwpn: 0x500a0981000000b1n, wwnn: 0x500a0980000000b0n, portId: 0x020200 };

class FakeLun implements LunChannel {
  readonly commands: { tag: number; c: LunCommand }[] = [];
  readonly resets: string[] = [];
  private readonly pending = new Map<number, (r: FcpResult) => void>();
  closed = false;
  constructor(readonly path: string) {}
  submit(tag: number, c: LunCommand): Promise<FcpResult> {
    this.commands.push({ tag, c });
    return new Promise((r) => this.pending.set(tag, r));
  }
  complete(tag: number, r: FcpResult): void {
    this.pending.get(tag)?.(r);
    this.pending.delete(tag);
  }
  abandon(tag: number): boolean {
    const p = this.pending.get(tag);
    if (!p) return false;
    this.pending.delete(tag);
    p({ scsiStatus: 0, sense: null, transferred: 0, transportError: 'aborted' });
    return true;
  }
  async reset(kind: 'device' | 'target'): Promise<void> {
    this.resets.push(kind);
  }
  close(): void {
    this.closed = true;
  }
}

let k: FakeKernel;
let port: HostFabricPort;
let events: InjectedUeventSource;
let luns: FakeLun[];
let seen: FabricEvent[];
const LUN0 = new Uint8Array(8);
const lunBytes = (n: number) => Uint8Array.of(0, n, 0, 0, 0, 0, 0, 0);

beforeEach(async () => {
  k = new FakeKernel();
  k.addPhysicalHost(3, { wwpn: 0x21000024ff123456n, wwnn: 0x20000024ff123456n });
  events = new InjectedUeventSource();
  luns = [];
  seen = [];
  port = new HostFabricPort({
    sys: k.sys,
    parent: 'host3',
    wwpn: WWPN,
    wwnn: WWNN,
    uevents: events,
    pollMs: 5,
    resyncMs: 60_000,
    lunScanTimeoutMs: 200,
    openLun: (path) => {
      const l = new FakeLun(path);
      luns.push(l);
      return l;
    },
  });
  const v = await port.start();
  k.addRport(v.hostNo, 0, { ...T1, target: 0 });
  k.addRport(v.hostNo, 1, { ...T2, target: 1, roles: 'FCP Initiator' });
  k.presented.set(`${v.hostNo}:0:0`, { luns: [0, 1], wlun: true });
  port.resync('test');
  port.onEvent((e) => seen.push(e));
});

afterEach(async () => {
  await port.close().catch(() => {});
  k.cleanup();
});

describe('HostFabricPort', () => {
  it('refuses to start unless the host scans manually', async () => {
    const k2 = new FakeKernel();
    k2.addPhysicalHost(3, { wwpn: 0x21n, wwnn: 0x20n });
    k2.file('module/scsi_mod/parameters/scan', 'async');
    const p = new HostFabricPort({
      sys: k2.sys,
      parent: 'host3',
      wwpn: WWPN,
      wwnn: WWNN,
      uevents: new InjectedUeventSource(),
    });
    await expect(p.start()).rejects.toThrow(/scsi_mod.scan=manual/);
    expect(k2.sys.writes).toEqual([]);
    k2.cleanup();
  });

  it('login returns the vport port ID, fabric name and speed; other names are refused', async () => {
    expect(port.isLinkUp()).toBe(true);
    const r = await port.login(WWPN, WWNN);
    expect(r).toEqual({
      portId: 0x010203,
      fabricPortName: 0x100000051e000001n,
      fabricName: 0x100000051e000001n,
      speedGbps: 8,
    });
    await expect(port.login(0x1234n, WWNN)).rejects.toThrow(/this backend's host vport/);
  });

  it('answers the name server from fc_remote_ports as full CT IUs', async () => {
    const gpnft = decodeCt(
      await port.ct(
        0xfffffc,
        nameServerRequest(NS.GPN_FT, encodeFtRequest({ domainScope: 0, areaScope: 0, fc4Type: FC4_TYPE_FCP })),
        4096,
      ),
    );
    expect(gpnft.header.code).toBe(CT_RESPONSE.FS_ACC);
    expect(decodeNameList(gpnft.payload)).toEqual([
      { nportId: 0x010203, name: WWPN },
      { nportId: T1.portId, name: T1.wwpn },
      { nportId: T2.portId, name: T2.wwpn },
    ]);
    // Truncated by the guest's buffer: two entries, no last mark, residual set.
    const small = decodeCt(
      await port.ct(
        0xfffffc,
        nameServerRequest(NS.GID_FT, encodeFtRequest({ domainScope: 0, areaScope: 0, fc4Type: FC4_TYPE_FCP })),
        16 + 8,
      ),
    );
    expect(small.payload.length).toBe(8);
    expect(small.payload[4]! & 0x80).toBe(0);
    expect(small.header.maxOrResidualWords).toBe(1);
    expect(decodeIdList(small.payload)).toEqual([0x010203, T1.portId]);
    const gnn = decodeCt(await port.ct(0xfffffc, nameServerRequest(NS.GNN_ID, encodePortIdRequest(T1.portId)), 64));
    expect(decodeName(gnn.payload)).toBe(T1.wwnn);
    const gff = decodeCt(await port.ct(0xfffffc, nameServerRequest(NS.GFF_ID, encodePortIdRequest(T1.portId)), 256));
    expect(fc4FeaturesOf(gff.payload, FC4_TYPE_FCP)).toBe(1);
    const none = decodeCt(await port.ct(0xfffffc, nameServerRequest(NS.GPN_ID, encodePortIdRequest(0x999999)), 64));
    expect(none.header.code).toBe(CT_RESPONSE.FS_RJT);
    expect(none.header.explanation).toBe(NS_EXPLANATION.PORT_ID_NOT_REGISTERED);
    const rft = decodeCt(await port.ct(0xfffffc, nameServerRequest(NS.RFT_ID, new Uint8Array(36)), 64));
    expect(rft.header.code).toBe(CT_RESPONSE.FS_ACC);
    const garbage = decodeCt(await port.ct(0xfffffc, Uint8Array.of(1, 0, 0, 0, 0xfc, 2, 0, 0, 1, 0x12), 64));
    expect(garbage.header.code).toBe(CT_RESPONSE.FS_RJT);
  });

  it('PLOGI to the directory and fabric controller is accepted locally; the management server gets none', async () => {
    const fabric = { ok: true, wwpn: 0x100000051e000001n, wwnn: 0x100000051e000001n, receiveDataSize: 2112 };
    expect(await port.plogi(0xfffffc)).toEqual(fabric);
    expect(await port.plogi(0xfffffd)).toEqual(fabric);
    expect(await port.plogi(0xfffffa)).toEqual({ ok: false, kind: 'no-response' });
    k.setVportState(WWPN, 'Linkdown');
    port.resync('test');
    expect(await port.plogi(0xfffffc)).toEqual({ ok: false, kind: 'no-response' });
  });

  it('PLOGI/PRLI/ADISC follow the remote port state', async () => {
    expect(await port.plogi(T1.portId)).toEqual({ ok: true, wwpn: T1.wwpn, wwnn: T1.wwnn, receiveDataSize: 2048 });
    expect(await port.prli(T1.portId)).toEqual({ ok: true, serviceParamWord3: 0x12 });
    expect(await port.adisc(T1.portId)).toEqual({ ok: true, wwpn: T1.wwpn, wwnn: T1.wwnn, portId: T1.portId });
    expect(await port.plogi(0x0a0a0a)).toEqual({ ok: false, kind: 'no-response' });
    k.file(`class/fc_remote_ports/rport-${port.hostVport!.hostNo}:0-0/port_state`, 'Blocked');
    port.resync('test');
    expect(await port.plogi(T1.portId)).toEqual({ ok: false, kind: 'no-response' });
    expect(seen).toContainEqual({ type: 'rscn', format: 0, address: T1.portId });
  });

  it('FCP: creates the LUN with a manual scan after guarding the array with NO_ULD_ATTACH, then passes commands', async () => {
    const readBuf = new Uint8Array(4096);
    const read = port.fcp(T1.portId, {
      lun: lunBytes(1),
      cdb: Uint8Array.of(0x28, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0),
      direction: 'read',
      expectedLength: 4096,
      data: [readBuf],
      released: new AbortController().signal,
      taskTag: 7,
    });
    const second = port.fcp(T1.portId, {
      lun: lunBytes(1),
      cdb: Uint8Array.of(0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
      direction: 'none',
      expectedLength: 0,
      data: [],
      released: new AbortController().signal,
      taskTag: 8,
    });
    const host = port.hostVport!.hostNo;
    for (let i = 0; i < 100 && luns.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    for (let i = 0; i < 100 && luns[0]!.commands.length < 2; i++) await new Promise((r) => setTimeout(r, 10));
    const writes = k.sys.writes.map((w) => `${w.rel} ${w.value.trim()}`);
    expect(writes).toEqual([
      'class/fc_host/host3/vport_create c0507600000000a1:c0507600000000a0',
      `class/scsi_host/host${host}/scan 0 0 49409`,
      'proc:scsi/device_info NPIVSAN :VIRTUAL-DISK    :0x100000',
      `class/scsi_host/host${host}/scan 0 0 1`,
    ]);
    expect(luns).toHaveLength(1);
    expect(luns[0]!.commands.map((c) => c.tag)).toEqual([7, 8]); // both outstanding at once
    expect(luns[0]!.commands[0]!.c.data[0]).toBe(readBuf); // the guest's buffer itself, not a copy
    luns[0]!.complete(7, { scsiStatus: 0, sense: null, transferred: 4096 });
    expect((await read).transferred).toBe(4096);
    expect(await port.abort(T1.portId, 8)).toBe(true);
    expect((await second).transportError).toBe('aborted');
    expect(await port.taskManagement(T1.portId, lunBytes(1), 'lun-reset')).toBe(0);
    expect(await port.taskManagement(T1.portId, lunBytes(1), 'abort-task-set')).toBe(4);
    expect(luns[0]!.resets).toEqual(['device']);
  });

  it('without /proc/scsi/device_info (CONFIG_SCSI_PROC_FS off) every scan runs with SCSI bus autoprobe off', async () => {
    rmSync(join(k.dir, 'proc', 'scsi', 'device_info'));
    k.file('bus/scsi/drivers_autoprobe', '1');
    const tur = port.fcp(T1.portId, {
      lun: lunBytes(1),
      cdb: new Uint8Array(16),
      direction: 'none',
      expectedLength: 0,
      data: [],
      released: new AbortController().signal,
      taskTag: 9,
    });
    for (let i = 0; i < 100 && luns.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    const host = port.hostVport!.hostNo;
    const writes = k.sys.writes.map((w) => `${w.rel} ${w.value.trim()}`).slice(1);
    expect(writes).toEqual([
      'bus/scsi/drivers_autoprobe 0',
      `class/scsi_host/host${host}/scan 0 0 49409`,
      'bus/scsi/drivers_autoprobe 1',
      'bus/scsi/drivers_autoprobe 0',
      `class/scsi_host/host${host}/scan 0 0 1`,
      'bus/scsi/drivers_autoprobe 1',
    ]);
    luns[0]!.complete(9, { scsiStatus: 0, sense: null, transferred: 0 });
    expect((await tur).scsiStatus).toBe(0);
  });

  it('a LUN the target does not present: INQUIRY gets PQ 3, others LOGICAL UNIT NOT SUPPORTED', async () => {
    const inqBuf = new Uint8Array(36);
    const inq = await port.fcp(T1.portId, {
      lun: lunBytes(5),
      cdb: Uint8Array.of(0x12, 0, 0, 0, 36, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
      direction: 'read',
      expectedLength: 36,
      data: [inqBuf],
      released: new AbortController().signal,
      taskTag: 1,
    });
    expect(inq.transferred).toBe(36);
    expect(inqBuf[0]).toBe(0x7f);
    const tur = await port.fcp(T1.portId, {
      lun: lunBytes(5),
      cdb: new Uint8Array(16),
      direction: 'none',
      expectedLength: 0,
      data: [],
      released: new AbortController().signal,
      taskTag: 2,
    });
    expect(tur.scsiStatus).toBe(2);
    expect(tur.sense?.[12]).toBe(0x25);
  });

  it('a LUN with a block device on the host is refused', async () => {
    const host = port.hostVport!.hostNo;
    k.addLun(host, 0, 0, { sg: 40, block: true });
    const r = await port.fcp(T1.portId, {
      lun: LUN0,
      cdb: new Uint8Array(16),
      direction: 'none',
      expectedLength: 0,
      data: [],
      released: new AbortController().signal,
      taskTag: 3,
    });
    expect(r.transportError).toBe('port-unavailable');
    expect(luns).toHaveLength(0);
  });

  it('uevents: an rport added or removed under the vport host becomes an RSCN; others are ignored', () => {
    const host = port.hostVport!.hostNo;
    k.addRport(host, 2, { wwpn: 0x500a0981000000c1n, wwnn: 0x500a0980000000c0n, portId: 0x020300 });
    events.inject(
      formatUevent(
        'add',
        `/devices/pci0000:00/host3/vport-3:0-0/host${host}/rport-${host}:0-2/fc_remote_ports/rport-${host}:0-2`,
        {
          SUBSYSTEM: 'fc_remote_ports',
        },
      ),
    );
    expect(seen).toEqual([{ type: 'rscn', format: 0, address: 0x020300 }]);
    k.removeRport(host, 2);
    events.inject(formatUevent('add', '/devices/virtual/net/lo', { SUBSYSTEM: 'net' }));
    expect(seen).toHaveLength(1);
    events.inject(
      formatUevent('remove', `/devices/x/host${host}/rport-${host}:0-2/fc_remote_ports/rport-${host}:0-2`, {
        SUBSYSTEM: 'fc_remote_ports',
      }),
    );
    expect(seen).toEqual([
      { type: 'rscn', format: 0, address: 0x020300 },
      { type: 'rscn', format: 0, address: 0x020300 },
    ]);
  });

  it('vport leaving Active is link-down, back to Active link-up', () => {
    k.setVportState(WWPN, 'Linkdown');
    events.overflow();
    expect(port.isLinkUp()).toBe(false);
    k.setVportState(WWPN, 'Active');
    port.resync('test');
    expect(seen).toEqual([{ type: 'link-down' }, { type: 'link-up' }]);
  });

  it('close deletes the host vport', async () => {
    await port.close();
    expect(k.sys.writes.at(-1)?.rel).toBe('class/fc_host/host3/vport_delete');
  });
});

describe('uevent parser (hostile input)', () => {
  it('accepts a kernel message and refuses malformed ones', () => {
    const ok = parseUevent(
      new Uint8Array(
        Buffer.from(formatUevent('add', '/devices/a/b', { SUBSYSTEM: 'scsi', DEVTYPE: 'scsi_device' }), 'latin1'),
      ),
    );
    expect(ok?.subsystem).toBe('scsi');
    expect(ok?.devtype).toBe('scsi_device');
    const bad = [
      'libudev\0ACTION=add\0DEVPATH=/x\0SUBSYSTEM=scsi\0',
      'add@/x\0ACTION=remove\0DEVPATH=/x\0SUBSYSTEM=scsi\0', // head and ACTION disagree
      'add@/x\0ACTION=add\0DEVPATH=/x\0', // no SUBSYSTEM
      'explode@/x\0ACTION=explode\0DEVPATH=/x\0SUBSYSTEM=scsi\0',
      'add@/x/../y\0ACTION=add\0DEVPATH=/x/../y\0SUBSYSTEM=scsi\0',
      'add@/x\0ACTION=add\0DEVPATH=/x\0SUBSYSTEM=sc\x01si\0',
      `add@/x\0ACTION=add\0DEVPATH=/x\0SUBSYSTEM=scsi\0${'K=v\0'.repeat(100)}`,
      'add@/x\0ACTION=add\0DEVPATH=/x\0SUBSYSTEM=scsi\0lower=x\0',
    ];
    for (const b of bad) expect(parseUevent(new Uint8Array(Buffer.from(b, 'latin1'))), JSON.stringify(b)).toBeNull();
    expect(parseUevent(new Uint8Array(9000))).toBeNull();
  });
});
