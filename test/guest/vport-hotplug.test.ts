/**
 * A vport hot-plugged into a running QEMU the way an administrator does it, with QEMU running as
 * an unprivileged user (as libvirt runs it, as libvirt-qemu): `vport define --socket-owner`, `vport
 * start`, QEMU started as that user with only an empty root port and a QMP socket, then the exact
 * commands `vport qemu-args --qmp add` / `--qmp del` print, sent over QMP. The device must be
 * realized (1077:2532 behind the vport's root port, type vfio-user-pci), and a QEMU user the socket
 * was not granted to must be refused. The VM is paused (-S): what is checked is QEMU's side of
 * hot-plug (realize over vfio-user against the real serve), not a guest's PCIe hot-plug handling.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { guestEnvironment } from '../../src/harness/guest.js';
import { qemuCommand } from '../../src/harness/qemu-process.js';
import { PROJECT_ROOT } from './support/processes.js';

const CLI = join(PROJECT_ROOT, 'bin', 'npiv-hba.js');
const QEMU_UID = 65534;
const QEMU_GID = 65534;

function cli(args: string[], env: NodeJS.ProcessEnv): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, 'vport', ...args], {
    encoding: 'utf8',
    env: { ...process.env, NPIV_HBA_LOG_LEVEL: 'warn', ...env },
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A minimal QMP client: greeting, qmp_capabilities, then one command at a time (events skipped). */
class Qmp {
  private buffer = '';
  private waiting: ((msg: Record<string, unknown>) => void) | null = null;
  private readonly queue: Record<string, unknown>[] = [];

  private constructor(private readonly socket: net.Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      this.buffer += chunk;
      for (let nl = this.buffer.indexOf('\n'); nl >= 0; nl = this.buffer.indexOf('\n')) {
        const line = this.buffer.slice(0, nl).trim();
        this.buffer = this.buffer.slice(nl + 1);
        if (line === '') continue;
        const msg = JSON.parse(line) as Record<string, unknown>;
        if ('event' in msg) continue;
        if (this.waiting) {
          const w = this.waiting;
          this.waiting = null;
          w(msg);
        } else this.queue.push(msg);
      }
    });
  }

  static async connect(path: string): Promise<Qmp> {
    const socket = net.connect(path);
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    const qmp = new Qmp(socket);
    const greeting = await qmp.next();
    expect(greeting).toHaveProperty('QMP');
    expect(await qmp.send('{"execute":"qmp_capabilities"}')).toEqual({ return: {} });
    return qmp;
  }

  private next(): Promise<Record<string, unknown>> {
    const queued = this.queue.shift();
    if (queued) return Promise.resolve(queued);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no QMP answer within 30 s')), 30_000);
      this.waiting = (msg) => {
        clearTimeout(timer);
        resolve(msg);
      };
    });
  }

  send(line: string): Promise<Record<string, unknown>> {
    this.socket.write(`${line}\n`);
    return this.next();
  }

  close(): void {
    this.socket.destroy();
  }
}

describe('vport hot-plug over QMP into a QEMU run by an unprivileged user', () => {
  const dir = mkdtempSync(join(tmpdir(), 'npiv-hp-'));
  const env = { NPIV_HBA_CONFIG_DIR: join(dir, 'etc'), NPIV_HBA_RUN_DIR: join(dir, 'run') };
  const qmpDir = join(dir, 'qmp');
  const qmpPath = join(qmpDir, 'qmp.sock');
  let uuid = '';
  let qemu: ChildProcess | null = null;
  let qemuStderr = '';
  let qmp: Qmp | null = null;

  beforeAll(async () => {
    // QEMU's user must be able to walk to both sockets: a root-owned 0755 path, as /run is.
    chmodSync(dir, 0o755);
    mkdirSync(qmpDir, { mode: 0o700 });
    spawnSync('chown', [`${QEMU_UID}:${QEMU_GID}`, qmpDir]);
    const define = cli(['define', '--socket-owner', String(QEMU_UID)], env);
    expect(define.stderr).toBe('');
    uuid = define.stdout.trim();
    const start = cli(['start', uuid], env);
    expect(start.stderr).toBe('');
    expect(start.status).toBe(0);
    // Only the root port at boot: the device comes later, by device_add.
    const rootPort = cli(['qemu-args', uuid, '--devices-only', '--lines'], env).stdout.split('\n')[1]!;
    expect(rootPort).toMatch(/^pcie-root-port,id=rp-npiv-/);
    const installation = guestEnvironment();
    const args = [
      '-S',
      '-nodefaults',
      '-display',
      'none',
      '-m',
      '256M',
      '-object',
      'memory-backend-memfd,id=mem,size=256M,share=on',
      '-machine',
      'q35,memory-backend=mem',
      ...installation.qemuDataDirs.flatMap((d) => ['-L', d]),
      '-device',
      rootPort,
      '-qmp',
      `unix:${qmpPath},server=on,wait=off`,
    ];
    const [program, ...rest] = qemuCommand(installation, args, 120);
    qemu = spawn('setpriv', [`--reuid=${QEMU_UID}`, `--regid=${QEMU_GID}`, '--clear-groups', program!, ...rest], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, QEMU_MODULE_DIR: installation.qemuModuleDir },
    });
    qemu.stderr!.setEncoding('utf8').on('data', (t: string) => (qemuStderr += t));
    const deadline = Date.now() + 30_000;
    while (!existsSync(qmpPath)) {
      if (qemu.exitCode !== null) throw new Error(`QEMU exited (${qemu.exitCode}): ${qemuStderr}`);
      if (Date.now() > deadline) throw new Error(`no QMP socket within 30 s: ${qemuStderr}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    qmp = await Qmp.connect(qmpPath);
  }, 90_000);

  afterAll(async () => {
    qmp?.close();
    if (qemu && qemu.exitCode === null) {
      qemu.kill('SIGTERM');
      await new Promise((r) => qemu!.once('exit', r));
    }
    if (uuid) cli(['stop', uuid], env);
    rmSync(dir, { recursive: true, force: true });
  });

  it('the vfio-user socket belongs to the QEMU user, mode 0600, and QEMU runs as that user', () => {
    const socket = join(env.NPIV_HBA_RUN_DIR, `${uuid}.sock`);
    const st = statSync(socket);
    expect(st.uid).toBe(QEMU_UID);
    expect(st.mode & 0o777).toBe(0o600);
    const status = spawnSync('ps', ['-o', 'uid=', '-p', String(qemu!.pid)], { encoding: 'utf8' });
    // setpriv execs QEMU in place: the pid is QEMU's.
    expect(Number(status.stdout.trim())).toBe(QEMU_UID);
  });

  it('`qemu-args --qmp add` hot-plugs the vport: an ISP2532 behind its root port', async () => {
    const add = cli(['qemu-args', uuid, '--qmp', 'add'], env);
    expect(add.status).toBe(0);
    const lines = add.stdout.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(await qmp!.send(lines[0]!), qemuStderr).toEqual({ return: {} });
    const short = uuid.slice(0, 8);
    const type = await qmp!.send(
      JSON.stringify({
        execute: 'qom-get',
        arguments: { path: `/machine/peripheral/npiv-${short}`, property: 'type' },
      }),
    );
    expect(type).toEqual({ return: 'vfio-user-pci' });
    // The VM never ran its firmware (-S), so the root port has no bus number yet and query-pci
    // cannot walk behind it; the device tree shows the realized device and its PCI identity.
    const qtree = await qmp!.send(
      JSON.stringify({ execute: 'human-monitor-command', arguments: { 'command-line': 'info qtree' } }),
    );
    const tree = String(qtree.return);
    const at = tree.indexOf(`dev: vfio-user-pci, id "npiv-${short}"`);
    expect(at, tree).toBeGreaterThan(0);
    expect(tree.slice(at, at + 2000)).toMatch(/pci id 1077:2532/);
  });

  it('`qemu-args --qmp del` asks for the unplug; QEMU accepts it', async () => {
    const del = cli(['qemu-args', uuid, '--qmp', 'del'], env);
    expect(del.status).toBe(0);
    // A paused guest cannot acknowledge the PCIe unplug: QEMU accepts the request (the removal
    // itself completes when a running guest's pciehp releases the slot).
    expect(await qmp!.send(del.stdout.trim())).toEqual({ return: {} });
  });

  it('a user the socket was not granted to is refused', () => {
    const socket = join(env.NPIV_HBA_RUN_DIR, `${uuid}.sock`);
    const probe = spawnSync(
      'setpriv',
      [
        '--reuid=65533',
        '--regid=65533',
        '--clear-groups',
        process.execPath,
        '-e',
        `require('net').connect(${JSON.stringify(socket)}).on('connect',()=>{console.log('connected');process.exit(0)}).on('error',e=>{console.log(e.code);process.exit(0)})`,
      ],
      { encoding: 'utf8' },
    );
    expect(probe.stdout.trim()).toBe('EACCES');
  });
});
