#include "services/tracker/tls_authority.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "core/log.h"
#include "core/status_macros.h"
#include "core/ticket.h"
#include "services/tracker/key_schedule.h"

namespace groupshare::tracker {
namespace {

constexpr char kTrackerIdentityMeta[] = "tls_identity";
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

}  // namespace

absl::StatusOr<KeyAndCert> LoadTrackerIdentity(Store* store, const std::string& host,
                                               absl::Time now) {
  const CertificateRequest request = ServerCertificateRequest("groupshare-tracker", host, now);
  return GetOrMake(store, kTrackerIdentityMeta, "tracker TLS identity", request);
}

namespace {

constexpr char kPeerCasMeta[] = "peer_cas";
constexpr char kCaSeparator[] = "-----END GROUPSHARE CA-----\n";

// Kept as, for each CA: its Unix second of signing on a line, its key's and
// certificate's PEM, and a separator line.
std::string EncodeCas(const std::vector<PeerCa>& cas) {
  std::string out;
  for (const PeerCa& ca : cas) {
    absl::StrAppend(&out, absl::ToUnixSeconds(ca.signs_from), "\n", Encode(ca.pair),
                    kCaSeparator);
  }
  return out;
}

absl::StatusOr<std::vector<PeerCa>> DecodeCas(const std::string& text) {
  std::vector<PeerCa> out;
  size_t at = 0;
  while (at < text.size()) {
    const size_t end = text.find(kCaSeparator, at);
    const size_t line = text.find('\n', at);
    int64_t seconds = 0;
    if (end == std::string::npos || line == std::string::npos || line > end ||
        !absl::SimpleAtoi(absl::string_view(text).substr(at, line - at), &seconds)) {
      return absl::DataLossError("the stored peer CAs are damaged");
    }
    ASSIGN_OR_RETURN(KeyAndCert pair, Decode(text.substr(line + 1, end - line - 1), "peer CA"));
    out.push_back({absl::FromUnixSeconds(seconds), std::move(pair)});
    at = end + std::strlen(kCaSeparator);
  }
  if (out.empty()) return absl::DataLossError("the stored peer CAs are empty");
  std::sort(out.begin(), out.end(),
            [](const PeerCa& a, const PeerCa& b) { return a.signs_from < b.signs_from; });
  return out;
}

absl::StatusOr<KeyAndCert> NewCa(absl::Time now) {
  CertificateRequest request;
  request.common_name = "groupshare peer CA";
  request.is_ca = true;
  request.not_before = now - absl::Hours(1);
  request.not_after = now + absl::Hours(24 * 365 * 20);
  return SelfSigned(request);
}

absl::StatusOr<std::vector<PeerCa>> ReadCas(Store* store, absl::Time now) {
  absl::StatusOr<std::string> value = store->GetMeta(kPeerCasMeta);
  if (value.status().code() == absl::StatusCode::kNotFound) {
    // A new database: its first CA signs from the beginning.
    ASSIGN_OR_RETURN(KeyAndCert fresh, NewCa(now));
    value = store->GetOrPutMeta(kPeerCasMeta, EncodeCas({{absl::UnixEpoch(), fresh}}));
  }
  if (!value.ok()) return value.status();
  return DecodeCas(*value);
}

}  // namespace

absl::StatusOr<std::unique_ptr<PeerAuthority>> PeerAuthority::Load(Store* store,
                                                                   PeerCaTimes times,
                                                                   absl::Time now) {
  ASSIGN_OR_RETURN(std::vector<PeerCa> cas, ReadCas(store, now));
  std::unique_ptr<PeerAuthority> authority(new PeerAuthority(store, times));
  absl::MutexLock lock(&authority->mu_);
  authority->cas_ = std::move(cas);
  authority->read_at_ = now;
  return authority;
}

absl::StatusOr<absl::Time> PeerAuthority::Rotate(Store* store, PeerCaTimes times,
                                                 absl::Time now) {
  ASSIGN_OR_RETURN(std::vector<PeerCa> records, ReadCas(store, now));
  std::vector<PeerCa> kept = Unretired(records, now, times.certificate_ttl);
  ASSIGN_OR_RETURN(KeyAndCert fresh, NewCa(now));
  const absl::Time signs_from = NextSignsFrom(kept, now, times.lead);
  kept.push_back({signs_from, std::move(fresh)});
  RETURN_IF_ERROR(store->PutMeta(kPeerCasMeta, EncodeCas(kept)));
  return signs_from;
}

void PeerAuthority::MaybeRefresh(absl::Time now) {
  {
    absl::MutexLock lock(&mu_);
    if (now - read_at_ < times_.refresh) return;
    read_at_ = now;  // one caller reads; the others go on with what is here
  }
  absl::StatusOr<std::vector<PeerCa>> cas = ReadCas(store_, now);
  if (!cas.ok()) {
    GS_LOG(kWarning) << "could not read the peer CAs again (the old ones stay): " << cas.status();
    return;
  }
  absl::MutexLock lock(&mu_);
  cas_ = *std::move(cas);
}

std::vector<std::string> PeerAuthority::CaCertificates(absl::Time now) {
  MaybeRefresh(now);
  absl::MutexLock lock(&mu_);
  std::vector<std::string> out;
  for (size_t i = cas_.size(); i-- > 0;) {
    if (!Retired(cas_, i, now, times_.certificate_ttl)) out.push_back(cas_[i].pair.cert_pem);
  }
  return out;
}

absl::StatusOr<PeerCertificate> PeerAuthority::Issue(const std::string& user_id,
                                                     const std::string& client_id,
                                                     const std::string& public_key_pem,
                                                     absl::Time now) {
  if (public_key_pem.size() > kMaxPublicKeyPem) {
    return absl::InvalidArgumentError(
        absl::StrCat("peer_public_key is over ", kMaxPublicKeyPem, " bytes"));
  }
  MaybeRefresh(now);
  KeyAndCert signer;
  {
    absl::MutexLock lock(&mu_);
    signer = SigningAt(cas_, now).pair;
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
  request.not_before = now - kClockSlack;
  request.not_after = now + times_.certificate_ttl;
  absl::StatusOr<std::string> pem = groupshare::Issue(signer, public_key_pem, request);
  if (pem.status().code() == absl::StatusCode::kInvalidArgument) {
    return absl::InvalidArgumentError(
        absl::StrCat("peer_public_key: ", pem.status().message()));
  }
  if (!pem.ok()) return pem.status();
  return PeerCertificate{*std::move(pem), request.not_after};
}

}  // namespace groupshare::tracker
