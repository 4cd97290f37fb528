/**
 * Host vport lifecycle on a fake sysfs tree: the test plays the kernel (FakeKernel) by creating the
 * fc_vport and its Scsi_Host after vport_create is written.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { listFcHosts, listRports, listVports, scsilunToInt, intToScsilun } from '../../../src/host/fc-model.js';
import { acquireVport, deleteVport, HostNpivError, resolveParent } from '../../../src/host/vport.js';
import { parseSysfsWwn, parseSysfsPortId, parseSysfsSpeed, SysfsError } from '../../../src/host/sysfs.js';
import { FakeKernel } from './fake-sysfs.js';

const PARENT_WWPN = 0x21000024ff123456n;
const WWPN = 0xc0507600000000a1n;
const WWNN = 0xc0507600000000a0n;

let k: FakeKernel;
beforeEach(() => {
  k = new FakeKernel();
  k.addPhysicalHost(3, { wwpn: PARENT_WWPN, wwnn: 0x20000024ff123456n, max: 4, inuse: 0 });
});
afterEach(() => k.cleanup());

async function expectKind(p: Promise<unknown>, kind: string, text?: RegExp): Promise<void> {
  const e = await p.then(
    () => null,
    (x: unknown) => x,
  );
  expect(e).toBeInstanceOf(HostNpivError);
  expect((e as HostNpivError).kind).toBe(kind);
  if (text) expect((e as Error).message).toMatch(text);
}

describe('sysfs parsers', () => {
  it('parse the transport formats and refuse anything else', () => {
    expect(parseSysfsWwn('0x21000024ff123456', 'x')).toBe(PARENT_WWPN);
    expect(parseSysfsWwn('0x1', 'x')).toBe(1n);
    expect(() => parseSysfsWwn('21000024ff123456', 'x')).toThrow(SysfsError);
    expect(() => parseSysfsWwn('0x1234567890abcdef0', 'x')).toThrow(SysfsError);
    expect(parseSysfsPortId('0x010203', 'x')).toBe(0x010203);
    expect(() => parseSysfsPortId('0x1000000', 'x')).toThrow(SysfsError);
    expect(parseSysfsSpeed('16 Gbit', 'x')).toBe(16);
    expect(parseSysfsSpeed('unknown', 'x')).toBeNull();
    expect(() => parseSysfsSpeed('fast', 'x')).toThrow(SysfsError);
  });

  it('hostile attribute contents make the object unusable, never guessed', () => {
    k.addPhysicalHost(4, { wwpn: 0x2100000000000004n, wwnn: 0x2000000000000004n });
    k.file('class/fc_host/host4/port_name', '0x21\u0000\u0007');
    k.addPhysicalHost(5, { wwpn: 0x2100000000000005n, wwnn: 0x2000000000000005n });
    k.file('class/fc_host/host5/port_state', 'x'.repeat(5000));
    const skipped: { object: string; reason: string }[] = [];
    const hosts = listFcHosts(k.sys, skipped);
    expect(hosts.map((h) => h.hostNo)).toEqual([3]);
    expect(skipped.map((s) => s.object)).toEqual(['host4', 'host5']);
  });

  it('LUN numbers follow scsilun_to_int', () => {
    expect(scsilunToInt(Uint8Array.of(0, 5, 0, 0, 0, 0, 0, 0))).toBe(5n);
    expect(scsilunToInt(Uint8Array.of(0x40, 0x01, 0, 0, 0, 0, 0, 0))).toBe(0x4001n);
    expect(scsilunToInt(Uint8Array.of(0xc1, 0x01, 0, 0, 0, 0, 0, 0))).toBe(49409n);
    expect(scsilunToInt(Uint8Array.of(0, 1, 0, 2, 0, 0, 0, 0))).toBe(0x00020001n);
    expect(intToScsilun(0x00020001n)).toEqual(Uint8Array.of(0, 1, 0, 2, 0, 0, 0, 0));
  });
});

describe('host vport lifecycle', () => {
  it('resolves the parent by hostN, number or WWPN', () => {
    expect(resolveParent(k.sys, 'host3').hostNo).toBe(3);
    expect(resolveParent(k.sys, '3').hostNo).toBe(3);
    expect(resolveParent(k.sys, '21:00:00:24:ff:12:34:56').hostNo).toBe(3);
    expect(resolveParent(k.sys, '0x21000024ff123456').hostNo).toBe(3);
    expect(() => resolveParent(k.sys, 'host9')).toThrow(/no usable fc_host host9/);
    expect(() => resolveParent(k.sys, '21:00:00:00:00:00:00:99')).toThrow(/no fc_host has port name/);
  });

  it('creates via vport_create, finds the new host and waits for Active', async () => {
    k.behaviour = { delayMs: 30, portId: 0x0a0b0c };
    const v = await acquireVport(k.sys, { parent: 'host3', wwpn: WWPN, wwnn: WWNN, pollMs: 5 });
    expect(k.sys.writes).toContainEqual({
      rel: 'class/fc_host/host3/vport_create',
      value: 'c0507600000000a1:c0507600000000a0\n',
    });
    expect(v.adopted).toBe(false);
    expect(v.vport.name).toBe('vport-3:0-0');
    expect(v.hostNo).toBe(10);
    expect(listFcHosts(k.sys).find((h) => h.hostNo === 10)?.portId).toBe(0x0a0b0c);
    await deleteVport(k.sys, 3, WWPN, WWNN, { pollMs: 5 });
    expect(k.sys.writes.at(-1)).toEqual({
      rel: 'class/fc_host/host3/vport_delete',
      value: 'c0507600000000a1:c0507600000000a0\n',
    });
    expect(listVports(k.sys)).toEqual([]);
  });

  it('a parent without vport_create is not NPIV-capable', async () => {
    k.addPhysicalHost(4, { wwpn: 0x2100000000000004n, wwnn: 0x2000000000000004n, npiv: false });
    await expectKind(acquireVport(k.sys, { parent: 'host4', wwpn: WWPN, wwnn: WWNN }), 'not-npiv-capable');
  });

  it('a parent whose link is down is refused', async () => {
    k.file('class/fc_host/host3/port_state', 'Linkdown');
    await expectKind(acquireVport(k.sys, { parent: 'host3', wwpn: WWPN, wwnn: WWNN }), 'parent-offline');
  });

  it('FDISC refused: the vport stays Initializing, times out, and is deleted again', async () => {
    k.behaviour = { state: 'Initializing' };
    await expectKind(
      acquireVport(k.sys, { parent: 'host3', wwpn: WWPN, wwnn: WWNN, timeoutMs: 150, pollMs: 5 }),
      'no-fabric',
      /stayed Initializing/,
    );
    expect(k.sys.writes.map((w) => w.rel)).toContain('class/fc_host/host3/vport_delete');
    await new Promise((r) => setTimeout(r, 30));
    expect(listVports(k.sys)).toEqual([]);
  });

  it('Fabric Rejected WWN fails at once as wwpn-in-use', async () => {
    k.behaviour = { state: 'Fabric Rejected WWN' };
    await expectKind(
      acquireVport(k.sys, { parent: 'host3', wwpn: WWPN, wwnn: WWNN, timeoutMs: 5000, pollMs: 5 }),
      'wwpn-in-use',
    );
  });

  it('maps vport_create errors: EACCES, ENOSPC, ENOTUNIQ, EOPNOTSUPP, short write', async () => {
    for (const [code, kind] of [
      ['EACCES', 'permission'],
      ['ENOSPC', 'vport-limit'],
      ['ENOTUNIQ', 'wwpn-in-use'],
      ['EOPNOTSUPP', 'no-fabric'],
      ['SHORT_WRITE', 'failed'],
    ] as const) {
      k.failCreate = code;
      await expectKind(acquireVport(k.sys, { parent: 'host3', wwpn: WWPN, wwnn: WWNN, pollMs: 5 }), kind);
    }
  });

  it('refuses when the vport limit is reached, before writing', async () => {
    k.file('class/fc_host/host3/npiv_vports_inuse', '4');
    await expectKind(acquireVport(k.sys, { parent: 'host3', wwpn: WWPN, wwnn: WWNN }), 'vport-limit', /4 of 4/);
    expect(k.sys.writes).toEqual([]);
  });

  it("refuses a WWPN that is another host's port name", async () => {
    await expectKind(acquireVport(k.sys, { parent: 'host3', wwpn: PARENT_WWPN, wwnn: WWNN }), 'wwpn-in-use');
  });

  it('adopts a leftover vport of the same names on the same parent', async () => {
    k.createVport(3, WWPN, WWNN);
    const v = await acquireVport(k.sys, { parent: 'host3', wwpn: WWPN, wwnn: WWNN, pollMs: 5 });
    expect(v.adopted).toBe(true);
    expect(k.sys.writes).toEqual([]);
  });

  it('cleans a leftover vport with another WWNN, then creates afresh', async () => {
    k.createVport(3, WWPN, 0x1111n);
    const v = await acquireVport(k.sys, { parent: 'host3', wwpn: WWPN, wwnn: WWNN, pollMs: 5 });
    expect(v.adopted).toBe(false);
    expect(k.sys.writes.map((w) => w.value)).toEqual([
      'c0507600000000a1:0000000000001111\n',
      'c0507600000000a1:c0507600000000a0\n',
    ]);
    expect(listVports(k.sys).map((x) => x.nodeName)).toEqual([WWNN]);
  });

  it('reads remote ports of the vport host only', async () => {
    const v = await acquireVport(k.sys, { parent: 'host3', wwpn: WWPN, wwnn: WWNN, pollMs: 5 });
    k.addRport(v.hostNo, 0, { wwpn: 0x500a0981000000a1n, wwnn: 0x500a0980000000a0n, portId: 0x020100 });
    k.addRport(3, 0, { wwpn: 0x500a0981000000b1n, wwnn: 0x500a0980000000b0n, portId: 0x020200 });
    k.addRport(v.hostNo, 1, { wwpn: 0x1n, wwnn: 0x2n, portId: 0x020300 });
    k.file(`class/fc_remote_ports/rport-${v.hostNo}:0-1/roles`, 'FCP Target, <script>');
    const skipped: { object: string; reason: string }[] = [];
    const rports = listRports(k.sys, v.hostNo, skipped);
    expect(rports.map((r) => r.portId)).toEqual([0x020100]);
    expect(rports[0]!.roles).toEqual(['FCP Target']);
    expect(skipped).toHaveLength(1);
  });
});
