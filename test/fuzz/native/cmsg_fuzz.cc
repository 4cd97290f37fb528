// libFuzzer harness for the native shim's SCM_RIGHTS parser (native/src/cmsg.h, used by
// RecvMsg in native/src/sock.cc). The fuzzer's bytes are the control buffer as recvmsg left
// it, in a heap block of exactly that size, so AddressSanitizer reports any read past it.
// Built and run by test/fuzz/native/run.sh (npm run fuzz -- --target native-cmsg).
#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "cmsg.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // The real buffer is cmsghdr-aligned (a union with cmsghdr); new[] gives that alignment.
  std::unique_ptr<char[]> control(new char[size == 0 ? 1 : size]);
  if (size) std::memcpy(control.get(), data, size);
  msghdr message{};
  message.msg_control = size ? control.get() : nullptr;
  message.msg_controllen = size;
  std::vector<int> fds = npiv::ReceivedFds(&message);
  // Every fd came out of the buffer: there cannot be more than fit in it.
  if (fds.size() * sizeof(int) > size) std::abort();
  return 0;
}
