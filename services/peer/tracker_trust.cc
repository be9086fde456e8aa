#include "services/peer/tracker_trust.h"

#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_certificate_verifier.h>
#include <grpcpp/security/tls_credentials_options.h>

#include <fstream>
#include <sstream>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "core/certificates.h"
#include "core/log.h"
#include "core/status_macros.h"
#include "services/common/grpc_status.h"
#include "services/common/process.h"

namespace groupshare::peer {
namespace {

namespace gx = ::grpc::experimental;

// Runs TrackerTrust::Check on each handshake with one tracker.
class FingerprintVerifier final : public gx::ExternalCertificateVerifier {
 public:
  FingerprintVerifier(std::shared_ptr<TrackerTrust> trust, std::string address, std::string pin)
      : trust_(std::move(trust)), address_(std::move(address)), pin_(std::move(pin)) {}

  bool Verify(gx::TlsCustomVerificationCheckRequest* request,
              std::function<void(grpc::Status)> /*callback*/,
              grpc::Status* sync_status) override {
    const grpc::string_ref cert = request->peer_cert();
    *sync_status = ToGrpcStatus(
        trust_->Check(address_, pin_, absl::string_view(cert.data(), cert.size())));
    return true;
  }
  void Cancel(gx::TlsCustomVerificationCheckRequest*) override {}

 private:
  const std::shared_ptr<TrackerTrust> trust_;
  const std::string address_;
  const std::string pin_;
};

std::map<std::string, std::string> ReadKnown(const std::string& path) {
  std::map<std::string, std::string> known;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    std::vector<std::string> fields =
        absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    if (fields.size() == 2 && fields[0][0] != '#') {
      known[fields[0]] = absl::AsciiStrToLower(fields[1]);
    }
  }
  return known;
}

}  // namespace

absl::StatusOr<std::shared_ptr<TrackerTrust>> TrackerTrust::Create(std::string known_path,
                                                                   std::string ca_pem,
                                                                   std::string noun,
                                                                   std::string pins) {
  CertificateRequest request;
  request.common_name = "groupshare unused root";
  request.not_before = absl::Now() - absl::Hours(1);
  request.not_after = absl::Now() + absl::Hours(24);
  request.is_ca = true;
  ASSIGN_OR_RETURN(KeyAndCert unused, SelfSigned(request));
  auto known = ReadKnown(known_path);
  return std::make_shared<TrackerTrust>(Private{}, std::move(known_path), std::move(ca_pem),
                                        std::move(noun), std::move(pins),
                                        std::move(unused.cert_pem), std::move(known));
}

TrackerTrust::TrackerTrust(Private, std::string known_path, std::string ca_pem,
                           std::string noun, std::string pins, std::string unused_root,
                           std::map<std::string, std::string> known)
    : known_path_(std::move(known_path)),
      noun_(std::move(noun)),
      pins_(std::move(pins)),
      ca_pem_(std::move(ca_pem)),
      unused_root_(std::move(unused_root)),
      known_(std::move(known)) {}

std::shared_ptr<grpc::ChannelCredentials> TrackerTrust::CredentialsFor(
    const TrackerAddress& tracker, const KeyAndCert* identity) {
  if (tracker.sha256.empty() && !ca_pem_.empty() && identity == nullptr) {
    grpc::SslCredentialsOptions options;
    options.pem_root_certs = ca_pem_;
    return grpc::SslCredentials(options);
  }
  gx::TlsChannelCredentialsOptions options;
  options.set_verify_server_certs(false);  // the fingerprint says it all
  options.set_check_call_host(false);
  std::vector<gx::IdentityKeyCertPair> pairs;
  if (identity != nullptr) pairs.push_back({identity->key_pem, identity->cert_pem});
  options.set_certificate_provider(
      std::make_shared<gx::StaticDataCertificateProvider>(unused_root_, pairs));
  options.watch_root_certs();
  if (identity != nullptr) options.watch_identity_key_cert_pairs();
  // The verifier holds this object as long as a channel may handshake.
  options.set_certificate_verifier(gx::ExternalCertificateVerifier::Create<FingerprintVerifier>(
      shared_from_this(), tracker.ToString(), tracker.sha256));
  return grpc::experimental::TlsCredentials(options);
}

absl::Status TrackerTrust::Check(const std::string& address, const std::string& pin,
                                 absl::string_view cert_pem) {
  absl::StatusOr<CertificateInfo> info = ReadCertificate(cert_pem);
  if (!info.ok()) return absl::PermissionDeniedError(absl::StrCat("the ", noun_, " showed no certificate"));
  absl::MutexLock lock(&mu_);
  std::string refusal;
  if (!pin.empty()) {
    if (info->sha256 == pin) {
      refused_.erase(address);
      return absl::OkStatus();
    }
    refusal = absl::StrCat(noun_, " ", address, " showed certificate sha256=", info->sha256,
                           ", but ", pins_, " pins sha256=", pin,
                           ": refused. If its certificate was replaced on purpose, pin the new "
                           "one (the ", noun_, " prints it at start).");
  } else {
    auto it = known_.find(address);
    if (it == known_.end()) {
      known_[address] = info->sha256;
      std::string text;
      for (const auto& [a, sha] : known_) absl::StrAppend(&text, a, " ", sha, "\n");
      if (absl::Status s = WriteFileAtomically(known_path_, text, 0600); !s.ok()) {
        GS_LOG(kWarning) << "cannot record the " << noun_ << "'s fingerprint: " << s;
      }
      GS_LOG(kInfo) << "trusting " << noun_ << " " << address << " on first use: sha256=" << info->sha256
                    << " (recorded in " << known_path_ << ")";
      return absl::OkStatus();
    }
    if (it->second == info->sha256) {
      refused_.erase(address);
      return absl::OkStatus();
    }
    refusal = absl::StrCat(
        "WARNING: ", noun_, " ", address, " showed certificate sha256=", info->sha256,
        ", but this client first met it as sha256=", it->second, " (recorded in ", known_path_,
        "): refused. Someone may be posing as the ", noun_, ". If its certificate was replaced "
        "on purpose, delete that line, or pin the new one in ", pins_, ".");
  }
  if (refused_[address] != refusal) GS_LOG(kError) << refusal;
  refused_[address] = refusal;
  return absl::PermissionDeniedError(refusal);
}

std::string TrackerTrust::Refusal(const std::string& address) const {
  absl::MutexLock lock(&mu_);
  auto it = refused_.find(address);
  return it == refused_.end() ? "" : it->second;
}

}  // namespace groupshare::peer
