import { Command } from 'commander';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { formatStepFailure, labOptionsFromCli, registerLabCommand, stepFailureJson } from '../../../src/cli/lab.js';
import { LabStepError } from '../../../src/lab/lab.js';

const dir = mkdtempSync(join(tmpdir(), 'lab-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Runs `npiv-hba lab ...` through commander as src/cli.ts does, without exiting the process. */
async function runLabCommand(args: string[]): Promise<void> {
  const program = new Command()
    .exitOverride()
    .configureOutput({ writeErr: () => undefined, writeOut: () => undefined });
  registerLabCommand(program);
  await program.parseAsync(['node', 'npiv-hba', 'lab', ...args]);
}

describe('npiv-hba lab: argument errors (nothing is started)', () => {
  it('bad --vports', async () => {
    await expect(runLabCommand(['--vports', '0'])).rejects.toThrow(
      /invalid --vports '0': expected a whole number from 1 to 8/,
    );
    await expect(runLabCommand(['--vports', 'lots'])).rejects.toThrow(/invalid --vports 'lots'/);
    await expect(runLabCommand(['--vports', '9'])).rejects.toThrow(/invalid --vports '9'/);
  });

  it('bad --wwpn', async () => {
    await expect(runLabCommand(['--wwpn', 'c0:50:76'])).rejects.toThrow(/--wwpn: invalid WWPN 'c0:50:76'/);
    await expect(
      runLabCommand(['--wwpn', '50:01:43:80:01:23:45:67', '--wwpn', '50:01:43:80:01:23:45:67']),
    ).rejects.toThrow(/already used/);
  });

  it('missing or broken --config file', async () => {
    await expect(runLabCommand(['--config', join(dir, 'nope.json')])).rejects.toThrow(
      /cannot read --config .*nope\.json: ENOENT/,
    );
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, '{"fabric": {}}');
    await expect(runLabCommand(['--config', bad])).rejects.toThrow(/invalid SAN configuration/);
  });

  it('option values and combinations', async () => {
    await expect(runLabCommand(['--io-size', '0'])).rejects.toThrow(/invalid --io-size '0'/);
    await expect(runLabCommand(['--timeout', '-5'])).rejects.toThrow(/invalid --timeout '-5'/);
    await expect(runLabCommand(['--keep', '--json'])).rejects.toThrow(/cannot be combined with --json/);
    await expect(runLabCommand(['--bogus'])).rejects.toThrow(/unknown option '--bogus'/);
  });
});

describe('npiv-hba lab: option mapping', () => {
  it('maps the command line onto runLab options', () => {
    expect(labOptionsFromCli({})).toEqual({});
    expect(
      labOptionsFromCli({
        config: 'san.json',
        vports: '3',
        wwpn: ['a', 'b'],
        keep: true,
        workDir: 'w',
        ioSize: '16',
        timeout: '60',
      }),
    ).toEqual({
      configFile: 'san.json',
      vports: 3,
      wwpns: ['a', 'b'],
      keep: true,
      workDir: 'w',
      ioMiB: 16,
      guestTimeoutMs: 60_000,
    });
    expect(labOptionsFromCli({ wwpn: [] })).toEqual({});
  });

  it('a failed step names the step and the logs, as text and as JSON', () => {
    const error = new LabStepError(
      'starting the SAN',
      'npiv-hba san exited (1) before creating /w/san.sock',
      { san: '/w/san.log' },
      '/w',
    );
    const text = formatStepFailure(error);
    expect(text).toContain('npiv-hba lab: FAILED at step "starting the SAN"');
    expect(text).toContain('starting the SAN: npiv-hba san exited (1)');
    expect(text).toMatch(/^ {2}san +\/w\/san\.log$/m);
    const json = JSON.parse(stepFailureJson(error)) as Record<string, unknown>;
    expect(json).toMatchObject({ ok: false, step: 'starting the SAN', workDir: '/w', logs: { san: '/w/san.log' } });
  });
});
