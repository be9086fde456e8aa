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

// Applies `moves` to what each reader is offered, as the readers learn it.
void Note(std::map<OfferBook::Reader, std::set<uint32_t>>& offered,
          const OfferBook::Moves& moves) {
  for (const OfferBook::Move& m : moves) {
    if (m.withdrawn) {
      EXPECT_EQ(offered[m.reader].erase(m.piece), 1u) << "withdrawn, not offered";
    } else {
      EXPECT_TRUE(offered[m.reader].insert(m.piece).second) << "offered twice";
    }
  }
}

// Opens `reader`: what it is offered, and what the others are offered now.
void Open(OfferBook& book, std::map<OfferBook::Reader, std::set<uint32_t>>& offered,
          OfferBook::Reader reader) {
  OfferBook::Moves others;
  offered[reader] = Pieces(book.Open(reader, &others));
  for (const OfferBook::Move& m : others) EXPECT_NE(m.reader, reader);
  Note(offered, others);
}

// Pieces offered to more than one reader.
std::set<uint32_t> Overlap(const std::map<OfferBook::Reader, std::set<uint32_t>>& offered) {
  std::map<uint32_t, int> readers;
  for (const auto& [reader, pieces] : offered) {
    for (uint32_t p : pieces) ++readers[p];
  }
  std::set<uint32_t> out;
  for (auto [p, n] : readers) {
    if (n > 1) out.insert(p);
  }
  return out;
}

TEST(OfferBook, ALoneReaderIsOfferedEveryPiece) {
  OfferBook book(40, Offers(8, 2));
  OfferBook::Moves others;
  EXPECT_TRUE(book.Open(R(0), &others).All());
  EXPECT_TRUE(others.empty());
  EXPECT_TRUE(book.Asked({3}).empty());  // it has them all already
  EXPECT_TRUE(book.Sent(3).empty());
}

TEST(OfferBook, ReadersInACrowdAreOfferedDifferentPiecesNobodyAskedFor) {
  OfferBook book(40, Offers(8, 2));
  std::map<OfferBook::Reader, std::set<uint32_t>> offered;
  Open(book, offered, R(0));  // alone: everything
  book.Asked({0});
  book.Asked({1});
  book.Sent(1);
  for (int i = 1; i <= 3; ++i) {
    Open(book, offered, R(i));
    // Its share of eight: four with two readers, then two (the least); the
    // first reader keeps as many of its offers, and each other reader too.
    const size_t share = i == 1 ? 4 : 2;
    EXPECT_EQ(offered[R(i)].size(), share) << i;
    for (int j = 1; j < i; ++j) EXPECT_EQ(offered[R(j)].size(), share) << j;
    for (uint32_t p : offered[R(i)]) EXPECT_GE(p, 2u) << "asked for already";
    EXPECT_TRUE(Overlap(offered).empty()) << i;
  }
}

TEST(OfferBook, APieceAskedForIsWithdrawnFromItsReaderAndReplaced) {
  OfferBook book(40, Offers(8, 2));
  std::map<OfferBook::Reader, std::set<uint32_t>> offered;
  Open(book, offered, R(0));  // alone: everything
  Open(book, offered, R(1));  // takes its share, the first keeps its own
  ASSERT_EQ(offered[R(0)].size(), 4u);
  ASSERT_EQ(offered[R(1)].size(), 4u);
  const uint32_t piece = *offered[R(1)].begin();
  // Withdrawn from its reader, which is offered another in its place, one
  // nobody else is offered.
  OfferBook::Moves moves = book.Asked({piece});
  ASSERT_EQ(moves.size(), 2u);
  EXPECT_EQ(moves[0].reader, R(1));
  EXPECT_EQ(moves[0].piece, piece);
  EXPECT_TRUE(moves[0].withdrawn);
  EXPECT_EQ(moves[1].reader, R(1));
  EXPECT_FALSE(moves[1].withdrawn);
  Note(offered, moves);
  EXPECT_EQ(offered[R(1)].size(), 4u);
  EXPECT_TRUE(Overlap(offered).empty());
  // A piece nobody is offered is asked for: nothing changes, nor does a
  // second call for the same piece, or its sending.
  uint32_t other = 0;
  while (offered[R(0)].count(other) || offered[R(1)].count(other) || other == piece) ++other;
  EXPECT_TRUE(book.Asked({other}).empty());
  EXPECT_TRUE(book.Asked({piece}).empty());
  EXPECT_TRUE(book.Sent(piece).empty());
}

TEST(OfferBook, OffersOverlapOnlyForAReaderLeftWithNone) {
  OfferBook book(6, Offers(6, 2));
  std::map<OfferBook::Reader, std::set<uint32_t>> offered;
  for (int i = 0; i <= 2; ++i) Open(book, offered, R(i));
  // Two each, every piece offered once.
  for (int i = 0; i <= 2; ++i) EXPECT_EQ(offered[R(i)].size(), 2u) << i;
  EXPECT_TRUE(Overlap(offered).empty());
  // R(2) asks for both of its pieces: nobody is offered none of the four
  // left, so it is offered one of the others', and only one.
  const std::set<uint32_t> mine = offered[R(2)];
  for (uint32_t p : mine) Note(offered, book.Asked({p}));
  ASSERT_EQ(offered[R(2)].size(), 1u);
  EXPECT_EQ(Overlap(offered), offered[R(2)]);
  EXPECT_FALSE(mine.count(*offered[R(2)].begin()));
}

TEST(OfferBook, APieceAskedForButNeverSentIsOfferedAgain) {
  OfferBook book(4, Offers(2, 1));
  std::map<OfferBook::Reader, std::set<uint32_t>> offered;
  Open(book, offered, R(0));
  Open(book, offered, R(1));  // its share: one
  ASSERT_EQ(offered[R(1)].size(), 1u);
  const uint32_t lost = *offered[R(1)].begin();
  EXPECT_EQ(book.Asked({lost}).size(), 2u);  // withdrawn; another for R(1)
  for (uint32_t p = 0; p < 4; ++p) {
    if (p != lost) book.Asked({p});
  }
  // The call for `lost` ends before it went out: it is offered again, and
  // so to the next reader, the only piece nobody is getting.
  book.NotSent({lost});
  OfferBook::Moves others;
  EXPECT_EQ(Pieces(book.Open(R(2), &others)), std::set<uint32_t>{lost});
}

TEST(OfferBook, OnceEveryPieceWentOutEveryReaderIsOfferedEverything) {
  OfferBook book(12, Offers(4, 1));
  std::map<OfferBook::Reader, std::set<uint32_t>> offered;
  for (int i = 0; i <= 3; ++i) Open(book, offered, R(i));
  for (uint32_t p = 0; p < 12; ++p) Note(offered, book.Asked({p}));
  for (int i = 0; i <= 3; ++i) EXPECT_LT(offered[R(i)].size(), 12u) << i;
  for (uint32_t p = 0; p < 12; ++p) Note(offered, book.Sent(p));
  for (int i = 0; i <= 3; ++i) EXPECT_EQ(offered[R(i)].size(), 12u) << i;
}

TEST(OfferBook, AClosedReadersOffersGoToTheNextReader) {
  OfferBook book(40, Offers(8, 4));
  std::map<OfferBook::Reader, std::set<uint32_t>> offered;
  Open(book, offered, R(0));
  Open(book, offered, R(1));
  const std::set<uint32_t> first = offered[R(1)];
  book.Close(R(1));
  book.Close(R(0));
  EXPECT_TRUE(book.empty());
  Open(book, offered, R(2));  // alone now: everything
  Open(book, offered, R(3));
  EXPECT_EQ(offered[R(3)], first);  // the same draw: nobody holds them now
}

}  // namespace
}  // namespace groupshare::peer
