// npiv_native: kernel netlink events for the host NPIV backend, both received with ueventRecv:
//   - uevents (NETLINK_KOBJECT_UEVENT, lib/kobject_uevent.c): fc_remote_ports / fc_vports /
//     fc_host / scsi add and remove events of the vport's host;
//   - FC transport events (NETLINK_SCSITRANSPORT, group SCSI_NL_GRP_FC_EVENTS, posted by
//     fc_host_post_event in drivers/scsi/scsi_transport_fc.c): link up/down, LIP, RSCN, ... as
//     struct fc_nl_event, parsed in TypeScript (src/host/fc-event.ts). Joining that group needs
//     CAP_NET_ADMIN, and the socket exists only in the initial network namespace.
// Readiness comes from poll() (poll.cc, libuv) on the socket; nothing here blocks.
//
// Only messages from the kernel are returned as events: the sender's netlink port ID must be 0
// and its SCM_CREDENTIALS uid 0 (netlink(7): messages from the kernel carry nl_pid 0; udev's own
// re-broadcasts go to group 2 and are not joined here). The payload itself
// ("ACTION@DEVPATH\0KEY=VALUE\0...") is parsed in TypeScript (src/host/uevent.ts).
#include <linux/netlink.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "common.h"

namespace npiv {

namespace {

constexpr uint32_t kKernelGroup = 1;           // the kernel's uevent multicast group (bit 0)
constexpr int kReceiveBuffer = 4 * 1024 * 1024;
// include/uapi/linux/netlink.h and include/uapi/scsi/scsi_netlink.h; defined here so that the
// build does not depend on the scsi uapi headers being installed.
constexpr int kNetlinkScsiTransport = 18;      // NETLINK_SCSITRANSPORT
// SCSI_NL_GRP_FC_EVENTS is defined as (1<<2), but fc_host_post_event passes it to
// nlmsg_multicast as a group *number*: the events go to multicast group 4 (bind() mask bit 3),
// so it is joined by number with NETLINK_ADD_MEMBERSHIP.
constexpr int kScsiNlGroupFcEvents = 1 << 2;
constexpr int kFcReceiveBuffer = 256 * 1024;

// A non-blocking netlink datagram socket of `protocol` (named `name` in errors) that passes the
// sender's credentials (to tell the kernel's messages from a process's), with a receive buffer of
// `rcvbuf` bytes, bound to the multicast groups in the `groups` mask; the caller owns the fd.
// SO_RCVBUFFORCE needs CAP_NET_ADMIN, SO_RCVBUF is capped by net.core.rmem_max; ENOBUFS on
// receive is still reported, and the caller then re-reads sysfs.
static int OpenNetlink(Napi::Env env, int protocol, const std::string& name, int rcvbuf, unsigned groups) {
  int fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, protocol);
  if (fd < 0) ThrowErrno(env, ("socket(" + name + ")").c_str(), errno);
  FdGuard guard(fd);
  int on = 1;
  if (setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &on, sizeof on) != 0) ThrowErrno(env, "setsockopt(SO_PASSCRED)", errno);
  int size = rcvbuf;
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size) != 0) {
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
  }
  struct sockaddr_nl addr;
  std::memset(&addr, 0, sizeof addr);
  addr.nl_family = AF_NETLINK;
  addr.nl_groups = groups;
  if (bind(fd, reinterpret_cast<struct sockaddr*>(&addr), sizeof addr) != 0) ThrowErrno(env, ("bind(" + name + ")").c_str(), errno);
  return guard.release();
}

Napi::Value UeventOpen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  // A burst of device events (a vport with many LUNs going away) must not overflow the queue.
  return Napi::Number::New(env, OpenNetlink(env, NETLINK_KOBJECT_UEVENT, "NETLINK_KOBJECT_UEVENT", kReceiveBuffer, kKernelGroup));
}

// fcEventOpen() -> fd: NETLINK_SCSITRANSPORT bound to the FC transport's event group.
Napi::Value FcEventOpen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = OpenNetlink(env, kNetlinkScsiTransport, "NETLINK_SCSITRANSPORT", kFcReceiveBuffer, 0);
  FdGuard guard(fd);
  int group = kScsiNlGroupFcEvents;
  if (setsockopt(fd, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &group, sizeof group) != 0) {
    ThrowErrno(env, "setsockopt(NETLINK_ADD_MEMBERSHIP, SCSI_NL_GRP_FC_EVENTS)", errno);
  }
  return Napi::Number::New(env, guard.release());
}

// ueventRecv(fd, buf) -> null (nothing to read) | { bytes, fromKernel, truncated, overflow }
Napi::Value UeventRecv(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  Napi::Uint8Array buf = ArgUint8Array(info, 1, "buf");
  if (buf.ByteLength() == 0) ThrowRangeError(env, "argument 2 (buf) must not be empty");
  struct sockaddr_nl from;
  std::memset(&from, 0, sizeof from);
  struct iovec iov = {buf.Data(), buf.ByteLength()};
  alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(struct ucred))];
  struct msghdr msg;
  std::memset(&msg, 0, sizeof msg);
  msg.msg_name = &from;
  msg.msg_namelen = sizeof from;
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n = -1;
  for (int attempt = 0; attempt < kMaxSyscallRetries; ++attempt) {
    n = recvmsg(fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (n >= 0 || errno != EINTR) break;
  }
  Napi::Object out = Napi::Object::New(env);
  if (n < 0) {
    if (errno == EAGAIN) return env.Null();
    if (errno == ENOBUFS) {
      // The socket's queue overflowed: events were lost.
      out.Set("bytes", Napi::Number::New(env, 0));
      out.Set("fromKernel", Napi::Boolean::New(env, false));
      out.Set("truncated", Napi::Boolean::New(env, false));
      out.Set("overflow", Napi::Boolean::New(env, true));
      return out;
    }
    ThrowErrno(env, "recvmsg(netlink)", errno);
  }
  bool kernelUid = false;
  for (struct cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS &&
        c->cmsg_len >= CMSG_LEN(sizeof(struct ucred))) {
      struct ucred cred;
      std::memcpy(&cred, CMSG_DATA(c), sizeof cred);
      kernelUid = cred.uid == 0;
    }
  }
  bool fromKernel = msg.msg_namelen >= sizeof from && from.nl_family == AF_NETLINK && from.nl_pid == 0 && kernelUid;
  out.Set("bytes", Napi::Number::New(env, static_cast<double>(n)));
  out.Set("fromKernel", Napi::Boolean::New(env, fromKernel));
  out.Set("truncated", Napi::Boolean::New(env, (msg.msg_flags & MSG_TRUNC) != 0));
  out.Set("overflow", Napi::Boolean::New(env, false));
  return out;
}

}  // namespace

void RegisterUevent(Napi::Env env, Napi::Object exports) {
  exports.Set("ueventOpen", Napi::Function::New(env, UeventOpen, "ueventOpen"));
  exports.Set("ueventRecv", Napi::Function::New(env, UeventRecv, "ueventRecv"));
  exports.Set("fcEventOpen", Napi::Function::New(env, FcEventOpen, "fcEventOpen"));
}

}  // namespace npiv
