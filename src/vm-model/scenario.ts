/**
 * A VM's life on one vport HBA, played by the qla2xxx-like guest model: attach over vfio-user as
 * QEMU does, the qla2xxx probe up to LOOP UP, fabric discovery (SNS login, GPN_FT, PLOGI+PRLI),
 * REPORT LUNS, verified I/O at a fixed queue depth; optionally then a link flap caused by someone
 * else (LOOP DOWN, LOOP UP, PORT UPDATE; rediscovery as qla2xxx relogs in) and verified I/O again
 * on the next block range. Each step is reported as one event, so a harness that cannot share
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
}

export type VmEvent =
  | { step: 'attached' }
  | { step: 'link-up'; ms: number }
  | { step: 'discovered'; targetPortId: string }
  | { step: 'luns'; luns: number[] }
  | ({ step: 'io'; phase: number; lun: number; startLba: number; blocks: number } & VerifiedIoResult)
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
