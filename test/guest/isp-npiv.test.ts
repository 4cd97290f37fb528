/**
 * Issue 13 part B, real guest: NPIV inside the emulated ISP2532. The unmodified qla2xxx creates
 * vports with `vport_create` for the WWPN:WWNN pairs the host granted (serve --npiv-wwpn): each
 * logs in with FDISC on the HBA's link, gets its own fc_host (Online, its own WWPN), sees only its
 * own zoned target and the LUN masked to it, and moves verified data (fio) as does the base port.
 * Eight vports run at once; a link bounce at the switch and an ISP abort keep them (the firmware
 * re-FDISCs them; after the abort the driver re-sends VP_CONFIG); vport_disable / re-enable and
 * vport_delete work; a WWPN the host did not grant fails (the vport goes Failed, nothing reaches
 * the fabric).
 */
import { writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runGuest, type GuestRunResult } from '../../src/harness/guest.js';
import { decodeServiceParameters, ELS } from '../../src/fc/els.js';
import { decodeFrameHeader, FC_HEADER_SIZE, R_CTL } from '../../src/fc/frame.js';
import { Zoning } from '../../src/san/fabric/zoning.js';
import { formatWwnSysfs as hex } from '../../src/util/wwn.js';
import { VPORT_WWPN as BASE, startIspRig, type IspRig } from './support/rig.js';

const TGT_BASE = { wwpn: 0x500a0981000000a1n, wwnn: 0x500a0980000000a1n };
const TGT_VP = { wwpn: 0x500a0981000000b1n, wwnn: 0x500a0980000000b1n };
/** Eight granted vports; VP[0] carries the data test. */
const VP = Array.from({ length: 8 }, (_, i) => ({
  wwpn: 0xc050760000000101n + BigInt(i << 8),
  wwnn: 0xc050760000000100n + BigInt(i << 8),
}));
const NOT_GRANTED = { wwpn: 0xc0507600000099a1n, wwnn: 0xc0507600000099a0n };
/** LUN sizes in 512-byte sectors: base 64 MiB, VP[i] (20 + i) MiB. */
const BASE_SECTORS = 64 * 2048;
const vpSectors = (i: number) => (20 + i) * 2048;

const plain = (w: bigint) => w.toString(16).padStart(16, '0');
const pair = (n: { wwpn: bigint; wwnn: bigint }) => `${plain(n.wwpn)}:${plain(n.wwnn)}`;

const FIO = (dev: string, tag: string) =>
  `fio --name=${tag} --filename=${dev} --rw=randwrite --bs=4k --size=8M --ioengine=libaio --iodepth=8 --direct=1 \\
  --verify=crc32c --do_verify=1 --verify_fatal=1 --randrepeat=0 --output-format=terse --terse-version=3 > /tmp/${tag}.out 2>&1
echo "GUEST:FIO ${tag} rc=$? $(cut -d';' -f5 /tmp/${tag}.out | head -1)"`;

const SCRIPT = `
h=/sys/class/fc_host/host0
wait_for $h/port_name 60 || exit 3
wait_fc_online 0 120 || exit 4
wait_for /sys/block/sda 120 || exit 5
echo "GUEST:MAX $(cat $h/max_npiv_vports) $(cat $h/npiv_vports_inuse)"
# the fc_vport directory of a WWPN, the fc_host of a WWPN, the disk of a SCSI host number
vp_of() { for v in /sys/class/fc_vports/vport-*; do [ "$(cat $v/port_name 2>/dev/null)" = "$1" ] && { echo $v; return 0; }; done; return 1; }
host_of() { for f in /sys/class/fc_host/host*; do [ "$(cat $f/port_name 2>/dev/null)" = "$1" ] && { basename $f; return 0; }; done; return 1; }
disk_of() { for d in /sys/class/scsi_disk/$1:*; do [ -d $d/device/block ] && { ls $d/device/block; return 0; }; done; return 1; }
state_of() { v=$(vp_of $1) && cat $v/vport_state; }
active() { [ "$(state_of $1)" = Active ]; }
all_active() { for w in $VPS; do active $w || return 1; done; return 0; }
report() {
  for w in $VPS; do
    hn=$(host_of $w) || { echo "GUEST:VP $1 $w nohost $(state_of $w)"; continue; }
    n=\${hn#host}; d=$(disk_of $n); sz=-; [ -n "$d" ] && sz=$(cat /sys/block/$d/size)
    tg=$(cat /sys/class/fc_remote_ports/rport-$n:0-*/port_name 2>/dev/null | tr '\\n' ,)
    echo "GUEST:VP $1 $w $(state_of $w) $(cat /sys/class/fc_host/$hn/port_state) $(cat /sys/class/fc_host/$hn/port_id) $sz $tg"
  done
  echo "GUEST:BASE $1 $(cat $h/port_state) $(cat /sys/block/sda/size) $(cat /sys/class/fc_remote_ports/rport-0:0-*/port_name | tr '\\n' ,)"
}
wait_disks() { for w in $VPS; do wait_until $1 eval 'hn=$(host_of '$w') && disk_of \${hn#host} >/dev/null' || return 1; done; }

# One vport first, with data.
VPS="${hex(VP[0]!.wwpn)}"
echo ${pair(VP[0]!)} > $h/vport_create; echo "GUEST:CREATE 1 $?"
wait_until 180 all_active; echo "GUEST:ACTIVE 1 $?"
wait_disks 120; echo "GUEST:DISKS 1 $?"
report one
hn=$(host_of ${hex(VP[0]!.wwpn)}); d1=$(disk_of \${hn#host})
${FIO('/dev/sda', 'base')}
${FIO('/dev/$d1', 'vport')}

# Seven more: eight at once.
${VP.slice(1)
  .map((v) => `echo ${pair(v)} > $h/vport_create; echo "GUEST:CREATE_MORE $?"`)
  .join('\n')}
VPS="${VP.map((v) => hex(v.wwpn)).join(' ')}"
wait_until 600 all_active; echo "GUEST:ACTIVE 8 $?"
wait_disks 300; echo "GUEST:DISKS 8 $?"
echo "GUEST:INUSE $(cat $h/npiv_vports_inuse)"
report eight

# A WWPN the host did not grant.
echo ${pair(NOT_GRANTED)} > $h/vport_create; echo "GUEST:CREATE_BAD $?"
sleep 2; echo "GUEST:BAD_STATE $(state_of ${hex(NOT_GRANTED.wwpn)})"
echo ${pair(NOT_GRANTED)} > $h/vport_delete; echo "GUEST:DELETE_BAD $?"

# Link bounce at the switch (the test takes the base port's link down on this line).
echo "GUEST:BOUNCE"
sleep 8
wait_fc_online 0 180; wait_until 600 all_active; echo "GUEST:ACTIVE bounce $?"
wait_disks 300; echo "GUEST:DISKS bounce $?"
report bounce
${FIO('/dev/$d1', 'bounce')}

# ISP abort ("reset" parses decimal: 131676 = 0x2025c, qla2x00_sysfs_write_reset).
echo 131676 > /sys/class/scsi_host/host0/device/reset; echo "GUEST:ISP_RESET $?"
sleep 8
wait_fc_online 0 180; wait_until 600 all_active; echo "GUEST:ACTIVE abort $?"
wait_disks 300; echo "GUEST:DISKS abort $?"
report abort
hn=$(host_of ${hex(VP[0]!.wwpn)}); d1=$(disk_of \${hn#host})
${FIO('/dev/$d1', 'abort')}

# Disable and enable again.
v=$(vp_of ${hex(VP[0]!.wwpn)})
echo 1 > $v/vport_disable; echo "GUEST:DISABLE $? $(cat $v/vport_state)"
echo "GUEST:DISABLED"
sleep 2
echo 0 > $v/vport_disable; echo "GUEST:ENABLE $?"
wait_until 180 active ${hex(VP[0]!.wwpn)}; echo "GUEST:REENABLED $? $(cat $v/vport_state)"

# Delete them all.
${VP.map((v) => `echo ${pair(v)} > $h/vport_delete; echo "GUEST:DELETE $?"`).join('\n')}
sleep 2
echo "GUEST:LEFT $(ls /sys/class/fc_vports | wc -l) $(cat $h/npiv_vports_inuse) $(ls /sys/class/fc_host | wc -l)"
dd if=/dev/sda of=/dev/null bs=64k count=16 iflag=direct 2>/dev/null; echo "GUEST:BASE_DD $?"
exit 0
`;

describe('guest NPIV: qla2xxx vports on the emulated ISP2532', () => {
  let run: GuestRunResult;
  let rig: IspRig;
  let started = 0;
  let elapsedMs = 0;
  const fdiscs: bigint[] = [];
  const atDisabled: { vp0: boolean } = { vp0: true };

  beforeAll(async () => {
    const zoning = new Zoning('deny');
    zoning.setZone({ name: 'base', members: [BASE, TGT_BASE.wwpn] });
    zoning.setZone({ name: 'vports', members: [TGT_VP.wwpn, ...VP.map((v) => v.wwpn), NOT_GRANTED.wwpn] });
    zoning.setZoneSet('cfg', ['base', 'vports']);
    zoning.activate('cfg');
    rig = await startIspRig({
      name: 'npiv',
      zoning,
      npivGrants: VP,
      array: {
        name: 'array1',
        ports: [TGT_BASE, TGT_VP],
        volumes: [{ name: 'base', size: '64M' }, ...VP.map((_, i) => ({ name: `vp${i}`, size: `${20 + i}M` }))],
        hostGroups: [
          { name: 'base', initiators: [BASE], luns: { '0': 'base' } },
          ...VP.map((v, i) => ({ name: `vp${i}`, initiators: [v.wwpn], luns: { '0': `vp${i}` } })),
        ],
      },
    });
    rig.fabric.observe((frame) => {
      const h = decodeFrameHeader(frame);
      const payload = frame.subarray(FC_HEADER_SIZE);
      if (h.rCtl !== R_CTL.ELS_REQUEST || payload[0] !== ELS.FDISC) return;
      fdiscs.push(decodeServiceParameters(payload).wwpn);
    });
    started = Date.now();
    run = await runGuest({
      devices: [rig.socket],
      dmesg: true,
      memMiB: 768,
      script: SCRIPT,
      timeoutMs: 1_700_000,
      onLine: (line) => {
        if (line.includes('GUEST:BOUNCE')) rig.fabric.linkDown(BASE);
        if (line.includes('GUEST:DISABLED')) atDisabled.vp0 = rig.fabric.findByWwpn(VP[0]!.wwpn) !== undefined;
      },
    });
    elapsedMs = Date.now() - started;
    if (process.env.NPIV_GUEST_LOG) writeFileSync(process.env.NPIV_GUEST_LOG, run.output);
  }, 1_800_000);

  afterAll(async () => {
    await rig?.close();
  });

  const tail = () => run.output.slice(-8000);
  const lines = (prefix: string) => run.guestLines.filter((l) => l.startsWith(prefix));

  it('boots, runs the script, no kernel problem', () => {
    console.log(`isp-npiv guest run: ${Math.round(elapsedMs / 1000)} s`);
    expect(run.timedOut, tail()).toBe(false);
    expect(run.exitStatus, tail()).toBe(0);
    expect(run.kernelProblems).toEqual([]);
    expect(lines('MAX ')).toEqual(['MAX 127 0']);
  });

  it('a granted vport: Active, its own fc_host Online, its own zoned target and masked LUN, verified I/O', () => {
    expect(run.guestLines, tail()).toContain('CREATE 1 0');
    expect(run.guestLines, tail()).toContain('ACTIVE 1 0');
    const [one] = lines(`VP one ${hex(VP[0]!.wwpn)} `);
    expect(one, tail()).toMatch(
      new RegExp(`^VP one \\S+ Active Online 0x01[0-9a-f]{4} ${vpSectors(0)} ${hex(TGT_VP.wwpn)},$`),
    );
    expect(lines('BASE one ')).toEqual([`BASE one Online ${BASE_SECTORS} ${hex(TGT_BASE.wwpn)},`]);
    expect(run.guestLines).toContain('FIO base rc=0 0');
    expect(run.guestLines).toContain('FIO vport rc=0 0');
  });

  it('eight vports at once, each with its own LUN', () => {
    expect(run.guestLines, tail()).toContain('ACTIVE 8 0');
    expect(run.guestLines).toContain('DISKS 8 0');
    expect(run.guestLines).toContain('INUSE 8');
    const eight = lines('VP eight ');
    expect(eight).toHaveLength(8);
    const ids = new Set<string>();
    VP.forEach((v, i) => {
      const l = eight.find((x) => x.startsWith(`VP eight ${hex(v.wwpn)} `));
      expect(l, eight.join('\n')).toMatch(
        new RegExp(`Active Online (0x[0-9a-f]{6}) ${vpSectors(i)} ${hex(TGT_VP.wwpn)},$`),
      );
      ids.add(l!.split(' ')[5]!);
    });
    expect(ids.size).toBe(8);
  });

  it('a WWPN the host did not grant fails, and never reaches the fabric', () => {
    expect(lines('BAD_STATE ')).toEqual(['BAD_STATE VPort Failed']);
    expect(fdiscs).not.toContain(NOT_GRANTED.wwpn);
  });

  it('a link bounce and an ISP abort keep all eight vports, with their LUNs and verified I/O', () => {
    for (const phase of ['bounce', 'abort']) {
      expect(run.guestLines, phase).toContain(`ACTIVE ${phase} 0`);
      expect(run.guestLines, phase).toContain(`DISKS ${phase} 0`);
      const ls = lines(`VP ${phase} `);
      VP.forEach((v, i) => {
        const l = ls.find((x) => x.startsWith(`VP ${phase} ${hex(v.wwpn)} `));
        expect(l, `${phase}\n${ls.join('\n')}`).toMatch(new RegExp(`Active Online 0x[0-9a-f]{6} ${vpSectors(i)} `));
      });
    }
    expect(run.guestLines).toContain('ISP_RESET 0');
    expect(run.guestLines).toContain('FIO bounce rc=0 0');
    expect(run.guestLines).toContain('FIO abort rc=0 0');
    // Every vport logged in at least three times: creation, after the bounce, after the abort.
    for (const v of VP) expect(fdiscs.filter((w) => w === v.wwpn).length).toBeGreaterThanOrEqual(3);
  });

  it('vport_disable releases the fabric login, enabling again brings it back; vport_delete removes them all', () => {
    expect(lines('DISABLE ')).toEqual(['DISABLE 0 Disabled']);
    expect(atDisabled.vp0).toBe(false);
    expect(lines('REENABLED ')).toEqual(['REENABLED 0 Active']);
    expect(lines('DELETE ')).toEqual(Array(8).fill('DELETE 0'));
    expect(lines('LEFT ')).toEqual(['LEFT 0 0 1']);
    expect(run.guestLines).toContain('BASE_DD 0');
    expect(rig.fabric.logins().filter((l) => VP.some((v) => v.wwpn === l.wwpn))).toEqual([]);
  });
});
