// npiv_native: AF_UNIX stream sockets with SCM_RIGHTS fd passing (Linux socket(7), unix(7)).
// Every socket created here is non-blocking and close-on-exec; received fds are
// close-on-exec (MSG_CMSG_CLOEXEC). Nothing here blocks: EAGAIN is reported as null.
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "cmsg.h"
#include "common.h"

namespace npiv {

namespace {

constexpr int kSocketFlags = SOCK_NONBLOCK | SOCK_CLOEXEC;
// recvmsg must never block, even on an fd that was not created non-blocking.
constexpr int kRecvFlags = MSG_CMSG_CLOEXEC | MSG_DONTWAIT;
// MSG_NOSIGNAL: a closed peer yields EPIPE instead of killing the process with SIGPIPE.
constexpr int kSendFlags = MSG_NOSIGNAL | MSG_DONTWAIT;
constexpr int64_t kMaxBacklog = 65535;

// Room for the largest SCM_RIGHTS message, aligned for cmsghdr.
union ControlBuffer {
  cmsghdr align;
  char bytes[CMSG_SPACE(sizeof(int) * kMaxFdsPerMessage)];
};

bool WouldBlock(int err) { return err == EAGAIN || err == EWOULDBLOCK; }

sockaddr_un UnixAddress(const Napi::CallbackInfo& info, size_t index, socklen_t* length) {
  sockaddr_un address{};
  // sun_path must hold the path plus its terminating NUL.
  std::string path = ArgCString(info, index, "path", sizeof address.sun_path - 1);
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, path.data(), path.size());
  *length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + 1);
  return address;
}

std::string Quoted(const sockaddr_un& address) {
  return std::string("'") + address.sun_path + "'";
}

Napi::Value UnixListen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  socklen_t length = 0;
  sockaddr_un address = UnixAddress(info, 0, &length);
  int backlog = static_cast<int>(ArgInteger(info, 1, "backlog", 0, kMaxBacklog));

  FdGuard fd(socket(AF_UNIX, SOCK_STREAM | kSocketFlags, 0));
  if (fd.get() < 0) ThrowErrno(env, "socket", errno);
  if (bind(fd.get(), reinterpret_cast<const sockaddr*>(&address), length) != 0) {
    ThrowErrno(env, "bind", errno, Quoted(address));
  }
  if (listen(fd.get(), backlog) != 0) ThrowErrno(env, "listen", errno, Quoted(address));
  return Napi::Number::New(env, fd.release());
}

// (uid_t)-1 / (gid_t)-1 mean "leave unchanged" to fchownat(2); the JS side passes -1.
constexpr int64_t kMaxId = int64_t{UINT32_MAX} - 1;

// Removes the private temporary directory (and the socket bound in it, unless it was renamed
// away) when UnixListenPrivate returns or throws.
class TempSocketDir {
 public:
  explicit TempSocketDir(std::string path) : path_(std::move(path)) {}
  ~TempSocketDir() {
    if (bound_) unlink((path_ + "/s").c_str());
    rmdir(path_.c_str());
  }
  TempSocketDir(const TempSocketDir&) = delete;
  TempSocketDir& operator=(const TempSocketDir&) = delete;
  const std::string& path() const { return path_; }
  void setBound(bool bound) { bound_ = bound; }

 private:
  std::string path_;
  bool bound_ = false;
};

// Listens on `path` with the socket file's mode (and owner) set before the path exists:
// bind(2) creates the file with the process umask, so the socket is bound inside a fresh
// mkdtemp(3) directory (mode 0700: nobody else can reach it), chmod/chown'ed there, then
// renamed into place with RENAME_NOREPLACE (rename(2)), so the final path never has a wider
// mode and an existing file there is never replaced. The bind goes through /proc/self/fd/N/s
// so that the temporary path always fits sun_path, however long the directory name is.
Napi::Value UnixListenPrivate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  sockaddr_un address{};
  std::string path = ArgCString(info, 0, "path", sizeof address.sun_path - 1);
  int backlog = static_cast<int>(ArgInteger(info, 1, "backlog", 0, kMaxBacklog));
  auto mode = static_cast<mode_t>(ArgInteger(info, 2, "mode", 0, 0777));
  auto uid = static_cast<uid_t>(ArgInteger(info, 3, "uid", -1, kMaxId));
  auto gid = static_cast<gid_t>(ArgInteger(info, 4, "gid", -1, kMaxId));
  const std::string quoted = "'" + path + "'";

  size_t slash = path.rfind('/');
  std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
  std::string name = slash == std::string::npos ? path : path.substr(slash + 1);
  if (name.empty() || name == "." || name == "..") {
    ThrowRangeError(env, "argument 1 (path) must name a file, not a directory: " + quoted);
  }
  std::vector<char> pattern(dir.begin(), dir.end());
  const char suffix[] = "/.npiv-sock-XXXXXX";
  pattern.insert(pattern.end(), suffix, suffix + sizeof suffix);  // includes the NUL
  if (mkdtemp(pattern.data()) == nullptr) ThrowErrno(env, "mkdtemp", errno, "in '" + dir + "'");
  TempSocketDir temp(pattern.data());

  FdGuard dirFd(open(temp.path().c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (dirFd.get() < 0) ThrowErrno(env, "open", errno, "'" + temp.path() + "'");
  std::string viaProc = "/proc/self/fd/" + std::to_string(dirFd.get()) + "/s";
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, viaProc.data(), viaProc.size());
  auto length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + viaProc.size() + 1);

  FdGuard fd(socket(AF_UNIX, SOCK_STREAM | kSocketFlags, 0));
  if (fd.get() < 0) ThrowErrno(env, "socket", errno);
  if (bind(fd.get(), reinterpret_cast<const sockaddr*>(&address), length) != 0) {
    ThrowErrno(env, "bind", errno, "(temporary socket for " + quoted + ")");
  }
  temp.setBound(true);
  if (fchmodat(dirFd.get(), "s", mode, 0) != 0) ThrowErrno(env, "fchmodat", errno, quoted);
  if ((uid != static_cast<uid_t>(-1) || gid != static_cast<gid_t>(-1)) &&
      fchownat(dirFd.get(), "s", uid, gid, AT_SYMLINK_NOFOLLOW) != 0) {
    ThrowErrno(env, "fchownat", errno, quoted);
  }
  if (listen(fd.get(), backlog) != 0) ThrowErrno(env, "listen", errno, quoted);
  if (renameat2(dirFd.get(), "s", AT_FDCWD, path.c_str(), RENAME_NOREPLACE) != 0) {
    ThrowErrno(env, "renameat2", errno, quoted);
  }
  temp.setBound(false);
  return Napi::Number::New(env, fd.release());
}

// True when the peer of a connected stream socket has hung up (POLLHUP/POLLRDHUP, poll(2)),
// without reading anything: the vfio-user server asks this of its current client when a new
// connection arrives, since the hang-up may not have reached its poll callback yet.
Napi::Value SocketHungUp(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  pollfd entry{fd, POLLRDHUP, 0};
  int ready = -1;
  for (int attempt = 0; attempt < kMaxSyscallRetries; ++attempt) {
    ready = poll(&entry, 1, 0);
    if (ready >= 0 || errno != EINTR) break;
  }
  if (ready < 0) ThrowErrno(env, "poll", errno);
  if (entry.revents & POLLNVAL) ThrowErrno(env, "poll", EBADF, "(fd " + std::to_string(fd) + ")");
  return Napi::Boolean::New(env, (entry.revents & (POLLHUP | POLLRDHUP | POLLERR)) != 0);
}

Napi::Value UnixAccept(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int listenFd = ArgFd(info, 0, "listenFd");
  int err = 0;
  for (int attempt = 0; attempt < kMaxSyscallRetries; ++attempt) {
    int fd = accept4(listenFd, nullptr, nullptr, kSocketFlags);
    if (fd >= 0) return Napi::Number::New(env, fd);
    err = errno;
    if (WouldBlock(err)) return env.Null();
    // EINTR: retry; ECONNABORTED: that pending connection died, try the next one.
    if (err != EINTR && err != ECONNABORTED) break;
  }
  ThrowErrno(env, "accept4", err);
}

Napi::Value UnixConnect(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  socklen_t length = 0;
  sockaddr_un address = UnixAddress(info, 0, &length);

  FdGuard fd(socket(AF_UNIX, SOCK_STREAM | kSocketFlags, 0));
  if (fd.get() < 0) ThrowErrno(env, "socket", errno);
  // An AF_UNIX stream connect completes (or fails) immediately; on a non-blocking
  // socket a full listen backlog gives EAGAIN rather than waiting.
  if (connect(fd.get(), reinterpret_cast<const sockaddr*>(&address), length) != 0) {
    ThrowErrno(env, "connect", errno, Quoted(address));
  }
  return Napi::Number::New(env, fd.release());
}

Napi::Value SocketPair(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | kSocketFlags, 0, fds) != 0) {
    ThrowErrno(env, "socketpair", errno);
  }
  Napi::Array pair = Napi::Array::New(env, 2);
  pair.Set(uint32_t{0}, Napi::Number::New(env, fds[0]));
  pair.Set(uint32_t{1}, Napi::Number::New(env, fds[1]));
  return pair;
}

Napi::Value RecvMsg(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  Napi::Uint8Array buffer = ArgUint8Array(info, 1, "buf");
  const int64_t size = static_cast<int64_t>(buffer.ByteLength());
  int64_t offset = ArgInteger(info, 2, "offset", 0, size);
  int64_t length = ArgInteger(info, 3, "length", 1, kMaxSafeInteger);
  if (length > size - offset) {
    ThrowRangeError(env, "offset + length (" + std::to_string(offset) + " + " +
                             std::to_string(length) + ") exceeds the buffer size " +
                             std::to_string(size));
  }
  int maxFds = static_cast<int>(ArgInteger(info, 4, "maxFds", 0, kMaxFdsPerMessage));

  iovec vector{buffer.Data() + offset, static_cast<size_t>(length)};
  ControlBuffer control;
  msghdr message{};
  message.msg_iov = &vector;
  message.msg_iovlen = 1;
  if (maxFds > 0) {
    message.msg_control = control.bytes;
    // CMSG_LEN, not CMSG_SPACE: the kernel fits (controllen - header) / sizeof(int) fds,
    // so this admits exactly maxFds and flags MSG_CTRUNC beyond that.
    message.msg_controllen = CMSG_LEN(sizeof(int) * static_cast<size_t>(maxFds));
  }

  ssize_t received = -1;
  int err = 0;
  for (int attempt = 0; attempt < kMaxSyscallRetries; ++attempt) {
    received = recvmsg(fd, &message, kRecvFlags);
    if (received >= 0) break;
    err = errno;
    if (err != EINTR) break;
  }
  if (received < 0) {
    if (WouldBlock(err)) return env.Null();
    ThrowErrno(env, "recvmsg", err);
  }

  std::vector<int> fds = maxFds > 0 ? ReceivedFds(&message) : std::vector<int>{};
  Napi::Array fdArray = Napi::Array::New(env, fds.size());
  for (size_t i = 0; i < fds.size(); ++i) {
    fdArray.Set(static_cast<uint32_t>(i), Napi::Number::New(env, fds[i]));
  }
  Napi::Object result = Napi::Object::New(env);
  result.Set("bytes", Napi::Number::New(env, static_cast<double>(received)));
  result.Set("fds", fdArray);
  result.Set("ctrunc", Napi::Boolean::New(env, (message.msg_flags & MSG_CTRUNC) != 0));
  return result;
}

Napi::Value SendMsg(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  Napi::Uint8Array data = ArgUint8Array(info, 1, "data");
  if (!info[2].IsArray()) ThrowTypeError(env, "argument 3 (fds) must be an array");
  Napi::Array fdArray = info[2].As<Napi::Array>();
  if (fdArray.Length() > kMaxFdsPerMessage) {
    ThrowRangeError(env, "argument 3 (fds) holds " + std::to_string(fdArray.Length()) +
                             " fds; at most " + std::to_string(kMaxFdsPerMessage) +
                             " fit one message");
  }
  // The kernel attaches fds to data; a zero-byte stream send would drop them silently.
  if (fdArray.Length() > 0 && data.ByteLength() == 0) {
    ThrowRangeError(env, "argument 2 (data) must hold at least one byte to carry fds");
  }
  std::vector<int> fds;
  for (uint32_t i = 0; i < fdArray.Length(); ++i) {
    Napi::Value element = fdArray.Get(i);
    if (!element.IsNumber()) ThrowTypeError(env, "fds[" + std::to_string(i) + "] must be a number");
    double number = element.As<Napi::Number>().DoubleValue();
    if (!(number >= 0 && number <= INT_MAX) || static_cast<double>(static_cast<int>(number)) != number) {
      ThrowRangeError(env, "fds[" + std::to_string(i) + "] must be an integer in [0, " +
                               std::to_string(INT_MAX) + "]");
    }
    fds.push_back(static_cast<int>(number));
  }

  iovec vector{data.Data(), data.ByteLength()};
  ControlBuffer control;
  msghdr message{};
  message.msg_iov = &vector;
  message.msg_iovlen = 1;
  if (!fds.empty()) {
    const size_t payload = sizeof(int) * fds.size();
    message.msg_control = control.bytes;
    message.msg_controllen = CMSG_SPACE(payload);
    cmsghdr* header = CMSG_FIRSTHDR(&message);
    header->cmsg_level = SOL_SOCKET;
    header->cmsg_type = SCM_RIGHTS;
    header->cmsg_len = CMSG_LEN(payload);
    std::memcpy(CMSG_DATA(header), fds.data(), payload);
  }

  ssize_t sent = -1;
  int err = 0;
  for (int attempt = 0; attempt < kMaxSyscallRetries; ++attempt) {
    sent = sendmsg(fd, &message, kSendFlags);
    if (sent >= 0) break;
    err = errno;
    if (err != EINTR) break;
  }
  if (sent < 0) {
    if (WouldBlock(err)) return env.Null();
    ThrowErrno(env, "sendmsg", err);
  }
  return Napi::Number::New(env, static_cast<double>(sent));
}

}  // namespace

void RegisterSock(Napi::Env env, Napi::Object exports) {
  exports.Set("unixListen", Napi::Function::New(env, UnixListen, "unixListen"));
  exports.Set("unixListenPrivate", Napi::Function::New(env, UnixListenPrivate, "unixListenPrivate"));
  exports.Set("socketHungUp", Napi::Function::New(env, SocketHungUp, "socketHungUp"));
  exports.Set("unixAccept", Napi::Function::New(env, UnixAccept, "unixAccept"));
  exports.Set("unixConnect", Napi::Function::New(env, UnixConnect, "unixConnect"));
  exports.Set("socketPair", Napi::Function::New(env, SocketPair, "socketPair"));
  exports.Set("recvmsg", Napi::Function::New(env, RecvMsg, "recvmsg"));
  exports.Set("sendmsg", Napi::Function::New(env, SendMsg, "sendmsg"));
}

}  // namespace npiv
