/**
 * npiv-hba command line: one subcommand per job, each in src/cli/<name>.ts.
 */
import { Command } from 'commander';
import { registerCompatCommand } from './cli/compat.js';
import { registerHostCommand } from './cli/host.js';
import { registerLabCommand } from './cli/lab.js';
import { registerSanCommand } from './cli/san.js';
import { registerServeCommand } from './cli/serve.js';
import { registerVportCommand } from './cli/vport.js';

export async function main(argv: string[]): Promise<void> {
  const program = new Command();
  program
    .name('npiv-hba')
    .description('Fibre Channel NPIV vports for KVM guests as emulated QLogic ISP2532 HBAs over vfio-user')
    .showHelpAfterError();
  registerServeCommand(program);
  registerSanCommand(program);
  registerLabCommand(program);
  registerVportCommand(program);
  registerHostCommand(program);
  registerCompatCommand(program);
  await program.parseAsync(argv);
}
