// Super-seeding: what a client that holds a whole file offers each of the
// members downloading it from it at once. A seeder's upload is what a flash
// crowd waits on, so each byte it sends twice before every byte went out
// once is time lost. A lone downloader is offered every piece; once several
// read the seeder's bitfield, each is offered a few pieces nobody asked for
// yet and nobody else is offered, and another each time one of its offered
// pieces is asked for by anyone (a piece on its way spreads among the
// downloaders, who trade it). So, while pieces are left that nobody asked
// for, a downloader has some to ask the seeder for that nobody else gets
// from it: the seeder's first copies go to different downloaders, and they
// fetch the rest from each other. When a second reader comes, the first
// keeps only its share of its offers. Offers overlap only for a reader
// left with none (when few pieces are left, or another reader sits on its
// offers): it is offered one piece offered to the fewest others. A piece
// offered to several readers is withdrawn from them once one asks for it,
// so that the others do not ask the seeder for a second copy before every
// piece went out once (an offer on its way when another asks may still
// be asked for: the fewer overlap, the fewer such copies). Then every
// reader is offered every piece.
//
// An offer is a hint: a piece asked for is sent whether it was offered or
// not. Plain data, no threads: its owner (the peer service) serialises
// access.
#ifndef GROUPSHARE_SERVICES_PEER_OFFER_BOOK_H_
#define GROUPSHARE_SERVICES_PEER_OFFER_BOOK_H_

#include <cstdint>
#include <map>
#include <random>
#include <set>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/types/span.h"
#include "core/bitfield.h"

namespace groupshare::peer {

class OfferBook {
 public:
  // A reader of the bitfield, as its owner tells them apart.
  using Reader = const void*;

  struct Options {
    // A reader is kept offered this many pieces nobody asked for yet,
    // divided among the readers, and at least min_offers.
    uint32_t max_offers = 32;
    uint32_t min_offers = 4;
    // Ties among the pieces to offer go by an order drawn from this.
    uint64_t seed = std::random_device{}();
  };

  OfferBook(uint32_t piece_count, Options options);

  struct Move;
  using Moves = std::vector<Move>;
  // A reader opens: the pieces it is offered, every one when it is alone.
  // The offers it takes from others (beyond their share now) are added to
  // `others`.
  Bitfield Open(Reader reader, Moves* others);
  void Close(Reader reader);
  bool empty() const { return readers_.empty(); }

  // A piece offered anew to a reader, or withdrawn from it: what each of
  // these returns.
  struct Move {
    Reader reader = nullptr;
    uint32_t piece = 0;
    bool withdrawn = false;
  };
  // A call asked for `pieces`.
  Moves Asked(absl::Span<const uint32_t> pieces);
  // A call that asked for `pieces` ended before they were sent.
  Moves NotSent(absl::Span<const uint32_t> pieces);
  // `piece` went out whole to someone.
  Moves Sent(uint32_t piece);

 private:
  struct Offers {
    Bitfield offered;
    uint32_t unasked = 0;  // offered pieces in fresh_
  };
  // Offers `reader` pieces until it holds its share of fresh ones that no
  // other reader is offered, or one that others are when there are none
  // (every piece, once all were sent); appends them to `out` when given.
  void TopUp(Reader reader, Offers& offers, Moves* out);
  // Withdraws fresh offers of `reader` beyond its share.
  void Trim(Reader reader, Offers& offers, Moves& out);
  // Withdraws `piece`, offered to `reader`, from it.
  void TakeBack(Reader reader, Offers& offers, uint32_t piece, Moves& out);
  // TopUp of every reader short of its share.
  Moves TopUpAll();
  void Offer(Reader reader, Offers& offers, uint32_t piece, Moves* out);
  // Takes back every offer of `piece` (just asked for, so no longer fresh).
  void Withdraw(uint32_t piece, Moves& out);
  // Changes how many readers were offered `piece`, keeping fresh_ in order.
  void CountOffer(uint32_t piece, int delta);
  // Nobody asked for the piece, and it was never sent.
  bool Fresh(uint32_t piece) const { return asked_[piece] == 0 && sent_[piece] == 0; }
  // Takes a fresh piece out of fresh_.
  void Unfresh(uint32_t piece);
  // Unsent pieces each reader is kept offered.
  uint32_t Share() const;
  // A piece's place in fresh_.
  std::tuple<uint32_t, uint32_t, uint32_t> Key(uint32_t piece) const {
    return {offered_[piece], rank_[piece], piece};
  }

  const Options options_;
  std::vector<uint32_t> asked_;    // by piece: calls asking for it, not ended unsent
  std::vector<uint32_t> sent_;     // by piece: times sent whole
  uint32_t unsent_;                // pieces never sent
  std::vector<uint32_t> offered_;  // by piece: open readers offered it
  std::vector<uint32_t> rank_;     // by piece: its place in the tie order
  // The fresh pieces, by (offered_, rank_): those offered to the
  // fewest readers first, and among them in an order of their own, so that
  // readers do not all go through the file in the same order.
  std::set<std::tuple<uint32_t, uint32_t, uint32_t>> fresh_;
  std::map<Reader, Offers> readers_;
};

}  // namespace groupshare::peer

#endif  // GROUPSHARE_SERVICES_PEER_OFFER_BOOK_H_
