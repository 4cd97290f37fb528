/**
 * After a link loss the vport's FabricPort re-probes the SAN and keeps the new connection as a
 * spare until the firmware logs in again. The switch closes a link that does not log in within
 * R_A_TOV (docs/security.md, "bounded under abuse"), so a guest that keeps its firmware down for
 * longer must still get a working login, not one failure first.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { FabricEvent } from '../../../src/isp/fabric-port.js';
import { InitiatorFabricPort } from '../../../src/isp/initiator-fabric.js';
import { Fabric } from '../../../src/san/fabric/switch.js';
import { Zoning } from '../../../src/san/fabric/zoning.js';
import { connectLink } from '../../../src/fc/link.js';
import { LinkListener } from '../../../src/san/link-listener.js';
import { until } from '../san/helpers.js';

const WWPN = 0xc05076ffe5000001n;
const WWNN = 0xc05076ffe5000000n;
const LOGIN_TIMEOUT_MS = 150;

describe('FabricPort spare link and the switch login timeout', () => {
  const cleanups: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const c of cleanups.reverse()) await c();
    cleanups.length = 0;
  });

  it('a spare link the switch closed for not logging in is replaced, and the next login succeeds first time', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'npiv-spare-'));
    const linkPath = join(dir, 'link.sock');
    const fabric = new Fabric({
      name: 'test',
      domain: 1,
      zoning: new Zoning('allow'),
      loginTimeoutMs: LOGIN_TIMEOUT_MS,
    });
    const listener = await LinkListener.listen(linkPath, (link) => fabric.attach(link));
    cleanups.push(
      () => rmSync(dir, { recursive: true, force: true }),
      async () => listener.close(),
      () => fabric.close(),
    );

    let connects = 0;
    const port = new InitiatorFabricPort({
      connect: () => {
        connects++;
        return connectLink(linkPath);
      },
      reconnectMs: 20,
    });
    cleanups.push(async () => port.close());
    const events: FabricEvent['type'][] = [];
    port.onEvent((e) => events.push(e.type));

    const first = await port.login(WWPN, WWNN);
    expect(first.portId).toBeGreaterThan(0);
    // The fabric takes the link down; the port re-probes and reports link-up with a spare.
    expect(fabric.linkDown(WWPN)).toBe(true);
    await until(
      () => events.includes('link-down') && events.lastIndexOf('link-up') > events.indexOf('link-down'),
      'link-down then link-up',
    );
    const connectsWithSpare = connects;
    // The firmware stays down past the switch's login timeout: the switch closes the spare.
    await new Promise((resolve) => setTimeout(resolve, LOGIN_TIMEOUT_MS * 3));

    const again = await port.login(WWPN, WWNN);
    expect(again.portId).toBeGreaterThan(0);
    expect(connects).toBe(connectsWithSpare + 1);
  });
});
