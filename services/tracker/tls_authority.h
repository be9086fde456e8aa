// The trackers' TLS identities, kept in the store beside the ticket keys so
// that every tracker over one database has the same ones:
// - the tracker's own key and self-signed certificate, by whose SHA-256
//   fingerprint clients know their trackers (pinned in tracker_info.txt, or
//   trusted on first use);
// - the peer CA, which certifies each logged-in client's key for a short
//   time, so that members authenticate each other with mutual TLS.
//
// Thread-safe after construction.
#ifndef GROUPSHARE_SERVICES_TRACKER_TLS_AUTHORITY_H_
#define GROUPSHARE_SERVICES_TRACKER_TLS_AUTHORITY_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "core/certificates.h"
#include "services/tracker/store.h"

namespace groupshare::tracker {

// The tracker's key and certificate, made at the first start on a new
// database. The certificate names "groupshare-tracker", "localhost" and
// the loopback addresses, and `host` when given (a tracker_info.txt host).
absl::StatusOr<KeyAndCert> LoadTrackerIdentity(Store* store, const std::string& host,
                                               absl::Time now);

// A certificate issued to one client.
struct PeerCertificate {
  std::string pem;
  absl::Time expires;
};

// When peer CAs sign and retire: like the ticket keys (TicketKeyTimes), a
// new CA is announced `lead` before it signs, so that every live client
// trusts it before a certificate of it appears, and the CA it replaces is
// trusted for a certificate's lifetime more.
struct PeerCaTimes {
  absl::Duration certificate_ttl = absl::Hours(1);
  absl::Duration lead = absl::Seconds(35);
  absl::Duration refresh = absl::Seconds(5);  // how often the store is read again
};

// One peer CA and when it signs from.
struct PeerCa {
  absl::Time signs_from;
  KeyAndCert pair;
};

class PeerAuthority {
 public:
  // Reads the peer CAs from `store`, making the first on a new database.
  static absl::StatusOr<std::unique_ptr<PeerAuthority>> Load(Store* store, PeerCaTimes times,
                                                             absl::Time now);
  // Adds a new CA that signs from now + lead, and drops CAs no certificate
  // can need any more. Returns when the new CA signs.
  static absl::StatusOr<absl::Time> Rotate(Store* store, PeerCaTimes times, absl::Time now);

  // A certificate for `public_key_pem` (ECDSA P-256), valid for
  // certificate_ttl, naming `user_id` (the common name) and `client_id`
  // (URI "groupshare:client:<id>"), by the CA that signs at `now`.
  // INVALID_ARGUMENT for a key that is not one.
  absl::StatusOr<PeerCertificate> Issue(const std::string& user_id,
                                        const std::string& client_id,
                                        const std::string& public_key_pem, absl::Time now)
      ABSL_LOCKS_EXCLUDED(mu_);
  // The CA certificates peers must trust at `now`, newest first.
  std::vector<std::string> CaCertificates(absl::Time now) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  PeerAuthority(Store* store, PeerCaTimes times) : store_(store), times_(times) {}
  // Reads the CAs again once `refresh` has passed; keeps them on failure.
  void MaybeRefresh(absl::Time now) ABSL_LOCKS_EXCLUDED(mu_);

  Store* const store_;
  const PeerCaTimes times_;
  absl::Mutex mu_;
  std::vector<PeerCa> cas_ ABSL_GUARDED_BY(mu_);  // oldest first
  absl::Time read_at_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
};

// The largest public key PEM a client may send.
inline constexpr size_t kMaxPublicKeyPem = 1024;

}  // namespace groupshare::tracker

#endif  // GROUPSHARE_SERVICES_TRACKER_TLS_AUTHORITY_H_
