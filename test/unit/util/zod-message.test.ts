/**
 * Validator problems of SAN control requests in the command's own words: the command's needs
 * and what is missing, the valid commands for an unknown one, the valid values of an enum, the
 * offending value of a number that is not one.
 */
import { describe, expect, it } from 'vitest';
import { ControlRequestSchema, handleControlLine } from '../../../src/san/control.js';
import type { San } from '../../../src/san/san.js';
import { describeVariant, requestVariants } from '../../../src/util/zod-message.js';

// Requests that fail validation never reach the SAN.
const noSan = {} as San;
const answer = async (request: object): Promise<string> => {
  const res = await handleControlLine(noSan, JSON.stringify(request));
  expect(res.ok).toBe(false);
  return res.error ?? '';
};

describe('SAN control request errors', () => {
  it('lists what map-lun needs and what is missing', async () => {
    expect(await answer({ cmd: 'map-lun', array: 'array1' })).toBe(
      'map-lun needs array, hostGroup, lun, volume (missing: hostGroup, lun, volume)',
    );
  });

  it('names optional arguments separately', async () => {
    expect(await answer({ cmd: 'add-volume', array: 'a' })).toBe(
      'add-volume needs array, name, size; optional: file, adopt, blockSize (missing: name, size)',
    );
  });

  it('an unknown or absent command lists the valid ones', async () => {
    const unknown = await answer({ cmd: 'mapp-lun' });
    expect(unknown).toMatch(/^unknown command 'mapp-lun'; valid commands: status, add-volume, /);
    expect(unknown).toContain('fault-clear');
    expect(await answer({ array: 'a' })).toMatch(/^no command given; valid commands: status, /);
  });

  it('a wrong value names the argument, the value and the valid values', async () => {
    expect(await answer({ cmd: 'zone-default', policy: 'maybe' })).toBe("policy: 'maybe' is not one of allow, deny");
    expect(await answer({ cmd: 'map-lun', array: 'a', hostGroup: 'h', lun: 'x', volume: 'v' })).toBe(
      "lun: 'x' is not a number",
    );
    expect(await answer({ cmd: 'map-lun', array: 'a', hostGroup: 'h', lun: '99999', volume: '' })).toBe(
      "lun: '99999' is above the maximum 16383; volume: must not be empty",
    );
  });

  it('every command of the schema is described, status with no arguments', () => {
    const variants = requestVariants(ControlRequestSchema, 'cmd');
    expect(variants.length).toBe(ControlRequestSchema.options.length);
    expect(describeVariant(variants.find((v) => v.name === 'status')!)).toBe('status takes no arguments');
    expect(describeVariant(variants.find((v) => v.name === 'zoneset-activate')!)).toBe('zoneset-activate needs name');
  });
});
