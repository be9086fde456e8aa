#include "services/peer/piece_writer.h"

#include <utility>

#include "core/sha1_stream.h"

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

bool PieceWriter::CheckWaiting() { return hasher_.CheckWaiting(absl::Now() - kTurnWait); }

bool PieceWriter::Check(uint32_t index, std::vector<absl::string_view> data, bool may_wait,
                        Done done, Run elsewhere) {
  if (index >= expected_.pieces.size()) {
    std::move(done)(absl::DataLossError("no such piece"));
    return false;
  }
  if (expected_.chained()) {
    Aligned copy = TakeAligned(index);
    const bool right = ChainHolds(index, data, copy.get());
    absl::Status verdict = Checked(index, data, copy.get(), right);
    GiveBack(std::move(copy));
    std::move(done)(std::move(verdict));
    return false;
  }
  // What the piece's verdict needs, wherever it is reached.
  struct Pending {
    uint32_t index;
    std::vector<absl::string_view> data;
    Aligned copy;
    Done done;
  };
  auto pending =
      std::make_shared<Pending>(Pending{index, std::move(data), nullptr, std::move(done)});
  auto finish = [this, pending](const Sha1Digest& sha1) {
    absl::Status verdict = Checked(pending->index, pending->data, pending->copy.get(),
                                   sha1 == expected_.pieces[pending->index]);
    GiveBack(std::move(pending->copy));
    std::move(pending->done)(std::move(verdict));
  };
  WholeFileHasher::Unchecked piece{index, pending->data, expected_.pieces[index], nullptr,
                                   nullptr};
  // Taken once it is hashed: a piece that waits for its turn holds none.
  piece.copy_to = [this, pending] {
    pending->copy = TakeAligned(pending->index);
    return pending->copy.get();
  };
  piece.hashed = [elsewhere = std::move(elsewhere), finish](const Sha1Digest& sha1,
                                                            bool in_turn_of_another) {
    // The caller in turn goes on hashing the pieces after it, while the
    // write (the device's time) waits on another thread.
    if (in_turn_of_another && elsewhere != nullptr) {
      elsewhere([finish, sha1] { finish(sha1); });
    } else {
      finish(sha1);
    }
  };
  return hasher_.Check(std::move(piece), absl::Now(), may_wait);
}

bool PieceWriter::ChainHolds(uint32_t index, absl::Span<const absl::string_view> data,
                             char* copy) const {
  size_t size = 0;
  for (absl::string_view part : data) size += part.size();
  if (size != layout_.PieceLength(index)) return false;  // and `copy` has room for a piece only
  const uint64_t offset = layout_.PieceOffset(index);
  Sha1Stream stream = index == 0 ? Sha1Stream() : Sha1Stream(expected_.chain[index - 1], offset);
  stream.Update(data, copy);
  return index < expected_.chain.size() ? stream.Chain() == expected_.chain[index]
                                        : stream.Finish() == expected_.whole;
}

absl::Status PieceWriter::Checked(uint32_t index, absl::Span<const absl::string_view> data,
                                  const char* copy, bool right) {
  if (!right) return absl::DataLossError("its SHA1 check failed");
  const absl::string_view copied(copy, copy == nullptr ? 0 : layout_.PieceLength(index));
  absl::Status written = file_->Write(layout_.PieceOffset(index),
                                      copy == nullptr ? data : absl::MakeConstSpan(&copied, 1));
  if (!written.ok()) return written;
  if (expected_.chained()) {
    absl::MutexLock lock(&written_mu_);
    written_.Set(index);
  } else {
    hasher_.Add(index, data);  // hashed alone, it joins the whole file's SHA1 now
  }
  return written;
}

absl::StatusOr<std::string> PieceWriter::WholeFileSha1() {
  if (!expected_.chained()) return hasher_.Finish();
  absl::MutexLock lock(&written_mu_);
  if (!written_.All()) {
    return absl::FailedPreconditionError("pieces are missing from the whole file's SHA1");
  }
  return HexEncode(expected_.whole);
}

PieceWriter::Aligned PieceWriter::TakeAligned(uint32_t index) {
  if (layout_.PieceOffset(index) % kDirectIoBlock != 0 ||
      layout_.PieceLength(index) % kDirectIoBlock != 0) {
    return nullptr;
  }
  {
    absl::MutexLock lock(&pool_mu_);
    if (!pool_.empty()) {
      Aligned buffer = std::move(pool_.back());
      pool_.pop_back();
      return buffer;
    }
  }
  return Aligned(static_cast<char*>(std::aligned_alloc(kDirectIoBlock, layout_.piece_size)));
}

void PieceWriter::GiveBack(Aligned buffer) {
  if (buffer == nullptr) return;
  absl::MutexLock lock(&pool_mu_);
  // As many as pieces may wait for their turn, and a few being written.
  if (pool_.size() < WholeFileHasher::kDefaultAhead + 8) pool_.push_back(std::move(buffer));
}

bool PieceWriter::Kept(uint32_t index) {
  if (index >= expected_.pieces.size()) return false;
  std::string data(layout_.PieceLength(index), '\0');
  if (!file_->Read(layout_.PieceOffset(index), data.data(), data.size()).ok()) return false;
  const absl::string_view bytes = data;
  if (expected_.chained()) {
    if (!ChainHolds(index, absl::MakeConstSpan(&bytes, 1), nullptr)) return false;
    absl::MutexLock lock(&written_mu_);
    written_.Set(index);
    return true;
  }
  bool right = false;
  WholeFileHasher::Unchecked piece{index, {data}, expected_.pieces[index], nullptr, nullptr};
  piece.hashed = [&](const Sha1Digest& sha1, bool) { right = sha1 == expected_.pieces[index]; };
  hasher_.Check(std::move(piece), absl::Now(), /*may_wait=*/false);
  if (right) hasher_.Add(index, {});  // read back in its turn, unless it is in already
  return right;
}

}  // namespace groupshare::peer
