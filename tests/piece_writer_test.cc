// The download's piece writer alone, over a part file in memory.
#include "services/peer/piece_writer.h"

#include <gtest/gtest.h>

#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "core/sha1_stream.h"

namespace groupshare::peer {
namespace {

// A part file in memory, whose writes can be made to fail; counts them.
class MemoryPartFile final : public PartFile {
 public:
  explicit MemoryPartFile(size_t size) : bytes(size, '\0') {}
  absl::Status Write(uint64_t offset, absl::Span<const absl::string_view> parts) override {
    if (full) return absl::ResourceExhaustedError("No space left on device");
    ++writes;
    if (parts.size() == 1 && reinterpret_cast<uintptr_t>(parts[0].data()) % kDirectIoBlock == 0) {
      ++aligned_writes;
    }
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
  absl::Status CheckStillAtPath() override { return absl::OkStatus(); }

  std::string bytes;
  bool full = false;
  int writes = 0;
  int aligned_writes = 0;  // of one part, from memory aligned for direct I/O
  int reads = 0;
};

// A door one thread opens once and others wait at. On std's mutex, whose
// ordering ThreadSanitizer sees (it does not see into Debian's Abseil).
class Door {
 public:
  void Open() {
    std::lock_guard<std::mutex> lock(mu_);
    open_ = true;
    opened_.notify_all();
  }
  void Wait() {
    std::unique_lock<std::mutex> lock(mu_);
    opened_.wait(lock, [this] { return open_; });
  }

 private:
  std::mutex mu_;
  std::condition_variable opened_;
  bool open_ = false;
};

// A part file whose reads wait until the test lets them go on.
class HeldReads final : public PartFile {
 public:
  explicit HeldReads(PartFile* file) : file_(file) {}
  absl::Status Write(uint64_t offset, absl::Span<const absl::string_view> parts) override {
    return file_->Write(offset, parts);
  }
  absl::Status Read(uint64_t offset, char* buf, size_t size) override {
    reading.Open();
    release.Wait();
    return file_->Read(offset, buf, size);
  }
  absl::Status Sync() override { return file_->Sync(); }
  absl::Status RenameTo(const std::string& path) override { return file_->RenameTo(path); }
  absl::Status CheckStillAtPath() override { return file_->CheckStillAtPath(); }

  Door reading;
  Door release;

 private:
  PartFile* const file_;
};

class PieceWriterTest : public ::testing::Test {
 protected:
  PieceWriterTest() {
    for (size_t i = 0; i < content_.size(); ++i) {
      content_[i] = static_cast<char>((i * 31 + 7) ^ (i >> 8));  // no two pieces alike
    }
    for (uint32_t i = 0; i < layout_.PieceCount(); ++i) expected_.push_back(Sha1Of(Piece(i)));
  }
  std::string Piece(uint32_t i) const {
    return content_.substr(layout_.PieceOffset(i), layout_.PieceLength(i));
  }
  // What a file shared without its SHA1 chain is checked against.
  PieceWriter::Expected Unchained() const { return {expected_, {}, Sha1Of(content_)}; }
  // And with it.
  PieceWriter::Expected Chained() const {
    PieceWriter::Expected out = Unchained();
    Sha1Stream whole;
    for (uint32_t i = 0; i + 1 < layout_.PieceCount(); ++i) {
      whole.Update(Piece(i));
      out.chain.push_back(whole.Chain());
    }
    return out;
  }
  // The piece in two parts, as it may arrive.
  absl::Status Write(PieceWriter& writer, uint32_t i, std::string bytes) {
    const absl::string_view all(bytes);
    const std::vector<absl::string_view> parts = {all.substr(0, 100), all.substr(100)};
    return writer.Write(i, parts);
  }
  // Piece i (`bytes`, or its right bytes) to the hasher's Check, at time
  // `now`; the SHA1 it is hashed to goes to *sha1. Returns whether it waits.
  bool Check(WholeFileHasher& hasher, uint32_t i, std::optional<Sha1Digest>* sha1,
             absl::Time now = absl::UnixEpoch(), bool may_wait = true) {
    return Check(hasher, i, Piece(i), sha1, now, may_wait);
  }
  bool Check(WholeFileHasher& hasher, uint32_t i, std::string bytes,
             std::optional<Sha1Digest>* sha1, absl::Time now = absl::UnixEpoch(),
             bool may_wait = true) {
    auto kept = std::make_shared<std::string>(std::move(bytes));
    WholeFileHasher::Unchecked piece{i, {*kept}, expected_[i], nullptr, nullptr};
    piece.hashed = [sha1, kept](const Sha1Digest& digest, bool) {
      EXPECT_FALSE(sha1->has_value()) << "hashed twice";
      *sha1 = digest;
    };
    return hasher.Check(std::move(piece), now, may_wait);
  }

  std::string content_ = std::string(3 * 1024 + 500, '\0');  // the last piece short
  const FileLayout layout_{content_.size(), 1024};
  std::vector<Sha1Digest> expected_;
  MemoryPartFile file_{content_.size()};
};

TEST_F(PieceWriterTest, PiecesAreCheckedWrittenAndMakeTheWholeFilesSha1InAnyOrder) {
  PieceWriter writer(layout_, Unchained(), &file_);
  for (uint32_t i : {2u, 0u, 3u, 1u}) EXPECT_TRUE(Write(writer, i, Piece(i)).ok()) << i;
  EXPECT_TRUE(Write(writer, 3, Piece(3)).ok());  // a second copy: hashed once
  EXPECT_TRUE(file_.bytes == content_);
  EXPECT_EQ(*writer.WholeFileSha1(), HexEncode(Sha1Of(content_)));
}

// With the chain, each piece is checked alone in one pass, in any order: none
// waits for its turn and none is read back, and the chain's end is the
// whole file's SHA1.
TEST_F(PieceWriterTest, WithTheChainEachPieceIsCheckedAloneAndNoneWaitsOrIsReadBack) {
  PieceWriter writer(layout_, Chained(), &file_);
  std::vector<absl::Status> verdicts;
  for (uint32_t i : {3u, 1u, 2u}) {
    auto kept = std::make_shared<std::string>(Piece(i));
    EXPECT_FALSE(writer.Write(
        i, {*kept}, [&verdicts, kept](absl::Status status) { verdicts.push_back(status); },
        nullptr));
  }
  ASSERT_EQ(verdicts.size(), 3u);  // each decided at once
  for (const absl::Status& v : verdicts) EXPECT_TRUE(v.ok()) << v;
  EXPECT_EQ(writer.WholeFileSha1().status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(Write(writer, 0, Piece(0)).ok());
  EXPECT_TRUE(file_.bytes == content_);
  EXPECT_EQ(*writer.WholeFileSha1(), HexEncode(Sha1Of(content_)));
  EXPECT_EQ(file_.reads, 0);
  EXPECT_EQ(writer.pieces_read_back(), 0u);
}

// The chain decides, at both ends of a piece: a piece changed, one from
// another place in the file, and the last piece with the wrong file's SHA1
// are refused and not written.
TEST_F(PieceWriterTest, WithTheChainAPieceThatDoesNotReachItsEndIsRefused) {
  PieceWriter writer(layout_, Chained(), &file_);
  std::string bad = Piece(1);
  bad[700] ^= 1;
  EXPECT_EQ(Write(writer, 1, bad).code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(Write(writer, 2, Piece(1)).code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(Write(writer, 2, Piece(2).substr(1)).code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(Write(writer, 2, Piece(2) + "x").code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(file_.writes, 0);
  PieceWriter::Expected other = Chained();
  other.whole[0] ^= 1;
  PieceWriter other_end(layout_, other, &file_);
  EXPECT_EQ(Write(other_end, 3, Piece(3)).code(), absl::StatusCode::kDataLoss);
  EXPECT_TRUE(Write(other_end, 2, Piece(2)).ok());
  EXPECT_EQ(file_.writes, 1);
}

TEST_F(PieceWriterTest, WithTheChainPiecesKeptOnDiskAreCheckedAndCount) {
  file_.bytes = content_;
  file_.bytes[layout_.PieceOffset(3) + 7] ^= 1;  // the last piece went bad on disk
  PieceWriter writer(layout_, Chained(), &file_);
  for (uint32_t i : {0u, 1u, 2u}) EXPECT_TRUE(writer.Kept(i)) << i;
  EXPECT_FALSE(writer.Kept(3));
  EXPECT_EQ(writer.WholeFileSha1().status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(Write(writer, 3, Piece(3)).ok());
  EXPECT_EQ(*writer.WholeFileSha1(), HexEncode(Sha1Of(content_)));
}

// Piece 0 is checked in the whole file's pass (it is next in file order),
// piece 2 on its own.
TEST_F(PieceWriterTest, ACorruptPieceIsNotWrittenAndAFailedWriteSaysWhy) {
  for (uint32_t index : {0u, 2u}) {
    SCOPED_TRACE(index);
    MemoryPartFile file(content_.size());
    PieceWriter writer(layout_, Unchained(), &file);
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
  PieceWriter writer(layout_, Unchained(), &file_);
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

TEST_F(PieceWriterTest, APieceCheckedInItsTurnIsTakenInAndOneCheckedAloneIsNot) {
  WholeFileHasher hasher(layout_, &file_);
  std::optional<Sha1Digest> sha1[5];
  // Not its turn, and not to wait: hashed alone, left for the caller to add.
  EXPECT_FALSE(Check(hasher, 1, &sha1[0], absl::UnixEpoch(), /*may_wait=*/false));
  EXPECT_EQ(sha1[0], expected_[1]);
  std::string bad = Piece(0);
  bad[0] ^= 1;
  EXPECT_FALSE(Check(hasher, 0, bad, &sha1[1]));  // hashed in its turn, and left out
  EXPECT_EQ(sha1[1], Sha1Of(bad));
  EXPECT_FALSE(Check(hasher, 0, &sha1[2]));  // taken in
  EXPECT_EQ(sha1[2], expected_[0]);
  EXPECT_EQ(hasher.Finish().status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_FALSE(Check(hasher, 0, &sha1[3]));  // in already: hashed alone
  EXPECT_EQ(sha1[3], expected_[0]);
  for (uint32_t i : {1u, 2u, 3u}) {
    std::optional<Sha1Digest> digest;
    EXPECT_FALSE(Check(hasher, i, &digest)) << i;
    EXPECT_EQ(digest, expected_[i]) << i;
  }
  EXPECT_EQ(*hasher.Finish(), HexEncode(Sha1Of(content_)));
  EXPECT_EQ(file_.reads, 0);
}

TEST_F(PieceWriterTest, PiecesAheadOfTheirTurnWaitForItAndAreCheckedInItsPass) {
  WholeFileHasher hasher(layout_, &file_, /*ahead=*/3);
  std::optional<Sha1Digest> sha1[4], bad_sha1;
  std::string bad = Piece(1);
  bad[3] ^= 1;
  EXPECT_TRUE(Check(hasher, 2, &sha1[2]));
  EXPECT_TRUE(Check(hasher, 1, bad, &bad_sha1));
  EXPECT_FALSE(Check(hasher, 3, &sha1[3]));  // too far ahead: hashed alone
  EXPECT_EQ(sha1[3], expected_[3]);
  EXPECT_FALSE(sha1[2].has_value());
  // Piece 0 comes: it is checked, and the corrupt piece 1 after it, left out.
  EXPECT_FALSE(Check(hasher, 0, &sha1[0]));
  EXPECT_EQ(sha1[0], expected_[0]);
  EXPECT_EQ(bad_sha1, Sha1Of(bad));
  EXPECT_FALSE(sha1[2].has_value());  // waits for piece 1 still
  // The right piece 1: checked in its turn, and piece 2 after it.
  EXPECT_FALSE(Check(hasher, 1, &sha1[1]));
  EXPECT_EQ(sha1[1], expected_[1]);
  EXPECT_EQ(sha1[2], expected_[2]);
  file_.bytes = content_;
  hasher.Add(3, {});  // piece 3, hashed alone and written, is read back
  EXPECT_EQ(*hasher.Finish(), HexEncode(Sha1Of(content_)));
  EXPECT_EQ(file_.reads, 1);
}

TEST_F(PieceWriterTest, APieceThatWaitsTooLongIsCheckedAlone) {
  WholeFileHasher hasher(layout_, &file_);
  const absl::Time start = absl::UnixEpoch();
  std::optional<Sha1Digest> sha1[3];
  EXPECT_TRUE(Check(hasher, 1, &sha1[1], start));
  EXPECT_TRUE(Check(hasher, 2, &sha1[2], start + absl::Milliseconds(10)));
  EXPECT_TRUE(hasher.CheckWaiting(start));  // none waits since before it
  EXPECT_FALSE(sha1[1].has_value());
  EXPECT_TRUE(hasher.CheckWaiting(start + absl::Milliseconds(5)));  // piece 2 waits still
  EXPECT_EQ(sha1[1], expected_[1]);
  EXPECT_FALSE(sha1[2].has_value());
  // Checked alone, piece 1 is in the whole file's SHA1 only once added.
  EXPECT_FALSE(Check(hasher, 0, &sha1[0]));
  EXPECT_FALSE(sha1[2].has_value());  // waits for piece 1
  const std::string one = Piece(1);
  const std::vector<absl::string_view> parts = {one};
  hasher.Add(1, parts);
  EXPECT_EQ(sha1[2], expected_[2]);
  EXPECT_FALSE(hasher.CheckWaiting(start + absl::Hours(1)));  // none waits
  std::optional<Sha1Digest> last;
  EXPECT_FALSE(Check(hasher, 3, &last));
  EXPECT_EQ(*hasher.Finish(), HexEncode(Sha1Of(content_)));
  EXPECT_EQ(file_.reads, 0);
}

TEST_F(PieceWriterTest, ASecondCopyOfAWaitingPieceIsCheckedAloneAndSoIsTheFirstInItsTurn) {
  WholeFileHasher hasher(layout_, &file_);
  std::optional<Sha1Digest> first, second, zero;
  EXPECT_TRUE(Check(hasher, 1, &first));
  EXPECT_FALSE(Check(hasher, 1, &second));  // a copy from another peer
  EXPECT_EQ(second, expected_[1]);
  const std::string one = Piece(1);
  const std::vector<absl::string_view> parts = {one};
  hasher.Add(1, parts);  // the copy, written
  EXPECT_FALSE(first.has_value());
  EXPECT_FALSE(Check(hasher, 0, &zero));
  EXPECT_EQ(first, expected_[1]);
  for (uint32_t i : {2u, 3u}) {
    std::optional<Sha1Digest> digest;
    EXPECT_FALSE(Check(hasher, i, &digest));
  }
  EXPECT_EQ(*hasher.Finish(), HexEncode(Sha1Of(content_)));
}

TEST_F(PieceWriterTest, APieceWaitsWithoutHoldingItsCallerWhileAnotherHashes) {
  file_.bytes = content_;
  HeldReads held(&file_);
  WholeFileHasher hasher(layout_, &held);
  hasher.Add(1, {});  // on disk already: read back in its turn
  // Piece 0 takes the turn, and then reads piece 1 back, which is held.
  std::optional<Sha1Digest> sha1[4];
  std::thread first([&] { EXPECT_FALSE(Check(hasher, 0, &sha1[0])); });
  held.reading.Wait();
  EXPECT_TRUE(Check(hasher, 2, &sha1[2]));  // returns at once
  EXPECT_FALSE(sha1[2].has_value());
  held.release.Open();
  first.join();
  EXPECT_EQ(sha1[2], expected_[2]);  // checked in the turn of piece 0's caller
  EXPECT_FALSE(Check(hasher, 3, &sha1[3]));
  const absl::StatusOr<std::string> whole = hasher.Finish();
  ASSERT_TRUE(whole.ok()) << whole.status();
  EXPECT_EQ(*whole, HexEncode(Sha1Of(content_)));
}

// The bytes gRPC received lie anywhere; a piece of whole blocks is copied
// to memory aligned for direct I/O as it is hashed, and written from there.
TEST_F(PieceWriterTest, APieceOfWholeBlocksIsWrittenFromTheCopyMadeAsItWasHashed) {
  std::string content(3 * kDirectIoBlock + 100, '\0');
  for (size_t i = 0; i < content.size(); ++i) content[i] = static_cast<char>(i * 13 + 1);
  const FileLayout layout{content.size(), kDirectIoBlock};
  std::vector<Sha1Digest> expected;
  for (uint32_t i = 0; i < layout.PieceCount(); ++i) {
    expected.push_back(Sha1Of(content.substr(layout.PieceOffset(i), layout.PieceLength(i))));
  }
  MemoryPartFile file(content.size());
  PieceWriter writer(layout, {expected, {}, {}}, &file);
  // Piece i off by one byte from any alignment, as gRPC's slices are.
  auto received = [&](uint32_t i) {
    return std::make_shared<std::string>(
        "x" + content.substr(layout.PieceOffset(i), layout.PieceLength(i)));
  };
  auto write_now = [&](uint32_t i) {
    const auto kept = received(i);
    const absl::string_view bytes = absl::string_view(*kept).substr(1);
    return writer.Write(i, {bytes.substr(0, 99), bytes.substr(99)});
  };
  auto write_or_wait = [&](uint32_t i) {
    const auto kept = received(i);
    return writer.Write(
        i, {absl::string_view(*kept).substr(1)},
        [kept](absl::Status status) { EXPECT_TRUE(status.ok()); }, nullptr);
  };
  EXPECT_TRUE(write_now(2).ok());  // hashed alone
  EXPECT_TRUE(write_or_wait(1));   // waits for piece 0
  EXPECT_FALSE(write_or_wait(0));  // hashed in its turn, and piece 1 after it
  EXPECT_EQ(file.aligned_writes, 3);
  EXPECT_TRUE(write_now(3).ok());  // the short last piece: not whole blocks
  EXPECT_EQ(file.writes, 4);
  EXPECT_EQ(file.aligned_writes, 3);
  EXPECT_TRUE(file.bytes == content);
  EXPECT_EQ(*writer.WholeFileSha1(), HexEncode(Sha1Of(content)));
}

TEST_F(PieceWriterTest, AWaitingPieceIsWrittenElsewhereOnceItsTurnComes) {
  PieceWriter writer(layout_, Unchained(), &file_);
  std::optional<absl::Status> verdict[4];
  std::vector<std::function<void()>> elsewhere;
  auto write = [&](uint32_t i, std::string bytes) {
    auto kept = std::make_shared<std::string>(std::move(bytes));
    return writer.Write(
        i, {*kept}, [&verdict, i, kept](absl::Status status) { verdict[i] = std::move(status); },
        [&elsewhere](std::function<void()> task) { elsewhere.push_back(std::move(task)); });
  };
  std::string bad = Piece(2);
  bad[9] ^= 1;
  EXPECT_TRUE(write(2, bad));
  EXPECT_TRUE(write(1, Piece(1)));
  EXPECT_FALSE(write(0, Piece(0)));
  // Piece 0 was written here; the two after it, hashed in its turn, are
  // written by the tasks handed elsewhere.
  ASSERT_TRUE(verdict[0].has_value());
  EXPECT_TRUE(verdict[0]->ok());
  EXPECT_EQ(file_.writes, 1);
  ASSERT_EQ(elsewhere.size(), 2u);
  EXPECT_FALSE(verdict[1].has_value() || verdict[2].has_value());
  for (auto& task : elsewhere) task();
  ASSERT_TRUE(verdict[1].has_value() && verdict[2].has_value());
  EXPECT_TRUE(verdict[1]->ok());
  EXPECT_EQ(verdict[2]->code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(file_.writes, 2);
  // A piece that waits when the download ends is dropped with its bytes.
  auto kept = std::make_shared<std::string>(Piece(3));
  const std::weak_ptr<std::string> watch = kept;
  EXPECT_TRUE(writer.Write(
      3, {*kept}, [kept](absl::Status) { ADD_FAILURE() << "called"; }, nullptr));
  kept.reset();
  EXPECT_FALSE(watch.expired());
  writer.DropWaiting();
  EXPECT_TRUE(watch.expired());
}

}  // namespace
}  // namespace groupshare::peer
