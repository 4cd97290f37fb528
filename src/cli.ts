/**
 * npiv-hba command line. Subcommands are added by their modules; see README.md.
 */
import { Command } from 'commander';

export async function main(argv: string[]): Promise<void> {
  const program = new Command();
  program.name('npiv-hba').description('Fibre Channel NPIV vports for KVM guests as emulated QLogic ISP2532 HBAs over vfio-user');
  await program.parseAsync(argv);
}
