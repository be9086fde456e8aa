// A client's identity among the members, for mutual TLS between peers:
// - its key, made once and kept in the state folder (peer-key.pem, 0600);
// - the certificate the tracker issues for that key at login, renewed with
//   the keep-alives (peer-cert.pem), naming the user and the client;
// - the peer CA certificates that members' certificates are checked
//   against (peer-ca.pem).
// The peer service serves from those files, read again every second; a
// link to a holder presents the certificate and accepts only a holder whose
// certificate names the member the tracker listed.
//
// Thread-safe.
#ifndef GROUPSHARE_SERVICES_PEER_PEER_IDENTITY_H_
#define GROUPSHARE_SERVICES_PEER_PEER_IDENTITY_H_

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <grpcpp/security/credentials.h>
#include <grpcpp/security/server_credentials.h>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "core/certificates.h"

namespace groupshare::peer {

class PeerIdentity {
 public:
  // Reads the key from `state_dir`, making it the first time.
  static absl::StatusOr<std::unique_ptr<PeerIdentity>> Open(const std::string& state_dir);

  const std::string& public_key_pem() const { return public_key_pem_; }

  // Takes a certificate the tracker issued (empty: keeps the one it has)
  // and the CA certificates of now. INVALID_ARGUMENT for a certificate
  // that is not for this key.
  absl::Status Accept(const std::string& cert_pem, const std::vector<std::string>& ca_pems)
      ABSL_LOCKS_EXCLUDED(mu_);
  // The public key when the certificate should be renewed (none yet, or
  // past half its life at `now`); empty otherwise.
  std::string RenewalKey(absl::Time now) const ABSL_LOCKS_EXCLUDED(mu_);

  // Mutual TLS for the peer service: it shows this client's certificate and
  // admits only callers certified by the peer CA.
  std::shared_ptr<grpc::ServerCredentials> ServerCredentials() const;
  // For a link to a holder that must be `user_id`. UNAVAILABLE before the
  // tracker issued a certificate.
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> LinkCredentials(
      const std::string& user_id) const ABSL_LOCKS_EXCLUDED(mu_);

  // This client's key and certificate, to show a relay. UNAVAILABLE before
  // the tracker issued a certificate.
  absl::StatusOr<KeyAndCert> Current() const ABSL_LOCKS_EXCLUDED(mu_);

  // Waits until the peer service at `address` (this client's) shows the
  // newest certificate: it reads its files again every second, and a
  // member told of a share before then would be refused. OK at once when
  // it was seen already; DEADLINE_EXCEEDED after `timeout`.
  absl::Status AwaitServed(const std::string& address, absl::Duration timeout)
      ABSL_LOCKS_EXCLUDED(mu_);

  // The caller a peer service call came over, by the certificate its
  // connection showed: the user its common name names. Null for a
  // connection that showed none (plaintext).
  static std::optional<std::string> CertifiedUser(const grpc::ServerContextBase& context);
  // The client id its certificate names ("groupshare:client:<id>"); null
  // without one.
  static std::optional<std::string> CertifiedClient(const grpc::ServerContextBase& context);

 private:
  PeerIdentity(std::string dir, std::string key_pem, std::string public_key_pem);

  const std::string key_path_, cert_path_, ca_path_;
  const std::string key_pem_;
  const std::string public_key_pem_;
  mutable absl::Mutex mu_;
  std::string cert_pem_ ABSL_GUARDED_BY(mu_);
  std::string ca_pem_ ABSL_GUARDED_BY(mu_);  // the CA certificates, back to back
  absl::Time issued_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  absl::Time expires_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  bool served_ ABSL_GUARDED_BY(mu_) = false;  // cert_pem_ was seen served
};

}  // namespace groupshare::peer

#endif  // GROUPSHARE_SERVICES_PEER_PEER_IDENTITY_H_
