/**
 * The ISP models npiv-hba can present (`serve --model`): one descriptor per model holding
 * everything that differs between them as data — PCI identity and link, flash layout, board
 * names, the firmware blob the driver asks for, link speeds. It is chosen once (src/hba.ts) and
 * passed down; the register file, mailbox firmware, rings and fabric logic are the 24xx/25xx
 * firmware interface both models share.
 *
 * How qla2xxx (drivers/scsi/qla2xxx) treats each, from the device's side:
 *
 *   isp2532  QLE2562, 8 Gb. qla25xx_isp_ops: flash reads during probe may use MBC 0x0C DMA
 *            (qla25xx_read_optrom_data), VPD/NVRAM in flash, SFP read, FCE trace buffer,
 *            driver version and ELS bitmap by MBC 0x59, asynchronous name-server scan
 *            (GPN_FT/GNN_FT CT IOCBs on the ring, USE_ASYNC_SCAN).
 *   isp2432  QLE2462, 4 Gb. qla24xx_isp_ops: flash by register only (qla24xx_read_optrom_data),
 *            VPD/NVRAM through the NVRAM window (qla24xx_read_nvram_data), none of the 25xx-only
 *            mailbox commands above, and the synchronous name-server scan
 *            (qla2x00_find_all_fabric_devs: GID_PT, then GPN_ID/GNN_ID/GFPN_ID/GFF_ID per port,
 *            each a CT IOCB executed in place by MBC 0x54). The firmware interface the driver
 *            uses for these is the same one the 2532 model already answers; the model differs
 *            only in what it presents.
 *
 * The fc_host supported_speeds the guest shows is the driver's own table per chip
 * (qla2x00_init_host_attr: 1/2/4 Gb for 24xx, 1/2/4/8 Gb for 25xx); the negotiated link speed the
 * firmware reports (AEN 0x8011 mb1, MBC 0x5D) is the fabric's, capped at the model's fastest.
 */
import { FLASH_LAYOUT_2432, FLASH_LAYOUT_2532, type FlashLayout } from './flash.js';
import { ISP2432_PCI, ISP2532_PCI, type IspPciProfile } from './pci-identity.js';

export const ISP_MODEL_NAMES = ['isp2532', 'isp2432'] as const;
export type IspModelName = (typeof ISP_MODEL_NAMES)[number];
export const DEFAULT_ISP_MODEL: IspModelName = 'isp2532';

export interface IspModel {
  /** The `serve --model` value. */
  name: IspModelName;
  /** The chip as qla2xxx names it ("Found an ISP2432"). */
  chip: string;
  /** Board model: NVRAM model_name and VPD part number (qla2xxx shows it as model_name). */
  board: string;
  /** VPD identifier string (qla2xxx model_desc). */
  description: string;
  pci: Readonly<IspPciProfile>;
  flash: Readonly<FlashLayout>;
  /** The firmware blob qla2x00_request_firmware asks the guest for; without it the image in flash is loaded. */
  firmwareFile: string;
  /** Link speeds the board supports, in Gbit/s, slowest first; the last is the fastest link it negotiates. */
  speedsGbps: readonly number[];
}

export const ISP2532_MODEL: Readonly<IspModel> = Object.freeze({
  name: 'isp2532',
  chip: 'ISP2532',
  board: 'QLE2562',
  description: 'QLogic 8Gb Fibre Channel Adapter (emulated QLE2562)',
  pci: ISP2532_PCI,
  flash: FLASH_LAYOUT_2532,
  firmwareFile: 'ql2500_fw.bin',
  speedsGbps: Object.freeze([1, 2, 4, 8]),
});

export const ISP2432_MODEL: Readonly<IspModel> = Object.freeze({
  name: 'isp2432',
  chip: 'ISP2432',
  board: 'QLE2462',
  description: 'QLogic 4Gb Fibre Channel Adapter (emulated QLE2462)',
  pci: ISP2432_PCI,
  flash: FLASH_LAYOUT_2432,
  firmwareFile: 'ql2400_fw.bin',
  speedsGbps: Object.freeze([1, 2, 4]),
});

const MODELS: Readonly<Record<IspModelName, Readonly<IspModel>>> = Object.freeze({
  isp2532: ISP2532_MODEL,
  isp2432: ISP2432_MODEL,
});

export function isIspModelName(text: string): text is IspModelName {
  return (ISP_MODEL_NAMES as readonly string[]).includes(text);
}

/** The descriptor for a `--model` value, or an error naming the choices. */
export function ispModel(name: string): Readonly<IspModel> {
  if (!isIspModelName(name)) {
    throw new Error(`invalid model '${name}': expected one of ${ISP_MODEL_NAMES.join(', ')}`);
  }
  return MODELS[name];
}

/** The fastest link the model negotiates. */
export function maxSpeedGbps(model: Readonly<IspModel>): number {
  return model.speedsGbps[model.speedsGbps.length - 1]!;
}
