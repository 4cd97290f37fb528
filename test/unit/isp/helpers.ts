/**
 * Test doubles for the ISP2532 model: guest memory over an ArrayBuffer, a manual scheduler,
 * an interrupt-recording host, a fake fabric, and a tiny "driver" that speaks the qla2xxx
 * mailbox protocol through the register file (write inbound mailboxes, SET_HOST_INT, poll
 * host_status, read outbound, CLR_RISC_INT).
 */
import type { IspHost, IspScheduler } from '../../../src/isp/host.js';
import type { InterruptMode } from '../../../src/device/interrupts.js';
import type {
  AdiscResult,
  FabricEvent,
  FabricLoginResult,
  FabricPort,
  FcpCommand,
  FcpResult,
  PlogiResult,
  PrliResult,
} from '../../../src/isp/fabric-port.js';
import { scatterToViews } from '../../../src/isp/data-views.js';
import { Isp2532 } from '../../../src/isp/isp2532.js';
import type { PortIdentity } from '../../../src/isp/identity.js';
import type { Logger } from '../../../src/util/log.js';
import { REG, HCCRX } from '../../../src/isp/registers.js';
import type { TaskManagementFunction } from '../../../src/scsi/sam.js';
import { ArrayGuestMemory } from '../../support/guest-memory.js';
import { newEntry } from '../../../src/vm-model/qla-guest.js';

export class ManualScheduler implements IspScheduler {
  private deferred: (() => void)[] = [];
  private timers: { at: number; fn: () => void; live: boolean }[] = [];
  now = 0;
  defer(fn: () => void): void {
    this.deferred.push(fn);
  }
  after(ms: number, fn: () => void): () => void {
    const t = { at: this.now + ms, fn, live: true };
    this.timers.push(t);
    return () => {
      t.live = false;
    };
  }
  runDeferred(): number {
    let n = 0;
    while (this.deferred.length && n < 10_000) {
      this.deferred.shift()!();
      n++;
    }
    return n;
  }
  advance(ms: number): void {
    this.now += ms;
    for (const t of this.timers.filter((x) => x.live && x.at <= this.now)) {
      t.live = false;
      t.fn();
    }
    this.timers = this.timers.filter((x) => x.live);
  }
}

export class FakeHost implements IspHost {
  mode: InterruptMode = 'intx';
  intx = false;
  intxChanges = 0;
  messages: number[] = [];
  constructor(public mem: ArrayGuestMemory | null) {}
  memory() {
    return this.mem;
  }
  interruptMode() {
    return this.mode;
  }
  setIntx(asserted: boolean) {
    this.intx = asserted;
    this.intxChanges++;
  }
  sendMessage(vector: number) {
    this.messages.push(vector);
  }
}

export interface FakeTarget {
  portId: number;
  wwpn: bigint;
  wwnn: bigint;
}

export class FakeFabric implements FabricPort {
  linkUp = true;
  loginResult: FabricLoginResult = {
    portId: 0x010203,
    fabricPortName: 0x2001000dec000001n,
    fabricName: 0x1001000dec000001n,
    speedGbps: 8,
  };
  calls: string[] = [];
  ctRequests: Uint8Array[] = [];
  ctResponse: Uint8Array = ctAccept(new Uint8Array(0));
  tmfResult = 0;
  private listeners: ((e: FabricEvent) => void)[] = [];
  constructor(public targets: FakeTarget[] = []) {}
  isLinkUp() {
    return this.linkUp;
  }
  /** The names of every login request, in order. */
  loginNames: { wwpn: bigint; wwnn: bigint }[] = [];
  async login(wwpn: bigint, wwnn: bigint): Promise<FabricLoginResult> {
    this.calls.push(`login ${wwpn.toString(16)}`);
    this.loginNames.push({ wwpn, wwnn });
    return this.loginResult;
  }
  async logout() {
    this.calls.push('logout');
  }
  private target(portId: number) {
    return this.targets.find((t) => t.portId === portId);
  }
  async plogi(portId: number): Promise<PlogiResult> {
    this.calls.push(`plogi ${portId.toString(16)}`);
    if (portId === 0xfffffc)
      return { ok: true, wwpn: 0x21fc000dec000001n, wwnn: 0x1001000dec000001n, receiveDataSize: 2048 };
    const t = this.target(portId);
    return t
      ? { ok: true, wwpn: t.wwpn, wwnn: t.wwnn, receiveDataSize: 2048 }
      : { ok: false, kind: 'rejected', reason: 0x09, explanation: 0 };
  }
  async prli(portId: number): Promise<PrliResult> {
    this.calls.push(`prli ${portId.toString(16)}`);
    return this.target(portId) ? { ok: true, serviceParamWord3: 0x12 } : { ok: false, kind: 'no-response' };
  }
  async adisc(portId: number): Promise<AdiscResult> {
    this.calls.push(`adisc ${portId.toString(16)}`);
    const t = this.target(portId);
    return t ? { ok: true, wwpn: t.wwpn, wwnn: t.wwnn, portId } : { ok: false, kind: 'no-response' };
  }
  async logo(portId: number) {
    this.calls.push(`logo ${portId.toString(16)}`);
  }
  async prlo(portId: number) {
    this.calls.push(`prlo ${portId.toString(16)}`);
  }
  async ct(server: number, request: Uint8Array): Promise<Uint8Array> {
    this.calls.push(`ct ${server.toString(16)}`);
    this.ctRequests.push(request);
    return this.ctResponse;
  }
  fcpCommands: FcpCommand[] = [];
  fcpHandler: (portId: number, c: FcpCommand) => Promise<FcpResult> = async (_p, c) => ({
    scsiStatus: 0,
    sense: null,
    transferred: c.expectedLength,
  });
  async fcp(portId: number, c: FcpCommand): Promise<FcpResult> {
    this.fcpCommands.push(c);
    return this.fcpHandler(portId, c);
  }
  async taskManagement(portId: number, _lun: Uint8Array, fn: TaskManagementFunction): Promise<number> {
    this.calls.push(`tmf ${portId.toString(16)} ${fn}`);
    return this.tmfResult;
  }
  async abort(portId: number, tag: number) {
    this.calls.push(`abort ${portId.toString(16)} ${tag}`);
    return true;
  }
  onEvent(l: (e: FabricEvent) => void) {
    this.listeners.push(l);
    return () => {
      this.listeners = this.listeners.filter((x) => x !== l);
    };
  }
  emit(e: FabricEvent) {
    for (const l of this.listeners) l(e);
  }
}

/** A CT accept IU (FC-GS preamble, response 0x8002) followed by payload. */
export function ctAccept(payload: Uint8Array): Uint8Array {
  const r = new Uint8Array(16 + payload.length);
  r[0] = 1;
  r[4] = 0xfc;
  r[5] = 0x02;
  r[8] = 0x80;
  r[9] = 0x02;
  r.set(payload, 16);
  return r;
}

export const WWPN = 0x5001438001234567n;
export const WWNN = 0x5001438001234566n;

/** Memory map of the fake guest. */
export const MEM_BASE = 0x100000n;
export const MEM_SIZE = 0x200000;
export const ICB_ADDR = 0x100000n;
export const REQ_RING = 0x110000n;
export const RSP_RING = 0x140000n;
export const SCRATCH = 0x150000n;
export const REQ_LEN = 128;
export const RSP_LEN = 64;

export interface MailboxResult {
  mb: number[];
  hostStatus: number;
}

/** The device plus a minimal qla2xxx-like driver for it. */
export class Rig {
  readonly mem = new ArrayGuestMemory(MEM_BASE, MEM_SIZE);
  readonly host = new FakeHost(this.mem);
  readonly sched = new ManualScheduler();
  readonly fabric: FakeFabric;
  readonly isp: Isp2532;
  /** AENs seen while waiting for mailbox completions: [code, mb1, mb2, mb3]. */
  readonly aens: number[][] = [];
  responseUpdates = 0;
  rspOut = 0;

  /** Wait real time in settle() too (for fabrics doing socket I/O). */
  realTime = false;

  constructor(
    targets: FakeTarget[] = [],
    fabric?: FakeFabric | null,
    port?: FabricPort,
    reportLoginsInPortList?: boolean,
    log?: Logger,
    now?: () => number,
    npivGrants?: readonly PortIdentity[],
  ) {
    this.fabric = fabric === undefined ? new FakeFabric(targets) : (fabric ?? new FakeFabric(targets));
    this.isp = new Isp2532({
      host: this.host,
      fabric: port ?? (fabric === null ? null : this.fabric),
      wwpn: WWPN,
      wwnn: WWNN,
      scheduler: this.sched,
      ...(reportLoginsInPortList !== undefined ? { reportLoginsInPortList } : {}),
      ...(log ? { log } : {}),
      ...(now ? { now } : {}),
      ...(npivGrants ? { npivGrants } : {}),
    });
  }

  r32(off: number) {
    return this.isp.mmioRead(off, 4);
  }
  w32(off: number, v: number) {
    this.isp.mmioWrite(off, 4, v);
  }
  outMb(n: number) {
    return this.isp.mmioRead(REG.MAILBOX0 + 2 * n, 2);
  }

  /** Lets deferred work and promise chains run to quiescence. */
  async settle(): Promise<void> {
    for (let i = 0; i < 20; i++) {
      this.sched.runDeferred();
      await new Promise((r) => (this.realTime ? setTimeout(r, 2) : setImmediate(r)));
    }
  }

  /** Handles non-mailbox events the way qla24xx_intr_handler does; returns a mailbox completion if one was latched. */
  private pollOnce(): MailboxResult | null {
    const hs = this.r32(REG.HOST_STATUS);
    if (!(hs & 0x8000)) return null;
    const type = hs & 0xff;
    let result: MailboxResult | null = null;
    if (type === 0x01 || type === 0x02 || type === 0x10 || type === 0x11) {
      const mb = [hs >>> 16];
      for (let i = 1; i < 32; i++) mb.push(this.outMb(i));
      result = { mb, hostStatus: hs };
    } else if (type === 0x12) {
      this.aens.push([hs >>> 16, this.outMb(1), this.outMb(2), this.outMb(3)]);
    } else if (type === 0x13) {
      this.responseUpdates++;
    }
    this.w32(REG.HCCR, HCCRX.CLR_RISC_INT << 28);
    return result;
  }

  /** Drains all latched events (AENs, response updates) without a command outstanding. */
  async drainEvents(): Promise<void> {
    await this.settle();
    for (let i = 0; i < 100; i++) {
      if (!(this.r32(REG.HOST_STATUS) & 0x8000)) return;
      this.pollOnce();
    }
  }

  /** Issues a mailbox command and polls for its completion (probe-style). */
  async mbox(regs: number[]): Promise<MailboxResult> {
    for (let i = 0; i < 32; i++) this.isp.mmioWrite(REG.MAILBOX0 + 2 * i, 2, regs[i] ?? 0);
    this.w32(REG.HCCR, HCCRX.SET_HOST_INT << 28);
    for (let round = 0; round < 50; round++) {
      await this.settle();
      for (let i = 0; i < 100; i++) {
        const r = this.pollOnce();
        if (r) return r;
        if (!(this.r32(REG.HOST_STATUS) & 0x8000)) break;
      }
    }
    throw new Error(`mailbox 0x${(regs[0] ?? 0).toString(16)} timed out`);
  }

  /** Writes a qla2xxx-style ICB and returns the mailbox registers for INITIALIZE_FIRMWARE. */
  writeIcb(overrides: (dv: DataView) => void = () => {}): number[] {
    const icb = new Uint8Array(128);
    const dv = new DataView(icb.buffer);
    dv.setUint16(0, 1, true);
    dv.setUint16(4, 2048, true);
    dv.setBigUint64(12, WWPN, false);
    dv.setBigUint64(20, WWNN, false);
    dv.setUint16(36, RSP_LEN, true);
    dv.setUint16(38, REQ_LEN, true);
    dv.setBigUint64(44, REQ_RING, true);
    dv.setBigUint64(52, RSP_RING, true);
    dv.setUint32(92, 0x6006, true);
    overrides(dv);
    this.mem.write(ICB_ADDR, icb);
    return [0x60, 0, ...dmaRegs(ICB_ADDR)];
  }

  /** Marks every response slot consumed (what qla2x00_init_response_q_entries does). */
  initResponseRing(): void {
    for (let i = 0; i < RSP_LEN; i++) {
      const a = RSP_RING + BigInt(i * 64 + 60);
      this.mem.write(a, new Uint8Array([0xad, 0xde, 0xad, 0xde]));
    }
  }

  /** The probe up to a running, initialized firmware with the link up. */
  async bringUp(): Promise<void> {
    this.w32(REG.CTRL_STATUS, 0x10031);
    this.w32(REG.HCCR, HCCRX.SET_RISC_RESET << 28);
    this.w32(REG.HCCR, HCCRX.REL_RISC_PAUSE << 28);
    this.w32(REG.HCCR, HCCRX.CLR_RISC_RESET << 28);
    await this.mbox(mbWithDma(0x0b, SCRATCH, { 1: 0, 4: 0, 5: 16, 8: 0x0010 }));
    await this.mbox([0x07, 0x0010, 0]);
    await this.mbox([0x02, 0x0010, 0]);
    this.initResponseRing();
    this.w32(REG.REQ_Q_IN, 0);
    this.w32(REG.REQ_Q_OUT, 0);
    this.w32(REG.RSP_Q_IN, 0);
    this.w32(REG.RSP_Q_OUT, 0);
    const r = await this.mbox(this.writeIcb());
    if (r.mb[0] !== 0x4000) throw new Error(`init fw failed 0x${r.mb[0]!.toString(16)}`);
    await this.mbox([0x59, 0x0900]); // next command fires the armed link-up
    await this.drainEvents();
    this.w32(REG.ICTRL, 0x8);
  }

  /** Response entries the device produced since the last call (and advances rsp_q_out). */
  takeResponses(): Uint8Array[] {
    const out: Uint8Array[] = [];
    const rspIn = this.r32(REG.RSP_Q_IN);
    while (this.rspOut !== rspIn) {
      const a = RSP_RING + BigInt(this.rspOut * 64);
      out.push(this.mem.read(a, 64));
      this.mem.write(a + 60n, new Uint8Array([0xad, 0xde, 0xad, 0xde]));
      this.rspOut = (this.rspOut + 1) % RSP_LEN;
    }
    this.w32(REG.RSP_Q_OUT, this.rspOut);
    return out;
  }

  private reqIn = 0;
  /** Posts one 64-byte entry on the request ring and rings the doorbell. */
  postRequest(entry: Uint8Array): void {
    this.mem.write(REQ_RING + BigInt(this.reqIn * 64), entry);
    this.reqIn = (this.reqIn + 1) % REQ_LEN;
    this.w32(REG.REQ_Q_IN, this.reqIn);
  }
}

/** mb2, mb3, mb4..mb5 (zeros), mb6, mb7 for a 64-bit DMA address (index 2..7). */
export function dmaRegs(addr: bigint): number[] {
  const a = BigInt.asUintN(64, addr);
  return [
    Number((a >> 16n) & 0xffffn),
    Number(a & 0xffffn),
    0,
    0,
    Number((a >> 48n) & 0xffffn),
    Number((a >> 32n) & 0xffffn),
  ];
}

/** Mailbox register array with DMA address in mb2/3/6/7 plus other registers. */
export function mbWithDma(opcode: number, addr: bigint, extra: Record<number, number> = {}): number[] {
  const mb = new Array<number>(32).fill(0);
  mb[0] = opcode;
  const d = dmaRegs(addr);
  mb[2] = d[0]!;
  mb[3] = d[1]!;
  mb[6] = d[4]!;
  mb[7] = d[5]!;
  for (const [k, v] of Object.entries(extra)) mb[Number(k)] = v;
  return mb;
}

export function le16(b: Uint8Array, o: number) {
  return b[o]! | (b[o + 1]! << 8);
}
export function le32(b: Uint8Array, o: number) {
  return new DataView(b.buffer, b.byteOffset).getUint32(o, true);
}

/** A 64-byte request entry: entry type, entry_count 1, handle, then whatever `fill` writes. */
export function entry(
  type: number,
  handle: number,
  fill: (dv: DataView, b: Uint8Array) => void = () => {},
): Uint8Array {
  const { bytes, dv } = newEntry(type, handle);
  fill(dv, bytes);
  return bytes;
}

/** An FCP handler that answers GOOD with this read data, written into the command's views. */
export function readReturning(data: Uint8Array, extra: Partial<FcpResult> = {}) {
  return async (_portId: number, c: FcpCommand): Promise<FcpResult> => ({
    scsiStatus: 0,
    sense: null,
    transferred: scatterToViews(c.data, data.subarray(0, c.expectedLength)),
    ...extra,
  });
}
