#include "services/peer/offer_book.h"

#include <algorithm>
#include <numeric>
#include <random>

namespace groupshare::peer {

OfferBook::OfferBook(uint32_t piece_count, Options options)
    : options_(options), sent_(piece_count, 0), offered_(piece_count, 0), rank_(piece_count) {
  std::iota(rank_.begin(), rank_.end(), 0u);
  std::shuffle(rank_.begin(), rank_.end(), std::mt19937_64(options.seed));
  for (uint32_t p = 0; p < piece_count; ++p) fresh_.insert(Key(p));
}

uint32_t OfferBook::Share() const {
  const auto readers = static_cast<uint32_t>(std::max<size_t>(readers_.size(), 1));
  return std::max(options_.max_offers / readers, options_.min_offers);
}

void OfferBook::Offer(Reader reader, Offers& offers, uint32_t piece, Moves* out) {
  offers.offered.Set(piece);
  if (sent_[piece] == 0) {
    fresh_.erase(Key(piece));
    ++offered_[piece];
    fresh_.insert(Key(piece));
    ++offers.unsent;
  } else {
    ++offered_[piece];
  }
  if (out != nullptr) out->push_back({reader, piece});
}

void OfferBook::TopUp(Reader reader, Offers& offers, Moves* out) {
  if (fresh_.empty()) {  // every piece went out once: offer all
    for (uint32_t p = 0; p < offers.offered.size(); ++p) {
      if (!offers.offered.Get(p)) Offer(reader, offers, p, out);
    }
    return;
  }
  const uint32_t share = Share();
  // The unsent pieces offered to the fewest readers; only those already
  // offered to this reader are passed over.
  std::vector<uint32_t> chosen;
  for (auto it = fresh_.begin(); it != fresh_.end() && offers.unsent + chosen.size() < share;
       ++it) {
    const uint32_t piece = std::get<2>(*it);
    if (!offers.offered.Get(piece)) chosen.push_back(piece);
  }
  for (uint32_t p : chosen) Offer(reader, offers, p, out);
}

Bitfield OfferBook::Open(Reader reader) {
  Offers& offers = readers_[reader];
  offers.offered = Bitfield(static_cast<uint32_t>(sent_.size()));
  if (readers_.size() == 1) {  // alone: everything, in the order it likes
    for (uint32_t p = 0; p < sent_.size(); ++p) Offer(reader, offers, p, nullptr);
  } else {
    TopUp(reader, offers, nullptr);
  }
  return offers.offered;
}

void OfferBook::Close(Reader reader) {
  auto it = readers_.find(reader);
  if (it == readers_.end()) return;
  const Bitfield& offered = it->second.offered;
  for (uint32_t p = 0; p < offered.size(); ++p) {
    if (!offered.Get(p)) continue;
    if (sent_[p] == 0) {
      fresh_.erase(Key(p));
      --offered_[p];
      fresh_.insert(Key(p));
    } else {
      --offered_[p];
    }
  }
  readers_.erase(it);
}

OfferBook::Moves OfferBook::Sent(uint32_t piece) {
  Moves out;
  if (piece >= sent_.size() || sent_[piece]++ > 0) return out;
  fresh_.erase(Key(piece));
  for (auto& [reader, offers] : readers_) {
    if (offers.offered.Get(piece)) --offers.unsent;
  }
  for (auto& [reader, offers] : readers_) {
    if (!offers.offered.All() && (fresh_.empty() || offers.unsent < Share())) {
      TopUp(reader, offers, &out);
    }
  }
  return out;
}

}  // namespace groupshare::peer
