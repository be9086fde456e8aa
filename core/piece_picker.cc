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
      unrequested_missing_(piece_count),
      window_start_(piece_count == 0 ? 0 : static_cast<uint32_t>(rng_() % piece_count)) {}

void PiecePicker::SetHave(PieceIndex index) {
  const uint32_t piece = index.value();
  if (piece >= piece_count() || have_.Get(piece)) return;
  if (requested_[piece].empty()) --unrequested_missing_;
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
    if (pieces.Get(i)) ++availability_[i];
  }
  Check();
}

void PiecePicker::PeerHas(PeerId peer, PieceIndex index) {
  const uint32_t piece = index.value();
  auto it = peers_.find(peer);
  if (it == peers_.end() || piece >= piece_count() || it->second.pieces.Get(piece)) return;
  it->second.pieces.Set(piece);
  ++availability_[piece];
  Check();
}

void PiecePicker::RemovePeer(PeerId peer) {
  auto it = peers_.find(peer);
  if (it == peers_.end()) return;
  for (uint32_t i = 0; i < piece_count(); ++i) {
    if (it->second.pieces.Get(i)) --availability_[i];
    if (Requested(i, peer)) Release(i, peer);
  }
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
  if (r.empty() && !have_.Get(piece)) ++unrequested_missing_;
}

std::optional<PieceIndex> PiecePicker::Pick(PeerId peer) {
  auto it = peers_.find(peer);
  if (it == peers_.end()) return std::nullopt;
  Peer& p = it->second;
  if (p.in_flight >= p.max_in_flight) return std::nullopt;

  const bool random_phase = have_.Count() + (piece_count() - have_.Count() -
                                              unrequested_missing_) < options_.random_first;
  std::optional<uint32_t> best;
  uint32_t best_rank = std::numeric_limits<uint32_t>::max();
  uint64_t ties = 0;
  // Reservoir sampling among the pieces of the lowest rank keeps the
  // tie-break uniform in one pass.
  // The random phase draws from every candidate, not just a window.
  // In a swarm, pieces held by one peer alone are drawn from all of them.
  const bool swarm = peers_.size() > 1;
  const uint64_t window = std::max(options_.tie_window, 1u);
  auto consider = [&](uint32_t piece, uint32_t rank) {
    if (rank < best_rank) {
      best = piece;
      best_rank = rank;
      ties = 1;
    } else if (rank == best_rank &&
               (ties < window || random_phase || (swarm && rank == 1)) &&
               rng_() % ++ties == 0) {
      best = piece;
    }
  };
  const uint32_t n = piece_count();
  if (unrequested_missing_ > 0) {
    for (uint32_t k = 0; k < n; ++k) {
      const uint32_t i = window_start_ + k < n ? window_start_ + k : window_start_ + k - n;
      if (have_.Get(i) || !requested_[i].empty() || !p.pieces.Get(i)) continue;
      consider(i, random_phase ? 0 : availability_[i]);
    }
  }
  if (!best.has_value() && (unrequested_missing_ == 0 || p.in_flight == 0)) {
    // Endgame: every missing piece is in flight somewhere; or this peer is
    // idle, with nothing unasked that it holds. Either way it takes a copy
    // of a piece under way elsewhere (a slower peer's, say), preferring the
    // pieces with the fewest copies requested, then the rarest.
    for (uint32_t i = 0; i < n; ++i) {
      if (have_.Get(i) || !p.pieces.Get(i) || Requested(i, peer)) continue;
      uint32_t copies = static_cast<uint32_t>(requested_[i].size());
      if (copies >= options_.max_copies) continue;
      consider(i, copies * 65536 + availability_[i]);
    }
  }
  if (!best.has_value()) return std::nullopt;
  if (requested_[*best].empty()) --unrequested_missing_;
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
  uint32_t unrequested = 0;
  for (uint32_t i = 0; i < piece_count(); ++i) {
    uint32_t avail = 0;
    for (const auto& [id, p] : peers_) avail += p.pieces.Get(i);
    if (avail != availability_[i]) return false;
    if (have_.Get(i) && !requested_[i].empty()) return false;
    if (!have_.Get(i) && requested_[i].empty()) ++unrequested;
    for (PeerId p : requested_[i]) {
      if (!HasPeer(p)) return false;
      ++in_flight[p];
    }
  }
  if (unrequested != unrequested_missing_) return false;
  uint32_t total = 0;
  for (const auto& [id, p] : peers_) {
    if (in_flight[id] != p.in_flight) return false;
    total += p.in_flight;
  }
  return total == total_in_flight_;
}

void PiecePicker::Check() const {
  if (options_.check_invariants && !InvariantsHold()) {
    GS_LOG(kError) << "piece picker: its counts disagree with a recount";
    std::abort();
  }
}

}  // namespace groupshare
