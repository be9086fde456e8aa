#include "core/piece_picker.h"

#include <algorithm>
#include <cstdlib>
#include <limits>

#include "core/log.h"

namespace groupshare {

PiecePicker::PiecePicker(uint32_t piece_count, Options options)
    : options_(options),
      rng_(options.seed),
      have_(piece_count),
      availability_(piece_count, 0),
      requested_(piece_count),
      unrequested_missing_(0),
      buckets_(1),
      slot_(piece_count) {
  for (uint32_t i = 0; i < piece_count; ++i) Enqueue(i);
}

void PiecePicker::Enqueue(uint32_t piece) {
  const uint32_t a = availability_[piece];
  if (buckets_.size() <= a) buckets_.resize(a + 1);
  Bucket& b = buckets_[a];
  b.ordered.insert(b.ordered.end(), piece);
  slot_[piece] = static_cast<uint32_t>(b.drawable.size());
  b.drawable.push_back(piece);
  ++unrequested_missing_;
}

void PiecePicker::Dequeue(uint32_t piece) {
  Bucket& b = buckets_[availability_[piece]];
  b.ordered.erase(piece);
  const uint32_t last = b.drawable.back();
  b.drawable[slot_[piece]] = last;
  slot_[last] = slot_[piece];
  b.drawable.pop_back();
  --unrequested_missing_;
}

void PiecePicker::AddAvailability(uint32_t piece, int delta) {
  const bool queued = Queued(piece);
  if (queued) Dequeue(piece);
  availability_[piece] = static_cast<uint16_t>(availability_[piece] + delta);
  if (queued) Enqueue(piece);
}

void PiecePicker::SetHave(PieceIndex index) {
  const uint32_t piece = index.value();
  if (piece >= piece_count() || have_.Get(piece)) return;
  if (requested_[piece].empty()) {
    Dequeue(piece);
  } else {
    under_way_.erase(piece);
  }
  for (PeerId p : requested_[piece]) {
    if (auto it = peers_.find(p); it != peers_.end()) --it->second.in_flight;
  }
  total_in_flight_ -= static_cast<uint32_t>(requested_[piece].size());
  requested_[piece].clear();
  have_.Set(piece);
  Check();
}

void PiecePicker::AddPeer(PeerId peer, const Bitfield& pieces, uint32_t max_in_flight) {
  if (HasPeer(peer)) RemovePeer(peer);
  Peer& p = peers_[peer];
  p.pieces = pieces;
  p.max_in_flight = std::max<uint32_t>(max_in_flight, 1);
  for (uint32_t i = 0; i < pieces.size() && i < piece_count(); ++i) {
    if (pieces.Get(i)) AddAvailability(i, +1);
  }
  if (Partial(p)) ++partial_peers_;
  Check();
}

void PiecePicker::PeerHas(PeerId peer, PieceIndex index) {
  const uint32_t piece = index.value();
  auto it = peers_.find(peer);
  if (it == peers_.end() || piece >= piece_count() || it->second.pieces.Get(piece)) return;
  it->second.pieces.Set(piece);
  AddAvailability(piece, +1);
  if (!Partial(it->second)) --partial_peers_;  // it just completed
  Check();
}

void PiecePicker::PeerLacks(PeerId peer, PieceIndex index) {
  const uint32_t piece = index.value();
  auto it = peers_.find(peer);
  if (it == peers_.end() || piece >= piece_count() || !it->second.pieces.Get(piece)) return;
  if (!Partial(it->second)) ++partial_peers_;  // whole until now
  it->second.pieces.Set(piece, false);
  AddAvailability(piece, -1);
  Check();
}

void PiecePicker::RemovePeer(PeerId peer) {
  auto it = peers_.find(peer);
  if (it == peers_.end()) return;
  for (uint32_t i = 0; i < piece_count(); ++i) {
    if (it->second.pieces.Get(i)) AddAvailability(i, -1);
    if (Requested(i, peer)) Release(i, peer);
  }
  if (Partial(it->second)) --partial_peers_;
  peers_.erase(it);
  Check();
}

void PiecePicker::SetMaxInFlight(PeerId peer, uint32_t limit) {
  auto it = peers_.find(peer);
  if (it != peers_.end()) it->second.max_in_flight = std::max<uint32_t>(limit, 1);
}

uint32_t PiecePicker::InFlight(PeerId peer) const {
  auto it = peers_.find(peer);
  return it == peers_.end() ? 0 : it->second.in_flight;
}

bool PiecePicker::Requested(uint32_t piece, PeerId peer) const {
  const auto& r = requested_[piece];
  return std::find(r.begin(), r.end(), peer) != r.end();
}

void PiecePicker::Release(uint32_t piece, PeerId peer) {
  auto& r = requested_[piece];
  auto at = std::find(r.begin(), r.end(), peer);
  if (at == r.end()) return;
  r.erase(at);
  --peers_[peer].in_flight;
  --total_in_flight_;
  if (r.empty() && !have_.Get(piece)) {
    under_way_.erase(piece);
    Enqueue(piece);
  }
}

namespace {

// Draws are tried at random this many times before a bucket is walked.
constexpr int kDraws = 16;

}  // namespace

std::optional<uint32_t> PiecePicker::PickRarest(const Bitfield& pieces) {
  // In a swarm, pieces held by one peer alone are drawn from all of them.
  const bool swarm = peers_.size() > 1;
  // In file order while every peer holds the whole file.
  const uint64_t window = partial_peers_ == 0 ? 1 : std::max(options_.tie_window, 1u);
  // A piece the peer holds has an availability of at least one.
  for (size_t a = 1; a < buckets_.size(); ++a) {
    const Bucket& b = buckets_[a];
    if (b.drawable.empty()) continue;
    std::optional<uint32_t> chosen;
    uint64_t ties = 0;
    // Reservoir sampling keeps the choice uniform in one pass.
    auto consider = [&](uint32_t piece) {
      ++examined_;
      if (pieces.Get(piece) && rng_() % ++ties == 0) chosen = piece;
    };
    if (swarm && a == 1) {
      for (int i = 0; i < kDraws; ++i) {
        const uint32_t piece = b.drawable[rng_() % b.drawable.size()];
        ++examined_;
        if (pieces.Get(piece)) return piece;
      }
      for (uint32_t piece : b.drawable) consider(piece);
    } else {
      // The first `window` it holds in file order.
      for (auto it = b.ordered.begin(); it != b.ordered.end() && ties < window; ++it) {
        consider(*it);
      }
    }
    if (chosen.has_value()) return chosen;
  }
  return std::nullopt;
}

std::optional<uint32_t> PiecePicker::PickAnyQueued(const Bitfield& pieces) {
  for (int i = 0; i < kDraws; ++i) {
    uint32_t r = static_cast<uint32_t>(rng_() % unrequested_missing_);
    for (const Bucket& b : buckets_) {
      if (r < b.drawable.size()) {
        ++examined_;
        if (pieces.Get(b.drawable[r])) return b.drawable[r];
        break;
      }
      r -= static_cast<uint32_t>(b.drawable.size());
    }
  }
  std::optional<uint32_t> chosen;
  uint64_t ties = 0;
  for (const Bucket& b : buckets_) {
    for (uint32_t piece : b.drawable) {
      ++examined_;
      if (pieces.Get(piece) && rng_() % ++ties == 0) chosen = piece;
    }
  }
  return chosen;
}

std::optional<uint32_t> PiecePicker::PickCopy(const Bitfield& pieces, PeerId peer,
                                              const Waits& waits) {
  // The pieces with the fewest copies requested, then the rarest; ties
  // among the first `tie_window` in file order.
  const uint64_t window = std::max(options_.tie_window, 1u);
  std::optional<uint32_t> best;
  uint32_t best_rank = std::numeric_limits<uint32_t>::max();
  uint64_t ties = 0;
  for (uint32_t piece : under_way_) {
    ++examined_;
    const std::vector<PeerId>& holders = requested_[piece];
    const uint32_t copies = static_cast<uint32_t>(holders.size());
    if (!pieces.Get(piece) || copies >= options_.max_copies || Requested(piece, peer)) continue;
    if (waits && !std::all_of(holders.begin(), holders.end(), [&](PeerId holder) {
          return waits(holder, PieceIndex(piece));
        })) {
      continue;
    }
    const uint32_t rank = copies * 65536 + availability_[piece];
    if (rank < best_rank) {
      best = piece;
      best_rank = rank;
      ties = 1;
    } else if (rank == best_rank && ties < window && rng_() % ++ties == 0) {
      best = piece;
    }
  }
  return best;
}

std::optional<PieceIndex> PiecePicker::Pick(PeerId peer, const Waits& waits) {
  auto it = peers_.find(peer);
  if (it == peers_.end()) return std::nullopt;
  Peer& p = it->second;
  if (p.in_flight >= p.max_in_flight) return std::nullopt;

  // The random phase draws from every candidate, not the rarest.
  const bool random_phase = have_.Count() + under_way_.size() < options_.random_first;
  std::optional<uint32_t> best;
  if (unrequested_missing_ > 0) {
    best = random_phase ? PickAnyQueued(p.pieces) : PickRarest(p.pieces);
  }
  if (!best.has_value() && (unrequested_missing_ == 0 || p.in_flight == 0)) {
    // Endgame: every missing piece is in flight somewhere; or this peer is
    // idle, with nothing unasked that it holds. Either way it takes a copy
    // of a piece that waits elsewhere (at a slower peer, say).
    best = PickCopy(p.pieces, peer, waits);
  }
  if (!best.has_value()) return std::nullopt;
  if (requested_[*best].empty()) {
    Dequeue(*best);
    under_way_.insert(*best);
  }
  requested_[*best].push_back(peer);
  ++p.in_flight;
  ++total_in_flight_;
  Check();
  return PieceIndex(*best);
}

std::vector<PeerId> PiecePicker::Complete(PeerId peer, PieceIndex piece) {
  std::vector<PeerId> others;
  if (piece.value() >= piece_count()) return others;
  for (PeerId p : requested_[piece.value()]) {
    if (p != peer) others.push_back(p);
  }
  SetHave(piece);
  return others;
}

void PiecePicker::Abort(PeerId peer, PieceIndex piece) {
  if (piece.value() < piece_count() && HasPeer(peer)) Release(piece.value(), peer);
  Check();
}

uint32_t PiecePicker::UnavailableCount() const {
  uint32_t count = 0;
  for (uint32_t i = 0; i < piece_count(); ++i) {
    if (!have_.Get(i) && availability_[i] == 0) ++count;
  }
  return count;
}

bool PiecePicker::InEndgame() const { return unrequested_missing_ == 0 && !Done(); }

bool PiecePicker::InvariantsHold() const {
  absl::flat_hash_map<PeerId, uint32_t> in_flight;
  uint32_t unrequested = 0, under_way = 0;
  for (uint32_t i = 0; i < piece_count(); ++i) {
    uint32_t avail = 0;
    for (const auto& [id, p] : peers_) avail += p.pieces.Get(i);
    if (avail != availability_[i]) return false;
    if (have_.Get(i) && !requested_[i].empty()) return false;
    if (Queued(i)) {
      ++unrequested;
      if (avail >= buckets_.size()) return false;
      const Bucket& b = buckets_[avail];
      if (slot_[i] >= b.drawable.size() || b.drawable[slot_[i]] != i || !b.ordered.contains(i)) {
        return false;
      }
    } else if (!have_.Get(i)) {
      ++under_way;
      if (!under_way_.contains(i)) return false;
    }
    for (PeerId p : requested_[i]) {
      if (!HasPeer(p)) return false;
      ++in_flight[p];
    }
  }
  if (unrequested != unrequested_missing_ || under_way != under_way_.size()) return false;
  uint32_t queued = 0;
  for (const Bucket& b : buckets_) {
    if (b.ordered.size() != b.drawable.size()) return false;
    queued += static_cast<uint32_t>(b.drawable.size());
  }
  if (queued != unrequested) return false;
  uint32_t total = 0, partial = 0;
  for (const auto& [id, p] : peers_) {
    if (in_flight[id] != p.in_flight) return false;
    total += p.in_flight;
    partial += Partial(p);
  }
  return total == total_in_flight_ && partial == partial_peers_;
}

void PiecePicker::Check() const {
  if (options_.check_invariants && !InvariantsHold()) {
    GS_LOG(kError) << "piece picker: its counts disagree with a recount";
    std::abort();
  }
}

}  // namespace groupshare
