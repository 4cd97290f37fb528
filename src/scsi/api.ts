/**
 * Contract between the FC transport (target-port.ts, owned by the fabric side) and the SCSI target
 * semantics (src/scsi/**). Modelled on SAM-5 / SPC-4 / SBC-3 as carried by FCP-4.
 */
import type { DataDirection, TaskManagementFunction } from './sam.js';

/**
 * I_T nexus (SAM-5): the initiator port name + the target port it came in on; SPC-4 keys
 * reservations and unit attentions by it.
 */
export interface ItNexus {
  initiatorWwpn: bigint;
  targetWwpn: bigint;
  relativeTargetPortId: number;
}
export interface ScsiRequest {
  nexus: ItNexus;
  lun: Uint8Array; // 8-byte FCP LUN field as sent (SAM LUN structure)
  cdb: Uint8Array; // 16 bytes from FCP_CMND (additional CDB not supported -> error)
  direction: DataDirection;
  expectedLength: number; // FCP_DL
  dataOut: Uint8Array | null; // the write data received (length <= expectedLength)
  taskTag: number; // the exchange (OX_ID) for aborts
}
export interface ScsiResponse {
  status: number; // SAM status: 0 GOOD, 2 CHECK CONDITION, 0x18 RESERVATION CONFLICT, 8 BUSY...
  sense: Uint8Array | null; // fixed-format sense data when status is CHECK CONDITION
  dataIn: Uint8Array | null; // read data (the transport truncates to expectedLength and reports residuals)
}
/** One target port's view of an array. */
export interface ScsiTargetPort {
  readonly wwpn: bigint;
  readonly wwnn: bigint;
  readonly relativePortId: number;
  execute(req: ScsiRequest): Promise<ScsiResponse>;
  /** Returns an FCP_RSP_INFO response code: 0 complete, 4 rejected/not supported, 5 failed. */
  taskManagement(nexus: ItNexus, lun: Uint8Array, fn: TaskManagementFunction, taskTag?: number): Promise<number>;
  /** An initiator logged out / its link dropped (PR registrations persist; task state does not). */
  nexusLost(nexus: ItNexus): void;
}
