// Super-seeding's offer book alone: what a seeder offers each reader of its
// bitfield, as pieces are asked for and go out.
#include "services/peer/offer_book.h"

#include <gtest/gtest.h>

#include <map>
#include <set>

namespace groupshare::peer {
namespace {

// Readers are told apart by address; these stand for bitfield calls.
const int kReaders[8] = {};
OfferBook::Reader R(int i) { return &kReaders[i]; }

std::set<uint32_t> Pieces(const Bitfield& b) {
  std::set<uint32_t> out;
  for (uint32_t p = 0; p < b.size(); ++p) {
    if (b.Get(p)) out.insert(p);
  }
  return out;
}

OfferBook::Options Offers(uint32_t max, uint32_t min) {
  OfferBook::Options o;
  o.max_offers = max;
  o.min_offers = min;
  o.seed = 7;
  return o;
}

TEST(OfferBook, ALoneReaderIsOfferedEveryPiece) {
  OfferBook book(40, Offers(8, 2));
  EXPECT_TRUE(book.Open(R(0)).All());
  EXPECT_TRUE(book.Asked({3}).empty());  // it has them all already
  EXPECT_TRUE(book.Sent(3).empty());
}

TEST(OfferBook, ReadersInACrowdAreOfferedDifferentPiecesNobodyAskedFor) {
  OfferBook book(40, Offers(8, 2));
  book.Open(R(0));  // alone: everything
  book.Asked({0});
  book.Asked({1});
  book.Sent(1);
  std::set<uint32_t> seen;
  for (int i = 1; i <= 3; ++i) {
    const std::set<uint32_t> offered = Pieces(book.Open(R(i)));
    // Its share of eight: four with two readers, then two (the least).
    EXPECT_EQ(offered.size(), i == 1 ? 4u : 2u) << i;
    for (uint32_t p : offered) {
      EXPECT_GE(p, 2u) << "asked for already";
      EXPECT_TRUE(seen.insert(p).second) << p << " offered twice";
    }
  }
}

TEST(OfferBook, APieceAskedForIsWithdrawnFromItsReadersAndReplaced) {
  OfferBook book(40, Offers(8, 2));
  book.Open(R(0));  // alone: everything
  const std::set<uint32_t> offered = Pieces(book.Open(R(1)));
  ASSERT_EQ(offered.size(), 4u);
  const uint32_t piece = *offered.begin();
  // Withdrawn from both readers it was offered to, and R(1) is offered
  // another in its place (R(0) holds many offers still).
  OfferBook::Moves moves = book.Asked({piece});
  ASSERT_EQ(moves.size(), 3u);
  std::set<OfferBook::Reader> withdrawn_from;
  for (int i = 0; i < 2; ++i) {
    EXPECT_TRUE(moves[i].withdrawn);
    EXPECT_EQ(moves[i].piece, piece);
    withdrawn_from.insert(moves[i].reader);
  }
  EXPECT_EQ(withdrawn_from, (std::set<OfferBook::Reader>{R(0), R(1)}));
  EXPECT_EQ(moves[2].reader, R(1));
  EXPECT_FALSE(moves[2].withdrawn);
  EXPECT_FALSE(offered.count(moves[2].piece));
  EXPECT_NE(moves[2].piece, piece);
  // A piece offered to R(0) only is withdrawn there alone, and R(1) is
  // offered nothing for it; a second call for the same piece, and its
  // sending, change nothing.
  uint32_t other = 0;
  while (offered.count(other) || other == moves[2].piece) ++other;
  moves = book.Asked({other});
  ASSERT_EQ(moves.size(), 1u);
  EXPECT_EQ(moves[0].reader, R(0));
  EXPECT_EQ(moves[0].piece, other);
  EXPECT_TRUE(moves[0].withdrawn);
  EXPECT_TRUE(book.Asked({piece}).empty());
  EXPECT_TRUE(book.Sent(piece).empty());
}

TEST(OfferBook, APieceAskedForButNeverSentIsOfferedAgain) {
  OfferBook book(4, Offers(2, 1));
  book.Open(R(0));
  const std::set<uint32_t> first = Pieces(book.Open(R(1)));  // its share: one
  ASSERT_EQ(first.size(), 1u);
  const uint32_t lost = *first.begin();
  EXPECT_EQ(book.Asked({lost}).size(), 3u);  // withdrawn from both; another for R(1)
  for (uint32_t p = 0; p < 4; ++p) {
    if (p != lost) book.Asked({p});
  }
  // The call for `lost` ends before it went out: the next reader is
  // offered it, the only piece nobody is getting.
  book.NotSent({lost});
  EXPECT_EQ(Pieces(book.Open(R(2))), std::set<uint32_t>{lost});
}

TEST(OfferBook, OnceEveryPieceWentOutEveryReaderIsOfferedEverything) {
  OfferBook book(12, Offers(4, 1));
  std::map<OfferBook::Reader, std::set<uint32_t>> offered;
  for (int i = 0; i <= 3; ++i) offered[R(i)] = Pieces(book.Open(R(i)));
  auto note = [&](const OfferBook::Moves& moves) {
    for (const OfferBook::Move& m : moves) {
      if (m.withdrawn) {
        EXPECT_EQ(offered[m.reader].erase(m.piece), 1u) << "withdrawn, not offered";
      } else {
        EXPECT_TRUE(offered[m.reader].insert(m.piece).second) << "offered twice";
      }
    }
  };
  for (uint32_t p = 0; p < 12; ++p) note(book.Asked({p}));
  for (int i = 0; i <= 3; ++i) EXPECT_LT(offered[R(i)].size(), 12u) << i;
  for (uint32_t p = 0; p < 12; ++p) note(book.Sent(p));
  for (int i = 0; i <= 3; ++i) EXPECT_EQ(offered[R(i)].size(), 12u) << i;
}

TEST(OfferBook, AClosedReadersOffersGoToTheNextReader) {
  OfferBook book(40, Offers(8, 4));
  book.Open(R(0));
  const std::set<uint32_t> first = Pieces(book.Open(R(1)));
  book.Close(R(1));
  book.Close(R(0));
  EXPECT_TRUE(book.empty());
  book.Open(R(2));                                  // alone now: everything
  EXPECT_EQ(Pieces(book.Open(R(3))), first);  // the same draw: nobody holds them now
}

}  // namespace
}  // namespace groupshare::peer
