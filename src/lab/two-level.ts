/**
 * The two-level host-backend lab, shared by `npiv-hba lab --backend host` (src/lab/host-lab.ts)
 * and its real-guest test (test/guest/host-backend.test.ts), so that the two cannot drift:
 *
 *   level 0   npiv-hba san (zoning + masking) ── npiv-hba serve --npiv-wwpn VM ──┐ vfio-user
 *   level 1   QEMU guest: qla2xxx on the emulated ISP2532 = "the host's FC HBA" ◄─┘
 *             npiv-hba serve --backend host:hostN --wwpn VM  (Node.js of the 9p-shared rootfs,
 *             this checkout read-only over 9p as share "project")
 *   level 2   the qla2xxx-like guest model (src/vm-model/main.ts) = "the VM", on serve's socket
 *
 * This module holds the SAN configuration (level 1 zoned to its own target, the VM's WWPN to
 * another, each masked to one LUN) and the level-1 guest script. The script's lines (each
 * `GUEST:`-prefixed on the console; runGuest strips the tag):
 *
 *   L1 <hostN> <port_name> <max_npiv_vports> <npiv_vports_inuse>   level 1's physical fc_host
 *   L1PORT <port_id> <port_state>                                  the same host's login
 *   HOSTLIST <line>                                                `npiv-hba host list` in level 1
 *   VPORTS <n>                                                     fc_vports once serve listens
 *   L1VPORT <vport> <port_name> <node_name> <vport_state> <hostM|none> <port_id|none>
 *   VM<json>                                                       one VmEvent (src/vm-model/scenario.ts)
 *   VM-EXIT <status>                                               the VM model's exit status
 *   BLOCK <names...>                                               level 1's /sys/block, loop devices left out
 *   SG <n>                                                         level 1's scsi_generic nodes
 *   SERVE-EXIT <status>, VPORTS-AFTER <n>                          serve stopped (SIGTERM), vports left
 *   MAPPED-SCSIDEV <H:C:T:L...>, MAPPED-BLOCK <names...>           when the VM verified I/O on a LUN mapped at runtime
 *   SCSIDEV <H:C:T:L...>                                           level 1's SCSI devices once the VM exited
 *   SERVE-EVENT <json>                                             serve's event and LUN-change log records
 *   SERVE-LOG <line>                                               the tail of serve's log
 *   NO-MANUAL-SCAN, L1-NOT-ONLINE, NO-ROOTFS, NO-SOCKET             why the script stopped early
 */
import { shellQuote } from '../harness/guest.js';
import type { VmEvent } from '../vm-model/scenario.js';

export interface WwnPair {
  /** colon form, as the SAN configuration and the CLI take it */
  wwpn: string;
  wwnn: string;
}

export interface TwoLevelNames {
  /** level 1's HBA (the "physical" port of the host) */
  level1: WwnPair;
  /** the VM: granted to level 1 (serve --npiv-wwpn), used for the host vport */
  vm: WwnPair;
  /** the array port zoned to level 1 */
  targetHost: WwnPair;
  /** the array port zoned to the VM */
  targetVm: WwnPair;
}

/** Deterministic names (c0:50:76 is the project's example OUI, as in src/lab/config.ts). */
export const TWO_LEVEL_NAMES: TwoLevelNames = {
  level1: { wwpn: 'c0:50:76:ff:e5:00:20:01', wwnn: 'c0:50:76:ff:e5:01:20:01' },
  vm: { wwpn: 'c0:50:76:ff:e5:00:20:81', wwnn: 'c0:50:76:ff:e5:01:20:81' },
  targetHost: { wwpn: '50:0a:09:81:00:00:20:01', wwnn: '50:0a:09:80:00:00:20:01' },
  targetVm: { wwpn: '50:0a:09:81:00:00:20:02', wwnn: '50:0a:09:80:00:00:20:02' },
};

/** The LUN the VM's volume is masked as (not 0: the VM must find it through REPORT LUNS). */
export const TWO_LEVEL_VM_LUN = 3;

/** 9p share of this checkout; enter_rootfs mounts it at /rootfs/run/share/<tag>. */
export const PROJECT_SHARE_TAG = 'project';
const PROJECT_IN_ROOTFS = `/run/share/${PROJECT_SHARE_TAG}`;
/** serve's vfio-user socket inside level 1's rootfs. */
const VM_SOCKET = '/run/npiv-hba/vm.sock';
/** The tag the VM model's JSON lines carry on the console. */
const VM_TAG = 'GUEST:VM';

export interface TwoLevelSanOptions {
  names?: TwoLevelNames;
  vmLun?: number;
  /** size of the VM's volume (a SAN size string, e.g. "32MiB") */
  vmVolumeSize?: string;
  /** backing file of the VM's volume, relative to the config file; RAM-backed when absent */
  vmVolumeFile?: string;
  /** a second volume on the VM's array, not mapped: mapped and unmapped at runtime by a test */
  spareVolume?: { name: string; size: string; file?: string };
}

/** The SAN configuration (npiv-hba san --config JSON, docs/config.md) of the two-level lab. */
export function twoLevelSanConfig(o: TwoLevelSanOptions = {}): Record<string, unknown> {
  const n = o.names ?? TWO_LEVEL_NAMES;
  const vmLun = o.vmLun ?? TWO_LEVEL_VM_LUN;
  return {
    fabric: {
      name: 'fabric-two-level',
      domain: 3,
      zoning: {
        default: 'deny',
        zones: [
          { name: 'level1', members: [n.level1.wwpn, n.targetHost.wwpn] },
          { name: 'vm', members: [n.vm.wwpn, n.targetVm.wwpn] },
        ],
      },
    },
    arrays: [
      {
        name: 'array-host',
        ports: [n.targetHost],
        volumes: [{ name: 'host-lun', size: '16MiB' }],
        hostGroups: [{ name: 'level1', initiators: [n.level1.wwpn], luns: { '0': 'host-lun' } }],
      },
      {
        name: 'array-vm',
        ports: [n.targetVm],
        volumes: [
          {
            name: 'vm-lun',
            size: o.vmVolumeSize ?? '32MiB',
            ...(o.vmVolumeFile !== undefined ? { file: o.vmVolumeFile } : {}),
          },
          ...(o.spareVolume ? [o.spareVolume] : []),
        ],
        hostGroups: [{ name: 'vm', initiators: [n.vm.wwpn], luns: { [String(vmLun)]: 'vm-lun' } }],
      },
    ],
  };
}

export interface TwoLevelScriptOptions {
  vm: WwnPair;
  /** 512-byte blocks the VM writes and verifies per I/O phase */
  blocks: number;
  seed: number;
  /**
   * > 0: after the first I/O phase the VM waits this long for a link bounce (the caller drives
   * it when the VM prints `waiting-for-flap`), then verifies a second range. 0: one phase.
   */
  flapWaitMs: number;
  queueDepth?: number;
  blocksPerIo?: number;
  /**
   * A LUN the caller maps when the VM prints `waiting-for-lun-map` and unmaps at
   * `waiting-for-lun-unmap` (needs flapWaitMs > 0: it runs before the flap). `waitMs`: how long
   * the VM waits for each REPORTED LUNS DATA HAS CHANGED.
   */
  lunChange?: { lun: number; waitMs: number };
}

function wholeNumber(value: number, what: string, min: number): number {
  if (!Number.isSafeInteger(value) || value < min) throw new RangeError(`${what} must be a whole number >= ${min}`);
  return value;
}

/** The level-1 guest script (busybox sh, run as /test.sh; needs runGuest shareRootfs + the project share, loadQla false). */
export function twoLevelGuestScript(o: TwoLevelScriptOptions): string {
  const project = PROJECT_IN_ROOTFS;
  const serve = [
    'node bin/npiv-hba.js serve --backend "host:$H"',
    `--wwpn ${o.vm.wwpn} --wwnn ${o.vm.wwnn} --socket ${VM_SOCKET} --log-level info`,
  ].join(' ');
  const vm = [
    `node ${project}/dist/src/vm-model/main.js --socket ${VM_SOCKET}`,
    `--wwpn ${o.vm.wwpn} --wwnn ${o.vm.wwnn} --queue-depth ${wholeNumber(o.queueDepth ?? 16, 'queue depth', 1)}`,
    `--blocks ${wholeNumber(o.blocks, 'blocks', 1)} --blocks-per-io ${wholeNumber(o.blocksPerIo ?? 16, 'blocks per I/O', 1)}`,
    `--seed ${wholeNumber(o.seed, 'seed', 0)} --flap-wait-ms ${wholeNumber(o.flapWaitMs, 'flap wait', 0)} --tag ${VM_TAG}`,
    ...(o.lunChange
      ? [
          `--new-lun ${wholeNumber(o.lunChange.lun, 'new LUN', 0)} --lun-wait-ms ${wholeNumber(o.lunChange.waitMs, 'LUN wait', 1)}`,
        ]
      : []),
  ].join(' ');
  return `
# The host backend needs a host that scans SCSI targets only on request (docs/host-backend.md);
# scsi_mod is a module here, so set it before qla2xxx loads (insmod ignores the kernel command line).
printf manual > /sys/module/scsi_mod/parameters/scan || { echo GUEST:NO-MANUAL-SCAN; exit 6; }
load_qla || exit 7
wait_fc_online 0 120 || { echo GUEST:L1-NOT-ONLINE; exit 3; }
H=$(basename "$(fc_host 0)")
echo "GUEST:L1 $H $(cat /sys/class/fc_host/$H/port_name) $(cat /sys/class/fc_host/$H/max_npiv_vports) $(cat /sys/class/fc_host/$H/npiv_vports_inuse)"
echo "GUEST:L1PORT $(cat /sys/class/fc_host/$H/port_id) $(cat /sys/class/fc_host/$H/port_state)"
enter_rootfs || { echo GUEST:NO-ROOTFS; exit 4; }
in_rootfs sh -c ${shellQuote(`cd ${project} && node bin/npiv-hba.js host list`)} 2>&1 | sed 's/^/GUEST:HOSTLIST /'
# chroot itself (not the in_rootfs function, which would run in a subshell) so that $! is serve.
chroot /rootfs sh -c "cd ${project} && exec ${serve}" >/tmp/serve.log 2>&1 &
SERVE=$!
if ! wait_for /rootfs${VM_SOCKET} 240; then
  sed 's/^/GUEST:SERVE-LOG /' /tmp/serve.log; echo GUEST:NO-SOCKET; exit 5
fi
echo "GUEST:VPORTS $(ls /sys/class/fc_vports | wc -l)"
# The host vport serve created: its names, state, and the Scsi_Host the LLDD added below it.
for v in /sys/class/fc_vports/vport-*; do
  [ -e "$v/vport_state" ] || continue
  vh=$(ls "$v/device" 2>/dev/null | grep '^host[0-9]*$' | head -n 1)
  echo "GUEST:L1VPORT $(basename "$v") $(cat "$v/port_name") $(cat "$v/node_name") $(cat "$v/vport_state") \${vh:-none} $(cat "/sys/class/fc_host/$vh/port_id" 2>/dev/null || echo none)"
done
# The VM's lines pass through; once it verified I/O on a LUN mapped at runtime, level 1's SCSI
# devices and block devices are listed at that moment.
{ in_rootfs ${vm}; echo $? >/tmp/vm.rc; } | while IFS= read -r line; do
  echo "$line"
  case "$line" in
    *'"step":"lun-io"'*)
      echo "GUEST:MAPPED-SCSIDEV $(ls /sys/class/scsi_device | tr '\\n' ' ')"
      echo "GUEST:MAPPED-BLOCK $(ls /sys/block | grep -v '^loop' | tr '\\n' ' ')" ;;
  esac
done
echo "GUEST:VM-EXIT $(cat /tmp/vm.rc)"
echo "GUEST:SCSIDEV $(ls /sys/class/scsi_device | tr '\\n' ' ')"
echo "GUEST:BLOCK $(ls /sys/block | grep -v '^loop' | tr '\\n' ' ')"
echo "GUEST:SG $(ls /sys/class/scsi_generic 2>/dev/null | wc -l)"
kill -TERM $SERVE; wait $SERVE; echo "GUEST:SERVE-EXIT $?"
i=0; while [ "$(ls /sys/class/fc_vports | wc -l)" != 0 ] && [ $i -lt 100 ]; do sleep 0.2; i=$((i+1)); done
echo "GUEST:VPORTS-AFTER $(ls /sys/class/fc_vports | wc -l)"
grep -E '"event":"host_(fc_event|fc_events_unavailable|vport_down|vport_up|luns_changed|lun_removed|lun_unavailable|lun_inventory_failed)"' /tmp/serve.log | tail -n 60 | sed 's/^/GUEST:SERVE-EVENT /'
sed 's/^/GUEST:SERVE-LOG /' /tmp/serve.log | tail -n 40
exit 0
`;
}

/** The console line (runGuest onLine, tag included) on which the caller should bounce level 1's link. */
export const FLAP_REQUEST_LINE = `${VM_TAG}{"step":"waiting-for-flap"}`;
/** The console line prefixes on which the caller maps, then unmaps, the runtime LUN (lunChange). */
export const LUN_MAP_REQUEST_LINE = `${VM_TAG}{"step":"waiting-for-lun-map"`;
export const LUN_UNMAP_REQUEST_LINE = `${VM_TAG}{"step":"waiting-for-lun-unmap"`;

const VM_STEPS = new Set([
  'attached',
  'link-up',
  'discovered',
  'luns',
  'io',
  'waiting-for-flap',
  'waiting-for-lun-map',
  'lun-ua',
  'lun-io',
  'waiting-for-lun-unmap',
  'link-down',
  'done',
  'error',
]);

/**
 * The VM model's events from runGuest's guestLines (tag removed: `VM{...}`). The console is
 * outside data: a line that does not parse as an event object is skipped.
 */
export function vmEvents(guestLines: readonly string[]): VmEvent[] {
  const out: VmEvent[] = [];
  for (const line of guestLines) {
    if (!line.startsWith('VM{')) continue;
    try {
      const e = JSON.parse(line.slice(2).trim()) as unknown;
      if (typeof e === 'object' && e !== null && VM_STEPS.has(String((e as { step?: unknown }).step)))
        out.push(e as VmEvent);
    } catch {
      // a line cut by the console: not an event
    }
  }
  return out;
}

/** What the level-1 script printed, parsed (every field null/empty when its line never came). */
export interface TwoLevelObservation {
  level1: {
    host: string | null;
    portName: string | null;
    maxNpivVports: number | null;
    npivVportsInuse: number | null;
    portId: string | null;
    portState: string | null;
  };
  /** fc_vports once serve listened */
  vportCount: number | null;
  vports: {
    name: string;
    portName: string;
    nodeName: string;
    state: string;
    host: string | null;
    portId: string | null;
  }[];
  vmEvents: VmEvent[];
  vmExit: number | null;
  /** level 1's block devices (loop devices left out); null when the line never came */
  blockDevices: string[] | null;
  sgNodes: number | null;
  serveExit: number | null;
  vportsAfter: number | null;
  /** the markers the script prints when it stops early (NO-SOCKET, ...) */
  stops: string[];
  serveLog: string[];
}

const STOP_MARKERS = ['NO-MANUAL-SCAN', 'L1-NOT-ONLINE', 'NO-ROOTFS', 'NO-SOCKET'];
const MAX_LIST = 256;
const MAX_SERVE_LOG = 64;

function intOrNull(text: string | undefined): number | null {
  return text !== undefined && /^\d{1,9}$/.test(text) ? Number(text) : null;
}

const word = (text: string | undefined): string | null =>
  text !== undefined && text !== '' && text !== 'none' ? text.slice(0, 64) : null;

/** Parses the level-1 script's lines (runGuest guestLines, tag removed); unknown lines are skipped. */
export function parseTwoLevelLines(lines: readonly string[]): TwoLevelObservation {
  const obs: TwoLevelObservation = {
    level1: { host: null, portName: null, maxNpivVports: null, npivVportsInuse: null, portId: null, portState: null },
    vportCount: null,
    vports: [],
    vmEvents: vmEvents(lines),
    vmExit: null,
    blockDevices: null,
    sgNodes: null,
    serveExit: null,
    vportsAfter: null,
    stops: [],
    serveLog: [],
  };
  for (const raw of lines) {
    const line = raw.replace(/\r$/, '');
    const [key, ...rest] = line.split(' ');
    switch (key) {
      case 'L1':
        obs.level1.host = word(rest[0]);
        obs.level1.portName = word(rest[1]);
        obs.level1.maxNpivVports = intOrNull(rest[2]);
        obs.level1.npivVportsInuse = intOrNull(rest[3]);
        break;
      case 'L1PORT':
        obs.level1.portId = word(rest[0]);
        obs.level1.portState = word(rest.slice(1).join(' '));
        break;
      case 'VPORTS':
        obs.vportCount = intOrNull(rest[0]);
        break;
      case 'L1VPORT':
        if (rest.length >= 6 && obs.vports.length < MAX_LIST)
          obs.vports.push({
            name: rest[0]!.slice(0, 64),
            portName: rest[1]!.slice(0, 64),
            nodeName: rest[2]!.slice(0, 64),
            state: rest[3]!.slice(0, 64),
            host: word(rest[4]),
            portId: word(rest[5]),
          });
        break;
      case 'VM-EXIT':
        obs.vmExit = intOrNull(rest[0]);
        break;
      case 'BLOCK':
        obs.blockDevices = rest.filter((w) => w !== '').slice(0, MAX_LIST);
        break;
      case 'SG':
        obs.sgNodes = intOrNull(rest[0]);
        break;
      case 'SERVE-EXIT':
        obs.serveExit = intOrNull(rest[0]);
        break;
      case 'VPORTS-AFTER':
        obs.vportsAfter = intOrNull(rest[0]);
        break;
      case 'SERVE-LOG':
        if (obs.serveLog.length < MAX_SERVE_LOG) obs.serveLog.push(rest.join(' ').slice(0, 2000));
        break;
      default:
        if (key !== undefined && STOP_MARKERS.includes(key) && rest.length === 0) obs.stops.push(key);
    }
  }
  return obs;
}
