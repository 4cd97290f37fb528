/**
 * Which port and node names this HBA may present to the fabric: the one place that decides it.
 *
 * The host configures the vport's names (`npiv-hba serve --wwpn --wwnn`). Everything the guest can
 * write that carries a name — the init control block of INITIALIZE_FIRMWARE / MID_INITIALIZE_FIRMWARE
 * (qla2xxx copies it from NVRAM in qla24xx_nvram_config), the NVRAM/flash image itself — is guest
 * input and never becomes a login identity:
 *
 *   physical port (vp 0)   always logs in (FLOGI) with the configured pair; names the guest put
 *                          in the ICB are ignored, as on an HBA whose fabric assigns its WWPN
 *   NPIV vports (vp ≥ 1)   may log in (FDISC) only with a pair the host granted; none by default
 *
 * The guest cannot widen the set: it is fixed when the HBA is built. See docs/security.md.
 */
import { formatWwn } from '../util/wwn.js';

export interface PortIdentity {
  wwpn: bigint;
  wwnn: bigint;
}

export interface PhysicalLogin {
  /** The names the port logs in with: always the configured pair. */
  identity: PortIdentity;
  /** The guest asked for other names (they were ignored). */
  overridden: boolean;
}

const WWN_MAX = (1n << 64n) - 1n;

function checkName(w: bigint, what: string): void {
  if (w <= 0n || w > WWN_MAX) throw new RangeError(`${what} ${w.toString(16)} is not a valid 64-bit world wide name`);
}

export class IdentityPolicy {
  readonly base: PortIdentity;
  /** Pairs a future guest-created NPIV vport (VP_CONFIG / FDISC) may use, in the host's order. */
  readonly npivGrants: readonly PortIdentity[];

  constructor(base: PortIdentity, npivGrants: readonly PortIdentity[] = []) {
    checkName(base.wwpn, 'WWPN');
    checkName(base.wwnn, 'WWNN');
    const seen = new Set<bigint>([base.wwpn]);
    for (const g of npivGrants) {
      checkName(g.wwpn, 'NPIV grant WWPN');
      checkName(g.wwnn, 'NPIV grant WWNN');
      // One WWPN, one login: a duplicate would let two logins of this HBA collide on the fabric.
      if (seen.has(g.wwpn)) throw new RangeError(`NPIV grant WWPN ${formatWwn(g.wwpn)} is used twice`);
      seen.add(g.wwpn);
    }
    this.base = { wwpn: base.wwpn, wwnn: base.wwnn };
    this.npivGrants = Object.freeze(npivGrants.map((g) => Object.freeze({ wwpn: g.wwpn, wwnn: g.wwnn })));
    Object.freeze(this.base);
  }

  /** The physical port's login: the configured pair, whatever the guest requested. */
  physicalLogin(requested: PortIdentity): PhysicalLogin {
    const overridden = requested.wwpn !== this.base.wwpn || requested.wwnn !== this.base.wwnn;
    return { identity: this.base, overridden };
  }

  /**
   * The names a guest-created NPIV vport may log in with: the host grant for that WWPN (its
   * node name is the host's too), or null when the host granted no such WWPN. The base WWPN is
   * the physical port's and is never available to a vport.
   */
  vportLogin(requestedWwpn: bigint): PortIdentity | null {
    return this.npivGrants.find((g) => g.wwpn === requestedWwpn) ?? null;
  }

  /** True when some login of this HBA may use the WWPN. */
  allows(wwpn: bigint): boolean {
    return wwpn === this.base.wwpn || this.vportLogin(wwpn) !== null;
  }
}
