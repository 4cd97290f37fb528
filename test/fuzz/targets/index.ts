/** The fuzz targets, by name (see docs/fuzzing.md). */
import type { TargetInfo } from '../engine/target.js';

export const TARGETS: readonly TargetInfo[] = [
  {
    name: 'vfio-session',
    description: 'vfio-user byte stream through the framer into a session serving the real ISP2532 PCI function',
    timeoutMs: 2000,
    create: async () => (await import('./vfio-session.js')).createSessionTarget(),
  },
  {
    name: 'ring',
    description: 'IOCB request/response rings: WASM engine vs TypeScript twin in canary-filled guest memory',
    timeoutMs: 2000,
    create: async () => (await import('./ring.js')).createRingTarget(),
  },
  {
    name: 'san-frames',
    description: 'FC frames from an N_Port into the SAN switch and an array target port (ELS, CT, FCP, BLS, SCSI)',
    timeoutMs: 5000,
    create: async () => (await import('./san-frames.js')).createSanTarget(),
  },
];

export function targetInfo(name: string): TargetInfo {
  const t = TARGETS.find((x) => x.name === name);
  if (!t) throw new Error(`no fuzz target named ${name}`);
  return t;
}
