// How a client knows its trackers (TrackerTrust) and holds its own
// certificate (PeerIdentity), without a network.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <string>

#include "absl/strings/match.h"
#include "core/certificates.h"
#include "services/peer/peer_identity.h"
#include "services/peer/tracker_trust.h"
#include "tests/testing/temp_dir.h"

namespace groupshare::peer {
namespace {

std::string NewCertificate(const std::string& name) {
  CertificateRequest request;
  request.common_name = name;
  request.not_before = absl::Now() - absl::Hours(1);
  request.not_after = absl::Now() + absl::Hours(1);
  return SelfSigned(request)->cert_pem;
}

TEST(TrackerTrust, TheFirstCertificateIsRecordedAndHeldTo) {
  testing::TempDir dir;
  const std::string known = dir.File("known_trackers");
  const std::string first = NewCertificate("t"), second = NewCertificate("t");
  const std::string first_sha = ReadCertificate(first)->sha256;
  const std::string second_sha = ReadCertificate(second)->sha256;
  auto trust = *TrackerTrust::Create(known);
  EXPECT_TRUE(trust->Check("127.0.0.1:5000", "", first).ok());
  EXPECT_EQ(testing::ReadFile(known), "127.0.0.1:5000 " + first_sha + "\n");
  struct stat st;
  ASSERT_EQ(stat(known.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_TRUE(trust->Check("127.0.0.1:5000", "", first).ok());
  EXPECT_EQ(trust->Refusal("127.0.0.1:5000"), "");

  // Another certificate at the same address: refused, naming both.
  const absl::Status refused = trust->Check("127.0.0.1:5000", "", second);
  EXPECT_EQ(refused.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(absl::StrContains(refused.message(), first_sha)) << refused;
  EXPECT_TRUE(absl::StrContains(refused.message(), second_sha)) << refused;
  EXPECT_EQ(trust->Refusal("127.0.0.1:5000"), refused.message());
  // Another address is met for the first time; a restarted client reads
  // the record and still refuses.
  EXPECT_TRUE(trust->Check("127.0.0.1:5001", "", second).ok());
  auto again = *TrackerTrust::Create(known);
  EXPECT_FALSE(again->Check("127.0.0.1:5000", "", second).ok());
  EXPECT_TRUE(again->Check("127.0.0.1:5001", "", second).ok());
}

TEST(TrackerTrust, APinWinsAndIsNotRecorded) {
  testing::TempDir dir;
  const std::string cert = NewCertificate("t");
  const std::string sha = ReadCertificate(cert)->sha256;
  auto trust = *TrackerTrust::Create(dir.File("known_trackers"));
  EXPECT_TRUE(trust->Check("h:1", sha, cert).ok());
  EXPECT_EQ(testing::ReadFile(dir.File("known_trackers")), "");
  const absl::Status wrong = trust->Check("h:1", std::string(64, 'a'), cert);
  EXPECT_EQ(wrong.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(absl::StrContains(wrong.message(), "pins sha256=" + std::string(64, 'a')));
  EXPECT_TRUE(absl::StrContains(wrong.message(), "sha256=" + sha));
  EXPECT_EQ(trust->Check("h:1", "", "not a certificate").code(),
            absl::StatusCode::kPermissionDenied);
}

TEST(PeerIdentity, AKeyIsMadeOnceAndOnlyItsCertificatesAreTaken) {
  testing::TempDir dir;
  auto identity = *PeerIdentity::Open(dir.path());
  const std::string key = identity->public_key_pem();
  struct stat st;
  ASSERT_EQ(stat(dir.File("peer-key.pem").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ((*PeerIdentity::Open(dir.path()))->public_key_pem(), key);
  // No certificate yet: one is due, and no link can be made.
  EXPECT_EQ(identity->RenewalKey(absl::Now()), key);
  EXPECT_EQ(identity->LinkCredentials("bob").status().code(), absl::StatusCode::kUnavailable);

  CertificateRequest ca_request;
  ca_request.common_name = "ca";
  ca_request.is_ca = true;
  ca_request.not_before = absl::Now() - absl::Hours(1);
  ca_request.not_after = absl::Now() + absl::Hours(10);
  KeyAndCert ca = *SelfSigned(ca_request);
  CertificateRequest request;
  request.common_name = "alice";
  request.not_before = absl::Now() - absl::Minutes(5);
  request.not_after = absl::Now() + absl::Hours(1);
  // A certificate for another key is refused.
  const std::string other_key = *PublicKeyOf(*NewPrivateKey());
  EXPECT_EQ(identity->Accept(*Issue(ca, other_key, request), {ca.cert_pem}).code(),
            absl::StatusCode::kInvalidArgument);
  // Its own: taken, kept for the next start, due again past half its life.
  const std::string cert = *Issue(ca, key, request);
  ASSERT_TRUE(identity->Accept(cert, {ca.cert_pem}).ok());
  EXPECT_EQ(testing::ReadFile(dir.File("peer-cert.pem")), cert);
  EXPECT_EQ(testing::ReadFile(dir.File("peer-ca.pem")), ca.cert_pem);
  EXPECT_EQ(identity->RenewalKey(absl::Now()), "");
  EXPECT_EQ(identity->RenewalKey(absl::Now() + absl::Minutes(40)), key);
  EXPECT_TRUE(identity->LinkCredentials("bob").ok());
}

}  // namespace
}  // namespace groupshare::peer
