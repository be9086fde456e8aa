// How a client knows its trackers over TLS, in this order:
// - a fingerprint pinned in tracker_info.txt ("host:port sha256=<hex>");
// - CA roots (--tls_ca), which check the tracker's name as well;
// - trust on first use: the fingerprint a tracker shows first is recorded
//   in the client's state folder and held to from then on, as ssh holds to
//   known_hosts. A changed certificate is refused, loudly.
//
// Thread-safe. Channels made from its credentials may outlive it.
#ifndef GROUPSHARE_SERVICES_PEER_TRACKER_TRUST_H_
#define GROUPSHARE_SERVICES_PEER_TRACKER_TRUST_H_

#include <map>
#include <memory>
#include <string>

#include <grpcpp/security/credentials.h>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "core/certificates.h"
#include "core/tracker_info.h"

namespace groupshare::peer {

class TrackerTrust : public std::enable_shared_from_this<TrackerTrust> {
 public:
  // `known_path`: the file of fingerprints trusted on first use ("host:port
  // <sha256 hex>" a line), made when the first is recorded. `ca_pem`: roots
  // that verify every tracker without a pin; empty for none.
  // `noun` and `pins`: what the servers are and where their pins are
  // written, for the messages ("tracker", "tracker_info.txt").
  static absl::StatusOr<std::shared_ptr<TrackerTrust>> Create(
      std::string known_path, std::string ca_pem = "", std::string noun = "tracker",
      std::string pins = "tracker_info.txt");

  // TLS to `server`; presenting `identity` (a member's key and certificate)
  // when given.
  std::shared_ptr<grpc::ChannelCredentials> CredentialsFor(const TrackerAddress& server,
                                                           const KeyAndCert* identity = nullptr);

  // Why `address`'s certificate was refused last; empty when it was not.
  std::string Refusal(const std::string& address) const ABSL_LOCKS_EXCLUDED(mu_);

  // The check a handshake with `address` runs on the certificate it was
  // shown (PEM): OK, or PERMISSION_DENIED naming both fingerprints.
  absl::Status Check(const std::string& address, const std::string& pin,
                     absl::string_view cert_pem) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Private {};

 public:
  TrackerTrust(Private, std::string known_path, std::string ca_pem, std::string noun,
               std::string pins, std::string unused_root,
               std::map<std::string, std::string> known);

 private:
  const std::string known_path_;
  const std::string noun_;
  const std::string pins_;
  const std::string ca_pem_;
  // gRPC 1.51 wants root certificates even where it verifies no chain.
  const std::string unused_root_;
  mutable absl::Mutex mu_;
  std::map<std::string, std::string> known_ ABSL_GUARDED_BY(mu_);     // address -> sha256
  std::map<std::string, std::string> refused_ ABSL_GUARDED_BY(mu_);   // address -> why
};

}  // namespace groupshare::peer

#endif  // GROUPSHARE_SERVICES_PEER_TRACKER_TRUST_H_
