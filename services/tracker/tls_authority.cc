#include "services/tracker/tls_authority.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "core/status_macros.h"

namespace groupshare::tracker {
namespace {

constexpr char kTrackerIdentityMeta[] = "tls_identity";
constexpr char kPeerCaMeta[] = "peer_ca";
constexpr char kCertBegin[] = "-----BEGIN CERTIFICATE-----";

// Kept as the key's PEM then the certificate's.
std::string Encode(const KeyAndCert& pair) { return pair.key_pem + pair.cert_pem; }

absl::StatusOr<KeyAndCert> Decode(const std::string& text, const char* what) {
  const size_t split = text.find(kCertBegin);
  if (split == std::string::npos || split == 0) {
    return absl::DataLossError(absl::StrCat("the stored ", what, " is damaged"));
  }
  KeyAndCert pair{text.substr(0, split), text.substr(split)};
  if (!KeyMatches(pair.key_pem, pair.cert_pem)) {
    return absl::DataLossError(absl::StrCat("the stored ", what, "'s key and certificate differ"));
  }
  return pair;
}

// Made once for a database; another tracker making its own at the same
// moment loses the race and takes the stored one.
absl::StatusOr<KeyAndCert> GetOrMake(Store* store, const char* meta, const char* what,
                                     const CertificateRequest& request) {
  if (auto stored = store->GetMeta(meta); stored.ok()) return Decode(*stored, what);
  ASSIGN_OR_RETURN(KeyAndCert fresh, SelfSigned(request));
  ASSIGN_OR_RETURN(std::string stored, store->GetOrPutMeta(meta, Encode(fresh)));
  return Decode(stored, what);
}

bool IsIpAddress(absl::string_view host) {
  if (host.empty()) return false;
  if (host.front() == '[') return true;
  return host.find_first_not_of("0123456789.") == absl::string_view::npos;
}

}  // namespace

absl::StatusOr<KeyAndCert> LoadTrackerIdentity(Store* store, const std::string& host,
                                               absl::Time now) {
  CertificateRequest request;
  request.common_name = "groupshare-tracker";
  request.dns_names = {"groupshare-tracker", "localhost"};
  request.ip_names = {"127.0.0.1", "::1"};
  if (!host.empty() && host != "localhost" && host != "127.0.0.1" && host != "[::1]") {
    if (IsIpAddress(host)) {
      std::string ip = host;
      if (ip.front() == '[') ip = ip.substr(1, ip.size() - 2);
      if (ip != "0.0.0.0" && ip != "::") request.ip_names.push_back(ip);
    } else {
      request.dns_names.push_back(host);
    }
  }
  // Known by its fingerprint, not its dates: long-lived.
  request.not_before = now - absl::Hours(1);
  request.not_after = now + absl::Hours(24 * 365 * 20);
  return GetOrMake(store, kTrackerIdentityMeta, "tracker TLS identity", request);
}

absl::StatusOr<std::unique_ptr<PeerAuthority>> PeerAuthority::Load(Store* store,
                                                                   absl::Duration lifetime,
                                                                   absl::Time now) {
  CertificateRequest request;
  request.common_name = "groupshare peer CA";
  request.is_ca = true;
  request.not_before = now - absl::Hours(1);
  request.not_after = now + absl::Hours(24 * 365 * 20);
  ASSIGN_OR_RETURN(KeyAndCert ca, GetOrMake(store, kPeerCaMeta, "peer CA", request));
  return std::unique_ptr<PeerAuthority>(new PeerAuthority(std::move(ca), lifetime));
}

absl::StatusOr<PeerCertificate> PeerAuthority::Issue(const std::string& user_id,
                                                     const std::string& client_id,
                                                     const std::string& public_key_pem,
                                                     absl::Time now) const {
  if (public_key_pem.size() > kMaxPublicKeyPem) {
    return absl::InvalidArgumentError(
        absl::StrCat("peer_public_key is over ", kMaxPublicKeyPem, " bytes"));
  }
  CertificateRequest request;
  request.common_name = user_id;
  if (!client_id.empty()) request.uri_names = {absl::StrCat("groupshare:client:", client_id)};
  // The user's name as a DNS name too, where it can be one: a generic TLS
  // client (grpcurl -servername <user>) then checks the member by name.
  if (user_id.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                "0123456789.-_") == std::string::npos) {
    request.dns_names = {user_id};
  }
  // A little slack for clocks that differ.
  request.not_before = now - absl::Minutes(5);
  request.not_after = now + lifetime_;
  absl::StatusOr<std::string> pem = groupshare::Issue(ca_, public_key_pem, request);
  if (pem.status().code() == absl::StatusCode::kInvalidArgument) {
    return absl::InvalidArgumentError(
        absl::StrCat("peer_public_key: ", pem.status().message()));
  }
  if (!pem.ok()) return pem.status();
  return PeerCertificate{*std::move(pem), request.not_after};
}

}  // namespace groupshare::tracker
