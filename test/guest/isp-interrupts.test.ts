/**
 * Issue 4, real guest: the emulated ISP2532 works with every interrupt mechanism qla2xxx can
 * choose — MSI (ql2xenablemsix=2) and INTx (ql2xenablemsix=0, and a device offering no MSI/MSI-X
 * capability at all). MSI-X (the default) is covered by isp-probe.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runGuest, type GuestRunResult } from '../../src/harness/guest.js';
import type { Isp2532Interrupts } from '../../src/isp/pci-identity.js';
import { VPORT_WWPN as WWPN, startIspRig, type IspRig } from './support/rig.js';

interface Variant {
  name: string;
  offered: Isp2532Interrupts;
  enablemsix: number;
  /** The guest kernel's message naming the mode it ended up in. */
  mode: RegExp;
}

const VARIANTS: Variant[] = [
  { name: 'MSI', offered: 'msix', enablemsix: 2, mode: /MSI: Enabled/ },
  { name: 'INTx (driver choice)', offered: 'msix', enablemsix: 0, mode: /INTa mode: Enabled|Falling back-to INTa/ },
  { name: 'INTx (no MSI capability)', offered: 'intx', enablemsix: 1, mode: /INTa mode: Enabled/ },
];

for (const v of VARIANTS) {
  describe(`qla2xxx on the emulated ISP2532 with ${v.name}`, () => {
    let run: GuestRunResult;
    let rig: IspRig;

    beforeAll(async () => {
      rig = await startIspRig({
        name: 'irq',
        array: {
          name: 'array1',
          ports: [{ wwpn: 0x500a098100000001n, wwnn: 0x500a098000000001n }],
          volumes: [{ name: 'v0', size: '16M' }],
          hostGroups: [{ name: 'vm1', initiators: [WWPN], luns: { '0': 'v0' } }],
        },
        interrupts: v.offered,
      });
      run = await runGuest({
        devices: [rig.socket],
        qlaParams: { ql2xenablemsix: v.enablemsix, ql2xextended_error_logging: '0x40000000' },
        dmesg: true,
        script: [
          'h=/sys/class/fc_host/host0',
          'wait_for $h/port_name 60 || exit 3',
          'i=0; while [ "$(cat $h/port_state)" != Online ] && [ $i -lt 60 ]; do sleep 1; i=$((i+1)); done',
          'i=0; while [ ! -e /sys/block/sda ] && [ $i -lt 30 ]; do sleep 1; i=$((i+1)); done',
          'echo "GUEST:STATE $(cat $h/port_state)"',
          'dd if=/dev/urandom of=/tmp/pattern bs=64k count=16 2>/dev/null',
          'dd if=/tmp/pattern of=/dev/sda bs=64k count=16 oflag=direct 2>/dev/null; echo "GUEST:WRITE $?"',
          'dd if=/dev/sda of=/tmp/back bs=64k count=16 iflag=direct 2>/dev/null; echo "GUEST:READ $?"',
          'cmp /tmp/pattern /tmp/back && echo "GUEST:SAME"',
          'exit 0',
        ].join('\n'),
        timeoutMs: 300_000,
      });
    });

    afterAll(async () => {
      await rig?.close();
    });

    it('uses the expected interrupt mode, comes Online and moves data intact', () => {
      expect(run.exitStatus, run.output.slice(-6000)).toBe(0);
      const dmesg = run.guestLines.filter((l) => l.startsWith('DMESG ')).join('\n');
      expect(dmesg).toMatch(v.mode);
      expect(dmesg).not.toMatch(/[Mm]ailbox.*timeout|ISP abort/);
      expect(run.guestLines).toContain('STATE Online');
      expect(run.guestLines).toContain('WRITE 0');
      expect(run.guestLines).toContain('READ 0');
      expect(run.guestLines).toContain('SAME');
    });
  });
}
