// The tracker service in-process over loopback (port 0): tokens, session
// expiry on a fake clock, authorisation rules, validation and tickets.

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "core/certificates.h"
#include "core/ticket.h"
#include "groupshare/tracker/v1/tracker.grpc.pb.h"
#include "services/common/server_setup.h"
#include "services/tracker/list_files_wire.h"
#include "services/tracker/tracker_service.h"
#include "tests/testing/temp_dir.h"

namespace groupshare::tracker {
namespace {

using ::testing::HasSubstr;

using grpc::StatusCode;
using Stub = tv1::TrackerService::Stub;

tv1::CreateGroupResponse* const kNoResponse = nullptr;

class FakeClock {
 public:
  absl::Time Now() {
    absl::MutexLock lock(&mu_);
    return now_;
  }
  void Advance(absl::Duration d) {
    absl::MutexLock lock(&mu_);
    now_ += d;
  }

 private:
  absl::Mutex mu_;
  absl::Time now_ = absl::FromUnixSeconds(1'800'000'000);
};

class TrackerServiceTest : public ::testing::Test {
 protected:
  void SetUp() override { Start(); }

  void Start() {
    auto store = OpenSqliteStore(dir_.File("tracker.db"));
    ASSERT_TRUE(store.ok());
    store_ = *std::move(store);
    TrackerOptions options;
    options.session_ttl = absl::Seconds(30);
    options.ticket_ttl = absl::Minutes(10);
    options.password_iterations = password_iterations_;
    options.login = login_options_;
    options.now = [this] { return clock_.Now(); };
    auto service = TrackerServiceImpl::Create(store_.get(), options);
    ASSERT_TRUE(service.ok()) << service.status();
    service_ = *std::move(service);
    grpc::ServerBuilder builder;
    builder.RegisterService(service_.get());
    int port = 0;
    auto server = StartServer(builder, "127.0.0.1:0", &port);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    channel_ = grpc::CreateChannel("127.0.0.1:" + std::to_string(port),
                                   grpc::InsecureChannelCredentials());
    stub_ = tv1::TrackerService::NewStub(channel_);
  }

  void Stop() {
    server_->Shutdown();
    server_.reset();
    service_.reset();
    store_.reset();
  }

  // Every call ends within this, answered or not.
  static std::chrono::system_clock::time_point Deadline() {
    return std::chrono::system_clock::now() + std::chrono::seconds(30);
  }

  // Calls `rpc` with `token` (none when empty) and returns the status.
  template <typename Req, typename Resp>
  grpc::Status Call(grpc::Status (Stub::*rpc)(grpc::ClientContext*, const Req&, Resp*),
                    const std::string& token, const Req& req, Resp* resp = nullptr,
                    const std::string& request_id = "") {
    grpc::ClientContext ctx;
    ctx.set_deadline(Deadline());
    if (!token.empty()) ctx.AddMetadata("authorization", "Bearer " + token);
    if (!request_id.empty()) ctx.AddMetadata("request-id", request_id);
    Resp ignored;
    return (stub_.get()->*rpc)(&ctx, req, resp ? resp : &ignored);
  }

  void CreateUser(const std::string& user, const std::string& password = "pw") {
    tv1::CreateUserRequest req;
    req.set_user_id(user);
    req.set_password(password);
    ASSERT_TRUE(Call(&Stub::CreateUser, "", req).ok());
  }

  // A login of `user` (whose password is "pw") from `address`.
  static tv1::LoginRequest LoginRequestFor(const std::string& user,
                                           const std::string& address = "") {
    tv1::LoginRequest req;
    req.set_user_id(user);
    req.set_password("pw");
    req.set_peer_address(address);
    return req;
  }

  tv1::LoginResponse Login(const std::string& user, const std::string& address = "") {
    const tv1::LoginRequest req = LoginRequestFor(user, address);
    tv1::LoginResponse resp;
    grpc::Status s = Call(&Stub::Login, "", req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp;
  }

  std::string NewUser(const std::string& user, const std::string& address = "") {
    CreateUser(user);
    return Login(user, address).token();
  }

  grpc::Status CreateGroup(const std::string& token, const std::string& group) {
    tv1::CreateGroupRequest req;
    req.set_group_id(group);
    return Call(&Stub::CreateGroup, token, req);
  }
  grpc::Status Join(const std::string& token, const std::string& group) {
    tv1::JoinGroupRequest req;
    req.set_group_id(group);
    return Call(&Stub::JoinGroup, token, req);
  }
  grpc::Status Accept(const std::string& token, const std::string& group,
                      const std::string& user) {
    tv1::AcceptRequestRequest req;
    req.set_group_id(group);
    req.set_user_id(user);
    return Call(&Stub::AcceptRequest, token, req);
  }
  static tv1::FileInfo File(const std::string& name) {
    tv1::FileInfo f;
    f.set_name(name);
    f.set_size((1 << 19) + 1);
    f.set_piece_size(1 << 19);
    f.set_sha1(std::string(40, 'a'));
    f.add_piece_sha1(std::string(40, 'b'));
    f.add_piece_sha1(std::string(40, 'c'));
    f.add_sha1_chain(std::string(40, 'e'));
    return f;
  }
  grpc::Status Upload(const std::string& token, const std::string& group,
                      const tv1::FileInfo& file) {
    tv1::UploadFileRequest req;
    req.set_group_id(group);
    *req.mutable_file() = file;
    return Call(&Stub::UploadFile, token, req);
  }

  testing::TempDir dir_;
  FakeClock clock_;
  int password_iterations_ = 1000;
  LoginGuardOptions login_options_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<TrackerServiceImpl> service_;
  std::unique_ptr<grpc::Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<Stub> stub_;
};

TEST_F(TrackerServiceTest, LoginGivesTokenAndTicketKey) {
  CreateUser("alice", "s3cret");
  tv1::LoginRequest req;
  req.set_user_id("alice");
  req.set_password("s3cret");
  req.set_peer_address("127.0.0.1:7001");
  tv1::LoginResponse resp;
  ASSERT_TRUE(Call(&Stub::Login, "", req, &resp).ok());
  EXPECT_EQ(resp.token().size(), 64u);
  EXPECT_EQ(resp.ticket_public_key().size(), 32u);
  EXPECT_EQ(resp.session_ttl_seconds(), 30u);
  // Two logins, two different tokens.
  tv1::LoginResponse again;
  ASSERT_TRUE(Call(&Stub::Login, "", req, &again).ok());
  EXPECT_NE(again.token(), resp.token());
}

TEST_F(TrackerServiceTest, AccountErrorsHaveTheirOwnCodes) {
  CreateUser("alice");
  tv1::CreateUserRequest create;
  create.set_user_id("alice");
  create.set_password("x");
  EXPECT_EQ(Call(&Stub::CreateUser, "", create).error_code(), StatusCode::ALREADY_EXISTS);
  for (std::string bad : {std::string(""), std::string(65, 'a'), std::string("a b"),
                          std::string("a\x01")}) {
    create.set_user_id(bad);
    EXPECT_EQ(Call(&Stub::CreateUser, "", create).error_code(), StatusCode::INVALID_ARGUMENT);
  }
  create.set_user_id("bob");
  create.set_password("");
  EXPECT_EQ(Call(&Stub::CreateUser, "", create).error_code(), StatusCode::INVALID_ARGUMENT);

  tv1::LoginRequest login;
  login.set_user_id("alice");
  login.set_password("wrong");
  grpc::Status s = Call(&Stub::Login, "", login);
  EXPECT_EQ(s.error_code(), StatusCode::UNAUTHENTICATED);
  EXPECT_NE(s.error_message().find("wrong user id or password"), std::string::npos);
  // An unknown user is told the same: nothing tells which accounts exist.
  login.set_user_id("nobody");
  grpc::Status unknown = Call(&Stub::Login, "", login);
  EXPECT_EQ(unknown.error_code(), StatusCode::UNAUTHENTICATED);
  EXPECT_NE(unknown.error_message().find("wrong user id or password"), std::string::npos);
  login.set_user_id("alice");
  login.set_password("pw");
  login.set_peer_address("not an address");
  EXPECT_EQ(Call(&Stub::Login, "", login).error_code(), StatusCode::INVALID_ARGUMENT);
}

TEST_F(TrackerServiceTest, EveryOtherCallNeedsALiveSession) {
  std::string token = NewUser("alice");
  ASSERT_TRUE(CreateGroup(token, "g").ok());
  for (const std::string& bad : {std::string(""), std::string("0123"), token + "x"}) {
    EXPECT_EQ(Call(&Stub::ListGroups, bad, tv1::ListGroupsRequest()).error_code(),
              StatusCode::UNAUTHENTICATED);
    EXPECT_EQ(CreateGroup(bad, "h").error_code(), StatusCode::UNAUTHENTICATED);
    EXPECT_EQ(Join(bad, "g").error_code(), StatusCode::UNAUTHENTICATED);
    EXPECT_EQ(Call(&Stub::KeepAlive, bad, tv1::KeepAliveRequest()).error_code(),
              StatusCode::UNAUTHENTICATED);
    EXPECT_EQ(Call(&Stub::Logout, bad, tv1::LogoutRequest()).error_code(),
              StatusCode::UNAUTHENTICATED);
    EXPECT_EQ(Upload(bad, "g", File("f")).error_code(), StatusCode::UNAUTHENTICATED);
    tv1::GetFilePeersRequest peers;
    peers.set_group_id("g");
    peers.set_file_name("f");
    EXPECT_EQ(Call(&Stub::GetFilePeers, bad, peers).error_code(), StatusCode::UNAUTHENTICATED);
  }
  // The header as RFC 6750 reads it: any case, any number of spaces.
  auto with_header = [&](const std::string& header) {
    grpc::ClientContext ctx;
    ctx.set_deadline(Deadline());
    ctx.AddMetadata("authorization", header);
    tv1::ListGroupsResponse resp;
    return stub_->ListGroups(&ctx, tv1::ListGroupsRequest(), &resp);
  };
  EXPECT_TRUE(with_header("Bearer  " + token).ok());
  EXPECT_TRUE(with_header("bearer " + token + " ").ok());
  // And what is wrong with one that is not "Bearer <token>".
  grpc::Status basic = with_header("Basic " + token);
  EXPECT_EQ(basic.error_code(), StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(basic.error_message(), HasSubstr("scheme is 'Basic', not Bearer"));
  EXPECT_THAT(with_header("Bearer").error_message(), HasSubstr("no token after Bearer"));
  EXPECT_THAT(with_header("Bearer a b").error_message(), HasSubstr("characters no token has"));
  EXPECT_THAT(with_header("Bearer " + token + "=x").error_message(),
              HasSubstr("characters no token has"));
}

// A session not kept alive goes offline (its shares with it), and comes
// back with its client's next call: time without a reachable tracker does
// not end it.
TEST_F(TrackerServiceTest, SessionsGoOfflineUnlessKeptAliveAndComeBack) {
  std::string alice = NewUser("alice", "127.0.0.1:1001");
  std::string bob = NewUser("bob");
  ASSERT_TRUE(CreateGroup(alice, "g").ok());
  ASSERT_TRUE(Join(bob, "g").ok());
  ASSERT_TRUE(Accept(alice, "g", "bob").ok());
  ASSERT_TRUE(Upload(alice, "g", File("movie")).ok());
  auto seeders = [&] {
    tv1::ListFilesRequest req;
    req.set_group_id("g");
    tv1::ListFilesResponse resp;
    EXPECT_TRUE(Call(&Stub::ListFiles, bob, req, &resp).ok());
    return resp.files(0).online_seeders();
  };
  clock_.Advance(absl::Seconds(20));
  tv1::KeepAliveResponse keep;
  ASSERT_TRUE(Call(&Stub::KeepAlive, alice, tv1::KeepAliveRequest(), &keep).ok());
  ASSERT_TRUE(Call(&Stub::KeepAlive, bob, tv1::KeepAliveRequest(), &keep).ok());
  EXPECT_EQ(keep.session_ttl_seconds(), 30u);
  clock_.Advance(absl::Seconds(20));  // 40 s after login, 20 after the keep-alive
  EXPECT_EQ(seeders(), 1u);
  clock_.Advance(absl::Seconds(11));
  ASSERT_TRUE(Call(&Stub::KeepAlive, bob, tv1::KeepAliveRequest()).ok());
  EXPECT_EQ(seeders(), 0u);  // alice expired: offline
  // Ten minutes unreachable; then her keep-alive arrives.
  clock_.Advance(absl::Minutes(10));
  ASSERT_TRUE(Call(&Stub::KeepAlive, bob, tv1::KeepAliveRequest()).ok());
  ASSERT_TRUE(Call(&Stub::KeepAlive, alice, tv1::KeepAliveRequest()).ok());
  EXPECT_EQ(seeders(), 1u);
  // A day past its expiry a session is gone for good.
  clock_.Advance(absl::Hours(25));
  NewUser("carol");  // a login sweeps the old sessions
  grpc::Status s = Call(&Stub::KeepAlive, alice, tv1::KeepAliveRequest());
  EXPECT_EQ(s.error_code(), StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(s.error_message(), HasSubstr("log in again"));
  // Without a login to sweep it: refused all the same, on the call itself.
  std::string dave = NewUser("dave");
  clock_.Advance(absl::Hours(25));
  s = Call(&Stub::KeepAlive, dave, tv1::KeepAliveRequest());
  EXPECT_EQ(s.error_code(), StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(s.error_message(), HasSubstr("after a day without a call"));
}

TEST_F(TrackerServiceTest, ARetriedWriteIsAppliedOnce) {
  std::string alice = NewUser("alice"), bob = NewUser("bob");
  tv1::CreateGroupRequest req;
  req.set_group_id("g");
  ASSERT_TRUE(Call(&Stub::CreateGroup, alice, req, kNoResponse, "r-1").ok());
  // The retry of a call whose answer was lost gets the first answer.
  EXPECT_TRUE(Call(&Stub::CreateGroup, alice, req, kNoResponse, "r-1").ok());
  // Without the id, or with another, it is a new call.
  EXPECT_EQ(Call(&Stub::CreateGroup, alice, req).error_code(), StatusCode::ALREADY_EXISTS);
  EXPECT_EQ(Call(&Stub::CreateGroup, alice, req, kNoResponse, "r-2").error_code(),
            StatusCode::ALREADY_EXISTS);
  // An error is an answer too, and is the same on the retry.
  EXPECT_EQ(Call(&Stub::CreateGroup, alice, req, kNoResponse, "r-2").error_code(),
            StatusCode::ALREADY_EXISTS);
  // Ids are the caller's: bob's r-1 is his own.
  EXPECT_EQ(Call(&Stub::CreateGroup, bob, req, kNoResponse, "r-1").error_code(),
            StatusCode::ALREADY_EXISTS);
  // An answer with a body comes back whole.
  ASSERT_TRUE(Join(bob, "g").ok());
  ASSERT_TRUE(Accept(alice, "g", "bob").ok());
  tv1::LeaveGroupRequest leave;
  leave.set_group_id("g");
  tv1::LeaveGroupResponse first, again;
  ASSERT_TRUE(Call(&Stub::LeaveGroup, alice, leave, &first, "r-3").ok());
  ASSERT_TRUE(Call(&Stub::LeaveGroup, alice, leave, &again, "r-3").ok());
  EXPECT_EQ(first.new_owner(), "bob");
  EXPECT_EQ(again.new_owner(), "bob");
  EXPECT_EQ(Call(&Stub::CreateGroup, alice, req, kNoResponse, "bad id!").error_code(),
            StatusCode::INVALID_ARGUMENT);
  // The same id on another request is another call.
  tv1::CreateGroupRequest other;
  other.set_group_id("h");
  EXPECT_TRUE(Call(&Stub::CreateGroup, alice, other, kNoResponse, "r-1").ok());
  // Without a session too: two people who picked the same id each get
  // their account.
  for (const char* user : {"carol", "dave"}) {
    tv1::CreateUserRequest create;
    create.set_user_id(user);
    create.set_password("pw");
    tv1::CreateUserResponse created;
    EXPECT_TRUE(Call(&Stub::CreateUser, "", create, &created, "1").ok());
  }
  EXPECT_FALSE(Login("dave").token().empty());
  // CreateUser is never answered from the record of another call: someone
  // who made "victim" first with the same request-id does not pass for its
  // owner.
  tv1::CreateUserRequest attacker;
  attacker.set_user_id("victim");
  attacker.set_password("attacker's");
  tv1::CreateUserResponse made;
  EXPECT_TRUE(Call(&Stub::CreateUser, "", attacker, &made, "rid-1").ok());
  tv1::CreateUserRequest owner = attacker;
  owner.set_password("owner's");
  grpc::Status taken = Call(&Stub::CreateUser, "", owner, &made, "rid-1");
  EXPECT_EQ(taken.error_code(), StatusCode::ALREADY_EXISTS);
  EXPECT_THAT(taken.error_message(), HasSubstr("log in"));
  tv1::ListGroupsResponse groups;
  ASSERT_TRUE(Call(&Stub::ListGroups, alice, tv1::ListGroupsRequest(), &groups).ok());
  EXPECT_EQ(groups.groups_size(), 2);
}

// ListFiles' answer, written in wire form from the store's views, is what
// protobuf makes of the same message, byte for byte: every field at its
// default and past it, lengths of one and two bytes, the largest numbers.
TEST(ListFilesWire, IsWhatProtobufSerializes) {
  const std::string long_name(300, 'n'), sha1(40, 'a');
  const std::vector<FileSummaryView> views = {
      {"a", 0, sha1, 0, 0},
      {long_name, 1, sha1, 1, 300},
      {"b", uint64_t{1} << 40, "", 70000, 0},
      {"c", UINT64_MAX, sha1, UINT32_MAX, 5},
  };
  for (size_t n : {size_t{0}, size_t{1}, views.size()}) {
    for (const std::string token : {"", "YWJj"}) {
      FileListing listing;
      tv1::ListFilesResponse expected;
      for (size_t i = 0; i < n; ++i) {
        const FileSummaryView& v = views[i];
        listing.push_back(v);
        tv1::FileSummary* f = expected.add_files();
        f->set_name(std::string(v.name));
        f->set_size(v.size);
        f->set_sha1(std::string(v.sha1));
        f->set_online_seeders(static_cast<uint32_t>(v.online_seeders));
        f->set_online_partial(static_cast<uint32_t>(v.online_partial));
      }
      expected.set_next_page_token(token);
      const std::string wire = ListFilesResponseWire(listing, token);
      EXPECT_EQ(wire, expected.SerializeAsString()) << n << " files, token '" << token << "'";
      tv1::ListFilesResponse parsed;
      ASSERT_TRUE(parsed.ParseFromString(wire));
      EXPECT_EQ(parsed.files_size(), static_cast<int>(n));
    }
  }
}

TEST_F(TrackerServiceTest, ListingsComeInPages) {
  std::string alice = NewUser("alice");
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(CreateGroup(alice, "g" + std::to_string(i)).ok());
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(Upload(alice, "g0", File("f" + std::to_string(i))).ok());
  std::vector<std::string> seen;
  tv1::ListGroupsRequest req;
  req.set_page_size(2);
  for (int pages = 1; pages <= 10; ++pages) {
    tv1::ListGroupsResponse resp;
    ASSERT_TRUE(Call(&Stub::ListGroups, alice, req, &resp).ok());
    EXPECT_LE(resp.groups_size(), 2);
    for (const auto& g : resp.groups()) seen.push_back(g.group_id());
    if (resp.next_page_token().empty()) {
      EXPECT_EQ(pages, 3);
      break;
    }
    req.set_page_token(resp.next_page_token());
  }
  EXPECT_EQ(seen, (std::vector<std::string>{"g0", "g1", "g2", "g3", "g4"}));
  tv1::ListFilesRequest files;
  files.set_group_id("g0");
  files.set_page_size(2);
  tv1::ListFilesResponse page;
  ASSERT_TRUE(Call(&Stub::ListFiles, alice, files, &page).ok());
  ASSERT_EQ(page.files_size(), 2);
  files.set_page_token(page.next_page_token());
  ASSERT_TRUE(Call(&Stub::ListFiles, alice, files, &page).ok());
  ASSERT_EQ(page.files_size(), 1);
  EXPECT_EQ(page.files(0).name(), "f2");
  EXPECT_TRUE(page.next_page_token().empty());
  files.set_page_token("not!base64");
  EXPECT_EQ(Call(&Stub::ListFiles, alice, files).error_code(), StatusCode::INVALID_ARGUMENT);
  // Bytes that are no ListFilesRequest (a field 1 longer than the message).
  grpc::GenericStub generic(channel_);
  grpc::ClientContext ctx;
  ctx.set_deadline(Deadline());  // the wait below ends by then
  ctx.AddMetadata("authorization", "Bearer " + alice);
  const std::string garbage = "\x0a\x7f";
  grpc::Slice slice(garbage.data(), garbage.size());
  grpc::ByteBuffer request(&slice, 1), response;
  absl::Notification done;
  grpc::Status status;
  generic.UnaryCall(&ctx, "/groupshare.tracker.v1.TrackerService/ListFiles", {}, &request,
                    &response, [&](grpc::Status s) {
                      status = std::move(s);
                      done.Notify();
                    });
  done.WaitForNotification();
  EXPECT_EQ(status.error_code(), StatusCode::INVALID_ARGUMENT) << status.error_message();
}

TEST_F(TrackerServiceTest, FailedLoginsBackOffPerUser) {
  CreateUser("alice");
  CreateUser("bob");
  auto login = [&](const std::string& user, const std::string& password) {
    tv1::LoginRequest req;
    req.set_user_id(user);
    req.set_password(password);
    return Call(&Stub::Login, "", req);
  };
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(login("alice", "wrong").error_code(), StatusCode::UNAUTHENTICATED);
  }
  EXPECT_EQ(login("alice", "wrong").error_code(), StatusCode::UNAUTHENTICATED);
  // Now even the right password waits, and nothing is hashed meanwhile.
  grpc::Status s = login("alice", "pw");
  EXPECT_EQ(s.error_code(), StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(s.error_message(), HasSubstr("too many failed logins for 'alice'; wait 1 s"));
  // Unknown users back off alike, and other users are not held up.
  for (int i = 0; i < 6; ++i) login("nobody", "wrong").IgnoreError();
  EXPECT_EQ(login("nobody", "pw").error_code(), StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_TRUE(login("bob", "pw").ok());
  clock_.Advance(absl::Seconds(2));
  EXPECT_TRUE(login("alice", "pw").ok());
}

// Guesses sent all at once get no more tries than guesses in a row: a
// guess counts when it starts, and few are checked at once per user.
TEST_F(TrackerServiceTest, ConcurrentGuessesAreCountedAsTheyStart) {
  Stop();
  password_iterations_ = 100000;  // each check takes a while, as a real one does
  Start();
  CreateUser("alice", "right");
  std::atomic<int> checked{0}, refused{0};
  std::vector<std::thread> guessers;
  for (int i = 0; i < 40; ++i) {
    guessers.emplace_back([&, i] {
      tv1::LoginRequest req;
      req.set_user_id("alice");
      req.set_password(i == 39 ? "right" : "guess-" + std::to_string(i));
      const grpc::Status s = Call(&Stub::Login, "", req);
      (s.error_code() == StatusCode::RESOURCE_EXHAUSTED ? refused : checked)++;
    });
  }
  for (auto& t : guessers) t.join();
  EXPECT_LE(checked.load(), 5 + 2) << "more guesses were checked than the policy allows";
  EXPECT_GE(refused.load(), 40 - 7);
}

// The backoff an attacker sets off for a user never holds that user's own
// client (known by its client id, or its address): it logs in at once.
TEST_F(TrackerServiceTest, TheUsersKnownClientIsNotHeldByTheBackoff) {
  CreateUser("alice");
  auto login = [&](const std::string& password, const std::string& client_id) {
    tv1::LoginRequest req;
    req.set_user_id("alice");
    req.set_password(password);
    req.set_client_id(client_id);
    return Call(&Stub::Login, "", req);
  };
  ASSERT_TRUE(login("pw", "laptop").ok());
  // The attacker shares her user id (and, here, her address: both come
  // from 127.0.0.1, so its guesses back off that address's own count).
  for (int i = 0; i < 8; ++i) login("wrong", "").IgnoreError();
  EXPECT_TRUE(login("pw", "laptop").ok()) << "her own client was held by the attacker's backoff";
  // Remembered by the database, across a restart of the tracker (which
  // forgets its counts and what it saw).
  Stop();
  Start();
  for (int i = 0; i < 8; ++i) login("wrong", "").IgnoreError();
  EXPECT_TRUE(login("pw", "laptop").ok()) << "her client was forgotten by the restart";
  // Her client's own mistakes back it off alone.
  for (int i = 0; i < 6; ++i) {
    EXPECT_EQ(login("typo", "laptop").error_code(), StatusCode::UNAUTHENTICATED);
  }
  EXPECT_EQ(login("pw", "laptop").error_code(), StatusCode::RESOURCE_EXHAUSTED);
}

// Sign-up is limited per address and in all each hour, and can be closed.
TEST_F(TrackerServiceTest, SignupsAreLimitedAndCanBeClosed) {
  Stop();
  login_options_.signups_per_source = 3;
  Start();
  tv1::CreateUserRequest req;
  req.set_password("pw");
  for (int i = 0; i < 3; ++i) {
    req.set_user_id("u" + std::to_string(i));
    EXPECT_TRUE(Call(&Stub::CreateUser, "", req).ok());
  }
  req.set_user_id("u3");
  grpc::Status s = Call(&Stub::CreateUser, "", req);
  EXPECT_EQ(s.error_code(), StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(s.error_message(), HasSubstr("too many accounts created from this address"));
  clock_.Advance(absl::Hours(1));
  EXPECT_TRUE(Call(&Stub::CreateUser, "", req).ok());
  Stop();
  login_options_.signup_open = false;
  Start();
  req.set_user_id("u4");
  s = Call(&Stub::CreateUser, "", req);
  EXPECT_EQ(s.error_code(), StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(s.error_message(), HasSubstr("takes no new accounts"));
  EXPECT_FALSE(Login("u3").token().empty());  // logins go on
}

// An id confusable with an existing one is refused, for users and groups.
TEST_F(TrackerServiceTest, LookAlikeIdsAreRefused) {
  std::string alice = NewUser("alice");
  tv1::CreateUserRequest req;
  req.set_user_id("\u0430lice");  // Cyrillic a
  req.set_password("pw");
  grpc::Status s = Call(&Stub::CreateUser, "", req);
  EXPECT_EQ(s.error_code(), StatusCode::ALREADY_EXISTS);
  EXPECT_THAT(s.error_message(), HasSubstr("looks like the existing user 'alice'"));
  ASSERT_TRUE(CreateGroup(alice, "movies").ok());
  EXPECT_EQ(CreateGroup(alice, "\uff4dovies").error_code(), StatusCode::ALREADY_EXISTS);
  req.set_user_id("a\u3164lice");
  EXPECT_EQ(Call(&Stub::CreateUser, "", req).error_code(), StatusCode::INVALID_ARGUMENT);
}

TEST_F(TrackerServiceTest, LogoutEndsTheSession) {
  std::string token = NewUser("alice");
  ASSERT_TRUE(Call(&Stub::Logout, token, tv1::LogoutRequest()).ok());
  EXPECT_EQ(Call(&Stub::ListGroups, token, tv1::ListGroupsRequest()).error_code(),
            StatusCode::UNAUTHENTICATED);
}

TEST_F(TrackerServiceTest, OnlyTheOwnerSeesAndAnswersRequests) {
  std::string alice = NewUser("alice"), bob = NewUser("bob"), carol = NewUser("carol");
  ASSERT_TRUE(CreateGroup(alice, "g").ok());
  EXPECT_EQ(CreateGroup(bob, "g").error_code(), StatusCode::ALREADY_EXISTS);
  EXPECT_EQ(CreateGroup(bob, "bad id").error_code(), StatusCode::INVALID_ARGUMENT);
  ASSERT_TRUE(Join(bob, "g").ok());
  EXPECT_EQ(Join(bob, "g").error_code(), StatusCode::ALREADY_EXISTS);
  EXPECT_EQ(Join(alice, "g").error_code(), StatusCode::ALREADY_EXISTS);
  EXPECT_EQ(Join(bob, "nope").error_code(), StatusCode::NOT_FOUND);
  ASSERT_TRUE(Join(carol, "g").ok());

  tv1::ListRequestsRequest list;
  list.set_group_id("g");
  EXPECT_EQ(Call(&Stub::ListRequests, bob, list).error_code(), StatusCode::PERMISSION_DENIED);
  tv1::ListRequestsResponse requests;
  ASSERT_TRUE(Call(&Stub::ListRequests, alice, list, &requests).ok());
  ASSERT_EQ(requests.requests_size(), 2);
  EXPECT_EQ(requests.requests(0).user_id(), "bob");
  EXPECT_GT(requests.requests(0).requested_at(), 0);

  EXPECT_EQ(Accept(carol, "g", "bob").error_code(), StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(Accept(alice, "g", "nobody").error_code(), StatusCode::NOT_FOUND);
  ASSERT_TRUE(Accept(alice, "g", "bob").ok());
  tv1::RejectRequestRequest reject;
  reject.set_group_id("g");
  reject.set_user_id("carol");
  EXPECT_EQ(Call(&Stub::RejectRequest, bob, reject).error_code(), StatusCode::PERMISSION_DENIED);
  ASSERT_TRUE(Call(&Stub::RejectRequest, alice, reject).ok());

  tv1::ListGroupsResponse groups;
  ASSERT_TRUE(Call(&Stub::ListGroups, carol, tv1::ListGroupsRequest(), &groups).ok());
  ASSERT_EQ(groups.groups_size(), 1);
  EXPECT_EQ(groups.groups(0).member_count(), 2u);
  EXPECT_EQ(groups.groups(0).relation(), tv1::RELATION_REJECTED);
  ASSERT_TRUE(Call(&Stub::ListGroups, bob, tv1::ListGroupsRequest(), &groups).ok());
  EXPECT_EQ(groups.groups(0).relation(), tv1::RELATION_MEMBER);

  tv1::LeaveGroupRequest leave;
  leave.set_group_id("g");
  tv1::LeaveGroupResponse left;
  ASSERT_TRUE(Call(&Stub::LeaveGroup, alice, leave, &left).ok());
  EXPECT_EQ(left.new_owner(), "bob");
  EXPECT_EQ(Call(&Stub::LeaveGroup, alice, leave).error_code(), StatusCode::NOT_FOUND);
}

TEST_F(TrackerServiceTest, OnlyMembersSeeOrRegisterFiles) {
  std::string alice = NewUser("alice"), bob = NewUser("bob");
  ASSERT_TRUE(CreateGroup(alice, "g").ok());
  EXPECT_EQ(Upload(bob, "g", File("f")).error_code(), StatusCode::PERMISSION_DENIED);
  ASSERT_TRUE(Upload(alice, "g", File("f")).ok());
  tv1::ListFilesRequest list;
  list.set_group_id("g");
  grpc::Status refused = Call(&Stub::ListFiles, bob, list);
  EXPECT_EQ(refused.error_code(), StatusCode::PERMISSION_DENIED);
  // What to do, for a shell user and for a gRPC caller alike.
  EXPECT_THAT(refused.error_message(), HasSubstr("ask to join it (JoinGroup)"));
  tv1::GetFilePeersRequest peers;
  peers.set_group_id("g");
  peers.set_file_name("f");
  EXPECT_EQ(Call(&Stub::GetFilePeers, bob, peers).error_code(), StatusCode::PERMISSION_DENIED);
  tv1::AnnounceHolderRequest announce;
  announce.set_group_id("g");
  announce.set_file_name("f");
  EXPECT_EQ(Call(&Stub::AnnounceHolder, bob, announce).error_code(),
            StatusCode::PERMISSION_DENIED);
  tv1::StopShareRequest stop;
  stop.set_group_id("g");
  stop.set_file_name("f");
  EXPECT_EQ(Call(&Stub::StopShare, bob, stop).error_code(), StatusCode::PERMISSION_DENIED);
}

TEST_F(TrackerServiceTest, UploadValidatesTheFileInfo) {
  std::string alice = NewUser("alice");
  ASSERT_TRUE(CreateGroup(alice, "g").ok());
  auto expect_invalid = [&](tv1::FileInfo f, const char* what) {
    EXPECT_EQ(Upload(alice, "g", f).error_code(), StatusCode::INVALID_ARGUMENT) << what;
  };
  tv1::FileInfo f = File("../etc");
  expect_invalid(f, "path in name");
  f = File("f");
  f.set_piece_size(1000);
  expect_invalid(f, "piece size not a power of two");
  f = File("f");
  f.set_sha1("xyz");
  expect_invalid(f, "bad sha1");
  f = File("f");
  f.add_piece_sha1(std::string(40, 'd'));
  expect_invalid(f, "too many piece hashes");
  f = File("f");
  f.set_piece_sha1(1, "nothex");
  expect_invalid(f, "bad piece hash");
  f = File("f");
  f.add_sha1_chain(std::string(40, 'e'));
  expect_invalid(f, "a chain entry after the last piece");
  f = File("f");
  f.set_size(0);
  f.clear_piece_sha1();
  f.clear_sha1_chain();
  EXPECT_TRUE(Upload(alice, "g", f).ok()) << "an empty file has no pieces";
  tv1::FileInfo other = File("f");
  other.set_sha1(std::string(40, 'e'));
  EXPECT_EQ(Upload(alice, "g", other).error_code(), StatusCode::ALREADY_EXISTS);
}

// A rotated key is announced a session before it signs, and the key it
// replaces is accepted a ticket lifetime more: no ticket is ever refused.
TEST_F(TrackerServiceTest, TicketKeysRotateWithoutARefusedTicket) {
  std::string alice = NewUser("alice", "127.0.0.1:7001");
  CreateUser("bob");
  tv1::LoginResponse bob_login = Login("bob", "127.0.0.1:7002");
  ASSERT_EQ(bob_login.ticket_public_keys_size(), 1);
  const std::string old_key = bob_login.ticket_public_keys(0);
  EXPECT_EQ(bob_login.ticket_public_key(), old_key);
  ASSERT_TRUE(CreateGroup(alice, "g").ok());
  ASSERT_TRUE(Join(bob_login.token(), "g").ok());
  ASSERT_TRUE(Accept(alice, "g", "bob").ok());
  ASSERT_TRUE(Upload(alice, "g", File("f")).ok());
  auto keys_now = [&] {
    tv1::KeepAliveResponse keep;
    EXPECT_TRUE(Call(&Stub::KeepAlive, bob_login.token(), tv1::KeepAliveRequest(), &keep).ok());
    return std::vector<std::string>(keep.ticket_public_keys().begin(),
                                    keep.ticket_public_keys().end());
  };
  auto ticket = [&] {
    tv1::GetFilePeersRequest req;
    req.set_group_id("g");
    req.set_file_name("f");
    tv1::GetFilePeersResponse resp;
    EXPECT_TRUE(Call(&Stub::KeepAlive, alice, tv1::KeepAliveRequest()).ok());
    EXPECT_TRUE(Call(&Stub::GetFilePeers, bob_login.token(), req, &resp).ok());
    if (resp.peers_size() != 1) {
      ADD_FAILURE() << "no peer";
      return std::string();
    }
    return resp.peers(0).ticket();
  };
  auto signed_by = [&](const std::string& key, const std::string& text) {
    return (*TicketVerifier::Create(key))->Verify(text, clock_.Now()).ok();
  };
  TrackerOptions options;
  options.session_ttl = absl::Seconds(30);
  options.ticket_ttl = absl::Minutes(10);
  auto signs_from = TicketKeys::Rotate(store_.get(), KeyTimes(options), clock_.Now());
  ASSERT_TRUE(signs_from.ok()) << signs_from.status();
  EXPECT_GT(*signs_from, clock_.Now() + absl::Seconds(34));  // a session and a refresh
  // Within seconds the tracker announces the new key, and still signs with the old.
  clock_.Advance(absl::Seconds(6));
  std::vector<std::string> keys = keys_now();
  ASSERT_EQ(keys.size(), 2u);
  EXPECT_EQ(keys[1], old_key);
  const std::string new_key = keys[0];
  EXPECT_TRUE(signed_by(old_key, ticket()));
  // From its time on the new key signs; the old one is still announced.
  clock_.Advance(*signs_from - clock_.Now());
  EXPECT_TRUE(signed_by(new_key, ticket()));
  EXPECT_EQ(keys_now().size(), 2u);
  // A ticket lifetime later the old key is gone.
  clock_.Advance(absl::Minutes(10));
  EXPECT_EQ(keys_now(), std::vector<std::string>{new_key});
  // A restarted tracker finds the same keys.
  Stop();
  Start();
  EXPECT_EQ(Login("bob").ticket_public_keys(0), new_key);
}

TEST_F(TrackerServiceTest, LoginCertifiesTheClientsKeyAndKeepAlivesRenewIt) {
  CreateUser("bob");
  const std::string key = *PublicKeyOf(*NewPrivateKey());
  tv1::LoginRequest req = LoginRequestFor("bob");
  req.set_client_id("laptop");
  req.set_peer_public_key(key);
  tv1::LoginResponse login;
  ASSERT_TRUE(Call(&Stub::Login, "", req, &login).ok());
  ASSERT_EQ(login.peer_ca_certificates_size(), 1);
  EXPECT_TRUE(SignedBy(login.peer_certificate(), login.peer_ca_certificates(0)));
  auto info = ReadCertificate(login.peer_certificate());
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->common_name, "bob");
  EXPECT_EQ(info->uri_names, std::vector<std::string>{"groupshare:client:laptop"});
  EXPECT_EQ(info->not_after, clock_.Now() + absl::Hours(1));
  EXPECT_EQ(login.peer_certificate_expires_at(), absl::ToUnixSeconds(clock_.Now() + absl::Hours(1)));
  // Without a key, no certificate; the CAs all the same.
  tv1::KeepAliveResponse keep;
  ASSERT_TRUE(Call(&Stub::KeepAlive, login.token(), tv1::KeepAliveRequest(), &keep).ok());
  EXPECT_EQ(keep.peer_certificate(), "");
  EXPECT_EQ(keep.peer_ca_certificates_size(), 1);
  // A key that is not one opens no session.
  req.set_peer_public_key("not a key");
  EXPECT_EQ(Call(&Stub::Login, "", req).error_code(), StatusCode::INVALID_ARGUMENT);
}

TEST_F(TrackerServiceTest, PeerCaRotatesWithoutARefusedCertificate) {
  CreateUser("bob");
  const std::string key = *PublicKeyOf(*NewPrivateKey());
  tv1::LoginRequest req = LoginRequestFor("bob");
  req.set_peer_public_key(key);
  tv1::LoginResponse login;
  ASSERT_TRUE(Call(&Stub::Login, "", req, &login).ok());
  ASSERT_EQ(login.peer_ca_certificates_size(), 1);
  const std::string old_ca = login.peer_ca_certificates(0);
  auto renew = [&] {
    tv1::KeepAliveRequest keep_req;
    keep_req.set_peer_public_key(key);
    tv1::KeepAliveResponse keep;
    EXPECT_TRUE(Call(&Stub::KeepAlive, login.token(), keep_req, &keep).ok());
    return keep;
  };
  TrackerOptions options;  // the fixture's times
  options.session_ttl = absl::Seconds(30);
  auto signs_from = PeerAuthority::Rotate(store_.get(), CaTimes(options), clock_.Now());
  ASSERT_TRUE(signs_from.ok()) << signs_from.status();
  EXPECT_GT(*signs_from, clock_.Now() + absl::Seconds(34));  // a session and a refresh
  // Within seconds every client hears of the new CA; the old one still signs.
  clock_.Advance(absl::Seconds(6));
  tv1::KeepAliveResponse keep = renew();
  ASSERT_EQ(keep.peer_ca_certificates_size(), 2);
  EXPECT_EQ(keep.peer_ca_certificates(1), old_ca);
  const std::string new_ca = keep.peer_ca_certificates(0);
  EXPECT_TRUE(SignedBy(keep.peer_certificate(), old_ca));
  // From its time on the new CA signs; the old one is still trusted.
  clock_.Advance(*signs_from - clock_.Now());
  keep = renew();
  EXPECT_TRUE(SignedBy(keep.peer_certificate(), new_ca));
  EXPECT_FALSE(SignedBy(keep.peer_certificate(), old_ca));
  EXPECT_EQ(keep.peer_ca_certificates_size(), 2);
  // A certificate's lifetime later the old CA is gone.
  clock_.Advance(absl::Hours(1));
  keep = renew();
  ASSERT_EQ(keep.peer_ca_certificates_size(), 1);
  EXPECT_EQ(keep.peer_ca_certificates(0), new_ca);
  // A restarted tracker finds the same CA.
  Stop();
  Start();
  EXPECT_EQ(Login("bob").peer_ca_certificates(0), new_ca);
}

TEST_F(TrackerServiceTest, GetFilePeersSignsATicketForTheCaller) {
  std::string alice = NewUser("alice", "127.0.0.1:7001");
  CreateUser("bob");
  tv1::LoginResponse bob_login = Login("bob", "127.0.0.1:7002");
  std::string bob = bob_login.token();
  ASSERT_TRUE(CreateGroup(alice, "g").ok());
  ASSERT_TRUE(Join(bob, "g").ok());
  ASSERT_TRUE(Accept(alice, "g", "bob").ok());
  ASSERT_TRUE(Upload(alice, "g", File("f")).ok());

  tv1::GetFilePeersRequest req;
  req.set_group_id("g");
  req.set_file_name("f");
  tv1::GetFilePeersResponse resp;
  ASSERT_TRUE(Call(&Stub::GetFilePeers, bob, req, &resp).ok());
  EXPECT_EQ(resp.file().sha1(), std::string(40, 'a'));
  EXPECT_EQ(resp.file().piece_sha1_size(), 2);
  ASSERT_EQ(resp.file().sha1_chain_size(), 1);
  EXPECT_EQ(resp.file().sha1_chain(0), std::string(40, 'e'));
  ASSERT_EQ(resp.peers_size(), 1);
  EXPECT_EQ(resp.peers(0).user_id(), "alice");
  EXPECT_EQ(resp.peers(0).address(), "127.0.0.1:7001");
  EXPECT_TRUE(resp.peers(0).complete());

  auto verifier = TicketVerifier::Create(bob_login.ticket_public_key());
  ASSERT_TRUE(verifier.ok());
  // The ticket names the caller and the one peer it is for.
  auto ticket = (*verifier)->Verify(resp.peers(0).ticket(), clock_.Now());
  ASSERT_TRUE(ticket.ok()) << ticket.status();
  EXPECT_EQ(ticket->user_id, "bob");
  EXPECT_EQ(ticket->group_id, "g");
  EXPECT_EQ(ticket->file_sha1, std::string(40, 'a'));
  EXPECT_EQ(ticket->peer, "127.0.0.1:7001");
  EXPECT_EQ(absl::ToUnixSeconds(ticket->expires), resp.ticket_expires_at());
  EXPECT_FALSE((*verifier)
                   ->Verify(resp.peers(0).ticket(), clock_.Now() + absl::Minutes(11) + kClockSlack)
                   .ok());

  // Bob announces pieces; alice's view shows him as a partial source.
  tv1::AnnounceHolderRequest announce;
  announce.set_group_id("g");
  announce.set_file_name("f");
  ASSERT_TRUE(Call(&Stub::AnnounceHolder, bob, announce).ok());
  ASSERT_TRUE(Call(&Stub::GetFilePeers, alice, req, &resp).ok());
  ASSERT_EQ(resp.peers_size(), 1);
  EXPECT_EQ(resp.peers(0).user_id(), "bob");
  EXPECT_FALSE(resp.peers(0).complete());

  // Logged out holders are not offered.
  ASSERT_TRUE(Call(&Stub::Logout, alice, tv1::LogoutRequest()).ok());
  ASSERT_TRUE(Call(&Stub::GetFilePeers, bob, req, &resp).ok());
  EXPECT_EQ(resp.peers_size(), 0);
}

TEST_F(TrackerServiceTest, LoginReturnsEarlierSharesAndKeyOutlivesRestart) {
  std::string alice = NewUser("alice");
  ASSERT_TRUE(CreateGroup(alice, "g").ok());
  ASSERT_TRUE(Upload(alice, "g", File("f")).ok());
  std::string key = Login("alice").ticket_public_key();
  Stop();
  Start();
  tv1::LoginResponse again = Login("alice");
  EXPECT_EQ(again.ticket_public_key(), key);
  ASSERT_EQ(again.shares_size(), 1);
  EXPECT_EQ(again.shares(0).group_id(), "g");
  EXPECT_EQ(again.shares(0).file_name(), "f");
  EXPECT_TRUE(again.shares(0).complete());
  // The earlier token still works: sessions are kept too.
  EXPECT_TRUE(Call(&Stub::ListGroups, alice, tv1::ListGroupsRequest()).ok());
}

// Password hashing runs on a bounded number of slots: a storm of logins
// cannot take every core. Those waiting are bounded too, hold no thread, and
// are told to try again once they waited too long; known clients go first.
TEST(LoginGuard, HashingRunsOnBoundedSlotsAndWaitersAreBounded) {
  LoginGuardOptions options;
  options.hash_slots = 2;
  options.max_waiting = 2;
  options.slot_wait = absl::Milliseconds(300);
  auto guard = std::make_unique<LoginGuard>(options);
  absl::Mutex mu;
  int running = 0, most = 0;
  std::vector<std::string> order;
  std::map<std::string, absl::StatusCode> answers;
  absl::Notification release;
  auto work = [&](std::string name, bool block) {
    return [&, name, block](absl::Status slot) {
      {
        absl::MutexLock lock(&mu);
        answers[name] = slot.code();
        if (!slot.ok()) return;
        order.push_back(name);
        most = std::max(most, ++running);
      }
      if (block) release.WaitForNotificationWithTimeout(absl::Seconds(10));
      absl::MutexLock lock(&mu);
      --running;
    };
  };
  auto answered = [&](size_t n) {
    absl::MutexLock lock(&mu);
    auto enough = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return answers.size() >= n; };
    return mu.AwaitWithTimeout(absl::Condition(&enough), absl::Seconds(10));
  };
  guard->Hash(false, work("a", true));
  guard->Hash(false, work("b", true));
  ASSERT_TRUE(answered(2));  // both slots taken
  guard->Hash(false, work("late", false));
  guard->Hash(false, work("later", false));
  // A third one waiting is one too many: refused at once, on this thread.
  guard->Hash(false, work("refused", false));
  {
    absl::MutexLock lock(&mu);
    EXPECT_EQ(answers["refused"], absl::StatusCode::kUnavailable);
  }
  // Waiting past slot_wait gets the same answer, without hashing.
  absl::SleepFor(options.slot_wait + absl::Milliseconds(50));  // the wait under test
  release.Notify();
  ASSERT_TRUE(answered(5));
  {
    absl::MutexLock lock(&mu);
    EXPECT_EQ(answers["late"], absl::StatusCode::kUnavailable);
    EXPECT_EQ(answers["later"], absl::StatusCode::kUnavailable);
    EXPECT_EQ(most, 2);
  }

  // A known client's check goes before those waiting longer. (No expiry
  // here, however slow the machine.)
  options.hash_slots = 1;
  options.slot_wait = absl::Seconds(30);
  guard = std::make_unique<LoginGuard>(options);
  absl::Notification hold;
  guard->Hash(false, [&](absl::Status) { hold.WaitForNotificationWithTimeout(absl::Seconds(10)); });
  guard->Hash(false, work("stranger", false));
  guard->Hash(true, work("known", false));
  hold.Notify();
  ASSERT_TRUE(answered(7));
  {
    absl::MutexLock lock(&mu);
    EXPECT_EQ(answers["known"], absl::StatusCode::kOk);
    EXPECT_EQ(answers["stranger"], absl::StatusCode::kOk);
    // a and b ran side by side on the two slots, in either order.
    ASSERT_EQ(order.size(), 4u);
    EXPECT_THAT(std::vector<std::string>(order.begin(), order.begin() + 2),
                ::testing::UnorderedElementsAre("a", "b"));
    EXPECT_EQ(order[2], "known");
    EXPECT_EQ(order[3], "stranger");
  }

  // What still waits when the guard goes is answered, not dropped.
  absl::Notification stall;
  guard->Hash(false, [&](absl::Status) { stall.WaitForNotificationWithTimeout(absl::Seconds(10)); });
  guard->Hash(false, work("abandoned", false));
  stall.Notify();
  guard.reset();
  absl::MutexLock lock(&mu);
  EXPECT_TRUE(answers.contains("abandoned"));
}

}  // namespace
}  // namespace groupshare::tracker
