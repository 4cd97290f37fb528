/**
 * `npiv-hba host list`: the host's Fibre Channel ports that can carry a host-backed vport
 * (`serve --backend host:PARENT`, docs/host-backend.md): NPIV-capable fc_hosts with their port
 * WWPN, state, fabric name, speed and vports in use / max, read from sysfs (read-only, no root).
 */
import type { Command } from 'commander';
import { listFcHosts, listVports } from '../host/fc-model.js';
import { Sysfs } from '../host/sysfs.js';
import { formatWwn } from '../util/wwn.js';

export interface HostListOptions {
  json?: boolean;
  sysfsRoot?: string;
}

export function registerHostCommand(program: Command): void {
  const host = program
    .command('host')
    .description("the host's FC HBAs for the host NPIV backend (serve --backend host:PARENT)");
  host
    .command('list')
    .description('list NPIV-capable fc_hosts: port WWPN, state, fabric name, speed, vports in use / max')
    .option('--json', 'machine-readable output')
    .option('--sysfs-root <dir>', 'sysfs tree to read (default /sys)')
    .action((opts: HostListOptions) => {
      process.stdout.write(hostList(opts));
    });
}

export function hostList(opts: HostListOptions): string {
  const sys = new Sysfs(opts.sysfsRoot !== undefined ? { root: opts.sysfsRoot } : {});
  const skipped: { object: string; reason: string }[] = [];
  const hosts = listFcHosts(sys, skipped).filter((h) => h.npivCapable);
  const vports = listVports(sys, skipped);
  const rows = hosts.map((h) => ({
    host: `host${h.hostNo}`,
    wwpn: formatWwn(h.portName),
    state: h.portState,
    portType: h.portType,
    fabric: h.fabricName === null ? null : formatWwn(h.fabricName),
    speedGbps: h.speedGbps,
    vportsInUse: h.npivVportsInuse,
    maxVports: h.maxNpivVports,
    vports: vports
      .filter((v) => v.parentHostNo === h.hostNo)
      .map((v) => ({
        name: v.name,
        wwpn: formatWwn(v.portName),
        state: v.state,
        host: v.hostNo === null ? null : `host${v.hostNo}`,
      })),
  }));
  if (opts.json) return `${JSON.stringify({ hosts: rows, skipped }, null, 2)}\n`;
  if (rows.length === 0) {
    const why = skipped.length > 0 ? ` (${skipped.length} unreadable: ${skipped.map((s) => s.object).join(', ')})` : '';
    return `no NPIV-capable fc_host under ${sys.path('class/fc_host')}${why}\n`;
  }
  const lines = ['HOST      WWPN                     STATE     FABRIC                   SPEED    VPORTS'];
  for (const r of rows) {
    lines.push(
      [
        r.host.padEnd(9),
        r.wwpn.padEnd(24),
        r.state.padEnd(9),
        (r.fabric ?? '-').padEnd(24),
        (r.speedGbps === null ? 'unknown' : `${r.speedGbps} Gb`).padEnd(8),
        `${r.vportsInUse ?? '?'}/${r.maxVports ?? '?'}`,
      ].join(' '),
    );
    for (const v of r.vports) lines.push(`  ${v.name} ${v.wwpn} ${v.state}${v.host ? ` ${v.host}` : ''}`);
  }
  for (const s of skipped) lines.push(`skipped ${s.object}: ${s.reason}`);
  return `${lines.join('\n')}\n`;
}
