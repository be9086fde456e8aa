#include "services/peer/ticket_gate.h"

#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/status_macros.h"

namespace groupshare::peer {
namespace {

constexpr size_t kMaxCachedTickets = 1024;

}  // namespace

void TicketGate::SetVerifier(std::shared_ptr<const TicketVerifier> verifier) {
  absl::MutexLock lock(&mu_);
  verifier_ = std::move(verifier);
  verified_.clear();
}

void TicketGate::SetSelfAddress(const std::string& address) {
  absl::MutexLock lock(&mu_);
  self_address_ = address;
  verified_.clear();
}

void TicketGate::Shutdown() {
  absl::MutexLock lock(&mu_);
  shutdown_ = true;
}

absl::StatusOr<Ticket> TicketGate::Authorize(const std::string& ticket,
                                             const std::string& group_id,
                                             const std::string& file_sha1,
                                             const std::optional<std::string>& caller) {
  std::shared_ptr<const TicketVerifier> verifier;
  std::optional<Ticket> cached;
  std::string self;
  {
    absl::MutexLock lock(&mu_);
    if (shutdown_) return absl::UnavailableError("this peer is shutting down");
    verifier = verifier_;
    self = self_address_;
    if (auto it = verified_.find(ticket); it != verified_.end()) cached = it->second;
  }
  if (verifier == nullptr) {
    return absl::UnavailableError("this peer is logged out and shares nothing now");
  }
  const absl::Time now = now_();
  Ticket t;
  if (cached.has_value() && !cached->ExpiredAt(now)) {
    t = *std::move(cached);
  } else {
    ASSIGN_OR_RETURN(t, verifier->Verify(ticket, now));
    absl::MutexLock lock(&mu_);
    if (verifier_ == verifier) {
      if (verified_.size() >= kMaxCachedTickets) verified_.clear();
      verified_[ticket] = t;
    }
  }
  if (t.peer != self) {
    return absl::PermissionDeniedError(absl::StrCat(
        "download ticket refused: it is made out to the peer at ", t.peer, ", not to this one (",
        self, "); ask the tracker for this peer's ticket (GetFilePeers)"));
  }
  if (caller.has_value() && *caller != t.user_id) {
    return absl::PermissionDeniedError(absl::StrCat(
        "download ticket refused: it was issued to '", t.user_id,
        "', but the caller's certificate names '", *caller,
        "'; a ticket serves only the member it names"));
  }
  if (t.group_id != group_id || t.file_sha1 != file_sha1) {
    return absl::PermissionDeniedError(
        "download ticket refused: it is for another group or file");
  }
  return t;
}

}  // namespace groupshare::peer
