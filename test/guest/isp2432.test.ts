/**
 * Issue 15, real guest: the ISP2432 model (serve --model isp2432, a QLE2462-class 4 Gb HBA) under
 * the unmodified qla2xxx of the Debian guest kernel, which drives it through its 24xx paths:
 * qla24xx_isp_ops, flash by register only, VPD/NVRAM through the NVRAM window, the firmware image
 * loaded from the adapter's flash (the initramfs carries no ql2400_fw.bin here), and the
 * synchronous name-server scan (GID_PT and per-port queries by MBC 0x54) instead of the 25xx
 * GPN_FT/GNN_FT ring scan. Probe, link at 4 Gb on an 8 Gb fabric, fabric login, LUN discovery,
 * fio with verify, an ISP abort (twice), and no kernel problem.
 */
import { writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runGuest, type GuestRunResult } from '../../src/harness/guest.js';
import { ISP2432_MODEL } from '../../src/isp/model.js';
import type { Logger } from '../../src/util/log.js';
import { formatWwnSysfs as hex } from '../../src/util/wwn.js';
import { VPORT_WWNN as WWNN, VPORT_WWPN as WWPN, startIspRig, type IspRig } from './support/rig.js';

const ARRAY_PORTS = [
  { wwpn: 0x500a098100002431n, wwnn: 0x500a098000002430n },
  { wwpn: 0x500a098100002432n, wwnn: 0x500a098000002430n },
];

/**
 * The HBA's logger, keeping only the names of the mailbox commands the firmware ran (its
 * `mbox_cmd_enter` trace): what the driver asked of a 2432.
 */
function mailboxRecorder(): { log: Logger; commands: Set<string> } {
  const commands = new Set<string>();
  const record = (obj: unknown) => {
    const f = obj as { event?: string; name?: string } | null;
    if (f?.event === 'mbox_cmd_enter' && f.name) commands.add(f.name);
  };
  const l: Record<string, unknown> = {
    trace: () => {},
    debug: record,
    info: () => {},
    warn: () => {},
    error: () => {},
    fatal: () => {},
    isLevelEnabled: () => true,
  };
  l.child = () => l;
  return { log: l as unknown as Logger, commands };
}

/** fio --output-format=terse (version 3) lines start with "3;"; field 5 is the error count. */
const FIO_ERRORS = 'grep "^3;" $out | head -1 | cut -d";" -f5';

const WAIT_ONLINE =
  'i=0; while [ "$(cat $h/port_state 2>/dev/null)" != Online ] && [ $i -lt 60 ]; do sleep 1; i=$((i+1)); done';

describe('qla2xxx drives the emulated ISP2432 through its 24xx paths', () => {
  let run: GuestRunResult;
  let rig: IspRig;
  // Console (warning level and the driver's debug lines from boot on) plus the kernel log at the end.
  let log = '';
  const mailbox = mailboxRecorder();

  beforeAll(async () => {
    rig = await startIspRig({
      name: 'isp2432',
      model: ISP2432_MODEL,
      log: mailbox.log,
      array: {
        name: 'array2432',
        ports: ARRAY_PORTS,
        volumes: [
          { name: 'v0', size: '64M' },
          { name: 'v1', size: '32M' },
        ],
        hostGroups: [{ name: 'vm', initiators: [WWPN], luns: { '0': 'v0', '2': 'v1' } }],
      },
    });
    run = await runGuest({
      devices: [rig.socket],
      // No ql2400_fw.bin in the guest: qla24xx_load_risc falls back to the image in flash.
      firmware: false,
      qlaParams: { ql2xextended_error_logging: '0x7fffffff' },
      dmesg: true,
      script: [
        'h=/sys/class/fc_host/host0',
        's=/sys/class/scsi_host/host0',
        'wait_for $h/port_name 60 || exit 3',
        WAIT_ONLINE,
        'sleep 5',
        'for a in port_name node_name port_state port_type speed supported_speeds; do echo "GUEST:FC $a $(cat $h/$a)"; done',
        'for a in model_name model_desc fw_version; do echo "GUEST:HOST $a $(cat $s/$a)"; done',
        'for r in /sys/class/fc_remote_ports/rport-*; do [ -e $r/port_name ] && echo "GUEST:RPORT $(cat $r/port_name) $(cat $r/roles)"; done',
        'for d in /sys/block/sd*; do [ -e $d ] && echo "GUEST:DISK $(basename $d) $(cat $d/size) $(basename $(readlink -f $d/device))"; done',
        'd=$(for x in /sys/block/sd*; do basename $x; break; done)',
        'fio --name=v --filename=/dev/$d --rw=randwrite --bs=4k --size=4M --offset_increment=4M --numjobs=4 --direct=1 --ioengine=psync --verify=crc32c --do_verify=1 --verify_fatal=1 --group_reporting --output-format=terse --terse-version=3 > /tmp/fio.out 2>&1',
        `rc=$?; out=/tmp/fio.out; echo "GUEST:FIO rc=$rc errors=$(${FIO_ERRORS})"`,
        // The driver's ISP-abort path twice (qla2x00_sysfs_write_reset: 0x2025c = "Issuing ISP reset").
        'for n in 1 2; do',
        '  echo 131676 > $s/device/reset; echo "GUEST:ISP_RESET$n $?"',
        '  sleep 2',
        `  ${WAIT_ONLINE}`,
        '  echo "GUEST:AFTER_RESET$n $(cat $h/port_state) $(cat $h/speed)"',
        'done',
        'sleep 3',
        'echo "GUEST:DISKS_AFTER_RESET $(ls -d /sys/block/sd* | wc -l)"',
        'fio --name=r --filename=/dev/$d --rw=randread --bs=4k --size=4M --offset_increment=4M --numjobs=4 --direct=1 --ioengine=psync --verify=crc32c --verify_only --group_reporting --output-format=terse --terse-version=3 > /tmp/fio2.out 2>&1',
        `rc=$?; out=/tmp/fio2.out; echo "GUEST:FIO_AFTER_RESET rc=$rc errors=$(${FIO_ERRORS})"`,
        'exit 0',
      ].join('\n'),
      timeoutMs: 600_000,
    });
    // The driver's debug output overflows the kernel log buffer: the console has all of it.
    log = `${run.output}\n${run.guestLines.filter((l) => l.startsWith('DMESG ')).join('\n')}`;
    if (process.env.NPIV_GUEST_LOG) writeFileSync(process.env.NPIV_GUEST_LOG, run.output);
  });

  afterAll(async () => {
    await rig?.close();
  });

  const value = (prefix: string, key: string) =>
    run.guestLines
      .find((l) => l.startsWith(`${prefix} ${key} `))
      ?.slice(prefix.length + key.length + 2)
      .trim();

  it('boots and runs the script; no kernel problem', () => {
    expect(run.timedOut, run.output.slice(-6000)).toBe(false);
    expect(run.exitStatus, run.output.slice(-6000)).toBe(0);
    expect(run.kernelProblems).toEqual([]);
  });

  it('probe: found as an ISP2432 with MSI-X (revision 3), firmware loaded from flash and started', () => {
    expect(log).toMatch(/Found an ISP2432/);
    expect(log).not.toMatch(/MSI-X; Unsupported ISP2432/);
    expect(log).toMatch(/MSI-X: Enabled/);
    expect(log).toMatch(/ISP2432: PCIe \(2\.5GT\/s x4\)/);
    // qla24xx_load_risc: the blob is missing, so the flash's firmware region is loaded.
    expect(log).toMatch(/Failed to load firmware image \(ql2400_fw\.bin\)/);
    expect(log).toMatch(/FW: Loading firmware from flash \(20000\)/);
    expect(log).not.toMatch(/Firmware image unavailable|Unable to verify integrity|Inconsistent NVRAM/);
    expect(value('HOST', 'fw_version')).toMatch(/^8\.07\.03 /);
    expect(value('HOST', 'model_name')).toBe('QLE2462');
    expect(value('HOST', 'model_desc')).toBe(ISP2432_MODEL.description);
  });

  it('the firmware is asked none of the 25xx-only commands (flash DMA read, SFP read, RNID/driver version)', () => {
    expect(mailbox.commands).toContain('EXECUTE_FIRMWARE');
    expect(mailbox.commands).toContain('MID_INITIALIZE_FIRMWARE');
    for (const c of ['DUMP_RISC_RAM_EXTENDED', 'READ_SFP', 'SET_RNID_PARAMS'])
      expect(mailbox.commands).not.toContain(c);
    // Trace buffers: the extended firmware trace only; the FCE trace is a 25xx feature.
    expect(log).toMatch(/Entered qla2x00_enable_eft_trace/);
    expect(log).not.toMatch(/qla2x00_enable_fce_trace/);
  });

  it('link up at 4 Gb (the 24xx fastest) on an 8 Gb fabric; supported speeds are the 24xx set', () => {
    expect(value('FC', 'port_state')).toBe('Online');
    expect(value('FC', 'speed')).toBe('4 Gbit');
    expect(value('FC', 'supported_speeds')).toBe('1 Gbit, 2 Gbit, 4 Gbit');
  });

  it('fabric login with the configured names; both array ports found by the 24xx name-server scan', () => {
    expect(value('FC', 'port_name')).toBe(hex(WWPN));
    expect(value('FC', 'node_name')).toBe(hex(WWNN));
    expect(value('FC', 'port_type')).toMatch(/NPort \(fabric via point-to-point\)/);
    expect(log).toMatch(/LOOP READY/);
    // qla2x00_find_all_fabric_devs (GID_PT, GPN_ID, GNN_ID by MBC 0x54), not the 25xx GPN_FT scan.
    for (const p of ARRAY_PORTS)
      expect(log).toMatch(new RegExp(`GID_PT entry - nn ${p.wwnn.toString(16)} pn ${p.wwpn.toString(16)} `));
    expect(mailbox.commands).toContain('IOCB_COMMAND_A64');
    const rports = run.guestLines.filter((l) => l.startsWith('RPORT '));
    for (const p of ARRAY_PORTS)
      expect(rports.some((r) => r.startsWith(`RPORT ${hex(p.wwpn)}`) && /FCP Target/.test(r))).toBe(true);
  });

  it('the masked LUNs on both paths (2 LUNs × 2 paths)', () => {
    const disks = run.guestLines.filter((l) => l.startsWith('DISK '));
    expect(disks.map((d) => d.split(' ')[3]!.split(':')[3]).sort()).toEqual(['0', '0', '2', '2']);
    expect(disks.map((d) => Number(d.split(' ')[2])).sort((a, b) => a - b)).toEqual([65536, 65536, 131072, 131072]);
  });

  it('fio with verify: 0 errors', () => {
    expect(run.guestLines, run.output.slice(-4000)).toContain('FIO rc=0 errors=0');
  });

  it('ISP abort (twice): the firmware restarts, the port is Online at 4 Gb, the data reads back verified', () => {
    for (const n of [1, 2]) {
      expect(run.guestLines).toContain(`ISP_RESET${n} 0`);
      expect(run.guestLines).toContain(`AFTER_RESET${n} Online 4 Gbit`);
    }
    expect(log.match(/Issuing ISP reset/g)?.length ?? 0).toBeGreaterThanOrEqual(2);
    expect(log).not.toMatch(/ISP abort (failed|retry)|Adapter flags|[Mm]ailbox.*timeout|MBX.*tov/);
    expect(run.guestLines).toContain('DISKS_AFTER_RESET 4');
    expect(run.guestLines, run.output.slice(-4000)).toContain('FIO_AFTER_RESET rc=0 errors=0');
  });
});
