// npiv_native: module entry point. Each concern registers its own functions:
// fd.cc (close, isOpen, fdSize, eventfd*), mem.cc (mmap, munmap, memfdCreate),
// poll.cc (poll), sock.cc (unix sockets, recvmsg/sendmsg with SCM_RIGHTS),
// cred.cc (peer credentials, user and group lookups), sg.cc (SCSI generic v3 async I/O),
// uevent.cc (kernel uevents over netlink), notify.cc (sd_notify datagrams).
#include "common.h"

namespace npiv {

void RegisterLock(Napi::Env env, Napi::Object exports);    // lock.cc
void RegisterSg(Napi::Env env, Napi::Object exports);      // sg.cc
void RegisterUevent(Napi::Env env, Napi::Object exports);  // uevent.cc
void RegisterNotify(Napi::Env env, Napi::Object exports);  // notify.cc

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  RegisterFd(env, exports);
  RegisterMem(env, exports);
  RegisterPoll(env, exports);
  RegisterSock(env, exports);
  RegisterCred(env, exports);
  RegisterLock(env, exports);
  RegisterSg(env, exports);
  RegisterUevent(env, exports);
  RegisterNotify(env, exports);
  return exports;
}

}  // namespace npiv

namespace {
// NODE_API_MODULE pastes the name into an identifier, so it cannot be qualified.
Napi::Object InitModule(Napi::Env env, Napi::Object exports) { return npiv::Init(env, exports); }
}  // namespace

NODE_API_MODULE(npiv_native, InitModule)
