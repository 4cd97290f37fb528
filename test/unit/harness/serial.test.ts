import { describe, expect, it } from 'vitest';
import { splitSerialLine } from '../../../src/harness/guest.js';

describe('serial console lines shared by the guest script and the kernel', () => {
  it('leaves ordinary lines alone', () => {
    expect(splitSerialLine('GUEST:ISP_RESET2 0')).toEqual(['GUEST:ISP_RESET2 0']);
    expect(splitSerialLine('[   36.661339] qla2xxx [0000:01:00.0]-883a:0: fw_state=3')).toEqual([
      '[   36.661339] qla2xxx [0000:01:00.0]-883a:0: fw_state=3',
    ]);
    expect(splitSerialLine('GUEST:DMESG [  346.179515] qla2xxx RSCN database changed')).toEqual([
      'GUEST:DMESG [  346.179515] qla2xxx RSCN database changed',
    ]);
    expect(splitSerialLine('')).toEqual(['']);
  });

  it('splits a kernel message that landed inside a tagged line (seen in isp-eh under load)', () => {
    expect(
      splitSerialLine(
        'GUEST:ISP_RESET1 0[   36.661339] qla2xxx [0000:01:00.0]-883a:0: fw_state=3 (0, 0, 0, 0 0) curr time=fffefee0.',
      ),
    ).toEqual([
      'GUEST:ISP_RESET1 0',
      '[   36.661339] qla2xxx [0000:01:00.0]-883a:0: fw_state=3 (0, 0, 0, 0 0) curr time=fffefee0.',
    ]);
    expect(splitSerialLine('GUEST:DMESG [  1.000000] a[  2.000000] b')).toEqual([
      'GUEST:DMESG [  1.000000] a',
      '[  2.000000] b',
    ]);
  });

  it('starts a new line where a tag appears inside a kernel line', () => {
    expect(splitSerialLine('[    9.542701] sd 0:0:0:0: Power-on GUEST:DISK sda 262144')).toEqual([
      '[    9.542701] sd 0:0:0:0: Power-on ',
      'GUEST:DISK sda 262144',
    ]);
    expect(splitSerialLine('GUEST:A 1GUEST:B 2')).toEqual(['GUEST:A 1', 'GUEST:B 2']);
  });
});
