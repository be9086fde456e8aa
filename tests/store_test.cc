// The tracker's SQLite store on a temporary file: every operation, its
// failure codes, and that a reopened store has everything.

#include <sys/stat.h>

#include <gtest/gtest.h>

#include "services/tracker/store.h"
#include "tests/testing/temp_dir.h"

namespace groupshare::tracker {
namespace {

using absl::StatusCode;

const absl::Time kT0 = absl::FromUnixSeconds(1'800'000'000);

FileRecord MakeFile(const std::string& name, char fill = 'a', uint64_t size = 3 << 19) {
  FileRecord f{name, size, 1 << 19, std::string(40, fill), {}};
  for (uint64_t i = 0; i < (size + f.piece_size - 1) / f.piece_size; ++i) {
    f.piece_sha1.push_back(std::string(39, fill) + static_cast<char>('0' + i % 10));
  }
  return f;
}

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Reopen();
    for (const char* u : {"alice", "bob", "carol"}) {
      ASSERT_TRUE(store_->CreateUser(u, std::string("hash-") + u, kT0).ok());
    }
  }
  void Reopen() {
    store_.reset();
    auto opened = OpenSqliteStore(dir_.File("tracker.db"));
    ASSERT_TRUE(opened.ok()) << opened.status();
    store_ = *std::move(opened);
  }
  // alice owns g; bob is a member.
  void MakeGroupWithBob() {
    ASSERT_TRUE(store_->CreateGroup("alice", "g", kT0).ok());
    ASSERT_TRUE(store_->RequestJoin("bob", "g", kT0).ok());
    ASSERT_TRUE(store_->AnswerRequest("alice", "g", "bob", true, kT0).ok());
  }
  void Online(const std::string& user, const std::string& address,
              absl::Duration ttl = absl::Seconds(30)) {
    ASSERT_TRUE(store_->CreateSession("tok-" + user, {user, address, kT0 + ttl}, kT0).ok());
  }
  Relation RelationOf(const std::string& user, const std::string& group) {
    auto groups = store_->ListGroups(user);
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

  testing::TempDir dir_;
  std::unique_ptr<Store> store_;
};

TEST_F(StoreTest, Users) {
  EXPECT_EQ(store_->CreateUser("alice", "x", kT0).code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(*store_->GetPasswordHash("alice"), "hash-alice");
  EXPECT_EQ(store_->GetPasswordHash("zed").status().code(), StatusCode::kNotFound);
}

TEST_F(StoreTest, SessionsExpireAndExtend) {
  ASSERT_TRUE(store_->CreateSession("t1", {"alice", "127.0.0.1:1", kT0 + absl::Seconds(10)},
                                    kT0).ok());
  auto s = store_->GetSession("t1", kT0 + absl::Seconds(9));
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->user_id, "alice");
  EXPECT_EQ(s->peer_address, "127.0.0.1:1");
  EXPECT_EQ(store_->GetSession("t1", kT0 + absl::Seconds(10)).status().code(),
            StatusCode::kUnauthenticated);
  EXPECT_EQ(store_->GetSession("nope", kT0).status().code(), StatusCode::kUnauthenticated);
  ASSERT_TRUE(store_->ExtendSession("t1", kT0 + absl::Seconds(5), kT0 + absl::Seconds(60)).ok());
  EXPECT_TRUE(store_->GetSession("t1", kT0 + absl::Seconds(59)).ok());
  EXPECT_EQ(store_->ExtendSession("t1", kT0 + absl::Seconds(61), kT0 + absl::Seconds(90)).code(),
            StatusCode::kUnauthenticated);
  ASSERT_TRUE(store_->DeleteSession("t1").ok());
  EXPECT_FALSE(store_->GetSession("t1", kT0).ok());
}

TEST_F(StoreTest, CreateAndListGroups) {
  ASSERT_TRUE(store_->CreateGroup("alice", "g", kT0).ok());
  EXPECT_EQ(store_->CreateGroup("bob", "g", kT0).code(), StatusCode::kAlreadyExists);
  ASSERT_TRUE(store_->CreateGroup("bob", "a-first", kT0).ok());
  auto groups = *store_->ListGroups("alice");
  ASSERT_EQ(groups.size(), 2u);
  EXPECT_EQ(groups[0].group_id, "a-first");
  EXPECT_EQ(groups[0].relation, Relation::kNone);
  EXPECT_EQ(groups[1].group_id, "g");
  EXPECT_EQ(groups[1].owner, "alice");
  EXPECT_EQ(groups[1].member_count, 1);
  EXPECT_EQ(groups[1].relation, Relation::kOwner);
}

TEST_F(StoreTest, JoinRequestsFlow) {
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
  EXPECT_EQ((*store_->ListGroups("alice"))[0].member_count, 2);
  // A rejected user may ask again, and is pending again.
  EXPECT_TRUE(store_->RequestJoin("carol", "g", kT0).ok());
  EXPECT_EQ(RelationOf("carol", "g"), Relation::kPending);
}

TEST_F(StoreTest, LeaveHandsOwnershipToOldestMemberThenDeletes) {
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
  EXPECT_TRUE(store_->ListGroups("bob")->empty());
  // The id is free again.
  EXPECT_TRUE(store_->CreateGroup("carol", "g", kT0).ok());
}

TEST_F(StoreTest, FilesNeedMembership) {
  MakeGroupWithBob();
  FileRecord f = MakeFile("movie");
  EXPECT_EQ(store_->AddFile("carol", "g", f, kT0).status().code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(store_->AddFile("alice", "nope", f, kT0).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(store_->ListFiles("carol", "g", kT0).status().code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(store_->GetFile("carol", "g", "movie").status().code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(store_->GetPeers("carol", "g", "movie", kT0).status().code(),
            StatusCode::kPermissionDenied);
}

TEST_F(StoreTest, AddListAndGetFiles) {
  MakeGroupWithBob();
  FileRecord f = MakeFile("movie");
  EXPECT_TRUE(*store_->AddFile("alice", "g", f, kT0));
  EXPECT_FALSE(*store_->AddFile("bob", "g", f, kT0));  // same content: one more sharer
  // The same SHA1 with other piece hashes: refused, the first stands.
  ASSERT_FALSE(f.piece_sha1.empty());
  FileRecord bogus = f;
  bogus.piece_sha1[0] = std::string(40, '0');
  EXPECT_EQ(store_->AddFile("bob", "g", bogus, kT0).status().code(),
            StatusCode::kFailedPrecondition);
  EXPECT_EQ(store_->AddFile("bob", "g", MakeFile("movie", 'b'), kT0).status().code(),
            StatusCode::kAlreadyExists);
  auto got = store_->GetFile("bob", "g", "movie");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->size, f.size);
  EXPECT_EQ(got->piece_size, f.piece_size);
  EXPECT_EQ(got->sha1, f.sha1);
  EXPECT_EQ(got->piece_sha1, f.piece_sha1);
  EXPECT_EQ(store_->GetFile("bob", "g", "nope").status().code(), StatusCode::kNotFound);

  // Nobody online yet.
  auto files = *store_->ListFiles("alice", "g", kT0);
  ASSERT_EQ(files.size(), 1u);
  EXPECT_EQ(files[0].online_seeders, 0);
  Online("alice", "127.0.0.1:1001");
  files = *store_->ListFiles("alice", "g", kT0);
  EXPECT_EQ(files[0].online_seeders, 1);
  // Sessions expire: the share goes offline but stays registered.
  files = *store_->ListFiles("alice", "g", kT0 + absl::Minutes(5));
  ASSERT_EQ(files.size(), 1u);
  EXPECT_EQ(files[0].online_seeders, 0);
}

TEST_F(StoreTest, PeersAreOnlineHoldersOtherThanTheCaller) {
  MakeGroupWithBob();
  ASSERT_TRUE(store_->RequestJoin("carol", "g", kT0).ok());
  ASSERT_TRUE(store_->AnswerRequest("alice", "g", "carol", true, kT0).ok());
  ASSERT_TRUE(store_->AddFile("alice", "g", MakeFile("movie"), kT0).ok());
  EXPECT_EQ(store_->AddHolder("bob", "g", "nope", false).code(), StatusCode::kNotFound);
  ASSERT_TRUE(store_->AddHolder("bob", "g", "movie", false).ok());
  Online("alice", "127.0.0.1:1001");
  Online("bob", "127.0.0.1:1002");

  auto peers = *store_->GetPeers("carol", "g", "movie", kT0);
  ASSERT_EQ(peers.size(), 2u);
  EXPECT_EQ(peers[0].user_id, "alice");
  EXPECT_TRUE(peers[0].complete);
  EXPECT_EQ(peers[0].address, "127.0.0.1:1001");
  EXPECT_EQ(peers[1].user_id, "bob");
  EXPECT_FALSE(peers[1].complete);
  auto files = *store_->ListFiles("carol", "g", kT0);
  EXPECT_EQ(files[0].online_seeders, 1);
  EXPECT_EQ(files[0].online_partial, 1);

  peers = *store_->GetPeers("alice", "g", "movie", kT0);
  ASSERT_EQ(peers.size(), 1u);
  EXPECT_EQ(peers[0].user_id, "bob");

  // Completing upgrades; a later partial announce does not downgrade.
  ASSERT_TRUE(store_->AddHolder("bob", "g", "movie", true).ok());
  ASSERT_TRUE(store_->AddHolder("bob", "g", "movie", false).ok());
  EXPECT_TRUE((*store_->GetPeers("carol", "g", "movie", kT0))[1].complete);

  // Logging out takes a holder offline.
  ASSERT_TRUE(store_->DeleteSession("tok-bob").ok());
  EXPECT_EQ(store_->GetPeers("carol", "g", "movie", kT0)->size(), 1u);
}

TEST_F(StoreTest, StopShareForgetsFileWithItsLastSharer) {
  MakeGroupWithBob();
  ASSERT_TRUE(store_->AddFile("alice", "g", MakeFile("movie"), kT0).ok());
  ASSERT_TRUE(store_->AddFile("bob", "g", MakeFile("movie"), kT0).ok());
  EXPECT_EQ(store_->RemoveShare("alice", "g", "nope").code(), StatusCode::kNotFound);
  ASSERT_TRUE(store_->RemoveShare("alice", "g", "movie").ok());
  EXPECT_EQ(store_->RemoveShare("alice", "g", "movie").code(), StatusCode::kNotFound);
  EXPECT_EQ(store_->ListFiles("alice", "g", kT0)->size(), 1u);
  ASSERT_TRUE(store_->RemoveShare("bob", "g", "movie").ok());
  EXPECT_TRUE(store_->ListFiles("alice", "g", kT0)->empty());
}

TEST_F(StoreTest, LeavingDropsTheLeaversShares) {
  MakeGroupWithBob();
  ASSERT_TRUE(store_->AddFile("bob", "g", MakeFile("movie"), kT0).ok());
  ASSERT_TRUE(store_->AddFile("alice", "g", MakeFile("song"), kT0).ok());
  ASSERT_TRUE(store_->AddFile("bob", "g", MakeFile("song"), kT0).ok());
  ASSERT_TRUE(store_->LeaveGroup("bob", "g").ok());
  auto files = *store_->ListFiles("alice", "g", kT0);
  ASSERT_EQ(files.size(), 1u);
  EXPECT_EQ(files[0].name, "song");
  EXPECT_TRUE(store_->ListShares("bob")->empty());
}

TEST_F(StoreTest, ListSharesCoversEveryGroup) {
  MakeGroupWithBob();
  ASSERT_TRUE(store_->CreateGroup("bob", "h", kT0).ok());
  ASSERT_TRUE(store_->AddFile("bob", "g", MakeFile("movie"), kT0).ok());
  ASSERT_TRUE(store_->AddFile("bob", "h", MakeFile("song", 'c'), kT0).ok());
  auto shares = *store_->ListShares("bob");
  ASSERT_EQ(shares.size(), 2u);
  EXPECT_EQ(shares[0].group_id, "g");
  EXPECT_EQ(shares[0].file_name, "movie");
  EXPECT_TRUE(shares[0].complete);
  EXPECT_EQ(shares[1].group_id, "h");
  EXPECT_EQ(shares[1].sha1, std::string(40, 'c'));
}

TEST_F(StoreTest, MetaKeepsTheFirstValue) {
  EXPECT_EQ(*store_->GetOrPutMeta("k", "one"), "one");
  EXPECT_EQ(*store_->GetOrPutMeta("k", "two"), "one");
  std::string binary("\x00\xff\x01", 3);
  EXPECT_EQ(*store_->GetOrPutMeta("b", binary), binary);
}

TEST_F(StoreTest, ReopenedStoreHasEverything) {
  MakeGroupWithBob();
  ASSERT_TRUE(store_->RequestJoin("carol", "g", kT0).ok());
  ASSERT_TRUE(store_->AddFile("alice", "g", MakeFile("movie"), kT0).ok());
  Online("alice", "127.0.0.1:1001");
  Reopen();
  EXPECT_EQ(*store_->GetPasswordHash("bob"), "hash-bob");
  EXPECT_EQ(RelationOf("bob", "g"), Relation::kMember);
  EXPECT_EQ(store_->ListRequests("alice", "g")->size(), 1u);
  EXPECT_EQ(store_->GetFile("bob", "g", "movie")->piece_sha1.size(), 3u);
  EXPECT_TRUE(store_->GetSession("tok-alice", kT0).ok());
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

TEST(SqliteStore, UnopenablePathIsAnError) {
  auto store = OpenSqliteStore("/nonexistent-dir/x/tracker.db");
  EXPECT_FALSE(store.ok());
}

}  // namespace
}  // namespace groupshare::tracker
