// End to end with the real binaries: a tracker and clients driven through
// piped stdin, checking what the shell prints; the tracker's command line,
// stdin and signals; fail-over; and durability across SIGKILL.

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <atomic>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "core/sqlite.h"
#include "core/ticket.h"
#include "groupshare/tracker/v1/tracker.grpc.pb.h"
#include "services/common/process.h"
#include "tests/testing/subprocess.h"
#include "tests/testing/temp_dir.h"

namespace groupshare {
namespace {

using ::testing::EndsWith;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::Optional;
using ::testing::StartsWith;
using testing::Subprocess;
using testing::TempDir;

struct TwoTrackersOnOneFile;

class E2E : public ::testing::Test {
 protected:
  friend struct TwoTrackersOnOneFile;

  // Starts tracker `n` of `info` on `db` and reads its port from the first
  // line it prints.
  std::unique_ptr<Subprocess> StartTracker(const std::string& info, int n,
                                           const std::string& db, int* port,
                                           const std::vector<std::string>& flags = {}) {
    std::vector<std::string> argv = {GS_TRACKER_BIN, info, std::to_string(n), "--db", db,
                                     "--password_iterations", "1000"};
    argv.insert(argv.end(), flags.begin(), flags.end());
    auto t = std::make_unique<Subprocess>(
        argv,
        std::map<std::string, std::string>{{"HOME", dir_.path()}}, dir_.File("tracker.log"));
    std::optional<std::string> line = t->WaitFor("listening on");
    EXPECT_TRUE(line.has_value()) << testing::ReadFile(dir_.File("tracker.log"));
    if (line.has_value()) {
      std::string port_text = line->substr(line->rfind(':') + 1);
      port_text = port_text.substr(0, port_text.find(' '));
      EXPECT_TRUE(absl::SimpleAtoi(port_text, port)) << *line;
    }
    return t;
  }

  // A tracker on a free port, with `flags` added; clients get
  // `client_info_` naming it.
  void StartOneTracker(const std::vector<std::string>& flags = {}) {
    testing::WriteFile(dir_.File("bind.txt"), "127.0.0.1:0\n");
    tracker_ = StartTracker(dir_.File("bind.txt"), 1, dir_.File("tracker.db"), &port_, flags);
    client_info_ = dir_.File("tracker_info.txt");
    testing::WriteFile(client_info_, absl::StrCat("127.0.0.1:", port_, "\n"));
  }

  std::unique_ptr<Subprocess> StartClient(const std::string& name,
                                          const std::string& info = "",
                                          const std::vector<std::string>& flags = {}) {
    std::vector<std::string> argv = {GS_CLIENT_BIN,
                                     absl::StrCat("127.0.0.1:", testing::UnusedPort()),
                                     info.empty() ? client_info_ : info, "--state_dir",
                                     dir_.File(name)};
    argv.insert(argv.end(), flags.begin(), flags.end());
    return std::make_unique<Subprocess>(
        argv,
        std::map<std::string, std::string>{{"HOME", dir_.path()}},
        dir_.File(name + ".stderr"));
  }

  // A tracker of the test's own, serving `service` (plaintext), and client
  // "c" of it; the client quits and the tracker stops when it goes.
  struct OwnTracker {
    OwnTracker() = default;
    OwnTracker(OwnTracker&&) = default;  // the moved-from one holds nothing to stop
    ~OwnTracker() {
      if (client != nullptr) {
        client->CloseStdin();
        client->Wait();
      }
      if (server != nullptr) server->Shutdown(std::chrono::system_clock::now());
    }
    std::unique_ptr<grpc::Server> server;
    std::unique_ptr<Subprocess> client;
  };
  OwnTracker ClientOfOwnTracker(grpc::Service* service);

  TempDir dir_;
  std::unique_ptr<Subprocess> tracker_;
  int port_ = 0;
  std::string client_info_;
};

// A flood of connections that never call is bounded by the tracker's
// memory quota: past it, gRPC closes connections, and the tracker still
// serves a real client.
TEST_F(E2E, AFloodOfIdleConnectionsIsBounded) {
  StartOneTracker({"--max_memory_mb", "2"});
  // HTTP/2's client preface and an empty SETTINGS frame, then silence.
  const std::string preface("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\4\0\0\0\0\0", 33);
  std::vector<int> fds;
  for (int i = 0; i < 600; ++i) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port_));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        write(fd, preface.data(), preface.size()) != static_cast<ssize_t>(preface.size())) {
      if (fd >= 0) close(fd);
      break;
    }
    fds.push_back(fd);
  }
  ASSERT_GE(fds.size(), 500u);
  // Count the connections the tracker closed (end of stream once its
  // frames are read), until some are or a deadline.
  auto closed = [&] {
    int n = 0;
    for (int fd : fds) {
      char buf[4096];
      ssize_t got;
      while ((got = recv(fd, buf, sizeof buf, MSG_DONTWAIT)) > 0) {
      }
      if (got == 0) ++n;
    }
    return n;
  };
  const absl::Time deadline = absl::Now() + absl::Seconds(15);
  int n = 0;
  while ((n = closed()) == 0 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(100));  // no event to wait on but the sockets
  }
  EXPECT_GT(n, 0);
  auto alice = StartClient("alice");
  EXPECT_THAT(alice->Run("create_user alice pw1"), StartsWith("user alice created"));
  for (int fd : fds) close(fd);
}

// The tracker answers listings in pages; the shell follows them all.
TEST_F(E2E, ShellFollowsListingPages) {
  StartOneTracker({"--page_size", "2"});
  auto alice = StartClient("alice");
  EXPECT_THAT(alice->Run("create_user alice pw1"), StartsWith("user alice created"));
  EXPECT_EQ(alice->Run("login alice pw1"), "logged in as alice");
  for (int i = 0; i < 5; ++i) {
    EXPECT_THAT(alice->Run(absl::StrCat("create_group g", i)), StartsWith("group g"));
  }
  EXPECT_EQ(alice->Run("list_groups"), "g0 owner=alice members=1 you=owner");
  for (int i = 1; i < 5; ++i) {
    EXPECT_EQ(alice->ReadLine(), absl::StrCat("g", i, " owner=alice members=1 you=owner"));
  }
  // Nothing more was printed: the next command's answer comes next.
  EXPECT_EQ(alice->Run("create_group g9"), "group g9 created; you own it");
}

TEST_F(E2E, AccountAndGroupFlowThroughTwoShells) {
  StartOneTracker();
  auto alice = StartClient("alice");
  auto bob = StartClient("bob");

  EXPECT_THAT(alice->Run("list_groups"), StartsWith("error: not logged in"));
  EXPECT_EQ(alice->Run("create_user alice pw1"),
            "user alice created; log in with login alice <password>");
  EXPECT_THAT(alice->Run("create_user alice other"), StartsWith("error: user 'alice' already exists"));
  EXPECT_EQ(alice->Run("login alice wrong"), "error: wrong user id or password for 'alice'; check both, or create the account first (create_user)");
  EXPECT_THAT(alice->Run("login nobody pw"), StartsWith("error: wrong user id or password"));
  EXPECT_EQ(alice->Run("login alice pw1"), "logged in as alice");
  EXPECT_THAT(alice->Run("login alice pw1"), StartsWith("error: already logged in as alice"));
  EXPECT_EQ(alice->Run("list_groups"), "no groups yet; create one with create_group <group_id>");
  EXPECT_EQ(alice->Run("create_group movies"), "group movies created; you own it");
  EXPECT_THAT(alice->Run("create_group movies"), StartsWith("error: group 'movies' already exists"));

  EXPECT_EQ(bob->Run("create_user bob pw2"), "user bob created; log in with login bob <password>");
  EXPECT_EQ(bob->Run("login bob pw2"), "logged in as bob");
  EXPECT_EQ(bob->Run("list_groups"), "movies owner=alice members=1 you=none");
  EXPECT_THAT(bob->Run("list_files movies"), StartsWith("error: you are not a member"));
  EXPECT_THAT(bob->Run("join_group nope"), StartsWith("error: no group 'nope'"));
  EXPECT_EQ(bob->Run("join_group movies"), "asked to join movies; its owner must accept");
  EXPECT_THAT(bob->Run("join_group movies"), StartsWith("error: you already asked to join"));
  EXPECT_EQ(bob->Run("list_groups"), "movies owner=alice members=1 you=pending");
  EXPECT_THAT(bob->Run("list_requests movies"), StartsWith("error: only the owner"));
  EXPECT_THAT(bob->Run("accept_request movies bob"), StartsWith("error: only the owner"));

  EXPECT_THAT(alice->Run("list_requests movies"), StartsWith("bob asked "));
  EXPECT_THAT(alice->Run("accept_request movies carol"), StartsWith("error: no pending request"));
  EXPECT_EQ(alice->Run("accept_request movies bob"), "bob is now a member of movies");
  EXPECT_EQ(alice->Run("accept_request movies bob"),
            "error: 'bob' is a member of group 'movies' already");
  EXPECT_EQ(alice->Run("list_requests movies"), "no pending requests for movies");
  EXPECT_EQ(bob->Run("list_groups"), "movies owner=alice members=2 you=member");
  EXPECT_EQ(bob->Run("list_files movies"), "no files in movies yet");

  EXPECT_EQ(alice->Run("leave_group movies"), "left movies; bob owns it now");
  EXPECT_EQ(bob->Run("list_groups"), "movies owner=bob members=1 you=owner");
  EXPECT_THAT(alice->Run("leave_group movies"), StartsWith("error: you are not a member"));
  EXPECT_EQ(alice->Run("join_group movies"), "asked to join movies; its owner must accept");
  EXPECT_EQ(bob->Run("reject_request movies alice"), "rejected alice's request to join movies");
  // The requester learns of it, until it asks again.
  EXPECT_EQ(alice->Run("list_groups"), "movies owner=bob members=1 you=rejected");
  EXPECT_EQ(alice->Run("join_group movies"), "asked to join movies; its owner must accept");
  EXPECT_EQ(alice->Run("list_groups"), "movies owner=bob members=1 you=pending");
  EXPECT_EQ(bob->Run("reject_request movies alice"), "rejected alice's request to join movies");
  EXPECT_EQ(bob->Run("leave_group movies"), "left movies; it had no other member and is deleted");
  EXPECT_EQ(alice->Run("list_groups"), "no groups yet; create one with create_group <group_id>");

  EXPECT_EQ(alice->Run("logout"), "logged out alice");
  EXPECT_THAT(alice->Run("create_group x"), StartsWith("error: not logged in"));
  alice->Send("quit");
  EXPECT_EQ(alice->Wait(), 0);
  bob->CloseStdin();  // end of input ends the shell too
  EXPECT_EQ(bob->Wait(), 0);
}

TEST_F(E2E, ShellRejectsBadInputWithUsage) {
  StartOneTracker();
  auto c = StartClient("c");
  EXPECT_EQ(c->Run("create_user onlyone"), "error: usage: create_user <user_id> <password>");
  EXPECT_EQ(c->Run("login a b c"), "error: usage: login <user_id> <password>");
  EXPECT_EQ(c->Run("frobnicate"), "error: unknown command 'frobnicate'; type help for the list");
  EXPECT_EQ(c->Run(std::string(100'000, 'x')),
            absl::StrCat("error: unknown command '", std::string(64, 'x'),
                         "...'; type help for the list"));
  EXPECT_THAT(c->Run(absl::StrCat("create_user ", std::string(65, 'u'), " pw")),
              StartsWith("error: user id is 65 bytes long; the limit is 64"));
  EXPECT_THAT(c->Run("create_user a\x01z pw"), HasSubstr("control characters"));
  EXPECT_EQ(c->Run("create_user u pw"), "user u created; log in with login u <password>");
  EXPECT_EQ(c->Run("login u pw"), "logged in as u");
  EXPECT_EQ(c->Run("accept_request g"), "error: usage: accept_request <group_id> <user_id>");
  EXPECT_THAT(c->Run(absl::StrCat("create_group ", std::string(65, 'g'))),
              StartsWith("error: group id is 65 bytes long"));
  // Blank lines and comments print nothing; help lists every command.
  c->Send("");
  c->Send("# a comment");
  c->Send("help");
  EXPECT_THAT(c->ReadLine().value_or(""), StartsWith("create_user <user_id> <password> - "));
  ASSERT_TRUE(c->WaitFor("quit - ").has_value());
  for (const char* usage : {"accept_request <group_id> <user_id> - ",
                            "upload_file <file_path> <group_id> - ",
                            "download_file <group_id> <file_name> <destination_path> - ",
                            "show_downloads [--peers] [--clear] - ", "stop_share <group_id> <file_name> - "}) {
    EXPECT_THAT(c->transcript(), HasSubstr(usage));
  }
  // The tracker survived all of it.
  EXPECT_EQ(c->Run("list_groups"), "no groups yet; create one with create_group <group_id>");
}

TEST_F(E2E, TrackerCommandLineErrors) {
  auto run = [&](std::vector<std::string> args) {
    args.insert(args.begin(), GS_TRACKER_BIN);
    Subprocess p(args, {{"HOME", dir_.path()}}, dir_.File("err.txt"));
    p.CloseStdin();
    std::optional<int> code = p.Wait();
    std::string err = testing::ReadFile(dir_.File("err.txt"));
    testing::WriteFile(dir_.File("err.txt"), "");
    return std::make_pair(code.value_or(-1), err);
  };
  auto [code, err] = run({dir_.File("missing.txt"), "1"});
  EXPECT_EQ(code, 2);
  EXPECT_THAT(err, HasSubstr("cannot read tracker_info file"));

  testing::WriteFile(dir_.File("bad.txt"), "127.0.0.1:5000\nnonsense\n");
  std::tie(code, err) = run({dir_.File("bad.txt"), "1"});
  EXPECT_EQ(code, 2);
  EXPECT_THAT(err, HasSubstr("line 2"));

  testing::WriteFile(dir_.File("good.txt"), "127.0.0.1:0\n");
  std::tie(code, err) = run({dir_.File("good.txt"), "2"});
  EXPECT_EQ(code, 2);
  EXPECT_THAT(err, HasSubstr("from 1 to 1"));
  std::tie(code, err) = run({dir_.File("good.txt"), "one"});
  EXPECT_EQ(code, 2);
  std::tie(code, err) = run({dir_.File("good.txt")});
  EXPECT_EQ(code, 2);
  EXPECT_THAT(err, HasSubstr("expected <tracker_info.txt> <tracker_no>"));
  std::tie(code, err) = run({dir_.File("good.txt"), "1", "extra"});
  EXPECT_EQ(code, 2);
  EXPECT_THAT(err, HasSubstr("one argument too many: 'extra'"));
  std::tie(code, err) = run({dir_.File("good.txt"), "1", "--db", dir_.File("no/tracker.db")});
  EXPECT_EQ(code, 2);
  EXPECT_THAT(err, HasSubstr(absl::StrCat("cannot open database '", dir_.File("no/tracker.db"),
                                          "': unable to open database file (No such file or "
                                          "directory)")));
  // The specification's own command line repeats the tracker_info file.
  {
    Subprocess spec({GS_TRACKER_BIN, dir_.File("good.txt"), "1", dir_.File("good.txt"), "--db",
                     dir_.File("spec.db")},
                    {{"HOME", dir_.path()}}, dir_.File("err.txt"));
    spec.Send("quit");
    EXPECT_EQ(spec.Wait(), 0) << testing::ReadFile(dir_.File("err.txt"));
  }

  Subprocess help({GS_TRACKER_BIN, "--help"});
  EXPECT_THAT(help.ReadLine().value_or(""), StartsWith("Usage: tracker"));
  EXPECT_EQ(help.Wait(), 0);
  Subprocess client_help({GS_CLIENT_BIN, "--help"});
  EXPECT_THAT(client_help.ReadLine().value_or(""), StartsWith("Usage: client"));
  EXPECT_EQ(client_help.Wait(), 0);
}

// A PostgreSQL password given in --db does not stay in what ps shows.
TEST(HidePasswordsInArgs, KeyValueAndUriPasswordsAreOverwritten) {
  std::string args[] = {"tracker", "--db",
                        "host=db user=t password=s3cret dbname=g",
                        "--db=postgresql://t:s3cret@db:5432/g?sslmode=require",
                        "postgresql://t@db/g", "--other=user:pw@x"};
  char* argv[6];
  for (int i = 0; i < 6; ++i) argv[i] = args[i].data();
  HidePasswordsInArgs(6, argv);
  EXPECT_STREQ(argv[2], "host=db user=t password=xxxxxx dbname=g");
  EXPECT_STREQ(argv[3], "--db=postgresql://t:xxxxxx@db:5432/g?sslmode=require");
  EXPECT_STREQ(argv[4], "postgresql://t@db/g");
  EXPECT_STREQ(argv[5], "--other=user:pw@x");
}

TEST_F(E2E, ClientCommandLineErrors) {
  auto code_of = [&](std::vector<std::string> args) {
    args.insert(args.begin(), GS_CLIENT_BIN);
    Subprocess p(args, {{"HOME", dir_.path()}}, dir_.File("err.txt"));
    p.CloseStdin();
    return p.Wait().value_or(-1);
  };
  testing::WriteFile(dir_.File("good.txt"), "127.0.0.1:5000\n");
  EXPECT_EQ(code_of({"127.0.0.1:6000", dir_.File("missing.txt")}), 2);
  EXPECT_EQ(code_of({"not-an-address", dir_.File("good.txt")}), 2);
  EXPECT_EQ(code_of({"127.0.0.1:6000"}), 2);
  EXPECT_THAT(testing::ReadFile(dir_.File("err.txt")), HasSubstr("error: "));
  EXPECT_EQ(code_of({"127.0.0.1:0", dir_.File("good.txt"), "x", "y"}), 2);
  EXPECT_THAT(testing::ReadFile(dir_.File("err.txt")),
              HasSubstr("2 arguments too many: 'x' 'y'"));
  // A state folder that cannot be made says why.
  EXPECT_EQ(code_of({"127.0.0.1:0", dir_.File("good.txt"), "--state_dir", dir_.File("no/state")}),
            2);
  EXPECT_THAT(
      testing::ReadFile(dir_.File("err.txt")),
      EndsWith(absl::StrCat("error: cannot create the state folder '", dir_.File("no/state"),
                            "' (No such file or directory); give --state_dir a folder "
                            "you may write\n")));
  EXPECT_EQ(code_of({"127.0.0.1:0", dir_.File("good.txt"), "--state_dir", dir_.File("good.txt")}),
            2);
  EXPECT_THAT(testing::ReadFile(dir_.File("err.txt")),
              EndsWith(absl::StrCat("error: the state folder '", dir_.File("good.txt"),
                                    "' is a file; give --state_dir a folder you may write\n")));
  // A damaged state says so, and what to do.
  ASSERT_EQ(mkdir(dir_.File("damaged").c_str(), 0700), 0);
  testing::WriteFile(dir_.File("damaged/state.db"), std::string(8192, 'x'));
  EXPECT_EQ(code_of({"127.0.0.1:0", dir_.File("good.txt"), "--state_dir", dir_.File("damaged")}),
            2);
  EXPECT_THAT(testing::ReadFile(dir_.File("err.txt")),
              EndsWith(absl::StrCat("error: the client's state is damaged (database '",
                                    dir_.File("damaged/state.db"),
                                    "': file is not a database); move state.db away and start "
                                    "again, then upload_file your shares again (the files "
                                    "themselves are untouched)\n")));
  // As the specification writes it: the tracker_info file twice.
  EXPECT_EQ(code_of({"127.0.0.1:0", dir_.File("good.txt"), dir_.File("good.txt"),
                     "--state_dir", dir_.File("state")}),
            0)
      << testing::ReadFile(dir_.File("err.txt"));
}

// Two clients on one state folder would share a client id, a state and part
// files: the second stops at once and says why.
TEST_F(E2E, ASecondClientOnTheSameStateFolderDoesNotStart) {
  StartOneTracker();
  auto first = StartClient("alice");
  EXPECT_THAT(first->Run("create_user alice pw-alice"), StartsWith("user alice created"));
  auto second = StartClient("alice");
  second->CloseStdin();
  EXPECT_THAT(second->Wait(), Optional(2));
  EXPECT_EQ(testing::ReadFile(dir_.File("alice.stderr")),
            absl::StrCat("error: another client uses the state folder '", dir_.File("alice"),
                         "' (held by process ", first->pid(),
                         "); quit it, or give this one a --state_dir of its own\n"));
  // The first goes on; once it is gone, the folder is free.
  EXPECT_THAT(first->Run("login alice pw-alice"), StartsWith("logged in as alice"));
  first->Send("quit");
  EXPECT_THAT(first->Wait(), Optional(0));
  auto third = StartClient("alice");
  EXPECT_THAT(third->Run("login alice pw-alice"), StartsWith("logged in as alice"));
}

TEST_F(E2E, TrackerStopsOnQuitAndSignalsButNotOnPipeEof) {
  testing::WriteFile(dir_.File("bind.txt"), "127.0.0.1:0\n");
  int port = 0;
  auto t = StartTracker(dir_.File("bind.txt"), 1, dir_.File("a.db"), &port);
  t->Send("quit");
  EXPECT_EQ(t->Wait(), 0);

  t = StartTracker(dir_.File("bind.txt"), 1, dir_.File("a.db"), &port);
  t->CloseStdin();
  // Still serving after end of input: a client gets through.
  testing::WriteFile(dir_.File("info.txt"), absl::StrCat("127.0.0.1:", port, "\n"));
  auto c = StartClient("c", dir_.File("info.txt"));
  EXPECT_EQ(c->Run("create_user u pw"), "user u created; log in with login u <password>");
  t->Signal(SIGTERM);
  EXPECT_EQ(t->Wait(), 0);
  // Said as a person would, not in gRPC's words.
  const std::string down = c->Run("create_user v pw");
  EXPECT_THAT(down, StartsWith("error: no tracker answers"));
  EXPECT_THAT(down, HasSubstr("nothing listens at those addresses"));
  EXPECT_THAT(down, Not(HasSubstr("failed to connect")));

  t = StartTracker(dir_.File("bind.txt"), 1, dir_.File("a.db"), &port);
  t->Signal(SIGINT);
  EXPECT_EQ(t->Wait(), 0);
}

TEST_F(E2E, NeitherBinaryStartsOnAnAddressInUse) {
  StartOneTracker();
  const std::string taken = absl::StrCat("127.0.0.1:", port_);
  testing::WriteFile(dir_.File("taken.txt"), taken + "\n");
  Subprocess second({GS_TRACKER_BIN, dir_.File("taken.txt"), "1", "--db", dir_.File("other.db")},
                    {{"HOME", dir_.path()}}, dir_.File("second.err"));
  second.CloseStdin();
  EXPECT_EQ(second.Wait(), 2);
  EXPECT_THAT(testing::ReadFile(dir_.File("second.err")),
              HasSubstr("cannot listen on " + taken + ": the address is in use"));
  Subprocess client({GS_CLIENT_BIN, taken, client_info_, "--state_dir", dir_.File("c")},
                    {{"HOME", dir_.path()}}, dir_.File("client.err"));
  client.CloseStdin();
  EXPECT_EQ(client.Wait(), 2);
  EXPECT_THAT(testing::ReadFile(dir_.File("client.err")),
              HasSubstr("cannot listen on " + taken + ": the address is in use"));
  // Only the binaries' own words: gRPC's dump of the failure stays out.
  for (const char* err : {"second.err", "client.err"}) {
    EXPECT_THAT(testing::ReadFile(dir_.File(err)), Not(HasSubstr("chttp2_server"))) << err;
  }
}

// A tracker of the test's own that lets anybody log in and keep alive; what
// else it answers, its subclasses say.
class LoginOnlyTracker : public tracker::v1::TrackerService::Service {
 public:
  grpc::Status Login(grpc::ServerContext*, const tracker::v1::LoginRequest*,
                     tracker::v1::LoginResponse* resp) override {
    resp->set_token(std::string(64, 'a'));
    resp->set_session_ttl_seconds(30);
    resp->set_ticket_public_key(TicketSigner::Generate().value()->PublicKey());
    return grpc::Status::OK;
  }
  grpc::Status KeepAlive(grpc::ServerContext*, const tracker::v1::KeepAliveRequest*,
                         tracker::v1::KeepAliveResponse*) override {
    return grpc::Status::OK;
  }
};

// Serves `service` on a free port, plaintext, and writes its address to
// `info_file`, for a client to take as its tracker.
std::unique_ptr<grpc::Server> ServeAsTracker(grpc::Service* service,
                                             const std::string& info_file) {
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server != nullptr) testing::WriteFile(info_file, absl::StrCat("127.0.0.1:", port, "\n"));
  return server;
}

E2E::OwnTracker E2E::ClientOfOwnTracker(grpc::Service* service) {
  OwnTracker own;
  own.server = ServeAsTracker(service, dir_.File("own_tracker.txt"));
  if (own.server != nullptr) {
    own.client = StartClient("c", dir_.File("own_tracker.txt"), {"--plaintext"});
  }
  return own;
}

// A tracker that answers with terminal escape sequences and spoofing
// characters in what the shell prints: a group id that sets the terminal's
// title and writes its clipboard, an owner with a right-to-left override,
// an error message that clears the screen.
class InjectingTracker final : public LoginOnlyTracker {
 public:
  grpc::Status ListGroups(grpc::ServerContext*, const tracker::v1::ListGroupsRequest*,
                          tracker::v1::ListGroupsResponse* resp) override {
    tracker::v1::Group* g = resp->add_groups();
    g->set_group_id("evil\x1b]0;owned\x07\x1b]52;c;aGk=\x07");
    g->set_owner("mallory\u202efdp.exe");
    g->set_member_count(1);
    g->set_relation(tracker::v1::RELATION_NONE);
    return grpc::Status::OK;
  }
  grpc::Status CreateGroup(grpc::ServerContext*, const tracker::v1::CreateGroupRequest*,
                           tracker::v1::CreateGroupResponse*) override {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "\x1b[2J\rgone");
  }
};

TEST_F(E2E, StringsFromATrackerCannotActOnTheTerminal) {
  InjectingTracker service;
  OwnTracker own = ClientOfOwnTracker(&service);
  ASSERT_NE(own.server, nullptr);
  Subprocess* c = own.client.get();
  EXPECT_EQ(c->Run("login x y"), "logged in as x");
  EXPECT_EQ(c->Run("list_groups"),
            "evil\\e]0;owned\\x07\\e]52;c;aGk=\\x07 owner=mallory\\u{202e}fdp.exe members=1 "
            "you=none");
  EXPECT_EQ(c->Run("create_group g"), "error: \\e[2J\\x0dgone");
  EXPECT_EQ(c->transcript().find('\x1b'), std::string::npos);
}

// A tracker that describes a file inconsistently: a SHA1 chain of the
// wrong length, or with an entry that is no SHA1, or pieces of a size no
// sharer may register.
class InconsistentFileTracker final : public LoginOnlyTracker {
 public:
  grpc::Status GetFilePeers(grpc::ServerContext*, const tracker::v1::GetFilePeersRequest* req,
                            tracker::v1::GetFilePeersResponse* resp) override {
    tracker::v1::FileInfo* f = resp->mutable_file();
    f->set_name(req->file_name());
    f->set_size(3 << 14);
    f->set_piece_size(1 << 14);
    f->set_sha1(std::string(40, 'a'));
    for (int i = 0; i < 3; ++i) f->add_piece_sha1(std::string(40, 'b'));
    f->add_sha1_chain(std::string(40, 'c'));
    if (req->file_name() == "bad_hex.bin") f->add_sha1_chain("not a sha1");
    if (req->file_name() == "huge_piece.bin") {
      f->set_size(uint64_t{1} << 31);
      f->set_piece_size(1u << 31);
      f->clear_piece_sha1();
      f->add_piece_sha1(std::string(40, 'b'));
      f->clear_sha1_chain();
    }
    return grpc::Status::OK;
  }
};

TEST_F(E2E, AFileATrackerDescribesInconsistentlyIsNotDownloaded) {
  InconsistentFileTracker service;
  OwnTracker own = ClientOfOwnTracker(&service);
  ASSERT_NE(own.server, nullptr);
  Subprocess* c = own.client.get();
  EXPECT_EQ(c->Run("login x y"), "logged in as x");
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"short_chain.bin",
       "a file of 3 pieces has 2 sha1_chain entries (one after each piece "
       "but the last) or none, but 1 were given"},
      {"bad_hex.bin", "sha1_chain[1] must be 40 lower-case hex digits"},
      {"huge_piece.bin", "piece_size 2147483648 must be a power of two from 16 KiB to 16 MiB"}};
  for (const auto& [name, why] : cases) {
    EXPECT_EQ(c->Run(absl::StrCat("download_file g ", name, " ", dir_.File(name))),
              absl::StrCat("error: the tracker sent inconsistent file metadata (", why, ")"))
        << name;
    EXPECT_NE(access(dir_.File(absl::StrCat(name, ".part")).c_str(), F_OK), 0) << name;
  }
}

// A tracker whose login lists 100,000 shares this client never made; it
// counts the StopShare calls that come back.
class ShareFloodingTracker final : public LoginOnlyTracker {
 public:
  grpc::Status Login(grpc::ServerContext* ctx, const tracker::v1::LoginRequest* req,
                     tracker::v1::LoginResponse* resp) override {
    LoginOnlyTracker::Login(ctx, req, resp);
    for (int i = 0; i < 100'000; ++i) {
      tracker::v1::Share* share = resp->add_shares();
      share->set_group_id("g");
      share->set_file_name(absl::StrCat("f", i));
      share->set_sha1(std::string(40, 'a'));
      share->set_complete(true);
    }
    return grpc::Status::OK;
  }
  grpc::Status StopShare(grpc::ServerContext*, const tracker::v1::StopShareRequest*,
                         tracker::v1::StopShareResponse*) override {
    ++stop_shares;
    return grpc::Status::OK;
  }
  std::atomic<int> stop_shares{0};
};

TEST_F(E2E, ALoginListingSharesTheClientNeverMadeWithdrawsABoundedFew) {
  ShareFloodingTracker service;
  OwnTracker own = ClientOfOwnTracker(&service);
  ASSERT_NE(own.server, nullptr);
  Subprocess* c = own.client.get();
  const absl::Time start = absl::Now();
  EXPECT_EQ(c->Run("login x y"),
            "logged in as x; not shared again: 64 files the state folder holds no record of, "
            "such as f0 in g");
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
  EXPECT_EQ(service.stop_shares.load(), 64);
}

TEST_F(E2E, ClientOnAPipeStopsOnASignalAndLogsOut) {
  StartOneTracker({"--max_sessions_per_user", "1"});
  auto alice = StartClient("alice");
  EXPECT_EQ(alice->Run("create_user alice pw"),
            "user alice created; log in with login alice <password>");
  EXPECT_EQ(alice->Run("login alice pw"), "logged in as alice");
  // One session at a time: another client is refused while it lives.
  auto other = StartClient("alice-elsewhere");
  EXPECT_THAT(other->Run("login alice pw"), StartsWith("error: "));
  alice->Signal(SIGTERM);
  EXPECT_EQ(alice->Wait(), 0);
  // The main loop logged out on its way out: the session is gone, long
  // before it would have expired.
  EXPECT_EQ(other->Run("login alice pw"), "logged in as alice");
  // A terminal that closes (a dropped ssh connection) stops it as cleanly.
  other->Signal(SIGHUP);
  EXPECT_EQ(other->Wait(), 0);
  auto third = StartClient("alice-third");
  EXPECT_EQ(third->Run("login alice pw"), "logged in as alice");
}

TEST_F(E2E, ClientFailsOverToTheNextTracker) {
  StartOneTracker();
  std::string info = dir_.File("two.txt");
  testing::WriteFile(info, absl::StrCat("127.0.0.1:", testing::UnusedPort(), "\n127.0.0.1:",
                                        port_, "\n"));
  auto c = StartClient("c", info);
  EXPECT_EQ(c->Run("create_user u pw"), "user u created; log in with login u <password>");
  EXPECT_EQ(c->Run("login u pw"), "logged in as u");
  EXPECT_EQ(c->Run("create_group g"), "group g created; you own it");
}

// A connection that carries no call is closed after
// --idle_connection_timeout: idle connections cannot pile up.
TEST_F(E2E, TrackerClosesIdleConnections) {
  testing::WriteFile(dir_.File("bind.txt"), "127.0.0.1:0\n");
  int port = 0;
  auto t = StartTracker(dir_.File("bind.txt"), 1, dir_.File("idle.db"), &port,
                        {"--idle_connection_timeout", "1"});
  grpc::SslCredentialsOptions tls;
  tls.pem_root_certs = testing::ReadFile(dir_.File("idle.db.cert.pem"));
  auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", port), grpc::SslCredentials(tls));
  ASSERT_TRUE(channel->WaitForConnected(std::chrono::system_clock::now() +
                                        std::chrono::seconds(10)));
  // The server's GOAWAY moves the channel out of READY.
  const auto deadline = std::chrono::system_clock::now() + std::chrono::seconds(10);
  bool closed = false;
  while (!closed && std::chrono::system_clock::now() < deadline) {
    if (!channel->WaitForStateChange(GRPC_CHANNEL_READY, deadline)) break;
    closed = channel->GetState(false) != GRPC_CHANNEL_READY;
  }
  EXPECT_TRUE(closed);
}

TEST_F(E2E, TwoTrackersOnOneDatabaseShareState) {
  testing::WriteFile(dir_.File("bind.txt"), "127.0.0.1:0\n127.0.0.1:0\n");
  int p1 = 0, p2 = 0;
  auto t1 = StartTracker(dir_.File("bind.txt"), 1, dir_.File("shared.db"), &p1);
  auto t2 = StartTracker(dir_.File("bind.txt"), 2, dir_.File("shared.db"), &p2);
  std::string info = dir_.File("two.txt");
  testing::WriteFile(info, absl::StrCat("127.0.0.1:", p1, "\n127.0.0.1:", p2, "\n"));
  auto c = StartClient("c", info);
  EXPECT_EQ(c->Run("create_user u pw"), "user u created; log in with login u <password>");
  EXPECT_EQ(c->Run("login u pw"), "logged in as u");
  EXPECT_EQ(c->Run("create_group g"), "group g created; you own it");
  t1->Signal(SIGKILL);
  t1->Wait();
  // The session and the group live on at tracker 2.
  EXPECT_EQ(c->Run("list_groups"), "g owner=u members=1 you=owner");
}

// The files of `pid` that were deleted while it held them open.
std::vector<std::string> DeletedOpenFiles(pid_t pid) {
  std::vector<std::string> deleted;
  const std::string fds = absl::StrCat("/proc/", pid, "/fd");
  DIR* dir = opendir(fds.c_str());
  if (dir == nullptr) return {"cannot read " + fds};
  while (dirent* e = readdir(dir)) {
    char target[4096];
    ssize_t n = readlink((fds + "/" + e->d_name).c_str(), target, sizeof(target) - 1);
    if (n <= 0) continue;
    std::string t(target, static_cast<size_t>(n));
    if (absl::EndsWith(t, " (deleted)")) deleted.push_back(t);
  }
  closedir(dir);
  return deleted;
}

// Trackers 1 and 2 on one SQLite file, on ports of their own (kept across
// restarts), and a client for each that knows that tracker only, so that its
// writes go through that one.
struct TwoTrackersOnOneFile {
  explicit TwoTrackersOnOneFile(E2E* test) : test(test), db(test->dir_.File("shared.db")) {
    testing::WriteFile(bind, absl::StrCat("127.0.0.1:", ports[0], "\n127.0.0.1:", ports[1], "\n"));
    for (int i = 0; i < 2; ++i) {
      trackers[i] = Start(i);
      std::string info = test->dir_.File(absl::StrCat("only", i + 1, ".txt"));
      testing::WriteFile(info, absl::StrCat("127.0.0.1:", ports[i], "\n"));
      clients[i] = test->StartClient(absl::StrCat("c", i + 1), info);
    }
  }
  std::unique_ptr<Subprocess> Start(int i) {
    int port = 0;
    return test->StartTracker(bind, i + 1, db, &port);
  }

  E2E* const test;
  const std::string db;
  const std::string bind = test->dir_.File("bind.txt");
  const int ports[2] = {testing::UnusedPort(), testing::UnusedPort()};
  std::unique_ptr<Subprocess> trackers[2];
  std::unique_ptr<Subprocess> clients[2];
};

// Two trackers on one SQLite file, as the README suggests for fail-over on
// one machine: each is stopped cleanly and started again in turn while a
// client writes through the other. Nothing acknowledged is lost, the one
// still running never writes into a deleted WAL, and the file checks out.
TEST_F(E2E, TwoTrackersOnOneSqliteFileSurviveCleanStopsInTurn) {
  TwoTrackersOnOneFile two(this);
  auto& trackers = two.trackers;
  auto& clients = two.clients;
  std::vector<std::string> users;
  auto create = [&](int via, const std::string& user) {
    EXPECT_EQ(clients[via]->Run("create_user " + user + " pw"),
              "user " + user + " created; log in with login " + user + " <password>");
    users.push_back(user);
  };
  create(0, "u0");
  create(1, "u1");
  for (int round = 0; round < 4; ++round) {
    const int stopped = round % 2, running = 1 - stopped;
    trackers[stopped]->Send("quit");
    ASSERT_EQ(trackers[stopped]->Wait(), 0);
    EXPECT_THAT(DeletedOpenFiles(trackers[running]->pid()), ::testing::IsEmpty())
        << "after tracker " << stopped + 1 << " stopped";
    for (int k = 0; k < 3; ++k) create(running, absl::StrCat("r", round, "k", k));
    trackers[stopped] = two.Start(stopped);
    // What went through one is seen through the other at once.
    EXPECT_EQ(clients[stopped]->Run("create_user " + users.back() + " other"),
              "error: user '" + users.back() + "' already exists; choose another user id or log in");
  }
  // Every acknowledged account logs in through either tracker.
  for (const std::string& user : users) {
    for (int via = 0; via < 2; ++via) {
      EXPECT_EQ(clients[via]->Run("login " + user + " pw"), "logged in as " + user);
      EXPECT_EQ(clients[via]->Run("logout"), "logged out " + user);
    }
  }
  for (auto& t : trackers) {
    t->Send("quit");
    ASSERT_EQ(t->Wait(), 0);
  }
  auto check = sqlite::Database::Open(two.db);
  ASSERT_TRUE(check.ok()) << check.status();
  auto integrity = (*check)->Prepare("PRAGMA integrity_check");
  ASSERT_TRUE(integrity.ok());
  ASSERT_TRUE(*integrity->Step());
  EXPECT_EQ(integrity->Text(0), "ok");
  auto count = (*check)->Prepare("SELECT COUNT(*) FROM users");
  ASSERT_TRUE(count.ok());
  ASSERT_TRUE(*count->Step());
  EXPECT_EQ(count->Int(0), static_cast<int64_t>(users.size()));
}

// The same with SIGKILL, for either tracker: writes acknowledged through
// the killed one survive the other's clean stop, and the reverse.
TEST_F(E2E, TwoTrackersOnOneSqliteFileEitherKilledLosesNothing) {
  TwoTrackersOnOneFile two(this);
  auto& trackers = two.trackers;
  auto& clients = two.clients;
  std::vector<std::string> users;
  for (int killed = 0; killed < 2; ++killed) {
    const int other = 1 - killed;
    for (int via : {killed, other, killed}) {
      const std::string user = absl::StrCat("k", killed, "u", users.size());
      ASSERT_EQ(clients[via]->Run("create_user " + user + " pw"),
                "user " + user + " created; log in with login " + user + " <password>");
      users.push_back(user);
    }
    // Killed right after its last acknowledgement; the other stops cleanly
    // (the last connection of all, which checkpoints), and both come back.
    trackers[killed]->Signal(SIGKILL);
    ASSERT_EQ(trackers[killed]->Wait(), 128 + SIGKILL);
    trackers[other]->Send("quit");
    ASSERT_EQ(trackers[other]->Wait(), 0);
    for (int i : {other, killed}) trackers[i] = two.Start(i);
    for (const std::string& user : users) {
      for (int via = 0; via < 2; ++via) {
        EXPECT_EQ(clients[via]->Run("login " + user + " pw"), "logged in as " + user);
        EXPECT_EQ(clients[via]->Run("logout"), "logged out " + user);
      }
    }
  }
}

TEST_F(E2E, TrackerKilledWithSigkillLosesNothingItAcknowledged) {
  testing::WriteFile(dir_.File("bind.txt"), "127.0.0.1:0\n");
  int port = 0;
  auto t = StartTracker(dir_.File("bind.txt"), 1, dir_.File("d.db"), &port);
  std::string info = dir_.File("info.txt");
  testing::WriteFile(info, absl::StrCat("127.0.0.1:", port, "\n"));
  {
    auto a = StartClient("a", info);
    auto b = StartClient("b", info);
    auto c = StartClient("c", info);
    ASSERT_EQ(a->Run("create_user alice pa"), "user alice created; log in with login alice <password>");
    ASSERT_EQ(b->Run("create_user bob pb"), "user bob created; log in with login bob <password>");
    ASSERT_EQ(c->Run("create_user carol pc"), "user carol created; log in with login carol <password>");
    ASSERT_EQ(a->Run("login alice pa"), "logged in as alice");
    ASSERT_EQ(b->Run("login bob pb"), "logged in as bob");
    ASSERT_EQ(c->Run("login carol pc"), "logged in as carol");
    ASSERT_EQ(a->Run("create_group g1"), "group g1 created; you own it");
    ASSERT_EQ(a->Run("create_group g2"), "group g2 created; you own it");
    ASSERT_EQ(b->Run("join_group g1"), "asked to join g1; its owner must accept");
    ASSERT_EQ(a->Run("accept_request g1 bob"), "bob is now a member of g1");
    ASSERT_EQ(c->Run("join_group g1"), "asked to join g1; its owner must accept");
    ASSERT_EQ(c->Run("join_group g2"), "asked to join g2; its owner must accept");
    // Killed right after the last acknowledgement, with clients still on.
    t->Signal(SIGKILL);
    ASSERT_EQ(t->Wait(), 128 + SIGKILL);
  }
  testing::WriteFile(dir_.File("again.txt"), absl::StrCat("127.0.0.1:", port, "\n"));
  t = StartTracker(dir_.File("again.txt"), 1, dir_.File("d.db"), &port);
  auto a = StartClient("a2", info);
  EXPECT_EQ(a->Run("login alice pa"), "logged in as alice");
  EXPECT_EQ(a->Run("list_groups"), "g1 owner=alice members=2 you=owner");
  EXPECT_EQ(a->ReadLine().value_or(""), "g2 owner=alice members=1 you=owner");
  EXPECT_THAT(a->Run("list_requests g1"), StartsWith("carol asked "));
  EXPECT_THAT(a->Run("list_requests g2"), StartsWith("carol asked "));
  auto b = StartClient("b2", info);
  EXPECT_EQ(b->Run("login bob pb"), "logged in as bob");
  EXPECT_EQ(b->Run("list_groups"), "g1 owner=alice members=2 you=member");
  EXPECT_EQ(b->ReadLine().value_or(""), "g2 owner=alice members=1 you=none");
  EXPECT_EQ(b->Run("login bob pb"), "error: already logged in as bob; logout first");
}

}  // namespace
}  // namespace groupshare
