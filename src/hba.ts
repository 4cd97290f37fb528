/**
 * One vport HBA: the composition root that joins the emulated QLogic ISP (src/isp/; an ISP2532, or
 * the ISP2432 of `serve --model isp2432`, src/isp/model.ts), its PCI function (src/pci/ via
 * src/isp/pci-identity.ts) and the vfio-user server (src/vfio-user/) that
 * QEMU's `vfio-user-pci` attaches to. One HBA = one NPIV vport = one socket = one process is the
 * intended deployment (a server crash then costs one VM one HBA, never more).
 */
import { Isp2532 } from './isp/isp2532.js';
import type { FabricPort } from './isp/fabric-port.js';
import type { PortIdentity } from './isp/identity.js';
import { ISP2532_MODEL, type IspModel } from './isp/model.js';
import { bindIsp2532Registers, createIsp2532Function, ispHostOf, type Isp2532Interrupts } from './isp/pci-identity.js';
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
  /** Which ISP the guest sees (default ISP2532); chosen here once, for the PCI function and the ISP. */
  model?: Readonly<IspModel>;
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
    const model = o.model ?? ISP2532_MODEL;
    // Built in phases, as libvfio-user does (vfu_setup_region … vfu_realize_ctx), so that nothing
    // is used before it exists: the ISP needs the PCI function (guest memory, interrupts) and the
    // function needs the ISP's registers behind BAR1.
    // 1. Declare the PCI function: identity, BAR kinds and sizes, interrupt capabilities.
    this.pci = createIsp2532Function({
      name: formatWwn(o.wwpn),
      profile: model.pci,
      logger: this.log.child({ layer: 'pci' }),
      ...(o.interrupts ? { interrupts: o.interrupts } : {}),
    });
    // 2. The device model, on the function's guest memory and interrupt lines.
    this.isp = new Isp2532({
      host: ispHostOf(this.pci),
      fabric: o.fabric,
      wwpn: o.wwpn,
      wwnn: o.wwnn,
      model,
      ...(o.npivGrants ? { npivGrants: o.npivGrants } : {}),
      log: this.log.child({ layer: 'isp' }),
    });
    // 3. Bind: the registers behind the BARs; INTx <-> MSI <-> MSI-X switches happen in config
    //    space, and the ISP's event latch must re-route.
    bindIsp2532Registers(this.pci, this.isp.barHandler());
    this.pci.onInterruptModeChange(() => this.isp.interruptRoutingChanged());
    // 4. Realize; only a realized function is served.
    this.pci.realize();
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
