/**
 * Errors of the N_Port engine: an originated exchange that timed out, lost its link, was
 * rejected (LS_RJT per FC-LS-3, FS_RJT per FC-GS-7), or got a reply that breaks the protocol.
 */
import { type LsRjt, elsCommandName } from '../els.js';

export class ExchangeTimeoutError extends Error {
  constructor(what: string, ms: number) {
    super(`${what}: no reply within ${ms} ms`);
    this.name = 'ExchangeTimeoutError';
  }
}
export class LinkDownError extends Error {
  constructor(reason: string) {
    super(`link down: ${reason}`);
    this.name = 'LinkDownError';
  }
}
export class ElsRejectError extends Error {
  constructor(
    readonly command: number,
    readonly rjt: LsRjt,
  ) {
    super(
      `${elsCommandName(command)} rejected: LS_RJT reason 0x${rjt.reason.toString(16)} explanation 0x${rjt.explanation.toString(16)}`,
    );
    this.name = 'ElsRejectError';
  }
}
export class CtRejectError extends Error {
  constructor(
    readonly command: number,
    readonly reason: number,
    readonly explanation: number,
  ) {
    super(
      `CT 0x${command.toString(16)} rejected: FS_RJT reason 0x${reason.toString(16)} explanation 0x${explanation.toString(16)}`,
    );
    this.name = 'CtRejectError';
  }
}
export class ProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ProtocolError';
  }
}
