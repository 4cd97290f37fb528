/** What a fuzz target gives the engine (test/fuzz/engine/loop.ts). */

export type FindingKind = 'crash' | 'out-of-bounds' | 'hang';

/**
 * Thrown by a target's oracle: a broken invariant (canary overwritten, implementations disagree,
 * an fd leaked...). Any other exception escaping `run` is a crash too, unless the target caught
 * it as one of the code's own expected error types.
 */
export class FuzzFinding extends Error {
  constructor(
    readonly kind: Exclude<FindingKind, 'hang'>,
    message: string,
  ) {
    super(message);
    this.name = 'FuzzFinding';
  }
}

export interface FuzzTarget {
  readonly name: string;
  /** longest input the mutator produces */
  readonly maxLen: number;
  /** starting inputs (well-formed traffic, so mutations start deep in the code) */
  seeds(): Uint8Array[];
  /** magic values of the input format, for the mutator */
  readonly dictionary: readonly Uint8Array[];
  /** runs one input from a clean state; throws on a finding */
  run(input: Uint8Array): void | Promise<void>;
  close?(): void | Promise<void>;
}

/** Static facts the runner needs before a target is built (the watchdog runs in another thread). */
export interface TargetInfo {
  name: string;
  description: string;
  /** per-input time limit: longer is a hang */
  timeoutMs: number;
  create(): Promise<FuzzTarget>;
}

export function u8(...bytes: number[]): Uint8Array {
  return Uint8Array.from(bytes);
}

export function le32(v: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, v >>> 0, true);
  return b;
}

export function le16(v: number): Uint8Array {
  const b = new Uint8Array(2);
  new DataView(b.buffer).setUint16(0, v & 0xffff, true);
  return b;
}

export function be16(v: number): Uint8Array {
  return u8((v >>> 8) & 0xff, v & 0xff);
}
