/** A generic PCIe function with every BAR kind and every capability, for the model tests. */
import type { BarDescription } from '../../../src/pci/bar.js';
import { PciFunction, type PciCapabilityOptions } from '../../../src/pci/pci-function.js';
import { PCI_EXP_LNK_SPEED_5_0GT } from '../../../src/pci/regs.js';
import { RecordingBar, recordingLogger } from './helpers.js';

export const TEST_IDENTITY = {
  vendorId: 0x1af4,
  deviceId: 0x10f0,
  revisionId: 0x07,
  classCode: 0x0c0400,
  subsystemVendorId: 0x1af4,
  subsystemId: 0x1234,
  interruptPin: 1,
};

export const IO_BAR = 0; // 32 bytes
export const MEM32_BAR = 1; // 4 KiB
export const MEM64_BAR = 2; // 64 KiB prefetchable, occupies BAR2 + BAR3
export const MSIX_BAR = 4; // 4 KiB: table at 0, PBA at 0x800
export const MSIX_VECTORS = 4;
export const MSIX_PBA_OFFSET = 0x800;

export function makeFunction(
  caps: Partial<PciCapabilityOptions> = {},
  opts: { withAllCaps?: boolean } = { withAllCaps: true },
) {
  const io = new RecordingBar(32);
  const mem32 = new RecordingBar(4096);
  const mem64 = new RecordingBar(65536);
  const msixBar = new RecordingBar(4096);
  const bars = new Map<number, BarDescription>([
    [IO_BAR, { kind: 'io', size: 32, handler: io }],
    [MEM32_BAR, { kind: 'mem32', size: 4096, handler: mem32 }],
    [MEM64_BAR, { kind: 'mem64', size: 65536, prefetchable: true, handler: mem64 }],
    [MSIX_BAR, { kind: 'mem32', size: 4096, handler: msixBar }],
  ]);
  const all: PciCapabilityOptions = opts.withAllCaps
    ? {
        pm: {},
        pcie: { maxPayloadBytes: 256, maxLinkSpeed: PCI_EXP_LNK_SPEED_5_0GT, maxLinkWidth: 4 },
        msi: { vectors: 1 },
        msix: {
          vectors: MSIX_VECTORS,
          tableBar: MSIX_BAR,
          tableOffset: 0,
          pbaBar: MSIX_BAR,
          pbaOffset: MSIX_PBA_OFFSET,
        },
      }
    : {};
  const rec = recordingLogger();
  const fn = new PciFunction({
    name: 'test',
    identity: TEST_IDENTITY,
    bars,
    capabilities: { ...all, ...caps },
    logger: rec.log,
  });
  fn.realize();
  return { fn, io, mem32, mem64, msixBar, rec };
}
