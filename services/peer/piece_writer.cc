#include "services/peer/piece_writer.h"

namespace groupshare::peer {

absl::Status PieceWriter::Write(uint32_t index, absl::Span<const absl::string_view> data) {
  if (index >= expected_.size()) return absl::DataLossError("no such piece");
  // Next in file order, it is checked and hashed into the whole in one pass.
  const std::optional<Sha1Digest> next = hasher_.AddIfNext(index, data, expected_[index]);
  if ((next.has_value() ? *next : Sha1Of(data)) != expected_[index]) {
    return absl::DataLossError("its SHA1 check failed");
  }
  absl::Status written = file_->Write(layout_.PieceOffset(index), data);
  if (written.ok() && !next.has_value()) hasher_.Add(index, data);
  return written;
}

bool PieceWriter::Kept(uint32_t index) {
  if (index >= expected_.size()) return false;
  std::string data(layout_.PieceLength(index), '\0');
  if (!file_->Read(layout_.PieceOffset(index), data.data(), data.size()).ok()) return false;
  const absl::string_view bytes = data;
  const std::optional<Sha1Digest> next = hasher_.AddIfNext(index, {bytes}, expected_[index]);
  if ((next.has_value() ? *next : Sha1Of(bytes)) != expected_[index]) return false;
  if (!next.has_value()) hasher_.Add(index, {});  // read back when its turn comes
  return true;
}

}  // namespace groupshare::peer
