// X.509 for groupshare's TLS, through OpenSSL 3: the keys (ECDSA P-256, which
// every TLS 1.3 stack speaks), a tracker's self-signed certificate, the
// peer CA's certificates for members, and the SHA-256 fingerprints by which a
// client knows its tracker (and the one a TLS server shows). Certificates and
// keys travel as PEM text.
//
// Plain functions, thread-safe.
#ifndef GROUPSHARE_CORE_CERTIFICATES_H_
#define GROUPSHARE_CORE_CERTIFICATES_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace groupshare {

struct KeyAndCert {
  std::string key_pem;   // PKCS#8 private key
  std::string cert_pem;
};

// What a certificate says: the subject, the names it is good for, and when.
struct CertificateRequest {
  std::string common_name;
  std::vector<std::string> dns_names;
  std::vector<std::string> ip_names;   // "127.0.0.1", "::1"
  std::vector<std::string> uri_names;  // "groupshare:client:<id>"
  absl::Time not_before;
  absl::Time not_after;
  bool is_ca = false;
};

// What a server known by its fingerprint is certified for: `common_name`,
// localhost and the loopback addresses, and `host` (the name or address it
// serves on). Long-lived: it is known by its fingerprint, not its dates.
CertificateRequest ServerCertificateRequest(const std::string& common_name,
                                            const std::string& host, absl::Time now);

// A new ECDSA P-256 private key, as PEM.
absl::StatusOr<std::string> NewPrivateKey();
// The public half of a private key, as PEM (SubjectPublicKeyInfo).
absl::StatusOr<std::string> PublicKeyOf(absl::string_view key_pem);

// A new key and a certificate it signs for itself.
absl::StatusOr<KeyAndCert> SelfSigned(const CertificateRequest& request);
// A certificate for `public_key_pem`, signed by `issuer` (a CA made by
// SelfSigned with is_ca). INVALID_ARGUMENT for a key that is not one.
absl::StatusOr<std::string> Issue(const KeyAndCert& issuer, absl::string_view public_key_pem,
                                  const CertificateRequest& request);

// What a certificate holds, read back.
struct CertificateInfo {
  std::string common_name;
  std::vector<std::string> uri_names;
  absl::Time not_after;
  std::string sha256;  // lower-case hex of the DER encoding
};
// The first certificate of `pem`; INVALID_ARGUMENT when there is none.
absl::StatusOr<CertificateInfo> ReadCertificate(absl::string_view pem);

// True when the first certificate of `cert_pem` carries a signature of the
// key of the first certificate of `issuer_pem`.
bool SignedBy(absl::string_view cert_pem, absl::string_view issuer_pem);

// Over `fd`, a connected socket: a TLS handshake as a client presenting
// `key_pem` and `cert_pem` (ALPN h2), checking nothing of the server, and
// the SHA-256 (lower-case hex) of the certificate the server showed.
// UNAVAILABLE when no handshake completes (the socket's own timeouts
// bound the wait). A write to a server that closed raises no SIGPIPE.
absl::StatusOr<std::string> ServerFingerprint(int fd, absl::string_view key_pem,
                                              absl::string_view cert_pem);

// True when `key_pem` is the private key of the first certificate of
// `cert_pem`.
bool KeyMatches(absl::string_view key_pem, absl::string_view cert_pem);

}  // namespace groupshare

#endif  // GROUPSHARE_CORE_CERTIFICATES_H_
