/**
 * vport definitions with the host NPIV backend (`--backend host:PARENT`): the parent's forms as
 * `serve --backend host:PARENT` accepts them, stored canonical; the file format (hand-edited
 * files validated); list/show; `start` passing `--backend host:PARENT` to serve without probing
 * any SAN socket; sanOwner and NPIV grants refused with it.
 */
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runCli } from '../../../src/cli/vport.js';
import {
  definitionFromJson,
  definitionToJson,
  formatBackend,
  parseBackend,
  type VportDefinition,
} from '../../../src/vport/definition.js';
import { VportUsageError } from '../../../src/vport/errors.js';
import { defineVport } from '../../../src/vport/manager.js';
import { serveArguments, statePath } from '../../../src/vport/runtime.js';
import { VportStore } from '../../../src/vport/store.js';
import { capture, haveBuiltCli, tempDirs, type TempDirs } from './helpers.js';

let dirs: TempDirs;
let env: NodeJS.ProcessEnv;
let store: VportStore;
beforeEach(() => {
  dirs = tempDirs();
  env = {
    ...process.env,
    NPIV_HBA_CONFIG_DIR: dirs.configDir,
    NPIV_HBA_RUN_DIR: dirs.runDir,
    NPIV_HBA_LOG_LEVEL: 'warn',
  };
  store = new VportStore(dirs.configDir);
});
afterEach(() => dirs.cleanup());

async function cli(argv: string[], serveCommand?: string[]) {
  const c = capture(env, serveCommand ? { serveCommand } : {});
  const code = await runCli(argv, c.io);
  return { code, stdout: c.stdout(), stderr: c.stderr() };
}

const U1 = '7d3c5e0a-2f4b-4c61-9a8e-0b1c2d3e4f50';
const FILE = {
  version: 1,
  uuid: U1,
  wwpn: 'c0:50:76:ff:e5:00:20:81',
  wwnn: 'c0:50:76:ff:e5:01:20:81',
  backend: { type: 'host', parent: 'host5' },
  socket: '/run/npiv-hba/vm.sock',
  autostart: false,
};

describe('parseBackend host:PARENT', () => {
  it('accepts hostN, a bare host number and a WWPN in every form serve accepts, stored canonical', () => {
    expect(parseBackend('host:host5')).toEqual({ type: 'host', parent: 'host5' });
    expect(parseBackend('host:5')).toEqual({ type: 'host', parent: 'host5' });
    for (const w of ['21:00:00:24:ff:12:34:56', '0x21000024FF123456', '21000024ff123456']) {
      expect(parseBackend(`host:${w}`)).toEqual({ type: 'host', parent: '21:00:00:24:ff:12:34:56' });
    }
    expect(formatBackend({ type: 'host', parent: 'host5' })).toBe('host:host5');
  });

  it('refuses an empty or malformed parent as a usage error naming the backend', () => {
    for (const bad of ['host:', 'host:foo', 'host:hostx', 'host:21:00:00:24:ff:12:34:56:78', 'hosts:5']) {
      expect(() => parseBackend(bad)).toThrow(VportUsageError);
    }
    expect(() => parseBackend('host:foo')).toThrow(/invalid backend 'host:foo': invalid parent 'foo'/);
    expect(() => parseBackend('fabric')).toThrow(/'host:PARENT'/);
  });
});

describe('definition file with a host backend', () => {
  it('round-trips; a hand-edited parent is read canonical', () => {
    const def = definitionFromJson(FILE);
    expect(def.backend).toEqual({ type: 'host', parent: 'host5' });
    expect(definitionToJson(def)).toMatchObject({ backend: { type: 'host', parent: 'host5' } });
    const edited = definitionFromJson({ ...FILE, backend: { type: 'host', parent: '0x21000024ff123456' } });
    expect(edited.backend).toEqual({ type: 'host', parent: '21:00:00:24:ff:12:34:56' });
  });

  it('names what is wrong: a malformed parent, extra keys, sanOwner, NPIV grants', () => {
    expect(() => definitionFromJson({ ...FILE, backend: { type: 'host', parent: 'eth0' } })).toThrow(
      /backend\.parent: invalid backend 'host:eth0'/,
    );
    expect(() => definitionFromJson({ ...FILE, backend: { type: 'host' } })).toThrow(/backend\.parent/);
    expect(() => definitionFromJson({ ...FILE, backend: { type: 'host', parent: 'host5', link: '/x' } })).toThrow(
      /backend/,
    );
    expect(() => definitionFromJson({ ...FILE, sanOwner: 'root' })).toThrow(/sanOwner needs a san backend/);
    expect(() =>
      definitionFromJson({ ...FILE, npiv: [{ wwpn: 'c0:50:76:00:00:00:01:01', wwnn: 'c0:50:76:00:00:00:01:00' }] }),
    ).toThrow(/npiv: NPIV grants need the simulated SAN/);
  });

  it('serve gets --backend host:PARENT and no --san', () => {
    const def: VportDefinition = definitionFromJson({ ...FILE, socketGroup: 'kvm' });
    expect(serveArguments(def)).toEqual([
      'serve',
      '--socket',
      '/run/npiv-hba/vm.sock',
      '--wwpn',
      'c0:50:76:ff:e5:00:20:81',
      '--wwnn',
      'c0:50:76:ff:e5:01:20:81',
      '--backend',
      'host:host5',
      '--socket-group',
      'kvm',
    ]);
  });
});

describe('defineVport / vport define --backend host:PARENT', () => {
  it('stores the canonical parent, whoever built the request', async () => {
    const def = await defineVport(
      { backend: { type: 'host', parent: '7' }, autostart: false },
      { store, runDir: dirs.runDir, env: {} },
    );
    expect(def.backend).toEqual({ type: 'host', parent: 'host7' });
    expect(JSON.parse(readFileSync(store.definitionPath(def.uuid), 'utf8')).backend).toEqual({
      type: 'host',
      parent: 'host7',
    });
  });

  it('list and show print the backend; --json carries it as stored', async () => {
    const r = await cli(['define', '--uuid', U1, '--wwpn', FILE.wwpn, '--backend', 'host:0x21000024FF123456']);
    expect([r.code, r.stderr]).toEqual([0, '']);
    const list = await cli(['list']);
    expect(list.stdout).toBe(`${U1} ${FILE.wwpn} host:21:00:00:24:ff:12:34:56 manual stopped\n`);
    expect((await cli(['show', U1])).stdout).toContain('backend:    host:21:00:00:24:ff:12:34:56\n');
    const json = JSON.parse((await cli(['list', '--json'])).stdout);
    expect(json[0]).toMatchObject({ uuid: U1, backend: { type: 'host', parent: '21:00:00:24:ff:12:34:56' } });
  });

  it('refuses a malformed parent, --san-owner and --npiv-wwpn with it (exit 2), defining nothing', async () => {
    const bad = await cli(['define', '--backend', 'host:eth0']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("invalid backend 'host:eth0'");
    const owner = await cli(['define', '--backend', 'host:host5', '--san-owner', 'root']);
    expect(owner.code).toBe(2);
    expect(owner.stderr).toContain('--san-owner names who may run the SAN at the backend link');
    const npiv = await cli(['define', '--backend', 'host:host5', '--npiv-wwpn', 'c050760000000101:c050760000000100']);
    expect(npiv.code).toBe(2);
    expect(npiv.stderr).toContain('--npiv-wwpn: NPIV grants need the simulated SAN');
    expect(store.list().definitions).toEqual([]);
  });
});

describe('vport start with a host backend', () => {
  it('probes no SAN socket and spawns serve with --backend host:PARENT', async () => {
    mkdirSync(dirs.configDir, { recursive: true });
    writeFileSync(
      join(dirs.configDir, `${U1}.json`),
      JSON.stringify({ ...FILE, socket: join(dirs.runDir, 'vm.sock') }),
    );
    // A stand-in serve that records its argv and exits: start reports the exit.
    const argvFile = join(dirs.root, 'argv.json');
    const stand = join(dirs.root, 'serve.mjs');
    writeFileSync(
      stand,
      `import { writeFileSync } from 'node:fs';\nwriteFileSync(${JSON.stringify(argvFile)}, JSON.stringify(process.argv.slice(2)));\nprocess.stderr.write('stand-in serve\\n');\nprocess.exit(3);\n`,
    );
    const r = await cli(['start', U1], [process.execPath, stand]);
    expect(r.code).toBe(1);
    expect(r.stderr).not.toContain('SAN unreachable');
    expect(r.stderr).toContain('serve exited (status 3)');
    const argv = JSON.parse(readFileSync(argvFile, 'utf8')) as string[];
    expect(argv[argv.indexOf('--backend') + 1]).toBe('host:host5');
    expect(argv).not.toContain('--san');
  });

  it.skipIf(!haveBuiltCli)('the real serve refuses a parent that is not there, and start reports why', async () => {
    // host4242: no such fc_host on any machine this runs on. serve refuses before its socket
    // appears (manual scanning, then the parent), whichever check the machine fails first.
    const def = await defineVport(
      { backend: { type: 'host', parent: 'host4242' }, autostart: false },
      { store, runDir: dirs.runDir, env: {} },
    );
    const r = await cli(['start', def.uuid]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('serve exited (status 1)');
    expect(r.stderr).toMatch(/scsi_mod|host4242|root/);
    expect(r.stderr).not.toContain('SAN unreachable');
    expect(() => readFileSync(statePath(dirs.runDir, def.uuid))).toThrow();
  });
});
