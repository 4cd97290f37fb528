/**
 * `npiv-hba serve --san` cabled to a running `npiv-hba san`, both as the built CLI in their own
 * processes, with a QEMU-like guest model (test/unit/hostile/support.ts: vfio-user attach with a
 * memfd as guest RAM, the qla2xxx probe in polling mode, discovery and Command Type 7 I/O) in
 * place of a real guest. The firmware's fabric login brings the link up: the SAN lists the vport's
 * login, data written through the HBA reads back identical, the vport's stats count the frames
 * and I/Os, and its --pcap capture starts with the FLOGI.
 *
 * Without dist/ (npm ci builds it; `npm run build:ts` in a dev loop) this test fails.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { IocbHeader, Sts24 } from '../../../assembly/shared/iocb.js';
import { exampleSanConfig } from '../../../src/san/config.js';
import { controlRequest } from '../../../src/san/control.js';
import { readVportStats } from '../../../src/vport/stats.js';
import { BLOCK, GuestMachine, LAYOUT, ioEntry } from '../hostile/support.js';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const CLI = join(REPO, 'bin', 'npiv-hba.js');
const BUILT = join(REPO, 'dist', 'src', 'cli.js');
/** Upper bound for a child process to reach a state; not a speed goal. */
const WAIT_MS = 20_000;

// The host the example SAN configuration zones and masks (LUN 0 = 'boot', LUN 1 = 'scratch').
const HOST_WWPN = 'c0:50:76:ff:e5:00:00:01';
const HOST_WWNN = 'c0:50:76:ff:e5:00:00:00';
const hexWwn = (w: string): bigint => BigInt('0x' + w.replaceAll(':', ''));

// pcap / FC-2 offsets (src/san/pcap.ts, FC-FS-3 frame header).
const PCAP_GLOBAL_HEADER = 24;
const PCAP_RECORD_HEADER = 16;
const FC_HEADER = 24;
const R_CTL_ELS_REQUEST = 0x22;
const FABRIC_F_PORT_ID = 0xfffffe;
const ELS_FLOGI = 0x04;
const SCSI_GOOD = 0;
/** A fresh logical unit reports POWER ON / RESET first: a command may need this many tries. */
const UNIT_ATTENTION_TRIES = 4;

interface CliProcess {
  proc: ChildProcess;
  stderr(): string;
  exit: Promise<number | string>;
}

function startCli(args: string[]): CliProcess {
  const proc = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, NPIV_HBA_LOG_LEVEL: 'warn' } });
  let err = '';
  proc.stderr!.setEncoding('utf8').on('data', (t: string) => (err += t));
  const exit = new Promise<number | string>((done) => proc.once('close', (code, signal) => done(code ?? signal ?? 'unknown')));
  return { proc, stderr: () => err, exit };
}

async function waitFor(cond: () => boolean, what: string, p?: CliProcess): Promise<void> {
  const deadline = Date.now() + WAIT_MS;
  while (!cond()) {
    if (p && p.proc.exitCode !== null) throw new Error(`${what}: the process exited (${p.proc.exitCode}): ${p.stderr()}`);
    if (Date.now() > deadline) throw new Error(`${what}: not within ${WAIT_MS} ms${p ? `; stderr: ${p.stderr()}` : ''}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

beforeAll(() => {
  if (!existsSync(BUILT)) throw new Error(`${BUILT} is missing: build the CLI first (npm run build, or npm run build:ts)`);
});

describe('npiv-hba serve --san with npiv-hba san (processes) and a guest model', () => {
  let dir: string | undefined;
  let guest: GuestMachine | undefined;
  const children: CliProcess[] = [];
  afterEach(() => {
    guest?.close();
    guest = undefined;
    for (const c of children.splice(0)) if (c.proc.exitCode === null && c.proc.signalCode === null) c.proc.kill('SIGKILL');
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('the firmware logs in through the SAN, I/O round-trips, stats and pcap record it', async () => {
    dir = mkdtempSync(join(tmpdir(), 'srvsan-'));
    // The example configuration, with RAM volumes only.
    const config = JSON.parse(exampleSanConfig()) as { arrays: { volumes: { file?: string }[] }[] };
    for (const v of config.arrays[0]!.volumes) delete v.file;
    const cfg = join(dir, 'san.json');
    writeFileSync(cfg, JSON.stringify(config));
    const link = join(dir, 'l.sock');
    const control = join(dir, 'c.sock');
    const san = startCli(['san', '--config', cfg, '--link', link, '--control', control]);
    children.push(san);
    await waitFor(() => existsSync(control), 'SAN up', san);

    const socket = join(dir, 'v.sock');
    const pcap = join(dir, 'v.pcap');
    const serve = startCli(['serve', '--socket', socket, '--wwpn', HOST_WWPN, '--wwnn', HOST_WWNN, '--san', link, '--pcap', pcap]);
    children.push(serve);
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
    for (const [direction, at] of [['write', out], ['read', back]] as const) {
      let good = false;
      for (let i = 0; i < UNIT_ATTENTION_TRIES && !good; i++) {
        const c = await guest.iocb(ioEntry(handle++, direction, 100, blocks, guest.addr(at), guest.targetPortId), 10_000);
        const dv = new DataView(c.buffer, c.byteOffset);
        good = c[IocbHeader.ENTRY_STATUS] === 0 && dv.getUint16(Sts24.COMP_STATUS, true) === 0 && (dv.getUint16(Sts24.SCSI_STATUS, true) & 0xff) === SCSI_GOOD;
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
    const first = capture.subarray(PCAP_GLOBAL_HEADER + PCAP_RECORD_HEADER, PCAP_GLOBAL_HEADER + PCAP_RECORD_HEADER + capture.readUInt32LE(PCAP_GLOBAL_HEADER + 8));
    expect(first[0]).toBe(R_CTL_ELS_REQUEST);
    expect(first.readUIntBE(1, 3)).toBe(FABRIC_F_PORT_ID);
    expect(first[FC_HEADER]).toBe(ELS_FLOGI);

    san.proc.kill('SIGTERM');
    expect(await san.exit).toBe(0);
  }, 120_000);
});
