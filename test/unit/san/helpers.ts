/** Test SAN: a fabric listening on a temporary link socket, with in-process target ports. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Fabric } from '../../../src/san/fabric/switch.js';
import { Zoning } from '../../../src/san/fabric/zoning.js';
import { linkPair } from '../../../src/fc/link.js';
import { LinkListener } from '../../../src/san/link-listener.js';
import { FcTargetPort, type TargetPortOptions } from '../../../src/san/target-port.js';
import type { ScsiTargetPort } from '../../../src/scsi/api.js';

export interface TestSan {
  fabric: Fabric;
  linkPath: string;
  dir: string;
  addTarget(scsi: ScsiTargetPort, opts?: TargetPortOptions): Promise<FcTargetPort>;
  close(): Promise<void>;
}

export async function startTestSan(zoning = new Zoning('allow')): Promise<TestSan> {
  const dir = mkdtempSync(join(tmpdir(), 'npiv-san-'));
  const linkPath = join(dir, 'link.sock');
  const fabric = new Fabric({ name: 'test', domain: 1, zoning });
  const listener = await LinkListener.listen(linkPath, (link) => fabric.attach(link));
  const targets: FcTargetPort[] = [];
  return {
    fabric,
    linkPath,
    dir,
    async addTarget(scsi, opts = {}) {
      const [fabricEnd, portEnd] = linkPair('target');
      fabric.attach(fabricEnd);
      const t = await FcTargetPort.start(portEnd, scsi, { exchangeTimeoutMs: 2000, ...opts });
      targets.push(t);
      return t;
    },
    async close() {
      fabric.close();
      await listener.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Resolve when `cond` holds, polling the event loop (bounded). */
export async function until(cond: () => boolean, what: string, turns = 2000): Promise<void> {
  for (let i = 0; i < turns; i++) {
    if (cond()) return;
    await new Promise((r) => setTimeout(r, 5));
  }
  throw new Error(`condition never held: ${what}`);
}
