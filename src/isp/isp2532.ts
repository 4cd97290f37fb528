/**
 * The emulated QLogic ISP2532 (QLE2562-like, one port = one NPIV vport) as an unmodified Linux
 * qla2xxx 10.02.x drives it: BAR1 register file, mailbox firmware, event latch and interrupts,
 * flash with NVRAM/VPD and a generated firmware image, request/response rings and the fabric
 * side through a FabricPort. Behavioural reference: drivers/scsi/qla2xxx.
 *
 * Usage (PCI side, src/isp/pci-identity.ts; SAN side, src/isp/initiator-fabric.ts):
 *   const fabric = new InitiatorFabricPort({ connect: () => connectLink(fabricSocketPath) });
 *   const pci = createIsp2532Function(); // declares BARs and IRQs
 *   const isp = new Isp2532({ host: ispHostOf(pci), fabric, wwpn, wwnn });
 *   bindIsp2532Registers(pci, isp.barHandler()); // BAR1, aliased by BAR0
 *   pci.realize(); // then hand it to the server (src/hba.ts)
 *   FLR / DEVICE_RESET: isp.reset() (through the BAR handler's reset phase);
 *   interrupt routing change: isp.interruptRoutingChanged(); teardown: await fabric.close()
 *
 * The configured wwpn/wwnn are the only names the port logs in with (src/isp/identity.ts); the
 * flash's VPD/NVRAM sector that carries them to the guest is host-owned (src/isp/flash.ts).
 */
import type { AccessSize, BarHandler } from '../pci/bar.js';
import { logger, type Logger } from '../util/log.js';
import { formatWwn } from '../util/wwn.js';
import { EventFifo, MAILBOX_COUNT } from './events.js';
import type { FabricPort } from './fabric-port.js';
import { IspFirmware } from './firmware.js';
import { buildFlashContents, FlashStore } from './flash.js';
import { RateLimitedWarnings } from './guest-error-log.js';
import { nodeScheduler, type IspHost, type IspScheduler } from './host.js';
import { IdentityPolicy, type PortIdentity } from './identity.js';
import { ISP2532_MODEL, maxSpeedGbps, type IspModel } from './model.js';
import { IspQueues } from './queues.js';
import { IspRegisterFile } from './registers.js';
import { RingEngine } from './ring/engine.js';
import { TsRingBaseline } from './ring/ts-baseline.js';
import type { RingCodec } from './ring/types.js';
import type { Trace } from '../device/trace.js';

export interface Isp2532Options {
  host: IspHost;
  /** The vport's link to the SAN; null = no cable (link stays down). */
  fabric: FabricPort | null;
  wwpn: bigint;
  wwnn: bigint;
  /**
   * Further names a future guest-created NPIV vport may log in with (IdentityPolicy.vportLogin);
   * default none. The guest cannot add to them.
   */
  npivGrants?: readonly PortIdentity[];
  scheduler?: IspScheduler;
  /**
   * Which ISP this is (src/isp/model.ts; default ISP2532_MODEL): board names, subsystem IDs in
   * NVRAM, flash layout, fastest link. Must be the model the PCI function was created for.
   */
  model?: Readonly<IspModel>;
  serialNumber?: string;
  log?: Logger;
  /** Ring codec; default the AssemblyScript RingEngine (build/ring.wasm). */
  codec?: RingCodec;
  /** See IspFirmwareOptions.reportLoginsInPortList (default false, for the qla2xxx GNL bug). */
  reportLoginsInPortList?: boolean;
  /** Clock of the warning rate limits (default Date.now). */
  now?: () => number;
}

/** The WASM ring engine, or its TypeScript twin when the WASM build is missing (logged). */
function defaultCodec(log: Logger): RingCodec {
  try {
    return new RingEngine();
  } catch (e) {
    log.warn({ event: 'ring_engine_unavailable', error: String(e) }, 'using the TypeScript ring codec');
    return new TsRingBaseline();
  }
}

export class Isp2532 {
  readonly model: Readonly<IspModel>;
  readonly identity: IdentityPolicy;
  readonly flash: FlashStore;
  readonly events: EventFifo;
  readonly firmware: IspFirmware;
  readonly queues: IspQueues;
  readonly registers: IspRegisterFile;
  private readonly log: Logger;

  constructor(o: Isp2532Options) {
    this.log = o.log ?? logger('isp2532', { wwpn: formatWwn(o.wwpn) });
    // Errors (most of them guest-triggered) are warnings, rate-limited per event name so that a
    // guest looping an invalid command cannot flood the log; the rest is debug tracing.
    const warnings = new RateLimitedWarnings(this.log, undefined, o.now);
    const trace: Trace = (event, detail) => {
      if (detail.guestError || event.includes('_err_')) warnings.warn(event, detail);
      else this.log.debug({ event, ...detail }, event);
    };
    const scheduler = o.scheduler ?? nodeScheduler;
    const model = o.model ?? ISP2532_MODEL;
    this.model = model;
    this.identity = new IdentityPolicy({ wwpn: o.wwpn, wwnn: o.wwnn }, o.npivGrants ?? []);
    const flash = buildFlashContents(
      {
        wwpn: this.identity.base.wwpn,
        wwnn: this.identity.base.wwnn,
        model: model.board,
        description: model.description,
        serialNumber: o.serialNumber ?? `NPIV${o.wwpn.toString(16).slice(-8).toUpperCase()}`,
        subsystemVendorId: model.pci.identity.subsystemVendorId,
        subsystemDeviceId: model.pci.identity.subsystemId,
      },
      model.flash,
    );
    this.flash = new FlashStore(flash.image, trace, {
      hostOwned: flash.hostOwned,
      ...(flash.nvramWindow ? { nvramWindow: flash.nvramWindow } : {}),
      ...(o.now ? { now: o.now } : {}),
    });
    const outbound = new Uint16Array(MAILBOX_COUNT);
    this.events = new EventFifo(o.host, outbound, trace);
    this.firmware = new IspFirmware({
      host: o.host,
      scheduler,
      flash: this.flash,
      events: this.events,
      fabric: o.fabric,
      identity: this.identity,
      trace,
      maxSpeedGbps: maxSpeedGbps(model),
      ...(o.now ? { now: o.now } : {}),
      ...(o.reportLoginsInPortList !== undefined ? { reportLoginsInPortList: o.reportLoginsInPortList } : {}),
    });
    this.queues = new IspQueues(
      o.host,
      scheduler,
      this.events,
      o.codec ?? defaultCodec(this.log),
      {
        command: (c) => this.firmware.onCommand(c),
        entry: (e) => this.firmware.onRequestEntry(e),
        fault: (ring, f) => this.firmware.onRingFault(ring, f),
      },
      trace,
    );
    this.firmware.attachQueues(this.queues);
    this.registers = new IspRegisterFile(this.firmware, this.events, this.queues, this.flash, outbound, trace);
    this.registers.reset();
  }

  mmioRead(offset: number, size: number): number {
    return this.registers.read(offset, size);
  }

  mmioWrite(offset: number, size: number, value: number): void {
    this.registers.write(offset, size, value);
  }

  /**
   * BAR1's register model for the PCI function (bindIsp2532Registers). The register file is
   * 32 bits wide: an 8-byte access is two dword accesses, low dword first. The whole ISP resets
   * in the function reset's enter phase.
   */
  barHandler(): BarHandler {
    return {
      read: (offset: number, size: AccessSize) => {
        if (size !== 8) return this.mmioRead(offset, size);
        const lo = BigInt(this.mmioRead(offset, 4) >>> 0);
        const hi = BigInt(this.mmioRead(offset + 4, 4) >>> 0);
        return (hi << 32n) | lo;
      },
      write: (offset: number, size: AccessSize, value: number | bigint) => {
        if (size !== 8) {
          this.mmioWrite(offset, size, Number(value));
          return;
        }
        const v = BigInt(value);
        this.mmioWrite(offset, 4, Number(v & 0xffffffffn));
        this.mmioWrite(offset + 4, 4, Number(v >> 32n));
      },
      resetEnter: () => this.reset(),
    };
  }

  /** Function-level reset (DEVICE_RESET / FLR). */
  reset(): void {
    this.registers.reset();
  }

  /** INTx/MSI/MSI-X enablement changed in config space. */
  interruptRoutingChanged(): void {
    this.events.interruptRoutingChanged();
  }
}
