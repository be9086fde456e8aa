#include "core/whole_file_hasher.h"

#include "absl/strings/str_cat.h"

namespace groupshare {

WholeFileHasher::WholeFileHasher(FileLayout layout, PartFile* file, uint32_t ahead,
                                 absl::Duration turn_wait)
    : layout_(layout),
      file_(file),
      ahead_(ahead),
      turn_wait_(turn_wait),
      added_(layout.PieceCount()) {}

void WholeFileHasher::Add(uint32_t piece, absl::Span<const absl::string_view> data) {
  bool turn;
  {
    absl::MutexLock lock(&mu_);
    if (piece >= added_.size() || added_.Get(piece)) return;
    turn = !busy_ && piece == next_;
    // A piece not added yet is at next_ or after it.
    if (turn || data.empty() || piece - next_ >= ahead_) {
      added_.Set(piece);
      if (!turn) return;  // read back in its turn
      busy_ = true;
    }
  }
  if (turn) {
    if (!data.empty()) HashNext(data);
    Drain();  // reads it back if it came without its bytes
    return;
  }
  // Near its turn: copied outside the lock, and added with its copy.
  std::string copy;
  copy.reserve(layout_.PieceLength(piece));
  for (absl::string_view part : data) copy.append(part.data(), part.size());
  {
    absl::MutexLock lock(&mu_);
    if (added_.Get(piece)) return;  // another copy of it came first
    added_.Set(piece);
    if (busy_ || piece != next_) {
      waiting_.emplace(piece, std::move(copy));
      return;
    }
    busy_ = true;  // its turn came meanwhile
  }
  HashNext({copy});
  Drain();
}

std::optional<Sha1Digest> WholeFileHasher::AddIfNext(uint32_t piece,
                                                     absl::Span<const absl::string_view> data,
                                                     const Sha1Digest& expected) {
  {
    absl::MutexLock lock(&mu_);
    // The piece right after the one being hashed waits for its turn (a
    // fraction of a millisecond, as a rule) rather than be hashed twice.
    if (busy_ && piece == next_ + 1) {
      mu_.AwaitWithTimeout(absl::Condition(this, &WholeFileHasher::TurnFree), turn_wait_);
    }
    if (busy_ || piece != next_ || piece >= added_.size() || added_.Get(piece)) return std::nullopt;
    busy_ = true;
  }
  Sha1Stream with_piece = sha1_;
  const Sha1Digest digest = with_piece.UpdateAndHash(data);
  if (digest == expected) {
    sha1_ = std::move(with_piece);
    absl::MutexLock lock(&mu_);
    added_.Set(piece);
    waiting_.erase(piece);  // a copy that came meanwhile
    ++next_;
  }
  Drain();  // also what others added meanwhile, whether this piece held or not
  return digest;
}

void WholeFileHasher::HashNext(absl::Span<const absl::string_view> data) {
  sha1_.Update(data);
  absl::MutexLock lock(&mu_);
  ++next_;
}

void WholeFileHasher::Drain() {
  while (true) {
    uint32_t piece;
    bool kept = false;
    {
      absl::MutexLock lock(&mu_);
      if (next_ == added_.size() || !added_.Get(next_) || !error_.ok()) {
        busy_ = false;
        return;
      }
      piece = next_;
      if (auto it = waiting_.find(piece); it != waiting_.end()) {
        buffer_ = std::move(it->second);
        waiting_.erase(it);
        kept = true;
      }
    }
    if (!kept) {  // arrived far ahead of its turn, or without its bytes
      buffer_.resize(layout_.PieceLength(piece));
      absl::Status read = file_->Read(layout_.PieceOffset(piece), buffer_.data(), buffer_.size());
      absl::MutexLock lock(&mu_);
      if (!read.ok()) {
        error_ = read;
        busy_ = false;
        return;
      }
      ++read_back_;
    }
    HashNext({buffer_});
  }
}

absl::StatusOr<std::string> WholeFileHasher::Finish() {
  {
    absl::MutexLock lock(&mu_);
    if (busy_) return absl::FailedPreconditionError("the whole-file hash is still running");
    busy_ = true;
  }
  Drain();
  absl::MutexLock lock(&mu_);
  if (!error_.ok()) return error_;
  if (next_ != added_.size()) {
    return absl::FailedPreconditionError(
        absl::StrCat("only ", next_, " of ", added_.size(), " pieces are hashed"));
  }
  return HexEncode(sha1_.Finish());
}

uint32_t WholeFileHasher::read_back() const {
  absl::MutexLock lock(&mu_);
  return read_back_;
}

}  // namespace groupshare
