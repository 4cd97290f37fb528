/**
 * Validator problems in the words of the command that was given, instead of zod's own
 * ("Invalid discriminator value. Expected 'status' | ...", "expected number, received NaN"):
 *
 *   unknown command 'mapp-lun'; valid commands: status, add-volume, ...
 *   map-lun needs array, hostGroup, lun, volume (missing: hostGroup, volume)
 *   lun: 'x' is not a number
 *   policy: 'maybe' is not one of allow, deny
 *
 * For a request schema that is a discriminated union of objects (one object per command).
 */
import type { z } from 'zod';

type Issue = z.core.$ZodIssue;

interface Variant {
  name: string;
  required: string[];
  optional: string[];
}

/** The commands of a discriminated union and the fields each needs or accepts. */
export function requestVariants(schema: z.ZodDiscriminatedUnion, discriminator: string): Variant[] {
  const variants: Variant[] = [];
  for (const option of schema.options as unknown as z.ZodObject[]) {
    const shape = option.shape as Record<string, z.ZodType>;
    const tag = shape[discriminator] as unknown as { value?: unknown } | undefined;
    if (typeof tag?.value !== 'string') continue;
    const keys = Object.keys(shape).filter((k) => k !== discriminator);
    variants.push({
      name: tag.value,
      required: keys.filter((k) => !shape[k]!.safeParse(undefined).success),
      optional: keys.filter((k) => shape[k]!.safeParse(undefined).success),
    });
  }
  return variants;
}

/** What a command takes: "map-lun needs array, hostGroup, lun, volume; optional: ..." */
export function describeVariant(v: Variant): string {
  const needs = v.required.length > 0 ? `${v.name} needs ${v.required.join(', ')}` : `${v.name} takes no arguments`;
  return v.optional.length > 0 ? `${needs}; optional: ${v.optional.join(', ')}` : needs;
}

const show = (value: unknown): string =>
  typeof value === 'string' ? `'${value}'` : (JSON.stringify(value) ?? 'nothing');

function valueAt(input: unknown, path: readonly PropertyKey[]): unknown {
  let v: unknown = input;
  for (const key of path) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<PropertyKey, unknown>)[key];
  }
  return v;
}

/** One issue in plain words, with the offending value and the valid values where known. */
export function describeIssue(issue: Issue, input: unknown): string {
  const path = issue.path.map(String).join('.');
  const value = valueAt(input, issue.path);
  const at = path === '' ? '' : `${path}: `;
  switch (issue.code) {
    case 'invalid_type':
      if (value === undefined) return `${at}missing (expected ${issue.expected})`;
      if (issue.expected === 'number') return `${at}${show(value)} is not a number`;
      return `${at}${show(value)} is not a${/^[aeiou]/.test(issue.expected) ? 'n' : ''} ${issue.expected}`;
    case 'invalid_value':
      return `${at}${show(value)} is not one of ${issue.values.map((v) => String(v)).join(', ')}`;
    case 'too_small':
      if (issue.origin === 'string') return `${at}must not be empty`;
      return `${at}${show(value)} is below the minimum ${String(issue.minimum)}`;
    case 'too_big':
      return `${at}${show(value)} is above the maximum ${String(issue.maximum)}`;
    case 'unrecognized_keys':
      return `${at}unknown ${issue.keys.length > 1 ? 'fields' : 'field'} ${issue.keys.join(', ')}`;
    default:
      return `${at}${issue.message}`;
  }
}

/**
 * The problems of one request against a command union, as one line: an unknown command with the
 * valid ones, or the command's needs with what is missing, then each remaining problem.
 */
export function describeRequestError(
  schema: z.ZodDiscriminatedUnion,
  discriminator: string,
  input: unknown,
  issues: readonly Issue[],
  noun = 'command',
): string {
  const variants = requestVariants(schema, discriminator);
  const given = valueAt(input, [discriminator]);
  const variant = variants.find((v) => v.name === given);
  if (variant === undefined) {
    const valid = `valid ${noun}s: ${variants.map((v) => v.name).join(', ')}`;
    return given === undefined ? `no ${noun} given; ${valid}` : `unknown ${noun} ${show(given)}; ${valid}`;
  }
  const missing = variant.required.filter((k) => valueAt(input, [k]) === undefined);
  const parts: string[] = [];
  if (missing.length > 0) parts.push(`${describeVariant(variant)} (missing: ${missing.join(', ')})`);
  for (const issue of issues) {
    const top = issue.path[0];
    if (typeof top === 'string' && missing.includes(top) && issue.path.length === 1) continue;
    parts.push(describeIssue(issue, input));
  }
  return parts.join('; ');
}
