// npiv_native: fd readiness through the Node event loop (libuv uv_poll_t), so the
// JS side never blocks on a socket or eventfd.
//
// Ownership: a PollWatch (the uv handle plus the JS callback) lives from poll() until
// libuv's close callback after stop(). The JS PollHandle object only points at it;
// if JS drops the handle without stop() the watch keeps running (it is never
// stopped behind the caller's back). stop() is idempotent and safe from inside the
// callback itself: the handle is closed with uv_close and freed in the close
// callback, after the current callback has returned. A stopped watch no longer keeps
// the event loop alive.
#include <fcntl.h>
#include <sys/socket.h>
#include <uv.h>

#include <cerrno>
#include <unordered_map>

#include "common.h"

namespace npiv {

namespace {

// Event bits of the facade (POLL_* in src/native/index.ts).
constexpr int kPollReadable = 1;
constexpr int kPollWritable = 2;
constexpr int kPollDisconnect = 4;
constexpr int kPollAll = kPollReadable | kPollWritable | kPollDisconnect;

class PollHandle;
struct PollRegistry;

struct PollWatch {
  uv_poll_t handle;
  napi_env env;
  int fd;
  Napi::FunctionReference callback;
  PollHandle* owner = nullptr;      // the JS handle, while it is alive
  PollRegistry* registry = nullptr;
  bool stopping = false;
};

// Per-environment state (Node-API instance data): the PollHandle class and the
// active watches, which are stopped when the environment is torn down.
struct PollRegistry {
  Napi::FunctionReference handleClass;
  std::unordered_map<int, PollWatch*> active;  // by fd: libuv allows one watch per fd
  ~PollRegistry();
};

class PollHandle : public Napi::ObjectWrap<PollHandle> {
 public:
  static Napi::Function DefineClass(Napi::Env env) {
    return ObjectWrap<PollHandle>::DefineClass(env, "PollHandle",
                                               {InstanceMethod("stop", &PollHandle::Stop)});
  }
  explicit PollHandle(const Napi::CallbackInfo& info) : ObjectWrap<PollHandle>(info) {}
  ~PollHandle() override;

  void Attach(PollWatch* watch) {
    watch_ = watch;
    watch->owner = this;
  }
  void Forget() { watch_ = nullptr; }

 private:
  Napi::Value Stop(const Napi::CallbackInfo& info);
  PollWatch* watch_ = nullptr;
};

int ToUvEvents(int events) {
  return ((events & kPollReadable) ? UV_READABLE : 0) |
         ((events & kPollWritable) ? UV_WRITABLE : 0) |
         ((events & kPollDisconnect) ? UV_DISCONNECT : 0);
}

int FromUvEvents(int events) {
  return ((events & UV_READABLE) ? kPollReadable : 0) |
         ((events & UV_WRITABLE) ? kPollWritable : 0) |
         ((events & UV_DISCONNECT) ? kPollDisconnect : 0);
}

// libuv reports POLLERR on a watched fd as status UV_EBADF (uv__poll_io), although the fd is
// valid: on a socket that is the pending socket error, e.g. ECONNRESET when the peer closed with
// data it never read still queued (unix_release_sock). Return that error instead, so a peer's
// disconnect is not mistaken for a closed fd; a real EBADF (fd closed under the watch) stays EBADF.
int PollErrno(int fd, int status) {
  if (status != UV_EBADF) return -status;
  if (fcntl(fd, F_GETFD) < 0) return EBADF;
  int soError = 0;
  socklen_t len = sizeof soError;
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soError, &len) == 0 && soError != 0) return soError;
  return EIO;  // POLLERR on something that is not a socket, or the error was already taken
}

void OnClosed(uv_handle_t* handle) { delete static_cast<PollWatch*>(handle->data); }

// Stops watching and schedules the handle's close; the PollWatch is freed in OnClosed.
void StopWatch(PollWatch* watch) {
  if (watch->stopping) return;
  watch->stopping = true;
  uv_poll_stop(&watch->handle);
  if (watch->registry != nullptr) watch->registry->active.erase(watch->fd);
  watch->registry = nullptr;
  if (watch->owner != nullptr) watch->owner->Forget();
  watch->owner = nullptr;
  watch->callback.Reset();
  uv_close(reinterpret_cast<uv_handle_t*>(&watch->handle), OnClosed);
}

PollRegistry::~PollRegistry() {
  std::unordered_map<int, PollWatch*> watches;
  watches.swap(active);
  for (auto& [fd, watch] : watches) {
    watch->registry = nullptr;
    StopWatch(watch);
  }
}

PollHandle::~PollHandle() {
  if (watch_ != nullptr) watch_->owner = nullptr;
}

Napi::Value PollHandle::Stop(const Napi::CallbackInfo& info) {
  if (watch_ != nullptr) StopWatch(watch_);  // clears watch_ through Forget()
  return info.Env().Undefined();
}

void OnPoll(uv_poll_t* handle, int status, int events) {
  auto* watch = static_cast<PollWatch*>(handle->data);
  if (watch->stopping) return;
  Napi::Env env(watch->env);
  Napi::HandleScope scope(env);
  Napi::Function callback = watch->callback.Value();
  int jsEvents = 0;
  int err = 0;
  if (status < 0) {
    // libuv has already stopped the handle after a poll error; finish the job so
    // the watch does not linger. stop() on the JS handle stays a harmless no-op.
    err = PollErrno(watch->fd, status);
    StopWatch(watch);
  } else {
    jsEvents = FromUvEvents(events);
  }
  // `watch` may be freed from here on (the callback may call stop()); use locals only.
  try {
    callback.MakeCallback(env.Global(), {Napi::Number::New(env, jsEvents), Napi::Number::New(env, err)});
  } catch (const Napi::Error& error) {
    // No JS frame to return to: report it as an uncaught exception.
    napi_fatal_exception(env, error.Value());
  }
}

Napi::Value Poll(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  int events = static_cast<int>(ArgInteger(info, 1, "events", 1, kPollAll));
  Napi::Function callback = ArgFunction(info, 2, "callback");
  auto* registry = env.GetInstanceData<PollRegistry>();

  uv_loop_t* loop = nullptr;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr) {
    throw Napi::Error::New(env, "poll: no libuv event loop for this environment");
  }
  auto* watch = new PollWatch();
  watch->handle.data = watch;
  watch->env = env;
  watch->fd = fd;
  // Fails with EEXIST when this loop already watches the fd (libuv allows one watcher
  // per fd), EPERM for regular files, EBADF for a closed fd.
  int rc = uv_poll_init(loop, &watch->handle, fd);
  if (rc < 0) {
    delete watch;
    ThrowErrno(env, "uv_poll_init", -rc, "(fd " + std::to_string(fd) + ")");
  }
  rc = uv_poll_start(&watch->handle, ToUvEvents(events), OnPoll);
  if (rc < 0) {
    watch->stopping = true;
    uv_close(reinterpret_cast<uv_handle_t*>(&watch->handle), OnClosed);
    ThrowErrno(env, "uv_poll_start", -rc, "(fd " + std::to_string(fd) + ")");
  }
  watch->callback = Napi::Persistent(callback);
  watch->registry = registry;
  registry->active[fd] = watch;

  try {
    Napi::Object handleObject = registry->handleClass.New({});
    PollHandle::Unwrap(handleObject)->Attach(watch);
    return handleObject;
  } catch (...) {
    StopWatch(watch);
    throw;
  }
}

}  // namespace

bool IsPolled(Napi::Env env, int fd) {
  auto* registry = env.GetInstanceData<PollRegistry>();
  return registry != nullptr && registry->active.count(fd) != 0;
}

void RegisterPoll(Napi::Env env, Napi::Object exports) {
  auto* registry = new PollRegistry();
  registry->handleClass = Napi::Persistent(PollHandle::DefineClass(env));
  env.SetInstanceData(registry);  // deleted (stopping all watches) at environment teardown
  exports.Set("poll", Napi::Function::New(env, Poll, "poll"));
}

}  // namespace npiv
