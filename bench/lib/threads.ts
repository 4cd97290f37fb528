/**
 * Per-thread CPU and run-queue wait of a process from /proc/<pid>/task/<tid>/{stat,schedstat}:
 * which QEMU thread (vCPUs, main loop, the vfio-user IOThread, block workers) pays for an I/O,
 * and how long a thread waits for a CPU each time it becomes runnable (schedstat run_delay /
 * timeslices: the cost of a hand-off on a busy host).
 */
import { readdirSync, readFileSync } from 'node:fs';

/** Clock ticks per second of /proc utime/stime (USER_HZ, 100 on Linux). */
const USER_HZ = 100;

export type ThreadRole = 'vcpu' | 'main' | 'iothread' | 'other';

export interface ThreadSample {
  tid: number;
  comm: string;
  /** utime + stime, ms */
  cpuMs: number;
  /** schedstat: ns on CPU, ns waiting on a run queue, timeslices run (null: no schedstat) */
  runNs: number | null;
  waitNs: number | null;
  slices: number | null;
}

/** Parses /proc/<pid>/task/<tid>/stat (comm may hold spaces and parentheses). */
export function parseTaskStat(text: string): { comm: string; cpuMs: number } | null {
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  if (open < 0 || close < open) return null;
  const rest = text
    .slice(close + 2)
    .trim()
    .split(/\s+/);
  // rest[0] is field 3 (state); utime and stime are fields 14 and 15.
  const utime = Number(rest[11]);
  const stime = Number(rest[12]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) return null;
  return { comm: text.slice(open + 1, close), cpuMs: ((utime + stime) * 1000) / USER_HZ };
}

/** Parses schedstat: "<ns on cpu> <ns waiting> <timeslices>". */
export function parseSchedstat(text: string): { runNs: number; waitNs: number; slices: number } | null {
  const f = text.trim().split(/\s+/).map(Number);
  if (f.length < 3 || f.some((x) => !Number.isFinite(x))) return null;
  return { runNs: f[0]!, waitNs: f[1]!, slices: f[2]! };
}

/** Every thread of a process now; empty when the process is gone. */
export function sampleThreads(pid: number): ThreadSample[] {
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return [];
  }
  const out: ThreadSample[] = [];
  for (const t of tids) {
    const tid = Number(t);
    try {
      const st = parseTaskStat(readFileSync(`/proc/${pid}/task/${t}/stat`, 'utf8'));
      if (!st) continue;
      let sched: ReturnType<typeof parseSchedstat> = null;
      try {
        sched = parseSchedstat(readFileSync(`/proc/${pid}/task/${t}/schedstat`, 'utf8'));
      } catch {
        // kernels without CONFIG_SCHED_INFO
      }
      out.push({
        tid,
        comm: st.comm,
        cpuMs: st.cpuMs,
        runNs: sched?.runNs ?? null,
        waitNs: sched?.waitNs ?? null,
        slices: sched?.slices ?? null,
      });
    } catch {
      // the thread ended between readdir and read
    }
  }
  return out;
}

/**
 * QEMU's thread roles with `-name ...,debug-threads=on`: vCPUs are "CPU n/TCG" (or /KVM), the
 * main loop is the thread whose id is the pid, IOThreads are "IO <name>" (the vfio-user proxy's
 * is "IO VFIO user"); the rest are block workers, call_rcu and the like.
 */
export function threadRole(pid: number, t: { tid: number; comm: string }): ThreadRole {
  if (t.tid === pid) return 'main';
  if (/^CPU \d+\//.test(t.comm)) return 'vcpu';
  if (t.comm.startsWith('IO ')) return 'iothread';
  return 'other';
}

export interface RoleUsage {
  cpuMs: number;
  waitMs: number;
  slices: number;
}

/** CPU, run-queue wait and timeslices per role between two samples (threads present in both; new ones count from 0). */
export function diffByRole(
  pid: number,
  before: readonly ThreadSample[],
  after: readonly ThreadSample[],
): Record<ThreadRole, RoleUsage> {
  const out: Record<ThreadRole, RoleUsage> = {
    vcpu: { cpuMs: 0, waitMs: 0, slices: 0 },
    main: { cpuMs: 0, waitMs: 0, slices: 0 },
    iothread: { cpuMs: 0, waitMs: 0, slices: 0 },
    other: { cpuMs: 0, waitMs: 0, slices: 0 },
  };
  const prev = new Map(before.map((t) => [t.tid, t]));
  for (const t of after) {
    const p = prev.get(t.tid);
    const r = out[threadRole(pid, t)];
    r.cpuMs += t.cpuMs - (p?.cpuMs ?? 0);
    if (t.waitNs !== null) r.waitMs += (t.waitNs - (p?.waitNs ?? 0)) / 1e6;
    if (t.slices !== null) r.slices += t.slices - (p?.slices ?? 0);
  }
  return out;
}

/** Sum over every thread (the whole process). */
export function totalUsage(u: Record<ThreadRole, RoleUsage>): RoleUsage {
  const all = Object.values(u);
  return {
    cpuMs: all.reduce((a, r) => a + r.cpuMs, 0),
    waitMs: all.reduce((a, r) => a + r.waitMs, 0),
    slices: all.reduce((a, r) => a + r.slices, 0),
  };
}
