#include "services/common/connection_guard.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <unordered_map>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "core/log.h"

namespace groupshare {
namespace {

using AcceptFn = int (*)(int, sockaddr*, socklen_t*, int);

AcceptFn RealAccept4() {
  static const AcceptFn real = reinterpret_cast<AcceptFn>(dlsym(RTLD_NEXT, "accept4"));
  return real;
}

constexpr absl::Duration kSweepInterval = absl::Milliseconds(100);
constexpr absl::Duration kLogInterval = absl::Seconds(10);
// Connections taken off the queue and closed at once when the process has
// no descriptor left, per accept.
constexpr int kDrainWhenOut = 1024;
constexpr int kFew = 2;

struct Guard {
  std::atomic<bool> active{false};
  absl::Mutex mu;
  int max_total ABSL_GUARDED_BY(mu) = 0;
  int max_per_address ABSL_GUARDED_BY(mu) = 0;
  // Past max_total, a source below its fair share of it (and below kFew)
  // may still take up to this many more, out of the descriptors' reserve:
  // a burst from some addresses does not keep a new honest client out.
  int overdraft ABSL_GUARDED_BY(mu) = 0;
  struct Tracked {
    dev_t dev;
    ino_t ino;
    std::string address;
  };
  std::unordered_map<int, Tracked> by_fd ABSL_GUARDED_BY(mu);
  std::unordered_map<std::string, int> per_address ABSL_GUARDED_BY(mu);
  absl::Time last_sweep ABSL_GUARDED_BY(mu) = absl::InfinitePast();
  absl::Time last_log ABSL_GUARDED_BY(mu) = absl::InfinitePast();
  uint64_t refused ABSL_GUARDED_BY(mu) = 0;
  int spare_fd ABSL_GUARDED_BY(mu) = -1;

  void Forget(std::unordered_map<int, Tracked>::iterator it) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    auto count = per_address.find(it->second.address);
    if (count != per_address.end() && --count->second <= 0) per_address.erase(count);
    by_fd.erase(it);
  }

  // Forgets the connections gRPC closed since: their descriptor is gone or
  // names another file now.
  void Sweep(bool force) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    const absl::Time now = absl::Now();
    if (!force && now - last_sweep < kSweepInterval) return;
    last_sweep = now;
    for (auto it = by_fd.begin(); it != by_fd.end();) {
      struct stat st;
      auto next = std::next(it);
      if (fstat(it->first, &st) != 0 || st.st_dev != it->second.dev ||
          st.st_ino != it->second.ino) {
        Forget(it);
      }
      it = next;
    }
  }

  bool Admit(int fd, const std::string& address) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    // A descriptor number seen before was closed in between.
    if (auto old = by_fd.find(fd); old != by_fd.end()) Forget(old);
    auto over = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
      auto count = per_address.find(address);
      const int mine = count == per_address.end() ? 0 : count->second;
      const int total = static_cast<int>(by_fd.size());
      // A source's fair share of the total, were it shared by all.
      const int sources = static_cast<int>(per_address.size()) + (mine == 0);
      const int fair = std::max(kFew, max_total / std::max(1, sources));
      return mine >= max_per_address ||
             (total >= max_total && (mine >= fair || total >= max_total + overdraft));
    };
    if (over()) Sweep(/*force=*/false);
    if (over()) return false;
    struct stat st;
    if (fstat(fd, &st) != 0) return false;
    by_fd[fd] = {st.st_dev, st.st_ino, address};
    ++per_address[address];
    return true;
  }

  void Refused(const std::string& why) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    ++refused;
    const absl::Time now = absl::Now();
    if (now - last_log < kLogInterval) return;
    last_log = now;
    GS_LOG(kWarning) << "closing new connections at once: " << why << " (" << by_fd.size()
                     << " open, at most " << max_total << " in all and " << max_per_address
                     << " from one address; " << refused << " closed so far)";
  }
};

Guard& TheGuard() {
  static Guard* const guard = new Guard;
  return *guard;
}

}  // namespace

int GuardConnections(const ConnectionLimits& limits) {
  struct rlimit files;
  if (getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < files.rlim_max) {
    files.rlim_cur = files.rlim_max;
    setrlimit(RLIMIT_NOFILE, &files);
  }
  getrlimit(RLIMIT_NOFILE, &files);
  // What the process keeps for its own files: databases, shared files,
  // outgoing connections, logs.
  const rlim_t available = files.rlim_cur == RLIM_INFINITY ? rlim_t{1} << 20 : files.rlim_cur;
  const rlim_t reserve = std::max<rlim_t>(64, available / 8);
  const int by_files = static_cast<int>(std::min<rlim_t>(
      available > reserve ? available - reserve : 1, rlim_t{1} << 20));
  Guard& g = TheGuard();
  absl::MutexLock lock(&g.mu);
  g.max_total = std::max(1, std::min(limits.max_connections, by_files));
  g.max_per_address = std::max(1, std::min(limits.max_per_address, g.max_total));
  g.overdraft = static_cast<int>(std::min<rlim_t>(reserve / 2, 1024));
  if (g.spare_fd < 0) g.spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  g.active = true;
  return g.max_total;
}

std::string SourceAddressOf(const sockaddr_storage& ss) {
  if (ss.ss_family == AF_INET) {
    const auto& in = reinterpret_cast<const sockaddr_in&>(ss);
    return std::string(reinterpret_cast<const char*>(&in.sin_addr), 4);
  }
  if (ss.ss_family == AF_INET6) {
    const auto& in6 = reinterpret_cast<const sockaddr_in6&>(ss);
    const auto* bytes = reinterpret_cast<const char*>(&in6.sin6_addr);
    if (IN6_IS_ADDR_V4MAPPED(&in6.sin6_addr)) return std::string(bytes + 12, 4);
    if (IN6_IS_ADDR_LOOPBACK(&in6.sin6_addr)) return std::string(bytes, 16);
    return std::string(bytes, 8);
  }
  return "local";
}

ConnectionCounts CurrentConnections() {
  Guard& g = TheGuard();
  absl::MutexLock lock(&g.mu);
  g.Sweep(/*force=*/true);
  return {static_cast<int>(g.by_fd.size()), g.refused};
}

}  // namespace groupshare

// The process's accept4 (see the header). Outside the guard, or for a
// caller that is not a server's listener, it is the C library's.
extern "C" int accept4(int sockfd, sockaddr* addr, socklen_t* addrlen, int flags) {
  using groupshare::TheGuard;
  const groupshare::AcceptFn real = groupshare::RealAccept4();
  groupshare::Guard& g = TheGuard();
  if (!g.active.load(std::memory_order_relaxed)) return real(sockfd, addr, addrlen, flags);
  while (true) {
    sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    std::memset(&ss, 0, sizeof(ss));
    const int fd = real(sockfd, reinterpret_cast<sockaddr*>(&ss), &len, flags);
    if (fd < 0) {
      if (errno != EMFILE && errno != ENFILE) return fd;
      // No descriptor left: the spare one makes room to take connections
      // off the queue and close them, so that the queue never stays full.
      absl::MutexLock lock(&g.mu);
      if (g.spare_fd >= 0) {
        close(g.spare_fd);
        g.spare_fd = -1;
      }
      for (int i = 0; i < groupshare::kDrainWhenOut; ++i) {
        const int drained = real(sockfd, nullptr, nullptr, SOCK_CLOEXEC);
        if (drained < 0) break;
        close(drained);
        g.Refused("the process has no file descriptor left");
      }
      g.spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
      g.Sweep(/*force=*/true);
      errno = EAGAIN;
      return -1;
    }
    {
      absl::MutexLock lock(&g.mu);
      if (g.Admit(fd, groupshare::SourceAddressOf(ss))) {
        if (addr != nullptr && addrlen != nullptr) {
          std::memcpy(addr, &ss, std::min(*addrlen, len));
          *addrlen = len;
        }
        return fd;
      }
      g.Refused("a connection limit is reached");
    }
    close(fd);
  }
}
