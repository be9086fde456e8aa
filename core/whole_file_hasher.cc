#include "core/whole_file_hasher.h"

#include "absl/strings/str_cat.h"

namespace groupshare {

WholeFileHasher::WholeFileHasher(FileLayout layout, PartFile* file)
    : layout_(layout), file_(file), added_(layout.PieceCount()) {}

void WholeFileHasher::Add(uint32_t piece, absl::Span<const absl::string_view> data) {
  {
    absl::MutexLock lock(&mu_);
    if (piece >= added_.size() || added_.Get(piece)) return;
    added_.Set(piece);
    if (busy_ || piece != next_) return;  // the turn's holder, or a later turn, takes it
    busy_ = true;
  }
  if (!data.empty()) {
    for (absl::string_view part : data) sha1_.Update(part);
    absl::MutexLock lock(&mu_);
    ++next_;
  }
  Drain();
}

void WholeFileHasher::Drain() {
  while (true) {
    uint32_t piece;
    {
      absl::MutexLock lock(&mu_);
      if (next_ == added_.size() || !added_.Get(next_) || !error_.ok()) {
        busy_ = false;
        return;
      }
      piece = next_;
    }
    // Arrived out of order earlier: read it back (from the page cache).
    buffer_.resize(layout_.PieceLength(piece));
    absl::Status read = file_->Read(layout_.PieceOffset(piece), buffer_.data(), buffer_.size());
    absl::MutexLock lock(&mu_);
    if (!read.ok()) {
      error_ = read;
      busy_ = false;
      return;
    }
    sha1_.Update(buffer_);
    ++next_;
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

}  // namespace groupshare
