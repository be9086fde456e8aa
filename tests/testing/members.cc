#include "tests/testing/members.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <atomic>

#include "absl/strings/str_cat.h"

namespace groupshare::testing {

namespace tv1 = ::groupshare::tracker::v1;

std::shared_ptr<grpc::ChannelCredentials> TrackerCredentials(Cluster& cluster) {
  if (cluster.plaintext()) return grpc::InsecureChannelCredentials();
  grpc::SslCredentialsOptions options;
  options.pem_root_certs = ReadFile(cluster.dir().File("tracker.db.cert.pem"));
  EXPECT_FALSE(options.pem_root_certs.empty()) << "the tracker wrote no certificate";
  return grpc::SslCredentials(options);
}

std::unique_ptr<tv1::TrackerService::Stub> TrackerStub(Cluster& cluster) {
  return tv1::TrackerService::NewStub(grpc::CreateChannel(
      absl::StrCat("127.0.0.1:", cluster.tracker_port()), TrackerCredentials(cluster)));
}

std::shared_ptr<grpc::ChannelCredentials> TestMember::To(const std::string& holder) const {
  if (plaintext) return grpc::InsecureChannelCredentials();
  auto credentials = identity->LinkCredentials(holder);
  EXPECT_TRUE(credentials.ok()) << credentials.status();
  return credentials.ok() ? *credentials : grpc::InsecureChannelCredentials();
}

TestMember NewMember(Cluster& cluster, const std::string& user) {
  static std::atomic<int> folders{0};
  const std::string dir = cluster.dir().File(absl::StrCat("member-", user, "-", folders++));
  mkdir(dir.c_str(), 0700);
  TestMember member;
  member.user = user;
  member.plaintext = cluster.plaintext();
  auto identity = peer::PeerIdentity::Open(dir);
  EXPECT_TRUE(identity.ok()) << identity.status();
  if (identity.ok()) member.identity = *std::move(identity);
  return member;
}

void Login(Cluster& cluster, TestMember& member, const std::string& password,
           const std::string& peer_address, const std::string& client_id) {
  if (member.identity == nullptr) return;
  tv1::LoginRequest login;
  login.set_user_id(member.user);
  login.set_password(password);
  login.set_peer_address(peer_address);
  login.set_client_id(client_id);
  login.set_peer_public_key(member.identity->public_key_pem());
  tv1::LoginResponse session;
  grpc::ClientContext ctx;
  grpc::Status status = TrackerStub(cluster)->Login(&ctx, login, &session);
  EXPECT_TRUE(status.ok()) << member.user << ": " << status.error_message();
  member.token = session.token();
  absl::Status accepted = member.identity->Accept(
      session.peer_certificate(),
      {session.peer_ca_certificates().begin(), session.peer_ca_certificates().end()});
  EXPECT_TRUE(accepted.ok()) << accepted;
}

TestMember LoginMember(Cluster& cluster, const std::string& user, const std::string& password,
                       const std::string& peer_address, const std::string& client_id) {
  TestMember member = NewMember(cluster, user);
  Login(cluster, member, password, peer_address, client_id);
  return member;
}

}  // namespace groupshare::testing
