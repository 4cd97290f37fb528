/**
 * Guest errors are logged with a rate limit (src/isp/guest-error-log.ts): a guest that loops an
 * invalid command gets its error every time, but the log gets one record per event name and
 * period, the next one saying how many were held back.
 */
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { EntryStatus, IocbHeader, IOCB_SIZE } from '../../../assembly/shared/iocb.js';
import { GUEST_ERROR_LOG_PERIOD_MS, RateLimitedWarnings } from '../../../src/isp/guest-error-log.js';
import { MBC, MBS } from '../../../src/isp/fw-constants.js';
import { HCCRX, REG } from '../../../src/isp/registers.js';
import { le32, Rig } from './helpers.js';

const N = 10_000;

function capture() {
  const records: Record<string, unknown>[] = [];
  const log = pino({ level: 'warn', base: null }, { write: (line: string) => void records.push(JSON.parse(line)) });
  return { log, records };
}

describe('guest-error log rate limit', () => {
  it(`${N} mailbox commands the ROM does not take: each answered MBS_INVALID_COMMAND, one log record`, () => {
    const { log, records } = capture();
    let t = 0;
    const rig = new Rig([], undefined, undefined, undefined, log, () => t);
    // RISC out of reset, ROM code running, no firmware executed yet.
    rig.w32(REG.CTRL_STATUS, 0x10031);
    rig.w32(REG.HCCR, HCCRX.SET_RISC_RESET << 28);
    rig.w32(REG.HCCR, HCCRX.REL_RISC_PAUSE << 28);
    rig.w32(REG.HCCR, HCCRX.CLR_RISC_RESET << 28);
    const statuses = new Map<number, number>();
    const issue = () => {
      rig.isp.mmioWrite(REG.MAILBOX0, 2, MBC.GET_FIRMWARE_STATE);
      rig.w32(REG.HCCR, HCCRX.SET_HOST_INT << 28);
      rig.sched.runDeferred();
      const hs = rig.r32(REG.HOST_STATUS);
      rig.w32(REG.HCCR, HCCRX.CLR_RISC_INT << 28);
      const mb0 = hs & 0x8000 ? hs >>> 16 : -1;
      statuses.set(mb0, (statuses.get(mb0) ?? 0) + 1);
    };
    for (let i = 0; i < N; i++) issue();
    expect([...statuses]).toEqual([[MBS.INVALID_COMMAND, N]]);
    const logged = () => records.filter((r) => r.event === 'mbox_err_needs_firmware');
    expect(logged()).toHaveLength(1);
    expect(logged()[0]).not.toHaveProperty('suppressed');

    // A period later the next occurrence is logged with the count held back.
    t += GUEST_ERROR_LOG_PERIOD_MS;
    issue();
    expect(logged()).toHaveLength(2);
    expect(logged()[1]).toMatchObject({ suppressed: N - 1 });
    expect(records.length).toBeLessThanOrEqual(3);
  });

  it(`${N} request-ring entries of an unknown type: each completed with entry_status, a bounded log`, async () => {
    const { log, records } = capture();
    const rig = new Rig([], undefined, undefined, undefined, log, () => 0);
    await rig.bringUp();
    const before = records.length;
    const declined = new Set<number>();
    const BATCH = 32; // below the 64-entry response ring
    for (let base = 0; base < N; base += BATCH) {
      for (let i = base; i < Math.min(base + BATCH, N); i++) {
        const e = new Uint8Array(IOCB_SIZE);
        e[IocbHeader.ENTRY_TYPE] = 0x7e; // no such IOCB type
        e[IocbHeader.ENTRY_COUNT] = 1;
        new DataView(e.buffer).setUint32(IocbHeader.HANDLE, 0x10000 + i, true);
        rig.postRequest(e);
      }
      await rig.drainEvents();
      for (const r of rig.takeResponses()) {
        if (r[IocbHeader.ENTRY_STATUS]! & EntryStatus.RF_INV_E_TYPE) declined.add(le32(r, IocbHeader.HANDLE) - 0x10000);
      }
    }
    expect(declined.size).toBe(N);
    // One record per event name (the clock stands still), however many entries.
    const added = records.slice(before);
    expect(added.length).toBeGreaterThan(0);
    expect(added.length).toBeLessThanOrEqual(3);
    expect(new Set(added.map((r) => r.event)).size).toBe(added.length);
  });
});

describe('RateLimitedWarnings', () => {
  it('limits each event name on its own and keeps the map bounded', () => {
    const { log, records } = capture();
    const w = new RateLimitedWarnings(log, 100, () => 0);
    for (let i = 0; i < 1000; i++) {
      w.warn('a_err_x', { i });
      w.warn('b_err_y', { i });
    }
    expect(records.map((r) => [r.event, r.i])).toEqual([
      ['a_err_x', 0],
      ['b_err_y', 0],
    ]);
    // Past the per-name cap all new names share one limiter.
    for (let i = 0; i < 1000; i++) w.warn(`name_err_${i}`, {});
    expect(records.length).toBeLessThanOrEqual(2 + 256);
  });
});
