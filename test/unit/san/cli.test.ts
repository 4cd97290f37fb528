import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { parseCtlArguments, registerSanCommand, runSan } from '../../../src/cli/san.js';
import { exampleSanConfig, parseSanConfig } from '../../../src/san/config.js';
import { Initiator } from '../../../src/fc/initiator.js';
import { until } from './helpers.js';

function program(): Command {
  const p = new Command();
  p.exitOverride();
  registerSanCommand(p);
  return p;
}

async function captureStdout(fn: () => Promise<unknown>): Promise<{ out: string; error: unknown }> {
  let out = '';
  const spy = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    out += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString();
    return true;
  });
  let error: unknown = null;
  try {
    await fn();
  } catch (err) {
    error = err;
  } finally {
    spy.mockRestore();
  }
  return { out, error };
}

describe('npiv-hba san', () => {
  let dir: string | undefined;
  afterEach(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('--example prints a configuration that validates', async () => {
    const { out, error } = await captureStdout(() => program().parseAsync(['node', 'npiv-hba', 'san', '--example']));
    expect(error).toBeNull();
    expect(parseSanConfig(JSON.parse(out)).arrays[0]!.ports).toHaveLength(2);
  });

  it('refuses to run without --config and --link', async () => {
    await expect(runSan({}, new AbortController().signal)).rejects.toThrow(/--config/);
    await expect(runSan({ config: 'x.json' }, new AbortController().signal)).rejects.toThrow(/--link/);
  });

  it('ctl arguments: key=value, JSON only for lists/objects/null', () => {
    expect(parseCtlArguments('zone-create', ['name=z2', 'members=["a","b"]'])).toEqual({
      cmd: 'zone-create',
      name: 'z2',
      members: ['a', 'b'],
    });
    expect(parseCtlArguments('map-lun', ['lun=3', 'volume=007'])).toEqual({ cmd: 'map-lun', lun: '3', volume: '007' });
    expect(parseCtlArguments('zoneset-activate', ['name=null'])).toEqual({ cmd: 'zoneset-activate', name: null });
    expect(() => parseCtlArguments('status', ['oops'])).toThrow(/key=value/);
    expect(() => parseCtlArguments('zone-create', ['members=[1,'])).toThrow(/members/);
  });

  it('runs the SAN from a config file and takes ctl commands over the control socket', async () => {
    dir = mkdtempSync(join(tmpdir(), 'sancli-'));
    const cfg = join(dir, 'san.json');
    writeFileSync(cfg, exampleSanConfig());
    const link = join(dir, 'link.sock');
    const control = join(dir, 'ctl.sock');
    const pcap = join(dir, 'trace.pcap');
    const stop = new AbortController();
    const running = runSan({ config: cfg, link, control, pcap }, stop.signal);
    await until(() => existsSync(control), 'control socket');
    // The example's file-backed volume is created next to the config file.
    expect(existsSync(join(dir, 'array1-boot.img'))).toBe(true);

    const host = await Initiator.connect(link, { wwpn: 0xc05076ffe5000001n, wwnn: 0xc05076ffe5000000n });
    const status = await captureStdout(() =>
      program().parseAsync(['node', 'npiv-hba', 'san', 'ctl', '--control', control, 'status']),
    );
    expect(status.error).toBeNull();
    const s = JSON.parse(status.out);
    expect(s.logins.map((l: { wwpn: string }) => l.wwpn)).toContain('c0:50:76:ff:e5:00:00:01');
    expect(s.targetPorts).toHaveLength(2);

    const add = await captureStdout(() =>
      program().parseAsync([
        'node',
        'npiv-hba',
        'san',
        'ctl',
        '--control',
        control,
        'add-volume',
        'array=array1',
        'name=data',
        'size=1MiB',
      ]),
    );
    expect(add.error).toBeNull();
    const bad = await captureStdout(() =>
      program().parseAsync([
        'node',
        'npiv-hba',
        'san',
        'ctl',
        '--control',
        control,
        'remove-volume',
        'array=array1',
        'name=nope',
      ]),
    );
    expect(String(bad.error)).toMatch(/nope/);
    expect(JSON.parse(bad.out).ok).toBe(false);

    host.closeLink();
    stop.abort();
    await running;
    expect(existsSync(pcap)).toBe(true);
  });
});
