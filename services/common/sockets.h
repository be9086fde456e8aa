// TCP connections made by hand, where gRPC does not make them: the relay's
// sessions, a probe of whether a holder answers directly, a TLS probe of a
// client's own peer service.
#ifndef GROUPSHARE_SERVICES_COMMON_SOCKETS_H_
#define GROUPSHARE_SERVICES_COMMON_SOCKETS_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace groupshare {

// Connects to "host:port" within `timeout`: the connected (blocking)
// socket, or UNAVAILABLE saying why not.
absl::StatusOr<int> DialTcp(const std::string& address, absl::Duration timeout);

// Waits until `fd` is ready for `events` (poll's) or `deadline` passes;
// true when it is ready.
bool WaitForReady(int fd, short events, absl::Time deadline);

}  // namespace groupshare

#endif  // GROUPSHARE_SERVICES_COMMON_SOCKETS_H_
