// npiv_native: the Linux SCSI generic (sg) driver's asynchronous v3 interface, for the host NPIV
// backend's FCP path (include/scsi/sg.h, drivers/scsi/sg.c):
//   - sgOpen: open /dev/sgN O_RDWR|O_NONBLOCK, check it is a sg character device (major
//     SCSI_GENERIC_MAJOR, include/uapi/linux/major.h) of a v3-capable driver (SG_GET_VERSION_NUM);
//   - sgSubmit: write(2) one struct sg_io_hdr (sg_new_write): up to SG_MAX_QUEUE (16) commands
//     are outstanding per fd, the next write fails with EDOM, reported as "queue full" (false);
//   - sgRead: read(2) one completed request (sg_new_read), or null when none is ready (EAGAIN);
//     readiness comes from poll() (poll.cc, libuv) on the same fd: sg_poll sets EPOLLIN;
//   - sgReset: SG_SCSI_RESET (scsi_ioctl_reset) on a worker thread, always with
//     SG_SCSI_RESET_NO_ESCALATE, since the midlayer would otherwise escalate a device reset to
//     the bus and host (which on some LLDDs bounces the physical link of every vport);
//   - sgScsiId: SG_GET_SCSI_ID, to check that the node opened is still the H:C:T:L resolved in
//     sysfs (sg minors are reused after a device goes away).
//
// The 88-byte header is marshalled in TypeScript (src/host/sg-io-hdr.ts) except for its four
// pointers, which only this file sets: cmdp, sbp and usr_ptr point into memory this file owns
// (one SgRequest per command). dxferp has two forms:
//   - zero-copy (data given as an array of views into guest memory): dxferp is an array of
//     sg_iovec this file owns (iovec_count = the number of views, even for one), whose bases are
//     the views' addresses. The sg driver then moves the data between those addresses and its own
//     kernel pages: a write's data is copied in during write(2) (blk_rq_map_user_iov with the
//     request's map data), a read's data is copied out during the read(2) that collects the
//     completion (blk_rq_unmap_user) — never asynchronously, and never for a request whose fd
//     was closed (an orphan is finished from a workqueue without a user mm, and copies nothing).
//     So only an outstanding *read* still aims at user memory; such ranges are "pinned": mem.cc
//     asks SgDeferUnmap before unmapping guest memory.
//   - bounce (data given as one Uint8Array, or a data-in length): dxferp points at a buffer this
//     file owns; data is copied in at submit and out at completion.
// SG_FLAG_DIRECT_IO and SG_FLAG_MMAP_IO are refused: sg ignores direct I/O with iovecs, allows it
// only with the allow_dio module parameter, and with it the HBA would DMA into pinned guest pages
// asynchronously, after the completion could no longer be stopped from landing there.
#include <fcntl.h>
#include <linux/fs.h>
#include <scsi/sg.h>
#include <sys/mman.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <mutex>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "common.h"

namespace npiv {

namespace {

constexpr unsigned kScsiGenericMajor = 21;      // SCSI_GENERIC_MAJOR, include/uapi/linux/major.h
constexpr int kSgV3Version = 30000;             // sg_version_num of the v3 interface
constexpr size_t kSenseMax = 96;                // SCSI_SENSE_BUFFERSIZE, include/scsi/scsi_cmnd.h
constexpr size_t kCdbMin = 6;
constexpr size_t kCdbMax = 16;                  // FCP_CMND carries a 16-byte CDB
constexpr int64_t kMaxTransfer = 32 * 1024 * 1024;  // well under sg's 256 MiB dxfer_len limit
constexpr size_t kMaxIovecs = 1024;                 // UIO_MAXIOV: sg refuses longer iovec arrays
// Queueing flags of the kernel's sg.h (glibc's <scsi/sg.h> predates them).
constexpr unsigned kFlagQAtTail = 0x10;           // SG_FLAG_Q_AT_TAIL
constexpr unsigned kFlagQAtHead = 0x20;           // SG_FLAG_Q_AT_HEAD
constexpr int kResetDevice = 1;                 // SG_SCSI_RESET_DEVICE
constexpr int kResetTarget = 4;                 // SG_SCSI_RESET_TARGET
constexpr int kResetNoEscalate = 0x100;         // SG_SCSI_RESET_NO_ESCALATE

static_assert(sizeof(sg_io_hdr_t) == 88, "struct sg_io_hdr is 88 bytes on LP64");

// The four pointer fields, zeroed in every header handed back to JS.
void ClearPointers(sg_io_hdr_t* h) {
  h->dxferp = nullptr;
  h->cmdp = nullptr;
  h->sbp = nullptr;
  h->usr_ptr = nullptr;
}

struct SgRequest {
  sg_io_hdr_t hdr;
  std::vector<unsigned char> data;  // bounce buffer (empty for zero-copy)
  std::vector<sg_iovec_t> iov;      // zero-copy: the views' address ranges
  bool userRead = false;            // zero-copy read: the kernel writes iov at read(2)
  unsigned char sense[kSenseMax];
  unsigned char cdb[kCdbMax];
};

// Outstanding requests by fd. usr_ptr of a completion is looked up here before it is used, so a
// header the kernel returns can never make us dereference an address we did not hand out.
struct SgRegistry {
  std::unordered_map<int, std::unordered_set<SgRequest*>> byFd;
};

SgRegistry& Registry() {
  static SgRegistry* registry = new SgRegistry();  // process-wide, never destroyed
  return *registry;
}

// Guest-memory ranges whose unmapping waits for the zero-copy reads aimed at them.
struct DeferredUnmap {
  uintptr_t start;
  size_t length;
};
std::recursive_mutex deferLock;  // the registry is touched on the JS thread; finalizers may run elsewhere
std::vector<DeferredUnmap>& Deferred() {
  static auto* deferred = new std::vector<DeferredUnmap>();
  return *deferred;
}

bool ReadTargets(uintptr_t start, size_t length) {
  for (auto& [fd, requests] : Registry().byFd) {
    for (SgRequest* r : requests) {
      if (!r->userRead) continue;
      for (const sg_iovec_t& v : r->iov) {
        auto base = reinterpret_cast<uintptr_t>(v.iov_base);
        if (base < start + length && start < base + v.iov_len) return true;
      }
    }
  }
  return false;
}

// After a request left the registry: unmaps deferred ranges no read aims at any more.
void ReleaseDeferred() {
  std::lock_guard<std::recursive_mutex> guard(deferLock);
  auto& list = Deferred();
  for (size_t i = 0; i < list.size();) {
    if (ReadTargets(list[i].start, list[i].length)) {
      ++i;
      continue;
    }
    munmap(reinterpret_cast<void*>(list[i].start), list[i].length);
    list.erase(list.begin() + static_cast<std::ptrdiff_t>(i));
  }
}

Napi::Value SgOpen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = ArgCString(info, 0, "path", 4095);
  int fd = open(path.c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) ThrowErrno(env, "open", errno, path);
  FdGuard guard(fd);
  struct stat st;
  if (fstat(fd, &st) != 0) ThrowErrno(env, "fstat", errno, path);
  if (!S_ISCHR(st.st_mode) || major(st.st_rdev) != kScsiGenericMajor) {
    ThrowErrno(env, "sgOpen", ENOTTY, path + " is not a SCSI generic (sg) character device");
  }
  int version = 0;
  if (ioctl(fd, SG_GET_VERSION_NUM, &version) != 0) ThrowErrno(env, "ioctl(SG_GET_VERSION_NUM)", errno, path);
  if (version < kSgV3Version) {
    ThrowErrno(env, "sgOpen", ENOTSUP, path + ": sg driver version " + std::to_string(version) + " lacks the v3 interface");
  }
  // read(2) then honours pack_id, so a completion can be collected by its id (-1: any).
  int force = 1;
  if (ioctl(fd, SG_SET_FORCE_PACK_ID, &force) != 0) ThrowErrno(env, "ioctl(SG_SET_FORCE_PACK_ID)", errno, path);
  Registry().byFd[fd];
  return Napi::Number::New(env, guard.release());
}

// Address ranges of the views (zero-copy data), checked: 1..1024 non-empty Uint8Arrays
// (a detached view is empty), at most 32 MiB together. Throws RangeError/TypeError.
std::vector<sg_iovec_t> ViewsToIovecs(Napi::Env env, const Napi::Array& views, size_t* total) {
  uint32_t count = views.Length();
  if (count == 0 || count > kMaxIovecs) ThrowRangeError(env, "data: 1..1024 views");
  std::vector<sg_iovec_t> iov;
  iov.reserve(count);
  size_t sum = 0;
  for (uint32_t i = 0; i < count; ++i) {
    Napi::Value v = views.Get(i);
    if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
      ThrowTypeError(env, "data: every view must be a Uint8Array");
    }
    Napi::Uint8Array view = v.As<Napi::Uint8Array>();
    size_t length = view.ByteLength();
    if (length == 0) ThrowRangeError(env, "data: view " + std::to_string(i) + " is empty (detached: unmapped)");
    sum += length;
    if (sum > static_cast<size_t>(kMaxTransfer)) ThrowRangeError(env, "data longer than 32 MiB");
    iov.push_back(sg_iovec_t{view.Data(), length});
  }
  *total = sum;
  return iov;
}

// Checks the TS-built header against the buffers it describes; returns the request to submit.
SgRequest* BuildRequest(Napi::Env env, const Napi::Uint8Array& header, const Napi::Uint8Array& cdb,
                        const Napi::Value& dataOut, int64_t dataInLength) {
  if (header.ByteLength() != sizeof(sg_io_hdr_t)) {
    ThrowRangeError(env, "header must be " + std::to_string(sizeof(sg_io_hdr_t)) + " bytes (struct sg_io_hdr)");
  }
  auto* req = new SgRequest();
  std::memcpy(&req->hdr, header.Data(), sizeof(sg_io_hdr_t));
  sg_io_hdr_t& h = req->hdr;
  auto fail = [&](const std::string& message) {
    delete req;
    ThrowRangeError(env, message);
  };
  if (h.interface_id != 'S') fail("header: interface_id must be 'S'");
  if (cdb.ByteLength() < kCdbMin || cdb.ByteLength() > kCdbMax || h.cmd_len != cdb.ByteLength()) {
    fail("header: cmd_len must equal the CDB length (6..16)");
  }
  if (h.mx_sb_len > kSenseMax) fail("header: mx_sb_len exceeds 96");
  bool zeroCopy = dataOut.IsArray();
  size_t viewBytes = 0;
  if (zeroCopy) {
    try {
      req->iov = ViewsToIovecs(env, dataOut.As<Napi::Array>(), &viewBytes);
    } catch (...) {
      delete req;
      throw;
    }
    // Always as an sg_iovec array (even one view): one path through the kernel for every command.
    if (h.iovec_count != req->iov.size()) fail("header: iovec_count must be the number of views");
  } else if (h.iovec_count != 0) {
    fail("header: iovec_count must be 0 without views");
  }
  if ((h.flags & ~(kFlagQAtTail | kFlagQAtHead)) != 0) {
    fail("header: only SG_FLAG_Q_AT_TAIL/Q_AT_HEAD are allowed (no direct or mmap I/O)");
  }
  bool hasOut = dataOut.IsTypedArray();
  size_t want = 0;
  switch (h.dxfer_direction) {
    case SG_DXFER_NONE:
      if (hasOut || zeroCopy || dataInLength != 0 || h.dxfer_len != 0) fail("header: SG_DXFER_NONE with data");
      break;
    case SG_DXFER_TO_DEV:
      if ((!hasOut && !zeroCopy) || dataInLength != 0) fail("header: SG_DXFER_TO_DEV needs data and no data-in length");
      want = zeroCopy ? viewBytes : dataOut.As<Napi::Uint8Array>().ByteLength();
      break;
    case SG_DXFER_FROM_DEV:
      if (hasOut) fail("header: SG_DXFER_FROM_DEV with dataOut");
      if (zeroCopy && dataInLength != 0) fail("header: SG_DXFER_FROM_DEV with views and a data-in length");
      want = zeroCopy ? viewBytes : static_cast<size_t>(dataInLength);
      break;
    default:
      fail("header: dxfer_direction must be SG_DXFER_NONE, TO_DEV or FROM_DEV");
  }
  if (h.dxfer_len != want) fail("header: dxfer_len must equal the data length");
  if (static_cast<int64_t>(want) > kMaxTransfer) fail("data longer than 32 MiB");
  std::memcpy(req->cdb, cdb.Data(), cdb.ByteLength());
  std::memset(req->sense, 0, sizeof req->sense);
  if (zeroCopy) {
    h.dxferp = req->iov.data();
    req->userRead = h.dxfer_direction == SG_DXFER_FROM_DEV;
  } else {
    req->data.resize(want);
    if (h.dxfer_direction == SG_DXFER_TO_DEV && want > 0) {
      std::memcpy(req->data.data(), dataOut.As<Napi::Uint8Array>().Data(), want);
    }
    h.dxferp = want > 0 ? req->data.data() : nullptr;
  }
  h.cmdp = req->cdb;
  h.sbp = req->sense;
  h.usr_ptr = req;
  return req;
}

// sgSubmit(fd, header, cdb, data, dataInLength) -> true (queued) | false (queue full)
//   data: Uint8Array[] (zero-copy views, either direction; dataInLength 0), a Uint8Array (bounce
//   write), or null (bounce read of dataInLength bytes, or no data). Views of a read must stay
//   referenced by the caller until the completion is read.
Napi::Value SgSubmit(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  Napi::Uint8Array header = ArgUint8Array(info, 1, "header");
  Napi::Uint8Array cdb = ArgUint8Array(info, 2, "cdb");
  Napi::Value dataOut = info[3];
  if (!dataOut.IsNull() && !dataOut.IsArray() &&
      !(dataOut.IsTypedArray() && dataOut.As<Napi::TypedArray>().TypedArrayType() == napi_uint8_array)) {
    ThrowTypeError(env, "argument 4 (data) must be an array of Uint8Array views, a Uint8Array or null");
  }
  int64_t dataInLength = ArgInteger(info, 4, "dataInLength", 0, kMaxTransfer);
  auto found = Registry().byFd.find(fd);
  if (found == Registry().byFd.end()) ThrowErrno(env, "sgSubmit", EBADF, "(fd " + std::to_string(fd) + " was not opened by sgOpen)");
  SgRequest* req = BuildRequest(env, header, cdb, dataOut, dataInLength);
  for (int attempt = 0; attempt < kMaxSyscallRetries; ++attempt) {
    ssize_t n = write(fd, &req->hdr, sizeof(sg_io_hdr_t));
    if (n == static_cast<ssize_t>(sizeof(sg_io_hdr_t))) {
      std::lock_guard<std::recursive_mutex> guard(deferLock);
      found->second.insert(req);
      return Napi::Boolean::New(env, true);
    }
    int err = n < 0 ? errno : EIO;
    if (err == EINTR) continue;
    delete req;
    // EDOM: SG_MAX_QUEUE commands outstanding on this fd; EAGAIN: no free request slot.
    if (err == EDOM || err == EAGAIN) return Napi::Boolean::New(env, false);
    ThrowErrno(env, "write(sg_io_hdr)", err);
  }
  delete req;
  ThrowErrno(env, "write(sg_io_hdr)", EINTR);
}

// sgRead(fd, packId = -1) -> { header: Uint8Array(88, pointers zeroed), sense, data } | null
// packId -1: the oldest completion; otherwise only that request's (SG_SET_FORCE_PACK_ID is on).
// A zero-copy read's data has already landed in its views: `data` is then empty.
Napi::Value SgRead(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  int packId = info.Length() > 1 && !info[1].IsUndefined()
                   ? static_cast<int>(ArgInteger(info, 1, "packId", -1, 0x7fffffff))
                   : -1;
  auto found = Registry().byFd.find(fd);
  if (found == Registry().byFd.end()) ThrowErrno(env, "sgRead", EBADF, "(fd " + std::to_string(fd) + " was not opened by sgOpen)");
  sg_io_hdr_t h;
  std::memset(&h, 0, sizeof h);
  h.interface_id = 'S';
  // With SG_SET_FORCE_PACK_ID the driver takes the wanted pack_id from the buffer, and reads it
  // as a v3 header only if the word at offset 4 (dxfer_direction, an old header's reply_len) is
  // negative: otherwise it would read a v1/v2 pack_id from offset 8 (cmd_len..iovec_count, 0).
  h.dxfer_direction = SG_DXFER_NONE;
  h.pack_id = packId;
  ssize_t n = -1;
  for (int attempt = 0; attempt < kMaxSyscallRetries; ++attempt) {
    n = read(fd, &h, sizeof h);
    if (n >= 0 || errno != EINTR) break;
  }
  if (n < 0) {
    if (errno == EAGAIN) return env.Null();
    ThrowErrno(env, "read(sg_io_hdr)", errno);
  }
  if (n != static_cast<ssize_t>(sizeof h)) ThrowErrno(env, "read(sg_io_hdr)", EIO, "short header");
  auto* req = static_cast<SgRequest*>(h.usr_ptr);
  {
    std::lock_guard<std::recursive_mutex> guard(deferLock);
    if (found->second.erase(req) == 0) {
      ThrowErrno(env, "read(sg_io_hdr)", EPROTO, "completion for a request this fd never submitted");
    }
  }
  // Sizes come from our own request, never from the returned header alone.
  size_t senseLength = h.sb_len_wr;
  if (senseLength > req->hdr.mx_sb_len) senseLength = req->hdr.mx_sb_len;
  Napi::Object out = Napi::Object::New(env);
  sg_io_hdr_t copy = h;
  ClearPointers(&copy);
  Napi::Uint8Array header = Napi::Uint8Array::New(env, sizeof copy);
  std::memcpy(header.Data(), &copy, sizeof copy);
  Napi::Uint8Array sense = Napi::Uint8Array::New(env, senseLength);
  if (senseLength > 0) std::memcpy(sense.Data(), req->sense, senseLength);
  size_t dataLength = req->hdr.dxfer_direction == SG_DXFER_FROM_DEV ? req->data.size() : 0;
  Napi::Uint8Array data = Napi::Uint8Array::New(env, dataLength);
  if (dataLength > 0) std::memcpy(data.Data(), req->data.data(), dataLength);
  delete req;
  ReleaseDeferred();
  out.Set("header", header);
  out.Set("sense", sense);
  out.Set("data", data);
  return out;
}

Napi::Value SgOutstanding(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  auto found = Registry().byFd.find(fd);
  return Napi::Number::New(env, found == Registry().byFd.end() ? 0 : static_cast<double>(found->second.size()));
}

// Closes an sg fd. Requests still outstanding are NOT freed: the kernel finishes an orphaned
// request later (sg_rq_end_io → sg_rq_end_io_usercontext → sg_finish_rem_req), and whether it
// touches the user buffers then is not ours to rely on; their memory is left allocated (at most
// SG_MAX_QUEUE requests per fd; this happens only at shutdown or when a LUN goes away).
Napi::Value SgClose(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  if (IsPolled(env, fd)) {
    ThrowErrno(env, "close", EBUSY, "(fd " + std::to_string(fd) + " is being polled: stop() its watch first)");
  }
  auto found = Registry().byFd.find(fd);
  if (found == Registry().byFd.end()) ThrowErrno(env, "sgClose", EBADF, "(fd " + std::to_string(fd) + " was not opened by sgOpen)");
  size_t leaked = found->second.size();
  int closed = close(fd);
  int err = errno;
  {
    // Closed: its outstanding requests are orphans the kernel finishes without copying to us.
    std::lock_guard<std::recursive_mutex> guard(deferLock);
    Registry().byFd.erase(found);
  }
  ReleaseDeferred();
  if (closed != 0 && err != EINTR) ThrowErrno(env, "close", err);
  return Napi::Number::New(env, static_cast<double>(leaked));
}

// sgLimits(fd) -> { tablesize, maxBytes, reservedBytes }: the LUN queue's scatter-gather table size
// (SG_GET_SG_TABLESIZE), its largest transfer (BLKSECTGET on sg: max_sectors in bytes) and this
// fd's reserved buffer (SG_GET_RESERVED_SIZE).
Napi::Value SgLimits(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  int tablesize = 0;
  int maxBytes = 0;
  int reserved = 0;
  if (ioctl(fd, SG_GET_SG_TABLESIZE, &tablesize) != 0) ThrowErrno(env, "ioctl(SG_GET_SG_TABLESIZE)", errno);
  if (ioctl(fd, BLKSECTGET, &maxBytes) != 0) ThrowErrno(env, "ioctl(BLKSECTGET)", errno);
  if (ioctl(fd, SG_GET_RESERVED_SIZE, &reserved) != 0) ThrowErrno(env, "ioctl(SG_GET_RESERVED_SIZE)", errno);
  Napi::Object out = Napi::Object::New(env);
  out.Set("tablesize", Napi::Number::New(env, tablesize));
  out.Set("maxBytes", Napi::Number::New(env, maxBytes));
  out.Set("reservedBytes", Napi::Number::New(env, reserved));
  return out;
}

// sgIovecs(views) -> [{ address: bigint, length }]: the sg_iovec array sgSubmit would hand the
// kernel for these views (for tests: the bases are the views' own addresses, byte offset included).
Napi::Value SgIovecs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsArray()) ThrowTypeError(env, "argument 1 (views) must be an array");
  size_t total = 0;
  std::vector<sg_iovec_t> iov = ViewsToIovecs(env, info[0].As<Napi::Array>(), &total);
  Napi::Array out = Napi::Array::New(env, iov.size());
  for (size_t i = 0; i < iov.size(); ++i) {
    Napi::Object e = Napi::Object::New(env);
    e.Set("address", Napi::BigInt::New(env, static_cast<uint64_t>(reinterpret_cast<uintptr_t>(iov[i].iov_base))));
    e.Set("length", Napi::Number::New(env, static_cast<double>(iov[i].iov_len)));
    out.Set(static_cast<uint32_t>(i), e);
  }
  return out;
}

Napi::Value SgScsiId(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  struct sg_scsi_id id;
  std::memset(&id, 0, sizeof id);
  if (ioctl(fd, SG_GET_SCSI_ID, &id) != 0) ThrowErrno(env, "ioctl(SG_GET_SCSI_ID)", errno);
  Napi::Object out = Napi::Object::New(env);
  out.Set("host", Napi::Number::New(env, id.host_no));
  out.Set("channel", Napi::Number::New(env, id.channel));
  out.Set("target", Napi::Number::New(env, id.scsi_id));
  out.Set("lun", Napi::Number::New(env, id.lun));
  out.Set("type", Napi::Number::New(env, id.scsi_type));
  out.Set("queueDepth", Napi::Number::New(env, id.d_queue_depth));
  return out;
}

// SG_SCSI_RESET can sleep for as long as the LLDD's task management takes: run it off the loop.
class ResetWorker : public Napi::AsyncWorker {
 public:
  ResetWorker(Napi::Env env, int fd, int value)
      : Napi::AsyncWorker(env), fd_(fd), value_(value), deferred_(Napi::Promise::Deferred::New(env)) {}
  Napi::Promise Promise() { return deferred_.Promise(); }
  void Execute() override {
    for (int attempt = 0; attempt < kMaxSyscallRetries; ++attempt) {
      if (ioctl(fd_, SG_SCSI_RESET, &value_) == 0) return;
      if (errno != EINTR) break;
    }
    err_ = errno;
  }
  void OnOK() override {
    Napi::Env env = Env();
    if (err_ == 0) {
      deferred_.Resolve(env.Undefined());
      return;
    }
    char text[256];
    const char* description = strerror_r(err_, text, sizeof text);
    Napi::Error error = Napi::Error::New(env, std::string("ioctl(SG_SCSI_RESET): ") + description);
    error.Set("errno", Napi::Number::New(env, err_));
    error.Set("syscall", Napi::String::New(env, "ioctl(SG_SCSI_RESET)"));
    deferred_.Reject(error.Value());
  }

 private:
  int fd_;
  int value_;
  int err_ = 0;
  Napi::Promise::Deferred deferred_;
};

// sgReset(fd, kind): kind 1 = device (LUN) reset, 4 = target reset; NO_ESCALATE is always added.
Napi::Value SgReset(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  int kind = static_cast<int>(ArgInteger(info, 1, "kind", 0, 0xff));
  if (kind != kResetDevice && kind != kResetTarget) ThrowRangeError(env, "kind must be 1 (device) or 4 (target)");
  if (Registry().byFd.count(fd) == 0) ThrowErrno(env, "sgReset", EBADF, "(fd " + std::to_string(fd) + " was not opened by sgOpen)");
  auto* worker = new ResetWorker(env, fd, kind | kResetNoEscalate);
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

#define FIELD(name) layout.Set(#name, Napi::Number::New(env, offsetof(sg_io_hdr_t, name)))

// The real struct's layout, for the test that checks src/host/sg-io-hdr.ts against it.
Napi::Value SgIoHdrLayout(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object layout = Napi::Object::New(env);
  layout.Set("size", Napi::Number::New(env, sizeof(sg_io_hdr_t)));
  FIELD(interface_id);
  FIELD(dxfer_direction);
  FIELD(cmd_len);
  FIELD(mx_sb_len);
  FIELD(iovec_count);
  FIELD(dxfer_len);
  FIELD(dxferp);
  FIELD(cmdp);
  FIELD(sbp);
  FIELD(timeout);
  FIELD(flags);
  FIELD(pack_id);
  FIELD(usr_ptr);
  FIELD(status);
  FIELD(masked_status);
  FIELD(msg_status);
  FIELD(sb_len_wr);
  FIELD(host_status);
  FIELD(driver_status);
  FIELD(resid);
  FIELD(duration);
  FIELD(info);
  return layout;
}

#undef FIELD

}  // namespace

bool SgDeferUnmap(void* address, size_t length) {
  std::lock_guard<std::recursive_mutex> guard(deferLock);
  auto start = reinterpret_cast<uintptr_t>(address);
  if (!ReadTargets(start, length)) return false;
  // Same addresses, fresh private memory: the late copy lands there, harmlessly. If that fails
  // the client's mapping simply stays until the reads are collected (still no foreign reuse).
  mmap(address, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0);
  Deferred().push_back(DeferredUnmap{start, length});
  return true;
}

void RegisterSg(Napi::Env env, Napi::Object exports) {
  exports.Set("sgOpen", Napi::Function::New(env, SgOpen, "sgOpen"));
  exports.Set("sgSubmit", Napi::Function::New(env, SgSubmit, "sgSubmit"));
  exports.Set("sgRead", Napi::Function::New(env, SgRead, "sgRead"));
  exports.Set("sgOutstanding", Napi::Function::New(env, SgOutstanding, "sgOutstanding"));
  exports.Set("sgClose", Napi::Function::New(env, SgClose, "sgClose"));
  exports.Set("sgScsiId", Napi::Function::New(env, SgScsiId, "sgScsiId"));
  exports.Set("sgReset", Napi::Function::New(env, SgReset, "sgReset"));
  exports.Set("sgIoHdrLayout", Napi::Function::New(env, SgIoHdrLayout, "sgIoHdrLayout"));
  exports.Set("sgLimits", Napi::Function::New(env, SgLimits, "sgLimits"));
  exports.Set("sgIovecs", Napi::Function::New(env, SgIovecs, "sgIovecs"));
}

}  // namespace npiv
