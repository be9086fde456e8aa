// A download's resume and finish alone, on real files in a temporary
// folder and a real state folder.
#include "services/peer/download_target.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "core/sqlite.h"
#include "tests/testing/file_description.h"
#include "tests/testing/temp_dir.h"

namespace groupshare::peer {
namespace {

constexpr uint32_t kPiece = 64 << 10;

class DownloadTargetTest : public ::testing::Test {
 protected:
  DownloadTargetTest() {
    content_ = std::string(3 * kPiece + 1000, '\0');
    for (size_t i = 0; i < content_.size(); ++i) content_[i] = static_cast<char>((i * 7919) >> 3);
    file_.set_name("f.bin");
    Describe();
    state_ = *ClientState::Open(dir_.File("state.db"));
  }

  // The hashes of content_, as the tracker announces them: with its SHA1
  // chain, or `unchained`, as older clients shared files.
  void Describe(bool unchained = false) {
    file_ = testing::DescribeFile(file_.name(), content_, kPiece, unchained);
  }

  std::string Piece(uint32_t i) const { return content_.substr(size_t{i} * kPiece, kPiece); }
  DownloadTarget::Spec Spec() const { return {"bob", "g", file_, dir_.File("out.bin")}; }
  absl::StatusOr<std::unique_ptr<DownloadTarget>> Resume(Bitfield* have) {
    return DownloadTarget::Resume(Spec(), state_.get(), &env_, have);
  }
  void Write(DownloadTarget& target, uint32_t i) {
    const std::string piece = Piece(i);
    const absl::string_view parts[] = {piece};
    ASSERT_TRUE(target.writer().Write(i, parts).ok()) << i;
  }
  const ShareRecord* Record() {
    records_ = *state_->List("bob");
    return records_.empty() ? nullptr : &records_[0];
  }

  testing::TempDir dir_;
  std::string content_;
  tracker::v1::FileInfo file_;
  std::unique_ptr<ClientState> state_;
  SystemDownloadEnv env_;
  std::vector<ShareRecord> records_;
};

TEST_F(DownloadTargetTest, AResumeKeepsOnlyTheRecordedPiecesThatStillCheckOut) {
  Bitfield have;
  auto target = Resume(&have);
  ASSERT_TRUE(target.ok()) << target.status();
  EXPECT_EQ(have.Count(), 0u);
  ASSERT_NE(Record(), nullptr);
  EXPECT_FALSE(Record()->complete);
  Write(**target, 0);
  Write(**target, 2);
  Write(**target, 3);
  Bitfield written(4);
  for (uint32_t i : {0, 2, 3}) written.Set(i, true);
  ASSERT_TRUE(state_->UpdateHave("bob", "g", file_.sha1(), written.ToBytes()).ok());
  target->reset();  // a crash, as far as the part file knows
  // Piece 2 changes on disk meanwhile.
  const int fd = open((dir_.File("out.bin") + ".part").c_str(), O_WRONLY);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(pwrite(fd, "x", 1, 2 * kPiece + 5), 1);
  close(fd);

  target = Resume(&have);
  ASSERT_TRUE(target.ok()) << target.status();
  EXPECT_TRUE(have.Get(0));
  EXPECT_FALSE(have.Get(1));
  EXPECT_FALSE(have.Get(2));
  EXPECT_TRUE(have.Get(3));
  EXPECT_EQ(Record()->have, have.ToBytes());
  // The record keeps the chain, to share the file again with it.
  EXPECT_EQ(Record()->sha1_chain,
            std::vector<std::string>(file_.sha1_chain().begin(), file_.sha1_chain().end()));
  EXPECT_EQ(Record()->sha1_chain.size(), 3u);
}

// The file was shared again after an edit (a new SHA1, the same name): a
// download of it into the place of the earlier content's takes over that
// part file, keeps the pieces the edit left alone, and forgets the earlier
// record. A part file of another file of the group is still refused.
TEST_F(DownloadTargetTest, ADownloadOfAnEditedFileTakesOverThePartFileOfItsEarlierContent) {
  Bitfield have;
  auto target = Resume(&have);
  ASSERT_TRUE(target.ok()) << target.status();
  for (uint32_t i = 0; i < 3; ++i) Write(**target, i);
  Bitfield written(4);
  for (uint32_t i = 0; i < 3; ++i) written.Set(i, true);
  ASSERT_TRUE(state_->UpdateHave("bob", "g", file_.sha1(), written.ToBytes()).ok());
  target->reset();
  content_[kPiece + 5] ^= 1;  // piece 1 is edited
  Describe();

  target = Resume(&have);
  ASSERT_TRUE(target.ok()) << target.status();
  EXPECT_TRUE(have.Get(0));
  EXPECT_FALSE(have.Get(1));
  EXPECT_TRUE(have.Get(2));
  EXPECT_FALSE(have.Get(3));
  ASSERT_EQ(state_->List("bob")->size(), 1u);  // the earlier content's record is gone
  EXPECT_EQ(Record()->sha1, file_.sha1());
  EXPECT_EQ(Record()->have, have.ToBytes());
  Write(**target, 1);
  Write(**target, 3);
  ASSERT_TRUE((*target)->Finish(state_.get()).ok());
  EXPECT_TRUE(testing::ReadFile(dir_.File("out.bin")) == content_);
  unlink(dir_.File("out.bin").c_str());
  ASSERT_TRUE(state_->Remove("bob", "g", file_.sha1()).ok());

  target = Resume(&have);  // a new part file, recorded
  ASSERT_TRUE(target.ok()) << target.status();
  target->reset();
  file_.set_name("other.bin");
  content_[5] ^= 1;
  Describe();
  EXPECT_EQ(Resume(&have).status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(DownloadTargetTest, AFinishedFileIsRenamedIntoPlaceAndRecordedComplete) {
  Bitfield have;
  auto target = Resume(&have);
  ASSERT_TRUE(target.ok()) << target.status();
  for (uint32_t i = 0; i < 4; ++i) Write(**target, i);
  ASSERT_TRUE((*target)->Finish(state_.get()).ok());
  EXPECT_TRUE(testing::ReadFile(dir_.File("out.bin")) == content_);
  EXPECT_NE(access((dir_.File("out.bin") + ".part").c_str(), F_OK), 0);
  ASSERT_NE(Record(), nullptr);
  EXPECT_TRUE(Record()->complete);
  EXPECT_NE(Record()->mtime_ns, 0);
}

// Registered without a chain, a file's piece hashes and its SHA1 can
// disagree; with one, its last piece would not check out.
TEST_F(DownloadTargetTest, AWholeFileThatDoesNotCheckOutIsDroppedWithItsRecord) {
  Describe(/*unchained=*/true);
  file_.set_sha1(std::string(40, 'e'));  // every piece right, the whole wrong
  Bitfield have;
  auto target = Resume(&have);
  ASSERT_TRUE(target.ok()) << target.status();
  for (uint32_t i = 0; i < 4; ++i) Write(**target, i);
  const absl::Status finished = (*target)->Finish(state_.get());
  EXPECT_EQ(finished.code(), absl::StatusCode::kDataLoss) << finished;
  EXPECT_NE(access(dir_.File("out.bin").c_str(), F_OK), 0);
  EXPECT_NE(access((dir_.File("out.bin") + ".part").c_str(), F_OK), 0);
  EXPECT_EQ(Record(), nullptr);
}

TEST_F(DownloadTargetTest, AnExistingDestinationOrABadPieceSizeIsRefused) {
  Bitfield have;
  testing::WriteFile(dir_.File("out.bin"), "mine");
  EXPECT_EQ(Resume(&have).status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(testing::ReadFile(dir_.File("out.bin")), "mine");
  unlink(dir_.File("out.bin").c_str());
  file_.set_piece_size(0);
  EXPECT_EQ(Resume(&have).status().code(), absl::StatusCode::kInvalidArgument);
}

// A state folder of a client from before the chain: its records are read,
// without one, and a record put since keeps its chain.
TEST(ClientStateTest, AnOlderClientsRecordsAreReadAndNewOnesKeepTheirChain) {
  testing::TempDir dir;
  {
    auto db = sqlite::Database::Open(dir.File("state.db"), false);
    ASSERT_TRUE(db.ok()) << db.status();
    ASSERT_TRUE((*db)->Exec(R"sql(
CREATE TABLE shares (user_id TEXT NOT NULL, group_id TEXT NOT NULL, name TEXT NOT NULL,
  sha1 TEXT NOT NULL, size INTEGER NOT NULL, piece_size INTEGER NOT NULL,
  piece_sha1 BLOB NOT NULL, path TEXT NOT NULL, complete INTEGER NOT NULL,
  have BLOB NOT NULL, mtime_ns INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (user_id, group_id, sha1));
INSERT INTO shares VALUES ('bob', 'g', 'old.bin', 'aa', 1, 16384, x'', '/old.bin', 1, x'', 5);
PRAGMA user_version = 1;
)sql").ok());
  }
  auto state = ClientState::Open(dir.File("state.db"));
  ASSERT_TRUE(state.ok()) << state.status();
  ShareRecord fresh{"bob", "g", "new.bin", "bb", 1, 16384, {}, "/new.bin", true, "", 7,
                    {std::string(40, 'c')}};
  ASSERT_TRUE((*state)->Put(fresh).ok());
  auto records = (*state)->List("bob");
  ASSERT_TRUE(records.ok()) << records.status();
  ASSERT_EQ(records->size(), 2u);
  EXPECT_EQ((*records)[0].name, "new.bin");
  EXPECT_EQ((*records)[0].sha1_chain, fresh.sha1_chain);
  EXPECT_EQ((*records)[1].name, "old.bin");
  EXPECT_EQ((*records)[1].mtime_ns, 5);
  EXPECT_TRUE((*records)[1].sha1_chain.empty());
}

}  // namespace
}  // namespace groupshare::peer
