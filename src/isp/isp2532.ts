/**
 * The emulated QLogic ISP2532 (QLE2562-like, one port = one NPIV vport) as an unmodified Linux
 * qla2xxx 10.02.x drives it: BAR1 register file, mailbox firmware, event latch and interrupts,
 * flash with NVRAM/VPD and a generated firmware image, request/response rings and the fabric
 * side through a FabricPort. Behavioural reference: isp25xx.md and drivers/scsi/qla2xxx.
 *
 * Usage (PCI side, src/isp/pci-identity.ts):
 *   const isp = new Isp2532({ host, fabric, wwpn, wwnn });
 *   bar1 handler = { read: (o, s) => isp.mmioRead(o, s), write: (o, s, v) => isp.mmioWrite(o, s, v) }
 *   on FLR / DEVICE_RESET: isp.reset(); on interrupt routing change: isp.interruptRoutingChanged()
 */
import { logger, type Logger } from '../util/log.js';
import { formatWwn } from '../util/wwn.js';
import { EventFifo, MAILBOX_COUNT } from './events.js';
import type { FabricPort } from './fabric-port.js';
import { IspFirmware } from './firmware.js';
import { buildFlashImage, FlashStore } from './flash.js';
import { nodeScheduler, type IspHost, type IspScheduler } from './host.js';
import { IspQueues } from './queues.js';
import { IspRegisterFile } from './registers.js';

/** BAR1 size of a real QLE2562 (registers occupy the first 0x100 bytes). */
export const ISP2532_BAR1_SIZE = 0x4000;

export interface Isp2532Options {
  host: IspHost;
  /** The vport's link to the SAN; null = no cable (link stays down). */
  fabric: FabricPort | null;
  wwpn: bigint;
  wwnn: bigint;
  scheduler?: IspScheduler;
  /** Model name in NVRAM/VPD (default "QLE2562"). */
  model?: string;
  serialNumber?: string;
  subsystemVendorId?: number;
  subsystemDeviceId?: number;
  log?: Logger;
}

export class Isp2532 {
  readonly flash: FlashStore;
  readonly events: EventFifo;
  readonly firmware: IspFirmware;
  readonly queues: IspQueues;
  readonly registers: IspRegisterFile;
  private readonly log: Logger;

  constructor(o: Isp2532Options) {
    this.log = o.log ?? logger('isp2532', { wwpn: formatWwn(o.wwpn) });
    const trace = (event: string, detail: Record<string, unknown>) => {
      if (detail.guestError || event.includes('_err_')) this.log.warn({ event, ...detail }, event);
      else this.log.debug({ event, ...detail }, event);
    };
    const scheduler = o.scheduler ?? nodeScheduler;
    const model = o.model ?? 'QLE2562';
    this.flash = new FlashStore(
      buildFlashImage({
        wwpn: o.wwpn,
        wwnn: o.wwnn,
        model,
        description: `QLogic 8Gb Fibre Channel Adapter (emulated ${model})`,
        serialNumber: o.serialNumber ?? `NPIV${o.wwpn.toString(16).slice(-8).toUpperCase()}`,
        subsystemVendorId: o.subsystemVendorId ?? 0x1077,
        subsystemDeviceId: o.subsystemDeviceId ?? 0x015d,
      }),
      trace,
    );
    const outbound = new Uint16Array(MAILBOX_COUNT);
    this.events = new EventFifo(o.host, outbound, trace);
    this.firmware = new IspFirmware({
      host: o.host,
      scheduler,
      flash: this.flash,
      events: this.events,
      fabric: o.fabric,
      trace,
    });
    this.queues = new IspQueues(o.host, scheduler, this.events, (e) => this.firmware.onRequestEntry(e), trace);
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

  /** Function-level reset (DEVICE_RESET / FLR). */
  reset(): void {
    this.registers.reset();
  }

  /** INTx/MSI/MSI-X enablement changed in config space. */
  interruptRoutingChanged(): void {
    this.events.interruptRoutingChanged();
  }
}
