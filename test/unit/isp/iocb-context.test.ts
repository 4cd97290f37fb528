/**
 * The IOCB handlers and mailbox commands against a fake context (src/isp/iocb/context.ts), with no
 * firmware, register file or rings behind them: a handler sees only guest memory, the exchange
 * table, a status sink and the addressed N_Port (fabric, login table, session phase/generation).
 */
import { describe, expect, it } from 'vitest';
import { CompStatus, Ct, Dsd64, EntryType, IOCB_SIZE, IocbHeader, Logio } from '../../../assembly/shared/iocb.js';
import {
  GNL_ENTRY_SIZE,
  LCF_COMMAND_LOGO,
  LCF_COMMAND_PLOGI,
  LSC_SCODE_NOLINK,
  LSC_SCODE_PORTID_USED,
  PDB_NPORT_HANDLE,
  PDB_PORT_ID,
} from '../../../assembly/shared/iocb-mgmt.js';
import type { FabricLoginResult, FcpCommand, FcpResult, PlogiResult } from '../../../src/isp/fabric-port.js';
import { gatherViews, scatterToViews } from '../../../src/isp/data-views.js';
import { MBC, MBS, NPH, WELL_KNOWN } from '../../../src/isp/fw-constants.js';
import { GuestDma } from '../../../src/isp/guest-dma.js';
import type { IocbContext, LinkPhase, PortSession, VportControl } from '../../../src/isp/iocb/context.js';
import { CT_REJECT, handleCtPassThrough } from '../../../src/isp/iocb/ct.js';
import { ExchangeTable } from '../../../src/isp/iocb/exchanges.js';
import { executeCommand } from '../../../src/isp/iocb/fcp.js';
import { handleLoginLogout } from '../../../src/isp/iocb/logio.js';
import { LoginTable } from '../../../src/isp/login-table.js';
import { mailboxCommand, type FirmwareControl, type MailboxContext } from '../../../src/isp/mailbox.js';
import type { CommandRequest, StatusType0 } from '../../../src/isp/ring/types.js';
import { ctAccept, FakeFabric, le16, le32, MEM_BASE, MEM_SIZE, readReturning, SCRATCH } from './helpers.js';
import { ArrayGuestMemory } from '../../support/guest-memory.js';

const TARGET = { portId: 0x010400, wwpn: 0x500a098000000001n, wwnn: 0x500a098000000000n };
const FABRIC_LOGIN: FabricLoginResult = {
  portId: 0x010203,
  fabricPortName: 0x2001000dec000001n,
  fabricName: 0x1001000dec000001n,
  speedGbps: 8,
};

/** A port whose phase and generation the test sets, as the fabric session would. */
class FakePort implements PortSession {
  readonly vpIndex = 0;
  readonly logins = new LoginTable();
  phase: LinkPhase = 'up';
  fabricLogin: FabricLoginResult | null = FABRIC_LOGIN;
  generation = 0;
  constructor(readonly fabric: FakeFabric | null) {}
  speedCode(): number {
    return 4;
  }
  portNameOf(handle: number, nodeName: boolean): bigint | null {
    const l = this.logins.get(handle);
    return l ? (nodeName ? l.wwnn : l.wwpn) : null;
  }
}

class FakeContext implements IocbContext {
  readonly memory = new ArrayGuestMemory(MEM_BASE, MEM_SIZE);
  readonly guestErrors: string[] = [];
  readonly traces: string[] = [];
  readonly statuses: StatusType0[] = [];
  readonly dma = new GuestDma({ memory: () => this.memory }, (event) => this.guestErrors.push(event));
  readonly exchanges = new ExchangeTable();
  readonly reportLoginsInPortList = false;
  readonly fabric = new FakeFabric([TARGET]);
  readonly port = new FakePort(this.fabric);
  /** No VP but the physical port: VP_CONFIG / VP_CTRL are refused. */
  readonly vports: VportControl = {
    maxVpIndex: 0,
    configure: () => 0x03,
    disable: async () => 0x01,
  };
  portOf(vpIndex: number): PortSession | null {
    return vpIndex === 0 ? this.port : null;
  }
  postStatus(status: StatusType0): void {
    this.statuses.push(status);
  }
  guestError(event: string): void {
    this.guestErrors.push(event);
  }
  trace(event: string): void {
    this.traces.push(event);
  }
}

function logio(nportHandle: number, flags: number, portId: number): Uint8Array {
  const e = new Uint8Array(IOCB_SIZE);
  const dv = new DataView(e.buffer);
  e[IocbHeader.ENTRY_TYPE] = EntryType.LOGINOUT_PORT_IOCB_TYPE;
  e[IocbHeader.ENTRY_COUNT] = 1;
  dv.setUint32(IocbHeader.HANDLE, 0x1234, true);
  dv.setUint16(Logio.NPORT_HANDLE, nportHandle, true);
  dv.setUint16(Logio.CONTROL_FLAGS, flags, true);
  e[Logio.PORT_ID] = portId & 0xff; // al_pa, area, domain
  e[Logio.PORT_ID + 1] = (portId >>> 8) & 0xff;
  e[Logio.PORT_ID + 2] = portId >>> 16;
  return e;
}

const ioParameter = (c: Uint8Array, i: number) => le32(c, Logio.IO_PARAMETER + 4 * i);

describe('Login/Logout IOCB against a fake context', () => {
  it('PLOGI+PRLI records the login in the port table and reports the PRLI word 3', async () => {
    const ctx = new FakeContext();
    const c = await handleLoginLogout(ctx, logio(0x81, LCF_COMMAND_PLOGI, TARGET.portId));
    expect(le16(c, Logio.COMP_STATUS)).toBe(CompStatus.CS_COMPLETE);
    expect(ioParameter(c, 0)).toBe(0x12); // FakeFabric's PRLI word 3, masked to the reported bits
    expect(ctx.fabric.calls).toEqual(['plogi 10400', 'prli 10400']);
    const login = ctx.port.logins.get(0x81);
    expect(login).toMatchObject({ portId: TARGET.portId, wwpn: TARGET.wwpn, prliComplete: true, prliWord3: 0x12 });
    expect(ctx.port.logins.portDatabase(0x81)).not.toBeNull();
  });

  it('refuses a PLOGI to a port ID another handle holds, without touching the fabric', async () => {
    const ctx = new FakeContext();
    ctx.port.logins.recordPlogi(0x81, TARGET.portId, { wwpn: TARGET.wwpn, wwnn: TARGET.wwnn, receiveDataSize: 2048 });
    const c = await handleLoginLogout(ctx, logio(0x82, LCF_COMMAND_PLOGI, TARGET.portId));
    expect(le16(c, Logio.COMP_STATUS)).toBe(CompStatus.CS_IOCB_ERROR);
    expect([ioParameter(c, 0), ioParameter(c, 1)]).toEqual([LSC_SCODE_PORTID_USED, 0x81]);
    expect(ctx.fabric.calls).toEqual([]);
    expect(ctx.port.logins.has(0x82)).toBe(false);
  });

  it('with the link down: PLOGI fails "no link", LOGO still frees the handle', async () => {
    const ctx = new FakeContext();
    ctx.port.logins.recordPlogi(0x81, TARGET.portId, { wwpn: TARGET.wwpn, wwnn: TARGET.wwnn, receiveDataSize: 2048 });
    ctx.port.phase = 'down';
    const plogi = await handleLoginLogout(ctx, logio(0x82, LCF_COMMAND_PLOGI, 0x010500));
    expect(ioParameter(plogi, 0)).toBe(LSC_SCODE_NOLINK);
    const logo = await handleLoginLogout(ctx, logio(0x81, LCF_COMMAND_LOGO, TARGET.portId));
    expect(le16(logo, Logio.COMP_STATUS)).toBe(CompStatus.CS_COMPLETE);
    expect(ctx.port.logins.size).toBe(0);
    expect(ctx.fabric.calls).toEqual([]);
  });

  it('a session that ends while the PLOGI is on the wire fails it "no link"', async () => {
    const ctx = new FakeContext();
    const plogi = ctx.fabric.plogi.bind(ctx.fabric);
    ctx.fabric.plogi = async (portId: number): Promise<PlogiResult> => {
      const r = await plogi(portId);
      ctx.port.generation++; // link loss or reset meanwhile
      return r;
    };
    const c = await handleLoginLogout(ctx, logio(0x81, LCF_COMMAND_PLOGI, TARGET.portId));
    expect(ioParameter(c, 0)).toBe(LSC_SCODE_NOLINK);
    expect(ctx.fabric.calls).toEqual(['plogi 10400']); // no PRLI for a stale session
  });
});

const CT_REQ = SCRATCH;
const CT_RSP = SCRATCH + 0x1000n;

function ctIocb(nportHandle: number, cmdBytes: number, rspBytes: number): Uint8Array {
  const e = new Uint8Array(IOCB_SIZE);
  const dv = new DataView(e.buffer);
  e[IocbHeader.ENTRY_TYPE] = EntryType.CT_IOCB_TYPE;
  e[IocbHeader.ENTRY_COUNT] = 1;
  dv.setUint16(Ct.NPORT_HANDLE, nportHandle, true);
  dv.setUint16(Ct.CMD_DSD_COUNT, 1, true);
  dv.setUint16(Ct.RSP_DSD_COUNT, 1, true);
  dv.setUint32(Ct.CMD_BYTE_COUNT, cmdBytes, true);
  dv.setUint32(Ct.RSP_BYTE_COUNT, rspBytes, true);
  dv.setBigUint64(Ct.DSD0 + Dsd64.ADDRESS, CT_REQ, true);
  dv.setUint32(Ct.DSD0 + Dsd64.LENGTH, cmdBytes, true);
  dv.setBigUint64(Ct.DSD1 + Dsd64.ADDRESS, CT_RSP, true);
  dv.setUint32(Ct.DSD1 + Dsd64.LENGTH, rspBytes, true);
  return e;
}

/** A name-server GID_FT request IU (FC-GS preamble + FC-4 type 8). */
function gidFt(): Uint8Array {
  const r = new Uint8Array(20);
  r[0] = 1; // revision
  r[4] = 0xfc; // directory service
  r[5] = 0x02; // name server
  r[8] = 0x01; // GID_FT
  r[9] = 0x71;
  r[19] = 0x08;
  return r;
}

describe('CT Pass-Through IOCB against a fake context', () => {
  it('carries a name-server request over the port fabric and writes the response to guest memory', async () => {
    const ctx = new FakeContext();
    ctx.port.logins.recordPlogi(NPH.SNS, WELL_KNOWN.NAME_SERVER, { wwpn: 1n, wwnn: 1n, receiveDataSize: 2048 });
    ctx.fabric.ctResponse = ctAccept(new Uint8Array([0x80, 0x01, 0x04, 0x00]));
    ctx.memory.write(CT_REQ, gidFt());
    const c = await handleCtPassThrough(ctx, ctIocb(NPH.SNS, 20, 256));
    expect(le16(c, Ct.COMP_STATUS)).toBe(CompStatus.CS_COMPLETE);
    expect(le32(c, Ct.RSP_BYTE_COUNT)).toBe(20);
    expect(ctx.fabric.calls).toEqual([`ct ${WELL_KNOWN.NAME_SERVER.toString(16)}`]);
    expect(Array.from(ctx.fabric.ctRequests[0]!)).toEqual(Array.from(gidFt()));
    expect(Array.from(ctx.memory.read(CT_RSP, 20))).toEqual(Array.from(ctx.fabric.ctResponse));
  });

  it('without a name-server login the request is "port logged out" and never reaches the fabric', async () => {
    const ctx = new FakeContext();
    ctx.memory.write(CT_REQ, gidFt());
    const c = await handleCtPassThrough(ctx, ctIocb(NPH.SNS, 20, 256));
    expect(le16(c, Ct.COMP_STATUS)).toBe(CompStatus.CS_PORT_LOGGED_OUT);
    expect(ctx.fabric.calls).toEqual([]);
  });

  it('answers the management server itself with a CT reject', async () => {
    const ctx = new FakeContext();
    ctx.memory.write(CT_REQ, gidFt());
    const c = await handleCtPassThrough(ctx, ctIocb(NPH.MGMT_SERVER, 20, 256));
    expect(le16(c, Ct.COMP_STATUS)).toBe(CompStatus.CS_COMPLETE);
    const rsp = ctx.memory.read(CT_RSP, 16);
    expect((rsp[8]! << 8) | rsp[9]!).toBe(CT_REJECT);
    expect(ctx.fabric.calls).toEqual([]);
  });

  it('declines a response buffer outside guest memory before any exchange', async () => {
    const ctx = new FakeContext();
    ctx.port.logins.recordPlogi(NPH.SNS, WELL_KNOWN.NAME_SERVER, { wwpn: 1n, wwnn: 1n, receiveDataSize: 2048 });
    const e = ctIocb(NPH.SNS, 20, 256);
    new DataView(e.buffer).setBigUint64(Ct.DSD1 + Dsd64.ADDRESS, MEM_BASE + BigInt(MEM_SIZE), true);
    const c = await handleCtPassThrough(ctx, e);
    expect(c[IocbHeader.ENTRY_STATUS]).not.toBe(0);
    expect(ctx.guestErrors).toContain('ct_err_response_unmapped');
    expect(ctx.fabric.calls).toEqual([]);
  });
});

describe('FCP command path against a fake context', () => {
  const DATA = SCRATCH + 0x2000n;
  const read = (nportHandle: number): CommandRequest => ({
    kind: 'command',
    handle: 7,
    nportHandle,
    portId: TARGET.portId,
    vpIndex: 0,
    lun: new Uint8Array(8),
    cdb: new Uint8Array([0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]),
    direction: 'read',
    totalBytes: 512,
    taskAttribute: 0,
    priority: 0,
    segments: [{ address: DATA, length: 512 }],
    entryCount: 1,
  });

  it('a handle without a process login completes "port logged out"; nothing goes to the target', () => {
    const ctx = new FakeContext();
    ctx.port.logins.recordPlogi(0x81, TARGET.portId, { wwpn: TARGET.wwpn, wwnn: TARGET.wwnn, receiveDataSize: 2048 });
    executeCommand(ctx, read(0x81));
    expect(ctx.statuses).toEqual([{ handle: 7, compStatus: CompStatus.CS_PORT_LOGGED_OUT, scsiStatus: 0 }]);
    expect(ctx.fabric.fcpCommands).toEqual([]);
  });

  it('a READ lands in the guest segments and completes once; the exchange is gone', async () => {
    const ctx = new FakeContext();
    const l = ctx.port.logins.recordPlogi(0x81, TARGET.portId, {
      wwpn: TARGET.wwpn,
      wwnn: TARGET.wwnn,
      receiveDataSize: 2048,
    });
    ctx.port.logins.prliAccepted(l, 0x12);
    const data = new Uint8Array(512).map((_, i) => i & 0xff);
    ctx.fabric.fcpHandler = readReturning(data);
    executeCommand(ctx, read(0x81));
    expect(ctx.exchanges.size).toBe(1);
    await new Promise((r) => setImmediate(r));
    expect(ctx.statuses).toEqual([{ handle: 7, compStatus: CompStatus.CS_COMPLETE, scsiStatus: 0 }]);
    expect(Array.from(ctx.memory.read(DATA, 512))).toEqual(Array.from(data));
    expect(ctx.exchanges.size).toBe(0);
  });

  it('a READ whose second segment is unmapped completes CS_DMA and writes nothing, not even the first segment', async () => {
    const ctx = new FakeContext();
    const l = ctx.port.logins.recordPlogi(0x81, TARGET.portId, {
      wwpn: TARGET.wwpn,
      wwnn: TARGET.wwnn,
      receiveDataSize: 2048,
    });
    ctx.port.logins.prliAccepted(l, 0x12);
    ctx.fabric.fcpHandler = readReturning(new Uint8Array(512).fill(0xa5));
    const cmd = {
      ...read(0x81),
      segments: [
        { address: DATA, length: 256 },
        { address: 0x7f0000000n, length: 256 },
      ],
    };
    executeCommand(ctx, cmd);
    await new Promise((r) => setImmediate(r));
    expect(ctx.statuses).toEqual([{ handle: 7, compStatus: CompStatus.CS_DMA, scsiStatus: 0 }]);
    expect(ctx.memory.read(DATA, 256).every((b) => b === 0)).toBe(true);
  });
});

describe('FCP data as views into guest memory (the FabricPort data contract)', () => {
  const A = SCRATCH + 0x4000n;
  const B = SCRATCH + 0x8000n;
  const C = SCRATCH + 0x9000n;
  const command = (direction: 'read' | 'write', segments: { address: bigint; length: number }[]): CommandRequest => ({
    kind: 'command',
    handle: 9,
    nportHandle: 0x81,
    portId: TARGET.portId,
    vpIndex: 0,
    lun: new Uint8Array(8),
    cdb: new Uint8Array([direction === 'read' ? 0x28 : 0x2a, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]),
    direction,
    totalBytes: segments.reduce((n, s) => n + s.length, 0),
    taskAttribute: 0,
    priority: 0,
    segments,
    entryCount: 1,
  });
  const loggedIn = (): FakeContext => {
    const ctx = new FakeContext();
    const l = ctx.port.logins.recordPlogi(0x81, TARGET.portId, {
      wwpn: TARGET.wwpn,
      wwnn: TARGET.wwnn,
      receiveDataSize: 2048,
    });
    ctx.port.logins.prliAccepted(l, 0x12);
    return ctx;
  };
  const settle = () => new Promise((r) => setImmediate(r));
  const pattern = (n: number) => new Uint8Array(n).map((_, i) => (i * 7 + 3) & 0xff);

  it('a WRITE hands the target the guest segments themselves, in order, with no firmware copy', async () => {
    const ctx = loggedIn();
    const data = pattern(300 + 1000 + 12);
    ctx.memory.write(A, data.subarray(0, 300));
    ctx.memory.write(B, data.subarray(300, 1300));
    ctx.memory.write(C, data.subarray(1300));
    const reads = ctx.memory.reads;
    executeCommand(
      ctx,
      command('write', [
        { address: A, length: 300 },
        { address: B, length: 1000 },
        { address: C, length: 12 },
      ]),
    );
    const c = ctx.fabric.fcpCommands[0]!;
    expect(c.data.map((v) => v.byteLength)).toEqual([300, 1000, 12]);
    expect(Array.from(gatherViews(c.data, 1312)!)).toEqual(Array.from(data));
    ctx.memory.write(B, Uint8Array.of(0xee)); // live: a later guest store shows through the view
    expect(c.data[1]![0]).toBe(0xee);
    expect(ctx.memory.reads).toBe(reads); // no copy-in of the data by the firmware
    await settle();
    expect(ctx.statuses).toEqual([{ handle: 9, compStatus: CompStatus.CS_COMPLETE, scsiStatus: 0 }]);
  });

  it('a READ scattered by the target across three segments lands in each; a short one is an underrun', async () => {
    const ctx = loggedIn();
    const data = pattern(700);
    ctx.fabric.fcpHandler = readReturning(data);
    executeCommand(
      ctx,
      command('read', [
        { address: A, length: 256 },
        { address: B, length: 256 },
        { address: C, length: 512 },
      ]),
    );
    await settle();
    expect(Array.from(ctx.memory.read(A, 256))).toEqual(Array.from(data.subarray(0, 256)));
    expect(Array.from(ctx.memory.read(B, 256))).toEqual(Array.from(data.subarray(256, 512)));
    expect(Array.from(ctx.memory.read(C, 188))).toEqual(Array.from(data.subarray(512)));
    expect(ctx.memory.read(C + 188n, 324).every((b) => b === 0)).toBe(true);
    expect(ctx.statuses).toEqual([
      {
        handle: 9,
        compStatus: CompStatus.CS_DATA_UNDERRUN,
        scsiStatus: 0,
        residual: { kind: 'under', bytes: 1024 - 700 },
      },
    ]);
  });

  it('a WRITE the target took part of reports the residual; a count past FCP_DL is capped', async () => {
    const ctx = loggedIn();
    ctx.fabric.fcpHandler = async () => ({ scsiStatus: 0, sense: null, transferred: 512 });
    executeCommand(ctx, command('write', [{ address: A, length: 2048 }]));
    await settle();
    expect(ctx.statuses[0]).toMatchObject({ compStatus: CompStatus.CS_DATA_UNDERRUN, residual: { bytes: 1536 } });
    const again = loggedIn();
    again.fabric.fcpHandler = async () => ({ scsiStatus: 0, sense: null, transferred: 1 << 30 });
    executeCommand(again, command('read', [{ address: A, length: 2048 }]));
    await settle();
    expect(again.statuses[0]).toMatchObject({ compStatus: CompStatus.CS_COMPLETE });
  });

  it('a WRITE from a segment that is not mapped is CS_DMA before anything reaches the target', async () => {
    const ctx = loggedIn();
    executeCommand(
      ctx,
      command('write', [
        { address: A, length: 512 },
        { address: 0x7f0000000n, length: 512 },
      ]),
    );
    expect(ctx.statuses).toEqual([{ handle: 9, compStatus: CompStatus.CS_DMA, scsiStatus: 0 }]);
    expect(ctx.fabric.fcpCommands).toEqual([]);
    expect(ctx.guestErrors).toContain('fcp_err_write_dma');
  });

  it('a READ into a read-only window is CS_DMA (the views are checked for the access the transfer needs)', async () => {
    const ctx = loggedIn();
    const RO = 0x6000_0000n;
    ctx.memory.map(RO, 4096, false);
    executeCommand(ctx, command('read', [{ address: RO, length: 512 }]));
    expect(ctx.statuses).toEqual([{ handle: 9, compStatus: CompStatus.CS_DMA, scsiStatus: 0 }]);
    expect(ctx.fabric.fcpCommands).toEqual([]);
    executeCommand(ctx, { ...command('write', [{ address: RO, length: 512 }]), handle: 10 });
    expect(ctx.fabric.fcpCommands).toHaveLength(1); // a write only reads the guest buffer
  });

  it('a window unmapped while the READ is in flight: CS_DMA, no crash, nothing written elsewhere', async () => {
    const ctx = loggedIn();
    const W = 0x6000_0000n;
    ctx.memory.map(W, 4096);
    let answer!: (r: FcpResult) => void;
    let cmd!: FcpCommand;
    ctx.fabric.fcpHandler = (_p, c) => {
      cmd = c;
      return new Promise<FcpResult>((r) => (answer = r));
    };
    executeCommand(
      ctx,
      command('read', [
        { address: A, length: 512 },
        { address: W, length: 512 },
        { address: B, length: 512 },
      ]),
    );
    ctx.memory.unmap(W); // DMA_UNMAP while the exchange runs
    expect(cmd.data.map((v) => v.byteLength)).toEqual([512, 0, 512]);
    // The backend scatters what it can: it must stop at the detached view, never shift the rest.
    const moved = scatterToViews(cmd.data, new Uint8Array(1536).fill(0xab));
    expect(moved).toBe(512);
    expect(ctx.memory.read(B, 512).every((b) => b === 0)).toBe(true);
    answer({ scsiStatus: 0, sense: null, transferred: moved, transportError: 'dma' });
    await settle();
    expect(ctx.statuses).toEqual([{ handle: 9, compStatus: CompStatus.CS_DMA, scsiStatus: 0 }]);
    expect(ctx.exchanges.size).toBe(0);
  });

  it('the views are released back to the guest at completion, on abort/TMF termination and on reset', async () => {
    const ctx = loggedIn();
    const answers: ((r: FcpResult) => void)[] = [];
    ctx.fabric.fcpHandler = () => new Promise<FcpResult>((r) => answers.push(r));
    executeCommand(ctx, command('read', [{ address: A, length: 512 }]));
    executeCommand(ctx, { ...command('read', [{ address: B, length: 512 }]), handle: 10 });
    executeCommand(ctx, { ...command('read', [{ address: C, length: 512 }]), handle: 11 });
    const [first, second, third] = ctx.fabric.fcpCommands;
    expect([first, second, third].map((c) => c!.released.aborted)).toEqual([false, false, false]);
    answers[0]!({ scsiStatus: 0, sense: null, transferred: 512 });
    await settle();
    expect(first!.released.aborted).toBe(true);
    expect(ctx.exchanges.get(10)!.terminate(CompStatus.CS_ABORTED)).toBe(true); // Abort IO / TMF
    expect(second!.released.aborted).toBe(true);
    ctx.exchanges.clear(); // firmware reset: forgotten without a completion
    expect(third!.released.aborted).toBe(true);
    answers[2]!({ scsiStatus: 0, sense: null, transferred: 512 });
    await settle();
    expect(ctx.statuses.map((s) => s.handle)).toEqual([9, 10]);
  });

  it('a window unmapped while a WRITE is in flight: CS_DMA even if the backend claims success', async () => {
    const ctx = loggedIn();
    const W = 0x6000_0000n;
    ctx.memory.map(W, 4096);
    let answer!: (r: FcpResult) => void;
    ctx.fabric.fcpHandler = () => new Promise<FcpResult>((r) => (answer = r));
    executeCommand(ctx, command('write', [{ address: W, length: 4096 }]));
    ctx.memory.unmap(W);
    expect(gatherViews(ctx.fabric.fcpCommands[0]!.data, 4096)).toBeNull(); // a backend cannot gather it
    answer({ scsiStatus: 0, sense: null, transferred: 4096 });
    await settle();
    expect(ctx.statuses).toEqual([{ handle: 9, compStatus: CompStatus.CS_DMA, scsiStatus: 0 }]);
    expect(ctx.guestErrors).toContain('fcp_err_dma_unmapped');
  });
});

describe('mailbox commands against a fake context', () => {
  class Controls implements FirmwareControl {
    calls: string[] = [];
    firmwareImageLoaded() {
      this.calls.push('loaded');
    }
    startFirmware() {
      this.calls.push('start');
    }
    stopFirmware() {
      this.calls.push('stop');
    }
    initializeFirmware() {
      this.calls.push('init');
      return MBS.COMMAND_COMPLETE;
    }
    firmwareState() {
      return 3;
    }
    restartLink() {
      this.calls.push('lip');
    }
    async executeIocbInPlace() {
      return MBS.COMMAND_COMPLETE;
    }
  }
  const mailboxContext = (): FakeContext & MailboxContext & { firmware: Controls } => {
    const ctx = new FakeContext();
    return Object.assign(ctx, { flash: { readBytes: () => null }, firmware: new Controls() });
  };

  it('GET_ADAPTER_ID reports the N_Port ID of the port’s fabric login, "loop transition" before it', () => {
    const ctx = mailboxContext();
    const mb = new Uint16Array(32);
    mb[0] = MBC.GET_ADAPTER_LOOP_ID;
    const r = mailboxCommand(MBC.GET_ADAPTER_LOOP_ID)!.handler(ctx, mb) as Uint16Array;
    expect(r[0]).toBe(MBS.COMMAND_COMPLETE);
    expect((r[3]! << 16) | r[2]!).toBe(FABRIC_LOGIN.portId);
    ctx.port.fabricLogin = null; // link not up yet: the driver retries on "loop transition"
    expect((mailboxCommand(MBC.GET_ADAPTER_LOOP_ID)!.handler(ctx, mb) as Uint16Array)[0]).toBe(MBS.COMMAND_ERROR);
  });

  it('LIP goes to the RISC controls, GET_PORT_DATABASE to the port login table', () => {
    const ctx = mailboxContext();
    const lip = new Uint16Array(32);
    lip[0] = MBC.INITIATE_LIP;
    mailboxCommand(MBC.INITIATE_LIP)!.handler(ctx, lip);
    expect(ctx.firmware.calls).toEqual(['lip']);
    const gpdb = new Uint16Array(32);
    gpdb[0] = MBC.GET_PORT_DATABASE;
    gpdb[1] = 0x81;
    gpdb[2] = Number((SCRATCH >> 16n) & 0xffffn);
    gpdb[3] = Number(SCRATCH & 0xffffn);
    expect((mailboxCommand(MBC.GET_PORT_DATABASE)!.handler(ctx, gpdb) as Uint16Array)[0]).toBe(MBS.NOT_LOGGED_IN);
    ctx.port.logins.recordPlogi(0x81, TARGET.portId, { wwpn: TARGET.wwpn, wwnn: TARGET.wwnn, receiveDataSize: 2048 });
    expect((mailboxCommand(MBC.GET_PORT_DATABASE)!.handler(ctx, gpdb) as Uint16Array)[0]).toBe(MBS.COMMAND_COMPLETE);
    const pdb = ctx.port.logins.portDatabase(0x81)!;
    expect(Array.from(ctx.memory.read(SCRATCH, pdb.length))).toEqual(Array.from(pdb));
  });
});

describe('LoginTable name list (GNL)', () => {
  it('lists remote-port handles up to NPH_LAST_HANDLE, not the well-known ones from the management server up', () => {
    const t = new LoginTable();
    const accept = { wwpn: TARGET.wwpn, wwnn: TARGET.wwnn, receiveDataSize: 2048 };
    t.recordPlogi(NPH.LAST_HANDLE, TARGET.portId, accept);
    t.recordPlogi(NPH.MGMT_SERVER, WELL_KNOWN.MGMT_SERVER, accept);
    t.recordPlogi(NPH.SNS, WELL_KNOWN.NAME_SERVER, accept);
    const list = t.nameList(4096);
    expect(list.length).toBe(GNL_ENTRY_SIZE);
    expect(le16(list, PDB_NPORT_HANDLE)).toBe(NPH.LAST_HANDLE);
    // The GNL entry's port ID is al_pa, area, domain (little-endian), unlike the port database.
    expect(list[PDB_PORT_ID]! | (list[PDB_PORT_ID + 1]! << 8) | (list[PDB_PORT_ID + 2]! << 16)).toBe(TARGET.portId);
  });
});
