/**
 * Issue 5, item 1 with a real guest: SAN changes made at run time through the control socket reach
 * the unmodified qla2xxx as on real hardware. Mapping or unmapping a LUN raises REPORTED LUNS
 * DATA HAS CHANGED and, after the usual rescan, the guest's disks change; resizing a volume raises
 * CAPACITY DATA HAS CHANGED and the new size shows after a device rescan; a zoning change and a
 * target port leaving and returning reach the vport as RSCNs, the driver's port-update handling
 * (AEN 0x8015) runs discovery and the remote ports converge on the new set.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runGuest, type GuestRunResult } from '../../src/harness/guest.js';
import { controlRequest } from '../../src/san/control.js';
import { startCli, waitForPath, type ProjectProcess } from './support/processes.js';

const HBA = { wwpn: 'c0:50:76:ff:e5:00:30:01', wwnn: 'c0:50:76:ff:e5:00:30:00' };
const TP_1 = '50:0a:09:81:00:00:00:01';
const TP_2 = '50:0a:09:82:00:00:00:01';
const sysfsWwn = (w: string) => '0x' + w.replaceAll(':', '');
const MIB_SECTORS = 2048;

const SAN_CONFIG = {
  fabric: {
    name: 'fabric-a',
    domain: 1,
    zoning: { default: 'deny', zones: [{ name: 'z1', members: [HBA.wwpn, TP_1] }] },
  },
  arrays: [
    {
      name: 'array1',
      ports: [
        { wwpn: TP_1, wwnn: '50:0a:09:80:00:00:00:01' },
        { wwpn: TP_2, wwnn: '50:0a:09:80:00:00:00:01' },
      ],
      volumes: [
        { name: 'v0', size: '32MiB' },
        { name: 'v1', size: '16MiB' },
      ],
      hostGroups: [{ name: 'vm', initiators: [HBA.wwpn], luns: { '0': 'v0' } }],
    },
  ],
};

/** Host-side change for each REQ line the guest prints. */
const CHANGES: Record<string, Record<string, unknown> | Record<string, unknown>[]> = {
  'map-lun': { cmd: 'map-lun', array: 'array1', hostGroup: 'vm', lun: 1, volume: 'v1' },
  resize: { cmd: 'resize-volume', array: 'array1', name: 'v0', size: '48MiB' },
  'unmap-lun': { cmd: 'unmap-lun', array: 'array1', hostGroup: 'vm', lun: 1 },
  'zone-add': { cmd: 'zone-add-member', zone: 'z1', wwpn: TP_2 },
  'zone-remove': { cmd: 'zone-remove-member', zone: 'z1', wwpn: TP_2 },
  'target-down': { cmd: 'port-down', wwpn: TP_1 },
  'target-up': { cmd: 'port-up', wwpn: TP_1 },
  // Fault injection: MEDIUM ERROR on LBAs 2048..2055 of LUN 0 (the 4 KiB block 256).
  'scsi-error': { cmd: 'fault-add', kind: 'scsi-error', lun: 0, lba: 2048, blocks: 8 },
  'scsi-clear': { cmd: 'fault-clear' },
  // The array port flaps once while the vport's next two PLOGIs are rejected: the driver retries.
  'flap-reject': [
    { cmd: 'fault-add', kind: 'reject-login', wwpn: HBA.wwpn, direction: 'from', logins: ['plogi'], count: 2 },
    { cmd: 'fault-add', kind: 'port-flap', wwpn: TP_1, cycles: 1, downMs: 3000, upMs: 1000 },
  ],
};

const GUEST_SCRIPT = `
say() { echo "GUEST:$*"; }
disks() { ls -d /sys/block/sd* 2>/dev/null | wc -l; }
lun_disk() { for d in /sys/block/sd*; do case "$(basename $(readlink -f $d/device))" in *:$1) echo \${d##*/}; return;; esac; done; }
rports_online() { n=0; for r in /sys/class/fc_remote_ports/rport-*; do [ "$(cat $r/port_state 2>/dev/null)" = Online ] && n=$((n+1)); done; echo $n; }
rport_state() { for r in /sys/class/fc_remote_ports/rport-*; do [ "$(cat $r/port_name 2>/dev/null)" = "$1" ] && { cat $r/port_state; return; }; done; echo absent; }
# wait_ua DISK TEXT KERNEL_TEXT: a direct read of the disk until the kernel logs the unit attention
# (the target reports it once, on the next command; the kernel logs KERNEL_TEXT and retries).
wait_ua() {
  before=$(dmesg | grep -ci "$3"); i=0
  while [ $i -lt 60 ]; do
    dd if=/dev/$1 of=/dev/null bs=4k count=1 iflag=direct 2>/dev/null
    [ "$(dmesg | grep -ci "$3")" -gt "$before" ] && { say "UA $2"; return 0; }
    sleep 0.5; i=$((i+1))
  done
  say "NO_UA $2 $1"; return 1
}
settle() { t=0; while [ "$(eval "$1")" != "$2" ] && [ $t -lt $3 ]; do sleep 1; t=$((t+1)); done; }

h=/sys/class/fc_host/host0
wait_for $h/port_state 120
settle 'cat $h/port_state' Online 120
settle disks 1 60
sleep 2
H=$(basename $(readlink -f $h/device))
H=\${H#host}
D0=$(lun_disk 0)
say "START disks=$(disks) lun0=$D0 size=$(cat /sys/block/$D0/size) rports=$(rports_online)"

say "REQ map-lun"
wait_ua $D0 "reported luns data has changed" "LUN assignments on this target have changed"
echo "- - -" > /sys/class/scsi_host/host$H/scan
settle disks 2 30
D1=$(lun_disk 1)
say "AFTER_MAP disks=$(disks) lun1=$D1 size1=$(cat /sys/block/$D1/size 2>/dev/null)"

say "REQ resize"
wait_ua $D0 "capacity data has changed" "capacity data has changed"
echo 1 > /sys/block/$D0/device/rescan
sleep 1
say "AFTER_RESIZE size=$(cat /sys/block/$D0/size)"
fio --name=grown --filename=/dev/$D0 --rw=write --bs=64k --offset=32M --size=8M --direct=1 --ioengine=psync --verify=crc32c --do_verify=1 --output-format=terse --terse-version=3 > /tmp/fio.out 2>/tmp/fio.err
say "FIO rc=$? err=$(cut -d';' -f5 /tmp/fio.out) verify_errors=$(grep -ciE 'verify|bad magic|crc32c' /tmp/fio.err)"

say "REQ unmap-lun"
wait_ua $D0 "reported luns data has changed" "LUN assignments on this target have changed"
# The usual rescan for removed LUNs (rescan-scsi-bus.sh -r): delete devices REPORT LUNS no longer lists.
sg_luns /dev/$D0 > /tmp/luns 2>&1
grep -q 0001000000000000 /tmp/luns || echo 1 > /sys/block/$D1/device/delete
settle disks 1 30
say "AFTER_UNMAP disks=$(disks) luns=$(grep -cE '^ +[0-9a-f]{16}' /tmp/luns)"

say "REQ zone-add"
settle rports_online 2 60
settle disks 2 60
say "AFTER_ZONE_ADD rports=$(rports_online) tp2=$(rport_state ${sysfsWwn(TP_2)}) disks=$(disks)"

say "REQ zone-remove"
settle "rport_state ${sysfsWwn(TP_2)}" Blocked 60
# Discovery converges: the zoned-out port stays away, the other one is (again) Online.
settle rports_online 1 60
say "AFTER_ZONE_REMOVE rports=$(rports_online) tp2=$(rport_state ${sysfsWwn(TP_2)})"

say "REQ target-down"
t=0; while [ "$(rport_state ${sysfsWwn(TP_1)})" = Online ] && [ $t -lt 60 ]; do sleep 1; t=$((t+1)); done
say "AFTER_TARGET_DOWN tp1=$(rport_state ${sysfsWwn(TP_1)})"
say "REQ target-up"
settle "rport_state ${sysfsWwn(TP_1)}" Online 90
sleep 2
dd if=/dev/$D0 of=/dev/null bs=64k count=16 iflag=direct 2>/dev/null; say "AFTER_TARGET_UP tp1=$(rport_state ${sysfsWwn(TP_1)}) dd=$?"
say "REQ scsi-error"
rd() { dd if=/dev/$D0 of=/dev/null bs=4k skip=$1 count=1 iflag=direct 2>/dev/null; }
i=0; while [ $i -lt 30 ] && rd 256; do sleep 1; i=$((i+1)); done
rd 256; r_in=$?; rd 512; r_out=$?
head -c 4096 /dev/urandom > /tmp/blk4k
dd if=/tmp/blk4k of=/dev/$D0 bs=4k seek=256 count=1 oflag=direct 2>/dev/null; w_in=$?
say "SCSI_ERROR read_in=$r_in read_out=$r_out write_in=$w_in medium_logged=$(dmesg | grep -ci 'Medium Error') unrecovered=$(dmesg | grep -ci 'Unrecovered read error') write_error=$(dmesg | grep -ci 'Write error')"
say "REQ scsi-clear"
i=0; while [ $i -lt 30 ] && ! rd 256; do sleep 1; i=$((i+1)); done
dd if=/tmp/blk4k of=/dev/$D0 bs=4k seek=256 count=1 oflag=direct 2>/dev/null; w_in=$?
dd if=/dev/$D0 bs=4k skip=256 count=1 iflag=direct 2>/dev/null | cmp -s - /tmp/blk4k; say "SCSI_CLEARED write_in=$w_in readback_same=$?"
say "REQ flap-reject"
t=0; while [ "$(rport_state ${sysfsWwn(TP_1)})" = Online ] && [ $t -lt 60 ]; do sleep 0.5; t=$((t+1)); done
say "FLAP_DOWN tp1=$(rport_state ${sysfsWwn(TP_1)})"
settle "rport_state ${sysfsWwn(TP_1)}" Online 120
sleep 1
dd if=/dev/$D0 of=/dev/null bs=64k count=16 iflag=direct 2>/dev/null; say "FLAP_BACK tp1=$(rport_state ${sysfsWwn(TP_1)}) dd=$?"
say "DMESG_COUNTS lunchange=$(dmesg | grep -ci 'LUN assignments on this target have changed') capchange=$(dmesg | grep -ci 'capacity data has changed') rscn=$(dmesg | grep -ci 'RSCN')"
exit 0
`;

describe('living SAN: LUN mapping, volume resize, zoning and target port changes reach the guest', () => {
  const dir = mkdtempSync(join(tmpdir(), 'npiv-living-changes-'));
  const linkPath = join(dir, 'san.sock');
  const ctlPath = join(dir, 'san-ctl.sock');
  const sock = join(dir, 'vport.sock');
  const procs: ProjectProcess[] = [];
  const ctlResults: string[] = [];
  const faultHits: Record<string, number> = {};
  let run: GuestRunResult;

  beforeAll(async () => {
    const cfg = join(dir, 'san.json');
    writeFileSync(cfg, JSON.stringify(SAN_CONFIG));
    const san = startCli(['san', '--config', cfg, '--link', linkPath, '--control', ctlPath], {
      NPIV_HBA_LOG_LEVEL: 'info',
    });
    procs.push(san);
    await waitForPath(ctlPath, san);
    const serve = startCli(['serve', '--socket', sock, '--wwpn', HBA.wwpn, '--wwnn', HBA.wwnn, '--san', linkPath], {
      NPIV_HBA_LOG_LEVEL: 'info',
    });
    procs.push(serve);
    await waitForPath(sock, serve);
    const pending: Promise<void>[] = [];
    run = await runGuest({
      // Under a loaded TCG host the boot-time IO-APIC timer check can misfire and panic.
      kernelArgs: ['no_timer_check'],
      devices: [sock],
      qlaParams: { ql2xextended_error_logging: '0x1e400000' },
      dmesg: true,
      script: GUEST_SCRIPT,
      timeoutMs: 600_000,
      onLine: (line) => {
        const m = /GUEST:REQ (\S+)/.exec(line);
        const change = m ? CHANGES[m[1]!] : undefined;
        if (!change) return;
        pending.push(
          (async () => {
            const errors: string[] = [];
            for (const req of Array.isArray(change) ? change : [change]) {
              const r = await controlRequest(ctlPath, req).catch((e: unknown) => ({ ok: false, error: String(e) }));
              if (!r.ok) errors.push(r.error ?? 'failed');
            }
            ctlResults.push(`${m![1]} ${errors.length ? errors.join('; ') : 'ok'}`);
          })(),
        );
      },
    });
    await Promise.all(pending);
    const list = await controlRequest(ctlPath, { cmd: 'fault-list' });
    for (const f of (list.result ?? []) as { spec: { kind: string }; hits: number }[]) faultHits[f.spec.kind] = f.hits;
    writeFileSync(join(tmpdir(), 'npiv-living-changes.log'), run.output + '\n--- san\n' + san.log().slice(-100_000));
    const fio = run.guestLines.find((l) => l.startsWith('FIO ')) ?? 'FIO missing';
    console.log(
      ['living SAN — run-time SAN changes', `  changes applied          ${ctlResults.length}`, `  ${fio}`].join('\n'),
    );
  });

  afterAll(async () => {
    for (const p of procs.reverse()) await p.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const line = (prefix: string) => run.guestLines.find((l) => l.startsWith(prefix)) ?? `${prefix}<missing>`;

  it('boots, every change is accepted by the SAN, no kernel problems', () => {
    expect(run.timedOut, run.output.slice(-8000)).toBe(false);
    expect(run.exitStatus, run.output.slice(-8000)).toBe(0);
    expect(ctlResults.sort()).toEqual(
      Object.keys(CHANGES)
        .map((k) => `${k} ok`)
        .sort(),
    );
    expect(run.kernelProblems).toEqual([]);
    expect(line('START ')).toMatch(new RegExp(`^START disks=1 lun0=sd\\w+ size=${32 * MIB_SECTORS} rports=1$`));
  });

  it('map-lun: REPORTED LUNS DATA HAS CHANGED, and after a host scan the new LUN is a disk', () => {
    expect(run.guestLines.filter((l) => l.startsWith('UA reported luns data has changed'))).toHaveLength(2);
    expect(line('AFTER_MAP ')).toMatch(new RegExp(`^AFTER_MAP disks=2 lun1=sd\\w+ size1=${16 * MIB_SECTORS}$`));
  });

  it('resize-volume: CAPACITY DATA HAS CHANGED, the new size shows after a device rescan and the new space holds data', () => {
    expect(line('UA capacity data has changed')).not.toMatch(/missing/);
    expect(line('AFTER_RESIZE ')).toBe(`AFTER_RESIZE size=${48 * MIB_SECTORS}`);
    expect(line('FIO ')).toBe('FIO rc=0 err=0 verify_errors=0');
  });

  it('unmap-lun: the LUN leaves REPORT LUNS and the rescan removes its disk', () => {
    expect(line('AFTER_UNMAP ')).toBe('AFTER_UNMAP disks=1 luns=1');
  });

  it('zoning change: RSCN → discovery adds, then removes, the second target port', () => {
    expect(line('AFTER_ZONE_ADD ')).toBe('AFTER_ZONE_ADD rports=2 tp2=Online disks=2');
    expect(line('AFTER_ZONE_REMOVE ')).toMatch(/^AFTER_ZONE_REMOVE rports=1 tp2=(Blocked|Not Present)$/);
    // The driver logged the RSCN-driven port updates (AEN 0x8015: "RSCN database changed").
    expect(line('DMESG_COUNTS ')).toMatch(/ rscn=[1-9]\d*$/);
  });

  it('fault injection: MEDIUM ERROR on an LBA range fails reads and writes there only, until cleared', () => {
    expect(line('SCSI_ERROR ')).toMatch(
      /^SCSI_ERROR read_in=[1-9]\d* read_out=0 write_in=[1-9]\d* medium_logged=[1-9]\d* unrecovered=[1-9]\d* write_error=[1-9]\d*$/,
    );
    expect(line('SCSI_CLEARED ')).toBe('SCSI_CLEARED write_in=0 readback_same=0');
  });

  it('fault injection: a port flap while PLOGIs are rejected; the driver retries and the rport returns', () => {
    expect(line('FLAP_DOWN ')).toMatch(/^FLAP_DOWN tp1=(Blocked|Not Present)$/);
    expect(line('FLAP_BACK ')).toBe('FLAP_BACK tp1=Online dd=0');
    expect(faultHits['reject-login']).toBe(2);
    expect(faultHits['port-flap']).toBe(1);
  });

  it('a target port leaving and returning: the rport goes and comes back Online with working I/O', () => {
    expect(line('AFTER_TARGET_DOWN ')).toMatch(/^AFTER_TARGET_DOWN tp1=(Blocked|Not Present)$/);
    expect(line('AFTER_TARGET_UP ')).toBe('AFTER_TARGET_UP tp1=Online dd=0');
  });
});
