/**
 * Finds a tshark to dissect captures with: the host's `tshark`, else the guest rootfs wrapper
 * scripts/guest/tshark.sh (same arguments). Returns null when neither is there.
 */
import { execFileSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

export function findTshark(): string | null {
  try {
    return execFileSync('sh', ['-c', 'command -v tshark'], { encoding: 'utf8' }).trim() || null;
  } catch {
    // not on PATH
  }
  const wrapper = join(repoRoot, 'scripts', 'guest', 'tshark.sh');
  try {
    accessSync(wrapper, constants.X_OK);
    return wrapper;
  } catch {
    return null;
  }
}

/** Run tshark with -T fields over a capture; one row per frame, each field's occurrences split on ','. */
export function tsharkFields(tshark: string, pcap: string, fields: readonly string[]): string[][][] {
  const args = ['-n', '-r', pcap, '-T', 'fields', '-E', 'separator=\t', '-E', 'occurrence=a', '-E', 'aggregator=,'];
  for (const f of fields) args.push('-e', f);
  const out = execFileSync(tshark, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 * 1024 * 1024 });
  return out
    .split('\n')
    .filter((line) => line.length > 0)
    .map((line) => line.split('\t').map((v) => (v === '' ? [] : v.split(','))));
}
