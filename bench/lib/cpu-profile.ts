/**
 * Summaries of V8 CPU profiles (the .cpuprofile JSON that `node --cpu-prof` writes at exit):
 * self time per function and per project module, so the profile part can say from samples, not
 * from reading code, where the HBA and SAN processes spend their CPU.
 *
 *   .cpuprofile = { nodes: [{ id, callFrame: { functionName, url, lineNumber }, children? }],
 *                   startTime, endTime (µs), samples: [nodeId...], timeDeltas: [µs...] }
 *
 * Sample i hit node samples[i]; timeDeltas[i] is the time since the previous sample, so the
 * self time of a node is the sum of the deltas of the samples that hit it.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

export interface CpuProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

export interface CpuProfile {
  nodes: CpuProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface SelfTime {
  name: string;
  /** self time, µs */
  us: number;
  /** share of the busy (non-idle) time */
  share: number;
}

export interface ProfileSummary {
  /** profiled wall time, µs */
  wallUs: number;
  /** sampled time outside "(idle)", µs: what the process spent on the CPU or in GC */
  busyUs: number;
  functions: SelfTime[];
  modules: SelfTime[];
}

/** V8's pseudo-frames: not JavaScript, but what the time went to. */
const PSEUDO: Record<string, string> = {
  '(garbage collector)': 'garbage collection',
  '(program)': 'V8/native outside JS (syscalls, libuv, the native shim)',
  '(idle)': 'idle',
  '(root)': 'root',
};

/**
 * The module a frame belongs to: project sources by directory (src/isp/iocb, src/san/fabric…),
 * Node's own JavaScript as "node:internal", dependencies by package name.
 */
export function moduleOf(url: string, functionName: string): string {
  if (!url) return PSEUDO[functionName] ?? (functionName ? `native: ${functionName}` : 'native');
  if (url.startsWith('node:')) return 'Node.js internals (streams, net, timers)';
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (nm) return `dependency ${nm[1]}`;
  // The last src/ (or bench/) directory of the path: builds live under dist/ or bench/.out/.
  for (const root of ['src', 'bench']) {
    const m = new RegExp(`^.*/${root}/(?:(.*)/)?[^/]+\\.js$`).exec(url);
    if (m) return m[1] ? `${root}/${m[1]}` : root;
  }
  if (url.startsWith('wasm://')) return 'WebAssembly ring engine';
  return url
    .replace(/^file:\/\//, '')
    .split('/')
    .slice(-2)
    .join('/');
}

/** Where a frame's code lives: the path below src/ or bench/ (e.g. src/native/index.js), else the file name. */
function fileOf(url: string): string {
  const m = /^.*\/((?:src|bench)\/.*)$/.exec(url.replace(/\/bench\/\.out\//, '/'));
  return m ? m[1]! : (url.split('/').pop() ?? url);
}

/**
 * A readable name for a frame. Anonymous closures (e.g. the `() => addon().recvmsg(…)` wrapper
 * of the native shim, whose self time is the native call) are named after their first two named
 * callers, so the table says which API they serve.
 */
function frameName(n: CpuProfileNode, parentOf: Map<number, CpuProfileNode>): string {
  const f = n.callFrame;
  if (!f.url) return PSEUDO[f.functionName] ?? f.functionName;
  let name = f.functionName;
  if (!name) {
    // the first two named callers, innermost first: "(anonymous in call ← recvmsg)"
    const callers: string[] = [];
    let p = parentOf.get(n.id);
    for (let hops = 0; p && callers.length < 2 && hops < 8; hops++, p = parentOf.get(p.id)) {
      if (p.callFrame.functionName && p.callFrame.url) callers.push(p.callFrame.functionName);
    }
    name = callers.length ? `(anonymous in ${callers.join(' ← ')})` : '(anonymous)';
  }
  return `${name} ${fileOf(f.url)}:${f.lineNumber + 1}`;
}

/**
 * Self time per function and module. With a window (CLOCK_MONOTONIC µs, the clock of V8's
 * profile timestamps and of process.hrtime on Linux) only the samples inside it count, so
 * start-up and teardown stay out of the figures.
 */
export function summarizeProfile(
  profile: CpuProfile,
  top = 12,
  window?: { startUs: number; endUs: number },
): ProfileSummary {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parentOf = new Map<number, CpuProfileNode>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parentOf.set(c, n);
  const selfUs = new Map<number, number>();
  const n = Math.min(profile.samples.length, profile.timeDeltas.length);
  let t = profile.startTime;
  for (let i = 0; i < n; i++) {
    const delta = Math.max(0, profile.timeDeltas[i]!);
    t += delta;
    if (window && (t < window.startUs || t > window.endUs)) continue;
    const id = profile.samples[i]!;
    selfUs.set(id, (selfUs.get(id) ?? 0) + delta);
  }
  const functions = new Map<string, number>();
  const modules = new Map<string, number>();
  let busy = 0;
  for (const [id, us] of selfUs) {
    const node = byId.get(id);
    if (!node) continue;
    if (node.callFrame.functionName === '(idle)' && !node.callFrame.url) continue;
    busy += us;
    const fn = frameName(node, parentOf);
    functions.set(fn, (functions.get(fn) ?? 0) + us);
    const mod = moduleOf(node.callFrame.url, node.callFrame.functionName);
    modules.set(mod, (modules.get(mod) ?? 0) + us);
  }
  const rank = (m: Map<string, number>, limit: number): SelfTime[] =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, limit)
      .map(([name, us]) => ({ name, us, share: busy > 0 ? us / busy : 0 }));
  const wallUs = window
    ? Math.min(window.endUs, profile.endTime) - Math.max(window.startUs, profile.startTime)
    : profile.endTime - profile.startTime;
  if (wallUs <= 0) throw new Error('the profile does not cover the measured window');
  return { wallUs, busyUs: busy, functions: rank(functions, top), modules: rank(modules, top) };
}

/** The single .cpuprofile a `--cpu-prof --cpu-prof-dir DIR` process left in DIR. */
export function loadProfileFrom(dir: string): CpuProfile {
  const files = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'));
  if (files.length !== 1) throw new Error(`expected one .cpuprofile in ${dir}, found ${files.length}`);
  return JSON.parse(readFileSync(join(dir, files[0]!), 'utf8')) as CpuProfile;
}
