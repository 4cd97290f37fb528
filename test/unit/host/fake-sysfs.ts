/**
 * A fake sysfs tree in a temporary directory, and a test that plays the kernel: writes to
 * vport_create / vport_delete / scan are seen by hooks that create or remove the directories the
 * FC transport would (drivers/scsi/scsi_transport_fc.c layout, plain directories instead of
 * symlinks). Errors a real attribute returns are injected by throwing from the write hook.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Sysfs, SysfsError } from '../../../src/host/sysfs.js';

type WriteHook = (rel: string, value: string) => void;

export class FakeSysfs extends Sysfs {
  readonly hooks: WriteHook[] = [];
  readonly writes: { rel: string; value: string }[] = [];
  override write(rel: string, value: string): void {
    for (const h of this.hooks) h(rel, value); // may throw an injected SysfsError
    super.write(rel, value);
    this.writes.push({ rel, value });
  }
  override writeProc(rel: string, value: string): void {
    this.writes.push({ rel: `proc:${rel}`, value });
    super.writeProc(rel, value);
  }
}

export function sysfsError(code: string): SysfsError {
  return new SysfsError(`injected ${code}`, 'fake', code);
}

export interface VportBehaviour {
  /** Final vport_state once created (default Active). */
  state?: string;
  /** Delay before the vport appears (ms). */
  delayMs?: number;
  /** Port ID the fabric assigns (default 0x010203). */
  portId?: number;
}

const hex = (v: bigint | number) => `0x${v.toString(16)}`;

export class FakeKernel {
  readonly dir: string;
  readonly sys: FakeSysfs;
  private nextHost = 10;
  private nextVport = new Map<number, number>();
  behaviour: VportBehaviour = {};
  /** Set to a code to make the next vport_create write fail with it. */
  failCreate: string | null = null;

  constructor() {
    this.dir = mkdtempSync(join(tmpdir(), 'npiv-sysfs-'));
    const root = join(this.dir, 'sys');
    mkdirSync(join(this.dir, 'proc', 'scsi'), { recursive: true });
    mkdirSync(join(this.dir, 'dev'), { recursive: true });
    writeFileSync(join(this.dir, 'proc', 'scsi', 'device_info'), '');
    for (const d of [
      'class/fc_host',
      'class/fc_vports',
      'class/fc_remote_ports',
      'class/scsi_host',
      'bus/scsi/devices',
    ])
      mkdirSync(join(root, d), { recursive: true });
    mkdirSync(join(root, 'module/scsi_mod/parameters'), { recursive: true });
    writeFileSync(join(root, 'module/scsi_mod/parameters/scan'), 'manual\n');
    this.sys = new FakeSysfs({ root, procRoot: join(this.dir, 'proc'), devRoot: join(this.dir, 'dev') });
    this.sys.hooks.push((rel, value) => this.onWrite(rel, value));
  }

  cleanup(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }

  file(rel: string, value: string): void {
    const p = this.sys.path(rel);
    mkdirSync(join(p, '..'), { recursive: true });
    writeFileSync(p, `${value}\n`);
  }

  addPhysicalHost(
    hostNo: number,
    o: { wwpn: bigint; wwnn: bigint; max?: number; inuse?: number; state?: string; npiv?: boolean },
  ): void {
    const d = `class/fc_host/host${hostNo}`;
    this.file(`${d}/port_name`, hex(o.wwpn));
    this.file(`${d}/node_name`, hex(o.wwnn));
    this.file(`${d}/port_id`, '0x010100');
    this.file(`${d}/port_type`, 'NPort (fabric via point-to-point)');
    this.file(`${d}/port_state`, o.state ?? 'Online');
    this.file(`${d}/fabric_name`, '0x100000051e000001');
    this.file(`${d}/speed`, '8 Gbit');
    if (o.npiv !== false) {
      this.file(`${d}/max_npiv_vports`, String(o.max ?? 127));
      this.file(`${d}/npiv_vports_inuse`, String(o.inuse ?? 0));
      this.file(`${d}/vport_create`, '');
      this.file(`${d}/vport_delete`, '');
    }
    this.nextHost = Math.max(this.nextHost, hostNo + 1);
  }

  /** Creates the vport the way the transport + LLDD do: fc_vports entry, then its Scsi_Host. */
  createVport(parent: number, wwpn: bigint, wwnn: bigint, b: VportBehaviour = this.behaviour): { hostNo: number } {
    const k = this.nextVport.get(parent) ?? 0;
    this.nextVport.set(parent, k + 1);
    const name = `vport-${parent}:0-${k}`;
    const hostNo = this.nextHost++;
    const d = `class/fc_vports/${name}`;
    this.file(`${d}/port_name`, hex(wwpn));
    this.file(`${d}/node_name`, hex(wwnn));
    this.file(`${d}/vport_state`, b.state ?? 'Active');
    this.file(`${d}/vport_last_state`, 'Initializing');
    mkdirSync(this.sys.path(`${d}/device/host${hostNo}`), { recursive: true });
    const h = `class/fc_host/host${hostNo}`;
    this.file(`${h}/port_name`, hex(wwpn));
    this.file(`${h}/node_name`, hex(wwnn));
    this.file(
      `${h}/port_id`,
      `0x${(b.state === undefined || b.state === 'Active' ? (b.portId ?? 0x010203) : 0).toString(16).padStart(6, '0')}`,
    );
    this.file(`${h}/port_type`, 'NPIV VPORT');
    this.file(`${h}/port_state`, 'Online');
    this.file(`${h}/fabric_name`, '0x100000051e000001');
    this.file(`${h}/speed`, '8 Gbit');
    this.file(`class/scsi_host/host${hostNo}/scan`, '');
    const inuse = this.sys.read(`class/fc_host/host${parent}/npiv_vports_inuse`);
    if (inuse !== null) this.file(`class/fc_host/host${parent}/npiv_vports_inuse`, String(Number(inuse) + 1));
    return { hostNo };
  }

  removeVportByWwpn(wwpn: bigint): boolean {
    for (const name of this.sys.list('class/fc_vports', /^vport-/)) {
      if (this.sys.read(`class/fc_vports/${name}/port_name`) !== hex(wwpn)) continue;
      const hosts = this.sys.list(`class/fc_vports/${name}/device`, /^host/);
      for (const h of hosts) rmSync(this.sys.path(`class/fc_host/${h}`), { recursive: true, force: true });
      rmSync(this.sys.path(`class/fc_vports/${name}`), { recursive: true, force: true });
      return true;
    }
    return false;
  }

  setVportState(wwpn: bigint, state: string): void {
    for (const name of this.sys.list('class/fc_vports', /^vport-/))
      if (this.sys.read(`class/fc_vports/${name}/port_name`) === hex(wwpn))
        this.file(`class/fc_vports/${name}/vport_state`, state);
  }

  addRport(
    hostNo: number,
    n: number,
    o: { wwpn: bigint; wwnn: bigint; portId: number; roles?: string; state?: string; target?: number },
  ): void {
    const d = `class/fc_remote_ports/rport-${hostNo}:0-${n}`;
    this.file(`${d}/port_name`, hex(o.wwpn));
    this.file(`${d}/node_name`, hex(o.wwnn));
    this.file(`${d}/port_id`, `0x${o.portId.toString(16).padStart(6, '0')}`);
    this.file(`${d}/roles`, o.roles ?? 'FCP Target');
    this.file(`${d}/port_state`, o.state ?? 'Online');
    this.file(`${d}/scsi_target_id`, String(o.target ?? n));
    this.file(`${d}/maxframe_size`, '2048 bytes');
  }

  removeRport(hostNo: number, n: number): void {
    rmSync(this.sys.path(`class/fc_remote_ports/rport-${hostNo}:0-${n}`), { recursive: true, force: true });
  }

  addLun(
    hostNo: number,
    target: number,
    lun: number,
    o: { sg?: number; block?: boolean; vendor?: string; model?: string; type?: number } = {},
  ): void {
    const d = `bus/scsi/devices/${hostNo}:0:${target}:${lun}`;
    mkdirSync(this.sys.path(d), { recursive: true });
    if (o.sg !== undefined) mkdirSync(this.sys.path(`${d}/scsi_generic/sg${o.sg}`), { recursive: true });
    if (o.block) mkdirSync(this.sys.path(`${d}/block/sdz`), { recursive: true });
    this.file(`${d}/vendor`, o.vendor ?? 'NPIVSAN ');
    this.file(`${d}/model`, o.model ?? 'VIRTUAL-DISK    ');
    this.file(`${d}/type`, String(o.type ?? 0));
    this.file(`${d}/delete`, ''); // write-only on a real kernel
  }

  /** LUNs a target presents to a manual scan ("H:C:T" → LUNs; the W-LUN 49409 when wlun). */
  readonly presented = new Map<string, { luns: number[]; wlun: boolean; block?: boolean }>();
  private nextSg = 0;

  private onWrite(rel: string, value: string): void {
    const scan = /^class\/scsi_host\/host([0-9]+)\/scan$/.exec(rel);
    if (scan) {
      const m = /^([0-9]+) ([0-9]+) ([0-9]+)\n?$/.exec(value);
      if (!m) throw sysfsError('EINVAL');
      const host = Number(scan[1]);
      const p = this.presented.get(`${host}:${m[1]}:${m[2]}`);
      const lun = Number(m[3]);
      if (p && (p.luns.includes(lun) || (lun === 49409 && p.wlun)))
        setTimeout(
          () =>
            this.addLun(host, Number(m[2]), lun, {
              sg: this.nextSg++,
              type: lun === 49409 ? 0x1e : 0,
              block: lun !== 49409 && p.block === true,
            }),
          5,
        );
      return;
    }
    const del = /^bus\/scsi\/devices\/([0-9]+:[0-9]+:[0-9]+:[0-9]+)\/delete$/.exec(rel);
    if (del) {
      if (value.trim() !== '1') throw sysfsError('EINVAL');
      // scsi_remove_device: the device and its sg node go away (asynchronously here).
      setTimeout(() => rmSync(this.sys.path(`bus/scsi/devices/${del[1]}`), { recursive: true, force: true }), 5);
      return;
    }
    const create = /^class\/fc_host\/host([0-9]+)\/vport_create$/.exec(rel);
    if (create) {
      if (this.failCreate) {
        const code = this.failCreate;
        this.failCreate = null;
        throw sysfsError(code);
      }
      const m = /^([0-9a-f]{16}):([0-9a-f]{16})\n?$/.exec(value);
      if (!m) throw sysfsError('EINVAL');
      const parent = Number(create[1]);
      const wwpn = BigInt(`0x${m[1]}`);
      const wwnn = BigInt(`0x${m[2]}`);
      const b = { ...this.behaviour };
      // The transport returns at once; the LLDD's FDISC completes later.
      setTimeout(() => this.createVport(parent, wwpn, wwnn, b), b.delayMs ?? 5);
      return;
    }
    const vdel = /^class\/fc_host\/host([0-9]+)\/vport_delete$/.exec(rel);
    if (vdel) {
      const m = /^([0-9a-f]{16}):([0-9a-f]{16})\n?$/.exec(value);
      if (!m) throw sysfsError('EINVAL');
      const wwpn = BigInt(`0x${m[1]}`);
      const exists = this.sys
        .list('class/fc_vports', /^vport-/)
        .some((n) => this.sys.read(`class/fc_vports/${n}/port_name`) === hex(wwpn));
      if (!exists) throw sysfsError('ENODEV');
      setTimeout(() => this.removeVportByWwpn(wwpn), 5);
    }
  }
}
