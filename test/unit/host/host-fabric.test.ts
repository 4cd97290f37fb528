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
import { FCH_EVT, formatFcEvent, InjectedFcEventSource } from '../../../src/host/fc-event.js';
import { HostFabricPort, isLunsChangedUa, parseReportLuns } from '../../../src/host/host-fabric.js';
import type { LunChannel, LunCommand } from '../../../src/host/sg-device.js';
import { formatUevent, InjectedUeventSource, parseUevent } from '../../../src/host/uevent.js';
import type { FabricEvent, FcpResult } from '../../../src/isp/fabric-port.js';
import { scatterToViews } from '../../../src/isp/data-views.js';
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
  constructor(
    readonly path: string,
    readonly lun: bigint = -1n,
  ) {}
  submit(tag: number, c: LunCommand): Promise<FcpResult> {
    this.commands.push({ tag, c });
    return new Promise((r) => this.pending.set(tag, r));
  }
  complete(tag: number, r: FcpResult): void {
    this.pending.get(tag)?.(r);
    this.pending.delete(tag);
  }
  /** Completes a read GOOD with `data` scattered into the command's views, as the sg driver would. */
  completeRead(tag: number, data: Uint8Array): void {
    const command = this.commands.find((c) => c.tag === tag);
    if (!command) throw new Error(`no command with tag ${tag}`);
    this.complete(tag, { scsiStatus: 0, sense: null, transferred: scatterToViews(command.c.data, data) });
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
let fc: InjectedFcEventSource;
let luns: FakeLun[];
let seen: FabricEvent[];
const LUN0 = new Uint8Array(8);
const lunBytes = (n: number) => Uint8Array.of(0, n, 0, 0, 0, 0, 0, 0);

beforeEach(async () => {
  k = new FakeKernel();
  k.addPhysicalHost(3, { wwpn: 0x21000024ff123456n, wwnn: 0x20000024ff123456n });
  events = new InjectedUeventSource();
  fc = new InjectedFcEventSource();
  luns = [];
  seen = [];
  port = new HostFabricPort({
    sys: k.sys,
    parent: 'host3',
    wwpn: WWPN,
    wwnn: WWNN,
    uevents: events,
    fcEvents: fc,
    pollMs: 5,
    resyncMs: 60_000,
    settleMs: [20, 20],
    lunScanTimeoutMs: 200,
    openLun: (path, a) => {
      const l = new FakeLun(path, a.lun);
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

  it('FC events of the parent host: LINKDOWN/LINKUP re-read sysfs now and while it settles; other hosts are ignored', async () => {
    k.setVportState(WWPN, 'Linkdown');
    fc.inject(formatFcEvent({ hostNo: 99, code: FCH_EVT.LINKDOWN }));
    expect(seen).toEqual([]); // not this vport's hosts: nothing re-read
    fc.inject(formatFcEvent({ hostNo: 3, code: FCH_EVT.LINKDOWN }));
    expect(seen).toEqual([{ type: 'link-down' }]);
    // The vport comes back only after the event (the LLDD re-FDISCs later): a settle re-read sees it.
    fc.inject(formatFcEvent({ hostNo: 3, code: FCH_EVT.LINKUP, data: 8 }));
    expect(seen).toHaveLength(1);
    k.setVportState(WWPN, 'Active');
    await waitFor(() => seen.length === 2);
    expect(seen).toEqual([{ type: 'link-down' }, { type: 'link-up' }]);
  });

  it('an FC RSCN event on the parent host becomes an RSCN for the port that changed', async () => {
    const host = port.hostVport!.hostNo;
    k.addRport(host, 2, { wwpn: 0x500a0981000000c1n, wwnn: 0x500a0980000000c0n, portId: 0x020300 });
    fc.inject(formatFcEvent({ hostNo: 3, code: FCH_EVT.RSCN, data: 0x020300 }));
    expect(seen).toEqual([{ type: 'rscn', format: 0, address: 0x020300 }]);
    fc.overflow(); // lost events: a full re-read, nothing changed
    expect(seen).toHaveLength(1);
  });

  it('without the FC event socket sysfs is re-read at the fallback interval', async () => {
    const k2 = new FakeKernel();
    k2.addPhysicalHost(3, { wwpn: 0x21000024ff123456n, wwnn: 0x20000024ff123456n });
    const source = new InjectedFcEventSource();
    source.failStart = new Error('EPROTONOSUPPORT');
    const p = new HostFabricPort({
      sys: k2.sys,
      parent: 'host3',
      wwpn: WWPN,
      wwnn: WWNN,
      uevents: new InjectedUeventSource(),
      fcEvents: source,
      pollMs: 5,
      fallbackResyncMs: 20,
    });
    try {
      const v = await p.start();
      const got: FabricEvent[] = [];
      p.onEvent((e) => got.push(e));
      k2.addRport(v.hostNo, 0, { ...T1, target: 0 });
      await waitFor(() => got.length > 0);
      expect(got).toEqual([{ type: 'rscn', format: 0, address: T1.portId }]);
    } finally {
      await p.close();
      k2.cleanup();
    }
  });

  it('a mapped LUN: the UA reaches the guest, REPORT LUNS through the W-LUN, the new LUN is scanned without sd; an unmapped one is deleted', async () => {
    const host = port.hostVport!.hostNo;
    const tur = (lun: number, tag: number) =>
      port.fcp(T1.portId, {
        lun: lunBytes(lun),
        cdb: new Uint8Array(16),
        direction: 'none',
        expectedLength: 0,
        data: [],
        released: new AbortController().signal,
        taskTag: tag,
      });
    // LUN 1 in use; then the array maps LUN 2 and reports the change on LUN 1.
    const first = tur(1, 1);
    await waitFor(() => luns.some((l) => l.lun === 1n && l.commands.length === 1));
    const lun1 = luns.find((l) => l.lun === 1n)!;
    k.presented.set(`${host}:0:0`, { luns: [0, 1, 2], wlun: true });
    lun1.complete(1, ua(0x3f, 0x0e));
    const r = await first;
    expect(isLunsChangedUa(r)).toBe(true); // passed through: the guest sees it
    // The kernel's uevent about that same UA: the guest already has it, nothing is owed (the
    // next command below reaches the target).
    events.inject(
      formatUevent('change', `/devices/x/host${host}/rport-${host}:0-0/target${host}:0:0/${host}:0:0:1`, {
        SUBSYSTEM: 'scsi',
        SDEV_UA: 'REPORTED_LUNS_DATA_HAS_CHANGED',
      }),
    );
    await waitFor(() => luns.some((l) => l.lun === 49409n && l.commands.length === 1));
    const wlun = luns.find((l) => l.lun === 49409n)!;
    const rl = wlun.commands[0]!;
    expect(rl.tag).toBeLessThan(0); // the backend's own command, never a guest tag
    expect(rl.c.cdb[0]).toBe(0xa0);
    wlun.completeRead(rl.tag, reportLuns([0, 1, 2]));
    await waitFor(() => luns.some((l) => l.lun === 2n));
    const writes = () => k.sys.writes.map((w) => `${w.rel} ${w.value.trim()}`);
    // Every reported LUN not yet on the host is scanned (LUN 0 too: the guest never used it yet).
    expect(
      writes()
        .filter((w) => w.includes('/scan '))
        .slice(-2),
    ).toEqual([`class/scsi_host/host${host}/scan 0 0 0`, `class/scsi_host/host${host}/scan 0 0 2`]);
    expect(writes().filter((w) => w.includes('delete'))).toEqual([]);
    expect(k.sys.exists(`bus/scsi/devices/${host}:0:0:2/scsi_generic`)).toBe(true);
    expect(k.sys.list(`bus/scsi/devices/${host}:0:0:2/block`, /./)).toEqual([]);

    // Unmapped: the next UA makes the backend delete the SCSI device (and its sg node).
    const second = tur(1, 2);
    await waitFor(() => lun1.commands.length === 2);
    k.presented.set(`${host}:0:0`, { luns: [0, 1], wlun: true });
    lun1.complete(2, ua(0x3f, 0x0e));
    expect(isLunsChangedUa(await second)).toBe(true);
    await waitFor(() => wlun.commands.length === 2);
    wlun.completeRead(wlun.commands[1]!.tag, reportLuns([0, 1]));
    await waitFor(() => !k.sys.exists(`bus/scsi/devices/${host}:0:0:2`));
    expect(writes()).toContain(`bus/scsi/devices/${host}:0:0:2/delete 1`);
    expect(luns.find((l) => l.lun === 2n)?.closed).toBe(true);
    // Only the LUN the target stopped reporting is deleted.
    expect(writes().filter((w) => w.endsWith('delete 1'))).toHaveLength(1);
    expect(k.sys.list('bus/scsi/devices', /^\d/)).toEqual([`${host}:0:0:0`, `${host}:0:0:1`, `${host}:0:0:49409`]);
  });

  it('a UA the host kernel or the backend consumed is owed to the guest once per LUN (INQUIRY and REPORT LUNS exempt)', async () => {
    const host = port.hostVport!.hostNo;
    const cmd = (lun: number, tag: number, op = 0) => {
      const cdb = new Uint8Array(16);
      cdb[0] = op;
      return port.fcp(T1.portId, {
        lun: lunBytes(lun),
        cdb,
        direction: 'none',
        expectedLength: 0,
        data: [],
        released: new AbortController().signal,
        taskTag: tag,
      });
    };
    const first = cmd(1, 1);
    await waitFor(() => luns.some((l) => l.lun === 1n && l.commands.length === 1));
    const lun1 = luns.find((l) => l.lun === 1n)!;
    lun1.complete(1, { scsiStatus: 0, sense: null, transferred: 0 });
    await first;
    // The change is seen through the kernel's uevent (another command consumed the UA on LUN 1).
    events.inject(
      formatUevent('change', `/devices/x/host${host}/rport-${host}:0-0/target${host}:0:0/${host}:0:0:1`, {
        SUBSYSTEM: 'scsi',
        SDEV_UA: 'REPORTED_LUNS_DATA_HAS_CHANGED',
      }),
    );
    await waitFor(() => luns.some((l) => l.lun === 49409n && l.commands.length === 1));
    const wlun = luns.find((l) => l.lun === 49409n)!;
    // The host kernel met the UA (and may have retried the command): the guest is owed one on
    // LUN 1. The W-LUN also reports it to the backend's REPORT LUNS: still owed once only.
    wlun.complete(wlun.commands[0]!.tag, ua(0x3f, 0x0e));
    await waitFor(() => wlun.commands.length === 2);
    wlun.completeRead(wlun.commands[1]!.tag, reportLuns([0, 1]));
    await new Promise((r) => setTimeout(r, 20));
    const inquiry = cmd(1, 2, 0x12); // INQUIRY: exempt, passed on to the target
    await waitFor(() => lun1.commands.length === 2);
    lun1.complete(2, { scsiStatus: 0, sense: null, transferred: 0 });
    expect(isLunsChangedUa(await inquiry)).toBe(false);
    expect(isLunsChangedUa(await cmd(1, 3))).toBe(true); // synthesized, not sent to the target
    expect(lun1.commands.map((c) => c.tag)).toEqual([1, 2]);
    const again = cmd(1, 4);
    await waitFor(() => lun1.commands.length === 3);
    lun1.complete(4, { scsiStatus: 0, sense: null, transferred: 0 });
    expect((await again).scsiStatus).toBe(0); // once only
  });

  it('close deletes the host vport', async () => {
    await port.close();
    expect(k.sys.writes.at(-1)?.rel).toBe('class/fc_host/host3/vport_delete');
  });
});

describe('REPORT LUNS data and UA sense', () => {
  it('parses the LUN list within the bytes received and recognizes 3Fh/0Eh in fixed and descriptor sense', () => {
    // Flat addressing keeps its address method bits in the Linux LUN (scsilun_to_int): 300 → 0x412c.
    expect(parseReportLuns(reportLuns([0, 3, 300]))).toEqual([0n, 3n, 0x412cn]);
    const cut = reportLuns([0, 3, 5]).subarray(0, 8 + 8 + 4);
    expect(parseReportLuns(cut)).toEqual([0n]);
    expect(() => parseReportLuns(new Uint8Array(4))).toThrow(/4 bytes/);
    expect(isLunsChangedUa(ua(0x3f, 0x0e))).toBe(true);
    expect(isLunsChangedUa(ua(0x29, 0x00))).toBe(false);
    expect(isLunsChangedUa({ scsiStatus: 2, sense: Uint8Array.of(0x72, 0x06, 0x3f, 0x0e), transferred: 0 })).toBe(true);
    expect(isLunsChangedUa({ scsiStatus: 2, sense: Uint8Array.of(0x70, 0, 6), transferred: 0 })).toBe(false);
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

async function waitFor(cond: () => boolean, ms = 2000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('condition not reached');
    await new Promise((r) => setTimeout(r, 5));
  }
}

function ua(asc: number, ascq: number): FcpResult {
  const sense = new Uint8Array(18);
  sense[0] = 0x70;
  sense[2] = 0x06;
  sense[7] = 10;
  sense[12] = asc;
  sense[13] = ascq;
  return { scsiStatus: 2, sense, transferred: 0 };
}

/** REPORT LUNS parameter data, peripheral (LUN < 256) or flat addressing. */
function reportLuns(list: number[]): Uint8Array {
  const d = new Uint8Array(8 + 8 * list.length);
  new DataView(d.buffer).setUint32(0, 8 * list.length, false);
  list.forEach((l, i) => {
    d[8 + i * 8] = l < 256 ? 0 : 0x40 | (l >> 8);
    d[9 + i * 8] = l & 0xff;
  });
  return d;
}
