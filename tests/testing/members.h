// Members a test plays itself, beside the real clients of a Cluster: it
// reaches the cluster's tracker over TLS (trusting the certificate the
// tracker wrote beside its database) and logs in with a key of its own, so
// that the tracker certifies it as it does a client. With that certificate
// the test calls peers, or serves as a fake one.
#ifndef GROUPSHARE_TESTS_TESTING_MEMBERS_H_
#define GROUPSHARE_TESTS_TESTING_MEMBERS_H_

#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>

#include "groupshare/tracker/v1/tracker.grpc.pb.h"
#include "services/peer/peer_identity.h"
#include "tests/testing/cluster.h"

namespace groupshare::testing {

// Trusts the tracker of `cluster` by the certificate it wrote (plaintext
// for a --plaintext tracker).
std::shared_ptr<grpc::ChannelCredentials> TrackerCredentials(Cluster& cluster);
std::unique_ptr<tracker::v1::TrackerService::Stub> TrackerStub(Cluster& cluster);

struct TestMember {
  std::string user;
  std::string token;
  std::unique_ptr<peer::PeerIdentity> identity;
  bool plaintext = false;  // the cluster's

  // For calls to the peer service of `holder`, presenting this member's
  // certificate (plaintext in a plaintext cluster).
  std::shared_ptr<grpc::ChannelCredentials> To(const std::string& holder) const;
};

// `user` with a key of its own, kept in a fresh folder under the
// cluster's; not logged in yet. Its ServerCredentials serve as a peer once
// it is.
TestMember NewMember(Cluster& cluster, const std::string& user);
// Logs `member` in (advertising `peer_address`, as client `client_id`): its
// certificate comes with the session. Test failures (not a crash) when the
// tracker refuses.
void Login(Cluster& cluster, TestMember& member, const std::string& password,
           const std::string& peer_address = "", const std::string& client_id = "");
// Both.
TestMember LoginMember(Cluster& cluster, const std::string& user, const std::string& password,
                       const std::string& peer_address = "", const std::string& client_id = "");

}  // namespace groupshare::testing

#endif  // GROUPSHARE_TESTS_TESTING_MEMBERS_H_
