// groupshare.peer.v1.PeerService over the client's PieceStore, on gRPC's
// callback API: no thread is parked on a call. Every call must carry a
// ticket the tracker signed for the requested group and file and for this
// peer's own address; the key that checks tickets arrives with the login and
// leaves with the logout.
//
// GetBitfield streams are fed by a subscription to their share: a verified
// piece reaches exactly the streams of its share, at once. They end when
// the share stops being served or their ticket expires. GetPiece reads the
// pieces on a small pool of disk threads, one message in flight per call;
// the bytes read and not yet taken by the network are capped per caller and
// in all, and a reader that takes nothing for `write_timeout` is cut off.
//
// Thread-safe.
#ifndef GROUPSHARE_SERVICES_PEER_PEER_SERVICE_H_
#define GROUPSHARE_SERVICES_PEER_PEER_SERVICE_H_

#include <deque>
#include <map>
#include <memory>
#include <set>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/function_ref.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "core/piece_store.h"
#include "core/ticket.h"
#include "core/work_queue.h"
#include "groupshare/peer/v1/peer.grpc.pb.h"
#include "services/peer/offer_book.h"
#include "services/peer/read_budget.h"
#include "services/peer/ticket_gate.h"
#include "services/peer/upload_shaper.h"

namespace groupshare::peer {

namespace pv1 = ::groupshare::peer::v1;

// The largest request a peer reads (GetPiece or GetBitfield). A ticket for
// the longest ids and host name, the group and file, and as many piece
// numbers as max_pieces_per_request allows take about 1 KiB. A larger
// request is refused, RESOURCE_EXHAUSTED.
inline constexpr int kMaxPeerRequestBytes = 4 << 10;

// What one peer serves at most; a call past a limit is refused with
// RESOURCE_EXHAUSTED or INVALID_ARGUMENT, saying which limit.
struct PeerServiceOptions {
  // Calls (GetBitfield and GetPiece) open at once, in all and per user at
  // one address (a member's ticket copied elsewhere has an allowance of its
  // own, and cannot use up the member's).
  uint32_t max_calls = 512;
  uint32_t max_calls_per_user = 48;
  // Pieces one GetPiece call may ask for.
  uint32_t max_pieces_per_request = 64;
  // Piece bytes read from disk and not yet taken by the network, in all and
  // per user at one address. Calls past it wait their turn, holding no
  // thread.
  uint64_t max_buffered_bytes = 32 << 20;
  uint64_t max_buffered_bytes_per_user = 8 << 20;
  // A GetPiece whose reader takes no message for this long is cancelled,
  // and so is one that waited this long for the read budget.
  absl::Duration write_timeout = absl::Seconds(30);
  // Threads reading pieces from disk (and running the service's timers).
  int disk_threads = 2;
  // What a file held whole is offered as to several downloaders at once.
  OfferBook::Options offers;
};

// The pieces a GetPiece request names, sorted, when it names 1 to
// `max_pieces` of them and none twice; INVALID_ARGUMENT otherwise.
absl::StatusOr<std::vector<uint32_t>> CheckPieceRequest(const pv1::GetPieceRequest& req,
                                                        uint32_t max_pieces);

// What this peer sent one user of one share since the last ResetTraffic.
struct UploadTraffic {
  std::string user;
  ShareKey key;
  uint64_t bytes = 0;
  double bytes_per_second = 0;  // over the last second or so
  bool active = false;          // a GetPiece call of it is open now
};

class PeerServiceImpl final : public pv1::PeerService::CallbackService {
 public:
  // `store` must outlive the service.
  explicit PeerServiceImpl(PieceStore* store, PeerServiceOptions options = {});
  ~PeerServiceImpl() override;

  // Caps what all calls together send, in bytes a second; 0 (the default)
  // is no cap.
  void SetMaxUploadRate(uint64_t bytes_per_second) ABSL_LOCKS_EXCLUDED(mu_);
  // What was sent to whom since the last ResetTraffic, by user and share.
  std::vector<UploadTraffic> Traffic() const ABSL_LOCKS_EXCLUDED(mu_);
  void ResetTraffic() ABSL_LOCKS_EXCLUDED(mu_);
  // The key that verifies tickets; null (logged out) refuses every call.
  void SetTicketVerifier(std::shared_ptr<const TicketVerifier> verifier);
  // This peer's address as the tracker knows it: tickets made out to any
  // other address are refused.
  void SetSelfAddress(const std::string& address);
  // Refuses new calls, for a server shutting down.
  void Shutdown();

  grpc::ServerWriteReactor<pv1::BitfieldUpdate>* GetBitfield(
      grpc::CallbackServerContext* ctx, const pv1::GetBitfieldRequest* req) override;
  grpc::ServerWriteReactor<pv1::PieceChunk>* GetPiece(
      grpc::CallbackServerContext* ctx, const pv1::GetPieceRequest* req) override;

 private:
  class BitfieldCall;
  class PieceCall;

  // Counts a call of `user` against `allowance` (see AllowanceOf);
  // RESOURCE_EXHAUSTED past the limits.
  absl::Status Admit(const std::string& user, const std::string& allowance)
      ABSL_LOCKS_EXCLUDED(mu_);
  void Register(BitfieldCall* call) ABSL_LOCKS_EXCLUDED(mu_);
  void Register(PieceCall* call) ABSL_LOCKS_EXCLUDED(mu_);
  // Forgets a finished call and its admission.
  void Unregister(BitfieldCall* call) ABSL_LOCKS_EXCLUDED(mu_);
  void Unregister(PieceCall* call) ABSL_LOCKS_EXCLUDED(mu_);
  // Gives back the admission Admit counted against `allowance`.
  void ReleaseAdmission(const std::string& allowance) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Takes `bytes` of the read budget for `call`, or queues the call, which
  // then reads when Release frees enough. True when it may read now.
  bool Reserve(PieceCall* call, uint64_t bytes) ABSL_LOCKS_EXCLUDED(mu_);
  // Gives back `bytes` of the read budget `call` took; `sent` names the
  // share when they went out to the network.
  void Release(const PieceCall& call, uint64_t bytes, const ShareKey* sent = nullptr)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Under an upload cap, queues `call`'s message (`bytes` of `piece` at
  // `offset` of the share `key`) for its turn and returns true; the call's
  // Write runs then. False when there is no cap: write at once.
  bool QueueSend(PieceCall* call, const ShareKey& key, uint32_t piece, uint32_t offset,
                 uint64_t bytes) ABSL_LOCKS_EXCLUDED(mu_);
  // Sends what the cap allows now and sets a timer for the rest.
  void PumpSends() ABSL_LOCKS_EXCLUDED(mu_);
  // Ends expired bitfield streams and cuts off stalled readers; runs each
  // second on the work queue.
  void Housekeep() ABSL_LOCKS_EXCLUDED(mu_);
  // Super-seeding (offer_book.h): the pieces of the whole share `key` that
  // `call` is offered at first; OpenOffers until CloseOffers.
  Bitfield OpenOffers(const ShareKey& key, uint32_t piece_count, BitfieldCall* call)
      ABSL_LOCKS_EXCLUDED(offers_mu_);
  void CloseOffers(const ShareKey& key, BitfieldCall* call) ABSL_LOCKS_EXCLUDED(offers_mu_);
  // Tells the offer book of `key`, if there is one (made for a file of
  // `open_with` pieces when not 0), what `change` says happened (a reader
  // came, a piece was asked for, sent, or not sent after all), and its
  // readers what they are offered now.
  void ChangeOffers(const ShareKey& key,
                    absl::FunctionRef<OfferBook::Moves(OfferBook&)> change,
                    uint32_t open_with = 0) ABSL_LOCKS_EXCLUDED(offers_mu_);

  PieceStore* const store_;
  const PeerServiceOptions options_;

  TicketGate gate_;  // which calls are served

  mutable absl::Mutex mu_;
  UploadShaper<PieceCall> shaper_ ABSL_GUARDED_BY(mu_);
  bool pump_timer_ ABSL_GUARDED_BY(mu_) = false;  // a PumpSends is scheduled
  uint32_t calls_ ABSL_GUARDED_BY(mu_) = 0;
  // By allowance: "user from address".
  std::map<std::string, uint32_t> calls_by_allowance_ ABSL_GUARDED_BY(mu_);
  std::set<BitfieldCall*> bitfield_calls_ ABSL_GUARDED_BY(mu_);
  std::set<PieceCall*> piece_calls_ ABSL_GUARDED_BY(mu_);
  ReadBudget<PieceCall> budget_ ABSL_GUARDED_BY(mu_);

  struct Sent {
    uint64_t bytes = 0;
    uint64_t bytes_at_tick = 0;  // at the last Housekeep, for the rate
    double rate = 0;
  };
  std::map<std::pair<std::string, ShareKey>, Sent> sent_ ABSL_GUARDED_BY(mu_);
  absl::Time last_tick_ ABSL_GUARDED_BY(mu_) = absl::Now();

  // By share held whole, while bitfield calls read it; a call stays alive
  // while it is in its book.
  absl::Mutex offers_mu_;
  std::map<ShareKey, OfferBook> offers_ ABSL_GUARDED_BY(offers_mu_);

  WorkQueue work_;  // last: its threads stop before the rest goes
};

}  // namespace groupshare::peer

#endif  // GROUPSHARE_SERVICES_PEER_PEER_SERVICE_H_
