// GrpcPeerLink alone, against a peer service the test scripts: what it hands
// its owner for well-formed and malformed answers, and how its calls end.
#include <gtest/gtest.h>
#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <functional>
#include <optional>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "core/piece_chunk.h"
#include "absl/synchronization/notification.h"
#include "core/work_queue.h"
#include "services/common/sockets.h"
#include "services/common/splicer.h"
#include "services/peer/peer_link.h"
#include "services/peer/relay_client.h"
#include "services/relay/sessions.h"

namespace groupshare::peer {
namespace {

constexpr uint32_t kPiece = 3 * kMaxChunkBytes / 2;  // two chunks a piece
constexpr absl::Duration kPatience = absl::Seconds(10);

// A peer service whose answers the test writes.
class ScriptedPeer final : public pv1::PeerService::Service {
 public:
  using PieceScript = std::function<grpc::Status(
      grpc::ServerContext*, const pv1::GetPieceRequest&, grpc::ServerWriter<pv1::PieceChunk>*)>;
  using BitfieldScript = std::function<grpc::Status(
      grpc::ServerContext*, grpc::ServerWriter<pv1::BitfieldUpdate>*)>;

  ScriptedPeer() {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(this);
    server_ = builder.BuildAndStart();
  }
  ~ScriptedPeer() override { server_->Shutdown(std::chrono::system_clock::now()); }
  std::string address() const { return absl::StrCat("127.0.0.1:", port_); }

  PieceScript piece_script;
  BitfieldScript bitfield_script;

  grpc::Status GetPiece(grpc::ServerContext* ctx, const pv1::GetPieceRequest* req,
                        grpc::ServerWriter<pv1::PieceChunk>* writer) override {
    {
      absl::MutexLock lock(&mu_);
      ++piece_calls_;
    }
    return piece_script(ctx, *req, writer);
  }
  // Whether `n` GetPiece calls have reached this service within kPatience.
  bool AwaitPieceCalls(int n) {
    absl::MutexLock lock(&mu_);
    auto reached = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return piece_calls_ >= n; };
    return mu_.AwaitWithTimeout(absl::Condition(&reached), kPatience);
  }
  grpc::Status GetBitfield(grpc::ServerContext* ctx, const pv1::GetBitfieldRequest*,
                           grpc::ServerWriter<pv1::BitfieldUpdate>* writer) override {
    return bitfield_script(ctx, writer);
  }

 private:
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
  absl::Mutex mu_;
  int piece_calls_ ABSL_GUARDED_BY(mu_) = 0;
};

// What the link told its owner.
class RecordingOwner final : public PeerLink::Owner {
 public:
  struct CallEnd {
    std::vector<uint32_t> undelivered;
    absl::Status status;
  };
  void OnBitfield(PeerLink*, const pv1::BitfieldUpdate& update) override {
    absl::MutexLock lock(&mu_);
    bitfields_.push_back(update);
  }
  void OnBitfieldEnd(PeerLink*, const absl::Status& status) override {
    absl::MutexLock lock(&mu_);
    bitfield_end_ = status;
  }
  void OnPiece(PeerLink*, PeerLink::Piece piece) override {
    std::string bytes;
    for (absl::string_view part : piece.data) bytes.append(part.data(), part.size());
    absl::MutexLock lock(&mu_);
    pieces_.emplace_back(piece.index, std::move(bytes));
  }
  void OnCallEnd(PeerLink*, std::vector<uint32_t> undelivered,
                 const absl::Status& status) override {
    absl::MutexLock lock(&mu_);
    ends_.push_back({std::move(undelivered), status});
  }

  // The first `n` call ends, once there are that many (empty if not within
  // kPatience).
  std::vector<CallEnd> Ends(size_t n) {
    absl::MutexLock lock(&mu_);
    auto enough = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return ends_.size() >= n; };
    if (!mu_.AwaitWithTimeout(absl::Condition(&enough), kPatience)) return {};
    return {ends_.begin(), ends_.begin() + static_cast<long>(n)};
  }
  std::vector<std::pair<uint32_t, std::string>> pieces() {
    absl::MutexLock lock(&mu_);
    return pieces_;
  }
  bool BitfieldEnded() {
    absl::MutexLock lock(&mu_);
    return bitfield_end_.has_value();
  }
  std::optional<absl::Status> BitfieldEnd() {
    absl::MutexLock lock(&mu_);
    auto ended = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return bitfield_end_.has_value(); };
    mu_.AwaitWithTimeout(absl::Condition(&ended), kPatience);
    return bitfield_end_;
  }
  std::vector<pv1::BitfieldUpdate> bitfields() {
    absl::MutexLock lock(&mu_);
    return bitfields_;
  }

 private:
  absl::Mutex mu_;
  std::vector<pv1::BitfieldUpdate> bitfields_ ABSL_GUARDED_BY(mu_);
  std::optional<absl::Status> bitfield_end_ ABSL_GUARDED_BY(mu_);
  std::vector<std::pair<uint32_t, std::string>> pieces_ ABSL_GUARDED_BY(mu_);
  std::vector<CallEnd> ends_ ABSL_GUARDED_BY(mu_);
};

class PeerLinkTest : public ::testing::Test {
 protected:
  PeerLinkTest() {
    for (size_t i = 0; i < content_.size(); ++i) content_[i] = static_cast<char>(i * 7 + i / 977);
  }
  std::unique_ptr<GrpcPeerLink> Link() {
    return std::make_unique<GrpcPeerLink>(
        &owner_, 1, "alice", peer_.address(),
        PeerLink::Target{"g", "sha1", layout_, 64 << 20}, LinkRoute{});
  }
  std::string Piece(uint32_t piece) const {
    return content_.substr(layout_.PieceOffset(piece), layout_.PieceLength(piece));
  }
  // Writes `piece` as the service does, in chunks of at most kMaxChunkBytes.
  bool Send(grpc::ServerWriter<pv1::PieceChunk>* writer, uint32_t piece) const {
    const std::string bytes = Piece(piece);
    for (uint32_t offset = 0; offset < bytes.size(); offset += kMaxChunkBytes) {
      pv1::PieceChunk chunk;
      chunk.set_piece(piece);
      chunk.set_offset(offset);
      chunk.set_data(bytes.substr(offset, kMaxChunkBytes));
      if (!writer->Write(chunk)) return false;
    }
    return true;
  }
  static grpc::Status StallUntilCancelled(grpc::ServerContext* ctx) {
    while (!ctx->IsCancelled()) absl::SleepFor(absl::Milliseconds(5));  // the server's side
    return grpc::Status::CANCELLED;
  }

  std::string content_ = std::string(4 * kPiece - 100, '\0');  // the last piece short
  const FileLayout layout_{content_.size(), kPiece};
  ScriptedPeer peer_;
  RecordingOwner owner_;
};

TEST_F(PeerLinkTest, PiecesArriveWholeInTheOrderAskedAndTheCallEndsWell) {
  peer_.piece_script = [&](grpc::ServerContext*, const pv1::GetPieceRequest& req, auto* writer) {
    for (uint32_t piece : req.pieces()) Send(writer, piece);
    return grpc::Status::OK;
  };
  auto link = Link();
  link->Request({3, 1}, "ticket");
  auto ends = owner_.Ends(1);
  ASSERT_EQ(ends.size(), 1u);
  EXPECT_TRUE(ends[0].status.ok()) << ends[0].status;
  EXPECT_TRUE(ends[0].undelivered.empty());
  auto pieces = owner_.pieces();
  ASSERT_EQ(pieces.size(), 2u);
  EXPECT_EQ(pieces[0].first, 3u);
  EXPECT_TRUE(pieces[0].second == Piece(3));  // the short last piece
  EXPECT_EQ(pieces[1].first, 1u);
  EXPECT_TRUE(pieces[1].second == Piece(1));
}

// A link whose route takes a while to find (a holder behind a relay):
// calls made meanwhile start, in order, once it is known; one cancelled
// meanwhile, or the link closed, ends without ever starting.
TEST_F(PeerLinkTest, CallsMadeBeforeTheRouteIsKnownStartOnceItIs) {
  peer_.piece_script = [&](grpc::ServerContext*, const pv1::GetPieceRequest& req, auto* writer) {
    for (uint32_t piece : req.pieces()) Send(writer, piece);
    return grpc::Status::OK;
  };
  WorkQueue finding(1);
  absl::Notification found;
  auto link = std::make_unique<GrpcPeerLink>(
      &owner_, 1, "alice", peer_.address(), PeerLink::Target{"g", "sha1", layout_, 64 << 20},
      [&](bool) {
        found.WaitForNotification();
        return LinkRoute{};
      },
      &finding);
  link->Request({0}, "ticket");
  link->Request({1, 2}, "ticket");
  link->CancelPiece(2);  // before the route: the second request ends unstarted
  auto ends = owner_.Ends(1);
  ASSERT_EQ(ends.size(), 1u);
  EXPECT_EQ(ends[0].status.code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(ends[0].undelivered, (std::vector<uint32_t>{1, 2}));
  EXPECT_TRUE(owner_.pieces().empty());
  found.Notify();
  ends = owner_.Ends(2);
  ASSERT_EQ(ends.size(), 2u);
  EXPECT_TRUE(ends[1].status.ok()) << ends[1].status;
  ASSERT_EQ(owner_.pieces().size(), 1u);
  EXPECT_TRUE(owner_.pieces()[0].second == Piece(0));

  // Closed while its route is still being found.
  absl::Notification never;
  RecordingOwner other;
  auto closed = std::make_unique<GrpcPeerLink>(
      &other, 2, "alice", peer_.address(), PeerLink::Target{"g", "sha1", layout_, 64 << 20},
      [&](bool) {
        never.WaitForNotificationWithTimeout(absl::Milliseconds(200));
        return LinkRoute{};
      },
      &finding);
  closed->Request({3}, "ticket");
  closed.reset();  // waits for the route, and starts nothing
  ends = other.Ends(1);
  ASSERT_EQ(ends.size(), 1u);
  EXPECT_EQ(ends[0].status.code(), absl::StatusCode::kCancelled);
  EXPECT_TRUE(other.pieces().empty());
}

TEST_F(PeerLinkTest, AChunkOutOfPlaceEndsTheCallAsDataLoss) {
  peer_.piece_script = [&](grpc::ServerContext* ctx, const pv1::GetPieceRequest&, auto* writer) {
    Send(writer, 2);  // not what was asked first
    return StallUntilCancelled(ctx);
  };
  auto link = Link();
  link->Request({0, 2}, "ticket");
  auto ends = owner_.Ends(1);
  ASSERT_EQ(ends.size(), 1u);
  EXPECT_EQ(ends[0].status.code(), absl::StatusCode::kDataLoss) << ends[0].status;
  EXPECT_EQ(ends[0].undelivered, (std::vector<uint32_t>{0, 2}));
  EXPECT_TRUE(owner_.pieces().empty());
}

TEST_F(PeerLinkTest, ACallEndedEarlyNamesWhatItDidNotBring) {
  peer_.piece_script = [&](grpc::ServerContext*, const pv1::GetPieceRequest&, auto* writer) {
    Send(writer, 0);
    return grpc::Status::OK;  // but 1 was asked for too
  };
  auto link = Link();
  link->Request({0, 1}, "ticket");
  auto ends = owner_.Ends(1);
  ASSERT_EQ(ends.size(), 1u);
  EXPECT_EQ(ends[0].status.code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(ends[0].undelivered, std::vector<uint32_t>{1});
  ASSERT_EQ(owner_.pieces().size(), 1u);
}

TEST_F(PeerLinkTest, AChunkLargerThanAPieceNeedsIsRefusedByTheChannel) {
  peer_.piece_script = [&](grpc::ServerContext*, const pv1::GetPieceRequest&, auto* writer) {
    pv1::PieceChunk chunk;
    chunk.set_piece(0);
    chunk.set_data(std::string(4 * kPiece, 'x'));
    writer->Write(chunk);
    return grpc::Status::OK;
  };
  auto link = Link();
  link->Request({0}, "ticket");
  auto ends = owner_.Ends(1);
  ASSERT_EQ(ends.size(), 1u);
  EXPECT_EQ(ends[0].status.code(), absl::StatusCode::kResourceExhausted) << ends[0].status;
  EXPECT_EQ(ends[0].undelivered, std::vector<uint32_t>{0});
}

TEST_F(PeerLinkTest, StalledCallsAndCancelledPiecesEndAsCancelled) {
  peer_.piece_script = [&](grpc::ServerContext* ctx, const pv1::GetPieceRequest& req,
                           auto* writer) {
    if (req.pieces(0) == 0) Send(writer, 0);  // then nothing
    return StallUntilCancelled(ctx);
  };
  auto link = Link();
  link->Request({0, 1}, "ticket");
  link->Request({2, 3}, "ticket");
  ASSERT_TRUE([&] {
    for (const absl::Time deadline = absl::Now() + kPatience; absl::Now() < deadline;) {
      if (!owner_.pieces().empty()) return true;
      absl::SleepFor(absl::Milliseconds(1));  // a poll with a deadline
    }
    return false;
  }());
  // Nothing is stalled since before a time already past.
  EXPECT_EQ(link->CancelStalled(absl::Now() - absl::Hours(1)), 0);
  link->CancelPiece(3);
  auto ends = owner_.Ends(1);
  ASSERT_EQ(ends.size(), 1u);
  EXPECT_EQ(ends[0].status.code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(ends[0].undelivered, (std::vector<uint32_t>{2, 3}));
  // Everything still open brought nothing since before now.
  EXPECT_EQ(link->CancelStalled(absl::Now() + absl::Seconds(1)), 1);
  ends = owner_.Ends(2);
  ASSERT_EQ(ends.size(), 2u);
  EXPECT_EQ(ends[1].status.code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(ends[1].undelivered, std::vector<uint32_t>{1});  // 0 arrived
}

TEST_F(PeerLinkTest, CloseEndsEveryCallAndANewOneEndsAtOnce) {
  peer_.piece_script = [&](grpc::ServerContext* ctx, const pv1::GetPieceRequest&, auto*) {
    return StallUntilCancelled(ctx);
  };
  auto link = Link();
  link->Request({0}, "ticket");
  // Closed once the call is at the peer: a connection still being made when
  // the test ends would be torn down by gRPC after main returns.
  ASSERT_TRUE(peer_.AwaitPieceCalls(1));
  link->Close();
  link->Request({1}, "ticket");
  auto ends = owner_.Ends(2);
  ASSERT_EQ(ends.size(), 2u);
  for (const auto& end : ends) EXPECT_EQ(end.status.code(), absl::StatusCode::kCancelled);
}

TEST_F(PeerLinkTest, TheBitfieldStreamIsHandedOverAndItsEndToo) {
  peer_.bitfield_script = [&](grpc::ServerContext*, auto* writer) {
    pv1::BitfieldUpdate full;
    full.set_bitfield(Bitfield(layout_.PieceCount(), true).ToBytes());
    full.set_piece_count(layout_.PieceCount());
    writer->Write(full);
    pv1::BitfieldUpdate have;
    have.set_have(2);
    writer->Write(have);
    return grpc::Status(grpc::StatusCode::PERMISSION_DENIED, "ticket expired");
  };
  auto link = Link();
  link->OpenBitfield("ticket");
  std::optional<absl::Status> end = owner_.BitfieldEnd();
  ASSERT_TRUE(end.has_value());
  EXPECT_EQ(end->code(), absl::StatusCode::kPermissionDenied);
  auto updates = owner_.bitfields();
  ASSERT_EQ(updates.size(), 2u);
  EXPECT_EQ(updates[0].piece_count(), layout_.PieceCount());
  EXPECT_EQ(updates[1].have(), 2u);
}

// A link through a relay (a real relay's session port, in this process)
// moves to the direct route once its peer answers there: later calls and
// the bitfield stream go directly, the owner sees no end of the stream, and
// the relayed connection closes.
TEST_F(PeerLinkTest, ALinkThroughARelayMovesToTheDirectRouteOnceThePeerAnswers) {
  absl::Mutex mu;
  std::vector<std::string> piece_callers, bitfield_callers;  // by connection
  peer_.piece_script = [&](grpc::ServerContext* ctx, const pv1::GetPieceRequest& req,
                           auto* writer) {
    {
      absl::MutexLock lock(&mu);
      piece_callers.push_back(ctx->peer());
    }
    for (uint32_t piece : req.pieces()) Send(writer, piece);
    return grpc::Status::OK;
  };
  peer_.bitfield_script = [&](grpc::ServerContext* ctx, auto* writer) {
    {
      absl::MutexLock lock(&mu);
      bitfield_callers.push_back(ctx->peer());
    }
    pv1::BitfieldUpdate full;
    full.set_bitfield(Bitfield(layout_.PieceCount(), true).ToBytes());
    full.set_piece_count(layout_.PieceCount());
    writer->Write(full);
    return StallUntilCancelled(ctx);
  };

  // The relay, and the holder's side of one session, spliced to the peer.
  relay::Sessions relay{relay::SessionLimits{}};
  absl::StatusOr<int> session_port = relay.Listen("127.0.0.1:0");
  ASSERT_TRUE(session_port.ok()) << session_port.status();
  const std::string session_address = absl::StrCat("127.0.0.1:", *session_port);
  absl::StatusOr<relay::Sessions::Keys> keys = relay.Open("bob");
  ASSERT_TRUE(keys.ok()) << keys.status();
  Splicer splicer{Splicer::Options{}};
  std::string relayed;  // how the peer names the relayed connection
  std::thread holder([&] {
    absl::StatusOr<int> to_relay = DialTcp(session_address, kPatience);
    ASSERT_TRUE(to_relay.ok()) << to_relay.status();
    ASSERT_TRUE(RequestSession(*to_relay, keys->holder).ok());
    ASSERT_TRUE(AwaitSession(*to_relay, absl::Now() + kPatience).ok());
    absl::StatusOr<int> to_peer = DialTcp(peer_.address(), kPatience);
    ASSERT_TRUE(to_peer.ok()) << to_peer.status();
    sockaddr_in local{};
    socklen_t length = sizeof local;
    getsockname(*to_peer, reinterpret_cast<sockaddr*>(&local), &length);
    relayed = absl::StrCat("ipv4:127.0.0.1:", ntohs(local.sin_port));
    splicer.Add(*to_relay, *to_peer);
  });

  WorkQueue finding(1);
  std::atomic<int> direct_tries{0};
  PeerLink::Target target{"g", "sha1", layout_, 64 << 20};
  target.direct_retry = absl::ZeroDuration();  // at every new call
  auto link = std::make_unique<GrpcPeerLink>(
      &owner_, 1, "alice", peer_.address(), target,
      [&](bool direct_only) {
        if (!direct_only) return LinkRoute{nullptr, session_address, keys->member, ""};
        // The first two tries find the peer still unreachable.
        if (direct_tries.fetch_add(1) < 2) return LinkRoute{nullptr, "", "", "no answer"};
        return LinkRoute{};
      },
      &finding);
  link->OpenBitfield("ticket");
  link->Request({0}, "ticket");
  ASSERT_EQ(owner_.Ends(1).size(), 1u);
  holder.join();

  // Calls, one after another, until the bitfield stream opened directly.
  size_t calls = 1;
  auto moved = [&] {
    absl::MutexLock lock(&mu);
    return bitfield_callers.size() == 2;
  };
  for (; calls < 40 && !moved(); ++calls) {
    link->Request({static_cast<uint32_t>(calls % layout_.PieceCount())}, "ticket");
    ASSERT_EQ(owner_.Ends(calls + 1).size(), calls + 1);
  }
  ASSERT_TRUE(moved()) << direct_tries.load() << " direct tries";
  link->Request({3}, "ticket");
  auto ends = owner_.Ends(calls + 1);
  ASSERT_EQ(ends.size(), calls + 1);
  for (const auto& end : ends) EXPECT_TRUE(end.status.ok()) << end.status;
  // Once its last call is gone, the link lets go of the relayed connection
  // (at its next call), and the relay ends the session.
  const absl::Time deadline = absl::Now() + kPatience;
  while (relay.spliced() > 0 && absl::Now() < deadline) {
    link->Request({3}, "ticket");
    ++calls;
    ASSERT_EQ(owner_.Ends(calls + 1).size(), calls + 1);
    absl::SleepFor(absl::Milliseconds(10));  // the relay's splice ends on its own thread
  }
  EXPECT_EQ(relay.spliced(), 0u) << "the relayed connection is still open";

  absl::MutexLock lock(&mu);
  EXPECT_EQ(direct_tries.load(), 3);
  EXPECT_EQ(bitfield_callers[0], relayed);
  EXPECT_NE(bitfield_callers[1], relayed);
  ASSERT_EQ(piece_callers.size(), calls + 1);
  EXPECT_EQ(piece_callers.back(), bitfield_callers[1]) << "the last call went through the relay";
  EXPECT_EQ(piece_callers[0], relayed);
  // The calls after which a direct try failed, two, and the one after which
  // it succeeded.
  EXPECT_GE(std::count(piece_callers.begin(), piece_callers.end(), relayed), 3)
      << "a failed direct try moved the link";
  // The owner saw the bitfield twice and no end of it.
  EXPECT_EQ(owner_.bitfields().size(), 2u);
  EXPECT_FALSE(owner_.BitfieldEnded());
}

}  // namespace
}  // namespace groupshare::peer
