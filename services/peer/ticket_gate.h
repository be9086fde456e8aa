// Which calls a peer serves: those whose ticket the tracker signed (with a
// key of the verifier it was given at login), made out to this peer's
// address, for the group and file the call names, and not expired. Verified
// tickets are remembered (up to 1024), so that a downloader's many calls
// cost one signature check.
//
// Thread-safe.
#ifndef GROUPSHARE_SERVICES_PEER_TICKET_GATE_H_
#define GROUPSHARE_SERVICES_PEER_TICKET_GATE_H_

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "core/ticket.h"

namespace groupshare::peer {

class TicketGate {
 public:
  explicit TicketGate(std::function<absl::Time()> now = [] { return absl::Now(); })
      : now_(std::move(now)) {}

  // The tracker's keys; null while logged out (every call is refused).
  void SetVerifier(std::shared_ptr<const TicketVerifier> verifier) ABSL_LOCKS_EXCLUDED(mu_);
  // host:port of this peer, as tickets name it.
  void SetSelfAddress(const std::string& address) ABSL_LOCKS_EXCLUDED(mu_);
  // From now on every call is refused (UNAVAILABLE).
  void Shutdown() ABSL_LOCKS_EXCLUDED(mu_);

  // The ticket, when it admits a call for `group_id` and `file_sha1` here
  // from `caller`: the member the call's certificate names, who must be the
  // one the ticket was issued to (nullopt over plaintext, where the ticket
  // alone admits). UNAVAILABLE when logged out or shutting down;
  // PERMISSION_DENIED saying what is wrong with the ticket otherwise.
  absl::StatusOr<Ticket> Authorize(const std::string& ticket, const std::string& group_id,
                                   const std::string& file_sha1,
                                   const std::optional<std::string>& caller = std::nullopt)
      ABSL_LOCKS_EXCLUDED(mu_);

 private:
  const std::function<absl::Time()> now_;
  absl::Mutex mu_;
  std::shared_ptr<const TicketVerifier> verifier_ ABSL_GUARDED_BY(mu_);
  std::string self_address_ ABSL_GUARDED_BY(mu_);
  bool shutdown_ ABSL_GUARDED_BY(mu_) = false;
  std::map<std::string, Ticket> verified_ ABSL_GUARDED_BY(mu_);
};

}  // namespace groupshare::peer

#endif  // GROUPSHARE_SERVICES_PEER_TICKET_GATE_H_
