/**
 * A VM's life on one vport HBA, played by the qla2xxx-like guest model: attach over vfio-user as
 * QEMU does, the qla2xxx probe up to LOOP UP, fabric discovery (SNS login, GPN_FT, PLOGI+PRLI),
 * REPORT LUNS, verified I/O at a fixed queue depth; optionally then a link flap caused by someone
 * else (LOOP DOWN, LOOP UP, PORT UPDATE; rediscovery as qla2xxx relogs in) and verified I/O again
 * on the next block range. Optionally, before the flap, a LUN mapped and then unmapped by someone
 * else while the VM runs: the VM waits for REPORTED LUNS DATA HAS CHANGED on its LUN (TEST UNIT
 * READY, as a guest's next command would meet it), finds the new LUN in REPORT LUNS, verifies I/O
 * on it, then waits for the UA of the unmap and checks that REPORT LUNS no longer lists it. Each step is reported as one event, so a harness that cannot share
 * memory with the model (a level-1 guest running it) can follow and assert.
 *
 * Run by `node dist/src/vm-model/main.js` (the level-2 "VM" of the two-level host-backend lab).
 */
import { MBA } from '../isp/fw-constants.js';
import { QlaDriverModel } from './qla-driver.js';
import { runVerifiedIo, type VerifiedIoResult } from './verified-io.js';

export interface VmScenarioOptions {
  socket: string;
  wwpn: bigint;
  wwnn: bigint;
  /** LUN for the I/O; default the first REPORT LUNS lists. */
  lun?: number;
  queueDepth: number;
  /** Blocks (512 bytes) written and verified per I/O phase; phase n uses the n-th such range. */
  blocks: number;
  blocksPerIo: number;
  seed: number;
  /** Wait this long for a link flap after the first I/O phase, then verify I/O again (0: no flap phase). */
  flapWaitMs: number;
  /** A LUN someone maps and later unmaps while the VM runs (after the first I/O phase). */
  lunChange?: { lun: number; waitMs: number };
}

export type VmEvent =
  | { step: 'attached' }
  | { step: 'link-up'; ms: number }
  | { step: 'discovered'; targetPortId: string }
  | { step: 'luns'; luns: number[] }
  | ({ step: 'io'; phase: number; lun: number; startLba: number; blocks: number } & VerifiedIoResult)
  | { step: 'waiting-for-lun-map'; lun: number }
  | { step: 'lun-ua'; lun: number; codes: string[] }
  | ({ step: 'lun-io'; lun: number; startLba: number; blocks: number; ua: string[] } & VerifiedIoResult)
  | { step: 'waiting-for-lun-unmap'; lun: number }
  | { step: 'waiting-for-flap' }
  | { step: 'link-down' }
  | { step: 'done'; ok: boolean }
  | { step: 'error'; message: string };

/** Plays the scenario; every outcome, failures included, arrives through `emit`. Resolves true when all I/O verified. */
export async function runVmScenario(o: VmScenarioOptions, emit: (e: VmEvent) => void): Promise<boolean> {
  let model: QlaDriverModel | null = null;
  let ok = true;
  try {
    model = await QlaDriverModel.attach(o.socket);
    emit({ step: 'attached' });
    const t0 = Date.now();
    await model.probe(o.wwpn, o.wwnn);
    emit({ step: 'link-up', ms: Date.now() - t0 });
    const discover = async (m: QlaDriverModel): Promise<void> => {
      const target = await m.discover();
      emit({ step: 'discovered', targetPortId: target.toString(16).padStart(6, '0') });
    };
    await discover(model);
    const luns = await model.reportLuns();
    emit({ step: 'luns', luns });
    const lun = o.lun ?? luns[0];
    if (lun === undefined) throw new Error('REPORT LUNS listed no LUN');

    const phases = o.flapWaitMs > 0 ? 2 : 1;
    for (let phase = 0; phase < phases; phase++) {
      if (phase > 0 && o.lunChange) {
        const { lun: added, waitMs } = o.lunChange;
        emit({ step: 'waiting-for-lun-map', lun: added });
        emit({ step: 'lun-ua', lun, codes: await waitForLunsChanged(model, lun, waitMs) });
        const withNew = await model.reportLuns();
        emit({ step: 'luns', luns: withNew });
        if (!withNew.includes(added)) throw new Error(`REPORT LUNS after the map does not list LUN ${added}`);
        // A new LU reports its own unit attentions first, as a scan's TEST UNIT READY meets them.
        const ua = await model.clearUnitAttention(added);
        const r = await runVerifiedIo(model, {
          lun: added,
          startLba: 0,
          blocks: o.blocks,
          blocksPerIo: o.blocksPerIo,
          queueDepth: o.queueDepth,
          seed: o.seed + 0x100,
        });
        emit({ step: 'lun-io', lun: added, startLba: 0, blocks: o.blocks, ua, ...r });
        if (r.errors > 0 || r.mismatches > 0) ok = false;
        emit({ step: 'waiting-for-lun-unmap', lun: added });
        emit({ step: 'lun-ua', lun, codes: await waitForLunsChanged(model, lun, waitMs) });
        const without = await model.reportLuns();
        emit({ step: 'luns', luns: without });
        if (without.includes(added)) throw new Error(`REPORT LUNS after the unmap still lists LUN ${added}`);
      }
      if (phase > 0) {
        const mark = model.aenMark;
        emit({ step: 'waiting-for-flap' });
        await model.waitForAen([MBA.LOOP_DOWN], mark, o.flapWaitMs);
        emit({ step: 'link-down' });
        const down = Date.now();
        await model.waitForAen([MBA.LOOP_UP], mark, o.flapWaitMs);
        await model.waitForAen([MBA.PORT_UPDATE], mark, o.flapWaitMs);
        emit({ step: 'link-up', ms: Date.now() - down });
        await discover(model);
      }
      const startLba = phase * o.blocks;
      const r = await runVerifiedIo(model, {
        lun,
        startLba,
        blocks: o.blocks,
        blocksPerIo: o.blocksPerIo,
        queueDepth: o.queueDepth,
        seed: o.seed + phase,
      });
      emit({ step: 'io', phase, lun, startLba, blocks: o.blocks, ...r });
      if (r.errors > 0 || r.mismatches > 0) ok = false;
    }
  } catch (err) {
    ok = false;
    emit({ step: 'error', message: (err as Error).message });
  } finally {
    model?.close();
  }
  emit({ step: 'done', ok });
  return ok;
}

const LUNS_CHANGED = '3f/e';

/**
 * TEST UNIT READY on `lun` every 250 ms until a UNIT ATTENTION REPORTED LUNS DATA HAS CHANGED
 * comes back (other UAs are consumed on the way); resolves with every UA code seen.
 */
async function waitForLunsChanged(model: QlaDriverModel, lun: number, timeoutMs: number): Promise<string[]> {
  const deadline = Date.now() + timeoutMs;
  const seen: string[] = [];
  while (Date.now() < deadline) {
    seen.push(...(await model.clearUnitAttention(lun)));
    if (seen.includes(LUNS_CHANGED)) return seen;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`no REPORTED LUNS DATA HAS CHANGED on LUN ${lun} within ${timeoutMs} ms (seen: ${seen.join(' ')})`);
}
