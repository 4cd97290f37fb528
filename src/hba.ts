/**
 * One vport HBA: the composition root that joins the emulated QLogic ISP2532 (src/isp/), its PCI
 * function (src/pci/ via src/isp/pci-identity.ts) and the vfio-user server (src/vfio-user/) that
 * QEMU's `vfio-user-pci` attaches to. One HBA = one NPIV vport = one socket = one process is the
 * intended deployment (a server crash then costs one VM one HBA, never more).
 */
import { Isp2532 } from './isp/isp2532.js';
import type { FabricPort } from './isp/fabric-port.js';
import type { PortIdentity } from './isp/identity.js';
import { createIsp2532Function, ispHostOf, type Isp2532Interrupts } from './isp/pci-identity.js';
import type { AccessSize, BarHandler } from './pci/bar.js';
import type { PciFunction } from './pci/pci-function.js';
import { VfioUserServer } from './vfio-user/server.js';
import { logger, type Logger } from './util/log.js';
import type { SocketAccess } from './util/private-socket.js';
import { formatWwn } from './util/wwn.js';

export interface VportHbaOptions {
  socketPath: string;
  /** The only names the vport logs in with; the guest cannot change them (src/isp/identity.ts). */
  wwpn: bigint;
  wwnn: bigint;
  /** Names a future guest-created NPIV vport may use (none by default). */
  npivGrants?: readonly PortIdentity[];
  /** The vport's link to the SAN; null = no cable (the link stays down, as with an unplugged port). */
  fabric: FabricPort | null;
  /** Interrupt capabilities offered to the guest (default: MSI + MSI-X, like the real board). */
  interrupts?: Isp2532Interrupts;
  /** who besides this uid and root may connect to the socket (serve --socket-owner/--socket-group) */
  socketAccess?: SocketAccess;
  log?: Logger;
}

export class VportHba {
  readonly isp: Isp2532;
  readonly pci: PciFunction;
  readonly server: VfioUserServer;
  readonly log: Logger;

  constructor(o: VportHbaOptions) {
    this.log = o.log ?? logger('hba', { vport: formatWwn(o.wwpn) });
    // The register file needs the PCI function (interrupts, guest memory) and the PCI function
    // needs the register file (BAR1): bind BAR1 late through this forwarding handler.
    let isp: Isp2532 | undefined;
    const bar1: BarHandler = {
      read: (offset: number, size: AccessSize) => (size === 8 ? readWide(isp!, offset) : isp!.mmioRead(offset, size)),
      write: (offset: number, size: AccessSize, value: number | bigint) => {
        if (size === 8) {
          const v = BigInt(value);
          isp!.mmioWrite(offset, 4, Number(v & 0xffffffffn));
          isp!.mmioWrite(offset + 4, 4, Number(v >> 32n));
        } else {
          isp!.mmioWrite(offset, size, Number(value));
        }
      },
      resetEnter: () => isp!.reset(),
    };
    this.pci = createIsp2532Function(bar1, {
      name: formatWwn(o.wwpn),
      logger: this.log.child({ layer: 'pci' }),
      ...(o.interrupts ? { interrupts: o.interrupts } : {}),
    });
    isp = new Isp2532({
      host: ispHostOf(this.pci),
      fabric: o.fabric,
      wwpn: o.wwpn,
      wwnn: o.wwnn,
      ...(o.npivGrants ? { npivGrants: o.npivGrants } : {}),
      log: this.log.child({ layer: 'isp' }),
    });
    this.isp = isp;
    // INTx <-> MSI <-> MSI-X switches happen in config space; the ISP's event latch must re-route.
    this.pci.onInterruptModeChange(() => isp!.interruptRoutingChanged());
    this.server = new VfioUserServer({
      socketPath: o.socketPath,
      device: this.pci,
      log: this.log.child({ layer: 'vfio-user' }),
      ...(o.socketAccess ? { access: o.socketAccess } : {}),
    });
  }

  start(): void {
    this.server.start();
  }

  close(): void {
    this.server.close();
  }
}

/** The ISP register file is 32 bits wide; an 8-byte access is two dword accesses, low first. */
function readWide(isp: Isp2532, offset: number): bigint {
  const lo = BigInt(isp.mmioRead(offset, 4) >>> 0);
  const hi = BigInt(isp.mmioRead(offset + 4, 4) >>> 0);
  return (hi << 32n) | lo;
}
