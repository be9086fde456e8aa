#include "services/peer/peer_identity.h"

#include <grpc/grpc_security_constants.h>
#include <grpcpp/security/auth_context.h>
#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_certificate_verifier.h>
#include <grpcpp/security/tls_credentials_options.h>
#include <grpcpp/server_context.h>

#include <sys/socket.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "core/certificates.h"
#include "core/read_file.h"
#include "core/status_macros.h"
#include "services/common/process.h"
#include "services/common/sockets.h"

namespace groupshare::peer {
namespace {

namespace gx = ::grpc::experimental;

// How often the peer service reads its certificate files again. gRPC
// allows no less than a second.
constexpr int kReloadSeconds = 1;

// What a state file holds; empty when there is none yet.
std::string ReadText(const std::string& path) { return ReadFileText(path, "").value_or(""); }

// Accepts a holder only when its certificate (whose chain gRPC verified
// against the peer CA) names the member the tracker listed.
class HolderVerifier final : public gx::ExternalCertificateVerifier {
 public:
  explicit HolderVerifier(std::string user_id) : user_id_(std::move(user_id)) {}

  bool Verify(gx::TlsCustomVerificationCheckRequest* request,
              std::function<void(grpc::Status)> /*callback*/,
              grpc::Status* sync_status) override {
    const grpc::string_ref name = request->common_name();
    if (absl::string_view(name.data(), name.size()) == user_id_) {
      *sync_status = grpc::Status::OK;
    } else {
      *sync_status = grpc::Status(
          grpc::StatusCode::PERMISSION_DENIED,
          absl::StrCat("the holder's certificate names '", std::string(name.data(), name.size()),
                       "', not '", user_id_, "' whom the tracker listed"));
    }
    return true;
  }
  void Cancel(gx::TlsCustomVerificationCheckRequest*) override {}

 private:
  const std::string user_id_;
};

// The SHA-256 (hex) of the certificate the TLS server at `address` shows,
// connecting as `key_pem`/`cert_pem`.
absl::StatusOr<std::string> ServedCertificate(const std::string& address,
                                              const std::string& key_pem,
                                              const std::string& cert_pem) {
  // A server without its certificate yet may hold a handshake unanswered.
  const absl::Duration patience = absl::Milliseconds(500);
  absl::StatusOr<int> fd = DialTcp(address, patience);
  if (!fd.ok()) return fd.status();
  const timeval wait = absl::ToTimeval(patience);
  absl::StatusOr<std::string> served =
      setsockopt(*fd, SOL_SOCKET, SO_RCVTIMEO, &wait, sizeof wait) == 0 &&
              setsockopt(*fd, SOL_SOCKET, SO_SNDTIMEO, &wait, sizeof wait) == 0
          ? ServerFingerprint(*fd, key_pem, cert_pem)
          : absl::UnavailableError(absl::StrCat("cannot connect to ", address));
  close(*fd);
  return served;
}

}  // namespace

absl::Status PeerIdentity::AwaitServed(const std::string& address, absl::Duration timeout) {
  std::string cert;
  {
    absl::MutexLock lock(&mu_);
    if (served_ || cert_pem_.empty()) return absl::OkStatus();
    cert = cert_pem_;
  }
  ASSIGN_OR_RETURN(CertificateInfo info, ReadCertificate(cert));
  const absl::Time deadline = absl::Now() + timeout;
  for (;;) {
    absl::StatusOr<std::string> served = ServedCertificate(address, key_pem_, cert);
    if (served.ok() && *served == info.sha256) break;
    if (absl::Now() >= deadline) {
      return absl::DeadlineExceededError(absl::StrCat(
          "the peer service at ", address, " does not show its new certificate yet"));
    }
    absl::SleepFor(absl::Milliseconds(50));
  }
  absl::MutexLock lock(&mu_);
  if (cert_pem_ == cert) served_ = true;
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<PeerIdentity>> PeerIdentity::Open(const std::string& state_dir) {
  const std::string key_path = state_dir + "/peer-key.pem";
  std::string key_pem = ReadText(key_path);
  if (key_pem.empty() || !PublicKeyOf(key_pem).ok()) {
    ASSIGN_OR_RETURN(key_pem, NewPrivateKey());
    RETURN_IF_ERROR(WriteFileAtomically(key_path, key_pem, 0600));
  }
  ASSIGN_OR_RETURN(std::string public_key, PublicKeyOf(key_pem));
  std::unique_ptr<PeerIdentity> identity(
      new PeerIdentity(state_dir, std::move(key_pem), std::move(public_key)));
  // A certificate from an earlier login, while it lasts, serves until the
  // next one comes.
  const std::string cert = ReadText(identity->cert_path_);
  if (KeyMatches(identity->key_pem_, cert)) {
    absl::MutexLock lock(&identity->mu_);
    identity->cert_pem_ = cert;
    identity->ca_pem_ = ReadText(identity->ca_path_);
  }
  return identity;
}

PeerIdentity::PeerIdentity(std::string dir, std::string key_pem, std::string public_key_pem)
    : key_path_(dir + "/peer-key.pem"),
      cert_path_(dir + "/peer-cert.pem"),
      ca_path_(dir + "/peer-ca.pem"),
      key_pem_(std::move(key_pem)),
      public_key_pem_(std::move(public_key_pem)) {}

absl::Status PeerIdentity::Accept(const std::string& cert_pem,
                                  const std::vector<std::string>& ca_pems) {
  const std::string ca = absl::StrJoin(ca_pems, "");
  absl::Time expires = absl::InfinitePast();
  if (!cert_pem.empty()) {
    if (!KeyMatches(key_pem_, cert_pem)) {
      return absl::InvalidArgumentError("the tracker issued a certificate for another key");
    }
    ASSIGN_OR_RETURN(CertificateInfo info, ReadCertificate(cert_pem));
    expires = info.not_after;
  }
  absl::MutexLock lock(&mu_);
  // The CA file first: a certificate the service shows is one its callers
  // can check.
  if (!ca.empty() && ca != ca_pem_) {
    RETURN_IF_ERROR(WriteFileAtomically(ca_path_, ca));
    ca_pem_ = ca;
  }
  if (!cert_pem.empty() && cert_pem != cert_pem_) {
    RETURN_IF_ERROR(WriteFileAtomically(cert_path_, cert_pem));
    cert_pem_ = cert_pem;
    served_ = false;
    issued_ = absl::Now();
    expires_ = expires;
  }
  return absl::OkStatus();
}

std::string PeerIdentity::RenewalKey(absl::Time now) const {
  absl::MutexLock lock(&mu_);
  const bool due = cert_pem_.empty() || expires_ == absl::InfinitePast() ||
                   now >= issued_ + (expires_ - issued_) / 2;
  return due ? public_key_pem_ : "";
}

std::shared_ptr<grpc::ServerCredentials> PeerIdentity::ServerCredentials() const {
  auto files = std::make_shared<gx::FileWatcherCertificateProvider>(key_path_, cert_path_,
                                                                    ca_path_, kReloadSeconds);
  gx::TlsServerCredentialsOptions options(files);
  options.watch_root_certs();
  options.watch_identity_key_cert_pairs();
  options.set_cert_request_type(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  return gx::TlsServerCredentials(options);
}

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> PeerIdentity::LinkCredentials(
    const std::string& user_id) const {
  std::string cert, ca;
  {
    absl::MutexLock lock(&mu_);
    cert = cert_pem_;
    ca = ca_pem_;
  }
  if (cert.empty() || ca.empty()) {
    return absl::UnavailableError("no peer certificate yet: log in first");
  }
  gx::TlsChannelCredentialsOptions options;
  options.set_certificate_provider(std::make_shared<gx::StaticDataCertificateProvider>(
      ca, std::vector<gx::IdentityKeyCertPair>{{key_pem_, cert}}));
  options.watch_root_certs();
  options.watch_identity_key_cert_pairs();
  // The chain is checked against the peer CA; the name is the member's,
  // not the address's.
  options.set_check_call_host(false);
  options.set_certificate_verifier(
      gx::ExternalCertificateVerifier::Create<HolderVerifier>(user_id));
  return gx::TlsCredentials(options);
}

absl::StatusOr<KeyAndCert> PeerIdentity::Current() const {
  absl::MutexLock lock(&mu_);
  if (cert_pem_.empty()) return absl::UnavailableError("no peer certificate yet: log in first");
  return KeyAndCert{key_pem_, cert_pem_};
}

std::optional<std::string> PeerIdentity::CertifiedUser(const grpc::ServerContextBase& context) {
  std::shared_ptr<const grpc::AuthContext> auth = context.auth_context();
  if (auth == nullptr) return std::nullopt;
  std::vector<grpc::string_ref> names = auth->FindPropertyValues(GRPC_X509_CN_PROPERTY_NAME);
  std::vector<grpc::string_ref> type =
      auth->FindPropertyValues(GRPC_TRANSPORT_SECURITY_TYPE_PROPERTY_NAME);
  if (names.empty()) {
    if (!type.empty() && std::string(type[0].data(), type[0].size()) == "ssl") return "";
    return std::nullopt;
  }
  return std::string(names[0].data(), names[0].size());
}

std::optional<std::string> PeerIdentity::CertifiedClient(const grpc::ServerContextBase& context) {
  std::shared_ptr<const grpc::AuthContext> auth = context.auth_context();
  if (auth == nullptr) return std::nullopt;
  constexpr absl::string_view kPrefix = "groupshare:client:";
  for (const grpc::string_ref& uri : auth->FindPropertyValues(GRPC_PEER_URI_PROPERTY_NAME)) {
    absl::string_view text(uri.data(), uri.size());
    if (absl::ConsumePrefix(&text, kPrefix) && !text.empty()) return std::string(text);
  }
  return std::nullopt;
}

}  // namespace groupshare::peer
