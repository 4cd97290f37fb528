// npiv_native: parsing of received SCM_RIGHTS control data, kept free of Node-API so that
// test/fuzz/native/ can build it alone under libFuzzer and AddressSanitizer.
#pragma once

#include <sys/socket.h>

#include <cstring>
#include <vector>

namespace npiv {

// Collects the fds of every SCM_RIGHTS message in a received control buffer,
// trusting no length beyond what fits inside the buffer itself.
inline std::vector<int> ReceivedFds(msghdr* message) {
  std::vector<int> fds;
  const char* controlEnd = static_cast<const char*>(message->msg_control) + message->msg_controllen;
  for (cmsghdr* header = CMSG_FIRSTHDR(message); header != nullptr;
       header = CMSG_NXTHDR(message, header)) {
    if (header->cmsg_level != SOL_SOCKET || header->cmsg_type != SCM_RIGHTS) continue;
    if (header->cmsg_len < CMSG_LEN(0)) break;
    const char* data = reinterpret_cast<const char*>(CMSG_DATA(header));
    size_t payload = header->cmsg_len - CMSG_LEN(0);
    // Compare lengths, not pointers: data + payload can wrap for a cmsg_len near 2^64.
    const size_t room = static_cast<size_t>(controlEnd - data);
    if (payload > room) payload = room;
    for (size_t i = 0; i + sizeof(int) <= payload; i += sizeof(int)) {
      int fd;
      std::memcpy(&fd, data + i, sizeof fd);
      fds.push_back(fd);
    }
  }
  return fds;
}

}  // namespace npiv
