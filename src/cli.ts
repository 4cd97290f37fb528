/**
 * npiv-hba command line: one subcommand per job, each in src/cli/<name>.ts. Failures are printed
 * and turned into exit statuses in one place (src/cli/errors.ts, docs/cli.md#exit-status).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command, CommanderError } from 'commander';
import { registerCompatCommand } from './cli/compat.js';
import { EXIT_OK, EXIT_USAGE, formatCliError, usage } from './cli/errors.js';
import { registerHostCommand } from './cli/host.js';
import { registerLabCommand } from './cli/lab.js';
import { registerSanCommand } from './cli/san.js';
import { registerServeCommand } from './cli/serve.js';
import { registerVportCommand } from './cli/vport.js';
import { checkLogLevel } from './util/log.js';
import { packageRoot } from './util/package-root.js';

/** The version in package.json (what `--version` prints). */
export function packageVersion(): string {
  const manifest = JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version?: unknown };
  return typeof manifest.version === 'string' ? manifest.version : 'unknown';
}

/** The whole command tree; exits are thrown as CommanderError (run() maps them to statuses). */
export function buildProgram(): Command {
  const program = new Command();
  program
    .name('npiv-hba')
    .description('Fibre Channel NPIV vports for KVM guests as emulated QLogic ISP2532 HBAs over vfio-user')
    .version(packageVersion(), '-V, --version', 'print the version and exit')
    .showHelpAfterError()
    // Inherited by every subcommand registered below.
    .exitOverride();
  registerServeCommand(program);
  registerSanCommand(program);
  registerLabCommand(program);
  registerVportCommand(program);
  registerHostCommand(program);
  registerCompatCommand(program);
  return program;
}

export interface RunIo {
  stderr: { write(text: string): unknown };
  env: NodeJS.ProcessEnv;
}

/** Runs one command line to its end and returns the exit status (nothing throws out of here). */
export async function run(argv: string[], io: RunIo = { stderr: process.stderr, env: process.env }): Promise<number> {
  try {
    const level = io.env.NPIV_HBA_LOG_LEVEL;
    if (level !== undefined && level !== '') usage(() => checkLogLevel(level, 'NPIV_HBA_LOG_LEVEL'));
    await buildProgram().parseAsync(argv);
  } catch (err) {
    // commander has already printed its message (and the help); --help and --version exit 0.
    if (err instanceof CommanderError) return err.exitCode === 0 ? EXIT_OK : EXIT_USAGE;
    const { text, exitCode } = formatCliError(err, io.env);
    io.stderr.write(text);
    return exitCode;
  }
  return typeof process.exitCode === 'number' ? process.exitCode : EXIT_OK;
}

/** Runs the CLI and leaves its exit status in process.exitCode. */
export async function main(argv: string[]): Promise<void> {
  process.exitCode = await run(argv);
}
