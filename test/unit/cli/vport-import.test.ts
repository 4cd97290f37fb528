/**
 * `vport define --jsonfile` / `--libvirt-xml` and `vport export`: definitions to and from files,
 * through runCli (exit status, stdout, stderr).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runCli } from '../../../src/cli/vport.js';
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

function file(name: string, text: string): string {
  const path = join(dirs.root, name);
  writeFileSync(path, text);
  return path;
}

const U1 = '7d3c5e0a-2f4b-4c61-9a8e-0b1c2d3e4f50';

describe('define --jsonfile', () => {
  it('defines from a partial file: given fields kept, the rest generated as define does', async () => {
    const f = file('v.json', JSON.stringify({ uuid: U1, wwpn: '5001438001234567', autostart: true, model: 'isp2432' }));
    const r = await cli('define', '--jsonfile', f);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`${U1}\n`);
    const stored = JSON.parse(readFileSync(join(dirs.configDir, `${U1}.json`), 'utf8'));
    expect(stored).toEqual({
      version: 1,
      uuid: U1,
      wwpn: '50:01:43:80:01:23:45:67',
      wwnn: '50:01:43:80:01:23:45:66',
      backend: { type: 'none' },
      socket: join(dirs.runDir, `${U1}.sock`),
      autostart: true,
      model: 'isp2432',
    });
  });

  it('round-trips export --json into define --jsonfile on another store', async () => {
    expect((await cli('define', '--uuid', U1, '--npiv-wwpn', '5001438001230001:5001438001230000')).code).toBe(0);
    const exported = await cli('export', U1, '--json');
    expect(exported.code).toBe(0);
    const original = readFileSync(join(dirs.configDir, `${U1}.json`), 'utf8');
    expect(exported.stdout).toBe(original);
    const f = file('exported.json', exported.stdout);
    env = { ...env, NPIV_HBA_CONFIG_DIR: join(dirs.root, 'other') };
    const r = await cli('define', '--jsonfile', f);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(readFileSync(join(dirs.root, 'other', `${U1}.json`), 'utf8')).toBe(original);
  });

  it.each([
    [{ wwpn: 'nope' }, /wwpn: invalid WWPN 'nope'/],
    [{ backend: { type: 'fc' } }, /backend/],
    [{ autostart: 'yes' }, /autostart: 'yes' is not a boolean/],
    [{ colour: 'red' }, /unknown field colour/],
    [{ model: 'isp9999' }, /model: 'isp9999' is not one of/],
    [{ uuid: 'x' }, /uuid: uuid must be a lower-case/],
  ])('refuses %j with exit 2, naming the field', async (json, message) => {
    const f = file('bad.json', JSON.stringify(json));
    const r = await cli('define', '--jsonfile', f);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(r.stderr).toContain(f);
  });

  it('refuses a file that is not JSON, too large, or combined with definition options', async () => {
    const bad = await cli('define', '--jsonfile', file('x.json', '{'));
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/not valid JSON/);
    const big = await cli('define', '--jsonfile', file('big.json', ' '.repeat(70_000)));
    expect(big.code).toBe(2);
    expect(big.stderr).toMatch(/at most 65536 are read/);
    const both = await cli('define', '--jsonfile', file('ok.json', '{}'), '--wwpn', '5001438001234567', '--autostart');
    expect(both.code).toBe(2);
    expect(both.stderr).toMatch(/--wwpn, --autostart cannot be added/);
    const missing = await cli('define', '--jsonfile', join(dirs.root, 'none.json'));
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toContain('none.json');
  });

  it('applies the cross-definition checks of define (duplicate WWPN)', async () => {
    expect((await cli('define', '--wwpn', '5001438001234567')).code).toBe(0);
    const r = await cli('define', '--jsonfile', file('dup.json', JSON.stringify({ wwpn: '50:01:43:80:01:23:45:67' })));
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/duplicate WWPN 50:01:43:80:01:23:45:67/);
  });
});

describe('define --libvirt-xml / export --libvirt-xml', () => {
  const XML = `<device>
  <parent>scsi_host5</parent>
  <capability type='scsi_host'>
    <capability type='fc_host'>
      <wwnn>5001a4a123456788</wwnn>
      <wwpn>5001a4a123456789</wwpn>
    </capability>
  </capability>
</device>
`;

  it('takes the names from the nodedev XML, notes the parent it does not import, and exports the same XML', async () => {
    const r = await cli('define', '--uuid', U1, '--libvirt-xml', file('v.xml', XML), '--backend', 'host:host5');
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/<parent>scsi_host5<\/parent> is not imported/);
    const show = JSON.parse((await cli('show', U1, '--json')).stdout);
    expect(show).toMatchObject({ wwpn: '50:01:a4:a1:23:45:67:89', wwnn: '50:01:a4:a1:23:45:67:88' });
    const exported = await cli('export', U1, '--libvirt-xml');
    expect(exported.code).toBe(0);
    expect(exported.stdout).toBe(XML);
  });

  it('refuses a DOCTYPE with exit 2, and --wwpn together with the XML', async () => {
    const doctype = await cli('define', '--libvirt-xml', file('d.xml', `<!DOCTYPE device>${XML}`));
    expect(doctype.code).toBe(2);
    expect(doctype.stderr).toMatch(/DOCTYPE or entity declaration/);
    const both = await cli('define', '--libvirt-xml', file('v.xml', XML), '--wwpn', '5001438001234567');
    expect(both.code).toBe(2);
    expect(both.stderr).toMatch(/--libvirt-xml gives the WWPN and WWNN/);
  });

  it('export refuses an unknown vport and --json with --libvirt-xml', async () => {
    expect((await cli('export', U1)).code).toBe(1);
    await cli('define', '--uuid', U1);
    expect((await cli('export', U1, '--json', '--libvirt-xml')).code).toBe(2);
  });
});
