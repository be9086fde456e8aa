// Whether a client's peer service answers at the address it advertises:
// the tracker connects back to it, as a member elsewhere would. Only an
// address of the caller's own is tried (the host of `advertised` must
// resolve to the address the call came from), so that the tracker cannot be
// made to probe other hosts.
#ifndef GROUPSHARE_SERVICES_TRACKER_REACHABILITY_H_
#define GROUPSHARE_SERVICES_TRACKER_REACHABILITY_H_

#include <string>

#include "absl/time/time.h"

namespace groupshare::tracker {

struct Reachability {
  bool reachable = false;
  std::string detail;  // why not; empty when reachable
};

// `advertised` is "host:port"; `source` the caller's address as
// SourceAddress() gives it ("ipv4:127.0.0.1", "ipv6:[::1]"). Waits up to
// `timeout` for the connection.
Reachability CheckReachable(const std::string& advertised, const std::string& source,
                            absl::Duration timeout);

}  // namespace groupshare::tracker

#endif  // GROUPSHARE_SERVICES_TRACKER_REACHABILITY_H_
