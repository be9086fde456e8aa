// The tracker's store on both back-ends, SQLite on a temporary file and a
// PostgreSQL server of the test's own: every operation, its failure codes,
// the limits, paging, retried requests, and that a reopened store has
// everything.

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/sqlite.h"
#include "services/tracker/sql_database.h"
#include "services/tracker/store.h"
#include "tests/testing/postgres.h"
#include "tests/testing/temp_dir.h"

namespace groupshare::tracker {
namespace {

using absl::StatusCode;

const absl::Time kT0 = absl::FromUnixSeconds(1'800'000'000);

FileRecord MakeFile(const std::string& name, char fill = 'a', uint64_t size = 3 << 19) {
  FileRecord f{name, size, 1 << 19, std::string(40, fill), {}, {}};
  for (uint64_t i = 0; i < (size + f.piece_size - 1) / f.piece_size; ++i) {
    f.piece_sha1.push_back(std::string(39, fill) + static_cast<char>('0' + i % 10));
  }
  return f;
}

enum class Backend { kSqlite, kPostgres };

class StoreTest : public ::testing::TestWithParam<Backend> {
 protected:
  static void TearDownTestSuite() {
    postgres_.reset();
    postgres_dir_.reset();
  }
  void SetUp() override {
    Reopen();
    for (const char* u : {"alice", "bob", "carol"}) {
      ASSERT_TRUE(store_->CreateUser(u, std::string("hash-") + u, kT0).ok());
    }
  }
  void Reopen(StoreLimits limits = {}) {
    store_.reset();
    absl::StatusOr<std::unique_ptr<Store>> opened;
    if (GetParam() == Backend::kSqlite) {
      opened = OpenSqliteStore(dir_.File("tracker.db"), limits);
    } else {
      if (conninfo_.empty()) {
        if (postgres_ == nullptr) {
          postgres_dir_ = std::make_unique<testing::TempDir>();
          auto server = testing::PostgresServer::Start(postgres_dir_->File("pg"));
          ASSERT_TRUE(server.ok()) << server.status();
          postgres_ = *std::move(server);
        }
        auto db = postgres_->NewDatabase();
        ASSERT_TRUE(db.ok()) << db.status();
        conninfo_ = *db;
      }
      opened = OpenPostgresStore(conninfo_, limits);
    }
    ASSERT_TRUE(opened.ok()) << opened.status();
    store_ = *std::move(opened);
  }
  // A second store on the same database, as another tracker has.
  absl::StatusOr<std::unique_ptr<Store>> OpenAnotherTracker() {
    return GetParam() == Backend::kSqlite ? OpenSqliteStore(dir_.File("tracker.db"))
                                          : OpenPostgresStore(conninfo_);
  }
  // alice owns g; bob is a member.
  void MakeGroupWithBob() {
    ASSERT_TRUE(store_->CreateGroup("alice", "g", kT0).ok());
    ASSERT_TRUE(store_->RequestJoin("bob", "g", kT0).ok());
    ASSERT_TRUE(store_->AnswerRequest("alice", "g", "bob", true, kT0).ok());
  }
  void Online(const std::string& user, const std::string& address,
              absl::Duration ttl = absl::Seconds(30)) {
    ASSERT_TRUE(store_->CreateSession("tok-" + user, {user, address, kT0 + ttl, ""}, kT0).ok());
  }
  Relation RelationOf(const std::string& user, const std::string& group) {
    auto groups = store_->ListGroups(user, {});
    if (!groups.ok()) {
      ADD_FAILURE() << groups.status();
      return Relation::kNone;
    }
    for (const GroupView& g : *groups) {
      if (g.group_id == group) return g.relation;
    }
    ADD_FAILURE() << "no group " << group;
    return Relation::kNone;
  }

  static inline std::unique_ptr<testing::TempDir> postgres_dir_;
  static inline std::unique_ptr<testing::PostgresServer> postgres_;
  testing::TempDir dir_;
  std::string conninfo_;
  std::unique_ptr<Store> store_;
};

INSTANTIATE_TEST_SUITE_P(Backends, StoreTest,
                         ::testing::Values(Backend::kSqlite, Backend::kPostgres),
                         [](const auto& info) {
                           return info.param == Backend::kSqlite ? "Sqlite" : "Postgres";
                         });

TEST_P(StoreTest, Users) {
  EXPECT_EQ(store_->CreateUser("alice", "x", kT0).code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(*store_->GetPasswordHash("alice"), "hash-alice");
  EXPECT_EQ(store_->GetPasswordHash("zed").status().code(), StatusCode::kNotFound);
}

TEST_P(StoreTest, SessionsExtendAndEnd) {
  ASSERT_TRUE(store_->CreateSession("t1", {"alice", "127.0.0.1:1", kT0 + absl::Seconds(10), "c1"},
                                    kT0).ok());
  auto s = store_->GetSession("t1");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->user_id, "alice");
  EXPECT_EQ(s->peer_address, "127.0.0.1:1");
  EXPECT_EQ(s->client_id, "c1");
  EXPECT_EQ(s->expires, kT0 + absl::Seconds(10));
  EXPECT_EQ(store_->GetSession("nope").status().code(), StatusCode::kUnauthenticated);
  ASSERT_TRUE(store_->ExtendSession("t1", kT0 + absl::Seconds(60), std::nullopt).ok());
  EXPECT_EQ(store_->GetSession("t1")->expires, kT0 + absl::Seconds(60));
  EXPECT_EQ(store_->ExtendSession("nope", kT0, std::nullopt).code(), StatusCode::kUnauthenticated);
  ASSERT_TRUE(store_->DeleteSession("t1").ok());
  EXPECT_FALSE(store_->GetSession("t1").ok());
}

TEST_P(StoreTest, ExpiredSessionsAreKeptForADay) {
  ASSERT_TRUE(store_->CreateSession("old", {"alice", "", kT0, ""}, kT0).ok());
  // Expired, yet still known (it may come back) ...
  ASSERT_TRUE(store_->CreateSession("new", {"bob", "", kT0 + absl::Hours(2), ""},
                                    kT0 + absl::Hours(1)).ok());
  EXPECT_TRUE(store_->GetSession("old").ok());
  // ... until a day past its expiry.
  ASSERT_TRUE(store_->CreateSession("newer", {"bob", "", kT0 + absl::Hours(30), ""},
                                    kT0 + absl::Hours(25)).ok());
  EXPECT_EQ(store_->GetSession("old").status().code(), StatusCode::kUnauthenticated);
}

TEST_P(StoreTest, ANewLoginOfAClientEndsItsEarlierSessionOnly) {
  auto login = [&](const std::string& token, const std::string& client) {
    return store_->CreateSession(token, {"alice", "127.0.0.1:1", kT0 + absl::Minutes(1), client},
                                 kT0);
  };
  ASSERT_TRUE(login("a1", "laptop").ok());
  ASSERT_TRUE(login("b1", "desktop").ok());
  ASSERT_TRUE(login("a2", "laptop").ok());
  EXPECT_FALSE(store_->GetSession("a1").ok());
  EXPECT_TRUE(store_->GetSession("a2").ok());
  EXPECT_TRUE(store_->GetSession("b1").ok());
  // Clients that name no client id never end each other's sessions.
  ASSERT_TRUE(login("n1", "").ok());
  ASSERT_TRUE(login("n2", "").ok());
  EXPECT_TRUE(store_->GetSession("n1").ok());
}

TEST_P(StoreTest, SessionsPerUserAreLimited) {
  StoreLimits limits;
  limits.sessions_per_user = 2;
  Reopen(limits);
  auto login = [&](const std::string& token, absl::Time now) {
    return store_->CreateSession(token, {"alice", "", now + absl::Seconds(30), token}, now);
  };
  ASSERT_TRUE(login("a", kT0).ok());
  ASSERT_TRUE(login("b", kT0).ok());
  absl::Status third = login("c", kT0);
  EXPECT_EQ(third.code(), StatusCode::kResourceExhausted) << third;
  EXPECT_THAT(std::string(third.message()), ::testing::HasSubstr("log out"));
  // Expired sessions do not count.
  EXPECT_TRUE(login("c", kT0 + absl::Minutes(1)).ok());
}

// Each of a user's clients is a source of its own: its shares, its address.
TEST_P(StoreTest, OneUserOnTwoClientsIsTwoSources) {
  MakeGroupWithBob();
  ASSERT_TRUE(store_->CreateSession("tok-laptop", {"bob", "127.0.0.1:1001",
                                                   kT0 + absl::Minutes(1), "laptop"}, kT0).ok());
  ASSERT_TRUE(store_->CreateSession("tok-desk", {"bob", "127.0.0.1:1002",
                                                 kT0 + absl::Minutes(1), "desk"}, kT0).ok());
  ASSERT_TRUE(store_->AddFile("bob", "laptop", "g", MakeFile("movie"), kT0).ok());
  ASSERT_TRUE(store_->AddFile("bob", "desk", "g", MakeFile("movie"), kT0).ok());
  ASSERT_TRUE(store_->AddFile("bob", "desk", "g", MakeFile("song", 'b'), kT0).ok());

  auto files = *store_->ListFiles("alice", "g", {}, kT0);
  ASSERT_EQ(files.size(), 2u);
  EXPECT_EQ(files[0].name, "movie");
  EXPECT_EQ(files[0].online_seeders, 2);
  auto peers = store_->GetFileAndPeers("alice", "", "g", "movie", kT0)->peers;
  ASSERT_EQ(peers.size(), 2u);
  EXPECT_EQ(peers[0].address, "127.0.0.1:1002");
  EXPECT_EQ(peers[1].address, "127.0.0.1:1001");
  // The user's other client is a peer of this one; the client itself not.
  peers = store_->GetFileAndPeers("bob", "laptop", "g", "movie", kT0)->peers;
  ASSERT_EQ(peers.size(), 1u);
  EXPECT_EQ(peers[0].client_id, "desk");
  EXPECT_EQ(store_->ListShares("bob", "laptop")->size(), 1u);
  EXPECT_EQ(store_->ListShares("bob", "desk")->size(), 2u);

  // One client logging out leaves the other online.
  ASSERT_TRUE(store_->DeleteSession("tok-laptop").ok());
  peers = store_->GetFileAndPeers("alice", "", "g", "movie", kT0)->peers;
  ASSERT_EQ(peers.size(), 1u);
  EXPECT_EQ(peers[0].address, "127.0.0.1:1002");
  EXPECT_EQ(store_->ListFiles("alice", "g", {}, kT0)->front().online_seeders, 1);
  // Stopping a share on one client leaves the other's.
  EXPECT_EQ(store_->RemoveShare("bob", "laptop", "g", "song").code(), StatusCode::kNotFound);
  ASSERT_TRUE(store_->RemoveShare("bob", "laptop", "g", "movie").ok());
  EXPECT_EQ(store_->ListFiles("alice", "g", {}, kT0)->size(), 2u);
}

// Two trackers over one database: what one changes, the other lists from
// the next second (it keeps what it listed for the second of the call: its
// cache of a group's files follows the group's files version).
TEST_P(StoreTest, ListingsSeeWhatAnotherTrackerChanged) {
  MakeGroupWithBob();
  Online("alice", "127.0.0.1:1001");
  Online("bob", "127.0.0.1:1002");
  auto other = OpenAnotherTracker();
  ASSERT_TRUE(other.ok()) << other.status();
  absl::Time at = kT0;
  const auto next_second = [&] { return at += absl::Seconds(1); };
  EXPECT_TRUE((*other)->ListFiles("bob", "g", {}, at)->empty());
  ASSERT_TRUE(store_->AddFile("alice", "", "g", MakeFile("movie"), kT0).ok());
  EXPECT_TRUE((*other)->ListFiles("bob", "g", {}, at)->empty());  // within the second
  EXPECT_EQ((*other)->ListFiles("bob", "g", {}, next_second())->size(), 1u);
  ASSERT_TRUE(store_->AddHolder("bob", "", "g", "movie", Store::Holding::kSome).ok());
  auto files = *(*other)->ListFiles("bob", "g", {}, next_second());
  EXPECT_EQ(files[0].online_seeders, 1);
  EXPECT_EQ(files[0].online_partial, 1);
  ASSERT_TRUE(store_->AddFile("bob", "", "g", MakeFile("song", 'b'), kT0).ok());
  EXPECT_EQ((*other)->ListFiles("bob", "g", {}, next_second())->size(), 2u);
  ASSERT_TRUE(store_->RemoveShare("alice", "", "g", "movie").ok());
  files = *(*other)->ListFiles("bob", "g", {}, next_second());
  EXPECT_EQ(files[0].online_seeders, 0);
  EXPECT_EQ(files[0].online_partial, 1);
  // A session's end, and a membership's.
  ASSERT_TRUE(store_->DeleteSession("tok-bob").ok());
  EXPECT_EQ((*other)->ListFiles("alice", "g", {}, next_second())->front().online_partial, 0);
  ASSERT_TRUE(store_->LeaveGroup("bob", "g").ok());
  EXPECT_EQ((*other)->ListFiles("bob", "g", {}, next_second()).status().code(),
            StatusCode::kPermissionDenied);
  // A group deleted and made again is another group.
  ASSERT_TRUE(store_->LeaveGroup("alice", "g").ok());
  ASSERT_TRUE(store_->CreateGroup("alice", "g", kT0).ok());
  EXPECT_TRUE((*other)->ListFiles("alice", "g", {}, next_second())->empty());
}

// A tracker's own changes list at once, within the second of a listing it
// keeps; a session's extension keeps the listing.
TEST_P(StoreTest, ListingsSeeThisTrackersChangesAtOnce) {
  MakeGroupWithBob();
  Online("alice", "127.0.0.1:1001");
  Online("bob", "127.0.0.1:1002");
  // The first file's (seeders, partial); (-1, -1) when there is none.
  using Counts = std::pair<int64_t, int64_t>;
  const auto first = [&] {
    auto files = store_->ListFiles("bob", "g", {}, kT0);
    return files.ok() && !files->empty()
               ? Counts(files->front().online_seeders, files->front().online_partial)
               : Counts(-1, -1);
  };
  EXPECT_EQ(first(), Counts(-1, -1));
  ASSERT_TRUE(store_->AddFile("alice", "", "g", MakeFile("movie"), kT0).ok());
  EXPECT_EQ(first(), Counts(1, 0));
  ASSERT_TRUE(store_->AddHolder("bob", "", "g", "movie", Store::Holding::kSome).ok());
  EXPECT_EQ(first(), Counts(1, 1));
  ASSERT_TRUE(store_->ExtendSession("tok-alice", kT0 + absl::Minutes(5), std::nullopt).ok());
  EXPECT_EQ(first(), Counts(1, 1));
  ASSERT_TRUE(store_->DeleteSession("tok-alice").ok());
  EXPECT_EQ(first(), Counts(0, 1));
  ASSERT_TRUE(store_->LeaveGroup("bob", "g").ok());
  EXPECT_EQ(store_->ListFiles("bob", "g", {}, kT0).status().code(),
            StatusCode::kPermissionDenied);
}

// A caller on a thread that must not wait asks first whether the session
// and the listing are kept: only when both are, for a member, in the second
// they were read in, and until a write.
TEST_P(StoreTest, WhetherAListingIsAnsweredFromTheCachesIsKnownBeforehand) {
  MakeGroupWithBob();
  Online("bob", "127.0.0.1:1002");
  Online("carol", "127.0.0.1:1003");
  // The session cache keeps a session for the wall clock's second: read it
  // again right before asking (of two tries, one is within one second).
  const auto kept = [&](const std::string& user, absl::Time at) {
    const std::string token = "tok-" + user;
    for (int i = 0; i < 2; ++i) {
      EXPECT_TRUE(store_->GetSession(token).ok());
      if (store_->CanListFilesFromCache(token, "g", at)) return true;
    }
    return false;
  };
  EXPECT_FALSE(kept("bob", kT0));  // the listing was not read yet
  ASSERT_TRUE(store_->ListFiles("bob", "g", {}, kT0).ok());
  EXPECT_TRUE(kept("bob", kT0));
  EXPECT_FALSE(kept("bob", kT0 + absl::Seconds(1)));
  EXPECT_FALSE(kept("carol", kT0));  // no member
  EXPECT_FALSE(store_->CanListFilesFromCache("tok-nobody", "g", kT0));
  ASSERT_TRUE(store_->AddFile("bob", "", "g", MakeFile("movie"), kT0).ok());
  EXPECT_FALSE(kept("bob", kT0));
}

// Two trackers over one database: a session one ends, the other refuses
// within the second it keeps a session it read. (A tracker's own changes
// show there at once: SessionsExtendAndEnd.)
TEST_P(StoreTest, ASessionAnotherTrackerEndedEndsThereWithinASecond) {
  ASSERT_TRUE(store_->CreateSession("t1", {"alice", "", kT0 + absl::Hours(1), ""}, kT0).ok());
  auto other = OpenAnotherTracker();
  ASSERT_TRUE(other.ok()) << other.status();
  ASSERT_TRUE((*other)->GetSession("t1").ok());
  ASSERT_TRUE(store_->DeleteSession("t1").ok());
  const absl::Time ended = absl::Now();
  while ((*other)->GetSession("t1").ok() && absl::Now() - ended < absl::Seconds(5)) {
    absl::SleepFor(absl::Milliseconds(20));  // the other store has no event to wait on
  }
  EXPECT_EQ((*other)->GetSession("t1").status().code(), StatusCode::kUnauthenticated);
  EXPECT_LE(absl::Now() - ended, absl::Seconds(3));  // a second, and a loaded machine's delays
}

// Readers and writers at once, over the pools, the files cache and the
// session cache (run under ThreadSanitizer too): every listing is one the
// writers made, and a session being extended is always found.
TEST_P(StoreTest, ReadsAndWritesAtOnce) {
  MakeGroupWithBob();
  Online("alice", "127.0.0.1:1001");
  constexpr int kFiles = 40;
  std::atomic<bool> bad{false};
  std::vector<std::thread> threads;
  for (int w = 0; w < 2; ++w) {
    threads.emplace_back([&, w] {
      for (int i = w; i < kFiles; i += 2) {
        const std::string name = "f" + std::to_string(i);
        if (!store_->AddFile("alice", "", "g", MakeFile(name), kT0).ok() ||
            !store_->AddHolder("bob", "", "g", name, Store::Holding::kSome).ok() ||
            !store_->ExtendSession("tok-alice", kT0 + absl::Seconds(30 + i), std::nullopt).ok()) {
          bad = true;
        }
      }
    });
  }
  for (int r = 0; r < 2; ++r) {
    threads.emplace_back([&] {
      for (int i = 0; i < 200; ++i) {
        auto files = store_->ListFiles("bob", "g", {}, kT0);
        if (!files.ok() || files->size() > static_cast<size_t>(kFiles)) bad = true;
        for (const FileSummaryView& f : files.value_or(FileListing())) {
          if (f.online_seeders != 1) bad = true;
        }
        auto session = store_->GetSession("tok-alice");
        if (!session.ok() || session->user_id != "alice") bad = true;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_FALSE(bad);
  EXPECT_EQ(store_->ListFiles("bob", "g", {}, kT0)->size(), static_cast<size_t>(kFiles));
}

TEST_P(StoreTest, ListingsPage) {
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(store_->CreateGroup("alice", "g" + std::to_string(i), kT0).ok());
    ASSERT_TRUE(store_->AddFile("alice", "", "g0", MakeFile("f" + std::to_string(i)), kT0).ok());
  }
  std::vector<std::string> seen;
  PageRequest page{"", 2};
  while (true) {
    auto groups = *store_->ListGroups("bob", page);
    for (const GroupView& g : groups) seen.push_back(g.group_id);
    if (static_cast<int64_t>(groups.size()) < page.size) break;
    page.after = groups.back().group_id;
  }
  EXPECT_EQ(seen, (std::vector<std::string>{"g0", "g1", "g2", "g3", "g4"}));
  auto files = *store_->ListFiles("alice", "g0", {"f1", 2}, kT0);
  ASSERT_EQ(files.size(), 2u);
  EXPECT_EQ(files[0].name, "f2");
  EXPECT_EQ(files[1].name, "f3");
  // Byte order, whatever the database's locale.
  ASSERT_TRUE(store_->CreateGroup("bob", "Z", kT0).ok());
  ASSERT_TRUE(store_->CreateGroup("bob", "_a", kT0).ok());
  auto groups = *store_->ListGroups("bob", {});
  EXPECT_EQ(groups.front().group_id, "Z");
  EXPECT_EQ(groups.back().group_id, "g4");
}

TEST_P(StoreTest, LimitsOnGroupsRequestsAndFiles) {
  StoreLimits limits;
  limits.groups_per_owner = 2;
  limits.pending_requests_per_group = 1;
  limits.files_per_group = 2;
  Reopen(limits);
  ASSERT_TRUE(store_->CreateGroup("alice", "g", kT0).ok());
  ASSERT_TRUE(store_->CreateGroup("alice", "h", kT0).ok());
  EXPECT_EQ(store_->CreateGroup("alice", "i", kT0).code(), StatusCode::kResourceExhausted);
  EXPECT_TRUE(store_->CreateGroup("bob", "i", kT0).ok());
  ASSERT_TRUE(store_->RequestJoin("bob", "g", kT0).ok());
  EXPECT_EQ(store_->RequestJoin("carol", "g", kT0).code(), StatusCode::kResourceExhausted);
  ASSERT_TRUE(store_->AddFile("alice", "", "g", MakeFile("a"), kT0).ok());
  ASSERT_TRUE(store_->AddFile("alice", "", "g", MakeFile("b"), kT0).ok());
  EXPECT_EQ(store_->AddFile("alice", "", "g", MakeFile("c"), kT0).status().code(),
            StatusCode::kResourceExhausted);
  // A second sharer of a file the group has is no new file.
  ASSERT_TRUE(store_->AnswerRequest("alice", "g", "bob", true, kT0).ok());
  EXPECT_TRUE(store_->AddFile("bob", "", "g", MakeFile("a"), kT0).ok());
}

TEST_P(StoreTest, PieceHashesAUserSharesAreBounded) {
  StoreLimits limits;
  limits.metadata_bytes_per_user = 200;  // 10 pieces; MakeFile's have 3
  Reopen(limits);
  ASSERT_TRUE(store_->CreateGroup("alice", "g", kT0).ok());
  for (const char* name : {"a", "b", "c"}) {
    ASSERT_TRUE(store_->AddFile("alice", "", "g", MakeFile(name), kT0).ok());
  }
  auto refused = store_->AddFile("alice", "", "g", MakeFile("d"), kT0);
  EXPECT_EQ(refused.status().code(), StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(refused.status().message()), ::testing::HasSubstr("of hashes"));
  ASSERT_TRUE(store_->RemoveShare("alice", "", "g", "a").ok());
  EXPECT_TRUE(store_->AddFile("alice", "", "g", MakeFile("d"), kT0).ok());
}

TEST_P(StoreTest, NoticesReachTheirUsersOnceSeen) {
  ASSERT_TRUE(store_->CreateGroup("alice", "g", kT0).ok());
  ASSERT_TRUE(store_->RequestJoin("bob", "g", kT0).ok());
  ASSERT_TRUE(store_->RequestJoin("carol", "g", kT0).ok());
  auto waiting = *store_->TakeNotices("alice", 0, 50);
  ASSERT_EQ(waiting.size(), 2u);
  EXPECT_EQ(waiting[0].kind, NoticeView::kRequestWaiting);
  EXPECT_EQ(waiting[0].user_id, "bob");
  // Answered, a request is no news to the owner any more.
  ASSERT_TRUE(store_->AnswerRequest("alice", "g", "carol", false, kT0).ok());
  EXPECT_EQ(store_->TakeNotices("alice", 0, 50)->size(), 1u);
  auto refused = *store_->TakeNotices("carol", 0, 50);
  ASSERT_EQ(refused.size(), 1u);
  EXPECT_EQ(refused[0].kind, NoticeView::kRequestRejected);
  EXPECT_EQ(refused[0].user_id, "alice");
  // Seen, a notice is gone.
  EXPECT_TRUE(store_->TakeNotices("carol", refused[0].seq, 50)->empty());
  EXPECT_TRUE(store_->TakeNotices("carol", 0, 50)->empty());
  ASSERT_TRUE(store_->AnswerRequest("alice", "g", "bob", true, kT0).ok());
  ASSERT_TRUE(store_->LeaveGroup("alice", "g").ok());
  auto bobs = *store_->TakeNotices("bob", 0, 50);
  ASSERT_EQ(bobs.size(), 2u);
  EXPECT_EQ(bobs[0].kind, NoticeView::kRequestAccepted);
  EXPECT_EQ(bobs[1].kind, NoticeView::kGroupHandedToYou);
}

TEST_P(StoreTest, AChangeRunsOnceAndKeepsItsAnswer) {
  int runs = 0;
  auto create = [&](const std::string& key, const std::string& group, absl::Time now) {
    return store_->RunOnce(key, now, [&](Store& tx, std::string* response) {
      ++runs;
      *response = "made " + group;
      return tx.CreateGroup("alice", group, now);
    });
  };
  auto first = create("k1", "g", kT0);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->code, 0);
  EXPECT_EQ(first->response, "made g");
  // The retry gets the first answer; the change does not run again.
  auto again = create("k1", "g", kT0 + absl::Seconds(1));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->code, 0);
  EXPECT_EQ(again->response, "made g");
  EXPECT_EQ(runs, 1);
  // An error is an answer too, and what it tried is rolled back.
  auto taken = create("k2", "g", kT0);
  ASSERT_TRUE(taken.ok());
  EXPECT_EQ(taken->code, static_cast<int>(StatusCode::kAlreadyExists));
  EXPECT_THAT(taken->message, ::testing::HasSubstr("already exists"));
  EXPECT_TRUE(taken->response.empty());
  // A change that says "try again" is rolled back and not recorded. Within
  // it, its transaction reads what it wrote.
  auto busy = store_->RunOnce("k4", kT0, [&](Store& tx, std::string*) {
    EXPECT_TRUE(tx.CreateGroup("alice", "lost", kT0).ok());
    EXPECT_EQ(tx.ListGroups("alice", {})->size(), 2u);
    return absl::UnavailableError("busy");
  });
  EXPECT_EQ(busy.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(store_->ListGroups("alice", {})->size(), 1u);  // g only
  runs = 0;
  EXPECT_TRUE(create("k4", "lost", kT0)->code == 0);
  EXPECT_EQ(runs, 1);
  // Forgotten after an hour.
  EXPECT_EQ(create("k1", "g", kT0 + absl::Hours(2))->code,
            static_cast<int>(StatusCode::kAlreadyExists));
}

// A read's statements see one state: a change that commits between two of
// them (through the store, on a connection of its own) is not seen by the
// second. GetFilePeers' ticket and holders come from one such read.
TEST_P(StoreTest, AReadSeesOneSnapshotWhateverCommitsMeanwhile) {
  auto db = GetParam() == Backend::kSqlite ? OpenSqliteDatabase(dir_.File("tracker.db"), 1)
                                           : OpenPostgresDatabase(conninfo_, 1);
  ASSERT_TRUE(db.ok()) << db.status();
  auto users = [](SqlConnection& c) -> int64_t {
    auto rows = c.Execute("SELECT COUNT(*) FROM users", {});
    EXPECT_TRUE(rows.ok()) << rows.status();
    return rows.ok() ? rows->Int(0, 0) : -1;
  };
  int64_t first = 0, second = 0, latest = 0;
  ASSERT_TRUE((*db)->Read([&](SqlConnection& c) -> absl::Status {
                first = users(c);
                EXPECT_TRUE(store_->CreateUser("dave", "hash-dave", kT0).ok());
                second = users(c);
                return absl::OkStatus();
              }).ok());
  EXPECT_EQ(first, 3);
  EXPECT_EQ(second, first) << "the read saw a change that committed after it began";
  // Without the snapshot, the latest state.
  ASSERT_TRUE((*db)->ReadLatest([&](SqlConnection& c) -> absl::Status {
                EXPECT_TRUE(store_->CreateUser("erin", "hash-erin", kT0).ok());
                latest = users(c);
                return absl::OkStatus();
              }).ok());
  EXPECT_EQ(latest, 5);
}

TEST_P(StoreTest, CreateAndListGroups) {
  ASSERT_TRUE(store_->CreateGroup("alice", "g", kT0).ok());
  EXPECT_EQ(store_->CreateGroup("bob", "g", kT0).code(), StatusCode::kAlreadyExists);
  ASSERT_TRUE(store_->CreateGroup("bob", "a-first", kT0).ok());
  auto groups = *store_->ListGroups("alice", {});
  ASSERT_EQ(groups.size(), 2u);
  EXPECT_EQ(groups[0].group_id, "a-first");
  EXPECT_EQ(groups[0].relation, Relation::kNone);
  EXPECT_EQ(groups[1].group_id, "g");
  EXPECT_EQ(groups[1].owner, "alice");
  EXPECT_EQ(groups[1].member_count, 1);
  EXPECT_EQ(groups[1].relation, Relation::kOwner);
}

TEST_P(StoreTest, JoinRequestsFlow) {
  ASSERT_TRUE(store_->CreateGroup("alice", "g", kT0).ok());
  EXPECT_EQ(store_->RequestJoin("bob", "nope", kT0).code(), StatusCode::kNotFound);
  EXPECT_EQ(store_->RequestJoin("alice", "g", kT0).code(), StatusCode::kAlreadyExists);
  ASSERT_TRUE(store_->RequestJoin("bob", "g", kT0).ok());
  EXPECT_EQ(store_->RequestJoin("bob", "g", kT0).code(), StatusCode::kAlreadyExists);
  ASSERT_TRUE(store_->RequestJoin("carol", "g", kT0 + absl::Seconds(1)).ok());
  EXPECT_EQ(RelationOf("bob", "g"), Relation::kPending);

  EXPECT_EQ(store_->ListRequests("bob", "g").status().code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(store_->ListRequests("alice", "nope").status().code(), StatusCode::kNotFound);
  auto requests = *store_->ListRequests("alice", "g");
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[0].user_id, "bob");
  EXPECT_EQ(requests[1].user_id, "carol");

  EXPECT_EQ(store_->AnswerRequest("bob", "g", "carol", true, kT0).code(),
            StatusCode::kPermissionDenied);
  EXPECT_EQ(store_->AnswerRequest("alice", "g", "zed", true, kT0).code(),
            StatusCode::kNotFound);
  ASSERT_TRUE(store_->AnswerRequest("alice", "g", "bob", true, kT0).ok());
  ASSERT_TRUE(store_->AnswerRequest("alice", "g", "carol", false, kT0).ok());
  // Bob is a member already; carol's request is gone.
  EXPECT_EQ(store_->AnswerRequest("alice", "g", "bob", true, kT0).code(),
            StatusCode::kAlreadyExists);
  EXPECT_EQ(store_->AnswerRequest("alice", "g", "carol", true, kT0).code(),
            StatusCode::kNotFound);
  EXPECT_EQ(RelationOf("bob", "g"), Relation::kMember);
  EXPECT_EQ(RelationOf("carol", "g"), Relation::kRejected);
  EXPECT_TRUE(store_->ListRequests("alice", "g")->empty());
  EXPECT_EQ((*store_->ListGroups("alice", {}))[0].member_count, 2);
  // A rejected user may ask again, and is pending again.
  EXPECT_TRUE(store_->RequestJoin("carol", "g", kT0).ok());
  EXPECT_EQ(RelationOf("carol", "g"), Relation::kPending);
}

TEST_P(StoreTest, LeaveHandsOwnershipToOldestMemberThenDeletes) {
  MakeGroupWithBob();
  ASSERT_TRUE(store_->RequestJoin("carol", "g", kT0).ok());
  ASSERT_TRUE(store_->AnswerRequest("alice", "g", "carol", true, kT0).ok());
  EXPECT_EQ(store_->LeaveGroup("zed", "nope").status().code(), StatusCode::kNotFound);

  auto left = store_->LeaveGroup("alice", "g");
  ASSERT_TRUE(left.ok());
  EXPECT_EQ(left->new_owner, "bob");
  EXPECT_FALSE(left->group_deleted);
  EXPECT_EQ(RelationOf("bob", "g"), Relation::kOwner);
  EXPECT_EQ(store_->LeaveGroup("alice", "g").status().code(), StatusCode::kNotFound);

  left = store_->LeaveGroup("carol", "g");
  ASSERT_TRUE(left.ok());
  EXPECT_EQ(left->new_owner, "");
  left = store_->LeaveGroup("bob", "g");
  ASSERT_TRUE(left.ok());
  EXPECT_TRUE(left->group_deleted);
  EXPECT_TRUE(store_->ListGroups("bob", {})->empty());
  // The id is free again.
  EXPECT_TRUE(store_->CreateGroup("carol", "g", kT0).ok());
}

// The SHA1 chain is optional, and a file keeps the one it was registered
// with, or none: a later sharer's never replaces it, and another chain is
// refused.
TEST_P(StoreTest, AFileKeepsTheSha1ChainItWasRegisteredWith) {
  MakeGroupWithBob();
  FileRecord f = MakeFile("movie");
  FileRecord chained = f;
  for (size_t i = 0; i + 1 < f.piece_sha1.size(); ++i) {
    chained.sha1_chain.push_back(std::string(39, 'c') + static_cast<char>('0' + i));
  }
  FileRecord unchained = MakeFile("show", 'b');
  ASSERT_TRUE(store_->AddFile("alice", "", "g", unchained, kT0).ok());
  FileRecord late = unchained;
  late.sha1_chain = chained.sha1_chain;
  EXPECT_FALSE(*store_->AddFile("bob", "", "g", late, kT0));  // one more sharer
  EXPECT_TRUE(store_->GetFile("bob", "g", "show")->sha1_chain.empty());

  ASSERT_TRUE(*store_->AddFile("bob", "", "g", chained, kT0));
  EXPECT_EQ(store_->GetFile("bob", "g", "movie")->sha1_chain, chained.sha1_chain);
  EXPECT_FALSE(*store_->AddFile("alice", "", "g", f, kT0));  // none sent: it stays
  FileRecord other = chained;
  other.sha1_chain[0] = std::string(40, 'd');
  EXPECT_EQ(store_->AddFile("bob", "", "g", other, kT0).status().code(),
            StatusCode::kFailedPrecondition);
  EXPECT_EQ(store_->GetFile("alice", "g", "movie")->sha1_chain, chained.sha1_chain);
  EXPECT_EQ(store_->GetFileAndPeers("alice", "", "g", "movie", kT0)->file.sha1_chain,
            chained.sha1_chain);
}

TEST_P(StoreTest, FilesNeedMembership) {
  MakeGroupWithBob();
  FileRecord f = MakeFile("movie");
  EXPECT_EQ(store_->AddFile("carol", "", "g", f, kT0).status().code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(store_->AddFile("alice", "", "nope", f, kT0).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(store_->ListFiles("carol", "g", {}, kT0).status().code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(store_->GetFile("carol", "g", "movie").status().code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(store_->GetFileAndPeers("carol", "", "g", "movie", kT0).status().code(),
            StatusCode::kPermissionDenied);
}

TEST_P(StoreTest, AddListAndGetFiles) {
  MakeGroupWithBob();
  FileRecord f = MakeFile("movie");
  EXPECT_TRUE(*store_->AddFile("alice", "", "g", f, kT0));
  EXPECT_FALSE(*store_->AddFile("bob", "", "g", f, kT0));  // same content: one more sharer
  // The same SHA1 with other piece hashes: refused, the first stands.
  ASSERT_FALSE(f.piece_sha1.empty());
  FileRecord bogus = f;
  bogus.piece_sha1[0] = std::string(40, '0');
  EXPECT_EQ(store_->AddFile("bob", "", "g", bogus, kT0).status().code(),
            StatusCode::kFailedPrecondition);
  EXPECT_EQ(store_->AddFile("bob", "", "g", MakeFile("movie", 'b'), kT0).status().code(),
            StatusCode::kAlreadyExists);
  auto got = store_->GetFile("bob", "g", "movie");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->size, f.size);
  EXPECT_EQ(got->piece_size, f.piece_size);
  EXPECT_EQ(got->sha1, f.sha1);
  EXPECT_EQ(got->piece_sha1, f.piece_sha1);
  EXPECT_EQ(store_->GetFile("bob", "g", "nope").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(store_->GetFileAndPeers("bob", "", "g", "nope", kT0).status().code(),
            StatusCode::kNotFound);

  // Nobody online yet.
  auto files = *store_->ListFiles("alice", "g", {}, kT0);
  ASSERT_EQ(files.size(), 1u);
  EXPECT_EQ(files[0].online_seeders, 0);
  Online("alice", "127.0.0.1:1001");
  files = *store_->ListFiles("alice", "g", {}, kT0);
  EXPECT_EQ(files[0].online_seeders, 1);
  // Sessions expire: the share goes offline but stays registered.
  files = *store_->ListFiles("alice", "g", {}, kT0 + absl::Minutes(5));
  ASSERT_EQ(files.size(), 1u);
  EXPECT_EQ(files[0].online_seeders, 0);
}

TEST_P(StoreTest, PeersAreOnlineHoldersOtherThanTheCaller) {
  MakeGroupWithBob();
  ASSERT_TRUE(store_->RequestJoin("carol", "g", kT0).ok());
  ASSERT_TRUE(store_->AnswerRequest("alice", "g", "carol", true, kT0).ok());
  ASSERT_TRUE(store_->AddFile("alice", "", "g", MakeFile("movie"), kT0).ok());
  EXPECT_EQ(store_->AddHolder("bob", "", "g", "nope", Store::Holding::kSome).code(),
            StatusCode::kNotFound);
  ASSERT_TRUE(store_->AddHolder("bob", "", "g", "movie", Store::Holding::kSome).ok());
  Online("alice", "127.0.0.1:1001");
  Online("bob", "127.0.0.1:1002");

  auto peers = store_->GetFileAndPeers("carol", "", "g", "movie", kT0)->peers;
  ASSERT_EQ(peers.size(), 2u);
  EXPECT_EQ(peers[0].user_id, "alice");
  EXPECT_TRUE(peers[0].complete);
  EXPECT_EQ(peers[0].address, "127.0.0.1:1001");
  EXPECT_EQ(peers[1].user_id, "bob");
  EXPECT_FALSE(peers[1].complete);
  auto files = *store_->ListFiles("carol", "g", {}, kT0);
  EXPECT_EQ(files[0].online_seeders, 1);
  EXPECT_EQ(files[0].online_partial, 1);

  peers = store_->GetFileAndPeers("alice", "", "g", "movie", kT0)->peers;
  ASSERT_EQ(peers.size(), 1u);
  EXPECT_EQ(peers[0].user_id, "bob");

  // Completing upgrades; a later partial announce does not downgrade.
  ASSERT_TRUE(store_->AddHolder("bob", "", "g", "movie", Store::Holding::kAll).ok());
  ASSERT_TRUE(store_->AddHolder("bob", "", "g", "movie", Store::Holding::kSome).ok());
  EXPECT_TRUE(store_->GetFileAndPeers("carol", "", "g", "movie", kT0)->peers[1].complete);

  // Logging out takes a holder offline.
  ASSERT_TRUE(store_->DeleteSession("tok-bob").ok());
  EXPECT_EQ(store_->GetFileAndPeers("carol", "", "g", "movie", kT0)->peers.size(), 1u);
}

// A download is listed from its start, before it has a piece: the others
// connect to it at once. It does not keep a file that nobody else holds.
TEST_P(StoreTest, ADownloadWithNoPieceYetIsListedButKeepsNoFile) {
  MakeGroupWithBob();
  ASSERT_TRUE(store_->RequestJoin("carol", "g", kT0).ok());
  ASSERT_TRUE(store_->AnswerRequest("alice", "g", "carol", true, kT0).ok());
  Online("alice", "127.0.0.1:1001");
  Online("bob", "127.0.0.1:1002");
  for (const char* name : {"movie", "song"}) {
    ASSERT_TRUE(store_->AddFile("alice", "", "g", MakeFile(name), kT0).ok());
  }
  ASSERT_TRUE(store_->AddHolder("bob", "", "g", "movie", Store::Holding::kNothingYet).ok());
  ASSERT_TRUE(store_->AddHolder("bob", "", "g", "song", Store::Holding::kSome).ok());
  // A later announce of no piece takes nothing back.
  ASSERT_TRUE(store_->AddHolder("bob", "", "g", "song", Store::Holding::kNothingYet).ok());

  auto peers = store_->GetFileAndPeers("carol", "", "g", "movie", kT0)->peers;
  ASSERT_EQ(peers.size(), 2u);
  EXPECT_EQ(peers[0].user_id, "alice");
  EXPECT_EQ(peers[1].user_id, "bob");
  EXPECT_FALSE(peers[1].complete);
  auto files = *store_->ListFiles("carol", "g", {}, kT0);
  ASSERT_EQ(files.size(), 2u);
  EXPECT_EQ(files[0].online_seeders, 1);
  EXPECT_EQ(files[0].online_partial, 1);

  ASSERT_TRUE(store_->RemoveShare("alice", "", "g", "movie").ok());
  ASSERT_TRUE(store_->RemoveShare("alice", "", "g", "song").ok());
  EXPECT_EQ(store_->GetFileAndPeers("carol", "", "g", "movie", kT0).status().code(),
            StatusCode::kNotFound);
  EXPECT_EQ(store_->RemoveShare("bob", "", "g", "movie").code(), StatusCode::kNotFound);
  peers = store_->GetFileAndPeers("carol", "", "g", "song", kT0)->peers;
  ASSERT_EQ(peers.size(), 1u);
  EXPECT_EQ(peers[0].user_id, "bob");

  // Nor does it demote a holder of every piece.
  ASSERT_TRUE(store_->AddHolder("bob", "", "g", "song", Store::Holding::kAll).ok());
  ASSERT_TRUE(store_->AddHolder("bob", "", "g", "song", Store::Holding::kNothingYet).ok());
  EXPECT_TRUE(store_->GetFileAndPeers("carol", "", "g", "song", kT0)->peers[0].complete);
}

TEST_P(StoreTest, StopShareForgetsFileWithItsLastSharer) {
  MakeGroupWithBob();
  ASSERT_TRUE(store_->AddFile("alice", "", "g", MakeFile("movie"), kT0).ok());
  ASSERT_TRUE(store_->AddFile("bob", "", "g", MakeFile("movie"), kT0).ok());
  EXPECT_EQ(store_->RemoveShare("alice", "", "g", "nope").code(), StatusCode::kNotFound);
  ASSERT_TRUE(store_->RemoveShare("alice", "", "g", "movie").ok());
  EXPECT_EQ(store_->RemoveShare("alice", "", "g", "movie").code(), StatusCode::kNotFound);
  EXPECT_EQ(store_->ListFiles("alice", "g", {}, kT0)->size(), 1u);
  ASSERT_TRUE(store_->RemoveShare("bob", "", "g", "movie").ok());
  EXPECT_TRUE(store_->ListFiles("alice", "g", {}, kT0)->empty());
}

TEST_P(StoreTest, LeavingDropsTheLeaversShares) {
  MakeGroupWithBob();
  ASSERT_TRUE(store_->AddFile("bob", "", "g", MakeFile("movie"), kT0).ok());
  ASSERT_TRUE(store_->AddFile("alice", "", "g", MakeFile("song"), kT0).ok());
  ASSERT_TRUE(store_->AddFile("bob", "", "g", MakeFile("song"), kT0).ok());
  ASSERT_TRUE(store_->LeaveGroup("bob", "g").ok());
  auto files = *store_->ListFiles("alice", "g", {}, kT0);
  ASSERT_EQ(files.size(), 1u);
  EXPECT_EQ(files[0].name, "song");
  EXPECT_TRUE(store_->ListShares("bob", "")->empty());
}

TEST_P(StoreTest, ListSharesCoversEveryGroup) {
  MakeGroupWithBob();
  ASSERT_TRUE(store_->CreateGroup("bob", "h", kT0).ok());
  ASSERT_TRUE(store_->AddFile("bob", "", "g", MakeFile("movie"), kT0).ok());
  ASSERT_TRUE(store_->AddFile("bob", "", "h", MakeFile("song", 'c'), kT0).ok());
  auto shares = *store_->ListShares("bob", "");
  ASSERT_EQ(shares.size(), 2u);
  EXPECT_EQ(shares[0].group_id, "g");
  EXPECT_EQ(shares[0].file_name, "movie");
  EXPECT_TRUE(shares[0].complete);
  EXPECT_EQ(shares[1].group_id, "h");
  EXPECT_EQ(shares[1].sha1, std::string(40, 'c'));
}

TEST_P(StoreTest, MetaKeepsTheFirstValue) {
  EXPECT_EQ(*store_->GetOrPutMeta("k", "one"), "one");
  EXPECT_EQ(*store_->GetOrPutMeta("k", "two"), "one");
  std::string binary("\x00\xff\x01", 3);
  EXPECT_EQ(*store_->GetOrPutMeta("b", binary), binary);
}

TEST_P(StoreTest, ReopenedStoreHasEverything) {
  MakeGroupWithBob();
  ASSERT_TRUE(store_->RequestJoin("carol", "g", kT0).ok());
  ASSERT_TRUE(store_->AddFile("alice", "", "g", MakeFile("movie"), kT0).ok());
  Online("alice", "127.0.0.1:1001");
  Reopen();
  EXPECT_EQ(*store_->GetPasswordHash("bob"), "hash-bob");
  EXPECT_EQ(RelationOf("bob", "g"), Relation::kMember);
  EXPECT_EQ(store_->ListRequests("alice", "g")->size(), 1u);
  EXPECT_EQ(store_->GetFile("bob", "g", "movie")->piece_sha1.size(), 3u);
  EXPECT_TRUE(store_->GetSession("tok-alice").ok());
}

// The database holds password hashes and the ticket-signing key.
TEST(SqliteStore, DatabaseFilesAreReadableByTheirOwnerOnly) {
  testing::TempDir dir;
  auto mode = [](const std::string& path) {
    struct stat st;
    return stat(path.c_str(), &st) == 0 ? static_cast<int>(st.st_mode & 0777) : -1;
  };
  {
    auto store = OpenSqliteStore(dir.File("new.db"));
    ASSERT_TRUE(store.ok()) << store.status();
    ASSERT_TRUE((*store)->CreateUser("alice", "hash", absl::FromUnixSeconds(1)).ok());
    EXPECT_EQ(mode(dir.File("new.db")), 0600);
    const int wal = mode(dir.File("new.db-wal"));
    EXPECT_TRUE(wal == -1 || wal == 0600) << std::oct << wal;
  }
  // One made before, readable by all, is closed up.
  testing::WriteFile(dir.File("old.db"), "");
  chmod(dir.File("old.db").c_str(), 0644);
  ASSERT_TRUE(OpenSqliteStore(dir.File("old.db")).ok());
  EXPECT_EQ(mode(dir.File("old.db")), 0600);
}

// A database of a tracker from before versioning is upgraded in place:
// what it held stays, shares become those of the client with no name.
TEST(SqliteStore, UpgradesAnUnversionedDatabase) {
  testing::TempDir dir;
  {
    auto db = sqlite::Database::Open(dir.File("old.db"));
    ASSERT_TRUE(db.ok());
    ASSERT_TRUE((*db)->Exec(R"sql(
      CREATE TABLE users (user_id TEXT PRIMARY KEY, password_hash TEXT NOT NULL,
                          created_at INTEGER NOT NULL);
      CREATE TABLE sessions (token_hash BLOB PRIMARY KEY, user_id TEXT NOT NULL,
        peer_address TEXT NOT NULL, created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL);
      CREATE TABLE groups_ (group_id TEXT PRIMARY KEY, owner TEXT NOT NULL,
                            created_at INTEGER NOT NULL);
      CREATE TABLE members (seq INTEGER PRIMARY KEY AUTOINCREMENT, group_id TEXT NOT NULL,
        user_id TEXT NOT NULL, joined_at INTEGER NOT NULL, UNIQUE (group_id, user_id));
      CREATE TABLE files (group_id TEXT NOT NULL, name TEXT NOT NULL, size INTEGER NOT NULL,
        piece_size INTEGER NOT NULL, sha1 TEXT NOT NULL, piece_sha1 BLOB NOT NULL,
        created_at INTEGER NOT NULL, PRIMARY KEY (group_id, name));
      CREATE TABLE shares (group_id TEXT NOT NULL, name TEXT NOT NULL, user_id TEXT NOT NULL,
        complete INTEGER NOT NULL, PRIMARY KEY (group_id, name, user_id));
      INSERT INTO users VALUES ('alice', 'h', 1);
      INSERT INTO groups_ VALUES ('g', 'alice', 1);
      INSERT INTO members(group_id, user_id, joined_at) VALUES ('g', 'alice', 1);
      INSERT INTO files VALUES ('g', 'movie', 10, 524288, 'ab', x'', 1);
      INSERT INTO shares VALUES ('g', 'movie', 'alice', 1);
    )sql").ok());
  }
  auto store = OpenSqliteStore(dir.File("old.db"));
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_EQ(*(*store)->GetPasswordHash("alice"), "h");
  auto shares = (*store)->ListShares("alice", "");
  ASSERT_TRUE(shares.ok()) << shares.status();
  ASSERT_EQ(shares->size(), 1u);
  EXPECT_EQ((*shares)[0].file_name, "movie");
  // Opening it again finds it current.
  store->reset();
  EXPECT_TRUE(OpenSqliteStore(dir.File("old.db")).ok());
}

// Whether another process holds a lock on SQLite's shared-lock range of the
// database file `path` (SQLite's unix locking: 510 bytes from 2^30 + 2). A
// process is not told of its own locks, so a child asks.
bool AnotherProcessSeesASharedLock(const std::string& path) {
  pid_t child = fork();
  if (child == 0) {
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    struct flock probe = {};
    probe.l_type = F_WRLCK;
    probe.l_whence = SEEK_SET;
    probe.l_start = (1 << 30) + 2;
    probe.l_len = 510;
    // The child never closes its descriptor before it exits; it has no
    // locks of its own to lose.
    _exit(fd >= 0 && fcntl(fd, F_GETLK, &probe) == 0 && probe.l_type == F_RDLCK ? 0 : 1);
  }
  int status = 0;
  waitpid(child, &status, 0);
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

// In WAL mode every connection keeps a shared lock on the database file
// while it is open, and the last connection of all (in any process) to
// close checkpoints and deletes the WAL. POSIX locks belong to the
// process: closing any descriptor of the file drops them all, so code that
// opens the file itself while SQLite holds it makes another process's
// tracker delete the WAL under this one. The store, with its pool of
// connections opened one after another and in use, keeps its locks.
TEST(SqliteStore, KeepsItsLocksOnTheDatabaseFile) {
  testing::TempDir dir;
  const std::string path = dir.File("tracker.db");
  auto store = OpenSqliteStore(path, {}, 4);
  ASSERT_TRUE(store.ok()) << store.status();
  ASSERT_TRUE((*store)->CreateUser("alice", "hash", kT0).ok());
  ASSERT_TRUE((*store)->GetPasswordHash("alice").ok());
  EXPECT_TRUE(AnotherProcessSeesASharedLock(path));
  // A second store on the same file, as a second tracker on this machine
  // would open it, leaves the first one's locks alone too.
  auto second = OpenSqliteStore(path, {}, 4);
  ASSERT_TRUE(second.ok()) << second.status();
  ASSERT_TRUE((*second)->GetPasswordHash("alice").ok());
  second->reset();
  EXPECT_TRUE(AnotherProcessSeesASharedLock(path));
  struct stat st;
  EXPECT_EQ(stat((path + "-wal").c_str(), &st), 0) << "the WAL in use was deleted";
}

TEST(PostgresStore, UnreachableDatabaseIsUnavailable) {
  auto store = OpenPostgresStore("host=127.0.0.1 port=1 dbname=x connect_timeout=2");
  EXPECT_EQ(store.status().code(), StatusCode::kUnavailable);
  EXPECT_THAT(std::string(store.status().message()), ::testing::HasSubstr("out of reach"));
}

TEST(SqliteStore, UnopenablePathIsAnError) {
  auto store = OpenSqliteStore("/nonexistent-dir/x/tracker.db");
  EXPECT_FALSE(store.ok());
}

TEST(SqliteStore, AFileThatIsNoDatabaseIsNamedWithTheReasonOnce) {
  testing::TempDir dir;
  std::string path = dir.File("tracker.db");
  {
    std::ofstream garbage(path, std::ios::binary);
    garbage << std::string(4096, 'x');
  }
  auto store = OpenSqliteStore(path);
  ASSERT_FALSE(store.ok());
  std::string message(store.status().message());
  EXPECT_THAT(message, ::testing::HasSubstr(path));
  size_t first = message.find("file is not a database");
  ASSERT_NE(first, std::string::npos) << message;
  EXPECT_EQ(message.find("file is not a database", first + 1), std::string::npos) << message;
}

}  // namespace
}  // namespace groupshare::tracker
