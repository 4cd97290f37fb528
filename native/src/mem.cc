// npiv_native: shared memory (Linux mmap(2), munmap(2), memfd_create(2)).
//
// mmap() returns an external ArrayBuffer over a MAP_SHARED mapping: no copy, the
// other process (QEMU) sees writes immediately. The buffer is type-tagged so munmap()
// accepts only buffers made here. Lifetime of one mapping:
//
//   mmap() ──> mapped ──munmap()──> detached + unmapped ──GC──> record freed
//                 └──────GC (never unmapped)──> finalizer munmaps, record freed
//
// munmap() detaches the ArrayBuffer before unmapping, so no JS view can reach the
// unmapped range (its byteLength becomes 0). A range an outstanding zero-copy sg read still
// targets is not unmapped at once but swapped for anonymous memory (sg.cc, SgDeferUnmap).
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <mutex>
#include <unordered_map>

#include "common.h"

namespace npiv {

namespace {

// Marks ArrayBuffers created by mmap() (napi_type_tag: two random 64-bit words).
constexpr napi_type_tag kMappingTag = {0x6e7069765f6d6d61ULL, 0x9d2f4c1a7b3e5d08ULL};

// Bits of the `prot` argument (the facade's contract, not the kernel's PROT_* values).
constexpr int64_t kProtRead = 1;
constexpr int64_t kProtWrite = 2;

// Longest name memfd_create accepts (MFD_NAME_MAX_LEN in mm/memfd.c).
constexpr size_t kMaxMemfdName = 249;

struct Mapping {
  void* address;
  size_t length;
  bool mapped;
};

// Live mappings by start address, shared by all Node environments (worker threads) of
// the process; finalizers and munmap() of different threads meet here. Recursive:
// Node may run a finalizer from inside Detach() while munmap() holds the lock.
std::recursive_mutex mappingsLock;
std::unordered_map<void*, Mapping*> mappings;

void FinalizeMapping(Napi::Env, void*, Mapping* mapping) {
  {
    std::lock_guard<std::recursive_mutex> guard(mappingsLock);
    if (mapping->mapped) {
      mappings.erase(mapping->address);
      if (!SgDeferUnmap(mapping->address, mapping->length)) munmap(mapping->address, mapping->length);
    }
  }
  delete mapping;
}

Napi::Value Mmap(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  int64_t length = ArgInteger(info, 1, "length", 1, kMaxSafeInteger);
  uint64_t offset = ArgBigUint64(info, 2, "offset", static_cast<uint64_t>(INT64_MAX));
  int64_t prot = ArgInteger(info, 3, "prot", 1, kProtRead | kProtWrite);

  const uint64_t pageSize = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  if (offset % pageSize != 0) {
    ThrowRangeError(env, "argument 3 (offset) must be a multiple of the page size (" +
                             std::to_string(pageSize) + ")");
  }
  if (offset > static_cast<uint64_t>(INT64_MAX - length)) {
    ThrowRangeError(env, "offset + length overflows the file offset range");
  }
  // Touching a page past the end of a file raises SIGBUS, which would kill the
  // process; refuse such ranges up front. (A later shrink by the peer cannot be
  // caught here; shared guest RAM must not be truncated while mapped.)
  struct stat status;
  if (fstat(fd, &status) != 0) ThrowErrno(env, "fstat", errno);
  if (S_ISREG(status.st_mode) &&
      offset + static_cast<uint64_t>(length) > static_cast<uint64_t>(status.st_size)) {
    ThrowErrno(env, "mmap", EINVAL,
               "range [" + std::to_string(offset) + ", +" + std::to_string(length) +
                   ") past end of file (size " + std::to_string(status.st_size) + ")");
  }

  // An ArrayBuffer is always readable, so even a write-only request maps PROT_READ.
  // A read-only mapping faults (SIGSEGV) on a write: callers must not write to it.
  int protection = PROT_READ | ((prot & kProtWrite) ? PROT_WRITE : 0);
  void* address = mmap(nullptr, static_cast<size_t>(length), protection, MAP_SHARED, fd,
                       static_cast<off_t>(offset));
  if (address == MAP_FAILED) ThrowErrno(env, "mmap", errno);

  auto* mapping = new Mapping{address, static_cast<size_t>(length), true};
  {
    std::lock_guard<std::recursive_mutex> guard(mappingsLock);
    mappings[address] = mapping;
  }
  Napi::ArrayBuffer buffer;
  try {
    buffer = Napi::ArrayBuffer::New(env, address, mapping->length, FinalizeMapping, mapping);
  } catch (...) {
    {
      std::lock_guard<std::recursive_mutex> guard(mappingsLock);
      mappings.erase(address);
    }
    munmap(address, mapping->length);
    delete mapping;
    throw;
  }
  buffer.TypeTag(&kMappingTag);
  return buffer;
}

Napi::Value Munmap(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsArrayBuffer()) ThrowTypeError(env, "argument 1 (buf) must be an ArrayBuffer");
  Napi::ArrayBuffer buffer = info[0].As<Napi::ArrayBuffer>();
  if (!buffer.CheckTypeTag(&kMappingTag)) {
    ThrowTypeError(env, "argument 1 (buf) is not an ArrayBuffer returned by mmap()");
  }
  if (buffer.IsDetached()) return env.Undefined();  // already unmapped: idempotent

  void* address = buffer.Data();
  size_t length = 0;
  {
    std::lock_guard<std::recursive_mutex> guard(mappingsLock);
    auto found = mappings.find(address);
    if (found == mappings.end()) {
      ThrowTypeError(env, "argument 1 (buf) is not a live mapping");
    }
    Mapping* mapping = found->second;
    length = mapping->length;
    // From here on the finalizer (during Detach or at GC) only frees the record.
    mapping->mapped = false;
    mappings.erase(found);
    try {
      // Detach before unmapping: if detaching fails nothing is unmapped and JS keeps
      // valid memory; once detached no JS view can reach the range.
      buffer.Detach();
    } catch (...) {
      mapping->mapped = true;
      mappings[address] = mapping;
      throw;
    }
  }
  // An sg read still aimed at this range keeps its addresses reserved (sg.cc, SgDeferUnmap).
  if (SgDeferUnmap(address, length)) return env.Undefined();
  if (munmap(address, length) != 0) ThrowErrno(env, "munmap", errno);
  return env.Undefined();
}

Napi::Value MemfdCreate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = ArgCString(info, 0, "name", kMaxMemfdName);
  int64_t size = ArgInteger(info, 1, "size", 0, kMaxSafeInteger);

  bool resizable = info.Length() > 2 && info[2].IsBoolean() && info[2].As<Napi::Boolean>().Value();

  FdGuard fd(memfd_create(name.c_str(), MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (fd.get() < 0) ThrowErrno(env, "memfd_create", errno);
  if (ftruncate(fd.get(), static_cast<off_t>(size)) != 0) ThrowErrno(env, "ftruncate", errno);
  if (resizable) {
    // A volume's store: it must be able to grow and shrink, and nobody maps it (positional I/O
    // only), so no seals; F_SEAL_SEAL keeps a receiver of the fd from sealing it under us.
    if (fcntl(fd.get(), F_ADD_SEALS, F_SEAL_SEAL) != 0) ThrowErrno(env, "fcntl", errno);
    return Napi::Number::New(env, fd.release());
  }
  // Sealed like QEMU's memory-backend-memfd (seal=on): the size can never change, so a mapping
  // of it can never lose pages under a reader.
  if (fcntl(fd.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) ThrowErrno(env, "fcntl", errno);
  return Napi::Number::New(env, fd.release());
}

}  // namespace

void RegisterMem(Napi::Env env, Napi::Object exports) {
  exports.Set("mmap", Napi::Function::New(env, Mmap, "mmap"));
  exports.Set("munmap", Napi::Function::New(env, Munmap, "munmap"));
  exports.Set("memfdCreate", Napi::Function::New(env, MemfdCreate, "memfdCreate"));
}

}  // namespace npiv
