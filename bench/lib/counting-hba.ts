/**
 * The production vport HBA (src/hba.ts: VportHba = ISP2532 model + PCI function + vfio-user
 * server, cabled to the SAN through InitiatorFabricPort, exactly as `npiv-hba serve` builds it),
 * run inside the benchmark process with counters around its device boundary, for the
 * end-to-end profile:
 *   - every region access QEMU makes (each one is a vfio-user message: a round trip for reads,
 *     a posted or acknowledged write), split by region (BAR1 registers, config space, other);
 *   - every interrupt the device signals (eventfd writes);
 *   - every DMA access to guest memory (copy-in read/readInto, copy-out write, zero-copy view)
 *     and the bytes moved.
 * The counters are plain increments; the wrapping adds a function call per access.
 */
import { VportHba } from '../../src/hba.js';
import { InitiatorFabricPort } from '../../src/isp/initiator-fabric.js';
import { connectLink } from '../../src/fc/link.js';
import type { GuestMemory } from '../../src/device/guest-memory.js';
import type { IrqSignaller } from '../../src/device/interrupts.js';
import type { DeviceContext } from '../../src/device/context.js';
import { logger } from '../../src/util/log.js';
import { VFIO_PCI_BAR1_REGION_INDEX, VFIO_PCI_CONFIG_REGION_INDEX } from '../../src/device/linux-vfio.js';

export interface HbaCounters {
  bar1Reads: number;
  bar1Writes: number;
  configReads: number;
  configWrites: number;
  otherRegionAccesses: number;
  interrupts: number;
  dmaReads: number;
  dmaReadBytes: number;
  dmaWrites: number;
  dmaWriteBytes: number;
  dmaViews: number;
  dmaViewBytes: number;
}

export function zeroCounters(): HbaCounters {
  return {
    bar1Reads: 0,
    bar1Writes: 0,
    configReads: 0,
    configWrites: 0,
    otherRegionAccesses: 0,
    interrupts: 0,
    dmaReads: 0,
    dmaReadBytes: 0,
    dmaWrites: 0,
    dmaWriteBytes: 0,
    dmaViews: 0,
    dmaViewBytes: 0,
  };
}

export function diffCounters(after: HbaCounters, before: HbaCounters): HbaCounters {
  const out = zeroCounters();
  for (const k of Object.keys(out) as (keyof HbaCounters)[]) out[k] = after[k] - before[k];
  return out;
}

function countingMemory(memory: GuestMemory, c: HbaCounters): GuestMemory {
  return {
    read(address, length) {
      c.dmaReads++;
      c.dmaReadBytes += length;
      return memory.read(address, length);
    },
    readInto(address, dst, dstOffset, length) {
      c.dmaReads++;
      c.dmaReadBytes += length ?? dst.length - (dstOffset ?? 0);
      memory.readInto(address, dst, dstOffset, length);
    },
    write(address, data) {
      c.dmaWrites++;
      c.dmaWriteBytes += data.length;
      memory.write(address, data);
    },
    isMapped: (address, length, access) => memory.isMapped(address, length, access),
    view(address, length, access) {
      c.dmaViews++;
      c.dmaViewBytes += length;
      return memory.view(address, length, access);
    },
    views(address, length, access) {
      c.dmaViews++;
      c.dmaViewBytes += length;
      return memory.views(address, length, access);
    },
  };
}

function countingIrq(irq: IrqSignaller, c: HbaCounters): IrqSignaller {
  return {
    trigger(index, vector) {
      const sent = irq.trigger(index, vector);
      if (sent) c.interrupts++;
      return sent;
    },
    activeIndex: () => irq.activeIndex(),
    boundVectors: (index) => irq.boundVectors(index),
  };
}

export interface CountingHba {
  hba: VportHba;
  fabric: InitiatorFabricPort;
  counters: HbaCounters;
  close(): Promise<void>;
}

export function startCountingHba(socketPath: string, sanLink: string, wwpn: bigint, wwnn: bigint): CountingHba {
  const log = logger('bench-hba');
  const fabric = new InitiatorFabricPort({ connect: () => connectLink(sanLink), log: log.child({ layer: 'fabric' }) });
  const hba = new VportHba({ socketPath, wwpn, wwnn, fabric, log });
  const counters = zeroCounters();
  const pci = hba.pci;
  // The server holds this very object as its device: shadow its methods on the instance.
  const regionRead = pci.regionRead.bind(pci);
  const regionWrite = pci.regionWrite.bind(pci);
  const attach = pci.attach.bind(pci);
  pci.regionRead = (index: number, offset: number, length: number) => {
    if (index === VFIO_PCI_BAR1_REGION_INDEX) counters.bar1Reads++;
    else if (index === VFIO_PCI_CONFIG_REGION_INDEX) counters.configReads++;
    else counters.otherRegionAccesses++;
    return regionRead(index, offset, length);
  };
  pci.regionWrite = (index: number, offset: number, data: Uint8Array) => {
    if (index === VFIO_PCI_BAR1_REGION_INDEX) counters.bar1Writes++;
    else if (index === VFIO_PCI_CONFIG_REGION_INDEX) counters.configWrites++;
    else counters.otherRegionAccesses++;
    regionWrite(index, offset, data);
  };
  pci.attach = (ctx: DeviceContext) =>
    attach({ memory: countingMemory(ctx.memory, counters), irq: countingIrq(ctx.irq, counters) });
  hba.start();
  return {
    hba,
    fabric,
    counters,
    async close() {
      hba.close();
      await fabric.close();
    },
  };
}
