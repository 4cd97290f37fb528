/**
 * `npiv-hba serve` driven as a user drives it: the built CLI (bin/npiv-hba.js → dist/) as a child
 * process. Success: the socket appears, a vfio-user client (QEMU's attach sequence, in-repo model)
 * sees the ISP2532's PCI device info, SIGTERM/SIGINT stop it with exit 0, the socket is removed
 * and the stats file ends with running=false. Errors: bad names, bad --interrupts, --pcap without
 * --san, an unreachable SAN, a socket path a live server holds; a stale socket file is replaced.
 * Argument errors that need no process are also checked through the exported serve().
 *
 * Without dist/ (npm ci builds it; `npm run build:ts` in a dev loop) every test here fails.
 */
import { existsSync, lstatSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { serve, type ServeOptions } from '../../../src/cli/serve.js';
import { runSan } from '../../../src/cli/san.js';
import { exampleSanConfig } from '../../../src/san/config.js';
import { controlRequest } from '../../../src/san/control.js';
import { LINKTYPE_FC_2 } from '../../../src/fc/pcap.js';
import { VfioUserClient } from '../../../src/vfio-user/client.js';

import { readVportStats } from '../../../src/vport/stats.js';
import { cliSandbox, staleSocket, waitFor, type CliProcess } from './support.js';
import {
  VFIO_DEVICE_FLAGS_PCI,
  VFIO_PCI_CONFIG_REGION_INDEX,
  VFIO_PCI_NUM_IRQS,
  VFIO_PCI_NUM_REGIONS,
} from '../../../src/device/linux-vfio.js';

const WWPN = '50:01:43:80:01:23:45:67';
const WWNN = '50:01:43:80:01:23:45:66';
const PCI_VENDOR_QLOGIC = 0x1077;
const PCI_DEVICE_ISP2532 = 0x2532;

/** The structured (pino JSON) log lines a process wrote to stderr. */
function logLines(p: CliProcess): Record<string, unknown>[] {
  return p
    .stderr()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

function serveArgs(socket: string, ...extra: string[]): string[] {
  return ['serve', '--socket', socket, '--wwpn', WWPN, '--wwnn', WWNN, ...extra];
}

// Info level: some tests read the structured log lines. Short prefix: Unix socket paths must fit in 107 bytes.
const sandbox = cliSandbox('srv-', 'info');

describe('npiv-hba serve: running', () => {
  it('serves the ISP2532 to a vfio-user client; SIGTERM stops it with exit 0, removes the socket, leaves running=false stats', async () => {
    const socket = join(sandbox.dir, 'v.sock');
    const p = sandbox.start(serveArgs(socket));
    await waitFor(() => existsSync(socket), 'socket appears', p);
    expect(lstatSync(socket).isSocket()).toBe(true);

    // Without --san there is no cable: the published link state becomes 'down'.
    await waitFor(() => readVportStats(socket)?.link === 'down', 'stats say link down', p);
    expect(readVportStats(socket)).toMatchObject({ running: true, pid: p.proc.pid, wwpn: WWPN });

    const client = VfioUserClient.connect(socket);
    try {
      const version = await client.version();
      expect(version).toMatchObject({ major: 0, minor: 0 });
      const info = await client.getDeviceInfo();
      expect(info.flags & VFIO_DEVICE_FLAGS_PCI).toBe(VFIO_DEVICE_FLAGS_PCI);
      expect(info.numRegions).toBe(VFIO_PCI_NUM_REGIONS);
      expect(info.numIrqs).toBe(VFIO_PCI_NUM_IRQS);
      const ids = await client.regionRead(VFIO_PCI_CONFIG_REGION_INDEX, 0, 4);
      const view = new DataView(ids.buffer, ids.byteOffset, ids.byteLength);
      expect(view.getUint16(0, true)).toBe(PCI_VENDOR_QLOGIC);
      expect(view.getUint16(2, true)).toBe(PCI_DEVICE_ISP2532);
    } finally {
      client.close();
    }

    p.proc.kill('SIGTERM');
    expect(await p.exit).toBe(0);
    expect(existsSync(socket)).toBe(false);
    const final = readVportStats(socket);
    expect(final).toMatchObject({ running: false, wwpn: WWPN, pid: p.proc.pid });
    expect(final!.counters.clientConnects).toBe(1);

    // Structured logs carry the vport's context.
    const lines = logLines(p);
    expect(lines.find((l) => l.event === 'listening')).toMatchObject({
      component: 'hba',
      vport: WWPN,
      socket,
      wwpn: WWPN,
      wwnn: WWNN,
    });
    expect(lines.find((l) => l.event === 'stopping')).toMatchObject({ vport: WWPN, signal: 'SIGTERM' });
  });

  it('SIGINT stops it the same way (exit 0, socket removed, running=false)', async () => {
    const socket = join(sandbox.dir, 'v.sock');
    const p = sandbox.start(
      serveArgs(socket, '--interrupts', 'intx', '--wwpn', '0x5001438001234567', '--wwnn', '5001438001234566'),
    );
    await waitFor(() => existsSync(socket), 'socket appears', p);
    p.proc.kill('SIGINT');
    expect(await p.exit).toBe(0);
    expect(existsSync(socket)).toBe(false);
    expect(readVportStats(socket)).toMatchObject({ running: false, wwpn: WWPN });
    expect(logLines(p).find((l) => l.event === 'stopping')).toMatchObject({ signal: 'SIGINT' });
  });

  it('refuses a socket path a live server holds, and leaves that server serving', async () => {
    const socket = join(sandbox.dir, 'v.sock');
    const first = sandbox.start(serveArgs(socket));
    await waitFor(() => existsSync(socket), 'first server listening', first);
    const second = await sandbox.run([
      'serve',
      '--socket',
      socket,
      '--wwpn',
      '50:01:43:80:01:23:45:69',
      '--wwnn',
      WWNN,
    ]);
    expect(second.code).toBe(1);
    expect(second.stderr).toContain(`another vfio-user server is already listening on ${socket}`);
    // The live server's published stats are not taken over by the refused one.
    expect(readVportStats(socket)).toMatchObject({ pid: first.proc.pid, running: true });
    // The first one still answers.
    const client = VfioUserClient.connect(socket);
    try {
      await client.version();
      expect((await client.getDeviceInfo()).numRegions).toBe(VFIO_PCI_NUM_REGIONS);
    } finally {
      client.close();
    }
    first.proc.kill('SIGTERM');
    expect(await first.exit).toBe(0);
  });

  it('replaces a stale socket file nobody listens on', async () => {
    const socket = join(sandbox.dir, 'v.sock');
    staleSocket(socket);
    const p = sandbox.start(serveArgs(socket));
    await waitFor(() => logLines(p).some((l) => l.event === 'listening'), 'listening', p);
    const client = VfioUserClient.connect(socket);
    try {
      expect((await client.version()).major).toBe(0);
    } finally {
      client.close();
    }
    p.proc.kill('SIGTERM');
    expect(await p.exit).toBe(0);
  });

  it('refuses a socket path that exists and is not a socket (the file is kept)', async () => {
    const socket = join(sandbox.dir, 'v.sock');
    writeFileSync(socket, 'precious');
    const r = await sandbox.run(serveArgs(socket));
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`refusing to replace ${socket}: it exists and is not a socket`);
    expect(readFileSync(socket, 'utf8')).toBe('precious');
  });
});

describe('npiv-hba serve --san', () => {
  let stopSan: AbortController | undefined;
  let sanDone: Promise<void> | undefined;
  afterEach(async () => {
    stopSan?.abort();
    await sanDone;
    stopSan = undefined;
    sanDone = undefined;
  });

  /** A real SAN (the `san` command's runSan, in this process) on san.sock in the test's directory. */
  async function startSan(): Promise<string> {
    const config = join(sandbox.dir, 'san.json');
    // The example with RAM volumes only: nothing to write to disk.
    const example = JSON.parse(exampleSanConfig()) as { arrays: { volumes: { file?: string }[] }[] };
    for (const v of example.arrays[0]!.volumes) delete v.file;
    writeFileSync(config, JSON.stringify(example));
    const link = join(sandbox.dir, 'san.sock');
    const control = join(sandbox.dir, 'ctl.sock');
    stopSan = new AbortController();
    sanDone = runSan({ config, link, control }, stopSan.signal);
    await waitFor(() => existsSync(control), 'SAN up');
    return link;
  }

  it('with a running SAN: serves, and --pcap starts a pcap file (LINKTYPE_FC_2)', async () => {
    const link = await startSan();
    const socket = join(sandbox.dir, 'v.sock');
    const pcap = join(sandbox.dir, 'v.pcap');
    const p = sandbox.start(serveArgs(socket, '--san', link, '--pcap', pcap));
    await waitFor(() => existsSync(socket), 'socket appears', p);
    const header = readFileSync(pcap);
    expect(header.length).toBeGreaterThanOrEqual(24);
    expect(header.readUInt32LE(0)).toBe(0xa1b2c3d4);
    expect(header.readUInt32LE(20)).toBe(LINKTYPE_FC_2);
    // No guest, so no firmware login: the link has not been brought up.
    expect(readVportStats(socket)?.link).not.toBe('up');
    p.proc.kill('SIGTERM');
    expect(await p.exit).toBe(0);
    expect(existsSync(socket)).toBe(false);
    // The SAN is unaffected by the vport's start-up check and stop.
    const status = await controlRequest(join(sandbox.dir, 'ctl.sock'), { cmd: 'status' });
    expect(status.ok).toBe(true);
  });

  it('a missing SAN link socket: clear error, exit 1, no vfio-user socket', async () => {
    const link = join(sandbox.dir, 'nosan.sock');
    const socket = join(sandbox.dir, 'v.sock');
    const r = await sandbox.run(serveArgs(socket, '--san', link));
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`SAN link socket ${link} does not exist`);
    expect(r.stderr).toContain('npiv-hba san');
    expect(existsSync(socket)).toBe(false);
  });

  it('a SAN link path that is a stale socket or not a socket at all is refused up front', async () => {
    const stale = join(sandbox.dir, 'stale.sock');
    staleSocket(stale);
    await expect(serve({ socket: join(sandbox.dir, 'v.sock'), wwpn: WWPN, wwnn: WWNN, san: stale })).rejects.toThrow(
      new RegExp(`SAN link socket ${stale}: .*nothing listens`),
    );
    const plain = join(sandbox.dir, 'plain');
    writeFileSync(plain, '');
    await expect(serve({ socket: join(sandbox.dir, 'v.sock'), wwpn: WWPN, wwnn: WWNN, san: plain })).rejects.toThrow(
      new RegExp(`SAN link socket ${plain}: .*not a socket`),
    );
    expect(existsSync(join(sandbox.dir, 'v.sock'))).toBe(false);
  });
});

describe('npiv-hba serve: argument errors', () => {
  it('a bad WWPN exits 1 with a message naming the value (built CLI)', async () => {
    const r = await sandbox.run([
      'serve',
      '--socket',
      join(sandbox.dir, 'v.sock'),
      '--wwpn',
      '50:01:43:80:01:23:45',
      '--wwnn',
      WWNN,
    ]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("npiv-hba: --wwpn: invalid WWPN '50:01:43:80:01:23:45'");
    expect(existsSync(join(sandbox.dir, 'v.sock'))).toBe(false);
  });

  it('bad WWPN/WWNN forms are refused, naming the field and the value', async () => {
    const socket = join(sandbox.dir, 'v.sock');
    const bad: [keyof ServeOptions, string][] = [
      ['wwpn', 'zz'],
      ['wwpn', '0x50014380012345'],
      ['wwpn', '50014380012345678'],
      ['wwpn', '50-01-43-80-01-23-45-67'],
      ['wwpn', '0000000000000000'],
      ['wwnn', '50:01:43:80:01:23:45:6g'],
      ['wwnn', ''],
    ];
    for (const [field, value] of bad) {
      const opts: ServeOptions = { socket, wwpn: WWPN, wwnn: WWNN, [field]: value };
      await expect(serve(opts), `${field}=${value}`).rejects.toThrow(`invalid ${field.toUpperCase()} '${value}'`);
    }
    expect(existsSync(socket)).toBe(false);
  });

  it('bad --interrupts exits 2 naming the value and the choices', async () => {
    const r = await sandbox.run(serveArgs(join(sandbox.dir, 'v.sock'), '--interrupts', 'msi-x'));
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("invalid --interrupts 'msi-x': expected one of msix, msi, intx");
    await expect(
      serve({ socket: join(sandbox.dir, 'v.sock'), wwpn: WWPN, wwnn: WWNN, interrupts: 'INTX' }),
    ).rejects.toThrow("invalid --interrupts 'INTX'");
  });

  it('--model isp2432 serves the ISP2432 identity (1077:2432 rev 3, subsystem 1077:0138) and logs the model', async () => {
    const socket = join(sandbox.dir, 'v.sock');
    const p = sandbox.start(serveArgs(socket, '--model', 'isp2432'));
    await waitFor(() => existsSync(socket), 'socket appears', p);
    const client = VfioUserClient.connect(socket);
    try {
      await client.version();
      const cfg = await client.regionRead(VFIO_PCI_CONFIG_REGION_INDEX, 0, 0x30);
      const view = new DataView(cfg.buffer, cfg.byteOffset, cfg.byteLength);
      expect(view.getUint16(0, true)).toBe(PCI_VENDOR_QLOGIC);
      expect(view.getUint16(2, true)).toBe(0x2432);
      expect(cfg[8]).toBe(0x03);
      expect(view.getUint16(0x2c, true)).toBe(PCI_VENDOR_QLOGIC);
      expect(view.getUint16(0x2e, true)).toBe(0x0138);
    } finally {
      client.close();
    }
    p.proc.kill('SIGTERM');
    expect(await p.exit).toBe(0);
    expect(logLines(p).find((l) => l.event === 'listening')).toMatchObject({ model: 'isp2432' });
  });

  it('bad --model exits 2 (usage) naming the value and the choices', async () => {
    const r = await sandbox.run(serveArgs(join(sandbox.dir, 'v.sock'), '--model', 'isp2312'));
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("invalid --model 'isp2312': expected one of isp2532, isp2432");
    expect(existsSync(join(sandbox.dir, 'v.sock'))).toBe(false);
  });

  it('--pcap without --san is refused before anything is created', async () => {
    const pcap = join(sandbox.dir, 'x.pcap');
    const r = await sandbox.run(serveArgs(join(sandbox.dir, 'v.sock'), '--pcap', pcap));
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--pcap records the SAN link: it needs --san');
    expect(existsSync(pcap)).toBe(false);
    expect(existsSync(join(sandbox.dir, 'v.sock'))).toBe(false);
  });

  it('a missing required option exits 2 naming it', async () => {
    const r = await sandbox.run(['serve', '--wwpn', WWPN, '--wwnn', WWNN]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("required option '--socket <path>' not specified");
  });
});
