/**
 * The top level of the built CLI (bin/npiv-hba.js → dist/): --help lists every subcommand; an
 * unknown or missing command exits non-zero with help that says what exists.
 *
 * Without dist/ (npm ci builds it; `npm run build:ts` in a dev loop) every test here fails.
 */
import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { CLI, requireBuiltCli } from './support.js';

const SUBCOMMANDS = ['serve', 'san', 'lab', 'vport'];

function runCli(...args: string[]): Promise<{ code: number | string; stdout: string; stderr: string }> {
  return new Promise((done) => {
    const proc = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    proc.stdout.setEncoding('utf8').on('data', (t: string) => (stdout += t));
    proc.stderr.setEncoding('utf8').on('data', (t: string) => (stderr += t));
    proc.once('close', (code, signal) => done({ code: code ?? signal ?? 'unknown', stdout, stderr }));
  });
}

/** The command names in the "Commands:" section of commander's help text. */
function listedCommands(help: string): string[] {
  const section = help.split(/^Commands:$/m)[1] ?? '';
  return [...section.matchAll(/^ {2}([a-z][a-z-]*)/gm)].map((m) => m[1]!);
}

requireBuiltCli();

describe('npiv-hba (top level)', () => {
  it('--help lists serve, san, lab and vport and exits 0', async () => {
    const r = await runCli('--help');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Usage: npiv-hba [options] [command]');
    expect(listedCommands(r.stdout)).toEqual(expect.arrayContaining(SUBCOMMANDS));
  });

  it('each subcommand has its own --help', async () => {
    const helps = await Promise.all(SUBCOMMANDS.map((c) => runCli(c, '--help')));
    helps.forEach((r, i) => {
      expect(r.code, SUBCOMMANDS[i]).toBe(0);
      expect(r.stdout, SUBCOMMANDS[i]).toContain(`Usage: npiv-hba ${SUBCOMMANDS[i]} `);
    });
  });

  it('an unknown command exits 2 (usage), names it and shows what exists', async () => {
    const r = await runCli('frobnicate');
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("unknown command 'frobnicate'");
    expect(listedCommands(r.stderr)).toEqual(expect.arrayContaining(SUBCOMMANDS));
    expect(r.stdout).toBe('');
  });

  it('no command at all exits 2 with the help on stderr', async () => {
    const r = await runCli();
    expect(r.code).toBe(2);
    expect(listedCommands(r.stderr)).toEqual(expect.arrayContaining(SUBCOMMANDS));
  });

  it('a misspelt command gets a suggestion', async () => {
    const r = await runCli('serv');
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('(Did you mean serve?)');
  });

  it('an unknown option exits 2 naming it', async () => {
    const r = await runCli(
      'serve',
      '--socket',
      'x.sock',
      '--wwpn',
      '5001438001234567',
      '--wwnn',
      '5001438001234566',
      '--frames',
    );
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("unknown option '--frames'");
  });
});
