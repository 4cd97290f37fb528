/**
 * Errors of vport management. Every refusal carries the exit status the CLI returns:
 * 1 = the operation was refused or failed (duplicate WWPN, unknown UUID, SAN unreachable, ...),
 * 2 = the command line itself is wrong (malformed WWN, UUID, size, unknown option).
 */
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

export class VportError extends Error {
  constructor(
    message: string,
    readonly exitCode: typeof EXIT_FAILURE | typeof EXIT_USAGE = EXIT_FAILURE,
  ) {
    super(message);
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
