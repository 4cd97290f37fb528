// npiv_native: Linux syscalls Node lacks, for the vfio-user server and the SAN link.
// Targets Linux >= 5.4 (memfd_create, accept4, MSG_CMSG_CLOEXEC) and Node-API version 8.
//
// Shared declarations: errno errors, argument validation, per-file registration.
#pragma once

#include <napi.h>

#include <cstdint>
#include <string>

namespace npiv {

// Largest number of fds one SCM_RIGHTS message may carry (SCM_MAX_FD in the kernel).
constexpr int64_t kMaxFdsPerMessage = 253;

// Largest exact integer a JS number holds (Number.MAX_SAFE_INTEGER).
constexpr int64_t kMaxSafeInteger = (int64_t{1} << 53) - 1;

// Bound on EINTR/ECONNABORTED retries, so a signal storm cannot spin us forever.
constexpr int kMaxSyscallRetries = 64;

// Throws a JS Error with `errno` (positive number) and `syscall` properties; the TS
// facade (src/native/index.ts) turns it into a NativeError with the errno code name.
[[noreturn]] void ThrowErrno(Napi::Env env, const char* syscall, int err,
                             const std::string& detail = "");
[[noreturn]] void ThrowTypeError(Napi::Env env, const std::string& message);
[[noreturn]] void ThrowRangeError(Napi::Env env, const std::string& message);

// Argument readers: each checks type (TypeError) and range (RangeError) and names the
// argument in the message.
int ArgFd(const Napi::CallbackInfo& info, size_t index, const char* name);
int64_t ArgInteger(const Napi::CallbackInfo& info, size_t index, const char* name,
                   int64_t min, int64_t max);
uint64_t ArgBigUint64(const Napi::CallbackInfo& info, size_t index, const char* name,
                      uint64_t max);
// A string of 1..maxBytes UTF-8 bytes without NUL (it is handed to the kernel as a C string).
std::string ArgCString(const Napi::CallbackInfo& info, size_t index, const char* name,
                       size_t maxBytes);
Napi::Uint8Array ArgUint8Array(const Napi::CallbackInfo& info, size_t index, const char* name);
Napi::Function ArgFunction(const Napi::CallbackInfo& info, size_t index, const char* name);

// True while poll() watches fd in this environment (see poll.cc).
bool IsPolled(Napi::Env env, int fd);

// sg.cc: called by mem.cc before it unmaps [address, +length). If an outstanding sg read still
// targets part of that range (the kernel copies its data there when the completion is read),
// the range is replaced in place by private anonymous memory and unmapped once no such read is
// left: the client's memory is no longer reachable, and the addresses cannot be reused by
// another mapping meanwhile. Returns true if sg took the range over (the caller must not unmap).
bool SgDeferUnmap(void* address, size_t length);

// Registration of each concern's functions on the module exports.
void RegisterFd(Napi::Env env, Napi::Object exports);
void RegisterMem(Napi::Env env, Napi::Object exports);
void RegisterPoll(Napi::Env env, Napi::Object exports);
void RegisterSock(Napi::Env env, Napi::Object exports);
void RegisterCred(Napi::Env env, Napi::Object exports);

// Closes an fd on scope exit unless released; for cleanup on error paths.
class FdGuard {
 public:
  explicit FdGuard(int fd) : fd_(fd) {}
  ~FdGuard();
  FdGuard(const FdGuard&) = delete;
  FdGuard& operator=(const FdGuard&) = delete;
  int get() const { return fd_; }
  int release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }

 private:
  int fd_;
};

}  // namespace npiv
