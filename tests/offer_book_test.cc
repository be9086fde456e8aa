// Super-seeding's offer book alone: what a seeder offers each reader of its
// bitfield, as pieces go out.
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
  EXPECT_TRUE(book.Sent(3).empty());  // it has them all already
}

TEST(OfferBook, ReadersInACrowdAreOfferedDifferentPiecesNotSentYet) {
  OfferBook book(40, Offers(8, 2));
  book.Open(R(0));  // alone: everything
  book.Sent(0);
  book.Sent(1);
  std::set<uint32_t> seen;
  for (int i = 1; i <= 3; ++i) {
    const std::set<uint32_t> offered = Pieces(book.Open(R(i)));
    // Its share of eight: four with two readers, then two (the least).
    EXPECT_EQ(offered.size(), i == 1 ? 4u : 2u) << i;
    for (uint32_t p : offered) {
      EXPECT_GE(p, 2u) << "sent already";
      EXPECT_TRUE(seen.insert(p).second) << p << " offered twice";
    }
  }
}

TEST(OfferBook, APieceSentIsReplacedAtEveryReaderItWasOfferedTo) {
  OfferBook book(40, Offers(8, 2));
  book.Open(R(0));
  const std::set<uint32_t> offered = Pieces(book.Open(R(1)));
  ASSERT_EQ(offered.size(), 4u);
  const uint32_t piece = *offered.begin();
  OfferBook::Moves moves = book.Sent(piece);
  ASSERT_EQ(moves.size(), 1u);
  EXPECT_EQ(moves[0].first, R(1));
  EXPECT_FALSE(offered.count(moves[0].second));
  EXPECT_NE(moves[0].second, piece);
  // A piece that was not offered to it changes nothing there, nor a second
  // sending of the same piece.
  uint32_t other = 0;
  while (offered.count(other) || other == moves[0].second) ++other;
  EXPECT_TRUE(book.Sent(other).empty());
  EXPECT_TRUE(book.Sent(piece).empty());
}

TEST(OfferBook, OnceEveryPieceWentOutEveryReaderIsOfferedEverything) {
  OfferBook book(12, Offers(4, 1));
  book.Open(R(0));
  std::map<OfferBook::Reader, std::set<uint32_t>> offered;
  for (int i = 1; i <= 3; ++i) offered[R(i)] = Pieces(book.Open(R(i)));
  for (uint32_t p = 0; p < 12; ++p) {
    for (const auto& [reader, piece] : book.Sent(p)) {
      EXPECT_TRUE(offered[reader].insert(piece).second) << "offered twice";
    }
  }
  for (int i = 1; i <= 3; ++i) EXPECT_EQ(offered[R(i)].size(), 12u) << i;
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
