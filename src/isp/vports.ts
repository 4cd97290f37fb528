/**
 * The NPIV VP table of the emulated ISP2532 firmware: the guest's virtual ports (VP index
 * 1..MAX_NPIV_VPORTS), what multi-ID 24xx/25xx firmware keeps for qla2xxx's vports.
 *
 *   VP_CONFIG (0x31, by MBC 0x54: qla24xx_modify_vp_config)   configure(): names checked against
 *       the host's grants, then (with VCT_COMMAND_MOD_ENABLE_VPS) an FDISC on the physical
 *       port's link once the mailbox has completed; Report ID Acquisition (format 1, vp_idx)
 *       tells the driver the N_Port ID (qla24xx_report_id_acquisition)
 *   VP_CTRL (0x30, on the ring: qla24xx_control_vp)          disable(): LOGO all, LOGO the
 *       N_Port itself; the index may then be configured again with other names
 *   physical port up (after its 0x8011 / RIDA / 0x8014)       every enabled VP FDISCs again: the
 *       driver never re-sends VP_CONFIG after a link bounce
 *   physical port down, LIP                                   every VP's login is gone (suspended)
 *   RISC reset, STOP_FIRMWARE, INITIALIZE_FIRMWARE             the table is forgotten: after an
 *       ISP abort qla2x00_vp_abort_isp re-sends VP_CONFIG for each vport
 *
 * Identity: a VP may log in only with a WWPN:WWNN pair the host granted (IdentityPolicy
 * .vportLogin); any other names, a WWPN another VP of this HBA uses, or a FabricPort without
 * NPIV (no createVport) fail the VP_CONFIG with a comp_status, which makes qla24xx_enable_vp
 * set the vport Failed (the guest's vport_create fails; docs/security.md). Each refusal is a
 * warning in the log.
 */
import type { FabricEvent, FabricPort } from './fabric-port.js';
import { FabricSession, type FabricSessionOptions } from './fabric-session.js';
import { MAX_NPIV_VPORTS, VCE, VCT, VP_OPTION } from './fw-constants.js';
import type { IspScheduler } from './host.js';
import type { IdentityPolicy } from './identity.js';
import type { PortSession, VpConfigRequest, VportControl } from './iocb/context.js';
import { formatWwn } from '../util/wwn.js';

interface Vp {
  readonly index: number;
  wwpn: bigint;
  wwnn: bigint;
  enabled: boolean;
  readonly fabric: FabricPort;
  readonly session: FabricSession;
  readonly unsubscribe: () => void;
}

export interface VportTableOptions {
  /** The physical port (VP 0) whose link the VPs share. */
  physical: FabricSession;
  identity: IdentityPolicy;
  scheduler: IspScheduler;
  /** What each VP's FabricSession gets besides its index and fabric port. */
  session: Omit<FabricSessionOptions, 'vpIndex' | 'fabric' | 'kind' | 'onUp' | 'onDown'>;
  /** Feeds a VP's fabric events only while the firmware is initialized. */
  accepting(): boolean;
}

export class VportTable implements VportControl {
  readonly maxVpIndex = MAX_NPIV_VPORTS;
  private readonly vps = new Map<number, Vp>();
  private readonly o: VportTableOptions;
  /** The N_Port of a VP index nobody configured: no fabric, no link, no logins. */
  private readonly idle: FabricSession;

  constructor(o: VportTableOptions) {
    this.o = o;
    this.idle = new FabricSession({ ...o.session, vpIndex: 1, fabric: null, kind: 'vport' });
  }

  get size(): number {
    return this.vps.size;
  }

  /** The session of VP index (0 = physical); null outside 0..maxVpIndex. */
  portOf(vpIndex: number): PortSession | null {
    if (!Number.isInteger(vpIndex) || vpIndex < 0 || vpIndex > this.maxVpIndex) return null;
    if (vpIndex === 0) return this.o.physical;
    return this.vps.get(vpIndex)?.session ?? this.idle;
  }

  /** The configured VP sessions (for tests and stats). */
  sessions(): FabricSession[] {
    return [...this.vps.values()].map((v) => v.session);
  }

  configure(r: VpConfigRequest): number {
    const t = this.o.session.trace;
    const detail = { vpIndex: r.vpIndex, wwpn: formatWwn(r.wwpn), wwnn: formatWwn(r.wwnn) };
    if (r.vpIndex < 1 || r.vpIndex > this.maxVpIndex) {
      t('vport_err_index', { ...detail, guestError: true, max: this.maxVpIndex });
      return VCT.CS_IDX_ERROR;
    }
    if (!(r.options & VP_OPTION.INITIATOR)) {
      // Target-mode vports (qlt_modify_vp_config) are not emulated.
      t('vport_err_options', { ...detail, guestError: true, options: r.options });
      return VCT.CS_ERROR;
    }
    const parent = this.o.physical.fabric;
    if (!parent?.createVport) {
      t('vport_err_no_npiv', {
        ...detail,
        reason: 'the HBA backend cannot log in further N_Ports (no NPIV): guest vport refused',
      });
      return VCT.CS_ERROR;
    }
    const grant = this.o.identity.vportLogin(r.wwpn);
    if (!grant || grant.wwnn !== r.wwnn) {
      t('vport_err_not_granted', {
        ...detail,
        guestError: true,
        reason: grant
          ? `WWPN is granted with WWNN ${formatWwn(grant.wwnn)}, not this one`
          : 'WWPN:WWNN not granted to this HBA (serve --npiv-wwpn)',
      });
      return VCT.CS_ERROR;
    }
    for (const other of this.vps.values()) {
      if (other.index !== r.vpIndex && other.enabled && other.wwpn === r.wwpn) {
        t('vport_err_duplicate', { ...detail, guestError: true, usedBy: other.index });
        return VCT.CS_ERROR;
      }
    }
    let vp = this.vps.get(r.vpIndex);
    if (vp?.enabled && vp.wwpn !== r.wwpn) {
      // The index is given to other names (qla2xxx reuses indices): the old N_Port goes first.
      this.o.session.trace('vport_replaced', { vpIndex: r.vpIndex, old: formatWwn(vp.wwpn) });
      vp.session.reset();
      vp.enabled = false;
    }
    if (!vp) {
      const fabric = parent.createVport();
      const session = new FabricSession({ ...this.o.session, vpIndex: r.vpIndex, fabric, kind: 'vport' });
      const unsubscribe = fabric.onEvent((e: FabricEvent) => {
        if (this.o.accepting() && this.vps.get(r.vpIndex)?.session === session) session.onFabricEvent(e);
      });
      vp = { index: r.vpIndex, wwpn: r.wwpn, wwnn: r.wwnn, enabled: false, fabric, session, unsubscribe };
      this.vps.set(r.vpIndex, vp);
    }
    vp.wwpn = grant.wwpn;
    vp.wwnn = grant.wwnn;
    const enable = r.enable && (r.options & VP_OPTION.ENABLE) !== 0;
    t('vport_configured', { ...detail, enable });
    if (!enable) return VCT.CS_COMPLETE;
    const wasUp = vp.enabled && vp.session.phase === 'up';
    vp.enabled = true;
    const target = vp;
    // After the MBC 0x54 completion: a Report ID Acquisition the driver sees before its
    // VP_CONFIG returned would be overwritten by FC_VPORT_INITIALIZING (qla24xx_enable_vp).
    this.o.scheduler.defer(() => {
      if (this.vps.get(target.index) !== target || !target.enabled) return;
      if (wasUp && target.session.phase === 'up') target.session.reannounce();
      else if (this.o.physical.phase === 'up') target.session.start({ wwpn: target.wwpn, wwnn: target.wwnn });
      // else: the physical port is down; physicalUp() starts it.
    });
    return VCT.CS_COMPLETE;
  }

  async disable(vpIndices: readonly number[], logoAll: boolean): Promise<number> {
    for (const i of vpIndices) {
      if (i < 1 || i > this.maxVpIndex) {
        this.o.session.trace('vport_err_ctrl_index', { vpIndex: i, guestError: true });
        return VCE.CS_IOCB_ERROR;
      }
    }
    const work: Promise<void>[] = [];
    for (const i of vpIndices) {
      const vp = this.vps.get(i);
      // An index that was never configured (or is already disabled) is disabled: nothing to do.
      if (!vp) continue;
      vp.enabled = false;
      this.o.session.trace('vport_disabled', { vpIndex: i, wwpn: formatWwn(vp.wwpn), logoAll });
      work.push(vp.session.disable(logoAll));
    }
    await Promise.all(work);
    return VCE.CS_COMPLETE;
  }

  /** The physical port is up (and announced): every enabled VP logs in again (FDISC). */
  physicalUp(): void {
    for (const vp of this.vps.values()) {
      if (vp.enabled) vp.session.start({ wwpn: vp.wwpn, wwnn: vp.wwnn });
    }
  }

  /** The physical port's session ended: the VPs' logins with it. */
  physicalDown(): void {
    for (const vp of this.vps.values()) vp.session.suspend();
  }

  /** RISC reset, STOP_FIRMWARE, re-initialization: every VP is logged out and forgotten. */
  clear(): void {
    for (const vp of this.vps.values()) {
      vp.unsubscribe();
      vp.session.reset();
    }
    this.vps.clear();
  }
}
