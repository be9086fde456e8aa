// One peer of one download: its GetBitfield stream and its GetPiece calls,
// each call carrying several pieces. PeerLink is what a download sees (a
// test gives it links it drives, see DownloadEnv); GrpcPeerLink is the
// real one, on gRPC's callback API. No thread is parked on a call. Piece
// bytes are handed over as gRPC received them (slices), never copied into
// a parsed message: the owner hashes and writes them from there.
//
// GrpcPeerLink's channel accepts messages no larger than a piece needs, so
// a peer that sends oversized chunks is refused by gRPC with
// RESOURCE_EXHAUSTED.
//
// Thread-safe. The owner's callbacks run on other threads (gRPC's), or
// inline in a link's method, with no lock of the link held; they must not
// block and must not destroy the link.
#ifndef GROUPSHARE_SERVICES_PEER_PEER_LINK_H_
#define GROUPSHARE_SERVICES_PEER_PEER_LINK_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "core/bitfield.h"
#include "core/work_queue.h"
#include "groupshare/peer/v1/peer.grpc.pb.h"

namespace groupshare::peer {

namespace pv1 = ::groupshare::peer::v1;

class PeerLink {
 public:
  // One message as gRPC received it. gRPC charged its bytes to the link's
  // memory quota, and returning the last of them may wake gRPC's memory
  // reclaimer, which needs gRPC's execution context on the releasing
  // thread: a worker without one crashed there. So the slices are released
  // through the ByteBuffer, whose destruction sets that context up, on any
  // thread, whether or not the link and its channel still exist.
  struct Received {
    grpc::ByteBuffer message;         // declared first: destroyed last
    std::vector<grpc::Slice> slices;  // the message's, the views point into them
  };

  // One whole piece as it arrived, not yet verified.
  struct Piece {
    uint32_t index = 0;
    // Keep the bytes alive. The views point into these very Slice objects:
    // gRPC inlines small slices, whose bytes live inside the object, so the
    // objects must not be copied or moved, only their holders.
    std::vector<std::shared_ptr<const Received>> holders;
    std::vector<absl::string_view> data;   // the piece's bytes, in order
  };

  class Owner {
   public:
    virtual ~Owner() = default;
    virtual void OnBitfield(PeerLink* link, const pv1::BitfieldUpdate& update) = 0;
    virtual void OnBitfieldEnd(PeerLink* link, const absl::Status& status) = 0;
    virtual void OnPiece(PeerLink* link, Piece piece) = 0;
    // A GetPiece call ended; `undelivered` lists the pieces it did not
    // bring. DATA_LOSS when the peer sent something malformed.
    virtual void OnCallEnd(PeerLink* link, std::vector<uint32_t> undelivered,
                           const absl::Status& status) = 0;
  };

  struct Target {
    std::string group_id;
    std::string file_sha1;
    FileLayout layout;
    // The bytes gRPC may hold for this link at once: what it is reading and
    // every piece the owner still holds. Past it gRPC ends the connection
    // ("Buffers full"), so the owner sizes it above what it may ever hold.
    uint64_t memory_quota = 24 << 20;
    // How often a link through a relay tries its peer directly again.
    absl::Duration direct_retry = absl::Minutes(1);
  };

  virtual ~PeerLink() = default;
  PeerLink(const PeerLink&) = delete;
  PeerLink& operator=(const PeerLink&) = delete;

  uint32_t id() const { return id_; }
  const std::string& user_id() const { return user_id_; }
  const std::string& address() const { return address_; }

  // Opens (again) the GetBitfield stream with `ticket`.
  virtual void OpenBitfield(const std::string& ticket) = 0;
  // Starts a GetPiece call for `pieces`, in this order.
  virtual void Request(std::vector<uint32_t> pieces, const std::string& ticket) = 0;
  // Cancels the calls that carry `piece` (their other pieces too).
  virtual void CancelPiece(uint32_t piece) = 0;
  // Cancels the GetPiece calls that brought nothing since before `before`
  // (on the clock of the DownloadEnv that made the link); returns how many.
  virtual int CancelStalled(absl::Time before) = 0;
  // Whether a call asked for `piece` and brought nothing since `since` (or
  // has yet to start): nothing of the piece is seen on its way. A piece
  // arrives as one message, so a call that brings nothing may also be
  // receiving it; the owner picks `since` accordingly.
  virtual bool Waits(uint32_t piece, absl::Time since) = 0;
  // Cancels every call; no new one starts. The destructor waits for the
  // calls to end.
  virtual void Close() = 0;

 protected:
  PeerLink(uint32_t id, std::string user_id, std::string address)
      : id_(id), user_id_(std::move(user_id)), address_(std::move(address)) {}

 private:
  const uint32_t id_;
  const std::string user_id_;
  const std::string address_;
};

// How a GrpcPeerLink reaches its peer: directly at its address, or through
// a relay's session port, as an HTTP CONNECT proxy asked for a session key.
struct LinkRoute {
  std::shared_ptr<grpc::ChannelCredentials> credentials;  // null: plaintext
  std::string relay_session;  // host:port of the session port; empty: direct
  std::string session_key;
  // Why no route was found; the link then fails its first call with it.
  std::string failure;
};

class GrpcPeerLink final : public PeerLink {
 public:
  // A link over a known route.
  GrpcPeerLink(Owner* owner, uint32_t id, std::string user_id, std::string address,
               Target target, LinkRoute route);
  // A link whose route `find` finds on `finding`, where its connection
  // then starts: trying a holder directly and asking a relay for a session
  // take up to seconds, and setting up a connection with its TLS some
  // milliseconds, which the caller (a download's coordinator, with every
  // other link waiting on it) does not wait for. Calls made meanwhile
  // start once the route is known.
  //
  // While the route goes through a relay, a new call every
  // `target.direct_retry` has `find(/*direct_only=*/true)` try the peer
  // directly, on `finding` too. Once it answers, the link moves there:
  // calls from then on go directly, and the bitfield stream opens again
  // on the direct connection before the relayed one is cancelled (the owner
  // sees the bitfield again, not an end). Calls under way end where they
  // are.
  GrpcPeerLink(Owner* owner, uint32_t id, std::string user_id, std::string address,
               Target target, std::function<LinkRoute(bool direct_only)> find,
               WorkQueue* finding);
  // Close()s and waits for the calls to end.
  ~GrpcPeerLink() override;

  void OpenBitfield(const std::string& ticket) override ABSL_LOCKS_EXCLUDED(mu_);
  void Request(std::vector<uint32_t> pieces, const std::string& ticket) override
      ABSL_LOCKS_EXCLUDED(mu_);
  void CancelPiece(uint32_t piece) override ABSL_LOCKS_EXCLUDED(mu_);
  int CancelStalled(absl::Time before) override ABSL_LOCKS_EXCLUDED(mu_);
  bool Waits(uint32_t piece, absl::Time since) override ABSL_LOCKS_EXCLUDED(mu_);
  void Close() override ABSL_LOCKS_EXCLUDED(mu_);

 private:
  class Call;
  class BitfieldCall;
  class PieceCall;

  // One route's channel and stubs. Kept while calls started on them live,
  // and let go by the link's own threads (see DropUnusedStubs), so that no
  // channel's last reference is dropped on a gRPC thread.
  struct Stubs;
  std::unique_ptr<Stubs> MakeStubs(LinkRoute route) const;

  // Counts `call` among those to cancel at Close, with a reference for the
  // caller to drop once it has started it; false when the link is closed.
  // The stubs to start it on go to `*stubs`.
  bool Admit(Call* call, Stubs** stubs) ABSL_LOCKS_EXCLUDED(mu_);
  void Ended(Call* call) ABSL_LOCKS_EXCLUDED(mu_);
  // Counts call objects alive, so that the destructor can wait for the last.
  void CallCreated() ABSL_LOCKS_EXCLUDED(mu_);
  void CallDeleted(Stubs* stubs) ABSL_LOCKS_EXCLUDED(mu_);
  // Lets go of the channels of routes left behind (a relay's, once the
  // link moved) whose calls have all been deleted: that closes their
  // connections. Not on a gRPC thread.
  void DropUnusedStubs() ABSL_LOCKS_EXCLUDED(mu_);
  // Cancels the calls `match` picks, outside the lock.
  template <class Match>
  int CancelIf(Match match) ABSL_LOCKS_EXCLUDED(mu_);
  // Takes the route, and starts the calls made before it was known.
  void Route(LinkRoute route) ABSL_LOCKS_EXCLUDED(mu_);
  // Through a relay, and due: tries the peer directly (on finding_queue_).
  void MaybeTryDirect() ABSL_LOCKS_EXCLUDED(mu_);
  // Moves to `direct`, a route the peer answered at.
  void MoveTo(LinkRoute direct) ABSL_LOCKS_EXCLUDED(mu_);
  // A call made before the route was known: a bitfield (no pieces) or a
  // request.
  struct Waiting {
    bool bitfield = false;
    std::vector<uint32_t> pieces;
    std::string ticket;
  };
  // Tells the owner that `waiting` ended without starting, for `why`.
  void Drop(std::vector<Waiting> waiting, const absl::Status& why);

  Owner* const owner_;
  const Target target_;
  const std::function<LinkRoute(bool direct_only)> find_;
  WorkQueue* const finding_queue_ = nullptr;

  absl::Mutex mu_;
  absl::CondVar ended_;
  bool routed_ ABSL_GUARDED_BY(mu_) = false;
  bool finding_ ABSL_GUARDED_BY(mu_) = false;  // a route is being found
  Stubs* stubs_ ABSL_GUARDED_BY(mu_) = nullptr;  // the route's, once routed_
  std::vector<std::unique_ptr<Stubs>> all_stubs_ ABSL_GUARDED_BY(mu_);
  bool relayed_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time next_direct_try_ ABSL_GUARDED_BY(mu_);
  BitfieldCall* bitfield_ ABSL_GUARDED_BY(mu_) = nullptr;  // the one open
  std::string bitfield_ticket_ ABSL_GUARDED_BY(mu_);
  std::string failure_ ABSL_GUARDED_BY(mu_);  // of the route; empty when it has one
  std::vector<Waiting> waiting_ ABSL_GUARDED_BY(mu_);
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  std::set<Call*> calls_ ABSL_GUARDED_BY(mu_);  // started and not done
  int live_calls_ ABSL_GUARDED_BY(mu_) = 0;      // not yet deleted
};

}  // namespace groupshare::peer

#endif  // GROUPSHARE_SERVICES_PEER_PEER_LINK_H_
