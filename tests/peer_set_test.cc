// The download's peer set alone: whom to connect, drop and rotate, with
// a clock the test sets.
#include "services/peer/peer_set.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace groupshare::peer {
namespace {

namespace tv1 = ::groupshare::tracker::v1;

const absl::Time kT0 = absl::FromUnixSeconds(1000);

tv1::GetFilePeersResponse Holders(const std::vector<std::string>& users,
                                  const std::string& ticket = "t1") {
  tv1::GetFilePeersResponse r;
  for (const std::string& u : users) {
    tv1::Peer* p = r.add_peers();
    p->set_user_id(u);
    p->set_address(u + ":7000");
    p->set_ticket(ticket + "-" + u);
  }
  return r;
}

std::vector<std::string> Users(const std::vector<tv1::Peer>& holders) {
  std::vector<std::string> out;
  for (const tv1::Peer& h : holders) out.push_back(h.user_id());
  return out;
}

PeerSet::Options Options() {
  PeerSet::Options o;
  o.piece_size = 1 << 20;
  return o;
}

TEST(PeerSet, HoldersBeyondTheLimitWaitInReserveAndTicketsAreRenewed) {
  PeerSet set(Options(), kT0);
  auto now = set.Offer(Holders({"a", "b", "c"}), /*max_peers=*/2, kT0);
  EXPECT_EQ(Users(now), (std::vector<std::string>{"a", "b"}));
  for (const tv1::Peer& h : now) set.Connect(h, kT0);
  EXPECT_EQ(set.reserve_size(), 1u);
  // Listed again, with new tickets: nobody twice; the connected renewed.
  EXPECT_TRUE(set.Offer(Holders({"a", "b", "c"}, "t2"), 2, kT0).empty());
  EXPECT_EQ(set.reserve_size(), 1u);
  EXPECT_EQ(set.Find(1)->holder.ticket(), "t2-a");
  EXPECT_EQ(set.Find(1)->window, Options().initial_window);
}

TEST(PeerSet, StrikesAndFailuresDropAPeerAndItsPlaceGoesToTheReserve) {
  PeerSet set(Options(), kT0);
  for (const tv1::Peer& h : set.Offer(Holders({"a", "b", "c"}), 2, kT0)) set.Connect(h, kT0);
  const absl::Status corrupt = absl::DataLossError("piece 1 failed its SHA1 check");
  EXPECT_EQ(set.Blame(1, corrupt), std::nullopt);
  EXPECT_EQ(set.Blame(1, corrupt), std::nullopt);
  EXPECT_EQ(set.Blame(1, corrupt), "it sent 3 corrupt pieces");
  auto next = set.Drop(1, /*rotated=*/false, kT0);
  ASSERT_TRUE(next.has_value());
  EXPECT_EQ(next->user_id(), "c");
  EXPECT_EQ(set.Find(1), nullptr);
  EXPECT_NE(set.Get(1), nullptr);
  // Failures in a row drop too, but a delivery in between starts over.
  const absl::Status busy = absl::UnavailableError("busy");
  EXPECT_EQ(set.Blame(2, busy), std::nullopt);
  EXPECT_EQ(set.Blame(2, busy), std::nullopt);
  set.Delivered(2, 100);
  EXPECT_EQ(set.Blame(2, busy), std::nullopt);
  EXPECT_EQ(set.Blame(2, busy), std::nullopt);
  EXPECT_EQ(set.Blame(2, busy), "busy");
  // A refused ticket drops at once.
  EXPECT_EQ(set.Blame(set.Connect(*next, kT0), absl::PermissionDeniedError("no")), "no");
}

TEST(PeerSet, ADroppedHolderIsTriedAgainAfterABackoffAndAStruckOutOneNever) {
  PeerSet::Options o = Options();
  o.max_attempts = 3;
  PeerSet set(o, kT0);
  const tv1::Peer a = Holders({"a"}).peers(0);
  set.Connect(a, kT0);
  EXPECT_FALSE(set.MayConnect(a, kT0));  // connected already
  set.Drop(1, false, kT0);
  EXPECT_FALSE(set.MayConnect(a, kT0 + absl::Milliseconds(999)));
  EXPECT_TRUE(set.MayConnect(a, kT0 + absl::Seconds(1)));
  set.Connect(a, kT0 + absl::Seconds(1));
  set.Drop(2, false, kT0 + absl::Seconds(1));
  EXPECT_FALSE(set.MayConnect(a, kT0 + absl::Seconds(2)));  // doubled: 2 s
  EXPECT_TRUE(set.MayConnect(a, kT0 + absl::Seconds(3)));
  set.Connect(a, kT0 + absl::Seconds(3));
  set.Drop(3, false, kT0 + absl::Seconds(3));
  EXPECT_FALSE(set.MayConnect(a, kT0 + absl::Hours(1)));  // max_attempts failed links
  // Struck out: never again.
  const tv1::Peer m = Holders({"m"}).peers(0);
  const uint32_t id = set.Connect(m, kT0);
  for (int i = 0; i < o.max_strikes; ++i) set.Blame(id, absl::DataLossError("bad"));
  set.Drop(id, false, kT0);
  EXPECT_FALSE(set.MayConnect(m, kT0 + absl::Hours(1)));
}

TEST(PeerSet, WindowsFollowTheRatesAndTheSlowestMakesRoomAfterTheInterval) {
  PeerSet::Options o = Options();
  o.rotate_interval = absl::Seconds(10);
  PeerSet set(o, kT0);
  for (const tv1::Peer& h : set.Offer(Holders({"fast", "slow", "spare"}), 2, kT0)) {
    set.Connect(h, kT0);
  }
  ASSERT_EQ(set.reserve_size(), 1u);
  absl::Time now = kT0;
  for (int second = 1; second <= 12; ++second) {
    now += absl::Seconds(1);
    set.Delivered(1, 100 << 20);  // 100 MiB a second
    set.Delivered(2, 1 << 20);    // 1 MiB a second
    std::optional<uint32_t> out = set.Tick(now, 1.0);
    if (second < 10) {
      EXPECT_EQ(out, std::nullopt) << second;
    } else if (second == 10) {
      EXPECT_EQ(out, 2u);
      auto next = set.Drop(2, /*rotated=*/true, now);
      ASSERT_TRUE(next.has_value());
      EXPECT_EQ(next->user_id(), "spare");
      set.Connect(*next, now);
      EXPECT_EQ(set.reserve_size(), 1u);  // slow waits its turn again
    } else {
      EXPECT_EQ(out, std::nullopt) << second;  // an interval before the next
    }
  }
  // About 100 MiB/s over 40 ms is 4 MiB: 1 + 4 pieces of 1 MiB.
  EXPECT_EQ(set.Find(1)->window, 5u);
  EXPECT_EQ(set.Find(3)->window, o.min_window);  // nothing measured yet
  // Rotated out is no fault: it may come back at once.
  EXPECT_TRUE(set.MayConnect(set.Get(2)->holder, now));
}

}  // namespace
}  // namespace groupshare::peer
