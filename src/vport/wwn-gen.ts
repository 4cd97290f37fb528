/**
 * WWN generation for vports (FC-FS-3 §19.2 name formats) from a configurable NAA prefix.
 *
 * A prefix is the leading hex digits of the WWPN (colons and 0x allowed); the rest is generated.
 *
 *   NAA 5, IEEE Registered:  5 OOOOOO VVVVVVVVV     (4-bit NAA, 24-bit OUI, 36-bit vendor field)
 *     prefix >= 7 digits ("5" + OUI), e.g. "5001438" -> 50:01:43:8x:xx:xx:xx:xx.
 *     Generated WWPNs have bit 0 set; the WWNN is the WWPN with bit 0 clear
 *     (50:01:43:80:01:23:45:67 / 50:01:43:80:01:23:45:66).
 *   NAA 2, IEEE Extended:    2 PPP OOOOOO SSSSSS    (4-bit NAA, 12-bit vendor field, 48-bit IEEE MAC)
 *     prefix >= 10 digits ("2" + vendor field + OUI) with a non-zero vendor field, e.g. "2100001b32"
 *     -> 21:00:00:1b:32:xx:xx:xx. The WWNN is the WWPN with the vendor field zero (20:00:00:1b:32:...),
 *     the convention QLogic HBAs follow for port and node names.
 *
 * A prefix may be at most 15 digits, so at least one digit is generated. Candidates are drawn at
 * random a few times, then scanned in order from a random start; a candidate is taken only if neither
 * its WWPN nor its WWNN equals any name already in use. Each name in use rules out at most one
 * candidate, so scanning `inUse.size + 1` candidates always finds a free one unless the prefix's
 * space is full — the loop is bounded and generation never collides.
 */
import { randomBytes } from 'node:crypto';
import { VportError, VportUsageError } from './errors.js';

export const WWN_HEX_DIGITS = 16;
const NAA_IEEE_EXTENDED = 0x2;
const NAA_IEEE_REGISTERED = 0x5;
/** NAA nibble + 24-bit OUI */
const NAA5_MIN_PREFIX_DIGITS = 7;
/** NAA nibble + 12-bit vendor field + 24-bit OUI */
const NAA2_MIN_PREFIX_DIGITS = 10;
const MAX_PREFIX_DIGITS = WWN_HEX_DIGITS - 1;
const NAA_SHIFT = 60n;
/** NAA 2: the 12-bit vendor-specific field sits in bits 59..48 */
const NAA2_VENDOR_FIELD_MASK = 0xfffn << 48n;
const NAA5_NODE_BIT = 1n;
/** random candidates tried before the ordered scan */
const RANDOM_TRIES = 16;

/**
 * The prefix used when neither --naa-prefix nor NPIV_HBA_NAA_PREFIX is given: NAA 5 with the
 * Qumranet/KVM OUI 00:1a:4a, the space libvirt generates its vHBA WWNs in, so that generated names
 * never collide in namespace with a real HBA vendor's (a site with its own OUI sets the prefix).
 */
export const DEFAULT_NAA_PREFIX = '5001a4a';

export type RandomBits = (bits: number) => bigint;

export interface NaaPrefix {
  naa: 2 | 5;
  /** the prefix digits */
  digits: string;
  /** prefix value shifted into place (generated bits zero) */
  base: bigint;
  /** number of generated bits per WWPN (NAA 5 spends bit 0 on the port/node distinction) */
  freeBits: number;
}

export function parseNaaPrefix(text: string): NaaPrefix {
  const digits = text.trim().replace(/^0x/i, '').replaceAll(':', '').toLowerCase();
  if (!/^[0-9a-f]+$/.test(digits))
    throw new VportUsageError(`invalid NAA prefix '${text}': expected hex digits such as 5001438`);
  if (digits.length > MAX_PREFIX_DIGITS) {
    throw new VportUsageError(
      `invalid NAA prefix '${text}': at most ${MAX_PREFIX_DIGITS} hex digits (at least one must be generated)`,
    );
  }
  const naa = parseInt(digits[0]!, 16);
  const generatedDigits = WWN_HEX_DIGITS - digits.length;
  const base = BigInt('0x' + digits) << BigInt(4 * generatedDigits);
  if (naa === NAA_IEEE_REGISTERED) {
    if (digits.length < NAA5_MIN_PREFIX_DIGITS) {
      throw new VportUsageError(
        `invalid NAA prefix '${text}': an NAA 5 prefix needs ${NAA5_MIN_PREFIX_DIGITS} digits or more ("5" and a 24-bit OUI)`,
      );
    }
    return { naa: 5, digits, base, freeBits: 4 * generatedDigits - 1 };
  }
  if (naa === NAA_IEEE_EXTENDED) {
    if (digits.length < NAA2_MIN_PREFIX_DIGITS) {
      throw new VportUsageError(
        `invalid NAA prefix '${text}': an NAA 2 prefix needs ${NAA2_MIN_PREFIX_DIGITS} digits or more ("2", a 12-bit vendor field and a 24-bit OUI)`,
      );
    }
    if ((base & NAA2_VENDOR_FIELD_MASK) === 0n) {
      throw new VportUsageError(
        `invalid NAA prefix '${text}': the NAA 2 vendor field (digits 2-4) must be non-zero; zero is the node name's`,
      );
    }
    return { naa: 2, digits, base, freeBits: 4 * generatedDigits };
  }
  throw new VportUsageError(`invalid NAA prefix '${text}': must start with 5 (IEEE Registered) or 2 (IEEE Extended)`);
}

/**
 * The WWNN that goes with a WWPN when none is given: NAA 2 names with a non-zero vendor field get
 * it cleared; every other name gets bit 0 flipped.
 */
export function deriveWwnn(wwpn: bigint): bigint {
  if (wwpn >> NAA_SHIFT === BigInt(NAA_IEEE_EXTENDED) && (wwpn & NAA2_VENDOR_FIELD_MASK) !== 0n) {
    return wwpn & ~NAA2_VENDOR_FIELD_MASK;
  }
  return wwpn ^ NAA5_NODE_BIT;
}

function candidate(prefix: NaaPrefix, k: bigint): { wwpn: bigint; wwnn: bigint } {
  const wwpn = prefix.naa === 5 ? prefix.base | (k << 1n) | NAA5_NODE_BIT : prefix.base | k;
  return { wwpn, wwnn: deriveWwnn(wwpn) };
}

export const cryptoRandomBits: RandomBits = (bits) => {
  const bytes = randomBytes(Math.ceil(bits / 8));
  return BigInt('0x' + bytes.toString('hex')) & ((1n << BigInt(bits)) - 1n);
};

/** A WWPN/WWNN pair under `prefix` whose names are both absent from `inUse`. */
export function generateWwnPair(
  prefix: NaaPrefix,
  inUse: ReadonlySet<bigint>,
  random: RandomBits = cryptoRandomBits,
): { wwpn: bigint; wwnn: bigint } {
  const space = 1n << BigInt(prefix.freeBits);
  const isFree = (pair: { wwpn: bigint; wwnn: bigint }) => !inUse.has(pair.wwpn) && !inUse.has(pair.wwnn);
  for (let i = 0; i < RANDOM_TRIES; i++) {
    const pair = candidate(prefix, random(prefix.freeBits) % space);
    if (isFree(pair)) return pair;
  }
  const start = random(prefix.freeBits) % space;
  const limit = BigInt(inUse.size) + 1n < space ? BigInt(inUse.size) + 1n : space;
  for (let i = 0n; i < limit; i++) {
    const pair = candidate(prefix, (start + i) % space);
    if (isFree(pair)) return pair;
  }
  throw new VportError(
    `no free WWPN left under NAA prefix ${prefix.digits} (${space} names, all in use); choose a longer-tailed prefix or give --wwpn`,
  );
}
