// npiv_native: who is at the other end of a Unix socket, and user/group names to ids.
// SO_PEERCRED / SO_PEERGROUPS: socket(7), unix(7); getpwnam_r(3), getgrnam_r(3).
// The servers check every accepted connection against the uids/gids allowed to use them, and
// `serve` checks who runs the SAN before it sends it a frame (docs/security.md).
#include <grp.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

#include "common.h"

// Linux 4.13; older C library headers may lack the name (asm-generic/socket.h).
#ifndef SO_PEERGROUPS
#define SO_PEERGROUPS 59
#endif

namespace npiv {

namespace {

// NGROUPS_MAX on Linux is 65536: a peer cannot have more supplementary groups.
constexpr size_t kMaxGroups = 65536;
// getpwnam_r/getgrnam_r buffers grow on ERANGE up to this (a group with thousands of members).
constexpr size_t kMaxLookupBuffer = size_t{1} << 22;

Napi::Value PeerCred(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  ucred cred{};
  socklen_t length = sizeof cred;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &length) != 0) {
    ThrowErrno(env, "getsockopt", errno, "(SO_PEERCRED)");
  }
  // The peer's supplementary groups as they were at connect()/listen(); the kernel says how
  // much room it needs (ERANGE + length), which can only grow between calls by a bounded amount.
  std::vector<gid_t> groups(64);
  bool haveGroups = false;
  for (int attempt = 0; attempt < 4 && !haveGroups; ++attempt) {
    socklen_t bytes = static_cast<socklen_t>(groups.size() * sizeof(gid_t));
    if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups.data(), &bytes) == 0) {
      groups.resize(bytes / sizeof(gid_t));
      haveGroups = true;
    } else if (errno == ERANGE && bytes / sizeof(gid_t) <= kMaxGroups) {
      groups.resize(bytes / sizeof(gid_t) + 16);
    } else if (errno == ENOPROTOOPT) {
      groups.clear();  // kernel older than 4.13: the primary gid is all we know
      haveGroups = true;
    } else {
      ThrowErrno(env, "getsockopt", errno, "(SO_PEERGROUPS)");
    }
  }
  if (!haveGroups) ThrowErrno(env, "getsockopt", ERANGE, "(SO_PEERGROUPS kept growing)");
  Napi::Object result = Napi::Object::New(env);
  result.Set("pid", Napi::Number::New(env, cred.pid));
  result.Set("uid", Napi::Number::New(env, cred.uid));
  result.Set("gid", Napi::Number::New(env, cred.gid));
  Napi::Array list = Napi::Array::New(env, groups.size());
  for (size_t i = 0; i < groups.size(); ++i) list.Set(static_cast<uint32_t>(i), Napi::Number::New(env, groups[i]));
  result.Set("groups", list);
  return result;
}

// getpwnam_r/getgrnam_r report "no such name" as 0 with a null result, or (per the man page's
// NOTES) as ENOENT, ESRCH, EBADF or EPERM depending on the NSS backend.
bool NotFound(int err) { return err == 0 || err == ENOENT || err == ESRCH || err == EBADF || err == EPERM; }

Napi::Value LookupUser(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = ArgCString(info, 0, "name", 256);
  std::vector<char> buffer(16384);
  for (;;) {
    passwd entry{};
    passwd* found = nullptr;
    int err = getpwnam_r(name.c_str(), &entry, buffer.data(), buffer.size(), &found);
    if (err == ERANGE && buffer.size() < kMaxLookupBuffer) {
      buffer.resize(buffer.size() * 2);
      continue;
    }
    if (found != nullptr) {
      Napi::Object result = Napi::Object::New(env);
      result.Set("uid", Napi::Number::New(env, found->pw_uid));
      result.Set("gid", Napi::Number::New(env, found->pw_gid));
      return result;
    }
    if (NotFound(err)) return env.Null();
    ThrowErrno(env, "getpwnam_r", err, "'" + name + "'");
  }
}

Napi::Value LookupGroup(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = ArgCString(info, 0, "name", 256);
  std::vector<char> buffer(16384);
  for (;;) {
    group entry{};
    group* found = nullptr;
    int err = getgrnam_r(name.c_str(), &entry, buffer.data(), buffer.size(), &found);
    if (err == ERANGE && buffer.size() < kMaxLookupBuffer) {
      buffer.resize(buffer.size() * 2);
      continue;
    }
    if (found != nullptr) return Napi::Number::New(env, found->gr_gid);
    if (NotFound(err)) return env.Null();
    ThrowErrno(env, "getgrnam_r", err, "'" + name + "'");
  }
}

}  // namespace

void RegisterCred(Napi::Env env, Napi::Object exports) {
  exports.Set("peerCred", Napi::Function::New(env, PeerCred, "peerCred"));
  exports.Set("lookupUser", Napi::Function::New(env, LookupUser, "lookupUser"));
  exports.Set("lookupGroup", Napi::Function::New(env, LookupGroup, "lookupGroup"));
}

}  // namespace npiv
