/**
 * `npiv-hba vport` subcommands that need no serve process: define, undefine, list, show,
 * qemu-args, libvirt-xml — success and error paths, through runCli (exit status, stdout, stderr).
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Command } from 'commander';
import { registerVportCommand, runCli } from '../../../src/cli/vport.js';
import { capture, tempDirs, type TempDirs } from '../vport/helpers.js';

let dirs: TempDirs;
let env: NodeJS.ProcessEnv;
beforeEach(() => {
  dirs = tempDirs();
  env = { NPIV_HBA_CONFIG_DIR: dirs.configDir, NPIV_HBA_RUN_DIR: dirs.runDir };
});
afterEach(() => dirs.cleanup());

async function cli(...argv: string[]) {
  const c = capture(env);
  const code = await runCli(argv, c.io);
  return { code, stdout: c.stdout(), stderr: c.stderr() };
}

async function define(...argv: string[]): Promise<string> {
  const r = await cli('define', ...argv);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  return r.stdout.trim();
}

async function showJson(uuid: string) {
  const r = await cli('show', uuid, '--json');
  expect(r.code).toBe(0);
  return JSON.parse(r.stdout);
}

const U1 = '7d3c5e0a-2f4b-4c61-9a8e-0b1c2d3e4f50';
const U2 = '0badc0de-0000-4000-8000-000000000001';
const UNKNOWN = '11111111-2222-4333-8444-555555555555';

describe('define', () => {
  it('with nothing given: random UUID, WWPN from the default prefix (KVM OUI 00:1a:4a, as libvirt), WWNN derived, socket in the run dir', async () => {
    const uuid = await define();
    expect(uuid).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    const v = await showJson(uuid);
    expect(v.wwpn).toMatch(/^50:01:a4:a[0-9a-f]:/);
    expect(BigInt('0x' + v.wwnn.replaceAll(':', ''))).toBe(BigInt('0x' + v.wwpn.replaceAll(':', '')) ^ 1n);
    expect(v).toMatchObject({
      uuid,
      backend: { type: 'none' },
      socket: join(dirs.runDir, `${uuid}.sock`),
      autostart: false,
      status: 'stopped',
    });
    // persisted as the documented JSON file
    const file = JSON.parse(readFileSync(join(dirs.configDir, `${uuid}.json`), 'utf8'));
    expect(file).toEqual({
      version: 1,
      uuid,
      wwpn: v.wwpn,
      wwnn: v.wwnn,
      backend: { type: 'none' },
      socket: v.socket,
      autostart: false,
    });
  });

  it('with everything given', async () => {
    const sock = join(dirs.root, 'a.sock');
    const link = join(dirs.root, 'san.sock');
    expect(
      await define(
        '--uuid',
        U1.toUpperCase(),
        '--wwpn',
        '0x5001438001234567',
        '--wwnn',
        '50:01:43:80:01:23:45:66',
        '--backend',
        `san:${link}`,
        '--socket',
        sock,
        '--autostart',
      ),
    ).toBe(U1);
    expect(await showJson(U1)).toMatchObject({
      uuid: U1,
      wwpn: '50:01:43:80:01:23:45:67',
      wwnn: '50:01:43:80:01:23:45:66',
      backend: { type: 'san', link },
      socket: sock,
      autostart: true,
    });
  });

  it('a given WWPN gets the conventional WWNN; an NAA 2 prefix generates QLogic-style names', async () => {
    const a = await define('--wwpn', '21:00:00:1b:32:aa:bb:cc');
    expect((await showJson(a)).wwnn).toBe('20:00:00:1b:32:aa:bb:cc');
    const b = await define('--naa-prefix', '2100001b32');
    const v = await showJson(b);
    expect(v.wwpn).toMatch(/^21:00:00:1b:32:/);
    expect(v.wwnn).toBe('20' + v.wwpn.slice(2));
    env.NPIV_HBA_NAA_PREFIX = '500a0981';
    expect((await showJson(await define())).wwpn).toMatch(/^50:0a:09:81:/);
  });

  it('generated names never collide, across many definitions in a small name space', async () => {
    // 13 prefix digits: 2048 WWPN/WWNN pairs; 80 definitions
    const names = new Set<string>();
    for (let i = 0; i < 80; i++) {
      const v = await showJson(await define('--naa-prefix', '5001438000000'));
      expect(names.has(v.wwpn) || names.has(v.wwnn)).toBe(false);
      names.add(v.wwpn).add(v.wwnn);
    }
    expect(names.size).toBe(160);
  });

  it('refuses a duplicate WWPN, also when it is another vport’s WWNN (exit 1)', async () => {
    await define('--uuid', U1, '--wwpn', '50:01:43:80:01:23:45:67');
    const dup = await cli('define', '--wwpn', '5001438001234567');
    expect(dup.code).toBe(1);
    expect(dup.stderr).toContain(`duplicate WWPN 50:01:43:80:01:23:45:67: already used by vport ${U1} (its WWPN)`);
    const asNode = await cli('define', '--wwpn', '50:01:43:80:01:23:45:66');
    expect(asNode.code).toBe(1);
    expect(asNode.stderr).toContain('(its WWNN)');
    const nodeIsPort = await cli('define', '--wwpn', '50:01:43:80:01:23:45:99', '--wwnn', '50:01:43:80:01:23:45:67');
    expect(nodeIsPort.code).toBe(1);
    expect(nodeIsPort.stderr).toContain(`is the WWPN of vport ${U1}`);
    expect((await cli('list')).stdout.trim().split('\n')).toHaveLength(1);
  });

  it('refuses a duplicate UUID and a socket path already in use (exit 1)', async () => {
    const sock = join(dirs.root, 'x.sock');
    await define('--uuid', U1, '--socket', sock);
    const again = await cli('define', '--uuid', U1);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain(`vport ${U1} is already defined`);
    const sameSocket = await cli('define', '--socket', sock);
    expect(sameSocket.code).toBe(1);
    expect(sameSocket.stderr).toContain(`socket path ${sock} is already used by vport ${U1}`);
    const socketIsLink = await cli('define', '--backend', `san:${sock}`);
    expect(socketIsLink.code).toBe(1);
    expect(socketIsLink.stderr).toContain('is the vfio-user socket of vport');
  });

  it.each([
    [['--wwpn', '50:01:43:80:01:23:45'], "invalid WWPN '50:01:43:80:01:23:45'"],
    [['--wwpn', 'zz01438001234567'], 'invalid WWPN'],
    [['--wwnn', '0'], 'invalid WWNN'],
    [['--wwpn', '5001438001234567', '--wwnn', '5001438001234567'], 'must differ'],
    [['--uuid', 'not-a-uuid'], "invalid UUID 'not-a-uuid'"],
    [['--naa-prefix', '7001438'], 'must start with 5'],
    [['--backend', 'fabric'], "invalid backend 'fabric'"],
    [['--socket', 'relative.sock'], 'must be an absolute path'],
    [['--socket', '/' + 'x'.repeat(120)], 'at most 107'],
    [['--bogus'], "unknown option '--bogus'"],
    [['--socket-group', 'no-such-group-npiv'], "--socket-group 'no-such-group-npiv': no such group"],
    [['--socket-owner', 'no-such-user-npiv'], "--socket-owner 'no-such-user-npiv': no such user"],
    [['--socket-owner', '-x'], "invalid --socket-owner '-x'"],
    [
      ['--backend', 'san:/run/s.sock', '--san-owner', 'no-such-user-npiv'],
      "--san-owner 'no-such-user-npiv': no such user",
    ],
    [
      ['--san-owner', '0'],
      '--san-owner names who may run the SAN at the backend link: it needs --backend san:LINKPATH',
    ],
  ])('refuses malformed arguments %j with exit 2', async (argv, message) => {
    const r = await cli('define', ...argv);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(message);
    expect(r.stdout).toBe('');
    expect(existsSync(dirs.configDir) ? (await cli('list')).stdout : '').toBe('');
  });

  it('stores the socket access options; show and list --json print them', async () => {
    const link = join(dirs.root, 'san.sock');
    await define(
      '--uuid',
      U1,
      '--socket-owner',
      'root',
      '--socket-group',
      '0',
      '--san-owner',
      '0',
      '--backend',
      `san:${link}`,
    );
    const file = JSON.parse(readFileSync(join(dirs.configDir, `${U1}.json`), 'utf8'));
    expect(file).toMatchObject({ socketOwner: 'root', socketGroup: '0', sanOwner: '0' });
    expect(await showJson(U1)).toMatchObject({ socketOwner: 'root', socketGroup: '0', sanOwner: '0' });
    expect((await cli('show', U1)).stdout).toContain('access:     socket owner root, socket group 0, SAN owner 0\n');
    await define('--uuid', U2);
    const list = JSON.parse((await cli('list', '--json')).stdout);
    expect(
      list.map((v: { socketOwner: unknown; socketGroup: unknown; sanOwner: unknown }) => [
        v.socketOwner,
        v.socketGroup,
        v.sanOwner,
      ]),
    ).toEqual([
      [null, null, null],
      ['root', '0', '0'],
    ]);
    expect((await cli('show', U2)).stdout).not.toContain('access:');
  });

  it('a definition file written before the access options existed still reads; a bad hand-edited one is named', async () => {
    mkdirSync(dirs.configDir, { recursive: true });
    const old = {
      version: 1,
      uuid: U1,
      wwpn: '50:01:43:80:01:23:45:67',
      wwnn: '50:01:43:80:01:23:45:66',
      backend: { type: 'none' },
      socket: '/run/a.sock',
      autostart: false,
    };
    writeFileSync(join(dirs.configDir, `${U1}.json`), JSON.stringify(old));
    expect(await showJson(U1)).toMatchObject({ uuid: U1, socketOwner: null, socketGroup: null, sanOwner: null });
    writeFileSync(join(dirs.configDir, `${U1}.json`), JSON.stringify({ ...old, socketGroup: '--x', sanOwner: 'root' }));
    const r = await cli('show', U1);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('socketGroup: expected a user or group name, or a numeric id (serve --socket-group)');
    expect(r.stderr).toContain('sanOwner: sanOwner needs a san backend');
  });

  it('refuses to define while an invalid definition makes duplicate checks impossible', async () => {
    mkdirSync(dirs.configDir, { recursive: true });
    writeFileSync(join(dirs.configDir, `${U2}.json`), '{"version":1,"uuid":');
    const r = await cli('define');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('invalid definitions');
    expect(r.stderr).toContain(`${U2}.json: not valid JSON`);
  });
});

describe('list and show', () => {
  it('an empty or missing config directory lists nothing', async () => {
    expect(await cli('list')).toEqual({ code: 0, stdout: '', stderr: '' });
    expect(await cli('list', '--json')).toEqual({ code: 0, stdout: '[]\n', stderr: '' });
  });

  it('lists every definition sorted by UUID: <uuid> <wwpn> <backend> auto|manual <status>', async () => {
    await define('--uuid', U1, '--wwpn', '50:01:43:80:01:23:45:67', '--autostart', '--backend', 'san:/run/san.sock');
    await define('--uuid', U2, '--wwpn', '50:01:43:80:01:23:45:69');
    const r = await cli('list');
    expect(r).toEqual({
      code: 0,
      stderr: '',
      stdout: `${U2} 50:01:43:80:01:23:45:69 none manual stopped\n${U1} 50:01:43:80:01:23:45:67 san:/run/san.sock auto stopped\n`,
    });
    expect((await cli('list', '--defined')).stdout).toBe(r.stdout);
    expect(await cli('list', '--running')).toEqual({ code: 0, stdout: '', stderr: '' });
    const json = JSON.parse((await cli('list', '--json')).stdout);
    expect(json.map((v: { uuid: string }) => v.uuid)).toEqual([U2, U1]);
    expect(json[1]).toMatchObject({
      wwnn: '50:01:43:80:01:23:45:66',
      backend: { type: 'san', link: '/run/san.sock' },
      status: 'stopped',
    });
  });

  it('--defined with --running is a usage error', async () => {
    const r = await cli('list', '--defined', '--running');
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('exclude each other');
  });

  it('reports invalid definition files by name, still lists the good ones, exits 1', async () => {
    await define('--uuid', U1);
    writeFileSync(join(dirs.configDir, `${U2}.json`), JSON.stringify({ version: 1, uuid: U2, wwpn: 'nope' }));
    writeFileSync(join(dirs.configDir, `${UNKNOWN}.json`), readFileSync(join(dirs.configDir, `${U1}.json`)));
    const r = await cli('list');
    expect(r.code).toBe(1);
    expect(r.stdout.startsWith(U1)).toBe(true);
    expect(r.stdout.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toContain(`${U2}.json: wwpn: invalid WWPN 'nope'`);
    expect(r.stderr).toContain(`${UNKNOWN}.json: file name does not match its uuid ${U1}`);
  });

  it('show prints the definition and status; unknown UUID exits 1, malformed UUID 2', async () => {
    await define('--uuid', U1, '--wwpn', '50:01:43:80:01:23:45:67', '--socket', '/run/x.sock');
    const r = await cli('show', U1);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(
      [
        `uuid:       ${U1}`,
        'wwpn:       50:01:43:80:01:23:45:67',
        'wwnn:       50:01:43:80:01:23:45:66',
        'backend:    none',
        'socket:     /run/x.sock',
        'autostart:  no',
        'status:     stopped',
        `definition: ${join(dirs.configDir, `${U1}.json`)}`,
      ].join('\n') + '\n',
    );
    const unknown = await cli('show', UNKNOWN);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain(`no vport ${UNKNOWN} is defined`);
    expect((await cli('show', 'x')).code).toBe(2);
    expect((await cli('show')).code).toBe(2); // missing argument
  });

  it('a definition file edited into something invalid is reported by show', async () => {
    await define('--uuid', U1);
    const file = join(dirs.configDir, `${U1}.json`);
    writeFileSync(file, JSON.stringify({ ...JSON.parse(readFileSync(file, 'utf8')), socket: 'relative' }));
    const r = await cli('show', U1);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(
      `invalid vport definition ${file}: socket: socket path 'relative' must be an absolute path`,
    );
  });

  it('--config-dir overrides the environment', async () => {
    const other = join(dirs.root, 'other');
    const uuid = (await cli('define', '--config-dir', other)).stdout.trim();
    expect(existsSync(join(other, `${uuid}.json`))).toBe(true);
    expect((await cli('list')).stdout).toBe('');
    expect((await cli('list', '--config-dir', other)).stdout).toContain(uuid);
  });
});

describe('undefine', () => {
  it('removes a stopped vport; then it is unknown', async () => {
    await define('--uuid', U1);
    expect(await cli('undefine', U1)).toEqual({ code: 0, stdout: '', stderr: '' });
    expect(existsSync(join(dirs.configDir, `${U1}.json`))).toBe(false);
    expect((await cli('show', U1)).code).toBe(1);
    const again = await cli('undefine', U1);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain(`no vport ${U1} is defined`);
  });

  it('removes what docs/vports.md says: definition, log, stats left by a killed serve; keeps the lock file', async () => {
    await define('--uuid', U1);
    mkdirSync(dirs.runDir, { recursive: true });
    const log = join(dirs.runDir, `${U1}.log`);
    const stats = join(dirs.runDir, `${U1}.sock.stats.json`);
    const lock = join(dirs.runDir, `${U1}.lock`);
    for (const f of [log, stats, lock]) writeFileSync(f, '');
    expect(await cli('undefine', U1)).toEqual({ code: 0, stdout: '', stderr: '' });
    expect([log, stats].filter(existsSync)).toEqual([]);
    expect(existsSync(lock)).toBe(true);
  });
});

describe('qemu-args and libvirt-xml', () => {
  beforeEach(async () => {
    await define('--uuid', U1, '--socket', '/run/npiv-hba/a.sock');
    await define('--uuid', U2, '--socket', '/run/npiv-hba/b.sock');
  });

  it('prints the exact shell-quoted arguments', async () => {
    const r = await cli('qemu-args', U1, '--mem', '1G', '--index', '3', '--no-check');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(
      [
        '-m 1G',
        '-object memory-backend-memfd,id=mem,size=1G,share=on',
        '-machine q35,memory-backend=mem',
        '-device pcie-root-port,id=rp-npiv-7d3c5e0a,chassis=3,slot=0',
        `-device '{"driver":"vfio-user-pci","id":"npiv-7d3c5e0a","bus":"rp-npiv-7d3c5e0a","socket":{"type":"unix","path":"/run/npiv-hba/a.sock"}}'`,
      ].join(' \\\n') + '\n',
    );
  });

  it('--qmp add|del: one QMP command per vport; --virsh wraps them for virsh qemu-monitor-command', async () => {
    const add = await cli('qemu-args', U1, U2, '--qmp', 'add', '--no-check');
    expect(add.code).toBe(0);
    expect(add.stdout.split('\n')).toEqual([
      '{"execute":"device_add","arguments":{"driver":"vfio-user-pci","id":"npiv-7d3c5e0a","bus":"rp-npiv-7d3c5e0a","socket":{"type":"unix","path":"/run/npiv-hba/a.sock"}}}',
      '{"execute":"device_add","arguments":{"driver":"vfio-user-pci","id":"npiv-0badc0de","bus":"rp-npiv-0badc0de","socket":{"type":"unix","path":"/run/npiv-hba/b.sock"}}}',
      '',
    ]);
    // Unplugging needs no running vport: no --no-check.
    const del = await cli('qemu-args', U1, '--qmp', 'del', '--virsh', "my vm's");
    expect(del.code).toBe(0);
    expect(del.stdout).toBe(
      `virsh qemu-monitor-command 'my vm'\\''s' '{"execute":"device_del","arguments":{"id":"npiv-7d3c5e0a"}}'\n`,
    );
    expect((await cli('qemu-args', U1, '--qmp', 'add')).code).toBe(3);
    expect((await cli('qemu-args', U1, '--qmp', 'plug', '--no-check')).code).toBe(2);
    const virshAlone = await cli('qemu-args', U1, '--virsh', 'vm1', '--no-check');
    expect(virshAlone.code).toBe(2);
    expect(virshAlone.stderr).toContain('--virsh prints QMP commands: give --qmp add or --qmp del');
  });

  it('--lines: one raw argument per line, several vports each behind a root port', async () => {
    const r = await cli('qemu-args', U1, U2, '--lines', '--devices-only', '--no-check');
    expect(r.stdout.split('\n')).toEqual([
      '-device',
      'pcie-root-port,id=rp-npiv-7d3c5e0a,chassis=1,slot=0',
      '-device',
      '{"driver":"vfio-user-pci","id":"npiv-7d3c5e0a","bus":"rp-npiv-7d3c5e0a","socket":{"type":"unix","path":"/run/npiv-hba/a.sock"}}',
      '-device',
      'pcie-root-port,id=rp-npiv-0badc0de,chassis=2,slot=0',
      '-device',
      '{"driver":"vfio-user-pci","id":"npiv-0badc0de","bus":"rp-npiv-0badc0de","socket":{"type":"unix","path":"/run/npiv-hba/b.sock"}}',
      '',
    ]);
  });

  it('errors: unknown UUID 1; not running 3; bad size, bad index, no UUID 2', async () => {
    const unknown = await cli('qemu-args', UNKNOWN);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain(`no vport ${UNKNOWN} is defined`);
    expect(unknown.stdout).toBe('');
    const notRunning = await cli('qemu-args', U1);
    expect(notRunning.code).toBe(3);
    expect(notRunning.stderr).toContain(`npiv-hba vport: vport ${U1} is not running (stopped)\n`);
    expect(notRunning.stderr).toContain(
      `npiv-hba vport: hint: start it first (npiv-hba vport start ${U1}), or pass --no-check`,
    );
    const size = await cli('qemu-args', U1, '--mem', '512');
    expect(size.code).toBe(2);
    expect(size.stderr).toContain("invalid memory size '512'");
    expect((await cli('qemu-args', U1, '--index', '0')).code).toBe(2);
    expect((await cli('qemu-args')).code).toBe(2);
  });

  it('libvirt-xml carries the same devices in qemu:commandline with shared memfd memory', async () => {
    const r = await cli('libvirt-xml', U1);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("<domain type='kvm' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>");
    expect(r.stdout).toContain("<source type='memfd'/>");
    expect(r.stdout).toContain("<access mode='shared'/>");
    expect(r.stdout).toContain("<qemu:arg value='pcie-root-port,id=rp-npiv-7d3c5e0a,chassis=100,slot=0'/>");
    expect(r.stdout).toContain(
      `<qemu:arg value='{"driver":"vfio-user-pci","id":"npiv-7d3c5e0a","bus":"rp-npiv-7d3c5e0a","socket":{"type":"unix","path":"/run/npiv-hba/a.sock"}}'/>`,
    );
    expect(r.stdout.trimEnd().endsWith('</domain>')).toBe(true);
    const unknown = await cli('libvirt-xml', UNKNOWN);
    expect(unknown.code).toBe(1);
  });
});

describe('usage', () => {
  it('an unknown subcommand is a usage error; --help is not', async () => {
    const r = await cli('frobnicate');
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("unknown command 'frobnicate'");
    const help = await cli('--help');
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('qemu-args');
  });
});

describe('registerVportCommand (the main CLI wiring)', () => {
  it('adds the vport group to a program; a refused operation sets process.exitCode to 1', async () => {
    const saved = process.exitCode;
    try {
      const ok = capture(env);
      const p1 = new Command('npiv-hba');
      registerVportCommand(p1, ok.io);
      await p1.parseAsync(['vport', 'define', '--uuid', U1], { from: 'user' });
      expect(ok.stdout()).toBe(`${U1}\n`);
      expect(process.exitCode).toBe(saved);

      const bad = capture(env);
      const p2 = new Command('npiv-hba');
      registerVportCommand(p2, bad.io);
      await p2.parseAsync(['vport', 'define', '--uuid', U1], { from: 'user' });
      expect(bad.stderr()).toContain(`vport ${U1} is already defined`);
      expect(process.exitCode).toBe(1);
    } finally {
      process.exitCode = saved;
    }
  });
});
