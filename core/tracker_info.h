// tracker_info.txt: one tracker address ("host:port") a line. Tracker
// number N (1-based) listens on the Nth address; clients try them in order.
// Blank lines and lines starting with '#' are skipped. A line may pin the
// tracker's certificate by its SHA-256 fingerprint, as the tracker prints it
// at start: "host:port sha256=<64 hex digits>".
#ifndef GROUPSHARE_CORE_TRACKER_INFO_H_
#define GROUPSHARE_CORE_TRACKER_INFO_H_

#include <string>
#include "absl/strings/string_view.h"
#include <vector>

#include "absl/status/statusor.h"

namespace groupshare {

// A "host:port" address. `host` is an IPv4 address, a DNS name, or an IPv6
// address in brackets ("[::1]"); the brackets are kept.
struct HostPort {
  std::string host;
  int port = 0;

  std::string ToString() const;
};

// The longest host name there is (RFC 1035); an IPv6 address in brackets
// is shorter.
inline constexpr size_t kMaxHostBytes = 253;

// Parses "host:port"; INVALID_ARGUMENT says what is wrong. A port of 0 is
// accepted only when `allow_port_zero` (a server that lets the system
// choose).
absl::StatusOr<HostPort> ParseHostPort(absl::string_view text,
                                       bool allow_port_zero = false);

// One line of tracker_info.txt.
struct TrackerAddress : HostPort {
  std::string sha256;  // lower-case hex; empty when the line pins nothing
};

// Reads the addresses of tracker_info.txt. NOT_FOUND when the file cannot
// be read, INVALID_ARGUMENT (naming the line) when a line is malformed or
// the file holds no address. relay_info.txt has the same form: `kind`
// ("relay") names it in the messages.
absl::StatusOr<std::vector<TrackerAddress>> ReadTrackerInfo(const std::string& path,
                                                            absl::string_view kind = "tracker");

// The same, from the file's text.
absl::StatusOr<std::vector<TrackerAddress>> ParseTrackerInfo(absl::string_view text,
                                                             absl::string_view kind = "tracker");

}  // namespace groupshare

#endif  // GROUPSHARE_CORE_TRACKER_INFO_H_
