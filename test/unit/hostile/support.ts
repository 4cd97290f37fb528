/**
 * Support for the end-to-end hostile-guest tests: the REAL composed HBA (src/hba.ts VportHba:
 * ISP2532 model + PCI function + vfio-user server) on a real Unix socket, attached through the
 * in-repo vfio-user client the way QEMU >= 10.1 attaches, with a memfd as guest RAM.
 *
 *  - `rng(seed)`, `withSeed`: the tests' seeded PRNG (test/support/rng.ts), re-exported here.
 *  - `LogCapture`: a pino logger into memory; the tests assert that no error-level record (a
 *    handler that threw, "crashed", "uncaught") was logged by the server.
 *  - `startHba()`: a VportHba on a temporary socket, optionally cabled to a SAN link socket.
 *  - `GuestMachine`: the shared qla2xxx-like guest model (src/vm-model/qla-guest.ts: BAR1
 *    register access, polled mailboxes with a bounded wait, the qla2xxx probe, SNS login, GPN_FT,
 *    PLOGI+PRLI and Command Type 7 I/O on the rings) with guest RAM mapped at RAM.BASE and
 *    pre-filled with a canary pattern (`canaryDamage()`, `fillCanary()`); the model's constants
 *    and entry builders are re-exported from here.
 *
 * Guest-physical layout (RAM.BASE = 1 MiB, so addresses below and above RAM are unmapped):
 *
 *   RAM.BASE + 0x000000  ┌──────────────────────────────┐
 *              0x001000  │ ICB (128 bytes)              │
 *              0x002000  │ scratch (IOCB via mailbox)   │
 *              0x004000  │ CT request / 0x5000 response │
 *              0x010000  │ request ring  (REQ_ENTRIES)  │
 *              0x020000  │ response ring (RSP_ENTRIES)  │
 *              0x040000  │ I/O data buffers             │
 *              0x200000  │ fuzz target area (to the end)│
 *   RAM.BASE + RAM.SIZE  └──────────────────────────────┘
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino, type Logger } from 'pino';
import { VportHba } from '../../../src/hba.js';
import type { FabricPort } from '../../../src/isp/fabric-port.js';
import { InitiatorFabricPort } from '../../../src/isp/initiator-fabric.js';
import type { Isp2532Interrupts } from '../../../src/isp/pci-identity.js';
import { parseSanConfig } from '../../../src/san/config.js';
import { connectLink } from '../../../src/fc/link.js';
import { San } from '../../../src/san/san.js';
import { formatWwn } from '../../../src/util/wwn.js';
import {
  QLA_LAYOUT,
  QlaGuest,
  sleep,
  type QlaGuestOptions,
  type QlaGuestParts,
} from '../../../src/vm-model/qla-guest.js';

export {
  BLOCK,
  HSRX_RISC_INT,
  MAX_HANDLE_INDEX,
  MBC,
  MBS_COMMAND_COMPLETE,
  NPORT_HANDLE_SNS,
  SCSI_READ_10,
  SCSI_WRITE_10,
  TARGET_NPORT_HANDLE,
  TimeoutError,
  handleOf,
  ioEntry,
  newEntry,
  sleep,
  swapDwords,
  type MailboxResult,
} from '../../../src/vm-model/qla-guest.js';

// --- deterministic randomness ------------------------------------------------------------

export { rng, withSeed, type Rng } from '../../support/rng.js';

// --- log capture ---------------------------------------------------------------------------

export interface LogRecord {
  level: number;
  msg?: string;
  [key: string]: unknown;
}

/**
 * Error-level records that are deliberate advice to the operator about a peer's configuration,
 * not a server failure (session.ts: a DMA window without an fd means QEMU's RAM is not shared).
 */
const OPERATOR_DIAGNOSTICS = [/^DMA_MAP of writable guest memory without a file descriptor/];
/** pino levels: 50 = error, 60 = fatal. */
const PINO_ERROR = 50;

/** A pino logger writing parsed records into memory (warn and above). */
export class LogCapture {
  readonly records: LogRecord[] = [];
  readonly logger: Logger;
  constructor(level = 'warn') {
    this.logger = pino(
      { level, base: null },
      { write: (line: string) => void this.records.push(JSON.parse(line) as LogRecord) },
    );
  }
  /** Records saying the server failed: error/fatal level, or anything mentioning an uncaught exception. */
  failures(): LogRecord[] {
    return this.records.filter(
      (r) =>
        (r.level >= PINO_ERROR || /uncaught|crash/i.test(JSON.stringify(r))) &&
        !OPERATOR_DIAGNOSTICS.some((d) => d.test(r.msg ?? '')),
    );
  }
}

// --- the HBA under test --------------------------------------------------------------------

export const VPORT = { wwpn: 0xc05076ffe5000101n, wwnn: 0xc05076ffe5000100n };

export interface HbaUnderTest {
  hba: VportHba;
  socketPath: string;
  logs: LogCapture;
  fabric: FabricPort | null;
  close(): Promise<void>;
}

/** A VportHba on a fresh socket; with `sanLink`, cabled to that SAN link socket (as `serve --san`). */
export function startHba(
  o: { sanLink?: string; wwpn?: bigint; wwnn?: bigint; interrupts?: Isp2532Interrupts } = {},
): HbaUnderTest {
  const dir = mkdtempSync(join(tmpdir(), 'npiv-hostile-'));
  const socketPath = join(dir, 'vport.sock');
  const logs = new LogCapture();
  const sanLink = o.sanLink;
  const fabric =
    sanLink === undefined
      ? null
      : new InitiatorFabricPort({ connect: () => connectLink(sanLink), log: logs.logger.child({ layer: 'fabric' }) });
  const hba = new VportHba({
    socketPath,
    wwpn: o.wwpn ?? VPORT.wwpn,
    wwnn: o.wwnn ?? VPORT.wwnn,
    fabric,
    log: logs.logger,
    ...(o.interrupts ? { interrupts: o.interrupts } : {}),
  });
  hba.start();
  return {
    hba,
    socketPath,
    logs,
    fabric,
    async close() {
      hba.close();
      if (fabric instanceof InitiatorFabricPort) await fabric.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

// --- an in-process SAN ---------------------------------------------------------------------

export const SAN_TARGET = { wwpn: '50:0a:09:81:00:00:00:01', wwnn: '50:0a:09:80:00:00:00:01' };
/** The RAM volume behind LUN 0 of the target: 1 MiB = 2048 blocks of 512 bytes. */
export const SAN_VOLUME_BLOCKS = 2048;

export interface TestSan {
  san: San;
  linkPath: string;
  close(): Promise<void>;
}

/** One fabric (zoning: allow), one array with one target port and a RAM volume as LUN 0 for VPORT. */
export async function startRamSan(): Promise<TestSan> {
  const dir = mkdtempSync(join(tmpdir(), 'npiv-hostile-san-'));
  const linkPath = join(dir, 'link.sock');
  const config = parseSanConfig({
    fabric: { name: 'hostile', domain: 1, zoning: { default: 'allow', zones: [] } },
    arrays: [
      {
        name: 'array1',
        ports: [SAN_TARGET],
        volumes: [{ name: 'ram', size: '1MiB' }],
        hostGroups: [{ name: 'h', initiators: [formatWwn(VPORT.wwpn)], luns: { '0': 'ram' } }],
      },
    ],
  });
  const san = await San.start(config, { linkPath, targetPortOptions: { exchangeTimeoutMs: 2000 } });
  return {
    san,
    linkPath,
    async close() {
      await san.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

// --- the guest ------------------------------------------------------------------------------

export const RAM = { BASE: 0x10_0000n, SIZE: 4 * 1024 * 1024 } as const;
export const LAYOUT = {
  ...QLA_LAYOUT,
  DATA: 0x40000,
  DATA_END: 0x200000,
  FUZZ: 0x200000,
} as const;
export const REQ_ENTRIES = 128;
export const RSP_ENTRIES = 128;

/** The byte the canary pattern holds at RAM offset i (not periodic at any small power of two). */
export function canaryByte(i: number): number {
  return (i * 0x9d + (i >>> 7) * 0x35 + 0x5a) & 0xff;
}

/** The shared guest model with this file's layout, canary-filled RAM and VPORT as its default port names. */
export class GuestMachine extends QlaGuest {
  private constructor(parts: QlaGuestParts) {
    super(parts);
  }

  /** Connects and replays QEMU's attach with canary-filled RAM; enables memory space and bus mastering. */
  static attach(socketPath: string, o: { timeoutMs?: number; msixVectors?: number } = {}): Promise<GuestMachine> {
    const options: QlaGuestOptions = {
      memfdName: 'hostile-guest-ram',
      ramBase: RAM.BASE,
      ramSize: RAM.SIZE,
      reqEntries: REQ_ENTRIES,
      rspEntries: RSP_ENTRIES,
      timeoutMs: o.timeoutMs ?? 5000,
      msixVectors: o.msixVectors ?? 2,
      fill: (ram) => {
        for (let i = 0; i < RAM.SIZE; i++) ram[i] = canaryByte(i);
      },
    };
    return QlaGuest.connect(socketPath, options, (parts) => new GuestMachine(parts));
  }

  /** Offsets (at most `limit`) in RAM that no longer hold the canary, outside the `allowed` [start, end) ranges. */
  canaryDamage(allowed: readonly (readonly [number, number])[], limit = 8): number[] {
    const bad: number[] = [];
    const sorted = [...allowed].sort((a, b) => a[0] - b[0]);
    let i = 0;
    for (const [start, end] of [...sorted, [RAM.SIZE, RAM.SIZE] as const]) {
      for (; i < start && bad.length < limit; i++) if (this.ram[i] !== canaryByte(i)) bad.push(i);
      i = Math.max(i, end);
    }
    return bad;
  }

  /** Restores the canary in [start, end). */
  fillCanary(start: number, end: number): void {
    for (let i = start; i < end; i++) this.ram[i] = canaryByte(i);
  }

  /** The qla2xxx probe in polling mode up to LOOP UP + PORT UPDATE (when `expectLink`), as VPORT unless told. */
  probe(o: { wwpn?: bigint; wwnn?: bigint; expectLink?: boolean; linkTimeoutMs?: number } = {}): Promise<void> {
    return this.initializeAdapter({
      wwpn: o.wwpn ?? VPORT.wwpn,
      wwnn: o.wwnn ?? VPORT.wwnn,
      expectLink: o.expectLink,
      linkTimeoutMs: o.linkTimeoutMs,
    });
  }
}

/** Attaches with retries: the server serves one client at a time and notices a hang-up asynchronously. */
export async function attachWhenFree(socketPath: string, attempts = 100): Promise<GuestMachine> {
  let last: unknown;
  for (let i = 0; i < attempts; i++) {
    try {
      return await GuestMachine.attach(socketPath);
    } catch (err) {
      last = err;
      await sleep(10);
    }
  }
  throw last instanceof Error ? last : new Error(String(last));
}
