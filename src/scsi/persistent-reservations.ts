/**
 * SPC-4 §5.12 persistent reservations of one logical unit: registrations per I_T nexus, one
 * reservation (LU scope), the PERSISTENT RESERVE IN/OUT service actions (§6.15, §6.16), the access
 * table of §5.12.1 (who may read / write under each reservation type) and APTPL persistence.
 * Not implemented (reported as such in REPORT CAPABILITIES and refused when asked for):
 * SPEC_I_PT, REGISTER AND MOVE, REPLACE LOST RESERVATION, element scope. ALL_TG_PTS registers an
 * initiator on every target port of the array at once (each I_T nexus then has its own registration,
 * so READ FULL STATUS lists one descriptor per port); it is honoured for new registrations only.
 */
import type { ItNexus } from './api.js';
import { clampToAllocation } from './cdb.js';
import { readU16BE, readU32BE, readU64BE, writeU16BE, writeU32BE, writeU64BE } from '../util/bytes.js';
import { Asc, SenseKey } from './constants.js';
import { nexusKey, type NexusKey } from './nexus.js';
import {
  checkCondition,
  invalidFieldInCdb,
  invalidFieldInParameterList,
  parameterListLengthError,
  reservationConflict,
} from './sense.js';
import type { UnitAttentions } from './unit-attention.js';

/** SPC-4 Table 169 persistent reservation TYPE codes. */
export const PrType = {
  WRITE_EXCLUSIVE: 0x1,
  EXCLUSIVE_ACCESS: 0x3,
  WRITE_EXCLUSIVE_REGISTRANTS_ONLY: 0x5,
  EXCLUSIVE_ACCESS_REGISTRANTS_ONLY: 0x6,
  WRITE_EXCLUSIVE_ALL_REGISTRANTS: 0x7,
  EXCLUSIVE_ACCESS_ALL_REGISTRANTS: 0x8,
} as const;
const VALID_TYPES = new Set<number>(Object.values(PrType));
const isAllRegistrants = (t: number): boolean =>
  t === PrType.WRITE_EXCLUSIVE_ALL_REGISTRANTS || t === PrType.EXCLUSIVE_ACCESS_ALL_REGISTRANTS;
const isRegistrantsOnly = (t: number): boolean =>
  t === PrType.WRITE_EXCLUSIVE_REGISTRANTS_ONLY || t === PrType.EXCLUSIVE_ACCESS_REGISTRANTS_ONLY;
const isExclusiveAccess = (t: number): boolean =>
  t === PrType.EXCLUSIVE_ACCESS ||
  t === PrType.EXCLUSIVE_ACCESS_REGISTRANTS_ONLY ||
  t === PrType.EXCLUSIVE_ACCESS_ALL_REGISTRANTS;

export const PrOutAction = {
  REGISTER: 0x0,
  RESERVE: 0x1,
  RELEASE: 0x2,
  CLEAR: 0x3,
  PREEMPT: 0x4,
  PREEMPT_AND_ABORT: 0x5,
  REGISTER_AND_IGNORE_EXISTING_KEY: 0x6,
  REGISTER_AND_MOVE: 0x7,
  REPLACE_LOST_RESERVATION: 0x8,
} as const;
export const PrInAction = {
  READ_KEYS: 0x0,
  READ_RESERVATION: 0x1,
  REPORT_CAPABILITIES: 0x2,
  READ_FULL_STATUS: 0x3,
} as const;

const LU_SCOPE = 0x0;

// PERSISTENT RESERVE OUT CDB: byte 1 SERVICE ACTION(4..0); byte 2 SCOPE(7..4) TYPE(3..0); bytes 5-8 PARAMETER LIST LENGTH.
const CDB_OUT_SERVICE_ACTION = 1;
const CDB_OUT_SCOPE_TYPE = 2;
const CDB_OUT_PARAMETER_LIST_LENGTH = 5;
// PERSISTENT RESERVE IN CDB: byte 1 SERVICE ACTION; bytes 7-8 ALLOCATION LENGTH.
const CDB_IN_ALLOCATION_LENGTH = 7;

// PERSISTENT RESERVE OUT basic parameter list (SPC-4 Table 200):
//   0-7 RESERVATION KEY | 8-15 SERVICE ACTION RESERVATION KEY | 16-19 obsolete
//   20: SPEC_I_PT(3) ALL_TG_PTS(2) APTPL(0) | 21 reserved | 22-23 obsolete
const PARAM_LENGTH = 24;
const PARAM_KEY = 0;
const PARAM_SA_KEY = 8;
const PARAM_FLAGS = 20;
const FLAG_SPEC_I_PT = 0x08;
const FLAG_ALL_TG_PTS = 0x04;
const FLAG_APTPL = 0x01;

// PERSISTENT RESERVE IN parameter data header (READ KEYS / READ RESERVATION / READ FULL STATUS):
//   0-3 PRGENERATION | 4-7 ADDITIONAL LENGTH | 8.. keys (8 bytes each) or descriptors
const PR_IN_GENERATION = 0;
const PR_IN_ADDITIONAL_LENGTH = 4;
const PR_IN_HEADER = 8;
const KEY_LENGTH = 8;
// READ RESERVATION descriptor (SPC-4 Table 190): 0-7 RESERVATION KEY | 8-11 obsolete | 13 SCOPE(7..4) TYPE(3..0) | 14-15 obsolete
const RESERVATION_DESCRIPTOR = 16;
const RES_KEY = 0;
const RES_SCOPE_TYPE = 13;

// READ FULL STATUS descriptor (SPC-4 Table 196): 0-7 key | 12: ALL_TG_PTS(1) R_HOLDER(0) | 13 SCOPE/TYPE
//   | 18-19 RELATIVE TARGET PORT IDENTIFIER | 20-23 ADDITIONAL DESCRIPTOR LENGTH | 24.. TransportID
const FULL_STATUS_HEADER = 24;
const FS_FLAGS = 12;
const FS_SCOPE_TYPE = 13;
const FS_REL_PORT = 18;
const FS_ADDITIONAL_LENGTH = 20;
const R_HOLDER = 0x01;

// FC TransportID (SPC-4 §7.5.4.2, Table 487): byte 0 FORMAT CODE(7..6)=0 | PROTOCOL IDENTIFIER(3..0)=0 (FCP);
//   bytes 8-15 N_PORT_NAME; 24 bytes in all.
export const FC_TRANSPORT_ID_LENGTH = 24;
const FC_TRANSPORT_ID_PORT_NAME = 8;
export const PROTOCOL_ID_FC = 0x0;

// REPORT CAPABILITIES (SPC-4 Table 193): 0-1 LENGTH(=8) | 2: CRH(4) SIP_C(3) ATP_C(2) PTPL_C(0)
//   | 3: TMV(7) ALLOW COMMANDS(6..4) PTPL_A(0) | 4-5 PERSISTENT RESERVATION TYPE MASK
const CAPS_LENGTH = 8;
const CAPS_ATP_C = 0x04;
const CAPS_PTPL_C = 0x01;
const CAPS_TMV = 0x80;
const CAPS_PTPL_A = 0x01;
const TYPE_MASK_BYTE4 =
  0x80 /* WR_EX_AR */ | 0x40 /* EX_AC_RO */ | 0x20 /* WR_EX_RO */ | 0x08 /* EX_AC */ | 0x02 /* WR_EX */;
const TYPE_MASK_BYTE5 = 0x01; /* EX_AC_AR */

interface Registration {
  nexus: ItNexus;
  key: bigint;
}
export interface TargetPortRef {
  readonly wwpn: bigint;
  readonly relativePortId: number;
}
interface Reservation {
  /** null for all-registrants types: every registrant holds it. */ holder: NexusKey | null;
  type: number;
}

export type AccessKind = 'read' | 'write';

export interface PrOutResult {
  /** PREEMPT AND ABORT: nexuses whose tasks on this LU must be aborted. */ abortNexuses: NexusKey[];
}

export function encodeFcTransportId(wwpn: bigint): Uint8Array {
  const out = new Uint8Array(FC_TRANSPORT_ID_LENGTH);
  out[0] = PROTOCOL_ID_FC;
  writeU64BE(out, FC_TRANSPORT_ID_PORT_NAME, wwpn);
  return out;
}

const STATE_VERSION = 1;

export class PersistentReservations {
  private generation = 0;
  private readonly registrations = new Map<NexusKey, Registration>();
  private reservation: Reservation | null = null;
  private aptpl = false;

  constructor(
    private readonly ua: UnitAttentions,
    /**
     * Stores the serialized state durably (null: forget it); called only when APTPL is or was in
     * effect. Absent: the store cannot persist (PTPL_C=0) and APTPL requests are refused.
     */
    private readonly persist: ((json: string | null) => Promise<void>) | null,
    /** The array's target ports, for ALL_TG_PTS; absent: ALL_TG_PTS is refused (ATP_C=0). */
    private readonly targetPorts: (() => readonly TargetPortRef[]) | null = null,
  ) {}

  // ---- access control (SPC-4 §5.12.1 Table 56 simplified to read/write classes) ---------------
  /** True if this command class from this nexus must end in RESERVATION CONFLICT. */
  conflicts(nexus: NexusKey, access: AccessKind): boolean {
    const r = this.reservation;
    if (!r || this.isHolder(nexus)) return false;
    if (isRegistrantsOnly(r.type) || isAllRegistrants(r.type)) {
      if (this.registrations.has(nexus)) return false;
    }
    return access === 'write' || isExclusiveAccess(r.type);
  }

  /** A reservation exists (access then depends on the nexus). */
  get reserved(): boolean {
    return this.reservation !== null;
  }

  isHolder(nexus: NexusKey): boolean {
    const r = this.reservation;
    if (!r) return false;
    return r.holder === null ? this.registrations.has(nexus) : r.holder === nexus;
  }

  // ---- PERSISTENT RESERVE OUT -------------------------------------------------------------------
  async out(n: ItNexus, cdb: Uint8Array, dataOut: Uint8Array | null): Promise<PrOutResult> {
    const action = cdb[CDB_OUT_SERVICE_ACTION]! & 0x1f;
    const scope = cdb[CDB_OUT_SCOPE_TYPE]! >> 4;
    const type = cdb[CDB_OUT_SCOPE_TYPE]! & 0x0f;
    const listLength = readU32BE(cdb, CDB_OUT_PARAMETER_LIST_LENGTH);
    if (
      action === PrOutAction.REGISTER_AND_MOVE ||
      action === PrOutAction.REPLACE_LOST_RESERVATION ||
      action > PrOutAction.REPLACE_LOST_RESERVATION
    ) {
      throw invalidFieldInCdb(
        CDB_OUT_SERVICE_ACTION,
        4,
        `PERSISTENT RESERVE OUT service action ${action} not supported`,
      );
    }
    if (listLength !== PARAM_LENGTH)
      throw parameterListLengthError(
        `PERSISTENT RESERVE OUT parameter list length ${listLength}, expected ${PARAM_LENGTH}`,
      );
    if (!dataOut || dataOut.length < PARAM_LENGTH)
      throw parameterListLengthError('PERSISTENT RESERVE OUT parameter list shorter than its stated length');
    const key = readU64BE(dataOut, PARAM_KEY);
    const saKey = readU64BE(dataOut, PARAM_SA_KEY);
    const flags = dataOut[PARAM_FLAGS]!;
    if (flags & FLAG_SPEC_I_PT) throw invalidFieldInParameterList(PARAM_FLAGS, 3, 'SPEC_I_PT not supported');
    const isRegister = action === PrOutAction.REGISTER || action === PrOutAction.REGISTER_AND_IGNORE_EXISTING_KEY;
    // ALL_TG_PTS only means something to the register service actions and is ignored by the others.
    const allTgPts = isRegister && (flags & FLAG_ALL_TG_PTS) !== 0;
    if (allTgPts && !this.targetPorts) throw invalidFieldInParameterList(PARAM_FLAGS, 2, 'ALL_TG_PTS not supported');
    if (flags & FLAG_APTPL && !this.persist)
      throw invalidFieldInParameterList(PARAM_FLAGS, 0, 'APTPL: this volume cannot persist through power loss');
    const needsTypeScope =
      action === PrOutAction.RESERVE ||
      action === PrOutAction.RELEASE ||
      action === PrOutAction.PREEMPT ||
      action === PrOutAction.PREEMPT_AND_ABORT;
    if (needsTypeScope) {
      if (scope !== LU_SCOPE)
        throw invalidFieldInCdb(CDB_OUT_SCOPE_TYPE, 7, `reservation scope ${scope} not supported (LU_SCOPE only)`);
      if (!VALID_TYPES.has(type))
        throw invalidFieldInCdb(CDB_OUT_SCOPE_TYPE, 3, `invalid persistent reservation type ${type}`);
    }
    const me = nexusKey(n);
    const wasAptpl = this.aptpl;
    let changed = false;
    let result: PrOutResult = { abortNexuses: [] };

    if (isRegister) {
      changed = this.register(
        n,
        me,
        key,
        saKey,
        action === PrOutAction.REGISTER_AND_IGNORE_EXISTING_KEY,
        (flags & FLAG_APTPL) !== 0,
        allTgPts,
      );
    } else {
      const reg = this.registrations.get(me);
      if (!reg) throw reservationConflict('I_T nexus is not registered');
      if (reg.key !== key) throw reservationConflict('reservation key does not match the registered key');
      switch (action) {
        case PrOutAction.RESERVE:
          this.reserve(me, type);
          changed = true;
          break;
        case PrOutAction.RELEASE:
          changed = this.release(me, type);
          break;
        case PrOutAction.CLEAR:
          this.clear(me);
          changed = true;
          break;
        default: {
          const removed = this.preempt(me, saKey, type);
          changed = true;
          if (action === PrOutAction.PREEMPT_AND_ABORT) result = { abortNexuses: removed };
        }
      }
    }
    if (changed && this.persist && (this.aptpl || wasAptpl)) await this.persist(this.aptpl ? this.serialize() : null);
    return result;
  }

  private register(
    n: ItNexus,
    me: NexusKey,
    key: bigint,
    saKey: bigint,
    ignoreExisting: boolean,
    aptpl: boolean,
    allTgPts: boolean,
  ): boolean {
    const reg = this.registrations.get(me);
    if (!reg) {
      if (!ignoreExisting && key !== 0n)
        throw reservationConflict('unregistered I_T nexus sent a non-zero reservation key');
      if (saKey === 0n) return false; // registering key 0 is a no-op
      this.registrations.set(me, { nexus: { ...n }, key: saKey });
      if (allTgPts) {
        for (const p of this.targetPorts!()) {
          const other: ItNexus = {
            initiatorWwpn: n.initiatorWwpn,
            targetWwpn: p.wwpn,
            relativeTargetPortId: p.relativePortId,
          };
          const k = nexusKey(other);
          if (!this.registrations.has(k)) this.registrations.set(k, { nexus: other, key: saKey });
        }
      }
    } else {
      if (!ignoreExisting && reg.key !== key)
        throw reservationConflict('reservation key does not match the registered key');
      if (saKey === 0n) this.unregister(me);
      else reg.key = saKey;
    }
    this.aptpl = aptpl;
    this.bumpGeneration();
    return true;
  }

  /** Removes a registration; releases the reservation when its holder goes (§5.12.11.2.3). */
  private unregister(me: NexusKey): void {
    const r = this.reservation;
    const wasHolder = this.isHolder(me);
    this.registrations.delete(me);
    if (!r || !wasHolder) return;
    if (isAllRegistrants(r.type)) {
      if (this.registrations.size === 0) this.reservation = null;
      return;
    }
    this.reservation = null;
    if (isRegistrantsOnly(r.type)) {
      this.ua.establish(Asc.RESERVATIONS_RELEASED, this.registrations.keys());
    }
  }

  private reserve(me: NexusKey, type: number): void {
    const r = this.reservation;
    if (r) {
      if (this.isHolder(me) && r.type === type) return;
      throw reservationConflict('a persistent reservation is already held');
    }
    this.reservation = { holder: isAllRegistrants(type) ? null : me, type };
  }

  private release(me: NexusKey, type: number): boolean {
    const r = this.reservation;
    if (!r || !this.isHolder(me)) return false;
    if (r.type !== type) {
      throw checkCondition(
        SenseKey.ILLEGAL_REQUEST,
        Asc.INVALID_RELEASE_OF_PERSISTENT_RESERVATION,
        `RELEASE type ${type} does not match the reservation type ${r.type}`,
      );
    }
    this.reservation = null;
    if (isRegistrantsOnly(r.type) || isAllRegistrants(r.type)) {
      this.ua.establish(
        Asc.RESERVATIONS_RELEASED,
        [...this.registrations.keys()].filter((k) => k !== me),
      );
    }
    return true;
  }

  private clear(me: NexusKey): void {
    const others = [...this.registrations.keys()].filter((k) => k !== me);
    this.registrations.clear();
    this.reservation = null;
    this.bumpGeneration();
    this.ua.establish(Asc.RESERVATIONS_PREEMPTED, others);
  }

  /** PREEMPT (§5.12.11.4); returns the nexuses whose registrations were removed. */
  private preempt(me: NexusKey, saKey: bigint, type: number): NexusKey[] {
    const r = this.reservation;
    const matching = (k: bigint): NexusKey[] =>
      [...this.registrations].filter(([nk, reg]) => reg.key === k && nk !== me).map(([nk]) => nk);
    let removed: NexusKey[];
    if (r && isAllRegistrants(r.type)) {
      if (saKey === 0n) {
        removed = [...this.registrations.keys()].filter((k) => k !== me);
        this.removeAll(removed);
        this.reservation = { holder: isAllRegistrants(type) ? null : me, type };
      } else {
        removed = matching(saKey);
        if (removed.length === 0 && !this.hasKey(saKey))
          throw reservationConflict('no registration matches the service action reservation key');
        this.removeAll(removed);
      }
    } else {
      if (saKey === 0n)
        throw invalidFieldInParameterList(
          PARAM_SA_KEY,
          undefined,
          'PREEMPT with a zero service action reservation key',
        );
      const holderKey = r && r.holder !== null ? this.registrations.get(r.holder)?.key : undefined;
      if (r && holderKey === saKey) {
        removed = matching(saKey);
        this.removeAll(removed);
        const typeChanged = r.type !== type;
        this.reservation = { holder: isAllRegistrants(type) ? null : me, type };
        // §5.12.11.4.3 f): only a change of type (or scope) is news to the registrants that stay.
        if (typeChanged) {
          this.ua.establish(
            Asc.RESERVATIONS_RELEASED,
            [...this.registrations.keys()].filter((k) => k !== me),
          );
        }
      } else {
        removed = matching(saKey);
        if (removed.length === 0 && !this.hasKey(saKey))
          throw reservationConflict('no registration matches the service action reservation key');
        this.removeAll(removed);
      }
    }
    this.ua.establish(Asc.REGISTRATIONS_PREEMPTED, removed);
    this.bumpGeneration();
    return removed;
  }

  private hasKey(k: bigint): boolean {
    for (const reg of this.registrations.values()) if (reg.key === k) return true;
    return false;
  }

  private removeAll(keys: NexusKey[]): void {
    for (const k of keys) this.registrations.delete(k);
    if (this.reservation && this.reservation.holder !== null && !this.registrations.has(this.reservation.holder))
      this.reservation = null;
    if (this.reservation && this.reservation.holder === null && this.registrations.size === 0) this.reservation = null;
  }

  private bumpGeneration(): void {
    this.generation = (this.generation + 1) >>> 0;
  }

  // ---- PERSISTENT RESERVE IN --------------------------------------------------------------------
  in(cdb: Uint8Array): Uint8Array {
    const action = cdb[1]! & 0x1f;
    const alloc = readU16BE(cdb, CDB_IN_ALLOCATION_LENGTH);
    let data: Uint8Array;
    switch (action) {
      case PrInAction.READ_KEYS:
        data = this.readKeys();
        break;
      case PrInAction.READ_RESERVATION:
        data = this.readReservation();
        break;
      case PrInAction.REPORT_CAPABILITIES:
        data = this.reportCapabilities();
        break;
      case PrInAction.READ_FULL_STATUS:
        data = this.readFullStatus();
        break;
      default:
        throw invalidFieldInCdb(1, 4, `PERSISTENT RESERVE IN service action ${action} not supported`);
    }
    return clampToAllocation(data, alloc);
  }

  private readKeys(): Uint8Array {
    const regs = [...this.registrations.values()];
    const out = new Uint8Array(PR_IN_HEADER + KEY_LENGTH * regs.length);
    writeU32BE(out, PR_IN_GENERATION, this.generation);
    writeU32BE(out, PR_IN_ADDITIONAL_LENGTH, KEY_LENGTH * regs.length);
    for (const [i, r] of regs.entries()) writeU64BE(out, PR_IN_HEADER + KEY_LENGTH * i, r.key);
    return out;
  }

  private readReservation(): Uint8Array {
    const r = this.reservation;
    const out = new Uint8Array(PR_IN_HEADER + (r ? RESERVATION_DESCRIPTOR : 0));
    writeU32BE(out, PR_IN_GENERATION, this.generation);
    if (r) {
      writeU32BE(out, PR_IN_ADDITIONAL_LENGTH, RESERVATION_DESCRIPTOR);
      // All-registrants reservations report key 0 (SPC-4 §6.15.3.3).
      const key = r.holder === null ? 0n : (this.registrations.get(r.holder)?.key ?? 0n);
      writeU64BE(out, PR_IN_HEADER + RES_KEY, key);
      out[PR_IN_HEADER + RES_SCOPE_TYPE] = (LU_SCOPE << 4) | r.type;
    }
    return out;
  }

  private reportCapabilities(): Uint8Array {
    const out = new Uint8Array(CAPS_LENGTH);
    writeU16BE(out, 0, CAPS_LENGTH);
    out[2] = (this.persist ? CAPS_PTPL_C : 0) | (this.targetPorts ? CAPS_ATP_C : 0);
    out[3] = CAPS_TMV | (this.aptpl ? CAPS_PTPL_A : 0);
    out[4] = TYPE_MASK_BYTE4;
    out[5] = TYPE_MASK_BYTE5;
    return out;
  }

  private readFullStatus(): Uint8Array {
    const regs = [...this.registrations.entries()];
    const descLength = FULL_STATUS_HEADER + FC_TRANSPORT_ID_LENGTH;
    const out = new Uint8Array(PR_IN_HEADER + descLength * regs.length);
    writeU32BE(out, PR_IN_GENERATION, this.generation);
    writeU32BE(out, PR_IN_ADDITIONAL_LENGTH, descLength * regs.length);
    regs.forEach(([nk, reg], i) => {
      const d = PR_IN_HEADER + i * descLength;
      writeU64BE(out, d, reg.key);
      if (this.isHolder(nk)) {
        out[d + FS_FLAGS] = R_HOLDER;
        out[d + FS_SCOPE_TYPE] = (LU_SCOPE << 4) | this.reservation!.type;
      }
      writeU16BE(out, d + FS_REL_PORT, reg.nexus.relativeTargetPortId);
      writeU32BE(out, d + FS_ADDITIONAL_LENGTH, FC_TRANSPORT_ID_LENGTH);
      out.set(encodeFcTransportId(reg.nexus.initiatorWwpn), d + FULL_STATUS_HEADER);
    });
    return out;
  }

  // ---- persistence (APTPL) ----------------------------------------------------------------------
  serialize(): string {
    return JSON.stringify({
      version: STATE_VERSION,
      generation: this.generation,
      aptpl: this.aptpl,
      registrations: [...this.registrations.values()].map((r) => ({
        initiatorWwpn: r.nexus.initiatorWwpn.toString(16),
        targetWwpn: r.nexus.targetWwpn.toString(16),
        relativeTargetPortId: r.nexus.relativeTargetPortId,
        key: r.key.toString(16),
      })),
      reservation: this.reservation,
    });
  }

  /** Restores state saved with APTPL; throws with a clear message if the file is not ours. */
  restore(json: string): void {
    const bad = (why: string): Error => new Error(`persistent reservation state: ${why}`);
    const hex = (v: unknown, what: string): bigint => {
      if (typeof v !== 'string' || !/^[0-9a-f]{1,16}$/.test(v)) throw bad(`${what} is not a 64-bit hex number`);
      return BigInt('0x' + v);
    };
    const s = JSON.parse(json) as Record<string, unknown>;
    if (s.version !== STATE_VERSION) throw bad(`unsupported version ${String(s.version)}`);
    if (
      typeof s.generation !== 'number' ||
      !Number.isInteger(s.generation) ||
      s.generation < 0 ||
      s.generation > 0xffffffff
    )
      throw bad('bad generation');
    if (!Array.isArray(s.registrations)) throw bad('registrations missing');
    const regs = new Map<NexusKey, Registration>();
    for (const r of s.registrations as Record<string, unknown>[]) {
      const rel = r.relativeTargetPortId;
      if (typeof rel !== 'number' || !Number.isInteger(rel) || rel < 0 || rel > 0xffff)
        throw bad('bad relative target port id');
      const nexus: ItNexus = {
        initiatorWwpn: hex(r.initiatorWwpn, 'initiator'),
        targetWwpn: hex(r.targetWwpn, 'target'),
        relativeTargetPortId: rel,
      };
      const key = hex(r.key, 'key');
      if (key === 0n) throw bad('zero registration key');
      regs.set(nexusKey(nexus), { nexus, key });
    }
    let reservation: Reservation | null = null;
    if (s.reservation !== null && s.reservation !== undefined) {
      const r = s.reservation as Record<string, unknown>;
      if (typeof r.type !== 'number' || !VALID_TYPES.has(r.type)) throw bad('bad reservation type');
      const holder = r.holder;
      if (isAllRegistrants(r.type) ? holder !== null : typeof holder !== 'string' || !regs.has(holder))
        throw bad('reservation holder is not registered');
      reservation = { holder: holder as NexusKey | null, type: r.type };
    }
    this.generation = s.generation;
    this.aptpl = s.aptpl === true;
    this.registrations.clear();
    for (const [k, v] of regs) this.registrations.set(k, v);
    this.reservation = reservation;
  }

  /** For status displays and tests. */
  snapshot(): {
    generation: number;
    keys: bigint[];
    reservation: { type: number; holder: NexusKey | null } | null;
    aptpl: boolean;
  } {
    return {
      generation: this.generation,
      keys: [...this.registrations.values()].map((r) => r.key),
      reservation: this.reservation ? { ...this.reservation } : null,
      aptpl: this.aptpl,
    };
  }
}
