/**
 * `npiv-hba serve`: serve one vport HBA (an emulated ISP2532) on a vfio-user socket until SIGTERM or
 * SIGINT, then stop cleanly and remove the socket.
 */
import type { Command } from 'commander';
import { VportHba } from '../hba.js';
import { logger, setLogLevel } from '../util/log.js';
import { formatWwn, parseWwn } from '../util/wwn.js';

export interface ServeOptions {
  socket: string;
  wwpn: string;
  wwnn: string;
  interrupts?: string;
  logLevel?: string;
}

const INTERRUPT_CHOICES = ['msix', 'msi', 'intx'] as const;

export function registerServeCommand(program: Command): void {
  program
    .command('serve')
    .description('serve one emulated QLogic ISP2532 HBA (one NPIV vport) to QEMU over vfio-user')
    .requiredOption('--socket <path>', 'Unix socket path QEMU connects to')
    .requiredOption('--wwpn <wwpn>', 'vport port name, e.g. 50:01:43:80:01:23:45:67')
    .requiredOption('--wwnn <wwnn>', 'vport node name')
    .option('--interrupts <kind>', `interrupt capabilities offered to the guest: ${INTERRUPT_CHOICES.join(', ')}`, 'msix')
    .option('--log-level <level>', 'pino log level (trace, debug, info, warn, error)')
    .action(async (opts: ServeOptions) => {
      await serve(opts);
    });
}

export async function serve(opts: ServeOptions): Promise<void> {
  if (opts.logLevel) setLogLevel(opts.logLevel);
  const wwpn = parseWwn(opts.wwpn, 'WWPN');
  const wwnn = parseWwn(opts.wwnn, 'WWNN');
  const interrupts = opts.interrupts ?? 'msix';
  if (!(INTERRUPT_CHOICES as readonly string[]).includes(interrupts)) {
    throw new Error(`invalid --interrupts '${interrupts}': expected one of ${INTERRUPT_CHOICES.join(', ')}`);
  }
  const log = logger('hba', { vport: formatWwn(wwpn) });
  const hba = new VportHba({
    socketPath: opts.socket,
    wwpn,
    wwnn,
    fabric: null,
    interrupts: interrupts as (typeof INTERRUPT_CHOICES)[number],
    log,
  });
  hba.start();
  log.info({ event: 'listening', socket: opts.socket, wwpn: formatWwn(wwpn), wwnn: formatWwn(wwnn) }, 'vfio-user server listening');
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      log.info({ event: 'stopping', signal }, 'stopping');
      process.off('SIGTERM', onTerm);
      process.off('SIGINT', onInt);
      hba.close();
      resolve();
    };
    const onTerm = () => stop('SIGTERM');
    const onInt = () => stop('SIGINT');
    process.on('SIGTERM', onTerm);
    process.on('SIGINT', onInt);
  });
}
