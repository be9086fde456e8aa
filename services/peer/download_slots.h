// How many of a client's downloads run at once. The others wait their turn
// in the order they came, each on its coordinator's thread, before opening
// its part file: a waiting download holds no link, no buffer and no worker.
// So a hundred download_file commands cost what a few running downloads
// do, as the download queues of BitTorrent clients keep it.
//
// Thread-safe.
#ifndef GROUPSHARE_SERVICES_PEER_DOWNLOAD_SLOTS_H_
#define GROUPSHARE_SERVICES_PEER_DOWNLOAD_SLOTS_H_

#include <cstdint>
#include <set>

#include "absl/synchronization/mutex.h"

namespace groupshare::peer {

class DownloadSlots {
 public:
  explicit DownloadSlots(uint32_t max) : max_(max) {}
  // From now on: fewer leaves those running to end; more lets the next
  // ones start.
  void SetMax(uint32_t max) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    max_ = max;
  }

  // A place in the queue, to be given to TryTake, and to Leave when the
  // download ends before it got a slot.
  uint64_t Join() ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    waiting_.insert(next_);
    return next_++;
  }
  // A slot for `place` when one is free and nobody who came earlier waits.
  bool TryTake(uint64_t place) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    if (taken_ >= max_ || waiting_.empty() || *waiting_.begin() != place) return false;
    waiting_.erase(waiting_.begin());
    ++taken_;
    return true;
  }
  void Leave(uint64_t place) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    waiting_.erase(place);
  }
  // Gives back the slot of a download that ended.
  void Give() ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    if (taken_ > 0) --taken_;
  }
  // How many wait ahead of `place`.
  uint32_t Ahead(uint64_t place) const ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    uint32_t ahead = 0;
    for (auto it = waiting_.begin(); it != waiting_.end() && *it < place; ++it) ++ahead;
    return ahead;
  }

 private:
  mutable absl::Mutex mu_;
  uint32_t max_ ABSL_GUARDED_BY(mu_);
  uint32_t taken_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t next_ ABSL_GUARDED_BY(mu_) = 0;
  std::set<uint64_t> waiting_ ABSL_GUARDED_BY(mu_);
};

}  // namespace groupshare::peer

#endif  // GROUPSHARE_SERVICES_PEER_DOWNLOAD_SLOTS_H_
