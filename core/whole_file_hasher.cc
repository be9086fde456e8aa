#include "core/whole_file_hasher.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace groupshare {
namespace {

// Where `piece` is to be copied as it is hashed (null for nowhere).
char* CopyTarget(WholeFileHasher::Unchecked& piece) {
  return piece.copy_to == nullptr ? nullptr : piece.copy_to();
}

void CheckAlone(WholeFileHasher::Unchecked piece, bool in_turn_of_another) {
  Sha1Stream alone;
  alone.Update(piece.data, CopyTarget(piece));
  std::move(piece.hashed)(alone.Finish(), in_turn_of_another);
}

// A second copy of a piece taken in is checked alone.
void CheckCopy(std::optional<WholeFileHasher::Unchecked> copy) {
  if (copy.has_value()) CheckAlone(*std::move(copy), /*in_turn_of_another=*/true);
}

}  // namespace

WholeFileHasher::WholeFileHasher(FileLayout layout, PartFile* file, uint32_t ahead)
    : layout_(layout), file_(file), ahead_(ahead), added_(layout.PieceCount()) {}

bool WholeFileHasher::Check(Unchecked piece, absl::Time now, bool may_wait) {
  bool turn = false;
  {
    absl::MutexLock lock(&mu_);
    const uint32_t index = piece.piece;
    if (index < added_.size() && !added_.Get(index) && !waiting_.contains(index)) {
      // A piece not taken in is at next_ or after it.
      turn = !busy_ && index == next_;
      if (!turn && may_wait && index - next_ < ahead_) {
        waiting_.emplace(index, Waiting{std::move(piece), now});
        return true;
      }
      if (turn) busy_ = true;
    }
  }
  if (!turn) {
    CheckAlone(std::move(piece), /*in_turn_of_another=*/false);
    return false;
  }
  HashInTurn(std::move(piece), /*waited=*/false);
  Drain();
  return false;
}

bool WholeFileHasher::CheckWaiting(absl::Time before) {
  std::vector<Unchecked> late;
  bool others;
  {
    absl::MutexLock lock(&mu_);
    for (auto it = waiting_.begin(); it != waiting_.end();) {
      if (it->second.since < before) {
        late.push_back(std::move(it->second.piece));
        waiting_.erase(it++);
      } else {
        ++it;
      }
    }
    others = !waiting_.empty();
  }
  for (Unchecked& piece : late) CheckAlone(std::move(piece), /*in_turn_of_another=*/false);
  return others;
}

void WholeFileHasher::DropWaiting() {
  absl::flat_hash_map<uint32_t, Waiting> dropped;
  {
    absl::MutexLock lock(&mu_);
    dropped.swap(waiting_);
  }
}

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
      copies_.emplace(piece, std::move(copy));
      return;
    }
    busy_ = true;  // its turn came meanwhile
  }
  HashNext({copy});
  Drain();
}

void WholeFileHasher::HashInTurn(Unchecked piece, bool waited) {
  Sha1Stream with_piece = sha1_;
  const Sha1Digest digest = with_piece.UpdateAndHash(piece.data, CopyTarget(piece));
  std::optional<Unchecked> copy;
  if (digest == piece.expected) {
    sha1_ = std::move(with_piece);
    absl::MutexLock lock(&mu_);
    added_.Set(piece.piece);
    copies_.erase(piece.piece);  // a checked copy that came meanwhile
    copy = Advance();
  }
  std::move(piece.hashed)(digest, waited);
  CheckCopy(std::move(copy));
}

void WholeFileHasher::HashNext(absl::Span<const absl::string_view> data) {
  sha1_.Update(data);
  std::optional<Unchecked> copy;
  {
    absl::MutexLock lock(&mu_);
    copy = Advance();
  }
  CheckCopy(std::move(copy));
}

std::optional<WholeFileHasher::Unchecked> WholeFileHasher::Advance() {
  return TakeWaiting(next_++);
}

std::optional<WholeFileHasher::Unchecked> WholeFileHasher::TakeWaiting(uint32_t piece) {
  const auto it = waiting_.find(piece);
  if (it == waiting_.end()) return std::nullopt;
  std::optional<Unchecked> taken = std::move(it->second.piece);
  waiting_.erase(it);
  return taken;
}

void WholeFileHasher::Drain() {
  while (true) {
    uint32_t piece;
    bool kept = false;
    std::optional<Unchecked> unchecked;
    {
      absl::MutexLock lock(&mu_);
      if (next_ == added_.size() || !error_.ok()) {
        busy_ = false;
        return;
      }
      piece = next_;
      if (!added_.Get(piece)) {
        unchecked = TakeWaiting(piece);
        if (!unchecked.has_value()) {
          busy_ = false;
          return;
        }
      } else if (auto it = copies_.find(piece); it != copies_.end()) {
        buffer_ = std::move(it->second);
        copies_.erase(it);
        kept = true;
      }
    }
    if (unchecked.has_value()) {
      HashInTurn(*std::move(unchecked), /*waited=*/true);  // moves next_ on if it is right
      continue;
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
