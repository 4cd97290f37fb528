/**
 * Fault injection for driver testing: a run-time switchable set of faults applied where links
 * meet the simulated switch (src/san/fabric/switch.ts), plus the administrative "link held down"
 * state of HBA ports. Models FC-2 frame delivery over the project's link format (no SOF/EOF/CRC,
 * see src/fc/link.ts); FCP per FCP-4, ELS per FC-LS-3, sense data per SPC-4.
 *
 * Every link the switch serves is wrapped (`FaultInjector.wrap`) before it is attached:
 *
 *     N_Port ──inner link──> FaultyLink ──> Fabric
 *                ingress:  held-down logins, reject-login, scsi-error  (port → fabric)
 *                egress:   drop, delay, corrupt                        (fabric → port)
 *
 * Each frame between two N_Ports leaves the switch exactly once, so frame faults act at egress
 * only and a frame is never faulted twice. Faults select frames by the WWPN of the frame's source
 * or destination login (`direction` from | to | both), a frame class, a probability and a count.
 *
 * Fault kinds (`FaultSpec.kind`):
 *   drop          discard frames. A lost frame of an FCP/ELS/CT sequence makes the receiver
 *                 abandon that exchange (class-3 "discard multiple sequences"): the rest of the
 *                 exchange is discarded too, so the originator times out and aborts (ABTS) —
 *                 a dropped data frame never turns into silently missing data.
 *   delay         hold frames `delayMs` before delivery; frames on one link stay in order.
 *   slow-target   delay of every FCP frame a target port sends (`latencyMs`).
 *   corrupt       garble frames whose receivers check their structure: FCP_RSP (both residual
 *                 flags set, which FCP-4 forbids), FCP_XFER_RDY (burst beyond FCP_DL), ELS and CT
 *                 replies (payload cut to its first word). The link has no CRC, so data frames
 *                 are never corrupted (that would be silent corruption, not a wire fault); use
 *                 drop to model frames a CRC check discards.
 *   reject-login  answer FLOGI / FDISC / PLOGI from (or, for PLOGI, to) the port with LS_RJT.
 *   scsi-error    answer READ/WRITE commands touching an LBA range of a LUN with CHECK CONDITION:
 *                 MEDIUM ERROR / UNRECOVERED READ ERROR (03/11/00) for reads, MEDIUM ERROR /
 *                 WRITE ERROR (03/0C/00) for writes, as if the target reported it.
 *   rscn-storm    `count` RSCNs to every SCR-registered port, `intervalMs` apart.
 *   port-flap     take a port's link down and up `cycles` times (`downMs`, `upMs`).
 */
import { decodeServiceParameters, ELS, encodeLsRjt, LS_RJT_EXPLANATION, LS_RJT_REASON } from '../fc/els.js';
import { encodeFcpRsp, FCP_CDB_SIZE, FCP_LUN_SIZE, FCP_RSP_FLAGS, decodeFcpCmnd } from '../fc/fcp.js';
import {
  F_CTL,
  F_CTL_REPLY,
  FC_HEADER_SIZE,
  FC_TYPE,
  type FcHeader,
  R_CTL,
  WELL_KNOWN,
  decodeFrameHeader,
  encodeHeader,
  isWellKnownAddress,
} from '../fc/frame.js';
import { Link } from '../fc/link.js';
import { Asc, Opcode, SenseKey } from '../scsi/constants.js';
import { Status } from '../scsi/sam.js';
import { buildFixedSense } from '../scsi/sense.js';
import { formatWwn } from '../util/wwn.js';
import { type Logger, logger } from '../util/log.js';
import { readU24BE, view, writeU32BE } from '../util/bytes.js';

export const FAULT_KINDS = [
  'drop',
  'delay',
  'slow-target',
  'corrupt',
  'reject-login',
  'scsi-error',
  'rscn-storm',
  'port-flap',
] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];
/** Frame classes a frame fault can select. */
export const FRAME_CLASSES = [
  'all',
  'fcp',
  'fcp-cmnd',
  'fcp-data',
  'fcp-xfer-rdy',
  'fcp-rsp',
  'els',
  'ct',
  'bls',
] as const;
export type FrameClass = (typeof FRAME_CLASSES)[number];
export type FaultDirection = 'from' | 'to' | 'both';
export type LoginKind = 'flogi' | 'fdisc' | 'plogi';

export interface FaultSpec {
  kind: FaultKind;
  /** Port the fault applies to; absent = every port (required for slow-target and port-flap). */
  wwpn?: bigint;
  /** Frames from, to, or either way relative to `wwpn` (default both). */
  direction?: FaultDirection;
  frames?: FrameClass;
  /** Chance that a matching frame or command is faulted, 0..1 (default 1). */
  probability?: number;
  /** Stop after this many faulted frames/commands (or RSCNs for rscn-storm; default unlimited / 10). */
  count?: number;
  delayMs?: number;
  latencyMs?: number;
  logins?: LoginKind[];
  lun?: number;
  lba?: number;
  blocks?: number;
  op?: 'read' | 'write' | 'both';
  intervalMs?: number;
  cycles?: number;
  downMs?: number;
  upMs?: number;
}

export interface FaultInfo {
  id: number;
  spec: Record<string, unknown>;
  /** How often it fired (frames, commands, RSCNs or flap cycles). */
  hits: number;
  active: boolean;
}

/** What the injector needs from the SAN it lives in. */
export interface FaultHost {
  /** WWPN of the login holding an N_Port ID, if any. */
  wwpnOf(nportId: number): bigint | undefined;
  /** One fabric-format RSCN to every SCR-registered port. */
  rscn(): void;
  portDown(wwpn: bigint): void;
  portUp(wwpn: bigint): Promise<void>;
}

/** Limits: hostile or careless control input must not make the SAN spin or allocate without bound. */
export const FAULT_LIMITS = {
  maxFaults: 64,
  maxDelayMs: 60_000,
  maxRscnStorm: 10_000,
  maxFlapCycles: 1000,
  maxIntervalMs: 600_000,
} as const;
/** An exchange abandoned after a drop is forgotten after this long even if its last frame never passes. */
const ABANDONED_EXCHANGE_TTL_MS = 120_000;
/** Abandoned exchanges remembered per link; the oldest is forgotten beyond this. */
const MAX_ABANDONED_EXCHANGES = 4096;
/** Frames held back per link; beyond this a delayed frame is discarded, as by a switch out of buffers. */
const MAX_DELAYED_FRAMES = 8192;
/** FCP_RSP byte that carries the flags (FCP-4 Table 29). */
const FCP_RSP_OFF_FLAGS = 10;
/** FCP_XFER_RDY: BURST_LEN at bytes 4..7. */
const XFER_RDY_OFF_BURST = 4;
/** An ELS command code no reply uses (LS_RJT is 01h, LS_ACC 02h). */
const ELS_INVALID_REPLY_CODE = 0xff;
const DEFAULT_SCSI_ERROR_BLOCKS = 1;

interface ActiveFault {
  id: number;
  spec: FaultSpec;
  hits: number;
  timer: NodeJS.Timeout | null;
  stopped: boolean;
}

function validate(spec: FaultSpec): void {
  const need = (cond: boolean, msg: string): void => {
    if (!cond) throw new RangeError(`${spec.kind}: ${msg}`);
  };
  const intIn = (v: number | undefined, lo: number, hi: number): boolean =>
    v === undefined || (Number.isInteger(v) && v >= lo && v <= hi);
  need(
    (FAULT_KINDS as readonly string[]).includes(spec.kind),
    `unknown fault kind (expected one of ${FAULT_KINDS.join(', ')})`,
  );
  need(
    spec.probability === undefined || (spec.probability >= 0 && spec.probability <= 1),
    'probability must be within 0..1',
  );
  need(intIn(spec.count, 1, Number.MAX_SAFE_INTEGER), 'count must be a positive integer');
  need(
    spec.frames === undefined || (FRAME_CLASSES as readonly string[]).includes(spec.frames),
    `frames must be one of ${FRAME_CLASSES.join(', ')}`,
  );
  need(
    spec.direction === undefined || ['from', 'to', 'both'].includes(spec.direction),
    'direction must be from, to or both',
  );
  need(
    intIn(spec.delayMs, 0, FAULT_LIMITS.maxDelayMs) && intIn(spec.latencyMs, 0, FAULT_LIMITS.maxDelayMs),
    `delays must be integers within 0..${FAULT_LIMITS.maxDelayMs} ms`,
  );
  need(
    intIn(spec.lba, 0, Number.MAX_SAFE_INTEGER) &&
      intIn(spec.blocks, 1, Number.MAX_SAFE_INTEGER) &&
      intIn(spec.lun, 0, 16383),
    'lba/blocks/lun out of range',
  );
  need(
    intIn(spec.intervalMs, 0, FAULT_LIMITS.maxIntervalMs) &&
      intIn(spec.downMs, 0, FAULT_LIMITS.maxIntervalMs) &&
      intIn(spec.upMs, 0, FAULT_LIMITS.maxIntervalMs),
    'intervals out of range',
  );
  need(intIn(spec.cycles, 1, FAULT_LIMITS.maxFlapCycles), `cycles must be within 1..${FAULT_LIMITS.maxFlapCycles}`);
  if (spec.logins)
    need(
      spec.logins.every((l) => ['flogi', 'fdisc', 'plogi'].includes(l)),
      'logins must be flogi, fdisc or plogi',
    );
  switch (spec.kind) {
    case 'delay':
      need(spec.delayMs !== undefined, 'needs delayMs');
      break;
    case 'slow-target':
      need(spec.wwpn !== undefined && spec.latencyMs !== undefined, 'needs wwpn (the target port) and latencyMs');
      break;
    case 'scsi-error':
      need(spec.lba !== undefined, 'needs lba (first LBA of the failing range)');
      break;
    case 'rscn-storm':
      need(
        spec.count === undefined || spec.count <= FAULT_LIMITS.maxRscnStorm,
        `count must be at most ${FAULT_LIMITS.maxRscnStorm}`,
      );
      break;
    case 'port-flap':
      need(spec.wwpn !== undefined, 'needs wwpn');
      break;
    default:
      break;
  }
}

function frameClass(h: FcHeader): Exclude<FrameClass, 'all' | 'fcp'> | null {
  switch (h.type) {
    case FC_TYPE.FCP:
      if (h.rCtl === R_CTL.UNSOL_COMMAND) return 'fcp-cmnd';
      if (h.rCtl === R_CTL.DEVICE_DATA_SOLICITED) return 'fcp-data';
      if (h.rCtl === R_CTL.DATA_DESCRIPTOR) return 'fcp-xfer-rdy';
      if (h.rCtl === R_CTL.COMMAND_STATUS) return 'fcp-rsp';
      return null;
    case FC_TYPE.ELS:
      return 'els';
    case FC_TYPE.CT:
      return 'ct';
    case FC_TYPE.BLS:
      return 'bls';
    default:
      return null;
  }
}

function classMatches(want: FrameClass | undefined, got: ReturnType<typeof frameClass>): boolean {
  if (want === undefined || want === 'all') return true;
  if (got === null) return false;
  if (want === 'fcp') return got.startsWith('fcp-');
  return want === got;
}

/** First LBA and block count of a READ/WRITE CDB, or null for other commands. */
export function cdbBlockRange(cdb: Uint8Array): { op: 'read' | 'write'; lba: number; blocks: number } | null {
  const dv = view(cdb);
  switch (cdb[0]) {
    case Opcode.READ_6:
    case Opcode.WRITE_6: {
      const lba = readU24BE(cdb, 1) & 0x1fffff;
      return { op: cdb[0] === Opcode.READ_6 ? 'read' : 'write', lba, blocks: cdb[4] === 0 ? 256 : cdb[4]! };
    }
    case Opcode.READ_10:
    case Opcode.WRITE_10:
      return { op: cdb[0] === Opcode.READ_10 ? 'read' : 'write', lba: dv.getUint32(2), blocks: dv.getUint16(7) };
    case Opcode.READ_12:
    case Opcode.WRITE_12:
      return { op: cdb[0] === Opcode.READ_12 ? 'read' : 'write', lba: dv.getUint32(2), blocks: dv.getUint32(6) };
    case Opcode.READ_16:
    case Opcode.WRITE_16:
      return {
        op: cdb[0] === Opcode.READ_16 ? 'read' : 'write',
        lba: Number(dv.getBigUint64(2)),
        blocks: dv.getUint32(10),
      };
    default:
      return null;
  }
}

/** SAM single-level LUN of an 8-byte FCP_LUN (peripheral or flat addressing). */
function lunNumber(lun: Uint8Array): number {
  return ((lun[0]! & 0x3f) << 8) | lun[1]!;
}

export class FaultInjector {
  private readonly faults = new Map<number, ActiveFault>();
  private readonly heldDown = new Set<bigint>();
  private nextId = 1;
  private readonly log: Logger;
  /** Called after the fault set changed (data-path grants end while any fault exists). */
  onChange: (() => void) | null = null;

  constructor(
    private readonly host: FaultHost,
    private readonly random: () => number = Math.random,
    log?: Logger,
  ) {
    this.log = log ?? logger('san.faults');
  }

  /** Wrap a link before the switch attaches it. */
  wrap(inner: Link): Link {
    return new FaultyLink(inner, this);
  }

  // ---------------------------------------------------------------- administrative link state

  /** Hold a port's link down: its current link drops and new logins with this WWPN are refused. */
  holdDown(wwpn: bigint): void {
    this.heldDown.add(wwpn);
  }

  release(wwpn: bigint): boolean {
    return this.heldDown.delete(wwpn);
  }

  isHeldDown(wwpn: bigint): boolean {
    return this.heldDown.has(wwpn);
  }

  // ---------------------------------------------------------------- fault set

  add(spec: FaultSpec): number {
    validate(spec);
    if (this.faults.size >= FAULT_LIMITS.maxFaults)
      throw new RangeError(`at most ${FAULT_LIMITS.maxFaults} faults at a time`);
    const fault: ActiveFault = { id: this.nextId++, spec: { ...spec }, hits: 0, timer: null, stopped: false };
    this.faults.set(fault.id, fault);
    this.log.warn({ id: fault.id, fault: describe(spec) }, 'fault injected');
    if (spec.kind === 'rscn-storm') this.runRscnStorm(fault);
    if (spec.kind === 'port-flap') this.runPortFlap(fault);
    this.onChange?.();
    return fault.id;
  }

  list(): FaultInfo[] {
    return [...this.faults.values()].map((f) => ({
      id: f.id,
      spec: describe(f.spec),
      hits: f.hits,
      active: !f.stopped,
    }));
  }

  /** Remove one fault (or all); returns how many were removed. A stopped port flap leaves the port up. */
  clear(id?: number): number {
    const victims =
      id === undefined
        ? [...this.faults.values()]
        : [this.faults.get(id)].filter((f): f is ActiveFault => f !== undefined);
    for (const f of victims) {
      f.stopped = true;
      if (f.timer) clearTimeout(f.timer);
      f.timer = null;
      this.faults.delete(f.id);
      if (f.spec.kind === 'port-flap' && f.spec.wwpn !== undefined) {
        this.host
          .portUp(f.spec.wwpn)
          .catch((e: unknown) => this.log.warn({ error: String(e) }, 'port-flap: bringing the port back up failed'));
      }
    }
    if (victims.length > 0) this.onChange?.();
    return victims.length;
  }

  get size(): number {
    return this.faults.size;
  }

  /** Frame faults can be skipped entirely when nothing is injected (the common case). */
  get idle(): boolean {
    return this.faults.size === 0 && this.heldDown.size === 0;
  }

  // ---------------------------------------------------------------- matching (used by FaultyLink)

  /** The first live fault of one of `kinds` that selects this frame and wins its coin toss; counts the hit. */
  pick(kinds: readonly FaultKind[], h: FcHeader, extra: (f: FaultSpec) => boolean = () => true): ActiveFault | null {
    for (const f of this.faults.values()) {
      if (f.stopped || !kinds.includes(f.spec.kind)) continue;
      if (!this.selects(f.spec, h) || !extra(f.spec)) continue;
      if (f.spec.probability !== undefined && f.spec.probability < 1 && this.random() >= f.spec.probability) continue;
      this.hit(f);
      return f;
    }
    return null;
  }

  private hit(f: ActiveFault): void {
    f.hits++;
    if (f.spec.count !== undefined && f.hits >= f.spec.count && f.spec.kind !== 'rscn-storm') {
      f.stopped = true; // stays listed (with its hits) until cleared
    }
  }

  private selects(spec: FaultSpec, h: FcHeader): boolean {
    if (spec.kind === 'slow-target') {
      return h.type === FC_TYPE.FCP && this.host.wwpnOf(h.sId) === spec.wwpn;
    }
    if (!classMatches(spec.frames, frameClass(h))) return false;
    if (spec.wwpn === undefined) return true;
    const dir = spec.direction ?? 'both';
    if ((dir === 'from' || dir === 'both') && this.host.wwpnOf(h.sId) === spec.wwpn) return true;
    if ((dir === 'to' || dir === 'both') && this.host.wwpnOf(h.dId) === spec.wwpn) return true;
    return false;
  }

  // ---------------------------------------------------------------- timed faults

  private runRscnStorm(f: ActiveFault): void {
    const total = f.spec.count ?? 10;
    const step = (): void => {
      f.timer = null;
      if (f.stopped) return;
      this.host.rscn();
      f.hits++;
      if (f.hits >= total) {
        f.stopped = true;
        return;
      }
      f.timer = setTimeout(step, f.spec.intervalMs ?? 0);
    };
    f.timer = setTimeout(step, 0);
  }

  private runPortFlap(f: ActiveFault): void {
    const wwpn = f.spec.wwpn!;
    const cycles = f.spec.cycles ?? 1;
    const down = (): void => {
      f.timer = null;
      if (f.stopped) return;
      try {
        this.host.portDown(wwpn);
      } catch (e) {
        this.log.warn({ wwpn: formatWwn(wwpn), error: String(e) }, 'port-flap: taking the port down failed');
      }
      f.timer = setTimeout(up, f.spec.downMs ?? 5000);
    };
    const up = (): void => {
      f.timer = null;
      if (f.stopped) return;
      this.host
        .portUp(wwpn)
        .then(
          () => {},
          (e: unknown) =>
            this.log.warn({ wwpn: formatWwn(wwpn), error: String(e) }, 'port-flap: bringing the port up failed'),
        )
        .finally(() => {
          if (f.stopped) return;
          f.hits++;
          if (f.hits >= cycles) {
            f.stopped = true;
            return;
          }
          f.timer = setTimeout(down, f.spec.upMs ?? 10_000);
        });
    };
    f.timer = setTimeout(down, 0);
  }

  /** Stop every timer (SAN shutdown). */
  close(): void {
    for (const f of this.faults.values()) {
      f.stopped = true;
      if (f.timer) clearTimeout(f.timer);
    }
    this.faults.clear();
  }
}

/** A fault spec as JSON-friendly text (WWPNs formatted). */
function describe(spec: FaultSpec): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(spec)) if (v !== undefined) out[k] = typeof v === 'bigint' ? formatWwn(v) : v;
  return out;
}

/** Key of an exchange as seen on the wire: originator's N_Port ID and OX_ID. */
function exchangeKey(h: FcHeader): number {
  const originator = h.fCtl & F_CTL.EX_CTX ? h.dId : h.sId;
  return originator * 0x10000 + h.oxId;
}

/**
 * The switch's side of one link with faults applied. The switch sees a normal Link; the port at
 * the other end sees frames dropped, delayed, garbled or answered on the switch's behalf.
 */
class FaultyLink extends Link {
  /** Exchanges abandoned after a dropped frame: key → expiry time. */
  private readonly abandoned = new Map<number, number>();
  /** In-order delivery queue for delayed frames. */
  private readonly queue: { at: number; frame: Uint8Array }[] = [];
  private queueTimer: NodeJS.Timeout | null = null;

  constructor(
    private readonly inner: Link,
    private readonly faults: FaultInjector,
  ) {
    super(inner.description);
    inner.on('frame', (frame) => this.fromPort(frame));
    // Control messages are not frames: no fault applies to them (grants end while faults exist).
    inner.on('control', (message, fds) => this.deliverControl(message, fds));
    inner.on('down', (reason) => this.close(reason));
  }

  override get passesFds(): boolean {
    return this.inner.passesFds;
  }

  protected override transmitControl(message: Uint8Array, fds: readonly number[]): boolean {
    return this.inner.sendControl(message, fds);
  }

  // ---------------------------------------------------------------- ingress (port → switch)

  private fromPort(frame: Uint8Array): void {
    if (!this.faults.idle && frame.length >= FC_HEADER_SIZE) {
      let h: FcHeader | null = null;
      try {
        h = decodeFrameHeader(frame);
      } catch {
        /* the switch counts and drops malformed frames */
      }
      if (h && this.interceptIngress(h, frame.subarray(FC_HEADER_SIZE))) return;
    }
    this.deliver(frame);
  }

  /** True when the frame was consumed (answered or refused here). */
  private interceptIngress(h: FcHeader, payload: Uint8Array): boolean {
    if (h.type === FC_TYPE.ELS && h.rCtl === R_CTL.ELS_REQUEST && payload.length > 0) {
      const code = payload[0];
      if (h.dId === WELL_KNOWN.F_PORT && (code === ELS.FLOGI || code === ELS.FDISC)) {
        let wwpn: bigint;
        try {
          wwpn = decodeServiceParameters(payload).wwpn;
        } catch {
          return false; // the switch rejects it properly
        }
        if (this.faults.isHeldDown(wwpn)) {
          // The port is disabled at the switch: no light for a FLOGI; an FDISC is refused.
          if (code === ELS.FLOGI) this.close('port disabled by the fabric administrator');
          else this.replyLsRjt(h);
          return true;
        }
        const kind: LoginKind = code === ELS.FLOGI ? 'flogi' : 'fdisc';
        const f = this.faults.pick(
          ['reject-login'],
          h,
          (s) => (s.wwpn === undefined || s.wwpn === wwpn) && (s.logins === undefined || s.logins.includes(kind)),
        );
        if (f) {
          this.replyLsRjt(h);
          return true;
        }
        return false;
      }
      if (code === ELS.PLOGI && !isWellKnownAddress(h.dId)) {
        if (this.faults.pick(['reject-login'], h, (s) => s.logins === undefined || s.logins.includes('plogi'))) {
          this.replyLsRjt(h);
          return true;
        }
      }
      return false;
    }
    if (h.type === FC_TYPE.FCP && h.rCtl === R_CTL.UNSOL_COMMAND) return this.maybeScsiError(h, payload);
    return false;
  }

  private maybeScsiError(h: FcHeader, payload: Uint8Array): boolean {
    let cmnd: ReturnType<typeof decodeFcpCmnd>;
    try {
      cmnd = decodeFcpCmnd(payload);
    } catch {
      return false;
    }
    if (cmnd.cdb.length < FCP_CDB_SIZE || cmnd.lun.length < FCP_LUN_SIZE) return false;
    const range = cdbBlockRange(cmnd.cdb);
    if (!range || range.blocks === 0) return false;
    const lun = lunNumber(cmnd.lun);
    const f = this.faults.pick(['scsi-error'], h, (s) => {
      if (s.lun !== undefined && s.lun !== lun) return false;
      if (s.op !== undefined && s.op !== 'both' && s.op !== range.op) return false;
      const first = s.lba!;
      const end = first + (s.blocks ?? DEFAULT_SCSI_ERROR_BLOCKS);
      return range.lba < end && range.lba + range.blocks > first;
    });
    if (!f) return false;
    const sense = buildFixedSense({
      key: SenseKey.MEDIUM_ERROR,
      sense: range.op === 'read' ? Asc.UNRECOVERED_READ_ERROR : Asc.WRITE_ERROR,
      information: Math.max(range.lba, f.spec.lba!) >>> 0,
    });
    // Ends the exchange as the target would: status without data, everything reported as residual.
    const rsp = encodeFcpRsp({
      status: Status.CHECK_CONDITION,
      retryDelay: 0,
      residualOver: false,
      residualUnder: cmnd.dataLength > 0,
      residual: cmnd.dataLength,
      responseCode: null,
      sense,
    });
    this.replyToPort(h, R_CTL.COMMAND_STATUS, FC_TYPE.FCP, rsp);
    return true;
  }

  private replyLsRjt(h: FcHeader): void {
    this.replyToPort(
      h,
      R_CTL.ELS_REPLY,
      FC_TYPE.ELS,
      encodeLsRjt({ reason: LS_RJT_REASON.UNABLE_TO_PERFORM, explanation: LS_RJT_EXPLANATION.NONE }),
    );
  }

  /** A reply on the exchange `req` opened, from the address it was sent to. */
  private replyToPort(req: FcHeader, rCtl: number, type: number, payload: Uint8Array): void {
    const out = new Uint8Array(FC_HEADER_SIZE + payload.length);
    encodeHeader(
      {
        rCtl,
        dId: req.sId,
        csCtl: 0,
        sId: req.dId,
        type,
        fCtl: F_CTL_REPLY,
        seqId: 0,
        dfCtl: 0,
        seqCnt: 0,
        oxId: req.oxId,
        rxId: req.rxId,
        parameter: 0,
      },
      out,
    );
    out.set(payload, FC_HEADER_SIZE);
    this.inner.send(out);
  }

  // ---------------------------------------------------------------- egress (switch → port)

  protected transmit(frame: Uint8Array): void {
    if (this.faults.idle && this.queue.length === 0 && this.abandoned.size === 0) {
      this.inner.send(frame);
      return;
    }
    let h: FcHeader;
    try {
      h = decodeFrameHeader(frame);
    } catch {
      this.inner.send(frame);
      return;
    }
    if (this.dropAbandoned(h)) return;
    if (this.faults.pick(['drop'], h)) {
      this.abandon(h);
      return;
    }
    let out = frame;
    if (this.faults.pick(['corrupt'], h, () => corruptible(h))) out = corrupt(h, frame);
    const slow = this.faults.pick(['delay', 'slow-target'], h);
    const delayMs = slow ? (slow.spec.kind === 'slow-target' ? slow.spec.latencyMs! : slow.spec.delayMs!) : 0;
    this.enqueue(out, delayMs);
  }

  /** Frames of an abandoned exchange are discarded; BLS (ABTS/BA_ACC) still passes so it can end. */
  private dropAbandoned(h: FcHeader): boolean {
    if (this.abandoned.size === 0 || h.type === FC_TYPE.BLS) return false;
    const key = exchangeKey(h);
    const until = this.abandoned.get(key);
    if (until === undefined) return false;
    if (Date.now() > until) {
      this.abandoned.delete(key);
      return false;
    }
    // A new exchange from the originator with a reused OX_ID starts clean.
    if (
      !(h.fCtl & F_CTL.EX_CTX) &&
      h.fCtl & F_CTL.FIRST_SEQ &&
      h.seqCnt === 0 &&
      h.rCtl !== R_CTL.DEVICE_DATA_SOLICITED
    ) {
      this.abandoned.delete(key);
      return false;
    }
    if (h.fCtl & F_CTL.LAST_SEQ) this.abandoned.delete(key);
    return true;
  }

  private abandon(h: FcHeader): void {
    if (h.type === FC_TYPE.BLS || h.fCtl & F_CTL.LAST_SEQ) return; // nothing follows
    const now = Date.now();
    for (const [k, until] of this.abandoned) if (until < now) this.abandoned.delete(k);
    if (this.abandoned.size >= MAX_ABANDONED_EXCHANGES) this.abandoned.delete(this.abandoned.keys().next().value!);
    this.abandoned.set(exchangeKey(h), now + ABANDONED_EXCHANGE_TTL_MS);
  }

  private enqueue(frame: Uint8Array, delayMs: number): void {
    if (delayMs === 0 && this.queue.length === 0) {
      this.inner.send(frame);
      return;
    }
    if (this.queue.length >= MAX_DELAYED_FRAMES) {
      this.abandon(decodeFrameHeader(frame));
      return;
    }
    const last = this.queue.length ? this.queue[this.queue.length - 1]!.at : 0;
    this.queue.push({ at: Math.max(Date.now() + delayMs, last), frame });
    this.schedule();
  }

  private schedule(): void {
    if (this.queueTimer || this.queue.length === 0) return;
    this.queueTimer = setTimeout(
      () => {
        this.queueTimer = null;
        const now = Date.now();
        while (this.queue.length && this.queue[0]!.at <= now) this.inner.send(this.queue.shift()!.frame);
        this.schedule();
      },
      Math.max(0, this.queue[0]!.at - Date.now()),
    );
  }

  protected shutdown(): void {
    if (this.queueTimer) clearTimeout(this.queueTimer);
    this.queueTimer = null;
    this.queue.length = 0;
    this.inner.close('closed by the switch');
  }
}

/** Frames whose receiver validates their structure (see the header comment). */
function corruptible(h: FcHeader): boolean {
  if (h.type === FC_TYPE.FCP) return h.rCtl === R_CTL.COMMAND_STATUS || h.rCtl === R_CTL.DATA_DESCRIPTOR;
  if (h.type === FC_TYPE.ELS) return h.rCtl === R_CTL.ELS_REPLY;
  if (h.type === FC_TYPE.CT) return h.rCtl === R_CTL.SOL_CONTROL;
  return false;
}

function corrupt(h: FcHeader, frame: Uint8Array): Uint8Array {
  const out = frame.slice();
  const p = FC_HEADER_SIZE;
  if (h.type === FC_TYPE.FCP && h.rCtl === R_CTL.COMMAND_STATUS && out.length > p + FCP_RSP_OFF_FLAGS) {
    out[p + FCP_RSP_OFF_FLAGS] = out[p + FCP_RSP_OFF_FLAGS]! | FCP_RSP_FLAGS.RESID_OVER | FCP_RSP_FLAGS.RESID_UNDER;
    return out;
  }
  if (h.type === FC_TYPE.FCP && h.rCtl === R_CTL.DATA_DESCRIPTOR && out.length >= p + XFER_RDY_OFF_BURST + 4) {
    writeU32BE(out, p + XFER_RDY_OFF_BURST, 0xffffffff);
    return out;
  }
  if (h.type === FC_TYPE.ELS) {
    // Neither LS_ACC nor LS_RJT: the originator's reply check fails.
    out[p] = ELS_INVALID_REPLY_CODE;
    return out;
  }
  // CT reply: only the first word of the 16-byte CT preamble survives.
  return out.subarray(0, Math.min(out.length, p + 4));
}
