/**
 * `npiv-hba serve --san` cabled to a running `npiv-hba san`, both as the built CLI in their own
 * processes, with a QEMU-like guest model (GuestMachine of test/unit/hostile/support.ts, built on
 * src/vm-model/qla-guest.ts: vfio-user attach with a memfd as guest RAM, the qla2xxx probe in
 * polling mode, discovery and Command Type 7 I/O) in place of a real guest. The firmware's fabric login brings the link up: the SAN lists the vport's
 * login, data written through the HBA reads back identical, the vport's stats count the frames
 * and I/Os, and its --pcap capture starts with the FLOGI.
 *
 * Without dist/ (npm ci builds it; `npm run build:ts` in a dev loop) this test fails.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { IocbHeader, Sts24 } from '../../../assembly/shared/iocb.js';
import { exampleSanConfig } from '../../../src/san/config.js';
import { controlRequest } from '../../../src/san/control.js';
import { readVportStats } from '../../../src/vport/stats.js';
import { BLOCK, GuestMachine, LAYOUT, ioEntry } from '../hostile/support.js';
import { FC2, PCAP, cliSandbox, waitFor } from './support.js';

// The host the example SAN configuration zones and masks (LUN 0 = 'boot', LUN 1 = 'scratch').
const HOST_WWPN = 'c0:50:76:ff:e5:00:00:01';
const HOST_WWNN = 'c0:50:76:ff:e5:00:00:00';
const hexWwn = (w: string): bigint => BigInt('0x' + w.replaceAll(':', ''));

const SCSI_GOOD = 0;
/** A fresh logical unit reports POWER ON / RESET first: a command may need this many tries. */
const UNIT_ATTENTION_TRIES = 4;

// File scope: its clean-up (children, directory) runs after the describe block's (the guest).
const sandbox = cliSandbox('srvsan-');

describe('npiv-hba serve --san with npiv-hba san (processes) and a guest model', () => {
  let guest: GuestMachine | undefined;
  afterEach(() => {
    guest?.close();
    guest = undefined;
  });

  it('the firmware logs in through the SAN, I/O round-trips, stats and pcap record it', async () => {
    const dir = sandbox.dir;
    // The example configuration, with RAM volumes only.
    const config = JSON.parse(exampleSanConfig()) as { arrays: { volumes: { file?: string }[] }[] };
    for (const v of config.arrays[0]!.volumes) delete v.file;
    const cfg = join(dir, 'san.json');
    writeFileSync(cfg, JSON.stringify(config));
    const link = join(dir, 'l.sock');
    const control = join(dir, 'c.sock');
    const san = sandbox.start(['san', '--config', cfg, '--link', link, '--control', control]);
    await waitFor(() => existsSync(control), 'SAN up', san);

    const socket = join(dir, 'v.sock');
    const pcap = join(dir, 'v.pcap');
    const serve = sandbox.start([
      'serve',
      '--socket',
      socket,
      '--wwpn',
      HOST_WWPN,
      '--wwnn',
      HOST_WWNN,
      '--san',
      link,
      '--pcap',
      pcap,
    ]);
    await waitFor(() => existsSync(socket), 'vport socket', serve);

    guest = await GuestMachine.attach(socket);
    await guest.probe({ wwpn: hexWwn(HOST_WWPN), wwnn: hexWwn(HOST_WWNN), expectLink: true });
    const status = await controlRequest(control, { cmd: 'status' });
    const logins = (status.result as { logins: { wwpn: string; physical: boolean }[] }).logins;
    expect(logins).toContainEqual(expect.objectContaining({ wwpn: HOST_WWPN }));

    await guest.discover();
    // WRITE a pattern to LUN 0, READ it back into another buffer.
    const blocks = 8;
    const pattern = Uint8Array.from({ length: blocks * BLOCK }, (_, i) => (i * 13 + 7) & 0xff);
    const out = LAYOUT.DATA;
    const back = LAYOUT.DATA + pattern.length;
    guest.ram.set(pattern, out);
    let handle = 1;
    for (const [direction, at] of [
      ['write', out],
      ['read', back],
    ] as const) {
      let good = false;
      for (let i = 0; i < UNIT_ATTENTION_TRIES && !good; i++) {
        const c = await guest.iocb(
          ioEntry(handle++, direction, 100, blocks, guest.addr(at), guest.targetPortId),
          10_000,
        );
        const dv = new DataView(c.buffer, c.byteOffset);
        good =
          c[IocbHeader.ENTRY_STATUS] === 0 &&
          dv.getUint16(Sts24.COMP_STATUS, true) === 0 &&
          (dv.getUint16(Sts24.SCSI_STATUS, true) & 0xff) === SCSI_GOOD;
      }
      expect(good, direction).toBe(true);
    }
    expect(guest.ram.subarray(back, back + pattern.length)).toEqual(pattern);

    // The vport's published counters follow (written at most once a second).
    await waitFor(() => (readVportStats(socket)?.counters.iosCompleted ?? 0) >= 2, 'stats count the I/Os', serve);
    const stats = readVportStats(socket)!;
    expect(stats.link).toBe('up');
    expect(stats.counters.framesTx).toBeGreaterThan(0);
    expect(stats.counters.framesRx).toBeGreaterThan(0);
    expect(stats.counters.bytesWritten).toBeGreaterThanOrEqual(pattern.length);
    expect(stats.counters.bytesRead).toBeGreaterThanOrEqual(pattern.length);

    guest.close();
    guest = undefined;
    serve.proc.kill('SIGTERM');
    expect(await serve.exit).toBe(0);
    expect(readVportStats(socket)?.running).toBe(false);

    // The vport's capture begins with its FLOGI to the fabric's F_Port.
    const capture = readFileSync(pcap);
    const first = capture.subarray(
      PCAP.GLOBAL_HEADER + PCAP.RECORD_HEADER,
      PCAP.GLOBAL_HEADER + PCAP.RECORD_HEADER + capture.readUInt32LE(PCAP.GLOBAL_HEADER + 8),
    );
    expect(first[0]).toBe(FC2.R_CTL_ELS_REQUEST);
    expect(first.readUIntBE(1, 3)).toBe(FC2.FABRIC_F_PORT_ID);
    expect(first[FC2.HEADER]).toBe(FC2.ELS_FLOGI);

    san.proc.kill('SIGTERM');
    expect(await san.exit).toBe(0);
  }, 120_000);
});
