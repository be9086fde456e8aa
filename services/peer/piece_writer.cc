#include "services/peer/piece_writer.h"

#include <utility>

namespace groupshare::peer {

bool PieceWriter::Write(uint32_t index, std::vector<absl::string_view> data, Done done,
                        Run elsewhere) {
  return Check(index, std::move(data), /*may_wait=*/true, std::move(done), std::move(elsewhere));
}

absl::Status PieceWriter::Write(uint32_t index, absl::Span<const absl::string_view> data) {
  absl::Status verdict;
  Check(index, {data.begin(), data.end()}, /*may_wait=*/false,
        [&verdict](absl::Status status) { verdict = std::move(status); }, nullptr);
  return verdict;
}

void PieceWriter::CheckWaiting() { hasher_.CheckWaiting(absl::Now() - kMostWait); }

bool PieceWriter::Check(uint32_t index, std::vector<absl::string_view> data, bool may_wait,
                        Done done, Run elsewhere) {
  if (index >= expected_.size()) {
    std::move(done)(absl::DataLossError("no such piece"));
    return false;
  }
  WholeFileHasher::Unchecked piece{index, data, expected_[index], nullptr};
  piece.hashed = [this, index, data = std::move(data), done = std::move(done),
                  elsewhere = std::move(elsewhere)](const Sha1Digest& sha1,
                                                    bool in_turn_of_another) mutable {
    if (!in_turn_of_another || elsewhere == nullptr) {
      std::move(done)(Hashed(index, data, sha1));
      return;
    }
    // The caller in turn goes on hashing the pieces after it, while the
    // write (the device's time) waits on another thread.
    auto write = std::make_shared<Done>(std::move(done));
    elsewhere([this, index, data = std::move(data), sha1, write] {
      std::move(*write)(Hashed(index, data, sha1));
    });
  };
  return hasher_.Check(std::move(piece), absl::Now(), may_wait);
}

absl::Status PieceWriter::Hashed(uint32_t index, absl::Span<const absl::string_view> data,
                                 const Sha1Digest& sha1) {
  if (sha1 != expected_[index]) return absl::DataLossError("its SHA1 check failed");
  absl::Status written = file_->Write(layout_.PieceOffset(index), data);
  // Hashed alone, it joins the whole file's SHA1 now (else this does nothing).
  if (written.ok()) hasher_.Add(index, data);
  return written;
}

bool PieceWriter::Kept(uint32_t index) {
  if (index >= expected_.size()) return false;
  std::string data(layout_.PieceLength(index), '\0');
  if (!file_->Read(layout_.PieceOffset(index), data.data(), data.size()).ok()) return false;
  bool right = false;
  WholeFileHasher::Unchecked piece{index, {data}, expected_[index], nullptr};
  piece.hashed = [&](const Sha1Digest& sha1, bool) { right = sha1 == expected_[index]; };
  hasher_.Check(std::move(piece), absl::Now(), /*may_wait=*/false);
  if (right) hasher_.Add(index, {});  // read back in its turn, unless it is in already
  return right;
}

}  // namespace groupshare::peer
