// The download's coordinator with no network and no wall clock: links the
// test drives and a clock it moves (a DownloadEnv of the test's own). What
// depends on time (stalled calls, the no-source deadline, rotation) is
// checked by moving the clock to just before and just after the moment.
#include <gtest/gtest.h>

#include <atomic>
#include <initializer_list>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "core/piece_store.h"
#include "services/peer/client_state.h"
#include "services/peer/download_env.h"
#include "services/peer/downloader.h"
#include "tests/testing/fake_download_tracker.h"
#include "tests/testing/file_description.h"
#include "tests/testing/temp_dir.h"

namespace groupshare::peer {
namespace {

namespace tv1 = ::groupshare::tracker::v1;

constexpr uint32_t kPiece = 16 << 10;

// How long a test waits, in real time, for what it is sure will happen.
constexpr absl::Duration kPatience = absl::Seconds(10);

// Polls `done` until it holds or kPatience passes.
template <class Done>
bool Eventually(Done done) {
  for (const absl::Time deadline = absl::Now() + kPatience; absl::Now() < deadline;) {
    if (done()) return true;
    absl::SleepFor(absl::Milliseconds(1));  // a poll with a deadline
  }
  return done();
}

class FakeEnv;

// A peer the test plays: it records what the download asks and answers when
// the test says so. The download holds a Handle to it; the fake outlives
// the handle, so the test can use it after the download freed the link.
class FakeLink {
 public:
  FakeLink(FakeEnv* env, PeerLink::Owner* owner, uint32_t id, std::string user,
           std::string address, const std::string* content, FileLayout layout)
      : env_(env),
        owner_(owner),
        id_(id),
        user_(std::move(user)),
        address_(std::move(address)),
        content_(content),
        layout_(layout) {}

  const std::string& user() const { return user_; }

  // The bitfield stream's first message: the pieces it holds.
  void SendBitfield(const Bitfield& pieces) ABSL_LOCKS_EXCLUDED(alive_mu_) {
    pv1::BitfieldUpdate update;
    update.set_bitfield(pieces.ToBytes());
    Send(std::move(update));
  }
  // A later message of the stream: a piece held (or offered), or an offer
  // withdrawn.
  void SendHave(uint32_t piece, bool withdrawn = false) ABSL_LOCKS_EXCLUDED(alive_mu_) {
    pv1::BitfieldUpdate update;
    if (withdrawn) {
      update.set_withdrawn(piece);
    } else {
      update.set_have(piece);
    }
    Send(std::move(update));
  }
  // Every piece the download asked this peer for.
  std::set<uint32_t> asked() ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    return asked_;
  }
  // Sends the next piece of every open call (its bytes flipped when
  // `corrupt`), and ends the calls that sent their last. Returns how many
  // pieces went.
  int DeliverNext(bool corrupt = false) ABSL_LOCKS_EXCLUDED(alive_mu_, mu_);
  // Delivers until no call is open.
  void DeliverAll() {
    while (DeliverNext() > 0) {
    }
  }
  int open_calls() ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    return static_cast<int>(calls_.size());
  }
  bool closed() ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    return closed_;
  }

  // What the download's handle forwards to, with itself.
  void Request(PeerLink* handle, std::vector<uint32_t> pieces) ABSL_LOCKS_EXCLUDED(mu_);
  // Ends the calls `which` picks (by their pieces still to send and their
  // last progress) as cancelled; returns how many.
  int Cancel(PeerLink* handle,
             const std::function<bool(const std::vector<uint32_t>&, absl::Time)>& which)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Whether an open call still to send `piece` sent nothing since `since`.
  bool Waits(uint32_t piece, absl::Time since) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    for (const Call& c : calls_) {
      if (std::find(c.pieces.begin(), c.pieces.end(), piece) != c.pieces.end()) {
        return c.progress < since;
      }
    }
    return false;
  }
  void Close(PeerLink* handle) ABSL_LOCKS_EXCLUDED(mu_) {
    {
      absl::MutexLock lock(&mu_);
      closed_ = true;
    }
    Cancel(handle, [](const auto&, absl::Time) { return true; });
  }
  // Before anyone else knows the fake (under the download's lock, which
  // the test's calls take after alive_mu_).
  void Attach(PeerLink* handle) ABSL_NO_THREAD_SAFETY_ANALYSIS { handle_ = handle; }

 private:
  // Hands a message of the bitfield stream to the download, unless it let
  // go of the link.
  void Send(pv1::BitfieldUpdate update) ABSL_LOCKS_EXCLUDED(alive_mu_) {
    update.set_piece_count(layout_.PieceCount());
    absl::ReaderMutexLock alive(&alive_mu_);
    if (handle_ == nullptr) return;
    owner_->OnBitfield(handle_, update);
  }

  struct Call {
    std::vector<uint32_t> pieces;  // those still to send
    absl::Time progress;           // on the fake clock
  };
  FakeEnv* const env_;
  PeerLink::Owner* const owner_;
  const uint32_t id_;
  const std::string user_;
  const std::string address_;
  const std::string* const content_;
  const FileLayout layout_;
  // Held (shared) while the test calls the download for this link, and by
  // the handle's destructor: the download never hears of a freed link.
  absl::Mutex alive_mu_;
  PeerLink* handle_ ABSL_GUARDED_BY(alive_mu_) = nullptr;
  absl::Mutex mu_;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<Call> calls_ ABSL_GUARDED_BY(mu_);
  std::set<uint32_t> asked_ ABSL_GUARDED_BY(mu_);

 public:
  // The link the download owns.
  class Handle final : public PeerLink {
   public:
    explicit Handle(FakeLink* fake)
        : PeerLink(fake->id_, fake->user_, fake->address_), fake_(fake) {
      fake_->Attach(this);
    }
    ~Handle() override {
      absl::MutexLock alive(&fake_->alive_mu_);
      fake_->handle_ = nullptr;
    }
    void OpenBitfield(const std::string&) override {}
    void Request(std::vector<uint32_t> pieces, const std::string&) override {
      fake_->Request(this, std::move(pieces));
    }
    void CancelPiece(uint32_t piece) override {
      fake_->Cancel(this, [piece](const std::vector<uint32_t>& pieces, absl::Time) {
        return std::find(pieces.begin(), pieces.end(), piece) != pieces.end();
      });
    }
    int CancelStalled(absl::Time before) override {
      return fake_->Cancel(
          this, [before](const auto&, absl::Time progress) { return progress < before; });
    }
    bool Waits(uint32_t piece, absl::Time since) override { return fake_->Waits(piece, since); }
    void Close() override { fake_->Close(this); }

   private:
    FakeLink* const fake_;
  };
};

// A clock that moves only when the test moves it, and fake links.
class FakeEnv final : public DownloadEnv {
 public:
  FakeEnv(SystemDownloadEnv* system, const std::string* content, FileLayout layout)
      : system_(system), content_(content), layout_(layout) {}

  absl::Time Now() override ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    return now_;
  }
  // The download's coordinator waits here between its passes.
  void WaitUntil(absl::CondVar* cv, absl::Mutex* mu, absl::Time deadline) override
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) ABSL_LOCKS_EXCLUDED(mu_) {
    {
      absl::MutexLock lock(&mu_);
      if (now_ >= deadline) return;
      waiter_ = {cv, mu};
      ++waits_;
    }
    cv->Wait(mu);
    absl::MutexLock lock(&mu_);
    waiter_ = {nullptr, nullptr};
  }
  absl::StatusOr<PartFileOpened> OpenPartFile(const std::string& path, uint64_t size,
                                              bool ours) override {
    return system_->OpenPartFile(path, size, ours);
  }
  std::unique_ptr<PeerLink> NewLink(PeerLink::Owner* owner, uint32_t id,
                                    const tv1::Peer& holder,
                                    const PeerLink::Target&) override ABSL_LOCKS_EXCLUDED(mu_) {
    auto fake = std::make_shared<FakeLink>(this, owner, id, holder.user_id(), holder.address(),
                                           content_, layout_);
    auto handle = std::make_unique<FakeLink::Handle>(fake.get());
    absl::MutexLock lock(&mu_);
    links_.push_back(std::move(fake));
    return handle;
  }

  // Moves the clock on by `by` while the coordinator waits, and returns
  // once it made a pass at the new time and waits again (false if it did
  // not within kPatience). With `settle` false it returns at once: for a
  // move after which the download ends.
  bool Advance(absl::Duration by, bool settle = true) ABSL_LOCKS_EXCLUDED(mu_) {
    std::pair<absl::CondVar*, absl::Mutex*> waiter;
    uint64_t waits;
    {
      absl::MutexLock lock(&mu_);
      auto waiting = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return waiter_.first != nullptr;
      };
      if (!mu_.AwaitWithTimeout(absl::Condition(&waiting), kPatience)) return false;
      now_ += by;
      waiter = waiter_;
      waits = waits_;
    }
    {
      absl::MutexLock lock(waiter.second);
      waiter.first->SignalAll();
    }
    if (!settle) return true;
    absl::MutexLock lock(&mu_);
    auto again = [this, waits]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return waits_ > waits && waiter_.first != nullptr;
    };
    return mu_.AwaitWithTimeout(absl::Condition(&again), kPatience);
  }

  // The link made for `user`, the last one if several (nullptr if none).
  std::shared_ptr<FakeLink> LinkOf(const std::string& user) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    for (auto it = links_.rbegin(); it != links_.rend(); ++it) {
      if ((*it)->user() == user) return *it;
    }
    return nullptr;
  }
  int links_made() ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    return static_cast<int>(links_.size());
  }

 private:
  SystemDownloadEnv* const system_;
  const std::string* const content_;
  const FileLayout layout_;
  absl::Mutex mu_;
  absl::Time now_ ABSL_GUARDED_BY(mu_) = absl::FromUnixSeconds(1800000000);
  std::pair<absl::CondVar*, absl::Mutex*> waiter_ ABSL_GUARDED_BY(mu_) = {nullptr, nullptr};
  uint64_t waits_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<std::shared_ptr<FakeLink>> links_ ABSL_GUARDED_BY(mu_);
};

void FakeLink::Request(PeerLink* handle, std::vector<uint32_t> pieces) {
  const absl::Time now = env_->Now();
  {
    absl::MutexLock lock(&mu_);
    if (!closed_) {
      asked_.insert(pieces.begin(), pieces.end());
      calls_.push_back({std::move(pieces), now});
      return;
    }
  }
  owner_->OnCallEnd(handle, std::move(pieces), absl::CancelledError("the link is closed"));
}

int FakeLink::Cancel(PeerLink* handle,
                     const std::function<bool(const std::vector<uint32_t>&, absl::Time)>& which) {
  std::vector<std::vector<uint32_t>> ended;
  {
    absl::MutexLock lock(&mu_);
    for (auto it = calls_.begin(); it != calls_.end();) {
      if (which(it->pieces, it->progress)) {
        ended.push_back(std::move(it->pieces));
        it = calls_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (auto& pieces : ended) {
    owner_->OnCallEnd(handle, std::move(pieces), absl::CancelledError("cancelled"));
  }
  return static_cast<int>(ended.size());
}

int FakeLink::DeliverNext(bool corrupt) {
  absl::ReaderMutexLock alive(&alive_mu_);
  if (handle_ == nullptr) return 0;
  std::vector<uint32_t> sent;
  std::vector<bool> last;
  const absl::Time now = env_->Now();
  {
    absl::MutexLock lock(&mu_);
    for (auto it = calls_.begin(); it != calls_.end();) {
      sent.push_back(it->pieces.front());
      it->pieces.erase(it->pieces.begin());
      it->progress = now;
      last.push_back(it->pieces.empty());
      it = it->pieces.empty() ? calls_.erase(it) : it + 1;
    }
  }
  for (size_t i = 0; i < sent.size(); ++i) {
    std::string bytes(content_->substr(layout_.PieceOffset(sent[i]), layout_.PieceLength(sent[i])));
    if (corrupt) bytes[0] = static_cast<char>(~bytes[0]);
    auto received = std::make_shared<PeerLink::Received>();
    received->slices.emplace_back(bytes);
    PeerLink::Piece piece;
    piece.index = sent[i];
    piece.data.emplace_back(reinterpret_cast<const char*>(received->slices.back().begin()),
                            received->slices.back().size());
    piece.holders.push_back(std::move(received));
    owner_->OnPiece(handle_, std::move(piece));
    if (last[i]) owner_->OnCallEnd(handle_, {}, absl::OkStatus());
  }
  return static_cast<int>(sent.size());
}

// `size` bytes that differ from piece to piece.
std::string Content(size_t size) {
  std::mt19937 rng(3);
  std::string s(size, '\0');
  for (char& c : s) c = static_cast<char>(rng());
  return s;
}

class CoordinatorTest : public ::testing::Test {
 protected:
  CoordinatorTest() {
    state_ = *ClientState::Open(dir_.File("state.db"));
    // Without a chain, as the coordinator's tests were written.
    *response_.mutable_file() =
        testing::DescribeFile("f.bin", content_, kPiece, /*unchained=*/true);
  }
  ~CoordinatorTest() override {
    if (download_ != nullptr) download_->Stop();
  }

  void AddHolder(const std::string& user) {
    tv1::Peer* p = response_.add_peers();
    p->set_user_id(user);
    p->set_address(absl::StrCat(user, ".example:7000"));
    p->set_ticket("ticket-for-" + user);
  }
  void Start() {
    tracker_ = std::make_unique<testing::FakeDownloadTracker>(response_);
    download_ = std::make_unique<Download>(
        Download::Context{tracker_.get(), &store_, state_.get(), "dave", &env_, cap_}, options_,
        "g", response_, dir_.File("out.bin"));
    download_->Start();
  }
  // The link to `user` once the download made it.
  std::shared_ptr<FakeLink> Link(const std::string& user) {
    std::shared_ptr<FakeLink> link;
    EXPECT_TRUE(Eventually([&] { return (link = env_.LinkOf(user)) != nullptr; })) << user;
    return link;
  }
  Bitfield Pieces(uint32_t from, uint32_t to) const {
    Bitfield b(layout_.PieceCount());
    for (uint32_t i = from; i < to; ++i) b.Set(i);
    return b;
  }
  DownloadProgress Progress() { return download_->Progress(); }
  // Has `links` send what they are asked for until the download completes;
  // the file is then the content, byte for byte.
  void ExpectCompletesFrom(std::initializer_list<FakeLink*> links) {
    EXPECT_TRUE(Eventually([&] {
      for (FakeLink* link : links) link->DeliverAll();
      return Progress().state == DownloadState::kComplete;
    })) << Progress().error;
    EXPECT_TRUE(testing::ReadFile(dir_.File("out.bin")) == content_);
  }

  testing::TempDir dir_;
  const std::string content_ = Content(8 * kPiece);
  const FileLayout layout_{content_.size(), kPiece};
  std::unique_ptr<ClientState> state_;
  PieceStore store_;
  tv1::GetFilePeersResponse response_;
  DownloadOptions options_;
  SystemDownloadEnv system_env_;
  FakeEnv env_{&system_env_, &content_, layout_};
  std::unique_ptr<testing::FakeDownloadTracker> tracker_;
  RateCap* cap_ = nullptr;
  std::unique_ptr<Download> download_;
};

TEST(RateCap, ARequestGoesWhileTheBucketHoldsAnyBytesAndTimePaysBackTheDebt) {
  RateCap cap;
  const absl::Time t0 = absl::FromUnixSeconds(1800000000);
  cap.Take(uint64_t{1} << 40, t0);
  EXPECT_TRUE(cap.Open(t0));  // no cap
  cap.SetRate(1000);
  EXPECT_TRUE(cap.Open(t0));  // starts full: a second's worth
  cap.Take(1500, t0);         // on credit
  EXPECT_FALSE(cap.Open(t0));
  EXPECT_FALSE(cap.Open(t0 + absl::Milliseconds(500)));  // debt paid, nothing more
  EXPECT_TRUE(cap.Open(t0 + absl::Milliseconds(600)));
  // Idle time fills the bucket to a second's worth, not more.
  const absl::Time later = t0 + absl::Hours(1);
  cap.Take(1000, later);
  EXPECT_FALSE(cap.Open(later));
  cap.SetRate(0);
  EXPECT_TRUE(cap.Open(later));
}

TEST(DownloadSlots, TurnsGoInTheOrderDownloadsCameAndOneThatLeftIsSkipped) {
  DownloadSlots slots(2);
  const uint64_t a = slots.Join(), b = slots.Join(), c = slots.Join(), d = slots.Join();
  EXPECT_FALSE(slots.TryTake(b));  // a came first
  EXPECT_TRUE(slots.TryTake(a));
  EXPECT_TRUE(slots.TryTake(b));
  EXPECT_FALSE(slots.TryTake(c));  // both slots taken
  EXPECT_EQ(slots.Ahead(d), 1u);
  slots.Leave(c);  // stopped while it waited
  EXPECT_EQ(slots.Ahead(d), 0u);
  EXPECT_FALSE(slots.TryTake(d));
  slots.Give();  // a ended
  EXPECT_TRUE(slots.TryTake(d));
}

// Under a download cap a piece is asked for only once the cap has room, so
// the pieces asked for keep to its rate while the peer could send faster;
// once the cap is lifted, the rest come at once.
TEST_F(CoordinatorTest, UnderADownloadCapPiecesAreAskedForNoFasterThanItAllows) {
  RateCap cap;
  cap.SetRate(kPiece / 2);  // a piece every two seconds
  cap_ = &cap;
  // With its SHA1 chain, so that each piece is checked as it comes.
  *response_.mutable_file() = testing::DescribeFile("f.bin", content_, kPiece);
  AddHolder("alice");
  Start();
  auto alice = Link("alice");
  alice->SendBitfield(Pieces(0, 8));
  ASSERT_TRUE(Eventually([&] { return alice->asked().size() == 1; }));
  for (int pass = 1; pass <= 32; ++pass) {  // 8 s on the fake clock
    // Each piece is in and checked (on the workers, in real time) before
    // the clock moves on, so that only the cap holds the next one back.
    alice->DeliverAll();
    ASSERT_TRUE(Eventually([&] { return Progress().pieces_done == alice->asked().size(); }));
    ASSERT_TRUE(env_.Advance(absl::Milliseconds(250)));
    const double seconds = pass * 0.25;
    const size_t asked = alice->asked().size();
    // The full bucket (half a piece), a piece on credit, and what the
    // rate paid for since: at t = 0, 1.25, 3.25, 5.25 and 7.25 s.
    EXPECT_LE(asked, static_cast<size_t>(1.5 + seconds / 2)) << seconds;
    EXPECT_GE(asked, static_cast<size_t>(seconds / 2)) << seconds;
  }
  EXPECT_EQ(alice->asked().size(), 5u);
  EXPECT_NE(Progress().state, DownloadState::kComplete);
  cap.SetRate(0);
  ASSERT_TRUE(env_.Advance(absl::Milliseconds(250)));
  ExpectCompletesFrom({alice.get()});
}

TEST_F(CoordinatorTest, CallsThatBringNothingAreCancelledOnceThePieceTimeoutPasses) {
  options_.piece_timeout = absl::Seconds(20);
  AddHolder("alice");
  Start();
  auto alice = Link("alice");
  alice->SendBitfield(Pieces(0, 8));
  ASSERT_TRUE(Eventually([&] { return alice->open_calls() > 0; }));
  ASSERT_TRUE(env_.Advance(absl::Seconds(19)));
  EXPECT_EQ(Progress().counters.stalled_calls, 0u);
  EXPECT_GT(alice->open_calls(), 0);
  ASSERT_TRUE(env_.Advance(absl::Seconds(2)));
  EXPECT_GE(Progress().counters.stalled_calls, 1u);
  // Asked again (one failure is not enough to drop it), and it delivers.
  ASSERT_TRUE(Eventually([&] { return alice->open_calls() > 0; }));
  ExpectCompletesFrom({alice.get()});
}

// A seeder that withdraws an offer (another downloader asked for the piece
// first) is not asked for it; the piece comes from elsewhere.
TEST_F(CoordinatorTest, APieceWithdrawnByAPeerIsNotAskedOfIt) {
  AddHolder("alice");
  AddHolder("bob");
  Start();
  auto alice = Link("alice");
  auto bob = Link("bob");
  alice->SendBitfield(Pieces(0, 4));  // all four asked at once: her window is full
  ASSERT_TRUE(Eventually([&] { return alice->asked().size() == 4; }));
  alice->SendHave(5);
  alice->SendHave(5, /*withdrawn=*/true);
  alice->DeliverAll();
  ASSERT_TRUE(Eventually([&] { return Progress().pieces_done == 4; }));
  // A pass with alice free: she holds piece 5 no longer, so nothing is
  // asked of her.
  ASSERT_TRUE(env_.Advance(absl::Milliseconds(300)));
  EXPECT_EQ(alice->asked(), (std::set<uint32_t>{0, 1, 2, 3}));
  bob->SendBitfield(Pieces(0, 8));
  ExpectCompletesFrom({bob.get()});
  EXPECT_FALSE(alice->asked().count(5));
  EXPECT_TRUE(bob->asked().count(5));
}

// A peer with nothing else to give fetches a copy of a piece that waits at
// a slower peer, but not of one that may be on its way: two copies would
// share the download's link.
TEST_F(CoordinatorTest, AnIdlePeerCopiesOnlyAPieceThatWaitsAtItsPeer) {
  AddHolder("alice");
  AddHolder("bob");
  Start();
  auto alice = Link("alice");
  auto bob = Link("bob");
  alice->SendBitfield(Pieces(0, 8));
  ASSERT_TRUE(Eventually([&] { return alice->asked().size() == 4; }));  // her first window
  const std::set<uint32_t> at_alice = alice->asked();
  Bitfield same(layout_.PieceCount());
  for (uint32_t p : at_alice) same.Set(p);
  bob->SendBitfield(same);  // nothing that is not asked of alice already
  // Alice's call is young (and her rate unknown): its pieces may be coming.
  ASSERT_TRUE(env_.Advance(absl::Seconds(1)));
  EXPECT_TRUE(bob->asked().empty());
  // Two seconds without a piece from her: they wait there.
  ASSERT_TRUE(env_.Advance(absl::Milliseconds(1500)));
  ASSERT_TRUE(Eventually([&] { return bob->asked().size() == 1; }));
  EXPECT_TRUE(at_alice.count(*bob->asked().begin()));
  bob->DeliverAll();
  ASSERT_TRUE(Eventually([&] { return Progress().counters.cancelled_copies == 1; }));
  ExpectCompletesFrom({alice.get(), bob.get()});
}

// Downloaders who start together are listed as each gets its first piece;
// they find each other at the first refreshes, which come soon after the
// start and then ever less often, up to the interval.
TEST_F(CoordinatorTest, TheTrackerIsAskedForSharersSoonAfterTheStartThenLessOften) {
  options_.first_refresh = absl::Milliseconds(100);
  options_.refresh_interval_with_room = absl::Milliseconds(500);
  AddHolder("alice");
  const absl::Time start = env_.Now();
  Start();
  tracker_->RecordCalls([this] { return env_.Now(); });
  const std::vector<int> due_ms = {100, 300, 700, 1200, 1700};
  for (int ms = 50; ms <= 1800; ms += 50) {
    ASSERT_TRUE(env_.Advance(absl::Milliseconds(50)));
    const size_t due = std::count_if(due_ms.begin(), due_ms.end(), [ms](int d) { return d <= ms; });
    ASSERT_TRUE(Eventually([&] { return tracker_->asked_at().size() >= due; })) << ms;
  }
  std::vector<int> asked_ms;
  for (absl::Time t : tracker_->asked_at()) {
    asked_ms.push_back(static_cast<int>(absl::ToInt64Milliseconds(t - start)));
  }
  EXPECT_EQ(asked_ms, due_ms);
}

TEST_F(CoordinatorTest, TheDownloadGivesUpWhenNoSourceHasAppearedByTheDeadline) {
  options_.no_source_timeout = absl::Seconds(30);
  AddHolder("alice");
  Start();
  auto alice = Link("alice");
  alice->SendBitfield(Pieces(0, 4));  // half the file
  ASSERT_TRUE(Eventually([&] {
    alice->DeliverAll();
    return Progress().pieces_done == 4;
  }));
  ASSERT_TRUE(env_.Advance(absl::Milliseconds(250)));  // a tick: nothing can come now
  EXPECT_TRUE(Progress().waiting_for_sharer);
  ASSERT_TRUE(env_.Advance(absl::Seconds(29)));
  DownloadProgress p = Progress();
  EXPECT_EQ(p.state, DownloadState::kRunning);
  EXPECT_LE(p.gives_up_in, absl::Seconds(1));
  EXPECT_GT(p.gives_up_in, absl::ZeroDuration());
  ASSERT_TRUE(env_.Advance(absl::Seconds(2), /*settle=*/false));  // it ends
  ASSERT_TRUE(download_->WaitUntilDone(kPatience));
  p = Progress();
  EXPECT_EQ(p.state, DownloadState::kFailed);
  EXPECT_TRUE(p.no_source);
  EXPECT_EQ(p.pieces_done, 4u);
}

// The tracker no longer lists the file (its last sharer stopped sharing
// it): with no source left, nobody is coming, and the download gives up at
// the next refresh rather than at the no-source deadline.
TEST_F(CoordinatorTest, TheDownloadGivesUpAtOnceWhenTheTrackerNoLongerListsTheFile) {
  options_.no_source_timeout = absl::Seconds(30);
  AddHolder("alice");
  Start();
  auto alice = Link("alice");
  alice->SendBitfield(Pieces(0, 4));
  ASSERT_TRUE(Eventually([&] {
    alice->DeliverAll();
    return Progress().pieces_done == 4;
  }));
  tracker_->SetAnswer(
      absl::NotFoundError("group 'g' has no file 'f.bin'; ListFiles lists its files"));
  ASSERT_TRUE(env_.Advance(absl::Seconds(1), /*settle=*/false));  // a refresh or two
  ASSERT_TRUE(download_->WaitUntilDone(kPatience));
  DownloadProgress p = Progress();
  EXPECT_EQ(p.state, DownloadState::kFailed);
  EXPECT_TRUE(p.no_source);  // the client takes it up again if the file comes back
  EXPECT_EQ(p.error,
            "the tracker lists no sharer of it now (group 'g' has no file 'f.bin'); it goes on "
            "when a member shares it again");
  EXPECT_EQ(p.pieces_done, 4u);
}

// While a peer still serves it, the download goes on whatever the tracker
// says; a tracker out of reach is no reason to give up either.
TEST_F(CoordinatorTest, AFileTheTrackerNoLongerListsIsStillTakenFromThePeersThatServeIt) {
  AddHolder("alice");
  Start();
  auto alice = Link("alice");
  tracker_->SetAnswer(absl::NotFoundError("group 'g' has no file 'f.bin'"));
  alice->SendBitfield(Pieces(0, 8));
  ASSERT_TRUE(Eventually([&] { return alice->open_calls() > 0; }));
  ASSERT_TRUE(env_.Advance(absl::Seconds(1)));
  EXPECT_EQ(Progress().state, DownloadState::kRunning);
  tracker_->SetAnswer(absl::UnavailableError("the tracker is out of reach"));
  ASSERT_TRUE(env_.Advance(absl::Seconds(1)));
  ExpectCompletesFrom({alice.get()});
}

TEST_F(CoordinatorTest, APeerSendingCorruptPiecesIsStruckOutAndTheOthersFinish) {
  options_.max_strikes = 3;
  AddHolder("mallory");
  AddHolder("alice");
  Start();
  auto mallory = Link("mallory");
  auto alice = Link("alice");
  mallory->SendBitfield(Pieces(0, 8));
  ASSERT_TRUE(Eventually([&] {
    mallory->DeliverNext(/*corrupt=*/true);
    return mallory->closed();
  }));
  // Progress is published at the end of the coordinator's pass.
  EXPECT_TRUE(Eventually([&] { return Progress().counters.peers_dropped == 1; }));
  DownloadProgress p = Progress();
  EXPECT_GE(p.counters.corrupt_pieces, 3u);
  alice->SendBitfield(Pieces(0, 8));
  ExpectCompletesFrom({alice.get()});
  p = Progress();
  EXPECT_EQ(p.bytes_by_peer.count("mallory"), 0u);
  EXPECT_EQ(p.bytes_by_peer["alice"], content_.size());
}

// With a holder in reserve, a peer that brings nothing is swapped for it
// once it has had rotate_interval, not before.
TEST_F(CoordinatorTest, TheSlowestPeerMakesRoomForOneInReserveAfterTheRotateInterval) {
  options_.max_peers = 2;
  options_.rotate_interval = absl::Seconds(10);
  options_.piece_timeout = absl::Seconds(60);  // slow, not stalled
  options_.max_window = 2;
  options_.max_pieces_per_call = 1;
  options_.max_calls_per_peer = 1;
  AddHolder("alice");
  AddHolder("slow");
  AddHolder("carol");  // in reserve
  Start();
  auto alice = Link("alice");
  auto slow = Link("slow");
  alice->SendBitfield(Pieces(0, 8));
  slow->SendBitfield(Pieces(0, 8));
  EXPECT_EQ(env_.links_made(), 2);
  // alice sends a piece every 2 s; slow sends nothing.
  for (int second = 0; second < 8; second += 2) {
    ASSERT_TRUE(Eventually([&] { return alice->DeliverNext() > 0; }));
    ASSERT_TRUE(env_.Advance(absl::Seconds(2)));
  }
  EXPECT_FALSE(slow->closed());
  EXPECT_EQ(env_.links_made(), 2);
  for (int second = 8; second < 12; second += 2) {
    ASSERT_TRUE(Eventually([&] { return alice->DeliverNext() > 0; }));
    ASSERT_TRUE(env_.Advance(absl::Seconds(2)));
  }
  EXPECT_TRUE(slow->closed());
  EXPECT_NE(env_.LinkOf("carol"), nullptr);
  EXPECT_EQ(Progress().counters.peers_dropped, 1u);
}

}  // namespace
}  // namespace groupshare::peer
