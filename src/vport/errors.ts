/**
 * Errors of vport management. Every refusal carries the exit status the CLI returns
 * (src/cli/errors.ts): 1 = the operation was refused or failed (duplicate WWPN, unknown UUID, SAN
 * unreachable, ...), 2 = the command line itself is wrong (malformed WWN, UUID, size, unknown
 * option), 3 = the vport asked about is not running.
 */
import { CliError, EXIT_FAILURE, EXIT_NOT_RUNNING, EXIT_USAGE, type ExitCode } from '../cli/errors.js';

export { EXIT_FAILURE, EXIT_NOT_RUNNING, EXIT_USAGE };

export class VportError extends CliError {
  constructor(message: string, exitCode: ExitCode = EXIT_FAILURE, hint?: string) {
    super(message, { exitCode, ...(hint !== undefined ? { hint } : {}) });
    this.name = 'VportError';
  }
}

/** A malformed argument: exit status 2. */
export class VportUsageError extends VportError {
  constructor(message: string) {
    super(message, EXIT_USAGE);
    this.name = 'VportUsageError';
  }
}

/** The vport asked about does not run (stats, qemu-args, status): exit status 3. */
export class VportNotRunningError extends VportError {
  constructor(message: string, hint?: string) {
    super(message, EXIT_NOT_RUNNING, hint);
    this.name = 'VportNotRunningError';
  }
}
