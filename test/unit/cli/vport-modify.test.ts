/** `vport modify`: changing a defined vport, its checks, and the rules while it runs. */
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runCli } from '../../../src/cli/vport.js';
import { STATE_FORMAT_VERSION, writeRuntimeState } from '../../../src/vport/runtime.js';
import { capture, tempDirs, type TempDirs } from '../vport/helpers.js';

let dirs: TempDirs;
let env: NodeJS.ProcessEnv;
const children: ChildProcess[] = [];
beforeEach(() => {
  dirs = tempDirs();
  env = { NPIV_HBA_CONFIG_DIR: dirs.configDir, NPIV_HBA_RUN_DIR: dirs.runDir };
});
afterEach(() => {
  for (const c of children.splice(0)) c.kill('SIGKILL');
  dirs.cleanup();
});

async function cli(...argv: string[]) {
  const c = capture(env);
  const code = await runCli(argv, c.io);
  return { code, stdout: c.stdout(), stderr: c.stderr() };
}

const stored = (uuid: string) => JSON.parse(readFileSync(join(dirs.configDir, `${uuid}.json`), 'utf8'));

const U1 = '7d3c5e0a-2f4b-4c61-9a8e-0b1c2d3e4f50';
const U2 = '0badc0de-0000-4000-8000-000000000001';

/** Records `uuid` as running under a process whose command line is that of its serve. */
async function fakeRunning(uuid: string): Promise<void> {
  const socket = join(dirs.runDir, `${uuid}.sock`);
  const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1 << 30)', 'serve', '--socket', socket], {
    stdio: 'ignore',
  });
  children.push(child);
  // Until the child has exec'd, /proc shows the forking parent's command line.
  for (let i = 0; i < 200 && !readFileSync(`/proc/${child.pid}/cmdline`, 'utf8').includes(socket); i++)
    await new Promise((r) => setTimeout(r, 10));
  writeRuntimeState(dirs.runDir, {
    version: STATE_FORMAT_VERSION,
    uuid,
    pid: child.pid!,
    socket,
    startedAt: new Date().toISOString(),
    log: join(dirs.runDir, `${uuid}.log`),
  });
}

describe('modify', () => {
  it('changes the given fields and keeps the rest; --auto/--manual toggle autostart', async () => {
    expect((await cli('define', '--uuid', U1, '--wwpn', '5001438001234567')).code).toBe(0);
    const before = stored(U1);
    const r = await cli(
      'modify',
      U1,
      '--auto',
      '--backend',
      'san:/tmp/san.sock',
      '--san-owner',
      '0',
      '--model',
      'isp2432',
      '--npiv-wwpn',
      '5001438001230001:5001438001230000',
    );
    expect(r).toEqual({ code: 0, stdout: `modified ${U1}\n`, stderr: '' });
    expect(stored(U1)).toEqual({
      ...before,
      autostart: true,
      backend: { type: 'san', link: '/tmp/san.sock' },
      sanOwner: '0',
      model: 'isp2432',
      npiv: [{ wwpn: '50:01:43:80:01:23:00:01', wwnn: '50:01:43:80:01:23:00:00' }],
    });
    expect((await cli('modify', U1, '--manual', '--unset', 'npiv', '--unset', 'model')).code).toBe(0);
    expect(stored(U1)).toMatchObject({ autostart: false });
    expect(stored(U1).npiv).toBeUndefined();
    expect(stored(U1).model).toBeUndefined();
    expect((await cli('modify', U1, '--wwpn', '5001438001234569', '--wwnn', '5001438001234568')).code).toBe(0);
    expect(stored(U1)).toMatchObject({ wwpn: '50:01:43:80:01:23:45:69', wwnn: '50:01:43:80:01:23:45:68' });
  });

  it('checks the result as define does: within the definition (exit 2) and against the others (exit 1)', async () => {
    await cli('define', '--uuid', U1, '--wwpn', '5001438001234567');
    await cli('define', '--uuid', U2, '--wwpn', '5001438001234577');
    const before = stored(U1);
    const sanOwner = await cli('modify', U1, '--san-owner', '0');
    expect(sanOwner.code).toBe(2);
    expect(sanOwner.stderr).toMatch(/sanOwner: sanOwner needs a san backend/);
    const same = await cli('modify', U1, '--wwnn', '5001438001234567');
    expect(same.code).toBe(2);
    expect(same.stderr).toMatch(/wwpn and wwnn must differ/);
    const dup = await cli('modify', U1, '--wwpn', '5001438001234577');
    expect(dup.code).toBe(1);
    expect(dup.stderr).toMatch(/duplicate WWPN 50:01:43:80:01:23:45:77: already used by vport 0badc0de/);
    const sock = await cli('modify', U1, '--socket', join(dirs.runDir, `${U2}.sock`));
    expect(sock.code).toBe(1);
    expect(sock.stderr).toMatch(/is already used by vport 0badc0de/);
    expect(stored(U1)).toEqual(before);
  });

  it('usage errors: nothing to change, --auto with --manual, set and unset, unknown field, unknown vport', async () => {
    await cli('define', '--uuid', U1);
    expect((await cli('modify', U1)).stderr).toMatch(/nothing to change/);
    expect((await cli('modify', U1, '--auto', '--manual')).code).toBe(2);
    const both = await cli('modify', U1, '--model', 'isp2432', '--unset', 'model');
    expect(both.code).toBe(2);
    expect(both.stderr).toMatch(/model: both set and unset/);
    expect((await cli('modify', U1, '--unset', 'wwpn')).code).toBe(2);
    expect((await cli('modify', U2, '--auto')).code).toBe(1);
  });

  it('while the vport runs: refuses new names, takes other changes for the next start and says so', async () => {
    await cli('define', '--uuid', U1, '--wwpn', '5001438001234567');
    await fakeRunning(U1);
    expect((await cli('status', U1)).stdout).toMatch(/^running/);
    const names = await cli('modify', U1, '--wwpn', '5001438001234569');
    expect(names.code).toBe(1);
    expect(names.stderr).toMatch(/is running .*stop it before changing them/);
    expect(stored(U1).wwpn).toBe('50:01:43:80:01:23:45:67');
    const auto = await cli('modify', U1, '--auto');
    expect(auto.code).toBe(0);
    expect(auto.stderr).toMatch(/is running: the change takes effect at its next start/);
    expect(stored(U1).autostart).toBe(true);
  });
});

describe('vport define --model', () => {
  it('stores the model and refuses one the device does not have, listing the choices', async () => {
    expect((await cli('define', '--uuid', U2, '--model', 'isp2432')).code).toBe(0);
    expect(stored(U2).model).toBe('isp2432');
    const bad = await cli('define', '--model', 'isp9999');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/isp2532, isp2432/);
  });
});
