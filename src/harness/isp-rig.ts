/**
 * The in-process SAN + emulated ISP2532 rig shared by the real-guest qla2xxx tests
 * (isp-probe, isp-rscn, isp-eh, isp-interrupts) and `npiv-hba compat` (src/compat/): a fabric with open zoning listening on a socket,
 * target ports attached to it over in-memory links, and one VportHba (vfio-user socket for QEMU)
 * whose fabric port connects to that socket — the same path a separate `npiv-hba san` would use.
 * close() tears it down in dependency order: the HBA first, the fabric last but the array.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VportHba } from '../hba.js';
import { InitiatorFabricPort } from '../isp/initiator-fabric.js';
import type { Isp2532Interrupts } from '../isp/pci-identity.js';
import type { PortIdentity } from '../isp/identity.js';
import type { IspModel } from '../isp/model.js';
import type { Logger } from '../util/log.js';
import { StorageArray, type ArrayConfig } from '../san/array.js';
import { Fabric } from '../san/fabric/switch.js';
import { Zoning } from '../san/fabric/zoning.js';
import { connectLink, linkPair } from '../fc/link.js';
import { LinkListener } from '../san/link-listener.js';
import { FcTargetPort, type TargetPortOptions } from '../san/target-port.js';
import type { ScsiTargetPort } from '../scsi/api.js';

/** The guest's vport: the WWPN the arrays' host groups mask LUNs to. */
export const VPORT_WWPN = 0x5001438001234567n;
export const VPORT_WWNN = 0x5001438001234566n;

export interface IspRigOptions {
  /** Names the fabric and the temp dir (for telling runs apart in logs). */
  name: string;
  /** A storage array to create; its ports are attached per attachArrayPorts. */
  array?: ArrayConfig;
  /** Indices of the array's ports attached before the guest starts (default: all). */
  attachArrayPorts?: readonly number[];
  /** Other SCSI targets (e.g. test doubles) attached as FC target ports before the guest starts. */
  targets?: readonly { port: ScsiTargetPort; options?: TargetPortOptions }[];
  /** Interrupt capabilities the HBA offers (VportHba default when absent). */
  interrupts?: Isp2532Interrupts;
  /** The ISP model (serve --model; VportHba default, ISP2532, when absent). */
  model?: Readonly<IspModel>;
  /** The HBA's logger (VportHba default when absent), e.g. to see its debug trace. */
  log?: Logger;
  /** The fabric's zoning (default: open). */
  zoning?: Zoning;
  /** Name pairs the guest may create NPIV vports with (serve --npiv-wwpn). */
  npivGrants?: readonly PortIdentity[];
}

export interface IspRig {
  dir: string;
  /** The vfio-user socket to hand to runGuest({ devices }). */
  socket: string;
  fabric: Fabric;
  array: StorageArray | null;
  hba: VportHba;
  /** Attaches one more target port to the fabric (a port joining while the guest runs → RSCN). */
  attachTargetPort(port: ScsiTargetPort, options?: TargetPortOptions): Promise<FcTargetPort>;
  /** Attaches port i of the rig's array. */
  attachArrayPort(i: number): Promise<FcTargetPort>;
  close(): Promise<void>;
}

export async function startIspRig(o: IspRigOptions): Promise<IspRig> {
  const dir = mkdtempSync(join(tmpdir(), `npiv-isp-${o.name}-`));
  const socket = join(dir, 'vport0.sock');
  const linkPath = join(dir, 'fabric.sock');
  const fabric = new Fabric({ name: o.name, domain: 1, zoning: o.zoning ?? new Zoning('allow') });
  let listener: LinkListener | undefined;
  let array: StorageArray | null = null;
  let fabricPort: InitiatorFabricPort | undefined;
  let hba: VportHba | undefined;
  let linkCount = 0;

  const close = async (): Promise<void> => {
    hba?.close();
    await fabricPort?.close();
    fabric.close();
    await listener?.close();
    await array?.close();
    rmSync(dir, { recursive: true, force: true });
  };
  const attachTargetPort = async (port: ScsiTargetPort, options: TargetPortOptions = {}): Promise<FcTargetPort> => {
    const [fabricEnd, portEnd] = linkPair(`target ${linkCount++}`);
    fabric.attach(fabricEnd);
    return FcTargetPort.start(portEnd, port, options);
  };
  // async so that a bad index rejects the promise (callers in onLine handlers `void` it).
  const attachArrayPort = async (i: number): Promise<FcTargetPort> => {
    const port = array?.ports[i];
    if (!port) throw new Error(`rig ${o.name}: the array has no port ${i}`);
    return attachTargetPort(port);
  };

  try {
    listener = await LinkListener.listen(linkPath, (link) => fabric.attach(link));
    if (o.array) {
      array = await StorageArray.create(o.array);
      for (const i of o.attachArrayPorts ?? array.ports.map((_, i) => i)) await attachArrayPort(i);
    }
    for (const t of o.targets ?? []) await attachTargetPort(t.port, t.options);
    fabricPort = new InitiatorFabricPort({ connect: () => connectLink(linkPath) });
    hba = new VportHba({
      socketPath: socket,
      wwpn: VPORT_WWPN,
      wwnn: VPORT_WWNN,
      fabric: fabricPort,
      ...(o.npivGrants ? { npivGrants: o.npivGrants } : {}),
      ...(o.interrupts ? { interrupts: o.interrupts } : {}),
      ...(o.model ? { model: o.model } : {}),
      ...(o.log ? { log: o.log } : {}),
    });
    hba.start();
  } catch (e) {
    await close();
    throw e;
  }
  return { dir, socket, fabric, array, hba, attachTargetPort, attachArrayPort, close };
}
