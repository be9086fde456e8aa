#include "services/peer/peer_set.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace groupshare::peer {

namespace tv1 = ::groupshare::tracker::v1;

uint32_t PeerSet::connected() const {
  uint32_t n = 0;
  for (const Peer& p : peers_) n += !p.gone;
  return n;
}

bool PeerSet::MayConnect(const tv1::Peer& holder, absl::Time now) const {
  int failed = 0;
  absl::Time last_failed = absl::InfinitePast();
  for (const Peer& known : peers_) {
    if (known.holder.address() != holder.address()) continue;
    if (!known.gone || known.strikes >= options_.max_strikes) return false;
    if (known.rotated) continue;
    ++failed;
    last_failed = std::max(last_failed, known.gone_at);
  }
  if (failed >= options_.max_attempts) return false;
  const absl::Duration backoff =
      failed == 0 ? absl::ZeroDuration()
                  : std::min(options_.first_retry * (int64_t{1} << std::min(failed - 1, 10)),
                             options_.max_retry);
  return now - last_failed >= backoff;
}

std::vector<tv1::Peer> PeerSet::Offer(const tv1::GetFilePeersResponse& response,
                                      uint32_t max_peers, absl::Time now) {
  std::vector<tv1::Peer> to_connect;
  uint32_t connected_now = connected();
  for (const tv1::Peer& h : response.peers()) {
    for (Peer& known : peers_) {
      if (known.holder.address() == h.address() && !known.gone) {
        known.holder.set_ticket(h.ticket());  // renewed
      }
    }
    bool reserved = false;
    for (tv1::Peer& r : reserve_) {
      if (r.address() == h.address()) {
        r = h;
        reserved = true;
      }
    }
    bool chosen = false;
    for (const tv1::Peer& c : to_connect) chosen |= c.address() == h.address();
    if (reserved || chosen || !MayConnect(h, now)) continue;
    if (connected_now < max_peers) {
      to_connect.push_back(h);
      ++connected_now;
    } else {
      reserve_.push_back(h);
    }
  }
  return to_connect;
}

uint32_t PeerSet::Connect(const tv1::Peer& holder, absl::Time now) {
  Peer& p = peers_.emplace_back();
  p.id = static_cast<uint32_t>(peers_.size());
  p.holder = holder;
  p.bitfield_ticket = holder.ticket();
  p.since = now;
  p.window = options_.initial_window;
  return p.id;
}

std::optional<std::string> PeerSet::Blame(uint32_t id, const absl::Status& why) {
  Peer* p = Find(id);
  if (p == nullptr) return std::nullopt;
  if (why.code() == absl::StatusCode::kDataLoss) {
    if (++p->strikes >= options_.max_strikes) {
      return absl::StrCat("it sent ", p->strikes, " corrupt pieces");
    }
    return std::nullopt;
  }
  if (++p->failures >= options_.max_failures ||
      why.code() == absl::StatusCode::kPermissionDenied ||
      why.code() == absl::StatusCode::kNotFound) {
    return std::string(why.message());
  }
  return std::nullopt;
}

void PeerSet::Delivered(uint32_t id, uint64_t bytes) {
  Peer* p = Get(id);
  if (p == nullptr) return;
  p->bytes += bytes;
  p->failures = 0;
}

std::optional<tv1::Peer> PeerSet::Drop(uint32_t id, bool rotated, absl::Time now) {
  Peer* p = Find(id);
  if (p == nullptr) return std::nullopt;
  p->gone = true;
  p->rotated = rotated;
  p->gone_at = now;
  // A holder in reserve takes its place: the first that may be connected.
  std::optional<tv1::Peer> next;
  for (auto it = reserve_.begin(); it != reserve_.end(); ++it) {
    if (!MayConnect(*it, now)) continue;
    next = std::move(*it);
    reserve_.erase(it);
    break;
  }
  // One rotated out waits in reserve, behind those it made room for.
  if (rotated) reserve_.push_back(p->holder);
  return next;
}

std::optional<uint32_t> PeerSet::Tick(absl::Time now, double seconds) {
  seconds = std::max(seconds, 1e-3);
  double total = 0, fastest = 0;
  for (Peer& p : peers_) {
    if (p.gone) continue;
    const double instant = static_cast<double>(p.bytes - p.bytes_at_tick) / seconds;
    p.bytes_at_tick = p.bytes;
    p.rate = 0.5 * p.rate + 0.5 * instant;
    total += p.rate;
    fastest = std::max(fastest, p.rate);
    // Enough requests in flight to cover the pipeline target at its rate.
    const double want = 1 + std::ceil(p.rate * absl::ToDoubleSeconds(options_.pipeline_target) /
                                      options_.piece_size);
    p.window = static_cast<uint32_t>(std::clamp<double>(want, options_.min_window,
                                                        options_.max_window));
  }
  total_rate_ = total;
  if (reserve_.empty() || now - last_rotate_ < options_.rotate_interval) return std::nullopt;
  last_rotate_ = now;
  Peer* slowest = nullptr;
  for (Peer& p : peers_) {
    if (p.gone || now - p.since < options_.rotate_interval) continue;
    if (slowest == nullptr || p.rate < slowest->rate) slowest = &p;
  }
  if (slowest == nullptr || slowest->rate >= options_.slow_share * fastest) return std::nullopt;
  return slowest->id;
}

}  // namespace groupshare::peer
