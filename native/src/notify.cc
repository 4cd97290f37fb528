// npiv_native: the systemd readiness protocol (sd_notify(3)) without libsystemd: one datagram of
// newline-separated KEY=VALUE assignments sent to the AF_UNIX SOCK_DGRAM socket named by
// $NOTIFY_SOCKET. A leading '@' names a socket in the abstract namespace (unix(7)).
// notifyBind is the receiving end, for tests and for supervisors that want to listen themselves.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <string>

#include "common.h"

namespace npiv {

namespace {

// A notification is a few short assignments; bound it so a caller cannot send a huge datagram.
constexpr size_t kMaxNotifyBytes = 4096;

sockaddr_un NotifyAddress(const Napi::CallbackInfo& info, size_t index, socklen_t* length) {
  sockaddr_un address{};
  std::string path = ArgCString(info, index, "path", sizeof address.sun_path - 1);
  if (path.size() < 2 || (path[0] != '/' && path[0] != '@')) {
    ThrowTypeError(info.Env(), "path: expected an absolute path or an '@' abstract name");
  }
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, path.data(), path.size());
  if (path[0] == '@') {
    // Abstract names are not NUL-terminated: the length says where the name ends.
    address.sun_path[0] = '\0';
    *length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size());
  } else {
    *length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + 1);
  }
  return address;
}

// notifySend(path, text): one datagram; throws on failure (ECONNREFUSED when nobody listens).
Napi::Value NotifySend(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  socklen_t length = 0;
  sockaddr_un address = NotifyAddress(info, 0, &length);
  std::string text = ArgCString(info, 1, "text", kMaxNotifyBytes);
  FdGuard fd(socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) ThrowErrno(env, "socket", errno);
  ssize_t sent;
  do {
    sent = sendto(fd.get(), text.data(), text.size(), MSG_NOSIGNAL,
                  reinterpret_cast<const sockaddr*>(&address), length);
  } while (sent < 0 && errno == EINTR);
  if (sent < 0) ThrowErrno(env, "sendto", errno, info[0].As<Napi::String>().Utf8Value());
  if (static_cast<size_t>(sent) != text.size()) ThrowErrno(env, "sendto", EMSGSIZE);
  return env.Undefined();
}

// notifyBind(path): a non-blocking datagram socket bound to path (file or '@' abstract); returns its fd.
Napi::Value NotifyBind(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  socklen_t length = 0;
  sockaddr_un address = NotifyAddress(info, 0, &length);
  FdGuard fd(socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) ThrowErrno(env, "socket", errno);
  if (bind(fd.get(), reinterpret_cast<const sockaddr*>(&address), length) != 0) {
    ThrowErrno(env, "bind", errno, info[0].As<Napi::String>().Utf8Value());
  }
  return Napi::Number::New(env, fd.release());
}

// notifyReceive(fd): the next datagram as a string, or null when none is queued.
Napi::Value NotifyReceive(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  char buffer[kMaxNotifyBytes];
  ssize_t got;
  do {
    got = recv(fd, buffer, sizeof buffer, MSG_DONTWAIT);
  } while (got < 0 && errno == EINTR);
  if (got < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return env.Null();
    ThrowErrno(env, "recv", errno);
  }
  return Napi::String::New(env, buffer, static_cast<size_t>(got));
}

}  // namespace

void RegisterNotify(Napi::Env env, Napi::Object exports) {
  exports.Set("notifySend", Napi::Function::New(env, NotifySend, "notifySend"));
  exports.Set("notifyBind", Napi::Function::New(env, NotifyBind, "notifyBind"));
  exports.Set("notifyReceive", Napi::Function::New(env, NotifyReceive, "notifyReceive"));
}

}  // namespace npiv
