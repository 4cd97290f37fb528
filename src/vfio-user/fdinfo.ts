/**
 * Checks on fds a vfio-user client hands us, through Linux's /proc/self/fdinfo/<fd>
 * (Documentation/filesystems/proc.rst: "flags" in octal, and an "eventfd-count" line for
 * eventfds).
 *
 * Why: the server writes interrupt eventfds synchronously on the event loop. A client that
 * passes a pipe, a regular file or a blocking fd instead of a non-blocking eventfd could make
 * that write block the whole server (a full pipe) or scribble into a file. QEMU's event
 * notifiers (and KVM irqfds) are eventfds created with EFD_NONBLOCK, so requiring both costs a
 * well-behaved client nothing.
 */
import { type FdInfo, fdInfo, O_NONBLOCK } from '../util/proc.js';

/** Why fd is unusable as an interrupt eventfd, or null if it is a non-blocking eventfd. */
export function eventfdProblem(fd: number): string | null {
  let info: FdInfo;
  try {
    info = fdInfo(fd);
  } catch (err) {
    return `fd ${fd} cannot be inspected: ${(err as Error).message}`;
  }
  if (!info.eventfd) return `fd ${fd} is not an eventfd`;
  if (info.flags === null || (info.flags & O_NONBLOCK) === 0) return `eventfd ${fd} is not non-blocking (EFD_NONBLOCK)`;
  return null;
}
