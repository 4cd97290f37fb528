/**
 * World Wide Names (FC-FS-3 §19): 64-bit port and node names. Accepted text forms are
 * `0x5001438001234567`, `50:01:43:80:01:23:45:67` and `5001438001234567`; anything else
 * is refused with a message that names the input. Internally a WWN is a bigint.
 */
import { readU64BE, writeU64BE } from './bytes.js';
const HEX16 = /^[0-9a-fA-F]{16}$/;
const COLON = /^([0-9a-fA-F]{2}:){7}[0-9a-fA-F]{2}$/;

export class WwnError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WwnError';
  }
}

export function parseWwn(text: string, what = 'WWN'): bigint {
  const t = text.trim();
  let hex: string | undefined;
  if (COLON.test(t)) hex = t.replaceAll(':', '');
  else if (/^0[xX]/.test(t) && HEX16.test(t.slice(2))) hex = t.slice(2);
  else if (HEX16.test(t)) hex = t;
  if (hex === undefined) {
    throw new WwnError(
      `invalid ${what} '${text}': expected 16 hex digits as 0x5001438001234567, 50:01:43:80:01:23:45:67 or 5001438001234567`,
    );
  }
  const value = BigInt('0x' + hex);
  if (value === 0n) throw new WwnError(`invalid ${what} '${text}': a WWN of zero is not a valid name`);
  return value;
}

/**
 * A port-name/node-name pair written WWPN:WWNN (as Linux's fc_host vport_create takes it), each
 * name in any accepted form: `5001438001234567:5001438001234566`,
 * `0x5001438001234567:0x5001438001234566`, or the two colon forms joined by a colon.
 */
export function parseWwnPair(text: string, what = 'WWPN:WWNN'): { wwpn: bigint; wwnn: bigint } {
  const t = text.trim();
  const found: { wwpn: bigint; wwnn: bigint }[] = [];
  // Each ':' could separate the two names (colon-form names hold ':' themselves): exactly one
  // split may give two valid names.
  for (let i = t.indexOf(':'); i >= 0 && found.length < 2; i = t.indexOf(':', i + 1)) {
    try {
      found.push({ wwpn: parseWwn(t.slice(0, i)), wwnn: parseWwn(t.slice(i + 1)) });
    } catch {
      // not this colon
    }
  }
  if (found.length !== 1) {
    throw new WwnError(
      `invalid ${what} '${text}': expected two WWNs joined by ':', e.g. 5001438001234567:5001438001234566 or 50:01:43:80:01:23:45:67:50:01:43:80:01:23:45:66`,
    );
  }
  return found[0]!;
}

/** Canonical colon form, lower case: 50:01:43:80:01:23:45:67. */
export function formatWwn(wwn: bigint): string {
  const hex = wwn.toString(16).padStart(16, '0');
  return hex.match(/../g)!.join(':');
}

/** 0x-prefixed form as Linux sysfs shows it (fc_host/port_name): 0x5001438001234567. */
export function formatWwnSysfs(wwn: bigint): string {
  return '0x' + wwn.toString(16).padStart(16, '0');
}

export function wwnToBytes(wwn: bigint): Uint8Array {
  const out = new Uint8Array(8);
  writeU64BE(out, 0, wwn);
  return out;
}

export function wwnFromBytes(bytes: Uint8Array, offset = 0): bigint {
  if (offset < 0 || offset + 8 > bytes.length) throw new WwnError('WWN field runs past the end of its buffer');
  return readU64BE(bytes, offset);
}
