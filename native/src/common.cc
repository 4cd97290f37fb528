// npiv_native: errno errors and argument validation shared by all entry points.
#include "common.h"

#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cmath>
#include <cstring>

namespace npiv {

namespace {

std::string ArgName(size_t index, const char* name) {
  return std::string("argument ") + std::to_string(index + 1) + " (" + name + ")";
}

}  // namespace

void ThrowErrno(Napi::Env env, const char* syscall, int err, const std::string& detail) {
  char text[256];
  // GNU strerror_r: returns a pointer to the message (thread-safe, unlike strerror).
  const char* description = strerror_r(err, text, sizeof text);
  std::string message = std::string(syscall);
  if (!detail.empty()) message += " " + detail;
  message += ": ";
  message += description;
  Napi::Error error = Napi::Error::New(env, message);
  error.Set("errno", Napi::Number::New(env, err));
  error.Set("syscall", Napi::String::New(env, syscall));
  throw error;
}

void ThrowTypeError(Napi::Env env, const std::string& message) {
  throw Napi::TypeError::New(env, message);
}

void ThrowRangeError(Napi::Env env, const std::string& message) {
  throw Napi::RangeError::New(env, message);
}

int64_t ArgInteger(const Napi::CallbackInfo& info, size_t index, const char* name,
                   int64_t min, int64_t max) {
  Napi::Value value = info[index];
  if (!value.IsNumber()) {
    ThrowTypeError(info.Env(), ArgName(index, name) + " must be a number");
  }
  double number = value.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(number) || std::trunc(number) != number) {
    ThrowRangeError(info.Env(), ArgName(index, name) + " must be an integer");
  }
  // Compare as doubles first: min/max are exact within 2^53, and this rejects
  // values that would overflow the int64_t conversion.
  if (number < static_cast<double>(min) || number > static_cast<double>(max)) {
    ThrowRangeError(info.Env(), ArgName(index, name) + " must be in [" + std::to_string(min) +
                                    ", " + std::to_string(max) + "]");
  }
  return static_cast<int64_t>(number);
}

int ArgFd(const Napi::CallbackInfo& info, size_t index, const char* name) {
  return static_cast<int>(ArgInteger(info, index, name, 0, INT_MAX));
}

uint64_t ArgBigUint64(const Napi::CallbackInfo& info, size_t index, const char* name,
                      uint64_t max) {
  Napi::Value value = info[index];
  if (!value.IsBigInt()) {
    ThrowTypeError(info.Env(), ArgName(index, name) + " must be a bigint");
  }
  bool lossless = false;
  uint64_t number = value.As<Napi::BigInt>().Uint64Value(&lossless);
  // Negative values and values >= 2^64 convert with lossless == false.
  if (!lossless || number > max) {
    ThrowRangeError(info.Env(), ArgName(index, name) + " must be in [0n, " +
                                    std::to_string(max) + "n]");
  }
  return number;
}

std::string ArgCString(const Napi::CallbackInfo& info, size_t index, const char* name,
                       size_t maxBytes) {
  Napi::Value value = info[index];
  if (!value.IsString()) {
    ThrowTypeError(info.Env(), ArgName(index, name) + " must be a string");
  }
  std::string text = value.As<Napi::String>().Utf8Value();
  if (text.empty() || text.size() > maxBytes) {
    ThrowRangeError(info.Env(), ArgName(index, name) + " must be 1.." +
                                    std::to_string(maxBytes) + " bytes of UTF-8");
  }
  if (text.find('\0') != std::string::npos) {
    ThrowRangeError(info.Env(), ArgName(index, name) + " must not contain NUL characters");
  }
  return text;
}

Napi::Uint8Array ArgUint8Array(const Napi::CallbackInfo& info, size_t index, const char* name) {
  Napi::Value value = info[index];
  if (!value.IsTypedArray() ||
      value.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    ThrowTypeError(info.Env(), ArgName(index, name) + " must be a Uint8Array");
  }
  return value.As<Napi::Uint8Array>();
}

Napi::Function ArgFunction(const Napi::CallbackInfo& info, size_t index, const char* name) {
  Napi::Value value = info[index];
  if (!value.IsFunction()) {
    ThrowTypeError(info.Env(), ArgName(index, name) + " must be a function");
  }
  return value.As<Napi::Function>();
}

FdGuard::~FdGuard() {
  if (fd_ >= 0) {
    int saved = errno;  // keep the errno of the failure being reported
    close(fd_);
    errno = saved;
  }
}

}  // namespace npiv
