// The download coordinator in-process, against fake peers (gRPC servers in
// this process, each with its own behaviour) and a fake tracker: a corrupt
// peer, endgame, a full disk, a stalled link, and more holders than the
// connection limit. Assertions read DownloadProgress and the fakes'
// counters, never the log.

#include <sys/stat.h>

#include <gtest/gtest.h>
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "core/crypto.h"
#include "core/part_file.h"
#include "core/piece_chunk.h"
#include "core/piece_store.h"
#include "services/peer/client_state.h"
#include "services/peer/downloader.h"
#include "tests/testing/cluster.h"
#include "tests/testing/fake_download_tracker.h"
#include "tests/testing/file_description.h"
#include "tests/testing/temp_dir.h"

namespace groupshare::peer {
namespace {

namespace tv1 = ::groupshare::tracker::v1;
constexpr uint32_t kPiece = 64 << 10;

// A peer that serves `content` whole, with a behaviour.
class FakePeer final : public pv1::PeerService::Service {
 public:
  enum class Mode { kGood, kCorrupt, kStall, kGone };
  FakePeer(const std::string* content, const uint32_t* piece_size, Mode mode,
           absl::Duration per_piece = absl::ZeroDuration())
      : content_(content), piece_size_(piece_size), mode_(mode), per_piece_(per_piece) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(this);
    server_ = builder.BuildAndStart();
  }
  ~FakePeer() override { server_->Shutdown(std::chrono::system_clock::now()); }

  std::string address() const { return absl::StrCat("127.0.0.1:", port_); }
  int served() const { return served_.load(); }
  int cancelled() const { return cancelled_.load(); }

  grpc::Status GetBitfield(grpc::ServerContext* ctx, const pv1::GetBitfieldRequest*,
                           grpc::ServerWriter<pv1::BitfieldUpdate>* writer) override {
    if (mode_ == Mode::kGone) return grpc::Status(grpc::StatusCode::NOT_FOUND, "not shared");
    FileLayout layout{content_->size(), *piece_size_};
    pv1::BitfieldUpdate full;
    full.set_bitfield(Bitfield(layout.PieceCount(), true).ToBytes());
    full.set_piece_count(layout.PieceCount());
    writer->Write(full);
    while (!ctx->IsCancelled()) absl::SleepFor(absl::Milliseconds(20));
    return grpc::Status::OK;
  }

  grpc::Status GetPiece(grpc::ServerContext* ctx, const pv1::GetPieceRequest* req,
                        grpc::ServerWriter<pv1::PieceChunk>* writer) override {
    FileLayout layout{content_->size(), *piece_size_};
    for (uint32_t piece : req->pieces()) {
      if (mode_ == Mode::kStall) {
        while (!ctx->IsCancelled()) absl::SleepFor(absl::Milliseconds(20));
      }
      // Waits in small steps, so that a cancelled call is seen.
      for (absl::Time until = absl::Now() + per_piece_; absl::Now() < until;) {
        if (ctx->IsCancelled()) break;
        absl::SleepFor(absl::Milliseconds(5));
      }
      if (ctx->IsCancelled()) {
        ++cancelled_;
        return grpc::Status::CANCELLED;
      }
      for (uint32_t offset = 0; offset < layout.PieceLength(piece); offset += kMaxChunkBytes) {
        pv1::PieceChunk chunk;
        chunk.set_piece(piece);
        chunk.set_offset(offset);
        chunk.set_data(content_->substr(layout.PieceOffset(piece) + offset,
                                        std::min(kMaxChunkBytes, layout.PieceLength(piece) - offset)));
        if (mode_ == Mode::kCorrupt && offset == 0) (*chunk.mutable_data())[0] ^= 1;
        if (!writer->Write(chunk)) return grpc::Status::CANCELLED;
      }
      ++served_;
    }
    return grpc::Status::OK;
  }

 private:
  const std::string* const content_;
  const uint32_t* const piece_size_;
  const Mode mode_;
  const absl::Duration per_piece_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
  std::atomic<int> served_{0};
  std::atomic<int> cancelled_{0};
};

// Forwards everything to the real part file; the fakes below override only
// what they change, as leveldb's EnvWrapper lets a test do.
class PartFileWrapper : public PartFile {
 public:
  explicit PartFileWrapper(std::unique_ptr<PartFile> real) : real_(std::move(real)) {}
  absl::Status Write(uint64_t offset, absl::Span<const absl::string_view> parts) override {
    return real_->Write(offset, parts);
  }
  absl::Status Read(uint64_t offset, char* buf, size_t size) override {
    return real_->Read(offset, buf, size);
  }
  absl::Status Sync() override { return real_->Sync(); }
  absl::Status RenameTo(const std::string& dest) override { return real_->RenameTo(dest); }
  absl::Status CheckStillAtPath() override { return real_->CheckStillAtPath(); }

 private:
  std::unique_ptr<PartFile> real_;
};

// Writes normally until `budget` bytes were written, then reports a full
// disk.
class FullDisk final : public PartFileWrapper {
 public:
  FullDisk(std::unique_ptr<PartFile> real, uint64_t budget)
      : PartFileWrapper(std::move(real)), budget_(budget) {}
  absl::Status Write(uint64_t offset, absl::Span<const absl::string_view> parts) override {
    uint64_t size = 0;
    for (auto p : parts) size += p.size();
    if (written_.fetch_add(size) + size > budget_) {
      return absl::ResourceExhaustedError("cannot write: No space left on device");
    }
    return PartFileWrapper::Write(offset, parts);
  }

 private:
  const uint64_t budget_;
  std::atomic<uint64_t> written_{0};
};

// Writes wait until the test opens the gate: the workers then hold every
// piece that arrives.
class GatedDisk final : public PartFileWrapper {
 public:
  GatedDisk(std::unique_ptr<PartFile> real, absl::Notification* gate)
      : PartFileWrapper(std::move(real)), gate_(gate) {}
  absl::Status Write(uint64_t offset, absl::Span<const absl::string_view> parts) override {
    gate_->WaitForNotification();
    return PartFileWrapper::Write(offset, parts);
  }

 private:
  absl::Notification* const gate_;
};

// Records the order of Sync and RenameTo, and whether the download was
// already recorded complete when the file was renamed.
class RecordingDisk final : public PartFileWrapper {
 public:
  RecordingDisk(std::unique_ptr<PartFile> real, std::vector<std::string>* events,
                std::function<bool()> recorded_complete)
      : PartFileWrapper(std::move(real)),
        events_(events),
        recorded_complete_(std::move(recorded_complete)) {}
  absl::Status Sync() override {
    events_->push_back("sync");
    return PartFileWrapper::Sync();
  }
  absl::Status RenameTo(const std::string& dest) override {
    events_->push_back(recorded_complete_() ? "rename after complete" : "rename");
    return PartFileWrapper::RenameTo(dest);
  }

 private:
  std::vector<std::string>* const events_;
  const std::function<bool()> recorded_complete_;
};

class DownloadTest : public ::testing::Test {
 protected:
  DownloadTest() {
    state_ = *ClientState::Open(dir_.File("state.db"));
    SetContent(testing::RandomBytes(size_, 7), kPiece);
    options_.piece_timeout = absl::Seconds(20);
  }

  // The file the peers share, in pieces of `piece_size`, with its SHA1
  // chain as clients share it, or `unchained`, as older clients did.
  void SetContent(std::string content, uint32_t piece_size, bool unchained = false) {
    content_ = std::move(content);
    piece_size_ = piece_size;
    *response_.mutable_file() = testing::DescribeFile("f.bin", content_, piece_size_, unchained);
  }

  FakePeer* AddPeer(const std::string& user, FakePeer::Mode mode,
                    absl::Duration per_piece = absl::ZeroDuration()) {
    peers_.push_back(std::make_unique<FakePeer>(&content_, &piece_size_, mode, per_piece));
    tv1::Peer* p = response_.add_peers();
    p->set_user_id(user);
    p->set_address(peers_.back()->address());
    p->set_ticket("ticket-for-" + user);
    return peers_.back().get();
  }

  // Runs the download to its end and returns its last progress.
  DownloadProgress Run() {
    tracker_ = std::make_unique<testing::FakeDownloadTracker>(response_);
    Download download({tracker_.get(), &store_, state_.get(), "dave", &env_}, options_, "g",
                      response_, dir_.File("out.bin"));
    download.Start();
    EXPECT_TRUE(download.WaitUntilDone(absl::Seconds(60)));
    return download.Progress();
  }
  bool Served() { return store_.Get({"g", response_.file().sha1()}).ok(); }

  // Part files whose writes wait for `gate`.
  void GateWrites(absl::Notification* gate) {
    env_.open_part_file = [gate](const std::string& path, uint64_t size, bool ours)
        -> absl::StatusOr<PartFileOpened> {
      auto opened = OpenPartFile(path, size, ours);
      if (!opened.ok()) return opened;
      opened->file = std::make_unique<GatedDisk>(std::move(opened->file), gate);
      return opened;
    };
  }

  // Runs a download whose writes wait until `ready` says so of its
  // progress (or 30 s pass), then lets them go; returns its last progress.
  DownloadProgress RunGated(const std::function<bool(const DownloadProgress&)>& ready) {
    absl::Notification gate;
    GateWrites(&gate);
    tracker_ = std::make_unique<testing::FakeDownloadTracker>(response_);
    Download download({tracker_.get(), &store_, state_.get(), "dave", &env_}, options_, "g",
                      response_, dir_.File("out.bin"));
    download.Start();
    for (absl::Time deadline = absl::Now() + absl::Seconds(30);
         !ready(download.Progress()) && absl::Now() < deadline;) {
      absl::SleepFor(absl::Milliseconds(10));
    }
    EXPECT_TRUE(ready(download.Progress()));
    gate.Notify();
    EXPECT_TRUE(download.WaitUntilDone(absl::Seconds(60)));
    return download.Progress();
  }

  const uint64_t size_ = (4 << 20) + 1234;  // 65 pieces, the last one short
  testing::TempDir dir_;
  std::string content_;
  uint32_t piece_size_ = kPiece;
  std::unique_ptr<ClientState> state_;
  PieceStore store_;
  tv1::GetFilePeersResponse response_;
  DownloadOptions options_;
  // The system's, with part files opened as open_part_file says.
  struct PartFileEnv : DownloadEnvWrapper {
    using DownloadEnvWrapper::DownloadEnvWrapper;
    absl::StatusOr<PartFileOpened> OpenPartFile(const std::string& path, uint64_t size,
                                                bool ours) override {
      return open_part_file(path, size, ours);
    }
    PartFileOpener open_part_file = groupshare::OpenPartFile;
  };
  SystemDownloadEnv system_env_;
  PartFileEnv env_{&system_env_};
  std::vector<std::unique_ptr<FakePeer>> peers_;
  std::unique_ptr<testing::FakeDownloadTracker> tracker_;
};

TEST_F(DownloadTest, ManyPeersByteExact) {
  for (int i = 0; i < 4; ++i) AddPeer(absl::StrCat("p", i), FakePeer::Mode::kGood);
  DownloadProgress p = Run();
  EXPECT_EQ(p.state, DownloadState::kComplete) << p.error;
  EXPECT_TRUE(testing::ReadFile(dir_.File("out.bin")) == content_);
  EXPECT_EQ(p.pieces_done, p.piece_count);
  // Listed at its start (no piece yet), at its first piece, and complete.
  EXPECT_EQ(tracker_->starts.load(), 1);
  EXPECT_EQ(tracker_->announces.load(), 1);
  EXPECT_EQ(tracker_->completes.load(), 1);
  EXPECT_TRUE(Served());
  // Several pieces travel in one call.
  EXPECT_LT(p.counters.calls, p.piece_count);
}

// A file shared without its SHA1 chain: each piece is checked against its
// SHA1, and the whole file hashed as they come.
TEST_F(DownloadTest, FromSeedersAloneTheWholeFileIsHashedWithoutReadingItBack) {
  SetContent(testing::RandomBytes(size_, 7), kPiece, /*unchained=*/true);
  // Every holder has the whole file: pieces are asked for in file order
  // (the first few at random), so they come near their turn.
  for (int i = 0; i < 2; ++i) AddPeer(absl::StrCat("p", i), FakePeer::Mode::kGood);
  DownloadProgress p = Run();
  EXPECT_EQ(p.state, DownloadState::kComplete) << p.error;
  EXPECT_TRUE(testing::ReadFile(dir_.File("out.bin")) == content_);
  EXPECT_LE(p.counters.pieces_read_back, options_.random_first + 4) << p.piece_count;
}

// With the chain, pieces in any order are each checked in one pass, and
// none is read back for the whole file's SHA1.
TEST_F(DownloadTest, WithTheChainPiecesInAnyOrderAreNeverReadBack) {
  options_.random_first = 1 << 20;  // every piece at random
  for (int i = 0; i < 3; ++i) AddPeer(absl::StrCat("p", i), FakePeer::Mode::kGood);
  DownloadProgress p = Run();
  EXPECT_EQ(p.state, DownloadState::kComplete) << p.error;
  EXPECT_TRUE(testing::ReadFile(dir_.File("out.bin")) == content_);
  EXPECT_EQ(p.counters.pieces_read_back, 0u);
}

// Unchained or not, a peer that sends corrupt pieces is struck.
class CorruptPeerTest : public DownloadTest, public ::testing::WithParamInterface<bool> {};

TEST_P(CorruptPeerTest, IsStruckAndDropped) {
  if (GetParam()) SetContent(testing::RandomBytes(size_, 7), kPiece, /*unchained=*/true);
  AddPeer("alice", FakePeer::Mode::kGood, absl::Milliseconds(5));
  FakePeer* mallory = AddPeer("mallory", FakePeer::Mode::kCorrupt);
  DownloadProgress p = Run();
  EXPECT_EQ(p.state, DownloadState::kComplete) << p.error;
  EXPECT_TRUE(testing::ReadFile(dir_.File("out.bin")) == content_);
  EXPECT_GE(mallory->served(), options_.max_strikes);
  EXPECT_GE(p.counters.corrupt_pieces, static_cast<uint32_t>(options_.max_strikes));
  EXPECT_EQ(p.counters.peers_dropped, 1u);
  EXPECT_EQ(p.bytes_by_peer.count("mallory"), 0u);
  EXPECT_EQ(p.bytes_by_peer["alice"], size_);
}
INSTANTIATE_TEST_SUITE_P(ChainedOrNot, CorruptPeerTest, ::testing::Bool());

TEST_F(DownloadTest, EndgameCancelsTheSlowerCopy) {
  AddPeer("fast", FakePeer::Mode::kGood);
  FakePeer* slow = AddPeer("slow", FakePeer::Mode::kGood, absl::Seconds(3));
  DownloadProgress p = Run();
  EXPECT_EQ(p.state, DownloadState::kComplete) << p.error;
  EXPECT_TRUE(testing::ReadFile(dir_.File("out.bin")) == content_);
  // The slow peer's pieces were fetched again from the fast one, and its
  // copies cancelled.
  EXPECT_GE(p.counters.cancelled_copies, 1u);
  EXPECT_EQ(slow->served(), 0);
  EXPECT_EQ(p.bytes_by_peer["fast"], size_);
}

TEST_F(DownloadTest, DiskFullHalfWayFailsWithThatReasonAndWithdraws) {
  AddPeer("alice", FakePeer::Mode::kGood, absl::Milliseconds(20));
  env_.open_part_file = [this](const std::string& path, uint64_t size, bool ours)
      -> absl::StatusOr<PartFileOpened> {
    auto opened = OpenPartFile(path, size, ours);
    if (!opened.ok()) return opened;
    opened->file = std::make_unique<FullDisk>(std::move(opened->file), size_ / 2);
    return opened;
  };
  DownloadProgress p = Run();
  EXPECT_EQ(p.state, DownloadState::kFailed);
  EXPECT_NE(p.error.find("No space left on device"), std::string::npos) << p.error;
  EXPECT_GT(p.pieces_done, 0u);
  EXPECT_LT(p.pieces_done, p.piece_count);
  // No longer offered, here or at the tracker.
  EXPECT_FALSE(Served());
  EXPECT_EQ(tracker_->announces.load(), 1);
  EXPECT_EQ(tracker_->stop_shares.load(), 1);
  EXPECT_EQ(tracker_->completes.load(), 0);

  // With room again, the same download goes on from the pieces it holds:
  // it is listed as holding some at once, not as a download with none.
  env_.open_part_file = OpenPartFile;
  p = Run();
  EXPECT_EQ(p.state, DownloadState::kComplete) << p.error;
  EXPECT_TRUE(testing::ReadFile(dir_.File("out.bin")) == content_);
  EXPECT_EQ(tracker_->starts.load(), 0);
  EXPECT_EQ(tracker_->announces.load(), 1);
  EXPECT_EQ(tracker_->completes.load(), 1);
}

TEST_F(DownloadTest, APartFileRemovedHalfWayFailsTheDownloadThenAndThere) {
  AddPeer("alice", FakePeer::Mode::kGood, absl::Milliseconds(100));  // 6.5 s in all
  tracker_ = std::make_unique<testing::FakeDownloadTracker>(response_);
  Download download({tracker_.get(), &store_, state_.get(), "dave", &env_}, options_, "g",
                    response_, dir_.File("out.bin"));
  download.Start();
  for (absl::Time deadline = absl::Now() + absl::Seconds(30);
       download.Progress().pieces_done == 0 && absl::Now() < deadline;) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  ASSERT_EQ(unlink(dir_.File("out.bin.part").c_str()), 0);
  ASSERT_TRUE(download.WaitUntilDone(absl::Seconds(60)));
  DownloadProgress p = download.Progress();
  EXPECT_EQ(p.state, DownloadState::kFailed);
  EXPECT_EQ(p.error, "'" + dir_.File("out.bin.part") +
                         "' was removed or replaced while downloading; download_file again to "
                         "start over");
  EXPECT_LT(p.pieces_done, p.piece_count / 2);
  EXPECT_FALSE(Served());

  // Again, it starts over and completes.
  p = Run();
  EXPECT_EQ(p.state, DownloadState::kComplete) << p.error;
  EXPECT_TRUE(testing::ReadFile(dir_.File("out.bin")) == content_);
}

TEST_F(DownloadTest, StalledLinksPiecesGoElsewhere) {
  // Slow enough that the stall is noticed before the endgame would fetch
  // the stalled pieces anyway.
  options_.piece_timeout = absl::Milliseconds(300);
  AddPeer("alice", FakePeer::Mode::kGood, absl::Milliseconds(40));
  FakePeer* stuck = AddPeer("stuck", FakePeer::Mode::kStall);
  DownloadProgress p = Run();
  EXPECT_EQ(p.state, DownloadState::kComplete) << p.error;
  EXPECT_TRUE(testing::ReadFile(dir_.File("out.bin")) == content_);
  EXPECT_GE(p.counters.stalled_calls, 1u);
  EXPECT_EQ(stuck->served(), 0);
  EXPECT_EQ(p.bytes_by_peer["alice"], size_);
}

TEST_F(DownloadTest, MoreHoldersThanTheLimitAreRotatedIn) {
  options_.max_peers = 2;
  AddPeer("gone1", FakePeer::Mode::kGone);
  AddPeer("gone2", FakePeer::Mode::kGone);
  FakePeer* third = AddPeer("third", FakePeer::Mode::kGood, absl::Milliseconds(5));
  FakePeer* fourth = AddPeer("fourth", FakePeer::Mode::kGood, absl::Milliseconds(5));
  DownloadProgress p = Run();
  EXPECT_EQ(p.state, DownloadState::kComplete) << p.error;
  EXPECT_TRUE(testing::ReadFile(dir_.File("out.bin")) == content_);
  EXPECT_EQ(p.counters.peers_connected, 4u);
  EXPECT_EQ(p.counters.peers_dropped, 2u);
  EXPECT_GT(third->served() + fourth->served(), 0);
  EXPECT_EQ(p.bytes_by_peer["third"] + p.bytes_by_peer["fourth"], size_);
}

// A holder that keeps failing is tried again after a backoff, each time on
// a new link; the links it dropped are freed as it goes, not kept until the
// download ends.
TEST_F(DownloadTest, DroppedLinksAreFreedAsTheDownloadGoesOn) {
  options_.refresh_interval_with_room = absl::Milliseconds(50);
  AddPeer("gone", FakePeer::Mode::kGone);
  AddPeer("good", FakePeer::Mode::kGood, absl::Milliseconds(5));
  DownloadProgress p = RunGated([](const DownloadProgress& p) {
    // "gone" connected and dropped twice (again after its backoff), and
    // only "good"'s link is left.
    return p.counters.peers_dropped >= 2 && p.links_open == 1;
  });
  EXPECT_EQ(p.state, DownloadState::kComplete) << p.error;
  EXPECT_TRUE(testing::ReadFile(dir_.File("out.bin")) == content_);
  EXPECT_EQ(p.links_open, 0u);
  // Backoff: 1 s, then 2 s, ... between links to the failing holder.
  EXPECT_LE(p.counters.peers_connected, 5u);
}

// gRPC charges the pieces the workers hold to the link's memory quota; a
// quota too small for them makes gRPC end the connection ("Buffers full").
// The workers then release pieces whose connection is gone, outside gRPC's
// threads: that must neither crash nor leak (run under ASan too).
TEST_F(DownloadTest, PiecesHeldPastTheirLinksEndAreReleasedSafely) {
  options_.link_memory_quota = 128 << 10;  // two pieces
  options_.no_source_timeout = absl::Seconds(2);
  AddPeer("alice", FakePeer::Mode::kGood);
  DownloadProgress p = RunGated([](const DownloadProgress& p) {
    return p.counters.peers_dropped > 0 && p.pieces_held > 0;
  });
  EXPECT_GE(p.counters.peers_dropped, 1u);
  // It may complete over a new link, or fail once the attempts are spent.
  EXPECT_NE(p.state, DownloadState::kRunning);
  if (p.state == DownloadState::kComplete) {
    EXPECT_TRUE(testing::ReadFile(dir_.File("out.bin")) == content_);
  }
}

// With its quota sized by the download, an honest peer is never cut off,
// however long the workers hold what it sent: here the two largest pieces a
// tracker may announce, which a link may always have asked for.
TEST_F(DownloadTest, PiecesTheWorkersHoldNeverExhaustALink) {
  SetContent(testing::RandomBytes(64 << 20, 9), options_.max_piece_size);
  AddPeer("alice", FakePeer::Mode::kGood);
  DownloadProgress p = RunGated([&](const DownloadProgress& p) {
    return p.counters.peers_dropped > 0 || p.pieces_held >= 2;
  });
  EXPECT_EQ(p.state, DownloadState::kComplete) << p.error;
  EXPECT_EQ(p.counters.peers_dropped, 0u);
  EXPECT_TRUE(testing::ReadFile(dir_.File("out.bin")) == content_);
}

// A completed download is flushed to disk before it is renamed into place,
// and only then recorded complete (what the next login serves unchecked).
TEST_F(DownloadTest, DataIsDurableBeforeTheFileIsRenamedAndCalledComplete) {
  AddPeer("alice", FakePeer::Mode::kGood);
  std::vector<std::string> events;
  env_.open_part_file = [&](const std::string& path, uint64_t size, bool ours)
      -> absl::StatusOr<PartFileOpened> {
    auto opened = OpenPartFile(path, size, ours);
    if (!opened.ok()) return opened;
    opened->file = std::make_unique<RecordingDisk>(std::move(opened->file), &events, [&] {
      auto records = state_->List("dave");
      return records.ok() && !records->empty() && records->front().complete;
    });
    return opened;
  };
  DownloadProgress p = Run();
  EXPECT_EQ(p.state, DownloadState::kComplete) << p.error;
  EXPECT_EQ(events, (std::vector<std::string>{"sync", "rename"}));
  auto records = state_->List("dave");
  ASSERT_TRUE(records.ok());
  ASSERT_EQ(records->size(), 1u);
  EXPECT_TRUE(records->front().complete);
  // The finished file's stamp is what the next login checks it against.
  auto stamp = StampOf(dir_.File("out.bin"));
  ASSERT_TRUE(stamp.ok());
  EXPECT_EQ(records->front().mtime_ns, stamp->mtime_ns);
  // Incomplete it was this user's only; complete, it has a new file's mode.
  struct stat st;
  ASSERT_EQ(stat(dir_.File("out.bin").c_str(), &st), 0);
  const mode_t mask = umask(0);
  umask(mask);
  EXPECT_EQ(st.st_mode & 0777, 0666 & ~mask);
}

TEST_F(DownloadTest, PlantedPartFileIsNeverWrittenThrough) {
  AddPeer("alice", FakePeer::Mode::kGood);
  testing::WriteFile(dir_.File("precious.txt"), "keep me");
  ASSERT_EQ(symlink(dir_.File("precious.txt").c_str(), dir_.File("out.bin.part").c_str()), 0);
  DownloadProgress p = Run();
  EXPECT_EQ(p.state, DownloadState::kFailed);
  EXPECT_NE(p.error.find("out.bin.part"), std::string::npos) << p.error;
  EXPECT_EQ(testing::ReadFile(dir_.File("precious.txt")), "keep me");
}

TEST_F(DownloadTest, AForeignPartFileIsNotTruncated) {
  AddPeer("alice", FakePeer::Mode::kGood);
  testing::WriteFile(dir_.File("out.bin.part"), "the user's own notes");
  DownloadProgress p = Run();
  EXPECT_EQ(p.state, DownloadState::kFailed);
  EXPECT_NE(p.error.find("is not a download of this client"), std::string::npos) << p.error;
  EXPECT_EQ(testing::ReadFile(dir_.File("out.bin.part")), "the user's own notes");
}

}  // namespace
// What the tracker missed is kept across a restart; the latest change of
// a file replaces the earlier one, which can no longer remove it.
TEST(ClientStateTest, OnePendingChangeAFileKeptAcrossReopening) {
  testing::TempDir dir;
  {
    auto state = *ClientState::Open(dir.File("state.db"));
    ASSERT_TRUE(state->PutPending({"u", "g", "a", PendingChange::kAnnouncePartial, "r1"}).ok());
    ASSERT_TRUE(state->PutPending({"u", "g", "a", PendingChange::kStopShare, "r2"}).ok());
    ASSERT_TRUE(state->PutPending({"u", "g", "b", PendingChange::kAnnounceComplete, "r3"}).ok());
    ASSERT_TRUE(state->PutPending({"v", "g", "a", PendingChange::kStopShare, "r4"}).ok());
    ASSERT_TRUE(state->RemovePending({"u", "g", "a", PendingChange::kAnnouncePartial, "r1"}).ok());
  }
  auto state = *ClientState::Open(dir.File("state.db"));
  auto pending = state->ListPending("u");
  ASSERT_TRUE(pending.ok());
  ASSERT_EQ(pending->size(), 2u);
  EXPECT_EQ((*pending)[0].name, "a");
  EXPECT_EQ((*pending)[0].change, PendingChange::kStopShare);
  EXPECT_EQ((*pending)[0].request_id, "r2");
  EXPECT_EQ((*pending)[1].change, PendingChange::kAnnounceComplete);
  ASSERT_TRUE(state->RemovePending({"u", "g", "b", PendingChange::kStopShare, ""}).ok());
  EXPECT_EQ(state->ListPending("u")->size(), 1u);
  EXPECT_EQ(state->ListPending("v")->size(), 1u);
}

}  // namespace groupshare::peer
