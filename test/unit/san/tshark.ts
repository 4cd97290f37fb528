/**
 * Finds a tshark to dissect captures with, in this order: $NPIV_HBA_TSHARK; the guest rootfs's
 * tshark through scripts/guest/tshark.sh (Wireshark 4.6; usable once the rootfs cache is built);
 * the host's `tshark` (Debian bookworm: Wireshark 4.0). Returns null when none runs.
 */
import { execFileSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../../../src/util/package-root.js';

const repoRoot = packageRoot();

function runs(cmd: string): boolean {
  try {
    execFileSync(cmd, ['-v'], { stdio: 'ignore', timeout: 30_000 });
    return true;
  } catch {
    return false;
  }
}

export function findTshark(): string | null {
  const override = process.env.NPIV_HBA_TSHARK;
  if (override) return override;
  const wrapper = join(repoRoot, 'scripts', 'guest', 'tshark.sh');
  try {
    accessSync(wrapper, constants.X_OK);
    if (runs(wrapper)) return wrapper;
  } catch {
    // no wrapper
  }
  return runs('tshark') ? 'tshark' : null;
}

/** Run tshark with -T fields over a capture; one row per frame, each field's occurrences split on ','. */
export function tsharkFields(tshark: string, pcap: string, fields: readonly string[]): string[][][] {
  const args = ['-n', '-r', pcap, '-T', 'fields', '-E', 'separator=\t', '-E', 'occurrence=a', '-E', 'aggregator=,'];
  for (const f of fields) args.push('-e', f);
  const out = execFileSync(tshark, args, {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    maxBuffer: 64 * 1024 * 1024,
  });
  return out
    .split('\n')
    .filter((line) => line.length > 0)
    .map((line) => line.split('\t').map((v) => (v === '' ? [] : v.split(','))));
}
