// The peer's read budget alone.
#include "services/peer/read_budget.h"

#include <gtest/gtest.h>

#include <vector>

namespace groupshare::peer {
namespace {

struct Call {
  bool gone = false;
};

const absl::Time kT0 = absl::FromUnixSeconds(1000);

TEST(ReadBudget, BoundedInAllAndPerAllowanceAndAChunkAlwaysFitsWhenEmpty) {
  ReadBudget<Call> budget(/*total=*/100, /*per_allowance=*/40);
  Call a1, a2, b1, big;
  EXPECT_TRUE(budget.Reserve(&a1, "alice", 30, kT0));
  EXPECT_FALSE(budget.Reserve(&a2, "alice", 20, kT0));  // 50 > alice's 40
  EXPECT_TRUE(budget.Reserve(&b1, "bob", 40, kT0));     // bob's own allowance
  EXPECT_EQ(budget.used(), 70u);
  EXPECT_EQ(budget.used_by("alice"), 30u);
  EXPECT_EQ(budget.waiting(), 1u);
  // alice gives back: her waiting call fits now, and takes its bytes.
  EXPECT_EQ(budget.Release("alice", 30), std::vector<Call*>{&a2});
  EXPECT_EQ(budget.used_by("alice"), 20u);
  EXPECT_EQ(budget.Release("alice", 20), std::vector<Call*>{});
  EXPECT_EQ(budget.Release("bob", 40), std::vector<Call*>{});
  EXPECT_EQ(budget.used(), 0u);
  // Larger than any limit, into an empty budget: it fits.
  EXPECT_TRUE(budget.Reserve(&big, "carol", 500, kT0));
}

TEST(ReadBudget, WaitersGoInOrderButOneOverItsAllowanceHoldsUpNobody) {
  ReadBudget<Call> budget(/*total=*/100, /*per_allowance=*/60);
  Call a1, a2, b1, c1, c2;
  ASSERT_TRUE(budget.Reserve(&a1, "alice", 60, kT0));
  ASSERT_TRUE(budget.Reserve(&b1, "bob", 40, kT0));
  EXPECT_FALSE(budget.Reserve(&a2, "alice", 30, kT0));  // over in all, and alice's
  EXPECT_FALSE(budget.Reserve(&c1, "carol", 30, kT0));  // over in all
  EXPECT_FALSE(budget.Reserve(&c2, "carol", 30, kT0));
  // bob frees 40: alice's waiter is over her allowance still; carol's two
  // come next, as far as the total allows.
  EXPECT_EQ(budget.Release("bob", 40), std::vector<Call*>{&c1});
  EXPECT_EQ(budget.waiting(), 2u);
  // alice frees hers: her waiter (first in the queue) goes first.
  EXPECT_EQ(budget.Release("alice", 60), (std::vector<Call*>{&a2, &c2}));
  EXPECT_EQ(budget.used(), 90u);
}

TEST(ReadBudget, WaitersThatWaitedTooLongOrWentAwayLeaveTheQueue) {
  ReadBudget<Call> budget(/*total=*/10, /*per_allowance=*/10);
  Call holder, old, gone, recent;
  ASSERT_TRUE(budget.Reserve(&holder, "alice", 10, kT0));
  budget.Reserve(&old, "bob", 5, kT0);
  budget.Reserve(&gone, "bob", 5, kT0 + absl::Seconds(20));
  budget.Reserve(&recent, "bob", 5, kT0 + absl::Seconds(20));
  gone.gone = true;
  auto out = budget.Expire(kT0 + absl::Seconds(10), [](Call* c) { return c->gone; });
  EXPECT_EQ(out, (std::vector<Call*>{&old, &gone}));
  EXPECT_EQ(budget.waiting(), 1u);
  EXPECT_EQ(budget.Release("alice", 10), std::vector<Call*>{&recent});
}

}  // namespace
}  // namespace groupshare::peer
