// groupshare.peer.v1.PeerService over the client's PieceStore. Every call
// must carry a ticket signed by the tracker for the requested group and
// file; the key that checks tickets arrives with the login and leaves with
// the logout.
//
// Thread-safe. Uses the synchronous API: a GetBitfield stream holds one
// server thread while it waits for new pieces.
#ifndef GROUPSHARE_SERVICES_PEER_PEER_SERVICE_H_
#define GROUPSHARE_SERVICES_PEER_PEER_SERVICE_H_

#include <map>
#include <memory>
#include <string>

#include "absl/synchronization/mutex.h"
#include "core/piece_store.h"
#include "core/ticket.h"
#include "groupshare/peer/v1/peer.grpc.pb.h"

namespace groupshare::peer {

namespace pv1 = ::groupshare::peer::v1;

class PeerServiceImpl final : public pv1::PeerService::Service {
 public:
  // `store` must outlive the service.
  explicit PeerServiceImpl(PieceStore* store) : store_(store) {}

  // Caps what all calls together send, in bytes a second; 0 (the default)
  // is no cap.
  void SetMaxUploadRate(uint64_t bytes_per_second) ABSL_LOCKS_EXCLUDED(mu_);

  // The key that verifies tickets; null (logged out) refuses every call.
  void SetTicketVerifier(std::shared_ptr<const TicketVerifier> verifier)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Ends the GetBitfield streams promptly, for a server shutting down.
  void Shutdown() ABSL_LOCKS_EXCLUDED(mu_);

  grpc::Status GetBitfield(grpc::ServerContext* ctx, const pv1::GetBitfieldRequest* req,
                           grpc::ServerWriter<pv1::BitfieldUpdate>* writer) override;
  grpc::Status GetPiece(grpc::ServerContext* ctx, const pv1::GetPieceRequest* req,
                        grpc::ServerWriter<pv1::PieceChunk>* writer) override;

 private:
  // The share the request may read: the ticket is valid now and names this
  // group and file. PERMISSION_DENIED otherwise.
  absl::StatusOr<ShareKey> Authorize(const std::string& ticket, const std::string& group_id,
                                     const std::string& file_sha1) ABSL_LOCKS_EXCLUDED(mu_);
  bool shutting_down() const ABSL_LOCKS_EXCLUDED(mu_);
  // Waits until `bytes` more may be sent under the upload cap.
  void Throttle(uint64_t bytes) ABSL_LOCKS_EXCLUDED(mu_);

  PieceStore* const store_;
  mutable absl::Mutex mu_;
  std::shared_ptr<const TicketVerifier> verifier_ ABSL_GUARDED_BY(mu_);
  // Tickets verified with the current key: a downloader sends the same one
  // with every piece, and checking a signature costs more than the lookup.
  std::map<std::string, Ticket> verified_ ABSL_GUARDED_BY(mu_);
  bool shutdown_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t max_rate_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time next_free_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();  // the cap's clock
};

}  // namespace groupshare::peer

#endif  // GROUPSHARE_SERVICES_PEER_PEER_SERVICE_H_
