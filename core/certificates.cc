#include "core/certificates.h"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <pthread.h>
#include <signal.h>

#include <memory>

#include "absl/strings/str_cat.h"
#include "core/crypto.h"
#include "core/openssl_ptr.h"
#include "core/status_macros.h"

namespace groupshare {
namespace {

using Bio = OpenSslPtr<BIO, BIO_free_all>;
using Pkey = EvpPkeyPtr;
using X509Ptr = OpenSslPtr<X509, X509_free>;
using Names = OpenSslPtr<GENERAL_NAMES, GENERAL_NAMES_free>;
using SslCtx = OpenSslPtr<SSL_CTX, SSL_CTX_free>;
using Ssl = OpenSslPtr<SSL, SSL_free>;

Bio ReadBio(absl::string_view text) {
  return Bio(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
}

std::string BioText(BIO* bio) {
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<size_t>(size));
}

absl::StatusOr<Pkey> ReadPrivateKey(absl::string_view pem) {
  Bio bio = ReadBio(pem);
  Pkey key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  if (!key) return absl::InvalidArgumentError("not a PEM private key");
  return key;
}

absl::StatusOr<Pkey> ReadPublicKey(absl::string_view pem) {
  Bio bio = ReadBio(pem);
  Pkey key(PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr));
  if (!key) return absl::InvalidArgumentError("not a PEM public key");
  return key;
}

absl::StatusOr<X509Ptr> ReadX509(absl::string_view pem) {
  Bio bio = ReadBio(pem);
  X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (!cert) return absl::InvalidArgumentError("not a PEM certificate");
  return cert;
}

std::string KeyPem(EVP_PKEY* key) {
  Bio bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr);
  return BioText(bio.get());
}

std::string CertPem(X509* cert) {
  Bio bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509(bio.get(), cert);
  return BioText(bio.get());
}

// The SHA-256 (hex) of `cert`'s DER encoding.
absl::StatusOr<std::string> Fingerprint(X509* cert) {
  unsigned char* der = nullptr;
  const int length = i2d_X509(cert, &der);
  if (length <= 0) return absl::InvalidArgumentError("cannot encode the certificate");
  std::string sha256 = HexEncode(
      Sha256Of(absl::string_view(reinterpret_cast<const char*>(der), static_cast<size_t>(length))));
  OPENSSL_free(der);
  return sha256;
}

// Holds SIGPIPE back on this thread while it lives (a write to a peer
// that closed would kill the process), and drops one raised meanwhile.
class NoSigpipe {
 public:
  NoSigpipe() {
    sigemptyset(&pipe_);
    sigaddset(&pipe_, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_, &old_);
  }
  ~NoSigpipe() {
    const timespec now{0, 0};
    while (sigtimedwait(&pipe_, nullptr, &now) > 0) {
    }
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }

 private:
  sigset_t pipe_, old_;
};

absl::Status AddExtension(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  if (ext == nullptr) return absl::InvalidArgumentError(absl::StrCat("bad extension ", value));
  const int added = X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
  return added == 1 ? absl::OkStatus() : absl::InternalError("X509_add_ext failed");
}

// Builds and signs a certificate for `subject_key` as `request` says.
// `issuer` is null for a self-signed one.
absl::StatusOr<std::string> Build(const CertificateRequest& request, EVP_PKEY* subject_key,
                                  X509* issuer, EVP_PKEY* signing_key) {
  X509Ptr cert(X509_new());
  if (!cert) return absl::InternalError("X509_new failed");
  X509_set_version(cert.get(), 2);  // v3
  unsigned char serial[16];
  if (RAND_bytes(serial, sizeof serial) != 1) return absl::InternalError("RAND_bytes failed");
  serial[0] &= 0x7f;  // positive
  BIGNUM* bn = BN_bin2bn(serial, sizeof serial, nullptr);
  BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert.get()));
  BN_free(bn);
  ASN1_TIME_set(X509_getm_notBefore(cert.get()), absl::ToTimeT(request.not_before));
  ASN1_TIME_set(X509_getm_notAfter(cert.get()), absl::ToTimeT(request.not_after));
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>(request.common_name.c_str()),
                             -1, -1, 0);
  X509_set_issuer_name(cert.get(),
                       issuer != nullptr ? X509_get_subject_name(issuer) : name);
  X509_set_pubkey(cert.get(), subject_key);
  X509* issuer_or_self = issuer != nullptr ? issuer : cert.get();

  std::string san;
  const auto add_names = [&san](const char* kind, const std::vector<std::string>& names) {
    for (const std::string& n : names) absl::StrAppend(&san, san.empty() ? "" : ",", kind, n);
  };
  add_names("DNS:", request.dns_names);
  add_names("IP:", request.ip_names);
  add_names("URI:", request.uri_names);
  const auto add = [&](int nid, const std::string& value, X509* by) {
    return AddExtension(cert.get(), by, nid, value);
  };
  if (request.is_ca) {
    RETURN_IF_ERROR(add(NID_basic_constraints, "critical,CA:TRUE,pathlen:0", issuer_or_self));
    RETURN_IF_ERROR(add(NID_key_usage, "critical,keyCertSign,cRLSign", issuer_or_self));
  } else {
    RETURN_IF_ERROR(add(NID_basic_constraints, "critical,CA:FALSE", issuer_or_self));
    RETURN_IF_ERROR(add(NID_key_usage, "critical,digitalSignature", issuer_or_self));
    RETURN_IF_ERROR(add(NID_ext_key_usage, "serverAuth,clientAuth", issuer_or_self));
  }
  RETURN_IF_ERROR(add(NID_subject_key_identifier, "hash", issuer_or_self));
  if (issuer != nullptr) RETURN_IF_ERROR(add(NID_authority_key_identifier, "keyid:always", issuer));
  if (!san.empty()) RETURN_IF_ERROR(add(NID_subject_alt_name, san, issuer_or_self));
  if (X509_sign(cert.get(), signing_key, EVP_sha256()) == 0) {
    return absl::InternalError("X509_sign failed");
  }
  return CertPem(cert.get());
}

bool IsIpAddress(absl::string_view host) {
  if (host.empty()) return false;
  if (host.front() == '[') return true;
  return host.find_first_not_of("0123456789.") == absl::string_view::npos;
}

}  // namespace

CertificateRequest ServerCertificateRequest(const std::string& common_name,
                                            const std::string& host, absl::Time now) {
  CertificateRequest request;
  request.common_name = common_name;
  request.dns_names = {common_name, "localhost"};
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
  request.not_before = now - absl::Hours(1);
  request.not_after = now + absl::Hours(24 * 365 * 20);
  return request;
}

absl::StatusOr<std::string> NewPrivateKey() {
  Pkey key(EVP_EC_gen("P-256"));
  if (!key) return absl::InternalError("cannot make an EC key");
  return KeyPem(key.get());
}

absl::StatusOr<std::string> PublicKeyOf(absl::string_view key_pem) {
  auto key = ReadPrivateKey(key_pem);
  if (!key.ok()) return key.status();
  Bio bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_PUBKEY(bio.get(), key->get());
  return BioText(bio.get());
}

absl::StatusOr<KeyAndCert> SelfSigned(const CertificateRequest& request) {
  Pkey key(EVP_EC_gen("P-256"));
  if (!key) return absl::InternalError("cannot make an EC key");
  auto cert = Build(request, key.get(), nullptr, key.get());
  if (!cert.ok()) return cert.status();
  return KeyAndCert{KeyPem(key.get()), *std::move(cert)};
}

absl::StatusOr<std::string> Issue(const KeyAndCert& issuer, absl::string_view public_key_pem,
                                  const CertificateRequest& request) {
  auto issuer_key = ReadPrivateKey(issuer.key_pem);
  if (!issuer_key.ok()) return issuer_key.status();
  auto issuer_cert = ReadX509(issuer.cert_pem);
  if (!issuer_cert.ok()) return issuer_cert.status();
  auto subject_key = ReadPublicKey(public_key_pem);
  if (!subject_key.ok()) return subject_key.status();
  if (EVP_PKEY_get_base_id(subject_key->get()) != EVP_PKEY_EC ||
      EVP_PKEY_get_bits(subject_key->get()) != 256) {
    return absl::InvalidArgumentError("the public key must be ECDSA P-256");
  }
  return Build(request, subject_key->get(), issuer_cert->get(), issuer_key->get());
}

absl::StatusOr<CertificateInfo> ReadCertificate(absl::string_view pem) {
  auto cert = ReadX509(pem);
  if (!cert.ok()) return cert.status();
  CertificateInfo info;
  char cn[256] = {0};
  if (X509_NAME_get_text_by_NID(X509_get_subject_name(cert->get()), NID_commonName, cn,
                                sizeof cn) > 0) {
    info.common_name = cn;
  }
  Names names(static_cast<GENERAL_NAMES*>(
      X509_get_ext_d2i(cert->get(), NID_subject_alt_name, nullptr, nullptr)));
  for (int i = 0; names && i < sk_GENERAL_NAME_num(names.get()); ++i) {
    const GENERAL_NAME* name = sk_GENERAL_NAME_value(names.get(), i);
    if (name->type != GEN_URI) continue;
    const ASN1_IA5STRING* uri = name->d.uniformResourceIdentifier;
    info.uri_names.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(uri)),
                                ASN1_STRING_length(uri));
  }
  struct tm tm = {};
  if (ASN1_TIME_to_tm(X509_get0_notAfter(cert->get()), &tm) == 1) {
    info.not_after = absl::FromTimeT(timegm(&tm));
  }
  ASSIGN_OR_RETURN(info.sha256, Fingerprint(cert->get()));
  return info;
}

bool SignedBy(absl::string_view cert_pem, absl::string_view issuer_pem) {
  auto cert = ReadX509(cert_pem);
  auto issuer = ReadX509(issuer_pem);
  if (!cert.ok() || !issuer.ok()) return false;
  EVP_PKEY* key = X509_get0_pubkey(issuer->get());
  return key != nullptr && X509_verify(cert->get(), key) == 1;
}

absl::StatusOr<std::string> ServerFingerprint(int fd, absl::string_view key_pem,
                                              absl::string_view cert_pem) {
  NoSigpipe no_sigpipe;
  SslCtx ctx(SSL_CTX_new(TLS_client_method()));
  if (!ctx) return absl::InternalError("SSL_CTX_new failed");
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_NONE, nullptr);
  if (auto key = ReadPrivateKey(key_pem); key.ok()) SSL_CTX_use_PrivateKey(ctx.get(), key->get());
  if (auto cert = ReadX509(cert_pem); cert.ok()) SSL_CTX_use_certificate(ctx.get(), cert->get());
  Ssl ssl(SSL_new(ctx.get()));
  if (!ssl) return absl::InternalError("SSL_new failed");
  static const unsigned char kH2[] = {2, 'h', '2'};
  SSL_set_alpn_protos(ssl.get(), kH2, sizeof kH2);
  SSL_set_fd(ssl.get(), fd);
  if (SSL_connect(ssl.get()) != 1) {
    ERR_clear_error();
    return absl::UnavailableError("no TLS handshake");
  }
  X509Ptr served(SSL_get1_peer_certificate(ssl.get()));
  if (!served) return absl::UnavailableError("the server showed no certificate");
  return Fingerprint(served.get());
}

bool KeyMatches(absl::string_view key_pem, absl::string_view cert_pem) {
  auto key = ReadPrivateKey(key_pem);
  auto cert = ReadX509(cert_pem);
  if (!key.ok() || !cert.ok()) return false;
  return X509_check_private_key(cert->get(), key->get()) == 1;
}

}  // namespace groupshare
