// The peer's upload cap alone, on a clock the test sets.
#include "services/peer/upload_shaper.h"

#include <gtest/gtest.h>

#include <vector>

namespace groupshare::peer {
namespace {

struct Call {
  bool cancelled = false;
};
bool Cancelled(Call* c) { return c->cancelled; }

const absl::Time kT0 = absl::FromUnixSeconds(1000);

TEST(UploadShaper, MessagesKeepToTheRate) {
  UploadShaper<Call> shaper;
  shaper.SetRate(1 << 20);  // 1 MiB a second
  Call a, b, c;
  shaper.Queue(&a, "p0", true, 1 << 20);
  shaper.Queue(&b, "p1", true, 1 << 20);
  shaper.Queue(&c, "p2", true, 512 << 10);
  auto now = shaper.Pump(kT0, Cancelled);
  EXPECT_EQ(now.ready, std::vector<Call*>{&a});
  ASSERT_TRUE(now.again.has_value());
  EXPECT_EQ(*now.again, kT0 + absl::Seconds(1));
  EXPECT_TRUE(shaper.Pump(kT0 + absl::Milliseconds(999), Cancelled).ready.empty());
  auto later = shaper.Pump(kT0 + absl::Seconds(1), Cancelled);
  EXPECT_EQ(later.ready, std::vector<Call*>{&b});
  EXPECT_EQ(*later.again, kT0 + absl::Seconds(2));
  auto last = shaper.Pump(kT0 + absl::Seconds(2), Cancelled);
  EXPECT_EQ(last.ready, std::vector<Call*>{&c});
  EXPECT_FALSE(last.again.has_value());
  // The half MiB took half a second: the next books from then.
  Call d;
  shaper.Queue(&d, "p3", true, 1);
  EXPECT_TRUE(shaper.Pump(kT0 + absl::Milliseconds(2400), Cancelled).ready.empty());
  EXPECT_EQ(shaper.Pump(kT0 + absl::Milliseconds(2500), Cancelled).ready,
            std::vector<Call*>{&d});
}

TEST(UploadShaper, EveryPieceLeavesOnceBeforeAnyLeavesTwice) {
  UploadShaper<Call> shaper;
  shaper.SetRate(1000);
  Call first0, again0, rest0, first1;
  shaper.Queue(&first0, "p0", true, 1000);
  ASSERT_EQ(shaper.Pump(kT0, Cancelled).ready, std::vector<Call*>{&first0});
  // p0 went once; a second downloader's p0 waits behind anybody's p1, but
  // the rest of a piece under way goes before either.
  shaper.Queue(&again0, "p0", true, 1000);
  shaper.Queue(&first1, "p1", true, 1000);
  shaper.Queue(&rest0, "p0", false, 1000);
  std::vector<Call*> order;
  for (int s = 1; s <= 3; ++s) {
    for (Call* c : shaper.Pump(kT0 + absl::Seconds(s), Cancelled).ready) order.push_back(c);
  }
  EXPECT_EQ(order, (std::vector<Call*>{&rest0, &first1, &again0}));
  // A new crowd starts counting afresh.
  shaper.ForgetCounts();
  Call x, y;
  shaper.Queue(&x, "p0", true, 1000);
  shaper.Queue(&y, "p9", true, 1000);
  EXPECT_EQ(shaper.Pump(kT0 + absl::Seconds(10), Cancelled).ready, std::vector<Call*>{&x});
}

TEST(UploadShaper, ACancelledCallsMessageGoesAtOnceAndCostsNothing) {
  UploadShaper<Call> shaper;
  shaper.SetRate(1000);
  Call a, gone, b;
  shaper.Queue(&a, "p0", true, 1000);
  shaper.Queue(&gone, "p1", true, 1000);
  shaper.Queue(&b, "p2", true, 1000);
  ASSERT_EQ(shaper.Pump(kT0, Cancelled).ready, std::vector<Call*>{&a});
  gone.cancelled = true;
  auto now = shaper.Pump(kT0 + absl::Milliseconds(10), Cancelled);
  EXPECT_EQ(now.ready, std::vector<Call*>{&gone});  // before its turn
  EXPECT_EQ(*now.again, kT0 + absl::Seconds(1));    // and b's turn unchanged
}

}  // namespace
}  // namespace groupshare::peer
