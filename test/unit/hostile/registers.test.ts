/**
 * Hostile guest, register level, end to end: random BAR1 accesses of every width (at every named
 * ISP2532 register and at random offsets, in and beyond the BAR), random config-space writes,
 * random BAR0 (I/O window) and absent-region accesses, all through vfio-user REGION_READ/WRITE on
 * the real composed VportHba. Every read must get a reply (data of the asked size or an error
 * reply), nothing may be logged at error level, guest RAM outside the rings keeps its canary, and
 * after DEVICE_RESET the qla2xxx probe sequence must work again.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { HCCRX, REG } from '../../../src/isp/registers.js';
import { ISP2532_CAP_MSIX, ISP2532_MSIX_PBA_OFFSET, ISP2532_MSIX_TABLE_OFFSET } from '../../../src/isp/pci-identity.js';
import { native } from '../../../src/native/index.js';
import { VfioUserRequestError } from '../../../src/vfio-user/client.js';
import { ERRNO } from '../../../src/vfio-user/protocol.js';

import {
  GuestMachine,
  HSRX_RISC_INT,
  LAYOUT,
  MBC,
  MBS_COMMAND_COMPLETE,
  REQ_ENTRIES,
  RSP_ENTRIES,
  sleep,
  startHba,
  withSeed,
  type HbaUnderTest,
  type Rng,
} from './support.js';
import {
  VFIO_IRQ_SET_ACTION_UNMASK,
  VFIO_IRQ_SET_DATA_NONE,
  VFIO_PCI_BAR0_REGION_INDEX,
  VFIO_PCI_BAR1_REGION_INDEX,
  VFIO_PCI_CONFIG_REGION_INDEX,
  VFIO_PCI_INTX_IRQ_INDEX,
} from '../../../src/device/linux-vfio.js';

const NAMED_OFFSETS = Object.entries(REG)
  .filter(([name]) => name !== 'SIZE')
  .map(([, offset]) => offset);
const WIDTHS = [1, 2, 4, 8] as const;
/** Widths no CPU issues for one MMIO access; the server must refuse them, not misbehave. */
const ODD_WIDTHS = [0, 3, 5, 16, 4096];
const PCI_CONFIG_SIZE = 4096;
/** MSI-X capability: Message Control at +2; Enable is bit 15 (high byte 0x80). */
const MSIX_FLAGS = 2;
const MSIX_ENABLE_HI = 0x80;
/** ICTRL ICRX_EN_RISC_INT. */
const ICTRL_ENABLE_RISC_INT = 0x8;
/** Errnos that mean the server is gone or stuck rather than refusing an access. */
const FATAL_ERRNOS: number[] = [ERRNO.ETIMEDOUT, ERRNO.ENOTCONN];

/** RAM the device may legitimately write during register fuzz: ICB/scratch/CT buffers and both rings. */
const DEVICE_WRITABLE: [number, number][] = [
  [LAYOUT.ICB, LAYOUT.REQ_RING],
  [LAYOUT.REQ_RING, LAYOUT.REQ_RING + REQ_ENTRIES * 64],
  [LAYOUT.RSP_RING, LAYOUT.RSP_RING + RSP_ENTRIES * 64],
];

function randomOffset(r: Rng, barSize: number): number | bigint {
  switch (r.int(6)) {
    case 0:
    case 1:
      return r.pick(NAMED_OFFSETS) + r.int(4);
    case 2:
      return REG.MAILBOX0 + 2 * r.int(32);
    case 3:
      return r.int(REG.SIZE);
    case 4:
      return r.int(barSize + 0x100);
    default:
      return r.chance(0.5) ? r.u64() : BigInt(barSize - r.int(8));
  }
}

function randomValue(r: Rng, width: number): Uint8Array {
  const b = r.bytes(width);
  // Bias toward the values registers care about: HCCR commands in the top nibble, ring indices.
  if (width === 4 && r.chance(0.3)) new DataView(b.buffer).setUint32(0, ((r.int(16) << 28) | r.int(0x200)) >>> 0, true);
  return b;
}

/** An access must be answered: a reply of the asked size, or an error reply that is not a timeout/hang-up. */
async function expectAnswered(p: Promise<unknown>, count: number | null, what: string): Promise<void> {
  try {
    const data = await p;
    if (count !== null && data instanceof Uint8Array) expect(data.length, what).toBe(count);
  } catch (err) {
    if (!(err instanceof VfioUserRequestError) || FATAL_ERRNOS.includes(err.errno))
      throw new Error(`${what}: ${(err as Error).message}`);
  }
}

describe('hostile guest: registers through vfio-user', () => {
  let hut: HbaUnderTest;
  let guest: GuestMachine;
  beforeEach(async () => {
    hut = startHba();
    guest = await GuestMachine.attach(hut.socketPath);
  });
  afterEach(async () => {
    guest.close();
    await hut.close();
  });

  it('answers 6000 random BAR1/BAR0/config/absent-region accesses, then probes cleanly after DEVICE_RESET', async () => {
    await withSeed(0x5eed0001, async (r) => {
      await guest.probe({ expectLink: false });
      const bar1Size = guest.regionSizes[VFIO_PCI_BAR1_REGION_INDEX]!;
      const bar0Size = guest.regionSizes[VFIO_PCI_BAR0_REGION_INDEX]!;
      expect(bar1Size).toBeGreaterThanOrEqual(REG.SIZE);
      const client = guest.client;
      let reads = 0;
      for (let i = 0; i < 6_000; i++) {
        const kind = r.int(20);
        const width = r.chance(0.05) ? r.pick(ODD_WIDTHS) : r.pick(WIDTHS);
        const what = `iteration ${i}`;
        if (kind < 12) {
          const offset = randomOffset(r, bar1Size);
          if (r.chance(0.5)) {
            reads++;
            await expectAnswered(
              client.regionRead(VFIO_PCI_BAR1_REGION_INDEX, offset, width),
              width,
              `${what}: BAR1 read ${width}@${offset.toString(16)}`,
            );
          } else if (r.chance(0.8)) {
            await client.regionWrite(VFIO_PCI_BAR1_REGION_INDEX, offset, randomValue(r, width), true);
          } else {
            await expectAnswered(
              client.regionWrite(VFIO_PCI_BAR1_REGION_INDEX, offset, randomValue(r, width)),
              null,
              `${what}: BAR1 write`,
            );
          }
        } else if (kind < 15) {
          // Config space, including the command register, BARs, capability bodies and beyond the end.
          const offset = r.chance(0.9) ? r.int(PCI_CONFIG_SIZE + 8) : r.u64();
          await expectAnswered(
            client.regionWrite(VFIO_PCI_CONFIG_REGION_INDEX, offset, randomValue(r, width)),
            null,
            `${what}: config write`,
          );
          if (r.chance(0.3)) {
            reads++;
            await expectAnswered(
              client.regionRead(VFIO_PCI_CONFIG_REGION_INDEX, r.int(PCI_CONFIG_SIZE), width),
              width,
              `${what}: config read`,
            );
          }
        } else if (kind < 18) {
          const offset = r.chance(0.8) ? r.int(bar0Size + 8) : r.u64();
          if (r.chance(0.5)) {
            reads++;
            await expectAnswered(
              client.regionRead(VFIO_PCI_BAR0_REGION_INDEX, offset, width),
              width,
              `${what}: BAR0 read`,
            );
          } else {
            await expectAnswered(
              client.regionWrite(VFIO_PCI_BAR0_REGION_INDEX, offset, randomValue(r, width)),
              null,
              `${what}: BAR0 write`,
            );
          }
        } else {
          // Regions the device does not have (BAR2..5, ROM, VGA, beyond).
          const region = r.pick([2, 3, 4, 5, 6, 8, 9, 63, 0xffffffff]);
          if (r.chance(0.5))
            await expectAnswered(
              client.regionRead(region, r.int(0x10000), width),
              width,
              `${what}: region ${region} read`,
            );
          else
            await expectAnswered(
              client.regionWrite(region, r.int(0x10000), randomValue(r, width)),
              null,
              `${what}: region ${region} write`,
            );
        }
      }
      expect(reads).toBeGreaterThan(1500);
      // Still alive and answering after the storm.
      await guest.r32(REG.HOST_STATUS);
      expect(hut.logs.failures()).toEqual([]);

      // DEVICE_RESET, then the driver's probe from scratch.
      await client.reset();
      await guest.enableDevice();
      await guest.probe({ expectLink: false });
      const opts = await guest.mailbox([MBC.GET_FIRMWARE_STATE]);
      expect(opts.mb[0]).toBe(MBS_COMMAND_COMPLETE);
      expect(guest.canaryDamage(DEVICE_WRITABLE)).toEqual([]);
      expect(hut.logs.failures()).toEqual([]);
    });
  });

  it.each(['msix', 'intx'] as const)(
    'raises interrupts through random register, config and MSI-X table traffic, then delivers them cleanly after DEVICE_RESET (%s)',
    async (mode) => {
      guest.close();
      await hut.close();
      hut = startHba({ interrupts: mode });
      guest = await GuestMachine.attach(hut.socketPath);
      const eventfds = mode === 'msix' ? guest.msixEventfds : guest.intxEventfd === null ? [] : [guest.intxEventfd];
      expect(eventfds.length).toBeGreaterThan(0);
      const enableInterrupts = async (): Promise<void> => {
        if (mode === 'msix')
          await guest.client.regionWrite(
            VFIO_PCI_CONFIG_REGION_INDEX,
            ISP2532_CAP_MSIX + MSIX_FLAGS,
            new Uint8Array([0, MSIX_ENABLE_HI]),
          );
        guest.w32(REG.ICTRL, ICTRL_ENABLE_RISC_INT);
      };
      const drainEventfds = (): number => eventfds.reduce((n, fd) => n + Number(native.eventfdRead(fd) ?? 0n), 0);
      // INTx is automasked after each trigger (VFIO semantics); QEMU unmasks it at the guest's EOI.
      const unmaskIntx = async (): Promise<void> => {
        if (mode === 'intx')
          await guest.client.setIrqs({
            index: VFIO_PCI_INTX_IRQ_INDEX,
            flags: VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_UNMASK,
            start: 0,
            count: 1,
          });
      };
      await withSeed(0x5eed0011, async (r) => {
        await guest.probe({ expectLink: false });
        await enableInterrupts();
        const client = guest.client;
        let fuzzInterrupts = 0;
        for (let i = 0; i < 2500; i++) {
          const k = r.int(10);
          if (k < 3) {
            // A mailbox command, not waited for: its completion raises the interrupt.
            guest.w16(REG.MAILBOX0, r.pick([MBC.GET_FIRMWARE_STATE, 0x08, 0x20, r.int(0x80)]));
            guest.w32(REG.HCCR, HCCRX.SET_HOST_INT << 28);
          } else if (k < 5) {
            const hs = await guest.r32(REG.HOST_STATUS);
            if (hs & HSRX_RISC_INT) guest.w32(REG.HCCR, HCCRX.CLR_RISC_INT << 28);
          } else if (k < 8) {
            // MSI-X table entries (address, data, vector control) and the PBA.
            const base = r.chance(0.8)
              ? ISP2532_MSIX_TABLE_OFFSET + r.int(32 * 16)
              : ISP2532_MSIX_PBA_OFFSET + r.int(16);
            const width = r.pick([1, 2, 4, 8]);
            if (r.chance(0.7)) await client.regionWrite(VFIO_PCI_BAR1_REGION_INDEX, base, r.bytes(width), true);
            else
              await expectAnswered(
                client.regionRead(VFIO_PCI_BAR1_REGION_INDEX, base, width),
                width,
                `MSI-X read ${base.toString(16)}`,
              );
          } else if (k < 9) {
            // Interrupt-related config: command register (INTx disable), MSI and MSI-X control words.
            const offset = r.pick([
              0x04,
              0x05,
              ISP2532_CAP_MSIX + MSIX_FLAGS,
              ISP2532_CAP_MSIX + MSIX_FLAGS + 1,
              0x88 + 2,
              0x88 + 4,
              0x88 + 8,
              0x3c,
            ]);
            await expectAnswered(
              client.regionWrite(VFIO_PCI_CONFIG_REGION_INDEX, offset, r.bytes(r.pick([1, 2]))),
              null,
              'config write',
            );
          } else {
            guest.w32(r.pick([REG.ICTRL, REG.HCCR, REG.CTRL_STATUS]), r.u32());
          }
          if (i % 100 === 0) {
            const n = drainEventfds();
            fuzzInterrupts += n;
            if (n > 0) await unmaskIntx();
          }
        }
        await guest.r32(REG.HOST_STATUS);
        expect(fuzzInterrupts).toBeGreaterThan(0);
        expect(hut.logs.failures()).toEqual([]);

        // After DEVICE_RESET: a clean probe, then one interrupt-driven mailbox.
        await client.reset();
        await guest.enableDevice();
        await guest.probe({ expectLink: false });
        drainEventfds();
        await unmaskIntx();
        await enableInterrupts();
        guest.w16(REG.MAILBOX0, MBC.GET_FIRMWARE_STATE);
        guest.w32(REG.HCCR, HCCRX.SET_HOST_INT << 28);
        let signalled = 0;
        for (let i = 0; i < 2000 && signalled === 0; i++) {
          signalled = drainEventfds();
          if (!signalled) await sleep(1);
        }
        expect(signalled).toBeGreaterThan(0);
        const hs = await guest.r32(REG.HOST_STATUS);
        expect(hs & HSRX_RISC_INT).toBe(HSRX_RISC_INT);
        expect(hs >>> 16).toBe(MBS_COMMAND_COMPLETE);
        expect(hut.logs.failures()).toEqual([]);
      });
    },
  );
});
