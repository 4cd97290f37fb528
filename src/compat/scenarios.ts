/**
 * The compat scenario suite: what each scenario checks (the guest side is
 * scripts/guest/compat-scenarios.sh, `sc_<name>`), the SAN they run against, the test script that
 * runs a list of them in one guest boot, and the parser for the lines that boot prints.
 *
 * Scenarios run in the order of SCENARIOS within one boot (a boot under TCG costs 10-15 s), each
 * in its own guest shell with a time limit: a failing scenario reports and the next one runs. The
 * order matters only where a scenario changes the SAN the later ones see (a LUN mapped, a port
 * joining) or reloads the driver (last, so the driver's first load is the one the early
 * scenarios judge).
 */
import { VPORT_WWNN, VPORT_WWPN } from '../harness/isp-rig.js';
import type { PortIdentity } from '../isp/identity.js';
import type { ArrayConfig } from '../san/array.js';
import { formatWwnSysfs } from '../util/wwn.js';

export type ScenarioStatus = 'pass' | 'fail' | 'skip';

export interface ScenarioDefinition {
  name: string;
  /** One line: what passes. */
  title: string;
  /** Guest-side time limit, seconds. */
  limitSeconds: number;
  /** In the core set (`--scenarios core`): about a minute per kernel under TCG. */
  core: boolean;
}

export const SCENARIOS: readonly ScenarioDefinition[] = [
  { name: 'probe', title: 'PCI function bound to qla2xxx, SCSI host registered', limitSeconds: 30, core: true },
  { name: 'irq-msix', title: 'default load uses MSI-X with several vectors', limitSeconds: 20, core: true },
  {
    name: 'flash',
    title: 'flash/NVRAM read: firmware running, model and serial from VPD/NVRAM, NVRAM signature',
    limitSeconds: 30,
    core: true,
  },
  {
    name: 'link',
    title: 'link up and fabric login: Online, N_Port ID, fabric name, WWPN',
    limitSeconds: 70,
    core: true,
  },
  {
    name: 'discovery',
    title: 'name server discovery: every zoned target port is an FCP target',
    limitSeconds: 70,
    core: true,
  },
  {
    name: 'luns',
    title: 'masked LUNs as disks on every path, sizes, INQUIRY, VPD 0x80/0x83',
    limitSeconds: 90,
    core: true,
  },
  { name: 'fio-qd1', title: 'fio randwrite + verify, psync QD1: 0 errors', limitSeconds: 120, core: true },
  { name: 'fio-qd16', title: 'fio randwrite + verify, libaio QD16: 0 errors', limitSeconds: 120, core: true },
  {
    name: 'tmf',
    title: 'task management: LUN reset and target reset succeed, I/O after',
    limitSeconds: 60,
    core: false,
  },
  {
    name: 'unit-attention',
    title: 'LUN mapped at run time: REPORTED LUNS DATA HAS CHANGED, scan adds the disk, I/O',
    limitSeconds: 90,
    core: false,
  },
  { name: 'rscn', title: 'a target port joining: RSCN, login, its LUNs appear', limitSeconds: 130, core: false },
  {
    name: 'multipath',
    title: 'dm-multipath map, one target port down and up under fio verify: 0 I/O errors',
    limitSeconds: 150,
    core: false,
  },
  { name: 'issue-lip', title: 'issue_lip: port back Online, disks back, I/O verified', limitSeconds: 130, core: true },
  {
    name: 'isp-abort',
    title: 'ISP abort (sysfs reset): firmware re-initialized, I/O verified',
    limitSeconds: 130,
    core: true,
  },
  {
    name: 'npiv',
    title: 'guest NPIV: vport_create logs in with FDISC and comes Online; vport_delete',
    limitSeconds: 90,
    core: false,
  },
  {
    name: 'rmmod-reload',
    title: 'rmmod + insmod: fresh probe, port Online, data intact',
    limitSeconds: 150,
    core: true,
  },
  { name: 'irq-intx', title: 'ql2xenablemsix=0: INTx in use, I/O verified', limitSeconds: 150, core: false },
  { name: 'irq-msi', title: 'ql2xenablemsix=2: MSI in use, I/O verified', limitSeconds: 150, core: false },
];

export class ScenarioSelectionError extends Error {}

/** `all`, `core`, or a comma-separated list of scenario names (kept in suite order). */
export function selectScenarios(text: string | undefined): ScenarioDefinition[] {
  if (text === undefined || text === 'all') return [...SCENARIOS];
  if (text === 'core') return SCENARIOS.filter((s) => s.core);
  const names = text
    .split(',')
    .map((n) => n.trim())
    .filter((n) => n !== '');
  const unknown = names.filter((n) => !SCENARIOS.some((s) => s.name === n));
  if (unknown.length > 0 || names.length === 0)
    throw new ScenarioSelectionError(
      `unknown scenario ${unknown.join(', ') || '(none given)'}; known: all, core, ${SCENARIOS.map((s) => s.name).join(', ')}`,
    );
  return SCENARIOS.filter((s) => names.includes(s.name));
}

// ---- the SAN every compat boot runs against --------------------------------------------------------

/** The guest's vport (the rig's) and its one granted NPIV name. */
export const COMPAT_VPORT = { wwpn: VPORT_WWPN, wwnn: VPORT_WWNN };
export const COMPAT_NPIV_GRANT: PortIdentity = { wwpn: 0xc050760000000101n, wwnn: 0xc050760000000100n };
/** Array ports: 0 and 1 attached at boot (two paths), 2 joins on `REQ add-port` (RSCN). */
export const COMPAT_ARRAY_PORTS = [
  { wwpn: 0x500a098100000001n, wwnn: 0x500a098000000001n },
  { wwpn: 0x500a098100000002n, wwnn: 0x500a098000000001n },
  { wwpn: 0x500a098100000003n, wwnn: 0x500a098000000001n },
] as const;
export const COMPAT_INITIAL_PORTS = [0, 1] as const;
export const COMPAT_RSCN_PORT = 2;
const SECTORS_PER_MIB = 2048;
const LUNS = [
  { lun: 0, volume: 'v0', mib: 64 },
  { lun: 1, volume: 'v1', mib: 32 },
] as const;
/** Mapped on `REQ map-lun`. */
export const COMPAT_NEW_LUN = { lun: 2, volume: 'v2', mib: 16 } as const;
export const COMPAT_HOST_GROUP = 'vm1';

export function compatArrayConfig(): ArrayConfig {
  return {
    name: 'compat-array',
    ports: COMPAT_ARRAY_PORTS.map((p) => ({ wwpn: p.wwpn, wwnn: p.wwnn })),
    volumes: [...LUNS, COMPAT_NEW_LUN].map((l) => ({ name: l.volume, size: `${l.mib}M` })),
    hostGroups: [
      {
        name: COMPAT_HOST_GROUP,
        initiators: [COMPAT_VPORT.wwpn],
        luns: Object.fromEntries(LUNS.map((l) => [String(l.lun), l.volume])),
      },
    ],
  };
}

// ---- the test script --------------------------------------------------------------------------------

export interface ScriptOptions {
  /** PCI vendor:device the HBA presents (0x1077:0x2532). */
  pciId: string;
  /** PCI address of the HBA in the guest. */
  bdf?: string;
}

const hex16 = (w: bigint): string => w.toString(16).padStart(16, '0');

/** The /test.sh that runs `scenarios` in order (the guest library is installed beside it). */
export function compatScript(scenarios: readonly ScenarioDefinition[], options: ScriptOptions): string {
  const env: Record<string, string> = {
    COMPAT_BDF: options.bdf ?? '0000:01:00.0',
    COMPAT_PCI_ID: options.pciId,
    COMPAT_WWPN: formatWwnSysfs(COMPAT_VPORT.wwpn),
    COMPAT_TARGETS: COMPAT_INITIAL_PORTS.map((i) => formatWwnSysfs(COMPAT_ARRAY_PORTS[i].wwpn)).join(' '),
    COMPAT_RSCN_TARGET: formatWwnSysfs(COMPAT_ARRAY_PORTS[COMPAT_RSCN_PORT].wwpn),
    COMPAT_LUNS: LUNS.map((l) => `${l.lun}:${l.mib * SECTORS_PER_MIB}`).join(' '),
    COMPAT_NEW_LUN: `${COMPAT_NEW_LUN.lun}:${COMPAT_NEW_LUN.mib * SECTORS_PER_MIB}`,
    COMPAT_NPIV: `${hex16(COMPAT_NPIV_GRANT.wwpn)}:${hex16(COMPAT_NPIV_GRANT.wwnn)}`,
  };
  const lines = Object.entries(env).map(([k, v]) => `export ${k}='${v}'`);
  lines.push(
    '. /lib/compat-scenarios.sh',
    'echo "GUEST:DRIVER $(driver_version)"',
    ...scenarios.map((s) => `compat_run ${s.name} ${s.limitSeconds}`),
    'exit 0',
  );
  return `${lines.join('\n')}\n`;
}

// ---- results ----------------------------------------------------------------------------------------

export interface ScenarioResult {
  name: string;
  status: ScenarioStatus;
  /** Guest-measured duration, ms (0 when it never ran). */
  ms: number;
  summary: string;
  /** On fail/skip: the scenario's own lines, then the kernel's lines logged while it ran. */
  evidence: string[];
}

/** What one boot's guest lines (tag removed) say about the scenarios. */
export interface BootOutcome {
  results: ScenarioResult[];
  /** The scenario that began and never reported (the guest stopped during it). */
  unfinished: string | null;
  driverVersion: string | null;
  kernelRelease: string | null;
}

const SC_LINE = /^SC (\S+) (pass|fail|skip) (\d+) ?(.*)$/;

export function parseBootLines(lines: readonly string[]): BootOutcome {
  const results: ScenarioResult[] = [];
  const evidence = new Map<string, string[]>();
  let begun: string | null = null;
  let driverVersion: string | null = null;
  let kernelRelease: string | null = null;
  for (const line of lines) {
    if (line.startsWith('BOOT ')) kernelRelease = /kernel=(\S+)/.exec(line)?.[1] ?? null;
    else if (line.startsWith('DRIVER ')) {
      const v = line.slice('DRIVER '.length).trim();
      driverVersion = v === '' || v === 'none' ? null : v;
    } else if (line.startsWith('SCBEGIN ')) begun = line.slice('SCBEGIN '.length).trim();
    else if (line.startsWith('SCLOG ')) {
      const rest = line.slice('SCLOG '.length);
      const space = rest.indexOf(' ');
      const name = space < 0 ? rest : rest.slice(0, space);
      const list = evidence.get(name) ?? [];
      list.push(space < 0 ? '' : rest.slice(space + 1));
      evidence.set(name, list);
    } else {
      const m = SC_LINE.exec(line);
      if (m?.[1] !== undefined) {
        results.push({
          name: m[1],
          status: m[2] as ScenarioStatus,
          ms: Number(m[3]),
          summary: m[4] ?? '',
          evidence: evidence.get(m[1]) ?? [],
        });
        if (begun === m[1]) begun = null;
      }
    }
  }
  return { results, unfinished: begun, driverVersion, kernelRelease };
}
