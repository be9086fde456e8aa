// The gRPC-free pieces that several threads share, driven from several
// threads at once: the work queue, the whole-file hasher over a real part
// file, and the piece store's subscriptions. Run under ThreadSanitizer by
// scripts/test.sh, as well as in the ordinary build.

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <random>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "core/crypto.h"
#include "core/part_file.h"
#include "core/piece_store.h"
#include "core/whole_file_hasher.h"
#include "core/work_queue.h"
#include "tests/testing/temp_dir.h"

namespace groupshare {
namespace {

TEST(WorkQueue, TasksFromManyThreadsAllRunOnce) {
  std::atomic<int> ran{0};
  absl::Mutex mu;
  std::vector<int> seen;
  absl::Notification all_done;
  constexpr int kThreads = 4, kTasks = 500;
  {
    WorkQueue queue(3);
    std::vector<std::thread> producers;
    for (int t = 0; t < kThreads; ++t) {
      producers.emplace_back([&, t] {
        for (int i = 0; i < kTasks; ++i) {
          auto task = [&, id = t * kTasks + i] {
            {
              absl::MutexLock lock(&mu);
              seen.push_back(id);
            }
            if (ran.fetch_add(1) + 1 == kThreads * kTasks) all_done.Notify();
          };
          if (i % 5 == 0) {
            queue.RunAt(absl::Now() + absl::Milliseconds(i % 7), task);
          } else {
            queue.Run(task);
          }
        }
      });
    }
    for (auto& p : producers) p.join();
    ASSERT_TRUE(all_done.WaitForNotificationWithTimeout(absl::Seconds(30)));
  }
  std::sort(seen.begin(), seen.end());
  ASSERT_EQ(seen.size(), static_cast<size_t>(kThreads * kTasks));
  for (int i = 0; i < kThreads * kTasks; ++i) EXPECT_EQ(seen[i], i);
}

TEST(WholeFileHasher, PiecesAddedFromManyThreadsInAnyOrder) {
  testing::TempDir dir;
  const uint32_t piece = 64 << 10;
  const uint64_t size = 40 * piece + 123;
  FileLayout layout{size, piece};
  std::string content(size, '\0');
  std::mt19937 rng(3);
  for (char& c : content) c = static_cast<char>(rng());
  auto opened = OpenPartFile(dir.File("f.part"), size, false);
  ASSERT_TRUE(opened.ok()) << opened.status();
  PartFile* file = opened->file.get();
  WholeFileHasher hasher(layout, file);
  std::vector<uint32_t> order(layout.PieceCount());
  for (uint32_t i = 0; i < order.size(); ++i) order[i] = i;
  std::shuffle(order.begin(), order.end(), rng);
  std::atomic<size_t> next{0};
  std::vector<std::thread> workers;
  for (int t = 0; t < 4; ++t) {
    workers.emplace_back([&, t] {
      for (size_t k; (k = next.fetch_add(1)) < order.size();) {
        const uint32_t p = order[k];
        absl::string_view bytes(content.data() + layout.PieceOffset(p), layout.PieceLength(p));
        std::vector<absl::string_view> parts = {bytes};
        ASSERT_TRUE(file->Write(layout.PieceOffset(p), parts).ok());
        // Half the callers hand over the bytes, half leave them on disk.
        if ((p + t) % 2 == 0) {
          hasher.Add(p, parts);
        } else {
          hasher.Add(p, {});
        }
      }
    });
  }
  for (auto& w : workers) w.join();
  auto sha1 = hasher.Finish();
  ASSERT_TRUE(sha1.ok()) << sha1.status();
  EXPECT_EQ(*sha1, HexEncode(Sha1Of(content)));
}

// Counts what it hears; `gone` once the share ends.
class CountingListener final : public PieceStore::Listener {
 public:
  void OnHave(uint32_t) override { haves.fetch_add(1); }
  void OnGone() override { gone.Notify(); }
  std::atomic<int> haves{0};
  absl::Notification gone;
};

TEST(PieceStore, SubscribersHearEveryPieceMarkedFromManyThreads) {
  testing::TempDir dir;
  const uint32_t piece = 16 << 10;
  const uint32_t pieces = 256;
  const std::string path = dir.File("f");
  testing::WriteFile(path, std::string(static_cast<size_t>(piece) * pieces, 'x'));
  PieceStore store;
  const ShareKey key{"g", std::string(40, 'a')};
  ASSERT_TRUE(store.Add(key, "f", path, FileLayout{uint64_t{piece} * pieces, piece},
                        Bitfield(pieces)).ok());
  std::vector<std::shared_ptr<CountingListener>> listeners;
  for (int i = 0; i < 4; ++i) {
    listeners.push_back(std::make_shared<CountingListener>());
    ASSERT_TRUE(store.Subscribe(key, listeners.back()).ok());
  }
  std::vector<std::thread> markers;
  for (int t = 0; t < 4; ++t) {
    markers.emplace_back([&, t] {
      for (uint32_t p = t; p < pieces; p += 4) {
        store.MarkHave(key, p);
        std::string out;
        EXPECT_TRUE(store.Read(key, p, 0, 100, &out).ok());
      }
    });
  }
  // One subscriber leaves while pieces arrive.
  store.Unsubscribe(key, listeners[3].get());
  for (auto& m : markers) m.join();
  for (int i = 0; i < 3; ++i) EXPECT_EQ(listeners[i]->haves.load(), static_cast<int>(pieces));
  EXPECT_LE(listeners[3]->haves.load(), static_cast<int>(pieces));
  store.Remove(key);
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(listeners[i]->gone.WaitForNotificationWithTimeout(absl::Seconds(10)));
  }
}

// A listener whose OnHave blocks until released, and which records whether
// a call ever ran after its owner said it unsubscribed.
class GatedListener final : public PieceStore::Listener {
 public:
  void OnHave(uint32_t) override {
    entered.Notify();
    release.WaitForNotification();
    if (unsubscribed.load()) late_call = true;
    calls.fetch_add(1);
  }
  void OnGone() override {
    if (unsubscribed.load()) late_call = true;
  }
  absl::Notification entered, release;
  std::atomic<bool> unsubscribed{false}, late_call{false};
  std::atomic<int> calls{0};
};

// Unsubscribe keeps its promise by itself: it returns only once a call
// under way on another thread is over, and no call starts after it.
TEST(PieceStore, UnsubscribeWaitsForACallUnderWayAndBarsTheNext) {
  testing::TempDir dir;
  const std::string path = dir.File("f");
  testing::WriteFile(path, std::string(4 << 10, 'x'));
  PieceStore store;
  const ShareKey key{"g", std::string(40, 'a')};
  ASSERT_TRUE(store.Add(key, "f", path, FileLayout{4 << 10, 1 << 10}, Bitfield(4)).ok());
  auto listener = std::make_shared<GatedListener>();
  ASSERT_TRUE(store.Subscribe(key, listener).ok());
  std::thread marker([&] { store.MarkHave(key, 0); });
  ASSERT_TRUE(listener->entered.WaitForNotificationWithTimeout(absl::Seconds(10)));
  absl::Notification unsubscribed;
  std::thread leaver([&] {
    store.Unsubscribe(key, listener.get());
    listener->unsubscribed = true;
    unsubscribed.Notify();
  });
  // Unsubscribe is held while the call is under way...
  EXPECT_FALSE(unsubscribed.WaitForNotificationWithTimeout(absl::Milliseconds(200)));
  listener->release.Notify();
  // ...and returns once it is over.
  EXPECT_TRUE(unsubscribed.WaitForNotificationWithTimeout(absl::Seconds(10)));
  marker.join();
  leaver.join();
  store.MarkHave(key, 1);
  store.Remove(key);
  EXPECT_EQ(listener->calls.load(), 1);
  EXPECT_FALSE(listener->late_call.load());
}

}  // namespace
}  // namespace groupshare
