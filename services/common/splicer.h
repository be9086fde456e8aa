// Moves bytes both ways between pairs of connected sockets, as a relay
// does: one thread and one epoll set for every pair, a buffer of fixed size
// per direction, a rate cap per pair and in all, and an idle timeout. A
// pair ends when both sides have closed (each close is passed on as a
// half-close), on an error, or when idle too long.
//
// Thread-safe. No gRPC inside.
#ifndef GROUPSHARE_SERVICES_COMMON_SPLICER_H_
#define GROUPSHARE_SERVICES_COMMON_SPLICER_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace groupshare {

class Splicer {
 public:
  struct Options {
    uint64_t pair_rate = 0;   // bytes per second each way per pair; 0: no cap
    uint64_t total_rate = 0;  // bytes per second over every pair; 0: no cap
    absl::Duration idle_timeout = absl::Minutes(5);
    size_t buffer_bytes = 64 << 10;  // per direction
  };

  explicit Splicer(Options options);
  // Closes every pair.
  ~Splicer();
  Splicer(const Splicer&) = delete;
  Splicer& operator=(const Splicer&) = delete;

  // Takes both sockets (made non-blocking here) and splices them until the
  // pair ends; then closes both and runs `done` on the splicer's thread.
  void Add(int a, int b, std::function<void()> done = nullptr) ABSL_LOCKS_EXCLUDED(mu_);

  size_t pairs() const { return pairs_.load(std::memory_order_relaxed); }
  uint64_t bytes_moved() const { return moved_.load(std::memory_order_relaxed); }

 private:
  struct Pair;
  struct Direction;
  void Run();
  void Wake();
  void Service(Pair* pair, absl::Time now);
  bool Move(Direction& d);  // false: the pair failed
  void Close(Pair* pair);
  void Refill(absl::Time now);

  const Options options_;
  const int epoll_fd_;
  const int wake_fd_;
  absl::Mutex mu_;
  std::vector<std::unique_ptr<Pair>> added_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  // Owned by the thread.
  std::vector<std::unique_ptr<Pair>> live_;
  double total_tokens_ = 0;
  absl::Time refilled_ = absl::Now();
  std::atomic<size_t> pairs_{0};
  std::atomic<uint64_t> moved_{0};
  std::thread thread_;
};

}  // namespace groupshare

#endif  // GROUPSHARE_SERVICES_COMMON_SPLICER_H_
