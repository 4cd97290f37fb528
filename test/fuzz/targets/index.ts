/** The fuzz targets, by name (see docs/fuzzing.md). */
import type { TargetInfo } from '../engine/target.js';

export const TARGETS: readonly TargetInfo[] = [
  {
    name: 'ring',
    description: 'IOCB request/response rings: WASM engine vs TypeScript twin in canary-filled guest memory',
    timeoutMs: 2000,
    create: async () => (await import('./ring.js')).createRingTarget(),
  },
];

export function targetInfo(name: string): TargetInfo {
  const t = TARGETS.find((x) => x.name === name);
  if (!t) throw new Error(`no fuzz target named ${name}`);
  return t;
}
