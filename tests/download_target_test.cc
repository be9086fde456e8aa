// A download's resume and finish alone, on real files in a temporary
// folder and a real state folder.
#include "services/peer/download_target.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "core/crypto.h"
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
    file_.set_size(content_.size());
    file_.set_piece_size(kPiece);
    file_.set_sha1(HexEncode(Sha1Of(content_)));
    for (size_t at = 0; at < content_.size(); at += kPiece) {
      file_.add_piece_sha1(HexEncode(Sha1Of(Piece(static_cast<uint32_t>(at / kPiece)))));
    }
    state_ = *ClientState::Open(dir_.File("state.db"));
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

TEST_F(DownloadTargetTest, AWholeFileThatDoesNotCheckOutIsDroppedWithItsRecord) {
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

}  // namespace
}  // namespace groupshare::peer
