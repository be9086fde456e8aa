// The piece picker alone, with no network. Availability and have-sets are
// written as strings, one character a piece.

#include <gtest/gtest.h>

#include <map>
#include <set>

#include "core/piece_picker.h"

namespace groupshare {
namespace {

// "1101" -> pieces 0, 1 and 3.
Bitfield Bits(const std::string& s) {
  Bitfield b(static_cast<uint32_t>(s.size()));
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '1') b.Set(static_cast<uint32_t>(i));
  }
  return b;
}

PeerId P(uint32_t id) { return PeerId(id); }
PieceIndex I(uint32_t index) { return PieceIndex(index); }

// The next piece for the peer, which must have one, as a plain number.
uint32_t Next(PiecePicker& picker, PeerId peer) { return picker.Pick(peer).value().value(); }

// The pieces a peer is given until it has no more, as plain numbers.
std::set<uint32_t> PickAll(PiecePicker& picker, PeerId peer) {
  std::set<uint32_t> got;
  while (auto p = picker.Pick(peer)) got.insert(p->value());
  return got;
}

PiecePicker::Options NoRandomStart(uint64_t seed = 1) {
  PiecePicker::Options o;
  o.random_first = 0;
  o.seed = seed;
  return o;
}

TEST(Bitfield, WireFormIsMostSignificantBitFirst) {
  Bitfield b(10);
  b.Set(0);
  b.Set(9);
  EXPECT_EQ(b.ToBytes(), std::string("\x80\x40", 2));
  EXPECT_EQ(b.Count(), 2u);
  auto back = Bitfield::FromBytes(b.ToBytes(), 10);
  ASSERT_TRUE(back.ok());
  EXPECT_TRUE(back->Get(0) && back->Get(9) && !back->Get(5));
  EXPECT_FALSE(Bitfield::FromBytes(std::string("\x80", 1), 10).ok());       // too short
  EXPECT_FALSE(Bitfield::FromBytes(std::string("\x80\x20", 2), 10).ok());   // bit 10 set
  EXPECT_TRUE(Bitfield(7, true).All());
}

TEST(PiecePicker, RarestFirst) {
  // availability per piece:   2 1 3 2
  PiecePicker picker(4, NoRandomStart());
  picker.AddPeer(P(1), Bits("1111"), 10);
  picker.AddPeer(P(2), Bits("1011"), 10);
  picker.AddPeer(P(3), Bits("0110"), 10);
  EXPECT_EQ(picker.Availability(I(0)), 2u);
  EXPECT_EQ(picker.Availability(I(1)), 2u);
  EXPECT_EQ(picker.Availability(I(2)), 3u);
  EXPECT_EQ(picker.Availability(I(3)), 2u);
  picker.RemovePeer(P(3));  // now 2 1 2 2
  EXPECT_EQ(picker.Pick(P(1)), I(1));  // the only piece with availability 1
  EXPECT_TRUE(picker.InvariantsHold());
}

TEST(PiecePicker, OnlyPiecesThePeerHolds) {
  PiecePicker picker(4, NoRandomStart());
  picker.AddPeer(P(1), Bits("0010"), 10);
  picker.AddPeer(P(2), Bits("1111"), 10);
  EXPECT_EQ(picker.Pick(P(1)), I(2));
  EXPECT_EQ(picker.Pick(P(1)), std::nullopt);  // holds nothing else we lack
}

TEST(PiecePicker, TiesAreBrokenAtRandom) {
  std::map<uint32_t, int> firsts;
  for (uint64_t seed = 0; seed < 200; ++seed) {
    PiecePicker picker(8, NoRandomStart(seed));
    picker.AddPeer(P(1), Bits("11111111"));
    picker.AddPeer(P(2), Bits("00000000"));  // another downloader
    firsts[Next(picker, P(1))]++;
  }
  EXPECT_EQ(firsts.size(), 8u);  // every piece came first for some seed
  for (const auto& [piece, count] : firsts) EXPECT_GT(count, 5) << piece;
}

// The smallest circular span of piece numbers (out of `n`) that holds `got`.
uint32_t CircularSpan(const std::set<uint32_t>& got, uint32_t n) {
  std::vector<uint32_t> v(got.begin(), got.end());
  uint32_t widest_gap = n - v.back() + v.front();
  for (size_t i = 1; i < v.size(); ++i) widest_gap = std::max(widest_gap, v[i] - v[i - 1]);
  return n - widest_gap + 1;
}

TEST(PiecePicker, WhileEveryPeerHoldsTheWholeFilePiecesComeInFileOrder) {
  for (uint64_t seed = 0; seed < 20; ++seed) {
    PiecePicker picker(64, NoRandomStart(seed));
    picker.AddPeer(P(1), Bitfield(64, true), 100);
    picker.AddPeer(P(2), Bitfield(64, true), 100);
    for (uint32_t i = 0; i < 20; ++i) EXPECT_EQ(Next(picker, P(1 + i % 2)), i) << seed;
    // A peer that is downloading too: ties are drawn at random again.
    picker.AddPeer(P(3), Bits(std::string(63, '0') + "1"), 10);
    std::set<uint32_t> got;
    for (int i = 0; i < 20; ++i) got.insert(Next(picker, P(i % 2 == 0 ? 1 : 2)));
    EXPECT_NE(*got.rbegin(), 39u) << seed;  // not 20..39 in order
    // It completes the file: in order again.
    for (uint32_t i = 0; i < 63; ++i) picker.PeerHas(P(3), I(i));
    std::vector<uint32_t> next;
    for (int i = 0; i < 3; ++i) next.push_back(Next(picker, P(3)));
    EXPECT_TRUE(std::is_sorted(next.begin(), next.end())) << seed;
    EXPECT_TRUE(picker.InvariantsHold());
  }
}

TEST(PiecePicker, TiesAreDrawnFromAWindowAtTheStartOfTheFile) {
  PiecePicker::Options o = NoRandomStart(5);
  o.tie_window = 4;
  std::set<uint32_t> firsts;
  for (uint64_t seed = 0; seed < 100; ++seed) {
    o.seed = seed;
    PiecePicker picker(64, o);
    Bitfield most(64, true);
    most.Set(63, false);  // a peer that is downloading too
    picker.AddPeer(P(1), most, 10);
    std::set<uint32_t> got;
    for (int i = 0; i < 4; ++i) got.insert(Next(picker, P(1)));
    firsts.insert(*got.begin());
    // Four picks from a window of four that moves on by one each time.
    EXPECT_LE(*got.rbegin(), 6u) << seed;
  }
  EXPECT_GT(firsts.size(), 1u);  // drawn, not the first piece every time
  // Rarity still comes first: a rarer piece outside the window wins.
  PiecePicker picker(64, o);
  Bitfield all(64, true), one(64);
  one.Set(50);
  picker.AddPeer(P(1), all);
  picker.AddPeer(P(2), all);
  picker.AddPeer(P(3), one);
  picker.SetHave(I(50));
  Bitfield most(64, true);
  most.Set(40, false);
  picker.AddPeer(P(2), most);  // piece 40 now held by peer 1 only
  EXPECT_EQ(picker.Pick(P(1)), I(40));
}

TEST(PiecePicker, InASwarmPiecesOnlyOnePeerHoldsAreDrawnFromAll) {
  // Peer 1 holds everything, peer 2 (another downloader) nothing yet:
  // what peer 1 is asked for is spread over the whole file, so that
  // downloaders who share one seeder ask it for different pieces.
  PiecePicker::Options o = NoRandomStart();
  o.tie_window = 4;
  int spread = 0;
  for (uint64_t seed = 0; seed < 100; ++seed) {
    o.seed = seed;
    PiecePicker picker(64, o);
    picker.AddPeer(P(1), Bitfield(64, true), 10);
    picker.AddPeer(P(2), Bitfield(64), 10);
    std::set<uint32_t> got;
    for (int i = 0; i < 4; ++i) got.insert(Next(picker, P(1)));
    spread += CircularSpan(got, 64) > 7;
  }
  EXPECT_GT(spread, 80);
}

TEST(PiecePicker, SameSeedSameOrder) {
  auto order = [](uint64_t seed) {
    PiecePicker picker(16, NoRandomStart(seed));
    picker.AddPeer(P(1), Bits("1111111111111111"), 100);
    picker.AddPeer(P(2), Bits("0000000000000001"), 100);
    std::vector<uint32_t> out;
    while (auto p = picker.Pick(P(1))) out.push_back(p->value());
    return out;
  };
  EXPECT_EQ(order(7), order(7));
  EXPECT_NE(order(7), order(8));
}

TEST(PiecePicker, RandomPiecesFirstThenRarest) {
  // Piece 0 is rarest (only peer 1), but the first two picks are random.
  PiecePicker::Options o;
  o.random_first = 2;
  int rarest_first_pick = 0;
  for (uint64_t seed = 0; seed < 100; ++seed) {
    o.seed = seed;
    PiecePicker picker(10, o);
    picker.AddPeer(P(1), Bits("1111111111"), 10);
    picker.AddPeer(P(2), Bits("0111111111"), 10);
    uint32_t a = Next(picker, P(1));
    uint32_t b = Next(picker, P(1));
    rarest_first_pick += (a == 0);
    if (a != 0 && b != 0) {
      // Random phase over: the rarest piece comes next.
      EXPECT_EQ(picker.Pick(P(1)), I(0)) << seed;
    }
  }
  EXPECT_LT(rarest_first_pick, 40);  // not rarest-first from the start
}

TEST(PiecePicker, PerPeerLimitOnRequestsInFlight) {
  PiecePicker picker(10, NoRandomStart());
  picker.AddPeer(P(1), Bits("1111111111"), 3);
  EXPECT_TRUE(picker.Pick(P(1)).has_value());
  EXPECT_TRUE(picker.Pick(P(1)).has_value());
  uint32_t third = Next(picker, P(1));
  EXPECT_EQ(picker.Pick(P(1)), std::nullopt);
  EXPECT_EQ(picker.InFlight(P(1)), 3u);
  picker.Complete(P(1), I(third));
  EXPECT_TRUE(picker.Pick(P(1)).has_value());
  picker.SetMaxInFlight(P(1), 6);  // a faster peer gets more
  EXPECT_TRUE(picker.Pick(P(1)).has_value());
  EXPECT_TRUE(picker.Pick(P(1)).has_value());
  EXPECT_EQ(picker.InFlight(P(1)), 5u);
  EXPECT_TRUE(picker.InvariantsHold());
}

TEST(PiecePicker, NoPieceIsAskedTwiceBeforeEndgame) {
  PiecePicker picker(6, NoRandomStart());
  picker.AddPeer(P(1), Bits("111111"), 10);
  picker.AddPeer(P(2), Bits("111111"), 10);
  std::set<uint32_t> seen;
  for (int i = 0; i < 3; ++i) {
    seen.insert(Next(picker, P(1)));
    seen.insert(Next(picker, P(2)));
  }
  EXPECT_EQ(seen.size(), 6u);
  EXPECT_TRUE(picker.InEndgame());
}

TEST(PiecePicker, EndgameGivesIdlePeersOutstandingPieces) {
  PiecePicker picker(3, NoRandomStart());
  picker.AddPeer(P(1), Bits("111"), 10);
  picker.AddPeer(P(2), Bits("111"), 10);
  uint32_t a = Next(picker, P(1)), b = Next(picker, P(1)), c = Next(picker, P(1));
  picker.Complete(P(1), I(a));
  picker.Complete(P(1), I(b));
  EXPECT_FALSE(picker.Done());  // two of three held
  ASSERT_TRUE(picker.InEndgame());
  // Peer 2 is idle: it is asked for the last piece too.
  EXPECT_EQ(picker.Pick(P(2)), I(c));
  EXPECT_EQ(picker.Pick(P(2)), std::nullopt);  // nothing else outstanding
  // Peer 2 wins; peer 1's copy is to be cancelled.
  EXPECT_EQ(picker.Complete(P(2), I(c)), std::vector<PeerId>{P(1)});
  EXPECT_TRUE(picker.Done());
  EXPECT_EQ(picker.InFlight(P(1)), 0u);
  // The loser's late abort is harmless.
  picker.Abort(P(1), I(c));
  EXPECT_TRUE(picker.InvariantsHold());
}

TEST(PiecePicker, AnIdlePeerTakesACopyOfAPieceWaitingElsewhereBeforeEndgame) {
  PiecePicker picker(3, NoRandomStart());
  picker.AddPeer(P(1), Bits("111"), 2);  // a slow seeder, at its limit
  const uint32_t a = Next(picker, P(1)), b = Next(picker, P(1));
  std::string held(3, '0');
  held[a] = held[b] = '1';
  picker.AddPeer(P(2), Bits(held), 2);  // holds what peer 1 is sending
  ASSERT_FALSE(picker.InEndgame());     // the third piece is unasked
  // Both are on their way: no copy.
  EXPECT_EQ(picker.Pick(P(2), [](PeerId, PieceIndex) { return false; }), std::nullopt);
  // Piece a waits at peer 1; b is on its way.
  std::vector<std::pair<PeerId, uint32_t>> asked;
  auto waits = [&](PeerId holder, PieceIndex piece) {
    asked.emplace_back(holder, piece.value());
    return piece.value() == a;
  };
  EXPECT_EQ(picker.Pick(P(2), waits), I(a));
  for (const auto& [holder, piece] : asked) EXPECT_EQ(holder, P(1));
  EXPECT_EQ(picker.Pick(P(2), waits), std::nullopt);  // one copy while it has one in flight
  // Peer 2 delivers first: peer 1's request is the one to cancel.
  EXPECT_EQ(picker.Complete(P(2), I(a)), std::vector<PeerId>{P(1)});
  EXPECT_TRUE(picker.InvariantsHold());
}

TEST(PiecePicker, AnEndgameCopyIsOnlyOfAPieceThatWaits) {
  PiecePicker picker(1, NoRandomStart());
  picker.AddPeer(P(1), Bits("1"), 2);
  picker.AddPeer(P(2), Bits("1"), 2);
  EXPECT_EQ(picker.Pick(P(1)), I(0));
  ASSERT_TRUE(picker.InEndgame());
  EXPECT_EQ(picker.Pick(P(2), [](PeerId, PieceIndex) { return false; }), std::nullopt);
  EXPECT_EQ(picker.Pick(P(2), [](PeerId holder, PieceIndex) { return holder == P(1); }), I(0));
}

TEST(PiecePicker, EndgameCopiesAreBounded) {
  PiecePicker::Options o = NoRandomStart();
  o.max_copies = 2;
  PiecePicker picker(1, o);
  for (uint32_t p = 1; p <= 4; ++p) picker.AddPeer(P(p), Bits("1"), 10);
  EXPECT_EQ(picker.Pick(P(1)), I(0));
  EXPECT_EQ(picker.Pick(P(2)), I(0));
  EXPECT_EQ(picker.Pick(P(3)), std::nullopt);
  EXPECT_EQ(picker.Pick(P(1)), std::nullopt);  // never twice from one peer
}

TEST(PiecePicker, FailedRequestIsRequeued) {
  PiecePicker picker(2, NoRandomStart());
  picker.AddPeer(P(1), Bits("10"), 10);
  picker.AddPeer(P(2), Bits("11"), 10);
  EXPECT_EQ(picker.Pick(P(1)), I(0));
  picker.Abort(P(1), I(0));  // say its SHA1 did not match
  EXPECT_EQ(picker.InFlight(P(1)), 0u);
  EXPECT_FALSE(picker.InEndgame());
  // Rarest first: piece 1 (avail 1) before piece 0 (avail 2)... both are
  // free again, and peer 2 gets one of them, not a duplicate.
  std::set<uint32_t> got = {Next(picker, P(2)), Next(picker, P(2))};
  EXPECT_EQ(got, (std::set<uint32_t>{0, 1}));
  EXPECT_TRUE(picker.InvariantsHold());
}

TEST(PiecePicker, PeerThatDisappearsReleasesItsPieces) {
  PiecePicker picker(4, NoRandomStart());
  picker.AddPeer(P(1), Bits("1111"), 10);
  std::set<uint32_t> from_one = {Next(picker, P(1)), Next(picker, P(1)), Next(picker, P(1)),
                                 Next(picker, P(1))};
  EXPECT_EQ(from_one.size(), 4u);
  picker.AddPeer(P(2), Bits("1100"), 10);
  picker.RemovePeer(P(1));
  EXPECT_FALSE(picker.HasPeer(P(1)));
  EXPECT_EQ(picker.UnavailableCount(), 2u);  // pieces 2 and 3: nobody else has them
  EXPECT_EQ(PickAll(picker, P(2)), (std::set<uint32_t>{0, 1}));
  EXPECT_EQ(picker.Pick(P(1)), std::nullopt);  // unknown peer
  EXPECT_TRUE(picker.InvariantsHold());
}

TEST(PiecePicker, NewPiecesAtAPeerAreSeen) {
  PiecePicker picker(3, NoRandomStart());
  picker.AddPeer(P(1), Bits("000"), 10);
  EXPECT_EQ(picker.Pick(P(1)), std::nullopt);
  EXPECT_EQ(picker.UnavailableCount(), 3u);
  picker.PeerHas(P(1), I(2));
  EXPECT_EQ(picker.Availability(I(2)), 1u);
  EXPECT_EQ(picker.Pick(P(1)), I(2));
  EXPECT_TRUE(picker.InvariantsHold());
}

TEST(PiecePicker, ResumedPiecesAreNotAskedFor) {
  PiecePicker picker(4, NoRandomStart());
  picker.SetHave(I(0));
  picker.SetHave(I(2));
  picker.AddPeer(P(1), Bits("1111"), 10);
  EXPECT_EQ(PickAll(picker, P(1)), (std::set<uint32_t>{1, 3}));
  EXPECT_EQ(picker.HaveCount(), 2u);
}

// A pick looks at a few pieces, not the whole file: at most the tie window
// from seeders, and about one draw in a swarm. (Before the buckets, every
// pick walked all the pieces: n x n / 2 here.)
TEST(PiecePicker, APickLooksAtAFewPiecesNotTheWholeFile) {
  const uint32_t n = 65536;  // 1 GiB of 16 KiB pieces
  PiecePicker::Options o = NoRandomStart();
  o.check_invariants = false;  // a recount is O(n) a change
  const Bitfield all(n, true);
  PiecePicker seeders(n, o);
  seeders.AddPeer(P(1), all, n);
  seeders.AddPeer(P(2), all, n);
  for (uint32_t i = 0; i < n; ++i) ASSERT_TRUE(seeders.Pick(P(1 + i % 2)).has_value());
  EXPECT_TRUE(seeders.InEndgame());
  EXPECT_LE(seeders.examined(), uint64_t{n} * o.tie_window);

  PiecePicker swarm(n, o);
  swarm.AddPeer(P(1), all, n);
  swarm.AddPeer(P(2), Bitfield(n), n);  // another downloader, with nothing yet
  for (uint32_t i = 0; i < n; ++i) ASSERT_TRUE(swarm.Pick(P(1)).has_value());
  EXPECT_LE(swarm.examined(), uint64_t{n} * 2);
}

TEST(PiecePicker, APieceAPeerWithdrawsIsNotAskedOfIt) {
  PiecePicker picker(3, NoRandomStart());
  picker.AddPeer(P(1), Bits("111"), 10);
  picker.PeerLacks(P(1), I(1));
  EXPECT_EQ(picker.Availability(I(1)), 0u);
  EXPECT_EQ(picker.UnavailableCount(), 1u);
  EXPECT_EQ(PickAll(picker, P(1)), (std::set<uint32_t>{0, 2}));
  // A request in flight stays; the piece comes back with a new offer.
  picker.PeerLacks(P(1), I(2));
  EXPECT_EQ(picker.InFlight(P(1)), 2u);
  picker.PeerHas(P(1), I(1));
  EXPECT_EQ(picker.Pick(P(1)), I(1));
  EXPECT_TRUE(picker.InvariantsHold());
}

TEST(PiecePicker, RandomisedRunKeepsItsInvariants) {
  std::mt19937 rng(42);
  PiecePicker::Options o;
  o.seed = 3;
  o.check_invariants = true;  // every change recounted, in every build
  PiecePicker picker(64, o);
  std::vector<std::pair<PeerId, PieceIndex>> flying;
  for (int step = 0; step < 5000 && !picker.Done(); ++step) {
    PeerId peer(1 + rng() % 4);
    switch (rng() % 6) {
      case 0:
        if (!picker.HasPeer(peer)) {
          Bitfield b(64);
          for (uint32_t i = 0; i < 64; ++i) b.Set(i, rng() % 3 != 0);
          picker.AddPeer(peer, b, 1 + rng() % 4);
        }
        break;
      case 1:
        if (rng() % 10 == 0) picker.RemovePeer(peer);
        break;
      case 2:
        if (rng() % 4 == 0) {
          picker.PeerLacks(peer, I(rng() % 64));
        } else {
          picker.PeerHas(peer, I(rng() % 64));
        }
        break;
      default:
        if (auto p = picker.Pick(peer)) flying.push_back({peer, *p});
        if (!flying.empty()) {
          size_t k = rng() % flying.size();
          auto [who, piece] = flying[k];
          flying.erase(flying.begin() + static_cast<long>(k));
          if (rng() % 4 == 0) {
            picker.Abort(who, piece);
          } else if (picker.HasPeer(who) && !picker.Have(piece)) {
            picker.Complete(who, piece);
          }
        }
    }
    ASSERT_TRUE(picker.InvariantsHold()) << "step " << step;
  }
}

}  // namespace
}  // namespace groupshare
