/**
 * Issue 11 point 1, real guest: the host pins the vport's identity (docs/security.md).
 * The unmodified qla2xxx reads its names from the emulated NVRAM and logs in with the configured
 * WWPN/WWNN. Then, as root in the guest, it rewrites the NVRAM through the driver's own sysfs
 * `nvram` attribute with another vport's names (qla2x00_sysfs_write_nvram: checksum fixed up by
 * the driver, flash update, ISP abort that re-reads NVRAM), and forces a second ISP abort through
 * `reset`. Checked: the NVRAM the driver reads back, fc_host and every FLOGI the fabric sees keep
 * the configured names, and the guest keeps seeing only its own LUN — never the other vport's.
 */
import { writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runGuest, type GuestRunResult } from '../../src/harness/guest.js';
import { decodeServiceParameters, ELS } from '../../src/fc/els.js';
import { decodeFrameHeader, FC_HEADER_SIZE, R_CTL } from '../../src/fc/frame.js';
import { NVRAM } from '../../src/isp/nvram.js';
import { VPORT_WWNN as WWNN, VPORT_WWPN as WWPN, startIspRig, type IspRig } from './support/rig.js';
import { formatWwnSysfs as hex } from '../../src/util/wwn.js';

/** Another VM's vport: the names the guest tries to take over, masked to a different LUN. */
const OTHER = { wwpn: 0x5001438009999999n, wwnn: 0x5001438009999998n };
/** LUN sizes in 512-byte sectors as /sys/block/sd*\/size shows them. */
const OWN_SECTORS = 131072; // 64 MiB

/** The 16 bytes port_name + node_name (NVRAM.PORT_NAME.. NODE_NAME+8) as hex, as `od` prints them in the guest. */
const namesHex = (n: { wwpn: bigint; wwnn: bigint }): string =>
  n.wwpn.toString(16).padStart(16, '0') + n.wwnn.toString(16).padStart(16, '0');

/** printf(1) octal escapes for the NVRAM name bytes of `n` (busybox printf has no \x). */
function printfBytes(n: { wwpn: bigint; wwnn: bigint }): string {
  const hexs = namesHex(n);
  let out = '';
  for (let i = 0; i < hexs.length; i += 2)
    out +=
      '\\' +
      parseInt(hexs.slice(i, i + 2), 16)
        .toString(8)
        .padStart(3, '0');
  return out;
}

describe('qla2xxx on the emulated ISP2532 logs in with the configured names only, even after rewriting its NVRAM', () => {
  let run: GuestRunResult;
  let rig: IspRig;
  const flogis: { wwpn: bigint; wwnn: bigint }[] = [];

  beforeAll(async () => {
    rig = await startIspRig({
      name: 'identity',
      array: {
        name: 'array1',
        ports: [{ wwpn: 0x500a098100000001n, wwnn: 0x500a098000000001n }],
        volumes: [
          { name: 'own', size: '64M' },
          { name: 'other', size: '32M' },
        ],
        hostGroups: [
          { name: 'vm1', initiators: [WWPN], luns: { '0': 'own' } },
          { name: 'vm2', initiators: [OTHER.wwpn], luns: { '0': 'other' } },
        ],
      },
    });
    rig.fabric.observe((frame) => {
      const h = decodeFrameHeader(frame);
      const payload = frame.subarray(FC_HEADER_SIZE);
      if (h.rCtl !== R_CTL.ELS_REQUEST || (payload[0] !== ELS.FLOGI && payload[0] !== ELS.FDISC)) return;
      const sp = decodeServiceParameters(payload);
      flogis.push({ wwpn: sp.wwpn, wwnn: sp.wwnn });
    });
    const names = `od -A n -t x1 -j ${NVRAM.PORT_NAME} -N 16`;
    run = await runGuest({
      devices: [rig.socket],
      dmesg: true,
      script: [
        'h=/sys/class/fc_host/host0',
        's=/sys/class/scsi_host/host0/device',
        'wait_for $h/port_name 60 || exit 3',
        'wait_fc_online 0 60 || exit 4',
        // Wait for the LUN; then report what the port looks like.
        'wait_for /sys/block/sda 60 || exit 5',
        'report() {',
        '  echo "GUEST:FC $1 $(cat $h/port_name) $(cat $h/node_name) $(cat $h/port_state)"',
        `  echo "GUEST:NV $1 $(${names} $s/nvram | tr -d ' \\n')"`,
        '  for d in /sys/block/sd*; do [ -e $d ] && echo "GUEST:DISK $1 $(basename $d) $(cat $d/size)"; done',
        '}',
        'report boot',
        // Rewrite NVRAM with the other vport's names through the driver (it fixes the checksum,
        // writes the flash and runs an ISP abort that re-reads NVRAM).
        'dd if=$s/nvram of=/tmp/nv bs=512 count=1 2>/dev/null',
        `printf '${printfBytes(OTHER)}' | dd of=/tmp/nv bs=1 seek=${NVRAM.PORT_NAME} conv=notrunc 2>/dev/null`,
        `echo "GUEST:FORGED $(${names} /tmp/nv | tr -d ' \\n')"`,
        'dd if=/tmp/nv of=$s/nvram bs=512 count=1 2>/dev/null; echo "GUEST:NVRAM_WRITE $?"',
        'sleep 2; wait_fc_online 0 60; sleep 3',
        'report nvram-write',
        // A second ISP abort ("reset" parses decimal: 131676 = 0x2025c, qla2x00_sysfs_write_reset).
        'echo 131676 > $s/reset; echo "GUEST:ISP_RESET $?"',
        'sleep 2; wait_fc_online 0 60; sleep 3',
        'report isp-reset',
        'dd if=/dev/sda of=/dev/null bs=4k count=16 iflag=direct 2>/dev/null; echo "GUEST:DD $?"',
        'exit 0',
      ].join('\n'),
      timeoutMs: 400_000,
    });
    if (process.env.NPIV_GUEST_LOG) writeFileSync(process.env.NPIV_GUEST_LOG, run.output);
  });

  afterAll(async () => {
    await rig?.close();
  });

  const lines = (tag: string, phase: string) =>
    run.guestLines.filter((l) => l.startsWith(`${tag} ${phase} `)).map((l) => l.slice(tag.length + phase.length + 2));

  it('boots and runs the script', () => {
    expect(run.timedOut, run.output.slice(-6000)).toBe(false);
    expect(run.exitStatus, run.output.slice(-6000)).toBe(0);
    expect(run.kernelProblems).toEqual([]);
  });

  it('at boot: fc_host and NVRAM carry the configured names, the fabric saw a FLOGI with them, the own LUN only', () => {
    expect(lines('FC', 'boot')).toEqual([`${hex(WWPN)} ${hex(WWNN)} Online`]);
    expect(lines('NV', 'boot')).toEqual([namesHex({ wwpn: WWPN, wwnn: WWNN })]);
    expect(lines('DISK', 'boot')).toEqual([`sda ${OWN_SECTORS}`]);
    expect(flogis[0]).toEqual({ wwpn: WWPN, wwnn: WWNN });
  });

  it('the NVRAM rewrite is accepted by the driver but changes no name, before or after ISP aborts', () => {
    expect(run.guestLines).toContain(`FORGED ${namesHex(OTHER)}`);
    expect(run.guestLines).toContain('NVRAM_WRITE 0');
    expect(run.guestLines).toContain('ISP_RESET 0');
    for (const phase of ['nvram-write', 'isp-reset']) {
      expect(lines('FC', phase), phase).toEqual([`${hex(WWPN)} ${hex(WWNN)} Online`]);
      expect(lines('NV', phase), phase).toEqual([namesHex({ wwpn: WWPN, wwnn: WWNN })]);
      expect(lines('DISK', phase), phase).toEqual([`sda ${OWN_SECTORS}`]);
    }
    expect(run.guestLines).toContain('DD 0');
    const dmesg = run.guestLines.filter((l) => l.startsWith('DMESG ')).join('\n');
    expect(dmesg).not.toMatch(/Inconsistent NVRAM/);
  });

  // The decisive check: qla2xxx does not refresh fc_host's port_name after an ISP abort, so a
  // port that fell back to another name (an NVRAM wiped by the rewrite makes qla24xx_nvram_config
  // use its default WWPN) still shows the old one in sysfs — but not on the wire.
  it('every fabric login (boot and both ISP aborts) used the configured names', () => {
    expect(flogis.length).toBeGreaterThanOrEqual(3);
    expect(flogis.filter((f) => f.wwpn !== WWPN || f.wwnn !== WWNN)).toEqual([]);
    expect(rig.fabric.logins().map((l) => l.wwpn)).not.toContain(OTHER.wwpn);
  });
});
