#include "services/peer/offer_book.h"

#include <algorithm>
#include <numeric>
#include <random>

namespace groupshare::peer {

OfferBook::OfferBook(uint32_t piece_count, Options options)
    : options_(options),
      asked_(piece_count, 0),
      sent_(piece_count, 0),
      unsent_(piece_count),
      offered_(piece_count, 0),
      rank_(piece_count) {
  std::iota(rank_.begin(), rank_.end(), 0u);
  std::shuffle(rank_.begin(), rank_.end(), std::mt19937_64(options.seed));
  for (uint32_t p = 0; p < piece_count; ++p) fresh_.insert(Key(p));
}

uint32_t OfferBook::Share() const {
  const auto readers = static_cast<uint32_t>(std::max<size_t>(readers_.size(), 1));
  return std::max(options_.max_offers / readers, options_.min_offers);
}

void OfferBook::CountOffer(uint32_t piece, int delta) {
  const bool fresh = Fresh(piece);
  if (fresh) fresh_.erase(Key(piece));
  offered_[piece] = static_cast<uint32_t>(static_cast<int64_t>(offered_[piece]) + delta);
  if (fresh) fresh_.insert(Key(piece));
}

void OfferBook::Offer(Reader reader, Offers& offers, uint32_t piece, Moves* out) {
  offers.offered.Set(piece);
  CountOffer(piece, +1);
  if (Fresh(piece)) ++offers.unasked;
  if (out != nullptr) out->push_back({reader, piece, false});
}

void OfferBook::TopUp(Reader reader, Offers& offers, Moves* out) {
  if (unsent_ == 0) {  // every piece went out once: offer all
    for (uint32_t p = 0; p < offers.offered.size(); ++p) {
      if (!offers.offered.Get(p)) Offer(reader, offers, p, out);
    }
    return;
  }
  const uint32_t share = Share();
  // The pieces nobody asked for and nobody is offered (fresh_ holds them
  // first); with none of those and no offer left, the one offered to the
  // fewest others.
  std::vector<uint32_t> chosen;
  for (auto it = fresh_.begin(); it != fresh_.end() && offers.unasked + chosen.size() < share;
       ++it) {
    const uint32_t piece = std::get<2>(*it);
    if (offers.offered.Get(piece)) continue;
    if (offered_[piece] > 0 && (offers.unasked > 0 || !chosen.empty())) break;
    chosen.push_back(piece);
    if (offered_[piece] > 0) break;
  }
  for (uint32_t p : chosen) Offer(reader, offers, p, out);
}

void OfferBook::Trim(Reader reader, Offers& offers, Moves& out) {
  const uint32_t share = Share();
  for (uint32_t p = 0; p < offers.offered.size() && offers.unasked > share; ++p) {
    if (offers.offered.Get(p) && Fresh(p)) TakeBack(reader, offers, p, out);
  }
}

void OfferBook::TakeBack(Reader reader, Offers& offers, uint32_t piece, Moves& out) {
  offers.offered.Set(piece, false);
  if (Fresh(piece)) --offers.unasked;
  CountOffer(piece, -1);
  out.push_back({reader, piece, true});
}

OfferBook::Moves OfferBook::TopUpAll() {
  Moves out;
  for (auto& [reader, offers] : readers_) {
    if (!offers.offered.All() && (unsent_ == 0 || offers.unasked < Share())) {
      TopUp(reader, offers, &out);
    }
  }
  return out;
}

Bitfield OfferBook::Open(Reader reader, Moves* others) {
  Offers& offers = readers_[reader];
  offers.offered = Bitfield(static_cast<uint32_t>(asked_.size()));
  if (readers_.size() == 1) {  // alone: everything, in the order it likes
    for (uint32_t p = 0; p < asked_.size(); ++p) Offer(reader, offers, p, nullptr);
  } else {
    if (unsent_ > 0) {
      for (auto& [other, their] : readers_) {
        if (other != reader) Trim(other, their, *others);
      }
    }
    TopUp(reader, offers, nullptr);
  }
  return offers.offered;
}

void OfferBook::Close(Reader reader) {
  auto it = readers_.find(reader);
  if (it == readers_.end()) return;
  const Bitfield& offered = it->second.offered;
  for (uint32_t p = 0; p < offered.size(); ++p) {
    if (offered.Get(p)) CountOffer(p, -1);
  }
  readers_.erase(it);
}

void OfferBook::Unfresh(uint32_t piece) {
  fresh_.erase(Key(piece));
  for (auto& [reader, offers] : readers_) {
    if (offers.offered.Get(piece)) --offers.unasked;
  }
}

OfferBook::Moves OfferBook::Asked(absl::Span<const uint32_t> pieces) {
  Moves out;
  bool changed = false;
  for (uint32_t piece : pieces) {
    if (piece >= asked_.size()) continue;
    const bool fresh = Fresh(piece);
    ++asked_[piece];
    if (!fresh) continue;
    Unfresh(piece);
    changed = true;
    if (readers_.size() > 1) Withdraw(piece, out);
  }
  if (!changed) return out;
  Moves more = TopUpAll();
  out.insert(out.end(), more.begin(), more.end());
  return out;
}

void OfferBook::Withdraw(uint32_t piece, Moves& out) {
  for (auto& [reader, offers] : readers_) {
    if (offers.offered.Get(piece)) TakeBack(reader, offers, piece, out);
  }
}

OfferBook::Moves OfferBook::NotSent(absl::Span<const uint32_t> pieces) {
  bool changed = false;
  for (uint32_t piece : pieces) {
    if (piece >= asked_.size() || asked_[piece] == 0) continue;
    --asked_[piece];
    if (!Fresh(piece)) continue;
    // Nobody got it from here after all: it may be offered anew.
    fresh_.insert(Key(piece));
    for (auto& [reader, offers] : readers_) {
      if (offers.offered.Get(piece)) ++offers.unasked;
    }
    changed = true;
  }
  return changed ? TopUpAll() : Moves();
}

OfferBook::Moves OfferBook::Sent(uint32_t piece) {
  if (piece >= sent_.size()) return {};
  if (Fresh(piece)) Unfresh(piece);  // sent unasked: not from a GetPiece
  if (sent_[piece]++ > 0 || --unsent_ > 0) return {};
  return TopUpAll();  // the last piece went out: offer everything
}

}  // namespace groupshare::peer
