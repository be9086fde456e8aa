// The download's piece writer alone, over a part file in memory.
#include "services/peer/piece_writer.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <future>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"

namespace groupshare::peer {
namespace {

// A part file in memory, whose writes can be made to fail; counts them.
class MemoryPartFile final : public PartFile {
 public:
  explicit MemoryPartFile(size_t size) : bytes(size, '\0') {}
  absl::Status Write(uint64_t offset, absl::Span<const absl::string_view> parts) override {
    if (full) return absl::ResourceExhaustedError("No space left on device");
    ++writes;
    for (absl::string_view part : parts) {
      std::memcpy(&bytes[offset], part.data(), part.size());
      offset += part.size();
    }
    return absl::OkStatus();
  }
  absl::Status Read(uint64_t offset, char* buf, size_t size) override {
    ++reads;
    std::memcpy(buf, &bytes[offset], size);
    return absl::OkStatus();
  }
  absl::Status Sync() override { return absl::OkStatus(); }
  absl::Status RenameTo(const std::string&) override { return absl::OkStatus(); }

  std::string bytes;
  bool full = false;
  int writes = 0;
  int reads = 0;
};

// A part file whose reads wait until the test lets them go on.
class HeldReads final : public PartFile {
 public:
  explicit HeldReads(PartFile* file) : file_(file) {}
  absl::Status Write(uint64_t offset, absl::Span<const absl::string_view> parts) override {
    return file_->Write(offset, parts);
  }
  absl::Status Read(uint64_t offset, char* buf, size_t size) override {
    reading.Notify();
    release.WaitForNotification();
    return file_->Read(offset, buf, size);
  }
  absl::Status Sync() override { return file_->Sync(); }
  absl::Status RenameTo(const std::string& path) override { return file_->RenameTo(path); }

  absl::Notification reading;
  absl::Notification release;

 private:
  PartFile* const file_;
};

class PieceWriterTest : public ::testing::Test {
 protected:
  PieceWriterTest() {
    for (size_t i = 0; i < content_.size(); ++i) content_[i] = static_cast<char>(i * 31 + 7);
    for (uint32_t i = 0; i < layout_.PieceCount(); ++i) expected_.push_back(Sha1Of(Piece(i)));
  }
  std::string Piece(uint32_t i) const {
    return content_.substr(layout_.PieceOffset(i), layout_.PieceLength(i));
  }
  // The piece in two parts, as it may arrive.
  absl::Status Write(PieceWriter& writer, uint32_t i, std::string bytes) {
    const absl::string_view all(bytes);
    const std::vector<absl::string_view> parts = {all.substr(0, 100), all.substr(100)};
    return writer.Write(i, parts);
  }
  // Piece i (`bytes`, or its right bytes) to the hasher's AddIfNext.
  std::optional<Sha1Digest> AddIfNext(WholeFileHasher& hasher, uint32_t i) {
    return AddIfNext(hasher, i, Piece(i));
  }
  std::optional<Sha1Digest> AddIfNext(WholeFileHasher& hasher, uint32_t i,
                                      const std::string& bytes) {
    const std::vector<absl::string_view> parts = {bytes};
    return hasher.AddIfNext(i, parts, expected_[i]);
  }

  std::string content_ = std::string(3 * 1024 + 500, '\0');  // the last piece short
  const FileLayout layout_{content_.size(), 1024};
  std::vector<Sha1Digest> expected_;
  MemoryPartFile file_{content_.size()};
};

TEST_F(PieceWriterTest, PiecesAreCheckedWrittenAndMakeTheWholeFilesSha1InAnyOrder) {
  PieceWriter writer(layout_, expected_, &file_);
  for (uint32_t i : {2u, 0u, 3u, 1u}) EXPECT_TRUE(Write(writer, i, Piece(i)).ok()) << i;
  EXPECT_TRUE(Write(writer, 3, Piece(3)).ok());  // a second copy: hashed once
  EXPECT_TRUE(file_.bytes == content_);
  EXPECT_EQ(*writer.WholeFileSha1(), HexEncode(Sha1Of(content_)));
}

// Piece 0 is checked in the whole file's pass (it is next in file order),
// piece 2 on its own.
TEST_F(PieceWriterTest, ACorruptPieceIsNotWrittenAndAFailedWriteSaysWhy) {
  for (uint32_t index : {0u, 2u}) {
    SCOPED_TRACE(index);
    MemoryPartFile file(content_.size());
    PieceWriter writer(layout_, expected_, &file);
    std::string bad = Piece(index);
    bad[5] ^= 1;
    EXPECT_EQ(Write(writer, index, bad).code(), absl::StatusCode::kDataLoss);
    EXPECT_EQ(file.writes, 0);
    file.full = true;
    EXPECT_EQ(Write(writer, index, Piece(index)).code(), absl::StatusCode::kResourceExhausted);
    EXPECT_EQ(writer.WholeFileSha1().status().code(), absl::StatusCode::kFailedPrecondition);
    // The piece comes again, and the others: the file and its SHA1 are right.
    file.full = false;
    for (uint32_t i : {0u, 1u, 2u, 3u}) EXPECT_TRUE(Write(writer, i, Piece(i)).ok()) << i;
    EXPECT_TRUE(file.bytes == content_);
    EXPECT_EQ(*writer.WholeFileSha1(), HexEncode(Sha1Of(content_)));
  }
}

TEST_F(PieceWriterTest, PiecesKeptOnDiskAreCheckedAndCount) {
  file_.bytes = content_;
  file_.bytes[layout_.PieceOffset(2) + 7] ^= 1;  // piece 2 went bad on disk
  PieceWriter writer(layout_, expected_, &file_);
  EXPECT_TRUE(writer.Kept(0));
  EXPECT_TRUE(writer.Kept(1));
  EXPECT_FALSE(writer.Kept(2));
  EXPECT_TRUE(writer.Kept(3));
  EXPECT_TRUE(Write(writer, 2, Piece(2)).ok());
  EXPECT_EQ(*writer.WholeFileSha1(), HexEncode(Sha1Of(content_)));
  // Pieces 0 and 1 joined the whole file's SHA1 as they were checked;
  // piece 3, kept after the gap, was read again in its turn.
  EXPECT_EQ(writer.pieces_read_back(), 1u);
}

TEST_F(PieceWriterTest, PiecesNearTheirTurnAreHashedWithoutReadingThemBack) {
  file_.bytes = content_;  // written, as the writer does before it adds
  WholeFileHasher hasher(layout_, &file_, /*ahead=*/2);
  auto add = [&](uint32_t i) {
    const std::string bytes = Piece(i);
    const std::vector<absl::string_view> parts = {bytes};
    hasher.Add(i, parts);
  };
  add(1);  // one after its turn: a copy waits in memory
  add(3);  // three after: read back when its turn comes
  add(0);  // its turn: hashed, and piece 1 from its copy
  add(2);  // its turn: hashed, and piece 3 from the file
  EXPECT_EQ(hasher.read_back(), 1u);
  EXPECT_EQ(file_.reads, 1);
  EXPECT_EQ(*hasher.Finish(), HexEncode(Sha1Of(content_)));
}

TEST_F(PieceWriterTest, OnlyThePieceNextInOrderIsCheckedInTheWholeFilesPass) {
  WholeFileHasher hasher(layout_, &file_);
  EXPECT_EQ(AddIfNext(hasher, 1), std::nullopt);  // not its turn: the caller checks it
  std::string bad = Piece(0);
  bad[0] ^= 1;
  EXPECT_EQ(AddIfNext(hasher, 0, bad), Sha1Of(bad));  // checked, and left out
  EXPECT_EQ(AddIfNext(hasher, 0), expected_[0]);
  EXPECT_EQ(AddIfNext(hasher, 0), std::nullopt);  // in already
  for (uint32_t i : {1u, 2u, 3u}) EXPECT_EQ(AddIfNext(hasher, i), expected_[i]) << i;
  EXPECT_EQ(*hasher.Finish(), HexEncode(Sha1Of(content_)));
}

TEST_F(PieceWriterTest, ThePieceRightAfterTheOneBeingHashedWaitsForItsTurn) {
  file_.bytes = content_;
  HeldReads held(&file_);
  WholeFileHasher hasher(layout_, &held, WholeFileHasher::kDefaultAhead, absl::Hours(1));
  hasher.Add(1, {});  // on disk already: read back in its turn
  // Piece 0 takes the turn, and then reads piece 1 back, which is held.
  std::thread first([&] { EXPECT_EQ(AddIfNext(hasher, 0), expected_[0]); });
  held.reading.WaitForNotification();
  auto second = std::async(std::launch::async, [&] { return AddIfNext(hasher, 2); });
  EXPECT_EQ(second.wait_for(std::chrono::milliseconds(200)), std::future_status::timeout);
  held.release.Notify();
  EXPECT_EQ(second.get(), expected_[2]);  // hashed in its turn, in one pass
  first.join();
  EXPECT_EQ(AddIfNext(hasher, 3), expected_[3]);
  const absl::StatusOr<std::string> whole = hasher.Finish();
  ASSERT_TRUE(whole.ok()) << whole.status();
  EXPECT_EQ(*whole, HexEncode(Sha1Of(content_)));
}

}  // namespace
}  // namespace groupshare::peer
