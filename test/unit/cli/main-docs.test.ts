/**
 * The reference docs name only commands and options that exist: every `npiv-hba ...` command line
 * in docs/{cli,config,troubleshooting,architecture}.md resolves to a registered command and each
 * --option on it belongs to that command (or a parent); every option row of a command's section in
 * docs/cli.md is one of its options; and docs/cli.md documents every command and option there is.
 * The command tree is built in-process the way src/cli.ts builds it.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { buildProgram } from '../../../src/cli.js';
import { packageRoot } from '../../../src/util/package-root.js';

const REPO = packageRoot();
const DOCS = ['cli.md', 'config.md', 'troubleshooting.md', 'architecture.md'];
const readDoc = (name: string): string => readFileSync(join(REPO, 'docs', name), 'utf8');

function program(): Command {
  return buildProgram();
}

/** Follows `words` down the command tree as far as they name subcommands. */
function resolvePath(root: Command, words: string[]): Command[] {
  const chain = [root];
  for (const w of words) {
    const next = chain[chain.length - 1]!.commands.find((c) => c.name() === w);
    if (!next) break;
    chain.push(next);
  }
  return chain;
}

function longOptions(cmd: Command): string[] {
  return cmd.options.map((o) => o.long).filter((l): l is string => l !== undefined);
}

/** Every command below the root with its path: "serve", "san ctl", "vport define", ... */
function allCommands(root: Command, prefix: string[] = []): { path: string; cmd: Command }[] {
  return root.commands.flatMap((c) => {
    const path = [...prefix, c.name()];
    return [{ path: path.join(' '), cmd: c }, ...allCommands(c, path)];
  });
}

const OPTION = /--[a-z][a-z-]*/g;

describe('reference docs match the CLI', () => {
  const root = program();

  it('every `npiv-hba ...` command line in the docs names existing commands and their options', () => {
    const problems: string[] = [];
    for (const doc of DOCS) {
      for (const line of readDoc(doc).split('\n')) {
        for (const m of line.matchAll(/npiv-hba((?: [a-z][a-z-]*)*)([^`|;&)\n]*)/g)) {
          const words = m[1]!.trim().split(' ').filter(Boolean);
          const chain = resolvePath(root, words);
          const named = chain.slice(1).map((c) => c.name());
          // The first word after npiv-hba, when there is one and it is not an option, must be a command.
          if (words.length > 0 && chain.length === 1 && !['is', 'has', 'gives', 'runs'].includes(words[0]!)) {
            problems.push(`${doc}: 'npiv-hba ${words[0]}' is not a command (${line.trim()})`);
            continue;
          }
          const allowed = new Set(['--help', ...chain.flatMap(longOptions)]);
          for (const opt of (m[2]! + ' ').matchAll(OPTION)) {
            if (!allowed.has(opt[0]))
              problems.push(`${doc}: ${opt[0]} is not an option of 'npiv-hba ${named.join(' ')}' (${line.trim()})`);
          }
        }
      }
    }
    expect(problems).toEqual([]);
  });

  it('each option row in a command section of docs/cli.md is an option of that command', () => {
    const problems: string[] = [];
    let section: Command[] | null = null;
    let sectionName = '';
    for (const line of readDoc('cli.md').split('\n')) {
      const heading = /^##+ `npiv-hba ([a-z ]+)`/.exec(line);
      if (heading) {
        sectionName = heading[1]!;
        section = resolvePath(root, sectionName.split(' '));
        continue;
      }
      if (/^##+ /.test(line)) section = null;
      if (!section) continue;
      const row = /^\| `(--[a-z][a-z-]*)/.exec(line);
      if (!row) continue;
      // In the vport section, rows name options common to every subcommand.
      const scope = sectionName === 'vport' ? section[1]!.commands : [section[section.length - 1]!];
      for (const cmd of scope) {
        if (!longOptions(cmd).includes(row[1]!)) problems.push(`'${row[1]}' is not an option of '${cmd.name()}'`);
      }
    }
    expect(problems).toEqual([]);
  });

  it('docs/cli.md documents every command and every option', () => {
    const text = readDoc('cli.md');
    const missing: string[] = [];
    for (const { path, cmd } of allCommands(root)) {
      if (cmd.name() === 'help') continue;
      const last = path.split(' ').pop()!;
      if (!text.includes(`npiv-hba ${path}`) && !text.includes(`\`${last}`)) missing.push(`command ${path}`);
      for (const opt of longOptions(cmd)) {
        if (!text.includes(opt)) missing.push(`${path} ${opt}`);
      }
    }
    expect(missing).toEqual([]);
  });
});
