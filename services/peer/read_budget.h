// The piece bytes a peer has read from disk for its callers and the
// network has not yet taken: bounded in all and per allowance (a user at
// one address), so that readers who take nothing cannot make the peer read
// the whole file into memory. A call whose next chunk does not fit waits
// its turn, holding no thread; waiters go in order, but one over its own
// allowance waits without holding up the others. One chunk always fits in
// an empty budget, whatever the limits say.
//
// Plain data: its owner serialises access. Calls are opaque pointers.
#ifndef GROUPSHARE_SERVICES_PEER_READ_BUDGET_H_
#define GROUPSHARE_SERVICES_PEER_READ_BUDGET_H_

#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/function_ref.h"
#include "absl/time/time.h"

namespace groupshare::peer {

template <class Call>
class ReadBudget {
 public:
  ReadBudget(uint64_t total, uint64_t per_allowance)
      : total_(total), per_allowance_(per_allowance) {}

  // Takes `bytes` for `call`, which reads for `allowance`: true when they
  // fit now; false when the call was queued (at `now`) for Release.
  bool Reserve(Call* call, const std::string& allowance, uint64_t bytes, absl::Time now) {
    if (Fits(allowance, bytes)) {
      Take(allowance, bytes);
      return true;
    }
    waiting_.push_back({call, allowance, bytes, now});
    return false;
  }

  // Gives back `bytes` of `allowance`; returns the waiting calls that fit
  // now, in order, their bytes taken.
  std::vector<Call*> Release(const std::string& allowance, uint64_t bytes) {
    used_ -= std::min(used_, bytes);
    if (auto it = by_allowance_.find(allowance); it != by_allowance_.end()) {
      it->second -= std::min(it->second, bytes);
      if (it->second == 0) by_allowance_.erase(it);
    }
    std::vector<Call*> ready;
    for (auto it = waiting_.begin(); it != waiting_.end();) {
      if (used_ != 0 && used_ + it->bytes > total_) break;  // nobody fits in all
      if (!Fits(it->allowance, it->bytes)) {
        ++it;
        continue;
      }
      Take(it->allowance, it->bytes);
      ready.push_back(it->call);
      it = waiting_.erase(it);
    }
    return ready;
  }

  // Takes out of the queue the calls that waited since before `before`,
  // and those `gone` says are; returns them.
  std::vector<Call*> Expire(absl::Time before, absl::FunctionRef<bool(Call*)> gone) {
    std::vector<Call*> out;
    for (auto it = waiting_.begin(); it != waiting_.end();) {
      if (it->since < before || gone(it->call)) {
        out.push_back(it->call);
        it = waiting_.erase(it);
      } else {
        ++it;
      }
    }
    return out;
  }

  uint64_t used() const { return used_; }
  uint64_t used_by(const std::string& allowance) const {
    auto it = by_allowance_.find(allowance);
    return it == by_allowance_.end() ? 0 : it->second;
  }
  size_t waiting() const { return waiting_.size(); }

 private:
  struct Waiter {
    Call* call;
    std::string allowance;
    uint64_t bytes;
    absl::Time since;
  };
  bool Fits(const std::string& allowance, uint64_t bytes) const {
    const uint64_t mine = used_by(allowance);
    return (used_ == 0 || used_ + bytes <= total_) &&
           (mine == 0 || mine + bytes <= per_allowance_);
  }
  void Take(const std::string& allowance, uint64_t bytes) {
    used_ += bytes;
    by_allowance_[allowance] += bytes;
  }

  const uint64_t total_;
  const uint64_t per_allowance_;
  uint64_t used_ = 0;
  absl::flat_hash_map<std::string, uint64_t> by_allowance_;
  std::deque<Waiter> waiting_;
};

}  // namespace groupshare::peer

#endif  // GROUPSHARE_SERVICES_PEER_READ_BUDGET_H_
