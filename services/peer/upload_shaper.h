// A peer's upload cap: messages wait their turn so that what all calls send
// stays within the rate. The next to go is the rest of a piece under way,
// else the first chunk of the piece sent the fewest times so far (then the
// oldest message): when many downloaders ask
// a capped seeder at once, every piece leaves it once before any leaves it
// twice, and the downloaders trade the rest among themselves. A message of
// a cancelled call goes at once and costs no share of the cap.
//
// Plain data with the time passed in: its owner serialises access and
// schedules the next Pump.
#ifndef GROUPSHARE_SERVICES_PEER_UPLOAD_SHAPER_H_
#define GROUPSHARE_SERVICES_PEER_UPLOAD_SHAPER_H_

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/function_ref.h"
#include "absl/time/time.h"

namespace groupshare::peer {

template <class Call>
class UploadShaper {
 public:
  // Bytes a second; 0 is no cap (Queue is not to be called then).
  void SetRate(uint64_t bytes_per_second) { rate_ = bytes_per_second; }
  uint64_t rate() const { return rate_; }

  // `call`'s next message, of `bytes`, is of the piece `piece_key`;
  // `first_chunk` when it begins the piece.
  void Queue(Call* call, std::string piece_key, bool first_chunk, uint64_t bytes) {
    sends_.push_back(Send{call, std::move(piece_key), first_chunk, bytes, seq_++});
  }

  // The calls whose message may go at `now`, in order (their share of the
  // cap booked); and, when messages are left, when to pump again.
  struct Pumped {
    std::vector<Call*> ready;
    std::optional<absl::Time> again;
  };
  Pumped Pump(absl::Time now, absl::FunctionRef<bool(Call*)> cancelled) {
    Pumped out;
    while (!sends_.empty()) {
      auto best = sends_.begin();
      for (auto it = sends_.begin(); it != sends_.end(); ++it) {
        if (cancelled(it->call)) {  // costs no share of the cap
          best = it;
          break;
        }
        if (Rank(*it) < Rank(*best)) best = it;
      }
      if (!cancelled(best->call)) {
        if (next_free_ > now) break;
        // Each message books its share of the cap after the one before.
        next_free_ = std::max(next_free_, now) +
                     absl::Seconds(static_cast<double>(best->bytes) /
                                   static_cast<double>(std::max<uint64_t>(rate_, 1)));
        if (best->first_chunk) {
          if (sent_counts_.size() >= kMaxSentCounts) sent_counts_.clear();
          ++sent_counts_[best->piece_key];
        }
      }
      out.ready.push_back(best->call);
      sends_.erase(best);
    }
    if (!sends_.empty()) out.again = next_free_;
    return out;
  }

  // Forgets how often each piece went (when no call is left, the counts of
  // the last crowd mean nothing to the next one).
  void ForgetCounts() { sent_counts_.clear(); }
  size_t waiting() const { return sends_.size(); }

 private:
  // Times each piece was sent under the cap, at most this many pieces.
  static constexpr size_t kMaxSentCounts = 1 << 16;
  struct Send {
    Call* call;
    std::string piece_key;
    bool first_chunk;
    uint64_t bytes;
    uint64_t seq;
  };
  std::pair<uint32_t, uint64_t> Rank(const Send& send) const {
    uint32_t sent = 0;
    if (send.first_chunk) {
      auto it = sent_counts_.find(send.piece_key);
      sent = it == sent_counts_.end() ? 1 : it->second + 1;
    }
    return {sent, send.seq};
  }

  uint64_t rate_ = 0;
  absl::Time next_free_ = absl::InfinitePast();
  std::vector<Send> sends_;
  uint64_t seq_ = 0;
  absl::flat_hash_map<std::string, uint32_t> sent_counts_;
};

}  // namespace groupshare::peer

#endif  // GROUPSHARE_SERVICES_PEER_UPLOAD_SHAPER_H_
