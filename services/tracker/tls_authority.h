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

class PeerAuthority {
 public:
  // Reads the peer CA from `store`, making it on a new database.
  // Certificates it issues are valid for `lifetime`.
  static absl::StatusOr<std::unique_ptr<PeerAuthority>> Load(Store* store,
                                                             absl::Duration lifetime,
                                                             absl::Time now);

  // A certificate for `public_key_pem` (ECDSA P-256) naming `user_id` (the
  // common name) and `client_id` (URI "groupshare:client:<id>").
  // INVALID_ARGUMENT for a key that is not one.
  absl::StatusOr<PeerCertificate> Issue(const std::string& user_id,
                                        const std::string& client_id,
                                        const std::string& public_key_pem, absl::Time now) const;
  // The CA certificates peers accept, newest first.
  std::vector<std::string> CaCertificates() const { return {ca_.cert_pem}; }

 private:
  PeerAuthority(KeyAndCert ca, absl::Duration lifetime) : ca_(std::move(ca)), lifetime_(lifetime) {}
  const KeyAndCert ca_;
  const absl::Duration lifetime_;
};

// The largest public key PEM a client may send.
inline constexpr size_t kMaxPublicKeyPem = 1024;

}  // namespace groupshare::tracker

#endif  // GROUPSHARE_SERVICES_TRACKER_TLS_AUTHORITY_H_
