// The relay binary against members the test plays itself, certified by a
// real tracker: who may use it, its limits, and what it does with the bytes
// of a session.
#include <sys/socket.h>
#include <unistd.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/create_channel.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "groupshare/relay/v1/relay.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/common/sockets.h"
#include "services/peer/tracker_trust.h"
#include "tests/testing/members.h"

namespace groupshare::testing {
namespace {

namespace rv1 = ::groupshare::relay::v1;

class RelayTest : public ::testing::Test {
 protected:
  // Starts the relay with `flags`, serving the members of cluster_.
  void StartRelay(const std::vector<std::string>& flags) {
    WriteFile(cluster_.dir().File("relay_info.txt"), "127.0.0.1:0\n");
    const std::string port_file = cluster_.dir().File("relay.port");
    std::vector<std::string> argv = {GS_RELAY_BIN, cluster_.dir().File("relay_info.txt"), "1",
                                     "--trackers", cluster_.tracker_info(), "--state_dir",
                                     cluster_.dir().File("relay-state"), "--port_file",
                                     port_file};
    argv.insert(argv.end(), flags.begin(), flags.end());
    relay_ = std::make_unique<Subprocess>(
        argv, std::map<std::string, std::string>{{"HOME", cluster_.dir().path()}},
        cluster_.dir().File("relay.log"));
    std::vector<std::string> ports =
        absl::StrSplit(absl::StripAsciiWhitespace(WaitForFile(port_file)), ' ');
    ASSERT_EQ(ports.size(), 2u) << ReadFile(cluster_.dir().File("relay.log"));
    ASSERT_TRUE(absl::SimpleAtoi(ports[0], &port_));
    ASSERT_TRUE(absl::SimpleAtoi(ports[1], &session_port_));
  }

  std::string address() const { return absl::StrCat("127.0.0.1:", port_); }

  // A stub presenting `member`'s certificate (none when null).
  std::unique_ptr<rv1::RelayService::Stub> StubFor(const TestMember* member) {
    auto trust = peer::TrackerTrust::Create(cluster_.dir().File("known_relays"), "", "relay",
                                            "relay_info.txt");
    EXPECT_TRUE(trust.ok());
    std::optional<KeyAndCert> mine;
    if (member != nullptr) {
      auto current = member->identity->Current();
      EXPECT_TRUE(current.ok()) << current.status();
      mine = *current;
    }
    TrackerAddress relay;
    relay.host = "127.0.0.1";
    relay.port = port_;
    return rv1::RelayService::NewStub(grpc::CreateChannel(
        address(), (*trust)->CredentialsFor(relay, mine.has_value() ? &*mine : nullptr)));
  }

  // `holder` waits at the relay as `peer_address`; the stream stays open
  // while the returned call lives.
  struct Waiting {
    std::unique_ptr<rv1::RelayService::Stub> stub;
    std::unique_ptr<grpc::ClientContext> context = std::make_unique<grpc::ClientContext>();
    std::unique_ptr<grpc::ClientReader<rv1::JoinResponse>> reader;
  };
  Waiting Join(const TestMember& holder, const std::string& peer_address) {
    Waiting w;
    w.stub = StubFor(&holder);
    rv1::JoinRequest request;
    request.set_peer_address(peer_address);
    w.reader = w.stub->Join(w.context.get(), request);
    rv1::JoinResponse joined;
    EXPECT_TRUE(w.reader->Read(&joined));
    EXPECT_TRUE(joined.joined());
    return w;
  }

  grpc::Status Connect(const TestMember& member, const std::string& holder,
                       const std::string& peer_address, rv1::ConnectResponse* response) {
    grpc::ClientContext context;
    rv1::ConnectRequest request;
    request.set_user_id(holder);
    request.set_peer_address(peer_address);
    return StubFor(&member)->Connect(&context, request, response);
  }

  // Opens one side of a session at the session port, asking for `key`.
  int OpenSession(const std::string& key) {
    auto fd = DialTcp(absl::StrCat("127.0.0.1:", session_port_), absl::Seconds(5));
    EXPECT_TRUE(fd.ok()) << fd.status();
    if (!fd.ok()) return -1;
    const std::string request = absl::StrCat("CONNECT ", key, ":1 HTTP/1.1\r\n\r\n");
    EXPECT_EQ(send(*fd, request.data(), request.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(request.size()));
    return *fd;
  }
  // The first line of the relay's answer.
  static std::string ReadAnswer(int fd) {
    std::string answer;
    char c;
    while (answer.find("\r\n\r\n") == std::string::npos && recv(fd, &c, 1, 0) == 1) {
      answer.push_back(c);
    }
    return answer.substr(0, answer.find("\r\n"));
  }

  // A new user, logged in as client `client_id`.
  TestMember Member(const std::string& user, const std::string& client_id) {
    tracker::v1::CreateUserRequest request;
    request.set_user_id(user);
    request.set_password("pw-" + user);
    tracker::v1::CreateUserResponse response;
    grpc::ClientContext context;
    EXPECT_TRUE(TrackerStub(cluster_)->CreateUser(&context, request, &response).ok());
    return LoginMember(cluster_, user, "pw-" + user, "127.0.0.1:1", client_id);
  }

  Cluster cluster_;
  TestMember alice_ = Member("alice", "a");
  TestMember bob_ = Member("bob", "b");
  TestMember carol_ = Member("carol", "c");
  std::unique_ptr<Subprocess> relay_;
  int port_ = 0;
  int session_port_ = 0;
};

TEST_F(RelayTest, OnlyMembersWithATrackerCertificateMayUseIt) {
  StartRelay({});
  rv1::ConnectResponse response;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  rv1::ConnectRequest request;
  request.set_user_id("alice");
  request.set_peer_address("127.0.0.1:1");
  grpc::Status status = StubFor(nullptr)->Connect(&context, request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
  // A member gets as far as the holder, who does not wait here.
  status = Connect(bob_, "alice", "127.0.0.1:1", &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND) << status.error_message();
}

TEST_F(RelayTest, SessionsBeyondItsLimitsAreRefused) {
  StartRelay({"--max_sessions", "3", "--max_sessions_per_user", "2"});
  Waiting alice = Join(alice_, "127.0.0.1:1");
  rv1::ConnectResponse response;
  EXPECT_TRUE(Connect(bob_, "alice", "127.0.0.1:1", &response).ok());
  EXPECT_TRUE(Connect(bob_, "alice", "127.0.0.1:1", &response).ok());
  grpc::Status third = Connect(bob_, "alice", "127.0.0.1:1", &response);
  EXPECT_EQ(third.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(third.error_message().find("per user"), std::string::npos) << third.error_message();
  EXPECT_TRUE(Connect(carol_, "alice", "127.0.0.1:1", &response).ok());
  grpc::Status full = Connect(carol_, "alice", "127.0.0.1:1", &response);
  EXPECT_EQ(full.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(full.error_message().find("full"), std::string::npos) << full.error_message();
  // The holder was invited to each session that was made.
  rv1::JoinResponse invitation;
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(alice.reader->Read(&invitation));
    EXPECT_EQ(invitation.invitation().key().size(), 32u);
  }
  alice.context->TryCancel();
}

TEST_F(RelayTest, SplicesASessionBothWaysWithinItsRateAndEndsItWhenIdle) {
  StartRelay({"--session_rate_mbit", "8", "--idle_timeout", "2"});
  Waiting alice = Join(alice_, "127.0.0.1:1");
  rv1::ConnectResponse response;
  ASSERT_TRUE(Connect(bob_, "alice", "127.0.0.1:1", &response).ok());
  rv1::JoinResponse invitation;
  ASSERT_TRUE(alice.reader->Read(&invitation));
  EXPECT_NE(invitation.invitation().key(), response.invitation().key());

  // A key nobody was given.
  const int stranger = OpenSession(std::string(32, 'a'));
  EXPECT_EQ(ReadAnswer(stranger), "HTTP/1.1 404 No such session");
  close(stranger);

  const int member = OpenSession(response.invitation().key());
  const int holder = OpenSession(invitation.invitation().key());
  EXPECT_EQ(ReadAnswer(member), "HTTP/1.1 200 Connection established");
  EXPECT_EQ(ReadAnswer(holder), "HTTP/1.1 200 Connection established");

  // 3 MB at 1 MB/s: about 3 s, never under 2.
  std::string sent(3'000'000, '\0');
  for (size_t i = 0; i < sent.size(); ++i) sent[i] = static_cast<char>(i * 131 + i / 7919);
  const absl::Time start = absl::Now();
  std::thread writer([&, fd = member] {
    size_t at = 0;
    while (at < sent.size()) {
      ssize_t n = send(fd, sent.data() + at, sent.size() - at, MSG_NOSIGNAL);
      if (n <= 0) break;
      at += static_cast<size_t>(n);
    }
  });
  std::string got;
  char buffer[65536];
  while (got.size() < sent.size()) {
    ssize_t n = recv(holder, buffer, sizeof buffer, 0);
    if (n <= 0) break;
    got.append(buffer, static_cast<size_t>(n));
  }
  writer.join();
  const absl::Duration took = absl::Now() - start;
  EXPECT_TRUE(got == sent) << got.size() << " bytes arrived of " << sent.size();
  EXPECT_GE(took, absl::Seconds(2)) << "faster than the rate cap allows";
  ASSERT_EQ(send(holder, "pong", 4, MSG_NOSIGNAL), 4);
  char pong[4];
  ASSERT_EQ(recv(member, pong, 4, MSG_WAITALL), 4);
  EXPECT_EQ(std::string(pong, 4), "pong");

  // Idle for the timeout: the relay closes both sides.
  const absl::Time idle = absl::Now();
  EXPECT_EQ(recv(member, buffer, 1, 0), 0);
  EXPECT_EQ(recv(holder, buffer, 1, 0), 0);
  EXPECT_LT(absl::Now() - idle, absl::Seconds(10));
  close(member);
  close(holder);
  alice.context->TryCancel();
}

// Connections to 127.0.0.1:`port` that never finish a request, `count` of
// them from the addresses 127.0.0.2 to 127.0.0.33 in turn; every third
// one sends half a request line. Those the relay closed at once are included.
std::vector<int> SilentConnections(int port, int count) {
  std::vector<int> fds;
  for (int i = 0; i < count; ++i) {
    const int fd = ConnectFrom(absl::StrCat("127.0.0.", 2 + i % 32), port);
    if (fd < 0) continue;
    if (i % 3 == 1) send(fd, "CONNECT 0123", 12, MSG_NOSIGNAL);
    fds.push_back(fd);
  }
  return fds;
}

// How many of `fds` the other side has not closed.
int StillOpen(const std::vector<int>& fds) {
  int open = 0;
  for (int fd : fds) {
    char c;
    const ssize_t n = recv(fd, &c, 1, MSG_DONTWAIT);
    open += n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
  }
  return open;
}

// More connections than the relay lets wait for their request, from
// several addresses, neither finish a request nor go away. A member's
// session is spliced all the same: while they are there (most of them still
// are afterwards, so the flood was on), and after they leave.
TEST_F(RelayTest, AFloodOfSilentConnectionsLeavesRoomForMembersSessions) {
  StartRelay({});
  Waiting alice = Join(alice_, "127.0.0.1:1");
  auto session_splices = [&] {
    rv1::ConnectResponse response;
    EXPECT_TRUE(Connect(bob_, "alice", "127.0.0.1:1", &response).ok());
    rv1::JoinResponse invitation;
    EXPECT_TRUE(alice.reader->Read(&invitation));
    const int member = OpenSession(response.invitation().key());
    const int holder = OpenSession(invitation.invitation().key());
    const bool spliced = ReadAnswer(member) == "HTTP/1.1 200 Connection established" &&
                         ReadAnswer(holder) == "HTTP/1.1 200 Connection established" &&
                         send(member, "ping", 4, MSG_NOSIGNAL) == 4;
    char ping[4] = {};
    const bool through = spliced && recv(holder, ping, 4, MSG_WAITALL) == 4 &&
                         std::string(ping, 4) == "ping";
    close(member);
    close(holder);
    return through;
  };

  std::vector<int> flood = SilentConnections(session_port_, 600);
  ASSERT_GE(flood.size(), 500u);
  EXPECT_TRUE(session_splices()) << "during the flood";
  // The relay let 256 wait (16 from each address at most); the member's
  // two connections took the places of two of them.
  EXPECT_GE(StillOpen(flood), 250);
  for (int fd : flood) close(fd);
  EXPECT_TRUE(session_splices()) << "after the flood";
  alice.context->TryCancel();
}

// Relay number `n` of `info` (in `dir`), serving the members of `cluster`.
std::unique_ptr<Subprocess> StartRelay(TempDir& dir, Cluster& cluster, int n,
                                       const std::vector<std::string>& flags = {}) {
  std::vector<std::string> argv = {GS_RELAY_BIN, dir.File("relay_info.txt"), std::to_string(n),
                                   "--trackers", cluster.tracker_info(), "--state_dir",
                                   dir.File(absl::StrCat("state-", n))};
  argv.insert(argv.end(), flags.begin(), flags.end());
  auto relay = std::make_unique<Subprocess>(
      argv, std::map<std::string, std::string>{{"HOME", dir.path()}},
      dir.File(absl::StrCat("relay-", n, ".log")));
  EXPECT_TRUE(relay->WaitFor(absl::StrCat("relay ", n, " listening")).has_value())
      << ReadFile(dir.File(absl::StrCat("relay-", n, ".log")));
  return relay;
}

// A client that listens on one port and advertises another, where nothing
// answers: nobody reaches it. Logged in as `name`; returns it once its
// shell said how it is reached (`*told`).
std::unique_ptr<Cluster::Client> Unreachable(Cluster& cluster, const std::string& name,
                                             std::optional<std::string>* told) {
  auto client = cluster.StartClient(name, {"--listen", "127.0.0.1:0"},
                                    absl::StrCat("127.0.0.1:", UnusedPort()));
  EXPECT_THAT(client->Run(absl::StrCat("create_user ", name, " pw-", name)),
              ::testing::StartsWith("user " + name + " created"));
  EXPECT_EQ(client->Run(absl::StrCat("login ", name, " pw-", name)), "logged in as " + name);
  *told = client->shell->WaitForNotice("reachable");
  return client;
}

// The whole path on one machine: a client whose advertised address nobody
// answers at waits at the relay the tracker announces, and another member
// downloads its file through it, byte for byte. Over TLS, or with every
// process run with --plaintext.
void DownloadThroughARelay(bool plaintext) {
  TempDir relay_dir;
  const std::string relay = absl::StrCat("127.0.0.1:", UnusedPort());
  WriteFile(relay_dir.File("relay_info.txt"), relay + "\n");
  std::vector<std::string> tracker_flags = {"--relays", relay_dir.File("relay_info.txt")};
  std::vector<std::string> flags;
  if (plaintext) {
    tracker_flags.push_back("--plaintext");
    flags.push_back("--plaintext");
  }
  Cluster cluster(tracker_flags, flags);
  flags.insert(flags.end(), {"--session_port", std::to_string(UnusedPort())});
  auto relay_process = StartRelay(relay_dir, cluster, 1, flags);

  std::optional<std::string> told;
  auto bob = Unreachable(cluster, "bob", &told);
  EXPECT_THAT(told, ::testing::Optional(::testing::EndsWith("; serving through relay " + relay)));
  auto alice = cluster.StartUser("alice");
  cluster.AddMember(*bob, *alice, "g");
  std::string content(3 << 20, '\0');
  for (size_t i = 0; i < content.size(); ++i) content[i] = static_cast<char>(i * 31 + i / 4099);
  WriteFile(cluster.dir().File("f.bin"), content);
  ASSERT_THAT(bob->Run("upload_file " + cluster.dir().File("f.bin") + " g"),
              ::testing::StartsWith("shared"));
  const std::string out = cluster.dir().File("out.bin");
  ASSERT_THAT(alice->Run("download_file g f.bin " + out), ::testing::StartsWith("downloading"));
  EXPECT_EQ(cluster.WaitForDownload(*alice, "[C]"), "[C] [g] f.bin -> " + out)
      << alice->Log();
  // Nobody answers at bob's advertised address, and only he has the file:
  // every byte came through the relay.
  EXPECT_TRUE(ReadFile(out) == content);
}

TEST(RelayedSharing, AMemberNobodyReachesSharesThroughTheRelay) { DownloadThroughARelay(false); }

TEST(RelayedSharing, TheSameOverPlaintext) { DownloadThroughARelay(true); }

// A relay that holds as many waiting clients as it may says so, and the
// client waits at the next relay of the list instead.
TEST(RelayedSharing, AFullRelaySendsAWaitingClientToTheNext) {
  TempDir relay_dir;
  const std::string first = absl::StrCat("127.0.0.1:", UnusedPort());
  const std::string second = absl::StrCat("127.0.0.1:", UnusedPort());
  WriteFile(relay_dir.File("relay_info.txt"), absl::StrCat(first, "\n", second, "\n"));
  Cluster cluster({"--relays", relay_dir.File("relay_info.txt")});
  auto one = StartRelay(relay_dir, cluster, 1,
                        {"--max_holders", "1", "--session_port", std::to_string(UnusedPort())});
  auto two = StartRelay(relay_dir, cluster, 2, {"--session_port", std::to_string(UnusedPort())});

  std::optional<std::string> told;
  auto carol = Unreachable(cluster, "carol", &told);
  EXPECT_THAT(told, ::testing::Optional(::testing::EndsWith("; serving through relay " + first)));
  auto bob = Unreachable(cluster, "bob", &told);
  EXPECT_THAT(told, ::testing::Optional(::testing::EndsWith("; serving through relay " + second)));
  // The first relay turned bob away for being full, and for nothing else:
  // once carol leaves it, it takes the next client that comes.
  EXPECT_EQ(carol->Run("logout"), "logged out carol");
  auto erin = Unreachable(cluster, "erin", &told);
  EXPECT_THAT(told, ::testing::Optional(::testing::EndsWith("; serving through relay " + first)));
}

}  // namespace
}  // namespace groupshare::testing
