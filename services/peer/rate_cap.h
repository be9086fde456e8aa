// What a client's downloads may receive together, per second: a token
// bucket that the coordinators of all its downloads draw on as they ask
// peers for pieces. Capping the requests rather than the reads keeps every
// call that was made flowing at its peer's speed, so no call stalls (and
// no honest peer is blamed for it), and the bytes that arrive are those
// that were asked for.
//
// A request may go while the bucket holds any bytes. It takes its piece's
// length and may leave the bucket in debt, which time pays back: a piece
// larger than the bucket still goes, and the average stays within the rate.
//
// Thread-safe.
#ifndef GROUPSHARE_SERVICES_PEER_RATE_CAP_H_
#define GROUPSHARE_SERVICES_PEER_RATE_CAP_H_

#include <algorithm>
#include <cstdint>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace groupshare::peer {

class RateCap {
 public:
  // Bytes a second; 0 is no cap. The bucket holds a second's worth, and a
  // new cap starts with it full.
  void SetRate(uint64_t bytes_per_second) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    const double full = static_cast<double>(bytes_per_second);
    tokens_ = rate_ == 0 ? full : std::min(tokens_, full);
    rate_ = bytes_per_second;
  }
  uint64_t rate() const ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    return rate_;
  }

  // Whether a request may go at `now`: always without a cap.
  bool Open(absl::Time now) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    Refill(now);
    return rate_ == 0 || tokens_ > 0;
  }
  // Books `bytes` asked for at `now`.
  void Take(uint64_t bytes, absl::Time now) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    Refill(now);
    if (rate_ != 0) tokens_ -= static_cast<double>(bytes);
  }

 private:
  void Refill(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (now > last_) {
      const double seconds = last_ == absl::InfinitePast() ? 1 : absl::ToDoubleSeconds(now - last_);
      tokens_ =
          std::min(tokens_ + seconds * static_cast<double>(rate_), static_cast<double>(rate_));
      last_ = now;
    }
  }

  mutable absl::Mutex mu_;
  uint64_t rate_ ABSL_GUARDED_BY(mu_) = 0;
  double tokens_ ABSL_GUARDED_BY(mu_) = 0;  // negative: pieces asked for on credit
  absl::Time last_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
};

}  // namespace groupshare::peer

#endif  // GROUPSHARE_SERVICES_PEER_RATE_CAP_H_
