/**
 * One logical unit of the array (a volume as SCSI sees it): its block device, its unit attention
 * conditions per I_T nexus, its persistent reservations and its started/stopped state.
 * PR state is in memory (it survives link flaps and logouts) and, while APTPL is set, also in a
 * file next to the backing file so it survives restarts.
 */
import type { BlockDevice } from './block-device.js';
import { Asc } from './constants.js';
import { PersistentReservations, type TargetPortRef } from './persistent-reservations.js';
import { UnitAttentions } from './unit-attention.js';

export class LogicalUnit {
  readonly ua = new UnitAttentions();
  readonly pr: PersistentReservations;
  /** START STOP UNIT with START=0 stops the unit: media access then reports NOT READY. */
  stopped = false;

  private constructor(
    readonly device: BlockDevice,
    targetPorts: (() => readonly TargetPortRef[]) | null,
  ) {
    this.pr = new PersistentReservations(
      this.ua,
      device.persistsReservations ? (json) => device.savePrState(json) : null,
      targetPorts,
    );
  }

  /** `targetPorts`: the array's ports, so that PR registrations can cover all of them (ALL_TG_PTS). */
  static async create(
    device: BlockDevice,
    targetPorts: (() => readonly TargetPortRef[]) | null = null,
  ): Promise<LogicalUnit> {
    const lu = new LogicalUnit(device, targetPorts);
    const saved = await device.loadPrState();
    if (saved !== null) {
      try {
        lu.pr.restore(saved);
      } catch (e) {
        throw new Error(`volume '${device.name}': ${(e as Error).message}`);
      }
    }
    return lu;
  }

  /** The volume's capacity changed: every nexus that knows this unit is told (SBC-3 §4.8). */
  capacityChanged(): void {
    this.ua.establishForAll(Asc.CAPACITY_DATA_HAS_CHANGED);
  }
}
