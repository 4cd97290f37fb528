/**
 * Keeping the host from making block devices of the guest's LUNs: SCSI devices for the vport's
 * LUNs are created only by us, one LUN at a time, and never get an upper-level driver (sd):
 *
 *   1. `scsi_mod.scan=manual` (boot parameter, or /sys/module/scsi_mod/parameters/scan): the FC
 *      transport's automatic target scan (`fc_scsi_scan_rport` → `scsi_scan_target(...,
 *      SCSI_SCAN_RESCAN)`) then creates nothing; only the `scan` attribute of the vport's
 *      scsi_host does (`fc_user_scan`, SCSI_SCAN_MANUAL). The backend refuses to start without it.
 *   2. Per target, the REPORT LUNS well-known LU (W-LUN 0xC101, `SCSI_W_LUN_REPORT_LUNS`) is
 *      scanned first: its type is 0x1E, which `sd_probe` does not take. Its INQUIRY vendor and
 *      model (sysfs `vendor`, `model`) name the array.
 *   3. A `/proc/scsi/device_info` entry VENDOR:MODEL:flags with BLIST_NO_ULD_ATTACH (0x100000) is
 *      added (OR-ed with any flags the kernel already has for that vendor/model, since a user entry
 *      replaces them): `scsi_add_lun` then sets `sdev->no_uld_attach` and `scsi_bus_match` never
 *      binds sd; the sg and bsg nodes are still created.
 *   4. Each LUN the guest addresses is then added with "C T L" on the vport host's `scan`.
 *
 * Kernels built without CONFIG_SCSI_PROC_FS (Debian's, among others) have no
 * `/proc/scsi/device_info`. There the gate turns the SCSI bus's `drivers_autoprobe` off for the
 * length of each scan it makes (`bus_probe_device` then binds no driver to the new device) and
 * restores it: the sg node is a class interface, not a bus driver, so it still appears. A device
 * someone else adds during that window is not bound either; a ULD module loaded later (`modprobe
 * sd_mod`) would bind the gate's devices, so sd should already be loaded (docs/host-backend.md).
 *
 * A LUN that has a block device anyway (an entry removed by hand, another process scanning) is
 * refused, loudly, and never served.
 */
import type { Logger } from '../util/log.js';
import { readScsiDevice, type ScsiDevice } from './fc-model.js';
import type { Sysfs } from './sysfs.js';

export const BLIST_NO_ULD_ATTACH = 0x100000n;
export const W_LUN_REPORT_LUNS = 49409n; // 0xC101 as a Linux LUN (scsilun_to_int of C1 01 00 ..)
/** The SCSI bus's automatic driver binding (bus_type.drivers_autoprobe, "0" or "1"). */
const AUTOPROBE = 'bus/scsi/drivers_autoprobe';

export class LunGateError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LunGateError';
  }
}

/** `/proc/scsi/device_info` lines: "'VENDOR  ' 'MODEL           ' 0xFLAGS" (scsi_devinfo_seq_show). */
export function parseDeviceInfo(text: string): { vendor: string; model: string; flags: bigint }[] {
  const out: { vendor: string; model: string; flags: bigint }[] = [];
  for (const line of text.split('\n').slice(0, 10000)) {
    const m = /^'([\x20-\x7e]{0,8})' '([\x20-\x7e]{0,16})' 0x([0-9a-fA-F]{1,16})$/.exec(line.trim());
    if (m) out.push({ vendor: m[1]!.trimEnd(), model: m[2]!.trimEnd(), flags: BigInt(`0x${m[3]}`) });
  }
  return out;
}

/** The scan mode must be manual, or the host scans (and sd binds) every LUN of the vport itself. */
export function checkManualScan(sys: Sysfs): void {
  const mode = sys.read('module/scsi_mod/parameters/scan');
  if (mode !== 'manual')
    throw new LunGateError(
      `the host scans SCSI targets automatically (scsi_mod scan=${mode ?? 'unknown'}): the vport's LUNs would become ` +
        'block devices on the host. Boot with scsi_mod.scan=manual, or as root: printf manual > /sys/module/scsi_mod/parameters/scan ' +
        '(global: other hot-plugged SCSI disks then need a manual scan too; see docs/host-backend.md)',
    );
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export class LunGate {
  /** Targets whose array already has a NO_ULD_ATTACH entry: "C:T". */
  private readonly guarded = new Set<string>();

  constructor(
    private readonly sys: Sysfs,
    private readonly hostNo: number,
    private readonly o: { timeoutMs?: number; pollMs?: number; log?: Logger } = {},
  ) {}

  private device(channel: number, target: number, lun: bigint): ScsiDevice | null {
    return readScsiDevice(this.sys, `${this.hostNo}:${channel}:${target}:${lun}`);
  }

  private async scan(channel: number, target: number, lun: bigint): Promise<ScsiDevice | null> {
    const noProbe = this.unguardedByDeviceInfo;
    const autoprobe = noProbe ? this.sys.read(AUTOPROBE) : null;
    if (noProbe) {
      if (autoprobe !== '0' && autoprobe !== '1')
        throw new LunGateError(`cannot keep sd off the LUNs: /sys/${AUTOPROBE} reads ${JSON.stringify(autoprobe)}`);
      this.sys.write(AUTOPROBE, '0');
    }
    try {
      // The scan attribute's write returns once scsi_scan_target has added the device.
      this.sys.write(`class/scsi_host/host${this.hostNo}/scan`, `${channel} ${target} ${lun}\n`);
    } finally {
      if (noProbe && autoprobe === '1') this.sys.write(AUTOPROBE, '1');
    }
    const deadline = Date.now() + (this.o.timeoutMs ?? 5000);
    for (;;) {
      const d = this.device(channel, target, lun);
      if (d?.sg) return d;
      if (Date.now() >= deadline) return d;
      await sleep(this.o.pollMs ?? 50);
    }
  }

  /** True when this kernel has no /proc/scsi/device_info: scans then run with bus autoprobe off. */
  private get unguardedByDeviceInfo(): boolean {
    return this.sys.readProc('scsi/device_info') === null;
  }

  /** The array behind target T gets BLIST_NO_ULD_ATTACH before any of its LUNs is scanned. */
  async guardTarget(channel: number, target: number): Promise<void> {
    const key = `${channel}:${target}`;
    if (this.guarded.has(key)) return;
    const wlun =
      this.device(channel, target, W_LUN_REPORT_LUNS) ?? (await this.scan(channel, target, W_LUN_REPORT_LUNS));
    if (!wlun || wlun.vendor === null || wlun.model === null)
      throw new LunGateError(
        `target ${this.hostNo}:${channel}:${target} presents no REPORT LUNS well-known LU, so its vendor/model is unknown ` +
          "before a LUN is scanned: add the array's entry by hand (echo 'VENDOR:MODEL:0x100000' > /proc/scsi/device_info)",
      );
    const vendor = wlun.vendor.trimEnd();
    const model = wlun.model.trimEnd();
    const text = this.sys.readProc('scsi/device_info');
    if (text === null) {
      // No device_info (CONFIG_SCSI_PROC_FS off): every scan() runs with bus autoprobe off instead.
      this.o.log?.info(
        { event: 'host_no_device_info', vendor, model },
        'no /proc/scsi/device_info: scanning with SCSI bus autoprobe off',
      );
      this.guarded.add(key);
      return;
    }
    const existing = parseDeviceInfo(text).filter((e) => e.vendor === vendor && e.model === model);
    const flags = existing.reduce((f, e) => f | e.flags, 0n);
    if (!(flags & BLIST_NO_ULD_ATTACH)) {
      const entry = `${vendor.padEnd(8)}:${model.padEnd(16)}:0x${(flags | BLIST_NO_ULD_ATTACH).toString(16)}\n`;
      this.sys.writeProc('scsi/device_info', entry);
      this.o.log?.info({ event: 'host_no_uld_attach', vendor, model }, 'array added to device_info with NO_ULD_ATTACH');
    }
    this.guarded.add(key);
  }

  /**
   * Deletes the SCSI device of a LUN the target no longer reports (its `delete` attribute:
   * scsi_remove_device, which also removes its sg node), and waits until it is gone.
   */
  async removeLun(channel: number, target: number, lun: bigint): Promise<void> {
    const name = `${this.hostNo}:${channel}:${target}:${lun}`;
    if (!this.device(channel, target, lun)) return;
    this.sys.write(`bus/scsi/devices/${name}/delete`, '1');
    const deadline = Date.now() + (this.o.timeoutMs ?? 5000);
    while (this.device(channel, target, lun)) {
      if (Date.now() >= deadline) throw new LunGateError(`SCSI device ${name} still present after delete`);
      await sleep(this.o.pollMs ?? 50);
    }
    this.o.log?.info({ event: 'host_lun_removed', device: name }, 'LUN no longer reported: SCSI device deleted');
  }

  /**
   * The SCSI device of LUN L of target T, created by a manual scan if needed (after guardTarget).
   * Null when the target does not present that LUN. Throws when the LUN has a block device.
   */
  async ensureLun(channel: number, target: number, lun: bigint): Promise<ScsiDevice | null> {
    let d = this.device(channel, target, lun);
    if (!d?.sg) {
      await this.guardTarget(channel, target);
      d = await this.scan(channel, target, lun);
    }
    if (!d?.sg) return null;
    if (d.hasBlock)
      throw new LunGateError(
        `LUN ${this.hostNo}:${channel}:${target}:${lun} has a block device on the host (sd is bound): refusing to pass it ` +
          'to the guest; see docs/host-backend.md',
      );
    return d;
  }
}
