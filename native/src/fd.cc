// npiv_native: plain fd operations and eventfd counters (Linux close(2), fcntl(2),
// fstat(2), eventfd(2)). eventfds carry interrupts to QEMU (irqfd) and kicks from it.
#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>

#include "common.h"

namespace npiv {

namespace {

constexpr int64_t kMaxEventfdInitval = UINT32_MAX;  // eventfd(2) takes an unsigned int
// The counter saturates at 2^64 - 2; writing 2^64 - 1 is rejected by the kernel (EINVAL).
constexpr uint64_t kMaxEventfdAdd = UINT64_MAX - 1;

Napi::Value Close(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  // Closing a watched fd would leave libuv's epoll bookkeeping pointing at whatever
  // file next gets this fd number; insist on stop() first.
  if (IsPolled(env, fd)) {
    ThrowErrno(env, "close", EBUSY, "(fd " + std::to_string(fd) + " is being polled: stop() its watch first)");
  }
  // On Linux the fd is released even when close() reports EINTR: never retry.
  if (close(fd) != 0 && errno != EINTR) ThrowErrno(env, "close", errno);
  return env.Undefined();
}

Napi::Value IsOpen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  if (fcntl(fd, F_GETFD) != -1) return Napi::Boolean::New(env, true);
  if (errno == EBADF) return Napi::Boolean::New(env, false);
  ThrowErrno(env, "fcntl", errno);
}

Napi::Value FdSize(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  struct stat status;
  if (fstat(fd, &status) != 0) ThrowErrno(env, "fstat", errno);
  if (status.st_size > kMaxSafeInteger) {
    ThrowErrno(env, "fstat", EOVERFLOW, "size " + std::to_string(status.st_size));
  }
  return Napi::Number::New(env, static_cast<double>(status.st_size));
}

// fallocate(PUNCH_HOLE|KEEP_SIZE): the range reads back as zeros and its pages/blocks are freed
// (a volume's UNMAP on a memfd or file store).
Napi::Value PunchHole(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  int64_t offset = ArgInteger(info, 1, "offset", 0, kMaxSafeInteger);
  int64_t length = ArgInteger(info, 2, "length", 0, kMaxSafeInteger);
  if (length == 0) return env.Undefined();
  if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(offset),
                static_cast<off_t>(length)) != 0) {
    ThrowErrno(env, "fallocate", errno);
  }
  return env.Undefined();
}

// fcntl(F_DUPFD_CLOEXEC): a second fd for the same open file (an in-process grant receiver owns
// its own fd, as one received with SCM_RIGHTS would).
Napi::Value Dup(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  int copy = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (copy < 0) ThrowErrno(env, "fcntl", errno);
  return Napi::Number::New(env, copy);
}

// fstat st_blocks in bytes: what a sparse file or memfd really holds.
Napi::Value FdAllocatedBytes(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  struct stat status;
  if (fstat(fd, &status) != 0) ThrowErrno(env, "fstat", errno);
  return Napi::Number::New(env, static_cast<double>(status.st_blocks) * 512.0);
}

// F_GET_SEALS: the seals of a memfd (F_SEAL_SHRINK etc.), or -1 when the file cannot carry
// seals at all (EINVAL: not a memfd / shmem file). A DMA window over an unsealed file can be
// truncated by the client under a live mapping; touching it then raises SIGBUS.
Napi::Value FdSeals(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  int seals = fcntl(fd, F_GET_SEALS);
  if (seals >= 0) return Napi::Number::New(env, seals);
  if (errno == EINVAL) return Napi::Number::New(env, -1);
  ThrowErrno(env, "fcntl", errno);
}

Napi::Value EventFd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto initval = static_cast<unsigned int>(ArgInteger(info, 0, "initval", 0, kMaxEventfdInitval));
  int fd = eventfd(initval, EFD_CLOEXEC | EFD_NONBLOCK);
  if (fd < 0) ThrowErrno(env, "eventfd", errno);
  return Napi::Number::New(env, fd);
}

Napi::Value EventFdWrite(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  uint64_t value = ArgBigUint64(info, 1, "value", kMaxEventfdAdd);
  for (int attempt = 0; attempt < kMaxSyscallRetries; ++attempt) {
    ssize_t written = write(fd, &value, sizeof value);
    if (written == static_cast<ssize_t>(sizeof value)) return env.Undefined();
    // A short write means this is not an eventfd.
    if (written >= 0) ThrowErrno(env, "write", EINVAL, "(short write: not an eventfd?)");
    // EAGAIN: the counter would overflow; reported, since the caller must decide.
    if (errno != EINTR) break;
  }
  ThrowErrno(env, "write", errno);
}

Napi::Value EventFdRead(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  for (int attempt = 0; attempt < kMaxSyscallRetries; ++attempt) {
    uint64_t value = 0;
    ssize_t got = read(fd, &value, sizeof value);
    if (got == static_cast<ssize_t>(sizeof value)) return Napi::BigInt::New(env, value);
    if (got >= 0) ThrowErrno(env, "read", EINVAL, "(short read: not an eventfd?)");
    if (errno == EAGAIN || errno == EWOULDBLOCK) return env.Null();  // counter is 0
    if (errno != EINTR) break;
  }
  ThrowErrno(env, "read", errno);
}

}  // namespace

void RegisterFd(Napi::Env env, Napi::Object exports) {
  exports.Set("close", Napi::Function::New(env, Close, "close"));
  exports.Set("isOpen", Napi::Function::New(env, IsOpen, "isOpen"));
  exports.Set("fdSize", Napi::Function::New(env, FdSize, "fdSize"));
  exports.Set("fdSeals", Napi::Function::New(env, FdSeals, "fdSeals"));
  exports.Set("punchHole", Napi::Function::New(env, PunchHole, "punchHole"));
  exports.Set("dup", Napi::Function::New(env, Dup, "dup"));
  exports.Set("fdAllocatedBytes", Napi::Function::New(env, FdAllocatedBytes, "fdAllocatedBytes"));
  exports.Set("eventfd", Napi::Function::New(env, EventFd, "eventfd"));
  exports.Set("eventfdWrite", Napi::Function::New(env, EventFdWrite, "eventfdWrite"));
  exports.Set("eventfdRead", Napi::Function::New(env, EventFdRead, "eventfdRead"));
}

}  // namespace npiv
