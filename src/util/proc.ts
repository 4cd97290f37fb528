/**
 * Linux /proc readings shared by the vport runtime, the vfio-user server, the lab, the
 * benchmarks and the tests, so each field is parsed one way. Every reader returns null (or
 * throws, for the parsers) instead of guessing when /proc is missing or the process is gone.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';

/** USER_HZ of /proc/<pid>/stat utime/stime on Linux x86-64. */
const CLOCK_TICKS_PER_SECOND = 100;
/** /proc/<pid>/stat fields after the ")" of comm, 0-based: state is 0, ppid 1, utime 11, stime 12. */
const STAT_STATE = 0;
const STAT_PPID = 1;
const STAT_UTIME = 11;
const STAT_STIME = 12;

/**
 * The fields of a /proc stat line after comm. comm may hold spaces and parentheses, so the
 * split starts after the last ")".
 */
function statFields(stat: string): string[] | null {
  const close = stat.lastIndexOf(')');
  if (close < 0) return null;
  return stat
    .slice(close + 2)
    .trim()
    .split(/\s+/);
}

/** The pids /proc lists (numeric entries), or null without a readable /proc. */
export function listPids(): number[] | null {
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return null;
  }
  return entries.filter((name) => /^\d+$/.test(name)).map(Number);
}

/** argv of a live process (/proc/<pid>/cmdline); null when unreadable or empty (kernel thread, zombie). */
export function processArgv(pid: number): string[] | null {
  try {
    const raw = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    if (raw.length === 0) return null;
    return raw.split('\0').filter((a) => a.length > 0);
  } catch {
    return null;
  }
}

/** The parent pid (/proc/<pid>/stat field 4), or null if the process is gone. */
export function parentPid(pid: number): number | null {
  try {
    const ppid = Number(statFields(readFileSync(`/proc/${pid}/stat`, 'utf8'))?.[STAT_PPID]);
    return Number.isInteger(ppid) ? ppid : null;
  } catch {
    return null;
  }
}

function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException | null)?.code === 'EPERM';
  }
}

/** Scheduler state letter of one task (`/proc/<pid>/task/<tid>/stat`, field 3), or null if gone. */
function taskState(pid: number, tid: string): string | null {
  try {
    return statFields(readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8'))?.[STAT_STATE]?.charAt(0) || null;
  } catch {
    return null;
  }
}

/**
 * 'exiting' covers a thread-group leader that is already a zombie while other threads still run
 * their exit: the process's files (a listening socket) are released only when the last goes.
 */
export type ProcessState = 'absent' | 'zombie' | 'exiting' | 'live';

export function processState(pid: number): ProcessState {
  if (!processExists(pid)) return 'absent';
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return existsSync(`/proc/${pid}`) ? 'zombie' : 'live'; // no /proc: only existence is known
  }
  const states = tids.map((tid) => taskState(pid, tid)).filter((s): s is string => s !== null);
  const dead = (s: string) => s === 'Z' || s === 'X';
  if (states.every(dead)) return 'zombie';
  return dead(taskState(pid, String(pid)) ?? 'Z') ? 'exiting' : 'live';
}

/** Parses utime+stime (ms) out of a /proc/<pid>/stat line. */
export function parseProcStatCpuMs(stat: string): number {
  const fields = statFields(stat);
  if (fields === null) throw new Error('malformed /proc stat line');
  const utime = Number(fields[STAT_UTIME]);
  const stime = Number(fields[STAT_STIME]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) throw new Error('malformed /proc stat line');
  return ((utime + stime) * 1000) / CLOCK_TICKS_PER_SECOND;
}

/** Parses VmRSS (KiB) out of /proc/<pid>/status. */
export function parseProcStatusRssKiB(status: string): number {
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
  if (!m) throw new Error('no VmRSS in /proc status');
  return Number(m[1]);
}

/** CPU time (user + system, ms) a process has used so far. */
export async function cpuTimeMs(pid: number): Promise<number> {
  return parseProcStatCpuMs(await readFile(`/proc/${pid}/stat`, 'utf8'));
}

/** Resident set size (KiB) of a process. */
export async function rssKiB(pid: number): Promise<number> {
  return parseProcStatusRssKiB(await readFile(`/proc/${pid}/status`, 'utf8'));
}

/** Proportional set size (KiB) of a process, from /proc/<pid>/smaps_rollup. */
export async function pssKiB(pid: number): Promise<number> {
  const text = await readFile(`/proc/${pid}/smaps_rollup`, 'utf8');
  const m = /^Pss:\s+(\d+)\s+kB/m.exec(text);
  if (!m) throw new Error('no Pss in smaps_rollup');
  return Number(m[1]);
}

/** How many file descriptors this process has open (/proc/self/fd; the listing's own fd included). */
export function openFdCount(): number {
  return readdirSync('/proc/self/fd').length;
}

/** Open-file status flags as Linux reports them in fdinfo `flags:` (octal, asm-generic/fcntl.h). */
export const O_NONBLOCK = 0o4000;
export const O_CLOEXEC = 0o2000000;

/** What /proc/<pid>/fdinfo/<fd> says about an open file (Documentation/filesystems/proc.rst). */
export interface FdInfo {
  /** the open-file status flags (`flags:`, octal in the file), or null without that line */
  flags: number | null;
  /** whether the file is an eventfd (it has an `eventfd-count:` line) */
  eventfd: boolean;
}

/** Parses the text of a /proc/<pid>/fdinfo/<fd> file. */
export function parseFdInfo(text: string): FdInfo {
  const flags = /^flags:\s*([0-7]+)$/m.exec(text)?.[1];
  return {
    flags: flags === undefined ? null : Number.parseInt(flags, 8),
    eventfd: /^eventfd-count:/m.test(text),
  };
}

/** fdinfo of one of this process's fds (/proc/self/fdinfo/<fd>); throws when fd is not open. */
export function fdInfo(fd: number): FdInfo {
  return parseFdInfo(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'));
}
