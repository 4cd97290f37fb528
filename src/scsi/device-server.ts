/**
 * The device server of one storage array (SAM-5 §4.5): routes each command arriving on one of the
 * array's target ports to the logical unit masked to that initiator at that LUN, and implements
 * the target-wide parts — REPORT LUNS, REQUEST SENSE, unit attention reporting, reservation
 * checks, task tracking and task management functions.
 *
 * Order of checks for a command (SPC-4 §5.14, SAM-5 §5.13):
 *   unknown opcode → no LU at that LUN (except INQUIRY/REPORT LUNS/REQUEST SENSE) → NACA
 *   → unit attention → reservation conflict → not ready (stopped) → the command's own checks.
 * Aborted tasks end with TASK ABORTED status (the control mode page reports TAS=1); the
 * transport decides whether that status is sent.
 */
import type { ItNexus, ScsiRequest, ScsiResponse, ScsiTargetPort } from './api.js';
import { clampToAllocation, decodeLun, encodeLun, isReportLunsWlun, REPORT_LUNS_WLUN } from './cdb.js';
import { readU32BE, writeU32BE } from '../util/bytes.js';
import { Asc, cdbLengthForOpcode, Opcode, SenseKey, ServiceAction, type AdditionalSense } from './constants.js';
import { Status, type TaskManagementFunction } from './sam.js';
import { inquiry, type PortIdentity, type ProductIdentity } from './inquiry.js';
import { modeSelect, modeSense } from './mode-pages.js';
import { reportTargetPortGroups } from './alua.js';
import { reportSupportedOperationCodes, type OperationDescriptor } from './supported-opcodes.js';
import {
  readCapacity10,
  readCapacity16,
  readWrite,
  synchronizeCache,
  TaskAbortedError,
  unmap,
  verify,
  writeSame,
  type IoContext,
} from './block-commands.js';
import type { LogicalUnit } from './logical-unit.js';
import { nexusKey, type NexusKey } from './nexus.js';
import {
  buildFixedSense,
  checkCondition,
  CommandError,
  invalidFieldInCdb,
  invalidOpcode,
  type SenseData,
} from './sense.js';
import type { Logger } from '../util/log.js';

/** FCP-4 Table 25 FCP_RSP_INFO RSP_CODE values returned by taskManagement. */
export const TmfResponse = { COMPLETE: 0, NOT_SUPPORTED: 4, FAILED: 5, INCORRECT_LUN: 9 } as const;

/** LUN masking as the device server sees it (implemented by the storage array). */
export interface LunMapping {
  /** The logical units this initiator may access, by LUN number. */
  lunsFor(initiatorWwpn: bigint): ReadonlyMap<number, LogicalUnit>;
  /** Every logical unit of the array (for target reset and nexus loss). */
  allUnits(): Iterable<LogicalUnit>;
  /**
   * Called after anything that may have changed logical-unit state (any command but READ/WRITE,
   * task management, nexus loss); a promise means the change is not complete until it resolves
   * (data-path grants being revoked, src/san/data-path.ts), and the command's response waits.
   */
  stateChanged?(): Promise<void> | null;
}

interface Task {
  nexus: NexusKey;
  lu: LogicalUnit | null;
  tag: number;
  aborted: boolean;
}

type Access = 'none' | 'read' | 'write';

interface CommandContext extends IoContext {
  nexus: NexusKey;
  lu: LogicalUnit | null;
  port: PortIdentity;
  /** Addressed to the REPORT LUNS well-known logical unit (lu is null). */
  wellKnown: boolean;
}

interface CommandSpec {
  name: string;
  /** How a persistent reservation held by another I_T nexus affects it (SPC-4 §5.12.1, Table 68). */
  access: Access | ((cdb: Uint8Array) => Access);
  /** Whether a pending unit attention ends this command (not for INQUIRY, REPORT LUNS, REQUEST SENSE). */
  reportsUnitAttention: boolean;
  /** Answered by the target even when no logical unit is at this LUN. */
  worksWithoutLu: boolean;
  /** Needs the unit started. */
  mediaAccess: boolean;
  run(ctx: CommandContext): Promise<Uint8Array | null> | Uint8Array | null;
}

// REQUEST SENSE CDB: 1 DESC(0) | 4 ALLOCATION LENGTH. REPORT LUNS CDB: 2 SELECT REPORT | 6-9 ALLOCATION LENGTH.
const REQUEST_SENSE_DESC = 0x01;
const REPORT_LUNS_MIN_ALLOCATION = 16;
/** What the REPORT LUNS well-known logical unit answers (SPC-4 §8.2.1); anything else is an invalid opcode. */
const WLUN_OPCODES: ReadonlySet<number> = new Set([
  Opcode.INQUIRY,
  Opcode.REPORT_LUNS,
  Opcode.REQUEST_SENSE,
  Opcode.TEST_UNIT_READY,
]);
const SelectReport = { ALL_EXCEPT_WELL_KNOWN: 0x00, WELL_KNOWN_ONLY: 0x01, ALL: 0x02 } as const;
// START STOP UNIT CDB: 4 POWER CONDITION(7..4) NO_FLUSH(2) LOEJ(1) START(0)
const SSU_POWER_CONDITION_MASK = 0xf0;
const SSU_LOEJ = 0x02;
const SSU_START = 0x01;
/**
 * Commands one I_T nexus may have in flight; more end with TASK SET FULL (SAM-5 §5.3.1), which
 * makes Linux lower its queue depth. Bounds what a runaway initiator can make the array hold.
 */
export const MAX_TASKS_PER_NEXUS = 256;
/** CONTROL byte (last CDB byte): NACA(2). ACA is not supported. */
const CONTROL_NACA = 0x04;

export class DeviceServer {
  readonly ports: ScsiTargetPort[];
  private readonly tasks = new Set<Task>();
  private readonly tasksPerNexus = new Map<NexusKey, number>();
  private readonly commands = new Map<number, CommandSpec>();
  private readonly serviceActions = new Map<number, Map<number, CommandSpec>>();
  private readonly operations: OperationDescriptor[] = [];

  constructor(
    private readonly mapping: LunMapping,
    private readonly portIdentities: readonly PortIdentity[],
    private readonly product: ProductIdentity,
    private readonly log: Logger,
  ) {
    this.ports = portIdentities.map((p) => new TargetPort(this, p));
    this.buildCommandTable();
  }

  // ---- command execution ------------------------------------------------------------------------
  async execute(port: PortIdentity, req: ScsiRequest): Promise<ScsiResponse> {
    const nexus = nexusKey(req.nexus);
    let task: Task | null = null;
    try {
      const opcode = req.cdb[0];
      if (opcode === undefined) throw invalidOpcode(0);
      const cdbLength = cdbLengthForOpcode(opcode);
      if (cdbLength === null) throw this.unsupported(req, opcode);
      if (req.cdb.length < cdbLength)
        throw invalidFieldInCdb(
          0,
          7,
          `CDB of ${req.cdb.length} bytes is shorter than the ${cdbLength} opcode 0x${opcode.toString(16)} needs`,
        );
      // Copy the CDB in once: nothing below reads the transport's buffer again.
      const cdb = Uint8Array.from(req.cdb.subarray(0, cdbLength));
      const wellKnown = isReportLunsWlun(req.lun);
      if (wellKnown && !WLUN_OPCODES.has(opcode)) throw invalidOpcode(opcode);
      const lun = decodeLun(req.lun);
      const lu = lun === null ? null : (this.mapping.lunsFor(req.nexus.initiatorWwpn).get(lun) ?? null);
      const spec = this.lookup(cdb, lu);
      if (!lu && !spec.worksWithoutLu && !wellKnown) throw luNotSupported(lun);
      if (cdb[cdbLength - 1]! & CONTROL_NACA) throw invalidFieldInCdb(cdbLength - 1, 2, 'NACA is not supported');
      if (lu && spec.reportsUnitAttention) {
        const ua = lu.ua.take(nexus);
        if (ua) throw checkCondition(SenseKey.UNIT_ATTENTION, ua, `unit attention ${hexSense(ua)}`);
      }
      const access = typeof spec.access === 'function' ? spec.access(cdb) : spec.access;
      if (lu && access !== 'none' && lu.pr.conflicts(nexus, access)) {
        return { status: Status.RESERVATION_CONFLICT, sense: null, dataIn: null };
      }
      if (lu && spec.mediaAccess && lu.stopped) {
        throw checkCondition(SenseKey.NOT_READY, Asc.LU_NOT_READY_INIT_REQUIRED, 'logical unit is stopped');
      }
      const inFlight = this.tasksPerNexus.get(nexus) ?? 0;
      if (inFlight >= MAX_TASKS_PER_NEXUS) return { status: Status.TASK_SET_FULL, sense: null, dataIn: null };
      const t: Task = { nexus, lu, tag: req.taskTag, aborted: false };
      task = t;
      this.tasks.add(t);
      this.tasksPerNexus.set(nexus, inFlight + 1);
      const ctx: CommandContext = {
        req,
        cdb,
        device: lu?.device ?? NO_DEVICE,
        aborted: () => t.aborted,
        nexus,
        lu,
        port,
        wellKnown,
      };
      const dataIn = await spec.run(ctx);
      if (!READ_OPCODES.has(opcode) && !WRITE_OPCODES.has(opcode)) {
        const settled = this.mapping.stateChanged?.();
        if (settled) await settled;
      }
      if (t.aborted) return { status: Status.TASK_ABORTED, sense: null, dataIn: null };
      return { status: Status.GOOD, sense: null, dataIn: dataIn ?? null };
    } catch (e) {
      if (e instanceof TaskAbortedError || task?.aborted)
        return { status: Status.TASK_ABORTED, sense: null, dataIn: null };
      if (e instanceof CommandError) {
        this.log.debug({ opcode: req.cdb[0], status: e.status, nexus }, e.message);
        return { status: e.status, sense: e.senseData ? buildFixedSense(e.senseData) : null, dataIn: null };
      }
      return this.internalFailure(req, e);
    } finally {
      if (task) {
        this.tasks.delete(task);
        const left = (this.tasksPerNexus.get(nexus) ?? 1) - 1;
        if (left > 0) this.tasksPerNexus.set(nexus, left);
        else this.tasksPerNexus.delete(nexus);
      }
    }
  }

  private lookup(cdb: Uint8Array, lu: LogicalUnit | null): CommandSpec {
    const opcode = cdb[0]!;
    const sa = this.serviceActions.get(opcode);
    if (sa) {
      const spec = sa.get(cdb[1]! & 0x1f);
      if (spec) return spec;
      if (!lu) throw luNotSupported(null);
      throw invalidFieldInCdb(
        1,
        4,
        `service action 0x${(cdb[1]! & 0x1f).toString(16)} of opcode 0x${opcode.toString(16)} not supported`,
      );
    }
    const spec = this.commands.get(opcode);
    if (spec) return spec;
    if (!lu) throw luNotSupported(null);
    throw invalidOpcode(opcode);
  }

  private unsupported(req: ScsiRequest, opcode: number): CommandError {
    const lun = decodeLun(req.lun);
    const lu = lun === null ? undefined : this.mapping.lunsFor(req.nexus.initiatorWwpn).get(lun);
    return lu ? invalidOpcode(opcode) : luNotSupported(lun);
  }

  /** A backing-store failure: the command fails visibly, the array keeps running. */
  private internalFailure(req: ScsiRequest, e: unknown): ScsiResponse {
    const op = req.cdb[0] ?? 0;
    this.log.error({ err: e, opcode: op }, 'command failed in the backing store');
    let key: number = SenseKey.HARDWARE_ERROR;
    let sense: AdditionalSense = Asc.INTERNAL_TARGET_FAILURE;
    if (READ_OPCODES.has(op)) {
      key = SenseKey.MEDIUM_ERROR;
      sense = Asc.UNRECOVERED_READ_ERROR;
    } else if (WRITE_OPCODES.has(op)) {
      key = SenseKey.MEDIUM_ERROR;
      sense = Asc.WRITE_ERROR;
    }
    const data: SenseData = { key, sense };
    return { status: Status.CHECK_CONDITION, sense: buildFixedSense(data), dataIn: null };
  }

  // ---- target-wide commands ---------------------------------------------------------------------
  private reportLuns(ctx: CommandContext): Uint8Array {
    const select = ctx.cdb[2]!;
    const alloc = readU32BE(ctx.cdb, 6);
    if (
      select !== SelectReport.ALL_EXCEPT_WELL_KNOWN &&
      select !== SelectReport.WELL_KNOWN_ONLY &&
      select !== SelectReport.ALL
    ) {
      throw invalidFieldInCdb(2, 7, `SELECT REPORT 0x${select.toString(16)} not supported`);
    }
    if (alloc < REPORT_LUNS_MIN_ALLOCATION)
      throw invalidFieldInCdb(6, 7, `REPORT LUNS allocation length ${alloc} is below ${REPORT_LUNS_MIN_ALLOCATION}`);
    // The one well-known logical unit is REPORT LUNS' own (C101h).
    const luns =
      select === SelectReport.WELL_KNOWN_ONLY
        ? []
        : [...this.mapping.lunsFor(ctx.req.nexus.initiatorWwpn).keys()].sort((a, b) => a - b);
    const fields = luns.map((l) => encodeLun(l));
    if (select !== SelectReport.ALL_EXCEPT_WELL_KNOWN) fields.push(REPORT_LUNS_WLUN);
    // 0-3 LUN LIST LENGTH | 4-7 reserved | 8.. 8-byte LUNs
    const out = new Uint8Array(8 + 8 * fields.length);
    writeU32BE(out, 0, 8 * fields.length);
    for (const [i, f] of fields.entries()) out.set(f, 8 + 8 * i);
    return clampToAllocation(out, alloc);
  }

  private requestSense(ctx: CommandContext): Uint8Array {
    if (ctx.cdb[1]! & REQUEST_SENSE_DESC)
      throw invalidFieldInCdb(1, 0, 'descriptor format sense data is not supported');
    const alloc = ctx.cdb[4]!;
    let data: SenseData;
    if (ctx.wellKnown) {
      data = { key: SenseKey.NO_SENSE, sense: Asc.NO_ADDITIONAL_SENSE };
    } else if (!ctx.lu) {
      data = { key: SenseKey.ILLEGAL_REQUEST, sense: Asc.LOGICAL_UNIT_NOT_SUPPORTED };
    } else {
      // A pending unit attention is returned as data and cleared (SPC-4 §6.39, UA_INTLCK_CTRL=0).
      const ua = ctx.lu.ua.take(ctx.nexus);
      if (ua) data = { key: SenseKey.UNIT_ATTENTION, sense: ua };
      else if (ctx.lu.stopped) data = { key: SenseKey.NOT_READY, sense: Asc.LU_NOT_READY_INIT_REQUIRED };
      else data = { key: SenseKey.NO_SENSE, sense: Asc.NO_ADDITIONAL_SENSE };
    }
    return clampToAllocation(buildFixedSense(data), alloc);
  }

  private async startStopUnit(ctx: CommandContext): Promise<null> {
    const b = ctx.cdb[4]!;
    if (b & SSU_POWER_CONDITION_MASK) throw invalidFieldInCdb(4, 7, 'power conditions are not supported');
    if (b & SSU_LOEJ) throw invalidFieldInCdb(4, 1, 'the medium is not removable');
    const lu = ctx.lu!;
    if (b & SSU_START) {
      lu.stopped = false;
    } else {
      await lu.device.flush(); // stopping writes the cache out (NO_FLUSH is not honoured: data first)
      lu.stopped = true;
    }
    return null;
  }

  /** A change of mode parameters is news to every other I_T nexus (SPC-4 §7.5.1: MODE PARAMETERS CHANGED). */
  private async modeSelect(ctx: CommandContext): Promise<null> {
    const lu = ctx.lu!;
    const { changed } = await modeSelect(ctx.cdb, ctx.req.dataOut, lu.device);
    if (changed) lu.ua.establishForAll(Asc.MODE_PARAMETERS_CHANGED, ctx.nexus);
    return null;
  }

  private async persistentReserveOut(ctx: CommandContext): Promise<null> {
    const lu = ctx.lu!;
    const { abortNexuses } = await lu.pr.out(ctx.req.nexus, ctx.cdb, ctx.req.dataOut);
    if (abortNexuses.length > 0) {
      const victims = new Set(abortNexuses);
      for (const t of this.tasks) if (t.lu === lu && victims.has(t.nexus)) t.aborted = true;
    }
    return null;
  }

  private buildCommandTable(): void {
    /**
     * One entry per operation: `usage` lists the CDB bytes after the opcode as CDB USAGE DATA
     * (bits this device server looks at); the CONTROL byte (NACA checked) is appended.
     */
    const add = (op: number, sa: number | null, usage: number[], spec: CommandSpec): void => {
      this.operations.push({ opcode: op, serviceAction: sa, usage: Uint8Array.from([op, ...usage, CONTROL_NACA]) });
      if (sa === null) {
        this.commands.set(op, spec);
        return;
      }
      const m = this.serviceActions.get(op) ?? new Map<number, CommandSpec>();
      m.set(sa, spec);
      this.serviceActions.set(op, m);
    };
    const lu = { reportsUnitAttention: true, worksWithoutLu: false, mediaAccess: false };
    const media = { ...lu, mediaAccess: true };
    const targetWide = { reportsUnitAttention: false, worksWithoutLu: true, mediaAccess: false };
    const ff = (n: number): number[] => new Array<number>(n).fill(0xff);
    // READ/WRITE byte 1: RDPROTECT/WRPROTECT (checked) and FUA; DPO is accepted and ignored.
    const RW_FLAGS = 0xe8;

    add(Opcode.TEST_UNIT_READY, null, [0, 0, 0, 0], {
      name: 'TEST UNIT READY',
      access: 'none',
      ...media,
      run: () => null,
    });
    add(Opcode.REQUEST_SENSE, null, [0x01, 0, 0, 0xff], {
      name: 'REQUEST SENSE',
      access: 'none',
      ...targetWide,
      run: (c) => this.requestSense(c),
    });
    add(Opcode.INQUIRY, null, [0x03, 0xff, 0xff, 0xff], {
      name: 'INQUIRY',
      access: 'none',
      ...targetWide,
      run: (c) =>
        inquiry(c.cdb, {
          device: c.lu?.device ?? null,
          wellKnown: c.wellKnown,
          port: c.port,
          multiPort: this.portIdentities.length > 1,
          product: this.product,
        }),
    });
    add(Opcode.REPORT_LUNS, null, [0, 0xff, 0, 0, 0, ...ff(4), 0], {
      name: 'REPORT LUNS',
      access: 'none',
      ...targetWide,
      run: (c) => this.reportLuns(c),
    });
    add(Opcode.READ_6, null, [0x1f, 0xff, 0xff, 0xff], { name: 'READ(6)', access: 'read', ...media, run: readWrite });
    add(Opcode.WRITE_6, null, [0x1f, 0xff, 0xff, 0xff], {
      name: 'WRITE(6)',
      access: 'write',
      ...media,
      run: readWrite,
    });
    add(Opcode.READ_10, null, [RW_FLAGS, ...ff(4), 0, 0xff, 0xff], {
      name: 'READ(10)',
      access: 'read',
      ...media,
      run: readWrite,
    });
    add(Opcode.WRITE_10, null, [RW_FLAGS, ...ff(4), 0, 0xff, 0xff], {
      name: 'WRITE(10)',
      access: 'write',
      ...media,
      run: readWrite,
    });
    add(Opcode.READ_12, null, [RW_FLAGS, ...ff(8), 0], { name: 'READ(12)', access: 'read', ...media, run: readWrite });
    add(Opcode.WRITE_12, null, [RW_FLAGS, ...ff(8), 0], {
      name: 'WRITE(12)',
      access: 'write',
      ...media,
      run: readWrite,
    });
    add(Opcode.READ_16, null, [RW_FLAGS, ...ff(12), 0], { name: 'READ(16)', access: 'read', ...media, run: readWrite });
    add(Opcode.WRITE_16, null, [RW_FLAGS, ...ff(12), 0], {
      name: 'WRITE(16)',
      access: 'write',
      ...media,
      run: readWrite,
    });
    add(Opcode.VERIFY_10, null, [0xe6, ...ff(4), 0, 0xff, 0xff], {
      name: 'VERIFY(10)',
      access: 'read',
      ...media,
      run: verify,
    });
    add(Opcode.VERIFY_16, null, [0xe6, ...ff(12), 0], { name: 'VERIFY(16)', access: 'read', ...media, run: verify });
    add(Opcode.WRITE_SAME_10, null, [0xf8, ...ff(4), 0, 0xff, 0xff], {
      name: 'WRITE SAME(10)',
      access: 'write',
      ...media,
      run: writeSame,
    });
    add(Opcode.WRITE_SAME_16, null, [0xf9, ...ff(12), 0], {
      name: 'WRITE SAME(16)',
      access: 'write',
      ...media,
      run: writeSame,
    });
    add(Opcode.UNMAP, null, [0x01, 0, 0, 0, 0, 0, 0xff, 0xff], {
      name: 'UNMAP',
      access: 'write',
      ...media,
      run: unmap,
    });
    add(Opcode.SYNCHRONIZE_CACHE_10, null, [0, ...ff(4), 0, 0xff, 0xff], {
      name: 'SYNCHRONIZE CACHE(10)',
      access: 'write',
      ...media,
      run: synchronizeCache,
    });
    add(Opcode.SYNCHRONIZE_CACHE_16, null, [0, ...ff(12), 0], {
      name: 'SYNCHRONIZE CACHE(16)',
      access: 'write',
      ...media,
      run: synchronizeCache,
    });
    add(Opcode.READ_CAPACITY_10, null, [0, ...ff(4), 0, 0, 0x01], {
      name: 'READ CAPACITY(10)',
      access: 'none',
      ...lu,
      run: readCapacity10,
    });
    add(Opcode.SERVICE_ACTION_IN_16, ServiceAction.READ_CAPACITY_16, [0x1f, ...ff(12), 0x01], {
      name: 'READ CAPACITY(16)',
      access: 'none',
      ...lu,
      run: readCapacity16,
    });
    add(Opcode.MODE_SENSE_6, null, [0x08, 0xff, 0xff, 0xff], {
      name: 'MODE SENSE(6)',
      access: 'read',
      ...lu,
      run: (c) => modeSense(c.cdb, c.device),
    });
    add(Opcode.MODE_SENSE_10, null, [0x18, 0xff, 0xff, 0, 0, 0, 0xff, 0xff], {
      name: 'MODE SENSE(10)',
      access: 'read',
      ...lu,
      run: (c) => modeSense(c.cdb, c.device),
    });
    add(Opcode.MODE_SELECT_6, null, [0x11, 0, 0, 0xff], {
      name: 'MODE SELECT(6)',
      access: 'write',
      ...lu,
      run: (c) => this.modeSelect(c),
    });
    add(Opcode.MODE_SELECT_10, null, [0x11, 0, 0, 0, 0, 0, 0xff, 0xff], {
      name: 'MODE SELECT(10)',
      access: 'write',
      ...lu,
      run: (c) => this.modeSelect(c),
    });
    add(Opcode.START_STOP_UNIT, null, [0, 0, 0, 0xf3], {
      name: 'START STOP UNIT',
      access: startStopAccess,
      ...lu,
      run: (c) => this.startStopUnit(c),
    });
    add(Opcode.PERSISTENT_RESERVE_IN, null, [0x1f, 0, 0, 0, 0, 0, 0xff, 0xff], {
      name: 'PERSISTENT RESERVE IN',
      access: 'none',
      ...lu,
      run: (c) => c.lu!.pr.in(c.cdb),
    });
    add(Opcode.PERSISTENT_RESERVE_OUT, null, [0x1f, 0xff, 0, 0, ...ff(4)], {
      name: 'PERSISTENT RESERVE OUT',
      access: 'none',
      ...lu,
      run: (c) => this.persistentReserveOut(c),
    });
    add(Opcode.MAINTENANCE_IN, ServiceAction.REPORT_TARGET_PORT_GROUPS, [0xff, 0, 0, 0, 0, ...ff(4), 0], {
      name: 'REPORT TARGET PORT GROUPS',
      access: 'none',
      ...lu,
      run: (c) => reportTargetPortGroups(c.cdb, this.portIdentities),
    });
    add(
      Opcode.MAINTENANCE_IN,
      ServiceAction.REPORT_SUPPORTED_OPERATION_CODES,
      [0x1f, 0x87, 0xff, 0xff, 0xff, ...ff(4), 0],
      {
        name: 'REPORT SUPPORTED OPERATION CODES',
        access: 'none',
        ...lu,
        run: (c) => reportSupportedOperationCodes(c.cdb, this.operations),
      },
    );
  }

  // ---- task management (SAM-5 §7) ---------------------------------------------------------------
  async taskManagement(
    nexus: ItNexus,
    lunField: Uint8Array,
    fn: TaskManagementFunction,
    taskTag?: number,
  ): Promise<number> {
    const code = this.runTaskManagement(nexus, lunField, fn, taskTag);
    const settled = this.mapping.stateChanged?.();
    if (settled) await settled;
    return code;
  }

  private runTaskManagement(
    nexus: ItNexus,
    lunField: Uint8Array,
    fn: TaskManagementFunction,
    taskTag?: number,
  ): number {
    const key = nexusKey(nexus);
    if (fn === 'clear-aca') return TmfResponse.NOT_SUPPORTED;
    if (fn === 'target-reset') {
      for (const t of this.tasks) t.aborted = true;
      for (const u of this.mapping.allUnits()) u.ua.reset(Asc.BUS_DEVICE_RESET_FUNCTION_OCCURRED);
      return TmfResponse.COMPLETE;
    }
    const lun = decodeLun(lunField);
    const lu = lun === null ? undefined : this.mapping.lunsFor(nexus.initiatorWwpn).get(lun);
    if (!lu) return TmfResponse.INCORRECT_LUN;
    switch (fn) {
      case 'abort-task':
        if (taskTag === undefined) return TmfResponse.FAILED;
        for (const t of this.tasks) if (t.lu === lu && t.nexus === key && t.tag === taskTag) t.aborted = true;
        return TmfResponse.COMPLETE;
      case 'abort-task-set':
        for (const t of this.tasks) if (t.lu === lu && t.nexus === key) t.aborted = true;
        return TmfResponse.COMPLETE;
      case 'clear-task-set':
        for (const t of this.tasks) if (t.lu === lu) t.aborted = true;
        return TmfResponse.COMPLETE;
      case 'lun-reset':
        for (const t of this.tasks) if (t.lu === lu) t.aborted = true;
        lu.ua.reset(Asc.BUS_DEVICE_RESET_FUNCTION_OCCURRED);
        return TmfResponse.COMPLETE;
      default:
        return TmfResponse.NOT_SUPPORTED;
    }
  }

  /** Logout / link loss: the nexus's tasks are gone, its PR registrations stay. */
  nexusLost(nexus: ItNexus): void {
    const key = nexusKey(nexus);
    for (const t of this.tasks) if (t.nexus === key) t.aborted = true;
    for (const u of this.mapping.allUnits()) u.ua.nexusLost(key);
    void this.mapping.stateChanged?.();
  }

  /** Commands in flight (for status and tests). */
  get tasksInFlight(): number {
    return this.tasks.size;
  }
}

class TargetPort implements ScsiTargetPort {
  readonly wwpn: bigint;
  readonly wwnn: bigint;
  readonly relativePortId: number;
  constructor(
    private readonly server: DeviceServer,
    private readonly identity: PortIdentity,
  ) {
    this.wwpn = identity.wwpn;
    this.wwnn = identity.wwnn;
    this.relativePortId = identity.relativePortId;
  }
  execute(req: ScsiRequest): Promise<ScsiResponse> {
    return this.server.execute(this.identity, req);
  }
  taskManagement(nexus: ItNexus, lun: Uint8Array, fn: TaskManagementFunction, taskTag?: number): Promise<number> {
    return this.server.taskManagement(nexus, lun, fn, taskTag);
  }
  nexusLost(nexus: ItNexus): void {
    this.server.nexusLost(nexus);
  }
}

const READ_OPCODES = new Set<number>([
  Opcode.READ_6,
  Opcode.READ_10,
  Opcode.READ_12,
  Opcode.READ_16,
  Opcode.VERIFY_10,
  Opcode.VERIFY_16,
]);
const WRITE_OPCODES = new Set<number>([
  Opcode.WRITE_6,
  Opcode.WRITE_10,
  Opcode.WRITE_12,
  Opcode.WRITE_16,
  Opcode.WRITE_SAME_10,
  Opcode.WRITE_SAME_16,
  Opcode.UNMAP,
]);

/** SPC-4 Table 68: START UNIT with POWER CONDITION 0 is allowed under any reservation; stopping conflicts like a write. */
function startStopAccess(cdb: Uint8Array): Access {
  const b = cdb[4]!;
  return (b & SSU_START) !== 0 && (b & SSU_POWER_CONDITION_MASK) === 0 ? 'none' : 'write';
}

function luNotSupported(lun: number | null): CommandError {
  return checkCondition(
    SenseKey.ILLEGAL_REQUEST,
    Asc.LOGICAL_UNIT_NOT_SUPPORTED,
    lun === null ? 'LUN addressing form not supported' : `no logical unit at LUN ${lun} for this initiator`,
  );
}

function hexSense(s: AdditionalSense): string {
  return `${s.asc.toString(16).padStart(2, '0')}/${s.ascq.toString(16).padStart(2, '0')}`;
}

/** Placeholder device for target-wide commands at a LUN with no logical unit; never touched by them. */
const NO_DEVICE = new Proxy({} as IoContext['device'], {
  get(): never {
    throw new Error('no logical unit at this LUN');
  },
});
