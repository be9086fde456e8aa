// Hostile clients against the real binaries, on loopback: bursts of
// connections that send only HTTP/2's preface and then sit idle, more than
// the server has file descriptors. Every loop is bounded in count and time.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "groupshare/peer/v1/peer.grpc.pb.h"
#include "groupshare/tracker/v1/tracker.grpc.pb.h"
#include "tests/testing/subprocess.h"
#include "tests/testing/temp_dir.h"

namespace groupshare {
namespace {

using ::testing::HasSubstr;
using testing::Subprocess;

constexpr char kPreface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

// Raises this process's soft limit of open files to the hard one, for the
// attacker's sockets.
void RaiseOwnFileLimit() {
  struct rlimit files;
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &files), 0);
  files.rlim_cur = files.rlim_max;
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &files), 0);
}

// Opens `count` connections to 127.0.0.1:`port`, from the source addresses
// 127.0.0.2 to 127.0.0.9 in turn, each sending only the preface. Returns
// the sockets; those the server closed at once are among them.
std::vector<int> Flood(int port, int count) {
  std::vector<int> fds;
  for (int i = 0; i < count; ++i) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) break;
    sockaddr_in from{};
    from.sin_family = AF_INET;
    inet_pton(AF_INET, absl::StrCat("127.0.0.", 2 + i % 8).c_str(), &from.sin_addr);
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(static_cast<uint16_t>(port));
    inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
    timeval timeout{1, 0};  // a full listen queue drops the SYN: do not wait long
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
    if (bind(fd, reinterpret_cast<sockaddr*>(&from), sizeof(from)) != 0 ||
        connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof(to)) != 0) {
      close(fd);
      continue;
    }
    send(fd, kPreface, sizeof(kPreface) - 1, MSG_NOSIGNAL);
    fds.push_back(fd);
  }
  return fds;
}

void CloseAll(std::vector<int>& fds) {
  for (int fd : fds) close(fd);
  fds.clear();
}

// True when a new gRPC channel to 127.0.0.1:`port` gets connected (the
// server accepted it and answered HTTP/2's settings) within `timeout`.
bool HonestClientConnects(int port, absl::Duration timeout) {
  grpc::ChannelArguments args;
  args.SetInt("grpc.use_local_subchannel_pool", 1);  // a connection of its own
  auto channel = grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", port),
                                           grpc::InsecureChannelCredentials(), args);
  return channel->WaitForConnected(std::chrono::system_clock::now() +
                                   absl::ToChronoMilliseconds(timeout));
}

int PortIn(const std::string& file) {
  int port = 0;
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (absl::Now() < deadline) {
    std::string text = testing::ReadFile(file);
    while (!text.empty() && (text.back() == '\n')) text.pop_back();
    if (absl::SimpleAtoi(text, &port) && port > 0) return port;
    absl::SleepFor(absl::Milliseconds(20));  // the file appears once the server listens
  }
  return 0;
}

// A client on its own (its tracker_info.txt names a port nobody listens
// on): a peer service on a port it chose, stored in `*port` (0 when it did
// not start). `wrapper` runs it (prlimit, say); `flags` are added.
std::unique_ptr<Subprocess> StartLonePeer(const testing::TempDir& dir, int* port,
                                          const std::vector<std::string>& wrapper = {},
                                          const std::vector<std::string>& flags = {}) {
  testing::WriteFile(dir.File("tracker_info.txt"), "127.0.0.1:1\n");
  std::vector<std::string> argv = wrapper;
  for (const std::string& arg :
       {std::string(GS_CLIENT_BIN), std::string("127.0.0.1:0"), dir.File("tracker_info.txt"),
        std::string("--state_dir"), dir.File("state"), std::string("--port_file"),
        dir.File("port")}) {
    argv.push_back(arg);
  }
  argv.insert(argv.end(), flags.begin(), flags.end());
  auto client = std::make_unique<Subprocess>(
      argv, std::map<std::string, std::string>{{"HOME", dir.path()}}, dir.File("client.err"));
  *port = PortIn(dir.File("port"));
  return client;
}

// The attack on a server whose limit of open files is 256, and what must
// hold: the server says it refuses connections, and once the attacker lets
// go an honest client connects within seconds.
void FloodAndRecover(int port, const std::string& log_file) {
  RaiseOwnFileLimit();
  ASSERT_TRUE(HonestClientConnects(port, absl::Seconds(10)));
  std::vector<int> attack = Flood(port, 400);
  EXPECT_GE(attack.size(), 256u) << "the attack did not reach the server's limit";
  // While the attacker holds its connections, the server refused the excess
  // as it came (rather than failing for want of descriptors).
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (absl::Now() < deadline &&
         testing::ReadFile(log_file).find("closing new connections at once") == std::string::npos) {
    absl::SleepFor(absl::Milliseconds(50));  // the log is a file: nothing to wait on
  }
  EXPECT_THAT(testing::ReadFile(log_file), HasSubstr("closing new connections at once"));
  EXPECT_THAT(testing::ReadFile(log_file), ::testing::Not(HasSubstr("Too many open files")));
  // A new client from another address gets in while the attack lasts.
  EXPECT_TRUE(HonestClientConnects(port, absl::Seconds(10)))
      << "an honest client was kept out during the attack";
  CloseAll(attack);
  EXPECT_TRUE(HonestClientConnects(port, absl::Seconds(10)))
      << "the listener did not recover:\n" << testing::ReadFile(log_file);
  // And again: the listener keeps working after a second burst.
  attack = Flood(port, 400);
  CloseAll(attack);
  EXPECT_TRUE(HonestClientConnects(port, absl::Seconds(10)));
}

TEST(HostileConnections, TrackerOutlivesABurstBeyondItsFileLimit) {
  testing::TempDir dir;
  testing::WriteFile(dir.File("bind.txt"), "127.0.0.1:0\n");
  Subprocess tracker({"/usr/bin/prlimit", "--nofile=256:256", GS_TRACKER_BIN,
                      dir.File("bind.txt"), "1", "--db", dir.File("t.db"), "--port_file",
                      dir.File("port"), "--log_level", "info"},
                     {{"HOME", dir.path()}}, dir.File("tracker.log"));
  const int port = PortIn(dir.File("port"));
  ASSERT_GT(port, 0) << testing::ReadFile(dir.File("tracker.log"));
  FloodAndRecover(port, dir.File("tracker.log"));
}

TEST(HostileConnections, PeerServiceOutlivesABurstBeyondItsFileLimit) {
  testing::TempDir dir;
  int port = 0;
  auto client = StartLonePeer(dir, &port, {"/usr/bin/prlimit", "--nofile=256:256"});
  ASSERT_GT(port, 0) << testing::ReadFile(dir.File("client.err"));
  FloodAndRecover(port, dir.File("state/client.log"));
}

// Connections that never make a call are closed once idle, on the peer
// service as on the tracker.
TEST(HostileConnections, PeerServiceClosesIdleConnections) {
  testing::TempDir dir;
  int port = 0;
  auto client = StartLonePeer(dir, &port, {}, {"--idle_connection_timeout", "2"});
  ASSERT_GT(port, 0);
  std::vector<int> idle = Flood(port, 20);
  ASSERT_EQ(idle.size(), 20u);
  const absl::Time deadline = absl::Now() + absl::Seconds(15);
  size_t closed = 0;
  for (int fd : idle) {
    // The server's GOAWAY and close arrive after the idle time: read until
    // the end of the stream.
    char buf[4096];
    while (absl::Now() < deadline) {
      timeval timeout{1, 0};
      setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
      ssize_t n = recv(fd, buf, sizeof(buf), 0);
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
        ++closed;
        break;
      }
    }
  }
  CloseAll(idle);
  EXPECT_EQ(closed, 20u);
}

// A peer takes small requests only: a request of a MiB is refused as too
// large, not read and then judged.
TEST(HostileMessages, PeerRefusesLargeRequests) {
  testing::TempDir dir;
  int port = 0;
  auto client = StartLonePeer(dir, &port);
  ASSERT_GT(port, 0);
  auto stub = peer::v1::PeerService::NewStub(grpc::CreateChannel(
      absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials()));
  for (size_t size : {size_t{1} << 10, size_t{1} << 20}) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    peer::v1::GetPieceRequest req;
    req.set_ticket(std::string(size, 'x'));
    req.set_group_id("g");
    req.set_file_sha1(std::string(40, '0'));
    req.add_pieces(0);
    auto reader = stub->GetPiece(&ctx, req);
    peer::v1::PieceChunk chunk;
    while (reader->Read(&chunk)) {
    }
    const grpc::Status status = reader->Finish();
    EXPECT_EQ(status.error_code(), size > (64 << 10) ? grpc::StatusCode::RESOURCE_EXHAUSTED
                                                     : grpc::StatusCode::UNAVAILABLE)
        << size << ": " << status.error_message();
  }
}

// A storm of sign-ups (each a password to hash) never takes the threads
// the session calls need: keep-alives all answer while it lasts.
TEST(HostileSignups, KeepAlivesAnswerThroughACreateUserStorm) {
  namespace tv1 = ::groupshare::tracker::v1;
  testing::TempDir dir;
  testing::WriteFile(dir.File("bind.txt"), "127.0.0.1:0\n");
  Subprocess tracker({GS_TRACKER_BIN, dir.File("bind.txt"), "1", "--db", dir.File("t.db"),
                      "--port_file", dir.File("port"), "--max_threads", "64",
                      "--signups_per_address", "100000", "--password_iterations", "100000"},
                     {{"HOME", dir.path()}}, dir.File("tracker.log"));
  const int port = PortIn(dir.File("port"));
  ASSERT_GT(port, 0);
  auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", port),
                                     grpc::InsecureChannelCredentials());
  auto stub = tv1::TrackerService::NewStub(channel);
  auto call = [&](auto rpc, const auto& req, auto* resp, const std::string& token = "") {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    if (!token.empty()) ctx.AddMetadata("authorization", "Bearer " + token);
    return ((*stub).*rpc)(&ctx, req, resp);
  };
  tv1::CreateUserRequest alice;
  alice.set_user_id("alice");
  alice.set_password("pw");
  tv1::CreateUserResponse created;
  ASSERT_TRUE(call(&tv1::TrackerService::Stub::CreateUser, alice, &created).ok());
  tv1::LoginRequest login;
  login.set_user_id("alice");
  login.set_password("pw");
  tv1::LoginResponse session;
  ASSERT_TRUE(call(&tv1::TrackerService::Stub::Login, login, &session).ok());

  std::atomic<bool> stop{false};
  std::atomic<int> signups{0};
  std::vector<std::thread> storm;
  // 80 callers against 64 threads: without a bound on those waiting for
  // the password slot, they would all be parked there. Each pauses 20 ms
  // between calls, as more callers than threads hammering without pause
  // would take every thread of this (synchronous) server whatever it does.
  for (int t = 0; t < 80; ++t) {
    storm.emplace_back([&, t] {
      for (int i = 0; i < 40 && !stop; ++i) {
        if (i > 0) absl::SleepFor(absl::Milliseconds(20));
        tv1::CreateUserRequest req;
        req.set_user_id(absl::StrCat("storm-", t, "-", i));
        req.set_password("pw");
        tv1::CreateUserResponse resp;
        call(&tv1::TrackerService::Stub::CreateUser, req, &resp).ok();
        ++signups;
      }
    });
  }
  int answered = 0;
  for (int i = 0; i < 20; ++i) {
    tv1::KeepAliveResponse keep;
    const grpc::Status s =
        call(&tv1::TrackerService::Stub::KeepAlive, tv1::KeepAliveRequest(), &keep, session.token());
    answered += s.ok();
    EXPECT_TRUE(s.ok()) << s.error_code() << ": " << s.error_message();
    absl::SleepFor(absl::Milliseconds(100));  // keep-alives come at intervals
  }
  stop = true;
  for (auto& t : storm) t.join();
  EXPECT_EQ(answered, 20);
  EXPECT_GT(signups.load(), 160) << "the storm did not run";
}

}  // namespace
}  // namespace groupshare
