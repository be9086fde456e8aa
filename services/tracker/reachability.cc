#include "services/tracker/reachability.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/tracker_info.h"

namespace groupshare::tracker {
namespace {

// The IP of "ipv4:1.2.3.4" or "ipv6:[::1]" (or "ipv6:%5B::1%5D"), as
// inet_ntop writes it; empty for anything else.
std::string SourceIp(std::string source) {
  std::string ip;
  if (absl::StartsWith(source, "ipv4:")) ip = source.substr(5);
  if (absl::StartsWith(source, "ipv6:")) ip = source.substr(5);
  for (const auto& [from, to] : {std::pair<const char*, const char*>{"%5B", "["}, {"%5D", "]"}}) {
    for (size_t at; (at = ip.find(from)) != std::string::npos;) ip.replace(at, 3, to);
  }
  if (!ip.empty() && ip.front() == '[') ip = ip.substr(1, ip.size() - 2);
  // An IPv4 caller on a dual-stack socket shows as ::ffff:a.b.c.d.
  if (absl::StartsWith(ip, "::ffff:") && ip.find('.') != std::string::npos) ip = ip.substr(7);
  return ip;
}

std::string IpOf(const sockaddr* address) {
  char text[INET6_ADDRSTRLEN] = {0};
  if (address->sa_family == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(address)->sin_addr, text,
              sizeof text);
  } else if (address->sa_family == AF_INET6) {
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(address)->sin6_addr, text,
              sizeof text);
  }
  return text;
}

// Connects to `address` within `timeout`: empty on success, why not else.
std::string Connect(const sockaddr* address, socklen_t length, absl::Duration timeout) {
  const int fd = socket(address->sa_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return absl::StrCat("cannot make a socket: ", std::strerror(errno));
  std::string why;
  if (connect(fd, address, length) != 0 && errno != EINPROGRESS) {
    why = std::strerror(errno);
  } else {
    pollfd p{fd, POLLOUT, 0};
    const int ready = poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(timeout)));
    int error = 0;
    socklen_t size = sizeof error;
    if (ready == 0) {
      why = absl::StrCat("no answer within ", absl::FormatDuration(timeout));
    } else if (ready < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &size) != 0) {
      why = std::strerror(errno);
    } else if (error != 0) {
      why = std::strerror(error);
    }
  }
  close(fd);
  return why;
}

}  // namespace

Reachability CheckReachable(const std::string& advertised, const std::string& source,
                            absl::Duration timeout) {
  if (advertised.empty()) return {false, "this client advertises no address"};
  absl::StatusOr<HostPort> address = ParseHostPort(advertised);
  if (!address.ok()) return {false, std::string(address.status().message())};
  std::string host = address->host;
  if (host.front() == '[') host = host.substr(1, host.size() - 2);
  const std::string caller = SourceIp(source);
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (getaddrinfo(host.c_str(), std::to_string(address->port).c_str(), &hints, &found) != 0) {
    return {false, absl::StrCat("'", host, "' does not resolve here")};
  }
  Reachability out{false, absl::StrCat(advertised,
                                       " is not the address this client's calls come from (",
                                       caller.empty() ? source : caller,
                                       "); the tracker tries only its caller's own address")};
  for (addrinfo* a = found; a != nullptr; a = a->ai_next) {
    if (caller.empty() || IpOf(a->ai_addr) != caller) continue;
    const std::string why = Connect(a->ai_addr, a->ai_addrlen, timeout);
    out = why.empty() ? Reachability{true, ""}
                      : Reachability{false, absl::StrCat("connecting to ", advertised, ": ", why,
                                                         " (a NAT or a firewall in between?)")};
    break;
  }
  freeaddrinfo(found);
  return out;
}

}  // namespace groupshare::tracker
