// npiv_native: advisory whole-file locks (flock(2)), which Node lacks. The SAN locks each volume's
// backing file so two SAN processes never write one image; vport management locks its lock files
// so a crashed holder releases them (the kernel drops a flock with the last fd of its open file).
#include <sys/file.h>

#include <cerrno>

#include "common.h"

namespace npiv {

namespace {

// flock(fd, operation): operation is LOCK_SH (1), LOCK_EX (2) or LOCK_UN (8), optionally with
// LOCK_NB (4). Returns true when done, false when LOCK_NB was given and another open file holds
// a conflicting lock (EWOULDBLOCK); other failures throw.
Napi::Value Flock(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  int operation = static_cast<int>(ArgInteger(info, 1, "operation", 0, LOCK_SH | LOCK_EX | LOCK_NB | LOCK_UN));
  int kind = operation & ~LOCK_NB;
  if (kind != LOCK_SH && kind != LOCK_EX && kind != LOCK_UN) {
    ThrowRangeError(env, "operation must be one of LOCK_SH, LOCK_EX, LOCK_UN, optionally | LOCK_NB");
  }
  for (int attempt = 0; attempt < kMaxSyscallRetries; ++attempt) {
    if (flock(fd, operation) == 0) return Napi::Boolean::New(env, true);
    if (errno == EWOULDBLOCK && (operation & LOCK_NB)) return Napi::Boolean::New(env, false);
    if (errno != EINTR) break;
  }
  ThrowErrno(env, "flock", errno);
}

}  // namespace

void RegisterLock(Napi::Env env, Napi::Object exports) {
  exports.Set("flock", Napi::Function::New(env, Flock, "flock"));
}

}  // namespace npiv
